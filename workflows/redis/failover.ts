/**
 * Unplanned failover of a Redis/Valkey replication cluster whose primary died.
 *
 *   confirm (N consecutive DeadMaster rounds) -> choose -> promote -> repoint -> fence old primary -> verify
 *
 * Confirmation: the primary unreachable AND every reachable replica reporting its link down, for
 * `probesToConfirm` consecutive probes `probeIntervalMs` apart (skipped with force, or when the monitor
 * already confirmed). The report states the data-loss window honestly: the last offset the primary was seen
 * at versus the offset of the promoted replica.
 */
import { ApplicationFailure, CancellationScope, patched, sleep } from '@temporalio/workflow';
import { candidateCollapsed } from '../../core/empty-primary';
import { describeWindow } from '../../core/maintenance';
import { PATCH_HONOUR_MAINTENANCE, openWindows } from '../maintenance';
import { chooseFailoverCandidate, deadMasterRound } from '../../core/redis/failover';
import { confirmedDead, type Verdict } from '../../core/failover';
import { redisLossWindow, lossReportFields, type LossReportFields } from '../../core/data-loss';
import { ErrorType } from '../../core/errors';
import { ActivityFailure } from '@temporalio/common';
import type { VerifyResult } from '../../activities/redis/replication';
import type { RedisClusterProbe } from '../../core/types';
import { hookCount, runPostFailoverHooks, runPostHooks, runPreFailoverHooks, type HookOutcome } from '../hooks';
import { mutate, probe, wait } from '../profiles';
import { Runbook, messageOf } from '../runbook';
import { redisClusterStatus } from '../../core/status';
import { standingAfterVerify, standingLine, standingOf, type ClusterStanding, type NotFollowing } from '../../core/standing';
import type { FailoverInput, FailoverPlanReport } from '../contracts';
import { abortWatch, abortedFailure, approvalGate, isCancellation } from '../approval';



/**
 * Patch marker: after the promotion, a replica that cannot be repointed does not stop the others, and a failure
 * of the repoints or of verification looks once at where the cluster stands and ends HandoverIncomplete
 * (exit 1) saying so. Runs recorded before this stop at the first failure as they did.
 */
export const PATCH_FAILOVER_ENDS_WITH_STANDING = 'failover-ends-with-standing';

/** From here on the failover re-checks its candidate's dataset before promoting it (the empty-primary guard). */
export const PATCH_RECHECK_CANDIDATE = 'redis-failover-recheck-candidate';

export interface FailoverReport {
  runbook: 'failover';
  cluster: string;
  oldPrimary: string;
  newPrimary: string;
  reasons: string[];
  /**
   * bytes: replication stream the old primary was seen with beyond what the new primary had, certainly lost (a
   * lower bound); what it took after lastSeenAt is not known (unobservedMs); `summary` says both.
   */
  dataLossWindow: { lastKnownPrimaryOffset?: number; promotedOffset: number; bytes?: number; note: string } & LossReportFields;
  fenced: 'now' | 'pending: the old primary is down; the monitor (or a re-run) makes it a replica when it returns';
  /** Operator hooks that ran (inventory `hooks:`): pre-failover ones all succeeded, post-failover ones may not have. */
  hooks?: HookOutcome[];
  verify: VerifyResult;
  steps: { step: string; ms: number }[];
  audit: string[];
  approval?: { approver: string; planHash: string };
  /** An abort arrived after the point of no return: the run finished forward. */
  abortRequested?: boolean;
  /** Where the cluster stands at the end: the new primary, who follows it, who does not and why (core/standing.ts). */
  standing?: ClusterStanding;
}

export async function redisFailover(input: FailoverInput): Promise<FailoverReport | FailoverPlanReport> {
  const { cluster } = input;
  const rb = new Runbook('failover', cluster);
  const startedAt = Date.now();
  if (input.requestedBy) rb.audit('start', `requested by ${input.requestedBy}${input.force ? ' (--force)' : ''}`);
  const describe = (p: RedisClusterProbe) => `saw ${p.nodes.map((n) => (n.reachable ? `${n.node}=${n.role}@${n.offset}` : `${n.node}=unreachable`)).join(' ')}`;
  // A monitor's detection loop hands over the probe of its confirming round: decided from it, nothing probed again.
  const fromMonitor = input.confirmed?.probe.engine === 'redis' ? input.confirmed.probe : undefined;
  if (fromMonitor) rb.audit('probe', `the monitor's confirming round at ${fromMonitor.probedAt} (${input.confirmed!.reason}): ${describe(fromMonitor)}; not probed again`);
  let probed = fromMonitor ?? (await rb.step('probe', `probe every node of ${cluster}`, () => probe.probeRedisCluster.executeWithOptions({ summary: `probe every node of ${cluster}` }, [{ cluster }]), describe));
  // A primary that came back EMPTY (the monitor's empty-primary guard) answers as primary: replaced all the same.
  const returnedEmpty = fromMonitor ? input.confirmed?.returnedEmpty : undefined;
  if (returnedEmpty) rb.audit('empty-primary', `${returnedEmpty.node} answers again but restarted empty: not followed; ${input.confirmed!.reason}`);
  const live = probed.nodes.filter((n) => n.reachable && n.role === 'primary' && n.node !== returnedEmpty?.node);
  // The primary to replace: the one the replicas point at (a dead primary does not answer for itself).
  const pointedAt = probed.nodes.filter((n) => n.reachable && n.role === 'replica' && n.primaryNode).map((n) => n.primaryNode!);
  const deadPrimary = input.lastKnown?.primary ?? pointedAt.sort((a, b) => pointedAt.filter((x) => x === b).length - pointedAt.filter((x) => x === a).length)[0];
  // A refusal changed nothing: where the cluster stands is what the last probe saw.
  const refuse = (message: string): never => {
    rb.skipRemaining('refused');
    const s = standingOf(redisClusterStatus(cluster, probed.topology ?? 'replication', probed.nodes));
    throw ApplicationFailure.create({ message: `${message}; nothing was changed. Where it stands: ${standingLine(s)}`, type: ErrorType.PreconditionFailed, nonRetryable: true, details: [{ standing: s }] });
  };
  if (!deadPrimary) refuse('no replica points at a primary: cannot tell which primary died');
  if (live.some((n) => n.node === deadPrimary)) refuse(`the primary ${deadPrimary} answers: use switchover for a planned change`);
  if (live.length) refuse(`${live.map((n) => n.node).join(', ')} already answer as primary: the failover seems done; check with the monitor or status`);

  // Confirm: N consecutive DeadMaster rounds.
  if (!input.force && !input.confirmedBy) {
    const need = probed.policy.probesToConfirm;
    const rounds: Verdict[] = [deadMasterRound(probed.nodes, deadPrimary)];
    await rb.step('confirm', `confirm ${deadPrimary} dead: ${need} consecutive probes ${probed.policy.probeIntervalMs} ms apart`, async () => {
      while (!confirmedDead(rounds, need)) {
        if (!rounds[rounds.length - 1].dead) refuse(`${deadPrimary} is not confirmed dead: ${rounds[rounds.length - 1].reason}`);
        await sleep(probed.policy.probeIntervalMs);
        probed = await probe.probeRedisCluster.executeWithOptions({ summary: `probe ${cluster} again` }, [{ cluster }]);
        rounds.push(deadMasterRound(probed.nodes, deadPrimary));
      }
      return { audit: `${need} consecutive rounds: ${rounds[rounds.length - 1].reason}` };
    });
  }

  // Nodes in maintenance (handover maintenance) are not promoted: treated as promotion never for this choice.
  if (patched(PATCH_HONOUR_MAINTENANCE)) {
    const held = (await openWindows(cluster, (why) => rb.audit('maintenance', `could not read the maintenance windows (${why}): none excluded`))).filter((w) => w.node !== deadPrimary);
    if (held.length) {
      rb.audit('maintenance', `not candidates: ${held.map(describeWindow).join('; ')}`);
      probed = { ...probed, nodes: probed.nodes.map((n) => (held.some((w) => w.node === n.node) ? { ...n, promotion: 'never' as const } : n)) };
    }
  }
  const choice = chooseFailoverCandidate(probed.nodes, deadPrimary);
  if ('refusal' in choice) refuse(choice.refusal);
  let { candidate, followers, reasons, candidateOffset } = choice as Exclude<typeof choice, { refusal: string }>;
  rb.audit('decide', `chose ${candidate}: ${reasons.join('; ')}`);
  let hookRun = { cluster, oldPrimary: deadPrimary, newPrimary: candidate };

  // Plan and approval (only when asked for: a monitor-started failover has neither).
  let approval: FailoverReport['approval'];
  if (input.dryRun || input.requireApproval) {
    const pre = probed.hooks?.preFailover ?? 0;
    const post = probed.hooks?.postFailover ?? 0;
    const plan = [
      ...(pre ? [`run ${pre} pre-failover hook(s); any failure stops the run with nothing changed`] : []),
      `promote ${candidate} to primary (point of no return)`,
      ...(hookCount(probed.hooks, 'postPromotion') ? [`run ${hookCount(probed.hooks, 'postPromotion')} post-promotion hook(s) (failures reported)`] : []),
      ...followers.filter((f) => probed.nodes.find((n) => n.node === f)?.reachable).map((f) => `make ${f} a replica of ${candidate}`),
      `fence ${deadPrimary}: make it a replica of ${candidate} if it answers (else left to the monitor)`,
      `verify ${candidate} primary, live replicas linked`,
      ...(post ? [`run ${post} post-failover hook(s) (failures reported)`] : []),
    ];
    if (input.dryRun) {
      rb.skipRemaining('dry run');
      rb.setPhase('planned');
      return { runbook: 'failover', dryRun: true, cluster, oldPrimary: deadPrimary, newPrimary: candidate, reasons, plan, steps: rb.timings(), audit: rb.progress.audit };
    }
    approval = await approvalGate(rb, input, { summary: `fail ${cluster} over from ${deadPrimary} (dead) to ${candidate}: ${reasons.join('; ')}`, plan, hashOf: { runbook: 'failover', cluster, deadPrimary, candidate, plan } }, () => abortedFailure(cluster, 'failover', `nothing was promoted`));
  }
  const abort = abortWatch(rb);
  const preHooks = await runPreFailoverHooks(rb, probed.hooks?.preFailover ?? 0, hookRun).catch((e) => {
    if (!isCancellation(e)) throw e;
    rb.setPhase('aborted');
    throw abortedFailure(cluster, 'failover', `nothing was promoted`);
  });
  if (abort.requested()) {
    rb.skipRemaining('aborted');
    rb.setPhase('aborted');
    throw abortedFailure(cluster, 'failover', `nothing was promoted`);
  }

  // From the promotion on, an abort no longer interrupts: the run finishes forward.
  return CancellationScope.nonCancellable(async (): Promise<FailoverReport> => {
    // ---- POINT OF NO RETURN: promote ----
    // The empty-primary guard: the candidate is promoted only if it still holds what it held at the verdict (a
    // primary that came back empty meanwhile may have resynced it); else the next replica that does, or none.
    const verdictOf = (node: string) => probed.nodes.find((n) => n.node === node);
    const promote = (node: string, guard: boolean) => {
      const v = verdictOf(node);
      const expect = guard && v ? { offset: v.offset, dbsize: v.dbsize, replid: v.replid } : undefined;
      return rb.step(`promote ${node}`, `promote ${node} to primary`, () =>
        mutate.ensureRedisPromoted.executeWithOptions({ summary: `promote ${node} to primary` }, [{ cluster, node, ...(expect ? { expect } : {}) }]),
      );
    };
    let promoted: Awaited<ReturnType<typeof promote>>;
    if (patched(PATCH_RECHECK_CANDIDATE)) {
      const tried: string[] = [];
      for (;;) {
        try {
          promoted = await promote(candidate, true);
          break;
        } catch (e) {
          if (!(e instanceof ActivityFailure && e.cause instanceof ApplicationFailure && e.cause.type === ErrorType.CandidateResynced)) throw e;
          tried.push(candidate);
          rb.audit('empty-primary', e.cause.message);
          const now = await rb.step('re-probe', `probe ${cluster}: which replica still holds the data`, () => probe.probeRedisCluster.executeWithOptions({ summary: `probe ${cluster} again` }, [{ cluster }]), describe);
          const holding = now.nodes.filter((n) => {
            const was = verdictOf(n.node);
            return !tried.includes(n.node) && was?.role === 'replica' && n.reachable && n.role === 'replica' && !candidateCollapsed(n.node, was, n);
          });
          const next = chooseFailoverCandidate([...holding, ...now.nodes.filter((n) => !holding.includes(n) && n.role !== 'replica')], deadPrimary);
          if ('refusal' in next) {
            const where = now.nodes.map((n) => (n.reachable ? `${n.node} ${n.role}${n.primaryNode ? ` of ${n.primaryNode}` : ''} (${n.dbsize} keys, offset ${n.offset})` : `${n.node} unreachable`)).join('; ');
            const was = verdictOf(tried[0]);
            rb.skipRemaining('refused');
            throw ApplicationFailure.create({
              message: `no replica still holds the data of ${deadPrimary}: ${tried.join(', ')} resynced since the verdict (${was?.dbsize} keys, offset ${was?.offset} then) and no other replica holds it; nothing was promoted and nothing was changed; the cluster stands: ${where}`,
              type: ErrorType.CandidateResynced,
              nonRetryable: true,
            });
          }
          candidate = next.candidate;
          candidateOffset = next.candidateOffset;
          reasons = [...next.reasons, `${tried.join(', ')} resynced since the verdict (empty-primary guard)`];
          followers = probed.nodes.filter((n) => n.node !== candidate && n.node !== deadPrimary).map((n) => n.node).sort();
          hookRun = { cluster, oldPrimary: deadPrimary, newPrimary: candidate };
          rb.audit('decide', `chose ${candidate} instead: ${reasons.join('; ')}`);
        }
      }
    } else promoted = await promote(candidate, false);
    rb.passPointOfNoReturn();
    // Post-promotion hooks (fail open): the writer endpoint moves as soon as there is a new primary.
    const promotionHooks = await runPostHooks(rb, 'postPromotion', hookCount(probed.hooks, 'postPromotion'), hookRun);
    const alive = (node: string) => probed.nodes.find((n) => n.node === node)?.reachable;
    // Past the point of no return one replica that cannot be repointed does not stop the others (reported).
    const withStanding = patched(PATCH_FAILOVER_ENDS_WITH_STANDING);
    const notRepointed: NotFollowing[] = [];
    for (const node of followers.filter(alive)) {
      const repoint = () =>
        rb.step(`repoint ${node}`, `make ${node} a replica of ${candidate}`, () =>
          mutate.ensureRedisReplicaOf.executeWithOptions({ summary: `make ${node} a replica of ${candidate}` }, [{ cluster, node, primary: candidate }]),
        );
      if (!withStanding) await repoint();
      else await repoint().catch((err) => notRepointed.push({ node, reason: `not repointed: ${messageOf(err).replace(/\.$/, '')}` }));
    }
    const incomplete = async (why: string): Promise<never> => {
      let st: ClusterStanding | undefined;
      try {
        const now = await rb.step('standing', `see where ${cluster} stands`, () => probe.probeRedisCluster.executeWithOptions({ summary: `see where ${cluster} stands` }, [{ cluster }]), () => undefined);
        st = standingOf(redisClusterStatus(cluster, now.topology ?? 'replication', now.nodes), { expected: candidate, previousPrimary: deadPrimary });
        rb.audit('standing', standingLine(st));
      } catch {
        st = undefined;
      }
      rb.setPhase('done-incomplete');
      throw ApplicationFailure.create({
        type: ErrorType.HandoverIncomplete,
        nonRetryable: true,
        message: `failover of ${cluster} passed the point of no return (${candidate} promoted, ${deadPrimary} dead): ${why}${st ? `. Where it stands: ${standingLine(st)}` : ''}`,
        ...(st ? { details: [{ standing: st }] } : {}),
      });
    };
    let fenced: FailoverReport['fenced'] = 'pending: the old primary is down; the monitor (or a re-run) makes it a replica when it returns';
    try {
      await rb.step(`fence ${deadPrimary}`, `make ${deadPrimary} a replica of ${candidate} if it answers`, () =>
        probe.ensureRedisFenced.executeWithOptions({ summary: `fence ${deadPrimary}`, retry: { maximumAttempts: 1 } }, [{ cluster, node: deadPrimary, primary: candidate }]),
      );
      fenced = 'now';
    } catch {
      rb.audit('fence', `${deadPrimary} does not answer; fencing is left to the monitor`);
    }
    const ignore = [deadPrimary, ...followers.filter((f) => !alive(f)), ...notRepointed.map((n) => n.node)];
    let verify: VerifyResult;
    try {
      verify = await rb.step('verify', `verify ${candidate} primary, live replicas linked`, () =>
        wait.verifyRedisTopology.executeWithOptions({ summary: `verify ${candidate} primary, live replicas linked` }, [{ cluster, primary: candidate, timeoutMs: probed.policy.verifyTimeoutMs, ignore: fenced === 'now' ? ignore.filter((n) => n !== deadPrimary) : ignore }]),
      );
    } catch (err) {
      if (!withStanding) throw err;
      return incomplete(`verification failed: ${messageOf(err)}${notRepointed.length ? `; ${notRepointed.map((n) => `${n.node} ${n.reason}`).join('; ')}` : ''}`);
    }
    if (notRepointed.length) return incomplete(`${notRepointed.map((n) => `${n.node} ${n.reason}`).join('; ')}; repoint ${notRepointed.length > 1 ? 'them' : 'it'} (REPLICAOF ${candidate}) once fixed`);
    // Where it stands, from what verification saw (no extra probe): the nodes left out say why.
    const left: NotFollowing[] = [
      ...followers.filter((f) => !alive(f)).map((node) => ({ node, reason: 'unreachable at the failover: repoint it when it returns' })),
      ...(fenced === 'now' ? [] : [{ node: deadPrimary, reason: 'the old primary is down: the monitor (or a re-run) makes it a replica when it returns' }]),
    ];
    const standing = standingAfterVerify(candidate, deadPrimary, verify.nodes.map((n) => n.node), left);
    rb.audit('standing', standingLine(standing));
    const hooks = [...preHooks, ...promotionHooks, ...(await runPostFailoverHooks(rb, probed.hooks?.postFailover ?? 0, hookRun))];
    rb.setPhase(hooks.some((h) => !h.ok) ? 'done-post-hook-failed' : 'done');
    const last = input.lastKnown?.offset;
    const promotedOffset = promoted.offset || candidateOffset;
    const honest = lossReportFields(redisLossWindow(deadPrimary, promotedOffset, {
      lastSight: last === undefined ? undefined : { position: last, at: input.lastKnown?.seenAt },
      deadSince: input.deadSince,
      confirmedAt: startedAt,
    }));
    return {
      runbook: 'failover',
      cluster,
      oldPrimary: deadPrimary,
      newPrimary: candidate,
      reasons,
      dataLossWindow: {
        lastKnownPrimaryOffset: last,
        promotedOffset,
        bytes: last === undefined ? undefined : Math.max(0, last - promotedOffset),
        note:
          last === undefined
            ? 'the old primary was not observed before it died (no monitor): the window is unknown; min-replicas-to-write bounds it'
            : 'replication bytes the old primary had when last observed by the monitor that the new primary lacked: certainly lost, a lower bound; what it took after that observation is not known',
        ...honest,
      },
      fenced,
      ...(hooks.length ? { hooks } : {}),
      verify,
      standing,
      ...(approval ? { approval } : {}),
      ...(abortFinishedForward() ? { abortRequested: true } : {}),
      steps: rb.timings(),
      audit: rb.progress.audit,
    };
  });

  function abortFinishedForward(): boolean {
    if (!abort.requested()) return false;
    rb.audit('abort', `abort requested after the point of no return: finished forward (${candidate} is the primary)`);
    return true;
  }
}
