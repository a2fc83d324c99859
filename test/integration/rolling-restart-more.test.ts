/**
 * --restart-all: every node restarted once with nothing changed (OS patching), replicas first, the primary
 * handed over; every run_id changes, one primary, no acknowledged write lost.
 *
 * A rolling restart that a guard stops mid-way says what it changed: one replica already restarted when another
 * node went down, so the roll stops safely with exit 1 (HandoverIncomplete), naming the node it rolled and the
 * primary, not exit 2 ("nothing changed"). Real redis-server fleet, real Temporal dev server.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runRollingRestart } from '../../client/commands/rolling-restart';
import { loadInventory } from '../../inventory/load';
import { startRedisFleet, type RedisFleet } from '../../sandbox/redis';
import { AckedWriter } from '../../sandbox/writer';
import { sleep } from '../../sandbox/ports';
import { captureIO, nodesUpFor, startTestWorker, type TestWorker } from '../helpers';

describe('rolling restart stopped mid-way', () => {
  let fleet: RedisFleet;
  let tw: TestWorker;
  let inventory: string;
  let onRestart: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    fleet = await startRedisFleet({ cluster: 'rstop' });
    inventory = fleet.writeInventory();
    tw = await startTestWorker({
      inventory: () => loadInventory(inventory),
      failpoint: async (name) => {
        if (name === 'ensureRedisNodeRestarted.beforeRestart' && onRestart) {
          const f = onRestart;
          onRestart = undefined;
          await f();
        }
      },
    });
  });
  afterAll(async () => {
    await tw?.stop();
    await fleet?.stop();
  });

  it('--restart-all restarts every node once, nothing changed, under writes, and loses nothing', async () => {
    const runIds = async () =>
      Object.fromEntries(
        await Promise.all(
          fleet.nodes.map(async (n) => {
            const c = n.client();
            try {
              return [n.id, /run_id:(\w+)/.exec(await c.info('server'))![1]] as const;
            } finally {
              c.disconnect();
            }
          }),
        ),
      );
    await nodesUpFor(fleet.nodes);
    const before = await runIds();
    const writer = new AckedWriter(fleet.nodes, fleet.password).start();
    await sleep(300);
    const io = captureIO();
    const r = await runRollingRestart({ cluster: fleet.cluster, restartAll: true, wait: true, inventory, address: tw.address, taskQueue: tw.taskQueue }, io);
    expect(r.exitCode, io.text()).toBe(0);
    const stats = await writer.stop();
    await writer.close();
    const after = await runIds();
    for (const n of fleet.nodes) expect(after[n.id], `${n.id} was not restarted`).not.toBe(before[n.id]);
    expect(io.text()).toMatch(/before this roll \(restart requested\)/);
    const roles = await fleet.roles();
    expect(Object.values(roles).filter((x) => x === 'master')).toHaveLength(1);
    expect(stats.acked).toBeGreaterThan(100);
    for (const n of fleet.nodes) expect(await writer.missingOn(n.host, n.port), `${n.id} missing acknowledged writes`).toEqual([]);
    // Without --restart-all nothing is stale: nothing restarts.
    const again = captureIO();
    expect((await runRollingRestart({ cluster: fleet.cluster, wait: true, inventory, address: tw.address, taskQueue: tw.taskQueue }, again)).exitCode, again.text()).toBe(0);
    expect(await runIds()).toEqual(after);
  });

  it('a node lost after the first restart: exit 1, the rolled node, the primary and where the cluster stands named', async () => {
    const roles = await fleet.roles();
    const n1 = fleet.nodes.find((n) => roles[n.id] === 'master')!;
    const [n2, n3] = fleet.nodes.filter((n) => n !== n1);
    // Replicas roll first, in name order: n2 first; while it is being restarted, n3 dies.
    onRestart = () => n3.stop('SIGKILL');
    const io = captureIO();
    const r = await runRollingRestart({ cluster: fleet.cluster, set: ['hz=17'], wait: true, inventory, address: tw.address, taskQueue: tw.taskQueue }, io);
    expect(r.exitCode, io.text()).toBe(1);
    expect(io.text()).toMatch(
      new RegExp(`failed \\(HandoverIncomplete\\): stopped safely: ${n3.id} unreachable; a rolling restart needs every node up; 1 node\\(s\\) already rolled \\(${n2.id}\\), 0 handover\\(s\\); the primary is ${n1.id}.*\\. Where it stands: the primary is ${n1.id}; following ${n1.id}: ${n2.id}; NOT following: ${n3.id} \\(unreachable`),
    );
    const end = await fleet.roles();
    expect(end[n1.id]).toBe('master');
    expect(end[n2.id]).toBe('slave');
  });
});
