/**
 * Planned switchover of one Redis Cluster shard (`handover switchover --cluster C --shard <node|slot>`):
 *
 *   probe -> decide -> [approval] -> pre-switchover hooks -> | CLUSTER FAILOVER on the chosen replica ->
 *   post-promotion hooks -> every node's CLUSTER NODES agrees -> post-switchover hooks
 *
 * CLUSTER FAILOVER (without FORCE) is the cluster's own coordinated, lossless handover: the replica asks its
 * primary to stop clients, catches up to its offset, takes the slots with a new config epoch, and the old
 * primary turns into its replica; clients follow MOVED. The activity is a no-op when the roles already switched
 * (a retry after a worker crash) and refuses to issue a second FAILOVER if the first did not complete. The run
 * ends only when every reachable node's CLUSTER NODES view shows the new primary serving the shard's slots and
 * the old primary its replica. Decisions are frozen in workflow state; the point of no return is the FAILOVER.
 */
import { ApplicationFailure, CancellationScope, CancelledFailure, patched, sleep } from '@temporalio/workflow';
import { decideClusterShardSwitchover, slotsInclude, type ClusterShardDecision } from '../../core/redis/cluster-switchover';
import { ErrorType } from '../../core/errors';
import { redisClusterStatus } from '../../core/status';
import { shardStandingOf, standingLine, type ClusterStanding } from '../../core/standing';
import type { SpecProbe } from '../../core/redis/rolling';
import type { SwitchoverInput } from '../contracts';
import { mutate, probe, wait } from '../profiles';
import { Runbook, failureTypeOf, messageOf } from '../runbook';
import { abortWatch, abortedFailure, approvalGate, isCancellation } from '../approval';
import { hookCount, hookPlan, runPostHooks, runPreHooks, type HookOutcome } from '../hooks';

export interface ClusterSwitchoverReport {
  runbook: 'switchover';
  engine: 'redis-cluster';
  cluster: string;
  dryRun: boolean;
  shard: string;
  oldPrimary: string;
  newPrimary: string;
  decision: ClusterShardDecision;
  plan: string[];
  /** CLUSTER FAILOVER issued until the roles switched (the cluster pauses the shard's writes meanwhile). */
  writePauseMs: number;
  /** Each node's CLUSTER NODES verdict at the end ('agrees' or 'unreachable'). */
  views?: Record<string, string>;
  steps: { step: string; ms: number }[];
  audit: string[];
  approval?: { approver: string; planHash: string };
  hooks?: HookOutcome[];
  /**
   * Where the shard stands at the end (core/standing.ts, the shard's nodes only): completed, the new primary of
   * its slots (was the old one) and the replicas following it, from one look after the agreement; a dry run,
   * what the probe saw.
   */
  standing?: ClusterStanding;
}

/**
 * Patch marker: a completed shard switchover or failover looks once at where the shard stands (report
 * `standing`); a failure from the promotion on looks once too and says it (the agreement failing:
 * HandoverIncomplete). Runs recorded before this end as they did.
 */
export const PATCH_CLUSTER_SHARD_ENDS_WITH_STANDING = 'redis-cluster-shard-ends-with-standing';

/** The primary of the shard `shard` names (a node of it, or a slot it serves), in one probe; undefined if none. */
export function shardPrimaryOf(nodes: SpecProbe[], shard: string): string | undefined {
  const named = nodes.find((n) => n.node === shard);
  if (named) return named.reachable && named.role === 'replica' ? named.primaryNode : named.node;
  const slot = /^\d+$/.test(shard) ? Number(shard) : undefined;
  return slot === undefined ? undefined : nodes.find((n) => n.reachable && n.role === 'primary' && slotsInclude(n.slots, slot))?.node;
}

/** Where the shard of `seeds` stands by one probe of the cluster. */
export function shardStanding(cluster: string, nodes: SpecProbe[], seeds: string[], opts: { expected?: string; previousPrimary?: string } = {}): ClusterStanding {
  return shardStandingOf(redisClusterStatus(cluster, 'cluster', nodes), seeds, opts);
}

export async function redisClusterSwitchover(input: SwitchoverInput): Promise<ClusterSwitchoverReport> {
  const { cluster } = input;
  const rb = new Runbook('switchover', cluster);
  rb.plan([
    { name: 'probe', summary: `probe every node of ${cluster}` },
    { name: 'decide', summary: `choose the shard (${input.shard ?? '?'}) and the replica that takes it over` },
  ]);
  if (input.requestedBy) rb.audit('start', `requested by ${input.requestedBy}, --shard ${input.shard}${input.to ? `, --to ${input.to}` : ''}`);
  if (!input.shard) {
    rb.skipRemaining('refused');
    throw ApplicationFailure.create({ type: ErrorType.PreconditionFailed, nonRetryable: true, message: `${cluster} is a Redis Cluster: name the shard to switch over with --shard <node or slot>; nothing was changed` });
  }
  const shard = input.shard;
  const probed = await rb.step(
    'probe',
    `probe every node of ${cluster}`,
    () => probe.probeRedisSpecs.executeWithOptions({ summary: `probe every node of ${cluster}` }, [{ cluster, keys: [] }]),
    (p) => `saw ${p.nodes.map((n) => (n.reachable ? `${n.node}=${n.role}${n.role === 'primary' ? `[${n.slots}]` : `(of ${n.primaryNode})`}@${n.offset}` : `${n.node}=unreachable`)).join(' ')}`,
  );
  const decision = await rb
    .step(
      'decide',
      `choose the shard (${shard}) and the replica that takes it over`,
      async () => {
        const r = decideClusterShardSwitchover(probed.nodes, { shard, to: input.to, maxLagBytes: probed.policy.maxLagBytes });
        if (!r.ok) {
          // Nothing changed: where the shard stands (when --shard names one) is what the probe saw.
          const p = shardPrimaryOf(probed.nodes, shard);
          const st = p ? shardStanding(cluster, probed.nodes, [p]) : undefined;
          throw ApplicationFailure.create({
            message: `${r.refusal.message}; nothing was changed${st ? `. Where the shard stands: ${standingLine(st)}` : ''}`,
            type: ErrorType.PreconditionFailed,
            nonRetryable: true,
            details: [{ ...r.refusal, ...(st ? { standing: st } : {}) }],
          });
        }
        return r.decision;
      },
      (d) => `shard ${d.slots} of ${d.primary}: ${d.candidate} takes it over (${d.reasons.join('; ')})`,
    )
    .catch((e) => {
      rb.skipRemaining('refused');
      throw e;
    });
  const { primary, candidate, slots } = decision;
  const hookRun = { cluster, oldPrimary: primary, newPrimary: candidate };
  const [preHooks, promotionHooks, postHooks] = [hookCount(probed.hooks, 'preSwitchover'), hookCount(probed.hooks, 'postPromotion'), hookCount(probed.hooks, 'postSwitchover')];
  const timeoutMs = probed.policy.pauseTimeoutMs + 10_000;
  const plan = [
    ...hookPlan('preSwitchover', preHooks),
    { name: 'failover', summary: `CLUSTER FAILOVER on ${candidate}: it takes slots ${slots} over from ${primary} (the cluster pauses the shard's writes until ${candidate} has caught up; at most ${timeoutMs} ms)` },
    ...hookPlan('postPromotion', promotionHooks),
    { name: 'agree', summary: `wait until every node's CLUSTER NODES shows ${candidate} master of ${slots} and ${primary} its replica` },
    ...hookPlan('postSwitchover', postHooks),
  ];
  rb.plan(plan);
  const step = (name: string) => plan.find((p) => p.name === name)!.summary;
  const report = (extra: Partial<ClusterSwitchoverReport>): ClusterSwitchoverReport => ({
    runbook: 'switchover',
    engine: 'redis-cluster',
    cluster,
    dryRun: !!input.dryRun,
    shard,
    oldPrimary: primary,
    newPrimary: candidate,
    decision,
    plan: plan.map((p) => p.summary),
    writePauseMs: 0,
    standing: shardStanding(cluster, probed.nodes, [primary]),
    steps: rb.timings(),
    audit: rb.progress.audit,
    ...extra,
  });
  if (input.dryRun) {
    rb.skipRemaining('dry run');
    rb.setPhase('planned');
    return report({});
  }

  const abort = abortWatch(rb);
  const hooks: HookOutcome[] = [];
  let approval: ClusterSwitchoverReport['approval'];
  try {
    approval = await approvalGate(rb, input, {
      summary: `switch shard ${slots} of ${cluster} over from ${primary} to ${candidate}: ${decision.reasons.join('; ')}`,
      plan: plan.map((p) => p.summary),
      hashOf: { runbook: 'switchover', cluster, primary, candidate, slots, plan: plan.map((p) => p.summary) },
    });
    hooks.push(...(await runPreHooks(rb, 'preSwitchover', preHooks, hookRun)));
    if (abort.requested()) throw new CancelledFailure('abort requested');
  } catch (err) {
    if (!isCancellation(err)) throw err;
    rb.skipRemaining('aborted');
    rb.setPhase('aborted');
    throw abortedFailure(cluster, 'switchover', `${primary} still serves slots ${slots}`);
  }

  // ---- POINT OF NO RETURN: CLUSTER FAILOVER. From here the run finishes forward (an abort no longer interrupts). ----
  return CancellationScope.nonCancellable(async () => {
    const withStanding = patched(PATCH_CLUSTER_SHARD_ENDS_WITH_STANDING);
    // One look at where the shard stands (runs recorded before: none).
    const look = async (): Promise<ClusterStanding | undefined> => {
      if (!withStanding) return undefined;
      try {
        const now = await rb.step('standing', `see where shard ${slots} stands`, () => probe.probeRedisSpecs.executeWithOptions({ summary: `see where shard ${slots} stands` }, [{ cluster, keys: [] }]), () => undefined);
        const st = shardStanding(cluster, now.nodes, [primary, candidate], { expected: candidate, previousPrimary: primary });
        rb.audit('standing', `shard ${slots}: ${standingLine(st)}`);
        return st;
      } catch {
        return undefined;
      }
    };
    const failWith = (type: string, message: string, st: ClusterStanding | undefined) =>
      ApplicationFailure.create({ type, nonRetryable: true, message: st ? `${message}. Where the shard stands: ${standingLine(st)}` : message, ...(st ? { details: [{ standing: st }] } : {}) });
    const h = await rb
      .step('failover', step('failover'), () => mutate.ensureRedisClusterFailover.executeWithOptions({ summary: `CLUSTER FAILOVER on ${candidate}` }, [{ cluster, from: primary, to: candidate, timeoutMs }]))
      .catch(async (e) => {
        rb.skipRemaining('failover did not complete');
        rb.setPhase('undone');
        if (!withStanding) throw e;
        throw failWith(failureTypeOf(e) ?? ErrorType.HandoverAborted, messageOf(e), await look());
      });
    rb.passPointOfNoReturn();
    hooks.push(...(await runPostHooks(rb, 'postPromotion', promotionHooks, hookRun)));
    let agreed: Awaited<ReturnType<typeof wait.waitForRedisClusterAgreement>>;
    try {
      agreed = await rb.step('agree', step('agree'), () =>
        wait.waitForRedisClusterAgreement.executeWithOptions({ summary: `every node agrees ${candidate} serves ${slots}` }, [{ cluster, primary: candidate, slots, replica: primary, timeoutMs: probed.policy.verifyTimeoutMs }]),
      );
    } catch (err) {
      if (!withStanding) throw err;
      const st = await look();
      rb.setPhase('done-incomplete');
      throw failWith(ErrorType.HandoverIncomplete, `switchover of shard ${slots} of ${cluster} passed the point of no return (CLUSTER FAILOVER on ${candidate} completed, ${primary} was its primary); the nodes did not agree: ${messageOf(err)}`, st);
    }
    // The old primary has just turned replica: its link may still be coming up (a PSYNC). Looked at again, a
    // few times 300 ms apart, before it is reported as not following.
    let standing = await look();
    for (let i = 0; i < 10 && standing?.notFollowing.some((n) => n.reason.startsWith('its replication link')); i++) {
      await sleep(300);
      standing = await look();
    }
    hooks.push(...(await runPostHooks(rb, 'postSwitchover', postHooks, hookRun)));
    rb.setPhase(hooks.some((x) => !x.ok) ? 'done-post-hook-failed' : 'done');
    return report({ writePauseMs: h.handoverMs, views: agreed.views, approval, standing, ...(hooks.length ? { hooks } : {}), steps: rb.timings(), audit: rb.progress.audit });
  });
}
