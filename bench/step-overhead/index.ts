/**
 * step-overhead: what one workflow step costs beyond the work it does. The same N calls of one short real
 * activity (INFO replication on a Redis node over an open connection) run as a plain script and as a workflow
 * on the real dev server and worker; overheadPerStepMs = (workflowMs - plainMs) / N. Each lever is measured
 * in the same run (median of `repeats` runs each, after one warm-up):
 *   - activity:               regular activities, eager dispatch allowed (the runbooks' proxies), on a server
 *                             with eager activity execution on (the sandbox's dev server) — the headline;
 *   - activity, eager off:    the same server, allowEagerDispatch false (every activity through the matching service);
 *   - activity, server default: a dev server without the dynamic config (eager execution off server-side);
 *   - local:                  local activities (no server round trip per step; only for short reads);
 *   - more pollers:           8 workflow and 8 activity task pollers instead of the defaults;
 *   - no workflow cache:      maxCachedWorkflows 0 (every workflow task replays the history from the start).
 * The last line printed is one JSON object: {"steps","plainMs","workflowMs","overheadPerStepMs","levers":[...]}.
 */
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type Redis from 'ioredis';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, type WorkerOptions } from '@temporalio/worker';
import { createHandoverWorker } from '../../worker/worker';
import { createActivities } from '../../activities';
import { startRedisFleet } from '../../sandbox/redis';
import { startDevServer, type DevServer } from '../../sandbox/temporal';
import { percentile } from '../lab';
import type { StepProxy } from './workflow';

const log = (m: string) => process.stderr.write(m + '\n');
const WORKFLOW_PATH = path.join(__dirname, `workflow${path.extname(__filename)}`);
export const EAGER = { 'system.enableActivityEagerExecution': true };
/** One task queue partition: no forwarding between partitions inside the matching service. */
export const ONE_PARTITION = { ...EAGER, 'matching.numTaskqueueReadPartitions': 1, 'matching.numTaskqueueWritePartitions': 1 };

interface Lever {
  name: string;
  server: 'eager' | 'default' | 'onePartition';
  proxy: StepProxy;
  worker?: Partial<WorkerOptions>;
}

const LEVERS: Lever[] = [
  { name: 'activity (eager dispatch, server eager on)', server: 'eager', proxy: 'activity' },
  { name: 'activity, allowEagerDispatch false', server: 'eager', proxy: 'activity-no-eager' },
  { name: 'activity, dev server default config', server: 'default', proxy: 'activity' },
  { name: 'activity, one task queue partition', server: 'onePartition', proxy: 'activity' },
  { name: 'local activity', server: 'eager', proxy: 'local' },
  { name: 'activity, 8 workflow and 8 activity task pollers', server: 'eager', proxy: 'activity', worker: { maxConcurrentWorkflowTaskPolls: 8, maxConcurrentActivityTaskPolls: 8 } },
  { name: 'activity, maxCachedWorkflows 0', server: 'eager', proxy: 'activity', worker: { maxCachedWorkflows: 0 } },
];

async function timeWorkflow(server: DevServer, lever: Lever, stepRead: (i: number) => Promise<number>, steps: number, repeats: number): Promise<number> {
  const connection = await NativeConnection.connect({ address: server.address });
  const taskQueue = `step-overhead-${Math.random().toString(36).slice(2, 8)}`;
  const base = createActivities({ inventory: () => ({ clusters: [] }) as never });
  const worker = await createHandoverWorker({
    connection,
    taskQueue,
    activities: { ...base, stepRead } as typeof base,
    extra: { workflowsPath: WORKFLOW_PATH, interceptors: {}, ...lever.worker },
  });
  const running = worker.run();
  const cconn = await Connection.connect({ address: server.address });
  const client = new Client({ connection: cconn });
  const one = async () => {
    const t0 = performance.now();
    await client.workflow.execute('stepOverhead', { taskQueue, workflowId: `${taskQueue}-${Math.random().toString(36).slice(2)}`, args: [steps, lever.proxy] });
    return performance.now() - t0;
  };
  try {
    await one(); // warm-up: bundle, caches, connections
    const xs: number[] = [];
    for (let r = 0; r < repeats; r++) xs.push(await one());
    return percentile(xs, 50);
  } finally {
    worker.shutdown();
    await running;
    await cconn.close();
    await connection.close();
  }
}

export async function stepOverheadBench(steps: number, repeats: number) {
  const fleet = await startRedisFleet({ cluster: 'stepbench', replicas: 0 });
  const node = fleet.nodes[0];
  const redis: Redis = node.client();
  const stepRead = async (i: number) => (await redis.info('replication')).length + i * 0;
  const servers: Partial<Record<Lever['server'], DevServer>> = {};
  try {
    servers.eager = await startDevServer({ dynamicConfig: EAGER });
    servers.default = await startDevServer();
    servers.onePartition = await startDevServer({ dynamicConfig: ONE_PARTITION });
    const plain: number[] = [];
    for (let r = 0; r <= repeats; r++) {
      const t0 = performance.now();
      for (let i = 0; i < steps; i++) await stepRead(i);
      if (r > 0) plain.push(performance.now() - t0);
    }
    const plainMs = percentile(plain, 50);
    const levers = [];
    for (const l of LEVERS) {
      const workflowMs = await timeWorkflow(servers[l.server]!, l, stepRead, steps, repeats);
      const overheadPerStepMs = Math.round(((workflowMs - plainMs) / steps) * 10) / 10;
      levers.push({ name: l.name, workflowMs: Math.round(workflowMs), overheadPerStepMs });
      log(`[bench] ${l.name}: ${Math.round(workflowMs)} ms for ${steps} steps, ${overheadPerStepMs} ms/step over the plain script (${Math.round(plainMs)} ms)`);
    }
    const head = levers[0];
    return { name: 'step-overhead', steps, plainMs: Math.round(plainMs), workflowMs: head.workflowMs, overheadPerStepMs: head.overheadPerStepMs, repeats, levers };
  } finally {
    redis.disconnect();
    for (const s of Object.values(servers)) await s?.stop();
    await fleet.stop();
  }
}
