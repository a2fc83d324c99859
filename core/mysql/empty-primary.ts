/**
 * The empty-primary guard for MySQL/MariaDB, decided. Pure: probes in, verdicts out (no I/O, no clock).
 *
 * A MariaDB primary can come back without the data its replicas hold: its data directory wiped and initialised
 * again (a pod rescheduled onto an empty volume), restored from an older copy, or `RESET MASTER` run on it. Its
 * replicas then either fail to connect (error 1236: their position is not in its binary log) or, worse, pick up
 * its new transactions under GTIDs they already have. Nothing resyncs by itself (unlike Redis), so the data stays
 * on the replicas; but a monitor that takes "answers as primary" for "alive" never fails over, and the writes the
 * application sends to the empty node are lost to the cluster.
 *
 * The monitor therefore keeps each node's GTID position (and binlog state, and when the server started) across
 * rounds, and compares (core/empty-primary.ts holds the shared shapes):
 *  - `mysqlPrimaryReset`: the monitor's primary answers as primary without transactions it had (its position went
 *    back in a domain, or a (domain, server) entry of its binlog state vanished or went back), or lacking what a
 *    replica of it already holds while that replica cannot stream from it: never followed, failed over at once
 *    to a replica that holds the data; with none left, reported as LOST.
 *  - `mysqlCandidateLostData`: before a failover promotes its candidate, the candidate's applied position now
 *    against the one it had at the verdict: a candidate that went backwards (wiped or reset since) is refused.
 */
import type { EmptyReturn, NodeDataset, Datasets } from '../empty-primary';
import { appliedPos, formatGtid, gtidIncludes, parseGtidPos, parseGtidState, type GtidEntry } from './decide';
import { mergeMax, receivedPos, type MysqlFailoverNodeProbe } from './failover';

/** A server start time that moved by more than this (seconds) is a restart (the estimate itself wobbles by 1 s). */
const RESTART_SLACK_S = 2;

/** Transactions a position stands for: the sum of its sequence numbers (one GTID per domain). */
export function transactionsIn(pos: string | undefined): number {
  let n = 0;
  for (const e of parseGtidPos(pos).values()) n += e.seq;
  return n;
}

/** What a node holds: a replica what it applied or received; a node replicating from nobody what it applied. */
export function heldPos(n: MysqlFailoverNodeProbe): string {
  return n.role === 'replica' ? receivedPos(n) : appliedPos(n);
}

/** A replica's transactions that came from a source (gtid_slave_pos and Gtid_IO_Pos), not its own writes. */
function fromSource(n: MysqlFailoverNodeProbe): string {
  return mergeMax(n.gtidSlavePos, n.gtidIoPos);
}

export function mysqlDatasetOf(n: MysqlFailoverNodeProbe, at: number): NodeDataset | undefined {
  if (!n.reachable) return undefined;
  const gtid = heldPos(n);
  return { offset: 0, dbsize: transactionsIn(gtid), gtid, gtidState: n.gtidBinlogState, startedAt: n.startedAt, lsn: n.innodbLsn, role: n.role, at };
}

/** The datasets after this probe: every reachable node's refreshed, an unreachable node's last sight kept. */
export function updateMysqlDatasets(prev: Datasets | undefined, nodes: MysqlFailoverNodeProbe[], at: number, keep: string[] = []): Datasets {
  const out: Datasets = { ...(prev ?? {}) };
  for (const n of nodes) {
    if (keep.includes(n.node)) continue;
    const d = mysqlDatasetOf(n, at);
    if (d) out[n.node] = d;
  }
  return out;
}

/** Whether the server started again between two sights (false when either does not say). */
export function restarted(before: NodeDataset, after: NodeDataset): boolean {
  return before.startedAt !== undefined && after.startedAt !== undefined && after.startedAt - before.startedAt > RESTART_SLACK_S;
}

/**
 * What the node lost between two sights, or undefined: GTIDs of its position that went back (a domain gone, a
 * lower sequence number), entries of its binlog state (the last GTID of each domain and server) that vanished or
 * went back, and InnoDB's log sequence number gone back (its data directory replaced: this one holds even when
 * the empty server has since committed past its old GTID sequence numbers under the same server id). None of it
 * happens on a live server: positions, binlog states and the LSN only grow.
 */
export function mysqlCollapsed(before: NodeDataset, after: NodeDataset): string[] | undefined {
  const lost: string[] = [];
  const now = parseGtidPos(after.gtid);
  for (const e of parseGtidPos(before.gtid).values()) {
    const n = now.get(e.domain);
    if (!n || n.seq < e.seq) lost.push(formatGtid(e));
  }
  if (before.gtidState !== undefined && after.gtidState !== undefined) {
    const st = new Map(parseGtidState(after.gtidState).map((e) => [`${e.domain}-${e.server}`, e.seq]));
    for (const e of parseGtidState(before.gtidState)) {
      const seq = st.get(`${e.domain}-${e.server}`);
      if ((seq === undefined || seq < e.seq) && !lost.includes(formatGtid(e))) lost.push(formatGtid(e));
    }
  }
  lost.sort();
  if (before.lsn !== undefined && after.lsn !== undefined && after.lsn < before.lsn) lost.push(`InnoDB LSN ${before.lsn} -> ${after.lsn} (its data directory was replaced)`);
  return lost.length ? lost : undefined;
}

const show = (d: NodeDataset) => `${d.gtid || 'empty'} (${d.dbsize} transactions)`;

/**
 * The monitor's `primary` back without its data, when this probe shows it (see the file comment). `held`: the
 * event found in an earlier round; while the node runs the same server start it stays that event, and only its
 * holders are looked at again. Holders: reachable replicas of it (promotable) that hold transactions it lacks, or
 * all it had before.
 * Without memory, only replicas that cannot stream from it count (read in one round, a replica may look ahead of
 * its primary); `primaryReadLast`: the probe read the primary after its replicas (probeFailoverNodes), so a live
 * primary includes whatever they received from it, and a replica streaming from it while holding more shows it
 * too (MariaDB lets a replica stream from a server whose binary log lacks its domain altogether).
 */
export function mysqlPrimaryReset(
  prev: Datasets | undefined,
  nodes: MysqlFailoverNodeProbe[],
  primary: string,
  at: number,
  held?: EmptyReturn,
  opts: { primaryReadLast?: boolean } = {},
): EmptyReturn | undefined {
  const p = nodes.find((n) => n.node === primary);
  if (!p?.reachable || p.role !== 'primary') return undefined;
  const now = mysqlDatasetOf(p, at)!;
  const replicas = nodes.filter((n) => n.node !== primary && n.reachable && n.role === 'replica' && n.sourceNode === primary);
  let before: NodeDataset | undefined;
  let after = now;
  let why: string | undefined;
  if (held && held.node === primary && (held.after.startedAt === undefined || now.startedAt === undefined || !restarted(held.after, now))) {
    before = held.before;
    after = held.after;
    why = 'held';
  } else {
    const b = prev?.[primary];
    const lost = b && b.role === 'primary' ? mysqlCollapsed(b, now) : undefined;
    if (b && lost) {
      before = b;
      const gtids = lost.filter((x) => !x.startsWith('InnoDB'));
      why = [gtids.length ? `it lacks ${gtids.join(',')} it had` : '', ...lost.filter((x) => x.startsWith('InnoDB'))].filter(Boolean).join('; ');
    } else {
      // No memory of it (a monitor started afterwards) or nothing lost since the last sight: its replicas that
      // cannot stream from it while holding transactions it lacks show it all the same.
      const ahead = replicas.filter((n) => (opts.primaryReadLast || n.ioRunning !== 'Yes') && !gtidIncludes(now.gtid, fromSource(n)));
      if (!ahead.length) return undefined;
      const gtid = ahead.reduce((acc, n) => mergeMax(acc, fromSource(n)), '');
      before = { offset: 0, dbsize: transactionsIn(gtid), gtid, role: 'primary', at: b?.at ?? at, startedAt: b?.startedAt };
      why = `it lacks what ${ahead.map((n) => n.node).join(', ')} already hold from it (${gtid})`;
    }
  }
  const b = before;
  const a = after;
  const holders = replicas
    .filter((n) => n.promotion !== 'never')
    .filter((n) => {
      const h = heldPos(n);
      return !!h && (!gtidIncludes(a.gtid, h) || gtidIncludes(h, b.gtid));
    })
    .map((n) => n.node)
    .sort();
  const how = restarted(b, a) ? 'restarted and came back EMPTY or reset' : b.startedAt !== undefined && a.startedAt !== undefined ? 'was RESET without a restart (RESET MASTER, or a restore)' : 'came back EMPTY or reset';
  const what = `${primary} ${how}: ${show(b)} before, ${show(a)} now${why && why !== 'held' ? `; ${why}` : ''}`;
  const text = holders.length
    ? `${what}; ${holders.join(', ')} still hold the data: not followed, failing over to the best of them`
    : `${what}; no replica holds the data: it is LOST (${Math.max(0, b.dbsize - a.dbsize)} transactions, ${b.gtid || 'empty'} -> ${a.gtid || 'empty'})`;
  return { node: primary, at: why === 'held' ? held!.at : at, before: b, after: a, holders, text };
}

/**
 * The candidate's applied position at the verdict, compared with now: why it must not be promoted (it went
 * backwards: wiped, restored or reset since), or undefined. A writable node replicating from nobody is one a
 * retried promotion already promoted: nothing to check.
 */
export function mysqlCandidateLostData(node: string, appliedAtVerdict: string | undefined, now: MysqlFailoverNodeProbe): string | undefined {
  if (!now.reachable) return undefined;
  if (now.role === 'primary' && now.readOnly === false) return undefined;
  const have = now.role === 'replica' ? receivedPos(now) : appliedPos(now);
  if (gtidIncludes(have, appliedAtVerdict)) return undefined;
  const missing = [...parseGtidPos(appliedAtVerdict).values()].filter((e: GtidEntry) => {
    const h = parseGtidPos(have).get(e.domain);
    return !h || h.seq < e.seq;
  });
  return `${node} lost data since the verdict: it had applied ${appliedAtVerdict || 'empty'} then, it holds ${have || 'empty'} now (${missing.map(formatGtid).join(',')} went back${now.role === 'replica' ? '' : '; it replicates from nobody'})`;
}
