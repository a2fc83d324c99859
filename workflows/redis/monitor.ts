/**
 * The per-cluster monitor (ID handover-monitor-<cluster>): probes the cluster every `probeIntervalMs`; each
 * round it takes the primary from the fleet, not from memory (core/monitor-topology.ts: the one master every
 * reachable replica follows), so a switchover or rolling restart by anyone moves it, and it refreshes that
 * primary's offset and the time it was seen (the data-loss window's known part);
 * when the DeadMaster rule holds for `probesToConfirm` consecutive rounds it starts the failover as a child
 * workflow on the cluster's lock ID (so it never runs beside another operation), unless anti-flapping blocks
 * it; a node that answers as primary beside the primary it promoted is fenced (made a replica) before
 * anything else. Continues as new every `roundsPerRun` rounds to bound its history.
 */
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { ApplicationFailure, continueAsNew, executeChild, patched, setHandler, sleep, workflowInfo } from '@temporalio/workflow';
import { deadMasterRound } from '../../core/redis/failover';
import { confirmedDead, whyBlocked, type Verdict } from '../../core/failover';
import { SA_CLUSTER, SA_RUNBOOK, operationWorkflowId } from '../../core/ids';
import { followTopology, redisTopo } from '../../core/monitor-topology';
import { redisRestartRisks, riskLine } from '../../core/restart-risk';
import { probe, watch } from '../profiles';
import { PATCH_MONITOR_WATCH, acknowledgeSignal, monitorStatusQuery, watchMonitor, type MonitorState, type MonitorStatus, type WatchEngine } from '../monitor';
import type { FailoverInput } from '../contracts';
import type { FailoverReport } from './failover';
import { reportMonitorRound, type MonitorVerdict } from '../metrics';

/** The Redis/Valkey side of the activity-path monitor (workflows/monitor.ts watchMonitor). */
const redisWatch: WatchEngine = {
  watch: (input) => watch.watchRedisCluster.executeWithOptions({ summary: `monitor: watch ${input.cluster}` }, [input]),
  fence: async (status, node, primary) => {
    await probe.ensureRedisFenced.executeWithOptions({ summary: `fence ${node}: make it a replica of ${primary}` }, [{ cluster: status.cluster, node, primary }]).then(
      () => status.fenced.push(node),
      () => undefined,
    );
  },
  failover: async (input, staticSummary) => {
    const report = (await executeChild('redisFailover', {
      workflowId: operationWorkflowId(input.cluster),
      args: [input],
      typedSearchAttributes: [
        { key: SA_CLUSTER, value: input.cluster },
        { key: SA_RUNBOOK, value: 'failover' },
      ],
      staticSummary,
    })) as FailoverReport;
    return {
      record: { at: Date.now(), from: report.oldPrimary, to: report.newPrimary, detectMs: 0, lostBytes: report.dataLossWindow.bytes, unobservedMs: report.dataLossWindow.unobservedMs, loss: report.dataLossWindow.summary },
      lastKnown: { primary: report.newPrimary, offset: report.dataLossWindow.promotedOffset, seenAt: Date.now() },
    };
  },
  carry: (status) => ({ cluster: status.cluster, lastKnown: status.lastKnown, lastFailoverAtMs: status.lastFailoverAtMs, acknowledged: status.acknowledged, failovers: status.failovers, blocked: status.blocked, roundsPerRun: status.roundsPerRun }),
};

export async function redisMonitor(state: MonitorState): Promise<void> {
  if (patched(PATCH_MONITOR_WATCH)) return watchMonitor(state, redisWatch);
  const { cluster } = state;
  const status: MonitorStatus = { ...state, failovers: state.failovers ?? [], flagged: state.flagged ?? {}, rounds: 0, fenced: [] };
  setHandler(monitorStatusQuery, () => status);
  setHandler(acknowledgeSignal, () => {
    status.acknowledged = true;
    status.blocked = undefined;
  });
  const verdicts: Verdict[] = [];
  let firstDeadAt: number | undefined;
  /** The first round, since the primary was last seen alive, that did not see it (its death is before this). */
  let lostSightAt: number | undefined;
  const roundsPerRun = state.roundsPerRun ?? 500;
  for (let i = 0; i < roundsPerRun; i++) {
    status.rounds++;
    /** For the metrics: blind until a probe names a primary (workflows/metrics.ts). */
    let roundVerdict: MonitorVerdict = 'blind';
    let probeError = '';
    const p = await probe.probeRedisCluster.executeWithOptions({ summary: `monitor: probe ${cluster}`, retry: { maximumAttempts: 1 } }, [{ cluster }]).catch((e: Error) => {
      probeError = e.message;
      return undefined;
    });
    if (!p) {
      status.blind = `the probe failed, nothing seen this round: ${probeError}`;
      lostSightAt ??= Date.now();
    }
    if (p) {
      const seenAt = Date.parse(p.probedAt);
      const follow = followTopology(redisTopo(p.nodes), status.lastKnown?.primary, status.failovers[status.failovers.length - 1]?.to);
      status.blind = follow.blind;
      status.restartRisks = redisRestartRisks(p.nodes, p.topology).map(riskLine);
      if (follow.adopted) {
        status.adopted = follow.adopted;
        verdicts.length = 0;
        firstDeadAt = undefined;
      }
      const primary = follow.primary;
      const live = p.nodes.find((n) => n.node === primary && n.reachable && n.role === 'primary');
      // The primary's offset, fresh every round: the known part of a later failover's data-loss window.
      if (live) status.lastKnown = { primary: live.node, offset: live.offset ?? 0, seenAt };
      if (live) lostSightAt = undefined;
      else if (lostSightAt === undefined) lostSightAt = seenAt;
      // Fencing: another node claiming the role beside the live primary (an old primary that came back; the
      // replicas follow the real one) is made a replica first.
      if (live) {
        for (const n of p.nodes.filter((x) => x.reachable && x.role === 'primary' && x.node !== live.node)) {
          await probe.ensureRedisFenced.executeWithOptions({ summary: `fence ${n.node}: make it a replica of ${live.node}` }, [{ cluster, node: n.node, primary: live.node }]).then(
            () => status.fenced.push(n.node),
            () => undefined,
          );
        }
      }
      const v: Verdict = primary ? deadMasterRound(p.nodes, primary) : { dead: false, reason: 'no primary known yet' };
      verdicts.push(v);
      if (verdicts.length > 20) verdicts.shift();
      status.lastVerdict = v.reason;
      if (primary) roundVerdict = v.dead ? 'suspect' : 'alive';
      if (v.dead && firstDeadAt === undefined) firstDeadAt = seenAt;
      if (!v.dead) firstDeadAt = undefined;
      if (primary && confirmedDead(verdicts, p.policy.probesToConfirm)) {
        const blocked = whyBlocked(status.lastFailoverAtMs, Date.now(), p.policy.failoverBlockMs, !!status.acknowledged);
        status.blocked = blocked;
        roundVerdict = blocked ? 'blocked' : 'dead';
        if (!blocked) {
          try {
            const report = (await executeChild('redisFailover', {
              workflowId: operationWorkflowId(cluster),
              args: [{ cluster, confirmedBy: workflowInfo().workflowId, lastKnown: status.lastKnown, deadSince: lostSightAt ?? firstDeadAt, requestedBy: 'monitor' } satisfies FailoverInput],
              typedSearchAttributes: [
                { key: SA_CLUSTER, value: cluster },
                { key: SA_RUNBOOK, value: 'failover' },
              ],
              staticSummary: `automatic failover of ${cluster} (${primary} dead)`,
            })) as FailoverReport;
            status.failovers.push({
              at: Date.now(),
              from: report.oldPrimary,
              to: report.newPrimary,
              detectMs: Date.now() - (firstDeadAt ?? Date.now()),
              lostBytes: report.dataLossWindow.bytes,
              unobservedMs: report.dataLossWindow.unobservedMs,
              loss: report.dataLossWindow.summary,
            });
            status.lastKnown = { primary: report.newPrimary, offset: report.dataLossWindow.promotedOffset, seenAt: Date.now() };
            status.lastFailoverAtMs = Date.now();
            status.acknowledged = false;
          } catch (e) {
            // Another operation holds the cluster's lock: nothing was started; the next confirmed round tries again.
            status.lastVerdict =
              e instanceof WorkflowExecutionAlreadyStartedError
                ? `failover did not run: already running: ${operationWorkflowId(cluster)} (another operation holds the cluster; retried after it ends)`
                : `failover did not run or failed: ${(e as Error).message}`;
          }
          verdicts.length = 0;
          firstDeadAt = undefined;
        }
      }
    }
    reportMonitorRound(cluster, roundVerdict);
    await sleep(p?.policy.probeIntervalMs ?? 1000);
  }
  const carry: MonitorState = {
    cluster,
    lastKnown: status.lastKnown,
    lastFailoverAtMs: status.lastFailoverAtMs,
    acknowledged: status.acknowledged,
    failovers: status.failovers,
    blocked: status.blocked,
    roundsPerRun: state.roundsPerRun,
  };
  await continueAsNew<typeof redisMonitor>(carry);
  throw ApplicationFailure.create({ message: 'unreachable' });
}
