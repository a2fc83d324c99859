/**
 * MariaDB backups end to end (real Temporal, three real mariadbd): a populated cluster backed up from a replica
 * with mariadb-dump, restored into a fresh server with every table's rows and CHECKSUM TABLE equal; a changed
 * byte inside the dump (sha256 updated to match) fails verification on content; a backup interrupted by
 * SIGKILLing the worker process leaves nothing listed good, and the retried run completes.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync, readdirSync, rmSync, writeFileSync, mkdtempSync } from 'node:fs';
import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { Client, Connection } from '@temporalio/client';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnWorkerProcess } from '../../bench/lab';
import { MARIADB_BACKUP_GRANTS } from '../../activities/backup/mysql';
import { startScratchMaria } from '../../activities/backup/scratch-mysql';
import { runBackupList, runBackupRestore, runBackupRun, runBackupVerify } from '../../client/commands/backup';
import { operationWorkflowId } from '../../core/ids';
import { loadInventory } from '../../inventory/load';
import { APP_SCHEMA, startMariaFleet, type MariaFleet } from '../../sandbox/mariadb';
import { sleep } from '../../sandbox/ports';
import { captureIO, startTestWorker, type TestWorker } from '../helpers';
import { withBackupBlock } from '../../sandbox/backup';

type Fp = Record<string, { rows: number; checksum: string }>;

async function fingerprint(q: (sql: string) => Promise<unknown>): Promise<Fp> {
  const tables = (await q(`SELECT CONCAT(TABLE_SCHEMA, '.', TABLE_NAME) AS t FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA IN ('${APP_SCHEMA}', 'shop') ORDER BY 1`)) as { t: string }[];
  const out: Fp = {};
  for (const { t } of tables) {
    const [n] = (await q(`SELECT COUNT(*) AS n FROM ${t}`)) as { n: number }[];
    const [c] = (await q(`CHECKSUM TABLE ${t}`)) as { Checksum: number }[];
    out[t] = { rows: Number(n.n), checksum: String(c.Checksum) };
  }
  return out;
}

describe('backup: MariaDB', () => {
  let fleet: MariaFleet;
  let tw: TestWorker;
  let inventory: string;
  let dir: string;
  const cluster = 'bk-maria';
  const opts = () => ({ address: tw.address, taskQueue: tw.taskQueue, inventory, json: true });

  beforeAll(async () => {
    fleet = await startMariaFleet({ cluster });
    dir = mkdtempSync(path.join(os.tmpdir(), 'handover-backups-'));
    inventory = path.join(fleet.baseDir, 'inventory.yaml');
    writeFileSync(inventory, withBackupBlock(fleet.inventoryYaml(), dir, 3));
    await fleet.sql(0, `GRANT ${MARIADB_BACKUP_GRANTS.join(', ')} ON *.* TO 'handover'@'127.0.0.1'`);
    await fleet.sql(0, 'CREATE DATABASE shop');
    await fleet.sql(0, 'CREATE TABLE shop.items (id INT PRIMARY KEY, note VARCHAR(64), price DECIMAL(10,2), data BLOB NULL, at DATETIME(6)) ENGINE=InnoDB');
    await fleet.sql(0, 'CREATE TABLE shop.empty_one (id INT PRIMARY KEY) ENGINE=InnoDB');
    const values: string[] = [];
    for (let i = 0; i < 3000; i++) values.push(`(${i}, 'note-${String(i).padStart(5, '0')}', ${i}.25, ${i % 7 === 0 ? 'NULL' : `UNHEX('00ff${(i % 256).toString(16).padStart(2, '0')}')`}, '2026-01-01 00:00:00.${String(i).padStart(6, '0')}')`);
    await fleet.sql(0, `INSERT INTO shop.items VALUES ${values.join(',')}`);
    for (let i = 0; i < 500; i++) values[i] = `('k${i}', ${i})`;
    await fleet.sql(0, `INSERT INTO ${APP_SCHEMA}.acks (k, v) VALUES ${values.slice(0, 500).join(',')}`);
    await fleet.waitForReplication(0);
    tw = await startTestWorker({ inventory: () => loadInventory(inventory) });
  });
  afterAll(async () => {
    await tw?.stop();
    await fleet?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  let first = '';

  it('backs up a replica with mariadb-dump (GTID recorded), and a fresh server restored from it has every table equal', async () => {
    const io = captureIO();
    const r = await runBackupRun({ ...opts(), cluster, wait: true }, io);
    expect(r.exitCode, io.text()).toBe(0);
    const rep = r.report!;
    first = rep.id;
    expect(rep.node).not.toBe(`${cluster}-1`);
    expect(rep.fromPrimary).toBe(false);
    const st = await fleet.state();
    expect(rep.take.position.gtid).toBe(st[`${cluster}-1`].gtidBinlogPos);
    // The replica's SQL thread, stopped for the dump, runs again.
    expect(st[rep.node]).toMatchObject({ io: 'Yes', sql: 'Yes' });
    const manifest = JSON.parse(readFileSync(path.join(dir, cluster, rep.id, 'manifest.json'), 'utf8'));
    expect(manifest.content.mysql.consistent).toBe(true);
    expect(manifest.content.mysql.tables.map((t: { table: string; rows: number }) => `${t.table}:${t.rows}`)).toEqual([`${APP_SCHEMA}.acks:500`, 'shop.empty_one:0', 'shop.items:3000']);
    expect(manifest.tool).toMatchObject({ name: 'mariadb-dump', exitStatus: 0 });
    expect(manifest.tool.args).toEqual(expect.arrayContaining(['--single-transaction', '--gtid']));
    expect(JSON.stringify(manifest)).not.toContain(fleet.handoverPassword);

    const want = await fingerprint((q) => fleet.sql(0, q));
    const rio = captureIO();
    const restored = await runBackupRestore({ ...opts(), cluster, id: rep.id, scratch: true }, rio);
    expect(restored.exitCode, rio.text()).toBe(0);
    const res = (restored as { report?: { socket?: string; dir?: string } }).report!;
    const conn = await mysql.createConnection({ socketPath: res.socket!, user: 'root' });
    try {
      const got = await fingerprint(async (q) => (await conn.query(q))[0]);
      expect(got).toEqual(want);
      expect(Object.keys(got)).toHaveLength(3);
    } finally {
      await conn.end();
      const pid = Number(readFileSync(path.join(res.dir!, 'mysqld.pid'), 'utf8'));
      process.kill(pid, 'SIGKILL');
      await sleep(200);
      rmSync(res.dir!, { recursive: true, force: true });
    }
  });

  it('a changed byte inside the dump fails verification on content even with the sha256 updated; a flipped byte fails on sha256', async () => {
    const file = path.join(dir, cluster, first, 'dump.sql.gz');
    const mfile = path.join(dir, cluster, first, 'manifest.json');
    const saved = readFileSync(file);
    const savedManifest = readFileSync(mfile, 'utf8');
    const sql = gunzipSync(saved).toString('latin1');
    const at = sql.indexOf("'note-01234'");
    expect(at).toBeGreaterThan(0);
    const tampered = gzipSync(Buffer.from(sql.slice(0, at) + "'note-01235'" + sql.slice(at + 12), 'latin1'));
    writeFileSync(file, tampered);
    const m = JSON.parse(savedManifest);
    m.artifact.sha256 = createHash('sha256').update(tampered).digest('hex');
    m.artifact.size = tampered.length;
    writeFileSync(mfile, JSON.stringify(m));
    const io = captureIO();
    expect((await runBackupVerify({ ...opts(), cluster, id: first }, io)).exitCode).toBe(1);
    expect(io.text()).toMatch(/VerificationFailed.*shop\.items: CHECKSUM TABLE/);

    writeFileSync(mfile, savedManifest);
    const flipped = Buffer.from(saved);
    flipped[flipped.length - 20] ^= 0x80;
    writeFileSync(file, flipped);
    const io2 = captureIO();
    expect((await runBackupVerify({ ...opts(), cluster, id: first }, io2)).exitCode).toBe(1);
    expect(io2.text()).toMatch(/VerificationFailed.*sha256/);
    expect((await runBackupList({ ...opts(), cluster }, captureIO())).backups).toEqual([expect.objectContaining({ id: first, state: 'failed' })]);
    writeFileSync(file, saved);
    expect((await runBackupVerify({ ...opts(), cluster, id: first }, captureIO())).exitCode).toBe(0);
  });

  it('a backup interrupted by killing the worker mid-stream leaves nothing listed good; the retried run completes', async () => {
    const taskQueue = `bk-kill-${randomUUID()}`;
    let out = '';
    const env = { HANDOVER_TEMPORAL_ADDRESS: tw.address, HANDOVER_INVENTORY: inventory, HANDOVER_TASK_QUEUE: taskQueue };
    const doomed = spawnWorkerProcess({ ...env, HANDOVER_FAILPOINT: 'inside:takeBackup.streaming' }, (t) => (out += t));
    const io = captureIO();
    const started = await runBackupRun({ ...opts(), taskQueue, cluster }, io);
    expect(started.exitCode, io.text()).toBe(0);
    const exit = await doomed.exited;
    expect(exit.signal, out).toBe('SIGKILL');

    const during = (await runBackupList({ ...opts(), cluster }, captureIO())).backups!;
    const interrupted = during.find((b) => b.id !== first)!;
    expect(interrupted).toMatchObject({ state: 'incomplete' });
    expect(during.filter((b) => b.state === 'good').map((b) => b.id)).toEqual([first]);
    expect(readdirSync(path.join(dir, cluster, interrupted.id)).some((f) => /\.tmp-/.test(f))).toBe(true);

    const healthy = spawnWorkerProcess(env, (t) => (out += t));
    const connection = await Connection.connect({ address: tw.address });
    try {
      const report = (await new Client({ connection }).workflow.getHandle(operationWorkflowId(cluster)).result()) as { id: string; verification: { ok: boolean } };
      expect(report.id).toBe(interrupted.id);
      expect(report.verification.ok).toBe(true);
    } finally {
      await connection.close();
      await healthy.stop();
    }
    const after = (await runBackupList({ ...opts(), cluster }, captureIO())).backups!;
    expect(after.map((b) => `${b.id}:${b.state}`)).toEqual([`${interrupted.id}:good`, `${first}:good`]);
    expect(readdirSync(path.join(dir, cluster, interrupted.id)).sort()).toEqual(['dump.sql.gz', 'manifest.json', 'verification.json']);
    await fleet.waitForReplication(0); // the replica whose SQL thread was stopped when the worker died applies again
  });

  it('from the primary when asked (flagged fromPrimary); restore refused on a node with data, complete into an empty node', async () => {
    const io = captureIO();
    const r = await runBackupRun({ ...opts(), cluster, node: `${cluster}-1`, wait: true }, io);
    expect(r.exitCode, io.text()).toBe(0);
    expect(r.report).toMatchObject({ node: `${cluster}-1`, fromPrimary: true, verification: { ok: true } });
    const id = r.report!.id;

    const before = await fleet.state();
    const rio = captureIO();
    expect((await runBackupRestore({ ...opts(), cluster, id, to: `${cluster}-3` }, rio)).exitCode).toBe(2);
    expect(rio.text()).toMatch(/TargetNotEmpty.*already has schemas/);
    expect((await fleet.state())[`${cluster}-3`]).toEqual(before[`${cluster}-3`]);

    // An empty server, provisioned with the automation account (rights to create what the dump creates).
    const empty = await startScratchMaria('empty-node');
    try {
      const root = await empty.root();
      await root.query(`CREATE USER 'handover'@'127.0.0.1' IDENTIFIED BY '${fleet.handoverPassword}'`);
      await root.query("GRANT ALL PRIVILEGES ON *.* TO 'handover'@'127.0.0.1'");
      await root.query('SET GLOBAL read_only = OFF');
      await root.end();
      writeFileSync(inventory, readFileSync(inventory, 'utf8') + `      - id: ${cluster}-empty\n        host: 127.0.0.1\n        port: ${empty.port}\n`);
      const eio = captureIO();
      const ok = await runBackupRestore({ ...opts(), cluster, id, to: `${cluster}-empty` }, eio);
      expect(ok.exitCode, eio.text()).toBe(0);
      const conn = await empty.root();
      try {
        expect(await fingerprint(async (q) => (await conn.query(q))[0])).toEqual(await fingerprint((q) => fleet.sql(0, q)));
      } finally {
        await conn.end();
      }
    } finally {
      await empty.stop();
    }
  });
});
