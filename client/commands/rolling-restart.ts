/**
 * handover rolling-restart --cluster NAME [--set key=value ...] [--version V] [--reason TEXT] [--wait] [--dry-run] [--json]
 * Replicas first, one at a time; then the primary is handed over and restarted as a replica. --reason TEXT
 * restarts every node once with nothing changed (OS patching); --restart-all is the same without a reason.
 */
import { z } from 'zod';
import type { RollingRestartInput, RollingRestartReport } from '../../workflows/contracts';
import { CliError, CommonOptions, EXIT, sayFailure, type IO } from '../common';
import { startRunbook } from '../start';
import { parseDuration } from '../duration';
import { approvalNote } from './approve';
import { runbookHookLines } from './switchover';
import { standingLines } from '../standing';

export const RollingRestartOptions = CommonOptions.extend({
  cluster: z.string().min(1),
  set: z.array(z.string()).default([]),
  version: z.string().min(1).optional(),
  includeSentinels: z.boolean().default(false),
  restartAll: z.boolean().default(false),
  /** Restart every node once, nothing changed, for this reason (one line, at most 200 characters). */
  reason: z.string().optional(),
  wait: z.boolean().default(false),
  dryRun: z.boolean().default(false),
  requestedBy: z.string().optional(),
  requireApproval: z.boolean().default(false),
  /** --approval-timeout, e.g. 30m (default 30m). */
  approvalTimeout: z.string().optional(),
  /** Nodes in maintenance (handover maintenance): skip them (reported, exit 5) or wait for their window to end. */
  maintenance: z.enum(['skip', 'wait']).default('skip'),
});
export type RollingRestartOptions = z.input<typeof RollingRestartOptions>;

/** "maxmemory-policy=allkeys-lru" -> ["maxmemory-policy", "allkeys-lru"]; a malformed pair is bad input. */
export function parseSet(pairs: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of pairs) {
    const i = p.indexOf('=');
    if (i <= 0) throw new CliError(EXIT.refused, `--set ${p}: expected key=value`);
    out[p.slice(0, i).trim()] = p.slice(i + 1).trim();
  }
  return out;
}

export async function runRollingRestart(raw: RollingRestartOptions, io: IO): Promise<{ exitCode: number; report?: RollingRestartReport; workflowId: string }> {
  const o = RollingRestartOptions.parse(raw);
  let set: Record<string, string>;
  let approvalTimeoutMs: number | undefined;
  try {
    if (o.reason !== undefined && !/^[^\n\r]{1,200}$/.test(o.reason.trim()))
      throw new CliError(EXIT.refused, '--reason: one line of 1-200 characters saying why every node is restarted (e.g. "kernel 6.1.0-31 security update")');
    set = parseSet(o.set);
    approvalTimeoutMs = o.approvalTimeout === undefined ? undefined : parseDuration(o.approvalTimeout);
  } catch (e) {
    sayFailure(o, io, new CliError(EXIT.refused, `refused (UsageError): ${(e as Error).message}`));
    return { exitCode: EXIT.refused, workflowId: '' };
  }
  const reason = o.reason?.trim();
  const input: RollingRestartInput = {
    cluster: o.cluster,
    set,
    version: o.version,
    includeSentinels: o.includeSentinels,
    ...(o.restartAll ? { restartAll: true } : {}),
    ...(reason !== undefined ? { reason } : {}),
    dryRun: o.dryRun,
    requestedBy: o.requestedBy ?? process.env.USER,
    maintenance: o.maintenance,
  };
  if (o.requireApproval && !o.dryRun) Object.assign(input, { requireApproval: true, ...(approvalTimeoutMs ? { approvalTimeoutMs } : {}) });
  const what = [...Object.entries(set).map(([k, v]) => `${k}=${v}`), ...(o.version ? [`version ${o.version}`] : []), ...(reason !== undefined ? [`every node restarted once: ${reason}`] : o.restartAll ? ['every node restarted once'] : [])].join(', ') || 'restart stale nodes';
  return startRunbook<RollingRestartReport>(o, io, {
    runbook: 'rolling-restart',
    workflowType: 'rollingRestart',
    cluster: o.cluster,
    input,
    wait: o.wait,
    dryRun: o.dryRun,
    summary: `${o.dryRun ? 'plan ' : ''}rolling restart of ${o.cluster}: ${what}`,
    details: `Rolling restart of cluster \`${o.cluster}\` (${what}): replicas first, then the primary is handed over and restarted.`,
    format: formatRollingReport,
    note: input.requireApproval ? approvalNote(o.cluster) : undefined,
  });
}

export function formatRollingReport(r: RollingRestartReport): string {
  const lines = [
    r.dryRun ? `plan for ${r.cluster} (dry run, nothing changed):` : `rolled ${r.cluster}: primary is ${r.primary}`,
    ...(r.restartToken ? [`  ${r.restartToken}`] : []),
    ...r.staleAtStart.map((s) => `  stale ${s.node}: ${s.reason}`),
    ...r.restarts.map((x, i) => `  ${i + 1}. restarted ${x.node} (${x.role})`),
    ...r.handovers.map((h) => `  handed over ${h.from} -> ${h.to} (write pause ${h.writePauseMs} ms${h.workflowId ? `, ${h.workflowId}` : ''})`),
    ...r.sentinelRestarts.map((s) => `  restarted Sentinel ${s}`),
    ...(r.skipped ?? []).map((s) => `  NOT restarted ${s.node}: ${s.reason} (--maintenance skip)`),
  ];
  if (r.approval) lines.push(`  approved by ${r.approval.approver} (plan ${r.approval.planHash})`);
  lines.push(...runbookHookLines(r.hooks, 'the roll stands'));
  if (!r.dryRun) lines.push(...standingLines(r.standing));
  if (r.dryRun) lines.push(...r.audit.filter((a) => a.startsWith('plan:')).map((a) => `  ${a}`));
  return lines.join('\n');
}
