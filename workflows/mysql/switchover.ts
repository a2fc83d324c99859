/**
 * Planned switchover of a MySQL/MariaDB replication cluster (GTID replication).
 *
 *   probe -> decide -> veto -> fence -> catch-up -> | promote -> routing hook -> repoint old primary -> repoint followers -> verify
 *                                                   ^ point of no return
 * Nothing changes before the decision and the veto have passed, and they refuse a node that lacks a privilege
 * the run needs (core/mysql-privileges.ts) or holds errant GTIDs (whatever its replication threads do).
 * Before the candidate takes writes, every failure leaves the old primary primary and writable: a failed
 * fence or catch-up runs the undo step (ensureMysqlWritable); a failed promotion runs ensureMysqlPromotionUndone,
 * which makes the old primary writable again unless the candidate already is. The run then fails with the
 * reason and says where the cluster stands. After the promotion the run only moves forward: a node that cannot
 * be repointed is left untouched and reported, the others are still repointed, verification always runs, and
 * the run ends HandoverIncomplete naming the new primary and each node left behind. Decisions (primary,
 * candidate, the fenced GTID position) are frozen in workflow state and passed to activities, so a retried
 * activity never decides again.
 *
 * At no moment are two nodes writable: the old primary is read-only before the candidate stops replicating,
 * and the candidate takes writes only once it has applied the old primary's final position. Between the two
 * no node takes writes: that is the write-blocked window (writePauseMs).
 *
 * The routing hook runs right after promotion (not after repointing): the writer endpoint should move as soon
 * as there is a writer, and repointing replicas does not change who takes writes. A failed hook is reported
 * (step failed, audit line, report.routing) and the run goes on to repoint and verify: post-hooks fail open.
 */
import { ApplicationFailure, CancellationScope, CancelledFailure, patched } from '@temporalio/workflow';
import { decideMysqlSwitchover, whyNotFollower, type MysqlNodeProbe, type MysqlSwitchoverDecision } from '../../core/mysql/decide';
import { ErrorType } from '../../core/errors';
import type { EnsureMysqlFencedResult } from '../../activities/mysql/switchover';
import type { VerifyMysqlResult } from '../../activities/mysql/replication';

/** Patch marker: repoint the old primary first, and one node's failure does not stop the others. */
const PATCH_REPOINT_OLD_PRIMARY_FIRST = 'mysql-switchover-repoint-old-primary-first';
/** Patch marker: a replica that will not follow the new primary refuses the switchover up front (unless --allow-degraded). */
const PATCH_REFUSE_UNLINKED = 'switchover-refuse-unlinked-followers';
/** Patch marker: an ending after the point of no return with a node left behind looks at where the cluster stands (one probe). */
const PATCH_ENDS_WITH_STANDING = 'switchover-ends-with-standing';
import { mysqlClusterStatus } from '../../core/status';
import { nodesNotFollowing, standingLine, standingOf, type ClusterStanding, type NotFollowing } from '../../core/standing';
import { mutate, probe, wait } from '../profiles';
import { Runbook, failureTypeOf, messageOf } from '../runbook';
import type { SwitchoverInput } from '../contracts';
import { abortWatch, abortedFailure, approvalGate, isCancellation } from '../approval';
import { hookCount, hookPlan, runPostHooks, runPreHooks, type HookOutcome } from '../hooks';

export interface MysqlSwitchoverReport {
  runbook: 'switchover';
  engine: 'mysql';
  cluster: string;
  dryRun: boolean;
  oldPrimary: string;
  newPrimary: string;
  decision: MysqlSwitchoverDecision;
  plan: string[];
  /** No node took writes for this long: old primary fenced (read_only ON) until the candidate's read_only OFF. */
  writePauseMs: number;
  /** The old primary's final GTID position, applied by the new primary before it took writes. */
  fencedGtid?: string;
  killedSessions?: number;
  /** The routing hook's outcome; ok: false is a reported failure (the switchover itself completed). */
  routing?: { ran: boolean; ok: boolean; detail: string };
  verify?: VerifyMysqlResult;
  steps: { step: string; ms: number }[];
  audit: string[];
  probe: MysqlNodeProbe[];
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

export async function mysqlSwitchover(input: SwitchoverInput): Promise<MysqlSwitchoverReport> {
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
    () => probe.probeMysqlCluster.executeWithOptions({ summary: `probe every node of ${cluster}` }, [{ cluster }]),
    (p) =>
      `saw ${p.nodes
        .map((n) => (n.reachable ? `${n.node}=${n.role}${n.readOnly ? '(ro)' : '(rw)'}@${n.gtidBinlogPos || 'empty'}${n.role === 'replica' ? ` io=${n.ioRunning} sql=${n.sqlRunning ? 'Yes' : 'No'}` : ''}` : `${n.node}=unreachable`))
        .join(' ')}`,
  );

  // --allow-degraded / --no-allow-degraded for this run, else the inventory's policy.allowDegraded (recorded in the probe).
  const allowDegraded = input.allowDegraded ?? probed.policy.allowDegraded === true;
  if (allowDegraded && input.allowDegraded === undefined) rb.audit('policy', 'allowDegraded from the inventory policy');
  // 2. Decide (pure, in the workflow: recorded once in history, never re-decided on retry)
  let unlinked: NotFollowing[] = [];
  const decision = await rb
    .step(
      'decide',
      'choose the candidate',
      async () => {
        const r = decideMysqlSwitchover(probed.nodes, { to: input.to, policy: probed.policy, ...(allowDegraded ? { allowDegraded: true } : {}) });
        if (!r.ok) throw ApplicationFailure.create({ message: r.refusal.message, type: r.refusal.errorType, nonRetryable: true, details: [r.refusal] });
        // A replica that will not follow the new primary (replication threads not running, unreachable, errant)
        // is refused here, nothing changed, unless --allow-degraded: then the run hands over and reports it.
        if (patched(PATCH_REFUSE_UNLINKED)) {
          unlinked = nodesNotFollowing(mysqlClusterStatus(cluster, probed.nodes), [r.decision.primary, r.decision.candidate]);
          // And those the decision itself found unable to follow (errant GTIDs), which --allow-degraded let through:
          // left behind and reported like the others, not a repoint failure.
          const was = probed.nodes.find((n) => n.node === r.decision.primary);
          for (const n of probed.nodes) {
            const why = was && n.node !== r.decision.primary && n.node !== r.decision.candidate && !unlinked.some((u) => u.node === n.node) ? whyNotFollower(n, was) : undefined;
            if (why) unlinked.push({ node: n.node, reason: why });
          }
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
    )
    .catch((e) => {
      rb.skipRemaining('refused');
      throw e;
    });

  const { primary, candidate, followers } = decision;
  const repointOrder = [primary, ...followers];
  const policy = probed.policy;
  const hookRun = { cluster, oldPrimary: primary, newPrimary: candidate };
  const [preHooks, promotionHooks, postHooks] = [hookCount(probed.hooks, 'preSwitchover'), hookCount(probed.hooks, 'postPromotion'), hookCount(probed.hooks, 'postSwitchover')];
  const plan = [
    ...hookPlan('preSwitchover', preHooks),
    { name: 'veto', summary: 're-check the decision before fencing' },
    { name: 'fence', summary: `make ${primary} read-only (application sessions get ${policy.fenceGraceMs} ms, then are killed)` },
    { name: 'catch-up', summary: `wait for ${candidate} to apply ${primary}'s final GTID position (at most ${policy.catchUpTimeoutMs} ms)` },
    { name: 'promote', summary: `promote ${candidate}: stop and reset replication, read_only OFF` },
    ...(probed.routingHook ? [{ name: 'routing', summary: `run the routing hook to move the writer endpoint to ${candidate}` }] : []),
    ...hookPlan('postPromotion', promotionHooks),
    ...repointOrder.map((n) =>
      n === primary ? { name: `repoint ${primary}`, summary: `make ${primary} (read-only) a replica of ${candidate}` } : { name: `repoint ${n}`, summary: `make ${n} a replica of ${candidate}` },
    ),
    { name: 'verify', summary: `verify one writable node (${candidate}), replicas running and converged` },
    ...hookPlan('postSwitchover', postHooks),
  ];
  const step = (name: string) => plan.find((p) => p.name === name)!.summary;
  rb.plan(plan);
  const report = (extra: Partial<MysqlSwitchoverReport>): MysqlSwitchoverReport => ({
    runbook: 'switchover',
    engine: 'mysql',
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
  let approval: MysqlSwitchoverReport['approval'];
  const hooks: HookOutcome[] = [];
  try {
    // Approval gate (--require-approval): the plan and its hash in the progress query; nothing changed yet.
    approval = await approvalGate(rb, input, {
      summary: `switch ${cluster} over from ${primary} to ${candidate}: ${decision.reasons.join('; ')}`,
      plan: plan.map((p) => p.summary),
      hashOf: { runbook: 'switchover', cluster, primary, candidate, plan: plan.map((p) => p.summary) },
    });

    // Pre-switchover hooks (fail closed): the first failure ends the run, nothing changed.
    hooks.push(...(await runPreHooks(rb, 'preSwitchover', preHooks, hookRun)));

    // 3. Veto: the frozen decision against live state, just before the first change. Fails closed.
    await rb
      .step('veto', step('veto'), () => probe.vetoMysqlHandover.executeWithOptions({ summary: step('veto') }, [{ cluster, primary, candidate, policy, ...(allowDegraded ? { allowDegraded: true } : {}) }]))
      .catch((e) => {
        if (!isCancellation(e)) rb.skipRemaining('vetoed');
        throw e;
      });
  } catch (err) {
    if (!isCancellation(err)) throw err;
    rb.skipRemaining('aborted');
    rb.setPhase('aborted');
    throw abortedFailure(cluster, 'switchover', `${primary} is still the primary and writable`);
  }

  // The undo before the candidate takes writes: the old primary writable again, and the failure says why.
  const undone = (err: unknown, what: string): ApplicationFailure => {
    rb.skipRemaining(isCancellation(err) ? 'aborted' : 'handover undone');
    rb.setPhase(isCancellation(err) ? 'aborted' : 'undone');
    if (isCancellation(err)) return abortedFailure(cluster, 'switchover', `${primary} was made writable again and is still the primary`);
    const type = failureTypeOf(err);
    return ApplicationFailure.create({
      message: `switchover of ${cluster} undone: ${messageOf(err)}; ${what}`,
      type: type === ErrorType.UnexpectedTopology || type === ErrorType.FenceBoundUnavailable || type === ErrorType.FenceBoundExpired ? type : ErrorType.HandoverAborted,
      nonRetryable: true,
    });
  };

  // 4. Fence, then 5. catch-up. The compensation (old primary writable again) is armed from the fence on.
  // The fence runs to its end even if an abort arrives meanwhile (never two fences racing an undo); an abort
  // during the catch-up cancels the wait; either way the undo makes the old primary writable again.
  let fenced: EnsureMysqlFencedResult;
  let caughtUpTo: string;
  try {
    fenced = await CancellationScope.nonCancellable(() =>
      rb.step('fence', step('fence'), () => mutate.ensureMysqlFenced.executeWithOptions({ summary: step('fence') }, [{ cluster, node: primary, graceMs: policy.fenceGraceMs }])),
    );
    if (abort.requested()) throw new CancelledFailure('abort requested');
    const cu = await rb.step('catch-up', step('catch-up'), () =>
      wait.ensureMysqlCaughtUp.executeWithOptions({ summary: step('catch-up') }, [{ cluster, primary, candidate, position: fenced.finalGtid, timeoutMs: policy.catchUpTimeoutMs }]),
    );
    caughtUpTo = cu.position;
    if (abort.requested()) throw new CancelledFailure('abort requested');
  } catch (err) {
    await CancellationScope.nonCancellable(() =>
      rb.step('undo', `make ${primary} writable again (it stays primary)`, () =>
        mutate.ensureMysqlWritable.executeWithOptions({ summary: `make ${primary} writable again` }, [{ cluster, node: primary }]),
      ),
    );
    throw undone(err, `${primary} is still the primary and writable`);
  }

  // From here an abort no longer interrupts: the remaining steps run to the end (finish forward).
  return CancellationScope.nonCancellable(async () => {
    // ---- POINT OF NO RETURN: the candidate stops replicating and takes writes. From here the run only moves forward,
    // unless the promotion fails before the candidate took a write: then the old primary is made writable again. ----
    rb.passPointOfNoReturn();
    let promotedAt: number;
    try {
      promotedAt = (
        await rb.step('promote', step('promote'), () =>
          mutate.ensureMysqlPrimary.executeWithOptions({ summary: step('promote') }, [{ cluster, node: candidate, mustInclude: caughtUpTo, fencedPrimary: primary }]),
        )
      ).promotedAt;
    } catch (err) {
      const u = await rb.step('undo', `make ${primary} writable again unless ${candidate} already took writes`, () =>
        mutate.ensureMysqlPromotionUndone.executeWithOptions({ summary: `make ${primary} writable again` }, [{ cluster, primary, candidate }]),
      );
      if (u.outcome === 'undone')
        throw undone(err, `${primary} is still the primary and writable${u.candidateRepointed ? `, ${candidate} replicates from it again` : `; ${candidate} is NOT replicating (see the undo step)`}`);
      promotedAt = u.promotedAt!;
    }
    const writePauseMs = Math.max(0, promotedAt - fenced.fencedAt);

    // 6. Routing hook: fails open, and is reported.
    let routing: MysqlSwitchoverReport['routing'];
    if (probed.routingHook) {
      try {
        const h = await rb.step('routing', step('routing'), () => mutate.runRoutingHook.executeWithOptions({ summary: step('routing') }, [{ cluster, primary: candidate, oldPrimary: primary }]));
        routing = { ran: h.ran, ok: true, detail: h.audit };
      } catch (err) {
        routing = { ran: true, ok: false, detail: messageOf(err) };
        rb.audit('routing', `ROUTING HOOK FAILED (the switchover goes on; move the writer endpoint to ${candidate} by hand): ${messageOf(err)}`);
      }
    }

    // Post-promotion hooks (fail open): the writer endpoint moves as soon as there is a new primary.
    hooks.push(...(await runPostHooks(rb, 'postPromotion', promotionHooks, hookRun)));

    // 7. Repoint the old primary first (it is read-only and replicates from nobody: the node most in need of a
    // source), then the other replicas. One node that cannot be repointed never stops the others: it is left as
    // it was (ensureMysqlReplicaOf refuses before touching it) and reported at the end. Runs recorded before
    // this order (followers first, stop at the first failure) replay with it.
    const isolated = patched(PATCH_REPOINT_OLD_PRIMARY_FIRST);
    const notRepointed: { node: string; why: string }[] = [];
    for (const node of isolated ? repointOrder : [...followers, primary]) {
      const repoint = () =>
        rb.step(`repoint ${node}`, step(`repoint ${node}`), () =>
          mutate.ensureMysqlReplicaOf.executeWithOptions({ summary: `make ${node} a replica of ${candidate}` }, [{ cluster, node, primary: candidate }]),
        );
      if (!isolated) await repoint();
      else
        await repoint().catch((err) => {
          // --allow-degraded: a node known at the decision not to follow is reported, not a failure.
          if (!unlinked.some((u) => u.node === node)) notRepointed.push({ node, why: messageOf(err).replace(/\.$/, '') });
        });
    }

    // 8. Verify: always, every node (those not repointed are reported as they are, not waited for).
    const skip = [...notRepointed.map((n) => n.node), ...unlinked.map((n) => n.node).filter((n) => !notRepointed.some((x) => x.node === n))];
    const standing = () =>
      `${candidate} is the primary and takes writes${notRepointed.length ? `; NOT repointed (left as they were): ${notRepointed.map((n) => `${n.node}: ${n.why}`).join('; ')}` : ''}`;
    // Where the cluster stands, looked at once when a node is left behind (runs recorded before this: not looked at).
    const withStanding = patched(PATCH_ENDS_WITH_STANDING);
    const lookAtStanding = async (): Promise<ClusterStanding | undefined> => {
      if (!withStanding) return undefined;
      // The phase the run ends in (done-incomplete) stays, not the look's own step name.
      const phase = rb.progress.phase;
      try {
        const now = await rb.step('standing', `see where ${cluster} stands`, () => probe.probeMysqlCluster.executeWithOptions({ summary: `see where ${cluster} stands` }, [{ cluster }]), () => undefined);
        const st = standingOf(mysqlClusterStatus(cluster, now.nodes), { expected: candidate, previousPrimary: primary });
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
    let verify: VerifyMysqlResult;
    try {
      verify = await rb.step('verify', step('verify'), () =>
        wait.verifyMysqlTopology.executeWithOptions({ summary: step('verify') }, [{ cluster, primary: candidate, timeoutMs: policy.verifyTimeoutMs, ...(skip.length ? { skip } : {}) }]),
      );
    } catch (err) {
      if (!isolated) throw err;
      rb.setPhase('done-incomplete');
      throw incomplete(`switchover of ${cluster} passed the point of no return: ${standing()}; verification failed: ${messageOf(err)}`, await lookAtStanding());
    }
    if (notRepointed.length) {
      rb.setPhase('done-incomplete');
      throw incomplete(`switchover of ${cluster} incomplete: ${standing()}. Fix those nodes, then repoint them (handover switchover is refused until they can follow)`, await lookAtStanding());
    }
    const st: ClusterStanding | undefined = unlinked.length
      ? await lookAtStanding()
      : withStanding
        ? { primary: candidate, previousPrimary: primary, changed: true, following: verify.nodes.filter((n) => n.node !== candidate).map((n) => n.node), notFollowing: [] }
        : undefined;
    const left = st ? st.notFollowing : unlinked;
    hooks.push(...(await runPostHooks(rb, 'postSwitchover', postHooks, hookRun)));
    const abortRequested = abort.requested();
    if (abortRequested) rb.audit('abort', `abort requested after the point of no return: finished forward (${candidate} is the primary)`);
    rb.setPhase(routing && !routing.ok ? 'done-routing-failed' : hooks.some((h) => !h.ok) ? 'done-post-hook-failed' : left.length ? 'done-degraded' : 'done');
    return report({
      writePauseMs,
      fencedGtid: caughtUpTo,
      killedSessions: fenced.killedSessions,
      routing,
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
