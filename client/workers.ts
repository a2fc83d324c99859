/**
 * `--wait` with nobody to run the run: a started workflow that no worker picks up waits silently forever.
 * A few seconds after the start, if the run's first workflow task has still not been picked up, the CLI looks at
 * the task queue's pollers (DescribeTaskQueue) and says on stderr what it sees: no worker polling, or workers
 * polling that do not take the task. The run itself is left alone (a worker may still come).
 */
import type { Client, WorkflowHandle } from '@temporalio/client';
import type { IO } from './common';

/** DescribeTaskQueue enums (temporal.api.enums.v1), stable wire numbers (as in client/commands/doctor.ts). */
const TASK_QUEUE_KIND_NORMAL = 1;
const TASK_QUEUE_TYPE_WORKFLOW = 1;
/** A poller seen longer ago than this has gone (an idle worker re-polls at least every ~70 s). */
const POLLER_FRESH_MS = 90_000;

/** Worker identities polling `taskQueue` for workflow tasks, seen in the last 90 s. */
export async function workflowPollers(client: Client, taskQueue: string): Promise<string[]> {
  const r = await client.workflowService.describeTaskQueue({
    namespace: client.options.namespace,
    taskQueue: { name: taskQueue, kind: TASK_QUEUE_KIND_NORMAL },
    taskQueueType: TASK_QUEUE_TYPE_WORKFLOW,
  });
  const now = Date.now();
  return (r.pollers ?? [])
    .filter((p) => {
      const s = p.lastAccessTime?.seconds;
      return s !== undefined && s !== null && now - Number(s) * 1000 < POLLER_FRESH_MS;
    })
    .map((p) => p.identity ?? '?');
}

/** Pure: the warning for a run not picked up after `afterMs`, given the pollers seen (undefined: none to give). */
export function noWorkerWarning(taskQueue: string, namespace: string, afterMs: number, pollers: string[]): string {
  return pollers.length
    ? `warning: no worker has taken the run after ${afterMs / 1000} s although ${pollers.length} poll task queue ${taskQueue} (${pollers.join(', ')}): are they busy, or on another build?`
    : `warning: no worker polls task queue ${taskQueue} in namespace ${namespace} (none seen in the last ${POLLER_FRESH_MS / 1000} s); the run waits until one does: start one (bin/handover-worker) with HANDOVER_TASK_QUEUE=${taskQueue}, or abort it with handover abort`;
}

/** Cancels the check; `looked` settles once the check was made (true: it warned) or was cancelled first (false). */
export type NoWorkerWatch = (() => void) & { looked: Promise<boolean> };

/**
 * After `afterMs`, warn once on stderr when the run's first workflow task has not been picked up. Returns a
 * function that cancels the check (call it when the run ends).
 */
export function warnWhenNoWorker(client: Client, handle: WorkflowHandle, taskQueue: string, io: IO, afterMs = 3000): NoWorkerWatch {
  let cancelled = false;
  let settle: (warned: boolean) => void = () => undefined;
  const looked = new Promise<boolean>((resolve) => (settle = resolve));
  const timer = setTimeout(() => {
    void (async () => {
      let warned = false;
      try {
        const d = await handle.describe();
        // 2 events: WorkflowExecutionStarted and WorkflowTaskScheduled; a picked-up task adds WorkflowTaskStarted.
        if (cancelled || d.status.name !== 'RUNNING' || d.historyLength > 2) return;
        const pollers = await workflowPollers(client, taskQueue);
        if (!cancelled) {
          io.err(noWorkerWarning(taskQueue, client.options.namespace, afterMs, pollers));
          warned = true;
        }
      } catch {
        // a look that fails must not disturb following the run
      } finally {
        settle(warned);
      }
    })();
  }, afterMs);
  return Object.assign(
    () => {
      cancelled = true;
      clearTimeout(timer);
      settle(false);
    },
    { looked },
  );
}
