/**
 * Rolling restart decisions for Dolt, both topologies (sql-server cluster mode; read replicas through a remote).
 * Pure, like core/rolling.ts: the workflow re-probes before every action and asks `nextDoltRollingAction` what
 * comes next, so a re-run continues with the stale nodes only and a finished roll changes nothing.
 *
 * A node is stale when a listed system variable differs (`--set`, written into its sql-server config by the
 * controller) or, with `--reason` / `--restart-all`, when its server started before the roll. Replicas
 * (standbys, read replicas) first, one at a time, each back and following before the next; then the primary is
 * handed over by the engine's switchover (a child run) to a current replica; then the old primary, by then a
 * replica, is restarted.
 */
import { whyRestartDue, type DesiredSpec, type RollingAction } from '../rolling';
import type { Promotion } from '../types';

/** What a roll needs to know of one Dolt node, whatever the topology. */
export interface DoltSpecProbe {
  node: string;
  reachable: boolean;
  error?: string;
  promotion?: Promotion;
  /** 'primary': the one writable node; 'replica': a standby (cluster mode) or a read replica of the remote. */
  role?: 'primary' | 'replica' | 'other';
  /** Cluster mode: the role's epoch. */
  epoch?: number;
  /** When the server started (epoch seconds: UNIX_TIMESTAMP() - @@uptime). */
  startedAt?: number;
  /** System variable -> value as the server reports it (undefined: no such variable). */
  config?: Record<string, string | undefined>;
  /** A replica: it follows the primary and is caught up (cluster mode: a standby at the primary's epoch, the primary's pushes to it without error within the lag limit; remote: commit distance 0). */
  following?: boolean;
  /** Why it does not follow, or how far behind it is. */
  followDetail?: string;
}

const sameValue = (have: string | undefined, want: string) => have !== undefined && have.toLowerCase() === want.toLowerCase();

/** Why a node differs from the desired spec, or undefined when it is current. */
export function whyDoltStale(n: DoltSpecProbe, desired: DesiredSpec): string | undefined {
  const diffs: string[] = [];
  const due = whyRestartDue(n.startedAt === undefined ? undefined : n.startedAt * 1000, desired, n.node);
  if (due) diffs.push(due);
  for (const [k, v] of Object.entries(desired.config)) if (!sameValue(n.config?.[k], v)) diffs.push(`${k}=${n.config?.[k] ?? '(unknown variable)'}, wanted ${v}`);
  return diffs.length ? diffs.join('; ') : undefined;
}

/**
 * The next step: every node reachable, exactly one primary, a replica following it; stale replicas first in
 * name order (a stale replica is not restarted while it is the last following one and the primary is stale
 * too); then a handover to a current, following replica (`prefer` first, never `never`); then done.
 */
export function nextDoltRollingAction(nodes: DoltSpecProbe[], desired: DesiredSpec): RollingAction {
  const down = nodes.filter((n) => !n.reachable);
  if (down.length) return { kind: 'refuse', code: 'NodeDown', reason: `${down.map((n) => `${n.node} unreachable${n.error ? ` (${n.error})` : ''}`).join('; ')}; a rolling restart needs every node up` };
  const primaries = nodes.filter((n) => n.role === 'primary');
  if (primaries.length !== 1)
    return { kind: 'refuse', code: 'UnexpectedTopology', reason: primaries.length ? `${primaries.length} primaries (${primaries.map((p) => p.node).join(', ')})` : 'no primary' };
  const primary = primaries[0];
  const replicas = nodes.filter((n) => n !== primary);
  const other = replicas.filter((n) => n.role !== 'replica');
  if (other.length) return { kind: 'refuse', code: 'UnexpectedTopology', reason: `${other.map((n) => n.node).join(', ')} neither primary nor replica` };
  const following = (n: DoltSpecProbe) => n.role === 'replica' && !!n.following;
  if (!replicas.some(following))
    return { kind: 'refuse', code: 'NoHealthyReplica', reason: `no replica follows ${primary.node} caught up (${replicas.map((n) => `${n.node}: ${n.followDetail ?? 'not following'}`).join('; ')})` };

  const stale = replicas.filter((n) => whyDoltStale(n, desired)).sort((a, b) => (a.node < b.node ? -1 : 1));
  const primaryStale = whyDoltStale(primary, desired);
  if (stale.length) {
    const r = stale[0];
    if (primaryStale && replicas.length > 1 && !replicas.some((n) => n !== r && following(n)))
      return { kind: 'refuse', code: 'LastInSyncReplica', reason: `${r.node} is the last replica following ${primary.node}, which is stale too; refusing to restart it` };
    return { kind: 'restart', node: r.node, role: 'replica', runId: String(r.startedAt ?? ''), primary: primary.node, reason: whyDoltStale(r, desired)! };
  }
  if (primaryStale) {
    const eligible = replicas.filter((n) => following(n) && n.promotion !== 'never' && !whyDoltStale(n, desired)).sort((a, b) => (a.node < b.node ? -1 : 1));
    const to = eligible.find((n) => n.promotion === 'prefer') ?? eligible[0];
    if (!to) return { kind: 'refuse', code: 'NoEligibleCandidate', reason: `primary ${primary.node} is stale (${primaryStale}) but no current replica may take over (${replicas.map((n) => `${n.node}: ${n.promotion === 'never' ? 'promotion: never' : n.followDetail ?? 'not following'}`).join('; ')})` };
    return { kind: 'handover', from: primary.node, to: to.node, reason: primaryStale };
  }
  return { kind: 'done' };
}
