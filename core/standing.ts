/**
 * Where a cluster stands at the end of a runbook, whatever the engine and however the run ended: the primary
 * now (and whether the run changed it), the nodes that follow it, and those that do not with why. Pure: built
 * from the engine's status summary (core/status.ts), which is built from the same probes the runbooks take.
 * Workflows put it in their report, or in the details of a failure after the point of no return; the CLI
 * formats it once (client/standing.ts).
 */
import type { ClusterStatus } from './status';

export interface NotFollowing {
  node: string;
  reason: string;
}

export interface ClusterStanding {
  /** The primary now; undefined when no single primary could be seen. */
  primary?: string;
  /** The primary before the run, when the run changed it. */
  previousPrimary?: string;
  /** Whether the primary role moved during the run. */
  changed: boolean;
  /** Nodes replicating from the primary with their link up. */
  following: string[];
  /** Every other node (not the primary), each with why it does not follow. */
  notFollowing: NotFollowing[];
}

/**
 * The nodes that will not (or do not) follow a primary, each with why: unreachable, replication link down (a
 * wrong masterauth or replication password shows as that, or the network), threads stopped, replicating from
 * another node. `except` (the primary and a chosen candidate) are left out: the decision judges those itself.
 * With `primary` given, a replica linked to another node counts as not following it.
 */
export function nodesNotFollowing(c: ClusterStatus, except: string[] = [], primary?: string): NotFollowing[] {
  const out: NotFollowing[] = [];
  for (const n of c.nodes) {
    if (except.includes(n.node) || (primary === undefined && c.primaries.includes(n.node)) || n.node === primary) continue;
    if (!n.reachable) out.push({ node: n.node, reason: `unreachable${n.error ? ` (${n.error})` : ''}` });
    else if (primary !== undefined && n.role === 'primary') out.push({ node: n.node, reason: n.readOnly === true ? 'it replicates from nobody (standalone, read-only)' : 'it is a primary itself' });
    // Neither primary nor replica (a Dolt remote node left fenced or misconfigured): position says which.
    else if (primary !== undefined && n.role === undefined) out.push({ node: n.node, reason: `neither a primary nor a replica${n.position ? ` (${n.position})` : ''}` });
    // A Dolt read replica whose history no longer contains its primary's head: not a link, it diverged.
    else if (n.role === 'replica' && n.lagCommits === null) out.push({ node: n.node, reason: `it has diverged from ${n.replicaOf ?? 'its primary'} (its head is not in the primary's history)` });
    else if (n.role === 'replica' && n.linkUp === false) out.push({ node: n.node, reason: `its replication link to ${n.replicaOf ?? '?'} is down (${n.link}; wrong replication credentials, or the network)` });
    else if (primary !== undefined && n.role === 'replica' && n.replicaOf !== primary) out.push({ node: n.node, reason: `it replicates from ${n.replicaOf ?? 'nowhere'}, not from ${primary}` });
  }
  return out;
}

/** The standing of a cluster, from one status look, relative to the primary the run meant to leave (`expected`). */
export function standingOf(c: ClusterStatus, opts: { expected?: string; previousPrimary?: string } = {}): ClusterStanding {
  const primary = c.primaries.length === 1 ? c.primaries[0] : opts.expected && c.primaries.includes(opts.expected) ? opts.expected : undefined;
  const notFollowing = primary ? nodesNotFollowing(c, [], primary) : c.nodes.map((n) => ({ node: n.node, reason: c.primaries.length ? `${c.primaries.length} primaries: ${c.primaries.join(', ')}` : withoutPrimary(n) }));
  const following = primary ? c.nodes.filter((n) => n.node !== primary && !notFollowing.some((x) => x.node === n.node)).map((n) => n.node) : [];
  const changed = !!(primary && opts.previousPrimary && primary !== opts.previousPrimary);
  return { primary, ...(changed ? { previousPrimary: opts.previousPrimary } : {}), changed, following, notFollowing };
}

/** A node's state when the cluster has no primary: unreachable, or whom it (still) replicates from. */
function withoutPrimary(n: ClusterStatus['nodes'][number]): string {
  if (!n.reachable) return `unreachable${n.error ? ` (${n.error})` : ''}`;
  if (n.role === 'replica') return `no primary; a replica of ${n.replicaOf ?? 'nowhere'}${n.link ? `, link ${n.link}` : ''}`;
  return n.readOnly === true ? 'no primary; read-only, replicating from nowhere' : 'no primary';
}

/**
 * Where one shard of a Redis Cluster stands: the status cut down to the shard's nodes, so the other shards'
 * primaries do not count. The shard is `seeds` (its primary and replicas as the run knew them: the old primary,
 * the new one) and every node that replicates from one of them now.
 */
export function shardStandingOf(c: ClusterStatus, seeds: string[], opts: { expected?: string; previousPrimary?: string } = {}): ClusterStanding {
  const members = new Set(seeds);
  for (const n of c.nodes) if (n.role === 'replica' && n.replicaOf && seeds.includes(n.replicaOf)) members.add(n.node);
  return standingOf({ ...c, nodes: c.nodes.filter((n) => members.has(n.node)), primaries: c.primaries.filter((p) => members.has(p)) }, opts);
}

/**
 * The standing after a run whose last step verified `primary` with `verified` following it (no extra probe):
 * the nodes left out of verification (`left`, each with why) do not follow.
 */
export function standingAfterVerify(primary: string, previousPrimary: string | undefined, verified: string[], left: NotFollowing[]): ClusterStanding {
  const changed = previousPrimary !== undefined && previousPrimary !== primary;
  const following = verified.filter((n) => n !== primary && !left.some((l) => l.node === n));
  return { primary, ...(changed ? { previousPrimary } : {}), changed, following, notFollowing: left };
}

/** One line for failure messages: "the primary is now B (was A); following B: C; NOT following: D (why)". */
export function standingLine(s: ClusterStanding): string {
  if (!s.primary) return `no single primary could be seen (${s.notFollowing.map((n) => `${n.node}: ${n.reason}`).join('; ') || 'no nodes'})`;
  const head = s.changed ? `the primary is now ${s.primary} (was ${s.previousPrimary})` : `the primary is ${s.primary}`;
  const fol = `following ${s.primary}: ${s.following.length ? s.following.join(', ') : 'none'}`;
  const not = s.notFollowing.length ? `; NOT following: ${s.notFollowing.map((n) => `${n.node} (${n.reason})`).join('; ')}` : '';
  return `${head}; ${fol}${not}`;
}

/** The standing a failure after the point of no return carries in its details (first detail, `{ standing }`). */
export function standingFromDetails(details: unknown): ClusterStanding | undefined {
  const first = Array.isArray(details) ? (details[0] as { standing?: ClusterStanding } | undefined) : undefined;
  return first?.standing && typeof first.standing.changed === 'boolean' ? first.standing : undefined;
}
