/**
 * Dolt rolling restart, both topologies, against real `dolt sql-server` processes restarted by the inventory's
 * `local` controller (engine dolt) and the real Temporal dev server:
 *
 *  - sql-server cluster mode (a primary/standby pair, sandbox/dolt.ts): `rolling-restart --reason` under a
 *    transactional writer restarts every node exactly once (a new server start on each), the standby first, the
 *    primary handed over (the Dolt switchover as a child run, a new epoch) before it is restarted; no
 *    acknowledged commit lost, never two writable primaries in any sample;
 *  - read replicas through a remote (a primary and a replica, sandbox/dolt-remote.ts): `rolling-restart --set
 *    max_connections=…` under a writer: every node ends with the new value, replicas first, the primary handed
 *    over (fence, push, promote, re-point) and then restarted as a replica; no acknowledged commit lost, never two
 *    writable nodes; a second run changes nothing.
 *
 * Skipped, saying so, only when no dolt binary is found.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runRollingRestart } from '../../client/commands/rolling-restart';
import { loadInventory } from '../../inventory/load';
import { DOLT_NOT_FOUND, doltBinary, startDoltFleet, type DoltFleet } from '../../sandbox/dolt';
import { startDoltRemoteFleet, type DoltRemoteFleet } from '../../sandbox/dolt-remote';
import { sleep } from '../../sandbox/ports';
import { SqlWriter } from '../../sandbox/sql-writer';
import { captureIO, startTestWorker, type TestWorker } from '../helpers';

const bin = doltBinary();
if (!bin) console.log(`SKIPPED: the Dolt rolling-restart tests (test/integration/dolt-rolling-restart.test.ts): ${DOLT_NOT_FOUND}`);

/** Each node's server start (epoch s), read over SQL as root. */
async function starts(fleet: { nodes: { id: string }[]; sql: <T>(node: string, q: string) => Promise<T> }): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const n of fleet.nodes) out[n.id] = Number((await fleet.sql<{ s: number }[]>(n.id, 'SELECT UNIX_TIMESTAMP() - @@GLOBAL.uptime AS s'))[0].s);
  return out;
}

/** Writable nodes every 100 ms until stopped (`writable(state)` says which nodes take writes in one sample). */
function sampleWritable(read: () => Promise<string[]>) {
  const samples: string[][] = [];
  let on = true;
  const loop = (async () => {
    while (on) {
      samples.push(await read().catch(() => []));
      await sleep(100);
    }
  })();
  return async () => {
    on = false;
    await loop;
    return samples;
  };
}

/** Wait until every node has been up for 3 s: a node started within the roll's slack of its start counts as restarted by it. */
async function upFor3s(fleet: { nodes: { id: string }[]; sql: <T>(node: string, q: string) => Promise<T> }) {
  for (const deadline = Date.now() + 10_000; Date.now() < deadline; await sleep(200)) {
    const s = await starts(fleet);
    if (Object.values(s).every((t) => Date.now() / 1000 - t >= 3)) return;
  }
}

describe.skipIf(!bin)('Dolt rolling restart, sql-server cluster mode', () => {
  let fleet: DoltFleet;
  let tw: TestWorker;
  let inventory: string;
  beforeAll(async () => {
    fleet = await startDoltFleet({ cluster: 'dolt-roll' });
    inventory = fleet.writeInventory(undefined, { controller: true });
    tw = await startTestWorker({ inventory: () => loadInventory(inventory) });
  });
  afterAll(async () => {
    await tw?.stop();
    await fleet?.stop();
  });

  it('--reason restarts every node once, the standby first, the primary handed over first; nothing lost, never two primaries', async () => {
    await upFor3s(fleet);
    const before = await starts(fleet);
    const st0 = await fleet.state();
    const p0 = Object.keys(st0).find((id) => st0[id].role === 'primary')!;
    const writer = new SqlWriter(fleet.nodes, fleet.appUser, fleet.appPassword).start();
    const stopSampling = sampleWritable(async () => {
      const st = await fleet.state();
      return Object.keys(st).filter((id) => st[id].up && st[id].role === 'primary' && st[id].readOnly === false);
    });
    let samples: string[][] = [];
    try {
      await sleep(500);
      const io = captureIO();
      const r = await runRollingRestart({ cluster: fleet.cluster, reason: 'OS patch', wait: true, inventory, address: tw.address, taskQueue: tw.taskQueue }, io);
      expect(r.exitCode, io.text()).toBe(0);
      const rep = r.report!;
      expect(rep.restarts.map((x) => x.node).sort()).toEqual(fleet.nodes.map((n) => n.id).sort());
      expect(rep.restarts[0].node).not.toBe(p0); // the standby first
      expect(rep.handovers).toEqual([expect.objectContaining({ from: p0 })]);
      expect(rep.primary).not.toBe(p0);
      expect(rep.restartToken).toContain('(OS patch)');
      await sleep(500);
    } finally {
      await writer.stop();
      await writer.close();
      samples = await stopSampling();
    }
    const now = await starts(fleet);
    for (const n of fleet.nodes) expect(now[n.id], `${n.id} was not restarted`).toBeGreaterThan(before[n.id]);
    const st = await fleet.state();
    const p1 = Object.keys(st).find((id) => st[id].role === 'primary')!;
    expect(p1).not.toBe(p0);
    await fleet.waitForReplication(p1);
    expect(writer.ackedKeys.length).toBeGreaterThan(0);
    for (const n of fleet.nodes) expect(await writer.missingOn(n), `acknowledged commits missing on ${n.id}`).toEqual([]);
    expect(samples.length).toBeGreaterThan(5);
    expect(samples.filter((s) => s.length > 1)).toEqual([]);
  });
});

describe.skipIf(!bin)('Dolt rolling restart, read replicas through a remote', () => {
  let fleet: DoltRemoteFleet;
  let tw: TestWorker;
  let inventory: string;
  beforeAll(async () => {
    fleet = await startDoltRemoteFleet({ cluster: 'doltr-roll', replicas: 1 });
    inventory = fleet.writeInventory(undefined, { policy: { catchUpTimeoutMs: 15_000, verifyTimeoutMs: 30_000 } });
    tw = await startTestWorker({ inventory: () => loadInventory(inventory) });
  });
  afterAll(async () => {
    await tw?.stop();
    await fleet?.stop();
  });

  it('--set max_connections: replicas first, the primary handed over then restarted; every node on the new value; nothing lost, never two writable nodes; a second run changes nothing', async () => {
    await upFor3s(fleet);
    const st0 = await fleet.state();
    const p0 = Object.keys(st0).find((id) => st0[id] && !st0[id]!.readOnly)!;
    const want = String(180 + Math.floor(Math.random() * 50));
    const writer = new SqlWriter(fleet.nodes, fleet.appUser, fleet.appPassword).start();
    const stopSampling = sampleWritable(async () => {
      const st = await fleet.state();
      return Object.keys(st).filter((id) => st[id] && !st[id]!.readOnly);
    });
    let samples: string[][] = [];
    try {
      await sleep(500);
      const io = captureIO();
      const r = await runRollingRestart({ cluster: fleet.cluster, set: [`max_connections=${want}`], wait: true, inventory, address: tw.address, taskQueue: tw.taskQueue }, io);
      expect(r.exitCode, io.text()).toBe(0);
      const rep = r.report!;
      expect(rep.restarts.map((x) => x.node).sort()).toEqual(fleet.nodes.map((n) => n.id).sort());
      expect(rep.restarts[0].node).not.toBe(p0); // the replica first
      expect(rep.handovers).toEqual([expect.objectContaining({ from: p0 })]);
      await sleep(500);
    } finally {
      await writer.stop();
      await writer.close();
      samples = await stopSampling();
    }
    for (const n of fleet.nodes) expect(String((await fleet.sql<{ m: number }[]>(n.id, 'SELECT @@GLOBAL.max_connections AS m'))[0].m), n.id).toBe(want);
    const st = await fleet.state();
    expect(Object.keys(st).filter((id) => st[id] && !st[id]!.readOnly)).toHaveLength(1);
    expect(writer.ackedKeys.length).toBeGreaterThan(0);
    for (const n of fleet.nodes) expect(await writer.missingOn(n), `acknowledged commits missing on ${n.id}`).toEqual([]);
    expect(samples.length).toBeGreaterThan(5);
    expect(samples.filter((s) => s.length > 1)).toEqual([]);

    const io2 = captureIO();
    const again = await runRollingRestart({ cluster: fleet.cluster, set: [`max_connections=${want}`], wait: true, inventory, address: tw.address, taskQueue: tw.taskQueue }, io2);
    expect(again.exitCode, io2.text()).toBe(0);
    expect(again.report).toMatchObject({ restarts: [], handovers: [] });
  });
});
