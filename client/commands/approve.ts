/**
 * handover approve <workflow-id> [--plan-hash H] [--approver NAME] [--reject [--reason R]] [--json]
 * Approve (or reject) the plan a --require-approval run published, through the `approve` Workflow Update.
 * Without --plan-hash the plan waiting is read from the progress query, printed with its hash, and approved.
 */
import { userInfo } from 'node:os';
import { WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import { z } from 'zod';
import type { ApproveInput, ApproveResult } from '../../workflows/approval';
import type { RunbookProgress } from '../../core/types';
import { operationWorkflowId } from '../../core/ids';
import { CliError, CommonOptions, EXIT, connect, rootFailure, sayFailure, type IO } from '../common';

export const ApproveOptions = CommonOptions.extend({
  workflowId: z.string().min(1),
  planHash: z.string().min(1).optional(),
  approver: z.string().optional(),
  reject: z.boolean().default(false),
  reason: z.string().optional(),
});
export type ApproveOptions = z.input<typeof ApproveOptions>;

/** The line `switchover|rolling-restart --require-approval` prints after starting. */
export function approvalNote(cluster: string): string {
  const id = operationWorkflowId(cluster);
  return `the run waits for approval after probe and decide: see the plan and approve with "handover approve ${id}" (or reject with --reject --reason R); "handover abort ${id}" stops it`;
}

function defaultApprover(): string | undefined {
  try {
    return process.env.USER || userInfo().username;
  } catch {
    return undefined;
  }
}

export async function runApprove(raw: ApproveOptions, io: IO): Promise<{ exitCode: number; result?: ApproveResult }> {
  const o = ApproveOptions.parse(raw);
  const fail = (code: number, message: string) => {
    sayFailure(o, io, new CliError(code, message), { workflowId: o.workflowId });
    return { exitCode: code };
  };
  try {
    const { client, close } = await connect(o);
    try {
      const handle = client.workflow.getHandle(o.workflowId);
      let progress: RunbookProgress;
      try {
        progress = await handle.query<RunbookProgress>('progress');
      } catch (e) {
        if (e instanceof WorkflowNotFoundError) return fail(EXIT.refused, `refused (NotFound): no run ${o.workflowId}; list runs with "temporal workflow list" or check the cluster name`);
        throw e;
      }
      const gate = progress.approval;
      if (!gate) return fail(EXIT.refused, `refused (InvalidApproval): ${o.workflowId} has no approval gate (phase ${progress.phase}); start the runbook with --require-approval`);
      if (gate.status !== 'waiting')
        return fail(EXIT.refused, `refused (InvalidApproval): ${o.workflowId} is not waiting for approval (approval ${gate.status}${gate.approver ? ` by ${gate.approver}` : ''}, phase ${progress.phase})`);
      const planHash = o.planHash ?? gate.planHash;
      if (!o.planHash && !o.json) {
        io.out(`plan ${gate.planHash} of ${o.workflowId}: ${gate.summary}`);
        gate.plan.forEach((p, i) => io.out(`  ${i + 1}. ${p}`));
      }
      const update: ApproveInput = { approver: o.approver ?? defaultApprover() ?? '', planHash, reject: o.reject || undefined, reason: o.reason };
      let result: ApproveResult;
      try {
        result = await handle.executeUpdate<ApproveResult, [ApproveInput]>('approve', { args: [update] });
      } catch (e) {
        if (e instanceof WorkflowUpdateFailedError) {
          const { type, message } = rootFailure(e);
          return fail(EXIT.refused, `refused (${type ?? 'InvalidApproval'}): ${message}`);
        }
        throw e;
      }
      if (o.json) io.out(JSON.stringify({ workflowId: o.workflowId, ...result }));
      else
        io.out(
          result.outcome === 'approved'
            ? `approved plan ${result.planHash} of ${o.workflowId} as ${result.approver}; the run goes on (follow it in the Temporal UI)`
            : `rejected plan ${result.planHash} of ${o.workflowId} as ${result.approver}${o.reason ? ` (${o.reason})` : ''}; the run ends with nothing changed`,
        );
      return { exitCode: EXIT.ok, result };
    } finally {
      await close();
    }
  } catch (e) {
    if (!(e instanceof CliError)) throw e;
    sayFailure(o, io, e, { workflowId: o.workflowId });
    return { exitCode: e.exitCode };
  }
}
