/**
 * The Dolt node layer (engine: dolt, sql-server cluster mode): reading one node's role, epoch, replication
 * status and database hashes, probing a cluster, and connections per node from the worker's inventory. Dolt
 * speaks the MySQL protocol, so the connection is the MySQL one (activities/mysql/conn.ts: credentials resolved
 * there, TLS from the inventory). Reads only: nothing here changes a server.
 */
import type mysql from 'mysql2/promise';
import { ErrorType, HandoverError } from '../../core/errors';
import type { DoltNodeProbe, DoltPolicy, DoltReplicationRow, DoltRole } from '../../core/dolt/decide';
import type { Promotion } from '../../core/types';
import { findEngineCluster } from '../../inventory/load';
import type { ClusterSpec, Inventory } from '../../inventory/schema';
import { withDeadline } from '../activity';
import { classifyMysqlError, connectMysql as defaultConnect, mysqlTarget, type MysqlConnect } from '../mysql/conn';

export interface DoltActivityDeps {
  inventory: () => Inventory;
  connectMysql?: MysqlConnect;
  env?: NodeJS.ProcessEnv;
  failpoint?: (name: string) => void | Promise<void>;
  /** A probe of one node that takes longer is reported unreachable (`handover status`). */
  probeTimeoutMs?: number;
}

/** Schemas that are not user databases. */
export const DOLT_SYSTEM_SCHEMAS = new Set(['information_schema', 'mysql', 'dolt_cluster', 'performance_schema', 'sys']);

const READ_TIMEOUT_MS = 5_000;
type Row = Record<string, unknown>;

export async function doltRows(conn: mysql.Connection, sql: string, params: unknown[] = [], timeout = READ_TIMEOUT_MS): Promise<Row[]> {
  const [r] = await conn.query({ sql, values: params, timeout });
  return r as Row[];
}

const ident = (name: string) => `\`${name.replace(/`/g, '``')}\``;

/** Role and epoch only (after a role change, on a fresh connection). */
export async function readDoltRole(conn: mysql.Connection): Promise<{ role: DoltRole; epoch: number; readOnly: boolean }> {
  const r = (await doltRows(conn, 'SELECT @@GLOBAL.dolt_cluster_role AS role, @@GLOBAL.dolt_cluster_role_epoch AS epoch, @@GLOBAL.read_only AS ro'))[0];
  return { role: String(r.role) as DoltRole, epoch: Number(r.epoch), readOnly: Number(r.ro) === 1 };
}

/** dolt_cluster.dolt_cluster_status: one row per database and standby remote. */
export async function readDoltReplication(conn: mysql.Connection): Promise<DoltReplicationRow[]> {
  const rs = await doltRows(conn, 'SELECT `database` AS db, standby_remote AS remote, role, epoch, replication_lag_millis AS lag_ms, last_update AS lu, current_error AS err FROM dolt_cluster.dolt_cluster_status ORDER BY `database`, standby_remote');
  return rs.map((r) => ({
    database: String(r.db),
    remote: String(r.remote),
    role: String(r.role),
    epoch: Number(r.epoch),
    lagMillis: r.lag_ms === null || r.lag_ms === undefined ? null : Number(r.lag_ms),
    lastUpdate: r.lu === null || r.lu === undefined ? null : String(r.lu),
    error: r.err === null || r.err === undefined || r.err === '' ? null : String(r.err),
  }));
}

/** The user databases and dolt_hashof_db() of each (USE each in turn on this connection). */
export async function readDoltHashes(conn: mysql.Connection): Promise<Record<string, string>> {
  const dbs = (await doltRows(conn, 'SHOW DATABASES')).map((r) => String(Object.values(r)[0])).filter((d) => !DOLT_SYSTEM_SCHEMAS.has(d.toLowerCase()));
  const out: Record<string, string> = {};
  for (const d of dbs.sort()) {
    await conn.query(`USE ${ident(d)}`);
    out[d] = String((await doltRows(conn, 'SELECT dolt_hashof_db() AS h'))[0].h);
  }
  return out;
}

export async function readDoltNode(conn: mysql.Connection, cluster: ClusterSpec, nodeId: string): Promise<DoltNodeProbe> {
  const n = cluster.nodes.find((x) => x.id === nodeId)!;
  const r = await readDoltRole(conn);
  const version = String((await doltRows(conn, 'SELECT dolt_version() AS v'))[0].v);
  const replication = await readDoltReplication(conn);
  const hashes = await readDoltHashes(conn);
  return {
    node: n.id,
    address: `${n.host}:${n.port}`,
    promotion: n.promotion as Promotion,
    reachable: true,
    role: r.role,
    epoch: r.epoch,
    readOnly: r.readOnly,
    version,
    databases: Object.keys(hashes),
    replication,
    hashes,
  };
}

export const describeDoltNode = (p: DoltNodeProbe) => (!p.reachable ? `${p.node} unreachable` : `${p.node}=${p.role}@${p.epoch}`);

export function doltPolicy(c: ClusterSpec): DoltPolicy {
  const p = c.policy;
  return { catchUpTimeoutMs: p.catchUpTimeoutMs, verifyTimeoutMs: p.verifyTimeoutMs, maxLagMillis: p.maxLagSeconds * 1000, nearMillis: p.pauseTimeoutMs, probeIntervalMs: p.probeIntervalMs, probesToConfirm: p.probesToConfirm };
}

export function doltOps(deps: DoltActivityDeps) {
  const env = deps.env ?? process.env;
  const connect = deps.connectMysql ?? defaultConnect;
  const spec = (cluster: string) => findEngineCluster(deps.inventory(), cluster, 'dolt');

  async function withNode<T>(c: ClusterSpec, node: string, fn: (conn: mysql.Connection) => Promise<T>): Promise<T> {
    const target = mysqlTarget(c, node, env);
    const conn = await connect(target);
    try {
      return await fn(conn);
    } catch (e) {
      throw classifyMysqlError(e, target);
    } finally {
      conn.destroy();
    }
  }

  async function probeOne(c: ClusterSpec, node: string): Promise<DoltNodeProbe> {
    const n = c.nodes.find((x) => x.id === node);
    if (!n) throw new HandoverError(ErrorType.UnknownNode, `cluster ${c.name} has no node ${node}`);
    try {
      return await withDeadline(
        withNode(c, node, (conn) => readDoltNode(conn, c, node)),
        deps.probeTimeoutMs ?? 8_000,
      );
    } catch (e) {
      if (e instanceof HandoverError) throw e; // wrong credentials, missing grant or secret: never "unreachable"
      return { node: n.id, address: `${n.host}:${n.port}`, promotion: n.promotion as Promotion, reachable: false, error: (e as Error).message.split('\n')[0] };
    }
  }

  const probeAll = (c: ClusterSpec) => Promise.all(c.nodes.map((n) => probeOne(c, n.id)));

  return { env, spec, withNode, probeOne, probeAll };
}
