/**
 * engine: dolt against real `dolt sql-server` processes in cluster mode (a primary/standby pair, sandbox/dolt.ts)
 * and the real Temporal dev server, the automation connecting as the `handover` user.
 *
 *  - switchover through the CLI and back, under a continuous transactional writer: no acknowledged commit lost
 *    (every acked key on both nodes), never two primaries in any sample, the old primary a standby and the new
 *    one primary at one epoch higher each time, the same dolt_hashof_db() on both;
 *  - status, doctor and plan show the Dolt nodes (role, epoch, lag); a refusal (--to the primary) changes nothing;
 *  - operator hooks (a script appending to a log): pre-switchover, post-promotion, post-switchover in the
 *    switchover and pre-failover, post-promotion, post-failover in the failover, in order, with the old and
 *    new primaries; a failing pre-switchover hook refuses the run (exit 2) and changes nothing;
 *  - failover of a SIGKILLed primary: refused while the primary answers; the standby promoted at a higher
 *    epoch; every write acknowledged before the (drained) kill on the new primary; the old primary, restarted,
 *    comes back a standby at the new epoch.
 *
 * One fleet for the file; every test starts from `ready()` (both nodes up, the first node primary and the second
 * its standby, caught up) and counts epochs from the one it finds, so the tests run in any order.
 *
 * Skipped, saying so, only when no dolt binary is found (activities/backup/tools.ts findDolt).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadInventory } from '../../inventory/load';
import { runStatus } from '../../client/commands/status';
import { runSwitchover } from '../../client/commands/switchover';
import { runFailover } from '../../client/commands/failover';
import { DOLT_APP_DB, DOLT_NOT_FOUND, doltBinary, startDoltFleet, type DoltFleet, type DoltNodeState } from '../../sandbox/dolt';
import { SqlWriter } from '../../sandbox/sql-writer';
import { sleep } from '../../sandbox/ports';
import type { DoltSwitchoverReport } from '../../workflows/dolt/switchover';
import type { DoltFailoverReport } from '../../workflows/dolt/failover';
import { captureIO, moreAcks, runCli, startTestWorker, until, type TestWorker } from '../helpers';

const bin = doltBinary();
if (!bin) console.log(`SKIPPED: the Dolt tests (test/integration/dolt-cluster.test.ts): ${DOLT_NOT_FOUND}`);

/** Every node's role, epoch and read_only every 100 ms until stopped. */
function startSampler(fleet: DoltFleet) {
  const samples: { t: number; state: Record<string, DoltNodeState>; primaries: string[] }[] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const t = Date.now();
      const state = await fleet.state();
      samples.push({ t, state, primaries: Object.entries(state).filter(([, s]) => s.up && s.role === 'primary' && s.readOnly === false).map(([id]) => id) });
      await sleep(Math.max(0, 100 - (Date.now() - t)));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return samples;
    },
  };
}

async function hashes(fleet: DoltFleet, node: number): Promise<string> {
  const [r] = await fleet.sql<{ h: string }[]>(node, 'SELECT dolt_hashof_db() AS h', [], DOLT_APP_DB);
  return r.h;
}

describe.skipIf(!bin)('Dolt sql-server cluster: switchover and failover', () => {
  let fleet: DoltFleet;
  let tw: TestWorker;
  let inventory: string;
  let refusing: string;
  let log: string;
  /** The inventory the worker reads (a test may switch to one whose pre-hook refuses). */
  let current: string;
  const hookLog = () => readFileSync(log, 'utf8').trim().split('\n').filter(Boolean);

  beforeAll(async () => {
    fleet = await startDoltFleet({ cluster: 'dolt-pair' });
    log = path.join(fleet.baseDir, 'hooks.log');
    writeFileSync(log, '');
    const record = `echo "$HANDOVER_HOOK {oldPrimary} {newPrimary}" >> ${log}`;
    const policy = { probeIntervalMs: 300, probesToConfirm: 2 };
    inventory = fleet.writeInventory(undefined, { policy, hooks: Object.fromEntries(['preSwitchover', 'postPromotion', 'postSwitchover', 'preFailover', 'postFailover'].map((k) => [k, [record]])) });
    refusing = fleet.writeInventory(path.join(fleet.baseDir, 'refusing.yaml'), { policy, hooks: { preSwitchover: ['echo "change freeze"; exit 3'] } });
    current = inventory;
    tw = await startTestWorker({ inventory: () => loadInventory(current) });
  });
  afterAll(async () => {
    await tw?.stop();
    await fleet?.stop();
  });

  /**
   * The state every test starts from: both nodes up, the first the primary, the second its standby, caught up.
   * A node left down is started; a fleet left with the second node primary (the failover test) is handed back
   * with the same calls the switchover makes (the primary to standby, then the other to primary, at the next
   * epoch). Returns the primary's epoch.
   */
  async function ready(): Promise<number> {
    const [n1, n2] = fleet.nodes;
    for (const n of fleet.nodes) if (!n.running()) await n.start();
    const st = await until('both nodes answer', async () => {
      const x = await fleet.state();
      return Object.values(x).every((s) => s.up) && x;
    }, 30_000, 100);
    if (st[n1.id].role !== 'primary' || st[n2.id].role !== 'standby') {
      const epoch = Math.max(...Object.values(st).map((s) => s.epoch ?? 0)) + 1;
      if (st[n2.id].role === 'primary') await fleet.sql(n2.id, 'CALL dolt_assume_cluster_role(?, ?)', ['standby', epoch]);
      await fleet.sql(n1.id, 'CALL dolt_assume_cluster_role(?, ?)', ['primary', epoch]);
    }
    await fleet.waitForReplication(n1.id);
    return (await fleet.state())[n1.id].epoch!;
  }

  it('switches over through the CLI and back under a writer: no acknowledged commit lost, never two primaries, epochs E -> E+1 -> E+2', async () => {
    const [n1, n2] = fleet.nodes;
    const e = await ready();
    const writer = new SqlWriter(fleet.nodes, fleet.appUser, fleet.appPassword).start();
    // SqlWriter writes into the MariaDB sandbox's app schema name; the Dolt fleet's app database has the same name.
    expect(DOLT_APP_DB).toBe('handover_app');
    const sampler = startSampler(fleet);
    writeFileSync(log, '');
    await moreAcks(writer, 10);

    const cli = await runCli(['switchover', '--cluster', fleet.cluster, '--wait', '--inventory', inventory, '--address', tw.address, '--task-queue', tw.taskQueue]);
    expect(cli.code, cli.out + cli.err).toBe(0);
    expect(cli.out).toContain(`switched over ${fleet.cluster}: ${n1.id} -> ${n2.id} (epoch ${e} -> ${e + 1})`);
    expect(cli.out).toContain(`  where it stands: primary ${n2.id} (was ${n1.id})\n    following ${n2.id}: ${n1.id}`);
    let st = await fleet.state();
    expect(st[n1.id]).toMatchObject({ up: true, role: 'standby', epoch: e + 1, readOnly: true });
    expect(st[n2.id]).toMatchObject({ up: true, role: 'primary', epoch: e + 1, readOnly: false });
    expect(hookLog()).toEqual([`preSwitchover ${n1.id} ${n2.id}`, `postPromotion ${n1.id} ${n2.id}`, `postSwitchover ${n1.id} ${n2.id}`]);
    expect(cli.out).toMatch(/post-promotion hook 1: ok \(postPromotion hook #1: exit 0 after \d+ ms\)/);
    await moreAcks(writer, 10); // commits on the new primary before switching back

    const io = captureIO();
    const back = await runSwitchover({ cluster: fleet.cluster, to: n1.id, wait: true, json: true, inventory, address: tw.address, taskQueue: tw.taskQueue }, io);
    expect(back.exitCode, io.text()).toBe(0);
    const r = back.report as unknown as DoltSwitchoverReport;
    expect(r).toMatchObject({ engine: 'dolt', oldPrimary: n2.id, newPrimary: n1.id, decision: { epoch: e + 2, fromEpoch: e + 1 } });
    expect(r.writePauseMs).toBeGreaterThanOrEqual(0);
    expect(Object.keys(r.hashes ?? {})).toContain(DOLT_APP_DB);
    expect(r.standing).toEqual({ primary: n1.id, previousPrimary: n2.id, changed: true, following: [n2.id], notFollowing: [] });
    await moreAcks(writer, 10);

    const stats = await writer.stop();
    await writer.close();
    const samples = await sampler.stop();
    st = await fleet.state();
    expect(st[n1.id]).toMatchObject({ role: 'primary', epoch: e + 2 });
    expect(st[n2.id]).toMatchObject({ role: 'standby', epoch: e + 2 });
    expect(stats.acked).toBeGreaterThan(100);
    expect(writer.primariesSeen).toEqual([n1.id, n2.id, n1.id]);
    await fleet.waitForReplication(n1.id);
    for (const n of fleet.nodes) expect(await writer.missingOn(n), `acknowledged commits missing on ${n.id}`).toEqual([]);
    expect(await hashes(fleet, 0)).toBe(await hashes(fleet, 1));
    expect(samples.length).toBeGreaterThan(10);
    expect(samples.filter((s) => s.primaries.length > 1)).toEqual([]);
    console.log(`dolt switchover x2: ${stats.acked} acked commits, longest gap between acks ${stats.maxGapMs.toFixed(0)} ms, write pause (report) ${r.writePauseMs} ms`);
  });

  it('status and plan show the Dolt nodes; a refused switchover changes nothing', async () => {
    const [n1, n2] = fleet.nodes;
    const e = await ready();
    const io = captureIO();
    const s = await runStatus({ cluster: fleet.cluster, json: true, inventory, address: tw.address }, io);
    expect(s.exitCode).toBe(0);
    const c = s.clusters![0];
    expect(c).toMatchObject({ engine: 'dolt', primaries: [n1.id], problems: [] });
    expect(c.nodes.find((n) => n.node === n2.id)).toMatchObject({ role: 'replica', replicaOf: n1.id, epoch: e, linkUp: true, lagMillis: 0 });
    const text = await runCli(['status', '--cluster', fleet.cluster, '--inventory', inventory, '--address', tw.address]);
    expect(text.out).toMatch(new RegExp(`${n2.id} .* replica of ${n1.id} +0 ms +\\S+ +- +- +up`));

    const doc = await runCli(['doctor', '--cluster', fleet.cluster, '--json', '--address', tw.address, '--task-queue', tw.taskQueue, '--inventory', inventory]);
    const checks = (JSON.parse(doc.out.trim()) as { checks: { check: string; status: string; detail: string }[] }).checks;
    expect(checks.filter((c) => c.check.startsWith(`${fleet.cluster}/`))).toEqual([
      expect.objectContaining({ check: `${fleet.cluster}/${n1.id}`, status: 'ok', detail: expect.stringMatching(new RegExp(`dolt \\S+ primary at epoch ${e}; credentials work`)) }),
      expect.objectContaining({ check: `${fleet.cluster}/${n2.id}`, status: 'ok', detail: expect.stringMatching(new RegExp(`standby at epoch ${e}`)) }),
    ]);

    const plan = await runCli(['plan', 'switchover', '--cluster', fleet.cluster, '--inventory', inventory, '--address', tw.address, '--task-queue', tw.taskQueue]);
    expect(plan.code, plan.out + plan.err).toBe(0);
    expect(plan.out).toContain(`make ${n1.id} a standby at epoch ${e + 1}`);
    expect(plan.out).toContain(`make ${n2.id} the primary at epoch ${e + 1}`);

    const before = await fleet.state();
    const refused = await runCli(['switchover', '--cluster', fleet.cluster, '--to', n1.id, '--wait', '--inventory', inventory, '--address', tw.address, '--task-queue', tw.taskQueue]);
    expect(refused.code).toBe(2);
    expect(refused.out + refused.err).toMatch(new RegExp(`already the primary.*\\. Where it stands: the primary is ${n1.id}; following ${n1.id}: ${n2.id}`));
    expect(await fleet.state()).toEqual(before);

    current = refusing;
    try {
      const io = captureIO();
      const r = await runSwitchover({ cluster: fleet.cluster, wait: true, inventory: refusing, address: tw.address, taskQueue: tw.taskQueue }, io);
      expect(r.exitCode, io.text()).toBe(2);
      expect(io.text()).toMatch(/PreHookFailed.*preSwitchover hook #1 exited 3 after \d+ ms: change freeze; the switchover was not started \(pre-hooks fail closed\)/);
      expect(await fleet.state()).toEqual(before);
    } finally {
      current = inventory;
    }
  });

  it('fails over a SIGKILLed primary: standby promoted at a higher epoch, nothing acknowledged before the kill lost, the old primary returns a standby', async () => {
    const [n1, n2] = fleet.nodes;
    const e = await ready();
    const opts = { cluster: fleet.cluster, wait: true, inventory, address: tw.address, taskQueue: tw.taskQueue };
    const aliveIo = captureIO();
    const alive = await runFailover(opts, aliveIo);
    expect(alive.exitCode).toBe(2); // the primary answers: refused, saying where the cluster stands
    expect(aliveIo.text()).toMatch(new RegExp(`${n1.id} answers as primary .*nothing was changed\\. Where it stands: the primary is ${n1.id}; following ${n1.id}: ${n2.id}`));

    const writer = new SqlWriter(fleet.nodes, fleet.appUser, fleet.appPassword).start();
    await moreAcks(writer, 10);
    const stats = await writer.stop();
    expect(stats.acked).toBeGreaterThan(0);
    await fleet.waitForReplication(n1.id); // drained: what was acknowledged reached the standby
    await n1.kill();

    writeFileSync(log, '');
    const io = captureIO();
    const f = await runFailover(opts, io);
    expect(f.exitCode, io.text()).toBe(0);
    expect(hookLog()).toEqual([`preFailover ${n1.id} ${n2.id}`, `postPromotion ${n1.id} ${n2.id}`, `postFailover ${n1.id} ${n2.id}`]);
    const r = f.report as unknown as DoltFailoverReport;
    expect(r).toMatchObject({ engine: 'dolt', newPrimary: n2.id, oldPrimary: n1.id, epoch: e + 1 });
    expect(r.fenced).toContain(`${n1.id} is down`);
    // Where it stands: the new primary (was the dead one); the dead one not following until it returns.
    expect(r.standing).toEqual({ primary: n2.id, previousPrimary: n1.id, changed: true, following: [], notFollowing: [{ node: n1.id, reason: `down: when it returns it hears of the primary at epoch ${e + 1} and steps down to standby` }] });
    expect(io.text()).toContain(`  where it stands: primary ${n2.id} (was ${n1.id})\n    following ${n2.id}: none\n    NOT following: ${n1.id}: down: when it returns`);
    expect((await fleet.state())[n2.id]).toMatchObject({ role: 'primary', epoch: e + 1, readOnly: false });
    expect(await writer.missingOn(n2)).toEqual([]);

    await n1.start();
    const s1 = await until('the old primary back a standby at the new epoch', async () => {
      const x = (await fleet.state())[n1.id];
      return x.role === 'standby' && x.epoch === e + 1 && x;
    }, 30_000, 100);
    expect(s1).toMatchObject({ role: 'standby', epoch: e + 1, readOnly: true });
    await fleet.waitForReplication(n2.id);
    expect(await hashes(fleet, 0)).toBe(await hashes(fleet, 1));
    await writer.close();
  });
});
