/**
 * Planned switchover of a Dolt sql-server cluster (cluster mode: a primary and its standbys, roles at epochs).
 *
 *   probe -> decide -> veto -> catch-up -> | demote -> same data -> promote -> followers -> verify
 *                                          ^ point of no return
 * The candidate is a standby at the primary's epoch; the new epoch is one more than any seen. Before anything
 * changes, the primary must report every standby near (dolt_cluster_status: no error, replication_lag_millis
 * within policy pauseTimeoutMs, which bounds the pause that follows). The demotion is Dolt's graceful transition (`CALL dolt_assume_cluster_role('standby', E)`): the old
 * primary stops taking writes and waits until every standby has everything it acknowledged, failing (and
 * staying primary) when it cannot. Then both nodes' dolt_hashof_db() of every database must be equal, and only
 * then is the candidate promoted (`dolt_assume_cluster_role('primary', E)`). From the demotion until the
 * promotion no node takes writes: that is writePauseMs. If the hashes differ or the promotion fails, the old
 * primary is made primary again at the next epoch (unless the candidate already is) and the run fails with
 * where the cluster stands. Operator hooks (inventory `hooks:`): pre-switchover after the decision (and approval),
 * before the veto (fail closed: nothing changed); post-promotion right after the promotion (where a proxy's
 * writer endpoint moves); post-switchover after verification (both fail open, reported). Decisions (primary, candidate, epoch) are frozen in workflow state, so a retried
 * or resumed step never decides again; each role change is a no-op when already in place.
 */
import { ApplicationFailure, CancellationScope, CancelledFailure, patched } from '@temporalio/workflow';
import { doltClusterStatus } from '../../core/status';
import { standingAfterVerify, standingLine, standingOf, type ClusterStanding } from '../../core/standing';
import { decideDoltSwitchover, type DoltNodeProbe, type DoltSwitchoverDecision } from '../../core/dolt/decide';
import { ErrorType } from '../../core/errors';
import { mutate, probe, wait } from '../profiles';
import { Runbook, failureTypeOf, messageOf } from '../runbook';
import type { SwitchoverInput } from '../contracts';
import { abortWatch, abortedFailure, approvalGate, isCancellation } from '../approval';
import { hookCount, hookPlan, runPostHooks, runPreHooks, type HookOutcome } from '../hooks';

export interface DoltSwitchoverReport {
  runbook: 'switchover';
  engine: 'dolt';
  cluster: string;
  dryRun: boolean;
  oldPrimary: string;
  newPrimary: string;
  decision: DoltSwitchoverDecision;
  plan: string[];
  /** No node took writes for this long: from the old primary's demotion until the candidate's promotion. */
  writePauseMs: number;
  /** dolt_hashof_db() of each database on both nodes when the candidate was promoted. */
  hashes?: Record<string, string>;
  steps: { step: string; ms: number }[];
  audit: string[];
  probe: DoltNodeProbe[];
  approval?: { approver: string; planHash: string };
  abortRequested?: boolean;
  /** Operator hooks that ran (inventory `hooks:`): pre-switchover ones all succeeded, post-promotion and post-switchover ones may not have. */
  hooks?: HookOutcome[];
  /** Where the cluster stands at the end (core/standing.ts): the new primary, the standbys following it. */
  standing?: ClusterStanding;
}

/**
 * Patch marker: a switchover that fails after the promotion (verification, a standby not moved) looks once at
 * where the cluster stands and says it. Runs recorded before this end with the message alone.
 */
const PATCH_DOLT_ENDS_WITH_STANDING = 'dolt-switchover-ends-with-standing';

export async function doltSwitchover(input: SwitchoverInput): Promise<DoltSwitchoverReport> {
  const { cluster } = input;
  const rb = new Runbook('switchover', cluster);
  rb.plan([
    { name: 'probe', summary: `probe every node of ${cluster}` },
    { name: 'decide', summary: 'choose the candidate and the new epoch' },
  ]);
  if (input.requestedBy) rb.audit('start', `requested by ${input.requestedBy}${input.to ? `, --to ${input.to}` : ''}`);

  const probed = await rb.step('probe', `probe every node of ${cluster}`, () => probe.probeDoltCluster.executeWithOptions({ summary: `probe every node of ${cluster}` }, [{ cluster }]));
  const policy = probed.policy;
  const decision = await rb
    .step(
      'decide',
      'choose the candidate and the new epoch',
      async () => {
        const r = decideDoltSwitchover(probed.nodes, { to: input.to, policy });
        if (!r.ok) {
          // Nothing changed: where the cluster stands is what the probe saw.
          const s = standingOf(doltClusterStatus(cluster, probed.nodes));
          throw ApplicationFailure.create({ message: `${r.refusal.message}. Where it stands: ${standingLine(s)}`, type: r.refusal.errorType, nonRetryable: true, details: [{ ...r.refusal, standing: s }] });
        }
        return r.decision;
      },
      (d) => `chose ${d.candidate} to replace ${d.primary}: ${d.reasons.join('; ')}`,
    )
    .catch((e) => {
      rb.skipRemaining('refused');
      throw e;
    });

  const { primary, candidate, followers, epoch } = decision;
  const hookRun = { cluster, oldPrimary: primary, newPrimary: candidate };
  const [preHooks, promotionHooks, postHooks] = [hookCount(probed.hooks, 'preSwitchover'), hookCount(probed.hooks, 'postPromotion'), hookCount(probed.hooks, 'postSwitchover')];
  const plan = [
    ...hookPlan('preSwitchover', preHooks),
    { name: 'veto', summary: 're-check the decision before the demotion' },
    { name: 'catch-up', summary: `wait until ${primary} reports every standby within ${policy.nearMillis} ms (at most ${policy.catchUpTimeoutMs} ms)` },
    { name: 'demote', summary: `make ${primary} a standby at epoch ${epoch} (Dolt blocks its writes and waits for every standby)` },
    { name: 'same-data', summary: `check ${primary} and ${candidate} hold the same data (dolt_hashof_db of every database)` },
    { name: 'promote', summary: `make ${candidate} the primary at epoch ${epoch}` },
    ...hookPlan('postPromotion', promotionHooks),
    ...followers.map((n) => ({ name: `follow ${n}`, summary: `move standby ${n} to epoch ${epoch}` })),
    { name: 'verify', summary: `verify ${candidate} primary and every other node standby at epoch ${epoch}, replicating` },
    ...hookPlan('postSwitchover', postHooks),
  ];
  const step = (name: string) => plan.find((p) => p.name === name)!.summary;
  rb.plan(plan);
  const report = (extra: Partial<DoltSwitchoverReport>): DoltSwitchoverReport => ({
    runbook: 'switchover',
    engine: 'dolt',
    cluster,
    dryRun: !!input.dryRun,
    oldPrimary: primary,
    newPrimary: candidate,
    decision,
    plan: plan.map((p) => p.summary),
    writePauseMs: 0,
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
  let approval: DoltSwitchoverReport['approval'];
  const hooks: HookOutcome[] = [];
  try {
    approval = await approvalGate(rb, input, {
      summary: `switch ${cluster} over from ${primary} to ${candidate} at epoch ${epoch}: ${decision.reasons.join('; ')}`,
      plan: plan.map((p) => p.summary),
      hashOf: { runbook: 'switchover', cluster, primary, candidate, epoch, plan: plan.map((p) => p.summary) },
    });
    // Pre-switchover hooks (fail closed): the first failure ends the run, nothing changed.
    hooks.push(...(await runPreHooks(rb, 'preSwitchover', preHooks, hookRun)));
    // Veto: the frozen decision against live state, just before the first change. Fails closed.
    await rb
      .step('veto', step('veto'), async () => {
        const again = await probe.probeDoltCluster.executeWithOptions({ summary: step('veto') }, [{ cluster }]);
        const r = decideDoltSwitchover(again.nodes, { to: candidate, policy });
        if (!r.ok) throw ApplicationFailure.create({ message: `veto: ${r.refusal.message}`, type: r.refusal.errorType, nonRetryable: true });
        if (r.decision.primary !== primary || r.decision.epoch !== epoch)
          throw ApplicationFailure.create({ message: `veto: the cluster changed since the decision (primary ${r.decision.primary}, next epoch ${r.decision.epoch}); nothing was changed`, type: ErrorType.PreconditionFailed, nonRetryable: true });
        return { audit: `${again.audit}: the decision stands` };
      })
      .catch((e) => {
        if (!isCancellation(e)) rb.skipRemaining('vetoed');
        throw e;
      });
    await rb.step('catch-up', step('catch-up'), () =>
      wait.ensureDoltStandbysCaughtUp.executeWithOptions({ summary: step('catch-up') }, [{ cluster, primary, timeoutMs: policy.catchUpTimeoutMs, nearMillis: policy.nearMillis }]),
    );
    if (abort.requested()) throw new CancelledFailure('abort requested');
  } catch (err) {
    if (isCancellation(err)) {
      rb.skipRemaining('aborted');
      rb.setPhase('aborted');
      throw abortedFailure(cluster, 'switchover', `${primary} is still the primary`);
    }
    rb.skipRemaining(failureTypeOf(err) === ErrorType.CatchUpTimeout ? 'not caught up' : 'refused');
    throw err;
  }

  return CancellationScope.nonCancellable(async () => {
    // ---- POINT OF NO RETURN: the old primary stops taking writes. From here the run moves forward, unless the
    // data differs or the promotion fails before the candidate took a write: then the old primary is restored. ----
    rb.passPointOfNoReturn();
    let demotedAt: number;
    try {
      demotedAt = (await rb.step('demote', step('demote'), () => mutate.ensureDoltRole.executeWithOptions({ summary: step('demote') }, [{ cluster, node: primary, role: 'standby', epoch }]))).at;
    } catch (err) {
      const u = await rb.step('undo', `make sure ${primary} is still (or again) the primary`, () =>
        mutate.ensureDoltPrimaryRestored.executeWithOptions({ summary: `make sure ${primary} is the primary` }, [{ cluster, node: primary, candidate, epoch }]),
      );
      rb.skipRemaining('handover undone');
      rb.setPhase('undone');
      throw ApplicationFailure.create({ type: ErrorType.HandoverAborted, nonRetryable: true, message: `switchover of ${cluster} undone: the demotion of ${primary} failed: ${messageOf(err)}; ${u.standing}` });
    }
    let hashes: Record<string, string> | undefined;
    let promotedAt: number;
    try {
      hashes = (await rb.step('same-data', step('same-data'), () => probe.verifyDoltSameData.executeWithOptions({ summary: step('same-data') }, [{ cluster, nodes: [primary, candidate] }]))).hashes;
      promotedAt = (await rb.step('promote', step('promote'), () => mutate.ensureDoltRole.executeWithOptions({ summary: step('promote') }, [{ cluster, node: candidate, role: 'primary', epoch }]))).at;
    } catch (err) {
      const u = await rb.step('undo', `make ${primary} the primary again unless ${candidate} already is`, () =>
        mutate.ensureDoltPrimaryRestored.executeWithOptions({ summary: `make ${primary} the primary again` }, [{ cluster, node: primary, candidate, epoch }]),
      );
      if (u.outcome !== 'candidate-is-primary') {
        rb.skipRemaining('handover undone');
        rb.setPhase('undone');
        throw ApplicationFailure.create({ type: ErrorType.HandoverAborted, nonRetryable: true, message: `switchover of ${cluster} undone: ${messageOf(err)}; ${u.standing}` });
      }
      promotedAt = u.at;
    }
    const writePauseMs = Math.max(0, promotedAt - demotedAt);
    // Post-promotion hooks (fail open): the writer endpoint moves as soon as there is a new primary.
    hooks.push(...(await runPostHooks(rb, 'postPromotion', promotionHooks, hookRun)));

    const notMoved: string[] = [];
    for (const n of followers)
      await rb
        .step(`follow ${n}`, step(`follow ${n}`), () => mutate.ensureDoltRole.executeWithOptions({ summary: step(`follow ${n}`) }, [{ cluster, node: n, role: 'standby', epoch }]))
        .catch((e) => notMoved.push(`${n}: ${messageOf(e)}`));
    // After the promotion a failure says where the cluster stands (one look; runs recorded before: the message alone).
    const incomplete = async (message: string): Promise<never> => {
      let st: ClusterStanding | undefined;
      if (patched(PATCH_DOLT_ENDS_WITH_STANDING))
        try {
          const now = await rb.step('standing', `see where ${cluster} stands`, () => probe.probeDoltCluster.executeWithOptions({ summary: `see where ${cluster} stands` }, [{ cluster }]), () => undefined);
          st = standingOf(doltClusterStatus(cluster, now.nodes), { expected: candidate, previousPrimary: primary });
          rb.audit('standing', standingLine(st));
        } catch {
          st = undefined;
        }
      rb.setPhase('done-incomplete');
      throw ApplicationFailure.create({ type: ErrorType.HandoverIncomplete, nonRetryable: true, message: st ? `${message}. Where it stands: ${standingLine(st)}` : message, ...(st ? { details: [{ standing: st }] } : {}) });
    };
    try {
      await rb.step('verify', step('verify'), () =>
        wait.verifyDoltTopology.executeWithOptions({ summary: step('verify') }, [{ cluster, primary: candidate, epoch, timeoutMs: policy.verifyTimeoutMs, nearMillis: policy.maxLagMillis }]),
      );
    } catch (err) {
      return incomplete(`switchover of ${cluster} passed the point of no return: ${candidate} is the primary at epoch ${epoch}${notMoved.length ? `; not moved: ${notMoved.join('; ')}` : ''}; verification failed: ${messageOf(err)}`);
    }
    if (notMoved.length) return incomplete(`switchover of ${cluster} incomplete: ${candidate} is the primary at epoch ${epoch}; not moved: ${notMoved.join('; ')}`);
    hooks.push(...(await runPostHooks(rb, 'postSwitchover', postHooks, hookRun)));
    const abortRequested = abort.requested();
    if (abortRequested) rb.audit('abort', `abort requested after the point of no return: finished forward (${candidate} is the primary)`);
    rb.setPhase(hooks.some((h) => !h.ok) ? 'done-post-hook-failed' : 'done');
    // Verified: the candidate primary, every other node a standby at its epoch, replicating.
    const standing = standingAfterVerify(candidate, primary, [...new Set([primary, ...followers])], []);
    rb.audit('standing', standingLine(standing));
    return report({ writePauseMs, hashes, approval, abortRequested: abortRequested || undefined, ...(hooks.length ? { hooks } : {}), standing, steps: rb.timings(), audit: rb.progress.audit });
  });
}
