/**
 * Unplanned failover of one Redis Cluster shard whose primary died and that the cluster does not fail over by
 * itself (its replicas have cluster-replica-no-failover, or too few primaries are left to vote):
 * `handover failover --cluster C --shard <node>`.
 *
 *   probe -> the shard (the named dead primary, or the primary a named replica follows) -> confirm dead
 *   (probesToConfirm consecutive DeadMaster rounds, probeIntervalMs apart: the monitor's rule; skipped with
 *   --force) -> choose the most advanced promotable replica -> pre-failover hooks -> | CLUSTER FAILOVER FORCE,
 *   then TAKEOVER if FORCE did not promote it -> post-promotion hooks -> every node's CLUSTER NODES agrees ->
 *   post-failover hooks
 *
 * If a replica of the shard turns primary while the run confirms (the cluster elected one), the run stops with
 * nothing changed. Writes the dead primary acknowledged but never sent to the replica are lost, as in any
 * asynchronous failover; the report gives the promoted replica's offset.
 */
import { ApplicationFailure, CancellationScope, patched, sleep } from '@temporalio/workflow';
import { ErrorType } from '../../core/errors';
import { confirmedDead, type Verdict } from '../../core/failover';
import { chooseFailoverCandidate, deadMasterRound } from '../../core/redis/failover';
import type { FailoverInput } from '../contracts';
import { mutate, probe, wait } from '../profiles';
import { Runbook, failureTypeOf, messageOf } from '../runbook';
import { standingLine, type ClusterStanding } from '../../core/standing';
import type { SpecProbe } from '../../core/redis/rolling';
import { PATCH_CLUSTER_SHARD_ENDS_WITH_STANDING, shardStanding } from './cluster-switchover';
import { hookCount, runPostFailoverHooks, runPostHooks, runPreFailoverHooks, type HookOutcome } from '../hooks';

export interface ClusterFailoverReport {
  runbook: 'failover';
  engine: 'redis-cluster';
  dryRun: false;
  cluster: string;
  oldPrimary: string;
  newPrimary: string;
  reasons: string[];
  /** How the replica was promoted: FORCE (a majority of primaries voted) or TAKEOVER (none could). */
  method: 'none' | 'force' | 'takeover';
  promotedMs: number;
  /** The promoted replica's replication offset when chosen: writes the dead primary acknowledged beyond it are lost. */
  promotedOffset: number;
  views: Record<string, string>;
  hooks?: HookOutcome[];
  /** Where the shard stands at the end (its nodes only, one look after the agreement): the new primary (was the dead one), who follows it, who does not and why. */
  standing?: ClusterStanding;
  steps: { step: string; ms: number }[];
  audit: string[];
}

/**
 * Runs from here on number their probes (the first 0, each confirmation round the next): the probes' inputs
 * were identical, so a replay that swapped two of them went unseen. Histories recorded before replay unnumbered.
 */
export const PATCH_NUMBERED_PROBES = 'redis-cluster-failover-numbered-probes';

export async function redisClusterFailover(input: FailoverInput): Promise<ClusterFailoverReport> {
  const { cluster } = input;
  const rb = new Runbook('failover', cluster);
  if (input.requestedBy) rb.audit('start', `requested by ${input.requestedBy}, --shard ${input.shard}${input.force ? ' (--force)' : ''}`);
  // A refusal changed nothing: where the shard stands (once it is known) is what the last probe saw.
  let seen: { nodes: SpecProbe[]; primary: string } | undefined;
  const refuse = (message: string): never => {
    rb.skipRemaining('refused');
    const st = seen ? shardStanding(cluster, seen.nodes, [seen.primary]) : undefined;
    throw ApplicationFailure.create({
      message: `${message}; nothing was changed${st ? `. Where the shard stands: ${standingLine(st)}` : ''}`,
      type: ErrorType.PreconditionFailed,
      nonRetryable: true,
      ...(st ? { details: [{ standing: st }] } : {}),
    });
  };
  if (!input.shard) refuse(`${cluster} is a Redis Cluster: name the shard whose primary died with --shard <node>`);
  if (input.dryRun || input.requireApproval) refuse('a Redis Cluster failover has no --dry-run or --require-approval yet');
  const numbered = patched(PATCH_NUMBERED_PROBES);
  let probes = 0;
  const probeAll = (summary: string) => probe.probeRedisSpecs.executeWithOptions({ summary }, [{ cluster, keys: [], ...(numbered ? { probe: probes++ } : {}) }]);
  let probed = await rb.step('probe', `probe every node of ${cluster}`, () => probeAll(`probe every node of ${cluster}`), (p) =>
    `saw ${p.nodes.map((n) => (n.reachable ? `${n.node}=${n.role}${n.role === 'replica' ? `(of ${n.primaryNode}, link ${n.linkUp ? 'up' : 'down'})` : ''}@${n.offset}` : `${n.node}=unreachable`)).join(' ')}`,
  );
  const named = probed.nodes.find((n) => n.node === input.shard);
  if (!named) refuse(`--shard ${input.shard}: no such node (a Cluster failover names the dead primary or one of its replicas)`);
  const deadPrimary = named!.reachable && named!.role === 'replica' ? named!.primaryNode : named!.node;
  if (!deadPrimary) refuse(`--shard ${input.shard}: ${named!.node} replicates from no node of the inventory`);
  seen = { nodes: probed.nodes, primary: deadPrimary! };
  const dead = probed.nodes.find((n) => n.node === deadPrimary)!;
  if (dead.reachable && dead.role === 'primary') refuse(`the shard's primary ${deadPrimary} answers: use switchover --shard for a planned change`);
  const shardOf = (nodes: typeof probed.nodes) => nodes.filter((n) => n.node === deadPrimary || (n.role === 'replica' && n.primaryNode === deadPrimary));
  const replicasAtStart = shardOf(probed.nodes).filter((n) => n.node !== deadPrimary).map((n) => n.node);
  if (!replicasAtStart.length) refuse(`no reachable replica follows ${deadPrimary}: nothing to promote (or the cluster already replaced it)`);
  const electedByCluster = () => probed.nodes.find((n) => replicasAtStart.includes(n.node) && n.reachable && n.role === 'primary');

  // Confirm: the monitor's rule (N consecutive DeadMaster rounds), unless --force.
  if (!input.force) {
    const need = probed.policy.probesToConfirm;
    const rounds: Verdict[] = [deadMasterRound(shardOf(probed.nodes), deadPrimary!)];
    await rb.step('confirm', `confirm ${deadPrimary} dead: ${need} consecutive probes ${probed.policy.probeIntervalMs} ms apart`, async () => {
      while (!confirmedDead(rounds, need)) {
        const elected = electedByCluster();
        if (elected) refuse(`the cluster elected ${elected.node} by itself`);
        if (!rounds[rounds.length - 1].dead) refuse(`${deadPrimary} is not confirmed dead: ${rounds[rounds.length - 1].reason}`);
        await sleep(probed.policy.probeIntervalMs);
        probed = await probeAll(`probe ${cluster} again`);
        seen = { nodes: probed.nodes, primary: deadPrimary! };
        rounds.push(deadMasterRound(shardOf(probed.nodes), deadPrimary!));
      }
      return { audit: `${need} consecutive rounds: ${rounds[rounds.length - 1].reason}` };
    });
  }
  const elected = electedByCluster();
  if (elected) refuse(`the cluster elected ${elected.node} by itself`);
  const choice = chooseFailoverCandidate(shardOf(probed.nodes), deadPrimary!);
  if ('refusal' in choice) refuse(choice.refusal);
  const { candidate, reasons, candidateOffset } = choice as Exclude<typeof choice, { refusal: string }>;
  rb.audit('decide', `chose ${candidate}: ${reasons.join('; ')}`);
  const hookRun = { cluster, oldPrimary: deadPrimary!, newPrimary: candidate };
  const preHooks = await runPreFailoverHooks(rb, probed.hooks?.preFailover ?? 0, hookRun);

  return CancellationScope.nonCancellable(async () => {
    const withStanding = patched(PATCH_CLUSTER_SHARD_ENDS_WITH_STANDING);
    // One look at where the shard stands (runs recorded before: none).
    const look = async (): Promise<ClusterStanding | undefined> => {
      if (!withStanding) return undefined;
      try {
        const now = await rb.step('standing', `see where the shard of ${candidate} stands`, () => probeAll(`see where the shard of ${candidate} stands`), () => undefined);
        const st = shardStanding(cluster, now.nodes, [deadPrimary!, candidate], { expected: candidate, previousPrimary: deadPrimary });
        rb.audit('standing', `the shard: ${standingLine(st)}`);
        return st;
      } catch {
        return undefined;
      }
    };
    const failWith = (type: string, message: string, st: ClusterStanding | undefined) =>
      ApplicationFailure.create({ type, nonRetryable: true, message: st ? `${message}. Where the shard stands: ${standingLine(st)}` : message, ...(st ? { details: [{ standing: st }] } : {}) });
    // ---- POINT OF NO RETURN: the replica takes the slots over ----
    const t = await rb
      .step(`promote ${candidate}`, `CLUSTER FAILOVER FORCE on ${candidate} (TAKEOVER if no majority votes)`, () =>
        mutate.ensureRedisClusterTakeover.executeWithOptions({ summary: `promote ${candidate} (FORCE, then TAKEOVER)`, startToCloseTimeout: '2m', heartbeatTimeout: '10s' }, [
          { cluster, node: candidate, deadPrimary: deadPrimary!, forceTimeoutMs: Math.max(3000, probed.policy.pauseTimeoutMs), timeoutMs: probed.policy.pauseTimeoutMs + 30_000 },
        ]),
      )
      .catch(async (e) => {
        if (!withStanding) throw e;
        throw failWith(failureTypeOf(e) ?? ErrorType.HandoverIncomplete, `failover of the shard of ${deadPrimary} (dead) to ${candidate}: ${messageOf(e)}`, await look());
      });
    rb.passPointOfNoReturn();
    const promotionHooks = await runPostHooks(rb, 'postPromotion', hookCount(probed.hooks, 'postPromotion'), hookRun);
    let agreed: Awaited<ReturnType<typeof wait.waitForRedisClusterAgreement>>;
    try {
      agreed = await rb.step('agree', `wait until every reachable node's CLUSTER NODES shows ${candidate} a master with slots`, () =>
        wait.waitForRedisClusterAgreement.executeWithOptions({ summary: `every node agrees ${candidate} serves the shard` }, [{ cluster, primary: candidate, timeoutMs: probed.policy.verifyTimeoutMs }]),
      );
    } catch (err) {
      if (!withStanding) throw err;
      const st = await look();
      rb.setPhase('done-incomplete');
      throw failWith(ErrorType.HandoverIncomplete, `failover of the shard of ${deadPrimary} passed the point of no return (${candidate} promoted by ${t.method}, ${deadPrimary} dead); the nodes did not agree: ${messageOf(err)}`, st);
    }
    const standing = await look();
    const hooks = [...preHooks, ...promotionHooks, ...(await runPostFailoverHooks(rb, probed.hooks?.postFailover ?? 0, hookRun))];
    rb.setPhase(hooks.some((h) => !h.ok) ? 'done-post-hook-failed' : 'done');
    return {
      runbook: 'failover' as const,
      engine: 'redis-cluster' as const,
      dryRun: false as const,
      cluster,
      oldPrimary: deadPrimary!,
      newPrimary: candidate,
      reasons,
      method: t.method,
      promotedMs: t.promotedMs,
      promotedOffset: candidateOffset,
      views: agreed.views,
      ...(hooks.length ? { hooks } : {}),
      ...(standing ? { standing } : {}),
      steps: rb.timings(),
      audit: rb.progress.audit,
    };
  });
}
