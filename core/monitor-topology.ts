/**
 * What the monitor believes the primary is, decided from the fleet each probe round and not from memory alone.
 * Pure: no I/O, no clock; the same rule for every engine once each node is reduced to a TopoNode.
 *
 * The fleet "clearly has" a primary when one reachable node replicating from nobody takes writes and every
 * reachable replica follows it (directly or through other replicas). Replicas follow the real primary: an old
 * primary that comes back writable beside the new one has no replica behind it, so it is never adopted (the
 * monitor fences it), while a switchover or rolling restart by anyone moves the replicas and so the primary.
 * When nothing can be confirmed (no primary known, an ambiguous fleet, a primary no reachable replica follows),
 * the reason is returned so the monitor says so instead of idling.
 */
import type { MysqlNodeProbe } from './mysql/decide';
import type { RedisNodeProbe } from './types';

/** One node as the topology rule sees it. */
export interface TopoNode {
  node: string;
  reachable: boolean;
  /** Replicates from nobody (a primary, or a fenced/flagged node left standing). */
  root: boolean;
  /** Takes application writes (Redis: every master; MySQL/MariaDB: read_only OFF). */
  writable: boolean;
  /** The inventory node it replicates from, when it is a replica of one. */
  source?: string;
}

export const mysqlTopo = (nodes: MysqlNodeProbe[]): TopoNode[] =>
  nodes.map((n) => ({ node: n.node, reachable: n.reachable, root: n.reachable && n.role === 'primary', writable: n.reachable && n.role === 'primary' && n.readOnly === false, source: n.role === 'replica' ? n.sourceNode : undefined }));

export const redisTopo = (nodes: RedisNodeProbe[]): TopoNode[] =>
  nodes.map((n) => ({ node: n.node, reachable: n.reachable, root: n.reachable && n.role === 'primary', writable: n.reachable && n.role === 'primary', source: n.role === 'replica' ? n.primaryNode : undefined }));

/** Where a replica's chain of sources ends: a reachable root, or undefined (a loop, an unknown or silent source). */
export function chainEnd(nodes: TopoNode[], start: string): string | undefined {
  const byNode = new Map(nodes.map((n) => [n.node, n]));
  let cur = byNode.get(start);
  for (let i = 0; i <= nodes.length && cur; i++) {
    if (cur.reachable && cur.root) return cur.node;
    if (!cur.reachable || !cur.source) return undefined;
    cur = byNode.get(cur.source);
  }
  return undefined;
}

export type FleetPrimary = { primary: string; followers: string[] } | { unclear: string };

/** The fleet's primary: one writable root that every reachable replica's chain ends at (with at least one replica). */
export function fleetPrimary(nodes: TopoNode[]): FleetPrimary {
  const writable = nodes.filter((n) => n.reachable && n.root && n.writable).map((n) => n.node);
  const replicas = nodes.filter((n) => n.reachable && !n.root);
  if (!writable.length) return { unclear: 'no reachable node takes writes' };
  if (!replicas.length) return { unclear: `no reachable replica to tell which primary the fleet follows (writable: ${writable.join(', ')})` };
  const ends = replicas.map((r) => ({ node: r.node, end: chainEnd(nodes, r.node) }));
  const targets = [...new Set(ends.map((e) => e.end ?? '?'))];
  if (targets.length === 1 && writable.includes(targets[0])) return { primary: targets[0], followers: replicas.map((r) => r.node).sort() };
  const how = ends.map((e) => `${e.node} -> ${e.end ?? `${nodes.find((n) => n.node === e.node)?.source ?? '?'} (no live primary)`}`).join(', ');
  return { unclear: `the replicas do not all follow one writable primary (writable: ${writable.join(', ')}; ${how})` };
}

export interface FollowDecision {
  /** The primary the monitor watches from now on (undefined: none known). */
  primary?: string;
  /** Set when the primary changed from the monitor's memory, with why (an audit line). */
  adopted?: string;
  /** Set when the monitor cannot confirm a death of its primary (or has none): said loudly, never idled on. */
  blind?: string;
}

/**
 * The primary to watch this round. The fleet's clear primary replaces the monitor's memory (a planned change
 * by anyone), except away from the node the monitor's own last failover promoted while it still takes writes; with no replica to tell, a single writable node is adopted only when the monitor has no memory.
 * An unclear fleet keeps the memory (a dead primary's replicas still point at it: that is how its death is
 * confirmed). `blind` says why a death of the chosen primary could not be confirmed now.
 */
export function followTopology(nodes: TopoNode[], memory: string | undefined, promotedByMonitor?: string): FollowDecision {
  const fleet = fleetPrimary(nodes);
  let primary = memory;
  let adopted: string | undefined;
  // Never away from the node the monitor itself promoted while it still takes writes: two writable roots then
  // mean the old primary came back after the failover (a replica the failover could not repoint may still
  // follow it), and the monitor fences it rather than following that replica back to it.
  const m = memory ? nodes.find((n) => n.node === memory) : undefined;
  const keepPromoted = !!m && m.node === promotedByMonitor && m.reachable && m.root && m.writable;
  if ('primary' in fleet && fleet.primary !== memory && !keepPromoted) {
    primary = fleet.primary;
    adopted = `${memory ? `primary moved from ${memory}` : 'no primary known'}: adopted ${fleet.primary}, writable and followed by every reachable replica (${fleet.followers.join(', ')})`;
  } else if (!memory) {
    const writable = nodes.filter((n) => n.reachable && n.root && n.writable);
    if (writable.length === 1 && !nodes.some((n) => n.reachable && !n.root)) {
      primary = writable[0].node;
      adopted = `no primary known: adopted ${primary}, the only writable node (no reachable replica to confirm it)`;
    }
  }
  const why = 'unclear' in fleet ? `; ${fleet.unclear}` : '';
  if (!primary) return { blind: `no primary known, nothing can be confirmed${why}` };
  const p = nodes.find((n) => n.node === primary);
  if (!p) return { primary, adopted, blind: `${primary} is not in the inventory${why}` };
  const following = nodes.filter((n) => n.reachable && !n.root && (n.source === primary || chainEnd(nodes, n.node) === primary));
  if (following.length) return { primary, adopted };
  const state = !p.reachable ? 'is unreachable' : p.root ? (p.writable ? 'answers as primary' : 'answers read-only') : `replicates from ${p.source ?? '?'}`;
  return { primary, adopted, blind: `cannot confirm a death of ${primary}: it ${state} and no reachable replica follows it${why}` };
}
