/**
 * Handover's own metrics, emitted from the worker through the SDK's workflow metric meter (`metricMeter` from
 * @temporalio/workflow). Why there: the meter is the Runtime's, so the series appear on the same Prometheus
 * endpoint as the SDK's own (worker/telemetry.ts), with the namespace, task queue and workflow type as tags;
 * and it is replay-aware (nothing is recorded while a worker replays a history), so a run is counted once,
 * by the worker that executed its end, however often its history is replayed. No command is added to
 * history: committed histories replay unchanged.
 *
 * Two emitters:
 *  - `interceptors` (a workflow interceptor module, bundled with the workflows): counts every runbook run by
 *    runbook, cluster and outcome when it ends, and from the result records the write pause of a switchover,
 *    failovers by trigger, and a backup's completion time and size. It also adds `cluster` and `runbook` to
 *    every log line the workflow writes (the SDK adds the workflow ID).
 *  - `reportMonitorRound`, called by the monitors once per round: rounds and the last verdict per cluster.
 *
 * Names (docs/deploy.md lists them with their labels):
 *   handover_runs_total{runbook,cluster,outcome}            outcome: completed, dry-run, refused, aborted, cancelled, failed
 *   handover_write_pause_seconds{cluster,engine}            histogram, one sample per completed switchover
 *   handover_failovers_total{cluster,trigger,outcome}       trigger: monitor, operator
 *   handover_monitor_rounds_total{cluster}
 *   handover_monitor_verdict{cluster,verdict}               1 for the last round's verdict, 0 for the others
 *   handover_monitor_empty_primary_total{cluster,outcome}   a primary back EMPTY after a restart: saved (failed over) or lost
 *   handover_monitor_empty_primary_lost_keys_total{cluster} keys it held before, when no replica held them any longer
 *   handover_backup_last_success_timestamp_seconds{cluster} when the last verified backup ended (age: time() - it)
 *   handover_backup_last_size_bytes{cluster}                its stored (compressed) size
 */
import { ContinueAsNew, isCancellation, metricMeter, workflowInfo, type WorkflowInterceptorsFactory } from '@temporalio/workflow';
import { REFUSAL_TYPES } from '../core/errors';
import { failureTypeOf } from './runbook';

/** Workflow type -> runbook, for every workflow that is a run (monitors are not: they continue as new). */
export const RUNBOOK_OF_WORKFLOW: Record<string, string> = {
  switchover: 'switchover',
  redisSwitchover: 'switchover',
  mysqlSwitchover: 'switchover',
  rollingRestart: 'rolling-restart',
  redisRollingRestart: 'rolling-restart',
  mysqlRollingRestart: 'rolling-restart',
  failover: 'failover',
  redisFailover: 'failover',
  mysqlFailover: 'failover',
  backup: 'backup',
  verifyBackupRun: 'backup-verify',
  restoreBackupRun: 'restore',
};

export type RunOutcome = 'completed' | 'dry-run' | 'refused' | 'aborted' | 'cancelled' | 'failed';
export const MONITOR_VERDICTS = ['alive', 'suspect', 'dead', 'blocked', 'blind'] as const;
export type MonitorVerdict = (typeof MONITOR_VERDICTS)[number];

/** How a run ended, from its failure (undefined: it returned). */
export function outcomeOf(result: unknown, error?: unknown): RunOutcome {
  if (error === undefined) return (result as { dryRun?: boolean } | undefined)?.dryRun ? 'dry-run' : 'completed';
  const type = failureTypeOf(error);
  if (type === 'Aborted') return 'aborted';
  if (type && REFUSAL_TYPES.has(type)) return 'refused';
  if (isCancellation(error)) return 'cancelled';
  return 'failed';
}

/** Histogram buckets of the write pause, seconds (worker/telemetry.ts passes them to the exporter). */
export const WRITE_PAUSE_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

function recordRun(runbook: string, cluster: string, input: { requestedBy?: string } | undefined, result: unknown, outcome: RunOutcome): void {
  metricMeter.createCounter('handover_runs_total', 'runs', 'Runbook runs that ended, by runbook, cluster and outcome').add(1, { runbook, cluster, outcome });
  if (runbook === 'failover' && outcome !== 'dry-run')
    metricMeter
      .createCounter('handover_failovers_total', 'failovers', 'Failover runs that ended, by cluster, trigger (monitor or operator) and outcome')
      .add(1, { cluster, trigger: input?.requestedBy === 'monitor' ? 'monitor' : 'operator', outcome });
  if (outcome !== 'completed') return;
  const r = result as { writePauseMs?: number; engine?: string; take?: { size?: number } } | undefined;
  if (runbook === 'switchover' && typeof r?.writePauseMs === 'number')
    metricMeter
      .createHistogram('handover_write_pause_seconds', 'float', 's', 'Write pause of each completed switchover (writes refused or blocked), seconds')
      .record(r.writePauseMs / 1000, { cluster, engine: r.engine ?? 'redis' });
  if (runbook === 'backup' && typeof r?.take?.size === 'number') {
    metricMeter.createGauge('handover_backup_last_success_timestamp_seconds', 'float', 's', 'When the last verified backup of the cluster ended (unix seconds)').set(Date.now() / 1000, { cluster });
    metricMeter.createGauge('handover_backup_last_size_bytes', 'int', 'bytes', 'Stored (compressed) size of the last verified backup').set(r.take.size, { cluster });
  }
}

/** One monitor round: the round counter, and the verdict gauge (1 for this round's verdict, 0 for the others). */
export function reportMonitorRound(cluster: string, verdict: MonitorVerdict): void {
  metricMeter.createCounter('handover_monitor_rounds_total', 'rounds', 'Monitor rounds (probe and decide), by cluster').add(1, { cluster });
  const g = metricMeter.createGauge('handover_monitor_verdict', 'int', '', "The monitor's last verdict on the cluster's primary: 1 for the current one");
  for (const v of MONITOR_VERDICTS) g.set(v === verdict ? 1 : 0, { cluster, verdict: v });
}

/** A stretch of monitor rounds run inside the detection activity: `rounds` added to the counter, the last verdict on the gauge. */
export function reportMonitorRounds(cluster: string, rounds: number, verdict: MonitorVerdict): void {
  if (rounds > 0) metricMeter.createCounter('handover_monitor_rounds_total', 'rounds', 'Monitor rounds (probe and decide), by cluster').add(rounds, { cluster });
  const g = metricMeter.createGauge('handover_monitor_verdict', 'int', '', "The monitor's last verdict on the cluster's primary: 1 for the current one");
  for (const v of MONITOR_VERDICTS) g.set(v === verdict ? 1 : 0, { cluster, verdict: v });
}

/**
 * A primary that came back EMPTY or reset (core/empty-primary.ts, core/mysql/empty-primary.ts): `saved` while a replica still held its data (the monitor
 * failed over to it), `lost` once none did (it came back faster than any probe; its replicas resynced from it).
 */
export function reportEmptyPrimary(cluster: string, outcome: 'saved' | 'lost', lostKeys: number): void {
  metricMeter.createCounter('handover_monitor_empty_primary_total', 'events', 'Primaries seen back EMPTY after a restart, by cluster and outcome (saved, lost)').add(1, { cluster, outcome });
  // MySQL/MariaDB: transactions (the sum of the GTID sequence numbers it lost) instead of keys.
  if (outcome === 'lost') metricMeter.createCounter('handover_monitor_empty_primary_lost_keys_total', 'keys', 'Keys (MySQL/MariaDB: transactions) a primary held before it came back empty with no replica left holding them').add(Math.max(0, lostKeys), { cluster });
}

/** The workflow interceptor module (worker/worker.ts bundles it): run metrics and log attributes. */
export const interceptors: WorkflowInterceptorsFactory = () => {
  let attrs: Record<string, string> = {};
  return {
    inbound: [
      {
        async execute(input, next) {
          const arg = input.args[0] as { cluster?: unknown; requestedBy?: string } | undefined;
          const cluster = typeof arg?.cluster === 'string' ? arg.cluster : undefined;
          const type = workflowInfo().workflowType;
          const runbook = RUNBOOK_OF_WORKFLOW[type];
          const logRunbook = runbook ?? (/monitor/i.test(type) ? 'monitor' : /backup/i.test(type) ? 'backup' : undefined);
          attrs = { ...(cluster ? { cluster } : {}), ...(logRunbook ? { runbook: logRunbook } : {}) };
          if (!runbook || !cluster) return next(input);
          let result: unknown;
          try {
            result = await next(input);
          } catch (e) {
            if (!(e instanceof ContinueAsNew)) recordRun(runbook, cluster, arg, undefined, outcomeOf(undefined, e));
            throw e;
          }
          recordRun(runbook, cluster, arg, result, outcomeOf(result));
          return result;
        },
      },
    ],
    outbound: [
      {
        getLogAttributes(input, next) {
          return next({ ...attrs, ...input });
        },
      },
    ],
  };
};
