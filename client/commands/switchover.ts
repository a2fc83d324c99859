/**
 * handover switchover --cluster NAME [--to NODE] [--shard NODE|SLOT] [--wait] [--dry-run] [--json]
 * Planned switchover: hand the primary role to a caught-up replica with no acknowledged write lost. On a Redis
 * Cluster, of one shard (--shard): CLUSTER FAILOVER on its chosen replica.
 */
import { z } from 'zod';
import type { SwitchoverInput } from '../../workflows/contracts';
import type { SwitchoverReport } from '../../workflows/redis/switchover';
import type { MysqlSwitchoverReport } from '../../workflows/mysql/switchover';
import type { DoltSwitchoverReport } from '../../workflows/dolt/switchover';
import type { DoltRemoteSwitchoverReport } from '../../workflows/dolt/remote-switchover';
import type { ClusterSwitchoverReport } from '../../workflows/redis/cluster-switchover';
import { CliError, CommonOptions, EXIT, sayFailure, type IO } from '../common';
import { parseDuration, parseTimeOrDuration } from '../duration';
import { approvalNote } from './approve';
import { startRunbook } from '../start';
import { standingLines } from '../standing';

export const SwitchoverOptions = CommonOptions.extend({
  cluster: z.string().min(1),
  to: z.string().min(1).optional(),
  /** Redis Cluster: the shard, by one of its nodes or a slot (0-16383) it serves. */
  shard: z.string().min(1).optional(),
  wait: z.boolean().default(false),
  dryRun: z.boolean().default(false),
  requestedBy: z.string().optional(),
  requireApproval: z.boolean().default(false),
  /** --approval-timeout, e.g. 30m (default 30m). */
  approvalTimeout: z.string().optional(),
  /**
   * Hand over even when another replica will not follow (it is reported, exit 5); false refuses such a switchover.
   * Absent: the inventory's policy.allowDegraded (default false) decides.
   */
  allowDegraded: z.boolean().optional(),
  /** --at TIME: start later (an ISO 8601 time, or a duration from now); the run waits in a visible `scheduled` step. */
  at: z.string().optional(),
});
export type SwitchoverOptions = z.input<typeof SwitchoverOptions>;

export async function runSwitchover(raw: SwitchoverOptions, io: IO): Promise<{ exitCode: number; report?: SwitchoverReport; workflowId: string }> {
  const o = SwitchoverOptions.parse(raw);
  let approvalTimeoutMs: number | undefined;
  try {
    approvalTimeoutMs = o.approvalTimeout === undefined ? undefined : parseDuration(o.approvalTimeout);
  } catch (e) {
    sayFailure(o, io, new CliError(EXIT.refused, `refused (UsageError): ${(e as Error).message}`));
    return { exitCode: EXIT.refused, workflowId: '' };
  }
  let startAt: number | undefined;
  try {
    if (o.at !== undefined && o.dryRun) throw new Error('--at with --dry-run: a plan is made now; drop one');
    startAt = o.at === undefined ? undefined : parseTimeOrDuration(o.at, Date.now(), '--at');
  } catch (e) {
    sayFailure(o, io, new CliError(EXIT.refused, `refused (UsageError): ${(e as Error).message}`));
    return { exitCode: EXIT.refused, workflowId: '' };
  }
  const input: SwitchoverInput = { cluster: o.cluster, to: o.to, ...(o.shard !== undefined ? { shard: o.shard } : {}), dryRun: o.dryRun, requestedBy: o.requestedBy ?? process.env.USER };
  // Only set when asked for: runs without the gate keep exactly the input (and history) they had before.
  if (o.allowDegraded !== undefined) input.allowDegraded = o.allowDegraded;
  if (startAt !== undefined) input.startAt = startAt;
  if (o.requireApproval && !o.dryRun) Object.assign(input, { requireApproval: true, ...(approvalTimeoutMs ? { approvalTimeoutMs } : {}) });
  return startRunbook<SwitchoverReport>(o, io, {
    runbook: 'switchover',
    workflowType: 'switchover',
    cluster: o.cluster,
    nodes: [o.to],
    input,
    wait: o.wait,
    dryRun: o.dryRun,
    summary: `${o.dryRun ? 'plan ' : ''}switchover of ${o.cluster}${o.shard ? ` shard ${o.shard}` : ''}${o.to ? ` to ${o.to}` : ''}${startAt !== undefined ? ` at ${new Date(startAt).toISOString()}` : ''}`,
    details: `Planned switchover of cluster \`${o.cluster}\`${o.to ? ` to \`${o.to}\`` : ''}${o.dryRun ? ' (dry run: probe and decide only)' : ''}.`,
    format: formatReport,
    note:
      [startAt !== undefined ? `scheduled for ${new Date(startAt).toISOString()}; until then it holds the cluster and changes nothing (handover abort handover-${o.cluster} cancels it)` : '', input.requireApproval ? approvalNote(o.cluster) : '']
        .filter(Boolean)
        .join('\n') || undefined,
  });
}

export function formatReport(r: SwitchoverReport | MysqlSwitchoverReport | DoltSwitchoverReport | DoltRemoteSwitchoverReport | ClusterSwitchoverReport): string {
  if ('engine' in r && r.engine === 'mysql') return formatMysqlReport(r);
  if ('topology' in r && r.topology === 'remote-replicas') return formatDoltRemoteReport(r);
  if ('engine' in r && r.engine === 'dolt') return formatDoltReport(r as DoltSwitchoverReport);
  if ('engine' in r && r.engine === 'redis-cluster') return formatClusterReport(r);
  const d = (r as SwitchoverReport).decision;
  const lines = [
    r.dryRun ? `plan for ${r.cluster} (dry run, nothing changed):` : `switched over ${r.cluster}: ${r.oldPrimary} -> ${r.newPrimary}`,
    `  candidate ${d.candidate}: ${d.reasons.join('; ')}`,
    ...[...d.ahead, ...d.equal, ...d.lagging, ...d.cannotReplicate].map((n) => `  not chosen ${n.node}: ${n.reason}`),
    ...r.plan.map((p, i) => `  ${i + 1}. ${p}`),
  ];
  if (!r.dryRun) {
    if (r.approval) lines.push(`  approved by ${r.approval.approver} (plan ${r.approval.planHash})`);
    if (r.abortRequested) lines.push('  abort requested after the point of no return: finished forward');
    lines.push(`  write pause (handover step): ${r.writePauseMs} ms`);
    lines.push(...runbookHookLines(r.hooks, 'the switchover stands'));
    lines.push(...standingLines(r.standing));
    lines.push(`  steps: ${r.steps.map((s) => `${s.step} ${s.ms} ms`).join(', ')}`);
  }
  return lines.join('\n');
}

/** The MySQL/MariaDB report: the fenced GTID the new primary applied, the sessions the fence killed, the routing hook. */
export function formatMysqlReport(r: MysqlSwitchoverReport): string {
  const d = r.decision;
  const lines = [
    r.dryRun ? `plan for ${r.cluster} (dry run, nothing changed):` : `switched over ${r.cluster}: ${r.oldPrimary} -> ${r.newPrimary}`,
    `  candidate ${d.candidate} at ${d.candidateGtid || 'empty'} (primary at ${d.primaryGtid || 'empty'}): ${d.reasons.join('; ')}`,
    ...[...d.ahead, ...d.equal, ...d.lagging, ...d.cannotReplicate].map((n) => `  not chosen ${n.node}: ${n.reason}`),
    ...r.plan.map((p, i) => `  ${i + 1}. ${p}`),
  ];
  if (!r.dryRun) {
    if (r.approval) lines.push(`  approved by ${r.approval.approver} (plan ${r.approval.planHash})`);
    if (r.abortRequested) lines.push('  abort requested after the point of no return: finished forward');
    lines.push(`  write pause (fence to writable): ${r.writePauseMs} ms`);
    lines.push(`  fenced at GTID ${r.fencedGtid || 'empty'}; ${r.killedSessions ?? 0} application session(s) killed`);
    if (r.routing && !r.routing.ok) lines.push(`  ROUTING HOOK FAILED: ${r.routing.detail} (move the writer endpoint to ${r.newPrimary} by hand)`);
    else if (r.routing) lines.push(`  routing hook: ${r.routing.detail}`);
    if (r.verify) lines.push(`  verified: ${r.verify.nodes.map((n) => `${n.node} ${n.writable ? 'writable' : 'read-only'} @${n.gtid || 'empty'}`).join(', ')}`);
    lines.push(...runbookHookLines(r.hooks, 'the switchover stands'));
    lines.push(...standingLines(r.standing));
    lines.push(`  steps: ${r.steps.map((s) => `${s.step} ${s.ms} ms`).join(', ')}`);
  }
  return lines.join('\n');
}

/** Hooks that ran: a failed post-hook is shouted, never hidden (the runbook itself stands). */
export function runbookHookLines(hooks: { hook: string; ok: boolean; detail: string }[] | undefined, stands: string): string[] {
  return (hooks ?? []).map((h) => (h.ok ? `  ${h.hook}: ok (${h.detail})` : `  ${h.hook.toUpperCase()} FAILED (${stands}; do its work by hand): ${h.detail}`));
}

/** A Redis Cluster shard's switchover: the slots, CLUSTER FAILOVER's pause, each node's CLUSTER NODES verdict. */
export function formatClusterReport(r: ClusterSwitchoverReport): string {
  const lines = [
    r.dryRun ? `plan for ${r.cluster} shard ${r.shard} (dry run, nothing changed):` : `switched shard ${r.decision.slots} of ${r.cluster} over: ${r.oldPrimary} -> ${r.newPrimary}`,
    `  candidate ${r.decision.candidate}: ${r.decision.reasons.join('; ')}`,
    ...r.plan.map((p, i) => `  ${i + 1}. ${p}`),
  ];
  if (!r.dryRun) {
    if (r.approval) lines.push(`  approved by ${r.approval.approver} (plan ${r.approval.planHash})`);
    lines.push(`  write pause (CLUSTER FAILOVER issued until the roles switched): ${r.writePauseMs} ms`);
    if (r.views) lines.push(`  CLUSTER NODES: ${Object.entries(r.views).map(([n, v]) => `${n} ${v}`).join(', ')}`);
    lines.push(...runbookHookLines(r.hooks, 'the switchover stands'));
    lines.push(...standingLines(r.standing, `shard ${r.decision.slots}`));
    lines.push(`  steps: ${r.steps.map((s) => `${s.step} ${s.ms} ms`).join(', ')}`);
  }
  return lines.join('\n');
}

/** Dolt read replicas through a remote: the write pause from the fence to the promotion, the heads promoted, where the cluster stands. */
export function formatDoltRemoteReport(r: DoltRemoteSwitchoverReport): string {
  const lines = [
    r.dryRun ? `plan for ${r.cluster} (dry run, nothing changed):` : `switched over ${r.cluster} through remote ${r.decision.remote}: ${r.oldPrimary} -> ${r.newPrimary}`,
    `  candidate ${r.decision.candidate}: ${r.decision.reasons.join('; ')}`,
    ...r.plan.map((p, i) => `  ${i + 1}. ${p}`),
  ];
  if (!r.dryRun) {
    if (r.approval) lines.push(`  approved by ${r.approval.approver} (plan ${r.approval.planHash})`);
    if (r.abortRequested) lines.push('  abort requested after the point of no return: finished forward');
    lines.push(`  write pause (fence to promotion): ${r.writePauseMs} ms`);
    if (r.heads) lines.push(`  heads promoted: ${Object.entries(r.heads).flatMap(([db, bs]) => Object.entries(bs).map(([b, h]) => `${db}/${b} ${h}`)).join(', ') || 'no databases'}`);
    lines.push(...runbookHookLines(r.hooks, 'the switchover stands'));
    lines.push(...standingLines(r.standing));
    lines.push(`  steps: ${r.steps.map((s) => `${s.step} ${s.ms} ms`).join(', ')}`);
  }
  return lines.join('\n');
}

/** The Dolt report: the epochs, the write pause from demotion to promotion, the database hashes both nodes had. */
export function formatDoltReport(r: DoltSwitchoverReport): string {
  const d = r.decision;
  const lines = [
    r.dryRun ? `plan for ${r.cluster} (dry run, nothing changed):` : `switched over ${r.cluster}: ${r.oldPrimary} -> ${r.newPrimary} (epoch ${d.fromEpoch} -> ${d.epoch})`,
    `  candidate ${d.candidate}: ${d.reasons.join('; ')}`,
    ...r.plan.map((p, i) => `  ${i + 1}. ${p}`),
  ];
  if (!r.dryRun) {
    if (r.approval) lines.push(`  approved by ${r.approval.approver} (plan ${r.approval.planHash})`);
    if (r.abortRequested) lines.push('  abort requested after the point of no return: finished forward');
    lines.push(`  write pause (demotion to promotion): ${r.writePauseMs} ms`);
    if (r.hashes) lines.push(`  same data on both: ${Object.entries(r.hashes).map(([db, h]) => `${db} ${h}`).join(', ') || 'no databases'}`);
    lines.push(...runbookHookLines(r.hooks, 'the switchover stands'));
    lines.push(...standingLines(r.standing));
    lines.push(`  steps: ${r.steps.map((s) => `${s.step} ${s.ms} ms`).join(', ')}`);
  }
  return lines.join('\n');
}
