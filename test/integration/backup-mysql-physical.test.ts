/**
 * MariaDB physical backups end to end (real Temporal, three real mariadbd, mariadb-backup, mbstream, zstd): a
 * full backup from a replica (GTID and LSNs in the manifest), an incremental on it, each verified by
 * extracting, preparing and starting a scratch mariadbd and comparing every table's rows and CHECKSUM TABLE;
 * retention keeps the full while the incremental depends on it; a flipped byte fails verification; restore
 * into a scratch server; provision-replica restores a wiped node, sets its gtid_slave_pos from the backup,
 * replicates from the primary and converges (rows written after the backup arrive); the same into S3.
 */
import { createHash, randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MARIADB_BACKUP_GRANTS } from '../../activities/backup/mysql';
import { templateDir } from '../../activities/backup/scratch-mysql';
import { runBackupList, runBackupProvisionReplica, runBackupRestore, runBackupRun, runBackupVerify } from '../../client/commands/backup';
import { loadInventory } from '../../inventory/load';
import { withBackupBlock } from '../../sandbox/backup';
import { APP_SCHEMA, startMariaFleet, type MariaFleet } from '../../sandbox/mariadb';
import { startS3Server } from '../../sandbox/s3';
import { sleep } from '../../sandbox/ports';
import type { BackupReport } from '../../workflows/backup';
import { captureIO, startTestWorker, type TestWorker } from '../helpers';

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

describe('backup: MariaDB physical (mariadb-backup)', () => {
  let fleet: MariaFleet;
  let tw: TestWorker;
  let inventory: string;
  let dir: string;
  const cluster = 'bk-phys';
  const K1 = randomBytes(32).toString('hex');
  const K2 = randomBytes(32).toString('base64');
  const opts = () => ({ address: tw.address, taskQueue: tw.taskQueue, inventory, json: true });
  const insertItems = (from: number, n: number) => {
    const values: string[] = [];
    for (let i = from; i < from + n; i++) values.push(`(${i}, 'note-${String(i).padStart(5, '0')}', ${i}.25, ${i % 7 === 0 ? 'NULL' : `UNHEX('00ff${(i % 256).toString(16).padStart(2, '0')}')`})`);
    return fleet.sql(0, `INSERT INTO shop.items VALUES ${values.join(',')}`);
  };

  beforeAll(async () => {
    fleet = await startMariaFleet({ cluster });
    dir = mkdtempSync(path.join(os.tmpdir(), 'handover-backups-phys-'));
    inventory = path.join(fleet.baseDir, 'inventory.yaml');
    // keep: 1 — retention must still keep the full while an incremental on it is kept. Encrypted with k1.
    process.env.HANDOVER_TEST_BK_K1 = K1;
    process.env.HANDOVER_TEST_BK_K2 = K2;
    writeFileSync(inventory, withBackupBlock(fleet.inventoryYaml({ controller: true }), dir, 1, 'zstd', { method: 'physical', encryption: '{ keys: [ { id: k1, key: { env: HANDOVER_TEST_BK_K1 } } ] }' }));
    await fleet.sql(0, `GRANT ${MARIADB_BACKUP_GRANTS.join(', ')} ON *.* TO 'handover'@'127.0.0.1'`);
    await fleet.sql(0, 'CREATE DATABASE shop');
    await fleet.sql(0, 'CREATE TABLE shop.items (id INT PRIMARY KEY, note VARCHAR(64), price DECIMAL(10,2), data BLOB NULL) ENGINE=InnoDB');
    await fleet.sql(0, 'CREATE TABLE shop.log (id INT AUTO_INCREMENT PRIMARY KEY, msg TEXT) ENGINE=Aria');
    await insertItems(0, 3000);
    await fleet.sql(0, "INSERT INTO shop.log (msg) VALUES ('a'), ('b'), ('c')");
    const acks: string[] = [];
    for (let i = 0; i < 500; i++) acks.push(`('k${i}', ${i})`);
    await fleet.sql(0, `INSERT INTO ${APP_SCHEMA}.acks (k, v) VALUES ${acks.join(',')}`);
    await fleet.waitForReplication(0);
    tw = await startTestWorker({ inventory: () => loadInventory(inventory) });
  });
  afterAll(async () => {
    await tw?.stop();
    await fleet?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  let full = '';
  let inc = '';

  it('a full physical backup from a replica: mbstream through zstd, GTID and LSNs in the manifest, verified in a scratch server', async () => {
    const io = captureIO();
    const r = await runBackupRun({ ...opts(), cluster, wait: true }, io);
    expect(r.exitCode, io.text()).toBe(0);
    const rep = r.report!;
    full = rep.id;
    expect(rep.node).not.toBe(`${cluster}-1`);
    expect(rep.take).toMatchObject({ method: 'physical' });
    expect(rep.take.base).toBeUndefined();
    const st = await fleet.state();
    expect(rep.take.position.gtid).toBe(st[`${cluster}-1`].gtidBinlogPos);
    expect(st[rep.node]).toMatchObject({ io: 'Yes', sql: 'Yes' });
    const m = JSON.parse(readFileSync(path.join(dir, cluster, full, 'manifest.json'), 'utf8'));
    expect(m).toMatchObject({ method: 'physical', artifact: { file: 'backup.mbstream.zst', compression: 'zstd', encryption: { alg: 'aes-256-gcm-framed', keyId: 'k1' } }, tool: { name: 'mariadb-backup', exitStatus: 0 }, physical: { kind: 'full', fromLsn: '0' } });
    expect(Number(m.physical.toLsn)).toBeGreaterThan(0);
    expect(m.physical.slaveInfo).toContain(`gtid_slave_pos = '${rep.take.position.gtid}'`);
    expect(m.physical.binlogInfo).toMatch(/binlog\.\d+\s+\d+/);
    expect(m.content.mysql.consistent).toBe(true);
    expect(m.content.mysql.tables.map((t: { table: string; rows: number }) => `${t.table}:${t.rows}`)).toEqual([`${APP_SCHEMA}.acks:500`, 'shop.items:3000', 'shop.log:3']);
    expect(JSON.stringify(m)).not.toContain(fleet.handoverPassword);
    expect(JSON.stringify(m)).not.toContain(K1);
    // Stored encrypted: neither the zstd frame magic nor an mbstream chunk header is in the clear.
    const stored = readFileSync(path.join(dir, cluster, full, m.artifact.file));
    expect(stored.subarray(0, 8).toString('latin1')).toBe('HNDENC01');
    expect(stored.includes(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))).toBe(false);
    expect(rep.verification.ok).toBe(true);
    expect(rep.verification.checks.join(' ')).toMatch(/extracted, prepared and started in a scratch mariadbd.*3 tables' row counts and CHECKSUM TABLE match; gtid_slave_pos /);
  });

  it('an incremental on the full (LSN from its to_lsn), verified through the chain; retention with keep 1 keeps the full it depends on', async () => {
    await insertItems(3000, 1500);
    await fleet.sql(0, 'UPDATE shop.items SET note = CONCAT(note, "-x") WHERE id % 10 = 0');
    await fleet.sql(0, "INSERT INTO shop.log (msg) VALUES ('d')");
    await fleet.waitForReplication(0);
    // Key rotation: k2 appended; the incremental is encrypted with k2, its base (k1) still decrypts.
    writeFileSync(inventory, readFileSync(inventory, 'utf8').replace('{ keys: [ { id: k1, key: { env: HANDOVER_TEST_BK_K1 } } ] }', '{ keys: [ { id: k1, key: { env: HANDOVER_TEST_BK_K1 } }, { id: k2, key: { env: HANDOVER_TEST_BK_K2 } } ] }'));
    const io = captureIO();
    const r = await runBackupRun({ ...opts(), cluster, incremental: true, wait: true }, io);
    expect(r.exitCode, io.text()).toBe(0);
    const rep: BackupReport = r.report!;
    inc = rep.id;
    expect(rep.take).toMatchObject({ method: 'physical', base: full });
    const fm = JSON.parse(readFileSync(path.join(dir, cluster, full, 'manifest.json'), 'utf8'));
    const m = JSON.parse(readFileSync(path.join(dir, cluster, inc, 'manifest.json'), 'utf8'));
    expect(m).toMatchObject({ base: full, physical: { kind: 'incremental', fromLsn: fm.physical.toLsn }, artifact: { encryption: { keyId: 'k2' } } });
    expect(fm.artifact.encryption.keyId).toBe('k1');
    expect(m.rawSize).toBeLessThan(fm.rawSize);
    expect(rep.verification.checks.join(' ')).toContain(`chain ${full} + ${inc}`);
    expect(rep.kept.sort()).toEqual([full, inc].sort());
    expect(rep.pruned).toEqual([]);
    const listed = (await runBackupList({ ...opts(), cluster }, captureIO())).backups as { id: string; state: string; base?: string; method?: string }[];
    expect(listed.map((b) => `${b.id}:${b.state}:${b.method}:${b.base ?? '-'}`)).toEqual([`${inc}:good:physical:${full}`, `${full}:good:physical:-`]);

    // Restored into a scratch server through the chain: every table equal to the primary now.
    const want = await fingerprint((q) => fleet.sql(0, q));
    const rio = captureIO();
    const restored = await runBackupRestore({ ...opts(), cluster, id: inc, scratch: true }, rio);
    expect(restored.exitCode, rio.text()).toBe(0);
    const res = (restored as { report?: { socket?: string; dir?: string } }).report!;
    const conn = await mysql.createConnection({ socketPath: res.socket!, user: 'root' });
    try {
      expect(await fingerprint(async (q) => (await conn.query(q))[0])).toEqual(want);
    } finally {
      await conn.end();
      const pid = Number(readFileSync(path.join(res.dir!, 'mysqld.pid'), 'utf8'));
      process.kill(pid, 'SIGKILL');
      await sleep(200);
      rmSync(res.dir!, { recursive: true, force: true });
    }
  });

  it('a flipped byte in the full fails verification of the incremental that depends on it (on sha256, and with the sha256 updated, on the frame authentication)', async () => {
    const fm = JSON.parse(readFileSync(path.join(dir, cluster, full, 'manifest.json'), 'utf8'));
    const file = path.join(dir, cluster, full, fm.artifact.file);
    const saved = readFileSync(file);
    const flipped = Buffer.from(saved);
    flipped[Math.floor(flipped.length / 2)] ^= 0x01;
    writeFileSync(file, flipped);
    const io = captureIO();
    expect((await runBackupVerify({ ...opts(), cluster, id: inc }, io)).exitCode).toBe(1);
    expect(io.text()).toMatch(new RegExp(`VerificationFailed.*base ${full}: sha256`));
    const mfile = path.join(dir, cluster, full, 'manifest.json');
    const savedManifest = readFileSync(mfile, 'utf8');
    writeFileSync(mfile, JSON.stringify({ ...fm, artifact: { ...fm.artifact, sha256: createHash('sha256').update(flipped).digest('hex') } }));
    const io2 = captureIO();
    expect((await runBackupVerify({ ...opts(), cluster, id: inc }, io2)).exitCode).toBe(1);
    expect(io2.text()).toMatch(/VerificationFailed.*fails authentication/);
    writeFileSync(mfile, savedManifest);
    writeFileSync(file, saved);
    const ok = captureIO();
    expect((await runBackupVerify({ ...opts(), cluster, id: inc }, ok)).exitCode, ok.text()).toBe(0);
  });

  it('provision-replica: refused on a node with data; a wiped node restored, gtid_slave_pos from the backup, replicating and converged', async () => {
    const node3 = `${cluster}-3`;
    const before = await fleet.state();
    const rio = captureIO();
    expect((await runBackupProvisionReplica({ ...opts(), cluster, node: node3 }, rio)).exitCode).toBe(2);
    expect(rio.text()).toMatch(/TargetNotEmpty.*already replicates/);
    expect((await fleet.state())[node3]).toEqual(before[node3]);

    // Wipe node 3: a fresh datadir with only the automation account (as a newly built host would have).
    const n3 = fleet.nodes[2];
    await n3.stop('SIGTERM');
    rmSync(path.join(n3.dir, 'data'), { recursive: true, force: true });
    cpSync(await templateDir(), path.join(n3.dir, 'data'), { recursive: true });
    await n3.start();
    const root = await n3.root();
    await root.query('SET SESSION sql_log_bin = 0');
    await root.query(`CREATE USER 'handover'@'127.0.0.1' IDENTIFIED BY '${fleet.handoverPassword}'`);
    await root.query("GRANT ALL PRIVILEGES ON *.* TO 'handover'@'127.0.0.1'");
    await root.end();

    // Writes after the newest backup: the new replica must receive them from the primary.
    await insertItems(4500, 700);
    const io = captureIO();
    const r = await runBackupProvisionReplica({ ...opts(), cluster, node: node3 }, io);
    expect(r.exitCode, io.text()).toBe(0);
    const rep = (r as { report?: { id: string; gtid: string; primary: string } }).report!;
    expect(rep).toMatchObject({ id: inc, primary: `${cluster}-1` });
    const im = JSON.parse(readFileSync(path.join(dir, cluster, inc, 'manifest.json'), 'utf8'));
    expect(rep.gtid).toBe(im.position.gtid);
    await fleet.sql(0, "INSERT INTO shop.log (msg) VALUES ('after provisioning')");
    await fleet.waitForReplication(0, 60_000);
    const st = await fleet.state();
    expect(st[node3]).toMatchObject({ up: true, readOnly: true, source: `${fleet.nodes[0].host}:${fleet.nodes[0].port}`, io: 'Yes', sql: 'Yes' });
    expect(await fingerprint((q) => fleet.sql(node3, q))).toEqual(await fingerprint((q) => fleet.sql(0, q)));
    expect((await fingerprint((q) => fleet.sql(node3, q)))['shop.items'].rows).toBe(5200);
  });

  it('into S3 (VersityGW): a full and an incremental as objects (multipart), verified, restored through the chain', async () => {
    const s3 = await startS3Server({ name: 'bkphys' });
    try {
      await s3.createBucket('phys-backups');
      writeFileSync(
        inventory,
        withBackupBlock(fleet.inventoryYaml({ controller: true }), { s3: s3.storageBlock('phys-backups', 'p', 'partSizeMiB: 5') }, 3, 'zstd', { method: 'physical', encryption: '{ keys: [ { id: k2, key: { env: HANDOVER_TEST_BK_K2 } } ] }' }),
      );
      const a = captureIO();
      const f = await runBackupRun({ ...opts(), cluster, wait: true }, a);
      expect(f.exitCode, a.text()).toBe(0);
      expect(f.report!.storage).toMatch(/^s3:\/\/phys-backups\/p\//);
      await insertItems(10_000, 300);
      await fleet.waitForReplication(0, 60_000);
      const b = captureIO();
      const i = await runBackupRun({ ...opts(), cluster, incremental: true, wait: true }, b);
      expect(i.exitCode, b.text()).toBe(0);
      expect(i.report!.take.base).toBe(f.report!.id);
      const c = s3.client();
      try {
        for (const id of [f.report!.id, i.report!.id]) {
          const r = await c.send(new ListObjectsV2Command({ Bucket: 'phys-backups', Prefix: `p/${cluster}/${id}/` }));
          expect((r.Contents ?? []).map((o) => o.Key!.split('/').pop()).sort()).toEqual(['backup.mbstream.zst', 'manifest.json', 'verification.json']);
        }
      } finally {
        c.destroy();
      }
      const want = await fingerprint((q) => fleet.sql(0, q));
      const rio = captureIO();
      const restored = await runBackupRestore({ ...opts(), cluster, id: i.report!.id, scratch: true }, rio);
      expect(restored.exitCode, rio.text()).toBe(0);
      const res = (restored as { report?: { socket?: string; dir?: string } }).report!;
      const conn = await mysql.createConnection({ socketPath: res.socket!, user: 'root' });
      try {
        expect(await fingerprint(async (q) => (await conn.query(q))[0])).toEqual(want);
      } finally {
        await conn.end();
        process.kill(Number(readFileSync(path.join(res.dir!, 'mysqld.pid'), 'utf8')), 'SIGKILL');
        await sleep(200);
        rmSync(res.dir!, { recursive: true, force: true });
      }
    } finally {
      await s3.stop();
    }
  });

  it('no key appears in any workflow history of the run', async () => {
    const { Connection, Client } = await import('@temporalio/client');
    const connection = await Connection.connect({ address: tw.address });
    try {
      const client = new Client({ connection });
      let n = 0;
      for await (const w of client.workflow.list({ query: `HandoverCluster = '${cluster}'` })) {
        const h = JSON.stringify(await client.workflow.getHandle(w.workflowId, w.runId).fetchHistory());
        expect(h).not.toContain(K1);
        expect(h).not.toContain(K2);
        expect(h).not.toContain(Buffer.from(K2, 'base64').toString('hex'));
        n++;
      }
      expect(n).toBeGreaterThanOrEqual(4);
    } finally {
      await connection.close();
    }
  });
});
