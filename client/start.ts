/**
 * Starting a runbook and following it: shared by every mutating command. The workflow ID is the cluster's
 * lock (one operation per cluster); a second start is reported as "already running" with the holder's type.
 */
import { WorkflowExecutionAlreadyStartedError, WorkflowFailedError } from '@temporalio/client';
import { SA_CLUSTER, SA_PHASE, SA_RUNBOOK, operationWorkflowId, type RunbookName } from '../core/ids';
import { warnWhenNoWorker } from './workers';
import { standingFromDetails } from '../core/standing';
import { refuseKeyMismatch } from './keys';
import { refuseInventoryMismatch } from './worker-read';
import { CodecKeyError } from '../codec/aes-gcm';
import { CliError, EXIT, connect, exitCodeForFailure, follow, precheckNames, oneLine, rootFailure, sayFailure, type CommonOptions, type IO } from './common';

/** Workflow type -> runbook name, for messages. */
const RUNBOOK_OF_TYPE: Record<string, string> = { switchover: 'switchover', redisSwitchover: 'switchover', rollingRestart: 'rolling-restart', redisRollingRestart: 'rolling-restart', mysqlSwitchover: 'switchover', mysqlRollingRestart: 'rolling-restart', failover: 'failover', redisFailover: 'failover', mysqlFailover: 'failover', backup: 'backup', restoreBackupRun: 'restore', doltSwitchover: 'switchover', doltFailover: 'failover' };

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
    const { client, close, keyIds } = await connect(o);
    try {
      const pollers = await refuseKeyMismatch(client, o.taskQueue, keyIds);
      await refuseInventoryMismatch(client, o, s.cluster, pollers);
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
          throw new CliError(EXIT.alreadyRunning, `already running: ${workflowId}${running ? ` (${what}, run ${running.runId})` : ''}`, 'AlreadyRunning');
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
      const stopWatching = warnWhenNoWorker(client, handle, o.taskQueue, io);
      try {
        const report = await follow<R>(handle, io, { json: o.json });
        io.out(o.json ? JSON.stringify(report) : s.format(report));
        const warnings = reportWarnings(report);
        if (warnings.length && !o.json) io.err(`done with warnings: ${warnings.join('; ')}`);
        return { exitCode: warnings.length ? EXIT.warnings : EXIT.ok, report, workflowId };
      } catch (e) {
        if (e instanceof CodecKeyError) throw new CliError(EXIT.failed, `failed (CodecKeyMismatch): the run ended but this CLI cannot read how (${e.message}); look at it with the worker's key (handover history, the UI with its codec server)`, 'CodecKeyMismatch');
        if (!(e instanceof WorkflowFailedError)) throw e;
        const { type, message, details } = rootFailure(e);
        const code = exitCodeForFailure(e);
        const line = oneLine(`${code === EXIT.refused ? 'refused' : 'failed'} (${type ?? 'error'}): ${message}`);
        // After the point of no return the failure carries where the cluster stands (core/standing.ts).
        const standing = standingFromDetails(details);
        if (o.json) io.out(JSON.stringify({ workflowId, failed: true, type: type ?? 'Failed', message: line, ...(standing ? { standing } : {}) }));
        else io.err(line);
        return { exitCode: code, workflowId };
      } finally {
        stopWatching();
      }
    } finally {
      await close();
    }
  } catch (e) {
    if (!(e instanceof CliError)) throw e;
    sayFailure(o, io, e, { workflowId });
    return { exitCode: e.exitCode, workflowId };
  }
}

/**
 * What a completed run did not do as asked (exit 5, "done with warnings"): a failed routing or post hook, an
 * old primary flagged instead of fenced, replicas that do not follow the new primary, an abort that came after
 * the point of no return. Read from the report's own fields (one place for every runbook).
 */
export function reportWarnings(report: unknown): string[] {
  const r = (report ?? {}) as {
    dryRun?: boolean;
    routing?: { ok: boolean; detail: string };
    hooks?: { hook: string; ok: boolean; detail: string }[];
    fenced?: string;
    notFollowing?: { node: string; reason: string }[];
    abortRequested?: boolean;
    skipped?: { node: string; reason: string }[];
  };
  if (r.dryRun) return [];
  const out: string[] = [];
  if (r.routing && r.routing.ok === false) out.push(`routing hook failed: ${r.routing.detail}`);
  for (const h of r.hooks ?? []) if (!h.ok) out.push(`${h.hook} failed: ${h.detail}`);
  if (r.fenced === 'flagged') out.push('the old primary is flagged (errant transactions), not fenced');
  for (const n of r.notFollowing ?? []) out.push(`${n.node} does not follow the new primary: ${n.reason}`);
  if (r.abortRequested) out.push('the abort came after the point of no return: the run finished forward');
  for (const n of r.skipped ?? []) out.push(`${n.node} not restarted: ${n.reason}`);
  return out;
}
