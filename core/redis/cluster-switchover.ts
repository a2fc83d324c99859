/**
 * Planned switchover of one Redis Cluster shard (pure): which shard `--shard` names (a node of it, or a slot
 * it serves), and which of its replicas takes over (the named replica, `--to`, or the most advanced in-sync,
 * promotable one). The runbook then issues CLUSTER FAILOVER on that replica (a coordinated, lossless handover
 * the cluster itself runs) and waits until every node's CLUSTER NODES agrees.
 */
import { lagBytes } from './decide';
import type { SpecProbe } from './rolling';

export interface ClusterShardDecision {
  primary: string;
  candidate: string;
  /** The slots the shard serves, as CLUSTER NODES prints them ("0-5460"). */
  slots: string;
  /** The shard's other replicas (they follow the new primary by themselves). */
  others: string[];
  reasons: string[];
}

export type ClusterShardRefusal = { code: string; message: string };

/** Whether a CLUSTER NODES slot list ("0-5460 10923 [123->-abc]") serves `slot`. */
export function slotsInclude(slots: string | undefined, slot: number): boolean {
  for (const part of (slots ?? '').split(' ')) {
    if (!part || part.startsWith('[')) continue;
    const [a, b] = part.split('-').map(Number);
    if (slot >= a && slot <= (b ?? a)) return true;
  }
  return false;
}

export function decideClusterShardSwitchover(
  nodes: SpecProbe[],
  o: { shard: string; to?: string; maxLagBytes: number },
): { ok: true; decision: ClusterShardDecision } | { ok: false; refusal: ClusterShardRefusal } {
  const refuse = (code: string, message: string) => ({ ok: false as const, refusal: { code, message } });
  const byId = new Map(nodes.map((n) => [n.node, n]));
  let primary: SpecProbe | undefined;
  let named: SpecProbe | undefined;
  if (/^\d+$/.test(o.shard)) {
    const slot = Number(o.shard);
    if (slot > 16383) return refuse('UnknownShard', `--shard ${o.shard}: a slot is 0-16383`);
    const serving = nodes.filter((n) => n.reachable && n.role === 'primary' && slotsInclude(n.slots, slot));
    if (serving.length !== 1) return refuse('UnknownShard', `--shard ${o.shard}: ${serving.length === 0 ? 'no reachable primary serves slot' : `several primaries claim slot`} ${slot}${serving.length ? ` (${serving.map((n) => n.node).join(', ')})` : ''}`);
    primary = serving[0];
  } else {
    named = byId.get(o.shard);
    if (!named) return refuse('UnknownShard', `--shard ${o.shard}: no such node (nodes: ${nodes.map((n) => n.node).join(', ')}) and not a slot number`);
    if (!named.reachable) return refuse('NodeDown', `--shard ${o.shard}: ${named.node} is unreachable`);
    primary = named.role === 'primary' ? named : byId.get(named.primaryNode ?? '');
    if (!primary) return refuse('NotReplicaOfPrimary', `--shard ${o.shard}: ${named.node} replicates from ${named.primaryNode ?? 'nothing'}, not a node of the inventory`);
  }
  if (!primary.reachable || primary.role !== 'primary') return refuse('NodeDown', `the shard's primary ${primary.node} is not a reachable primary: a dead primary is a failover (handover failover --cluster … --shard …)`);
  const notOk = nodes.filter((n) => n.reachable && n.clusterOk === false);
  if (notOk.length) return refuse('ClusterNotOk', `cluster_state is not ok on ${notOk.map((n) => n.node).join(', ')}`);
  const replicas = nodes.filter((n) => n.reachable && n.role === 'replica' && n.primaryNode === primary!.node);
  const inSync = (r: SpecProbe) => r.linkUp === true && lagBytes(r, primary!) <= o.maxLagBytes;
  const wanted = o.to ?? (named && named.node !== primary.node ? named.node : undefined);
  let candidate: SpecProbe | undefined;
  const reasons: string[] = [];
  if (wanted) {
    candidate = replicas.find((r) => r.node === wanted);
    if (!candidate) return refuse('NotReplicaOfPrimary', `${wanted} is not a reachable replica of ${primary.node} (its replicas: ${replicas.map((r) => r.node).join(', ') || 'none'})`);
    if (!inSync(candidate)) return refuse('CandidateLagging', `${wanted} is not in sync with ${primary.node} (link ${candidate.linkUp ? 'up' : 'down'}, ${lagBytes(candidate, primary)} bytes behind, limit ${o.maxLagBytes})`);
    reasons.push(`named (${o.to ? '--to' : '--shard'})`);
  } else {
    const eligible = replicas.filter((r) => inSync(r) && r.promotion !== 'never').sort((a, b) => (b.offset ?? 0) - (a.offset ?? 0) || (a.promotion === 'prefer' ? -1 : 0) - (b.promotion === 'prefer' ? -1 : 0) || (a.node < b.node ? -1 : 1));
    if (!eligible.length) return refuse('NoEligibleCandidate', `no replica of ${primary.node} is linked, in sync and promotable (replicas: ${replicas.map((r) => r.node).join(', ') || 'none'})`);
    candidate = eligible[0];
    reasons.push('the most advanced linked, in-sync, promotable replica');
  }
  reasons.push(`offset ${candidate.offset ?? 0} of ${primary.offset ?? 0}`);
  return { ok: true, decision: { primary: primary.node, candidate: candidate.node, slots: primary.slots ?? '', others: replicas.filter((r) => r.node !== candidate!.node).map((r) => r.node), reasons } };
}
