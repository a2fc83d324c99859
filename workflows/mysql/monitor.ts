/**
 * The per-cluster monitor for MySQL/MariaDB (ID handover-monitor-<cluster>), the Redis monitor's shape:
 * probes every `probeIntervalMs`; each round takes the primary from the fleet, not from memory
 * (core/monitor-topology.ts: the one writable node every reachable replica follows), so a switchover or rolling
 * restart by anyone moves it, and refreshes that primary's gtid_binlog_pos and when it was seen; when the DeadMaster rule (primary unreachable, every replica's IO thread
 * down) holds for `probesToConfirm` consecutive rounds it starts `mysqlFailover` as a child workflow on the
 * cluster's lock ID, unless anti-flapping blocks it. A node that answers replicating from nobody beside the
 * live primary (an old primary that came back) is fenced first: read_only ON, then made a replica; with
 * errant GTIDs it is left read-only and flagged (status.flagged), never rejoined automatically.
 * Continues as new every `roundsPerRun` rounds to bound its history. Same `status` query and `acknowledge`
 * signal as the Redis monitor, so `handover monitor` works unchanged.
 */
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { ApplicationFailure, continueAsNew, executeChild, patched, setHandler, sleep, workflowInfo } from '@temporalio/workflow';
import { confirmedDead, whyBlocked, type Verdict } from '../../core/failover';
import { mysqlDeadMasterRound } from '../../core/mysql/failover';
import { SA_CLUSTER, SA_RUNBOOK, operationWorkflowId } from '../../core/ids';
import { followTopology, mysqlTopo } from '../../core/monitor-topology';
import { mysqlRestartRisks, riskLine } from '../../core/restart-risk';
import { probe, watch } from '../profiles';
import { PATCH_MONITOR_WATCH, acknowledgeSignal, monitorStatusQuery, watchMonitor, type MonitorState, type MonitorStatus, type WatchEngine } from '../monitor';
import type { FailoverInput } from '../contracts';
import type { MysqlFailoverReport } from './failover';
import { reportMonitorRound, type MonitorVerdict } from '../metrics';
import { isResetFlag } from '../../core/monitor-round';

/** The MySQL/MariaDB side of the activity-path monitor (workflows/monitor.ts watchMonitor). */
const mysqlWatch: WatchEngine = {
  watch: (input) => watch.watchMysqlCluster.executeWithOptions({ summary: `monitor: watch ${input.cluster}` }, [input]),
  fence: async (status, node, primary) => {
    const last = [...status.failovers].reverse().find((f) => f.from === node);
    await probe.ensureMysqlRejoined
      .executeWithOptions({ summary: `fence ${node}: read-only, then a replica of ${primary}`, retry: { maximumAttempts: 2 } }, [{ cluster: status.cluster, node, primary, promotedGtid: last?.promotedGtid }])
      .then(
        (r) => {
          status.fenced.push(node);
          if (r.outcome === 'flagged') status.flagged[node] = r.errantGtids;
        },
        () => undefined,
      );
  },
  failover: async (input, staticSummary) => {
    const report = (await executeChild('mysqlFailover', {
      workflowId: operationWorkflowId(input.cluster),
      args: [input],
      typedSearchAttributes: [
        { key: SA_CLUSTER, value: input.cluster },
        { key: SA_RUNBOOK, value: 'failover' },
      ],
      staticSummary,
    })) as MysqlFailoverReport;
    return {
      record: {
        at: Date.now(),
        from: report.oldPrimary,
        to: report.newPrimary,
        detectMs: 0,
        lostTransactions: report.dataLossWindow.transactions,
        unobservedMs: report.dataLossWindow.unobservedMs,
        loss: report.dataLossWindow.summary,
        promotedGtid: report.dataLossWindow.promotedGtid,
        fenced: report.fenced,
      },
      lastKnown: { primary: report.newPrimary, offset: 0, gtid: report.dataLossWindow.promotedGtid, seenAt: Date.now() },
      ...(report.fenced === 'flagged' && report.errantGtids ? { flagged: [report.oldPrimary, report.errantGtids] as [string, string[]] } : {}),
    };
  },
  onAcknowledge: (status) => {
    // The operator resolved them: fence (and flag again if still errant) at the next probe. A node back empty or
    // reset stays flagged (rejoined from its own position it would skip what it lost) until it is seen
    // replicating again, re-cloned (core/monitor-round.ts).
    status.flagged = Object.fromEntries(Object.entries(status.flagged).filter(([, g]) => isResetFlag(g)));
  },
  carry: (status) => ({
    cluster: status.cluster,
    lastKnown: status.lastKnown,
    lastFailoverAtMs: status.lastFailoverAtMs,
    acknowledged: status.acknowledged,
    failovers: status.failovers,
    blocked: status.blocked,
    flagged: status.flagged,
    roundsPerRun: status.roundsPerRun,
  }),
};

export async function mysqlMonitor(state: MonitorState): Promise<void> {
  if (patched(PATCH_MONITOR_WATCH)) return watchMonitor(state, mysqlWatch);
  const { cluster } = state;
  const status: MonitorStatus = { ...state, failovers: state.failovers ?? [], flagged: state.flagged ?? {}, rounds: 0, fenced: [] };
  setHandler(monitorStatusQuery, () => status);
  setHandler(acknowledgeSignal, () => {
    status.acknowledged = true;
    status.blocked = undefined;
    status.flagged = {}; // the operator resolved them: fence (and flag again if still errant) at the next probe
  });
  const verdicts: Verdict[] = [];
  let firstDeadAt: number | undefined;
  /** The first round, since the primary was last seen alive, that did not see it (its death is before this). */
  let lostSightAt: number | undefined;
  /** Rounds in a row each node was seen read-only and replicating from nobody beside the primary. */
  const readOnlyRootRounds: Record<string, number> = {};
  const roundsPerRun = state.roundsPerRun ?? 500;
  for (let i = 0; i < roundsPerRun; i++) {
    status.rounds++;
    /** For the metrics: blind until a probe names a primary (workflows/metrics.ts). */
    let roundVerdict: MonitorVerdict = 'blind';
    let probeError = '';
    const p = await probe.probeMysqlFailover.executeWithOptions({ summary: `monitor: probe ${cluster}`, retry: { maximumAttempts: 1 } }, [{ cluster }]).catch((e: Error) => {
      probeError = e.message;
      return undefined;
    });
    if (!p) {
      status.blind = `the probe failed, nothing seen this round: ${probeError}`;
      lostSightAt ??= Date.now();
    }
    if (p) {
      const seenAt = Date.parse(p.probedAt);
      const follow = followTopology(mysqlTopo(p.nodes), status.lastKnown?.primary, status.failovers[status.failovers.length - 1]?.to);
      status.blind = follow.blind;
      status.restartRisks = mysqlRestartRisks(p.nodes).map(riskLine);
      if (follow.adopted) {
        status.adopted = follow.adopted;
        verdicts.length = 0;
        firstDeadAt = undefined;
      }
      const primary = follow.primary;
      // The primary's position, fresh every round: the known part of a later failover's data-loss window.
      const seen = p.nodes.find((n) => n.node === primary && n.reachable && n.role === 'primary');
      if (seen) status.lastKnown = { primary: seen.node, offset: 0, gtid: seen.gtidBinlogPos ?? '', seenAt };
      if (seen) lostSightAt = undefined;
      else if (lostSightAt === undefined) lostSightAt = seenAt;
      // Fencing: while the primary answers writable, any other node replicating from nobody (an old primary that
      // came back: the replicas follow the real one) is fenced before anything else. A writable one at once; a
      // read-only one takes no writes, so it is rejoined only once seen so for probesToConfirm rounds: a runbook
      // that is repointing it right now (the old primary at the end of a switchover) is not raced.
      const roots = p.nodes.filter((x) => x.reachable && x.node !== primary && x.role === 'primary' && !status.flagged[x.node]);
      for (const k of Object.keys(readOnlyRootRounds)) if (!roots.some((x) => x.node === k && x.readOnly)) delete readOnlyRootRounds[k];
      for (const x of roots) if (x.readOnly) readOnlyRootRounds[x.node] = (readOnlyRootRounds[x.node] ?? 0) + 1;
      if (primary && seen && seen.readOnly === false) {
        for (const n of roots.filter((x) => !x.readOnly || readOnlyRootRounds[x.node] >= p.policy.probesToConfirm)) {
          const last = [...status.failovers].reverse().find((f) => f.from === n.node);
          await probe.ensureMysqlRejoined
            .executeWithOptions({ summary: `fence ${n.node}: read-only, then a replica of ${primary}`, retry: { maximumAttempts: 2 } }, [{ cluster, node: n.node, primary, promotedGtid: last?.promotedGtid }])
            .then(
              (r) => {
                status.fenced.push(n.node);
                if (r.outcome === 'flagged') status.flagged[n.node] = r.errantGtids;
              },
              () => undefined,
            );
        }
      }
      const v: Verdict = primary ? mysqlDeadMasterRound(p.nodes, primary) : { dead: false, reason: 'no primary known yet' };
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
            const report = (await executeChild('mysqlFailover', {
              workflowId: operationWorkflowId(cluster),
              args: [{ cluster, confirmedBy: workflowInfo().workflowId, lastKnown: status.lastKnown, deadSince: lostSightAt ?? firstDeadAt, requestedBy: 'monitor' } satisfies FailoverInput],
              typedSearchAttributes: [
                { key: SA_CLUSTER, value: cluster },
                { key: SA_RUNBOOK, value: 'failover' },
              ],
              staticSummary: `automatic failover of ${cluster} (${primary} dead)`,
            })) as MysqlFailoverReport;
            status.failovers.push({
              at: Date.now(),
              from: report.oldPrimary,
              to: report.newPrimary,
              detectMs: Date.now() - (firstDeadAt ?? Date.now()),
              lostTransactions: report.dataLossWindow.transactions,
              unobservedMs: report.dataLossWindow.unobservedMs,
              loss: report.dataLossWindow.summary,
              promotedGtid: report.dataLossWindow.promotedGtid,
              fenced: report.fenced,
            });
            if (report.fenced === 'flagged' && report.errantGtids) status.flagged[report.oldPrimary] = report.errantGtids;
            status.lastKnown = { primary: report.newPrimary, offset: 0, gtid: report.dataLossWindow.promotedGtid, seenAt: Date.now() };
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
    flagged: status.flagged,
    roundsPerRun: state.roundsPerRun,
  };
  await continueAsNew<typeof mysqlMonitor>(carry);
  throw ApplicationFailure.create({ message: 'unreachable' });
}
