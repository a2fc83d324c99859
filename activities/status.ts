/**
 * `handover status` and the inventory check, on the worker: the databases are read here, with the worker's
 * inventory and secrets, so the CLI needs Temporal alone. Read-only.
 *   readClusterStatus   every node of each cluster asked about probed in parallel (a node that has not answered
 *                       within STATUS_PROBE_TIMEOUT_MS shows as a timeout), with each cluster's shape
 *                       (inventory/shape.ts) for the CLI to compare with its own file
 * probeClusterStatus is also what the CLI runs itself when it reads the databases directly (`status --direct`,
 * or Temporal unreachable).
 */
import { HandoverError } from '../core/errors';
import { doltClusterStatus, doltRemoteStatus, mysqlClusterStatus, redisClusterStatus, type ClusterStatus } from '../core/status';
import { findCluster } from '../inventory/load';
import type { ClusterSpec, Inventory } from '../inventory/schema';
import { clusterShape, type ClusterShape } from '../inventory/shape';
import { redisOps, type RedisActivityDeps } from './redis/node';
import { connectRedis as defaultConnectRedis } from './redis/conn';
import { mysqlOps } from './mysql/node';
import { doltOps } from './dolt/node';
import { doltRemoteOps } from './dolt/remote';
import type { MysqlConnect } from './mysql/conn';
import { toFailure, withDeadline } from './activity';
import { isLoopback, mysqlPendingRestart, redisPendingRestart } from './pending-restart';

/** Every node is probed in parallel; one that has not answered within this is shown as a timeout. */
export const STATUS_PROBE_TIMEOUT_MS = 2_500;

export interface StatusDeps {
  inventory: () => Inventory;
  connectRedis?: RedisActivityDeps['connectRedis'];
  connectMysql?: MysqlConnect;
  env?: NodeJS.ProcessEnv;
}

export interface ReadClusterStatusResult {
  /** Empty with probe: false. */
  clusters: ClusterStatus[];
  /** Each cluster's definition as this worker loaded it. */
  shapes: Record<string, ClusterShape>;
}

/** One cluster's status, every node probed in parallel; a missing secret or a refused login is the cluster's `error`. */
export async function probeClusterStatus(deps: StatusDeps, c: ClusterSpec): Promise<ClusterStatus> {
  const base = { inventory: deps.inventory, env: deps.env, probeTimeoutMs: STATUS_PROBE_TIMEOUT_MS };
  try {
    if (c.engine === 'dolt' && c.topology === 'remote-replicas')
      return doltRemoteStatus(c.name, c.replicationRemote ?? '', await doltRemoteOps({ ...base, connectMysql: deps.connectMysql }).probeAll(c as typeof c & { replicationRemote: string }));
    if (c.engine === 'dolt') return doltClusterStatus(c.name, await doltOps({ ...base, connectMysql: deps.connectMysql }).probeAll(c));
    if (c.engine === 'mysql') {
      const ops = mysqlOps({ ...base, connectMysql: deps.connectMysql });
      const s = mysqlClusterStatus(c.name, await ops.probeAll(c));
      const optionFile = (node: string) => (c.controller?.type === 'local' && !c.controller.configFile.includes('{version}') ? c.controller.configFile.replaceAll('{node}', node) : undefined);
      await pendingRestarts(c, s, (n, host) => ops.withNode(c, n, (conn) => mysqlPendingRestart(conn, host, optionFile(n))));
      return s;
    }
    const ops = redisOps({ ...base, connectRedis: deps.connectRedis ?? defaultConnectRedis });
    const s = redisClusterStatus(c.name, c.topology, await ops.probeAllWithPermissions(c), {
      autoRestart: c.controller?.autoRestart,
      detectionWindowMs: c.policy.probeIntervalMs * c.policy.probesToConfirm,
    });
    await pendingRestarts(c, s, (n, host) => ops.withNode(c, n, (cl) => redisPendingRestart(cl, host)));
    return s;
  } catch (e) {
    // A missing secret or a refused login: say which reference, move on to the next cluster.
    return { cluster: c.name, engine: c.engine, topology: c.topology, primaries: [], nodes: [], problems: [], error: e instanceof HandoverError ? `${e.type}: ${e.message}` : (e as Error).message };
  }
}

/**
 * Each reachable node's pending restart (core/pending-restart.ts), in parallel, each within the status deadline;
 * only nodes on this host (loopback) can be read, the others stay unknown. A failure leaves the node unknown.
 */
async function pendingRestarts(c: ClusterSpec, s: ClusterStatus, read: (node: string, host: string) => Promise<string[] | undefined>): Promise<void> {
  await Promise.all(
    s.nodes.map(async (n) => {
      const host = c.nodes.find((x) => x.id === n.node)?.host ?? '';
      if (!n.reachable || !isLoopback(host)) return;
      const r = await withDeadline(read(n.node, host), STATUS_PROBE_TIMEOUT_MS).catch(() => undefined);
      if (r) n.pendingRestart = r;
    }),
  );
}

export function createStatusActivities(deps: StatusDeps) {
  return {
    /** The clusters asked about (all without `cluster`), probed unless probe is false, with their shapes. UnknownCluster if absent. */
    async readClusterStatus({ cluster, probe = true }: { cluster?: string; probe?: boolean }): Promise<ReadClusterStatusResult> {
      try {
        const inv = deps.inventory();
        const specs = cluster ? [findCluster(inv, cluster)] : inv.clusters;
        const clusters = probe ? await Promise.all(specs.map((c) => probeClusterStatus(deps, c))) : [];
        return { clusters, shapes: Object.fromEntries(specs.map((c) => [c.name, clusterShape(c)])) };
      } catch (e) {
        throw toFailure(e);
      }
    },
  };
}
