/**
 * Unplanned-failover benchmarks (called from bench/run.ts):
 *
 *  failover-redis: N runs, each on a fresh 3-node Redis 7.0 replication fleet under one acked writer: start the
 *    Handover monitor, SIGKILL the primary, measure from the kill to the first write acknowledged by the new
 *    primary (detection + recovery), and to the monitor's failover completing with the other replica following
 *    it (verified). Beside it in the same run, N runs of the baseline: a fresh fleet watched by 3 redis-sentinel
 *    processes (quorum 2) with down-after-milliseconds = our detection window (probeIntervalMs x
 *    probesToConfirm), same kill, same measurement (kill to the first acknowledged write on the new primary).
 *  failover-mysql: N runs on a fresh MariaDB 10.11 fleet (1 primary + 2 GTID replicas) under the transactional
 *    writer: monitor, SIGKILL, kill to the first acknowledged commit on the new primary, and to the failover
 *    completing (the other replica following, verified).
 */
import { sharedWorkflowBundle } from '../sandbox/bundle';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NativeConnection } from '@temporalio/worker';
import { createActivities } from '../activities';
import { runMonitor } from '../client/commands/monitor';
import { loadInventory } from '../inventory/load';
import { startMariaFleet } from '../sandbox/mariadb';
import { sleep } from '../sandbox/ports';
import { startRedisFleet, waitForReplication, type RedisFleet } from '../sandbox/redis';
import { startSentinels } from '../sandbox/sentinel';
import { SqlWriter } from '../sandbox/sql-writer';
import { startDevServer } from '../sandbox/temporal';
import { AckedWriter, type AckLog } from '../sandbox/writer';
import type { MonitorStatus } from '../workflows/monitor';
import { createHandoverWorker } from '../worker/worker';
import { percentile } from './lab';

const log = (m: string) => process.stderr.write(m + '\n');
const quiet = { out: () => undefined, err: log, isTTY: false };

/** The policy both engines run with: detection window = 300 ms x 3 consecutive DeadMaster rounds. */
export const FAILOVER_POLICY = { probeIntervalMs: 300, probesToConfirm: 3, failoverBlockMs: 600_000 };
const WINDOW_MS = FAILOVER_POLICY.probeIntervalMs * FAILOVER_POLICY.probesToConfirm;

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** One dev server and one in-process worker whose inventory is whatever file `inventory.path` names now. */
export async function startBench() {
  const server = await startDevServer();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'handover-bench-failover-'));
  const bundlePath = await sharedWorkflowBundle();
  const inventory = { path: path.join(dir, 'empty.yaml') };
  writeFileSync(inventory.path, 'clusters: []\n');
  const connection = await NativeConnection.connect({ address: server.address });
  const taskQueue = 'bench-failover';
  const worker = await createHandoverWorker({ connection, taskQueue, workflowBundlePath: bundlePath, activities: createActivities({ inventory: () => loadInventory(inventory.path) }) });
  const running = worker.run();
  return {
    address: server.address,
    taskQueue,
    inventory,
    async close() {
      worker.shutdown();
      await running;
      await connection.close();
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

type Bench = Awaited<ReturnType<typeof startBench>>;

/** Kill -> first ack after the kill on a node other than `killed` (the writer's largest gap from the kill on). */
function recoveryMs(writer: AckLog, killedAt: number): number {
  return Math.round(writer.maxGapMs(killedAt));
}

async function monitoredRun(
  b: Bench,
  cluster: string,
  o: { primary: string; kill: () => Promise<void>; writer: AckLog & { primariesSeen: string[] }; followersOk: (newPrimary: string) => Promise<boolean> },
): Promise<{ detectionRecoveryMs: number; failoverDoneMs: number; followersMs: number; newPrimary: string; monitorDetectMs: number }> {
  const opts = { cluster, address: b.address, taskQueue: b.taskQueue };
  const status = async () => (await runMonitor({ ...opts, status: true, json: true }, quiet)).status as MonitorStatus;
  if ((await runMonitor(opts, quiet)).exitCode !== 0) throw new Error('monitor did not start');
  await until('monitor sees the primary', async () => (await status()).lastKnown?.primary === o.primary);
  await sleep(1000);
  const killedAt = o.writer.now();
  await o.kill();
  const s = await until('a failover', async () => {
    const x = await status();
    return x.failovers.length === 1 && x;
  });
  const failoverDoneMs = Math.round(o.writer.now() - killedAt);
  const newPrimary = s.failovers[0].to;
  await until('writes on the new primary', async () => o.writer.primariesSeen.includes(newPrimary) && o.writer.ackTimes[o.writer.ackTimes.length - 1] > killedAt);
  await until('the other replica follows', () => o.followersOk(newPrimary));
  const followersMs = Math.round(o.writer.now() - killedAt);
  await runMonitor({ ...opts, stop: true }, quiet);
  return { detectionRecoveryMs: recoveryMs(o.writer, killedAt), failoverDoneMs, followersMs: Math.min(followersMs, failoverDoneMs), newPrimary, monitorDetectMs: s.failovers[0].detectMs };
}

const FENCE_CONFIG = ['min-replicas-to-write 1', 'min-replicas-max-lag 2', 'repl-timeout 3'];

async function redisFollowersOk(fleet: RedisFleet, newPrimary: string, dead: string): Promise<boolean> {
  const roles = await fleet.roles();
  return roles[newPrimary] === 'master' && fleet.nodes.filter((n) => n.id !== newPrimary && n.id !== dead).every((n) => roles[n.id] === 'slave');
}

export async function failoverRedisBench(runs: number) {
  const b = await startBench();
  const ours: { detectionRecoveryMs: number; failoverDoneMs: number; monitorDetectMs: number }[] = [];
  const base: { detectionRecoveryMs: number; followersMs: number }[] = [];
  try {
    for (let i = 0; i < runs; i++) {
      // Handover's monitor.
      {
        const fleet = await startRedisFleet({ cluster: `fobench-${i}`, extraConfig: FENCE_CONFIG });
        try {
          b.inventory.path = fleet.writeInventory(undefined, { policy: FAILOVER_POLICY });
          const primary = (await fleet.primary())!;
          const writer = new AckedWriter(fleet.nodes, fleet.password).start();
          const r = await monitoredRun(b, fleet.cluster, {
            primary: primary.id,
            writer,
            kill: () => primary.stop('SIGKILL'),
            followersOk: (np) => redisFollowersOk(fleet, np, primary.id),
          });
          await writer.close();
          ours.push(r);
          log(`[bench] handover run ${i + 1}: ${JSON.stringify(r)}`);
        } finally {
          await fleet.stop();
        }
      }
      // Baseline: redis-sentinel, down-after-milliseconds = our window (fleet and Sentinels built as in
      // test/integration/sentinel-redis.test.ts).
      {
        const fleet = await startRedisFleet({ cluster: `snbench-${i}` });
        const sentinels = await startSentinels(fleet, { downAfterMs: WINDOW_MS });
        try {
          const primary = (await fleet.primary())!;
          await waitForReplication(fleet, primary.id, 30_000);
          const writer = new AckedWriter(fleet.nodes, fleet.password).start();
          await sleep(1000);
          const killedAt = writer.now();
          await primary.stop('SIGKILL');
          await until('sentinel promoted a replica and writes resumed', async () => writer.primariesSeen.length > 1 && writer.ackTimes[writer.ackTimes.length - 1] > killedAt, 60_000);
          const detectionRecoveryMs = recoveryMs(writer, killedAt);
          const np = writer.primariesSeen[writer.primariesSeen.length - 1];
          await until('sentinel repointed the other replica', () => redisFollowersOk(fleet, np, primary.id), 60_000);
          const followersMs = Math.round(writer.now() - killedAt);
          await writer.close();
          base.push({ detectionRecoveryMs, followersMs });
          log(`[bench] sentinel run ${i + 1}: ${JSON.stringify({ detectionRecoveryMs, followersMs, newPrimary: np })}`);
        } finally {
          await sentinels.stop();
          await fleet.stop();
        }
      }
    }
  } finally {
    await b.close();
  }
  const stat = (xs: number[]) => ({ p50: percentile(xs, 50), max: Math.max(...xs) });
  return {
    name: 'failover-redis',
    runs,
    detectionWindowMs: WINDOW_MS,
    policy: FAILOVER_POLICY,
    measure: 'SIGKILL of the primary under one acked writer -> first write acknowledged by the new primary (largest gap between two acks)',
    detectionRecoveryMs: stat(ours.map((r) => r.detectionRecoveryMs)),
    failoverDoneMs: stat(ours.map((r) => r.failoverDoneMs)),
    baseline: {
      name: 'redis-sentinel',
      sentinels: 3,
      quorum: 2,
      downAfterMs: WINDOW_MS,
      detectionRecoveryMs: stat(base.map((r) => r.detectionRecoveryMs)),
      othersFollowingMs: stat(base.map((r) => r.followersMs)),
    },
    raw: { handover: ours.map((r) => r.detectionRecoveryMs), sentinel: base.map((r) => r.detectionRecoveryMs) },
  };
}

export async function failoverMysqlBench(runs: number) {
  const b = await startBench();
  const ours: { detectionRecoveryMs: number; failoverDoneMs: number; monitorDetectMs: number }[] = [];
  try {
    for (let i = 0; i < runs; i++) {
      const fleet = await startMariaFleet({ cluster: `fomb-${i}` });
      try {
        b.inventory.path = fleet.writeInventory(undefined, { policy: FAILOVER_POLICY });
        const primary = fleet.nodes[0];
        const writer = new SqlWriter(fleet.nodes, fleet.appUser, fleet.appPassword).start();
        const r = await monitoredRun(b, fleet.cluster, {
          primary: primary.id,
          writer,
          kill: () => primary.stop('SIGKILL'),
          followersOk: async (np) => {
            const st = await fleet.state();
            const p = fleet.nodes.find((n) => n.id === np)!;
            return st[np].readOnly === false && fleet.nodes.filter((n) => n.id !== np && n.id !== primary.id).every((n) => st[n.id].source === `127.0.0.1:${p.port}` && st[n.id].io === 'Yes');
          },
        });
        await writer.close();
        ours.push(r);
        log(`[bench] mysql run ${i + 1}: ${JSON.stringify(r)}`);
      } finally {
        await fleet.stop();
      }
    }
  } finally {
    await b.close();
  }
  const stat = (xs: number[]) => ({ p50: percentile(xs, 50), max: Math.max(...xs) });
  return {
    name: 'failover-mysql',
    runs,
    detectionWindowMs: WINDOW_MS,
    policy: FAILOVER_POLICY,
    measure: 'SIGKILL of the MariaDB primary under the transactional writer -> first commit acknowledged by the new primary (largest gap between two acks)',
    detectionRecoveryMs: stat(ours.map((r) => r.detectionRecoveryMs)),
    failoverDoneMs: stat(ours.map((r) => r.failoverDoneMs)),
    raw: ours.map((r) => r.detectionRecoveryMs),
  };
}
