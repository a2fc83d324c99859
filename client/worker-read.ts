/**
 * Reading on the worker: `handover status` and the inventory check before a runbook run the clusterStatus
 * workflow (workflows/status.ts) on the task queue, so the databases are read with the worker's inventory and
 * secrets and the CLI needs Temporal alone. When no worker polls the task queue, or it does not answer within
 * the deadline, the caller is told why (and the status command reads the databases itself when it can).
 */
import { randomUUID } from 'node:crypto';
import { WorkflowFailedError, type Client } from '@temporalio/client';
import type { ReadClusterStatusResult } from '../activities/status';
import { statusWorkflowId } from '../core/ids';
import { loadInventory, findCluster, inventoryPath } from '../inventory/load';
import { clusterShape, shapeDifferences, type ClusterShape } from '../inventory/shape';
import type { ClusterStatusInput } from '../workflows/status';
import { CliError, EXIT, rootFailure, type CommonOptions } from './common';
import { workflowPollers } from './workers';
import { existsSync } from 'node:fs';

/** How long the CLI waits for the worker's read before it gives up on it. */
export const WORKER_READ_TIMEOUT_MS = 20_000;

export type WorkerRead = { ok: true; result: ReadClusterStatusResult } | { ok: false; why: string };

/** A read-only workflow run on the worker and awaited: its result, or why there is none. */
export type OnWorker<T> = { ok: true; result: T } | { ok: false; why: string };

/**
 * Run a read-only workflow (clusterStatus, doctor) on the task queue and wait for its result, at most
 * `timeoutMs` (then it is terminated). UnknownCluster (the worker's inventory lacks the cluster) is refused, exit 2;
 * any other failure, no worker polling, or no answer in time is returned as `why`.
 * `pollers`: the task queue's workflow pollers when the caller has just looked (refuseKeyMismatch); else looked up here.
 */
export async function runOnWorker<T>(
  client: Client,
  taskQueue: string,
  run: { workflowType: string; workflowId: string; args: unknown[]; summary: string },
  timeoutMs = WORKER_READ_TIMEOUT_MS,
  pollers?: string[],
  /** Give up early when no worker has taken the run's first workflow task after this long (a worker that just stopped still shows as polling). */
  pickupMs?: number,
): Promise<OnWorker<T>> {
  if (!pollers) {
    try {
      pollers = await workflowPollers(client, taskQueue);
    } catch (e) {
      return { ok: false, why: `cannot describe task queue ${taskQueue}: ${(e as Error).message}` };
    }
  }
  if (pollers.length === 0) return { ok: false, why: `no worker polls task queue ${taskQueue}` };
  const handle = await client.workflow.start(run.workflowType, {
    workflowId: run.workflowId,
    taskQueue,
    args: run.args,
    workflowExecutionTimeout: `${Math.ceil(timeoutMs / 1000) + 10}s`,
    staticSummary: run.summary,
  });
  let timer: NodeJS.Timeout | undefined;
  let pickupTimer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
  const notTaken = new Promise<'not-taken'>((resolve) => {
    if (pickupMs === undefined) return;
    pickupTimer = setTimeout(() => {
      // 2 events: WorkflowExecutionStarted and WorkflowTaskScheduled; a picked-up task adds WorkflowTaskStarted.
      handle.describe().then((d) => d.status.name === 'RUNNING' && d.historyLength <= 2 && resolve('not-taken'), () => undefined);
    }, pickupMs);
  });
  try {
    const r = await Promise.race([handle.result() as Promise<T>, timedOut, notTaken]);
    if (r === 'timeout' || r === 'not-taken') {
      await handle.terminate('the CLI stopped waiting').catch(() => undefined);
      return { ok: false, why: r === 'timeout' ? `the worker did not answer within ${timeoutMs / 1000} s` : `no worker took the run within ${(pickupMs ?? 0) / 1000} s (${pollers.length} seen polling task queue ${taskQueue} lately: stopped, busy, or on another build?)` };
    }
    return { ok: true, result: r };
  } catch (e) {
    if (!(e instanceof WorkflowFailedError)) throw e;
    const { type, message } = rootFailure(e);
    if (type === 'UnknownCluster') throw new CliError(EXIT.refused, `refused (UnknownCluster): ${message} (in the worker's inventory)`, 'UnknownCluster');
    return { ok: false, why: `the worker's read failed: ${type ? `${type}: ` : ''}${message}` };
  } finally {
    clearTimeout(timer);
    clearTimeout(pickupTimer);
  }
}

/** `pollers`: the task queue's workflow pollers when the caller has just looked (refuseKeyMismatch); else looked up here. */
export async function readOnWorker(client: Client, taskQueue: string, input: ClusterStatusInput, timeoutMs = WORKER_READ_TIMEOUT_MS, pollers?: string[]): Promise<WorkerRead> {
  return runOnWorker<ReadClusterStatusResult>(
    client,
    taskQueue,
    {
      workflowType: 'clusterStatus',
      workflowId: statusWorkflowId(input.cluster, randomUUID().slice(0, 8)),
      args: [input],
      summary: input.probe === false ? `inventory check${input.cluster ? ` of ${input.cluster}` : ''} (read-only)` : `status${input.cluster ? ` of ${input.cluster}` : ''} (read-only)`,
    },
    timeoutMs,
    pollers,
  );
}

/**
 * The CLI's own definition of `cluster`, when it was given an inventory (--inventory, HANDOVER_INVENTORY, or
 * ./inventory.yaml present) that defines it; undefined otherwise (nothing to compare).
 */
export function localShape(o: CommonOptions, cluster: string): { file: string; shape: ClusterShape } | undefined {
  const file = inventoryPath(o.inventory);
  if (!existsSync(file)) return undefined;
  try {
    return { file, shape: clusterShape(findCluster(loadInventory(file), cluster)) };
  } catch {
    return undefined;
  }
}

/** Pure: the one-line disagreement between the CLI's file and the worker's inventory on `cluster`, or undefined. */
export function inventoryMismatch(cluster: string, file: string, here: ClusterShape, worker: ClusterShape | undefined): string | undefined {
  if (!worker) return `cluster ${cluster} is in ${file} but not in the worker's inventory`;
  const diffs = shapeDifferences(here, worker);
  return diffs.length ? `${file} and the worker's inventory disagree on cluster ${cluster}: ${diffs.join('; ')}` : undefined;
}

/**
 * Before a runbook starts: when this CLI holds a definition of the cluster, the worker's must be the same
 * (refused, exit 2, InventoryMismatch, naming what differs). Not judged when no worker polls or none answers
 * (the run's own start says so).
 */
export async function refuseInventoryMismatch(client: Client, o: CommonOptions, cluster: string, pollers?: string[]): Promise<void> {
  const mine = localShape(o, cluster);
  if (!mine) return;
  const r = await readOnWorker(client, o.taskQueue, { cluster, probe: false }, 10_000, pollers).catch((e) => {
    if (e instanceof CliError && e.type === 'UnknownCluster') return { ok: true as const, result: { clusters: [], shapes: {} as Record<string, ClusterShape> } };
    throw e;
  });
  if (!r.ok) return;
  const why = inventoryMismatch(cluster, mine.file, mine.shape, r.result.shapes[cluster]);
  if (why) throw new CliError(EXIT.refused, `refused (InventoryMismatch): ${why}; the worker runs the runbook with its own: make the two files agree; nothing was started`, 'InventoryMismatch');
}
