/**
 * The returning-primary race, checked from configuration. Fencing a node that comes back always races its
 * start: between the moment it accepts connections and the monitor's next probe it may take writes. Only the
 * node's own configuration closes that race, so `plan`, `status` and the monitor flag a node whose
 * configuration would let it take writes when it restarts. Pure: probes in, flags out.
 *
 *  - MariaDB: read_only must be ON in its option files (or command line). information_schema.SYSTEM_VARIABLES
 *    says where the running value came from (GLOBAL_VALUE_ORIGIN): COMPILE-TIME (never set: it starts
 *    writable), CONFIG / COMMAND-LINE (the startup value), or SQL (changed at runtime, as every promotion does;
 *    the startup value is then no longer visible remotely). MariaDB has no SET PERSIST: nothing can persist
 *    read_only=ON from outside, so Handover can only flag it.
 *  - Redis/Valkey: a primary without min-replicas-to-write takes writes on restart until it is fenced; a node
 *    without a config file cannot persist its role (CONFIG REWRITE, which every Handover role change runs, is
 *    refused), so a restarted replica forgets its replicaof and comes back a primary.
 */
import type { MysqlNodeProbe } from './mysql/decide';
import type { RedisNodeProbe } from './types';

export interface RestartRisk {
  node: string;
  /** true: the configuration certainly lets it take writes on restart; false: it cannot be checked remotely. */
  certain: boolean;
  text: string;
}

const NO_PERSIST = 'MariaDB has no SET PERSIST, so Handover cannot write it there';

export function mysqlRestartRisks(nodes: MysqlNodeProbe[]): RestartRisk[] {
  const out: RestartRisk[] = [];
  for (const n of nodes) {
    if (!n.reachable || n.role !== 'primary' || n.readOnly !== false || !n.readOnlyOrigin) continue;
    const origin = n.readOnlyOrigin.toUpperCase();
    if (origin === 'COMPILE-TIME')
      out.push({ node: n.node, certain: true, text: `${n.node}: read_only is not set in its option files: restarted, it comes back WRITABLE beside the current primary until fenced; set read_only=ON in its config (${NO_PERSIST})` });
    else if (origin === 'CONFIG' || origin === 'COMMAND-LINE')
      out.push({ node: n.node, certain: true, text: `${n.node}: read_only=OFF ${origin === 'CONFIG' ? `in ${n.readOnlyOriginPath ?? 'its option files'}` : 'on its command line'}: restarted, it comes back WRITABLE until fenced; set read_only=ON there (${NO_PERSIST})` });
    else
      out.push({ node: n.node, certain: false, text: `${n.node}: read_only was last set at runtime (${origin}); whether its option files set read_only=ON cannot be read remotely and ${NO_PERSIST}: make sure they do, or a restart brings it back writable` });
  }
  return out;
}

/** How the inventory's controller restarts a crashed node, for the empty-primary risk. */
export interface ControllerView {
  /** controller.autoRestart: a service manager (systemd Restart=, Kubernetes) restarts a crashed node by itself. */
  autoRestart?: boolean;
  /** The monitor's detection window (probeIntervalMs x probesToConfirm). */
  detectionWindowMs?: number;
}

/** The empty-primary risk (core/empty-primary.ts): a primary without persistence that its controller restarts by itself. */
export function emptyPrimaryRisk(n: RedisNodeProbe, c: ControllerView): RestartRisk | undefined {
  if (!n.reachable || n.role !== 'primary' || n.persistent !== false || !c.autoRestart) return undefined;
  const window = c.detectionWindowMs !== undefined ? ` (${c.detectionWindowMs} ms here)` : '';
  return {
    node: n.node,
    certain: true,
    text: `${n.node} is a primary with persistence OFF (save "", appendonly no) and its controller restarts it by itself (autoRestart): restarted faster than the detection window${window} it comes back EMPTY, still primary, and its replicas resync from it: the data is gone before any monitor can act; turn on persistence (appendonly yes or a save schedule) or autoRestart off`,
  };
}

/** `topology` cluster: Redis Cluster turns a returning master into a replica itself (the bus), so min-replicas is not asked for. */
export function redisRestartRisks(nodes: RedisNodeProbe[], topology = 'replication', controller: ControllerView = {}): RestartRisk[] {
  const out: RestartRisk[] = [];
  for (const n of nodes) {
    if (!n.reachable) continue;
    const empty = emptyPrimaryRisk(n, controller);
    if (empty) out.push(empty);
    if (n.configFile === '')
      out.push({
        node: n.node,
        certain: true,
        text: `${n.node} runs without a config file: CONFIG REWRITE cannot persist its role${n.role === 'replica' ? ', so restarted it forgets replicaof and comes back a PRIMARY' : ' or settings'}`,
      });
    if (topology !== 'cluster' && n.role === 'primary' && n.minReplicasToWrite === false)
      out.push({ node: n.node, certain: true, text: `${n.node} has min-replicas-to-write 0: restarted beside a new primary, it takes writes until fenced; set min-replicas-to-write 1 (and min-replicas-max-lag) in its config` });
  }
  return out;
}

/** "! text" for a certain risk, "? text" for one that cannot be checked. */
export const riskLine = (r: RestartRisk) => `${r.certain ? '!' : '?'} restart risk: ${r.text}`;
