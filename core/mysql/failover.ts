/**
 * Unplanned failover decisions for MySQL/MariaDB (GTID replication). Pure: no I/O, no clock.
 *  - DeadMaster (orchestrator): the primary is unreachable (or answers as a replica) AND every reachable
 *    replica of it reports its IO thread down (Slave_IO_Running not Yes), for N consecutive probes.
 *  - Candidate: the most advanced reachable replica by what it has RECEIVED (Gtid_IO_Pos: applied + relay
 *    log), promotion rules honoured; the workflow then waits (bounded) for it to apply its relay log.
 *  - Fencing a returning old primary: GTIDs it has that the promoted node never had (errant) leave it
 *    read-only and flagged instead of rejoined.
 * The anti-flapping rule is engine-neutral: core/decide-failover.ts whyBlocked().
 */
import type { HookCounts } from '../types';
import { appliedPos, errantGtids, gtidIncludes, lagTransactions, parseGtidPos, formatGtid, type GtidEntry, type MysqlNodeProbe } from './decide';
import type { Verdict } from '../failover';
import { PROMOTION_RANK } from '../types';

/** A probe of one node for failover: the switchover probe plus what the IO thread received. */
export interface MysqlFailoverNodeProbe extends MysqlNodeProbe {
  /** Gtid_IO_Pos: the last GTID the IO thread wrote to the relay log (received, maybe not applied). */
  gtidIoPos?: string;
  lastIoError?: string;
}

export interface MysqlFailoverPolicy {
  probeIntervalMs: number;
  probesToConfirm: number;
  failoverBlockMs: number;
  catchUpTimeoutMs: number;
  verifyTimeoutMs: number;
}

export interface MysqlFailoverProbe {
  cluster: string;
  engine: 'mysql';
  policy: MysqlFailoverPolicy;
  routingHook: boolean;
  /** How many operator hooks the inventory lists, by kind (absent in older histories: none). */
  hooks?: HookCounts;
  nodes: MysqlFailoverNodeProbe[];
  probedAt: string;
}

/** Everything a replica has: applied, or received into its relay log. */
export function receivedPos(n: MysqlFailoverNodeProbe): string {
  return mergeMax(appliedPos(n), n.gtidIoPos);
}

/** Per domain, the later of two positions. */
export function mergeMax(a: string | undefined, b: string | undefined): string {
  const m = parseGtidPos(a);
  for (const e of parseGtidPos(b).values()) {
    const cur = m.get(e.domain);
    if (!cur || cur.seq < e.seq) m.set(e.domain, e);
  }
  return [...m.values()]
    .sort((x, y) => x.domain - y.domain)
    .map(formatGtid)
    .join(',');
}

/** The writable node replicating from nobody, when exactly one such node answers. */
export function liveMysqlPrimary(nodes: MysqlFailoverNodeProbe[]): MysqlFailoverNodeProbe | undefined {
  const w = nodes.filter((n) => n.reachable && n.role === 'primary' && n.readOnly === false);
  return w.length === 1 ? w[0] : undefined;
}

/** One probe round's DeadMaster verdict on `primary` (the last known one). */
export function mysqlDeadMasterRound(nodes: MysqlFailoverNodeProbe[], primary: string): Verdict {
  const p = nodes.find((n) => n.node === primary);
  if (!p) return { dead: false, reason: `unknown primary ${primary}` };
  if (p.reachable && p.role === 'primary') return { dead: false, reason: `${primary} answers as primary${p.readOnly ? ' (read-only)' : ''}` };
  const replicas = nodes.filter((n) => n.node !== primary && n.reachable && n.role === 'replica' && n.sourceNode === primary);
  const linked = replicas.filter((n) => n.ioRunning === 'Yes');
  if (linked.length) return { dead: false, reason: `${linked.map((n) => n.node).join(', ')} still receive from ${primary} (IO thread Yes)` };
  if (!replicas.length) return { dead: false, reason: `no reachable replica of ${primary} to confirm it is dead` };
  const why = replicas.map((n) => `${n.node} IO ${n.ioRunning}${n.lastIoError ? ` (${n.lastIoError.slice(0, 80)})` : ''}`).join('; ');
  return { dead: true, primary, reason: `${primary} ${p.reachable ? `answers as ${p.role}` : 'unreachable'} and all ${replicas.length} reachable replicas report the link down: ${why}` };
}

export interface MysqlFailoverChoice {
  candidate: string;
  /** What the candidate has received; it must apply this before it takes writes. */
  candidateReceived: string;
  candidateApplied: string;
  followers: string[];
  reasons: string[];
  /** Replicas that could not be considered, with the reason. */
  rejected: { node: string; reason: string }[];
}

const RANK = PROMOTION_RANK;

/**
 * The most advanced reachable replica of the dead primary by received position (ties: promotion rule, then
 * name); promotion: never and delayed replicas are excluded. A replica with GTIDs another replica lacks in a
 * way that is not lag (diverged server id at the same sequence) is refused as candidate.
 */
export function chooseMysqlFailoverCandidate(nodes: MysqlFailoverNodeProbe[], deadPrimary: string): MysqlFailoverChoice | { refusal: string } {
  const rejected: { node: string; reason: string }[] = [];
  const replicas: MysqlFailoverNodeProbe[] = [];
  for (const n of nodes) {
    if (n.node === deadPrimary) continue;
    if (!n.reachable) rejected.push({ node: n.node, reason: `unreachable (${n.error ?? 'no answer'})` });
    else if (n.role !== 'replica') rejected.push({ node: n.node, reason: 'replicates from nobody' });
    else if (n.sourceNode !== deadPrimary) rejected.push({ node: n.node, reason: `replicates from ${n.sourceNode ?? n.sourceAddress}, not ${deadPrimary}` });
    else if (n.promotion === 'never') rejected.push({ node: n.node, reason: 'promotion: never' });
    else if ((n.sqlDelay ?? 0) > 0) rejected.push({ node: n.node, reason: `delayed replica (MASTER_DELAY ${n.sqlDelay} s)` });
    else if (n.missingPrivileges?.length) rejected.push({ node: n.node, reason: `the automation user lacks ${n.missingPrivileges.join(', ')} there: it could not be promoted` });
    else if (!n.sqlRunning) rejected.push({ node: n.node, reason: `SQL thread not running${n.lastError ? `: ${n.lastError}` : ''}` });
    else replicas.push(n);
  }
  if (!replicas.length) return { refusal: `no reachable, promotable replica of ${deadPrimary}: ${rejected.map((r) => `${r.node} ${r.reason}`).join('; ') || 'no replicas'}` };
  const rec = (n: MysqlFailoverNodeProbe) => receivedPos(n);
  // Most advanced: the one every other includes-wise is behind; order by transactions behind the union.
  const union = replicas.reduce((acc, n) => mergeMax(acc, rec(n)), '');
  replicas.sort((a, b) => lagTransactions(rec(a), union) - lagTransactions(rec(b), union) || RANK[a.promotion] - RANK[b.promotion] || (a.node < b.node ? -1 : 1));
  const c = replicas[0];
  const diverged = replicas.filter((n) => n !== c && errantGtids(rec(n), rec(c)).length && !gtidIncludes(rec(c), rec(n)));
  const reasons = [
    `most advanced reachable replica of ${deadPrimary}: received ${rec(c) || 'empty'}, applied ${appliedPos(c) || 'empty'}`,
    `promotion: ${c.promotion}`,
    ...diverged.map((n) => `WARNING: ${n.node} has ${errantGtids(rec(n), rec(c)).join(',')} that ${c.node} lacks`),
  ];
  return {
    candidate: c.node,
    candidateReceived: rec(c),
    candidateApplied: appliedPos(c),
    followers: nodes
      .filter((n) => n.node !== c.node && n.node !== deadPrimary)
      .map((n) => n.node)
      .sort(),
    reasons,
    rejected,
  };
}

/**
 * A node that comes back (an old primary) must not rejoin when it holds transactions the promoted node never
 * had at promotion time nor has now: those were never replicated, and replicating on top of them would
 * diverge. The errant GTIDs, or [] when it may rejoin.
 */
export function errantOnReturn(nodeBinlogPos: string | undefined, promotedAt: string | undefined, primaryNow: string | undefined): string[] {
  const vsPromoted = promotedAt === undefined ? [] : errantGtids(nodeBinlogPos, promotedAt);
  const vsNow = errantGtids(nodeBinlogPos, primaryNow);
  return [...new Set([...vsPromoted, ...vsNow])].sort();
}

/** Above this many errant transactions in one domain, they are listed as one range "d-s-a..d-s-b". */
export const ERRANT_LIST_MAX = 50;

/**
 * Every errant GTID, not only the last per domain. A MariaDB position keeps one GTID per domain (the last), so
 * three errant commits show as one entry; the errant ones are every sequence number after what the promoted
 * node had (or, without that, what the primary has now) up to that last one. Under gtid_strict_mode sequence
 * numbers in a domain only grow, and a node replicating from nobody wrote them itself, so they carry its
 * server id. (Reading them from the binary log instead would need BINLOG MONITOR, a grant Handover does not
 * ask for.) More than ERRANT_LIST_MAX in a domain are listed as one range, still naming every one.
 */
export function listErrantGtids(errantLast: string[], promotedAt: string | undefined, primaryNow: string | undefined): string[] {
  const promoted = parseGtidPos(promotedAt);
  const now = parseGtidPos(primaryNow);
  const out: string[] = [];
  for (const e of errantLast.map((x) => parseGtidPos(x).values().next().value as GtidEntry)) {
    let from = (promoted.get(e.domain) ?? now.get(e.domain))?.seq ?? 0;
    if (from >= e.seq) from = e.seq - 1; // same sequence number from another server: only that one diverged
    const count = e.seq - from;
    const at = (seq: number) => formatGtid({ domain: e.domain, server: e.server, seq });
    if (count > ERRANT_LIST_MAX) out.push(`${at(from + 1)}..${at(e.seq)}`);
    else for (let s = from + 1; s <= e.seq; s++) out.push(at(s));
  }
  return out;
}

/** The data-loss window: transactions the old primary was last seen with that the promoted node lacks. */
export function mysqlDataLoss(lastKnownPrimary: string | undefined, promoted: string): { transactions?: number; missing?: string; note: string } {
  if (lastKnownPrimary === undefined)
    return { note: 'the old primary was not observed before it died (no monitor): the window is unknown; semi-synchronous replication bounds it' };
  const t = lagTransactions(promoted, lastKnownPrimary);
  return {
    transactions: t,
    missing: t ? `${promoted || 'empty'} .. ${lastKnownPrimary}` : undefined,
    note: 'transactions the old primary had when last observed by the monitor (about one probe interval before it died) that the promoted node lacked: certainly lost, a lower bound; commits after that observation are not known',
  };
}
