/**
 * Bad input and unmet preconditions are refused with a typed error before anything changes. "Nothing
 * changed" is checked on the real servers: roles, and the call counts of every mutating command in
 * INFO commandstats (REPLICAOF, FAILOVER, CLIENT PAUSE/UNPAUSE, CONFIG SET) stay as they were. Each test
 * starts from the same roles (the first node primary, the others its replicas, set before it) and waits on
 * conditions, not timers.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadInventory } from '../../inventory/load';
import { runSwitchover } from '../../client/commands/switchover';
import { setRedisPrimary, startRedisFleet, waitForReplication, type RedisFleet } from '../../sandbox/redis';
import { AckedWriter } from '../../sandbox/writer';
import { sleep } from '../../sandbox/ports';
import { captureIO, commandCalls, moreAcks, startTestWorker, until, type TestWorker } from '../helpers';

const MUTATING = ['replicaof', 'slaveof', 'failover', 'client|pause', 'client|unpause', 'config|set', 'flushall', 'flushdb'];

const mutationSnapshot = (fleet: RedisFleet) => commandCalls(fleet, MUTATING);

describe('switchover refusals (nothing changes)', () => {
  let fleet: RedisFleet;
  let tw: TestWorker;
  let inventory: string;
  let wrongPwInventory: string;
  let opts: { address: string; taskQueue: string; wait: boolean };
  const byName = (i: number) => fleet.nodes[i];
  const admin = (i: number) => byName(i).client();

  beforeAll(async () => {
    fleet = await startRedisFleet({ cluster: 'refuse' });
    inventory = fleet.writeInventory(undefined, { policy: { maxLagBytes: 10_000, catchUpTimeoutMs: 2_000 } });
    // A second cluster over the same servers whose password reference holds a wrong password.
    process.env.HANDOVER_WRONG_PW = 'not-the-password';
    wrongPwInventory = path.join(fleet.baseDir, 'wrong.yaml');
    writeFileSync(wrongPwInventory, fleet.inventoryYaml().replace(`name: ${fleet.cluster}`, 'name: refuse-wrongpw').replace(fleet.passwordEnv, 'HANDOVER_WRONG_PW').replace(/id: refuse-/g, 'id: wrongpw-'));
    const merged = path.join(fleet.baseDir, 'merged.yaml');
    const a = fleet.inventoryYaml({ policy: { maxLagBytes: 10_000, catchUpTimeoutMs: 2_000 } });
    const b = (await import('node:fs')).readFileSync(wrongPwInventory, 'utf8').replace(/^clusters:\n/, '');
    writeFileSync(merged, a + b);
    tw = await startTestWorker({ inventory: () => loadInventory(merged) });
    opts = { address: tw.address, taskQueue: tw.taskQueue, wait: true };
    await admin(0).set('seed', '1');
  });
  afterAll(async () => {
    await tw?.stop();
    await fleet?.stop();
  });

  let before: Record<string, string>;
  beforeEach(async () => {
    await setRedisPrimary(fleet, byName(0).id);
    before = await mutationSnapshot(fleet);
  });
  const expectUnchanged = async () => expect(await mutationSnapshot(fleet)).toEqual(before);

  async function refused(o: Parameters<typeof runSwitchover>[0], pattern: RegExp, code = 2) {
    const io = captureIO();
    const r = await runSwitchover({ ...opts, ...o }, io);
    expect(r.exitCode, io.text()).toBe(code);
    expect(io.text()).toMatch(pattern);
    await expectUnchanged();
    return io.text();
  }

  it('unknown cluster: refused by the CLI from the inventory, and by the worker without one', async () => {
    await refused({ cluster: 'nope', inventory }, /refused \(UnknownCluster\): unknown cluster "nope"/);
    await refused({ cluster: 'nope' }, /refused \(UnknownCluster\): unknown cluster "nope"/);
  });

  it('unknown --to node', async () => {
    await refused({ cluster: fleet.cluster, to: 'ghost', inventory }, /UnknownNode.*unknown node "ghost"/);
    await refused({ cluster: fleet.cluster, to: 'ghost' }, /UnknownNode.*--to ghost: no such node/);
  });

  it('malformed inventory: file, line and field', async () => {
    const bad = path.join(fleet.baseDir, 'bad.yaml');
    writeFileSync(bad, fleet.inventoryYaml().replace('engine: redis', 'engine: redis\n    colour: blue'));
    await refused({ cluster: fleet.cluster, inventory: bad }, /InvalidInventory.*bad\.yaml:4: clusters\[0\]\.colour: unknown field/s);
  });

  it('target already primary', async () => {
    await refused({ cluster: fleet.cluster, to: byName(0).id }, /PreconditionFailed.*already the primary/);
  });

  it('target not a replica of this primary (chained behind another replica)', async () => {
    const c = admin(2);
    await c.call('REPLICAOF', byName(1).host, String(byName(1).port));
    try {
      for (let i = 0; i < 100 && !(await c.info('replication')).includes('master_link_status:up'); i++) await sleep(50);
      before = await mutationSnapshot(fleet);
      await refused({ cluster: fleet.cluster, to: byName(2).id }, new RegExp(`PreconditionFailed.*${byName(2).id} replicates from ${byName(1).id}, not from the primary`));
    } finally {
      await c.call('REPLICAOF', byName(0).host, String(byName(0).port));
      c.disconnect();
    }
  });

  it('target lagging beyond the limit', async () => {
    const c = admin(1);
    await c.call('CLIENT', 'PAUSE', '20000', 'WRITE'); // stops applying the replication stream, link stays up
    try {
      const p = admin(0);
      await p.set('big', 'x'.repeat(50_000));
      // The primary sees the replica behind by more than the limit (its acknowledged offset stays put).
      await until('the replica to lag', async () => {
        const info = await p.info('replication');
        const master = Number(/master_repl_offset:(\d+)/.exec(info)![1]);
        const acked = Number(new RegExp(`slave\\d+:ip=[^,]+,port=${byName(1).port},state=\\w+,offset=(\\d+)`).exec(info)?.[1] ?? 0);
        return master - acked > 10_000;
      });
      p.disconnect();
      before = await mutationSnapshot(fleet);
      await refused({ cluster: fleet.cluster, to: byName(1).id }, /PreconditionFailed.*lags \d+ bytes behind.*limit 10000/);
    } finally {
      await c.call('CLIENT', 'UNPAUSE');
      c.disconnect();
    }
  });

  it('empty target while the primary holds data', async () => {
    const c = admin(1);
    await c.call('CONFIG', 'SET', 'replica-read-only', 'no');
    await c.flushall();
    before = await mutationSnapshot(fleet);
    try {
      await refused({ cluster: fleet.cluster, to: byName(1).id }, /PreconditionFailed.*holds no keys while the primary/);
    } finally {
      await c.call('CONFIG', 'SET', 'replica-read-only', 'yes');
      // Resync the replica so it holds the data again.
      await c.call('REPLICAOF', 'NO', 'ONE');
      await c.call('REPLICAOF', byName(0).host, String(byName(0).port));
      c.disconnect();
    }
  });

  it('unreachable target node; and an unreachable primary (no switchover without a reachable primary)', async () => {
    /** Refused, and nothing changed on the nodes that answer (the one that is down cannot be read). */
    async function refusedWhileDown(down: number, o: Parameters<typeof runSwitchover>[0], pattern: RegExp) {
      const io = captureIO();
      const r = await runSwitchover({ ...opts, ...o }, io);
      expect(r.exitCode, io.text()).toBe(2);
      expect(io.text()).toMatch(pattern);
      const up = fleet.nodes.filter((_, i) => i !== down);
      const after = await commandCalls({ ...fleet, nodes: up }, MUTATING);
      for (const n of up) expect(after[n.id], n.id).toBe(before[n.id]);
    }
    const target = byName(2);
    await target.stop('SIGTERM');
    try {
      await refusedWhileDown(2, { cluster: fleet.cluster, to: target.id }, new RegExp(`PreconditionFailed.*${target.id} is unreachable`, 's'));
    } finally {
      await target.start();
    }
    await waitForReplication(fleet, byName(0).id);
    const primary = byName(0);
    const p = admin(0);
    await p.save(); // the sandbox runs without persistence: keep the data across this restart
    p.disconnect();
    before = await mutationSnapshot(fleet);
    await primary.stop('SIGTERM');
    try {
      await refusedWhileDown(0, { cluster: fleet.cluster }, new RegExp(`${primary.id}=unreachable.*refused \\(PreconditionFailed\\): no reachable primary: a planned switchover needs a live primary \\(use failover for a dead one\\)`, 's'));
    } finally {
      await primary.start();
    }
  });

  it('wrong credentials', async () => {
    await refused({ cluster: 'refuse-wrongpw' }, /AuthenticationFailed.*authentication to wrongpw-\d \(cluster refuse-wrongpw\) failed: WRONGPASS/);
  });

  it('a second operation on the same cluster is refused as already running', async () => {
    // Hold the cluster with a run that waits on a candidate that cannot catch up (paused replica).
    const c1 = admin(1);
    const c2 = admin(2);
    await c1.call('CLIENT', 'PAUSE', '20000', 'WRITE');
    await c2.call('CLIENT', 'PAUSE', '20000', 'WRITE');
    const p = admin(0);
    await p.set('big2', 'y'.repeat(5_000));
    before = await mutationSnapshot(fleet);
    try {
      const first = runSwitchover({ ...opts, cluster: fleet.cluster, inventory }, captureIO());
      await until('the first switchover to hold the cluster', async () => (await tw.env.client.workflow.getHandle(`handover-${fleet.cluster}`).describe()).status.name === 'RUNNING');
      const io = captureIO();
      const second = await runSwitchover({ ...opts, cluster: fleet.cluster, inventory }, io);
      expect(second.exitCode, io.text()).toBe(3);
      expect(io.text()).toMatch(new RegExp(`already running: handover-${fleet.cluster} \\(switchover, run `));
      const r1 = await first;
      expect(r1.exitCode).toBe(2); // the holder itself stops at catch-up (CatchUpTimeout): refused, nothing changed
      await expectUnchanged();
    } finally {
      await c1.call('CLIENT', 'UNPAUSE');
      await c2.call('CLIENT', 'UNPAUSE');
      for (const c of [c1, c2, p]) c.disconnect();
    }
  });
});

describe('handover that cannot complete is undone', () => {
  let fleet: RedisFleet;
  let tw: TestWorker;
  let inventory: string;

  beforeAll(async () => {
    fleet = await startRedisFleet({ cluster: 'undo' });
    inventory = fleet.writeInventory(undefined, { policy: { pauseTimeoutMs: 400 } });
    // Forced fault: just as the handover step starts, the candidate stops applying replication (link up)
    // and the primary takes a write it will not see, so it cannot catch up within the 400 ms pause.
    tw = await startTestWorker({
      inventory: () => loadInventory(inventory),
      failpoint: async (name) => {
        if (name !== 'ensureRedisHandedOver.start') return;
        for (const n of fleet.nodes.slice(1)) {
          const c = n.client();
          await c.call('CLIENT', 'PAUSE', '3000', 'WRITE');
          c.disconnect();
        }
        const p = fleet.nodes[0].client();
        await p.set('late', 'z'.repeat(10_000));
        p.disconnect();
      },
    });
  });
  afterAll(async () => {
    await tw?.stop();
    await fleet?.stop();
  });

  it('resumes writes on the old primary, which stays primary, and loses nothing', async () => {
    const writer = new AckedWriter(fleet.nodes, fleet.password).start();
    await moreAcks(writer, 20);
    const io = captureIO();
    const r = await runSwitchover({ cluster: fleet.cluster, wait: true, address: tw.address, taskQueue: tw.taskQueue }, io);
    expect(r.exitCode, io.text()).toBe(1);
    expect(io.text()).toMatch(/failed \(HandoverAborted\): switchover of undo undone: .*did not catch up .* within the 400 ms write pause.*undo-1 is still the primary and writable/);
    await moreAcks(writer, 20); // writes resumed on the old primary
    const stats = await writer.stop();
    await writer.close();
    expect(await fleet.roles()).toEqual({ 'undo-1': 'master', 'undo-2': 'slave', 'undo-3': 'slave' });
    expect(writer.primariesSeen).toEqual(['undo-1']);
    expect(await writer.missingOn(fleet.nodes[0].host, fleet.nodes[0].port)).toEqual([]);
    expect(stats.maxGapMs).toBeLessThan(2000);
    const c = fleet.nodes[0].client();
    expect(await c.set('after-undo', '1')).toBe('OK');
    c.disconnect();
  });
});
