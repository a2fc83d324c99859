/** Unplanned-failover activities for Redis/Valkey: promote, and fence an old primary that comes back. */
import { ErrorType, HandoverError } from '../../core/errors';
import { candidateCollapsed } from '../../core/empty-primary';
import { activity } from '../activity';
import { persistRole, redisOps, type RedisActivityDeps } from './node';
import { readNode } from './conn';

export function createRedisFailoverActivities(deps: RedisActivityDeps) {
  const { spec, withNode } = redisOps(deps);
  return {
    /**
     * Ensure `node` is a primary (REPLICAOF NO ONE, persisted). A no-op when it already is. With `expect` (what the
     * node held when the verdict was taken: the empty-primary guard), a replica whose dataset collapsed since
     * (it resynced from a primary that came back empty) is not promoted: CandidateResynced, nothing changed. A
     * sync still in progress is cut off by the promotion itself (its dataset is only replaced when the transfer
     * ends), so the check and REPLICAOF NO ONE are issued back to back, and the dataset is read again after.
     */
    ensureRedisPromoted: activity(async ({ cluster, node, expect }: { cluster: string; node: string; expect?: { offset?: number; dbsize?: number; replid?: string } }): Promise<{ changed: boolean; offset: number; dbsize?: number; audit: string }> => {
      const c = spec(cluster);
      const n = c.nodes.find((x) => x.id === node);
      if (!n) throw new HandoverError(ErrorType.UnknownNode, `unknown node ${node} in cluster ${cluster}`);
      // Tests: a primary brought back empty right before the check (test/integration/empty-primary-redis.test.ts).
      await deps.failpoint?.('ensureRedisPromoted.check');
      return withNode(c, node, async (cl) => {
        const before = await readNode(cl, c, n);
        if (before.role === 'primary') return { changed: false, offset: before.offset ?? 0, dbsize: before.dbsize, audit: `saw ${node} already primary; changed nothing` };
        const why = expect ? candidateCollapsed(node, expect, before) : undefined;
        if (why) throw new HandoverError(ErrorType.CandidateResynced, `${why}: not promoted; nothing was changed`);
        await cl.call('REPLICAOF', 'NO', 'ONE');
        const after = expect ? await readNode(cl, c, n) : undefined;
        await persistRole(cl);
        // The promotion itself starts a new replication history (a new replid): only keys and offset are compared.
        const late = expect && after ? candidateCollapsed(node, { ...expect, replid: undefined }, { ...after, role: 'replica', replid: undefined }) : undefined;
        return {
          changed: true,
          offset: before.offset ?? 0,
          dbsize: after?.dbsize ?? before.dbsize,
          audit: `saw ${node} replica at offset ${before.offset} (${before.dbsize} keys)${expect ? `, as at the verdict (offset ${expect.offset}, ${expect.dbsize} keys)` : ''}; issued REPLICAOF NO ONE${late ? `; WARNING: ${late} (a resync finished between the check and the promotion)` : ''}`,
        };
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
