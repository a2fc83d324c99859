/**
 * Sentinel topology, real redis-sentinel processes (3, quorum 2): the switchover goes through SENTINEL
 * FAILOVER with writes paused on the old primary until the candidate has caught up, so nothing acknowledged is
 * lost and Sentinel is never raced; the rolling restart hands over the same way. Each test reads the roles and
 * settings it starts from (whichever test ran before) and waits on acknowledged writes, not timers.
 */
import Redis from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runRollingRestart } from '../../client/commands/rolling-restart';
import { runSwitchover } from '../../client/commands/switchover';
import { loadInventory } from '../../inventory/load';
import { startRedisFleet, waitForReplication, type RedisFleet } from '../../sandbox/redis';
import { startSentinels, type SentinelSet } from '../../sandbox/sentinel';
import { AckedWriter } from '../../sandbox/writer';
import { captureIO, moreAcks, startTestWorker, type TestWorker } from '../helpers';

describe('sentinel topology', () => {
  let fleet: RedisFleet;
  let sentinels: SentinelSet;
  let tw: TestWorker;
  let inventory: string;

  beforeAll(async () => {
    fleet = await startRedisFleet({ cluster: 'snt' });
    sentinels = await startSentinels(fleet);
    inventory = fleet.writeInventory(undefined, { sentinelBlock: sentinels.inventoryBlock() });
    tw = await startTestWorker({ inventory: () => loadInventory(inventory) });
  });
  afterAll(async () => {
    await tw?.stop();
    await sentinels?.stop();
    await fleet?.stop();
  });

  async function priorities() {
    const out: Record<string, string> = {};
    for (const n of fleet.nodes) {
      const c = n.client();
      out[n.id] = ((await c.config('GET', 'replica-priority')) as string[])[1];
      c.disconnect();
    }
    return out;
  }

  async function hzOf(n: RedisFleet['nodes'][number]): Promise<string> {
    const c = n.client();
    try {
      return ((await c.config('GET', 'hz')) as string[])[1];
    } finally {
      c.disconnect();
    }
  }

  it('switches over through Sentinel under writes, losing nothing, and restores replica priorities', async () => {
    // Default replica-priority (100) is what the inventory's default promotion rule (neutral) maps to.
    const prioritiesBefore = await priorities();
    expect(prioritiesBefore).toEqual({ 'snt-1': '100', 'snt-2': '100', 'snt-3': '100' });
    // The target: the last replica by name, whichever node is the primary now.
    const from = (await fleet.primary())!;
    const target = fleet.nodes.filter((n) => n.id !== from.id).at(-1)!;
    const writer = new AckedWriter(fleet.nodes, fleet.password).start();
    await moreAcks(writer, 20);
    const io = captureIO();
    const r = await runSwitchover({ cluster: 'snt', to: target.id, wait: true, inventory, address: tw.address, taskQueue: tw.taskQueue }, io);
    expect(r.exitCode, io.text()).toBe(0);
    expect(io.text()).toMatch(/SENTINEL FAILOVER snt on snt-sentinel-\d: OK/);
    await moreAcks(writer, 20); // acknowledged again, by the new primary
    const stats = await writer.stop();
    await writer.close();
    expect(await sentinels.agreedMaster()).toBe(`127.0.0.1:${target.port}`);
    expect(await fleet.roles()).toEqual(Object.fromEntries(fleet.nodes.map((n) => [n.id, n.id === target.id ? 'master' : 'slave'])));
    await waitForReplication(fleet, target.id);
    expect(await writer.missingOn(target.host, target.port)).toEqual([]);
    expect(await priorities()).toEqual(prioritiesBefore);
    console.log(`[sentinel switchover] acked=${stats.acked} maxGapMs=${stats.maxGapMs} step=${r.report!.writePauseMs}ms`);
  });

  it('rolls a config change with the primary handed over through Sentinel', async () => {
    // A setting no node has yet (one more than the primary's hz), so every node is rolled.
    const hz = Number(await hzOf((await fleet.primary())!)) + 1;
    const writer = new AckedWriter(fleet.nodes, fleet.password).start();
    await moreAcks(writer, 20);
    const io = captureIO();
    const r = await runRollingRestart({ cluster: 'snt', set: [`hz=${hz}`], wait: true, inventory, address: tw.address, taskQueue: tw.taskQueue }, io);
    expect(r.exitCode, io.text()).toBe(0);
    expect(r.report!.restarts).toHaveLength(3);
    expect(r.report!.handovers).toHaveLength(1);
    await moreAcks(writer, 20);
    await writer.stop();
    await writer.close();
    const primary = (await fleet.primary())!;
    expect(await sentinels.agreedMaster()).toBe(`127.0.0.1:${primary.port}`);
    await waitForReplication(fleet, primary.id);
    const missing = await writer.missingOn(primary.host, primary.port);
    expect(missing.length, `primaries the writer followed: ${writer.primariesSeen.join(' -> ')}; first missing ${missing[0]} of ${writer.ackedKeys.length}; ${r.report!.audit.join(' | ')}`).toBe(0);
  });

  it('restarts every Sentinel one at a time with --include-sentinels, quorum kept', async () => {
    const runIds = async () => {
      const out: Record<string, string> = {};
      for (const x of sentinels.sentinels) {
        const c = new Redis({ host: x.host, port: x.port, lazyConnect: true, retryStrategy: () => null });
        await c.connect();
        out[x.id] = /run_id:(\w+)/.exec(await c.info('server'))![1];
        c.disconnect();
      }
      return out;
    };
    const before = await runIds();
    // The setting every data node already has: only the Sentinels are restarted.
    const hz = await hzOf((await fleet.primary())!);
    for (const n of fleet.nodes) expect(await hzOf(n), n.id).toBe(hz);
    const io = captureIO();
    const r = await runRollingRestart({ cluster: 'snt', set: [`hz=${hz}`], includeSentinels: true, wait: true, inventory, address: tw.address, taskQueue: tw.taskQueue }, io);
    expect(r.exitCode, io.text()).toBe(0);
    expect(r.report!.restarts).toEqual([]); // data nodes are already on it
    expect(r.report!.sentinelRestarts).toEqual(sentinels.sentinels.map((x) => x.id));
    const after = await runIds();
    for (const x of sentinels.sentinels) expect(after[x.id]).not.toBe(before[x.id]);
    const primary = (await fleet.primary())!;
    expect(await sentinels.agreedMaster()).toBe(`127.0.0.1:${primary.port}`);
    const c = new Redis({ host: sentinels.sentinels[0].host, port: sentinels.sentinels[0].port, lazyConnect: true, retryStrategy: () => null });
    await c.connect();
    expect(String(await c.call('SENTINEL', 'CKQUORUM', 'snt'))).toMatch(/^OK/);
    c.disconnect();
  });
});
