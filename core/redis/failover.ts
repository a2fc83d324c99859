/**
 * Unplanned failover decisions for Redis/Valkey. Pure.
 *  - A primary is dead only when it is unreachable AND every reachable replica reports its link down
 *    (orchestrator's DeadMaster rule), for N consecutive probes (core/failover.ts confirmedDead).
 *  - The candidate is the most advanced reachable replica, honouring promotion rules.
 */
import type { RedisNodeProbe } from '../types';
import type { Verdict } from '../failover';

/** One probe round's view of the primary `primary` (the last known one). */
export function deadMasterRound(nodes: RedisNodeProbe[], primary: string): Verdict {
  const p = nodes.find((n) => n.node === primary);
  if (!p) return { dead: false, reason: `unknown primary ${primary}` };
  if (p.reachable && p.role === 'primary') return { dead: false, reason: `${primary} answers as primary` };
  const replicas = nodes.filter((n) => n.node !== primary && n.reachable && n.role === 'replica' && n.primaryNode === primary);
  const linked = replicas.filter((n) => n.linkUp);
  if (linked.length) return { dead: false, reason: `${linked.map((n) => n.node).join(', ')} still linked to ${primary}` };
  if (!replicas.length) return { dead: false, reason: `no reachable replica of ${primary} to confirm it is dead` };
  return { dead: true, primary, reason: `${primary} ${p.reachable ? `answers as ${p.role}` : 'unreachable'} and all ${replicas.length} reachable replicas report the link down` };
}

export interface FailoverChoice {
  candidate: string;
  candidateOffset: number;
  followers: string[];
  reasons: string[];
}

/** The most advanced reachable replica of the dead primary; ties by promotion rule then name. */
export function chooseFailoverCandidate(nodes: RedisNodeProbe[], deadPrimary: string): FailoverChoice | { refusal: string } {
  const rank = { prefer: 0, neutral: 1, never: 2 } as const;
  const replicas = nodes.filter((n) => n.node !== deadPrimary && n.reachable && n.role === 'replica');
  const eligible = replicas.filter((n) => n.promotion !== 'never');
  if (!eligible.length) return { refusal: `no reachable, promotable replica of ${deadPrimary} (reachable replicas: ${replicas.map((n) => n.node).join(', ') || 'none'})` };
  const anyData = replicas.some((n) => (n.dbsize ?? 0) > 0);
  const withData = anyData ? eligible.filter((n) => (n.dbsize ?? 0) > 0) : eligible;
  if (!withData.length) return { refusal: 'every promotable replica is empty while another replica holds data' };
  withData.sort((a, b) => (b.offset ?? 0) - (a.offset ?? 0) || rank[a.promotion] - rank[b.promotion] || (a.node < b.node ? -1 : 1));
  const c = withData[0];
  return {
    candidate: c.node,
    candidateOffset: c.offset ?? 0,
    followers: nodes.filter((n) => n.node !== c.node && n.node !== deadPrimary).map((n) => n.node).sort(),
    reasons: [`most advanced reachable replica (offset ${c.offset})`, `promotion: ${c.promotion}`, `${c.dbsize ?? 0} keys`],
  };
}
