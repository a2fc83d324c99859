/**
 * What every engine's monitor shares (workflows/<engine>/monitor.ts): the state it carries across
 * continue-as-new, the `status` query and the `acknowledge` signal, so `handover monitor` works for any engine.
 */
import { ApplicationFailure, CancellationScope, continueAsNew, defineQuery, defineSignal, isCancellation, patched, setHandler, sleep, workflowInfo } from '@temporalio/workflow';
import { describeWindow, windowOf, type MaintenanceWindow } from '../core/maintenance';
import { PATCH_HONOUR_MAINTENANCE, openWindows } from './maintenance';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { operationWorkflowId } from '../core/ids';
import { initialDetectState, type DetectState } from '../core/monitor-round';
import type { MysqlFailoverProbe } from '../core/mysql/failover';
import type { RedisClusterProbe } from '../core/types';
import type { WatchInput, WatchResult } from '../activities/monitor';
import type { FailoverInput } from './contracts';
import { reportEmptyPrimary, reportMonitorRound, reportMonitorRounds } from './metrics';
import type { EmptyReturn } from '../core/empty-primary';

/** One failover the monitor ran. Loss fields are certainly lost (a lower bound); unobservedMs how long before the death nothing was seen; loss both in words. */
export interface MonitorFailover {
  at: number;
  from: string;
  to: string;
  detectMs: number;
  /** Redis: bytes the old primary was seen with beyond the promoted offset. */
  lostBytes?: number;
  /** MySQL/MariaDB: transactions the old primary was seen with that the promoted node lacks. */
  lostTransactions?: number;
  unobservedMs?: number;
  loss?: string;
  /** MySQL/MariaDB: the promoted node's position at promotion (a returning node's errant GTIDs are measured from it). */
  promotedGtid?: string;
  fenced?: string;
}

export interface MonitorState {
  cluster: string;
  /** The primary as last seen alive, with its offset (Redis) or gtid_binlog_pos (MySQL) and when it was seen, epoch ms. */
  lastKnown?: { primary: string; offset: number; gtid?: string; seenAt?: number };
  lastFailoverAtMs?: number;
  acknowledged?: boolean;
  failovers: MonitorFailover[];
  blocked?: string;
  /** MySQL/MariaDB: nodes left read-only and not rejoined because of errant GTIDs: node -> the GTIDs. */
  flagged?: Record<string, string[]>;
  roundsPerRun?: number;
}

export interface MonitorStatus extends MonitorState {
  rounds: number;
  lastVerdict?: string;
  fenced: string[];
  /** Why the monitor cannot confirm a death of its primary now (no primary known, ambiguous fleet): shown as a `!` line. */
  blind?: string;
  /** The last time the primary was taken from the fleet instead of memory, and why. */
  adopted?: string;
  /** Nodes whose own configuration lets them take writes when they restart (core/restart-risk.ts), as `!`/`?` lines. */
  restartRisks?: string[];
  flagged: Record<string, string[]>;
  /** Primaries seen back EMPTY after a restart, or reset (core/empty-primary.ts, core/mysql/empty-primary.ts), newest last: shown as `!` lines. */
  emptyReturns?: EmptyReturn[];
}

export const monitorStatusQuery = defineQuery<MonitorStatus>('status');
/** Clear the anti-flapping block: the next confirmed death fails over again. */
export const acknowledgeSignal = defineSignal('acknowledge');

/**
 * Monitors started from here on run their probe loop inside one heartbeating activity per stretch of rounds
 * (activities/monitor.ts) instead of one activity and one timer per round; histories recorded before replay the
 * per-round loop (workflows/<engine>/monitor.ts).
 */
export const PATCH_MONITOR_WATCH = 'monitor-detection-in-activity';
/** The detection activity returns at least this often (status, metrics), whatever happens. */
export const WATCH_CHECKPOINT_MS = 30_000;
/** Rounds per workflow run before it continues as new, on the activity path (its history grows per event, not per round). */
export const WATCH_ROUNDS_PER_RUN = 20_000;

/** What differs between the engines' monitors on the activity path. */
export interface WatchEngine {
  watch: (input: WatchInput) => Promise<WatchResult<RedisClusterProbe | MysqlFailoverProbe>>;
  /** Make `node` follow `primary` (an old primary that came back); failures are tolerated (tried again next time). */
  fence: (status: MonitorStatus, node: string, primary: string) => Promise<void>;
  /** Start the failover child and turn its report into the monitor's record of it. */
  failover: (input: FailoverInput, staticSummary: string) => Promise<{ record: MonitorFailover; lastKnown: NonNullable<MonitorState['lastKnown']>; flagged?: [string, string[]] }>;
  /** Extra work on `acknowledge` (MySQL: forget the flagged nodes). */
  onAcknowledge?: (status: MonitorStatus) => void;
  carry: (status: MonitorStatus) => MonitorState;
}

/**
 * The monitor on the activity path: call the detection activity, act on what it returns (fence, fail over, record
 * a block), call it again with the state it returned. `acknowledge` cancels the running call so the next one
 * starts with the block cleared.
 */
export async function watchMonitor(state: MonitorState, engine: WatchEngine): Promise<void> {
  const { cluster } = state;
  const status: MonitorStatus = { ...state, failovers: state.failovers ?? [], flagged: state.flagged ?? {}, rounds: 0, fenced: [] };
  let running: CancellationScope | undefined;
  let acked = false;
  setHandler(monitorStatusQuery, () => status);
  setHandler(acknowledgeSignal, () => {
    status.acknowledged = true;
    status.blocked = undefined;
    engine.onAcknowledge?.(status);
    acked = true;
    running?.cancel();
  });
  const roundsPerRun = state.roundsPerRun ?? WATCH_ROUNDS_PER_RUN;
  let detect: DetectState = initialDetectState({ lastKnown: status.lastKnown, promotedByMonitor: status.failovers[status.failovers.length - 1]?.to });
  while (status.rounds < roundsPerRun) {
    detect = { ...detect, lastKnown: status.lastKnown, lastFailoverAtMs: status.lastFailoverAtMs, acknowledged: status.acknowledged, flagged: status.flagged };
    acked = false;
    let r: WatchResult<RedisClusterProbe | MysqlFailoverProbe>;
    try {
      const scope = new CancellationScope();
      running = scope;
      r = await scope.run(() =>
        engine.watch({ cluster, state: detect, maxRounds: roundsPerRun - status.rounds, checkpointMs: WATCH_CHECKPOINT_MS }),
      );
    } catch (e) {
      if (isCancellation(e) && acked) continue; // acknowledged: watch again with the block cleared
      if (isCancellation(e)) throw e;
      status.rounds++;
      status.blind = `the probe failed, nothing seen: ${(e as Error).message}`;
      reportMonitorRound(cluster, 'blind');
      await sleep(1000);
      continue;
    } finally {
      running = undefined;
    }
    detect = r.state;
    // A flag the rounds cleared (a node back empty or reset, seen replicating again: re-cloned).
    for (const node of Object.keys(status.flagged)) if (detect.flagged && !(node in detect.flagged)) delete status.flagged[node];
    status.rounds += r.roundsDone;
    status.lastKnown = detect.lastKnown;
    status.lastVerdict = detect.lastVerdict;
    status.blind = detect.blind;
    status.restartRisks = detect.restartRisks;
    // The empty-primary guard's events, each once: the status shows them, the metrics count them.
    for (const ev of (detect.emptyReturns ?? []).filter((x) => !(status.emptyReturns ?? []).some((y) => y.node === x.node && y.at === x.at))) {
      status.emptyReturns = [...(status.emptyReturns ?? []), ev].slice(-5);
      reportEmptyPrimary(cluster, ev.holders.length ? 'saved' : 'lost', ev.before.dbsize - ev.after.dbsize);
    }
    if (detect.adopted) status.adopted = detect.adopted;
    reportMonitorRounds(cluster, r.roundsDone, detect.verdict);
    const a = r.action;
    let held: MaintenanceWindow | undefined;
    if (a.kind === 'fence') {
      for (const node of a.nodes) await engine.fence(status, node, a.primary);
    } else if (a.kind === 'blocked') {
      status.blocked = a.why;
    } else if (a.kind === 'failover' && patched(PATCH_HONOUR_MAINTENANCE) && (held = windowOf(await openWindows(cluster), a.primary, Date.now()))) {
      // Maintenance exclusion (handover maintenance): never a failover from a primary in maintenance.
      status.lastVerdict = `${a.primary} looks dead but ${describeWindow(held)}: no failover from a node in maintenance`;
      detect = { ...detect, verdicts: [], firstDeadAt: undefined };
    } else if (a.kind === 'failover') {
      try {
        const done = await engine.failover(
          {
            cluster,
            confirmedBy: workflowInfo().workflowId,
            lastKnown: detect.lastKnown,
            deadSince: detect.lostSightAt ?? detect.firstDeadAt,
            requestedBy: 'monitor',
            ...(r.probe ? { confirmed: { reason: a.reason, probe: r.probe, ...(a.returnedEmpty ? { returnedEmpty: a.returnedEmpty } : {}) } } : {}),
          },
          `automatic failover of ${cluster} (${a.primary} dead)`,
        );
        status.failovers.push({ ...done.record, detectMs: Date.now() - (detect.firstDeadAt ?? Date.now()) });
        if (done.flagged) status.flagged[done.flagged[0]] = done.flagged[1];
        status.lastKnown = done.lastKnown;
        status.lastFailoverAtMs = Date.now();
        status.acknowledged = false;
        detect = { ...detect, promotedByMonitor: done.lastKnown.primary };
      } catch (e) {
        // Another operation holds the cluster's lock: nothing was started; the next confirmed round tries again.
        status.lastVerdict =
          e instanceof WorkflowExecutionAlreadyStartedError
            ? `failover did not run: already running: ${operationWorkflowId(cluster)} (another operation holds the cluster; retried after it ends)`
            : `failover did not run or failed: ${(e as Error).message}`;
      }
      detect = { ...detect, verdicts: [], firstDeadAt: undefined };
    }
  }
  await continueAsNew<(s: MonitorState) => Promise<void>>(engine.carry(status));
  throw ApplicationFailure.create({ message: 'unreachable' });
}
