/**
 * handover maintenance --cluster NAME [--node N --until T [--reason TEXT] | --node N --clear] [--json]
 * Put a node in maintenance until a time (or take it out): the monitor neither fails over from nor to it, a
 * failover does not promote it, a rolling restart skips or waits for it (`--maintenance skip|wait`), and
 * `status` shows it. Without --node: list the cluster's open windows. The windows live in the cluster's
 * maintenance workflow (handover-maintenance-<cluster>, workflows/maintenance.ts): durable in Temporal, seen by
 * every worker, ending by itself.
 */
import { WorkflowNotFoundError } from '@temporalio/client';
import { z } from 'zod';
import { maintenanceWorkflowId } from '../../core/ids';
import { activeWindows, describeWindow, type MaintenanceWindow } from '../../core/maintenance';
import { CliError, CommonOptions, EXIT, connect, precheckNames, sayFailure, type IO } from '../common';
import { parseTimeOrDuration } from '../duration';

export const MaintenanceOptions = CommonOptions.extend({
  cluster: z.string().min(1),
  node: z.string().min(1).optional(),
  /** A duration from now (2h, 30m) or an ISO 8601 time (2026-12-01T10:00Z). */
  until: z.string().optional(),
  reason: z.string().optional(),
  clear: z.boolean().default(false),
  requestedBy: z.string().optional(),
});
export type MaintenanceOptions = z.input<typeof MaintenanceOptions>;

/** `--until`: a duration from `nowMs`, or an absolute ISO 8601 time in the future; epoch ms. */
export function parseUntil(text: string, nowMs: number): number {
  return parseTimeOrDuration(text, nowMs, '--until');
}

export async function runMaintenance(raw: MaintenanceOptions, io: IO): Promise<{ exitCode: number; windows?: MaintenanceWindow[] }> {
  const o = MaintenanceOptions.parse(raw);
  const workflowId = maintenanceWorkflowId(o.cluster);
  try {
    if (o.clear && o.until !== undefined) throw new CliError(EXIT.refused, 'refused (UsageError): --clear and --until together; give one');
    if ((o.clear || o.until !== undefined) && o.node === undefined) throw new CliError(EXIT.refused, `refused (UsageError): ${o.clear ? '--clear' : '--until'} needs --node`);
    if (o.node !== undefined && !o.clear && o.until === undefined) throw new CliError(EXIT.refused, 'refused (UsageError): --node needs --until T (or --clear)');
    let untilMs: number | undefined;
    if (o.until !== undefined) {
      try {
        untilMs = parseUntil(o.until, Date.now());
      } catch (e) {
        throw new CliError(EXIT.refused, `refused (UsageError): ${(e as Error).message}`);
      }
    }
    precheckNames(o, o.cluster, [o.node]);
    const { client, close } = await connect(o);
    try {
      const handle = client.workflow.getHandle(workflowId);
      if (untilMs !== undefined) {
        const w: MaintenanceWindow = { node: o.node!, untilMs, setAtMs: Date.now(), ...(o.reason ? { reason: o.reason } : {}), by: o.requestedBy ?? process.env.USER };
        await client.workflow.signalWithStart('maintenance', {
          workflowId,
          taskQueue: o.taskQueue,
          args: [{ cluster: o.cluster }],
          signal: 'setMaintenance',
          signalArgs: [w],
          staticSummary: `maintenance windows of ${o.cluster}`,
          staticDetails: `Maintenance windows of cluster \`${o.cluster}\`: the monitor neither fails over from nor to these nodes; rolling restarts skip or wait for them.`,
        });
      } else if (o.clear) {
        try {
          await handle.signal('clearMaintenance', { node: o.node!, by: o.requestedBy ?? process.env.USER });
        } catch (e) {
          if (e instanceof WorkflowNotFoundError) throw new CliError(EXIT.refused, `refused (NotFound): no maintenance on ${o.cluster} (${workflowId} is not running)`);
          throw e;
        }
      }
      const windows = await readWindows(handle);
      if (o.json) io.out(JSON.stringify({ cluster: o.cluster, workflowId, windows }));
      else if (!windows.length) io.out(`no maintenance on ${o.cluster}`);
      else for (const w of windows) io.out(describeWindow(w));
      return { exitCode: EXIT.ok, windows };
    } finally {
      await close();
    }
  } catch (e) {
    if (!(e instanceof CliError)) throw e;
    sayFailure(o, io, e, { workflowId });
    return { exitCode: e.exitCode };
  }
}

/** The open windows of a maintenance workflow; none when it is not running (ended, or never started). */
export async function readWindows(handle: { describe(): Promise<{ status: { name: string } }>; query<T>(name: string): Promise<T> }): Promise<MaintenanceWindow[]> {
  try {
    if ((await handle.describe()).status.name !== 'RUNNING') return [];
    return activeWindows(await handle.query<MaintenanceWindow[]>('maintenance'), Date.now());
  } catch (e) {
    if (e instanceof WorkflowNotFoundError) return [];
    throw e;
  }
}
