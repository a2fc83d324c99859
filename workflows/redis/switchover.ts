/**
 * Planned switchover of a Redis/Valkey replication cluster.
 *
 *   probe -> decide -> catch-up -> veto -> | handover -> repoint followers -> verify
 *                                          ^ point of no return
 * Before the point of no return every failure leaves the old primary primary and writable (undo step).
 * After it the run only moves forward. Decisions are frozen in workflow state and passed to activities, so a
 * retried activity never decides again; a crashed worker resumes at the step it was in.
 */
import { ApplicationFailure, CancellationScope, CancelledFailure, patched } from '@temporalio/workflow';
import { decideRedisSwitchover, type SwitchoverDecision } from '../../core/redis/decide';
import { ErrorType } from '../../core/errors';
import type { RedisNodeProbe, RunbookProgress } from '../../core/types';
import type { VerifyResult } from '../../activities/redis/replication';

/** Patch marker: one node's failed repoint does not stop the others; the run ends HandoverIncomplete naming it. */
const PATCH_REPOINT_ISOLATED = 'redis-switchover-repoint-isolated';
/** Patch marker: a replica that will not follow the new primary refuses the switchover up front (unless --allow-degraded). */
const PATCH_REFUSE_UNLINKED = 'switchover-refuse-unlinked-followers';
/** Patch marker: an ending after the point of no return with a node left behind looks at where the cluster stands (one probe). */
const PATCH_ENDS_WITH_STANDING = 'switchover-ends-with-standing';
import { redisClusterStatus } from '../../core/status';
import { nodesNotFollowing, standingLine, standingOf, type ClusterStanding, type NotFollowing } from '../../core/standing';
/**
 * Patch marker: on a Sentinel topology the handover runs with every Sentinel's info-period lowered (a step
 * before it, restored in a step after it, whatever the handover's outcome) and times SENTINEL FAILOVER against
 * Sentinel's INFO schedule. Runs recorded before this have neither step.
 */
const PATCH_SENTINEL_FAST = 'redis-sentinel-info-period-lowered';
import type { PinResult } from '../../activities/redis/sentinel';
import { DEFAULT_INFO_PERIOD_MS, HANDOVER_INFO_PERIOD_MS, infoPeriodsToRestore } from '../../core/redis/sentinel-timing';
import type { SwitchoverInput } from '../contracts';
import { mutate, probe, wait } from '../profiles';
import { Runbook, failureTypeOf, messageOf } from '../runbook';
import { abortWatch, abortedFailure, approvalGate, isCancellation } from '../approval';
import { hookCount, hookPlan, runPostHooks, runPreHooks, type HookOutcome } from '../hooks';


export interface SwitchoverReport {
  runbook: 'switchover';
  cluster: string;
  dryRun: boolean;
  oldPrimary: string;
  newPrimary: string;
  decision: SwitchoverDecision;
  /** The plan, in order, as run (or as it would run with --dry-run). */
  plan: string[];
  /** Write pause as the handover step measured it (FAILOVER issued until roles switched); 0 for dry runs. */
  writePauseMs: number;
  verify?: VerifyResult;
  steps: { step: string; ms: number }[];
  audit: string[];
  probe: RedisNodeProbe[];
  /** --require-approval: who approved which plan. */
  approval?: { approver: string; planHash: string };
  /** An abort arrived after the point of no return: the run finished forward. */
  abortRequested?: boolean;
  /** Operator hooks that ran (inventory `hooks:`): pre-switchover ones all succeeded, post-promotion and post-switchover ones may not have. */
  hooks?: HookOutcome[];
  /** Where the cluster stands at the end: the primary, who follows it, who does not and why (core/standing.ts). */
  standing?: ClusterStanding;
  /** Nodes left not following the new primary (--allow-degraded, or seen at the decision in a dry run): exit 5. */
  notFollowing?: NotFollowing[];
  /** --allow-degraded was given. */
  allowDegraded?: boolean;
}

export async function redisSwitchover(input: SwitchoverInput): Promise<SwitchoverReport> {
  const { cluster } = input;
  const rb = new Runbook('switchover', cluster);
  rb.plan([
    { name: 'probe', summary: `probe every node of ${cluster}` },
    { name: 'decide', summary: 'choose the candidate' },
  ]);
  if (input.requestedBy) rb.audit('start', `requested by ${input.requestedBy}${input.to ? `, --to ${input.to}` : ''}`);

  // 1. Probe
  const probed = await rb.step(
    'probe',
    `probe every node of ${cluster}`,
    () => probe.probeRedisCluster.executeWithOptions({ summary: `probe every node of ${cluster}` }, [{ cluster }]),
    (p) => `saw ${p.nodes.map((n) => (n.reachable ? `${n.node}=${n.role}@${n.offset}` : `${n.node}=unreachable`)).join(' ')}`,
  );

  // --allow-degraded / --no-allow-degraded for this run, else the inventory's policy.allowDegraded (recorded in the probe).
  const allowDegraded = input.allowDegraded ?? probed.policy.allowDegraded === true;
  if (allowDegraded && input.allowDegraded === undefined) rb.audit('policy', 'allowDegraded from the inventory policy');
  // 2. Decide (pure, in the workflow: recorded once in history, never re-decided on retry)
  let unlinked: NotFollowing[] = [];
  const decision = await rb.step(
    'decide',
    'choose the candidate',
    async () => {
      const r = decideRedisSwitchover(probed.nodes, { to: input.to, policy: probed.policy });
      if (!r.ok) {
        throw ApplicationFailure.create({ message: r.refusal.message, type: r.refusal.errorType, nonRetryable: true, details: [r.refusal] });
      }
      // A replica that will not follow the new primary (link down: a wrong masterauth, the network; unreachable)
      // is refused here, nothing changed, unless --allow-degraded: then the run hands over and reports it.
      if (patched(PATCH_REFUSE_UNLINKED)) {
        unlinked = nodesNotFollowing(redisClusterStatus(cluster, probed.topology ?? 'replication', probed.nodes), [r.decision.primary, r.decision.candidate]);
        if (unlinked.length && !allowDegraded && !input.dryRun)
          throw ApplicationFailure.create({
            type: ErrorType.PreconditionFailed,
            nonRetryable: true,
            message: `${unlinked.map((n) => `${n.node} will not follow the new primary: ${n.reason}`).join('; ')}; nothing was changed. Fix ${unlinked.length > 1 ? 'them' : 'it'} first, or pass --allow-degraded (or set policy.allowDegraded in the inventory) to hand ${r.decision.primary} -> ${r.decision.candidate} over anyway and leave ${unlinked.map((n) => n.node).join(', ')} behind`,
          });
      }
      return r.decision;
    },
    (d) => `chose ${d.candidate} to replace ${d.primary}: ${d.reasons.join('; ')}`,
  ).catch((e) => {
    rb.skipRemaining('refused');
    throw e;
  });

  const { primary, candidate, followers } = decision;
  // Sentinel topology: Sentinel promotes (SENTINEL FAILOVER) and repoints the other replicas itself; Handover
  // pins Sentinel's choice to the candidate and pauses writes until the candidate has every byte.
  const viaSentinel = probed.topology === 'sentinel';
  const method = viaSentinel ? 'sentinel' : probed.policy.handoverMethod;
  const others = followers.filter((f) => f !== primary);
  const hookRun = { cluster, oldPrimary: primary, newPrimary: candidate };
  const [preHooks, promotionHooks, postHooks] = [hookCount(probed.hooks, 'preSwitchover'), hookCount(probed.hooks, 'postPromotion'), hookCount(probed.hooks, 'postSwitchover')];
  const plan = [
    ...hookPlan('preSwitchover', preHooks),
    { name: 'catch-up', summary: `wait for ${candidate} to catch up with ${primary}` },
    { name: 'veto', summary: `re-check the decision before the point of no return` },
    { name: 'handover', summary: `hand ${primary} -> ${candidate} over (${method}; writes paused at most ${probed.policy.pauseTimeoutMs} ms)` },
    ...hookPlan('postPromotion', promotionHooks),
    ...(viaSentinel ? [] : others.map((f) => ({ name: `repoint ${f}`, summary: `make ${f} a replica of ${candidate}` }))),
    { name: `repoint ${primary}`, summary: `ensure ${primary} is a replica of ${candidate}` },
    { name: 'verify', summary: `verify one primary (${candidate}), replicas linked and converging` },
    ...(viaSentinel ? [{ name: 'unpin', summary: 'set replica-priority back from the inventory promotion rules' }] : []),
    ...hookPlan('postSwitchover', postHooks),
  ];
  if (viaSentinel) plan.splice(plan.findIndex((p) => p.name === 'handover'), 0, { name: 'pin', summary: `let Sentinel choose only ${candidate} (replica-priority 0 elsewhere)` });
  if (viaSentinel && patched(PATCH_SENTINEL_FAST)) {
    const at = plan.findIndex((p) => p.name === 'handover');
    plan.splice(at + 1, 0, { name: 'restore sentinel timing', summary: 'set every Sentinel\'s info-period back' });
    plan.splice(at, 0, { name: 'sentinel timing', summary: `have every Sentinel read INFO every ${HANDOVER_INFO_PERIOD_MS} ms during the handover (SENTINEL DEBUG info-period)` });
  }
  const step = (name: string) => plan.find((p) => p.name === name)!.summary;
  rb.plan(plan);
  const report = (extra: Partial<SwitchoverReport>): SwitchoverReport => ({
    runbook: 'switchover',
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
    return report(unlinked.length ? { notFollowing: unlinked } : {});
  }

  // Abort (cancellation) before the point of no return undoes and ends as Aborted; after it, finishes forward.
  const abort = abortWatch(rb);
  let pins: PinResult | undefined;
  const unpin = async () => {
    if (pins) await rb.step('unpin', step('unpin'), () => mutate.ensureRedisPromotionUnpinned.executeWithOptions({ summary: step('unpin') }, [{ cluster }]));
  };
  let approval: SwitchoverReport['approval'];
  const hooks: HookOutcome[] = [];
  try {
    // Approval gate (--require-approval): the plan and its hash in the progress query; nothing changed yet.
    approval = await approvalGate(rb, input, {
      summary: `switch ${cluster} over from ${primary} to ${candidate} (${method}): ${decision.reasons.join('; ')}`,
      plan: plan.map((p) => p.summary),
      hashOf: { runbook: 'switchover', cluster, primary, candidate, method, plan: plan.map((p) => p.summary) },
    });

    // Pre-switchover hooks (fail closed): the first failure ends the run, nothing changed.
    hooks.push(...(await runPreHooks(rb, 'preSwitchover', preHooks, hookRun)));

    // 3. Catch-up: the candidate receives what the primary had, so the pause that follows is short.
    await rb.step(`catch-up`, step('catch-up'), () =>
      wait.waitForRedisCatchUp.executeWithOptions({ summary: step('catch-up') }, [{ cluster, primary, candidate, timeoutMs: probed.policy.catchUpTimeoutMs }]),
    );

    // 4. Veto: the frozen decision against live state. Fails closed.
    await rb.step('veto', step('veto'), () =>
      probe.vetoRedisHandover.executeWithOptions({ summary: step('veto') }, [{ cluster, primary, candidate, policy: probed.policy }]),
    );

    // ---- POINT OF NO RETURN: the handover step promotes the candidate. Until it succeeds, undo is possible. ----
    if (viaSentinel) {
      pins = await CancellationScope.nonCancellable(() =>
        rb.step('pin', step('pin'), () => mutate.ensureRedisPromotionPinned.executeWithOptions({ summary: step('pin') }, [{ cluster, candidate }])),
      );
    }
    if (abort.requested()) throw new CancelledFailure('abort requested');
  } catch (err) {
    if (!isCancellation(err)) throw err;
    // Aborted before the handover began: nothing was paused or promoted; undo the pin if there is one.
    await CancellationScope.nonCancellable(unpin);
    rb.skipRemaining('aborted');
    rb.setPhase('aborted');
    throw abortedFailure(cluster, 'switchover', `${primary} is still the primary and writable`);
  }
  const fastSentinel = viaSentinel && patched(PATCH_SENTINEL_FAST);
  const handOver = () =>
    viaSentinel
      ? mutate.ensureRedisSentinelHandover.executeWithOptions({ summary: step('handover') }, [
          { cluster, from: primary, to: candidate, pauseTimeoutMs: probed.policy.pauseTimeoutMs, ...(fastSentinel ? { alignFailover: true } : {}) },
        ])
      : mutate.ensureRedisHandedOver.executeWithOptions({ summary: step('handover') }, [
          { cluster, from: primary, to: candidate, method: probed.policy.handoverMethod, pauseTimeoutMs: probed.policy.pauseTimeoutMs },
        ]);
  // From the handover on, an abort no longer interrupts: the handover (bounded by its write pause) either
  // completes, and the run finishes forward, or fails and is undone as before.
  return CancellationScope.nonCancellable(async () => {
    let writePauseMs = 0;
    // Sentinel: every Sentinel re-reads INFO every HANDOVER_INFO_PERIOD_MS for the handover only. The restore
    // is its own step after the handover, whatever happened in it (a crashed worker resumes into it); it sets
    // back the values read before, Redis' default for one that was already lowered (an earlier attempt's).
    // Should the lowering step itself fail, the handover goes on at Sentinel's own pace (slower, not less safe)
    // and every Sentinel is set back to Redis' default, since what it had before was not read.
    let restoreTo: number | Record<string, number> | undefined;
    if (fastSentinel) {
      restoreTo = await rb
        .step('sentinel timing', step('sentinel timing'), () =>
          mutate.ensureRedisSentinelInfoPeriod.executeWithOptions({ summary: step('sentinel timing') }, [{ cluster, periodMs: HANDOVER_INFO_PERIOD_MS }]),
        )
        .then(
          (r) => infoPeriodsToRestore(r.before),
          () => DEFAULT_INFO_PERIOD_MS,
        );
    }
    const restoreTiming = async () => {
      if (restoreTo === undefined) return;
      const periodMs = restoreTo;
      restoreTo = undefined;
      // Fails open (audited): the switchover's outcome is the handover's, not this step's.
      await rb
        .step('restore sentinel timing', step('restore sentinel timing'), () =>
          mutate.ensureRedisSentinelInfoPeriod.executeWithOptions({ summary: step('restore sentinel timing') }, [{ cluster, periodMs }]),
        )
        .catch(() => undefined);
    };
    try {
      const h = await rb.step('handover', step('handover'), handOver);
      writePauseMs = h.handoverMs;
    } catch (err) {
      // Did the handover in fact happen (e.g. the step's retries ran out after the server completed it)?
      const now = await probe.probeRedisCluster.executeWithOptions({ summary: `re-probe ${cluster} after a failed handover` }, [{ cluster }]);
      const c = now.nodes.find((n) => n.node === candidate);
      const p = now.nodes.find((n) => n.node === primary);
      const happened = c?.role === 'primary' && p?.role === 'replica' && p.primaryNode === candidate;
      const demoted = !happened && p?.role === 'replica' && p.primaryNode === candidate;
      if (demoted) {
        // Past the point of no return (the old primary can no longer take writes): finish forward.
        rb.audit('handover', `the handover step failed (${messageOf(err)}) after ${primary} was demoted: resuming it`);
        const h = await rb.step('handover (resumed)', step('handover'), handOver);
        writePauseMs = h.handoverMs;
      } else if (!happened) {
        await rb.step('undo', `resume writes on ${primary} (it stays primary)`, () =>
          mutate.ensureRedisWritable.executeWithOptions({ summary: `resume writes on ${primary}` }, [{ cluster, node: primary }]),
        );
        await restoreTiming();
        await unpin();
        rb.skipRemaining('handover undone');
        rb.setPhase('undone');
        const type = failureTypeOf(err) ?? ErrorType.HandoverAborted;
        throw ApplicationFailure.create({
          message: `switchover of ${cluster} undone: ${messageOf(err)}; ${primary} is still the primary and writable`,
          type: type === ErrorType.HandoverAborted || type === ErrorType.UnexpectedTopology ? type : ErrorType.HandoverAborted,
          nonRetryable: true,
        });
      }
      if (happened) rb.audit('handover', `the handover step failed (${messageOf(err)}) but ${candidate} is primary with ${primary} its replica: finishing forward`);
    } finally {
      await restoreTiming();
    }
    rb.passPointOfNoReturn();

    // Post-promotion hooks (fail open): the writer endpoint moves as soon as there is a new primary.
    hooks.push(...(await runPostHooks(rb, 'postPromotion', promotionHooks, hookRun)));

    // 5. Repoint the other replicas, then make sure the old primary follows (FAILOVER already did; no-op then).
    // One node that cannot be repointed (unreachable, refused) never stops the others: it is reported at the
    // end, and verification covers the rest. Runs recorded before this (stop at the first failure) replay so.
    const isolated = patched(PATCH_REPOINT_ISOLATED);
    const notRepointed: { node: string; why: string }[] = [];
    for (const node of [...(viaSentinel ? [] : others), primary]) {
      const repoint = () =>
        rb.step(`repoint ${node}`, `make ${node} a replica of ${candidate}`, () =>
          mutate.ensureRedisReplicaOf.executeWithOptions({ summary: `make ${node} a replica of ${candidate}` }, [{ cluster, node, primary: candidate }]),
        );
      if (!isolated) await repoint();
      else
        await repoint().catch((err) => {
          // --allow-degraded: a node known at the decision not to follow is reported, not a failure.
          if (!unlinked.some((u) => u.node === node)) notRepointed.push({ node, why: messageOf(err).replace(/\.$/, '') });
        });
    }
    const standing = () =>
      `${candidate} is the primary and takes writes${notRepointed.length ? `; NOT repointed: ${notRepointed.map((n) => `${n.node}: ${n.why}`).join('; ')}` : ''}`;
    // Where the cluster stands, looked at once when a node is left behind (runs recorded before this: not looked at).
    const withStanding = patched(PATCH_ENDS_WITH_STANDING);
    const lookAtStanding = async (): Promise<ClusterStanding | undefined> => {
      if (!withStanding) return undefined;
      // The phase the run ends in (done-incomplete) stays, not the look's own step name.
      const phase = rb.progress.phase;
      try {
        const now = await rb.step('standing', `see where ${cluster} stands`, () => probe.probeRedisCluster.executeWithOptions({ summary: `see where ${cluster} stands` }, [{ cluster }]), () => undefined);
        const st = standingOf(redisClusterStatus(cluster, now.topology ?? 'replication', now.nodes), { expected: candidate, previousPrimary: primary });
        rb.audit('standing', standingLine(st));
        return st;
      } catch {
        return undefined;
      } finally {
        if (phase.startsWith('done')) rb.setPhase(phase);
      }
    };
    const incomplete = (message: string, st: ClusterStanding | undefined) =>
      ApplicationFailure.create({ type: ErrorType.HandoverIncomplete, nonRetryable: true, message: st ? `${message}. Where it stands: ${standingLine(st)}` : message, details: st ? [{ standing: st }] : undefined });

    // 6. Verify (on a Sentinel topology, before unpinning: until then Sentinel can only ever choose the candidate)
    const ignore = [...notRepointed.map((n) => n.node), ...unlinked.map((n) => n.node).filter((n) => !notRepointed.some((x) => x.node === n))];
    let verify: VerifyResult;
    try {
      verify = await rb.step('verify', step('verify'), () =>
        wait.verifyRedisTopology.executeWithOptions({ summary: step('verify') }, [{ cluster, primary: candidate, timeoutMs: probed.policy.verifyTimeoutMs, ...(ignore.length ? { ignore } : {}) }]),
      );
    } catch (err) {
      if (!isolated) throw err;
      await unpin();
      rb.setPhase('done-incomplete');
      throw incomplete(`switchover of ${cluster} passed the point of no return: ${standing()}; verification failed: ${messageOf(err)}`, await lookAtStanding());
    }
    await unpin();
    if (notRepointed.length) {
      rb.setPhase('done-incomplete');
      throw incomplete(`switchover of ${cluster} incomplete: ${standing()}. Fix those nodes, then repoint them (REPLICAOF ${candidate}) or run the switchover again`, await lookAtStanding());
    }
    // Verified: every node not known to be left behind follows the candidate. Those that were: looked at once.
    const st: ClusterStanding | undefined = unlinked.length
      ? await lookAtStanding()
      : withStanding
        ? { primary: candidate, previousPrimary: primary, changed: true, following: verify.nodes.filter((n) => n.node !== candidate).map((n) => n.node), notFollowing: [] }
        : undefined;
    const left = st ? st.notFollowing : unlinked;
    hooks.push(...(await runPostHooks(rb, 'postSwitchover', postHooks, hookRun)));
    const abortRequested = abort.requested();
    if (abortRequested) rb.audit('abort', `abort requested after the point of no return: finished forward (${candidate} is the primary)`);
    rb.setPhase(hooks.some((h) => !h.ok) ? 'done-post-hook-failed' : left.length ? 'done-degraded' : 'done');
    return report({
      writePauseMs,
      verify,
      approval,
      abortRequested: abortRequested || undefined,
      ...(hooks.length ? { hooks } : {}),
      ...(st ? { standing: st } : {}),
      ...(left.length ? { notFollowing: left } : {}),
      ...(allowDegraded ? { allowDegraded: true } : {}),
      steps: rb.timings(),
      audit: rb.progress.audit,
    });
  });
}

export type { RunbookProgress };
