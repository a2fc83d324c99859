/** Where a cluster stands (core/standing.ts), formatted once for every runbook's ending. */
import type { ClusterStanding } from '../core/standing';

/** `what`: what stands (a Redis Cluster shard: "shard 0-5460"); the cluster by default. */
export function standingLines(s: ClusterStanding | undefined, what = 'it'): string[] {
  if (!s) return [];
  if (!s.primary) return [`  where ${what} stands: NO SINGLE PRIMARY`, ...s.notFollowing.map((n) => `    ${n.node}: ${n.reason}`)];
  return [
    `  where ${what} stands: primary ${s.primary}${s.changed ? ` (was ${s.previousPrimary})` : ''}`,
    `    following ${s.primary}: ${s.following.length ? s.following.join(', ') : 'none'}`,
    ...s.notFollowing.map((n) => `    NOT following: ${n.node}: ${n.reason}`),
  ];
}
