/**
 * backup-mysql:  npm run bench -- backup-mysql [--json] [--runs N] [--rows N] [--storage local|s3]
 *
 * A 3-node MariaDB fleet (1 primary + 2 GTID replicas) with `rows` rows (~200 bytes each) in one InnoDB table.
 * Alternating in the same run, on the same data and the same replica:
 *  - plain: `mariadb-dump` with the same options as ours, to a file (no compression, no hashing);
 *  - ours:  `handover backup run --wait` (probe, choose, take, verify, mark, prune) through the real worker.
 * MB/s is the dump's uncompressed bytes over time: for ours both the streaming alone (tool start to artifact
 * renamed: dump + gzip + sha256 + fsync) and the whole take activity (plus stopping the replica's SQL thread
 * and the row counts and CHECKSUM TABLE fingerprint). Restore-verify time is the verify step (sha256, scratch
 * mariadbd started, dump loaded, fingerprint compared). With --storage s3 the backups go to a real S3-compatible
 * server started for the run (VersityGW on loopback, sandbox/s3.ts): streaming then ends at the multipart
 * upload's completion. peakRssMiB is this process's (bench + in-process worker) largest resident set, sampled
 * every 100 ms: the artifact is never held whole in memory. The last line printed is one JSON object.
 */
import { spawn } from 'node:child_process';
import { createWriteStream, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { MARIADB_BACKUP_GRANTS, dumpArgs, optionFile } from '../activities/backup/mysql';
import { S3Storage } from '../activities/backup/storage';
import { hashStored } from '../activities/backup/stream';
import { backupId } from '../core/backup/decide';
import { tool } from '../activities/backup/tools';
import { runBackupRun } from '../client/commands/backup';
import { withBackupBlock, type BackupStore } from '../sandbox/backup';
import { startS3Server, type S3Server } from '../sandbox/s3';
import { percentile, startLabWorker, startMysqlLab } from './lab';

const log = (m: string) => process.stderr.write(m + '\n');
const silentIO = { out: () => undefined, err: (l: string) => log(l), isTTY: false };

async function plainDump(args: string[], file: string): Promise<number> {
  const t0 = performance.now();
  const child = spawn(tool('mariadb-dump'), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const out = createWriteStream(file);
  child.stdout!.pipe(out);
  const code = await new Promise<number>((r) => child.once('close', (c) => r(c ?? 1)));
  await new Promise<void>((r) => (out.writableFinished ? r() : out.once('finish', () => r())));
  if (code !== 0) throw new Error(`mariadb-dump exited ${code}: ${err}`);
  return performance.now() - t0;
}

export async function backupMysqlBench(runs: number, rows: number, storage: 'local' | 's3' = 'local') {
  const lab = await startMysqlLab({ cluster: 'bench-backup', log });
  const dir = mkdtempSync(path.join(os.tmpdir(), 'handover-bench-backups-'));
  let s3: S3Server | undefined;
  let store: BackupStore = dir;
  if (storage === 's3') {
    s3 = await startS3Server({ name: 'bench' });
    await s3.createBucket('bench-backups');
    store = { s3: s3.storageBlock('bench-backups', 'bench') };
  }
  writeFileSync(lab.inventory, withBackupBlock(lab.fleet.inventoryYaml(), store, 2));
  const worker = await startLabWorker(lab);
  let peakRss = process.memoryUsage().rss;
  const rssSampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 100);
  try {
    const f = lab.fleet;
    await f.sql(0, `GRANT ${MARIADB_BACKUP_GRANTS.join(', ')} ON *.* TO 'handover'@'127.0.0.1'`);
    await f.sql(0, 'CREATE DATABASE bench');
    await f.sql(0, 'CREATE TABLE bench.rows (id INT PRIMARY KEY, a VARCHAR(100), b VARCHAR(100), n BIGINT) ENGINE=InnoDB');
    const t0 = performance.now();
    for (let from = 1; from <= rows; from += 50_000) {
      const to = Math.min(rows, from + 49_999);
      await f.sql(0, `INSERT INTO bench.rows SELECT seq, MD5(seq), REPEAT(SHA1(seq), 2), seq * 7919 FROM bench.seq_${from}_to_${to}`);
    }
    await f.waitForReplication(0, 300_000);
    log(`[bench] ${rows} rows loaded and replicated in ${Math.round(performance.now() - t0)} ms`);
    const source = f.nodes[1];
    const target = { cluster: f.cluster, node: source.id, host: source.host, port: source.port, user: 'handover', password: f.handoverPassword };
    const plainFile = path.join(dir, 'plain.sql');
    const plain: { ms: number; bytes: number; mbps: number }[] = [];
    type Ours = { streamMs: number; takeMs: number; bytes: number; stored: number; streamMbps: number; takeMbps: number; verifyMs: number; runMs: number; node: string };
    const ours: Record<'gzip' | 'zstd', Ours[]> = { gzip: [], zstd: [] };
    for (let i = 0; i < runs; i++) {
      const opt = optionFile({ user: target.user, password: target.password });
      try {
        const ms = await plainDump([...opt.args, ...dumpArgs(target, ['bench', 'handover_app'])], plainFile);
        const bytes = statSync(plainFile).size;
        plain.push({ ms: Math.round(ms), bytes, mbps: bytes / 1e6 / (ms / 1000) });
        log(`[bench] plain mariadb-dump #${i + 1}: ${bytes} bytes in ${Math.round(ms)} ms`);
      } finally {
        opt.cleanup();
        rmSync(plainFile, { force: true });
      }
      for (const compression of ['gzip', 'zstd'] as const) {
      writeFileSync(lab.inventory, withBackupBlock(lab.fleet.inventoryYaml(), store, 2, compression));
      const r0 = performance.now();
      const r = await runBackupRun({ cluster: f.cluster, node: source.id, wait: true, address: lab.address, taskQueue: lab.taskQueue, inventory: lab.inventory }, silentIO);
      if (r.exitCode !== 0 || !r.report) throw new Error(`backup run ${i} failed with exit ${r.exitCode}`);
      const t = r.report.take;
      ours[compression].push({
        streamMs: t.streamMs,
        takeMs: t.durationMs,
        bytes: t.rawSize,
        stored: t.size,
        streamMbps: t.rawSize / 1e6 / (t.streamMs / 1000),
        takeMbps: t.rawSize / 1e6 / (t.durationMs / 1000),
        verifyMs: r.report.verification.restoreMs,
        runMs: Math.round(performance.now() - r0),
        node: r.report.node,
      });
      log(`[bench] handover backup #${i + 1} (${compression}): ${t.rawSize} bytes (${t.size} stored) stream ${t.streamMs} ms, take ${t.durationMs} ms, verify ${r.report.verification.restoreMs} ms`);
      }
    }
    const med = (xs: number[]) => percentile(xs, 50);
    const plainMbps = med(plain.map((p) => p.mbps));
    const summary = (xs: Ours[]) => {
      const streamMbps = med(xs.map((o) => o.streamMbps));
      const takeMbps = med(xs.map((o) => o.takeMbps));
      return {
        storedBytes: xs[0].stored,
        streamMbps,
        takeMbps,
        ratioStream: Math.round((streamMbps / plainMbps) * 100) / 100,
        ratioTake: Math.round((takeMbps / plainMbps) * 100) / 100,
        streamMs: med(xs.map((o) => o.streamMs)),
        takeMs: med(xs.map((o) => o.takeMs)),
        runMs: med(xs.map((o) => o.runMs)),
        restoreVerifyMs: { p50: med(xs.map((o) => o.verifyMs)), max: percentile(xs.map((o) => o.verifyMs), 100) },
      };
    };
    return {
      name: 'backup-mysql',
      storage,
      runs,
      rows,
      peakRssMiB: Math.round(peakRss / 1024 / 1024),
      rawBytes: ours.gzip[0].bytes,
      cores: os.cpus().length,
      loadAvg1m: Math.round(os.loadavg()[0] * 10) / 10,
      plainMariadbDump: { mbps: plainMbps, ms: med(plain.map((p) => p.ms)) },
      gzip: summary(ours.gzip),
      zstd: summary(ours.zstd),
      raw: { plain, ours },
    };
  } finally {
    clearInterval(rssSampler);
    await worker.stop();
    await lab.close();
    await s3?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * backup-s3-stream:  npm run bench -- backup-s3-stream [--json] [--mib N]
 *
 * The S3 store alone (activities/backup/storage/s3.ts) against a real S3-compatible server (VersityGW on
 * loopback): N MiB (default 512) generated on the fly are uploaded with the same multipart upload a take uses
 * (8 MiB parts, two in flight), then read back and hashed as verification does. growthMiB is this process's
 * peak resident set (sampled every 50 ms) above its size before the upload: what streaming costs in memory,
 * whatever the artifact's size.
 */
export async function backupS3StreamBench(mib: number) {
  const s3 = await startS3Server({ name: 'benchstream' });
  try {
    await s3.createBucket('bench-stream');
    const st = new S3Storage({ type: 's3', endpoint: s3.endpoint, bucket: 'bench-stream', region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: { env: s3.accessKeyEnv }, secretAccessKey: { env: s3.secretKeyEnv } } });
    const total = mib * 1024 * 1024;
    const block = randomBytes(1024 * 1024);
    let sent = 0;
    const src = new Readable({
      read() {
        if (sent >= total) return void this.push(null);
        sent += block.length;
        this.push(Buffer.from(block));
      },
    });
    const id = backupId('bench', Date.now());
    const before = process.memoryUsage().rss;
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
    try {
      const t0 = performance.now();
      await st.putStream('bench', id, 'dump.rdb.gz', src);
      const uploadMs = performance.now() - t0;
      const t1 = performance.now();
      const h = await hashStored(st.readStream('bench', id, 'dump.rdb.gz'));
      const readMs = performance.now() - t1;
      if (h.size !== total) throw new Error(`read back ${h.size} bytes, uploaded ${total}`);
      const mbps = (ms: number) => Math.round((total / 1e6 / (ms / 1000)) * 10) / 10;
      return {
        name: 'backup-s3-stream',
        bytes: total,
        partMiB: 8,
        uploadMs: Math.round(uploadMs),
        uploadMbps: mbps(uploadMs),
        readHashMs: Math.round(readMs),
        readHashMbps: mbps(readMs),
        rssBeforeMiB: Math.round(before / 2 ** 20),
        peakRssMiB: Math.round(peak / 2 ** 20),
        growthMiB: Math.round((peak - before) / 2 ** 20),
        cores: os.cpus().length,
        loadAvg1m: Math.round(os.loadavg()[0] * 10) / 10,
      };
    } finally {
      clearInterval(sampler);
    }
  } finally {
    await s3.stop();
  }
}
