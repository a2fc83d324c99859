/** Where a cluster stands (core/standing.ts), formatted once for every runbook's ending. */
import type { ClusterStanding } from '../core/standing';

export function standingLines(s: ClusterStanding | undefined): string[] {
  if (!s) return [];
  if (!s.primary) return [`  where it stands: NO SINGLE PRIMARY`, ...s.notFollowing.map((n) => `    ${n.node}: ${n.reason}`)];
  return [
    `  where it stands: primary ${s.primary}${s.changed ? ` (was ${s.previousPrimary})` : ''}`,
    `    following ${s.primary}: ${s.following.length ? s.following.join(', ') : 'none'}`,
    ...s.notFollowing.map((n) => `    NOT following: ${n.node}: ${n.reason}`),
  ];
}
