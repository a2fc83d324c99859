/**
 * One monitor round, decided: what the monitor concludes from one probe of the fleet, and whether that needs
 * the workflow. Pure: no I/O, no clock (the caller passes the probe and `nowMs`).
 *
 * The monitor's probe loop runs inside one long heartbeating activity (activities/<engine>/monitor.ts): it
 * probes every `probeIntervalMs`, feeds each probe to `redisMonitorRound` / `mysqlMonitorRound`, heartbeats the
 * returned state (a retried attempt resumes from it) and returns to the workflow only when the action is not
 * `none`: a confirmed DeadMaster (failover), a node to fence, an anti-flapping block, or a change of what the
 * monitor reports (its primary, why it is blind, the restart risks). So the monitor's history grows with events,
 * not rounds. Each rule is the one the per-round workflow loop applied (workflows/<engine>/monitor.ts keeps that
 * loop for histories recorded before the activity): the primary is taken from the fleet (core/monitor-topology.ts),
 * its position refreshed every round (the data-loss window's known part), a node claiming the role beside the
 * live primary fenced first, and the failover started after `probesToConfirm` consecutive DeadMaster rounds
 * unless anti-flapping blocks it. Checks that need the whole round (the empty-primary guard, say) belong here.
 */
import { confirmedDead, whyBlocked, type Verdict } from './failover';
import { followTopology, mysqlTopo, redisTopo, type TopoNode } from './monitor-topology';
import { deadMasterRound } from './redis/failover';
import { mysqlDeadMasterRound, type MysqlFailoverProbe } from './mysql/failover';
import { mysqlRestartRisks, redisRestartRisks, riskLine } from './restart-risk';
import type { RedisClusterProbe } from './types';
import { primaryRestartedEmpty, updateDatasets, type Datasets, type EmptyReturn } from './empty-primary';
import { mysqlPrimaryReset, updateMysqlDatasets } from './mysql/empty-primary';

/** The floor and the cap of a monitor probe's default deadline (ms); see `probeDeadlineMs`. */
export const PROBE_DEADLINE_FLOOR_MS = 500;
export const PROBE_DEADLINE_CAP_MS = 5_000;

/**
 * How long one node's probe may take inside a monitor round before the node counts as unreachable for that round
 * ("no answer within N ms"): the policy's `probeTimeoutMs` when set, else `probeIntervalMs` with a floor of 500 ms
 * (a healthy probe takes milliseconds; the floor keeps a loaded worker or network from reading as silence), capped
 * at 5 s (the drivers' own command timeouts: above them the deadline would bound nothing). Without it a silent node
 * (partition, a host whose packets vanish) holds every round up to the drivers' timeouts, and `probesToConfirm`
 * rounds take ~15 s instead of `probesToConfirm × probeIntervalMs`. A node that misses the deadline is only
 * "unreachable": a DeadMaster verdict still needs every reachable replica to report its link down
 * (core/redis/failover.ts deadMasterRound, core/mysql/failover.ts mysqlDeadMasterRound), so a slow but alive
 * primary whose replicas are still linked is never failed over.
 */
export function probeDeadlineMs(policy: { probeIntervalMs: number; probeTimeoutMs?: number }): number {
  if (policy.probeTimeoutMs !== undefined) return policy.probeTimeoutMs;
  return Math.min(PROBE_DEADLINE_CAP_MS, Math.max(PROBE_DEADLINE_FLOOR_MS, policy.probeIntervalMs));
}

/** The verdict a round reports to the metrics (workflows/metrics.ts MONITOR_VERDICTS). */
export type RoundVerdict = 'alive' | 'suspect' | 'dead' | 'blocked' | 'blind';

/** What the detection loop carries from round to round, across activity returns and retried attempts. */
export interface DetectState {
  /** The primary as last seen alive (Redis offset, MySQL gtid_binlog_pos) and when, epoch ms. */
  lastKnown?: { primary: string; offset: number; gtid?: string; seenAt?: number };
  /** The node the monitor's own last failover promoted (never followed away from while it takes writes). */
  promotedByMonitor?: string;
  /** The last rounds' verdicts on the primary, oldest first (at most 20). */
  verdicts: Verdict[];
  firstDeadAt?: number;
  /** The first round, since the primary was last seen alive, that did not see it (its death is before this). */
  lostSightAt?: number;
  /** MySQL/MariaDB: rounds in a row each node was seen read-only and replicating from nobody beside the primary. */
  readOnlyRootRounds: Record<string, number>;
  /** MySQL/MariaDB: nodes left read-only and flagged (errant GTIDs): never fenced again automatically. */
  flagged: Record<string, string[]>;
  /** Anti-flapping inputs (frozen by the workflow for one activity call). */
  lastFailoverAtMs?: number;
  acknowledged?: boolean;
  /** The block already reported to the workflow for this primary (reported once, not every round). */
  blockedReported?: string;
  rounds: number;
  lastVerdict?: string;
  verdict: RoundVerdict;
  blind?: string;
  adopted?: string;
  restartRisks?: string[];
  /**
   * Each node's dataset as last seen: the empty-primary guard's memory (Redis/Valkey: run_id, replid, offset,
   * DBSIZE; MySQL/MariaDB: GTID position, binlog state, server start).
   */
  datasets?: Datasets;
  /** The primary came back empty (MySQL/MariaDB: or reset) while replicas still hold its data (not followed until resolved). */
  emptyPrimary?: EmptyReturn;
  /** The last empty returns of a primary seen (at most 5), saved or lost: reported loudly. */
  emptyReturns?: EmptyReturn[];
}

export type RoundAction =
  | { kind: 'none' }
  | { kind: 'changed'; what: string }
  | { kind: 'fence'; primary: string; nodes: string[] }
  | { kind: 'failover'; primary: string; reason: string; returnedEmpty?: { node: string; runId?: string } }
  | { kind: 'blocked'; primary: string; why: string };

export interface RoundResult {
  state: DetectState;
  action: RoundAction;
}

export function initialDetectState(o: Partial<DetectState> = {}): DetectState {
  return { verdicts: [], readOnlyRootRounds: {}, flagged: {}, rounds: 0, verdict: 'blind', ...o };
}

/** What the report shows besides counters: a change of it returns to the workflow (status, history). */
const shown = (s: DetectState) => JSON.stringify([s.lastKnown?.primary, s.blind, s.restartRisks ?? [], s.adopted, s.emptyReturns?.length ?? 0, Object.keys(s.flagged ?? {}).length]);

/** A node flagged because it came back empty or reset (workflows/mysql/failover.ts): only re-cloning clears it. */
export const isResetFlag = (gtids: string[] | undefined) => !!gtids?.[0]?.startsWith('reset:');

interface EngineRound {
  topo: TopoNode[];
  seenAt: number;
  restartRisks: string[];
  probesToConfirm: number;
  failoverBlockMs: number;
  /** The live primary's position when `primary` answers as the writable primary this round. */
  live: (primary: string | undefined) => DetectState['lastKnown'] | undefined;
  /** Nodes to fence beside the live primary (given the state after this round's counters). */
  toFence: (primary: string, s: DetectState) => string[];
  verdictOf: (primary: string) => Verdict;
  /**
   * Refresh the datasets and say whether `primary` came back empty this round (core/empty-primary.ts,
   * core/mysql/empty-primary.ts).
   * Its dataset is not refreshed while it is held empty, so each round compares with what it held before.
   */
  emptyCheck?: (s: DetectState, primary: string | undefined) => { datasets: Datasets; empty?: EmptyReturn };
}

function round(prev: DetectState, e: EngineRound, nowMs: number): RoundResult {
  const s: DetectState = { ...prev, verdicts: [...prev.verdicts], readOnlyRootRounds: { ...prev.readOnlyRootRounds }, rounds: prev.rounds + 1 };
  const follow = followTopology(e.topo, s.lastKnown?.primary, s.promotedByMonitor);
  s.blind = follow.blind;
  s.restartRisks = e.restartRisks;
  if (follow.adopted) {
    s.adopted = follow.adopted;
    s.verdicts = [];
    s.firstDeadAt = undefined;
  }
  const primary = follow.primary;
  let empty: EmptyReturn | undefined;
  if (e.emptyCheck) {
    const c = e.emptyCheck(prev, primary);
    s.datasets = c.datasets;
    empty = c.empty;
    // A new empty return (or the first sight of it with nobody left to save) is recorded, loudly, once.
    const last = prev.emptyReturns?.[prev.emptyReturns.length - 1];
    const known =
      !!empty &&
      ((prev.emptyPrimary?.node === empty.node && prev.emptyPrimary.after.runId === empty.after.runId) ||
        // A loss already reported, seen again (MySQL/MariaDB: replicas that may not be promoted still hold more).
        (!empty.holders.length && !last?.holders.length && last?.node === empty.node && last.before.gtid === empty.before.gtid && last.after.startedAt === empty.after.startedAt && last.after.runId === empty.after.runId));
    if (empty && (!known || (prev.emptyPrimary?.holders.length && !empty.holders.length))) s.emptyReturns = [...(prev.emptyReturns ?? []), empty].slice(-5);
    s.emptyPrimary = empty?.holders.length ? empty : undefined;
  }
  // A primary that came back empty is not seen alive: its last sight (the data-loss window) stays the one before.
  const live = empty?.holders.length ? undefined : e.live(primary);
  if (live) {
    s.lastKnown = live;
    s.lostSightAt = undefined;
  } else s.lostSightAt ??= e.seenAt;
  const fence = primary ? e.toFence(primary, s) : [];
  const changed = shown(s) !== shown(prev);
  if (primary && live && fence.length) return { state: s, action: { kind: 'fence', primary, nodes: fence } };
  if (primary && s.emptyPrimary) {
    // The restart is proven (run_id) and the loss certain if it is followed: fail over now, no confirmation rounds.
    const reason = s.emptyPrimary.text;
    s.verdicts.push({ dead: true, primary, reason });
    if (s.verdicts.length > 20) s.verdicts.shift();
    s.lastVerdict = reason;
    s.firstDeadAt ??= e.seenAt;
    const blocked = whyBlocked(s.lastFailoverAtMs, nowMs, e.failoverBlockMs, !!s.acknowledged);
    if (!blocked) {
      s.verdict = 'dead';
      return { state: s, action: { kind: 'failover', primary, reason, returnedEmpty: { node: primary, runId: s.emptyPrimary.after.runId } } };
    }
    s.verdict = 'blocked';
    if (s.blockedReported !== primary) {
      s.blockedReported = primary;
      return { state: s, action: { kind: 'blocked', primary, why: `${reason}; but ${blocked}` } };
    }
    return { state: s, action: changed ? { kind: 'changed', what: reason } : { kind: 'none' } };
  }
  const v: Verdict = primary ? e.verdictOf(primary) : { dead: false, reason: 'no primary known yet' };
  s.verdicts.push(v);
  if (s.verdicts.length > 20) s.verdicts.shift();
  s.lastVerdict = v.reason;
  s.verdict = primary ? (v.dead ? 'suspect' : 'alive') : 'blind';
  if (v.dead) s.firstDeadAt ??= e.seenAt;
  else s.firstDeadAt = undefined;
  if (!v.dead && s.blockedReported) s.blockedReported = undefined;
  if (primary && confirmedDead(s.verdicts, e.probesToConfirm)) {
    const blocked = whyBlocked(s.lastFailoverAtMs, nowMs, e.failoverBlockMs, !!s.acknowledged);
    if (!blocked) {
      s.verdict = 'dead';
      return { state: s, action: { kind: 'failover', primary, reason: v.reason } };
    }
    s.verdict = 'blocked';
    if (s.blockedReported !== primary) {
      s.blockedReported = primary;
      return { state: s, action: { kind: 'blocked', primary, why: blocked } };
    }
  }
  if (changed) return { state: s, action: { kind: 'changed', what: follow.adopted ?? s.blind ?? 'restart risks changed' } };
  return { state: s, action: { kind: 'none' } };
}

/** One round of the Redis/Valkey monitor over a probe of every node. */
export function redisMonitorRound(prev: DetectState, p: RedisClusterProbe, nowMs: number): RoundResult {
  const seenAt = Date.parse(p.probedAt);
  return round(
    prev,
    {
      topo: redisTopo(p.nodes),
      seenAt,
      restartRisks: redisRestartRisks(p.nodes, p.topology, { autoRestart: p.autoRestart, detectionWindowMs: p.policy.probeIntervalMs * p.policy.probesToConfirm }).map(riskLine),
      probesToConfirm: p.policy.probesToConfirm,
      failoverBlockMs: p.policy.failoverBlockMs,
      live: (primary) => {
        const n = p.nodes.find((x) => x.node === primary && x.reachable && x.role === 'primary');
        return n ? { primary: n.node, offset: n.offset ?? 0, seenAt } : undefined;
      },
      // Another node claiming the role beside the live primary (an old primary that came back; the replicas
      // follow the real one) is made a replica first.
      toFence: (primary) => p.nodes.filter((x) => x.reachable && x.role === 'primary' && x.node !== primary).map((x) => x.node),
      verdictOf: (primary) => deadMasterRound(p.nodes, primary),
      emptyCheck: (prev, primary) => {
        const empty = primary ? primaryRestartedEmpty(prev.datasets, p.nodes, primary, seenAt, prev.emptyPrimary) : undefined;
        // Held empty: its dataset keeps what it had before, so the next round still compares with that.
        return { datasets: updateDatasets(prev.datasets, p.nodes, seenAt, empty?.holders.length ? [empty.node] : []), empty };
      },
    },
    nowMs,
  );
}

/** One round of the MySQL/MariaDB monitor over the failover probe of every node. */
export function mysqlMonitorRound(prev: DetectState, p: MysqlFailoverProbe, nowMs: number): RoundResult {
  const seenAt = Date.parse(p.probedAt);
  return round(
    prev,
    {
      topo: mysqlTopo(p.nodes),
      seenAt,
      restartRisks: mysqlRestartRisks(p.nodes).map(riskLine),
      probesToConfirm: p.policy.probesToConfirm,
      failoverBlockMs: p.policy.failoverBlockMs,
      live: (primary) => {
        const n = p.nodes.find((x) => x.node === primary && x.reachable && x.role === 'primary');
        return n ? { primary: n.node, offset: 0, gtid: n.gtidBinlogPos ?? '', seenAt } : undefined;
      },
      // While the primary answers writable, any other node replicating from nobody (an old primary that came
      // back) is fenced: a writable one at once; a read-only one only once seen so for probesToConfirm rounds,
      // so a runbook repointing it right now (the old primary at the end of a switchover) is not raced.
      toFence: (primary, s) => {
        const seen = p.nodes.find((x) => x.node === primary);
        // A node flagged as back empty or reset is cleared once it replicates from the primary again (re-cloned).
        for (const [node, gtids] of Object.entries(s.flagged)) {
          const x = p.nodes.find((n) => n.node === node);
          if (isResetFlag(gtids) && x?.reachable && x.role === 'replica' && x.sourceNode === primary && x.ioRunning === 'Yes' && x.sqlRunning) {
            s.flagged = { ...s.flagged };
            delete s.flagged[node];
          }
        }
        const roots = p.nodes.filter((x) => x.reachable && x.node !== primary && x.role === 'primary' && !s.flagged[x.node]);
        for (const k of Object.keys(s.readOnlyRootRounds)) if (!roots.some((x) => x.node === k && x.readOnly)) delete s.readOnlyRootRounds[k];
        for (const x of roots) if (x.readOnly) s.readOnlyRootRounds[x.node] = (s.readOnlyRootRounds[x.node] ?? 0) + 1;
        if (!seen || seen.readOnly !== false) return [];
        return roots.filter((x) => !x.readOnly || s.readOnlyRootRounds[x.node] >= p.policy.probesToConfirm).map((x) => x.node);
      },
      verdictOf: (primary) => mysqlDeadMasterRound(p.nodes, primary),
      emptyCheck: (prev, primary) => {
        const empty = primary ? mysqlPrimaryReset(prev.datasets, p.nodes, primary, seenAt, prev.emptyPrimary) : undefined;
        // Held empty: its dataset keeps what it had before, so the next round still compares with that.
        return { datasets: updateMysqlDatasets(prev.datasets, p.nodes, seenAt, empty?.holders.length ? [empty.node] : []), empty };
      },
    },
    nowMs,
  );
}

/** A round in which the probe itself failed: nothing seen (the primary's death, if any, is before this). */
export function failedProbeRound(prev: DetectState, error: string, nowMs: number): RoundResult {
  const s: DetectState = { ...prev, rounds: prev.rounds + 1, blind: `the probe failed, nothing seen this round: ${error}`, verdict: 'blind' };
  s.lostSightAt ??= nowMs;
  return { state: s, action: shown(s) !== shown(prev) ? { kind: 'changed', what: s.blind! } : { kind: 'none' } };
}
