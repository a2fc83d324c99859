/**
 * One small workflow per cluster holding its maintenance windows (core/maintenance.ts): started (or signalled)
 * by `handover maintenance`, read by the `maintenance` query (the CLI's status, the readMaintenance activity
 * the monitor, failovers and rolling restarts call). It sleeps until the earliest window ends or a signal
 * changes them, and completes when none is left: durable across worker restarts, visible in the UI.
 */
import { condition, continueAsNew, defineQuery, defineSignal, setCurrentDetails, setHandler } from '@temporalio/workflow';
import { activeWindows, describeWindow, type MaintenanceWindow } from '../core/maintenance';
import { probe } from './profiles';

export interface MaintenanceInput {
  cluster: string;
  /** Carried over a continue-as-new. */
  windows?: MaintenanceWindow[];
}

export const maintenanceQuery = defineQuery<MaintenanceWindow[]>('maintenance');
/** Open (or move) one node's window. */
export const setMaintenanceSignal = defineSignal<[MaintenanceWindow]>('setMaintenance');
/** Close one node's window now. */
export const clearMaintenanceSignal = defineSignal<[{ node: string; by?: string }]>('clearMaintenance');

/** Signals handled before a continue-as-new (keeps the history short for a long-lived window list). */
const SIGNALS_PER_RUN = 500;

export async function maintenance(input: MaintenanceInput): Promise<{ cluster: string; ended: string }> {
  let windows: MaintenanceWindow[] = input.windows ?? [];
  let changed = false;
  let signals = 0;
  setHandler(maintenanceQuery, () => activeWindows(windows, Date.now()));
  setHandler(setMaintenanceSignal, (w) => {
    windows = [...windows.filter((x) => x.node !== w.node), w];
    changed = true;
    signals++;
  });
  setHandler(clearMaintenanceSignal, (c) => {
    windows = windows.filter((x) => x.node !== c.node);
    changed = true;
    signals++;
  });
  for (;;) {
    windows = activeWindows(windows, Date.now());
    setCurrentDetails(windows.length ? `maintenance on \`${input.cluster}\`:\n${windows.map((w) => `- ${describeWindow(w)}`).join('\n')}` : `no maintenance on \`${input.cluster}\``);
    // Signals delivered with the start are handled before this first look; none open: done.
    if (!windows.length) return { cluster: input.cluster, ended: 'no window left' };
    if (signals >= SIGNALS_PER_RUN) await continueAsNew<typeof maintenance>({ cluster: input.cluster, windows });
    const next = Math.min(...windows.map((w) => w.untilMs)) - Date.now();
    changed = false;
    await condition(() => changed, Math.max(1, next));
  }
}

/**
 * Patch marker: the monitor does not fail over from a primary in maintenance, and a failover does not promote a
 * node in maintenance (one readMaintenance activity). Runs recorded before it replay without that activity.
 */
export const PATCH_HONOUR_MAINTENANCE = 'honour-maintenance-windows';

/** The cluster's open maintenance windows, for a runbook about to choose or act; none when they cannot be read (said in `onError`). */
export async function openWindows(cluster: string, onError?: (why: string) => void): Promise<MaintenanceWindow[]> {
  try {
    return (await probe.readMaintenance.executeWithOptions({ summary: `read the maintenance windows of ${cluster}`, retry: { maximumAttempts: 2 } }, [{ cluster }])).windows;
  } catch (e) {
    onError?.((e as Error).message);
    return [];
  }
}
