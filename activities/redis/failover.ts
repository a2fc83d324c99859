/** Unplanned-failover activities for Redis/Valkey: promote, and fence an old primary that comes back. */
import { ErrorType, HandoverError } from '../../core/errors';
import { activity } from '../activity';
import { persistRole, redisOps, type RedisActivityDeps } from './node';
import { readNode } from './conn';

export function createRedisFailoverActivities(deps: RedisActivityDeps) {
  const { spec, withNode } = redisOps(deps);
  return {
    /** Ensure `node` is a primary (REPLICAOF NO ONE, persisted). A no-op when it already is. */
    ensureRedisPromoted: activity(async ({ cluster, node }: { cluster: string; node: string }): Promise<{ changed: boolean; offset: number; audit: string }> => {
      const c = spec(cluster);
      const n = c.nodes.find((x) => x.id === node);
      if (!n) throw new HandoverError(ErrorType.UnknownNode, `unknown node ${node} in cluster ${cluster}`);
      return withNode(c, node, async (cl) => {
        const before = await readNode(cl, c, n);
        if (before.role === 'primary') return { changed: false, offset: before.offset ?? 0, audit: `saw ${node} already primary; changed nothing` };
        await cl.call('REPLICAOF', 'NO', 'ONE');
        await persistRole(cl);
        return { changed: true, offset: before.offset ?? 0, audit: `saw ${node} replica at offset ${before.offset}; issued REPLICAOF NO ONE` };
      });
    }),

    /**
     * Fence a node that claims to be primary but is not the cluster's primary (an old primary that came back):
     * make it a replica of `primary` before anything else. Whatever it accepted while isolated is discarded
     * by the resync, and reported. A no-op when it already follows `primary`; unreachable: reported, retried.
     */
    ensureRedisFenced: activity(async ({ cluster, node, primary }: { cluster: string; node: string; primary: string }): Promise<{ changed: boolean; discardedKeys?: number; audit: string }> => {
      const c = spec(cluster);
      const n = c.nodes.find((x) => x.id === node)!;
      const p = c.nodes.find((x) => x.id === primary)!;
      return withNode(c, node, async (cl) => {
        const before = await readNode(cl, c, n);
        if (before.role === 'replica' && before.primaryNode === primary) return { changed: false, audit: `saw ${node} already a replica of ${primary}; changed nothing` };
        await cl.call('REPLICAOF', p.host, String(p.port));
        await persistRole(cl);
        return {
          changed: true,
          discardedKeys: before.role === 'primary' ? before.dbsize : undefined,
          audit: `saw ${node} ${before.role === 'primary' ? `claiming primary (offset ${before.offset}, ${before.dbsize} keys)` : `replica of ${before.primaryNode ?? before.primaryAddress}`}; fenced: REPLICAOF ${primary}`,
        };
      });
    }),
  };
}
