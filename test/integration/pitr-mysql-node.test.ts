/**
 * Point-in-time restore into a named node (real Temporal, three real mariadbd, mariadb-binlog): the binlog
 * archiver runs while rows are written (each acknowledged with its GTID), a logical backup is taken in between.
 * The primary, a replicating replica, an unknown node and a replica holding data without --replace are refused
 * in one line with nothing changed; a replica detached by the operator (STOP SLAVE) is restored with --replace
 * to a GTID: exactly the acknowledged rows up to it, standalone and read-only, its GTID positions the target's,
 * the primary and the other replica untouched; the report says where the cluster stands. The replay and the
 * finish step run again change nothing (a retried attempt continues after what is in); the same node restored again
 * to an earlier GTID with --writable is left writable, and the ending says the cluster has two writable nodes.
 * A restore into a node to a TIME whose worker process is SIGKILLed between two replayed segments (failpoint
 * inside:replayBinlogs.segment): a healthy worker's retried replay continues after the transactions already in
 * and the node ends with exactly the rows acknowledged at or before that time. While the archiver runs, a second
 * archiver workflow on the same archive (local directory) ends refused, naming the running one. A node restored to
 * a GTID on a physical base (mariadb-backup): its datadir replaced through its local controller, then replayed exactly.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { WorkflowFailedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnWorkerProcess } from '../../bench/lab';
import { backupContext } from '../../activities/backup/context';
import { connectRedis } from '../../activities/redis/conn';
import { MARIADB_BACKUP_GRANTS } from '../../activities/backup/mysql';
import { MARIADB_PHYSICAL_GRANTS } from '../../activities/backup/physical';
import { replayBinlogs } from '../../activities/backup/pitr';
import { ensurePitrNodeFinished } from '../../activities/backup/pitr-node';
import { formatPitrReport, runBackupArchive, runBackupRestore, runBackupRun } from '../../client/commands/backup';
import { runPlan } from '../../client/commands/plan';
import { workflowPollers } from '../../client/workers';
import { archiverWorkflowId } from '../../core/ids';
import { parseGtidPos, posCovers } from '../../core/backup/binlog';
import { PITR_LOGICAL_PRIVILEGES, PITR_NODE_PRIVILEGES } from '../../core/backup/pitr-node';
import { loadInventory } from '../../inventory/load';
import { withBackupBlock } from '../../sandbox/backup';
import { APP_SCHEMA, startMariaFleet, type MariaFleet } from '../../sandbox/mariadb';
import type { PitrRestoreReport } from '../../workflows/pitr';
import { captureIO, startTestWorker, until, type TestWorker } from '../helpers';

interface Ack {
  id: number;
  gtid: string;
  /** The row's server timestamp (its transaction's binlog timestamp), epoch seconds. */
  ts: number;
}

describe('point-in-time restore into a node: MariaDB', () => {
  let fleet: MariaFleet;
  let tw: TestWorker;
  let inventory: string;
  let dir: string;
  const cluster = 'pitr-node';
  const opts = () => ({ address: tw.address, taskQueue: tw.taskQueue, inventory, json: true });
  const acks: Ack[] = [];
  let next = 1;

  async function write(n: number) {
    const conn = await mysql.createConnection({ socketPath: fleet.nodes[0].socket, user: 'root' });
    try {
      for (let k = 0; k < n; k++) {
        const id = next++;
        await conn.query(`INSERT INTO ${APP_SCHEMA}.pitr (id, ts) VALUES (?, NOW())`, [id]);
        const [[r]] = (await conn.query(`SELECT @@last_gtid AS g, UNIX_TIMESTAMP(ts) AS ts FROM ${APP_SCHEMA}.pitr WHERE id = ?`, [id])) as unknown as [[{ g: string; ts: number }]];
        acks.push({ id, gtid: r.g, ts: Number(r.ts) });
      }
    } finally {
      await conn.end();
    }
  }
  const archiveStatus = async () => (await runBackupArchive({ ...opts(), cluster, action: 'status' }, captureIO())).status!;
  /** Until everything the primary has written is archived (and stored as segments). */
  async function archived() {
    const [p] = await fleet.sql<{ pos: string }[]>(0, 'SELECT @@gtid_binlog_pos AS pos');
    return until(`the archive reaches ${p.pos}`, async () => {
      const s = await archiveStatus();
      return !!s.archivedPos && posCovers(parseGtidPos(s.archivedPos), parseGtidPos(p.pos)) && s;
    });
  }
  const ids = async (i: string | number) => (await fleet.sql<{ id: number }[]>(i, `SELECT id FROM ${APP_SCHEMA}.pitr ORDER BY id`)).map((r) => Number(r.id));

  beforeAll(async () => {
    fleet = await startMariaFleet({ cluster, replicas: 2 });
    dir = mkdtempSync(path.join(os.tmpdir(), 'handover-pitr-node-'));
    inventory = path.join(fleet.baseDir, 'inventory.yaml');
    writeFileSync(inventory, withBackupBlock(fleet.inventoryYaml(), dir, 3, 'zstd'));
    // The dump's grants, and what a point-in-time restore into a node needs (on the primary: replicated everywhere).
    const pitr = [...Object.keys(PITR_NODE_PRIVILEGES), ...PITR_LOGICAL_PRIVILEGES];
    await fleet.sql(0, `GRANT ${[...new Set([...MARIADB_BACKUP_GRANTS, ...pitr])].join(', ')} ON *.* TO 'handover'@'127.0.0.1'`);
    await fleet.sql(0, `CREATE TABLE ${APP_SCHEMA}.pitr (id INT PRIMARY KEY, ts DATETIME NOT NULL) ENGINE=InnoDB`);
    tw = await startTestWorker({ inventory: () => loadInventory(inventory) });
    expect((await runBackupArchive({ ...opts(), cluster, action: 'start', runMs: 20_000, segmentMs: 300 }, captureIO())).exitCode).toBe(0);
    await write(10);
    await fleet.waitForReplication(0);
    const bio = captureIO();
    expect((await runBackupRun({ ...opts(), cluster, wait: true }, bio)).exitCode, bio.text()).toBe(0);
    await write(10);
    await fleet.waitForReplication(0);
    await archived();
  }, 90_000);
  afterAll(async () => {
    if (tw) await runBackupArchive({ ...opts(), cluster, action: 'stop' }, captureIO()).catch(() => undefined);
    await tw?.stop();
    await fleet?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('refuses the primary, a replicating replica, an unknown node and flags without a node, in one line, changing nothing', async () => {
    const before = await fleet.state();
    const k = acks[12].gtid;
    const refused = async (o: Record<string, unknown>, re: RegExp) => {
      const io = captureIO();
      const r = await runBackupRestore({ ...opts(), json: false, cluster, toGtid: k, ...o }, io);
      expect(r.exitCode, io.text()).toBe(2);
      expect(io.errors.length, io.text()).toBe(1);
      expect(io.text()).toMatch(re);
    };
    await refused({ to: fleet.nodes[0].id, replace: true }, new RegExp(`${fleet.nodes[0].id} is the primary of ${cluster}.*nothing was changed`));
    await refused({ to: fleet.nodes[1].id, replace: true }, new RegExp(`${fleet.nodes[1].id} replicates from ${fleet.nodes[0].id} \\(IO Yes, SQL Yes\\): it is part of live replication; detach it first`));
    await refused({ to: 'no-such-node' }, /unknown node "no-such-node"/);
    await refused({ scratch: true, replace: true }, /--replace applies to a point-in-time restore into a node/);
    const after = await fleet.state();
    for (const n of fleet.nodes) expect({ ro: after[n.id].readOnly, io: after[n.id].io, sql: after[n.id].sql, source: after[n.id].source }, n.id).toEqual({ ro: before[n.id].readOnly, io: before[n.id].io, sql: before[n.id].sql, source: before[n.id].source });
  }, 60_000);

  it('restores a detached replica to a GTID exactly, leaves it standalone and read-only, and says where the cluster stands', async () => {
    const [primary, live, target] = fleet.nodes;
    await fleet.sql(target.id, 'STOP SLAVE'); // the operator detaches it
    const k = acks[14];
    // Holding data, without --replace: refused, still as the operator left it.
    const nio = captureIO();
    const nr = await runBackupRestore({ ...opts(), json: false, cluster, toGtid: k.gtid, to: target.id }, nio);
    expect(nr.exitCode, nio.text()).toBe(2);
    expect(nio.text()).toMatch(new RegExp(`TargetNotEmpty.*${target.id} holds schemas ${APP_SCHEMA}.*add --replace`));
    expect((await fleet.state())[target.id].source).toBe(`${primary.host}:${primary.port}`);

    const io = captureIO();
    const r = await runBackupRestore({ ...opts(), cluster, toGtid: k.gtid, to: target.id, replace: true }, io);
    expect(r.exitCode, io.text()).toBe(0);
    const rep = (r as { report?: PitrRestoreReport }).report!;
    expect(rep.replay.transactions).toBeGreaterThan(0);
    expect(rep.replay.endPos).toBe(k.gtid);
    // Exactly the acknowledged rows up to the target, none after.
    expect(acks.length).toBeGreaterThan(15);
    expect(await ids(2)).toEqual(acks.filter((a) => a.id <= k.id).map((a) => a.id));
    const st = (await fleet.state())[target.id];
    expect(st).toMatchObject({ up: true, readOnly: true, gtidBinlogPos: k.gtid, gtidSlavePos: k.gtid });
    expect(st.source).toBeUndefined();
    expect(rep.node).toMatchObject({ node: target.id, readOnly: true, replicating: false, gtidBinlogPos: k.gtid });
    // Where the cluster stands: the primary untouched, the live replica following it, the restored node standalone.
    expect(rep.standing).toMatchObject({ primary: primary.id, changed: false, following: [live.id], notFollowing: [{ node: target.id, reason: expect.stringMatching(/replicates from nobody \(standalone, read-only\)/) }] });
    expect(rep.notes?.join(' ')).toMatch(/switchovers of pitr-node are refused while it stays/);
    const text = formatPitrReport(rep);
    expect(text).toMatch(new RegExp(`into node ${target.id}: standalone \\(no replication\\), read-only, gtid_binlog_pos ${k.gtid}`));
    expect(text).toMatch(new RegExp(`where it stands: primary ${primary.id}\n    following ${primary.id}: ${live.id}\n    NOT following: ${target.id}: it replicates from nobody`));
    await write(2);
    const want = acks.map((a) => a.id);
    await until('the live replica has every acknowledged row', async () => JSON.stringify(await ids(1)) === JSON.stringify(want));
    expect((await fleet.state())[primary.id].readOnly).toBe(false);

    // As the ending says: a switchover is refused while the restored node replicates from nobody (the plan changes nothing).
    const pio = captureIO();
    const plan = await runPlan({ ...opts(), json: false, runbook: 'switchover', cluster }, pio);
    expect(plan.exitCode, pio.text()).toBe(2);
    expect(pio.text()).toMatch(new RegExp(`more than one node replicates from nobody: .*${target.id}`));

    // Run again (a retried attempt): nothing replayed twice, nothing changed.
    const ctx = backupContext({ inventory: () => loadInventory(inventory), connectRedis });
    const again = await replayBinlogs(ctx, { cluster, plan: rep.plan, node: target.id });
    expect(again).toMatchObject({ alreadyReplayed: rep.replay.transactions, endPos: k.gtid, verified: true });
    expect((await ensurePitrNodeFinished(ctx, { cluster, node: target.id, endPos: k.gtid })).changed).toBe(false);
    expect(await ids(2)).toEqual(acks.filter((a) => a.id <= k.id).map((a) => a.id));

    // The restored (standalone) node again, to an earlier GTID, left writable as asked: the ending says what that means.
    const e = acks[11];
    const wio = captureIO();
    const w = await runBackupRestore({ ...opts(), cluster, toGtid: e.gtid, to: target.id, replace: true, writable: true }, wio);
    expect(w.exitCode, wio.text()).toBe(0);
    const wr = (w as { report?: PitrRestoreReport }).report!;
    expect(await ids(2)).toEqual(acks.filter((a) => a.id <= e.id).map((a) => a.id));
    expect((await fleet.state())[target.id]).toMatchObject({ readOnly: false, gtidBinlogPos: e.gtid });
    expect(wr.notes?.join(' ')).toMatch(new RegExp(`${target.id} is WRITABLE besides ${primary.id}: ${cluster} has two writable nodes`));
    expect((await fleet.state())[primary.id].readOnly).toBe(false);
  }, 90_000);

  it('restores a node to a time with its worker killed mid-replay: the retried replay continues and ends exact', async () => {
    const [, , target] = fleet.nodes;
    // As an operator leaves a node to restore (whatever an earlier case left): detached, read-only.
    await fleet.sql(target.id, 'STOP SLAVE');
    await fleet.sql(target.id, 'SET GLOBAL read_only = ON');
    // Two bursts, each archived (its own segment) before the next: the replay has several segments to apply.
    await write(4);
    await archived();
    await write(4);
    await archived();
    const t = acks[acks.length - 1].ts; // T: the last row acknowledged so far; the rows after are stamped later
    await until('the primary\'s clock is past T', async () => (await fleet.sql<{ now: number }[]>(0, 'SELECT UNIX_TIMESTAMP() AS now'))[0].now > t, 5000, 100);
    await write(3);
    await until('the archive is known complete past T', async () => {
      const s = await archived();
      return !!s.coveredUntil && Date.parse(s.coveredUntil) > (t + 1) * 1000;
    });
    const want = acks.filter((a) => a.ts <= t).map((a) => a.id);
    expect(want.length).toBeGreaterThan(10);
    expect(want.length).toBeLessThan(acks.length);

    // A worker process that SIGKILLs itself after the first replayed segment, then a healthy one on the same queue.
    const taskQueue = `pitr-kill-${randomUUID()}`;
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'handover-pitr-kill-'));
    const env = { HANDOVER_TEMPORAL_ADDRESS: tw.address, HANDOVER_INVENTORY: inventory, HANDOVER_TASK_QUEUE: taskQueue, TMPDIR: tmp };
    let out = '';
    const doomed = spawnWorkerProcess({ ...env, HANDOVER_FAILPOINT: 'inside:replayBinlogs.segment' }, (x) => (out += x));
    let healthy: ReturnType<typeof spawnWorkerProcess> | undefined;
    try {
      await until('the doomed worker polls', async () => (await workflowPollers(tw.env.client, taskQueue)).length > 0, 30_000, 200);
      const io = captureIO();
      const running = runBackupRestore({ ...opts(), taskQueue, cluster, toTime: new Date(t * 1000).toISOString(), to: target.id, replace: true }, io);
      const exit = await doomed.exited;
      expect(exit.signal, out).toBe('SIGKILL');
      expect(out).toContain('[failpoint] inside:replayBinlogs.segment: SIGKILL');
      // Killed mid-replay: some of the transactions after the base are in, not all.
      const partial = await ids(target.id);
      expect(partial.length).toBeGreaterThan(10);
      expect(partial.length).toBeLessThan(want.length);
      healthy = spawnWorkerProcess(env, (x) => (out += x));
      const r = await running;
      expect(r.exitCode, io.text() + out.slice(-3000)).toBe(0);
      const rep = (r as { report?: PitrRestoreReport }).report!;
      expect(rep.replay.alreadyReplayed).toBe(partial.length - 10); // the base held rows 1..10
      expect(rep.replay.transactions).toBeGreaterThan(0);
      expect(rep.plan.target).toMatchObject({ untilSec: t });
      // Exactly the rows acknowledged at or before T, none after; standalone, read-only, at the last of them.
      expect(await ids(target.id)).toEqual(want);
      const last = acks.filter((a) => a.ts <= t).at(-1)!;
      expect((await fleet.state())[target.id]).toMatchObject({ readOnly: true, gtidBinlogPos: last.gtid, gtidSlavePos: last.gtid });
    } finally {
      if (doomed.proc.exitCode === null && doomed.proc.signalCode === null) await doomed.stop();
      await healthy?.stop();
      rmSync(tmp, { recursive: true, force: true });
    }
  }, 90_000);

  it('refuses a second archiver on the same archive, naming the running one', async () => {
    const second = await tw.env.client.workflow.start('binlogArchiver', { workflowId: `second-archiver-${cluster}`, taskQueue: tw.taskQueue, args: [{ cluster, runMs: 3000, segmentMs: 300 }] });
    const err = await second.result().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const cause = (err as WorkflowFailedError).cause as { type?: string; message: string };
    expect(cause.type).toBe('ArchiveLeaseHeld');
    expect(cause.message).toMatch(new RegExp(`^refused: the binlog archive of ${cluster} is written by another archiver ${archiverWorkflowId(cluster)} \\(namespace default\\) on [^ ]+, renewed .*; one archiver per cluster`));
    // The running archiver goes on.
    expect((await archiveStatus()).running).toBe(true);
  }, 30_000);

  it('restores a node to a GTID on a physical base: its datadir replaced (stopped, moved back, started by its local controller), then replayed exactly', async () => {
    const [primary, live, target] = fleet.nodes;
    // method: physical, with the local controller that stops and starts the node; mariadb-backup's grants.
    writeFileSync(inventory, withBackupBlock(fleet.inventoryYaml({ controller: true }), dir, 3, 'zstd', { method: 'physical' }));
    await fleet.sql(0, `GRANT ${MARIADB_PHYSICAL_GRANTS.join(', ')} ON *.* TO 'handover'@'127.0.0.1'`);
    // The node the earlier cases left standalone replicates again (a backup refuses two nodes replicating from nobody).
    await fleet.setPrimary(primary.id);
    const bio = captureIO();
    const b = await runBackupRun({ ...opts(), cluster, wait: true }, bio);
    expect(b.exitCode, bio.text()).toBe(0);
    await write(5);
    await archived();
    const k = acks[acks.length - 2]; // after the physical base, not the last row
    await fleet.sql(target.id, 'STOP SLAVE');
    await fleet.sql(target.id, 'SET GLOBAL read_only = ON');
    const pidBefore = target.pid();
    const io = captureIO();
    const r = await runBackupRestore({ ...opts(), cluster, toGtid: k.gtid, to: target.id, replace: true }, io);
    expect(r.exitCode, io.text()).toBe(0);
    const rep = (r as { report?: PitrRestoreReport }).report!;
    expect(rep.plan).toMatchObject({ base: b.report!.id, method: 'physical' });
    expect(rep.replay.transactions).toBeGreaterThan(0);
    expect(rep.replay.endPos).toBe(k.gtid);
    // A physical base replaces the datadir: the node was restarted (a new mariadbd process).
    expect(target.pid()).not.toBe(pidBefore);
    expect(await ids(target.id)).toEqual(acks.filter((a) => a.id <= k.id).map((a) => a.id));
    expect((await fleet.state())[target.id]).toMatchObject({ up: true, readOnly: true, gtidBinlogPos: k.gtid, gtidSlavePos: k.gtid });
    expect(rep.standing).toMatchObject({ primary: primary.id, following: [live.id] });
    // The primary and the live replica untouched: every acknowledged row on both.
    const want = acks.map((a) => a.id);
    expect(await ids(primary.id)).toEqual(want);
    await until('the live replica has every acknowledged row', async () => JSON.stringify(await ids(live.id)) === JSON.stringify(want));
  }, 120_000);
});
