/**
 * Hooks on every runbook, with a real HAProxy (Debian's /usr/sbin/haproxy, sandbox/haproxy.ts) in front of each
 * fleet: one TCP frontend, a backend with every node, only the primary ready. The inventory's post-promotion
 * hook moves the backend through HAProxy's runtime API (`set server … state ready|maint`, `shutdown sessions`).
 * A writer that connects ONLY through HAProxy loses no acknowledged write across a switchover and a
 * `rolling-restart --reason` (whose handover is the switchover, as a child workflow), for Redis and MariaDB, and
 * keeps being acknowledged after each (the endpoint moved). Pre-hooks fail closed (a failing one: refused,
 * exit 2, nothing changed — roles, run_ids and HAProxy's servers as they were); post-hooks fail open (a failing
 * post-switchover hook is reported, the run completes). Real servers, real Temporal dev server.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runRollingRestart } from '../../client/commands/rolling-restart';
import { runSwitchover } from '../../client/commands/switchover';
import { EXIT } from '../../client/common';
import { loadInventory } from '../../inventory/load';
import { startHaproxy, type HaproxyFront } from '../../sandbox/haproxy';
import { startMariaFleet, type MariaFleet } from '../../sandbox/mariadb';
import { sleep } from '../../sandbox/ports';
import { startRedisFleet, type RedisFleet } from '../../sandbox/redis';
import { SqlWriter } from '../../sandbox/sql-writer';
import { AckedWriter, type AckLog } from '../../sandbox/writer';
import { captureIO, nodesUpFor, startTestWorker, type TestWorker } from '../helpers';

/** A hook that appends one line (kind, old and new primary) to `log`. */
const record = (log: string) => `echo "$HANDOVER_HOOK {oldPrimary} {newPrimary}" >> ${log}`;

/** Wait (bounded) until the writer has `n` more acknowledgements than it had: the endpoint takes writes again. */
async function acksGrow(w: AckLog, n: number, timeoutMs = 30_000): Promise<number> {
  const from = w.ackedKeys.length;
  const t0 = Date.now();
  while (w.ackedKeys.length < from + n) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`the writer through HAProxy got ${w.ackedKeys.length - from} acknowledgements in ${timeoutMs} ms (wanted ${n}): the endpoint did not move`);
    await sleep(20);
  }
  return Date.now() - t0;
}

const hookKinds = (log: string) =>
  readFileSync(log, 'utf8')
    .trim()
    .split('\n')
    .filter(Boolean);

describe('hooks and HAProxy, Redis', () => {
  let fleet: RedisFleet;
  let hp: HaproxyFront;
  let tw: TestWorker;
  let inventory: string;
  let refusing: string;
  let log: string;

  beforeAll(async () => {
    fleet = await startRedisFleet({ cluster: 'hk-redis' });
    hp = await startHaproxy({ name: fleet.cluster, dir: path.join(fleet.baseDir, 'haproxy'), nodes: fleet.nodes, primary: (await fleet.primary())!.id });
    log = path.join(fleet.baseDir, 'hooks.log');
    writeFileSync(log, '');
    inventory = fleet.writeInventory(path.join(fleet.baseDir, 'inventory.yaml'), {
      hooks: {
        preSwitchover: [record(log)],
        postPromotion: [hp.moveHook(), record(log)],
        postSwitchover: [record(log), 'echo "ticket system down"; exit 7'],
        preRollingRestart: [record(log)],
        postRollingRestart: [record(log)],
      },
    });
    refusing = fleet.writeInventory(path.join(fleet.baseDir, 'refusing.yaml'), { hooks: { preSwitchover: ['echo "change freeze"; exit 3'], preRollingRestart: ['echo "change freeze"; exit 3'], postPromotion: [hp.moveHook()] } });
    current = inventory;
    tw = await startTestWorker({ inventory: () => loadInventory(current) });
  }, 120_000);
  afterAll(async () => {
    await tw?.stop();
    await hp?.stop();
    await fleet?.stop();
  });
  /** The inventory the worker reads (a test may switch to one whose pre-hooks refuse). */
  let current: string;
  const use = (f: string) => (current = f);

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

  it('a failing pre-switchover or pre-rolling-restart hook refuses the run with nothing changed', async () => {
    use(refusing);
    try {
      const [roles, ids, states] = [await fleet.roles(), await runIds(), await hp.states()];
      const io = captureIO();
      const r = await runSwitchover({ cluster: fleet.cluster, wait: true, inventory: refusing, address: tw.address, taskQueue: tw.taskQueue }, io);
      expect(r.exitCode, io.text()).toBe(2);
      expect(io.text()).toMatch(/PreHookFailed.*preSwitchover hook #1 exited 3 after \d+ ms: change freeze; the switchover was not started \(pre-hooks fail closed\)/);
      // Nodes started within the roll's slack count as after it (nothing to roll, so no hook would run).
      await nodesUpFor(fleet.nodes);
      const io2 = captureIO();
      const r2 = await runRollingRestart({ cluster: fleet.cluster, reason: 'kernel update', wait: true, inventory: refusing, address: tw.address, taskQueue: tw.taskQueue }, io2);
      expect(r2.exitCode, io2.text()).toBe(2);
      expect(io2.text()).toMatch(/preRollingRestart hook #1 exited 3 .*the rolling restart was not started/);
      expect(await fleet.roles()).toEqual(roles);
      expect(await runIds()).toEqual(ids);
      expect(await hp.states()).toEqual(states);
    } finally {
      use(inventory);
    }
  }, 120_000);

  it('switchover: the post-promotion hook moves HAProxy; a writer through it loses nothing and is acknowledged again; a failing post-hook is reported', async () => {
    const before = (await fleet.primary())!.id;
    const writer = new AckedWriter([{ id: 'haproxy', host: hp.host, port: hp.port }], fleet.password).start();
    await acksGrow(writer, 100);
    const io = captureIO();
    const r = await runSwitchover({ cluster: fleet.cluster, wait: true, inventory, address: tw.address, taskQueue: tw.taskQueue }, io);
    // Done, with a warning: post-switchover hook #2 fails (fail open) — the exit code for "done with warnings".
    expect(r.exitCode, io.text()).toBe(EXIT.warnings);
    const after = r.report!.newPrimary;
    expect(after).not.toBe(before);
    await acksGrow(writer, 100);
    const stats = await writer.stop();
    await writer.close();
    expect(stats.acked).toBeGreaterThan(200);
    for (const n of fleet.nodes) expect(await writer.missingOn(n.host, n.port), `${n.id} is missing acknowledged writes`).toEqual([]);
    const states = await hp.states();
    expect(states[after]).toBe('ready');
    expect(Object.entries(states).filter(([, s]) => s === 'ready').map(([id]) => id)).toEqual([after]);
    expect(io.text()).toMatch(/post-promotion hook 1: ok \(postPromotion hook #1: exit 0 after \d+ ms: haproxy: moved be_hk_redis to /);
    expect(io.text()).toMatch(/POST-SWITCHOVER HOOK 2 FAILED \(the switchover stands; do its work by hand\): postSwitchover hook #2 exited 7 after \d+ ms: ticket system down/);
    expect(hookKinds(log)).toEqual([`preSwitchover ${before} ${after}`, `postPromotion ${before} ${after}`, `postSwitchover ${before} ${after}`]);
  }, 180_000);

  it('rolling-restart --reason: the handover moves HAProxy; nothing lost through it; every node restarted once', async () => {
    writeFileSync(log, '');
    const ids = await runIds();
    const before = (await fleet.primary())!.id;
    const writer = new AckedWriter([{ id: 'haproxy', host: hp.host, port: hp.port }], fleet.password).start();
    await acksGrow(writer, 100);
    const io = captureIO();
    const r = await runRollingRestart({ cluster: fleet.cluster, reason: 'hooks test: OS patch', wait: true, inventory, address: tw.address, taskQueue: tw.taskQueue }, io);
    expect(r.exitCode, io.text()).toBe(0);
    const after = r.report!.primary;
    expect(after).not.toBe(before);
    await acksGrow(writer, 100);
    const stats = await writer.stop();
    await writer.close();
    expect(stats.acked).toBeGreaterThan(200);
    for (const n of fleet.nodes) expect(await writer.missingOn(n.host, n.port), `${n.id} is missing acknowledged writes`).toEqual([]);
    const now = await runIds();
    for (const n of fleet.nodes) expect(now[n.id], `${n.id} was not restarted`).not.toBe(ids[n.id]);
    expect(r.report!.restarts.map((x) => x.node).sort()).toEqual(fleet.nodes.map((n) => n.id).sort());
    expect(Object.entries(await hp.states()).filter(([, s]) => s === 'ready').map(([id]) => id)).toEqual([after]);
    const kinds = hookKinds(log);
    expect(kinds[0]).toBe(`preRollingRestart ${before} ${before}`);
    expect(kinds).toContain(`postPromotion ${before} ${after}`);
    expect(kinds[kinds.length - 1]).toBe(`postRollingRestart ${before} ${after}`);
  }, 300_000);
});

describe('hooks and HAProxy, MariaDB', () => {
  let fleet: MariaFleet;
  let hp: HaproxyFront;
  let tw: TestWorker;
  let inventory: string;
  let log: string;

  beforeAll(async () => {
    fleet = await startMariaFleet({ cluster: 'hk-maria' });
    const state = await fleet.state();
    const primary = Object.keys(state).find((id) => state[id].up && !state[id].readOnly)!;
    hp = await startHaproxy({ name: fleet.cluster, dir: path.join(fleet.baseDir, 'haproxy'), nodes: fleet.nodes, primary });
    log = path.join(fleet.baseDir, 'hooks.log');
    writeFileSync(log, '');
    inventory = fleet.writeInventory(undefined, {
      controller: true,
      hooks: { preSwitchover: [record(log)], postPromotion: [hp.moveHook(), record(log)], postSwitchover: [record(log)], preRollingRestart: [record(log)], postRollingRestart: [record(log)] },
    });
    tw = await startTestWorker({ inventory: () => loadInventory(inventory) });
  }, 180_000);
  afterAll(async () => {
    await tw?.stop();
    await hp?.stop();
    await fleet?.stop();
  });

  const writable = async () => {
    const s = await fleet.state();
    return Object.keys(s).filter((id) => s[id].up && !s[id].readOnly);
  };

  it('switchover, then rolling-restart --reason: a transactional writer through HAProxy loses no acknowledged commit and commits again after each', async () => {
    const writer = new SqlWriter([{ id: 'haproxy', host: hp.host, port: hp.port }], fleet.appUser, fleet.appPassword).start();
    await acksGrow(writer, 50);
    const [p0] = await writable();
    const io = captureIO();
    const r = await runSwitchover({ cluster: fleet.cluster, wait: true, inventory, address: tw.address, taskQueue: tw.taskQueue }, io);
    expect(r.exitCode, io.text()).toBe(0);
    const p1 = r.report!.newPrimary;
    expect(p1).not.toBe(p0);
    await acksGrow(writer, 50);
    expect(Object.entries(await hp.states()).filter(([, s]) => s === 'ready').map(([id]) => id)).toEqual([p1]);
    expect(hookKinds(log)).toEqual([`preSwitchover ${p0} ${p1}`, `postPromotion ${p0} ${p1}`, `postSwitchover ${p0} ${p1}`]);

    writeFileSync(log, '');
    const io2 = captureIO();
    const r2 = await runRollingRestart({ cluster: fleet.cluster, reason: 'hooks test: OS patch', wait: true, inventory, address: tw.address, taskQueue: tw.taskQueue }, io2);
    expect(r2.exitCode, io2.text()).toBe(0);
    const p2 = r2.report!.primary;
    expect(p2).not.toBe(p1);
    await acksGrow(writer, 50);
    const stats = await writer.stop();
    await writer.close();
    expect(stats.acked).toBeGreaterThan(150);
    expect(await writable()).toEqual([p2]);
    await fleet.waitForReplication(p2, 30_000); // a replica may still be applying the last commits
    for (const n of fleet.nodes) expect(await writer.missingOn(n), `${n.id} is missing acknowledged commits`).toEqual([]);
    expect(Object.entries(await hp.states()).filter(([, s]) => s === 'ready').map(([id]) => id)).toEqual([p2]);
    const kinds = hookKinds(log);
    expect(kinds[0]).toBe(`preRollingRestart ${p1} ${p1}`);
    expect(kinds).toContain(`postPromotion ${p1} ${p2}`);
    expect(kinds[kinds.length - 1]).toBe(`postRollingRestart ${p1} ${p2}`);
  }, 400_000);
});
