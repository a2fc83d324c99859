/**
 * The SQL that differs between MySQL-protocol servers, behind one small interface, so the activities in
 * activities/mysql.ts are written once. MariaDB (10.11) is implemented and tested here against real servers.
 * MySQL 8 is the SQL it would send — UNTESTED in this repository (no MySQL 8 server in the sandbox): treat it
 * as a starting point, and note that MySQL's GTID sets (uuid:1-100) are not MariaDB's domain-server-seq
 * positions, so core/decide-mysql.ts's GTID arithmetic would need a MySQL 8 counterpart too.
 */

export type MysqlFlavorName = 'mariadb' | 'mysql8';

/** One row of replica status, normalised across flavors. */
export interface ReplicaStatus {
  sourceHost: string;
  sourcePort: number;
  /** Yes | No | Connecting */
  ioRunning: string;
  sqlRunning: boolean;
  secondsBehind: number | null;
  sqlDelay: number;
  /** MariaDB Using_Gtid (No | Current_Pos | Slave_Pos); MySQL 8 Auto_Position (0|1 as 'No'|'Auto'). */
  usingGtid: string;
  lastIoError: string;
  lastSqlError: string;
  /** The replication user configured (never its password). */
  user: string;
  /** Whether the replica connects to its source over TLS (MariaDB Master_SSL_Allowed, MySQL Source_SSL_Allowed). */
  sslAllowed: boolean;
}

export interface GtidPositions {
  /** Everything the server has in its binary log (MariaDB gtid_binlog_pos; MySQL gtid_executed). */
  binlog: string;
  /** MariaDB gtid_current_pos; MySQL gtid_executed. */
  current: string;
  /** MariaDB gtid_slave_pos (last applied from a source); MySQL gtid_executed. */
  slave: string;
  /** MariaDB gtid_binlog_state (the last GTID of each domain and server); undefined where the flavor has none. */
  binlogState?: string;
}

export interface SourceSpec {
  host: string;
  port: number;
  user: string;
  password: string;
  /**
   * Replicate over TLS: the CA file as the replica server reads it, and whether the replica checks the source's
   * certificate (chain and name: MASTER_HOST must be in it). Undefined: the replica's current MASTER_SSL is kept.
   */
  ssl?: { ca?: string; verify: boolean };
}

/** The TLS clauses of CHANGE MASTER (`MASTER`) / CHANGE REPLICATION SOURCE (`SOURCE`), and their parameters. */
function sslClauses(word: 'MASTER' | 'SOURCE', s: SourceSpec): { sql: string; params: unknown[] } {
  // Without TLS in the inventory the server's own setting is left as it is (CHANGE MASTER keeps unnamed options).
  if (!s.ssl) return { sql: '', params: [] };
  const ca = s.ssl.ca !== undefined;
  return {
    sql: `, ${word}_SSL = 1${ca ? `, ${word}_SSL_CA = ?` : ''}, ${word}_SSL_VERIFY_SERVER_CERT = ${s.ssl.verify ? 1 : 0}`,
    params: ca ? [s.ssl.ca] : [],
  };
}

/** The one-shot event that lifts a fence at its bound (in the `mysql` schema, which every server has). */
export const FENCE_BOUND_EVENT = 'mysql.handover_fence_bound';
/** Whether the node holds the event (enabled, or disabled after it fired): `SELECT … AS n`. */
export const FENCE_BOUND_EXISTS = "SELECT COUNT(*) AS n FROM information_schema.EVENTS WHERE EVENT_SCHEMA = 'mysql' AND EVENT_NAME = 'handover_fence_bound'";

/** Whether the node holds a fence bound that has fired (a one-shot event kept ON COMPLETION PRESERVE). */
export async function fenceBoundFired(conn: { query(sql: string): Promise<unknown> }): Promise<boolean> {
  const [rows] = (await conn.query(`${FENCE_BOUND_EXISTS} AND LAST_EXECUTED IS NOT NULL`)) as [{ n: number | string }[]];
  return Number(rows[0]?.n ?? 0) > 0;
}

/** Drop the fence bound when the node holds one (read first: a node without it is not touched). */
export async function cancelFenceBound(conn: { query(sql: string): Promise<unknown> }, flavor: MysqlFlavor): Promise<boolean> {
  const [rows] = (await conn.query(FENCE_BOUND_EXISTS)) as [{ n: number | string }[]];
  if (Number(rows[0]?.n ?? 0) === 0) return false;
  for (const s of flavor.cancelFenceBound) await conn.query(s);
  return true;
}

export interface MysqlFlavor {
  name: MysqlFlavorName;
  /** SELECT returning one row: read_only, super_read_only (0 where absent), server_id, version, and GTID positions. */
  readState: string;
  parseState(row: Record<string, unknown>): { readOnly: boolean; superReadOnly: boolean; serverId: number; version: string; gtid: GtidPositions; startedAt?: number; innodbLsn?: number };
  /**
   * SELECT … AS origin, … AS path: where the running read_only came from (core/restart-risk.ts). Absent where
   * this repository has not checked it against a server (MySQL 8: performance_schema.variables_info).
   */
  readOnlyOrigin?: string;
  replicaStatus: string;
  parseReplicaStatus(rows: Record<string, unknown>[]): ReplicaStatus | undefined;
  /** Statements that make the server refuse application writes (in order). */
  fence: string[];
  /** Statements that make it accept them again. */
  unfence: string[];
  /**
   * The fence's server-side bound: a one-shot event, created without binary logging (it must not replicate or
   * add a GTID), that lifts the fence after `seconds`. `cancelFenceBound` drops it (also without binary logging).
   */
  fenceBound(seconds: number): string[];
  cancelFenceBound: string[];
  /** SELECT <wait for position ?, timeout ? s> AS r; r = 0 reached, -1/1 timed out, NULL error. */
  waitForPosition: string;
  /** Interpret the wait's r column. */
  waitReached(r: unknown): boolean;
  stopReplica: string;
  startReplica: string;
  /** Forget the replica configuration entirely (the node becomes a source). */
  resetReplica: string;
  /**
   * Statements (run with replication stopped) that make the node continue from `position`, the GTIDs it
   * already has, when it starts to follow a new source (MariaDB: gtid_slave_pos; MySQL 8: nothing, auto-position).
   */
  adoptPosition(position: string): { sql: string; params: unknown[] }[];
  changeSource(s: SourceSpec): { sql: string; params: unknown[] };
}

const str = (v: unknown) => (v === null || v === undefined ? '' : String(v));
const numOrNull = (v: unknown) => (v === null || v === undefined || v === '' ? null : Number(v));

export const mariadb: MysqlFlavor = {
  name: 'mariadb',
  readState:
    'SELECT @@global.read_only AS read_only, 0 AS super_read_only, @@global.server_id AS server_id, @@version AS version, ' +
    '@@global.gtid_binlog_pos AS gtid_binlog_pos, @@global.gtid_current_pos AS gtid_current_pos, @@global.gtid_slave_pos AS gtid_slave_pos, @@global.gtid_binlog_state AS gtid_binlog_state, ' +
    // When the server started (the empty-primary guard's proof of a restart; no privilege needed).
    "UNIX_TIMESTAMP() - (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'UPTIME') AS started_at, " +
    // InnoDB's log sequence number only grows over a data directory's life: one that went back was replaced.
    "(SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'INNODB_LSN_CURRENT') AS innodb_lsn",
  parseState: (r) => ({
    readOnly: Number(r.read_only) === 1,
    superReadOnly: false,
    serverId: Number(r.server_id),
    version: str(r.version),
    gtid: { binlog: str(r.gtid_binlog_pos), current: str(r.gtid_current_pos), slave: str(r.gtid_slave_pos), binlogState: str(r.gtid_binlog_state) },
    ...(r.started_at !== null && r.started_at !== undefined && Number.isFinite(Number(r.started_at)) ? { startedAt: Number(r.started_at) } : {}),
    ...(r.innodb_lsn !== null && r.innodb_lsn !== undefined && Number.isFinite(Number(r.innodb_lsn)) ? { innodbLsn: Number(r.innodb_lsn) } : {}),
  }),
  readOnlyOrigin: "SELECT GLOBAL_VALUE_ORIGIN AS origin, GLOBAL_VALUE_PATH AS path FROM information_schema.SYSTEM_VARIABLES WHERE VARIABLE_NAME = 'READ_ONLY'",
  // The default (unnamed) connection only; multi-source replication is not supported by these runbooks.
  replicaStatus: 'SHOW SLAVE STATUS',
  parseReplicaStatus(rows) {
    const r = rows[0];
    if (!r || !r.Master_Host) return undefined;
    return {
      sourceHost: str(r.Master_Host),
      sourcePort: Number(r.Master_Port),
      ioRunning: str(r.Slave_IO_Running),
      sqlRunning: str(r.Slave_SQL_Running) === 'Yes',
      secondsBehind: numOrNull(r.Seconds_Behind_Master),
      sqlDelay: Number(r.SQL_Delay ?? 0),
      usingGtid: str(r.Using_Gtid),
      lastIoError: str(r.Last_IO_Error),
      lastSqlError: str(r.Last_SQL_Error),
      user: str(r.Master_User),
      sslAllowed: str(r.Master_SSL_Allowed) === 'Yes',
    };
  },
  // MariaDB has no super_read_only: accounts with READ_ONLY ADMIN (and, before 11.0, SUPER) can still write.
  fence: ['SET GLOBAL read_only = ON'],
  unfence: ['SET GLOBAL read_only = OFF'],
  fenceBound: (seconds) => [
    'SET SESSION sql_log_bin = 0',
    `CREATE OR REPLACE DEFINER = CURRENT_USER EVENT ${FENCE_BOUND_EVENT} ON SCHEDULE AT CURRENT_TIMESTAMP + INTERVAL ${Math.max(1, Math.ceil(seconds))} SECOND ON COMPLETION PRESERVE DO SET GLOBAL read_only = OFF`,
  ],
  cancelFenceBound: ['SET SESSION sql_log_bin = 0', `DROP EVENT IF EXISTS ${FENCE_BOUND_EVENT}`],
  waitForPosition: 'SELECT MASTER_GTID_WAIT(?, ?) AS r',
  waitReached: (r) => r !== null && Number(r) === 0,
  stopReplica: 'STOP SLAVE',
  startReplica: 'START SLAVE',
  resetReplica: 'RESET SLAVE ALL',
  adoptPosition: (position) => [{ sql: 'SET GLOBAL gtid_slave_pos = ?', params: [position] }],
  changeSource: (s) => {
    const ssl = sslClauses('MASTER', s);
    return {
      sql: `CHANGE MASTER TO MASTER_HOST = ?, MASTER_PORT = ?, MASTER_USER = ?, MASTER_PASSWORD = ?, MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1, MASTER_HEARTBEAT_PERIOD = 1${ssl.sql}`,
      params: [s.host, s.port, s.user, s.password, ...ssl.params],
    };
  },
};

/** MySQL 8.0.23+ — UNTESTED here (no MySQL 8 server in this sandbox); the SQL it would send. */
export const mysql8: MysqlFlavor = {
  name: 'mysql8',
  readState:
    'SELECT @@global.read_only AS read_only, @@global.super_read_only AS super_read_only, @@global.server_id AS server_id, @@version AS version, ' +
    '@@global.gtid_executed AS gtid_executed',
  parseState: (r) => ({
    readOnly: Number(r.read_only) === 1,
    superReadOnly: Number(r.super_read_only) === 1,
    serverId: Number(r.server_id),
    version: str(r.version),
    gtid: { binlog: str(r.gtid_executed).replace(/\s+/g, ''), current: str(r.gtid_executed).replace(/\s+/g, ''), slave: str(r.gtid_executed).replace(/\s+/g, '') },
  }),
  replicaStatus: 'SHOW REPLICA STATUS',
  parseReplicaStatus(rows) {
    const r = rows[0];
    if (!r || !r.Source_Host) return undefined;
    return {
      sourceHost: str(r.Source_Host),
      sourcePort: Number(r.Source_Port),
      ioRunning: str(r.Replica_IO_Running),
      sqlRunning: str(r.Replica_SQL_Running) === 'Yes',
      secondsBehind: numOrNull(r.Seconds_Behind_Source),
      sqlDelay: Number(r.SQL_Delay ?? 0),
      usingGtid: Number(r.Auto_Position) === 1 ? 'Auto' : 'No',
      lastIoError: str(r.Last_IO_Error),
      lastSqlError: str(r.Last_SQL_Error),
      user: str(r.Source_User),
      sslAllowed: str(r.Source_SSL_Allowed) === 'Yes',
    };
  },
  // super_read_only also stops accounts with SUPER / CONNECTION_ADMIN from writing; setting it sets read_only.
  fence: ['SET GLOBAL super_read_only = ON'],
  unfence: ['SET GLOBAL super_read_only = OFF', 'SET GLOBAL read_only = OFF'],
  fenceBound: (seconds) => [
    'SET SESSION sql_log_bin = 0',
    `DROP EVENT IF EXISTS ${FENCE_BOUND_EVENT}`,
    `CREATE DEFINER = CURRENT_USER EVENT ${FENCE_BOUND_EVENT} ON SCHEDULE AT CURRENT_TIMESTAMP + INTERVAL ${Math.max(1, Math.ceil(seconds))} SECOND ON COMPLETION PRESERVE DO SET GLOBAL super_read_only = OFF, GLOBAL read_only = OFF`,
  ],
  cancelFenceBound: ['SET SESSION sql_log_bin = 0', `DROP EVENT IF EXISTS ${FENCE_BOUND_EVENT}`],
  // Returns 0 when reached, 1 on timeout (8.0.18+).
  waitForPosition: 'SELECT WAIT_FOR_EXECUTED_GTID_SET(?, ?) AS r',
  waitReached: (r) => r !== null && Number(r) === 0,
  stopReplica: 'STOP REPLICA',
  startReplica: 'START REPLICA',
  resetReplica: 'RESET REPLICA ALL',
  adoptPosition: () => [],
  changeSource: (s) => {
    const ssl = sslClauses('SOURCE', s);
    return {
      sql: `CHANGE REPLICATION SOURCE TO SOURCE_HOST = ?, SOURCE_PORT = ?, SOURCE_USER = ?, SOURCE_PASSWORD = ?, SOURCE_AUTO_POSITION = 1, SOURCE_CONNECT_RETRY = 1, GET_SOURCE_PUBLIC_KEY = 1${ssl.sql}`,
      params: [s.host, s.port, s.user, s.password, ...ssl.params],
    };
  },
};

export function flavorOf(name: MysqlFlavorName | undefined): MysqlFlavor {
  return name === 'mysql8' ? mysql8 : mariadb;
}
