/**
 * backup-mysql-physical:  npm run bench -- backup-mysql-physical [--json] [--mib N] (default 1100 MiB of row data)
 *
 * A MariaDB fleet (1 primary + 1 GTID replica) loaded with about `mib` MiB of InnoDB rows (1 KiB each, from
 * the Sequence engine, 50 MiB per INSERT … SELECT), then in the same run, on the same data and the same
 * replica, through the real runbook and worker, both with zstd:
 *  - dump:     `handover backup run` with backup.method: logical (mariadb-dump), then `backup restore --scratch`
 *              (the dump imported into a scratch mariadbd) — restore.import;
 *  - physical: the same with backup.method: physical (mariadb-backup --stream=mbstream), then `backup restore
 *              --scratch` (fetched, extracted, prepared, a mariadbd started on it) — restore.physical.
 * dump.ms / physical.ms are the take's streaming (tool start to artifact stored, what differs between the
 * methods); takeMs adds what both share (the replica's SQL thread stopped, row counts and CHECKSUM TABLE).
 * restore.*.ms are the restore activity's own times. takeRatio = dump.ms / physical.ms, restoreRatio =
 * import.ms / physical.ms. verified: both backups verified good (row counts and CHECKSUM TABLE equal).
 * The machine's load is printed with the figures. The last line printed is one JSON object.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { MARIADB_BACKUP_GRANTS } from '../activities/backup/mysql';
import { runBackupRestore, runBackupRun } from '../client/commands/backup';
import type { RestoreBackupResult } from '../activities/backup';
import { withBackupBlock } from '../sandbox/backup';
import { startLabWorker, startMysqlLab } from './lab';

const log = (m: string) => process.stderr.write(m + '\n');
const silentIO = { out: () => undefined, err: (l: string) => log(l), isTTY: false };

function killScratch(dir: string | undefined) {
  if (!dir) return;
  try {
    process.kill(Number(readFileSync(path.join(dir, 'mysqld.pid'), 'utf8').trim()), 'SIGKILL');
  } catch {
    /* already gone */
  }
  rmSync(dir, { recursive: true, force: true });
}

export async function backupMysqlPhysicalBench(mib: number) {
  const lab = await startMysqlLab({ cluster: 'bench-phys', log, replicas: 1, inventory: { controller: true } });
  const dir = mkdtempSync(path.join(os.tmpdir(), 'handover-bench-phys-'));
  const worker = await startLabWorker(lab);
  const load0 = os.loadavg()[0];
  try {
    const f = lab.fleet;
    for (const i of [0, 1]) {
      // Room for a GiB load: the sandbox's 16 MiB pool and 4 MiB redo log would make it crawl (both dynamic in 10.11).
      await f.sql(i, 'SET GLOBAL innodb_buffer_pool_size = 268435456');
      await f.sql(i, 'SET GLOBAL innodb_log_file_size = 536870912');
    }
    await f.sql(0, `GRANT ${MARIADB_BACKUP_GRANTS.join(', ')} ON *.* TO 'handover'@'127.0.0.1'`);
    await f.sql(0, 'CREATE DATABASE bench');
    await f.sql(0, 'CREATE TABLE bench.rows (id INT PRIMARY KEY, a VARCHAR(512), b VARCHAR(512), n BIGINT) ENGINE=InnoDB');
    const rows = Math.round((mib * 1024 * 1024) / 1024);
    const t0 = performance.now();
    const chunk = 50_000;
    for (let from = 1; from <= rows; from += chunk) {
      const to = Math.min(rows, from + chunk - 1);
      await f.sql(0, `INSERT INTO bench.rows SELECT seq, CONCAT(SHA2(CONCAT(seq, 'a'), 512), SHA2(CONCAT(seq, 'b'), 512), SHA2(CONCAT(seq, 'c'), 512), SHA2(CONCAT(seq, 'd'), 512)), CONCAT(SHA2(CONCAT(seq, 'e'), 512), SHA2(CONCAT(seq, 'f'), 512), SHA2(CONCAT(seq, 'g'), 512), SHA2(CONCAT(seq, 'h'), 512)), seq * 7919 FROM bench.seq_${from}_to_${to}`);
      if ((from - 1) % (chunk * 4) === 0) log(`[bench] ${to} / ${rows} rows`);
    }
    await f.waitForReplication(0, 1_800_000);
    await f.sql(1, 'ANALYZE TABLE bench.rows');
    const [sz] = await f.sql<{ b: number | string }[]>(1, "SELECT SUM(DATA_LENGTH + INDEX_LENGTH) AS b FROM information_schema.TABLES WHERE TABLE_SCHEMA IN ('bench', 'handover_app')");
    log(`[bench] ${rows} rows (${sz.b} bytes of InnoDB data and indexes) loaded and replicated in ${Math.round(performance.now() - t0)} ms`);
    const source = f.nodes[1].id;
    const base = { address: lab.address, taskQueue: lab.taskQueue, inventory: lab.inventory };

    const one = async (method: 'logical' | 'physical') => {
      writeFileSync(lab.inventory, withBackupBlock(f.inventoryYaml({ controller: true }), dir, 5, 'zstd', { method }));
      const r = await runBackupRun({ ...base, cluster: f.cluster, node: source, wait: true }, silentIO);
      if (r.exitCode !== 0 || !r.report) throw new Error(`${method} backup run failed with exit ${r.exitCode}`);
      const t = r.report.take;
      log(`[bench] ${method}: ${t.rawSize} raw bytes -> ${t.size} stored; stream ${t.streamMs} ms, take ${t.durationMs} ms; verify ${r.report.verification.restoreMs} ms ok=${r.report.verification.ok}`);
      const rr = await runBackupRestore({ ...base, cluster: f.cluster, id: r.report.id, scratch: true }, silentIO);
      const rep = (rr as { report?: RestoreBackupResult }).report;
      if (rr.exitCode !== 0 || !rep) throw new Error(`${method} restore failed with exit ${rr.exitCode}`);
      killScratch(rep.dir);
      log(`[bench] ${method} restore --scratch: ${rep.restoreMs} ms`);
      return { rawSize: t.rawSize, stored: t.size, ms: t.streamMs, takeMs: t.durationMs, verifyMs: r.report.verification.restoreMs, verified: r.report.verification.ok, restoreMs: rep.restoreMs };
    };
    const dump = await one('logical');
    const physical = await one('physical');
    return {
      name: 'backup-mysql-physical',
      rawBytes: Number(sz.b),
      dumpBytes: dump.rawSize,
      physicalBytes: physical.rawSize,
      dump: { ms: dump.ms, takeMs: dump.takeMs, storedBytes: dump.stored, verifyMs: dump.verifyMs },
      physical: { ms: physical.ms, takeMs: physical.takeMs, storedBytes: physical.stored, verifyMs: physical.verifyMs },
      takeRatio: Math.round((dump.ms / physical.ms) * 100) / 100,
      restore: { import: { ms: dump.restoreMs }, physical: { ms: physical.restoreMs } },
      restoreRatio: Math.round((dump.restoreMs / physical.restoreMs) * 100) / 100,
      verified: dump.verified && physical.verified,
      cores: os.cpus().length,
      loadAvg1m: { atStart: Math.round(load0 * 10) / 10, atEnd: Math.round(os.loadavg()[0] * 10) / 10 },
    };
  } finally {
    await worker.stop();
    await lab.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
