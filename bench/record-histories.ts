/**
 * Records workflow histories for the replay test:  npx tsx bench/record-histories.ts [--only name,name] [--out DIR]
 *
 * Runs real runbooks against real servers (one Temporal dev server, real redis-server / redis-sentinel / Redis
 * Cluster / mariadbd fleets, the real worker) and writes each run's history, as `temporal workflow show -o json`
 * prints it, to test/histories/<name>.json. Every fleet names its nodes apart (<cluster>-1, -2, -3 on their own
 * ports), so activities of one type in a run differ in their inputs and the replay check
 * (test/replay/check.ts) sees a swap. The histories, by lab:
 *
 *  - Redis (cluster `replay`): switchovers completed, crashed and resumed inside the handover, refused, dry run,
 *    approved, aborted while waiting, rejected, approval timed out; rolling restarts completed, crashed and
 *    resumed, and started as `redisRollingRestart` with its child `redisSwitchover`; backups completed, crashed
 *    mid-stream and resumed, started by a Temporal Schedule (completed, and skipped while another operation
 *    holds the cluster), verified again, restored into a scratch server, a restore into a non-empty node refused;
 *    a `handover status` read (`clusterStatus`); `handover doctor`'s checks on the worker (`doctor`).
 *  - Redis `replayundo`: a switchover whose candidate cannot catch up within the write pause, undone.
 *  - Redis `replayfo`: a failover after the primary was SIGKILLed (operator, --force).
 *  - Redis `replaymon`: the monitor (`monitor` routing to `redisMonitor`), a `redisMonitor` run that continued as
 *    new, the next run, in which the primary is SIGKILLed, the monitor starts `redisFailover` (recorded too) and
 *    fences the old primary when it returns.
 *  - Redis with three Sentinels (`replaysnt`): a switchover through SENTINEL FAILOVER, a rolling restart with the
 *    Sentinels restarted one at a time (both recorded before the Sentinel timing steps); a switchover with them
 *    (`-info-period`: info-period lowered for the handover, restored after).
 *  - Redis Cluster (`replayrcl`, 3 shards x 1 replica): the rolling restart, shard by shard with CLUSTER FAILOVER.
 *  - Redis Cluster (`replayrcs`, 3 shards x 1 replica, no self-election): `switchover --shard 0`, then `failover
 *    --shard` of another shard's SIGKILLed primary (`-numbered`: its probes numbered, PATCH_NUMBERED_PROBES; the
 *    history from before the patch, `failover-redis-cluster-shard`, stays as recorded).
 *  - MariaDB (`replay-maria`): switchovers completed, crashed and resumed inside the catch-up, refused, dry run,
 *    undone (the candidate stops applying after the fence: the fence is lifted); rolling restarts completed and
 *    started as `mysqlRollingRestart` with its child `mysqlSwitchover`; backups completed, scheduled, verified,
 *    restored into a scratch server.
 *  - MariaDB `replayfo-maria`: a failover after the primary was SIGKILLed, confirmed over the window by the run
 *    itself, with a pre-failover hook and two post-failover hooks (one failing).
 *  - Dolt (`replay-dolt`, sql-server cluster mode): switchovers completed, crashed inside the demotion and resumed,
 *    refused, dry run; a failover after the primary was SIGKILLed.
 *  - MariaDB `replaymon-maria`: the same monitor histories as Redis (`monitor`, `mysqlMonitor` continued as new,
 *    `mysqlMonitor` with a failover and the returning old primary rejoined, and the `mysqlFailover` it started).
 *    Today's code records the monitor's patched activity path (`monitor-*-watch*`, `failover-*-by-watch`); the
 *    histories of the path before the patch (`monitor-*`, `failover-*-by-monitor`) stay as recorded.
 *
 * Re-record after an intended, patched change of workflow code; never to make a replay failure go away.
 * --out DIR writes the histories there instead of test/histories. --only records just the named files (e.g. --only rolling-restart-redis-completed); a lab starts only when one
 * of its histories is wanted. Slow (several minutes for everything): run it with `nice -n 5`.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, bundleWorkflowCode } from '@temporalio/worker';
import { createActivities } from '../activities';
import { PITR_LOGICAL_PRIVILEGES, PITR_NODE_PRIVILEGES } from '../core/backup/pitr-node';
import { MARIADB_BACKUP_GRANTS } from '../activities/backup/mysql';
import { runAbort } from '../client/commands/abort';
import { runApprove } from '../client/commands/approve';
import { runBackupArchive, runBackupProvisionReplica, runBackupRestore, runBackupRun, runBackupSchedule, runBackupVerify } from '../client/commands/backup';
import { runFailover } from '../client/commands/failover';
import { runRollingRestart } from '../client/commands/rolling-restart';
import { runSwitchover } from '../client/commands/switchover';
import { runMaintenance } from '../client/commands/maintenance';
import { backupScheduleId } from '../core/backup/decide';
import { SA_CLUSTER, SA_RUNBOOK, archiverWorkflowId, doctorWorkflowId, maintenanceWorkflowId, monitorWorkflowId, operationWorkflowId, statusWorkflowId } from '../core/ids';
import type { RunbookProgress } from '../core/types';
import { loadInventory } from '../inventory/load';
import type { MonitorState, MonitorStatus } from '../workflows/monitor';
import { ROOT, temporalBinary } from '../sandbox/paths';
import { sleep } from '../sandbox/ports';
import { stopByPidfile, waitForReplication } from '../sandbox/redis';
import { startRedisClusterFleet } from '../sandbox/redis-cluster';
import { startDevServer } from '../sandbox/temporal';
import { WORKFLOWS_PATH, createHandoverWorker } from '../worker/worker';
import { parseArgs, spawnWorker, startDoltLab, startLab, startMysqlLab, type DoltLab, type Lab, type MysqlLab } from './lab';

const quiet = { out: () => undefined, err: (m: string) => process.stderr.write(m + '\n'), isTTY: false };
const log = (m: string) => process.stderr.write(`[record] ${m}\n`);

/** What recording needs from a lab, whatever its fleet. */
interface RecLab {
  cluster: string;
  address: string;
  client: Client;
  taskQueue: string;
  inventory: string;
  bundlePath: string;
}
const rec = (l: Lab | MysqlLab | DoltLab): RecLab => ({ cluster: l.fleet.cluster, address: l.address, client: l.client, taskQueue: l.taskQueue, inventory: l.inventory, bundlePath: l.bundlePath });

interface Started {
  exitCode: number;
  /** The run to record (default: the cluster's operation ID, handover-<cluster>). */
  workflowId?: string;
  /** Other runs of the scenario to record as well: name -> workflow ID (and run ID). */
  also?: { name: string; workflowId: string; runId?: string }[];
  /** Undo what the scenario set up (after the runs are recorded, before the worker stops). */
  cleanup?: () => Promise<void>;
}
type Start = (lab: RecLab) => Promise<Started>;
type Stoppable = { stop(): Promise<void> };

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** Write one run's history to test/histories/<name>.json. */
function save(lab: RecLab, name: string, workflowId: string, runId?: string): void {
  // The history as `temporal workflow show -o json` prints it (what the UI exports too).
  const args = ['workflow', 'show', '--address', lab.address, '--workflow-id', workflowId, ...(runId ? ['--run-id', runId] : []), '--output', 'json'];
  const json = execFileSync(temporalBinary(), args, { encoding: 'utf8', maxBuffer: 256 << 20 });
  const file = path.join(outDir, `${name}.json`);
  writeFileSync(file, json);
  const events = (JSON.parse(json) as { events: unknown[] }).events;
  log(`recorded ${file} (${events.length} events)`);
}

/** The worker in this process with an activity failpoint callback (a fault forced at a named point). */
async function inProcessWorker(lab: RecLab, failpoint: (name: string) => Promise<void> | void): Promise<Stoppable> {
  const connection = await NativeConnection.connect({ address: lab.address });
  const worker = await createHandoverWorker({
    connection,
    taskQueue: lab.taskQueue,
    workflowBundlePath: lab.bundlePath,
    activities: createActivities({ inventory: () => loadInventory(lab.inventory), failpoint }),
  });
  const running = worker.run();
  return {
    async stop() {
      worker.shutdown();
      await running;
      await connection.close();
    },
  };
}

/**
 * Run one scenario with a fresh worker and record its run(s). `failpoint`: the worker process SIGKILLs itself
 * there and a second one finishes the run (crashed and resumed); `worker`: a worker of the scenario's own.
 */
async function record(lab: RecLab, name: string, start: Start, o: { failpoint?: string; worker?: () => Promise<Stoppable> } = {}): Promise<void> {
  const spawned = o.worker ? undefined : spawnWorker(lab, o.failpoint);
  const own = o.worker ? await o.worker() : undefined;
  let w2: ReturnType<typeof spawnWorker> | undefined;
  const t0 = Date.now();
  try {
    const started = await start(lab);
    if (o.failpoint && spawned) {
      await spawned.exited;
      w2 = spawnWorker(lab);
    }
    const workflowId = started.workflowId ?? operationWorkflowId(lab.cluster);
    const handle = lab.client.workflow.getHandle(workflowId);
    await handle.result().catch(() => undefined);
    log(`${name}: start exit ${started.exitCode}`);
    // Never record an older run under this name (a scenario whose run was refused before it started).
    const d = await handle.describe();
    if (d.startTime.getTime() < t0 - 1000) throw new Error(`${name}: the latest run of ${workflowId} started before this scenario (${d.startTime.toISOString()})`);
    save(lab, name, workflowId);
    for (const a of started.also ?? []) {
      await lab.client.workflow.getHandle(a.workflowId, a.runId).result().catch(() => undefined);
      save(lab, a.name, a.workflowId, a.runId);
    }
    await started.cleanup?.();
  } finally {
    await spawned?.stop();
    await w2?.stop();
    await own?.stop();
  }
}

const common = (l: RecLab) => ({ cluster: l.cluster, address: l.address, taskQueue: l.taskQueue, requestedBy: 'record-histories' });

/** Wait until the cluster's operation waits at its approval gate. */
async function waitForGate(l: RecLab): Promise<void> {
  const handle = l.client.workflow.getHandle(operationWorkflowId(l.cluster));
  await until('the approval gate', async () => (await handle.query<RunbookProgress>('progress')).approval?.status === 'waiting', 30_000);
}

/** Start a --require-approval switchover, wait for its approval gate, then approve, reject or abort it. */
const gated = (then: 'approve' | 'abort' | 'reject') => async (l: RecLab): Promise<Started> => {
  const started = await runSwitchover({ ...common(l), requireApproval: true }, quiet);
  const workflowId = operationWorkflowId(l.cluster);
  await waitForGate(l);
  const r =
    then === 'abort'
      ? await runAbort({ address: l.address, workflowId, wait: false }, quiet)
      : await runApprove({ address: l.address, workflowId, approver: 'record-histories', ...(then === 'reject' ? { reject: true, reason: 'not during the sale' } : {}) }, quiet);
  if (r.exitCode !== 0) throw new Error(`${then} exited ${r.exitCode}`);
  return started;
};

/** The roll's first child switchover (handover-<cluster>-handover-<n>), from the roll's history. */
async function childSwitchoverOf(l: RecLab, workflowId: string): Promise<string> {
  const history = await l.client.workflow.getHandle(workflowId).fetchHistory();
  const child = history.events?.find((e) => e.startChildWorkflowExecutionInitiatedEventAttributes)?.startChildWorkflowExecutionInitiatedEventAttributes;
  if (!child?.workflowId) throw new Error(`${workflowId} started no child switchover`);
  return child.workflowId;
}

/** The engine's roll started by its own workflow type (registered, so startable), with its child switchover. */
const directRoll = (workflowType: 'redisRollingRestart' | 'mysqlRollingRestart', set: Record<string, string>, childName: string) => async (l: RecLab): Promise<Started> => {
  const workflowId = operationWorkflowId(l.cluster);
  const handle = await l.client.workflow.start(workflowType, {
    workflowId,
    taskQueue: l.taskQueue,
    args: [{ cluster: l.cluster, set, requestedBy: 'record-histories' }],
    typedSearchAttributes: [
      { key: SA_CLUSTER, value: l.cluster },
      { key: SA_RUNBOOK, value: 'rolling-restart' },
    ],
  });
  await handle.result();
  return { exitCode: 0, workflowId, also: [{ name: childName, workflowId: await childSwitchoverOf(l, workflowId) }] };
};

/** Start an engine's own workflow type directly (as a child would be), under the cluster's operation ID. */
const direct = (workflowType: string, runbook: string, input: Record<string, unknown> = {}) => async (l: RecLab): Promise<Started> => {
  const workflowId = operationWorkflowId(l.cluster);
  const handle = await l.client.workflow.start(workflowType, {
    workflowId,
    taskQueue: l.taskQueue,
    args: [{ cluster: l.cluster, requestedBy: 'record-histories', ...input }],
    typedSearchAttributes: [
      { key: SA_CLUSTER, value: l.cluster },
      { key: SA_RUNBOOK, value: runbook },
    ],
  });
  await handle.result().catch(() => undefined);
  return { exitCode: 0, workflowId };
};

/** Create the cluster's backup schedule (a far-off cron), trigger it once, and return the run it started. */
async function triggerSchedule(l: RecLab): Promise<string> {
  const scheduleId = backupScheduleId(l.cluster);
  const created = await runBackupSchedule({ ...common(l), cron: '0 3 1 1 *', keep: 3 }, quiet);
  if (created.exitCode !== 0) throw new Error(`backup schedule exited ${created.exitCode}`);
  const schedule = l.client.schedule.getHandle(scheduleId);
  const before = (await schedule.describe()).info.recentActions.length;
  await schedule.trigger();
  const action = await until('the scheduled run', async () => {
    const d = await schedule.describe();
    return d.info.recentActions.length > before && d.info.recentActions[d.info.recentActions.length - 1].action;
  });
  return action.workflow.workflowId;
}

const deleteSchedule = async (l: RecLab) => void (await runBackupSchedule({ ...common(l), delete: true }, quiet));

/** A good backup's ID (taken now, not recorded). */
async function goodBackup(l: RecLab): Promise<string> {
  const r = await runBackupRun({ ...common(l), keep: 3, wait: true }, quiet);
  if (r.exitCode !== 0 || !r.report) throw new Error(`backup run exited ${r.exitCode}`);
  return r.report.id;
}

/** A scratch server left running by a restore: stopped by its pidfile, its directory removed. */
async function stopScratch(dir: string | undefined): Promise<void> {
  if (!dir) return;
  await stopByPidfile(dir, 'SIGKILL').catch(() => undefined);
  try {
    process.kill(Number(readFileSync(path.join(dir, 'mysqld.pid'), 'utf8').trim()), 'SIGKILL');
  } catch {
    // not a MariaDB scratch server, or gone
  }
  await sleep(200);
  rmSync(dir, { recursive: true, force: true });
}

/** The backup scenarios, both engines: scheduled (completed, skipped), verify, restore. */
function backupScenarios(engine: 'redis' | 'mysql'): [string, Start][] {
  return [
    [
      `backup-${engine}-scheduled`,
      async (l) => {
        const workflowId = await triggerSchedule(l);
        return { exitCode: 0, workflowId, cleanup: () => deleteSchedule(l) };
      },
    ],
    [
      `backup-${engine}-scheduled-skipped`,
      async (l) => {
        // Another operation holds the cluster: a switchover waiting at its approval gate.
        await runSwitchover({ ...common(l), requireApproval: true }, quiet);
        await waitForGate(l);
        const workflowId = await triggerSchedule(l);
        return {
          exitCode: 0,
          workflowId,
          cleanup: async () => {
            await deleteSchedule(l);
            await runAbort({ address: l.address, workflowId: operationWorkflowId(l.cluster), wait: true }, quiet);
          },
        };
      },
    ],
    [
      `backup-${engine}-verify`,
      async (l) => {
        const id = await goodBackup(l);
        const r = await runBackupVerify({ ...common(l), id }, quiet);
        return { exitCode: r.exitCode, workflowId: `handover-backup-verify-${l.cluster}` };
      },
    ],
    [
      `restore-${engine}-scratch`,
      async (l) => {
        const id = await goodBackup(l);
        const r = (await runBackupRestore({ ...common(l), id, scratch: true }, quiet)) as { exitCode: number; workflowId?: string };
        const workflowId = `handover-restore-${l.cluster}`;
        const result = (await l.client.workflow.getHandle(workflowId).result().catch(() => undefined)) as { dir?: string } | undefined;
        return { exitCode: r.exitCode, workflowId, cleanup: () => stopScratch(result?.dir) };
      },
    ],
  ];
}

/**
 * The monitor's histories: `monitor` (routes to the engine's monitor), one engine run that only probes and
 * continues as new, and the next run, in which the primary is SIGKILLed: the monitor starts the failover as a
 * child (its history recorded too), then the old primary is restarted and the monitor fences it, and the run
 * continues as new. `roundsPerRun` bounds each run.
 */
async function recordMonitor(
  l: RecLab,
  engine: 'redis' | 'mysql',
  o: { roundsPerRun: number; killPrimary: () => Promise<() => Promise<void>>; names: string[] },
): Promise<void> {
  const names = o.names;
  const want = names.filter(wanted);
  if (!want.length) return;
  const w = spawnWorker(l, undefined, log);
  const workflowId = monitorWorkflowId(l.cluster);
  try {
    const first = await l.client.workflow.start('monitor', {
      workflowId,
      taskQueue: l.taskQueue,
      args: [{ cluster: l.cluster, failovers: [], roundsPerRun: o.roundsPerRun } satisfies MonitorState],
      typedSearchAttributes: [
        { key: SA_CLUSTER, value: l.cluster },
        { key: SA_RUNBOOK, value: 'monitor' },
      ],
    });
    const runs: string[] = [first.firstExecutionRunId];
    /** The ID of the run after `runs[n]` (waits until it started). */
    const nextRun = async (n: number, timeoutMs: number) => {
      while (runs.length <= n + 1) {
        const id = await until(`monitor run ${n + 2}`, async () => {
          const d = await l.client.workflow.getHandle(workflowId).describe();
          return d.runId !== runs[runs.length - 1] && d.runId;
        }, timeoutMs).catch(async (e: Error) => {
          const d = await l.client.workflow.getHandle(workflowId).describe();
          throw new Error(`${e.message} (latest run ${d.runId} ${d.type} ${d.status.name}, ${d.historyLength} events)`);
        });
        runs.push(id);
      }
      return runs[n + 1];
    };
    await nextRun(0, 180_000); // monitor -> <engine>Monitor (the spawned worker bundles first: slow under load)
    await nextRun(1, 120_000); // the quiet run continued as new
    const status = () => l.client.workflow.getHandle(workflowId).query<MonitorStatus>('status');
    await until('the monitor sees the primary', async () => (await status()).lastKnown?.primary);
    const restart = await o.killPrimary();
    const s = await until('the failover', async () => {
      const x = await status();
      return x.failovers.length === 1 && x;
    }, 120_000);
    log(`${engine} monitor: failover ${s.failovers[0].from} -> ${s.failovers[0].to}`);
    await restart();
    await until('the old primary fenced', async () => (await status()).fenced.includes(s.failovers[0].from), 60_000);
    await nextRun(2, 180_000);
    for (let i = 0; i < 3; i++) if (wanted(names[i])) save(l, names[i], workflowId, runs[i]);
    if (wanted(names[3])) save(l, names[3], operationWorkflowId(l.cluster));
  } finally {
    await l.client.workflow.getHandle(workflowId).terminate('recorded').catch(() => undefined);
    await w.stop();
  }
}
/**
 * The monitor's histories by path: `poll` (recorded before the 'monitor-detection-in-activity' patch: the workflow
 * probes round by round) and `watch` (the patched path: watchRedisCluster / watchMysqlCluster decide inside one
 * heartbeating activity and return a verdict; the failover child starts from it). Same order: the routing run,
 * the quiet run that continued as new, the next run with the failover and the fence, and the failover child.
 */
const monitorNames = (engine: 'redis' | 'mysql', path: 'poll' | 'watch' = 'poll') =>
  path === 'poll'
    ? [`monitor-${engine}`, `monitor-${engine}-continued-as-new`, `monitor-${engine}-failover`, `failover-${engine}-by-monitor`]
    : [`monitor-${engine}-watch`, `monitor-${engine}-watch-continued-as-new`, `monitor-${engine}-watch-failover`, `failover-${engine}-by-watch`];
/** Today's code records the patched (watch) path; the poll path's histories stay as recorded. */
const monitorNow = (engine: 'redis' | 'mysql') => monitorNames(engine, 'watch');

let only: Set<string> | undefined;
/** Where the histories go: test/histories, or --out DIR (a trial recording, compared before it replaces them). */
let outDir = path.join(ROOT, 'test', 'histories');
const wanted = (name: string) => !only || only.has(name);

/** Temporary directories of this run (the backups, a bundle), removed at the end. */
const scratchDirs: string[] = [];

async function bundleOnce(): Promise<string> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'handover-record-'));
  scratchDirs.push(dir);
  const file = path.join(dir, 'workflow-bundle.js');
  writeFileSync(file, (await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: undefined })).code);
  return file;
}

async function main() {
  const { opts } = parseArgs(['record', ...process.argv.slice(2)]);
  only = opts.only ? new Set(opts.only.split(',')) : undefined;
  if (opts.out) outDir = path.resolve(opts.out);
  const any = (names: string[]) => names.some(wanted);
  // Backups: the worker processes inherit HANDOVER_BACKUP_DIR (the labs' inventories have no backup block).
  process.env.HANDOVER_BACKUP_DIR = mkdtempSync(path.join(os.tmpdir(), 'handover-replay-backups-'));
  scratchDirs.push(process.env.HANDOVER_BACKUP_DIR);
  const server = await startDevServer();
  const address = server.address;
  log(`temporal at ${address}`);
  try {
    // ---- Redis, replication ------------------------------------------------------------------------------------
    const redisBackups = backupScenarios('redis');
    const redisMain: [string, Start, { failpoint?: string }?][] = [];
    const sw = (o: { to?: string; dryRun?: boolean; approvalTimeout?: string; requireApproval?: boolean } = {}) => (l: RecLab) => runSwitchover({ ...common(l), ...o }, quiet);
    const roll = (hz: number) => (l: RecLab) => runRollingRestart({ ...common(l), set: [`hz=${hz}`] }, quiet);
    const bk = (l: RecLab) => runBackupRun({ ...common(l), keep: 2 }, quiet);
    redisMain.push(
      ['switchover-redis-completed', sw()],
      ['switchover-redis-crashed-resumed', sw(), { failpoint: 'inside:ensureRedisHandedOver.demoted' }],
      ['switchover-redis-dry-run', sw({ dryRun: true })],
      ['switchover-redis-approved', gated('approve')],
      ['switchover-redis-aborted', gated('abort')],
      ['switchover-redis-rejected', gated('reject')],
      ['switchover-redis-approval-timeout', sw({ requireApproval: true, approvalTimeout: '3s' })],
      ['rolling-restart-redis-completed', roll(13)],
      ['rolling-restart-redis-crashed-resumed', roll(14), { failpoint: 'inside:ensureRedisNodeRestarted.beforeRestart' }],
      ['rolling-restart-redis-direct', directRoll('redisRollingRestart', { hz: '15' }, 'switchover-redis-child-of-roll')],
      [
        'maintenance-redis',
        async (l) => {
          // Two windows, one cleared early; the workflow ends when the other one does.
          const [, n2, n3] = redisLab!.fleet.nodes;
          for (const o of [{ node: n2.id, until: '3s', reason: 'record-histories' }, { node: n3.id, until: '1h' }, { node: n3.id, clear: true }]) {
            const r = await runMaintenance({ ...common(l), ...o }, quiet);
            if (r.exitCode !== 0) throw new Error(`maintenance ${JSON.stringify(o)} exited ${r.exitCode}`);
          }
          return { exitCode: 0, workflowId: maintenanceWorkflowId(l.cluster) };
        },
      ],
      ['backup-redis-completed', bk],
      [
        'status-redis',
        async (l) => {
          // handover status as the CLI runs it on the worker: the clusterStatus workflow, one read-only activity.
          const workflowId = statusWorkflowId(l.cluster, 'record');
          await l.client.workflow.start('clusterStatus', { workflowId, taskQueue: l.taskQueue, args: [{ cluster: l.cluster }] });
          return { exitCode: 0, workflowId };
        },
      ],
      [
        'doctor-redis',
        async (l) => {
          // handover doctor's database and binary checks as the CLI runs them on the worker: one read-only activity.
          const workflowId = doctorWorkflowId(l.cluster, 'record');
          await l.client.workflow.start('doctor', { workflowId, taskQueue: l.taskQueue, args: [{ cluster: l.cluster }] });
          return { exitCode: 0, workflowId };
        },
      ],
      ['backup-redis-crashed-resumed', bk, { failpoint: 'inside:takeBackup.streaming' }],
      ...redisBackups,
      [
        'restore-redis-node-refused',
        async (l) => {
          // Into a replica, which holds the cluster's data: refused by the restore step before any write.
          const id = await goodBackup(l);
          const primary = (await redisLab!.fleet.primary())!;
          const replica = redisLab!.fleet.nodes.find((n) => n.id !== primary.id)!;
          return runBackupRestore({ ...common(l), id, to: replica.id }, quiet);
        },
      ],
    );
    const refusedName = 'switchover-redis-refused';
    let redisLab: Lab | undefined;
    if (any([...redisMain.map(([n]) => n), refusedName, 'switchover-redis-child-of-roll'])) {
      redisLab = await startLab({ cluster: 'replay', address });
      const l = rec(redisLab);
      try {
        // Some data, so backups carry keys and a restore into a node that holds data is refused.
        const seed = (await redisLab.fleet.primary())!.client();
        for (let i = 0; i < 100; i++) await seed.set(`seed:${i}`, `value-${i}`);
        seed.disconnect();
        for (const [name, start, o] of redisMain) {
          if (name === 'switchover-redis-dry-run' && wanted(refusedName)) await record(l, refusedName, sw({ to: (await redisLab.fleet.primary())!.id }));
          const childOnly = name === 'rolling-restart-redis-direct' && wanted('switchover-redis-child-of-roll');
          if (wanted(name) || childOnly) await record(l, name, start, o);
        }
      } finally {
        await redisLab.close();
      }
    }

    if (wanted('switchover-redis-undone')) {
      // A candidate that cannot catch up within a 400 ms write pause: just as the handover starts, the replicas
      // stop applying (CLIENT PAUSE WRITE on them) and the primary takes a write they will not see in time.
      const lab = await startLab({ cluster: 'replayundo', address, policy: { pauseTimeoutMs: 400 } });
      try {
        const failpoint = async (name: string) => {
          if (name !== 'ensureRedisHandedOver.start') return;
          for (const n of lab.fleet.nodes.slice(1)) {
            const c = n.client();
            await c.call('CLIENT', 'PAUSE', '3000', 'WRITE');
            c.disconnect();
          }
          const p = lab.fleet.nodes[0].client();
          await p.set('late', 'z'.repeat(10_000));
          p.disconnect();
        };
        const l = rec(lab);
        await record(l, 'switchover-redis-undone', sw(), { worker: () => inProcessWorker(l, failpoint) });
      } finally {
        await lab.close();
      }
    }

    if (wanted('failover-redis-completed')) {
      const fo = await startLab({ cluster: 'replayfo', address, extraConfig: ['min-replicas-to-write 1', 'min-replicas-max-lag 2', 'repl-timeout 3'] });
      try {
        await record(rec(fo), 'failover-redis-completed', async (l) => {
          const primary = (await fo.fleet.primary())!;
          await waitForReplication(fo.fleet, primary.id);
          await primary.stop('SIGKILL');
          return runFailover({ ...common(l), force: true }, quiet);
        });
      } finally {
        await fo.close();
      }
    }

    if (any(monitorNow('redis'))) {
      const mon = await startLab({
        cluster: 'replaymon',
        address,
        extraConfig: ['min-replicas-to-write 1', 'min-replicas-max-lag 2', 'repl-timeout 3'],
        policy: { probeIntervalMs: 300, probesToConfirm: 3, failoverBlockMs: 600_000 },
      });
      try {
        await recordMonitor(rec(mon), 'redis', {
          names: monitorNow('redis'),
          roundsPerRun: 40,
          killPrimary: async () => {
            const primary = (await mon.fleet.primary())!;
            await waitForReplication(mon.fleet, primary.id);
            await primary.stop('SIGKILL');
            return async () => void (await primary.start());
          },
        });
      } finally {
        await mon.close();
      }
    }

    if (any(['switchover-redis-sentinel', 'rolling-restart-redis-sentinel', 'switchover-redis-sentinel-info-period'])) {
      const snt = await startLab({ cluster: 'replaysnt', address, sentinels: true });
      try {
        const l = rec(snt);
        // The first two were recorded before patch 'redis-sentinel-info-period-lowered' (no Sentinel timing steps);
        // recording them now gives the patched path, as -info-period does (a roll's handover is its child
        // switchover, recorded apart as such, so the roll's own history does not change).
        if (wanted('switchover-redis-sentinel')) await record(l, 'switchover-redis-sentinel', sw({ to: 'replaysnt-3' }));
        if (wanted('rolling-restart-redis-sentinel')) await record(l, 'rolling-restart-redis-sentinel', (x) => runRollingRestart({ ...common(x), set: ['hz=17'], includeSentinels: true }, quiet));
        if (wanted('switchover-redis-sentinel-info-period')) await record(l, 'switchover-redis-sentinel-info-period', sw({ to: 'replaysnt-2' }));
      } finally {
        await snt.close();
      }
    }

    if (wanted('rolling-restart-redis-cluster')) {
      const fleet = await startRedisClusterFleet({ cluster: 'replayrcl' });
      const connection = await Connection.connect({ address });
      try {
        const l: RecLab = { cluster: fleet.cluster, address, client: new Client({ connection }), taskQueue: 'lab-replayrcl', inventory: fleet.writeInventory(), bundlePath: await bundleOnce() };
        await record(l, 'rolling-restart-redis-cluster', (x) => runRollingRestart({ ...common(x), set: ['hz=19'] }, quiet));
      } finally {
        await connection.close();
        await fleet.stop();
      }
    }

    if (any(['switchover-redis-cluster-shard', 'failover-redis-cluster-shard-numbered'])) {
      // A 3x1 Redis Cluster that elects nothing by itself (the failover is Handover's call): the shard of slot 0
      // switched over by naming it, then another shard's primary SIGKILLed and failed over by naming it.
      const fleet = await startRedisClusterFleet({ cluster: 'replayrcs' });
      const connection = await Connection.connect({ address });
      try {
        const inventory = fleet.writeInventory(undefined, { policy: { probeIntervalMs: 300, probesToConfirm: 3 } });
        for (const n of fleet.nodes) {
          const c = n.client();
          await c.config('SET', 'cluster-replica-no-failover', 'yes');
          c.disconnect();
        }
        const l: RecLab = { cluster: fleet.cluster, address, client: new Client({ connection }), taskQueue: 'lab-replayrcs', inventory, bundlePath: await bundleOnce() };
        if (wanted('switchover-redis-cluster-shard')) await record(l, 'switchover-redis-cluster-shard', (x) => runSwitchover({ ...common(x), shard: '0' }, quiet));
        // Today's code numbers the run's probes (PATCH_NUMBERED_PROBES); failover-redis-cluster-shard.json, from
        // before, stays as recorded.
        if (wanted('failover-redis-cluster-shard-numbered'))
          await record(l, 'failover-redis-cluster-shard-numbered', async (x) => {
            // A primary not serving slot 0 (not the shard switched over above), by its own CLUSTER NODES line.
            await fleet.waitHealthy(30_000);
            const roles = await fleet.roles();
            let victim: (typeof fleet.nodes)[number] | undefined;
            for (const n of fleet.nodes.filter((m) => roles[m.id] === 'master')) {
              const c = n.client();
              const mine = String(await c.cluster('NODES')).split('\n').find((line) => line.includes('myself'))!;
              c.disconnect();
              if (!/ 0-\d+/.test(mine)) victim = n;
            }
            if (!victim) throw new Error('no primary without slot 0');
            await victim.stop('SIGKILL');
            return runFailover({ ...common(x), shard: victim.id }, quiet);
          });
      } finally {
        await connection.close();
        await fleet.stop();
      }
    }

    // ---- MariaDB -----------------------------------------------------------------------------------------------
    const mysqlMain: string[] = [
      ...['completed', 'crashed-resumed', 'refused', 'dry-run', 'undone'].map((n) => `switchover-mysql-${n}`),
      'rolling-restart-mysql-completed',
      'rolling-restart-mysql-direct',
      'switchover-mysql-child-of-roll',
      'backup-mysql-completed',
      'provision-replica-mysql-refused',
      ...backupScenarios('mysql').map(([n]) => n),
      'binlog-archiver-mysql',
      'pitr-restore-mysql-completed',
      'pitr-restore-mysql-refused',
      'pitr-restore-mysql-node',
      'pitr-restore-mysql-node-refused',
    ];
    if (any(mysqlMain)) {
      const mlab = await startMysqlLab({ cluster: 'replay-maria', address, inventory: { routingHook: 'echo {primary} {host}:{port}', controller: true } });
      const l = rec(mlab);
      try {
        const msw = (o: { to?: string; dryRun?: boolean } = {}) => (x: RecLab) => runSwitchover({ ...common(x), ...o }, quiet);
        if (wanted('switchover-mysql-completed')) await record(l, 'switchover-mysql-completed', msw());
        if (wanted('switchover-mysql-crashed-resumed')) await record(l, 'switchover-mysql-crashed-resumed', msw(), { failpoint: 'inside:ensureMysqlCaughtUp.loop' });
        const writableNode = async () => Object.entries(await mlab.fleet.state()).find(([, s]) => s.readOnly === false)![0];
        if (wanted('switchover-mysql-refused')) await record(l, 'switchover-mysql-refused', msw({ to: await writableNode() }));
        if (wanted('switchover-mysql-dry-run')) await record(l, 'switchover-mysql-dry-run', msw({ dryRun: true }));
        if (wanted('switchover-mysql-undone')) {
          // The candidate stops applying right after the fence, and the fenced primary still commits one more
          // transaction: the catch-up cannot finish, the fence is lifted.
          const primary = await writableNode();
          const candidate = mlab.fleet.nodes.find((n) => n.id !== primary)!.id;
          const failpoint = async (name: string) => {
            if (name !== 'ensureMysqlFenced.beforeFence') return;
            await mlab.fleet.sql(candidate, 'STOP SLAVE SQL_THREAD');
            await mlab.fleet.sql(primary, 'INSERT INTO handover_app.acks (k, v) VALUES (?, ?)', [`undo-${Date.now()}`, 1]);
          };
          try {
            await record(l, 'switchover-mysql-undone', msw({ to: candidate }), { worker: () => inProcessWorker(l, failpoint) });
          } finally {
            await mlab.fleet.sql(candidate, 'START SLAVE SQL_THREAD');
            await mlab.fleet.waitForReplication(primary, 30_000);
          }
        }
        // provisionReplica asked for a node that already replicates from the primary: refused after the probe.
        if (wanted('provision-replica-mysql-refused')) {
          const primary = await writableNode();
          const target = mlab.fleet.nodes.find((n) => n.id !== primary)!.id;
          await record(l, 'provision-replica-mysql-refused', (x) => runBackupProvisionReplica({ ...common(x), node: target }, quiet));
        }
        if (wanted('rolling-restart-mysql-completed')) await record(l, 'rolling-restart-mysql-completed', (x) => runRollingRestart({ ...common(x), set: ['max_connections=250'] }, quiet));
        if (any(['rolling-restart-mysql-direct', 'switchover-mysql-child-of-roll']))
          await record(l, 'rolling-restart-mysql-direct', directRoll('mysqlRollingRestart', { max_connections: '260' }, 'switchover-mysql-child-of-roll'));
        if (any(['backup-mysql-completed', ...backupScenarios('mysql').map(([n]) => n)])) {
          await mlab.fleet.sql(await writableNode(), `GRANT ${MARIADB_BACKUP_GRANTS.join(', ')} ON *.* TO '${mlab.fleet.handoverUser}'@'127.0.0.1'`);
          if (wanted('backup-mysql-completed')) await record(l, 'backup-mysql-completed', bk);
          for (const [name, start] of backupScenarios('mysql')) if (wanted(name)) await record(l, name, start);
        }
        // Point-in-time recovery: a restore refused (no archive yet); the archiver's first run (two short calls, then
        // continue-as-new); a restore to a GTID archived after a backup.
        if (wanted('pitr-restore-mysql-refused')) await record(l, 'pitr-restore-mysql-refused', (x) => runBackupRestore({ ...common(x), toGtid: '0-1-999999', scratch: true }, quiet).then((r) => ({ ...r, workflowId: `handover-restore-${x.cluster}` })));
        if (any(['binlog-archiver-mysql', 'pitr-restore-mysql-completed', 'pitr-restore-mysql-node', 'pitr-restore-mysql-node-refused'])) {
          await mlab.fleet.sql(await writableNode(), `GRANT ${MARIADB_BACKUP_GRANTS.join(', ')} ON *.* TO '${mlab.fleet.handoverUser}'@'127.0.0.1'`);
          const w = spawnWorker(l);
          const workflowId = archiverWorkflowId(l.cluster);
          try {
            const h = await l.client.workflow.start('binlogArchiver', { workflowId, taskQueue: l.taskQueue, args: [{ cluster: l.cluster, runMs: 1500, segmentMs: 200, callsPerRun: 2 }] });
            const put = async (n: number) => {
              for (let i = 0; i < n; i++) await mlab.fleet.sql(await writableNode(), 'INSERT INTO handover_app.acks (k, v) VALUES (?, ?)', [`pitr-${Date.now()}-${i}`, i]);
            };
            await put(3);
            const b = await runBackupRun({ ...common(l), keep: 3, wait: true }, quiet);
            if (b.exitCode !== 0) throw new Error(`backup for pitr exited ${b.exitCode}`);
            await put(3);
            const [last] = await mlab.fleet.sql<{ p: string }[]>(await writableNode(), 'SELECT @@gtid_binlog_pos AS p');
            await until('the first archiver run to continue as new', async () => (await l.client.workflow.getHandle(workflowId, h.firstExecutionRunId).describe()).status.name === 'CONTINUED_AS_NEW', 60_000);
            if (wanted('binlog-archiver-mysql')) save(l, 'binlog-archiver-mysql', workflowId, h.firstExecutionRunId);
            if (any(['pitr-restore-mysql-completed', 'pitr-restore-mysql-node'])) {
              await until('the archive to reach the last write', async () => {
                const r = await runBackupArchive({ ...common(l), inventory: l.inventory, action: 'status', json: true }, quiet);
                if (process.env.DEBUG_PITR) log(`archive: ${JSON.stringify(r.status)} want ${last.p}`);
                return r.status?.archivedPos?.split(',').includes(last.p) ?? false;
              }, 60_000);
              if (wanted('pitr-restore-mysql-completed'))
                await record(l, 'pitr-restore-mysql-completed', async (x) => {
                  const r = await runBackupRestore({ ...common(x), toGtid: last.p, scratch: true }, quiet);
                  const report = (r as { report?: { restored?: { dir?: string } } }).report;
                  return { exitCode: r.exitCode, workflowId: `handover-restore-${x.cluster}`, cleanup: () => stopScratch(report?.restored?.dir) };
                });
            }
            // Into a node: refused for the primary (at the check, nothing changed); then a replica the operator
            // stopped, restored with --replace to the last archived write (left standalone and read-only).
            if (any(['pitr-restore-mysql-node', 'pitr-restore-mysql-node-refused'])) {
              const primary = await writableNode();
              await mlab.fleet.sql(primary, `GRANT ${[...Object.keys(PITR_NODE_PRIVILEGES), ...PITR_LOGICAL_PRIVILEGES].join(', ')} ON *.* TO '${mlab.fleet.handoverUser}'@'127.0.0.1'`);
              if (wanted('pitr-restore-mysql-node-refused')) await record(l, 'pitr-restore-mysql-node-refused', (x) => runBackupRestore({ ...common(x), toGtid: last.p, to: primary }, quiet));
              if (wanted('pitr-restore-mysql-node')) {
                const target = mlab.fleet.nodes.find((n) => n.id !== primary)!.id;
                await mlab.fleet.waitForReplication(primary, 30_000);
                await mlab.fleet.sql(target, 'STOP SLAVE');
                await record(l, 'pitr-restore-mysql-node', (x) => runBackupRestore({ ...common(x), toGtid: last.p, to: target, replace: true }, quiet));
              }
            }
          } finally {
            await l.client.workflow.getHandle(workflowId).terminate('recorded').catch(() => undefined);
            await w.stop();
          }
        }
      } finally {
        await mlab.close();
      }
    }

    if (wanted('failover-mysql-completed')) {
      const POLICY = { probeIntervalMs: 400, probesToConfirm: 5, failoverBlockMs: 600_000, catchUpTimeoutMs: 20_000, verifyTimeoutMs: 30_000 };
      const fo = await startMysqlLab({ cluster: 'replayfo-maria', address, inventory: { policy: POLICY, hooks: { preFailover: ['echo pre {oldPrimary} {newPrimary}'], postFailover: ['exit 7', 'echo post {oldPrimary} {newPrimary}'] } } });
      try {
        await record(rec(fo), 'failover-mysql-completed', async (l) => {
          await fo.fleet.waitForReplication(0, 30_000);
          await fo.fleet.nodes[0].stop('SIGKILL');
          return runFailover(common(l), quiet);
        });
      } finally {
        await fo.close();
      }
    }

    if (any(monitorNow('mysql'))) {
      const mon = await startMysqlLab({
        cluster: 'replaymon-maria',
        address,
        inventory: { policy: { probeIntervalMs: 400, probesToConfirm: 3, failoverBlockMs: 600_000, catchUpTimeoutMs: 20_000, verifyTimeoutMs: 30_000 } },
      });
      try {
        await recordMonitor(rec(mon), 'mysql', {
          names: monitorNow('mysql'),
          roundsPerRun: 50,
          killPrimary: async () => {
            await mon.fleet.waitForReplication(0, 30_000);
            const primary = mon.fleet.nodes[0];
            await primary.stop('SIGKILL');
            return async () => void (await primary.start());
          },
        });
      } finally {
        await mon.close();
      }
    }
    const doltNames = [...['completed', 'crashed-resumed', 'refused', 'dry-run', 'direct'].map((n) => `switchover-dolt-${n}`), 'failover-dolt-completed', 'failover-dolt-direct'];
    if (any(doltNames)) {
      const dlab = await startDoltLab({ cluster: 'replay-dolt', address, inventory: { policy: { probeIntervalMs: 300, probesToConfirm: 2 } } });
      const l = rec(dlab);
      try {
        const dsw = (o: { to?: string; dryRun?: boolean } = {}) => (x: RecLab) => runSwitchover({ ...common(x), ...o }, quiet);
        if (wanted('switchover-dolt-completed')) await record(l, 'switchover-dolt-completed', dsw());
        if (wanted('switchover-dolt-crashed-resumed')) await record(l, 'switchover-dolt-crashed-resumed', dsw(), { failpoint: 'inside:ensureDoltRole.standby' });
        const st = await dlab.fleet.state();
        const primary = Object.entries(st).find(([, s]) => s.role === 'primary')![0];
        if (wanted('switchover-dolt-refused')) await record(l, 'switchover-dolt-refused', dsw({ to: primary }));
        if (wanted('switchover-dolt-dry-run')) await record(l, 'switchover-dolt-dry-run', dsw({ dryRun: true }));
        if (wanted('switchover-dolt-direct')) await record(l, 'switchover-dolt-direct', direct('doltSwitchover', 'switchover'));
        // The engine's failover type started directly: a dry run (the plan), so the pair stays as it is.
        if (wanted('failover-dolt-direct')) await record(l, 'failover-dolt-direct', direct('doltFailover', 'failover', { dryRun: true }));
        if (wanted('failover-dolt-completed'))
          await record(l, 'failover-dolt-completed', async (x) => {
            await dlab.fleet.waitForReplication(primary);
            await dlab.fleet.nodes.find((n) => n.id === primary)!.kill();
            return runFailover(common(x), quiet);
          });
      } finally {
        await dlab.close();
      }
    }
  } finally {
    await server.stop();
    for (const d of scratchDirs) rmSync(d, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(1);
});
