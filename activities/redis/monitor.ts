/**
 * The Redis/Valkey monitor's detection loop (activities/monitor.ts): `watchRedisCluster` probes every node
 * every `probeIntervalMs` over connections it keeps open, decides each round with core/monitor-round.ts and
 * returns only when the monitor workflow has something to do. Read-only: a retry resumes from the heartbeat.
 */
import type Redis from 'ioredis';
import { probeDeadlineMs, redisMonitorRound } from '../../core/monitor-round';
import { HandoverError } from '../../core/errors';
import type { RedisClusterProbe, RedisNodeProbe } from '../../core/types';
import { activity } from '../activity';
import { NodePool, watchLoop, type WatchInput, type WatchResult } from '../monitor';
import { classifyRedisError, readNode, redisClusterSpec, redisTarget } from './conn';
import type { RedisActivityDeps } from './node';

export function createRedisMonitorActivities(deps: RedisActivityDeps) {
  const env = deps.env ?? process.env;
  return {
    /** The monitor's detection loop for a Redis/Valkey cluster (see activities/monitor.ts). */
    watchRedisCluster: activity(async (input: WatchInput): Promise<WatchResult<RedisClusterProbe>> => {
      const pool = new NodePool<Redis>(
        async (key) => {
          const [cluster, node] = key.split('\u0000');
          const c = redisClusterSpec(deps.inventory(), cluster);
          return deps.connectRedis(redisTarget(c, node, env));
        },
        (cl) => cl.disconnect(),
      );
      const probe = async (): Promise<RedisClusterProbe> => {
        const c = redisClusterSpec(deps.inventory(), input.cluster);
        const deadline = probeDeadlineMs(c.policy);
        const nodes = await Promise.all(
          c.nodes.map(async (n): Promise<RedisNodeProbe> => {
            const key = [c.name, n.id, n.host, n.port].join('\u0000');
            try {
              return await pool.use(key, (cl) => readNode(cl, c, n), deadline);
            } catch (e) {
              const typed = classifyRedisError(e, { cluster: c.name, node: n.id });
              if (typed instanceof HandoverError) throw typed; // wrong credentials: never "unreachable"
              return { node: n.id, address: `${n.host}:${n.port}`, promotion: n.promotion, reachable: false, error: (e as Error).message };
            }
          }),
        );
        return { cluster: c.name, engine: 'redis', topology: c.topology, policy: c.policy, hooks: { preFailover: c.hooks?.preFailover.length ?? 0, postFailover: c.hooks?.postFailover.length ?? 0 }, nodes, probedAt: new Date().toISOString(), autoRestart: c.controller?.autoRestart };
      };
      return watchLoop(input, { probe, decide: redisMonitorRound, failpoint: deps.failpoint, close: () => pool.closeAll() });
    }),
  };
}
