/**
 * Sentinel topology, real redis-sentinel processes (3, quorum 2): the switchover goes through SENTINEL
 * FAILOVER with writes paused on the old primary until the candidate has caught up, so nothing acknowledged is
 * lost and Sentinel is never raced; the rolling restart hands over the same way.
 */
import Redis from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runRollingRestart } from '../../client/commands/rolling-restart';
import { runSwitchover } from '../../client/commands/switchover';
import { loadInventory } from '../../inventory/load';
import { sleep } from '../../sandbox/ports';
import { startRedisFleet, waitForReplication, type RedisFleet } from '../../sandbox/redis';
import { startSentinels, type SentinelSet } from '../../sandbox/sentinel';
import { AckedWriter } from '../../sandbox/writer';
import { captureIO, startTestWorker, type TestWorker } from '../helpers';

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

  it('switches over through Sentinel under writes, losing nothing, and restores replica priorities', async () => {
    // Default replica-priority (100) is what the inventory's default promotion rule (neutral) maps to.
    const prioritiesBefore = await priorities();
    expect(prioritiesBefore).toEqual({ 'snt-1': '100', 'snt-2': '100', 'snt-3': '100' });
    const writer = new AckedWriter(fleet.nodes, fleet.password).start();
    await sleep(300);
    const io = captureIO();
    const r = await runSwitchover({ cluster: 'snt', to: 'snt-3', wait: true, inventory, address: tw.address, taskQueue: tw.taskQueue }, io);
    expect(r.exitCode, io.text()).toBe(0);
    expect(io.text()).toMatch(/SENTINEL FAILOVER snt on snt-sentinel-\d: OK/);
    await sleep(300);
    const stats = await writer.stop();
    await writer.close();
    expect(await sentinels.agreedMaster()).toBe(`127.0.0.1:${fleet.nodes[2].port}`);
    expect(await fleet.roles()).toEqual({ 'snt-1': 'slave', 'snt-2': 'slave', 'snt-3': 'master' });
    await waitForReplication(fleet, 'snt-3');
    expect(await writer.missingOn(fleet.nodes[2].host, fleet.nodes[2].port)).toEqual([]);
    expect(await priorities()).toEqual(prioritiesBefore);
    console.log(`[sentinel switchover] acked=${stats.acked} maxGapMs=${stats.maxGapMs} step=${r.report!.writePauseMs}ms`);
  });

  it('rolls a config change with the primary handed over through Sentinel', async () => {
    const writer = new AckedWriter(fleet.nodes, fleet.password).start();
    await sleep(300);
    const io = captureIO();
    const r = await runRollingRestart({ cluster: 'snt', set: ['hz=23'], wait: true, inventory, address: tw.address, taskQueue: tw.taskQueue }, io);
    expect(r.exitCode, io.text()).toBe(0);
    expect(r.report!.restarts).toHaveLength(3);
    expect(r.report!.handovers).toHaveLength(1);
    await sleep(300);
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
    const io = captureIO();
    const r = await runRollingRestart({ cluster: 'snt', set: ['hz=23'], includeSentinels: true, wait: true, inventory, address: tw.address, taskQueue: tw.taskQueue }, io);
    expect(r.exitCode, io.text()).toBe(0);
    expect(r.report!.restarts).toEqual([]); // data nodes are already on hz=23
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
