/**
 * The binlog archive in object storage (real Temporal, two real mariadbd, mariadb-binlog, a real S3 server:
 * VersityGW): with the cluster's backup storage on S3 and a worker with no local backup directory, the archiver
 * stores its segments and manifests in the bucket (each segment encrypted: key id in its manifest, HNDENC01 at
 * the start of the object), every archiving call (3 s each here, so several) continues after the last manifest
 * in the bucket with no gap and no duplicate, `archive status` reads the bucket, and a point-in-time restore
 * reads the base and the segments from the bucket: exactly the acknowledged rows up to the target GTID.
 * One archiver per archive (the lease in the bucket, taken with If-None-Match): while a dead archiver's lease is
 * live, `archive start` is refused in one line naming it; once it expired the archiver takes it over; a second
 * archiver workflow (another ID: a second schedule, another namespace) ends failed with ArchiveLeaseHeld naming
 * the running one; `archive stop` releases the lease.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import path from 'node:path';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lastSegment, listSegments } from '../../activities/backup/archive';
import { ArchiveLeaseHolder, readLease } from '../../activities/backup/lease';
import { MARIADB_BACKUP_GRANTS } from '../../activities/backup/mysql';
import { openStorage } from '../../activities/backup/storage';
import { runBackupArchive, runBackupRestore, runBackupRun } from '../../client/commands/backup';
import { parseGtid, parseGtidPos, posCovers } from '../../core/backup/binlog';
import { archiverWorkflowId } from '../../core/ids';
import { WorkflowFailedError } from '@temporalio/client';
import { findCluster, loadInventory } from '../../inventory/load';
import { withBackupBlock } from '../../sandbox/backup';
import { APP_SCHEMA, startMariaFleet, type MariaFleet } from '../../sandbox/mariadb';
import { startS3Server, type S3Server } from '../../sandbox/s3';
import type { ArchiverStatus, PitrRestoreReport } from '../../workflows/pitr';
import { captureIO, startTestWorker, until, type TestWorker } from '../helpers';

const BUCKET = 'handover-pitr';
const PREFIX = 'prod/maria';

describe('point-in-time recovery with the archive in S3: MariaDB', () => {
  let s3: S3Server;
  let fleet: MariaFleet;
  let tw: TestWorker;
  let inventory: string;
  const cluster = 'pitr-s3';
  const opts = () => ({ address: tw.address, taskQueue: tw.taskQueue, inventory, json: true });
  const acks: { id: number; gtid: string }[] = [];
  let next = 1;
  const scratchDirs: string[] = [];

  async function write(n: number) {
    const conn = await mysql.createConnection({ socketPath: fleet.nodes[0].socket, user: 'root' });
    try {
      for (let k = 0; k < n; k++) {
        const id = next++;
        await conn.query(`INSERT INTO ${APP_SCHEMA}.pitr (id) VALUES (?)`, [id]);
        const [[r]] = (await conn.query('SELECT @@last_gtid AS g')) as unknown as [[{ g: string }]];
        acks.push({ id, gtid: r.g });
      }
    } finally {
      await conn.end();
    }
  }

  async function objectBytes(key: string): Promise<Buffer> {
    const c = s3.client();
    try {
      return Buffer.from(await (await c.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }))).Body!.transformToByteArray());
    } finally {
      c.destroy();
    }
  }

  beforeAll(async () => {
    s3 = await startS3Server({ name: 'pitrs3' });
    await s3.createBucket(BUCKET);
    fleet = await startMariaFleet({ cluster, replicas: 1 });
    inventory = path.join(fleet.baseDir, 'inventory.yaml');
    process.env.HANDOVER_TEST_PITR_S3_K1 = 'c'.repeat(64);
    writeFileSync(inventory, withBackupBlock(fleet.inventoryYaml(), { s3: s3.storageBlock(BUCKET, PREFIX) }, 3, 'zstd', { encryption: '{ keys: [ { id: k1, key: { env: HANDOVER_TEST_PITR_S3_K1 } } ] }' }));
    await fleet.sql(0, `GRANT ${MARIADB_BACKUP_GRANTS.join(', ')} ON *.* TO 'handover'@'127.0.0.1'`);
    await fleet.sql(0, `CREATE TABLE ${APP_SCHEMA}.pitr (id INT PRIMARY KEY) ENGINE=InnoDB`);
    await fleet.waitForReplication(0);
    // No local backup directory on the worker: everything it stores or reads is in the bucket.
    tw = await startTestWorker({ inventory: () => loadInventory(inventory), env: { ...process.env, HANDOVER_BACKUP_DIR: '' } });
  }, 60_000);
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
    await s3?.stop();
  });

  it('archives into the bucket, continues after its last manifest on every call, and restores from it exactly', async () => {
    // A dead archiver's lease (its worker gone, never renewed): start refused while it is live, taken over once expired.
    const storage = openStorage(findCluster(loadInventory(inventory), cluster));
    const dead = await ArchiveLeaseHolder.acquire({ storage, cluster, owner: { archiver: 'handover-binlog-archive-pitr-s3', namespace: 'other-ns', token: 'dead', session: 'dead-1', host: 'gone-host', pid: 7 }, ttlMs: 2500 });
    // ... which died between a segment's data and its manifest: a data file nothing describes, removed by the next archiver.
    await storage.putStream(cluster, 'binlog-archive', 'seg-00000001.deadbeef.binlog.zst', Readable.from([Buffer.from('orphan')]));
    const rio = captureIO();
    const refused = await runBackupArchive({ ...opts(), json: false, cluster, action: 'start', runMs: 3000, segmentMs: 300 }, rio);
    expect(refused.exitCode, rio.text()).toBe(2);
    expect(rio.errors.length, rio.text()).toBe(1);
    expect(rio.text()).toMatch(/refused \(ArchiveLeaseHeld\): the binlog archive of pitr-s3 is written by another archiver handover-binlog-archive-pitr-s3 \(namespace other-ns\) on gone-host:7, renewed .* expires in .*; nothing was started/);
    await until('the dead archiver\'s lease expires', async () => Date.now() > Date.parse(dead.lease.expiresAt), 10_000, 100);
    expect((await runBackupArchive({ ...opts(), cluster, action: 'start', runMs: 3000, segmentMs: 300 }, captureIO())).exitCode).toBe(0);
    await write(10);
    await fleet.waitForReplication(0);
    const bio = captureIO();
    const b = await runBackupRun({ ...opts(), cluster, wait: true }, bio);
    expect(b.exitCode, bio.text()).toBe(0);
    expect(b.report!.storage).toBe(`s3://${BUCKET}/${PREFIX}/ at ${s3.endpoint}`);
    await write(10);
    const handle = tw.env.client.workflow.getHandle(archiverWorkflowId(cluster));
    // Writes across at least two more archiving calls (each starts from the bucket's last manifest).
    const calls0 = (await handle.query<ArchiverStatus>('archiveStatus')).calls;
    await until('two more archiving calls', async () => {
      await write(1);
      return (await handle.query<ArchiverStatus>('archiveStatus')).calls >= calls0 + 2;
    }, 40_000, 500);
    await write(5);
    const [p] = await fleet.sql<{ pos: string }[]>(0, 'SELECT @@gtid_binlog_pos AS pos');
    const status = await until(`the archive reaches ${p.pos}`, async () => {
      const s = (await runBackupArchive({ ...opts(), cluster, action: 'status' }, captureIO())).status;
      return s?.archivedPos && posCovers(parseGtidPos(s.archivedPos), parseGtidPos(p.pos)) ? s : undefined;
    });
    expect(status.running).toBe(true);

    // The lease is the running archiver's (taken over from the dead one), and status says so.
    const held = (await readLease(storage, cluster)).lease!;
    expect(held.owner).toMatchObject({ archiver: archiverWorkflowId(cluster), namespace: 'default' });
    expect(held.generation).toBeGreaterThan(dead.lease.generation);
    expect(status.lease?.text).toMatch(new RegExp(`^held by archiver ${archiverWorkflowId(cluster)} \\(namespace default\\)`));
    await expect(dead.renew()).rejects.toMatchObject({ type: 'ArchiveLeaseHeld' });
    expect(await storage.listFiles(cluster, 'binlog-archive')).not.toContain('seg-00000001.deadbeef.binlog.zst');
    // A second archiver workflow on the same archive (another ID: a second schedule, another namespace): it ends, refused, naming the holder.
    const second = await tw.env.client.workflow.start('binlogArchiver', { workflowId: `second-archiver-${cluster}`, taskQueue: tw.taskQueue, args: [{ cluster, runMs: 3000, segmentMs: 300 }] });
    const err = await second.result().then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const cause = (err as WorkflowFailedError).cause as { type?: string; message: string };
    expect(cause.type).toBe('ArchiveLeaseHeld');
    expect(cause.message).toMatch(new RegExp(`^refused: the binlog archive of ${cluster} is written by another archiver ${archiverWorkflowId(cluster)} \\(namespace default\\) on .*; one archiver per cluster`));
    expect(cause.message).not.toContain('\n');

    // In the bucket: a manifest and an encrypted data object per segment, chained with no gap and no duplicate.
    const segs = await listSegments(storage, cluster);
    expect(segs.length).toBeGreaterThan(2);
    expect(status.segments).toBe(segs.length);
    expect((await lastSegment(storage, cluster))?.seq).toBe(segs[segs.length - 1].seq);
    const c = s3.client();
    const keys = ((await c.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `${PREFIX}/${cluster}/binlog-archive/` }))).Contents ?? []).map((o) => o.Key!);
    c.destroy();
    let transactions = 0;
    for (let i = 0; i < segs.length; i++) {
      const s = segs[i];
      if (i > 0) expect(s.startAfter, `segment ${s.seq}`).toBe(segs[i - 1].endPos);
      expect(parseGtid(s.lastGtid).seq - parseGtid(s.firstGtid).seq + 1).toBe(s.transactions);
      transactions += s.transactions;
      expect(s.artifact.encryption?.keyId).toBe('k1');
      expect(keys).toContain(`${PREFIX}/${cluster}/binlog-archive/seg-${String(s.seq).padStart(8, '0')}.json`);
      expect(s.artifact.file).toMatch(new RegExp(`^seg-${String(s.seq).padStart(8, '0')}\\.[0-9a-f]{8}\\.binlog\\.zst$`));
      const data = await objectBytes(`${PREFIX}/${cluster}/binlog-archive/${s.artifact.file}`);
      expect(data.length).toBe(s.artifact.size);
      expect(data.subarray(0, 8).toString('latin1')).toBe('HNDENC01');
    }
    // Every acknowledged row's transaction is archived, once (the table's creation is before the archive began).
    expect(acks.length).toBeGreaterThan(25);
    expect(parseGtid(segs[segs.length - 1].lastGtid).seq - parseGtid(segs[0].firstGtid).seq + 1).toBe(transactions);

    // A restore to a GTID after several calls, from the bucket: rows 1..k exactly.
    const k = acks[acks.length - 3];
    const io = captureIO();
    const r = await runBackupRestore({ ...opts(), cluster, toGtid: k.gtid, scratch: true }, io);
    expect(r.exitCode, io.text()).toBe(0);
    const rep = (r as { report?: PitrRestoreReport }).report!;
    scratchDirs.push(rep.restored.dir!);
    expect(rep.plan.base).toBe(b.report!.id);
    expect(rep.replay.endPos).toBe(k.gtid);
    const conn = await mysql.createConnection({ socketPath: rep.restored.socket!, user: 'root' });
    try {
      const [rows] = (await conn.query(`SELECT id FROM ${APP_SCHEMA}.pitr ORDER BY id`)) as unknown as [{ id: number }[]];
      expect(rows.map((x) => Number(x.id))).toEqual(acks.filter((a) => a.id <= k.id).map((a) => a.id));
    } finally {
      await conn.end();
    }
    // Stopped: its lease released, so the next archiver starts at once.
    const stopped = await runBackupArchive({ ...opts(), cluster, action: 'stop' }, captureIO());
    expect(stopped.exitCode).toBe(0);
    expect((await readLease(storage, cluster)).lease).toMatchObject({ released: true, owner: { archiver: archiverWorkflowId(cluster) } });
    // Started past the CLI's check while an archiver of another namespace holds the lease: it ends, and status says why.
    const other = await ArchiveLeaseHolder.acquire({ storage, cluster, owner: { archiver: archiverWorkflowId(cluster), namespace: 'other-ns', token: 'other', session: 'other-1', host: 'other-host', pid: 9 }, ttlMs: 60_000 });
    const h = await tw.env.client.workflow.start('binlogArchiver', { workflowId: archiverWorkflowId(cluster), taskQueue: tw.taskQueue, args: [{ cluster, runMs: 3000, segmentMs: 300 }] });
    await h.result().catch(() => undefined);
    const st = (await runBackupArchive({ ...opts(), cluster, action: 'status' }, captureIO())).status!;
    expect(st.running).toBe(false);
    expect(st.ended).toMatch(new RegExp(`^ArchiveLeaseHeld: refused: the binlog archive of ${cluster} is written by another archiver ${archiverWorkflowId(cluster)} \\(namespace other-ns\\) on other-host:9, `));
    expect(st.lease).toMatchObject({ namespace: 'other-ns', released: false });
    await other.release();
  }, 120_000);
});
