/**
 * engine: dolt, topology: remote-replicas, against real `dolt sql-server` processes (a primary and two read
 * replicas through a file:// remote, sandbox/dolt-remote.ts) and the real Temporal dev server, the nodes
 * restarted by the inventory's `local` controller (engine dolt), the automation connecting as `handover`.
 *
 *  - status shows the primary and each replica's lag as a commit distance, counted on the primary
 *    (dolt_log('<replica head>..main')): a head two commits back is 2 behind;
 *  - switchover through the CLI under a continuous writer (every COMMIT a Dolt commit): stop writes (fence),
 *    push, promote, re-point; no acknowledged commit lost on any node, never two writable nodes in any sample,
 *    the old primary a read-only replica of the remote, every replica at distance 0 from the new primary;
 *  - a refused switchover (--to the primary) changes nothing;
 *  - operator hooks with a real HAProxy (sandbox/haproxy.ts) in front of the nodes: the post-promotion hook
 *    moves its backend through the runtime API, and a second writer connecting ONLY through HAProxy loses no
 *    acknowledged commit and commits again after the switchover; hooks run in order with the old and new
 *    primaries; a failing post-switchover hook is reported (exit 5) and the switchover stands; a failing
 *    pre-switchover hook refuses the run (exit 2) with every node and HAProxy's servers unchanged.
 *
 * Skipped, saying so, only when no dolt binary is found (activities/backup/tools.ts findDolt).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mysql from 'mysql2/promise';
import { loadInventory } from '../../inventory/load';
import { runStatus } from '../../client/commands/status';
import { commitDistance } from '../../activities/dolt/remote';
import { DOLT_NOT_FOUND, findDolt } from '../../activities/backup/tools';
import { DOLT_REMOTE_APP_DB, startDoltRemoteFleet, type DoltRemoteFleet } from '../../sandbox/dolt-remote';
import { SqlWriter } from '../../sandbox/sql-writer';
import { startHaproxy, type HaproxyFront } from '../../sandbox/haproxy';
import { sleep } from '../../sandbox/ports';
import type { DoltRemoteSwitchoverReport } from '../../workflows/dolt/remote-switchover';
import { captureIO, runCli, startTestWorker, type TestWorker } from '../helpers';
import { runSwitchover } from '../../client/commands/switchover';
import { createActivities } from '../../activities';

const bin = findDolt();
if (!bin) console.log(`SKIPPED: the Dolt remote-replica tests (test/integration/dolt-remote.test.ts): ${DOLT_NOT_FOUND}`);

describe.skipIf(!bin)('Dolt read replicas through a remote: lag, switchover', () => {
  let fleet: DoltRemoteFleet;
  let tw: TestWorker;
  let inventory: string;
  let refusing: string;
  let hp: HaproxyFront;
  let log: string;
  /** The inventory the worker reads (a test may switch to one whose pre-hook refuses). */
  let current: string;

  beforeAll(async () => {
    fleet = await startDoltRemoteFleet({ cluster: 'dolt-remote' });
    hp = await startHaproxy({ name: fleet.cluster, dir: path.join(fleet.baseDir, 'haproxy'), nodes: fleet.nodes, primary: fleet.nodes[0].id });
    log = path.join(fleet.baseDir, 'hooks.log');
    writeFileSync(log, '');
    const record = `echo "$HANDOVER_HOOK {oldPrimary} {newPrimary}" >> ${log}`;
    const policy = { catchUpTimeoutMs: 15_000, verifyTimeoutMs: 20_000 };
    inventory = fleet.writeInventory(undefined, { policy, hooks: { preSwitchover: [record], postPromotion: [hp.moveHook(), record], postSwitchover: [record, 'echo "ticket system down"; exit 7'] } });
    refusing = fleet.writeInventory(path.join(fleet.baseDir, 'refusing.yaml'), { policy, hooks: { preSwitchover: ['echo "change freeze"; exit 3'], postPromotion: [hp.moveHook()] } });
    current = inventory;
    tw = await startTestWorker({ inventory: () => loadInventory(current) });
  });
  afterAll(async () => {
    await tw?.stop();
    await hp?.stop();
    await fleet?.stop();
  });

  const hookLog = () => readFileSync(log, 'utf8').trim().split('\n').filter(Boolean);
  const readyInHaproxy = async () => Object.entries(await hp.states()).filter(([, s]) => s === 'ready').map(([id]) => id);

  const primaryNow = async () => {
    const st = await fleet.state();
    return fleet.nodes.find((n) => st[n.id] && !st[n.id]!.readOnly && st[n.id]!.push === 'origin')!;
  };

  it('status shows each replica at commit distance 0; a head two commits back counts as 2 behind', async () => {
    const p = await primaryNow();
    for (let k = 0; k < 2; k++) await fleet.sql(p.id, 'INSERT INTO acks (k, v) VALUES (?, ?)', [`lag-${Date.now()}-${k}`, k], DOLT_REMOTE_APP_DB);
    const io = captureIO();
    const s = await runStatus({ cluster: fleet.cluster, json: true, inventory, address: tw.address }, io);
    expect(s.exitCode, io.text()).toBe(0);
    const c = s.clusters![0];
    expect(c).toMatchObject({ engine: 'dolt', topology: 'remote-replicas', primaries: [p.id], problems: [] });
    for (const n of fleet.nodes.filter((x) => x !== p)) expect(c.nodes.find((x) => x.node === n.id)).toMatchObject({ role: 'replica', replicaOf: p.id, lagCommits: 0, readOnly: true });
    const text = await runCli(['status', '--cluster', fleet.cluster, '--inventory', inventory, '--address', tw.address]);
    expect(text.out).toMatch(/replica of \S+ +0 commit\(s\) +.* via origin/);

    // The distance itself, counted by the real primary: its main two commits back.
    const [back2] = await fleet.sql<{ h: string }[]>(p.id, "SELECT commit_hash AS h FROM dolt_log LIMIT 1 OFFSET 2", [], DOLT_REMOTE_APP_DB);
    const [head] = await fleet.sql<{ h: string }[]>(p.id, "SELECT hash AS h FROM dolt_branches WHERE name = 'main'", [], DOLT_REMOTE_APP_DB);
    const conn = await mysql.createConnection({ host: p.host, port: p.port, user: 'root' });
    try {
      expect(await commitDistance(conn, { [DOLT_REMOTE_APP_DB]: { main: head.h } }, { [DOLT_REMOTE_APP_DB]: { main: back2.h } })).toMatchObject({ behind: 2 });
      expect(await commitDistance(conn, { [DOLT_REMOTE_APP_DB]: { main: head.h } }, { [DOLT_REMOTE_APP_DB]: { main: 'v'.repeat(32) } })).toMatchObject({ behind: null });
    } finally {
      conn.destroy();
    }
  });

  it('switches over through the CLI under a writer: fence, push, promote, re-point; no acknowledged commit lost, never two writable nodes; hooks move HAProxy', async () => {
    const old = await primaryNow();
    const to = fleet.nodes.find((n) => n !== old)!;
    writeFileSync(log, '');
    expect(await readyInHaproxy()).toEqual([old.id]);
    const writer = new SqlWriter(fleet.nodes, fleet.appUser, fleet.appPassword).start();
    // A second writer that reaches the cluster ONLY through HAProxy: it commits again only once the hook moved it.
    const proxied = new SqlWriter([{ id: 'haproxy', host: hp.host, port: hp.port }], fleet.appUser, fleet.appPassword, 'hp').start();
    const samples: string[][] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const st = await fleet.state();
        samples.push(Object.entries(st).filter(([, s]) => s && !s.readOnly).map(([id]) => id));
        await sleep(100);
      }
    })();
    // Stopped however the test ends: a writer left running would change what the next test reads.
    const stopAll = async () => {
      sampling = false;
      await sampler;
      const r = [await writer.stop(), await proxied.stop()] as const;
      await writer.close();
      await proxied.close();
      return r;
    };
    let stopped: Awaited<ReturnType<typeof stopAll>> | undefined;
    try {
    await sleep(700);
    const proxiedBefore = proxied.ackedKeys.length;
    expect(proxiedBefore).toBeGreaterThan(0);

    const cli = await runCli(['switchover', '--cluster', fleet.cluster, '--to', to.id, '--wait', '--inventory', inventory, '--address', tw.address, '--task-queue', tw.taskQueue]);
    // Done with warnings: post-switchover hook #2 fails (fail open) and is reported; the switchover stands.
    expect(cli.code, cli.out + cli.err).toBe(5);
    expect(cli.out).toContain(`switched over ${fleet.cluster} through remote origin: ${old.id} -> ${to.id}`);
    expect(cli.out).toMatch(/write pause \(fence to promotion\): \d+ ms/);
    const others = fleet.nodes.filter((x) => x !== to).map((x) => x.id);
    expect(cli.out).toContain(`  where it stands: primary ${to.id} (was ${old.id})\n    following ${to.id}: ${[old.id, ...others.filter((x) => x !== old.id)].join(', ')}\n`);
    expect(cli.out).toMatch(/post-promotion hook 1: ok \(postPromotion hook #1: exit 0 after \d+ ms: haproxy: moved be_dolt_remote to /);
    expect(cli.out).toMatch(/POST-SWITCHOVER HOOK 2 FAILED \(the switchover stands; do its work by hand\): postSwitchover hook #2 exited 7 after \d+ ms: ticket system down/);
    expect(hookLog()).toEqual([`preSwitchover ${old.id} ${to.id}`, `postPromotion ${old.id} ${to.id}`, `postSwitchover ${old.id} ${to.id}`]);
    expect(await readyInHaproxy()).toEqual([to.id]);
    // The writer through HAProxy commits again on the new primary.
    const n = proxied.ackedKeys.length;
    for (const deadline = Date.now() + 20_000; proxied.ackedKeys.length < n + 20 && Date.now() < deadline; ) await sleep(20);
    expect(proxied.ackedKeys.length, 'the writer through HAProxy is not acknowledged again').toBeGreaterThanOrEqual(n + 20);
    await sleep(300);
    stopped = await stopAll();
    const [stats, proxiedStats] = stopped;

    const st = await fleet.state();
    expect(st[to.id]).toEqual({ readOnly: false, push: 'origin', pull: '' });
    for (const n of fleet.nodes.filter((x) => x !== to)) expect(st[n.id]).toEqual({ readOnly: true, push: '', pull: 'origin' });
    expect(stats.acked).toBeGreaterThan(0);
    expect(proxiedStats.acked).toBeGreaterThan(proxiedBefore);
    expect(writer.primariesSeen).toEqual([old.id, to.id]);
    for (const n of fleet.nodes) {
      expect(await writer.missingOn(n), `acknowledged commits missing on ${n.id}`).toEqual([]);
      expect(await proxied.missingOn(n), `commits acknowledged through HAProxy missing on ${n.id}`).toEqual([]);
    }
    expect(samples.length).toBeGreaterThan(5);
    expect(samples.filter((s) => s.length > 1)).toEqual([]);

    const io = captureIO();
    const s = await runStatus({ cluster: fleet.cluster, json: true, inventory, address: tw.address }, io);
    expect(s.clusters![0]).toMatchObject({ primaries: [to.id], problems: [] });
    for (const n of s.clusters![0].nodes.filter((x) => x.node !== to.id)) expect(n).toMatchObject({ role: 'replica', lagCommits: 0 });
    console.log(`dolt remote switchover: ${stats.acked} acked commits (${proxiedStats.acked} through HAProxy), longest gap between acks ${stats.maxGapMs.toFixed(0)} ms (through HAProxy ${proxiedStats.maxGapMs.toFixed(0)} ms)`);
    } finally {
      if (!stopped) await stopAll();
    }
  });

  it('a failing pre-switchover hook refuses the run: exit 2, every node and HAProxy unchanged', async () => {
    current = refusing;
    try {
      writeFileSync(log, '');
      const [before, ready] = [await fleet.state(), await readyInHaproxy()];
      const io = captureIO();
      const r = await runSwitchover({ cluster: fleet.cluster, wait: true, inventory: refusing, address: tw.address, taskQueue: tw.taskQueue }, io);
      expect(r.exitCode, io.text()).toBe(2);
      expect(io.text()).toMatch(/PreHookFailed.*preSwitchover hook #1 exited 3 after \d+ ms: change freeze; the switchover was not started \(pre-hooks fail closed\)/);
      expect(await fleet.state()).toEqual(before);
      expect(await readyInHaproxy()).toEqual(ready);
      expect(hookLog()).toEqual([]);
    } finally {
      current = inventory;
    }
  });

  it('activities run twice change nothing the second time: each node already in its part, a second push sends nothing new', async () => {
    const acts = createActivities({ inventory: () => loadInventory(inventory) });
    const p = await primaryNow();
    const before = await fleet.state();
    for (const n of fleet.nodes) {
      const r = await acts.ensureDoltRemoteRole({ cluster: fleet.cluster, node: n.id, role: n === p ? 'primary' : 'replica' });
      expect(r).toMatchObject({ changed: false, audit: `${n.id} already ${n === p ? 'primary' : 'replica'}` });
    }
    const a = await acts.ensureDoltPushed({ cluster: fleet.cluster, node: p.id });
    const b = await acts.ensureDoltPushed({ cluster: fleet.cluster, node: p.id });
    expect(b.heads).toEqual(a.heads);
    expect(await fleet.state()).toEqual(before);
  });

  it('a refused switchover (--to the primary) changes nothing; the dry run shows the runbook', async () => {
    const p = await primaryNow();
    const before = await fleet.state();
    const io = captureIO();
    const r = await runSwitchover({ cluster: fleet.cluster, to: p.id, wait: true, inventory, address: tw.address, taskQueue: tw.taskQueue }, io);
    expect(r.exitCode).toBe(2);
    // Refused at the decision: where the cluster stands is what its probe saw.
    expect(io.text()).toMatch(new RegExp(`already the primary.*\\. Where it stands: the primary is ${p.id}; following ${p.id}: ${fleet.nodes.filter((n) => n !== p).map((n) => n.id).join(', ')}$`, 'm'));
    expect(await fleet.state()).toEqual(before);
    const other = fleet.nodes.find((n) => n !== p)!;
    const plan = await runSwitchover({ cluster: fleet.cluster, to: other.id, dryRun: true, wait: true, json: true, inventory, address: tw.address, taskQueue: tw.taskQueue }, captureIO());
    const rep = plan.report as unknown as DoltRemoteSwitchoverReport;
    expect(rep).toMatchObject({ topology: 'remote-replicas', dryRun: true, oldPrimary: p.id, newPrimary: other.id });
    expect(rep.standing).toEqual({ primary: p.id, changed: false, following: fleet.nodes.filter((n) => n !== p).map((n) => n.id), notFollowing: [] });
    expect(rep.plan).toEqual(expect.arrayContaining([expect.stringContaining(`push every branch of ${p.id} to origin`), expect.stringContaining(`restart ${p.id} read-only`)]));
    expect(await fleet.state()).toEqual(before);
  });
});
