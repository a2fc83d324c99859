/**
 * handover abort <workflow-id> [--no-wait] [--json]
 * Abort a run safely (Temporal cancellation). Before the point of no return the runbook undoes what it did
 * (writes resumed, the old primary writable again) and ends "aborted, nothing changed"; after it, the run
 * finishes forward and says so. A rolling restart stops after the step in flight.
 */
import { CancelledFailure, WorkflowFailedError, WorkflowNotFoundError, type WorkflowHandle } from '@temporalio/client';
import { z } from 'zod';
import { ErrorType } from '../../core/errors';
import type { RunbookProgress } from '../../core/types';
import { CliError, CommonOptions, EXIT, connect, rootFailure, type IO } from '../common';

/** abort: the abort came after the point of no return; the run finished forward (documented in the README). */
export const EXIT_FINISHED_FORWARD = EXIT.warnings;

export const AbortOptions = CommonOptions.extend({
  workflowId: z.string().min(1),
  wait: z.boolean().default(true),
});
export type AbortOptions = z.input<typeof AbortOptions>;

export type AbortOutcome = 'aborted' | 'finished-forward' | 'failed' | 'requested';

export async function runAbort(raw: AbortOptions, io: IO): Promise<{ exitCode: number; outcome?: AbortOutcome; message?: string }> {
  const o = AbortOptions.parse(raw);
  const say = (exitCode: number, outcome: AbortOutcome | undefined, message: string, toErr = false) => {
    const type = toErr ? (/^\w+ \((\w+)\):/.exec(message)?.[1] ?? (exitCode === EXIT.unavailable ? 'TemporalUnreachable' : 'Refused')) : undefined;
    if (o.json) io.out(JSON.stringify({ workflowId: o.workflowId, outcome, message, ...(toErr ? { failed: true, type } : {}) }));
    else if (toErr) io.err(message);
    else io.out(message);
    return { exitCode, outcome, message };
  };
  try {
    const { client, close } = await connect(o);
    try {
      const handle = client.workflow.getHandle(o.workflowId);
      let status: string;
      try {
        status = (await handle.describe()).status.name;
      } catch (e) {
        if (e instanceof WorkflowNotFoundError) return say(EXIT.refused, undefined, `refused (NotFound): no run ${o.workflowId}; check the workflow ID (handover-<cluster>)`, true);
        throw e;
      }
      if (status !== 'RUNNING') return say(EXIT.refused, undefined, `refused (NotRunning): ${o.workflowId} is ${status.toLowerCase()}; there is nothing to abort`, true);
      // A run whose workflow task keeps failing (a worker that cannot read it) answers no query: do not wait on it.
      const before = (await stuckReason(handle)) ? undefined : await queryWithin(handle, 3000);
      await handle.cancel();
      const stuck = await stuckReason(handle);
      if (stuck)
        return say(
          EXIT.failed,
          'requested',
          `failed (AbortNotTaken): the abort of ${o.workflowId} is recorded but cannot take effect: ${stuck}; the run still holds the cluster: end it with "temporal workflow terminate --workflow-id ${o.workflowId}" once you know it changed nothing`,
          true,
        );
      if (!o.wait)
        return say(
          EXIT.ok,
          'requested',
          `abort requested for ${o.workflowId} (phase ${before?.phase ?? 'unknown'}${before?.pointOfNoReturnPassed ? ', past the point of no return: it will finish forward' : ''})`,
        );
      try {
        const report = (await resultOrStuck(handle)) as { abortRequested?: boolean; newPrimary?: string; primary?: string } | undefined;
        const primary = report?.newPrimary ?? report?.primary;
        if (report?.abortRequested) return say(EXIT_FINISHED_FORWARD, 'finished-forward', `abort requested after the point of no return: finished forward${primary ? ` (${primary} is the primary)` : ''}`);
        return say(EXIT_FINISHED_FORWARD, 'finished-forward', `the run completed before the abort took effect: nothing was aborted${primary ? ` (${primary} is the primary)` : ''}`);
      } catch (e) {
        if (e instanceof StuckRun)
          return say(
            EXIT.failed,
            'requested',
            `failed (AbortNotTaken): the abort of ${o.workflowId} is recorded but cannot take effect: ${e.message}; the run still holds the cluster: end it with "temporal workflow terminate --workflow-id ${o.workflowId}" once you know it changed nothing`,
            true,
          );
        if (!(e instanceof WorkflowFailedError)) throw e;
        if (e.cause instanceof CancelledFailure) return say(EXIT.ok, 'aborted', `aborted ${o.workflowId} before it changed anything`);
        const { type, message } = rootFailure(e);
        if (type === ErrorType.Aborted) return say(EXIT.ok, 'aborted', `aborted: ${message}`);
        return say(EXIT.failed, 'failed', `failed (${type ?? 'error'}): ${message}`, true);
      }
    } finally {
      await close();
    }
  } catch (e) {
    if (!(e instanceof CliError)) throw e;
    return say(e.exitCode, undefined, e.message, true);
  }
}

class StuckRun extends Error {}

/**
 * Why the run cannot act on anything (an abort included), or undefined: its workflow task has failed and is being
 * retried (a worker that cannot decode it, a broken build), read from DescribeWorkflowExecution.
 */
async function stuckReason(handle: WorkflowHandle): Promise<string | undefined> {
  const d = await handle.describe().catch(() => undefined);
  if (!d || d.status.name !== 'RUNNING') return undefined;
  const attempt = d.raw.pendingWorkflowTask?.attempt ?? 0;
  if (attempt >= 2) return `its workflow task has failed ${attempt - 1} time(s) and is being retried (a worker that cannot read the run, e.g. another codec key, or cannot run its code)`;
  return undefined;
}

async function queryWithin(handle: WorkflowHandle, ms: number): Promise<RunbookProgress | undefined> {
  return Promise.race([handle.query<RunbookProgress>('progress').catch(() => undefined), new Promise<undefined>((r) => setTimeout(() => r(undefined), ms).unref())]);
}

/** The run's result, or StuckRun when its workflow task keeps failing (checked every 2 s). */
async function resultOrStuck(handle: WorkflowHandle): Promise<unknown> {
  const result = handle.result();
  let done = false;
  void result.then(
    () => (done = true),
    () => (done = true),
  );
  while (!done) {
    const tick = await Promise.race([result.then(() => 'done', () => 'done'), new Promise<string>((r) => setTimeout(() => r('tick'), 2000).unref())]);
    if (tick === 'done') break;
    const stuck = await stuckReason(handle);
    if (stuck) throw new StuckRun(stuck);
  }
  return result;
}
