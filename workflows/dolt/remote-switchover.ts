/**
 * Planned switchover of Dolt read replicas through a remote (topology: remote-replicas): Dolt's manual steps
 * for remote-based replication as a runbook.
 *
 *   probe -> decide -> veto -> push -> | fence -> same heads -> promote -> re-point old primary -> followers -> verify
 *                                      ^ point of no return
 * push:      every branch of every database of the primary pushed to the remote (a no-op when it has them).
 * fence:     the primary restarted read-only with its primary settings: it takes no writes, pushes nothing new
 *            and pulls nothing, so what it holds is the last word.
 * same heads: the candidate (a read replica: it pulls when a transaction starts) holds exactly the fenced
 *            primary's heads. If it does not within catchUpTimeoutMs, the fence is undone (the old primary
 *            restarted writable) and the run fails with where the cluster stands.
 * promote:   the candidate restarted writable, pushing to the remote and no longer pulling.
 * re-point:  the old primary restarted as a read-only replica of the remote; the other replicas already pull
 *            from the same remote (checked: a no-op when their settings hold).
 * verify:    the candidate the one primary, every other node a replica at commit distance 0.
 * Operator hooks (inventory `hooks:`): pre-switchover after the decision (and approval), before the veto
 * (fail closed: nothing changed); post-promotion right after the promotion (where a proxy's writer endpoint
 * moves); post-switchover after verification (both fail open, reported).
 * From the fence until the promotion no node takes writes: writePauseMs. Decisions are frozen in workflow
 * state and every step is a no-op when its end state holds, so a resumed run never decides again.
 */
import { ApplicationFailure, CancellationScope, CancelledFailure, patched } from '@temporalio/workflow';
import { doltRemoteStatus } from '../../core/status';
import { standingAfterVerify, standingLine, standingOf, type ClusterStanding } from '../../core/standing';
import { decideDoltRemoteSwitchover, type DoltRemoteNodeProbe, type DoltRemoteSwitchoverDecision } from '../../core/dolt/remote';
import { ErrorType } from '../../core/errors';
import { mutate, probe, wait } from '../profiles';
import { Runbook, failureTypeOf, messageOf } from '../runbook';
import type { SwitchoverInput } from '../contracts';
import { abortWatch, abortedFailure, approvalGate, isCancellation } from '../approval';
import { hookCount, hookPlan, runPostHooks, runPreHooks, type HookOutcome } from '../hooks';

export interface DoltRemoteSwitchoverReport {
  runbook: 'switchover';
  engine: 'dolt';
  topology: 'remote-replicas';
  cluster: string;
  dryRun: boolean;
  oldPrimary: string;
  newPrimary: string;
  decision: DoltRemoteSwitchoverDecision;
  plan: string[];
  /** No node took writes for this long: from the fence of the old primary until the candidate's promotion. */
  writePauseMs: number;
  /** The heads (database -> branch -> commit) the candidate held when it was promoted. */
  heads?: Record<string, Record<string, string>>;
  /**
   * Where the cluster stands at the end (core/standing.ts): completed, the new primary and the nodes verified
   * pulling its heads from the remote; a dry run, what the probe saw.
   */
  standing: ClusterStanding;
  steps: { step: string; ms: number }[];
  audit: string[];
  probe: DoltRemoteNodeProbe[];
  approval?: { approver: string; planHash: string };
  abortRequested?: boolean;
  /** Operator hooks that ran (inventory `hooks:`): pre-switchover ones all succeeded, post-promotion and post-switchover ones may not have. */
  hooks?: HookOutcome[];
}

/**
 * Patch marker: a switchover undone before the promotion, or failing after it (verification, a node not moved),
 * looks once at where the cluster stands and says it (message and details[0].standing). Runs recorded before
 * this end with the message alone.
 */
const PATCH_DOLT_REMOTE_ENDS_WITH_STANDING = 'dolt-remote-switchover-ends-with-standing';

export async function doltRemoteSwitchover(input: SwitchoverInput): Promise<DoltRemoteSwitchoverReport> {
  const { cluster } = input;
  const rb = new Runbook('switchover', cluster);
  rb.plan([
    { name: 'probe', summary: `probe every node of ${cluster}` },
    { name: 'decide', summary: 'choose the replica to promote' },
  ]);
  if (input.requestedBy) rb.audit('start', `requested by ${input.requestedBy}${input.to ? `, --to ${input.to}` : ''}`);

  const probed = await rb.step('probe', `probe every node of ${cluster}`, () => probe.probeDoltRemoteCluster.executeWithOptions({ summary: `probe every node of ${cluster}` }, [{ cluster }]));
  const { policy, remote } = probed;
  const decision = await rb
    .step(
      'decide',
      'choose the replica to promote',
      async () => {
        const r = decideDoltRemoteSwitchover(probed.nodes, { to: input.to, remote });
        if (!r.ok) {
          // Nothing changed: where the cluster stands is what the probe saw.
          const st = standingOf(doltRemoteStatus(cluster, remote, probed.nodes));
          throw ApplicationFailure.create({ message: `${r.refusal.message}. Where it stands: ${standingLine(st)}`, type: r.refusal.errorType, nonRetryable: true, details: [{ ...r.refusal, standing: st }] });
        }
        return r.decision;
      },
      (d) => `chose ${d.candidate} to replace ${d.primary}: ${d.reasons.join('; ')}`,
    )
    .catch((e) => {
      rb.skipRemaining('refused');
      throw e;
    });

  const { primary, candidate, followers } = decision;
  const hookRun = { cluster, oldPrimary: primary, newPrimary: candidate };
  const [preHooks, promotionHooks, postHooks] = [hookCount(probed.hooks, 'preSwitchover'), hookCount(probed.hooks, 'postPromotion'), hookCount(probed.hooks, 'postSwitchover')];
  const plan = [
    ...hookPlan('preSwitchover', preHooks),
    { name: 'veto', summary: 're-check the decision before anything changes' },
    { name: 'push', summary: `push every branch of ${primary} to ${remote}` },
    { name: 'fence', summary: `restart ${primary} read-only (stop writes; it pushes and pulls nothing more)` },
    { name: 'same-heads', summary: `wait until ${candidate} holds ${primary}'s heads (at most ${policy.catchUpTimeoutMs} ms)` },
    { name: 'promote', summary: `restart ${candidate} writable, pushing to ${remote} (no longer a read replica)` },
    ...hookPlan('postPromotion', promotionHooks),
    { name: 're-point', summary: `restart ${primary} as a read-only replica of ${remote}` },
    ...followers.map((n) => ({ name: `follow ${n}`, summary: `make sure ${n} is a read-only replica of ${remote}` })),
    { name: 'verify', summary: `verify ${candidate} the primary and every other node a replica with its heads` },
    ...hookPlan('postSwitchover', postHooks),
  ];
  const step = (name: string) => plan.find((p) => p.name === name)!.summary;
  rb.plan(plan);
  const report = (extra: Partial<DoltRemoteSwitchoverReport>): DoltRemoteSwitchoverReport => ({
    runbook: 'switchover',
    engine: 'dolt',
    topology: 'remote-replicas',
    cluster,
    dryRun: !!input.dryRun,
    oldPrimary: primary,
    newPrimary: candidate,
    decision,
    plan: plan.map((p) => p.summary),
    writePauseMs: 0,
    standing: standingOf(doltRemoteStatus(cluster, remote, probed.nodes)),
    steps: rb.timings(),
    audit: rb.progress.audit,
    probe: probed.nodes,
    ...extra,
  });
  if (input.dryRun) {
    rb.skipRemaining('dry run');
    rb.setPhase('planned');
    return report({});
  }

  const abort = abortWatch(rb);
  let approval: DoltRemoteSwitchoverReport['approval'];
  const hooks: HookOutcome[] = [];
  try {
    approval = await approvalGate(rb, input, {
      summary: `switch ${cluster} over from ${primary} to ${candidate} through ${remote}: ${decision.reasons.join('; ')}`,
      plan: plan.map((p) => p.summary),
      hashOf: { runbook: 'switchover', cluster, primary, candidate, remote, plan: plan.map((p) => p.summary) },
    });
    // Pre-switchover hooks (fail closed): the first failure ends the run, nothing changed.
    hooks.push(...(await runPreHooks(rb, 'preSwitchover', preHooks, hookRun)));
    // Veto: the frozen decision against live state, just before the first change. Fails closed.
    await rb
      .step('veto', step('veto'), async () => {
        const again = await probe.probeDoltRemoteCluster.executeWithOptions({ summary: step('veto') }, [{ cluster }]);
        const r = decideDoltRemoteSwitchover(again.nodes, { to: candidate, remote });
        // A veto changed nothing: where the cluster stands is what its probe saw.
        const st = () => standingOf(doltRemoteStatus(cluster, remote, again.nodes));
        if (!r.ok) throw ApplicationFailure.create({ message: `veto: ${r.refusal.message}. Where it stands: ${standingLine(st())}`, type: r.refusal.errorType, nonRetryable: true, details: [{ standing: st() }] });
        if (r.decision.primary !== primary) throw ApplicationFailure.create({ message: `veto: the primary is now ${r.decision.primary}; nothing was changed. Where it stands: ${standingLine(st())}`, type: ErrorType.PreconditionFailed, nonRetryable: true, details: [{ standing: st() }] });
        return { audit: `${again.audit}: the decision stands` };
      })
      .catch((e) => {
        if (!isCancellation(e)) rb.skipRemaining('vetoed');
        throw e;
      });
    await rb.step('push', step('push'), () => mutate.ensureDoltPushed.executeWithOptions({ summary: step('push') }, [{ cluster, node: primary }]));
    if (abort.requested()) throw new CancelledFailure('abort requested');
  } catch (err) {
    if (isCancellation(err)) {
      rb.skipRemaining('aborted');
      rb.setPhase('aborted');
      throw abortedFailure(cluster, 'switchover', `${primary} is still the primary`);
    }
    rb.skipRemaining('refused');
    throw err;
  }

  return CancellationScope.nonCancellable(async () => {
    // ---- POINT OF NO RETURN: the old primary stops taking writes. Until the candidate is promoted, a failure
    // restarts the old primary writable again (the undo); after it, the run moves forward. ----
    rb.passPointOfNoReturn();
    // One look at where the cluster stands, for an ending after the first change (runs recorded before: none).
    const look = async (opts: { expected?: string; previousPrimary?: string }): Promise<ClusterStanding | undefined> => {
      if (!patched(PATCH_DOLT_REMOTE_ENDS_WITH_STANDING)) return undefined;
      try {
        const now = await rb.step('standing', `see where ${cluster} stands`, () => probe.probeDoltRemoteCluster.executeWithOptions({ summary: `see where ${cluster} stands` }, [{ cluster }]), () => undefined);
        const st = standingOf(doltRemoteStatus(cluster, remote, now.nodes), opts);
        rb.audit('standing', standingLine(st));
        return st;
      } catch {
        return undefined;
      }
    };
    const withStanding = (message: string, st: ClusterStanding | undefined) => ({ message: st ? `${message}. Where it stands: ${standingLine(st)}` : message, ...(st ? { details: [{ standing: st }] } : {}) });
    const undo = async (why: string): Promise<never> => {
      const u = await rb.step('undo', `restart ${primary} writable again (the primary)`, () => mutate.ensureDoltRemoteRole.executeWithOptions({ summary: `make ${primary} the primary again` }, [{ cluster, node: primary, role: 'primary' }]));
      rb.skipRemaining('handover undone');
      const st = await look({ expected: primary, previousPrimary: primary });
      rb.setPhase('undone');
      throw ApplicationFailure.create({ type: ErrorType.HandoverAborted, nonRetryable: true, ...withStanding(`switchover of ${cluster} undone: ${why}; ${primary} is the primary again (${u.audit}), ${candidate} a replica`, st) });
    };
    let fencedAt = 0;
    let heads: Record<string, Record<string, string>> | undefined;
    try {
      fencedAt = (await rb.step('fence', step('fence'), () => mutate.ensureDoltRemoteRole.executeWithOptions({ summary: step('fence') }, [{ cluster, node: primary, role: 'fenced' }]))).at;
      heads = (await rb.step('same-heads', step('same-heads'), () => wait.waitDoltSameHeads.executeWithOptions({ summary: step('same-heads') }, [{ cluster, source: primary, target: candidate, timeoutMs: policy.catchUpTimeoutMs }]))).heads;
    } catch (err) {
      return undo(failureTypeOf(err) === ErrorType.CatchUpTimeout ? `${candidate} did not catch up: ${messageOf(err)}` : messageOf(err));
    }
    let promotedAt: number;
    try {
      promotedAt = (await rb.step('promote', step('promote'), () => mutate.ensureDoltRemoteRole.executeWithOptions({ summary: step('promote') }, [{ cluster, node: candidate, role: 'primary' }]))).at;
    } catch (err) {
      // The candidate may have come up writable before the failure: make it a replica again, then undo.
      await rb.step('undo-candidate', `make sure ${candidate} is a replica`, () => mutate.ensureDoltRemoteRole.executeWithOptions({ summary: `make ${candidate} a replica again` }, [{ cluster, node: candidate, role: 'replica' }]));
      return undo(`the promotion of ${candidate} failed: ${messageOf(err)}`);
    }
    const writePauseMs = Math.max(0, promotedAt - fencedAt);
    // Post-promotion hooks (fail open): the writer endpoint moves as soon as there is a new primary.
    hooks.push(...(await runPostHooks(rb, 'postPromotion', promotionHooks, hookRun)));

    const notMoved: string[] = [];
    for (const [name, node] of [['re-point', primary], ...followers.map((n) => [`follow ${n}`, n])] as [string, string][])
      await rb
        .step(name, step(name), () => mutate.ensureDoltRemoteRole.executeWithOptions({ summary: step(name) }, [{ cluster, node, role: 'replica' }]))
        .catch((e) => notMoved.push(`${node}: ${messageOf(e)}`));
    const done = `${candidate} is the primary (was ${primary}), pushing to ${remote}${notMoved.length ? `; not moved: ${notMoved.join('; ')}` : `; ${[primary, ...followers].join(', ')} read replicas of ${remote}`}`;
    // After the promotion a failure says what was done and where the cluster stands (one look).
    const incomplete = async (message: string): Promise<never> => {
      const st = await look({ expected: candidate, previousPrimary: primary });
      rb.setPhase('done-incomplete');
      throw ApplicationFailure.create({ type: ErrorType.HandoverIncomplete, nonRetryable: true, ...withStanding(message, st) });
    };
    try {
      await rb.step('verify', step('verify'), () => wait.verifyDoltRemoteTopology.executeWithOptions({ summary: step('verify') }, [{ cluster, primary: candidate, timeoutMs: policy.verifyTimeoutMs }]));
    } catch (err) {
      return incomplete(`switchover of ${cluster} passed the point of no return: ${done}; verification failed: ${messageOf(err)}`);
    }
    if (notMoved.length) return incomplete(`switchover of ${cluster} incomplete: ${done}`);
    // Verified: the candidate the one primary, every other node a read replica at commit distance 0.
    const standing = standingAfterVerify(candidate, primary, [primary, ...followers], []);
    rb.audit('standing', standingLine(standing));
    hooks.push(...(await runPostHooks(rb, 'postSwitchover', postHooks, hookRun)));
    const abortRequested = abort.requested();
    if (abortRequested) rb.audit('abort', `abort requested after the point of no return: finished forward (${candidate} is the primary)`);
    rb.setPhase(hooks.some((h) => !h.ok) ? 'done-post-hook-failed' : 'done');
    return report({ writePauseMs, heads, standing, approval, abortRequested: abortRequested || undefined, ...(hooks.length ? { hooks } : {}), steps: rb.timings(), audit: rb.progress.audit });
  });
}
