/**
 * Rolling restart of a MySQL/MariaDB replication cluster (GTID): replicas first, one at a time, each back,
 * read-only, replicating and caught up (GTID) before the next; then the primary is handed over (the MySQL
 * switchover runbook, as a child workflow) to a current replica; then the old primary, by then a read-only
 * replica of the new one, is restarted and catches up.
 *
 * Stateless: before every action the cluster is re-probed (version, the listed variables via SHOW GLOBAL
 * VARIABLES, replication state) and `nextMysqlRollingAction` says what is stale and what comes next, so a
 * re-run after a crash or a partial roll continues with the stale nodes only, and a re-run after completion
 * changes nothing.
 */
import { ApplicationFailure, CancellationScope, executeChild, sleep } from '@temporalio/workflow';
import { ErrorType } from '../../core/errors';
import { SA_CLUSTER, SA_RUNBOOK, operationWorkflowId } from '../../core/ids';
import { nextMysqlRollingAction, whyMysqlStale } from '../../core/mysql/rolling';
import type { DesiredSpec } from '../../core/rolling';
import { probe, wait } from '../profiles';
import { Runbook } from '../runbook';
import { abortWatch, awaitApproval, isCancellation } from '../approval';
import type { RollingRestartInput, RollingRestartReport } from '../contracts';
import type { MysqlSwitchoverReport } from './switchover';

/** Refusals that a replica catching up after its restart can clear by itself. */
const TRANSIENT = new Set(['NoHealthyReplica', 'LastInSyncReplica', 'NoEligibleCandidate']);

export async function mysqlRollingRestart(input: RollingRestartInput): Promise<RollingRestartReport> {
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
  let waitedMs = 0;

  // Approval gate (--require-approval): probe and decide once, publish the plan (stale nodes, first action)
  // and its hash, and wait for `approve`. Nothing is changed before it is given.
  let approval: RollingRestartReport['approval'];
  let approvedFirst: string | undefined;
  if (input.requireApproval && !input.dryRun) {
    const p = await rb.step('probe (plan)', `probe ${cluster}: which nodes are stale`, () => probe.probeMysqlSpecs.executeWithOptions({ summary: `probe ${cluster}: which nodes are stale` }, [{ cluster, keys }]));
    const first = nextMysqlRollingAction(p.nodes, desired, { policy: p.policy });
    if (first.kind !== 'done' && first.kind !== 'refuse') {
      const stale = p.nodes.filter((n) => whyMysqlStale(n, desired)).map((n) => `${n.node} (${whyMysqlStale(n, desired)})`);
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
    for (let round = 1; ; round++) {
      stopIfAborted();
      const probed = await rb.step(
        `probe #${round}`,
        `probe ${cluster}: which nodes are stale`,
        () => probe.probeMysqlSpecs.executeWithOptions({ summary: `probe ${cluster}: which nodes are stale` }, [{ cluster, keys }]),
        (p) => `saw ${p.nodes.map((n) => `${n.node}=${n.reachable ? `${n.role}${n.readOnly ? '(ro)' : '(rw)'}` : 'down'}${whyMysqlStale(n, desired) ? '(stale)' : ''}`).join(' ')}`,
      );
      if (restarts.length + handovers.length > 2 * probed.nodes.length + 2)
        throw ApplicationFailure.create({ message: `rolling restart of ${cluster} is not converging after ${restarts.length + handovers.length} actions; stopped`, type: ErrorType.VerificationFailed, nonRetryable: true });
      if (round === 1) {
        staleAtStart = probed.nodes.filter((n) => whyMysqlStale(n, desired)).map((n) => ({ node: n.node, reason: whyMysqlStale(n, desired)! }));
        if (!probed.hasController && !input.dryRun && staleAtStart.length)
          throw ApplicationFailure.create({ message: `cluster ${cluster} has no controller in the inventory; nothing was changed`, type: ErrorType.PreconditionFailed, nonRetryable: true });
      }
      verifyTimeoutMs = probed.policy.verifyTimeoutMs;
      const action = nextMysqlRollingAction(probed.nodes, desired, { policy: probed.policy });
      primary = probed.nodes.find((n) => n.reachable && n.role === 'primary' && !n.readOnly)?.node ?? primary;
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
        return { runbook: 'rolling-restart', cluster, dryRun: true, desired, staleAtStart, restarts, handovers, sentinelRestarts: [], primary, steps: rb.timings(), audit: rb.progress.audit };
      }

      if (action.kind === 'restart') {
        const node = action.node;
        await rb.step(`restart ${node}`, `restart ${node} (replica) with ${action.reason}`, () =>
          wait.ensureMysqlNodeRestarted.executeWithOptions({ summary: `restart ${node} (replica)` }, [
            { cluster, node, sinceRunId: action.runId, version: desired.version, set: desired.config, timeoutMs: probed.policy.restartTimeoutMs },
          ]),
        );
        await rb.step(`ready ${node}`, `wait for ${node} to replicate from ${action.primary} and catch up (GTID)`, () =>
          wait.waitForMysqlNodeReady.executeWithOptions({ summary: `wait for ${node} to replicate and catch up` }, [
            { cluster, node, primary: action.primary, timeoutMs: probed.policy.restartTimeoutMs, maxLagTransactions: probed.policy.maxLagTransactions },
          ]),
        );
        restarts.push({ node, role: 'replica', primary: action.primary, reason: action.reason });
      } else if (action.kind === 'handover') {
        const workflowId = `${operationWorkflowId(cluster)}-handover-${round}`;
        const report = await rb.step(
          `handover ${action.from}`,
          `switch over ${action.from} -> ${action.to} (child workflow)`,
          () =>
            executeChild('mysqlSwitchover', {
              workflowId,
              args: [{ cluster, to: action.to, requestedBy: `rolling restart of ${cluster}` }],
              typedSearchAttributes: [
                { key: SA_CLUSTER, value: cluster },
                { key: SA_RUNBOOK, value: 'switchover' },
              ],
              staticSummary: `switchover of ${cluster} to ${action.to} (rolling restart)`,
            }) as Promise<MysqlSwitchoverReport>,
          (r) => `child ${workflowId}: ${r.oldPrimary} -> ${r.newPrimary}, write pause ${r.writePauseMs} ms`,
        );
        handovers.push({ from: report.oldPrimary, to: report.newPrimary, writePauseMs: report.writePauseMs, workflowId });
        primary = report.newPrimary;
      }
    }

    const verify = await rb.step('verify', `verify one writable node (${primary}), replicas running and converged`, () =>
      wait.verifyMysqlTopology.executeWithOptions({ summary: `verify one writable node (${primary}), replicas running` }, [{ cluster, primary, timeoutMs: verifyTimeoutMs }]),
    );
    primary = verify.primary;
    rb.setPhase('done');
    return { runbook: 'rolling-restart', cluster, dryRun: false, desired, staleAtStart, restarts, handovers, sentinelRestarts: [], primary, approval, steps: rb.timings(), audit: rb.progress.audit };
  });
}

/** One line naming a rolling action (what an approval approved as the first action). */
function describeAction(a: { kind: string; node?: string; from?: string; to?: string }): string {
  return a.kind === 'restart' ? `restart ${a.node}` : `${a.kind} ${a.from} -> ${a.to}`;
}
