/**
 * Rolling restart of a Redis/Valkey replication cluster: replicas first, one at a time, each back, linked and
 * caught up before the next; then the primary is handed over (the switchover runbook, as a child workflow)
 * to a replica that is current and in sync; then the old primary, by then a replica, is restarted.
 *
 * Stateless: before every action the cluster is re-probed and `nextRollingAction` says what is stale and what
 * comes next, so a re-run after a crash or a partial roll continues with the stale nodes only.
 */
import { ApplicationFailure } from '@temporalio/workflow';
import { ErrorType } from '../../core/errors';
import { nextRollingAction, nextSentinelRestart, whyStale, type SpecProbe } from '../../core/redis/rolling';
import type { DesiredSpec } from '../../core/rolling';
import { nextClusterRollingAction } from '../../core/redis/rolling-cluster';
import type { RollingRestartInput, RollingRestartReport } from '../contracts';
import { mutate, probe, wait } from '../profiles';
import { Runbook } from '../runbook';
import { handoverByChildSwitchover, runRoll, type RollEngine } from '../rolling';
import { hookCount, runPostHooks, type HookOutcome } from '../hooks';
import { redisClusterStatus } from '../../core/status';
import { standingOf } from '../../core/standing';

type RedisRollProbe = Awaited<ReturnType<typeof probe.probeRedisSpecs>>;

export async function redisRollingRestart(input: RollingRestartInput): Promise<RollingRestartReport> {
  const { cluster } = input;
  // --reason / --restart-all: the restart token, frozen at the roll's start (workflow time: a replay and a
  // resumed run see the same moment); runRoll adds each node it restarts to `restarted`.
  const desired: DesiredSpec = {
    config: input.set ?? {},
    version: input.version,
    ...(input.restartAll || input.reason !== undefined ? { restartStartedBefore: Date.now(), ...(input.reason !== undefined ? { reason: input.reason } : {}) } : {}),
  };
  const keys = Object.keys(desired.config);
  const rb = new Runbook('rolling-restart', cluster);
  if (input.requestedBy) rb.audit('start', `requested by ${input.requestedBy}: ${JSON.stringify(desired)}`);
  let topologyIsCluster = false;
  let topologyIsSentinel = false;
  const rollStartedAtMs = Date.now();
  const promotionHooks: HookOutcome[] = [];

  const engine: RollEngine<SpecProbe, RedisRollProbe> = {
    transient: new Set(['NoHealthyReplica', 'LastInSyncReplica', 'NoEligibleCandidate', 'ClusterNotOk']),
    probe: () => probe.probeRedisSpecs.executeWithOptions({ summary: `probe ${cluster}: which nodes are stale` }, [{ cluster, keys }]),
    saw: (p) => `saw ${p.nodes.map((n) => `${n.node}=${n.reachable ? n.role : 'down'}${whyStale(n, desired) ? '(stale)' : ''}`).join(' ')}`,
    stale: (n) => whyStale(n, desired),
    decide: (p) => {
      topologyIsCluster = p.topology === 'cluster';
      topologyIsSentinel = p.topology === 'sentinel';
      return (topologyIsCluster ? nextClusterRollingAction : nextRollingAction)(p.nodes, desired, { policy: p.policy, autoRestart: p.autoRestart });
    },
    primaryOf: (p) => p.nodes.find((n) => n.role === 'primary')?.node,
    needsController: () => true,
    async restart(action, probed) {
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
    },
    async handover(action, probed, round) {
      if (topologyIsCluster) {
        // Redis Cluster: the shard's replica takes over with CLUSTER FAILOVER (coordinated by the cluster itself).
        const h = await rb.step(`failover ${action.from}`, `CLUSTER FAILOVER: ${action.to} takes over the shard of ${action.from}`, () =>
          mutate.ensureRedisClusterFailover.executeWithOptions({ summary: `CLUSTER FAILOVER: ${action.to} takes over the shard of ${action.from}` }, [
            { cluster, from: action.from, to: action.to, timeoutMs: probed.policy.pauseTimeoutMs + 10_000 },
          ]),
        );
        // Post-promotion hooks (fail open): the shard's new primary is known; the roll goes on whatever they return.
        const outcomes = await runPostHooks(rb, 'postPromotion', hookCount(probed.hooks, 'postPromotion'), { cluster, oldPrimary: action.from, newPrimary: action.to });
        promotionHooks.push(...outcomes);
        return { from: action.from, to: action.to, writePauseMs: h.handoverMs, workflowId: '' };
      }
      return handoverByChildSwitchover(rb, cluster, action, round, 'redisSwitchover');
    },
    async finish(st, stopIfAborted) {
      // Sentinel topology: the Sentinels, one at a time, each healthy again before the next (quorum kept).
      if (topologyIsSentinel) {
        for (let round = 1; ; round++) {
          stopIfAborted();
          const { sentinels } = await rb.step(
            `probe sentinels #${round}`,
            `probe the Sentinels of ${cluster}`,
            () => probe.probeRedisSentinels.executeWithOptions({ summary: `probe the Sentinels of ${cluster}` }, [{ cluster }]),
            (r) => `saw ${r.sentinels.map((x) => `${x.id}=${x.reachable ? (x.healthy ? 'healthy' : 'unhealthy') : 'down'}`).join(' ')}`,
          );
          if (round > sentinels.length + 1) throw ApplicationFailure.create({ message: `Sentinel restarts of ${cluster} are not converging; stopped`, type: ErrorType.VerificationFailed, nonRetryable: true });
          const next = nextSentinelRestart(sentinels, { version: desired.version, includeSentinels: !!input.includeSentinels, rollStartedAtMs });
          if (next.kind === 'done') break;
          if (next.kind === 'refuse')
            throw ApplicationFailure.create({
              message: `stopped safely: ${next.reason}; every data node is rolled (primary ${st.primary}), ${st.sentinelRestarts.length} Sentinel(s) restarted`,
              type: ErrorType.HandoverIncomplete,
              nonRetryable: true,
            });
          await rb.step(`restart ${next.id}`, `restart Sentinel ${next.id} (${next.reason})`, () =>
            wait.ensureRedisSentinelRestarted.executeWithOptions({ summary: `restart Sentinel ${next.id}` }, [{ cluster, id: next.id, sinceRunId: next.runId, timeoutMs: 60_000 }]),
          );
          st.sentinelRestarts.push(next.id);
        }
      }
      // Redis Cluster: the last probe found every node current, reachable, cluster_state ok and every shard with
      // an in-sync replica (the decision's guards run before it says done). Replication: verify one primary.
      if (topologyIsCluster) return { primary: st.primary };
      const verify = await rb.step('verify', `verify one primary (${st.primary}), replicas linked and converging`, () =>
        wait.verifyRedisTopology.executeWithOptions({ summary: `verify one primary (${st.primary}), replicas linked` }, [{ cluster, primary: st.primary, timeoutMs: st.verifyTimeoutMs }]),
      );
      return { primary: verify.primary, verified: verify.nodes.map((n) => n.node) };
    },
    // A Redis Cluster has a primary per shard: no single standing.
    standing: (p, opts) => (p.topology === 'cluster' ? undefined : standingOf(redisClusterStatus(cluster, p.topology ?? 'replication', p.nodes), opts)),
  };
  const report = await runRoll(rb, input, desired, engine);
  if (!promotionHooks.length) return report;
  const hooks = [...promotionHooks, ...(report.hooks ?? [])];
  if (hooks.some((h) => !h.ok)) rb.setPhase('done-post-hook-failed');
  return { ...report, hooks };
}
