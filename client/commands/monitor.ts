/**
 * handover monitor --cluster NAME            start the cluster's monitor (idempotent: reports it if running)
 * handover monitor --cluster NAME --status   print what it sees
 * handover monitor --cluster NAME --ack      acknowledge the last failover (clears the anti-flapping block)
 * handover monitor --cluster NAME --stop     stop it
 */
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { z } from 'zod';
import { SA_CLUSTER, SA_RUNBOOK, monitorWorkflowId } from '../../core/ids';
import type { MonitorStatus } from '../../workflows/redis/monitor';
import { CliError, CommonOptions, EXIT, connect, precheckNames, type IO } from '../common';

export const MonitorOptions = CommonOptions.extend({
  cluster: z.string().min(1),
  status: z.boolean().default(false),
  ack: z.boolean().default(false),
  stop: z.boolean().default(false),
});
export type MonitorOptions = z.input<typeof MonitorOptions>;

export async function runMonitor(raw: MonitorOptions, io: IO): Promise<{ exitCode: number; status?: MonitorStatus; workflowId: string }> {
  const o = MonitorOptions.parse(raw);
  const workflowId = monitorWorkflowId(o.cluster);
  try {
    precheckNames(o, o.cluster, []);
    const { client, close } = await connect(o);
    try {
      const handle = client.workflow.getHandle(workflowId);
      if (o.status) {
        const status = await handle.query<MonitorStatus>('status');
        io.out(o.json ? JSON.stringify(status) : `monitor ${workflowId}: primary ${status.lastKnown?.primary ?? '?'}, ${status.failovers.length} failover(s)${status.blocked ? `, BLOCKED: ${status.blocked}` : ''}; last: ${status.lastVerdict ?? '-'}`);
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
    if (!(e instanceof CliError)) throw e;
    io.err(e.message);
    return { exitCode: e.exitCode, workflowId };
  }
}
