/**
 * Rolling restart of a real Redis Cluster (3 shards x 1 replica, cluster-enabled processes) under continuous
 * writes through a cluster-aware client: shard by shard, the replica first, then CLUSTER FAILOVER to it, then
 * the old primary; every node ends on the desired spec, one primary per shard, no acknowledged write lost.
 * Split brain is sampled continuously per shard with the chaos harness's sampler (bench/chaos/sampler.ts):
 * from before the writer starts until the end state is read, every sample counts, and one sample with both
 * nodes of a shard writable fails the test.
 */
import Redis from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisClusterShardProbes } from '../../bench/chaos/redis';
import { SplitBrainSampler } from '../../bench/chaos/sampler';
import { runRollingRestart } from '../../client/commands/rolling-restart';
import { runSwitchover } from '../../client/commands/switchover';
import { loadInventory } from '../../inventory/load';
import { sleep } from '../../sandbox/ports';
import { startRedisClusterFleet, type RedisClusterFleet } from '../../sandbox/redis-cluster';
import { ClusterAckedWriter } from '../../sandbox/writer';
import { captureIO, startTestWorker, type TestWorker } from '../helpers';

async function facts(fleet: RedisClusterFleet) {
  const out: Record<string, { hz: string; runId: string; role: string; master?: string; slots: string }> = {};
  for (const n of fleet.nodes) {
    const c = new Redis({ host: n.host, port: n.port, password: fleet.password, lazyConnect: true, retryStrategy: () => null });
    await c.connect();
    const myself = ((await c.call('CLUSTER', 'NODES')) as string).split('\n').find((l) => l.includes('myself'))!.split(' ');
    const repl = await c.info('replication');
    out[n.id] = {
      hz: ((await c.config('GET', 'hz')) as string[])[1],
      runId: /run_id:(\w+)/.exec(await c.info('server'))![1],
      role: repl.includes('role:master') ? 'master' : 'slave',
      master: /master_port:(\d+)/.exec(repl)?.[1],
      slots: myself.slice(8).join(' '),
    };
    c.disconnect();
  }
  return out;
}

async function until(what: string, fn: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe('rolling restart (redis cluster)', () => {
  let fleet: RedisClusterFleet;
  let tw: TestWorker;
  let inventory: string;

  beforeAll(async () => {
    fleet = await startRedisClusterFleet({ cluster: 'rcl' });
    inventory = fleet.writeInventory();
    tw = await startTestWorker({ inventory: () => loadInventory(inventory) });
  });
  afterAll(async () => {
    await tw?.stop();
    await fleet?.stop();
  });

  it('rolls shard by shard, replicas before their primary, losing nothing', async () => {
    const before = await facts(fleet);
    const primariesBefore = Object.entries(before).filter(([, f]) => f.role === 'master').map(([id]) => id);
    const probes = await redisClusterShardProbes(fleet);
    // The view tells a shard's primary (acknowledges a write of the shard) from its replica (MOVED).
    for (const p of probes) {
      expect(Object.values(await p.probe.views()).sort()).toEqual(['read-only', 'writable']);
      p.probe.closeViews();
    }
    const samplers = probes.map((x) => ({ shard: x.shard, sampler: new SplitBrainSampler(x.probe).start() }));
    expect(samplers.map((x) => x.shard.length)).toEqual([2, 2, 2]);
    const client = fleet.clusterClient();
    const writer = new ClusterAckedWriter(client).start();
    await until('the writer has acknowledged writes', async () => writer.ackedKeys.length >= 100);
    const io = captureIO();
    const r = await runRollingRestart({ cluster: 'rcl', set: ['hz=19'], wait: true, inventory, address: tw.address, taskQueue: tw.taskQueue }, io);
    expect(r.exitCode, io.text()).toBe(0);
    const report = r.report!;
    expect(report.restarts).toHaveLength(6);
    expect(report.handovers.map((h) => h.from).sort()).toEqual([...primariesBefore].sort());
    // Each original primary is restarted only after its shard failed over, and only as a replica.
    for (const p of primariesBefore) {
      const failoverAt = report.audit.findIndex((a) => a.startsWith(`failover ${p}:`));
      const restartAt = report.audit.findIndex((a) => a.startsWith(`restart ${p}:`));
      expect(failoverAt, report.audit.join('\n')).toBeGreaterThan(-1);
      expect(restartAt).toBeGreaterThan(failoverAt);
    }
    // Replicas first within each shard: the shard's replica is restarted before its failover.
    for (const h of report.handovers) {
      const replicaRestart = report.audit.findIndex((a) => a.startsWith(`restart ${h.to}:`));
      expect(replicaRestart).toBeLessThan(report.audit.findIndex((a) => a.startsWith(`failover ${h.from}:`)));
    }
    expect(report.restarts.every((x) => x.role === 'replica')).toBe(true);

    const acked = writer.ackedKeys.length;
    await until('writes after the roll', async () => writer.ackedKeys.length >= acked + 100);
    const stats = await writer.stop();
    const after = await facts(fleet);
    // Every sample counts: no shard ever had both nodes writable. Each shard's sampler ran through both of its
    // node restarts (it saw a node down) and never stalled.
    const sampled = await Promise.all(samplers.map(async (x) => ({ shard: x.shard.join('+'), ...(await x.sampler.stop()) })));
    console.log(`[cluster] split-brain samples per shard: ${sampled.map((x) => `${x.shard} ${x.samples} (${x.withDownNode} with a node down, ${x.split} split, longest gap ${x.maxGapMs} ms)`).join('; ')}`);
    for (const x of sampled) {
      expect({ shard: x.shard, split: x.split, examples: x.splitExamples }).toEqual({ shard: x.shard, split: 0, examples: [] });
      expect(x.samples).toBeGreaterThan(100);
      expect(x.withDownNode).toBeGreaterThan(0);
      expect(x.maxGapMs).toBeLessThan(3000);
    }
    for (const n of fleet.nodes) {
      expect(after[n.id].hz).toBe('19');
      expect(after[n.id].runId).not.toBe(before[n.id].runId);
    }
    const masters = Object.values(after).filter((f) => f.role === 'master');
    expect(masters).toHaveLength(3);
    expect(masters.map((m) => m.slots).sort()).toEqual(Object.values(before).filter((f) => f.role === 'master').map((m) => m.slots).sort());
    expect(await writer.missing()).toEqual([]);
    client.disconnect();
    expect(stats.acked).toBeGreaterThan(500);
    console.log(`[cluster] acked=${stats.acked} errors=${stats.errors} maxGapMs=${stats.maxGapMs} failovers=${report.handovers.map((h) => `${h.writePauseMs}ms`).join(',')}`);
  });

  it('refuses a switchover on a cluster topology without --shard', async () => {
    const io = captureIO();
    const r = await runSwitchover({ cluster: 'rcl', wait: true, address: tw.address, taskQueue: tw.taskQueue }, io);
    expect(r.exitCode).toBe(2); // refused before anything changed
    expect(io.text()).toMatch(/refused \(PreconditionFailed\): rcl is a Redis Cluster: name the shard to switch over with --shard/);
  });
});
