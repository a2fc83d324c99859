/** Builds the Handover worker: the workflows in workflows/, the activities from createActivities(deps). */
import { hostname } from 'node:os';
import path from 'node:path';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { DEFAULT_NAMESPACE, TASK_QUEUE } from '../core/ids';
import type { Activities } from '../activities';
import type { DataConverter } from '@temporalio/common';
import type { Failpoints } from './failpoints';
import { codecIdentity } from '../codec/aes-gcm';

export interface HandoverWorkerOptions {
  connection: NativeConnection;
  activities: Activities;
  namespace?: string;
  taskQueue?: string;
  /**
   * Path of a prebuilt workflow bundle (worker/bundle.ts, `npm run build`: dist/workflow-bundle.js); the worker
   * bundles workflows/ itself otherwise. Ignored with a dataConverter: bundleWorkflowCode bakes the failure
   * converter in, and this one has the default, which would put failure messages in history in clear.
   */
  workflowBundlePath?: string;
  /** The prebuilt bundle made with the codec's failure converter (dist/workflow-bundle-codec.js), used with a dataConverter. */
  codecWorkflowBundlePath?: string;
  failpoints?: Failpoints;
  /** Payload encryption (codec/aes-gcm.ts dataConverterFromEnv); the workflows are bundled with it. */
  dataConverter?: DataConverter;
  /** Extra options (tests shorten shutdown grace, for instance). */
  extra?: Partial<WorkerOptions>;
}

/** .ts from the sources (tsx, vitest), .js from the build (dist/). */
const ext = path.extname(__filename);
export const WORKFLOWS_PATH = path.join(__dirname, '..', 'workflows', `index${ext}`);
/** The workflow interceptor modules: run metrics and log attributes (workflows/metrics.ts); an undecodable input fails the run (workflows/undecodable.ts). */
export const WORKFLOW_INTERCEPTOR_MODULES = [path.join(__dirname, '..', 'workflows', `metrics${ext}`), path.join(__dirname, '..', 'workflows', `undecodable${ext}`)];

export async function createHandoverWorker(o: HandoverWorkerOptions): Promise<Worker> {
  const interceptor = o.failpoints?.interceptor;
  const bundle = o.dataConverter ? o.codecWorkflowBundlePath : o.workflowBundlePath;
  return Worker.create({
    connection: o.connection,
    namespace: o.namespace ?? DEFAULT_NAMESPACE,
    taskQueue: o.taskQueue ?? TASK_QUEUE,
    // The codec key ids this worker holds, for clients to check before they start a run (client/keys.ts).
    identity: `${process.pid}@${hostname()} ${codecIdentity(o.dataConverter)}`,
    // A prebuilt bundle carries its interceptors and failure converter (worker/bundle.ts); otherwise the worker
    // bundles workflows/ with them at start.
    ...(bundle ? { workflowBundle: { codePath: bundle } } : { workflowsPath: WORKFLOWS_PATH }),
    ...(o.dataConverter ? { dataConverter: o.dataConverter } : {}),
    activities: o.activities,
    interceptors: {
      ...(bundle ? {} : { workflowModules: WORKFLOW_INTERCEPTOR_MODULES }),
      ...(interceptor ? { activity: [() => ({ inbound: interceptor() })] } : {}),
    },
    shutdownGraceTime: '2s',
    // A worker that died holds its sticky workflow tasks only this long before another worker takes them.
    stickyQueueScheduleToStartTimeout: '3s',
    // Waiting activities report progress in heartbeat details (`--wait` progress bars): let one reach the
    // server every second instead of every 0.8 x heartbeatTimeout. Heartbeats are not in workflow history.
    maxHeartbeatThrottleInterval: '1s',
    ...o.extra,
  });
}
