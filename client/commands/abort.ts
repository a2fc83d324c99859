/**
 * handover abort <workflow-id> [--no-wait] [--json]
 * Abort a run safely (Temporal cancellation). Before the point of no return the runbook undoes what it did
 * (writes resumed, the old primary writable again) and ends "aborted, nothing changed"; after it, the run
 * finishes forward and says so. A rolling restart stops after the step in flight.
 */
import { CancelledFailure, WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
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
      const before = await handle.query<RunbookProgress>('progress').catch(() => undefined);
      await handle.cancel();
      if (!o.wait)
        return say(
          EXIT.ok,
          'requested',
          `abort requested for ${o.workflowId} (phase ${before?.phase ?? 'unknown'}${before?.pointOfNoReturnPassed ? ', past the point of no return: it will finish forward' : ''})`,
        );
      try {
        const report = (await handle.result()) as { abortRequested?: boolean; newPrimary?: string; primary?: string } | undefined;
        const primary = report?.newPrimary ?? report?.primary;
        if (report?.abortRequested) return say(EXIT_FINISHED_FORWARD, 'finished-forward', `abort requested after the point of no return: finished forward${primary ? ` (${primary} is the primary)` : ''}`);
        return say(EXIT_FINISHED_FORWARD, 'finished-forward', `the run completed before the abort took effect: nothing was aborted${primary ? ` (${primary} is the primary)` : ''}`);
      } catch (e) {
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
