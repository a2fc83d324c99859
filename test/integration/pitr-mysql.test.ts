/**
 * Point-in-time recovery end to end (real Temporal, two real mariadbd, mariadb-binlog): the binlog archiver
 * streams the primary's binlog into the store while rows are written, follows a switchover to the other node
 * (no gap, no duplicate in the archived GTIDs), and restores into scratch servers to a GTID after the
 * switchover and to a time before it are exact: every acknowledged row up to the target present, none after.
 * Targets out of range are refused with one line before anything is restored. Segments are stored encrypted.
 */
import { readFileSync, rmSync, writeFileSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listSegments } from '../../activities/backup/archive';
import { MARIADB_BACKUP_GRANTS } from '../../activities/backup/mysql';
import { LocalDirStorage } from '../../activities/backup/storage';
import { runBackupArchive, runBackupRestore, runBackupRun, type ArchiveStatusView } from '../../client/commands/backup';
import { runSwitchover } from '../../client/commands/switchover';
import { parseGtid, parseGtidPos, posCovers } from '../../core/backup/binlog';
import { loadInventory } from '../../inventory/load';
import { withBackupBlock } from '../../sandbox/backup';
import { APP_SCHEMA, startMariaFleet, type MariaFleet } from '../../sandbox/mariadb';
import { sleep } from '../../sandbox/ports';
import { captureIO, startTestWorker, type TestWorker } from '../helpers';

interface Ack {
  id: number;
  gtid: string;
  ts: number;
}

describe('point-in-time recovery: MariaDB', () => {
  let fleet: MariaFleet;
  let tw: TestWorker;
  let inventory: string;
  let dir: string;
  const cluster = 'pitr-maria';
  const opts = () => ({ address: tw.address, taskQueue: tw.taskQueue, inventory, json: true });
  const acks: Ack[] = [];
  let next = 1;

  /** Sequential writes on node `i` (root over its socket): each row acknowledged with its GTID and its server timestamp. */
  async function write(i: number, n: number, gapMs = 0) {
    const conn = await mysql.createConnection({ socketPath: fleet.nodes[i].socket, user: 'root' });
    try {
      for (let k = 0; k < n; k++) {
        const id = next++;
        await conn.query(`INSERT INTO ${APP_SCHEMA}.pitr (id, ts) VALUES (?, NOW())`, [id]);
        const [[r]] = (await conn.query(`SELECT @@last_gtid AS g, UNIX_TIMESTAMP(ts) AS ts FROM ${APP_SCHEMA}.pitr WHERE id = ?`, [id])) as unknown as [[{ g: string; ts: number }]];
        acks.push({ id, gtid: r.g, ts: Number(r.ts) });
        if (gapMs) await sleep(gapMs);
      }
    } finally {
      await conn.end();
    }
  }

  async function restoredIds(socket: string): Promise<number[]> {
    const conn = await mysql.createConnection({ socketPath: socket, user: 'root' });
    try {
      const [rows] = (await conn.query(`SELECT id FROM ${APP_SCHEMA}.pitr ORDER BY id`)) as unknown as [{ id: number }[]];
      return rows.map((r) => Number(r.id));
    } finally {
      await conn.end();
    }
  }

  const scratchDirs: string[] = [];
  beforeAll(async () => {
    fleet = await startMariaFleet({ cluster, replicas: 1 });
    dir = mkdtempSync(path.join(os.tmpdir(), 'handover-pitr-'));
    inventory = path.join(fleet.baseDir, 'inventory.yaml');
    // Encrypted at rest: the archived segments too.
    process.env.HANDOVER_TEST_PITR_K1 = 'b'.repeat(64);
    writeFileSync(inventory, withBackupBlock(fleet.inventoryYaml(), dir, 3, 'zstd', { encryption: '{ keys: [ { id: k1, key: { env: HANDOVER_TEST_PITR_K1 } } ] }' }));
    await fleet.sql(0, `GRANT ${MARIADB_BACKUP_GRANTS.join(', ')} ON *.* TO 'handover'@'127.0.0.1'`);
    await fleet.sql(0, `CREATE TABLE ${APP_SCHEMA}.pitr (id INT PRIMARY KEY, ts DATETIME NOT NULL) ENGINE=InnoDB`);
    await fleet.waitForReplication(0);
    tw = await startTestWorker({ inventory: () => loadInventory(inventory) });
  });
  afterAll(async () => {
    if (tw) await runBackupArchive({ ...opts(), cluster, action: 'stop' }, captureIO()).catch(() => undefined);
    for (const d of scratchDirs) {
      try {
        process.kill(Number(readFileSync(path.join(d, 'mysqld.pid'), 'utf8')), 'SIGKILL');
      } catch {
        /* gone */
      }
      rmSync(d, { recursive: true, force: true });
    }
    await tw?.stop();
    await fleet?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('archives across a switchover with no gap or duplicate, and restores to a GTID and to a time exactly', async () => {
    const started = await runBackupArchive({ ...opts(), cluster, action: 'start', runMs: 20_000, segmentMs: 300 }, captureIO());
    expect(started.exitCode).toBe(0);
    await write(0, 10);
    await fleet.waitForReplication(0);
    const bio = captureIO();
    const b = await runBackupRun({ ...opts(), cluster, wait: true }, bio);
    expect(b.exitCode, bio.text()).toBe(0);
    const baseGtid = b.report!.take.position.gtid!;
    // Writes in two seconds apart, so a time target falls between them.
    await write(0, 5);
    await sleep(1100);
    await write(0, 5);
    await sleep(1100);
    const sio = captureIO();
    const sw = await runSwitchover({ ...opts(), cluster, to: fleet.nodes[1].id, wait: true }, sio);
    expect(sw.exitCode, sio.text()).toBe(0);
    await write(1, 5);
    let status: ArchiveStatusView | undefined;
    const waitFor = async (what: string, ok: (s: ArchiveStatusView) => boolean) => {
      for (const until = Date.now() + 30_000; ; ) {
        status = (await runBackupArchive({ ...opts(), cluster, action: 'status' }, captureIO())).status;
        if (status && ok(status)) return;
        if (Date.now() > until) throw new Error(`archive: ${what}: ${JSON.stringify(status)}`);
        await sleep(200);
      }
    };
    // The archiver follows the new primary (detected within a second)...
    await waitFor('follows the new primary', (s) => s.primary === fleet.nodes[1].id);
    await write(1, 5);
    // ... and catches up with it.
    const storage = new LocalDirStorage(dir);
    const [p] = await fleet.sql<{ pos: string }[]>(1, 'SELECT @@gtid_binlog_pos AS pos');
    await waitFor(`reaches ${p.pos}`, (s) => !!s.archivedPos && posCovers(parseGtidPos(s.archivedPos), parseGtidPos(p.pos)));
    expect(status!.running).toBe(true);
    expect(status!.lagTransactions).toBe(0);
    const segs = await listSegments(storage, cluster);
    expect(new Set(segs.map((s) => s.node))).toEqual(new Set([fleet.nodes[0].id, fleet.nodes[1].id]));
    // Every segment continues exactly where the previous one ended: no gap, no duplicate.
    for (let i = 1; i < segs.length; i++) expect(segs[i].startAfter, `segment ${segs[i].seq}`).toBe(segs[i - 1].endPos);
    for (const s of segs) {
      expect(parseGtid(s.lastGtid).seq - parseGtid(s.firstGtid).seq + 1).toBe(s.transactions);
      expect(s.artifact.encryption?.keyId).toBe('k1');
      expect(readFileSync(path.join(dir, cluster, 'binlog-archive', s.artifact.file)).subarray(0, 8).toString('latin1')).toBe('HNDENC01');
    }
    expect(acks.length).toBeGreaterThan(0);

    // To a GTID after the switchover: rows 1..25 exactly.
    const k = acks[24];
    const gio = captureIO();
    const g = await runBackupRestore({ ...opts(), cluster, toGtid: k.gtid, scratch: true }, gio);
    expect(g.exitCode, gio.text()).toBe(0);
    const gr = (g as { report?: { restored: { socket: string; dir: string }; plan: { base: string; baseGtid: string }; replay: { endPos: string; transactions: number } } }).report!;
    scratchDirs.push(gr.restored.dir);
    expect(gr.plan.baseGtid).toBe(baseGtid);
    expect(gr.replay.transactions).toBeGreaterThan(0);
    expect(await restoredIds(gr.restored.socket)).toEqual(acks.filter((a) => a.id <= k.id).map((a) => a.id));

    // To a time between the two bursts before the switchover: the rows stamped at or before it, none after.
    const t = acks[14].ts; // the last row of the first burst after the base
    const tio = captureIO();
    const tr = await runBackupRestore({ ...opts(), cluster, toTime: new Date(t * 1000).toISOString(), scratch: true }, tio);
    expect(tr.exitCode, tio.text()).toBe(0);
    const trr = (tr as { report?: { restored: { socket: string; dir: string } } }).report!;
    scratchDirs.push(trr.restored.dir);
    const want = acks.filter((a) => a.ts <= t).map((a) => a.id);
    expect(want.length).toBeGreaterThan(10);
    expect(want.length).toBeLessThan(acks.length);
    expect(await restoredIds(trr.restored.socket)).toEqual(want);

    // Out of range: refused in one line, nothing restored.
    const late = captureIO();
    const lr = await runBackupRestore({ ...opts(), cluster, toGtid: `0-${fleet.nodes[1].serverId}-999999`, scratch: true, json: false }, late);
    expect(lr.exitCode).toBe(2);
    expect(late.text()).toMatch(/after the archive's end/);
    const early = captureIO();
    const er = await runBackupRestore({ ...opts(), cluster, toTime: '2001-01-01T00:00:00Z', scratch: true, json: false }, early);
    expect(er.exitCode).toBe(2);
    expect(early.text()).toMatch(/before the oldest usable base/);
  }, 120_000);
});
