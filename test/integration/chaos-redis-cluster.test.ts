/**
 * Crash-safety of a Redis Cluster shard switchover in CI: the real worker process SIGKILLs itself inside the
 * CLUSTER FAILOVER activity, connected to the replica, just before sending the command (its heartbeat already
 * says it was issuing it); a fresh worker must finish the run. Judged per shard by the strict checker
 * (bench/chaos/checker.ts), as `npm run chaos -- switchover-redis-cluster` does for every point: one master per
 * shard, the expected one, its replica following and caught up, every acknowledged key of the shard on both
 * nodes, no sample with both nodes of a shard acknowledging a write, every node's CLUSTER NODES the same.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { SWITCHOVER_REDIS_CLUSTER, runChaos, summaryFailures } from '../../bench/chaos/index';
import { startRedisClusterLab, type RedisClusterLab } from '../../bench/lab';

describe('Redis Cluster shard switchover survives SIGKILL of the worker', () => {
  let lab: RedisClusterLab;
  beforeAll(async () => {
    lab = await startRedisClusterLab({ cluster: 'ci-chaos-rc', address: inject('temporalAddress'), log: () => undefined });
  });
  afterAll(async () => {
    await lab?.close();
  });

  it('killed just before CLUSTER FAILOVER is sent: the retry issues it, the run completes, nothing lost', async () => {
    const points = ['inside:ensureRedisClusterFailover.beforeFailover'];
    const lines: string[] = [];
    const s = await runChaos(lab, SWITCHOVER_REDIS_CLUSTER, points, (m) => lines.push(m));
    expect(summaryFailures(s), lines.join('\n')).toEqual([]);
    expect(s).toMatchObject({ killPoints: 1, completed: 1, failed: 0, lostAckedWrites: 0, multiplePrimaries: 0 });
    const [p] = s.points;
    expect(p).toMatchObject({ point: points[0], killed: true, completed: true, failures: [] });
    expect(p.acked).toBeGreaterThanOrEqual(SWITCHOVER_REDIS_CLUSTER.minAcked);
    // Three shards, each with its own master at the end.
    expect(p.newPrimary?.split(' ')).toHaveLength(3);
  }, 180_000);
});
