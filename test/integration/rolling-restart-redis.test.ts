/**
 * Rolling restart of a real Redis replication fleet under continuous writes: replicas first, the primary
 * handed over (child switchover workflow) before it is restarted, every node ends on the desired spec,
 * one primary, no acknowledged write lost; a re-run finds nothing stale and restarts nothing.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import Redis from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runRollingRestart } from '../../client/commands/rolling-restart';
import { loadInventory } from '../../inventory/load';
import { redisServerBinary } from '../../sandbox/paths';
import { startRedisFleet, waitForReplication, type RedisFleet } from '../../sandbox/redis';
import { AckedWriter } from '../../sandbox/writer';
import { captureIO, moreAcks, startTestWorker, type TestWorker } from '../helpers';

async function nodeFacts(fleet: RedisFleet) {
  const out: Record<string, { hz: string; policy: string; runId: string; version: string; role: string }> = {};
  for (const n of fleet.nodes) {
    const c = new Redis({ host: n.host, port: n.port, password: fleet.password, lazyConnect: true, retryStrategy: () => null });
    await c.connect();
    const server = await c.info('server');
    out[n.id] = {
      hz: ((await c.config('GET', 'hz')) as string[])[1],
      policy: ((await c.config('GET', 'maxmemory-policy')) as string[])[1],
      runId: /run_id:(\w+)/.exec(server)![1],
      version: /valkey_version:([\d.]+)/.exec(server)?.[1] ? `valkey ${/valkey_version:([\d.]+)/.exec(server)![1]}` : `redis ${/redis_version:([\d.]+)/.exec(server)![1]}`,
      role: String(((await c.call('ROLE')) as unknown[])[0]),
    };
    c.disconnect();
  }
  return out;
}

describe('rolling restart (redis replication)', () => {
  let fleet: RedisFleet;
  let tw: TestWorker;
  let inventory: string;
  let inv2: string;

  beforeAll(async () => {
    fleet = await startRedisFleet({ cluster: 'roll' });
    inventory = fleet.writeInventory(undefined, { binaries: { 'valkey 9.1': redisServerBinary('valkey') } });
    // The same servers under another name, with a controller that auto-restarts and no persistence: refused.
    inv2 = path.join(fleet.baseDir, 'autorestart.yaml');
    const text = fleet
      .inventoryYaml()
      .replace(`name: ${fleet.cluster}`, 'name: roll-auto')
      .replace(/id: roll-/g, 'id: auto-')
      .replace(/    controller:\n(      .*\n)+?(?=    nodes:)/, '    controller:\n      type: command\n      restart: "false"\n      autoRestart: true\n');
    writeFileSync(inv2, text);
    const merged = path.join(fleet.baseDir, 'merged.yaml');
    writeFileSync(merged, fleet.inventoryYaml({ binaries: { 'valkey 9.1': redisServerBinary('valkey') } }) + text.replace(/^clusters:\n/, ''));
    tw = await startTestWorker({ inventory: () => loadInventory(merged) });
  });
  afterAll(async () => {
    await tw?.stop();
    await fleet?.stop();
  });

  const opts = () => ({ wait: true, address: tw.address, taskQueue: tw.taskQueue });

  it('rolls a config change replicas first, loses nothing, and a re-run restarts nothing', async () => {
    const before = await nodeFacts(fleet);
    const writer = new AckedWriter(fleet.nodes, fleet.password).start();
    await moreAcks(writer);
    const io = captureIO();
    const r = await runRollingRestart({ ...opts(), cluster: 'roll', set: ['hz=25', 'maxmemory-policy=allkeys-lru'], inventory }, io);
    expect(r.exitCode, io.text()).toBe(0);
    const report = r.report!;
    expect(report.staleAtStart.map((s) => s.node).sort()).toEqual(['roll-1', 'roll-2', 'roll-3']);
    // Replicas first; the original primary is restarted last, and only as a replica after the handover.
    expect(report.restarts.map((x) => x.node)).toEqual(['roll-2', 'roll-3', 'roll-1']);
    expect(report.restarts.every((x) => x.role === 'replica')).toBe(true);
    expect(report.handovers).toHaveLength(1);
    expect(report.handovers[0].from).toBe('roll-1');
    const handoverIdx = report.audit.findIndex((a) => a.startsWith('handover roll-1'));
    const lastRestartIdx = report.audit.findIndex((a) => a.startsWith('restart roll-1'));
    expect(handoverIdx).toBeGreaterThan(-1);
    expect(lastRestartIdx).toBeGreaterThan(handoverIdx);

    await moreAcks(writer); // writes go on after the roll
    const stats = await writer.stop();
    await writer.close();
    const after = await nodeFacts(fleet);
    for (const n of fleet.nodes) {
      expect(after[n.id]).toMatchObject({ hz: '25', policy: 'allkeys-lru' });
      expect(after[n.id].runId, `${n.id} was restarted`).not.toBe(before[n.id].runId);
    }
    expect(Object.values(after).filter((f) => f.role === 'master')).toHaveLength(1);
    const primary = fleet.nodes.find((n) => after[n.id].role === 'master')!;
    expect(primary.id).toBe(report.primary);
    await waitForReplication(fleet, primary.id);
    expect(await writer.missingOn(primary.host, primary.port)).toEqual([]);
    expect(stats.acked).toBeGreaterThan(500);
    console.log(`[rolling] acked=${stats.acked} maxGapMs=${stats.maxGapMs} handover pause=${report.handovers[0].writePauseMs}ms`);

    // Stateless: nothing is stale any more, so a second run restarts nothing.
    const io2 = captureIO();
    const again = await runRollingRestart({ ...opts(), cluster: 'roll', set: ['hz=25', 'maxmemory-policy=allkeys-lru'], inventory }, io2);
    expect(again.exitCode, io2.text()).toBe(0);
    expect(again.report!.restarts).toEqual([]);
    expect(again.report!.handovers).toEqual([]);
    const after2 = await nodeFacts(fleet);
    for (const n of fleet.nodes) expect(after2[n.id].runId).toBe(after[n.id].runId);
  });

  it('upgrades Redis 7.0 to Valkey 9.1 node by node under writes', async () => {
    const writer = new AckedWriter(fleet.nodes, fleet.password).start();
    await moreAcks(writer);
    const io = captureIO();
    const r = await runRollingRestart({ ...opts(), cluster: 'roll', version: 'valkey 9.1', inventory }, io);
    expect(r.exitCode, io.text()).toBe(0);
    expect(r.report!.restarts).toHaveLength(3);
    expect(r.report!.handovers).toHaveLength(1);
    await moreAcks(writer);
    await writer.stop();
    await writer.close();
    const after = await nodeFacts(fleet);
    for (const n of fleet.nodes) expect(after[n.id].version).toMatch(/^valkey 9\.1\./);
    const primary = fleet.nodes.find((n) => after[n.id].role === 'master')!;
    await waitForReplication(fleet, primary.id);
    expect(await writer.missingOn(primary.host, primary.port)).toEqual([]);
  });

  it('refuses without persistence under an auto-restarting controller, and --set without "="', async () => {
    const before = await nodeFacts(fleet);
    const io = captureIO();
    const r = await runRollingRestart({ ...opts(), cluster: 'roll-auto', set: ['hz=30'], inventory: inv2 }, io);
    expect(r.exitCode, io.text()).toBe(2);
    expect(io.text()).toMatch(/refused \(PreconditionFailed\): refused: persistence is off on .* and the node controller restarts nodes by itself.*nothing was changed/);
    const io2 = captureIO();
    expect((await runRollingRestart({ ...opts(), cluster: 'roll', set: ['hz'], inventory }, io2)).exitCode).toBe(2);
    expect(io2.text()).toMatch(/--set hz: expected key=value/);
    const after = await nodeFacts(fleet);
    expect(after).toEqual(before);
  });
});
