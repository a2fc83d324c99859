/**
 * Benchmarks (not timed tests):  npm run bench -- <name> [--json] [--runs N] [--flavor redis|valkey]
 *
 *  switchover-redis: N Handover switchovers under continuous writes and, interleaved in the same run on the
 *    same fleet, N of the server's own `FAILOVER TO ... TIMEOUT ...` as the baseline. The write pause is what
 *    the writer saw: the largest gap between two acknowledged writes during each handover. Every
 *    acknowledged write is checked on the final primary.
 *  switchover-redis-sentinel: N switchovers of a Sentinel-watched fleet under a writer that finds the primary only
 *    through Sentinel, and N plain `SENTINEL FAILOVER`s in the same run (bench/switchover-sentinel.ts; default 5).
 *  rolling-restart-redis: a 3-node roll (a config change) under writes on a fleet watched by 3 Sentinels:
 *    Handover's rolling restart, and beside it in the same run the naive roll: restart each replica in
 *    place, then the primary in place, and let Sentinel fail over reactively if it notices. Reports total
 *    duration, summed write-blocked ms (every gap of more than 50 ms between two acknowledged writes) and
 *    lost acknowledged writes for both.
 *  rolling-restart-mysql: a 3-node MariaDB roll (a server variable) under the transactional writer: Handover's
 *    rolling restart, and beside it the naive roll: each replica restarted in place, then the primary in
 *    place (it comes back read-only, as configured, and is made writable again as soon as it answers).
 *  switchover-mysql: N MariaDB switchovers (1 primary + 2 GTID replicas) under the transactional writer
 *    (BEGIN; INSERT; COMMIT, following the writable node). The write pause is the longest gap between two
 *    acknowledged commits during each switchover; every acknowledged commit is checked on every node.
 *  failover-redis, failover-mysql: see bench/failover.ts (default 5 runs).
 *  failover-redis-empty-restart: see bench/empty-restart.ts (default 1 run per case).
 *  step-overhead: the same N activity calls as a plain script and as a workflow, and the levers on a step's cost
 *    (bench/step-overhead/index.ts; --steps N, default 50; --runs R repeats, default 3).
 *  backup-mysql: our backup vs plain mariadb-dump to a file, same data, same run (bench/backup.ts; default 3 runs,
 *    --rows 300000, --storage local|s3).
 *  backup-mysql-physical: logical vs physical take and restore of about 1 GiB (bench/backup-physical.ts, --mib).
 *  backup-s3-stream: the S3 store alone, N MiB (--mib, default 512) uploaded and read back; memory growth
 *    (bench/backup.ts).
 * The last line printed is one JSON object.
 */
import { performance } from 'node:perf_hooks';
import { writeFileSync } from 'node:fs';
import { runRollingRestart } from '../client/commands/rolling-restart';
import { runSwitchover } from '../client/commands/switchover';
import { startSentinels } from '../sandbox/sentinel';
import { waitForReplication, type RedisFleet } from '../sandbox/redis';
import { sleep } from '../sandbox/ports';
import { AckedWriter, type AckLog } from '../sandbox/writer';
import { controllerFor } from '../activities/controllers';
import { loadInventory } from '../inventory/load';
import { SqlWriter } from '../sandbox/sql-writer';
import type { MysqlSwitchoverReport } from '../workflows/mysql/switchover';
import { parseArgs, percentile, startLab, startLabWorker, startMysqlLab } from './lab';
import { failoverMysqlBench, failoverRedisBench } from './failover';
import { failoverRedisEmptyRestartBench } from './empty-restart';
import { backupMysqlBench, backupS3StreamBench } from './backup';
import { stepOverheadBench } from './step-overhead';
import { backupMysqlPhysicalBench } from './backup-physical';
import { switchoverRedisSentinelBench } from './switchover-sentinel';

const log = (m: string) => process.stderr.write(m + '\n');

/** The baseline: FAILOVER TO the first linked replica, wait until the server is done; then (outside the
 *  measured window) repoint the remaining replica, as an operator would have to. */
async function serverFailover(fleet: RedisFleet, writer: AckedWriter): Promise<{ blockedMs: number; newPrimary: string }> {
  const primary = (await fleet.primary())!;
  const target = fleet.nodes.find((n) => n.id !== primary.id)!;
  const c = primary.client();
  const t0 = performance.now();
  await c.call('FAILOVER', 'TO', target.host, String(target.port), 'TIMEOUT', '5000');
  for (;;) {
    const info = await c.info('replication');
    if (info.includes('master_failover_state:no-failover')) break;
    await sleep(1);
  }
  // Writes resume once the writer has found the new primary: wait for its first ack after t0's gap.
  const done = performance.now();
  await sleep(300);
  const blockedMs = writer.maxGapMs(t0, done + 300);
  c.disconnect();
  for (const n of fleet.nodes) {
    if (n.id === target.id || n.id === primary.id) continue;
    const r = n.client();
    await r.call('REPLICAOF', target.host, String(target.port));
    r.disconnect();
  }
  await waitForReplication(fleet, target.id);
  return { blockedMs, newPrimary: target.id };
}

async function switchoverRedis(runs: number, flavor: 'redis' | 'valkey') {
  const lab = await startLab({ cluster: 'bench', flavor });
  const worker = await startLabWorker(lab);
  const writer = new AckedWriter(lab.fleet.nodes, lab.fleet.password).start();
  const ours: number[] = [];
  const base: number[] = [];
  const pauses: number[] = [];
  try {
    await sleep(500);
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      const r = await runSwitchover({ cluster: lab.fleet.cluster, wait: true, address: lab.address, taskQueue: lab.taskQueue }, { out: () => undefined, err: log, isTTY: false });
      const t1 = performance.now();
      if (r.exitCode !== 0 || !r.report) throw new Error(`switchover ${i} failed with exit ${r.exitCode}`);
      await sleep(300);
      ours.push(writer.maxGapMs(t0, t1 + 300));
      pauses.push(r.report.writePauseMs);
      const b = await serverFailover(lab.fleet, writer);
      base.push(b.blockedMs);
      log(`[bench] run ${i + 1}/${runs}: handover ${r.report.oldPrimary}->${r.report.newPrimary} writer-blocked ${ours[i].toFixed(1)} ms (step ${r.report.writePauseMs} ms) | FAILOVER ->${b.newPrimary} writer-blocked ${b.blockedMs.toFixed(1)} ms`);
      await sleep(200);
    }
  } finally {
    await writer.stop();
    await worker.stop();
  }
  const primary = (await lab.fleet.primary())!;
  await waitForReplication(lab.fleet, primary.id);
  const lost = (await writer.missingOn(primary.host, primary.port)).length;
  const acked = writer.ackedKeys.length;
  await writer.close();
  await lab.close();
  const p50 = percentile(ours, 50);
  const b50 = percentile(base, 50);
  return {
    name: 'switchover-redis',
    flavor,
    runs,
    ackedWrites: acked,
    lostAckedWrites: lost,
    writeBlockedMs: { p50, max: percentile(ours, 100) },
    handoverStepMs: { p50: percentile(pauses, 50), max: percentile(pauses, 100) },
    baseline: { name: 'redis-FAILOVER', runs, writeBlockedMs: { p50: b50, max: percentile(base, 100) } },
    ratioP50: Math.round((p50 / b50) * 1000) / 1000,
  };
}

/** Sum of the gaps longer than 50 ms between consecutive acks within [from, to]. */
function blockedMs(writer: AckLog, from: number, to: number): number {
  let sum = 0;
  for (let i = 1; i < writer.ackTimes.length; i++) {
    const a = writer.ackTimes[i - 1];
    const b = writer.ackTimes[i];
    if (b < from || a > to) continue;
    if (b - a > 50) sum += b - a;
  }
  return Math.round(sum);
}

async function rollingRestartRedis() {
  const lab = await startLab({ cluster: 'rollbench' });
  const sentinels = await startSentinels(lab.fleet, { downAfterMs: 1000 });
  writeFileSync(lab.inventory, lab.fleet.inventoryYaml({ sentinelBlock: sentinels.inventoryBlock() }));
  const worker = await startLabWorker(lab);
  const { fleet } = lab;
  const measure = async (name: string, roll: () => Promise<void>) => {
    // A fresh writer per roll, so lost writes are counted against what this roll's writer was told.
    await waitForReplication(fleet, (await fleet.primary())!.id, 60_000);
    const writer = new AckedWriter(fleet.nodes, fleet.password).start();
    await sleep(500);
    const t0 = performance.now();
    await roll();
    const t1 = performance.now();
    await sleep(500);
    await writer.stop();
    let primary = await fleet.primary();
    for (let i = 0; !primary && i < 100; i++) {
      await sleep(100);
      primary = await fleet.primary();
    }
    await waitForReplication(fleet, primary!.id, 60_000);
    const lost = (await writer.missingOn(primary!.host, primary!.port)).length;
    const out = { name, durationMs: Math.round(t1 - t0), writeBlockedMs: blockedMs(writer, t0, t1 + 500), maxGapMs: Math.round(writer.maxGapMs(t0, t1 + 500)), ackedWrites: writer.ackedKeys.length, lostAckedWrites: lost };
    await writer.close();
    log(`[bench] ${JSON.stringify(out)}`);
    return out;
  };
  try {
    const ours = await measure('handover-rolling-restart', async () => {
      const r = await runRollingRestart({ cluster: fleet.cluster, set: ['hz=21'], wait: true, address: lab.address, taskQueue: lab.taskQueue }, { out: () => undefined, err: log, isTTY: false });
      if (r.exitCode !== 0) throw new Error(`rolling restart failed: exit ${r.exitCode}`);
    });
    const naive = await measure('naive-restart-in-place', async () => {
      const primary = (await fleet.primary())!;
      for (const n of [...fleet.nodes.filter((x) => x.id !== primary.id), primary]) {
        const c = n.client();
        await c.config('SET', 'hz', '22');
        await c.call('CONFIG', 'REWRITE');
        await c.call('SHUTDOWN').catch(() => undefined);
        c.disconnect();
        await sleep(100);
        await n.start();
        if (n.id !== primary.id) await waitForReplication(fleet, primary.id, 60_000).catch(() => undefined);
      }
      // Let Sentinel act (or not) and the fleet settle.
      await sleep(3000);
    });
    return { name: 'rolling-restart-redis', nodes: fleet.nodes.length, persistence: 'off (save "", appendonly no)', sentinelDownAfterMs: 1000, handover: ours, baseline: { ...naive, name: 'naive-restart-in-place-with-sentinel' } };
  } finally {
    await worker.stop();
    await sentinels.stop();
    await lab.close();
  }
}

async function switchoverMysql(runs: number) {
  const lab = await startMysqlLab({ cluster: 'benchmaria' });
  const { fleet } = lab;
  const worker = await startLabWorker(lab);
  const writer = new SqlWriter(fleet.nodes, fleet.appUser, fleet.appPassword).start();
  const blocked: number[] = [];
  const pauses: number[] = [];
  const durations: number[] = [];
  let result: object | undefined;
  try {
    await sleep(500);
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      const r = await runSwitchover({ cluster: fleet.cluster, wait: true, address: lab.address, taskQueue: lab.taskQueue }, { out: () => undefined, err: log, isTTY: false });
      const t1 = performance.now();
      if (r.exitCode !== 0 || !r.report) throw new Error(`switchover ${i} failed with exit ${r.exitCode}`);
      const rep = r.report as unknown as MysqlSwitchoverReport;
      await sleep(300);
      blocked.push(Math.round(writer.maxGapMs(t0, t1 + 300) * 10) / 10);
      pauses.push(rep.writePauseMs);
      durations.push(Math.round(t1 - t0));
      log(`[bench] run ${i + 1}/${runs}: ${rep.oldPrimary}->${rep.newPrimary} writer-blocked ${blocked[i]} ms (fence->writable ${rep.writePauseMs} ms, killed ${rep.killedSessions ?? 0} sessions) in ${durations[i]} ms`);
      await sleep(200);
    }
    const stats = await writer.stop();
    const primary = Object.entries(await fleet.state()).find(([, s]) => s.up && s.readOnly === false)?.[0];
    if (!primary) throw new Error('no writable node after the runs');
    await fleet.waitForReplication(primary, 60_000);
    const missing = await Promise.all(fleet.nodes.map(async (n) => (await writer.missingOn(n)).length));
    result = {
      name: 'switchover-mysql',
      flavor: 'mariadb',
      runs,
      nodes: fleet.nodes.length,
      ackedWrites: stats.acked,
      lostAckedWrites: Math.max(...missing),
      writerErrors: writer.errorCodes,
      writeBlockedMs: { p50: percentile(blocked, 50), max: percentile(blocked, 100) },
      fenceToWritableMs: { p50: percentile(pauses, 50), max: percentile(pauses, 100) },
      switchoverMs: { p50: percentile(durations, 50), max: percentile(durations, 100) },
    };
  } finally {
    await writer.close();
    await worker.stop();
    await lab.close();
  }
  return result!;
}

async function rollingRestartMysql() {
  const lab = await startMysqlLab({ cluster: 'rollmaria', inventory: { controller: true } });
  const { fleet } = lab;
  const worker = await startLabWorker(lab);
  const writableNode = async () => Object.entries(await fleet.state()).find(([, s]) => s.up && s.readOnly === false)?.[0];
  const measure = async (name: string, roll: () => Promise<void>) => {
    await fleet.waitForReplication((await writableNode())!, 60_000);
    const writer = new SqlWriter(fleet.nodes, fleet.appUser, fleet.appPassword).start();
    await sleep(500);
    const t0 = performance.now();
    await roll();
    const t1 = performance.now();
    await sleep(500);
    const stats = await writer.stop();
    let primary = await writableNode();
    for (let i = 0; !primary && i < 100; i++) {
      await sleep(100);
      primary = await writableNode();
    }
    await fleet.waitForReplication(primary!, 60_000);
    const missing = await Promise.all(fleet.nodes.map(async (n) => (await writer.missingOn(n)).length));
    const out = { name, durationMs: Math.round(t1 - t0), writeBlockedMs: blockedMs(writer, t0, t1 + 500), maxGapMs: Math.round(writer.maxGapMs(t0, t1 + 500)), ackedWrites: stats.acked, lostAckedWrites: Math.max(...missing) };
    await writer.close();
    log(`[bench] ${JSON.stringify(out)}`);
    return out;
  };
  try {
    const ours = await measure('handover-rolling-restart', async () => {
      const r = await runRollingRestart({ cluster: fleet.cluster, set: ['max_connections=300'], wait: true, address: lab.address, taskQueue: lab.taskQueue }, { out: () => undefined, err: log, isTTY: false });
      if (r.exitCode !== 0) throw new Error(`rolling restart failed: exit ${r.exitCode}`);
    });
    const naive = await measure('naive-restart-in-place', async () => {
      const spec = loadInventory(lab.inventory).clusters[0];
      const controller = controllerFor(spec.controller, spec.name, 'mysql');
      const primary = (await writableNode())!;
      for (const n of [...fleet.nodes.filter((x) => x.id !== primary), fleet.nodes.find((x) => x.id === primary)!]) {
        const [{ p }] = await fleet.sql<{ p: string }[]>(n.id, 'SELECT @@pid_file AS p');
        await controller.restart({ node: spec.nodes.find((x) => x.id === n.id)!, set: { max_connections: '301' }, pidFile: p });
        for (;;) {
          try {
            await fleet.sql(n.id, 'SELECT 1');
            break;
          } catch {
            await sleep(20);
          }
        }
        // The primary comes back read-only (read_only=ON in its configuration): an operator makes it writable.
        if (n.id === primary) await fleet.sql(n.id, 'SET GLOBAL read_only = OFF');
        else await fleet.waitForReplication(primary, 60_000).catch(() => undefined);
      }
    });
    return { name: 'rolling-restart-mysql', flavor: 'mariadb', nodes: fleet.nodes.length, handover: ours, baseline: naive };
  } finally {
    await worker.stop();
    await lab.close();
  }
}

async function main() {
  const { name, json, opts } = parseArgs(process.argv.slice(2));
  const runs = Number(opts.runs ?? 10);
  let result: object;
  switch (name) {
    case 'switchover-redis':
      result = await switchoverRedis(runs, (opts.flavor as 'redis' | 'valkey') ?? 'redis');
      break;
    case 'switchover-redis-sentinel':
      result = await switchoverRedisSentinelBench(Number(opts.runs ?? 5));
      break;
    case 'rolling-restart-redis':
      result = await rollingRestartRedis();
      break;
    case 'switchover-mysql':
      result = await switchoverMysql(runs);
      break;
    case 'rolling-restart-mysql':
      result = await rollingRestartMysql();
      break;
    case 'failover-redis':
      result = await failoverRedisBench(Number(opts.runs ?? 5));
      break;
    case 'failover-mysql':
      result = await failoverMysqlBench(Number(opts.runs ?? 5));
      break;
    case 'failover-redis-empty-restart':
      result = await failoverRedisEmptyRestartBench(Number(opts.runs ?? 1));
      break;
    case 'step-overhead':
      result = await stepOverheadBench(Number(opts.steps ?? 50), Number(opts.runs ?? 3));
      break;
    case 'backup-mysql':
      result = await backupMysqlBench(Number(opts.runs ?? 3), Number(opts.rows ?? 300_000), opts.storage === 's3' ? 's3' : 'local');
      break;
    case 'backup-mysql-physical':
      result = await backupMysqlPhysicalBench(Number(opts.mib ?? 1100));
      break;
    case 'backup-s3-stream':
      result = await backupS3StreamBench(Number(opts.mib ?? 512));
      break;
    default:
      process.stderr.write('usage: npm run bench -- switchover-redis|switchover-redis-sentinel|rolling-restart-redis|switchover-mysql|rolling-restart-mysql|failover-redis|failover-mysql|failover-redis-empty-restart|step-overhead|backup-mysql|backup-mysql-physical|backup-s3-stream [--json] [--runs N] [--flavor redis|valkey]\n');
      process.exit(2);
  }
  if (!json) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  process.stdout.write(JSON.stringify(result) + '\n');
}

main().catch((e) => {
  process.stderr.write(`bench: ${(e as Error).stack}\n`);
  process.exit(1);
});
