/**
 * Unplanned failover of a Dolt sql-server cluster whose primary died.
 *
 *   confirm (N rounds with no reachable primary) -> decide -> | promote -> followers -> demote old primary
 *   (if it answers) -> verify
 *                                                             ^ point of no return: promote
 *
 * Confirmation: no reachable node answers as primary for `probesToConfirm` consecutive probes
 * `probeIntervalMs` apart (one round with force). The candidate is a reachable standby (prefer first, then the
 * one that last heard from the primary); it is promoted at an epoch one more than any seen. The old primary,
 * when it returns at its lower epoch, hears of the primary at the higher epoch and steps down to standby by
 * itself (Dolt's cluster mode); if it already answers during the run, the run demotes it explicitly. What the
 * old primary acknowledged and had not yet pushed to the standby is lost (Dolt's cluster replication is
 * asynchronous); the report says so. Operator hooks (inventory `hooks:`): pre-failover after the decision (and
 * approval), before the promotion (fail closed: nothing changed); post-promotion right after it and
 * post-failover after verification (both fail open, reported).
 */
import { ApplicationFailure, CancellationScope, patched, sleep } from '@temporalio/workflow';
import { doltClusterStatus } from '../../core/status';
import { standingAfterVerify, standingLine, standingOf, type ClusterStanding } from '../../core/standing';
import { decideDoltFailover, doltPrimaryAlive, type DoltFailoverDecision, type DoltNodeProbe } from '../../core/dolt/decide';
import { ErrorType } from '../../core/errors';
import { mutate, probe, wait } from '../profiles';
import { Runbook, messageOf } from '../runbook';
import type { FailoverInput, FailoverPlanReport } from '../contracts';
import { approvalGate, abortedFailure } from '../approval';
import { hookCount, hookPlan, runPostFailoverHooks, runPostHooks, runPreFailoverHooks, type HookOutcome } from '../hooks';

export interface DoltFailoverReport {
  runbook: 'failover';
  engine: 'dolt';
  cluster: string;
  /** The unreachable node(s): the dead primary among them. */
  oldPrimary: string;
  newPrimary: string;
  epoch: number;
  reasons: string[];
  decision: DoltFailoverDecision;
  /** What happened to each unreachable node: demoted now, or demoted by the new epoch when it returns. */
  fenced: string;
  dataLossWindow: { note: string };
  steps: { step: string; ms: number }[];
  audit: string[];
  probe: DoltNodeProbe[];
  approval?: { approver: string; planHash: string };
  /** Operator hooks that ran (inventory `hooks:`): pre-failover ones all succeeded, the others may not have. */
  hooks?: HookOutcome[];
  /**
   * Where the cluster stands at the end (core/standing.ts): the new primary, the standbys verification saw at
   * its epoch, and the nodes still down as not following (each steps down when it returns).
   */
  standing?: ClusterStanding;
}

/**
 * Patch marker: a failover that fails after the promotion (verification, a standby not moved) looks once at
 * where the cluster stands and says it (message and details[0].standing). Runs recorded before this end with
 * the message alone.
 */
const PATCH_DOLT_FAILOVER_ENDS_WITH_STANDING = 'dolt-failover-ends-with-standing';

export async function doltFailover(input: FailoverInput): Promise<DoltFailoverReport | FailoverPlanReport> {
  const { cluster } = input;
  const rb = new Runbook('failover', cluster);
  rb.plan([
    { name: 'confirm', summary: `confirm ${cluster} has no reachable primary` },
    { name: 'decide', summary: 'choose the standby to promote and the new epoch' },
  ]);
  if (input.requestedBy) rb.audit('start', `requested by ${input.requestedBy}${input.force ? ' (--force)' : ''}`);

  // 1. Confirm: rounds of probes with no reachable primary.
  const probed = await rb
    .step(
      'confirm',
      `confirm ${cluster} has no reachable primary`,
      async () => {
        let last = await probe.probeDoltCluster.executeWithOptions({ summary: `probe every node of ${cluster}` }, [{ cluster }]);
        const rounds = input.force || input.confirmedBy ? 1 : Math.max(1, last.policy.probesToConfirm);
        for (let i = 1; ; i++) {
          const alive = doltPrimaryAlive(last.nodes);
          if (alive) {
            // Nothing changed: where the cluster stands is what this round's probe saw.
            const st = standingOf(doltClusterStatus(cluster, last.nodes));
            throw ApplicationFailure.create({
              type: ErrorType.PreconditionFailed,
              nonRetryable: true,
              message: `${alive} answers as primary (probe round ${i}): the primary is not dead (a planned move is handover switchover); nothing was changed. Where it stands: ${standingLine(st)}`,
              details: [{ standing: st }],
            });
          }
          if (i >= rounds) return { ...last, audit: `${rounds} round(s), no reachable primary: ${last.audit}` };
          await sleep(last.policy.probeIntervalMs);
          last = await probe.probeDoltCluster.executeWithOptions({ summary: `probe every node of ${cluster}` }, [{ cluster }]);
        }
      },
    )
    .catch((e) => {
      rb.skipRemaining('refused');
      throw e;
    });
  const policy = probed.policy;

  // 2. Decide.
  const decision = await rb
    .step(
      'decide',
      'choose the standby to promote and the new epoch',
      async () => {
        const r = decideDoltFailover(probed.nodes);
        if (!r.ok) {
          // Nothing changed: where the cluster stands is what the confirming probe saw.
          const st = standingOf(doltClusterStatus(cluster, probed.nodes));
          throw ApplicationFailure.create({ message: `${r.refusal.message}. Where it stands: ${standingLine(st)}`, type: r.refusal.errorType, nonRetryable: true, details: [{ standing: st }] });
        }
        return r.decision;
      },
      (d) => `chose ${d.candidate}: ${d.reasons.join('; ')}`,
    )
    .catch((e) => {
      rb.skipRemaining('refused');
      throw e;
    });
  const { candidate, followers, unreachable, epoch } = decision;
  const oldPrimary = unreachable.join(',') || '?';
  const hookRun = { cluster, oldPrimary, newPrimary: candidate };
  const [preHooks, promotionHooks, postHooks] = [probed.hooks?.preFailover ?? 0, hookCount(probed.hooks, 'postPromotion'), probed.hooks?.postFailover ?? 0];
  const plan = [
    ...Array.from({ length: preHooks }, (_, i) => ({ name: `pre-failover hook ${i + 1}`, summary: `pre-failover hook ${i + 1} (fails closed): promote ${candidate}?` })),
    { name: 'promote', summary: `make ${candidate} the primary at epoch ${epoch}` },
    ...hookPlan('postPromotion', promotionHooks),
    ...followers.map((n) => ({ name: `follow ${n}`, summary: `move ${n} to standby at epoch ${epoch}` })),
    ...unreachable.map((n) => ({ name: `demote ${n}`, summary: `make ${n} a standby at epoch ${epoch} if it answers (else it steps down when it returns)` })),
    { name: 'verify', summary: `verify ${candidate} primary at epoch ${epoch}, every reachable node standby` },
    ...Array.from({ length: postHooks }, (_, i) => ({ name: `post-failover hook ${i + 1}`, summary: `post-failover hook ${i + 1} (fails open)` })),
  ];
  const step = (name: string) => plan.find((p) => p.name === name)!.summary;
  rb.plan(plan);
  if (input.dryRun) {
    rb.skipRemaining('dry run');
    rb.setPhase('planned');
    return { runbook: 'failover', dryRun: true, cluster, oldPrimary, newPrimary: candidate, reasons: decision.reasons, plan: plan.map((p) => p.summary), steps: rb.timings(), audit: rb.progress.audit };
  }
  const approval: DoltFailoverReport['approval'] = await approvalGate(
    rb,
    input,
    {
      summary: `fail ${cluster} over to ${candidate} at epoch ${epoch}: ${decision.reasons.join('; ')}`,
      plan: plan.map((p) => p.summary),
      hashOf: { runbook: 'failover', cluster, candidate, epoch, plan: plan.map((p) => p.summary) },
    },
    () => abortedFailure(cluster, 'failover', `nothing was changed; ${candidate} is still a standby`),
  );
  // Pre-failover hooks (fail closed): the first failure ends the run, nothing changed.
  const hooks: HookOutcome[] = await runPreFailoverHooks(rb, preHooks, hookRun);

  return CancellationScope.nonCancellable(async () => {
    // ---- POINT OF NO RETURN: the candidate takes writes at the new epoch. ----
    rb.passPointOfNoReturn();
    await rb.step('promote', step('promote'), () => mutate.ensureDoltRole.executeWithOptions({ summary: step('promote') }, [{ cluster, node: candidate, role: 'primary', epoch }]));
    // Post-promotion hooks (fail open): the writer endpoint moves as soon as there is a new primary.
    hooks.push(...(await runPostHooks(rb, 'postPromotion', promotionHooks, hookRun)));
    const notMoved: string[] = [];
    for (const n of followers)
      await rb
        .step(`follow ${n}`, step(`follow ${n}`), () => mutate.ensureDoltRole.executeWithOptions({ summary: step(`follow ${n}`) }, [{ cluster, node: n, role: 'standby', epoch }]))
        .catch((e) => notMoved.push(`${n}: ${messageOf(e)}`));
    const fencedNow: string[] = [];
    const pending: string[] = [];
    for (const n of unreachable) {
      const r = await rb
        .step(`demote ${n}`, step(`demote ${n}`), () => mutate.ensureDoltStandbyIfReachable.executeWithOptions({ summary: step(`demote ${n}`) }, [{ cluster, node: n, epoch }]))
        .catch((e) => ({ reachable: false, audit: messageOf(e) }));
      (r.reachable ? fencedNow : pending).push(n);
    }
    const skip = pending;
    // The dead primary (the one unreachable node; several: none named as the one before).
    const previousPrimary = unreachable.length === 1 ? unreachable[0] : undefined;
    // After the promotion a failure says where the cluster stands (one look; runs recorded before: the message alone).
    const incomplete = async (message: string): Promise<never> => {
      let st: ClusterStanding | undefined;
      if (patched(PATCH_DOLT_FAILOVER_ENDS_WITH_STANDING))
        try {
          const now = await rb.step('standing', `see where ${cluster} stands`, () => probe.probeDoltCluster.executeWithOptions({ summary: `see where ${cluster} stands` }, [{ cluster }]), () => undefined);
          st = standingOf(doltClusterStatus(cluster, now.nodes), { expected: candidate, previousPrimary });
          rb.audit('standing', standingLine(st));
        } catch {
          st = undefined;
        }
      rb.setPhase('done-incomplete');
      throw ApplicationFailure.create({ type: ErrorType.HandoverIncomplete, nonRetryable: true, message: st ? `${message}. Where it stands: ${standingLine(st)}` : message, ...(st ? { details: [{ standing: st }] } : {}) });
    };
    try {
      await rb.step('verify', step('verify'), () =>
        wait.verifyDoltTopology.executeWithOptions({ summary: step('verify') }, [{ cluster, primary: candidate, epoch, timeoutMs: policy.verifyTimeoutMs, nearMillis: policy.maxLagMillis, ...(skip.length ? { skip } : {}) }]),
      );
    } catch (err) {
      return incomplete(`failover of ${cluster} passed the point of no return: ${candidate} is the primary at epoch ${epoch}${notMoved.length ? `; not moved: ${notMoved.join('; ')}` : ''}; verification failed: ${messageOf(err)}`);
    }
    if (notMoved.length) return incomplete(`failover of ${cluster} incomplete: ${candidate} is the primary at epoch ${epoch}; not moved: ${notMoved.join('; ')}`);
    // Verified: the candidate primary at the epoch, every reachable node a standby; the nodes still down follow
    // when they return (they hear of the higher epoch and step down).
    const standing = standingAfterVerify(
      candidate,
      previousPrimary,
      [...followers, ...fencedNow],
      pending.map((node) => ({ node, reason: `down: when it returns it hears of the primary at epoch ${epoch} and steps down to standby` })),
    );
    rb.audit('standing', standingLine(standing));
    hooks.push(...(await runPostFailoverHooks(rb, postHooks, hookRun)));
    rb.setPhase(hooks.some((h) => !h.ok) ? 'done-post-hook-failed' : 'done');
    const fenced = [
      ...fencedNow.map((n) => `${n} answered and was made a standby at epoch ${epoch}`),
      ...pending.map((n) => `${n} is down: when it returns it hears of the primary at epoch ${epoch} and steps down to standby (Dolt cluster mode)`),
    ].join('; ');
    return {
      runbook: 'failover' as const,
      engine: 'dolt' as const,
      cluster,
      oldPrimary,
      newPrimary: candidate,
      epoch,
      reasons: decision.reasons,
      decision,
      fenced: fenced || 'no unreachable node',
      dataLossWindow: { note: `Dolt cluster replication is asynchronous: writes ${oldPrimary} acknowledged after its last push to ${candidate} are lost` },
      steps: rb.timings(),
      audit: rb.progress.audit,
      probe: probed.nodes,
      approval,
      ...(hooks.length ? { hooks } : {}),
      standing,
    };
  });
}
