/**
 * Candidate choice for a MySQL/MariaDB planned switchover, and the GTID arithmetic it needs. Pure: no I/O, no
 * clock; unit-tested without Temporal, called by the workflow (decide) and by the veto activity (re-check).
 *
 * Same shape as core/decide-redis.ts (orchestrator's candidate choice): the chosen replica, and every other
 * node sorted into ahead / equal / lagging / cannotReplicate relative to it, each with a reason.
 *
 * GTID positions are MariaDB's: a comma-separated list of domain-server-seq, one entry per replication domain
 * (the last GTID applied in that domain), e.g. "0-1-1234,7-3-5".
 */
import type { HookCounts } from '../types';
import { ErrorType } from '../errors';
import { describeMissingPrivileges } from './privileges';
import { PROMOTION_RANK, type DecideResult, type Promotion, type Refusal } from '../types';

/** The limits a MySQL/MariaDB switchover honours (from the inventory policy). */
export interface MysqlPolicy {
  /** Largest lag, in transactions (sum over domains of the primary's seq minus the replica's), of a candidate. */
  maxLagTransactions: number;
  /** Largest Seconds_Behind_Master of a candidate. */
  maxLagSeconds: number;
  /** How long the candidate may take to apply the fenced primary's final position before the fence is undone. */
  catchUpTimeoutMs: number;
  /** How long verification may wait for every replica to run and converge. */
  verifyTimeoutMs: number;
  /** How long application sessions may keep an open transaction on the fenced primary before being killed. */
  fenceGraceMs: number;
  /** Inventory policy.allowDegraded (absent in histories recorded before it: false). */
  allowDegraded?: boolean;
}

export const DEFAULT_MYSQL_POLICY: MysqlPolicy = { maxLagTransactions: 1000, maxLagSeconds: 10, catchUpTimeoutMs: 30_000, verifyTimeoutMs: 30_000, fenceGraceMs: 2_000 };

/**
 * What one probe of one MySQL/MariaDB node saw. Names and observations only: no credentials. The probe reads
 * a primary's position after its replicas', so a replica is never ahead of it merely by being read later.
 */
export interface MysqlNodeProbe {
  node: string;
  address: string;
  promotion: Promotion;
  reachable: boolean;
  error?: string;
  /** 'replica' when replication is configured on it (SHOW SLAVE STATUS has a row), else 'primary'. */
  role?: 'primary' | 'replica';
  readOnly?: boolean;
  serverId?: number;
  version?: string;
  gtidBinlogPos?: string;
  gtidCurrentPos?: string;
  gtidSlavePos?: string;
  /**
   * MariaDB gtid_binlog_state: the last GTID of every (domain, server) pair in the binary log. Unlike the
   * position (one GTID per domain), it keeps a replica's own errant write visible after the primary's sequence
   * numbers passed it, whether or not the replica's threads run.
   */
  gtidBinlogState?: string;
  /** For a replica: host:port of its source and the inventory node there (undefined when not in the inventory). */
  sourceAddress?: string;
  sourceNode?: string;
  /** Slave_IO_Running: Yes | No | Connecting. */
  ioRunning?: string;
  sqlRunning?: boolean;
  secondsBehind?: number | null;
  /** MASTER_DELAY (delayed replication), seconds. */
  sqlDelay?: number;
  usingGtid?: string;
  /** For a replica: whether it connects to its source over TLS (Master_SSL_Allowed). */
  sourceSsl?: boolean;
  lastError?: string;
  /** Privileges the automation user lacks on this node (MariaDB; see core/mysql-privileges.ts), when any. */
  missingPrivileges?: string[];
  /** GTIDs this node has that the primary lacks (filled in relative to the primary by the probe). */
  errantGtids?: string[];
  /** Where the running read_only came from (SYSTEM_VARIABLES.GLOBAL_VALUE_ORIGIN: COMPILE-TIME, CONFIG, COMMAND-LINE, SQL). */
  readOnlyOrigin?: string;
  /** The option file that set it, when GLOBAL_VALUE_ORIGIN is CONFIG. */
  readOnlyOriginPath?: string;
  /** When the server started, epoch s (the clock minus Uptime; it wobbles by a second): a restart moves it. */
  startedAt?: number;
  /** InnoDB's log sequence number (Innodb_lsn_current): it only grows over a data directory's life. */
  innodbLsn?: number;
}

export interface MysqlClusterProbe {
  cluster: string;
  engine: 'mysql';
  flavor: 'mariadb' | 'mysql8';
  policy: MysqlPolicy;
  /** Whether the inventory configures a routing hook (the command itself stays on the worker). */
  routingHook: boolean;
  /** How many operator hooks the inventory lists, by kind (absent in older histories: none). */
  hooks?: HookCounts;
  nodes: MysqlNodeProbe[];
  probedAt: string;
}

// ---- GTID arithmetic ---------------------------------------------------------------------------------------

export interface GtidEntry {
  domain: number;
  server: number;
  seq: number;
}

/** "0-1-10,2-5-3" -> domain -> entry. Empty or blank -> empty map. Throws on a malformed entry. */
export function parseGtidPos(pos: string | undefined): Map<number, GtidEntry> {
  const out = new Map<number, GtidEntry>();
  for (const part of (pos ?? '').split(',').map((p) => p.trim())) {
    if (!part) continue;
    const m = /^(\d+)-(\d+)-(\d+)$/.exec(part);
    if (!m) throw new Error(`malformed GTID position entry "${part}"`);
    out.set(Number(m[1]), { domain: Number(m[1]), server: Number(m[2]), seq: Number(m[3]) });
  }
  return out;
}

export const formatGtid = (e: GtidEntry) => `${e.domain}-${e.server}-${e.seq}`;

/** Canonical form (domains sorted), so equal positions compare equal as strings. */
export function normalizeGtidPos(pos: string | undefined): string {
  return [...parseGtidPos(pos).values()]
    .sort((a, b) => a.domain - b.domain)
    .map(formatGtid)
    .join(',');
}

/**
 * GTIDs `node` has that `primary` lacks: a domain the primary never wrote, a higher sequence number, or the same
 * sequence number from another server (diverged). Lower sequence numbers are lag, not errant.
 */
export function errantGtids(node: string | undefined, primary: string | undefined): string[] {
  const p = parseGtidPos(primary);
  const out: string[] = [];
  for (const e of parseGtidPos(node).values()) {
    const q = p.get(e.domain);
    if (!q || e.seq > q.seq || (e.seq === q.seq && e.server !== q.server)) out.push(formatGtid(e));
  }
  return out.sort();
}

/** gtid_binlog_state "0-1-10,0-3-5" -> every (domain, server) entry. Empty or blank -> []. */
export function parseGtidState(state: string | undefined): GtidEntry[] {
  return (state ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)
    .map((part) => {
      const m = /^(\d+)-(\d+)-(\d+)$/.exec(part);
      if (!m) throw new Error(`malformed GTID state entry "${part}"`);
      return { domain: Number(m[1]), server: Number(m[2]), seq: Number(m[3]) };
    });
}

/**
 * The node's own writes that `primary` lacks, from the binlog states: an entry of the node's state counts only
 * when it is later than what the node last applied from a source in that domain (`nodeSlavePos`): what came by
 * replication its source had, and the primary's history may have been reset since (RESET MASTER on a
 * re-cloned node), so only the node's own later writes are checked. Such an entry is errant when the primary's
 * state has no (domain, server) pair at or past it. An empty primary state (binary log reset) tells nothing: [].
 */
export function errantGtidsInState(node: string | undefined, primary: string | undefined, nodeSlavePos?: string): string[] {
  const p = new Map<string, number>();
  for (const e of parseGtidState(primary)) p.set(`${e.domain}-${e.server}`, Math.max(e.seq, p.get(`${e.domain}-${e.server}`) ?? 0));
  if (p.size === 0) return [];
  const applied = parseGtidPos(nodeSlavePos);
  return parseGtidState(node)
    .filter((e) => e.seq > (applied.get(e.domain)?.seq ?? 0) && (p.get(`${e.domain}-${e.server}`) ?? -1) < e.seq)
    .map(formatGtid)
    .sort();
}

/**
 * Every GTID `n` has that `primary` lacks, whatever the state of `n`'s replication threads: by position (a
 * domain the primary never wrote, a higher or diverged sequence number) and by binlog state (an errant write
 * the primary's sequence numbers have since passed: strict mode stops the replica's SQL thread at the next
 * primary write, after which the position alone looks like lag).
 */
export function errantOf(n: Pick<MysqlNodeProbe, 'gtidBinlogPos' | 'gtidBinlogState' | 'gtidSlavePos'>, primary: Pick<MysqlNodeProbe, 'gtidBinlogPos' | 'gtidBinlogState'>): string[] {
  return [...new Set([...errantGtids(n.gtidBinlogPos, primary.gtidBinlogPos), ...errantGtidsInState(n.gtidBinlogState, primary.gtidBinlogState, n.gtidSlavePos)])].sort();
}

/** Whether position `have` includes everything in `want` (every domain at least as far). */
export function gtidIncludes(have: string | undefined, want: string | undefined): boolean {
  const h = parseGtidPos(have);
  for (const w of parseGtidPos(want).values()) {
    const e = h.get(w.domain);
    if (!e || e.seq < w.seq) return false;
  }
  return true;
}

/** Transactions `node` still has to apply to reach `primary` (sum over the primary's domains). */
export function lagTransactions(node: string | undefined, primary: string | undefined): number {
  const n = parseGtidPos(node);
  let lag = 0;
  for (const p of parseGtidPos(primary).values()) lag += Math.max(0, p.seq - (n.get(p.domain)?.seq ?? 0));
  return lag;
}

/** A node's applied position: its binlog position (log_slave_updates) merged with what it replicated. */
export function appliedPos(n: MysqlNodeProbe): string {
  const a = parseGtidPos(n.gtidBinlogPos);
  for (const e of parseGtidPos(n.gtidSlavePos).values()) {
    const cur = a.get(e.domain);
    if (!cur || cur.seq < e.seq) a.set(e.domain, e);
  }
  return [...a.values()]
    .sort((x, y) => x.domain - y.domain)
    .map(formatGtid)
    .join(',');
}

// ---- the decision ------------------------------------------------------------------------------------------

export interface MysqlRankedNode {
  node: string;
  gtid?: string;
  lagTransactions?: number;
  reason: string;
}

export interface MysqlSwitchoverDecision {
  primary: string;
  candidate: string;
  primaryGtid: string;
  candidateGtid: string;
  reasons: string[];
  ahead: MysqlRankedNode[];
  equal: MysqlRankedNode[];
  lagging: MysqlRankedNode[];
  cannotReplicate: MysqlRankedNode[];
  /** The other replicas that must follow the new primary (by name, sorted). */
  followers: string[];
}

export type MysqlRefusal = Refusal<MysqlRankedNode>;
export type MysqlDecideResult = DecideResult<MysqlSwitchoverDecision, MysqlRankedNode>;

const refuse = (code: string, message: string, rejected: MysqlRankedNode[] = []): { ok: false; refusal: MysqlRefusal } => ({
  ok: false,
  refusal: { code, errorType: ErrorType.PreconditionFailed, message, rejected },
});

/** The single reachable, writable node that replicates from nobody; or a refusal. */
export function findMysqlPrimary(nodes: MysqlNodeProbe[]): { primary: MysqlNodeProbe } | { refusal: MysqlRefusal } {
  const rejected = nodes.map((n) => ({ node: n.node, reason: n.reachable ? `${n.role}${n.readOnly ? ', read-only' : ', writable'}` : `unreachable: ${n.error ?? 'no answer'}` }));
  const primaries = nodes.filter((n) => n.reachable && n.role === 'primary');
  const writable = nodes.filter((n) => n.reachable && n.readOnly === false);
  if (writable.length > 1)
    return refuse('MultipleWritable', `more than one writable node: ${writable.map((p) => p.node).join(', ')}; resolve the split before switching over`, rejected);
  if (primaries.length > 1)
    return refuse('MultiplePrimaries', `more than one node replicates from nobody: ${primaries.map((p) => p.node).join(', ')}; resolve before switching over`, rejected);
  if (primaries.length === 0) return refuse('NoPrimary', 'no reachable primary: a planned switchover needs a live primary (use failover for a dead one)', rejected);
  const p = primaries[0];
  if (p.readOnly)
    return refuse('PrimaryReadOnly', `the primary ${p.node} is read-only (fenced by an interrupted handover, or by hand); make it writable or finish the handover before switching over`, rejected);
  return { primary: p };
}

/** Why `replica` cannot be promoted in place of `primary`, or undefined when it can. Reasons, not booleans. */
export function whyNotMysqlCandidate(replica: MysqlNodeProbe, primary: MysqlNodeProbe, policy: MysqlPolicy): { code: string; reason: string } | undefined {
  if (!replica.reachable) return { code: 'TargetUnreachable', reason: `${replica.node} is unreachable (${replica.error ?? 'no answer'})` };
  if (replica.node === primary.node) return { code: 'TargetIsPrimary', reason: `${replica.node} is already the primary` };
  if (replica.role !== 'replica') return { code: 'NotReplicaOfPrimary', reason: `${replica.node} replicates from nobody: it is not a replica` };
  if (replica.sourceNode !== primary.node)
    return { code: 'NotReplicaOfPrimary', reason: `${replica.node} replicates from ${replica.sourceNode ?? replica.sourceAddress ?? 'nowhere'}, not from the primary ${primary.node}` };
  const errant = errantOf(replica, primary);
  if (errant.length)
    return { code: 'TargetErrantGtids', reason: `${replica.node} has errant GTIDs the primary ${primary.node} lacks: ${errant.join(',')} (primary at ${primary.gtidBinlogPos || 'empty'})` };
  if (replica.ioRunning !== 'Yes' || !replica.sqlRunning)
    return {
      code: 'TargetReplicationStopped',
      reason: `${replica.node} is not replicating (IO thread ${replica.ioRunning ?? '?'}, SQL thread ${replica.sqlRunning ? 'Yes' : 'No'}${replica.lastError ? `: ${replica.lastError}` : ''})`,
    };
  if (replica.promotion === 'never') return { code: 'TargetPromotionNever', reason: `${replica.node} has promotion: never in the inventory` };
  const lag = lagTransactions(appliedPos(replica), primary.gtidBinlogPos);
  if (lag > policy.maxLagTransactions)
    return { code: 'TargetLagging', reason: `${replica.node} lags ${lag} transactions behind ${primary.node} (limit ${policy.maxLagTransactions}; at ${appliedPos(replica) || 'empty'}, primary at ${primary.gtidBinlogPos})` };
  if (replica.secondsBehind === null || replica.secondsBehind === undefined)
    return { code: 'TargetReplicationStopped', reason: `${replica.node} reports no Seconds_Behind_Master (replication not applying)` };
  if (replica.secondsBehind > policy.maxLagSeconds)
    return { code: 'TargetLagging', reason: `${replica.node} is ${replica.secondsBehind} s behind ${primary.node} (limit ${policy.maxLagSeconds} s)` };
  if ((replica.sqlDelay ?? 0) > 0) return { code: 'TargetDelayed', reason: `${replica.node} is a delayed replica (MASTER_DELAY ${replica.sqlDelay} s)` };
  return undefined;
}

/**
 * Every node a switchover touches (the primary is fenced, the candidate promoted, the others repointed) needs
 * the automation's privileges, so a missing one is refused before anything changes rather than found half-way.
 */
export function whyUnprivileged(nodes: MysqlNodeProbe[], user?: string): string | undefined {
  const lacking = nodes.filter((n) => n.reachable && n.missingPrivileges?.length);
  return lacking.length ? lacking.map((n) => describeMissingPrivileges(n.node, user, n.missingPrivileges!)).join('; ') : undefined;
}

/** Why a non-candidate cannot follow the new primary after the switch, or undefined. */
export function whyNotFollower(n: MysqlNodeProbe, primary: MysqlNodeProbe): string | undefined {
  if (!n.reachable) return `${n.node} is unreachable (${n.error ?? 'no answer'}): it could not be repointed`;
  const errant = errantOf(n, primary);
  if (errant.length) return `${n.node} has errant GTIDs ${errant.join(',')}: it could not replicate from the new primary`;
  return undefined;
}

/**
 * Choose the candidate: a replica of the primary, no errant GTIDs, both threads running, promotion != never,
 * within the lag limits, not delayed. Most advanced wins (fewest transactions behind the primary); ties by
 * promotion rule (prefer first), then name. With `to`, that node must itself qualify. Every other replica
 * must be able to follow the new primary (reachable, no errant GTIDs), else the switchover is refused: a
 * planned operation fails closed rather than leave a replica behind after the point of no return.
 */
export function decideMysqlSwitchover(nodes: MysqlNodeProbe[], opts: { to?: string; policy?: MysqlPolicy; allowDegraded?: boolean } = {}): MysqlDecideResult {
  const policy = opts.policy ?? DEFAULT_MYSQL_POLICY;
  const found = findMysqlPrimary(nodes);
  if ('refusal' in found) return { ok: false, refusal: found.refusal };
  const unprivileged = whyUnprivileged(nodes);
  if (unprivileged) return refuse('MissingPrivilege', `${unprivileged}; nothing was changed`, nodes.filter((n) => n.missingPrivileges?.length).map((n) => ({ node: n.node, reason: `lacks ${n.missingPrivileges!.join(', ')}` })));
  const primary = found.primary;
  const others = nodes.filter((n) => n.node !== primary.node);
  const lagOf = (n: MysqlNodeProbe) => (n.reachable ? lagTransactions(appliedPos(n), primary.gtidBinlogPos) : undefined);
  const verdicts = others.map((n) => ({ probe: n, why: whyNotMysqlCandidate(n, primary, policy) }));
  const rejectedList: MysqlRankedNode[] = verdicts
    .filter((v) => v.why)
    .map((v) => ({ node: v.probe.node, gtid: v.probe.reachable ? appliedPos(v.probe) : undefined, lagTransactions: lagOf(v.probe), reason: v.why!.reason }));

  let candidate: MysqlNodeProbe | undefined;
  if (opts.to !== undefined) {
    const target = nodes.find((n) => n.node === opts.to);
    if (!target)
      return {
        ok: false,
        refusal: { code: 'UnknownNode', errorType: ErrorType.UnknownNode, message: `--to ${opts.to}: no such node in this cluster (nodes: ${nodes.map((n) => n.node).join(', ')})`, rejected: rejectedList },
      };
    const why = whyNotMysqlCandidate(target, primary, policy);
    if (why) return refuse(why.code, `cannot switch over to ${target.node}: ${why.reason}`, rejectedList);
    candidate = target;
  } else {
    const eligible = verdicts.filter((v) => !v.why).map((v) => v.probe);
    eligible.sort(
      (a, b) => (lagOf(a) ?? 0) - (lagOf(b) ?? 0) || PROMOTION_RANK[a.promotion] - PROMOTION_RANK[b.promotion] || (a.node < b.node ? -1 : a.node > b.node ? 1 : 0),
    );
    candidate = eligible[0];
    if (!candidate)
      return refuse('NoEligibleCandidate', `no replica of ${primary.node} can be promoted: ${rejectedList.map((r) => r.reason).join('; ') || 'the primary has no replicas'}`, rejectedList);
  }
  const chosen = candidate;
  const followerProblems = others.filter((n) => n.node !== chosen.node).map((n) => whyNotFollower(n, primary)).filter((x): x is string => !!x);
  // --allow-degraded: a follower that cannot follow is left behind and reported by the runbook, not refused here.
  if (followerProblems.length && !opts.allowDegraded)
    return refuse(
      'FollowerCannotFollow',
      `cannot switch over to ${chosen.node}: ${followerProblems.join('; ')}; nothing was changed. Fix ${followerProblems.length > 1 ? 'them' : 'it'} first, or pass --allow-degraded (or set policy.allowDegraded in the inventory) to hand over anyway and leave ${followerProblems.length > 1 ? 'them' : 'it'} behind`,
      rejectedList,
    );

  const chosenLag = lagOf(chosen) ?? 0;
  const reasons = [
    `replica of ${primary.node}, IO and SQL threads running, no errant GTIDs`,
    `at ${appliedPos(chosen) || 'empty'}, ${chosenLag} transactions and ${chosen.secondsBehind ?? 0} s behind the primary at ${primary.gtidBinlogPos || 'empty'} (limits ${policy.maxLagTransactions}, ${policy.maxLagSeconds} s)`,
    `promotion: ${chosen.promotion}`,
    opts.to !== undefined ? 'named with --to' : 'most advanced, then promotion rule, then name',
  ];
  const ahead: MysqlRankedNode[] = [];
  const equal: MysqlRankedNode[] = [];
  const lagging: MysqlRankedNode[] = [];
  const cannotReplicate: MysqlRankedNode[] = [];
  for (const v of verdicts) {
    const n = v.probe;
    if (n.node === chosen.node) continue;
    const lag = lagOf(n);
    const diff = (lag ?? 0) - chosenLag;
    const notChosen =
      diff > 0
        ? `eligible, ${diff} transactions behind ${chosen.node}`
        : diff < 0
          ? `eligible, ${-diff} transactions ahead of ${chosen.node}`
          : `eligible, same position as ${chosen.node}; lost on ${opts.to !== undefined ? '--to' : 'promotion rule or name'}`;
    const entry: MysqlRankedNode = { node: n.node, gtid: n.reachable ? appliedPos(n) : undefined, lagTransactions: lag, reason: v.why?.reason ?? notChosen };
    if (!n.reachable || n.role !== 'replica' || n.sourceNode !== primary.node || n.ioRunning !== 'Yes' || !n.sqlRunning) cannotReplicate.push(entry);
    else if (diff < 0) ahead.push(entry);
    else if (diff === 0) equal.push(entry);
    else lagging.push(entry);
  }
  return {
    ok: true,
    decision: {
      primary: primary.node,
      candidate: chosen.node,
      primaryGtid: primary.gtidBinlogPos ?? '',
      candidateGtid: appliedPos(chosen),
      reasons,
      ahead,
      equal,
      lagging,
      cannotReplicate,
      followers: others
        .filter((n) => n.node !== chosen.node)
        .map((n) => n.node)
        .sort(),
    },
  };
}

/** The veto: re-check a frozen decision against live state. The reason to stop, or undefined. */
export function recheckMysqlDecision(nodes: MysqlNodeProbe[], frozen: { primary: string; candidate: string; allowDegraded?: boolean }, policy: MysqlPolicy = DEFAULT_MYSQL_POLICY): string | undefined {
  const found = findMysqlPrimary(nodes);
  if ('refusal' in found) return found.refusal.message;
  const unprivileged = whyUnprivileged(nodes);
  if (unprivileged) return unprivileged;
  if (found.primary.node !== frozen.primary) return `the primary changed from ${frozen.primary} to ${found.primary.node} since the decision`;
  const candidate = nodes.find((n) => n.node === frozen.candidate);
  if (!candidate) return `the candidate ${frozen.candidate} is no longer in the cluster`;
  const why = whyNotMysqlCandidate(candidate, found.primary, policy);
  if (why) return `the candidate no longer qualifies: ${why.reason}`;
  const followers = nodes.filter((n) => n.node !== frozen.primary && n.node !== frozen.candidate).map((n) => whyNotFollower(n, found.primary)).filter(Boolean);
  return followers.length && !frozen.allowDegraded ? `a replica could no longer follow: ${followers.join('; ')}` : undefined;
}
