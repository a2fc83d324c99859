/**
 * Crash-safety harness:  npm run chaos -- switchover-redis [--json] [--points p1,p2] [--flavor valkey]
 *
 * For each kill point, the real worker process (worker/main.ts) runs with a failpoint armed and SIGKILLs itself
 * exactly there (at an activity boundary: before it ran, or after it acted but before Temporal heard back; or
 * inside a step); a fresh worker is started, and the run must complete with one primary and every
 * acknowledged write present. A writer runs throughout; a sampler watches for two primaries at once.
 * Last line: {"killPoints":N,"completed":N,"lostAckedWrites":0,"multiplePrimaries":0,...}
 */
import { WorkflowFailedError } from '@temporalio/client';
import Redis from 'ioredis';
import { runSwitchover } from '../client/commands/switchover';
import { operationWorkflowId } from '../core/ids';
import { waitForReplication, type RedisFleet } from '../sandbox/redis';
import { sleep } from '../sandbox/ports';
import { AckedWriter } from '../sandbox/writer';
import { parseArgs, spawnWorker, startLab, type Lab } from './lab';

/** Every activity boundary of a Redis switchover, plus the kill points inside its steps. */
export const SWITCHOVER_REDIS_POINTS = [
  ...['describeCluster', 'probeRedisCluster', 'waitForRedisCatchUp', 'vetoRedisHandover', 'ensureRedisHandedOver', 'ensureRedisReplicaOf#1', 'ensureRedisReplicaOf#2', 'verifyRedisTopology'].flatMap(
    (a) => [`before:${a}`, `after:${a}`],
  ),
  'inside:waitForRedisCatchUp.loop',
  'inside:ensureRedisHandedOver.paused',
  'inside:ensureRedisHandedOver.demoted',
  'inside:ensureRedisReplicaOf.beforeAct',
];

export interface PointResult {
  point: string;
  killed: boolean;
  completed: boolean;
  lostAckedWrites: number;
  multiplePrimaries: number;
  newPrimary?: string;
  acked: number;
  writeBlockedMs: number;
  ms: number;
  error?: string;
}

export interface ChaosSummary {
  killPoints: number;
  completed: number;
  lostAckedWrites: number;
  multiplePrimaries: number;
  runbook: string;
  points: PointResult[];
}

/** Samples every node's ROLE; a sample with two masters counts only if an immediate re-sample agrees. */
class SplitBrainSampler {
  count = 0;
  private stopped = false;
  private loop?: Promise<void>;
  private clients: Redis[];
  constructor(fleet: RedisFleet) {
    this.clients = fleet.nodes.map((n) => {
      const c = new Redis({ host: n.host, port: n.port, password: fleet.password, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => 50, commandTimeout: 500 });
      c.on('error', () => undefined);
      return c;
    });
  }
  private async masters(): Promise<number> {
    const r = await Promise.all(this.clients.map((c) => (c.call('ROLE') as Promise<unknown[]>).then((x) => x[0]).catch(() => 'down')));
    return r.filter((x) => x === 'master').length;
  }
  start(): this {
    this.loop = (async () => {
      while (!this.stopped) {
        if ((await this.masters()) > 1 && (await this.masters()) > 1) this.count++;
        await sleep(50);
      }
    })();
    return this;
  }
  async stop(): Promise<number> {
    this.stopped = true;
    await this.loop;
    for (const c of this.clients) c.disconnect();
    return this.count;
  }
}

export async function runChaosPoint(lab: Lab, point: string, log: (m: string) => void): Promise<PointResult> {
  const t0 = Date.now();
  const { fleet } = lab;
  const worker = spawnWorker(lab, point, log);
  const writer = new AckedWriter(fleet.nodes, fleet.password).start();
  const sampler = new SplitBrainSampler(fleet).start();
  let restarted: ReturnType<typeof spawnWorker> | undefined;
  const result: PointResult = { point, killed: false, completed: false, lostAckedWrites: 0, multiplePrimaries: 0, acked: 0, writeBlockedMs: 0, ms: 0 };
  try {
    await sleep(200);
    const started = await runSwitchover({ cluster: fleet.cluster, address: lab.address, taskQueue: lab.taskQueue, requestedBy: `chaos ${point}` }, { out: () => undefined, err: log, isTTY: false });
    if (started.exitCode !== 0) throw new Error(`could not start: exit ${started.exitCode}`);
    const handle = lab.client.workflow.getHandle(operationWorkflowId(fleet.cluster));
    const outcome = await Promise.race([
      worker.exited.then((e) => (e.signal === 'SIGKILL' ? 'killed' : `worker exited ${e.code ?? e.signal}`)),
      handle.result().then(
        () => 'finished before the kill point',
        (e) => `failed before the kill point: ${(e as Error).message}`,
      ),
      sleep(90_000).then(() => 'kill point not reached in 90 s'),
    ]);
    result.killed = outcome === 'killed';
    if (!result.killed) result.error = outcome;
    restarted = spawnWorker(lab, undefined, log);
    const report = (await Promise.race([handle.result(), sleep(180_000).then(() => Promise.reject(new Error('run did not finish within 180 s after the restart')))])) as {
      newPrimary: string;
    };
    result.completed = true;
    result.newPrimary = report.newPrimary;
  } catch (e) {
    result.error = e instanceof WorkflowFailedError ? `workflow failed: ${(e.cause as Error)?.message ?? e.message}` : (e as Error).message;
  } finally {
    await sleep(200);
    const stats = await writer.stop();
    result.multiplePrimaries = await sampler.stop();
    result.acked = stats.acked;
    result.writeBlockedMs = stats.maxGapMs;
    const primary = await fleet.primary();
    if (!primary) {
      result.multiplePrimaries += 1;
      result.error = (result.error ? result.error + '; ' : '') + `end state has no single primary: ${JSON.stringify(await fleet.roles())}`;
    } else {
      await waitForReplication(fleet, primary.id, 30_000).catch((e) => (result.error = (e as Error).message));
      result.lostAckedWrites = (await writer.missingOn(primary.host, primary.port)).length;
    }
    await writer.close();
    await worker.stop();
    await restarted?.stop();
    result.ms = Date.now() - t0;
  }
  return result;
}

export async function runChaos(lab: Lab, points: string[], log: (m: string) => void): Promise<ChaosSummary> {
  const results: PointResult[] = [];
  for (const p of points) {
    const r = await runChaosPoint(lab, p, log);
    log(`[chaos] ${p}: killed=${r.killed} completed=${r.completed} lost=${r.lostAckedWrites} split=${r.multiplePrimaries} blocked=${r.writeBlockedMs}ms ${r.ms}ms${r.error ? ` error=${r.error}` : ''}`);
    results.push(r);
  }
  return {
    killPoints: results.filter((r) => r.killed).length,
    completed: results.filter((r) => r.killed && r.completed).length,
    lostAckedWrites: results.reduce((n, r) => n + r.lostAckedWrites, 0),
    multiplePrimaries: results.reduce((n, r) => n + r.multiplePrimaries, 0),
    runbook: 'switchover-redis',
    points: results,
  };
}

async function main() {
  const { name, json, opts } = parseArgs(process.argv.slice(2));
  if (name !== 'switchover-redis') {
    process.stderr.write(`usage: npm run chaos -- switchover-redis [--json] [--points p1,p2] [--flavor redis|valkey]\n`);
    process.exit(2);
  }
  const log = (m: string) => process.stderr.write(m + '\n');
  const lab = await startLab({ cluster: 'chaos', flavor: (opts.flavor as 'redis' | 'valkey') ?? 'redis' });
  try {
    const points = opts.points ? opts.points.split(',') : SWITCHOVER_REDIS_POINTS;
    const s = await runChaos(lab, points, log);
    if (!json) for (const p of s.points) process.stdout.write(`${p.point.padEnd(40)} killed=${p.killed} completed=${p.completed} lost=${p.lostAckedWrites} split=${p.multiplePrimaries}\n`);
    const { points: detail, ...head } = s;
    process.stdout.write(JSON.stringify({ ...head, points: detail.map((p) => ({ point: p.point, killed: p.killed, completed: p.completed, lost: p.lostAckedWrites, writeBlockedMs: p.writeBlockedMs, ms: p.ms, ...(p.error ? { error: p.error } : {}) })) }) + '\n');
    process.exitCode = s.completed === points.length && s.lostAckedWrites === 0 && s.multiplePrimaries === 0 ? 0 : 1;
  } finally {
    await lab.close();
  }
}

if (require.main === module) {
  main().catch((e) => {
    process.stderr.write(`chaos: ${(e as Error).stack}\n`);
    process.exit(1);
  });
}
