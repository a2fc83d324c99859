/**
 * Maintenance windows: a node an operator is working on (`handover maintenance --cluster C --node N --until T`).
 * The monitor neither fails over from nor to such a node, a failover does not promote it, a rolling restart skips
 * or waits for it (`--maintenance skip|wait`), and `status` shows it. The windows live in one small workflow per
 * cluster (workflows/maintenance.ts, ID maintenanceWorkflowId): durable in Temporal across worker restarts,
 * visible in the UI, seen the same by every worker and the CLI. Pure: no I/O, no clock (callers pass `nowMs`).
 */
export interface MaintenanceWindow {
  node: string;
  /** Epoch ms when the window ends by itself. */
  untilMs: number;
  /** Epoch ms when it was set. */
  setAtMs: number;
  reason?: string;
  /** Who set it (the CLI's --requested-by or $USER); never a credential. */
  by?: string;
}

/** The windows still open at `nowMs`, the latest setting per node, in node order. */
export function activeWindows(windows: MaintenanceWindow[], nowMs: number): MaintenanceWindow[] {
  const byNode = new Map<string, MaintenanceWindow>();
  for (const w of windows) if (w.untilMs > nowMs) byNode.set(w.node, w);
  return [...byNode.values()].sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
}

/** The open window of `node`, if any. */
export function windowOf(windows: MaintenanceWindow[] | undefined, node: string, nowMs: number): MaintenanceWindow | undefined {
  return activeWindows(windows ?? [], nowMs).find((w) => w.node === node);
}

/** "cache-2 is in maintenance until 2026-12-01T10:00:00.000Z (kernel patch, by alice)". */
export function describeWindow(w: MaintenanceWindow): string {
  const why = [w.reason, w.by ? `by ${w.by}` : undefined].filter(Boolean).join(', ');
  return `${w.node} is in maintenance until ${new Date(w.untilMs).toISOString()}${why ? ` (${why})` : ''}`;
}
