/** Builds the Handover worker: the workflows in workflows/, the activities from createActivities(deps). */
import path from 'node:path';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { DEFAULT_NAMESPACE, TASK_QUEUE } from '../core/ids';
import type { Activities } from '../activities';
import type { DataConverter } from '@temporalio/common';
import type { Failpoints } from './failpoints';

export interface HandoverWorkerOptions {
  connection: NativeConnection;
  activities: Activities;
  namespace?: string;
  taskQueue?: string;
  /** Path of a prebuilt workflow bundle (bundleWorkflowCode); the worker bundles workflows/ itself otherwise. */
  workflowBundlePath?: string;
  failpoints?: Failpoints;
  /** Payload encryption (codec/aes-gcm.ts dataConverterFromEnv); the workflows are bundled with it. */
  dataConverter?: DataConverter;
  /** Extra options (tests shorten shutdown grace, for instance). */
  extra?: Partial<WorkerOptions>;
}

export const WORKFLOWS_PATH = path.join(__dirname, '..', 'workflows', 'index.ts');

export async function createHandoverWorker(o: HandoverWorkerOptions): Promise<Worker> {
  const interceptor = o.failpoints?.interceptor;
  return Worker.create({
    connection: o.connection,
    namespace: o.namespace ?? DEFAULT_NAMESPACE,
    taskQueue: o.taskQueue ?? TASK_QUEUE,
    // A prebuilt bundle lacks the encrypting failure converter, so with a codec the worker bundles its own.
    ...(o.workflowBundlePath && !o.dataConverter ? { workflowBundle: { codePath: o.workflowBundlePath } } : { workflowsPath: WORKFLOWS_PATH }),
    ...(o.dataConverter ? { dataConverter: o.dataConverter } : {}),
    activities: o.activities,
    interceptors: interceptor ? { activity: [() => ({ inbound: interceptor() })] } : undefined,
    shutdownGraceTime: '2s',
    // A worker that died holds its sticky workflow tasks only this long before another worker takes them.
    stickyQueueScheduleToStartTimeout: '3s',
    // Waiting activities report progress in heartbeat details (`--wait` progress bars): let one reach the
    // server every second instead of every 0.8 x heartbeatTimeout. Heartbeats are not in workflow history.
    maxHeartbeatThrottleInterval: '1s',
    ...o.extra,
  });
}
