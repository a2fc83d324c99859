/**
 * Crash-safety harness:  npm run chaos -- switchover-redis|rolling-restart-redis|rolling-restart-redis-sentinel|failover-redis|switchover-mysql|rolling-restart-mysql|all [--json] [--points p1,p2] [--flavor valkey]
 *
 * For each kill point, the real worker process (worker/main.ts) runs with a failpoint armed and SIGKILLs itself
 * exactly there (at an activity boundary: before it ran, or after it acted but before Temporal heard back; or
 * inside a step); a fresh worker is started, and the run must complete with one primary and every
 * acknowledged write present. A writer runs throughout; a sampler watches for two primaries at once.
 * Last line: {"killPoints":N,"completed":N,"lostAckedWrites":0,"multiplePrimaries":0,...}
 */
import { WorkflowFailedError } from '@temporalio/client';
import Redis from 'ioredis';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities } from '../activities';
import { MARIADB_BACKUP_GRANTS } from '../activities/backup/mysql';
import type { EnsureMysqlRejoinedResult } from '../activities/mysql/failover';
import { runBackupList, runBackupRun } from '../client/commands/backup';
import { runFailover } from '../client/commands/failover';
import { runRollingRestart } from '../client/commands/rolling-restart';
import { loadInventory } from '../inventory/load';
import { runSwitchover } from '../client/commands/switchover';
import { operationWorkflowId } from '../core/ids';
import { waitForReplication, type RedisFleet } from '../sandbox/redis';
import { sleep } from '../sandbox/ports';
import { AckedWriter } from '../sandbox/writer';
import type { MariaFleet, NodeState } from '../sandbox/mariadb';
import { SqlWriter } from '../sandbox/sql-writer';
import { parseArgs, spawnWorker, startLab, startMysqlLab, type Lab, type MysqlLab } from './lab';

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

/** A timer that does not keep the process alive once everything else is done (the chaos run exits at once). */
const unrefSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

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

/** A runbook under chaos: how to start one run, and what must hold afterwards beyond one primary and 0 lost. */
export interface Scenario {
  name: string;
  points: string[];
  /** How the lab is built (default: a 3-node replication fleet). */
  lab?: { sentinels?: boolean; extraConfig?: string[]; policy?: Record<string, number | string> };
  /** Once, before the first point (e.g. add a backup block to the lab's inventory). */
  prepare?(lab: Lab): void | Promise<void>;
  /** Start the i-th run without waiting (as `handover … ` without --wait does). */
  start(lab: Lab, i: number, log: (m: string) => void): Promise<void>;
  /** Snapshot taken before the run, handed to `check`. */
  before?(lab: Lab): Promise<unknown>;
  /** Run after the writer and the split-brain sampler stopped, before the end state is read (e.g. restart a killed node). */
  settle?(lab: Lab): Promise<string[]>;
  /** Problems with the end state (empty when it is right), e.g. a node restarted twice. */
  check?(lab: Lab, i: number, before: unknown): Promise<string[]>;
}

const quietIO = (log: (m: string) => void) => ({ out: () => undefined, err: log, isTTY: false });

export const SWITCHOVER_REDIS: Scenario = {
  name: 'switchover-redis',
  points: SWITCHOVER_REDIS_POINTS,
  async start(lab, i, log) {
    const r = await runSwitchover({ cluster: lab.fleet.cluster, address: lab.address, taskQueue: lab.taskQueue, requestedBy: `chaos run ${i}` }, quietIO(log));
    if (r.exitCode !== 0) throw new Error(`could not start: exit ${r.exitCode}`);
  },
};

/** How many times each node's server has started (its log says "Server initialized" once per start). */
function startsPerNode(fleet: RedisFleet): Record<string, number> {
  return Object.fromEntries(fleet.nodes.map((n) => [n.id, (readFileSync(path.join(n.dir, 'server.log'), 'utf8').match(/Server initialized/g) ?? []).length]));
}

export const ROLLING_RESTART_REDIS_POINTS = [
  ...['describeCluster', 'probeRedisSpecs', 'ensureRedisConfigPersisted', 'ensureRedisNodeRestarted', 'waitForRedisNodeReady', 'ensureRedisHandedOver', 'ensureRedisNodeRestarted#3', 'verifyRedisTopology#2'].flatMap(
    (a) => [`before:${a}`, `after:${a}`],
  ),
  'inside:ensureRedisNodeRestarted.beforeRestart',
  'inside:ensureRedisHandedOver.demoted',
];

export const ROLLING_RESTART_REDIS: Scenario = {
  name: 'rolling-restart-redis',
  points: ROLLING_RESTART_REDIS_POINTS,
  async start(lab, i, log) {
    const r = await runRollingRestart({ cluster: lab.fleet.cluster, set: [`hz=${11 + i}`], address: lab.address, taskQueue: lab.taskQueue, requestedBy: `chaos run ${i}` }, quietIO(log));
    if (r.exitCode !== 0) throw new Error(`could not start: exit ${r.exitCode}`);
  },
  async before(lab) {
    return startsPerNode(lab.fleet);
  },
  async check(lab, i, before) {
    const problems: string[] = [];
    const starts = startsPerNode(lab.fleet);
    for (const n of lab.fleet.nodes) {
      const extra = starts[n.id] - (before as Record<string, number>)[n.id];
      if (extra !== 1) problems.push(`${n.id} started ${extra} times (want exactly 1)`);
      const c = n.client();
      const hz = ((await c.config('GET', 'hz')) as string[])[1];
      c.disconnect();
      if (hz !== String(11 + i)) problems.push(`${n.id} runs hz=${hz}, wanted ${11 + i}`);
    }
    return problems;
  },
};

/** Sentinel topology: the primary is handed over through SENTINEL FAILOVER, then every Sentinel is restarted. */
export const ROLLING_RESTART_REDIS_SENTINEL_POINTS = [
  ...['describeCluster', 'probeRedisSpecs', 'ensureRedisConfigPersisted', 'ensureRedisNodeRestarted', 'waitForRedisNodeReady', 'probeRedisCluster', 'waitForRedisCatchUp', 'ensureRedisPromotionPinned', 'ensureRedisSentinelHandover', 'ensureRedisPromotionUnpinned', 'ensureRedisNodeRestarted#3', 'probeRedisSentinels', 'ensureRedisSentinelRestarted#2', 'verifyRedisTopology#2'].flatMap(
    (a) => [`before:${a}`, `after:${a}`],
  ),
  'inside:ensureRedisSentinelHandover.demoted',
];

export const ROLLING_RESTART_REDIS_SENTINEL: Scenario = {
  name: 'rolling-restart-redis-sentinel',
  lab: { sentinels: true },
  points: ROLLING_RESTART_REDIS_SENTINEL_POINTS,
  async start(lab, i, log) {
    const r = await runRollingRestart({ cluster: lab.fleet.cluster, set: [`hz=${11 + i}`], includeSentinels: true, address: lab.address, taskQueue: lab.taskQueue, requestedBy: `chaos run ${i}` }, quietIO(log));
    if (r.exitCode !== 0) throw new Error(`could not start: exit ${r.exitCode}`);
  },
  before: ROLLING_RESTART_REDIS.before,
  async check(lab, i, before) {
    const problems = await ROLLING_RESTART_REDIS.check!(lab, i, before);
    // Sentinel must agree with the data nodes, and keep its quorum.
    const primary = await lab.fleet.primary();
    let agreed: string | undefined;
    for (let k = 0; k < 50 && agreed !== `127.0.0.1:${primary?.port}`; k++, await sleep(200)) agreed = await lab.sentinels!.agreedMaster();
    if (agreed !== `127.0.0.1:${primary?.port}`) problems.push(`Sentinels agree on ${agreed ?? 'nothing'}, the primary is ${primary?.id}`);
    const s = lab.sentinels!.sentinels[0];
    const c = new Redis({ host: s.host, port: s.port, lazyConnect: true, retryStrategy: () => null });
    await c.connect();
    const quorum = String(await c.call('SENTINEL', 'CKQUORUM', lab.fleet.cluster).catch((e: Error) => e.message));
    c.disconnect();
    if (!quorum.startsWith('OK')) problems.push(`Sentinel quorum: ${quorum}`);
    return problems;
  },
};

// (No `after:ensureRedisFenced`: with the old primary down, the fence step fails by design — "fencing pending"
// — so there is no successful completion to die after.)
export const FAILOVER_REDIS_POINTS = [...['describeCluster', 'probeRedisCluster', 'ensureRedisPromoted', 'ensureRedisReplicaOf', 'verifyRedisTopology'].flatMap((a) => [`before:${a}`, `after:${a}`]), 'before:ensureRedisFenced'];

/**
 * Unplanned failover: the primary is SIGKILLed, then `handover failover --force` runs and the worker is killed
 * at each boundary. To make "0 lost" a sound check for an unplanned failover, writes are paused on the primary
 * and its replicas are seen caught up before the kill: every acknowledged write is then on a survivor, and
 * losing one would mean a wrong promotion. Afterwards the dead node is restarted and fenced with the same
 * activity the monitor uses, and must come back as a replica of the new primary.
 */
export const FAILOVER_REDIS: Scenario = {
  name: 'failover-redis',
  lab: { extraConfig: ['min-replicas-to-write 1', 'min-replicas-max-lag 2', 'repl-timeout 3'] },
  points: FAILOVER_REDIS_POINTS,
  async start(lab, i, log) {
    const primary = (await lab.fleet.primary())!;
    const c = primary.client();
    await c.call('CLIENT', 'PAUSE', '3000', 'WRITE');
    c.disconnect();
    await waitForReplication(lab.fleet, primary.id, 2500);
    await primary.stop('SIGKILL');
    log(`[chaos] killed primary ${primary.id}`);
    const r = await runFailover({ cluster: lab.fleet.cluster, force: true, address: lab.address, taskQueue: lab.taskQueue, requestedBy: `chaos run ${i}` }, quietIO(log));
    if (r.exitCode !== 0) throw new Error(`could not start: exit ${r.exitCode}`);
  },
  async settle(lab) {
    const dead = lab.fleet.nodes.find((n) => !n.pid());
    const primary = await lab.fleet.primary();
    if (!dead || !primary) return [`expected one dead node and one primary, roles ${JSON.stringify(await lab.fleet.roles())}`];
    await dead.start();
    const env = new MockActivityEnvironment();
    const acts = createActivities({ inventory: () => loadInventory(lab.inventory) });
    await env.run(acts.ensureRedisFenced, { cluster: lab.fleet.cluster, node: dead.id, primary: primary.id });
    return []; // the end-state check that follows wants one primary with every node, the fenced one too, in sync
  },
};

// ---- Backups: the worker is killed at every step of a backup taken under the writer -------------------------

export const BACKUP_POINTS = [
  ...['probeBackupSources', 'takeBackup', 'verifyBackup', 'markBackupVerified', 'pruneBackups'].flatMap((a) => [`before:${a}`, `after:${a}`]),
  'inside:takeBackup.streaming',
  'inside:takeBackup.beforeManifest',
];

/** The lab's inventory gains a backup block (local storage beside the fleet, keep 100 so nothing is pruned). */
function addBackupBlock(lab: { inventory: string }): void {
  const yaml = readFileSync(lab.inventory, 'utf8');
  if (/^\s+backup:$/m.test(yaml)) return;
  const dir = path.join(path.dirname(lab.inventory), 'backups');
  writeFileSync(lab.inventory, yaml.replace(/^(\s+)engine: (\w+)$/m, (_m, sp: string, e: string) => `${sp}engine: ${e}\n${sp}backup:\n${sp}  storage: { type: local, dir: ${dir} }\n${sp}  keep: 100`));
}

async function backupStates(lab: { inventory: string }, cluster: string): Promise<{ id: string; state: string }[]> {
  const r = await runBackupList({ cluster, inventory: lab.inventory, json: true }, { out: () => undefined, err: () => undefined, isTTY: false });
  if (r.exitCode !== 0 || !r.backups) throw new Error(`backup list exited ${r.exitCode}`);
  return r.backups;
}

/**
 * Beyond one primary and no lost write (the writer runs through the backup): exactly one more backup than
 * before, and every backup listed good — an interrupted take is finished by the retry under the same ID,
 * never left behind as a second, partial artifact.
 */
async function checkOneNewGoodBackup(lab: { inventory: string }, cluster: string, before: unknown): Promise<string[]> {
  const prior = before as { id: string }[];
  const now = await backupStates(lab, cluster);
  const added = now.filter((b) => !prior.some((p) => p.id === b.id));
  const problems: string[] = [];
  if (added.length !== 1) problems.push(`${added.length} new backups (want exactly 1): ${JSON.stringify(added)}`);
  const notGood = now.filter((b) => b.state !== 'good');
  if (notGood.length) problems.push(`backups not good: ${JSON.stringify(notGood)}`);
  return problems;
}

async function startBackup(lab: { address: string; taskQueue: string; inventory: string }, cluster: string, i: number, log: (m: string) => void): Promise<void> {
  const r = await runBackupRun({ cluster, inventory: lab.inventory, address: lab.address, taskQueue: lab.taskQueue, requestedBy: `chaos run ${i}` }, quietIO(log));
  if (r.exitCode !== 0) throw new Error(`could not start: exit ${r.exitCode}`);
}

export const BACKUP_REDIS: Scenario = {
  name: 'backup-redis',
  points: BACKUP_POINTS,
  prepare: addBackupBlock,
  start: (lab, i, log) => startBackup(lab, lab.fleet.cluster, i, log),
  before: (lab) => backupStates(lab, lab.fleet.cluster),
  check: (lab, _i, before) => checkOneNewGoodBackup(lab, lab.fleet.cluster, before),
};

export const SCENARIOS: Record<string, Scenario> = Object.fromEntries([SWITCHOVER_REDIS, ROLLING_RESTART_REDIS, ROLLING_RESTART_REDIS_SENTINEL, FAILOVER_REDIS, BACKUP_REDIS].map((s) => [s.name, s]));

/**
 * One kill point. With `workers: 2`, two workers run armed with the same failpoint and a once-token: the
 * first to reach it dies, and the other must take the run over without any restart.
 */
export async function runChaosPoint(lab: Lab, scenario: Scenario, point: string, i: number, log: (m: string) => void, workers = 1): Promise<PointResult> {
  const t0 = Date.now();
  const { fleet } = lab;
  // Each kill point is its own experiment: start from an empty data set so runs stay comparable (a roll
  // re-syncs every node, which would otherwise take longer with every point).
  const p0 = await fleet.primary();
  if (p0) {
    const c = p0.client();
    await c.flushall();
    c.disconnect();
    await waitForReplication(fleet, p0.id, 30_000).catch(() => undefined);
  }
  const before = await scenario.before?.(lab);
  const token = workers > 1 ? path.join(fleet.baseDir, `failpoint-${i}-${Date.now()}`) : undefined;
  const armed = Array.from({ length: workers }, () => spawnWorker(lab, point, log, token));
  const worker = {
    exited: Promise.race(armed.map((w) => w.exited)),
    stop: async () => {
      for (const w of armed) await w.stop();
    },
  };
  const writer = new AckedWriter(fleet.nodes, fleet.password).start();
  const sampler = new SplitBrainSampler(fleet).start();
  let restarted: ReturnType<typeof spawnWorker> | undefined;
  const result: PointResult = { point, killed: false, completed: false, lostAckedWrites: 0, multiplePrimaries: 0, acked: 0, writeBlockedMs: 0, ms: 0 };
  const problem = (m: string) => (result.error = result.error ? `${result.error}; ${m}` : m);
  try {
    await sleep(200);
    await scenario.start(lab, i, log);
    const handle = lab.client.workflow.getHandle(operationWorkflowId(fleet.cluster));
    const outcome = await Promise.race([
      worker.exited.then((e) => (e.signal === 'SIGKILL' ? 'killed' : `worker exited ${e.code ?? e.signal}`)),
      handle.result().then(
        () => 'finished before the kill point',
        (e) => `failed before the kill point: ${(e as Error).message}`,
      ),
      unrefSleep(90_000).then(() => 'kill point not reached in 90 s'),
    ]);
    result.killed = outcome === 'killed';
    if (!result.killed) problem(outcome);
    if (workers === 1) restarted = spawnWorker(lab, undefined, log);
    await Promise.race([handle.result(), unrefSleep(180_000).then(() => Promise.reject(new Error('run did not finish within 180 s after the restart')))]);
    result.completed = true;
  } catch (e) {
    problem(e instanceof WorkflowFailedError ? `workflow failed: ${(e.cause as Error)?.message ?? e.message}` : (e as Error).message);
  } finally {
    await sleep(200);
    const stats = await writer.stop();
    result.multiplePrimaries = await sampler.stop();
    result.acked = stats.acked;
    result.writeBlockedMs = stats.maxGapMs;
    const settled = (await scenario.settle?.(lab).catch((e) => [`settle failed: ${(e as Error).message}`])) ?? [];
    if (settled.length) {
      result.completed = false;
      problem(settled.join('; '));
    }
    const primary = await fleet.primary();
    if (!primary) {
      result.multiplePrimaries += 1;
      problem(`end state has no single primary: ${JSON.stringify(await fleet.roles())}`);
    } else {
      result.newPrimary = primary.id;
      await waitForReplication(fleet, primary.id, 30_000).catch((e) => {
        result.completed = false;
        problem((e as Error).message);
      });
      result.lostAckedWrites = (await writer.missingOn(primary.host, primary.port)).length;
    }
    const extra = (await scenario.check?.(lab, i, before).catch((e) => [`check failed: ${(e as Error).message}`])) ?? [];
    if (extra.length) {
      result.completed = false;
      problem(extra.join('; '));
    }
    await writer.close();
    await worker.stop();
    await restarted?.stop();
    result.ms = Date.now() - t0;
  }
  return result;
}

export async function runChaos(lab: Lab, scenario: Scenario, points: string[], log: (m: string) => void, workers = 1): Promise<ChaosSummary> {
  await scenario.prepare?.(lab);
  const results: PointResult[] = [];
  for (const [i, p] of points.entries()) {
    const r = await runChaosPoint(lab, scenario, p, i, log, workers);
    log(`[chaos] ${scenario.name} ${p}: killed=${r.killed} completed=${r.completed} lost=${r.lostAckedWrites} split=${r.multiplePrimaries} blocked=${r.writeBlockedMs}ms ${r.ms}ms${r.error ? ` error=${r.error}` : ''}`);
    results.push(r);
  }
  return summarize(scenario.name, results);
}

function summarize(runbook: string, results: PointResult[]): ChaosSummary {
  return {
    killPoints: results.filter((r) => r.killed).length,
    completed: results.filter((r) => r.killed && r.completed).length,
    lostAckedWrites: results.reduce((n, r) => n + r.lostAckedWrites, 0),
    multiplePrimaries: results.reduce((n, r) => n + r.multiplePrimaries, 0),
    runbook,
    points: results,
  };
}

// ---------------------------------------------------------------------------------------------------------
// MariaDB switchover under chaos: the same contract, against real mariadbd processes and the transactional
// writer (sandbox/sql-writer.ts); "primary" means the node answering read_only = 0.

/** Every activity boundary of a MariaDB switchover (routing hook configured), plus the points inside its steps. */
export const SWITCHOVER_MYSQL_POINTS = [
  ...[
    'describeCluster',
    'probeMysqlCluster',
    'vetoMysqlHandover',
    'ensureMysqlFenced',
    'ensureMysqlCaughtUp',
    'ensureMysqlPrimary',
    'runRoutingHook',
    'ensureMysqlReplicaOf#1',
    'ensureMysqlReplicaOf#2',
    'verifyMysqlTopology',
  ].flatMap((a) => [`before:${a}`, `after:${a}`]),
  'inside:probeMysqlCluster.start',
  'inside:ensureMysqlFenced.beforeFence',
  'inside:ensureMysqlCaughtUp.loop',
  'inside:ensureMysqlPrimary.stopped',
  'inside:ensureMysqlReplicaOf.beforeChange',
];

/** A MariaDB runbook under chaos (see Scenario). */
export interface MysqlScenario {
  name: string;
  engine: 'mysql';
  points: string[];
  prepare?(lab: MysqlLab): void | Promise<void>;
  start(lab: MysqlLab, i: number, log: (m: string) => void): Promise<void>;
  before?(lab: MysqlLab): Promise<unknown>;
  /** Run after the writer and the writable-node sampler stopped, before the end state is read (e.g. restart a killed node). */
  settle?(lab: MysqlLab): Promise<string[]>;
  check?(lab: MysqlLab, i: number, before: unknown): Promise<string[]>;
}

/** Nodes answering read_only = 0 (the fence kills the sampler's root sessions too: ask again when one is down). */
async function writableNodes(fleet: MariaFleet): Promise<{ writable: string[]; state: Record<string, NodeState> }> {
  let state = await fleet.state();
  for (let i = 0; i < 3 && Object.values(state).some((s) => !s.up); i++) state = await fleet.state();
  return { writable: Object.entries(state).filter(([, s]) => s.up && s.readOnly === false).map(([id]) => id), state };
}

/** Samples every node's read_only; a sample with two writable nodes counts only if an immediate re-sample agrees. */
class WritableSampler {
  count = 0;
  samples = 0;
  private stopped = false;
  private loop?: Promise<void>;
  constructor(private readonly fleet: MariaFleet) {}
  start(): this {
    this.loop = (async () => {
      while (!this.stopped) {
        this.samples++;
        if ((await writableNodes(this.fleet)).writable.length > 1 && (await writableNodes(this.fleet)).writable.length > 1) this.count++;
        await sleep(100);
      }
    })();
    return this;
  }
  async stop(): Promise<number> {
    this.stopped = true;
    await this.loop;
    return this.count;
  }
}

export const SWITCHOVER_MYSQL: MysqlScenario = {
  name: 'switchover-mysql',
  engine: 'mysql',
  points: SWITCHOVER_MYSQL_POINTS,
  async start(lab, i, log) {
    const r = await runSwitchover({ cluster: lab.fleet.cluster, address: lab.address, taskQueue: lab.taskQueue, requestedBy: `chaos run ${i}` }, quietIO(log));
    if (r.exitCode !== 0) throw new Error(`could not start: exit ${r.exitCode}`);
  },
};

/** How many times each mariadbd has started (its error log says "ready for connections" once per start). */
function mariaStartsPerNode(fleet: MariaFleet): Record<string, number> {
  return Object.fromEntries(fleet.nodes.map((n) => [n.id, (readFileSync(path.join(n.dir, 'error.log'), 'utf8').match(/ready for connections/g) ?? []).length]));
}

export const ROLLING_RESTART_MYSQL_POINTS = [
  ...[
    'describeCluster',
    'probeMysqlSpecs',
    'ensureMysqlNodeRestarted',
    'waitForMysqlNodeReady',
    'ensureMysqlFenced',
    'ensureMysqlPrimary',
    'ensureMysqlNodeRestarted#3',
    'verifyMysqlTopology#2',
  ].flatMap((a) => [`before:${a}`, `after:${a}`]),
  'inside:ensureMysqlNodeRestarted.beforeRestart',
  'inside:ensureMysqlCaughtUp.loop',
];

export const ROLLING_RESTART_MYSQL: MysqlScenario = {
  name: 'rolling-restart-mysql',
  engine: 'mysql',
  points: ROLLING_RESTART_MYSQL_POINTS,
  async start(lab, i, log) {
    const r = await runRollingRestart({ cluster: lab.fleet.cluster, set: [`max_connections=${201 + i}`], address: lab.address, taskQueue: lab.taskQueue, requestedBy: `chaos run ${i}` }, quietIO(log));
    if (r.exitCode !== 0) throw new Error(`could not start: exit ${r.exitCode}`);
  },
  async before(lab) {
    return mariaStartsPerNode(lab.fleet);
  },
  async check(lab, i, before) {
    const problems: string[] = [];
    const starts = mariaStartsPerNode(lab.fleet);
    for (const n of lab.fleet.nodes) {
      const extra = starts[n.id] - (before as Record<string, number>)[n.id];
      if (extra !== 1) problems.push(`${n.id} started ${extra} times (want exactly 1)`);
      const [v] = await lab.fleet.sql<{ Value: string }[]>(n.id, "SHOW GLOBAL VARIABLES LIKE 'max_connections'");
      if (v.Value !== String(201 + i)) problems.push(`${n.id} runs max_connections=${v.Value}, wanted ${201 + i}`);
    }
    return problems;
  },
};

// (No `after:ensureMysqlRejoined`: with the old primary down, the fence step fails by design — "fencing
// pending" — so there is no successful completion to die after.)
export const FAILOVER_MYSQL_POINTS = [
  ...['describeCluster', 'probeMysqlFailover', 'waitMysqlRelayApplied', 'ensureMysqlPrimary', 'runRoutingHook', 'ensureMysqlReplicaOf', 'verifyMysqlFailover'].flatMap((a) => [`before:${a}`, `after:${a}`]),
  'before:ensureMysqlRejoined',
  'inside:ensureMysqlPrimary.stopped',
];

/**
 * Unplanned failover of MariaDB: the primary is made read-only (the writer's commits stop being acknowledged)
 * and its replicas are seen holding its GTID position, then it is SIGKILLed and `handover failover --force`
 * runs while the worker is killed at each boundary. Every acknowledged commit is then on a survivor, so "0
 * lost" is a sound check (losing one would mean a wrong promotion). Afterwards the dead node is restarted and
 * fenced with the activity the monitor uses, and must come back as a replica of the new primary.
 */
export const FAILOVER_MYSQL: MysqlScenario = {
  name: 'failover-mysql',
  engine: 'mysql',
  points: FAILOVER_MYSQL_POINTS,
  async start(lab, i, log) {
    const { writable } = await writableNodes(lab.fleet);
    if (writable.length !== 1) throw new Error(`want one writable node before the failover, found ${writable.join(',') || 'none'}`);
    const primary = lab.fleet.nodes.find((n) => n.id === writable[0])!;
    await lab.fleet.sql(primary.id, 'SET GLOBAL read_only = ON');
    await lab.fleet.waitForReplication(primary.id, 30_000);
    await primary.stop('SIGKILL');
    log(`[chaos] killed primary ${primary.id}`);
    const r = await runFailover({ cluster: lab.fleet.cluster, force: true, address: lab.address, taskQueue: lab.taskQueue, requestedBy: `chaos run ${i}` }, quietIO(log));
    if (r.exitCode !== 0) throw new Error(`could not start: exit ${r.exitCode}`);
  },
  async settle(lab) {
    const dead = lab.fleet.nodes.find((n) => !n.pid());
    const { writable } = await writableNodes(lab.fleet);
    if (!dead || writable.length !== 1) return [`expected one dead node and one writable node, found dead=${dead?.id} writable=${writable.join(',')}`];
    await dead.start();
    const acts = createActivities({ inventory: () => loadInventory(lab.inventory) });
    const r: EnsureMysqlRejoinedResult = await new MockActivityEnvironment().run(acts.ensureMysqlRejoined, { cluster: lab.fleet.cluster, node: dead.id, primary: writable[0] });
    return r.outcome !== 'flagged' ? [] : [`${dead.id} not rejoined after its return: ${JSON.stringify(r)}`];
  },
};

/** MariaDB backup from a replica (its SQL thread is paused for the dump): the end state also needs it applying again. */
export const BACKUP_MYSQL: MysqlScenario = {
  name: 'backup-mysql',
  engine: 'mysql',
  points: BACKUP_POINTS,
  async prepare(lab) {
    addBackupBlock(lab);
    const { writable } = await writableNodes(lab.fleet);
    await lab.fleet.sql(writable[0], `GRANT ${MARIADB_BACKUP_GRANTS.join(', ')} ON *.* TO '${lab.fleet.handoverUser}'@'127.0.0.1'`);
  },
  start: (lab, i, log) => startBackup(lab, lab.fleet.cluster, i, log),
  before: (lab) => backupStates(lab, lab.fleet.cluster),
  check: (lab, _i, before) => checkOneNewGoodBackup(lab, lab.fleet.cluster, before),
};

export const MYSQL_SCENARIOS: Record<string, MysqlScenario> = Object.fromEntries([SWITCHOVER_MYSQL, ROLLING_RESTART_MYSQL, FAILOVER_MYSQL, BACKUP_MYSQL].map((s) => [s.name, s]));

/**
 * One kill point on the MariaDB fleet. The end state must be: exactly one writable node, every other node
 * replicating from it (both threads running) with the identical gtid_binlog_pos, and every commit the writer
 * was acknowledged present on every node.
 */
export async function runMysqlChaosPoint(lab: MysqlLab, scenario: MysqlScenario, point: string, i: number, log: (m: string) => void): Promise<PointResult> {
  const t0 = Date.now();
  const { fleet } = lab;
  const result: PointResult = { point, killed: false, completed: false, lostAckedWrites: 0, multiplePrimaries: 0, acked: 0, writeBlockedMs: 0, ms: 0 };
  const problem = (m: string) => (result.error = result.error ? `${result.error}; ${m}` : m);
  // Start each point from a converged fleet (the previous point may have left a replica still applying).
  const start = await writableNodes(fleet);
  if (start.writable.length === 1) await fleet.waitForReplication(start.writable[0], 60_000).catch((e) => problem(`not converged before the run: ${(e as Error).message}`));
  const before = await scenario.before?.(lab);
  const worker = spawnWorker(lab, point, log);
  const writer = new SqlWriter(fleet.nodes, fleet.appUser, fleet.appPassword, `c${i}x${Date.now().toString(36)}`).start();
  const sampler = new WritableSampler(fleet).start();
  let restarted: ReturnType<typeof spawnWorker> | undefined;
  try {
    await sleep(300);
    await scenario.start(lab, i, log);
    const handle = lab.client.workflow.getHandle(operationWorkflowId(fleet.cluster));
    const outcome = await Promise.race([
      worker.exited.then((e) => (e.signal === 'SIGKILL' ? 'killed' : `worker exited ${e.code ?? e.signal}`)),
      handle.result().then(
        () => 'finished before the kill point',
        (e) => `failed before the kill point: ${(e as Error).message}`,
      ),
      unrefSleep(90_000).then(() => 'kill point not reached in 90 s'),
    ]);
    result.killed = outcome === 'killed';
    if (!result.killed) problem(outcome);
    restarted = spawnWorker(lab, undefined, log);
    await Promise.race([handle.result(), unrefSleep(180_000).then(() => Promise.reject(new Error('run did not finish within 180 s after the restart')))]);
    result.completed = true;
  } catch (e) {
    problem(e instanceof WorkflowFailedError ? `workflow failed: ${(e.cause as Error)?.message ?? e.message}` : (e as Error).message);
  } finally {
    await sleep(300);
    const stats = await writer.stop();
    result.multiplePrimaries = await sampler.stop();
    result.acked = stats.acked;
    result.writeBlockedMs = Math.round(stats.maxGapMs);
    const settled = (await scenario.settle?.(lab).catch((e) => [`settle failed: ${(e as Error).message}`])) ?? [];
    if (settled.length) problem(settled.join('; '));
    const end = await writableNodes(fleet);
    if (end.writable.length !== 1) {
      result.multiplePrimaries += end.writable.length > 1 ? 1 : 0;
      problem(`end state has ${end.writable.length} writable nodes: ${JSON.stringify(end.state)}`);
    } else {
      const primary = end.writable[0];
      result.newPrimary = primary;
      // Every replica replicating from the primary, both threads running, identical gtid_binlog_pos.
      await fleet.waitForReplication(primary, 60_000).catch((e) => problem((e as Error).message));
      const lost = await Promise.all(fleet.nodes.map(async (n) => ({ id: n.id, missing: (await writer.missingOn(n)).length })));
      result.lostAckedWrites = lost.find((x) => x.id === primary)!.missing;
      for (const x of lost) if (x.missing) problem(`${x.id} lacks ${x.missing} acknowledged commit(s)`);
    }
    const extra = (await scenario.check?.(lab, i, before).catch((e) => [`check failed: ${(e as Error).message}`])) ?? [];
    if (extra.length) {
      result.completed = false;
      problem(extra.join('; '));
    }
    await writer.close();
    await worker.stop();
    await restarted?.stop();
    result.ms = Date.now() - t0;
  }
  return result;
}

export async function runMysqlChaos(lab: MysqlLab, scenario: MysqlScenario, points: string[], log: (m: string) => void): Promise<ChaosSummary> {
  await scenario.prepare?.(lab);
  const results: PointResult[] = [];
  for (const [i, p] of points.entries()) {
    const r = await runMysqlChaosPoint(lab, scenario, p, i, log);
    log(`[chaos] ${scenario.name} ${p}: killed=${r.killed} completed=${r.completed} lost=${r.lostAckedWrites} split=${r.multiplePrimaries} blocked=${r.writeBlockedMs}ms ${r.ms}ms${r.error ? ` error=${r.error}` : ''}`);
    results.push(r);
  }
  return summarize(scenario.name, results);
}

async function main() {
  const { name, json, opts } = parseArgs(process.argv.slice(2));
  const all = [...Object.keys(SCENARIOS), ...Object.keys(MYSQL_SCENARIOS)];
  const names = name === 'all' ? all : name && (SCENARIOS[name] || MYSQL_SCENARIOS[name]) ? [name] : [];
  if (names.length === 0) {
    process.stderr.write(`usage: npm run chaos -- ${all.join('|')}|all [--json] [--points p1,p2] [--workers 1|2] [--flavor redis|valkey]\n`);
    process.exit(2);
  }
  const log = (m: string) => process.stderr.write(m + '\n');
  const summaries: ChaosSummary[] = [];
  for (const n of names) {
    const mysqlScenario = MYSQL_SCENARIOS[n];
    if (mysqlScenario) {
      const lab = await startMysqlLab({ cluster: `chaos-${n.split('-')[0]}-maria`, inventory: { routingHook: 'echo {primary} {host}:{port}', controller: true } });
      try {
        summaries.push(await runMysqlChaos(lab, mysqlScenario, opts.points ? opts.points.split(',') : mysqlScenario.points, log));
      } finally {
        await lab.close();
      }
      continue;
    }
    const scenario = SCENARIOS[n];
    const lab = await startLab({ cluster: `chaos-${n.split('-')[0]}`, flavor: (opts.flavor as 'redis' | 'valkey') ?? 'redis', ...scenario.lab });
    try {
      summaries.push(await runChaos(lab, scenario, opts.points ? opts.points.split(',') : scenario.points, log, Number(opts.workers ?? 1)));
    } finally {
      await lab.close();
    }
  }
  const brief = (s: ChaosSummary) => {
    const { points, ...head } = s;
    return { ...head, points: points.map((p) => ({ point: p.point, killed: p.killed, completed: p.completed, lost: p.lostAckedWrites, writeBlockedMs: p.writeBlockedMs, ms: p.ms, ...(p.error ? { error: p.error } : {}) })) };
  };
  if (!json) for (const s of summaries) for (const p of s.points) process.stdout.write(`${s.runbook} ${p.point.padEnd(40)} killed=${p.killed} completed=${p.completed} lost=${p.lostAckedWrites} split=${p.multiplePrimaries}\n`);
  const total = {
    killPoints: summaries.reduce((n, s) => n + s.killPoints, 0),
    completed: summaries.reduce((n, s) => n + s.completed, 0),
    lostAckedWrites: summaries.reduce((n, s) => n + s.lostAckedWrites, 0),
    multiplePrimaries: summaries.reduce((n, s) => n + s.multiplePrimaries, 0),
  };
  const out = name === 'all' ? { ...total, runbooks: Object.fromEntries(summaries.map((s) => [s.runbook, brief(s)])) } : brief(summaries[0]);
  process.stdout.write(JSON.stringify(out) + '\n');
  const attempted = summaries.reduce((n, s) => n + s.points.length, 0);
  process.exitCode = total.completed === attempted && total.lostAckedWrites === 0 && total.multiplePrimaries === 0 ? 0 : 1;
}

if (require.main === module) {
  main().catch((e) => {
    process.stderr.write(`chaos: ${(e as Error).stack}\n`);
    process.exit(1);
  });
}
