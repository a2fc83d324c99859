/**
 * `handover switchover --cluster C --shard <node|slot>` on a real Redis Cluster (3 shards x 1 replica,
 * cluster-enabled redis-server processes) under continuous writes through a cluster-aware client: CLUSTER
 * FAILOVER on the shard's replica; the run ends when every node's CLUSTER NODES agrees (checked here again by
 * reading each node's own view); no acknowledged write lost; the shard named by a slot, then by a replica (which
 * is promoted: the shard goes back). Refusals change nothing: an unknown node, a slot out of range, no --shard.
 */
import Redis from 'ioredis';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActivities } from '../../activities';
import { runSwitchover } from '../../client/commands/switchover';
import { loadInventory } from '../../inventory/load';
import { sleep } from '../../sandbox/ports';
import { startRedisClusterFleet, type RedisClusterFleet } from '../../sandbox/redis-cluster';
import { ClusterAckedWriter } from '../../sandbox/writer';
import type { ClusterSwitchoverReport } from '../../workflows/redis/cluster-switchover';
import { captureIO, startTestWorker, type TestWorker } from '../helpers';

/** Each node's own CLUSTER NODES, as "inventory id -> {role, master, slots}" per viewer. */
async function views(fleet: RedisClusterFleet): Promise<Record<string, Record<string, { flags: string; master?: string; slots: string }>>> {
  const out: Record<string, Record<string, { flags: string; master?: string; slots: string }>> = {};
  const byAddr = new Map(fleet.nodes.map((n) => [`${n.host}:${n.port}`, n.id]));
  for (const n of fleet.nodes) {
    const c = new Redis({ host: n.host, port: n.port, password: fleet.password, lazyConnect: true, retryStrategy: () => null });
    await c.connect();
    const lines = ((await c.call('CLUSTER', 'NODES')) as string).trim().split('\n').map((l) => l.split(' '));
    c.disconnect();
    const hex = new Map(lines.map((f) => [f[0], byAddr.get(f[1].split('@')[0])!]));
    out[n.id] = Object.fromEntries(lines.map((f) => [hex.get(f[0])!, { flags: f[2].replace('myself,', ''), master: f[3] === '-' ? undefined : hex.get(f[3]), slots: f.slice(8).join(' ') }]));
  }
  return out;
}

describe('switchover of a Redis Cluster shard', () => {
  let fleet: RedisClusterFleet;
  let tw: TestWorker;
  let inventory: string;

  beforeAll(async () => {
    fleet = await startRedisClusterFleet({ cluster: 'rcsw' });
    inventory = fleet.writeInventory();
    tw = await startTestWorker({ inventory: () => loadInventory(inventory) });
  });
  afterAll(async () => {
    await tw?.stop();
    await fleet?.stop();
  });

  it('refuses, changing nothing: no --shard, an unknown node, a slot out of range, a --to outside the shard (saying where it stands)', async () => {
    // A fresh cluster's gossip is still spreading who replicates whom: start from views every node agrees on.
    const distinct = (v: Awaited<ReturnType<typeof views>>) => new Set(Object.values(v).map((x) => JSON.stringify(Object.entries(x).sort(([a], [b]) => a.localeCompare(b))))).size;
    let before = await views(fleet);
    for (const until = Date.now() + 20_000; distinct(before) > 1 && Date.now() < until; ) {
      await new Promise((r) => setTimeout(r, 100));
      before = await views(fleet);
    }
    expect(distinct(before)).toBe(1);
    for (const [shard, msg] of [
      [undefined, /refused \(PreconditionFailed\): rcsw is a Redis Cluster: name the shard to switch over with --shard/],
      ['nope', /refused \(PreconditionFailed\): --shard nope: no such node/],
      ['20000', /refused \(PreconditionFailed\): --shard 20000: a slot is 0-16383/],
    ] as const) {
      const io = captureIO();
      const r = await runSwitchover({ cluster: 'rcsw', ...(shard ? { shard } : {}), wait: true, inventory, address: tw.address, taskQueue: tw.taskQueue }, io);
      expect(r.exitCode, io.text()).toBe(2);
      expect(io.text()).toMatch(msg);
    }
    // A refusal that names a shard says where that shard stands (its primary, the replica following it).
    const v = before[fleet.nodes[0].id];
    const p0 = Object.entries(v).find(([, x]) => x.flags.includes('master') && /(^| )0-/.test(x.slots))![0];
    const r0 = Object.entries(v).find(([, x]) => x.master === p0)![0];
    const other = Object.entries(v).find(([id, x]) => x.flags.includes('master') && id !== p0)![0];
    const io = captureIO();
    const r = await runSwitchover({ cluster: 'rcsw', shard: '0', to: other, wait: true, inventory, address: tw.address, taskQueue: tw.taskQueue }, io);
    expect(r.exitCode, io.text()).toBe(2);
    expect(io.text()).toMatch(new RegExp(`refused \\(PreconditionFailed\\): ${other} is not a reachable replica of ${p0} .*; nothing was changed\\. Where the shard stands: the primary is ${p0}; following ${p0}: ${r0}$`, 'm'));
    expect(await views(fleet)).toEqual(before);
  }, 60_000);

  it('switches the shard of slot 0 over, then back by naming its replica, under writes, losing nothing; every node agrees', async () => {
    const client = fleet.clusterClient();
    const writer = new ClusterAckedWriter(client).start();
    await sleep(500);
    const v0 = await views(fleet);
    const first = Object.entries(v0[fleet.nodes[0].id]).find(([, x]) => x.flags.includes('master') && /(^| )0-/.test(x.slots))![0];
    const slots = v0[fleet.nodes[0].id][first].slots;

    const plan = captureIO();
    const p = await runSwitchover({ cluster: 'rcsw', shard: '0', dryRun: true, wait: true, inventory, address: tw.address, taskQueue: tw.taskQueue }, plan);
    expect(p.exitCode, plan.text()).toBe(0);
    expect(plan.text()).toMatch(new RegExp(`CLUSTER FAILOVER on \\S+: it takes slots ${slots} over from ${first}`));
    expect(await views(fleet)).toEqual(v0);

    const io = captureIO();
    const r = await runSwitchover({ cluster: 'rcsw', shard: '0', wait: true, inventory, address: tw.address, taskQueue: tw.taskQueue }, io);
    expect(r.exitCode, io.text()).toBe(0);
    const rep = r.report as unknown as ClusterSwitchoverReport;
    expect(rep.oldPrimary).toBe(first);
    const second = rep.newPrimary;
    expect(second).not.toBe(first);
    expect(Object.values(rep.views ?? {}).every((v) => v === 'agrees')).toBe(true);
    // Where the shard stands, from one look after the agreement: the new primary (was the old), the old one following it.
    expect(rep.standing).toEqual({ primary: second, previousPrimary: first, changed: true, following: [first], notFollowing: [] });
    expect(io.text()).toContain(`  where shard ${slots} stands: primary ${second} (was ${first})\n    following ${second}: ${first}\n`);
    for (const [viewer, v] of Object.entries(await views(fleet))) {
      expect(v[second].flags, `${viewer}'s view of ${second}`).toMatch(/master/);
      expect(v[second].slots, `${viewer}'s view of ${second}`).toBe(slots);
      expect(v[first], `${viewer}'s view of ${first}`).toMatchObject({ master: second });
      expect(v[first].flags).toMatch(/slave/);
    }

    // Named by its replica (the old primary): it is promoted, the shard goes back.
    const io2 = captureIO();
    const r2 = await runSwitchover({ cluster: 'rcsw', shard: first, wait: true, inventory, address: tw.address, taskQueue: tw.taskQueue }, io2);
    expect(r2.exitCode, io2.text()).toBe(0);
    expect((r2.report as unknown as ClusterSwitchoverReport).newPrimary).toBe(first);
    for (const v of Object.values(await views(fleet))) expect(v[first]).toMatchObject({ slots });

    await sleep(300);
    const stats = await writer.stop();
    expect(stats.acked).toBeGreaterThan(200);
    expect(await writer.missing()).toEqual([]);
    client.disconnect();
    console.log(`[cluster switchover] acked=${stats.acked} errors=${stats.errors} maxGapMs=${stats.maxGapMs} pauses=${rep.writePauseMs},${(r2.report as unknown as ClusterSwitchoverReport).writePauseMs} ms`);
  }, 180_000);

  it('a retried CLUSTER FAILOVER: issued when the dead attempt may not have sent it, not issued again when the replica had accepted it', async () => {
    await fleet.waitHealthy();
    const v = (await views(fleet))[fleet.nodes[0].id];
    const [primary] = Object.entries(v).find(([, x]) => x.flags.includes('master') && / 16383$|-16383$/.test(x.slots))!;
    const [replica] = Object.entries(v).find(([, x]) => x.master === primary)!;
    const acts = createActivities({ inventory: () => loadInventory(inventory) });
    const role = async (id: string) => (await fleet.roles())[id];

    // Accepted by the replica long ago (`issuedAt`), and the roles did not switch: the cluster gave up on it.
    const accepted = new MockActivityEnvironment({ heartbeatDetails: { issuedAt: Date.now() - 60_000 } });
    await expect(accepted.run(acts.ensureRedisClusterFailover, { cluster: 'rcsw', from: primary, to: replica, timeoutMs: 5000 })).rejects.toThrow(/the CLUSTER FAILOVER issued on .* did not complete within 5000 ms/);
    expect(await role(replica)).toBe('slave');

    // The worker died while issuing (`issuing`, past the cluster's manual-failover timeout): nothing is in
    // progress, so the retry issues it and completes (it used to report "did not complete" and fail the run).
    const issuing = new MockActivityEnvironment({ heartbeatDetails: { issuing: Date.now() - 10_000 } });
    const r = (await issuing.run(acts.ensureRedisClusterFailover, { cluster: 'rcsw', from: primary, to: replica, timeoutMs: 15_000 })) as { alreadyHeld: boolean; audit: string };
    expect(r).toMatchObject({ alreadyHeld: false });
    expect(r.audit).toMatch(/^issued CLUSTER FAILOVER on /);
    expect(await role(replica)).toBe('master');
    expect(await role(primary)).toBe('slave');

    // Back as it was, through the first-attempt path, once the old primary is a linked replica again (a
    // CLUSTER FAILOVER on a replica still syncing would time out: the workflows check the link first).
    await fleet.waitHealthy();
    await new MockActivityEnvironment().run(acts.ensureRedisClusterFailover, { cluster: 'rcsw', from: replica, to: primary, timeoutMs: 15_000 });
    await fleet.waitHealthy();
  }, 60_000);
});
