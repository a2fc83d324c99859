/**
 * A workflow interceptor (bundled with the workflows, worker/worker.ts WORKFLOW_INTERCEPTOR_MODULES): a run whose
 * input this worker could not decrypt (codec/aes-gcm.ts decodes it into an {__handoverUndecodable} marker on
 * workers) fails at once, non-retryable, with CodecKeyMismatch naming both key ids — instead of failing its first
 * workflow task over and over while its workflow ID holds the cluster's lock. A run whose input decodes is not
 * touched: no command is added, so committed histories replay unchanged.
 */
import { ApplicationFailure, type WorkflowInterceptorsFactory } from '@temporalio/workflow';
import { ErrorType, UNDECODABLE_FIELD } from '../core/errors';

/** The marker's reason when `args` carries one. */
export function undecodableReason(args: unknown[]): string | undefined {
  for (const a of args)
    if (a && typeof a === 'object' && UNDECODABLE_FIELD in a) return String((a as Record<string, unknown>)[UNDECODABLE_FIELD]);
  return undefined;
}

export const interceptors: WorkflowInterceptorsFactory = () => ({
  inbound: [
    {
      async execute(input, next) {
        const why = undecodableReason(input.args);
        if (why) throw ApplicationFailure.nonRetryable(`this worker cannot read the run's input (${why}); nothing was done: start it again with the worker's codec key`, ErrorType.CodecKeyMismatch);
        return next(input);
      },
    },
  ],
});
