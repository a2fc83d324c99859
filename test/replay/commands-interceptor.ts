/**
 * A workflow interceptor module for replay only (test/replay/check.ts bundles it beside the workflows): every
 * activity, child workflow and continue-as-new the workflow code asks for while a history replays is reported,
 * with its type and its input, through the `replayCommands` sink (called during replay). The check compares
 * that sequence with the history's ActivityTaskScheduled, StartChildWorkflowExecutionInitiated and
 * WorkflowExecutionContinuedAsNew events. The SDK's own determinism check compares command types and activity
 * types only, so without this a change that swaps two activities of one type with different inputs (repoint
 * n2 before n3 instead of n3 before n2) would replay cleanly.
 *
 * The input is serialised here, at the moment of the call (JSON, as the default payload converter writes it),
 * so a later mutation of the argument object by workflow code cannot change what was recorded.
 */
import { proxySinks, type Sinks, type WorkflowInterceptorsFactory } from '@temporalio/workflow';

export interface RecordedCommand {
  kind: 'activity' | 'child' | 'continueAsNew';
  /** Activity type or workflow type. */
  type: string;
  /** JSON of the argument list. */
  input: string;
  /** Child workflows: the child's workflow ID. */
  workflowId?: string;
}

export interface ReplayCommandSinks extends Sinks {
  replayCommands: { record(c: RecordedCommand): void };
}

const { replayCommands } = proxySinks<ReplayCommandSinks>();

const json = (args: unknown[]) => JSON.stringify(args.map((a) => (a === undefined ? null : a)));

export const interceptors: WorkflowInterceptorsFactory = () => ({
  outbound: [
    {
      scheduleActivity(input, next) {
        replayCommands.record({ kind: 'activity', type: input.activityType, input: json(input.args) });
        return next(input);
      },
      startChildWorkflowExecution(input, next) {
        replayCommands.record({ kind: 'child', type: input.workflowType, input: json(input.options.args ?? []), workflowId: input.options.workflowId });
        return next(input);
      },
      continueAsNew(input, next) {
        replayCommands.record({ kind: 'continueAsNew', type: input.options.workflowType, input: json(input.args) });
        return next(input);
      },
    },
  ],
});
