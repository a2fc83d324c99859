/**
 * The per-cluster monitor (ID handover-monitor-<cluster>): probes the cluster every `probeIntervalMs`;
 * when the DeadMaster rule holds for `probesToConfirm` consecutive rounds it starts the failover as a child
 * workflow on the cluster's lock ID (so it never runs beside another operation), unless anti-flapping blocks
 * it; a node that answers as primary beside the primary it promoted is fenced (made a replica) before
 * anything else. Continues as new every `roundsPerRun` rounds to bound its history.
 */
import { ApplicationFailure, continueAsNew, defineQuery, defineSignal, executeChild, setHandler, sleep, workflowInfo } from '@temporalio/workflow';
import { confirmedDead, deadMasterRound, whyBlocked, type Verdict } from '../../core/redis/failover';
import { SA_CLUSTER, SA_RUNBOOK, operationWorkflowId } from '../../core/ids';
import { probe } from '../profiles';
import type { FailoverReport, RedisFailoverInput } from './failover';

export interface MonitorState {
  cluster: string;
  /** The primary as last seen alive, with its offset (for the failover's data-loss window). */
  lastKnown?: { primary: string; offset: number };
  lastFailoverAtMs?: number;
  acknowledged?: boolean;
  failovers: { at: number; from: string; to: string; detectMs: number; lostBytes?: number }[];
  blocked?: string;
  roundsPerRun?: number;
}

export interface MonitorStatus extends MonitorState {
  rounds: number;
  lastVerdict?: string;
  fenced: string[];
}

export const monitorStatusQuery = defineQuery<MonitorStatus>('status');
/** Clear the anti-flapping block: the next confirmed death fails over again. */
export const acknowledgeSignal = defineSignal('acknowledge');

export async function redisMonitor(state: MonitorState): Promise<void> {
  const { cluster } = state;
  const status: MonitorStatus = { ...state, failovers: state.failovers ?? [], rounds: 0, fenced: [] };
  setHandler(monitorStatusQuery, () => status);
  setHandler(acknowledgeSignal, () => {
    status.acknowledged = true;
    status.blocked = undefined;
  });
  const verdicts: Verdict[] = [];
  let firstDeadAt: number | undefined;
  const roundsPerRun = state.roundsPerRun ?? 500;
  for (let i = 0; i < roundsPerRun; i++) {
    status.rounds++;
    const p = await probe.probeRedisCluster.executeWithOptions({ summary: `monitor: probe ${cluster}`, retry: { maximumAttempts: 1 } }, [{ cluster }]).catch(() => undefined);
    if (p) {
      const primaries = p.nodes.filter((n) => n.reachable && n.role === 'primary');
      const expected = status.lastKnown?.primary;
      // Fencing: an old primary that came back claiming the role is made a replica first.
      if (expected && primaries.length > 1 && primaries.some((n) => n.node === expected)) {
        for (const n of primaries.filter((x) => x.node !== expected)) {
          await probe.ensureRedisFenced.executeWithOptions({ summary: `fence ${n.node}: make it a replica of ${expected}` }, [{ cluster, node: n.node, primary: expected }]).then(
            () => status.fenced.push(n.node),
            () => undefined,
          );
        }
      } else if (primaries.length === 1) {
        status.lastKnown = { primary: primaries[0].node, offset: primaries[0].offset ?? 0 };
      }
      const primary = status.lastKnown?.primary;
      const v: Verdict = primary ? deadMasterRound(p.nodes, primary) : { dead: false, reason: 'no primary known yet' };
      verdicts.push(v);
      if (verdicts.length > 20) verdicts.shift();
      status.lastVerdict = v.reason;
      if (v.dead && firstDeadAt === undefined) firstDeadAt = Date.now();
      if (!v.dead) firstDeadAt = undefined;
      if (primary && confirmedDead(verdicts, p.policy.probesToConfirm)) {
        const blocked = whyBlocked(status.lastFailoverAtMs, Date.now(), p.policy.failoverBlockMs, !!status.acknowledged);
        status.blocked = blocked;
        if (!blocked) {
          try {
            const report = (await executeChild('redisFailover', {
              workflowId: operationWorkflowId(cluster),
              args: [{ cluster, confirmedBy: workflowInfo().workflowId, lastKnown: status.lastKnown, requestedBy: 'monitor' } satisfies RedisFailoverInput],
              typedSearchAttributes: [
                { key: SA_CLUSTER, value: cluster },
                { key: SA_RUNBOOK, value: 'failover' },
              ],
              staticSummary: `automatic failover of ${cluster} (${primary} dead)`,
            })) as FailoverReport;
            status.failovers.push({ at: Date.now(), from: report.oldPrimary, to: report.newPrimary, detectMs: Date.now() - (firstDeadAt ?? Date.now()), lostBytes: report.dataLossWindow.bytes });
            status.lastKnown = { primary: report.newPrimary, offset: report.dataLossWindow.promotedOffset };
            status.lastFailoverAtMs = Date.now();
            status.acknowledged = false;
          } catch (e) {
            status.lastVerdict = `failover did not run or failed: ${(e as Error).message}`;
          }
          verdicts.length = 0;
          firstDeadAt = undefined;
        }
      }
    }
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
