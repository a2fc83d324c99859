/**
 * handover switchover --cluster NAME [--to NODE] [--wait] [--dry-run] [--json]
 * Planned switchover: hand the primary role to a caught-up replica with no acknowledged write lost.
 */
import { WorkflowExecutionAlreadyStartedError, WorkflowFailedError } from '@temporalio/client';
import { z } from 'zod';
import { SA_CLUSTER, SA_PHASE, SA_RUNBOOK, operationWorkflowId } from '../../core/ids';
import type { RedisSwitchoverInput, SwitchoverReport } from '../../workflows/switchover-redis';
import { CliError, CommonOptions, EXIT, connect, exitCodeForFailure, follow, precheckNames, rootFailure, type IO } from '../common';

export const SwitchoverOptions = CommonOptions.extend({
  cluster: z.string().min(1),
  to: z.string().min(1).optional(),
  wait: z.boolean().default(false),
  dryRun: z.boolean().default(false),
  requestedBy: z.string().optional(),
});
export type SwitchoverOptions = z.input<typeof SwitchoverOptions>;

export async function runSwitchover(raw: SwitchoverOptions, io: IO): Promise<{ exitCode: number; report?: SwitchoverReport; workflowId: string }> {
  const o = SwitchoverOptions.parse(raw);
  const workflowId = operationWorkflowId(o.cluster);
  try {
    precheckNames(o, o.cluster, [o.to]);
    const { client, close } = await connect(o);
    try {
      const input: RedisSwitchoverInput = { cluster: o.cluster, to: o.to, dryRun: o.dryRun, requestedBy: o.requestedBy ?? process.env.USER };
      let handle;
      try {
        handle = await client.workflow.start('switchover', {
          workflowId,
          taskQueue: o.taskQueue,
          args: [input],
          workflowIdConflictPolicy: 'FAIL',
          workflowIdReusePolicy: 'ALLOW_DUPLICATE',
          typedSearchAttributes: [
            { key: SA_CLUSTER, value: o.cluster },
            { key: SA_RUNBOOK, value: 'switchover' },
            { key: SA_PHASE, value: 'starting' },
          ],
          staticSummary: `${o.dryRun ? 'plan ' : ''}switchover of ${o.cluster}${o.to ? ` to ${o.to}` : ''}`,
          staticDetails: `Planned switchover of Redis cluster \`${o.cluster}\`${o.to ? ` to \`${o.to}\`` : ''}${o.dryRun ? ' (dry run: probe and decide only)' : ''}.`,
        });
      } catch (e) {
        if (e instanceof WorkflowExecutionAlreadyStartedError) {
          const running = await client.workflow.getHandle(workflowId).describe().catch(() => undefined);
          throw new CliError(EXIT.alreadyRunning, `already running: ${workflowId}${running ? ` (${running.type}, run ${running.runId})` : ''}`);
        }
        throw e;
      }
      if (!o.wait && !o.dryRun) {
        if (o.json) io.out(JSON.stringify({ workflowId, runId: handle.firstExecutionRunId }));
        else io.out(`started ${workflowId} (run ${handle.firstExecutionRunId}); follow it with --wait or in the Temporal UI`);
        return { exitCode: EXIT.ok, workflowId };
      }
      if (!o.json) io.out(`${o.dryRun ? 'planning' : 'running'} switchover of ${o.cluster}: ${workflowId}`);
      try {
        const report = await follow<SwitchoverReport>(handle, io, { json: o.json });
        if (o.json) io.out(JSON.stringify(report));
        else io.out(formatReport(report));
        return { exitCode: EXIT.ok, report, workflowId };
      } catch (e) {
        if (e instanceof WorkflowFailedError) {
          const { type, message } = rootFailure(e);
          const code = exitCodeForFailure(e);
          if (o.json) io.out(JSON.stringify({ workflowId, failed: true, type, message }));
          else io.err(`${code === EXIT.refused ? 'refused' : 'failed'} (${type ?? 'error'}): ${message}`);
          return { exitCode: code, workflowId };
        }
        throw e;
      }
    } finally {
      await close();
    }
  } catch (e) {
    if (e instanceof CliError) {
      if (o.json) io.out(JSON.stringify({ workflowId, failed: true, message: e.message }));
      else io.err(e.message);
      return { exitCode: e.exitCode, workflowId };
    }
    throw e;
  }
}

export function formatReport(r: SwitchoverReport): string {
  const d = r.decision;
  const lines = [
    r.dryRun ? `plan for ${r.cluster} (dry run, nothing changed):` : `switched over ${r.cluster}: ${r.oldPrimary} -> ${r.newPrimary}`,
    `  candidate ${d.candidate}: ${d.reasons.join('; ')}`,
    ...[...d.ahead, ...d.equal, ...d.lagging, ...d.cannotReplicate].map((n) => `  not chosen ${n.node}: ${n.reason}`),
    ...r.plan.map((p, i) => `  ${i + 1}. ${p}`),
  ];
  if (!r.dryRun) {
    lines.push(`  write pause (handover step): ${r.writePauseMs} ms`);
    lines.push(`  steps: ${r.steps.map((s) => `${s.step} ${s.ms} ms`).join(', ')}`);
  }
  return lines.join('\n');
}
