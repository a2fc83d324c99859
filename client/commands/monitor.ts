/**
 * handover monitor --cluster NAME            start the cluster's monitor (idempotent: reports it if running)
 * handover monitor --cluster NAME --status   print what it sees
 * handover monitor --cluster NAME --ack      acknowledge the last failover (clears the anti-flapping block)
 * handover monitor --cluster NAME --stop     stop it
 */
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/client';
import { z } from 'zod';
import { SA_CLUSTER, SA_RUNBOOK, monitorWorkflowId } from '../../core/ids';
import type { MonitorStatus } from '../../workflows/monitor';
import { pendingWatch } from '../progress';
import { refuseKeyMismatch } from '../keys';
import { refuseInventoryMismatch } from '../worker-read';
import { CliError, CommonOptions, EXIT, connect, precheckNames, sayFailure, type IO } from '../common';

export const MonitorOptions = CommonOptions.extend({
  cluster: z.string().min(1),
  status: z.boolean().default(false),
  ack: z.boolean().default(false),
  stop: z.boolean().default(false),
});
export type MonitorOptions = z.input<typeof MonitorOptions>;

/**
 * The monitor's status as text: what it watches, then everything an on-call engineer must act on as `!` lines
 * (a monitor that cannot confirm a death, the anti-flapping block, flagged nodes with every errant GTID, a
 * configuration that lets a node take writes on restart; `?` when that cannot be checked), then the failovers
 * with what is known and not known of their data loss.
 */
export function formatMonitorStatus(workflowId: string, s: MonitorStatus & { flagged?: Record<string, string[]> }): string[] {
  const lk = s.lastKnown as (MonitorStatus['lastKnown'] & { gtid?: string }) | undefined;
  const at = lk ? (lk.gtid !== undefined ? (lk.gtid || 'empty') : `offset ${lk.offset}`) : undefined;
  const lines = [
    `monitor ${workflowId}: primary ${lk?.primary ?? '?'}${at ? ` (last seen at ${at}${lk?.seenAt ? `, ${new Date(lk.seenAt).toISOString()}` : ''})` : ''}, ${s.failovers.length} failover(s)${s.blocked ? `, BLOCKED: ${s.blocked}` : ''}; last: ${s.lastVerdict ?? '-'}`,
  ];
  if (s.blind) lines.push(`  ! ${s.blind}`);
  if (s.blocked) lines.push(`  ! blocked: ${s.blocked} (handover monitor --ack to allow the next failover)`);
  for (const [node, gtids] of Object.entries(s.flagged ?? {}))
    lines.push(
      gtids[0]?.startsWith('reset:')
        ? `  ! ${node} FLAGGED: ${gtids[0].slice(7)} (handover backup provision-replica --node ${node}); left read-only and not replicating${gtids.length > 1 ? `, holding only ${gtids.slice(1).join(', ')} of its own` : ''}; cleared once it replicates from the primary again`
        : `  ! ${node} FLAGGED: left read-only and not replicating, ${gtids.length} errant GTID(s) ${gtids.join(', ')}; resolve by hand (re-clone, or reapply), then --ack`,
    );
  for (const r of s.restartRisks ?? []) lines.push(`  ${r}`);
  for (const e of s.emptyReturns ?? []) lines.push(`  ! EMPTY PRIMARY ${new Date(e.at).toISOString()}: ${e.text}`);
  if (s.adopted) lines.push(`  followed the fleet: ${s.adopted}`);
  for (const f of s.failovers)
    lines.push(`  failover ${new Date(f.at).toISOString()}: ${f.from} -> ${f.to}, detected in ${f.detectMs} ms; data loss: ${f.loss ?? (f.lostBytes !== undefined ? `at least ${f.lostBytes} bytes` : 'unknown')}`);
  return lines;
}

/**
 * The status query answers as of the detection activity's last return; its heartbeat (`live`) is newer: the
 * rounds, the primary's last sighting, the last verdict, why it is blind, the restart risks.
 */
export function withLiveView(s: MonitorStatus, live: Awaited<ReturnType<typeof pendingWatch>>): MonitorStatus {
  if (!live) return s;
  const l = live.state;
  return { ...s, rounds: s.rounds + live.roundsDone, lastKnown: l.lastKnown ?? s.lastKnown, lastVerdict: l.lastVerdict ?? s.lastVerdict, blind: l.blind, restartRisks: l.restartRisks ?? s.restartRisks, adopted: l.adopted ?? s.adopted, emptyReturns: mergeEmpty(s.emptyReturns, l.emptyReturns) };
}

/** The status's empty returns plus any newer ones only the heartbeat has seen yet. */
function mergeEmpty(a: MonitorStatus['emptyReturns'], b: MonitorStatus['emptyReturns']): MonitorStatus['emptyReturns'] {
  const out = [...(a ?? [])];
  for (const e of b ?? []) if (!out.some((x) => x.node === e.node && x.at === e.at)) out.push(e);
  return out.length ? out.slice(-5) : undefined;
}

export async function runMonitor(raw: MonitorOptions, io: IO): Promise<{ exitCode: number; status?: MonitorStatus; workflowId: string }> {
  const o = MonitorOptions.parse(raw);
  const workflowId = monitorWorkflowId(o.cluster);
  try {
    precheckNames(o, o.cluster, []);
    const { client, close, keyIds } = await connect(o);
    try {
      const handle = client.workflow.getHandle(workflowId);
      if (o.status) {
        const status = withLiveView(await handle.query<MonitorStatus>('status'), await pendingWatch(handle).catch(() => undefined));
        io.out(o.json ? JSON.stringify(status) : formatMonitorStatus(workflowId, status).join('\n'));
        return { exitCode: EXIT.ok, status, workflowId };
      }
      if (o.ack) {
        await handle.signal('acknowledge');
        io.out(`acknowledged: ${workflowId} may fail over again`);
        return { exitCode: EXIT.ok, workflowId };
      }
      if (o.stop) {
        await handle.terminate('stopped with handover monitor --stop');
        io.out(`stopped ${workflowId}`);
        return { exitCode: EXIT.ok, workflowId };
      }
      const pollers = await refuseKeyMismatch(client, o.taskQueue, keyIds);
      await refuseInventoryMismatch(client, o, o.cluster, pollers);
      try {
        await client.workflow.start('monitor', {
          workflowId,
          taskQueue: o.taskQueue,
          args: [{ cluster: o.cluster, failovers: [] }],
          workflowIdConflictPolicy: 'FAIL',
          typedSearchAttributes: [
            { key: SA_CLUSTER, value: o.cluster },
            { key: SA_RUNBOOK, value: 'monitor' },
          ],
          staticSummary: `monitor of ${o.cluster}`,
        });
        io.out(o.json ? JSON.stringify({ workflowId, started: true }) : `monitoring ${o.cluster}: ${workflowId}`);
      } catch (e) {
        if (!(e instanceof WorkflowExecutionAlreadyStartedError)) throw e;
        io.out(o.json ? JSON.stringify({ workflowId, started: false }) : `already monitoring ${o.cluster}: ${workflowId}`);
      }
      return { exitCode: EXIT.ok, workflowId };
    } finally {
      await close();
    }
  } catch (e) {
    if (e instanceof WorkflowNotFoundError) {
      sayFailure(o, io, new CliError(EXIT.refused, `refused (NotFound): no monitor ${workflowId} running; start it with handover monitor --cluster ${o.cluster}`), { workflowId });
      return { exitCode: EXIT.refused, workflowId };
    }
    if (!(e instanceof CliError)) throw e;
    sayFailure(o, io, e, { workflowId });
    return { exitCode: e.exitCode, workflowId };
  }
}
