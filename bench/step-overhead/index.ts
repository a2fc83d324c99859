/**
 * step-overhead: what one workflow step costs beyond the work it does. The same N calls of one short real
 * activity (INFO replication on a Redis node over an open connection) run as a plain script and as a workflow
 * on the real dev server and worker; overheadPerStepMs = (workflowMs - plainMs) / N.
 *
 * Every lever has its own worker (and, where it needs one, its own dev server), all started first; then the
 * levers run in turns, one workflow each per round (`repeats` rounds after one warm-up round), so a change in the
 * machine's load falls on all of them alike (in reverse order every other round). Each lever reports the median of its rounds and, from the same runs:
 *   - segments: the step split by the history's event timestamps (bench/step-overhead/segments.ts), plus the
 *     worker's side of the activity segment (server start → the activity function begins; it returns → the
 *     server records the completion);
 *   - cpuPerStepMs / runqueueWaitPerStepMs: CPU time, and time spent runnable but waiting for a CPU, of the dev
 *     server's process and of this process (worker, client, activity), per step, from /proc/<pid>/task/<tid>/schedstat
 *     (summed over threads, so the waits of threads that run side by side add up).
 * Levers:
 *   - activity:               regular activities, eager dispatch allowed (the runbooks' proxies), on a server
 *                             with eager activity execution on (the sandbox's dev server) — the headline;
 *   - allowEagerDispatch false (every activity through the matching service); the dev server's default config;
 *     one task queue partition; matching's priority matcher (matching.useNewMatcher); local activities; 8 pollers; maxCachedWorkflows 0; debugMode (the workflow runs
 *     on the worker's main thread: no thread hop per activation); the server's Go runtime with GOGC=400 and with
 *     GOMAXPROCS=1; the server's SQLite in a file instead of in memory.
 * The last line printed is one JSON object: {"steps","plainMs","workflowMs","overheadPerStepMs","levers":[...]}.
 */
import path from 'node:path';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { performance } from 'node:perf_hooks';
import type Redis from 'ioredis';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, bundleWorkflowCode, type Worker, type WorkerOptions } from '@temporalio/worker';
import { createHandoverWorker } from '../../worker/worker';
import { createActivities } from '../../activities';
import { startRedisFleet } from '../../sandbox/redis';
import { startDevServer, type DevServer, type DevServerOptions } from '../../sandbox/temporal';
import { percentile } from '../lab';
import type { StepProxy } from './workflow';
import { stepSegments, timedEvents, type TimedEvent } from './segments';

const log = (m: string) => process.stderr.write(m + '\n');
const WORKFLOW_PATH = path.join(__dirname, `workflow${path.extname(__filename)}`);
export const EAGER = { 'system.enableActivityEagerExecution': true };
/** One task queue partition: no forwarding between partitions inside the matching service. */
export const ONE_PARTITION = { ...EAGER, 'matching.numTaskqueueReadPartitions': 1, 'matching.numTaskqueueWritePartitions': 1 };

type ServerName = 'eager' | 'default' | 'onePartition' | 'newMatcher' | 'gogc400' | 'gomaxprocs1' | 'sqliteFile';
const SERVERS: Record<ServerName, (dir: string) => DevServerOptions> = {
  eager: () => ({ dynamicConfig: EAGER }),
  default: () => ({}),
  onePartition: () => ({ dynamicConfig: ONE_PARTITION }),
  newMatcher: () => ({ dynamicConfig: { ...EAGER, 'matching.useNewMatcher': true } }),
  gogc400: () => ({ dynamicConfig: EAGER, env: { GOGC: '400' } }),
  gomaxprocs1: () => ({ dynamicConfig: EAGER, env: { GOMAXPROCS: '1' } }),
  sqliteFile: (dir) => ({ dynamicConfig: EAGER, dbFile: path.join(dir, 'temporal.db') }),
};

interface Lever {
  name: string;
  server: ServerName;
  proxy: StepProxy;
  worker?: Partial<WorkerOptions>;
}

const LEVERS: Lever[] = [
  { name: 'activity (eager dispatch, server eager on)', server: 'eager', proxy: 'activity' },
  { name: 'activity, allowEagerDispatch false', server: 'eager', proxy: 'activity-no-eager' },
  { name: 'activity, dev server default config', server: 'default', proxy: 'activity' },
  { name: 'activity, one task queue partition', server: 'onePartition', proxy: 'activity' },
  { name: 'activity, matching.useNewMatcher true', server: 'newMatcher', proxy: 'activity' },
  { name: 'local activity', server: 'eager', proxy: 'local' },
  { name: 'activity, 8 workflow and 8 activity task pollers', server: 'eager', proxy: 'activity', worker: { maxConcurrentWorkflowTaskPolls: 8, maxConcurrentActivityTaskPolls: 8 } },
  { name: 'activity, maxCachedWorkflows 0', server: 'eager', proxy: 'activity', worker: { maxCachedWorkflows: 0 } },
  { name: 'activity, worker debugMode (workflow on the main thread)', server: 'eager', proxy: 'activity', worker: { debugMode: true } },
  { name: 'activity, server GOGC=400', server: 'gogc400', proxy: 'activity' },
  { name: 'activity, server GOMAXPROCS=1', server: 'gomaxprocs1', proxy: 'activity' },
  { name: 'activity, server SQLite in a file', server: 'sqliteFile', proxy: 'activity' },
];

/** [cpu ms, runqueue wait ms] of a process, summed over its threads. */
function schedstat(pid: number): [number, number] {
  let cpu = 0;
  let wait = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const [run, waited] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ').map(Number);
      cpu += run;
      wait += waited;
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return [cpu / 1e6, wait / 1e6];
}

interface LeverRun {
  lever: Lever;
  server: DevServer;
  worker: Worker;
  running: Promise<void>;
  connection: NativeConnection;
  taskQueue: string;
  wallMs: number[];
  histories: TimedEvent[][];
  /** Worker-side activity times (Date.now() when the function began and when it returned), per run. */
  activityTimes: [number, number][][];
  sched: number[];
}

const round1 = (x: number) => Math.round(x * 10) / 10;
const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);

export async function stepOverheadBench(steps: number, repeats: number) {
  const fleet = await startRedisFleet({ cluster: 'stepbench', replicas: 0 });
  const node = fleet.nodes[0];
  const redis: Redis = node.client();
  const read = async (i: number) => (await redis.info('replication')).length + i * 0;
  const dir = mkdtempSync(path.join(tmpdir(), 'step-overhead-'));
  const servers: Partial<Record<ServerName, DevServer>> = {};
  const runs: LeverRun[] = [];
  const cconns: Connection[] = [];
  try {
    for (const s of new Set(LEVERS.map((l) => l.server))) servers[s] = await startDevServer(SERVERS[s](dir));
    const plain: number[] = [];
    for (let r = 0; r <= repeats; r++) {
      const t0 = performance.now();
      for (let i = 0; i < steps; i++) await read(i);
      if (r > 0) plain.push(performance.now() - t0);
    }
    const plainMs = percentile(plain, 50);
    // One bundle for every worker (the same code; bundling once keeps the setup short).
    const { code } = await bundleWorkflowCode({ workflowsPath: WORKFLOW_PATH, logger: undefined });
    for (const lever of LEVERS) {
      const server = servers[lever.server]!;
      const connection = await NativeConnection.connect({ address: server.address });
      const taskQueue = `step-overhead-${Math.random().toString(36).slice(2, 8)}`;
      const base = createActivities({ inventory: () => ({ clusters: [] }) as never });
      const lr = { lever, server, connection, taskQueue, wallMs: [], histories: [], activityTimes: [[]], sched: [0, 0, 0, 0] } as unknown as LeverRun;
      const stepRead = async (i: number) => {
        const began = Date.now();
        const n = await read(i);
        lr.activityTimes[lr.activityTimes.length - 1].push([began, Date.now()]);
        return n;
      };
      lr.worker = await createHandoverWorker({
        connection,
        taskQueue,
        activities: { ...base, stepRead } as typeof base,
        extra: { workflowsPath: undefined, workflowBundle: { code }, interceptors: {}, ...lever.worker },
      });
      lr.running = lr.worker.run();
      runs.push(lr);
    }
    const clients = new Map<DevServer, Client>();
    for (const s of Object.values(servers)) {
      const conn = await Connection.connect({ address: s!.address });
      cconns.push(conn);
      clients.set(s!, new Client({ connection: conn }));
    }
    const loadBefore = round1(loadavg()[0]);
    // Round 0 is the warm-up (caches, connections); then the levers take turns, in reverse order every other
    // round, so no lever always follows the same one (the SQLite-file server's flushes outlast its own runs).
    for (let r = 0; r <= repeats; r++) {
      for (const lr of r % 2 === 0 ? [...runs].reverse() : runs) {
        const client = clients.get(lr.server)!;
        const workflowId = `${lr.taskQueue}-${r}`;
        lr.activityTimes.push([]);
        const s0 = [...schedstat(lr.server.process.pid!), ...schedstat(process.pid)];
        const t0 = performance.now();
        await client.workflow.execute('stepOverhead', { taskQueue: lr.taskQueue, workflowId, args: [steps, lr.lever.proxy] });
        const wall = performance.now() - t0;
        const s1 = [...schedstat(lr.server.process.pid!), ...schedstat(process.pid)];
        if (r === 0) continue;
        lr.wallMs.push(wall);
        s1.forEach((x, k) => (lr.sched[k] += x - s0[k]));
        lr.histories.push(timedEvents(await client.workflow.getHandle(workflowId).fetchHistory()));
      }
    }
    const loadAfter = round1(loadavg()[0]);
    const levers = runs.map((lr) => {
      const workflowMs = percentile(lr.wallMs, 50);
      const overheadPerStepMs = round1((workflowMs - plainMs) / steps);
      const perStep = (x: number) => round1(x / (steps * repeats));
      // The worker's side of the activity segment: the history's ActivityTaskStarted/Completed of each step
      // against the activity function's own begin/return times (same clock: one machine).
      const delivery: number[] = [];
      const report: number[] = [];
      lr.histories.forEach((events, k) => {
        const started = events.filter((e) => e.type === 'ActivityTaskStarted');
        const completed = events.filter((e) => e.type === 'ActivityTaskCompleted');
        lr.activityTimes[k + 2]?.forEach(([began, returned], i) => {
          if (!started[i] || !completed[i]) return;
          delivery.push(began - started[i].ms);
          report.push(completed[i].ms - returned);
        });
      });
      const seg = lr.lever.proxy === 'local' ? undefined : stepSegments(lr.histories);
      log(`[bench] ${lr.lever.name}: ${Math.round(workflowMs)} ms for ${steps} steps, ${overheadPerStepMs} ms/step over the plain script (${Math.round(plainMs)} ms)`);
      return {
        name: lr.lever.name,
        workflowMs: Math.round(workflowMs),
        overheadPerStepMs,
        ...(seg ? { segments: { ...seg, activityDeliveryMs: round1(mean(delivery)), activityReportMs: round1(mean(report)) } } : {}),
        cpuPerStepMs: { server: perStep(lr.sched[0]), benchProcess: perStep(lr.sched[2]) },
        runqueueWaitPerStepMs: { server: perStep(lr.sched[1]), benchProcess: perStep(lr.sched[3]) },
      };
    });
    const head = levers[0];
    return {
      name: 'step-overhead',
      steps,
      plainMs: Math.round(plainMs),
      workflowMs: head.workflowMs,
      overheadPerStepMs: head.overheadPerStepMs,
      repeats,
      cores: readdirSync('/sys/devices/system/cpu').filter((d) => /^cpu\d+$/.test(d)).length,
      loadAvg1m: { before: loadBefore, after: loadAfter },
      segments: head.segments,
      levers,
    };
  } finally {
    for (const lr of runs) lr.worker.shutdown();
    await Promise.allSettled(runs.map((lr) => lr.running));
    for (const lr of runs) await lr.connection.close();
    for (const c of cconns) await c.close();
    redis.disconnect();
    for (const s of Object.values(servers)) await s?.stop();
    await fleet.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
