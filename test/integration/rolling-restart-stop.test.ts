/**
 * A rolling restart that a guard stops mid-way says what it changed: one replica already restarted when another
 * node went down, so the roll stops safely with exit 1 (HandoverIncomplete), naming the node it rolled and the
 * primary, not exit 2 ("nothing changed"). Real redis-server fleet, real Temporal dev server.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runRollingRestart } from '../../client/commands/rolling-restart';
import { loadInventory } from '../../inventory/load';
import { startRedisFleet, type RedisFleet } from '../../sandbox/redis';
import { captureIO, startTestWorker, type TestWorker } from '../helpers';

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

  it('a node lost after the first restart: exit 1, the rolled node and the primary named', async () => {
    const [n1, n2, n3] = fleet.nodes;
    // Replicas roll first, in name order: n2 first; while it is being restarted, n3 dies.
    onRestart = () => n3.stop('SIGKILL');
    const io = captureIO();
    const r = await runRollingRestart({ cluster: fleet.cluster, set: ['hz=17'], wait: true, inventory, address: tw.address, taskQueue: tw.taskQueue }, io);
    expect(r.exitCode, io.text()).toBe(1);
    expect(io.text()).toMatch(
      new RegExp(`failed \\(HandoverIncomplete\\): stopped safely: ${n3.id} unreachable; a rolling restart needs every node up; 1 node\\(s\\) already rolled \\(${n2.id}\\), 0 handover\\(s\\); the primary is ${n1.id}`),
    );
    const roles = await fleet.roles();
    expect(roles[n1.id]).toBe('master');
    expect(roles[n2.id]).toBe('slave');
  });
});
