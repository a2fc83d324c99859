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
 *  - a refused switchover (--to the primary) changes nothing.
 *
 * Skipped, saying so, only when no dolt binary is found (activities/backup/tools.ts findDolt).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mysql from 'mysql2/promise';
import { loadInventory } from '../../inventory/load';
import { runStatus } from '../../client/commands/status';
import { commitDistance } from '../../activities/dolt/remote';
import { DOLT_NOT_FOUND, findDolt } from '../../activities/backup/tools';
import { DOLT_REMOTE_APP_DB, startDoltRemoteFleet, type DoltRemoteFleet } from '../../sandbox/dolt-remote';
import { SqlWriter } from '../../sandbox/sql-writer';
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

  beforeAll(async () => {
    fleet = await startDoltRemoteFleet({ cluster: 'dolt-remote' });
    inventory = fleet.writeInventory(undefined, { policy: { catchUpTimeoutMs: 15_000, verifyTimeoutMs: 20_000 } });
    tw = await startTestWorker({ inventory: () => loadInventory(inventory) });
  });
  afterAll(async () => {
    await tw?.stop();
    await fleet?.stop();
  });

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

  it('switches over through the CLI under a writer: fence, push, promote, re-point; no acknowledged commit lost, never two writable nodes', async () => {
    const old = await primaryNow();
    const to = fleet.nodes.find((n) => n !== old)!;
    const writer = new SqlWriter(fleet.nodes, fleet.appUser, fleet.appPassword).start();
    const samples: string[][] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const st = await fleet.state();
        samples.push(Object.entries(st).filter(([, s]) => s && !s.readOnly).map(([id]) => id));
        await sleep(100);
      }
    })();
    await sleep(700);

    const cli = await runCli(['switchover', '--cluster', fleet.cluster, '--to', to.id, '--wait', '--inventory', inventory, '--address', tw.address, '--task-queue', tw.taskQueue]);
    expect(cli.code, cli.out + cli.err).toBe(0);
    expect(cli.out).toContain(`switched over ${fleet.cluster} through remote origin: ${old.id} -> ${to.id}`);
    expect(cli.out).toMatch(/write pause \(fence to promotion\): \d+ ms/);
    await sleep(700);
    const stats = await writer.stop();
    await writer.close();
    sampling = false;
    await sampler;

    const st = await fleet.state();
    expect(st[to.id]).toEqual({ readOnly: false, push: 'origin', pull: '' });
    for (const n of fleet.nodes.filter((x) => x !== to)) expect(st[n.id]).toEqual({ readOnly: true, push: '', pull: 'origin' });
    expect(stats.acked).toBeGreaterThan(0);
    expect(writer.primariesSeen).toEqual([old.id, to.id]);
    for (const n of fleet.nodes) expect(await writer.missingOn(n), `acknowledged commits missing on ${n.id}`).toEqual([]);
    expect(samples.length).toBeGreaterThan(5);
    expect(samples.filter((s) => s.length > 1)).toEqual([]);

    const io = captureIO();
    const s = await runStatus({ cluster: fleet.cluster, json: true, inventory, address: tw.address }, io);
    expect(s.clusters![0]).toMatchObject({ primaries: [to.id], problems: [] });
    for (const n of s.clusters![0].nodes.filter((x) => x.node !== to.id)) expect(n).toMatchObject({ role: 'replica', lagCommits: 0 });
    console.log(`dolt remote switchover: ${stats.acked} acked commits, longest gap between acks ${stats.maxGapMs.toFixed(0)} ms`);
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
    expect(io.text()).toMatch(/already the primary/);
    expect(await fleet.state()).toEqual(before);
    const other = fleet.nodes.find((n) => n !== p)!;
    const plan = await runSwitchover({ cluster: fleet.cluster, to: other.id, dryRun: true, wait: true, json: true, inventory, address: tw.address, taskQueue: tw.taskQueue }, captureIO());
    const rep = plan.report as unknown as DoltRemoteSwitchoverReport;
    expect(rep).toMatchObject({ topology: 'remote-replicas', dryRun: true, oldPrimary: p.id, newPrimary: other.id });
    expect(rep.plan).toEqual(expect.arrayContaining([expect.stringContaining(`push every branch of ${p.id} to origin`), expect.stringContaining(`restart ${p.id} read-only`)]));
    expect(await fleet.state()).toEqual(before);
  });
});
