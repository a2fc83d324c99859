/**
 * handover failover --cluster NAME [--shard NODE] [--force] [--wait] [--json]
 * Unplanned failover: confirm the primary dead, promote the most advanced replica, repoint, fence.
 */
import { standingLines } from '../standing';
import { z } from 'zod';
import type { HookOutcome } from '../../workflows/hooks';
import type { FailoverInput, FailoverPlanReport } from '../../workflows/contracts';
import type { FailoverReport } from '../../workflows/redis/failover';
import type { MysqlFailoverReport } from '../../workflows/mysql/failover';
import type { DoltFailoverReport } from '../../workflows/dolt/failover';
import type { ClusterFailoverReport } from '../../workflows/redis/cluster-failover';
import { CliError, CommonOptions, EXIT, sayFailure, type IO } from '../common';
import { startRunbook } from '../start';
import { parseDuration } from '../duration';
import { approvalNote } from './approve';

export const FailoverOptions = CommonOptions.extend({
  cluster: z.string().min(1),
  force: z.boolean().default(false),
  /** Redis Cluster: the shard whose primary died, by that primary or one of its replicas. */
  shard: z.string().min(1).optional(),
  wait: z.boolean().default(false),
  requestedBy: z.string().optional(),
  /** Probe, confirm and decide only (handover plan failover). */
  dryRun: z.boolean().default(false),
  requireApproval: z.boolean().default(false),
  approvalTimeout: z.string().optional(),
});
export type FailoverOptions = z.input<typeof FailoverOptions>;

export async function runFailover(raw: FailoverOptions, io: IO): Promise<{ exitCode: number; report?: FailoverReport | MysqlFailoverReport | DoltFailoverReport | FailoverPlanReport; workflowId: string }> {
  const o = FailoverOptions.parse(raw);
  let approvalTimeoutMs: number | undefined;
  try {
    approvalTimeoutMs = o.approvalTimeout === undefined ? undefined : parseDuration(o.approvalTimeout);
  } catch (e) {
    sayFailure(o, io, new CliError(EXIT.refused, `refused (UsageError): ${(e as Error).message}`));
    return { exitCode: EXIT.refused, workflowId: '' };
  }
  const input: FailoverInput = { cluster: o.cluster, force: o.force, ...(o.shard !== undefined ? { shard: o.shard } : {}), requestedBy: o.requestedBy ?? process.env.USER };
  // Only set when asked for: runs without them keep exactly the input (and history) they had before.
  if (o.dryRun) input.dryRun = true;
  else if (o.requireApproval) Object.assign(input, { requireApproval: true, ...(approvalTimeoutMs ? { approvalTimeoutMs } : {}) });
  return startRunbook<FailoverReport | MysqlFailoverReport | DoltFailoverReport | FailoverPlanReport>(o, io, {
    // (a Redis Cluster shard's report, ClusterFailoverReport, is formatted by its own branch)
    runbook: 'failover',
    workflowType: 'failover',
    cluster: o.cluster,
    input,
    wait: o.wait,
    dryRun: o.dryRun,
    summary: `${o.dryRun ? 'plan ' : ''}failover of ${o.cluster}${o.force ? ' (forced)' : ''}`,
    details: `Unplanned failover of cluster \`${o.cluster}\`: confirm the primary dead, promote the most advanced replica${o.dryRun ? ' (dry run: probe, confirm and decide only)' : ''}.`,
    note: input.requireApproval ? approvalNote(o.cluster) : undefined,
    format: (r) =>
      isCluster(r)
        ? [
            `failed over shard of ${r.cluster}: ${r.oldPrimary} (dead) -> ${r.newPrimary} by CLUSTER FAILOVER ${r.method === 'takeover' ? 'TAKEOVER (no majority of primaries voted)' : r.method === 'force' ? 'FORCE' : '(already primary)'} after ${r.promotedMs} ms`,
            `  candidate ${r.newPrimary}: ${r.reasons.join('; ')}; writes ${r.oldPrimary} acknowledged beyond offset ${r.promotedOffset} are lost`,
            `  CLUSTER NODES: ${Object.entries(r.views).map(([n, v]) => `${n} ${v}`).join(', ')}`,
            ...hookLines(r.hooks),
            ...standingLines(r.standing, 'the shard'),
          ].join('\n')
        : isPlan(r)
        ? [
            `plan for ${r.cluster} (dry run, nothing changed): fail over from ${r.oldPrimary} (dead) to ${r.newPrimary}`,
            `  candidate ${r.newPrimary}: ${r.reasons.join('; ')}`,
            ...r.plan.map((p, i) => `  ${i + 1}. ${p}`),
          ].join('\n')
        : 'engine' in r && r.engine === 'dolt'
        ? [
            `failed over ${r.cluster}: ${r.oldPrimary} -> ${r.newPrimary} at epoch ${r.epoch} (${r.reasons.join('; ')})`,
            `  data-loss window: ${r.dataLossWindow.note}`,
            `  old primary: ${r.fenced}`,
            ...hookLines(r.hooks),
            ...standingLines(r.standing),
            ...tailLines(r),
          ].join('\n')
        : 'engine' in r
        ? [
            `failed over ${r.cluster}: ${r.oldPrimary} -> ${r.newPrimary} (${r.reasons.join('; ')})`,
            `  data-loss window: ${r.dataLossWindow.summary ?? (r.dataLossWindow.transactions === undefined ? 'unknown' : `at least ${r.dataLossWindow.transactions} transaction(s)`)} (promoted at ${r.dataLossWindow.promotedGtid || 'empty'})`,
            `  relay log applied in ${r.relayApplyMs} ms; old primary: ${r.fenced === 'flagged' ? `FLAGGED, left read-only (errant GTIDs ${r.errantGtids?.join(',')})` : `fenced ${r.fenced}`}`,
            ...(r.routing && !r.routing.ok ? [`  ROUTING HOOK FAILED: ${r.routing.detail}`] : []),
            ...hookLines(r.hooks),
            ...standingLines(r.standing),
            ...tailLines(r),
          ].join('\n')
        : [
            `failed over ${r.cluster}: ${r.oldPrimary} -> ${r.newPrimary} (${r.reasons.join('; ')})`,
            `  data-loss window: ${r.dataLossWindow.summary ?? (r.dataLossWindow.bytes === undefined ? 'unknown' : `at least ${r.dataLossWindow.bytes} bytes`)} (promoted at offset ${r.dataLossWindow.promotedOffset})`,
            `  old primary fenced: ${r.fenced}`,
            ...hookLines(r.hooks),
            ...standingLines(r.standing),
            ...tailLines(r),
          ].join('\n'),
  });
}

/** Hooks that ran: a failed post-failover hook is shouted, never hidden (the failover itself stands). */
function hookLines(hooks: HookOutcome[] | undefined): string[] {
  return (hooks ?? []).map((h) => (h.ok ? `  ${h.hook}: ok (${h.detail})` : `  ${h.hook.toUpperCase()} FAILED (the failover stands; do its work by hand): ${h.detail}`));
}

function tailLines(r: { approval?: { approver: string; planHash: string }; abortRequested?: boolean }): string[] {
  return [
    ...(r.approval ? [`  approved by ${r.approval.approver} (plan ${r.approval.planHash})`] : []),
    ...(r.abortRequested ? ['  abort requested after the point of no return: finished forward'] : []),
  ];
}

function isPlan(r: FailoverReport | MysqlFailoverReport | DoltFailoverReport | FailoverPlanReport): r is FailoverPlanReport {
  return 'dryRun' in r && r.dryRun === true;
}

function isCluster(r: unknown): r is ClusterFailoverReport {
  return (r as { engine?: string }).engine === 'redis-cluster';
}
