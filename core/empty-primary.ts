/**
 * The empty-primary guard, decided. Pure: datasets in, verdicts out (no I/O, no clock).
 *
 * A Redis/Valkey primary without persistence that restarts comes back EMPTY, under a new run_id, and answers as
 * primary again: its replicas reconnect, full-resync from it and drop their data. The monitor therefore tracks each
 * node's dataset across rounds (run_id, replication id, offset, DBSIZE) and compares:
 *  - `primaryReturnedEmpty`: the monitor's primary answers again under a new run_id with its dataset collapsed
 *    while a replica still holds what it had: never followed; the monitor fails over at once (the run_id proves
 *    the restart; waiting more rounds would let the replicas resync from it).
 *  - `primaryDataLost`: the same restart found after the replicas already resynced from it (it came back faster
 *    than any probe could act): nothing to save any more; reported loudly with what was lost.
 *  - `candidateCollapsed`: before a failover promotes its candidate, the candidate's dataset now against what it
 *    held when the verdict was taken: a candidate that resynced from the empty node is not promoted.
 */
import type { RedisNodeProbe } from './types';

/** One node's dataset as one probe saw it. */
export interface NodeDataset {
  runId?: string;
  /** master_replid: the replication history the offset counts in. */
  replid?: string;
  offset: number;
  dbsize: number;
  role?: 'primary' | 'replica';
  /** Epoch ms of the probe. */
  at: number;
  /** MySQL/MariaDB (core/mysql/empty-primary.ts): what the node holds (a GTID position; `dbsize` counts its transactions). */
  gtid?: string;
  /** MySQL/MariaDB: gtid_binlog_state (the last GTID of every domain and server in its binary log). */
  gtidState?: string;
  /** MySQL/MariaDB: when the server started, epoch s (its restart is what run_id shows for Redis). */
  startedAt?: number;
  /** MySQL/MariaDB: InnoDB's log sequence number (lower than before: the data directory was replaced). */
  lsn?: number;
}

export type Datasets = Record<string, NodeDataset>;

/** A dataset collapse of a primary that restarted (MySQL/MariaDB: or was reset): what it held before and after, and who still holds it. */
export interface EmptyReturn {
  node: string;
  at: number;
  before: NodeDataset;
  after: NodeDataset;
  /** Replicas that still hold more than the restarted node (their data can be saved by promoting one). */
  holders: string[];
  /** One line for people. */
  text: string;
}

export function datasetOf(n: RedisNodeProbe, at: number): NodeDataset | undefined {
  if (!n.reachable || n.dbsize === undefined) return undefined;
  return { runId: n.runId, replid: n.replid, offset: n.offset ?? 0, dbsize: n.dbsize, role: n.role, at };
}

/** The datasets after this probe: every reachable node's refreshed, an unreachable node's last sight kept. */
export function updateDatasets(prev: Datasets | undefined, nodes: RedisNodeProbe[], at: number, keep: string[] = []): Datasets {
  const out: Datasets = { ...(prev ?? {}) };
  for (const n of nodes) {
    if (keep.includes(n.node)) continue;
    const d = datasetOf(n, at);
    if (d) out[n.node] = d;
  }
  return out;
}

/**
 * The dataset fell: fewer than half the keys it had (at least one fewer), or, in the same replication history, an
 * offset behind the one it had (offsets only grow within one history).
 */
export function collapsed(before: NodeDataset, after: NodeDataset): boolean {
  if (before.dbsize > 0 && after.dbsize < before.dbsize && after.dbsize * 2 < before.dbsize) return true;
  return !!before.replid && before.replid === after.replid && after.offset < before.offset;
}

const show = (d: NodeDataset) => `${d.dbsize} keys, offset ${d.offset}${d.runId ? `, run_id ${d.runId.slice(0, 8)}` : ''}`;

/**
 * Whether replica `n` still holds the old primary's data: still in the replication history the primary had when
 * last seen (its master_replid; a full resync from the restarted node changes it), with keys. Without replication
 * ids (older probes): more keys than the empty node, and not itself collapsed since its last sight.
 */
function holds(n: RedisNodeProbe, before: NodeDataset, after: NodeDataset, was: NodeDataset | undefined, at: number): boolean {
  const d = datasetOf(n, at);
  if (!d) return false;
  if (before.replid && d.replid) return d.replid === before.replid && d.dbsize > 0;
  return d.dbsize > after.dbsize && !(was && collapsed(was, d));
}

/**
 * The restart of the monitor's `primary` with its dataset collapsed, when this probe shows it: it answers as
 * primary under another run_id than the one the monitor last saw it with, holding far less. `holders` are the
 * replicas that still hold the data (promoting one saves it). `held`: the empty return already found in an
 * earlier round; while the node runs under that same run_id it stays that event (whatever it has taken since),
 * and only its holders are looked at again.
 */
export function primaryRestartedEmpty(prev: Datasets | undefined, nodes: RedisNodeProbe[], primary: string, at: number, held?: EmptyReturn): EmptyReturn | undefined {
  const p = nodes.find((n) => n.node === primary);
  const now = p ? datasetOf(p, at) : undefined;
  let before: NodeDataset | undefined;
  let after: NodeDataset | undefined;
  if (held && held.node === primary && now?.runId === held.after.runId && p?.role === 'primary') {
    before = held.before;
    after = held.after;
  } else {
    before = prev?.[primary];
    if (!before || !p || before.role !== 'primary' || !before.runId) return undefined;
    if (!now || p.role !== 'primary' || !now.runId || now.runId === before.runId || !collapsed(before, now)) return undefined;
    after = now;
  }
  const b = before;
  const a = after;
  const holders = nodes
    .filter((n) => n.node !== primary && n.reachable && n.role === 'replica' && n.promotion !== 'never' && holds(n, b, a, prev?.[n.node], at))
    .map((n) => n.node)
    .sort();
  const what = `${primary} restarted (run_id ${(b.runId ?? '?').slice(0, 8)} -> ${(a.runId ?? '?').slice(0, 8)}) and came back EMPTY: ${show(b)} before, ${show(a)} after`;
  const text = holders.length
    ? `${what}; ${holders.join(', ')} still hold the data: not followed, failing over to the best of them`
    : `${what}; no replica holds the data any longer (they resynced from it): the data is LOST (${b.dbsize - a.dbsize} keys, offset ${b.offset} -> ${a.offset})`;
  return { node: primary, at: held && before === held.before ? held.at : at, before: b, after: a, holders, text };
}

/** What the candidate held at the verdict, compared with now: why it must not be promoted, or undefined. */
export function candidateCollapsed(node: string, atVerdict: { offset?: number; dbsize?: number; replid?: string }, now: { role?: string; offset?: number; dbsize?: number; replid?: string; primaryNode?: string }): string | undefined {
  if (now.role !== 'replica') return undefined; // already promoted (a retried step): nothing resynced since
  const b = atVerdict.offset ?? 0;
  const k = atVerdict.dbsize ?? 0;
  const o = now.offset ?? 0;
  const d = now.dbsize ?? 0;
  const replidChanged = !!atVerdict.replid && !!now.replid && atVerdict.replid !== now.replid;
  if (!replidChanged && o >= b && !(k > 0 && d * 2 < k)) return undefined;
  return `${node} resynced since the verdict${now.primaryNode ? ` (from ${now.primaryNode})` : ''}: ${k} keys, offset ${b}${atVerdict.replid ? ` of ${atVerdict.replid.slice(0, 8)}` : ''} then; ${d} keys, offset ${o}${now.replid ? ` of ${now.replid.slice(0, 8)}` : ''} now`;
}
