/**
 * Starting a runbook and following it: shared by every mutating command. The workflow ID is the cluster's
 * lock (one operation per cluster); a second start is reported as "already running" with the holder's type.
 */
import { WorkflowExecutionAlreadyStartedError, WorkflowFailedError } from '@temporalio/client';
import { SA_CLUSTER, SA_PHASE, SA_RUNBOOK, operationWorkflowId, type RunbookName } from '../core/ids';
import { CliError, EXIT, connect, exitCodeForFailure, follow, precheckNames, rootFailure, type CommonOptions, type IO } from './common';

/** Workflow type -> runbook name, for messages. */
const RUNBOOK_OF_TYPE: Record<string, string> = { switchover: 'switchover', redisSwitchover: 'switchover', rollingRestart: 'rolling-restart', redisRollingRestart: 'rolling-restart', mysqlSwitchover: 'switchover', mysqlRollingRestart: 'rolling-restart', failover: 'failover', redisFailover: 'failover', mysqlFailover: 'failover', backup: 'backup', restoreBackupRun: 'restore' };

export interface RunbookStart<R> {
  runbook: RunbookName;
  workflowType: string;
  cluster: string;
  /** Node names to check against the inventory before starting. */
  nodes?: (string | undefined)[];
  input: unknown;
  wait: boolean;
  dryRun: boolean;
  summary: string;
  details: string;
  format(report: R): string;
  /** An extra line printed after "started" (e.g. how to approve). */
  note?: string;
}

export async function startRunbook<R>(o: CommonOptions, io: IO, s: RunbookStart<R>): Promise<{ exitCode: number; report?: R; workflowId: string }> {
  const workflowId = operationWorkflowId(s.cluster);
  try {
    precheckNames(o, s.cluster, s.nodes ?? []);
    const { client, close } = await connect(o);
    try {
      let handle;
      try {
        handle = await client.workflow.start(s.workflowType, {
          workflowId,
          taskQueue: o.taskQueue,
          args: [s.input],
          workflowIdConflictPolicy: 'FAIL',
          workflowIdReusePolicy: 'ALLOW_DUPLICATE',
          typedSearchAttributes: [
            { key: SA_CLUSTER, value: s.cluster },
            { key: SA_RUNBOOK, value: s.runbook },
            { key: SA_PHASE, value: 'starting' },
          ],
          staticSummary: s.summary,
          staticDetails: s.details,
        });
      } catch (e) {
        if (e instanceof WorkflowExecutionAlreadyStartedError) {
          const running = await client.workflow.getHandle(workflowId).describe().catch(() => undefined);
          const what = running ? (RUNBOOK_OF_TYPE[running.type] ?? running.type) : undefined;
          throw new CliError(EXIT.alreadyRunning, `already running: ${workflowId}${running ? ` (${what}, run ${running.runId})` : ''}`);
        }
        throw e;
      }
      if (!s.wait && !s.dryRun) {
        if (o.json) io.out(JSON.stringify({ workflowId, runId: handle.firstExecutionRunId }));
        else io.out(`started ${workflowId} (run ${handle.firstExecutionRunId}); follow it with --wait or in the Temporal UI`);
        if (s.note && !o.json) io.out(s.note);
        return { exitCode: EXIT.ok, workflowId };
      }
      if (!o.json) io.out(`${s.dryRun ? 'planning' : 'running'} ${s.runbook} of ${s.cluster}: ${workflowId}`);
      if (s.note && !o.json && !s.dryRun) io.out(s.note);
      try {
        const report = await follow<R>(handle, io, { json: o.json });
        io.out(o.json ? JSON.stringify(report) : s.format(report));
        return { exitCode: EXIT.ok, report, workflowId };
      } catch (e) {
        if (!(e instanceof WorkflowFailedError)) throw e;
        const { type, message } = rootFailure(e);
        const code = exitCodeForFailure(e);
        if (o.json) io.out(JSON.stringify({ workflowId, failed: true, type, message }));
        else io.err(`${code === EXIT.refused ? 'refused' : 'failed'} (${type ?? 'error'}): ${message}`);
        return { exitCode: code, workflowId };
      }
    } finally {
      await close();
    }
  } catch (e) {
    if (!(e instanceof CliError)) throw e;
    if (o.json) io.out(JSON.stringify({ workflowId, failed: true, message: e.message }));
    else io.err(e.message);
    return { exitCode: e.exitCode, workflowId };
  }
}
