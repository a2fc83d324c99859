/**
 * Backups in object storage, against a REAL S3-compatible server the test starts (VersityGW, POSIX backend,
 * sandbox/s3.ts), for Redis and MariaDB: take (multipart upload, streamed), list, verify, restore into a
 * scratch server and into an empty node; a schedule stores into S3; retention deletes objects and aborts an
 * abandoned upload. A worker process SIGKILLed mid-upload (failpoint inside:takeBackup.uploading, after the
 * first part is stored) leaves an orphaned multipart upload (the backup listed incomplete, never good) that
 * the retried take aborts: afterwards exactly one new backup, listed good, ListMultipartUploads empty,
 * nothing partial listed. The workers that take keep their temporary files in a
 * private TMPDIR that is deleted before another worker verifies and restores: nothing is read from a worker's
 * disk.
 */
import { sharedWorkflowBundle } from '../../sandbox/bundle';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CreateMultipartUploadCommand, GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { Client, Connection } from '@temporalio/client';
import Redis from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MARIADB_BACKUP_GRANTS } from '../../activities/backup/mysql';
import { redisKeyDigest } from '../../activities/backup/redis';
import { startScratchMaria } from '../../activities/backup/scratch-mysql';
import { spawnWorkerProcess } from '../../bench/lab';
import { runBackupList, runBackupRestore, runBackupRun, runBackupSchedule, runBackupVerify } from '../../client/commands/backup';
import { backupScheduleId } from '../../core/backup/decide';
import { operationWorkflowId } from '../../core/ids';
import { loadInventory } from '../../inventory/load';
import { withBackupBlock } from '../../sandbox/backup';
import { startMariaFleet, type MariaFleet } from '../../sandbox/mariadb';
import { freePort, sleep } from '../../sandbox/ports';
import { baseRedisConf, startNodeProcess, startRedisFleet, stopByPidfile, type RedisFleet } from '../../sandbox/redis';
import { startS3Server, type S3Server } from '../../sandbox/s3';
import { captureIO, startTestWorker, type TestWorker } from '../helpers';

const BUCKET = 'handover-backups';
let s3: S3Server;
let bundlePath: string;
let scratchRoot: string;

beforeAll(async () => {
  s3 = await startS3Server({ name: 'bks3' });
  await s3.createBucket(BUCKET);
  scratchRoot = mkdtempSync(path.join(os.tmpdir(), 'handover-s3-test-'));
  bundlePath = await sharedWorkflowBundle();
});
afterAll(async () => {
  await s3?.stop();
  if (scratchRoot) rmSync(scratchRoot, { recursive: true, force: true });
});

/** Every key under a prefix of the bucket. */
async function keysUnder(prefix: string): Promise<string[]> {
  const c = s3.client();
  try {
    const r = await c.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }));
    return (r.Contents ?? []).map((o) => o.Key!).sort();
  } finally {
    c.destroy();
  }
}

async function objectJson(key: string): Promise<Record<string, unknown>> {
  const c = s3.client();
  try {
    return JSON.parse(await (await c.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }))).Body!.transformToString());
  } finally {
    c.destroy();
  }
}

/**
 * Kill a worker process mid-upload, then let a healthy one finish the run. Both keep their temporary files in
 * a private TMPDIR, removed afterwards. Returns the run's report and what was seen right after the kill.
 */
async function takeWithWorkerKilledMidUpload(o: { address: string; inventory: string; cluster: string; prefix: string }) {
  const listedBefore = (await runBackupList({ cluster: o.cluster, inventory: o.inventory, json: true }, captureIO())).backups!.map((b) => b.id);
  const taskQueue = `bk-s3-kill-${randomUUID()}`;
  const tmp = mkdtempSync(path.join(scratchRoot, 'worker-tmp-'));
  const env = { HANDOVER_TEMPORAL_ADDRESS: o.address, HANDOVER_INVENTORY: o.inventory, HANDOVER_TASK_QUEUE: taskQueue, HANDOVER_WORKFLOW_BUNDLE: bundlePath, TMPDIR: tmp, HANDOVER_BACKUP_DIR: undefined };
  let out = '';
  const doomed = spawnWorkerProcess({ ...env, HANDOVER_FAILPOINT: 'inside:takeBackup.uploading' }, (t) => (out += t));
  const io = captureIO();
  const started = await runBackupRun({ address: o.address, taskQueue, inventory: o.inventory, cluster: o.cluster, json: true }, io);
  expect(started.exitCode, io.text()).toBe(0);
  const exit = await doomed.exited;
  expect(exit.signal, out).toBe('SIGKILL');
  expect(out).toContain('[failpoint] inside:takeBackup.uploading: SIGKILL');
  const orphansAfterKill = await s3.uploadsInProgress(BUCKET);
  const objectsAfterKill = await keysUnder(`${o.prefix}/${o.cluster}/`).then((ks) => ks.filter((k) => !listedBefore.some((id) => k.includes(`/${id}/`))));
  const listedAfterKill = (await runBackupList({ cluster: o.cluster, inventory: o.inventory, json: true }, captureIO())).backups!;

  const healthy = spawnWorkerProcess(env, (t) => (out += t));
  const connection = await Connection.connect({ address: o.address });
  try {
    const report = (await new Client({ connection }).workflow.getHandle(operationWorkflowId(o.cluster)).result()) as { id: string; verification: { ok: boolean }; storage: string; audit: string[] };
    return { report, orphansAfterKill, objectsAfterKill, listedAfterKill, out };
  } finally {
    await connection.close();
    await healthy.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
}

// ---- Redis ----------------------------------------------------------------------------------------------------

async function contents(c: Redis): Promise<Map<string, string | null>> {
  const out = new Map<string, string | null>();
  let cursor = '0';
  do {
    const [next, keys] = await c.scan(cursor, 'COUNT', 1000);
    for (const k of keys) out.set(k, await redisKeyDigest(c, k));
    cursor = next;
  } while (cursor !== '0');
  return out;
}

describe('backup to S3: Redis', () => {
  let fleet: RedisFleet;
  let tw: TestWorker;
  let inventory: string;
  const cluster = 'bk-s3-redis';
  const prefix = 'prod/redis';
  const opts = () => ({ address: tw.address, taskQueue: tw.taskQueue, inventory, json: true });

  beforeAll(async () => {
    fleet = await startRedisFleet({ cluster });
    inventory = path.join(fleet.baseDir, 'inventory.yaml');
    writeFileSync(inventory, withBackupBlock(fleet.inventoryYaml(), { s3: s3.storageBlock(BUCKET, prefix, 'partSizeMiB: 5') }, 2));
    const p = fleet.nodes[0].client();
    const pipe = p.pipeline();
    for (let i = 0; i < 5000; i++) pipe.set(`str:${i}`, `value-${i}`);
    for (let i = 0; i < 100; i++) pipe.hset(`hash:${i}`, 'a', String(i), 'b', `b${i}`);
    // ~12 MiB that does not compress: the artifact is uploaded in several 5 MiB parts.
    for (let i = 0; i < 4; i++) pipe.set(`blob:${i}`, randomBytes(3 * 1024 * 1024));
    await pipe.exec();
    await p.call('WAIT', '2', '10000');
    p.disconnect();
    tw = await startTestWorker({ inventory: () => loadInventory(inventory), env: { ...process.env, HANDOVER_BACKUP_DIR: '' } });
  });
  afterAll(async () => {
    await tw?.stop();
    await fleet?.stop();
  });

  let first = '';

  it('takes into S3 (artifact, manifest and verification as objects beside each other), lists it good, restores a scratch server with every key', async () => {
    const io = captureIO();
    const r = await runBackupRun({ ...opts(), cluster, wait: true }, io);
    expect(r.exitCode, io.text()).toBe(0);
    const rep = r.report!;
    first = rep.id;
    expect(rep.storage).toBe(`s3://${BUCKET}/${prefix}/ at ${s3.endpoint}`);
    expect(rep.take.size).toBeGreaterThan(10 * 1024 * 1024);
    expect(rep.verification.ok).toBe(true);
    const base = `${prefix}/${cluster}/${rep.id}/`;
    expect(await keysUnder(base)).toEqual([`${base}dump.rdb.gz`, `${base}manifest.json`, `${base}verification.json`]);
    const manifest = await objectJson(`${base}manifest.json`);
    expect(manifest).toMatchObject({ id: rep.id, engine: 'redis', artifact: { file: 'dump.rdb.gz', sha256: rep.take.sha256, size: rep.take.size }, content: { redis: { dbsize: 5104 } } });
    expect(await s3.uploadsInProgress(BUCKET)).toEqual([]);

    const list = await runBackupList({ cluster, inventory, json: true }, captureIO());
    expect(list.backups).toEqual([expect.objectContaining({ id: rep.id, state: 'good' })]);

    const vio = captureIO();
    expect((await runBackupVerify({ ...opts(), cluster, id: rep.id }, vio)).exitCode, vio.text()).toBe(0);

    const rio = captureIO();
    const restored = await runBackupRestore({ ...opts(), cluster, id: rep.id, scratch: true }, rio);
    expect(restored.exitCode, rio.text()).toBe(0);
    const res = (restored as { report?: { address?: string; dir?: string; passwordFile?: string } }).report!;
    const [host, port] = res.address!.split(':');
    const scratch = new Redis({ host, port: Number(port), password: readFileSync(res.passwordFile!, 'utf8').trim(), lazyConnect: true });
    const primary = fleet.nodes[0].client();
    try {
      await scratch.connect();
      const [want, got] = await Promise.all([contents(primary), contents(scratch)]);
      expect(got.size).toBe(5104);
      expect(got).toEqual(want);
    } finally {
      scratch.disconnect();
      primary.disconnect();
      await stopByPidfile(res.dir!, 'SIGKILL');
      rmSync(res.dir!, { recursive: true, force: true });
    }
  });

  it('a worker killed mid-upload leaves an orphaned multipart upload; the retried take aborts it: one new backup, good, no upload left, nothing partial listed', async () => {
    const r = await takeWithWorkerKilledMidUpload({ address: tw.address, inventory, cluster, prefix });
    expect(r.orphansAfterKill.length, r.out).toBeGreaterThanOrEqual(1);
    expect(r.orphansAfterKill.every((u) => u.startsWith(`${prefix}/${cluster}/${r.report.id}/dump.rdb.gz `))).toBe(true);
    // The retried take says what it aborted.
    expect(r.report.audit.join('\n')).toMatch(new RegExp(`cleared ${r.orphansAfterKill.length} partial write`));
    // No object of the interrupted take exists (an object appears only once its upload completed); its upload
    // makes it `incomplete`, never good.
    expect(r.listedAfterKill.map((b) => `${b.id}:${b.state}`)).toEqual([`${r.report.id}:incomplete`, `${first}:good`]);
    expect(r.objectsAfterKill).toEqual([]);
    expect(r.report.verification.ok).toBe(true);
    expect(await s3.uploadsInProgress(BUCKET)).toEqual([]);
    const after = (await runBackupList({ cluster, inventory, json: true }, captureIO())).backups!;
    expect(after.map((b) => `${b.id}:${b.state}`)).toEqual([`${r.report.id}:good`, `${first}:good`]);

    // Another worker (this process; the taking workers' TMPDIR is gone) verifies and restores it.
    const vio = captureIO();
    expect((await runBackupVerify({ ...opts(), cluster, id: r.report.id }, vio)).exitCode, vio.text()).toBe(0);
  });

  it('restore into an empty node (it replicates once from a scratch server holding the RDB from S3): every key; the scratch server on HANDOVER_SCRATCH_HOST', async () => {
    const id = (await runBackupList({ cluster, inventory, json: true }, captureIO())).backups![0].id;
    // Another worker, whose scratch servers listen on 127.0.0.2 (an address of this host other than the nodes').
    const tw2 = await startTestWorker({ inventory: () => loadInventory(inventory), env: { ...process.env, HANDOVER_SCRATCH_HOST: '127.0.0.2' } });
    const opts2 = () => ({ ...opts(), taskQueue: tw2.taskQueue });
    try {
      const sio = captureIO();
      const scratch = await runBackupRestore({ ...opts2(), cluster, id, scratch: true }, sio);
      expect(scratch.exitCode, sio.text()).toBe(0);
      const res = (scratch as { report?: { address?: string; dir?: string } }).report!;
      expect(res.address).toMatch(/^127\.0\.0\.2:\d+$/);
      await stopByPidfile(res.dir!, 'SIGKILL');
      rmSync(res.dir!, { recursive: true, force: true });
      await restoreIntoFreshNode(id, opts2);
    } finally {
      await tw2.stop();
    }
  });

  async function restoreIntoFreshNode(id: string, o: () => ReturnType<typeof opts>) {
    const port = await freePort();
    const ndir = path.join(fleet.baseDir, 'fresh');
    mkdirSync(ndir, { recursive: true });
    writeFileSync(path.join(ndir, 'redis.conf'), baseRedisConf({ port, dir: ndir, password: fleet.password }).join('\n') + '\n');
    const fresh = startNodeProcess({ id: `${cluster}-fresh`, port, dir: ndir, binary: 'redis-server', password: fleet.password });
    await fresh.start();
    try {
      writeFileSync(inventory, readFileSync(inventory, 'utf8') + `      - id: ${cluster}-fresh\n        host: 127.0.0.1\n        port: ${port}\n`);
      const rio = captureIO();
      const ok = await runBackupRestore({ ...o(), cluster, id, to: `${cluster}-fresh` }, rio);
      expect(ok.exitCode, rio.text()).toBe(0);
      const fc = fresh.client();
      const primary = fleet.nodes[0].client();
      try {
        const [want, got] = await Promise.all([contents(primary), contents(fc)]);
        expect(got.size).toBe(5104);
        expect(got).toEqual(want);
      } finally {
        fc.disconnect();
        primary.disconnect();
      }
    } finally {
      await fresh.stop('SIGKILL');
    }
  }

  it('a scheduled run stores into S3; retention (keep 2) deletes the oldest backup\'s objects and aborts an abandoned upload', async () => {
    const scheduleId = backupScheduleId(cluster);
    const connection = await Connection.connect({ address: tw.address });
    const client = new Client({ connection });
    // A take abandoned long ago (its workflow never retried): only a multipart upload, listed incomplete.
    const abandoned = `${cluster}-20200101T000000000Z`;
    const c = s3.client();
    await c.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: `${prefix}/${cluster}/${abandoned}/dump.rdb.gz` }));
    c.destroy();
    expect((await runBackupList({ cluster, inventory, json: true }, captureIO())).backups!.at(-1)).toMatchObject({ id: abandoned, state: 'incomplete' });
    try {
      const s = await runBackupSchedule({ ...opts(), cluster, cron: '0 3 * * *', trigger: true }, captureIO());
      expect(s.exitCode).toBe(0);
      let run: { report?: { id: string; pruned: string[] } } | undefined;
      for (let i = 0; i < 300 && !run; i++) {
        const d = await client.schedule.getHandle(scheduleId).describe();
        const a = d.info.recentActions.at(-1)?.action;
        if (a) run = (await client.workflow.getHandle(a.workflow.workflowId, a.workflow.firstExecutionRunId).result()) as typeof run;
        else await sleep(100);
      }
      expect(run?.report?.pruned.sort()).toEqual([first, abandoned].sort());
      expect(await keysUnder(`${prefix}/${cluster}/${first}/`)).toEqual([]);
      expect(await s3.uploadsInProgress(BUCKET)).toEqual([]);
      const list = (await runBackupList({ cluster, inventory, json: true }, captureIO())).backups!;
      expect(list.map((b) => b.state)).toEqual(['good', 'good']);
      expect(list[0].id).toBe(run!.report!.id);
    } finally {
      await client.schedule.getHandle(scheduleId).delete().catch(() => undefined);
      await connection.close();
    }
  });
});

// ---- MariaDB --------------------------------------------------------------------------------------------------

describe('backup to S3: MariaDB', () => {
  let fleet: MariaFleet;
  let tw: TestWorker;
  let inventory: string;
  const cluster = 'bk-s3-maria';
  const prefix = 'prod/mysql';
  const opts = () => ({ address: tw.address, taskQueue: tw.taskQueue, inventory, json: true });
  const fingerprint = async (q: (sql: string) => Promise<unknown>) => {
    const rows = (await q('CHECKSUM TABLE shop.items, shop.blobs')) as { Table: string; Checksum: number }[];
    const counts = (await q('SELECT (SELECT COUNT(*) FROM shop.items) AS a, (SELECT COUNT(*) FROM shop.blobs) AS b')) as { a: number; b: number }[];
    return { checksums: rows.map((r) => `${r.Table}:${r.Checksum}`), counts: counts[0] };
  };

  beforeAll(async () => {
    fleet = await startMariaFleet({ cluster });
    inventory = path.join(fleet.baseDir, 'inventory.yaml');
    writeFileSync(inventory, withBackupBlock(fleet.inventoryYaml(), { s3: s3.storageBlock(BUCKET, prefix, 'partSizeMiB: 5') }, 3));
    await fleet.sql(0, `GRANT ${MARIADB_BACKUP_GRANTS.join(', ')} ON *.* TO 'handover'@'127.0.0.1'`);
    await fleet.sql(0, 'CREATE DATABASE shop');
    await fleet.sql(0, 'CREATE TABLE shop.items (id INT PRIMARY KEY, note VARCHAR(64), price DECIMAL(10,2)) ENGINE=InnoDB');
    await fleet.sql(0, 'CREATE TABLE shop.blobs (id INT PRIMARY KEY, data MEDIUMBLOB NOT NULL) ENGINE=InnoDB');
    const values: string[] = [];
    for (let i = 0; i < 3000; i++) values.push(`(${i}, 'note-${i}', ${i}.25)`);
    await fleet.sql(0, `INSERT INTO shop.items VALUES ${values.join(',')}`);
    // ~6 MiB of random bytes: ~12 MiB of hex in the dump, several 5 MiB parts after gzip.
    for (let i = 0; i < 6; i++) await fleet.sql(0, 'INSERT INTO shop.blobs VALUES (?, ?)', [i, randomBytes(1024 * 1024)]);
    await fleet.waitForReplication(0);
    tw = await startTestWorker({ inventory: () => loadInventory(inventory), env: { ...process.env, HANDOVER_BACKUP_DIR: '' } });
  });
  afterAll(async () => {
    await tw?.stop();
    await fleet?.stop();
  });

  let first = '';

  it('takes a replica\'s dump into S3, lists it good, verifies again, restores a scratch mariadbd with every table equal', async () => {
    const io = captureIO();
    const r = await runBackupRun({ ...opts(), cluster, wait: true }, io);
    expect(r.exitCode, io.text()).toBe(0);
    const rep = r.report!;
    first = rep.id;
    expect(rep.fromPrimary).toBe(false);
    expect(rep.take.size).toBeGreaterThan(5 * 1024 * 1024);
    const base = `${prefix}/${cluster}/${rep.id}/`;
    expect(await keysUnder(base)).toEqual([`${base}dump.sql.gz`, `${base}manifest.json`, `${base}verification.json`]);
    expect(await objectJson(`${base}manifest.json`)).toMatchObject({ engine: 'mysql', artifact: { sha256: rep.take.sha256 } });
    expect((await runBackupList({ cluster, inventory, json: true }, captureIO())).backups).toEqual([expect.objectContaining({ id: rep.id, state: 'good' })]);
    const vio = captureIO();
    expect((await runBackupVerify({ ...opts(), cluster, id: rep.id }, vio)).exitCode, vio.text()).toBe(0);

    const rio = captureIO();
    const restored = await runBackupRestore({ ...opts(), cluster, id: rep.id, scratch: true }, rio);
    expect(restored.exitCode, rio.text()).toBe(0);
    const res = (restored as { report?: { socket?: string; dir?: string } }).report!;
    const mysql = await import('mysql2/promise');
    const conn = await mysql.createConnection({ socketPath: res.socket!, user: 'root' });
    try {
      expect(await fingerprint(async (q) => (await conn.query(q))[0])).toEqual(await fingerprint((q) => fleet.sql(0, q)));
    } finally {
      await conn.end();
      const pid = Number(readFileSync(path.join(res.dir!, 'mysqld.pid'), 'utf8'));
      process.kill(pid, 'SIGKILL');
      await sleep(200);
      rmSync(res.dir!, { recursive: true, force: true });
    }
  });

  it('a worker killed mid-upload: the retried take aborts the orphaned upload; one new backup, good; nothing partial listed', async () => {
    const r = await takeWithWorkerKilledMidUpload({ address: tw.address, inventory, cluster, prefix });
    expect(r.orphansAfterKill.length, r.out).toBeGreaterThanOrEqual(1);
    expect(r.report.audit.join('\n')).toMatch(new RegExp(`cleared ${r.orphansAfterKill.length} partial write`));
    expect(r.listedAfterKill.map((b) => `${b.id}:${b.state}`)).toEqual([`${r.report.id}:incomplete`, `${first}:good`]);
    expect(r.report.verification.ok).toBe(true);
    expect(await s3.uploadsInProgress(BUCKET)).toEqual([]);
    const after = (await runBackupList({ cluster, inventory, json: true }, captureIO())).backups!;
    expect(after.map((b) => `${b.id}:${b.state}`)).toEqual([`${r.report.id}:good`, `${first}:good`]);
    await fleet.waitForReplication(0); // the replica whose SQL thread was stopped when the worker died applies again
  });

  it('restore into an empty node streams the dump from S3 into it: every table equal', async () => {
    const id = (await runBackupList({ cluster, inventory, json: true }, captureIO())).backups![0].id;
    const empty = await startScratchMaria('s3-empty-node');
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
