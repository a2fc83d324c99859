/**
 * Rolling restart of a Redis/Valkey replication cluster: replicas first, one at a time, each back, linked and
 * caught up before the next; then the primary is handed over (the switchover runbook, as a child workflow)
 * to a replica that is current and in sync; then the old primary, by then a replica, is restarted.
 *
 * Stateless: before every action the cluster is re-probed and `nextRollingAction` says what is stale and what
 * comes next, so a re-run after a crash or a partial roll continues with the stale nodes only.
 */
import { ApplicationFailure, CancellationScope, executeChild, sleep } from '@temporalio/workflow';
import { ErrorType } from '../../core/errors';
import { SA_CLUSTER, SA_RUNBOOK, operationWorkflowId } from '../../core/ids';
import { nextRollingAction, nextSentinelRestart, whyStale } from '../../core/redis/rolling';
import type { DesiredSpec } from '../../core/rolling';
import { nextClusterRollingAction } from '../../core/redis/rolling-cluster';
import type { RollingRestartInput, RollingRestartReport } from '../contracts';
import { mutate, probe, wait } from '../profiles';
import { Runbook } from '../runbook';
import { abortWatch, awaitApproval, isCancellation } from '../approval';
import type { SwitchoverReport } from './switchover';

/** Refusals that a replica catching up after its restart can clear by itself. */
const TRANSIENT = new Set(['NoHealthyReplica', 'LastInSyncReplica', 'NoEligibleCandidate', 'ClusterNotOk']);



export async function redisRollingRestart(input: RollingRestartInput): Promise<RollingRestartReport> {
  const { cluster } = input;
  const desired: DesiredSpec = { config: input.set ?? {}, version: input.version };
  const keys = Object.keys(desired.config);
  const rb = new Runbook('rolling-restart', cluster);
  if (input.requestedBy) rb.audit('start', `requested by ${input.requestedBy}: ${JSON.stringify(desired)}`);
  const restarts: RollingRestartReport['restarts'] = [];
  const handovers: RollingRestartReport['handovers'] = [];
  let staleAtStart: RollingRestartReport['staleAtStart'] = [];
  let primary = '';
  let verifyTimeoutMs = 30_000;
  let topologyIsCluster = false;
  let topologyIsSentinel = false;
  const rollStartedAtMs = Date.now();
  let waitedMs = 0;
  const sentinelRestarts: string[] = [];

  // Approval gate (--require-approval): probe and decide once, publish the plan (stale nodes, first action)
  // and its hash, and wait for `approve`. Nothing is changed before it is given.
  let approval: RollingRestartReport['approval'];
  let approvedFirst: string | undefined;
  if (input.requireApproval && !input.dryRun) {
    const p = await rb.step('probe (plan)', `probe ${cluster}: which nodes are stale`, () => probe.probeRedisSpecs.executeWithOptions({ summary: `probe ${cluster}: which nodes are stale` }, [{ cluster, keys }]));
    const first = (p.topology === 'cluster' ? nextClusterRollingAction : nextRollingAction)(p.nodes, desired, { policy: p.policy, autoRestart: p.autoRestart });
    if (first.kind !== 'done' && first.kind !== 'refuse') {
      const stale = p.nodes.filter((n) => whyStale(n, desired)).map((n) => `${n.node} (${whyStale(n, desired)})`);
      approvedFirst = describeAction(first);
      const planLines = [...stale.map((x) => `restart stale ${x}`), `first action: ${approvedFirst}`, 'replicas first, one at a time, each back and caught up before the next; the primary is handed over, then restarted'];
      const a = await awaitApproval(rb, {
        summary: `rolling restart of ${cluster} to ${JSON.stringify(desired)}: ${stale.length} stale node(s)`,
        plan: planLines,
        hashOf: { runbook: 'rolling-restart', cluster, desired, plan: planLines },
        timeoutMs: input.approvalTimeoutMs,
      }).catch((e) => {
        rb.skipRemaining(isCancellation(e) ? 'aborted' : 'not approved');
        rb.setPhase(isCancellation(e) ? 'aborted' : (rb.progress.approval?.status ?? 'not-approved'));
        if (isCancellation(e)) throw ApplicationFailure.create({ message: `rolling restart of ${cluster} aborted by the operator while waiting for approval: nothing changed`, type: ErrorType.Aborted, nonRetryable: true });
        throw e;
      });
      approval = { approver: a.approver, planHash: rb.progress.approval!.planHash };
    }
  }

  // Abort (cancellation): the step in flight finishes (a restart or a handover is never cut in the middle),
  // then the roll stops before the next one. Re-running continues with the stale nodes only.
  const abort = abortWatch(rb);
  const stopIfAborted = () => {
    if (!abort.requested()) return;
    rb.skipRemaining('aborted');
    rb.setPhase('aborted');
    throw ApplicationFailure.create({
      message: `rolling restart of ${cluster} aborted by the operator between steps: ${restarts.length} node(s) restarted${restarts.length ? ` (${restarts.map((r) => r.node).join(', ')})` : ''}, ${handovers.length} handover(s); the step in flight had finished; re-run rolling-restart to roll the remaining stale nodes`,
      type: ErrorType.Aborted,
      nonRetryable: true,
    });
  };
  return CancellationScope.nonCancellable(async () => {
    // Each round changes one node; a cluster of N nodes needs at most N restarts and one handover.
    for (let round = 1; ; round++) {
      stopIfAborted();
      const probed = await rb.step(`probe #${round}`, `probe ${cluster}: which nodes are stale`, () =>
        probe.probeRedisSpecs.executeWithOptions({ summary: `probe ${cluster}: which nodes are stale` }, [{ cluster, keys }]),
        (p) => `saw ${p.nodes.map((n) => `${n.node}=${n.reachable ? n.role : 'down'}${whyStale(n, desired) ? '(stale)' : ''}`).join(' ')}`,
      );
      if (restarts.length + handovers.length > 2 * probed.nodes.length + 2)
        throw ApplicationFailure.create({ message: `rolling restart of ${cluster} is not converging after ${restarts.length + handovers.length} actions; stopped`, type: ErrorType.VerificationFailed, nonRetryable: true });
      if (round === 1) {
        staleAtStart = probed.nodes.filter((n) => whyStale(n, desired)).map((n) => ({ node: n.node, reason: whyStale(n, desired)! }));
        if (!probed.hasController && !input.dryRun)
          throw ApplicationFailure.create({ message: `cluster ${cluster} has no controller in the inventory; nothing was changed`, type: ErrorType.PreconditionFailed, nonRetryable: true });
      }
      verifyTimeoutMs = probed.policy.verifyTimeoutMs;
      const isCluster = probed.topology === 'cluster';
      topologyIsCluster = isCluster;
      topologyIsSentinel = probed.topology === 'sentinel';
      const decide = isCluster ? nextClusterRollingAction : nextRollingAction;
      const action = decide(probed.nodes, desired, { policy: probed.policy, autoRestart: probed.autoRestart });
      primary = probed.nodes.find((n) => n.role === 'primary')?.node ?? primary;
      // Mid-roll, a replica that was just restarted may still be catching up: wait for it (bounded) rather
      // than stop. Other refusals, and any refusal before the first action, stop the run.
      if (action.kind === 'refuse' && round > 1 && TRANSIENT.has(action.code) && waitedMs < probed.policy.restartTimeoutMs) {
        rb.audit('wait', `${action.reason}; waiting 1 s and probing again`);
        await sleep(1000);
        waitedMs += 1000;
        continue;
      }
      waitedMs = 0;
      if (action.kind === 'refuse') {
        rb.skipRemaining('stopped');
        throw ApplicationFailure.create({
          message: `${round === 1 ? 'refused' : 'stopped safely'}: ${action.reason}${round === 1 ? '; nothing was changed' : `; ${restarts.length} node(s) already rolled`}`,
          type: ErrorType.PreconditionFailed,
          nonRetryable: true,
          details: [{ code: action.code }],
        });
      }
      if (action.kind === 'done') break;
      if (round === 1 && approvedFirst !== undefined && describeAction(action) !== approvedFirst) {
        rb.skipRemaining('stopped');
        throw ApplicationFailure.create({ message: `the cluster changed after the plan was approved (first action now ${describeAction(action)}, approved ${approvedFirst}); nothing was changed: plan and approve again`, type: ErrorType.PreconditionFailed, nonRetryable: true });
      }
      if (input.dryRun) {
        rb.audit('plan', `stale: ${staleAtStart.map((s) => `${s.node} (${s.reason})`).join('; ') || 'none'}; first action: ${action.kind} ${action.kind === 'restart' ? action.node : `${action.from} -> ${action.to}`}`);
        rb.setPhase('planned');
        return { runbook: 'rolling-restart', cluster, dryRun: true, desired, staleAtStart, restarts, handovers, sentinelRestarts, primary, steps: rb.timings(), audit: rb.progress.audit };
      }

      if (action.kind === 'restart') {
        const node = action.node;
        await rb.step(`persist ${node}`, `apply settings and persist the role of ${node}`, () =>
          mutate.ensureRedisConfigPersisted.executeWithOptions({ summary: `apply settings and persist the role of ${node}` }, [{ cluster, node, set: desired.config }]),
        );
        await rb.step(`restart ${node}`, `restart ${node} (replica)`, () =>
          wait.ensureRedisNodeRestarted.executeWithOptions({ summary: `restart ${node} (replica)` }, [
            { cluster, node, sinceRunId: action.runId, version: desired.version, timeoutMs: probed.policy.restartTimeoutMs },
          ]),
        );
        await rb.step(`ready ${node}`, `wait for ${node} to be linked and caught up`, () =>
          wait.waitForRedisNodeReady.executeWithOptions({ summary: `wait for ${node} to be linked and caught up` }, [{ cluster, node, primary: action.primary, timeoutMs: probed.policy.restartTimeoutMs, maxLagBytes: probed.policy.maxLagBytes }]),
        );
        restarts.push({ node, role: 'replica', primary: action.primary, reason: action.reason });
      } else if (isCluster) {
        // Redis Cluster: the shard's replica takes over with CLUSTER FAILOVER (coordinated by the cluster itself).
        const h = await rb.step(`failover ${action.from}`, `CLUSTER FAILOVER: ${action.to} takes over the shard of ${action.from}`, () =>
          mutate.ensureRedisClusterFailover.executeWithOptions({ summary: `CLUSTER FAILOVER: ${action.to} takes over the shard of ${action.from}` }, [
            { cluster, from: action.from, to: action.to, timeoutMs: probed.policy.pauseTimeoutMs + 10_000 },
          ]),
        );
        handovers.push({ from: action.from, to: action.to, writePauseMs: h.handoverMs, workflowId: '' });
      } else {
        const workflowId = `${operationWorkflowId(cluster)}-handover-${round}`;
        const report = await rb.step(`handover ${action.from}`, `switch over ${action.from} -> ${action.to} (child workflow)`, () =>
          executeChild('redisSwitchover', {
            workflowId,
            args: [{ cluster, to: action.to, requestedBy: `rolling restart of ${cluster}` }],
            typedSearchAttributes: [
              { key: SA_CLUSTER, value: cluster },
              { key: SA_RUNBOOK, value: 'switchover' },
            ],
            staticSummary: `switchover of ${cluster} to ${action.to} (rolling restart)`,
          }) as Promise<SwitchoverReport>,
          (r) => `child ${workflowId}: ${r.oldPrimary} -> ${r.newPrimary}, write pause ${r.writePauseMs} ms`,
        );
        handovers.push({ from: report.oldPrimary, to: report.newPrimary, writePauseMs: report.writePauseMs, workflowId });
        primary = report.newPrimary;
      }
    }

    // Sentinel topology: the Sentinels, one at a time, each healthy again before the next (quorum kept).
    if (topologyIsSentinel) {
      for (let round = 1; ; round++) {
        stopIfAborted();
        const { sentinels } = await rb.step(`probe sentinels #${round}`, `probe the Sentinels of ${cluster}`, () =>
          probe.probeRedisSentinels.executeWithOptions({ summary: `probe the Sentinels of ${cluster}` }, [{ cluster }]),
          (r) => `saw ${r.sentinels.map((x) => `${x.id}=${x.reachable ? (x.healthy ? 'healthy' : 'unhealthy') : 'down'}`).join(' ')}`,
        );
        if (round > sentinels.length + 1) throw ApplicationFailure.create({ message: `Sentinel restarts of ${cluster} are not converging; stopped`, type: ErrorType.VerificationFailed, nonRetryable: true });
        const next = nextSentinelRestart(sentinels, { version: desired.version, includeSentinels: !!input.includeSentinels, rollStartedAtMs });
        if (next.kind === 'done') break;
        if (next.kind === 'refuse') throw ApplicationFailure.create({ message: `stopped safely: ${next.reason}`, type: ErrorType.PreconditionFailed, nonRetryable: true });
        await rb.step(`restart ${next.id}`, `restart Sentinel ${next.id} (${next.reason})`, () =>
          wait.ensureRedisSentinelRestarted.executeWithOptions({ summary: `restart Sentinel ${next.id}` }, [{ cluster, id: next.id, sinceRunId: next.runId, timeoutMs: 60_000 }]),
        );
        sentinelRestarts.push(next.id);
      }
    }

    // Redis Cluster: the last probe found every node current, reachable, cluster_state ok and every shard with
    // an in-sync replica (the decision's guards run before it says done). Replication: verify one primary.
    if (!topologyIsCluster) {
      const verify = await rb.step('verify', `verify one primary (${primary}), replicas linked and converging`, () =>
        wait.verifyRedisTopology.executeWithOptions({ summary: `verify one primary (${primary}), replicas linked` }, [{ cluster, primary, timeoutMs: verifyTimeoutMs }]),
      );
      primary = verify.primary;
    }
    rb.setPhase('done');
    return { runbook: 'rolling-restart', cluster, dryRun: false, desired, staleAtStart, restarts, handovers, sentinelRestarts, primary, approval, steps: rb.timings(), audit: rb.progress.audit };
  });
}

/** One line naming a rolling action (what an approval approved as the first action). */
function describeAction(a: { kind: string; node?: string; from?: string; to?: string }): string {
  return a.kind === 'restart' ? `restart ${a.node}` : `${a.kind} ${a.from} -> ${a.to}`;
}
