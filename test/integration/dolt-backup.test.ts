/**
 * Dolt backups against a real `dolt sql-server` cluster (a primary/standby pair) and the real Temporal dev
 * server: `handover backup run` takes from the standby with CALL dolt_backup('sync-url', …), stores the backup
 * directories (tar, gzip) with a manifest of every database's dolt_hashof_db(), verifies by restoring into a
 * scratch dolt sql-server and comparing the hashes, lists it good, prunes to `keep`; restore --scratch leaves a
 * server whose databases have the source's hashes and rows; a changed stored byte fails verification.
 * Skipped, saying so, only when no dolt binary is found.
 */
import { readFileSync, rmSync, writeFileSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadInventory } from '../../inventory/load';
import { runBackupList, runBackupRestore, runBackupRun, runBackupVerify } from '../../client/commands/backup';
import { DOLT_APP_DB, DOLT_NOT_FOUND, doltBinary, startDoltFleet, type DoltFleet } from '../../sandbox/dolt';
import { sleep } from '../../sandbox/ports';
import { captureIO, startTestWorker, type TestWorker } from '../helpers';

const bin = doltBinary();
if (!bin) console.log(`SKIPPED: the Dolt backup tests (test/integration/dolt-backup.test.ts): ${DOLT_NOT_FOUND}`);

describe.skipIf(!bin)('Dolt backups: dolt_backup sync, verified in a scratch dolt sql-server', () => {
  let fleet: DoltFleet;
  let tw: TestWorker;
  let inventory: string;
  let dir: string;
  const opts = () => ({ inventory, address: tw.address, taskQueue: tw.taskQueue, cluster: fleet.cluster });

  beforeAll(async () => {
    fleet = await startDoltFleet({ cluster: 'dolt-bk' });
    dir = mkdtempSync(path.join(os.tmpdir(), 'handover-dolt-backups-'));
    inventory = fleet.writeInventory(undefined, { backup: [`storage: { type: local, dir: ${dir} }`, 'keep: 2'] });
    await fleet.sql(0, 'CREATE DATABASE shop');
    await fleet.sql(0, 'CREATE TABLE items (id INT PRIMARY KEY, note VARCHAR(64))', [], 'shop');
    const values = Array.from({ length: 2000 }, (_, i) => `(${i}, 'note-${i}')`);
    await fleet.sql(0, `INSERT INTO items VALUES ${values.join(',')}`, [], 'shop');
    await fleet.sql(0, "CALL dolt_commit('-Am', 'items')", [], 'shop');
    await fleet.sql(0, `INSERT INTO acks VALUES ${Array.from({ length: 300 }, (_, i) => `('k${i}', ${i})`).join(',')}`, [], DOLT_APP_DB);
    await fleet.waitForReplication(0);
    tw = await startTestWorker({ inventory: () => loadInventory(inventory) });
  });
  afterAll(async () => {
    await tw?.stop();
    await fleet?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  let first = '';

  it('backs up the standby, verifies it in a scratch server (database hashes equal), and restore --scratch has the same data', async () => {
    const [n1, n2] = fleet.nodes;
    const io = captureIO();
    const r = await runBackupRun({ ...opts(), wait: true }, io);
    expect(r.exitCode, io.text()).toBe(0);
    const rep = r.report!;
    first = rep.id;
    expect(rep).toMatchObject({ node: n2.id, fromPrimary: false });
    expect(rep.verification.checks.join(' ')).toMatch(/dolt_hashof_db\(\) of 2 database\(s\) match \(handover_app, shop\)/);
    const manifest = JSON.parse(readFileSync(path.join(dir, fleet.cluster, rep.id, 'manifest.json'), 'utf8'));
    const hashOf = async (node: number, db: string) => (await fleet.sql<{ h: string }[]>(node, 'SELECT dolt_hashof_db() AS h', [], db))[0].h;
    expect(manifest).toMatchObject({ engine: 'dolt', node: n2.id, artifact: { file: `dolt-backup.tar.${manifest.artifact.compression === 'zstd' ? 'zst' : 'gz'}` }, content: { dolt: { databases: { shop: await hashOf(0, 'shop'), [DOLT_APP_DB]: await hashOf(0, DOLT_APP_DB) } } } });
    expect(JSON.stringify(manifest)).not.toContain(fleet.handoverPassword);
    expect((await runBackupList(opts(), captureIO())).backups).toEqual([expect.objectContaining({ id: rep.id, state: 'good' })]);

    const rio = captureIO();
    const restored = await runBackupRestore({ ...opts(), id: rep.id, scratch: true }, rio);
    expect(restored.exitCode, rio.text()).toBe(0);
    const res = (restored as { report?: { address?: string; dir?: string } }).report!;
    const [host, port] = res.address!.split(':');
    const conn = await mysql.createConnection({ host, port: Number(port), user: 'root' });
    try {
      await conn.query('USE shop');
      const [[c]] = (await conn.query('SELECT COUNT(*) AS n, dolt_hashof_db() AS h FROM items')) as unknown as [[{ n: number; h: string }]];
      expect(Number(c.n)).toBe(2000);
      expect(c.h).toBe(await hashOf(1, 'shop'));
      const [log] = (await conn.query("SELECT message FROM dolt_log LIMIT 1")) as unknown as [{ message: string }[]];
      expect(log[0].message).toBe('items');
      await conn.query(`USE ${DOLT_APP_DB}`);
      const [[a]] = (await conn.query('SELECT COUNT(*) AS n FROM acks')) as unknown as [[{ n: number }]];
      expect(Number(a.n)).toBe(300);
    } finally {
      await conn.end();
      process.kill(Number(readFileSync(path.join(res.dir!, 'dolt.pid'), 'utf8')), 'SIGKILL');
      await sleep(200);
      rmSync(res.dir!, { recursive: true, force: true });
    }
    expect(n1.running()).toBe(true);
  });

  it('a flipped stored byte fails verification (sha256); restored, it verifies again', async () => {
    const m = JSON.parse(readFileSync(path.join(dir, fleet.cluster, first, 'manifest.json'), 'utf8')) as { artifact: { file: string } };
    const file = path.join(dir, fleet.cluster, first, m.artifact.file);
    const saved = readFileSync(file);
    const flipped = Buffer.from(saved);
    flipped[flipped.length - 20] ^= 0x80;
    writeFileSync(file, flipped);
    const io = captureIO();
    expect((await runBackupVerify({ ...opts(), id: first }, io)).exitCode).toBe(1);
    expect(io.text()).toMatch(/VerificationFailed.*sha256/);
    writeFileSync(file, saved);
    expect((await runBackupVerify({ ...opts(), id: first }, captureIO())).exitCode).toBe(0);
  });

  it('a manifest hash that differs from the restored database fails verification on content', async () => {
    const mfile = path.join(dir, fleet.cluster, first, 'manifest.json');
    const saved = readFileSync(mfile, 'utf8');
    const m = JSON.parse(saved);
    m.content.dolt.databases.shop = '0'.repeat(32);
    writeFileSync(mfile, JSON.stringify(m));
    const io = captureIO();
    expect((await runBackupVerify({ ...opts(), id: first }, io)).exitCode).toBe(1);
    expect(io.text()).toMatch(/database shop: dolt_hashof_db\(\) \S+ after restore, manifest says 0{32}/);
    writeFileSync(mfile, saved);
    expect((await runBackupVerify({ ...opts(), id: first }, captureIO())).exitCode).toBe(0);
  });

  it('retention keeps the newest 2 good backups', async () => {
    for (let i = 0; i < 2; i++) {
      await fleet.sql(0, 'INSERT INTO acks VALUES (?, ?)', [`more-${i}`, i], DOLT_APP_DB);
      await fleet.waitForReplication(0);
      const io = captureIO();
      expect((await runBackupRun({ ...opts(), wait: true }, io)).exitCode, io.text()).toBe(0);
    }
    const list = (await runBackupList(opts(), captureIO())).backups!;
    expect(list).toHaveLength(2);
    expect(list.every((b) => b.state === 'good')).toBe(true);
    expect(list.map((b) => b.id)).not.toContain(first);
  });
});
