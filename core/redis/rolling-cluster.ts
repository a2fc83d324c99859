/**
 * Rolling restart decisions for Redis Cluster (cluster-enabled, shards of one primary and its replicas).
 * Pure. Shard by shard, in slot order: the shard's stale replicas first, then CLUSTER FAILOVER to a current,
 * in-sync replica, then the old primary (by then a replica).
 */
import { lagBytes } from './decide';
import type { DesiredSpec, RollingAction } from '../rolling';
import { whyStale, type RollingOptions, type SpecProbe } from './rolling';

const firstSlot = (slots: string | undefined) => Number(/^(\d+)/.exec(slots ?? '')?.[1] ?? Number.MAX_SAFE_INTEGER);

export function nextClusterRollingAction(nodes: SpecProbe[], desired: DesiredSpec, opts: RollingOptions): RollingAction {
  const down = nodes.filter((n) => !n.reachable);
  if (down.length) return { kind: 'refuse', code: 'NodeDown', reason: `${down.map((n) => n.node).join(', ')} unreachable; a rolling restart needs every node up` };
  const notOk = nodes.filter((n) => n.clusterOk === false);
  if (notOk.length) return { kind: 'refuse', code: 'ClusterNotOk', reason: `cluster_state is not ok on ${notOk.map((n) => n.node).join(', ')}` };
  if (opts.autoRestart && nodes.some((n) => n.persistent === false))
    return { kind: 'refuse', code: 'UnsafePersistence', reason: `persistence is off and the node controller restarts nodes by itself: a primary that came back empty would wipe its replicas` };
  const primaries = nodes.filter((n) => n.role === 'primary').sort((a, b) => firstSlot(a.slots) - firstSlot(b.slots));
  const orphans = nodes.filter((n) => n.role === 'replica' && !primaries.some((p) => p.node === n.primaryNode));
  if (orphans.length) return { kind: 'refuse', code: 'NotReplicaOfPrimary', reason: `${orphans.map((n) => n.node).join(', ')} replicate from no primary in the inventory` };

  const shards = primaries.map((p) => ({ primary: p, replicas: nodes.filter((n) => n.primaryNode === p.node).sort((a, b) => (a.node < b.node ? -1 : 1)) }));
  const inSync = (r: SpecProbe, p: SpecProbe) => r.linkUp === true && lagBytes(r, p) <= opts.policy.maxLagBytes;
  for (const { primary, replicas } of shards) {
    if (!replicas.some((r) => inSync(r, primary)))
      return { kind: 'refuse', code: 'NoHealthyReplica', reason: `shard of ${primary.node} (slots ${primary.slots}) has no linked, in-sync replica` };
  }
  for (const { primary, replicas } of shards) {
    const primaryStale = whyStale(primary, desired);
    const stale = replicas.filter((r) => whyStale(r, desired));
    if (stale.length) {
      const r = stale[0];
      const othersInSync = replicas.filter((x) => x.node !== r.node && inSync(x, primary));
      if (primaryStale && othersInSync.length === 0 && replicas.length > 1)
        return { kind: 'refuse', code: 'LastInSyncReplica', reason: `${r.node} is the last in-sync replica of the stale primary ${primary.node}` };
      return { kind: 'restart', node: r.node, role: 'replica', runId: r.runId ?? '', primary: primary.node, reason: whyStale(r, desired)! };
    }
    if (primaryStale) {
      const fresh = replicas.filter((r) => inSync(r, primary) && r.promotion !== 'never' && !((primary.dbsize ?? 0) > 0 && (r.dbsize ?? 0) === 0));
      fresh.sort((a, b) => (b.offset ?? 0) - (a.offset ?? 0) || (a.node < b.node ? -1 : 1));
      if (!fresh.length) return { kind: 'refuse', code: 'NoEligibleCandidate', reason: `primary ${primary.node} is stale but none of its replicas is current, in sync and promotable` };
      return { kind: 'handover', from: primary.node, to: fresh[0].node, reason: primaryStale };
    }
  }
  return { kind: 'done' };
}
