/**
 * The MySQL/MariaDB node layer every MySQL activity module shares: the activity dependencies, reading one node
 * (read_only, GTID positions and state, replication threads and source, the automation user's missing
 * privileges), probing a cluster (errant GTIDs relative to its primary), and connections per node from the
 * worker's inventory (activities/mysql/conn.ts). Reads only: nothing here changes a server.
 */
import type mysql from 'mysql2/promise';
import { HandoverError } from '../../core/errors';
import { appliedPos, errantOf, findMysqlPrimary, normalizeGtidPos, type MysqlNodeProbe } from '../../core/mysql/decide';
import { missingMysqlPrivileges } from '../../core/mysql/privileges';
import type { Promotion } from '../../core/types';
import type { ClusterSpec, Inventory } from '../../inventory/schema';
import { withDeadline } from '../activity';
import { flavorOf, type MysqlFlavor } from './flavor';
import { classifyMysqlError, connectMysql as defaultConnect, mysqlClusterSpec, mysqlNodeAt, mysqlTarget, type MysqlConnect } from './conn';

export interface MysqlActivityDeps {
  inventory: () => Inventory;
  connectMysql?: MysqlConnect;
  env?: NodeJS.ProcessEnv;
  /** Fault injection for tests: called at named points, a no-op in production. */
  failpoint?: (name: string) => void | Promise<void>;
  /** A probe of one node that takes longer is reported unreachable ("timeout after N ms"): `handover status`. */
  probeTimeoutMs?: number;
}

/** Read queries carry a client-side timeout, so a frozen (SIGSTOPped) server cannot hang a probe. */
export const READ_TIMEOUT_MS = 5_000;

export type Row = Record<string, unknown>;

export async function rows(conn: mysql.Connection, sql: string, params: unknown[] = [], timeout?: number): Promise<Row[]> {
  const [r] = await conn.query({ sql, values: params, timeout });
  return r as Row[];
}

/** What one node is: read_only, GTID positions, replication threads and source. Never mutates. */
export async function readMysqlNode(conn: mysql.Connection, cluster: ClusterSpec, flavor: MysqlFlavor, nodeId: string): Promise<MysqlNodeProbe> {
  const n = cluster.nodes.find((x) => x.id === nodeId)!;
  const st = flavor.parseState((await rows(conn, flavor.readState, [], READ_TIMEOUT_MS))[0]);
  const rs = flavor.parseReplicaStatus(await rows(conn, flavor.replicaStatus, [], READ_TIMEOUT_MS));
  const probe: MysqlNodeProbe = {
    node: n.id,
    address: `${n.host}:${n.port}`,
    promotion: n.promotion as Promotion,
    reachable: true,
    role: rs ? 'replica' : 'primary',
    readOnly: st.readOnly || st.superReadOnly,
    serverId: st.serverId,
    version: st.version,
    gtidBinlogPos: normalizeGtidPos(st.gtid.binlog),
    gtidCurrentPos: normalizeGtidPos(st.gtid.current),
    gtidSlavePos: normalizeGtidPos(st.gtid.slave),
    gtidBinlogState: st.gtid.binlogState,
    ...(st.startedAt !== undefined ? { startedAt: st.startedAt } : {}),
    ...(st.innodbLsn !== undefined ? { innodbLsn: st.innodbLsn } : {}),
  };
  if (flavor.readOnlyOrigin) {
    const o = (await rows(conn, flavor.readOnlyOrigin, [], READ_TIMEOUT_MS))[0];
    if (o?.origin) Object.assign(probe, { readOnlyOrigin: String(o.origin), ...(o.path ? { readOnlyOriginPath: String(o.path) } : {}) });
  }
  if (rs) {
    probe.sourceAddress = `${rs.sourceHost}:${rs.sourcePort}`;
    probe.sourceNode = mysqlNodeAt(cluster, rs.sourceHost, rs.sourcePort);
    probe.ioRunning = rs.ioRunning;
    probe.sqlRunning = rs.sqlRunning;
    probe.secondsBehind = rs.secondsBehind;
    probe.sqlDelay = rs.sqlDelay;
    probe.usingGtid = rs.usingGtid;
    probe.sourceSsl = rs.sslAllowed;
    probe.lastError = rs.lastSqlError || rs.lastIoError || undefined;
  }
  return probe;
}

/**
 * The privileges the automation user lacks on this node (MariaDB: its own SHOW GRANTS, of which only the
 * privilege names are read), or undefined when it lacks none or the flavor's privileges are not modelled.
 */
export async function readMissingPrivileges(conn: mysql.Connection, cluster: ClusterSpec): Promise<string[] | undefined> {
  if (flavorOf(cluster.flavor).name !== 'mariadb') return undefined;
  const lines = (await rows(conn, 'SHOW GRANTS', [], READ_TIMEOUT_MS)).map((r) => String(Object.values(r)[0] ?? ''));
  const missing = missingMysqlPrivileges(lines, { fenceBound: cluster.policy.fenceBoundMs > 0 });
  return missing.length ? missing : undefined;
}

/** Fill in each node's errant GTIDs relative to the cluster's single writable primary, when there is one. */
function markErrant(nodes: MysqlNodeProbe[]): MysqlNodeProbe[] {
  const found = findMysqlPrimary(nodes);
  if ('refusal' in found) return nodes;
  for (const n of nodes) if (n.reachable && n.node !== found.primary.node) n.errantGtids = errantOf(n, found.primary);
  return nodes;
}

export const describeMysqlNode = (p: MysqlNodeProbe) =>
  !p.reachable
    ? `${p.node} unreachable`
    : p.role === 'replica'
      ? `${p.node} replica of ${p.sourceNode ?? p.sourceAddress} (io ${p.ioRunning}, sql ${p.sqlRunning ? 'Yes' : 'No'}) ${p.readOnly ? 'read-only' : 'WRITABLE'} at ${appliedPos(p) || 'empty'}`
      : `${p.node} primary ${p.readOnly ? 'read-only' : 'writable'} at ${p.gtidBinlogPos || 'empty'}`;

export function mysqlOps(deps: MysqlActivityDeps) {
  const env = deps.env ?? process.env;
  const connect = deps.connectMysql ?? defaultConnect;
  const spec = (cluster: string) => mysqlClusterSpec(deps.inventory(), cluster);
  const flavor = (c: ClusterSpec) => flavorOf(c.flavor);

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

  async function probeOne(c: ClusterSpec, node: string): Promise<MysqlNodeProbe> {
    const n = c.nodes.find((x) => x.id === node)!;
    try {
      return await withDeadline(
        withNode(c, node, async (conn) => {
          const probe = await readMysqlNode(conn, c, flavor(c), node);
          probe.missingPrivileges = await readMissingPrivileges(conn, c);
          return probe;
        }),
        deps.probeTimeoutMs,
      );
    } catch (e) {
      if (e instanceof HandoverError) throw e; // wrong credentials, missing grant or secret: never "unreachable"
      return { node: n.id, address: `${n.host}:${n.port}`, promotion: n.promotion as Promotion, reachable: false, error: (e as Error).message };
    }
  }

  /**
   * Probe every node, then read the node(s) replicating from nobody once more, after every replica was read.
   * Under writes a replica read after its primary can be ahead of that earlier read, which would look like an
   * errant GTID; anything a replica has came from its primary before the replica was read, so the primary's
   * second read includes it. (Found by the switchover test under a continuous writer.)
   */
  async function probeAll(c: ClusterSpec): Promise<MysqlNodeProbe[]> {
    const nodes = await Promise.all(c.nodes.map((n) => probeOne(c, n.id)));
    const again = await Promise.all(nodes.map((n) => (n.reachable && n.role === 'primary' ? probeOne(c, n.node) : Promise.resolve(n))));
    return markErrant(again.map((n, i) => (n.reachable ? n : nodes[i])));
  }

  return { env, spec, flavor, withNode, probeOne, probeAll };
}
