/**
 * handover failover --cluster NAME [--force] [--wait] [--json]
 * Unplanned failover: confirm the primary dead, promote the most advanced replica, repoint, fence.
 */
import { z } from 'zod';
import type { HookOutcome } from '../../workflows/hooks';
import type { FailoverReport, RedisFailoverInput } from '../../workflows/failover-redis';
import type { MysqlFailoverReport } from '../../workflows/failover-mysql';
import { CommonOptions, type IO } from '../common';
import { startRunbook } from '../start';

export const FailoverOptions = CommonOptions.extend({
  cluster: z.string().min(1),
  force: z.boolean().default(false),
  wait: z.boolean().default(false),
  requestedBy: z.string().optional(),
});
export type FailoverOptions = z.input<typeof FailoverOptions>;

export async function runFailover(raw: FailoverOptions, io: IO): Promise<{ exitCode: number; report?: FailoverReport | MysqlFailoverReport; workflowId: string }> {
  const o = FailoverOptions.parse(raw);
  const input: RedisFailoverInput = { cluster: o.cluster, force: o.force, requestedBy: o.requestedBy ?? process.env.USER };
  return startRunbook<FailoverReport | MysqlFailoverReport>(o, io, {
    runbook: 'failover',
    workflowType: 'failover',
    cluster: o.cluster,
    input,
    wait: o.wait,
    dryRun: false,
    summary: `failover of ${o.cluster}${o.force ? ' (forced)' : ''}`,
    details: `Unplanned failover of cluster \`${o.cluster}\`: confirm the primary dead, promote the most advanced replica.`,
    format: (r) =>
      'engine' in r
        ? [
            `failed over ${r.cluster}: ${r.oldPrimary} -> ${r.newPrimary} (${r.reasons.join('; ')})`,
            `  data-loss window: ${r.dataLossWindow.transactions === undefined ? 'unknown' : `${r.dataLossWindow.transactions} transaction(s)`} (last seen ${r.dataLossWindow.lastKnownPrimaryGtid ?? '?'}, promoted at ${r.dataLossWindow.promotedGtid || 'empty'}; ${r.dataLossWindow.note})`,
            `  relay log applied in ${r.relayApplyMs} ms; old primary: ${r.fenced === 'flagged' ? `FLAGGED, left read-only (errant GTIDs ${r.errantGtids?.join(',')})` : `fenced ${r.fenced}`}`,
            ...(r.routing && !r.routing.ok ? [`  ROUTING HOOK FAILED: ${r.routing.detail}`] : []),
            ...hookLines(r.hooks),
          ].join('\n')
        : [
            `failed over ${r.cluster}: ${r.oldPrimary} -> ${r.newPrimary} (${r.reasons.join('; ')})`,
            `  data-loss window: ${r.dataLossWindow.bytes === undefined ? 'unknown' : `${r.dataLossWindow.bytes} bytes`} (${r.dataLossWindow.note})`,
            `  old primary fenced: ${r.fenced}`,
            ...hookLines(r.hooks),
          ].join('\n'),
  });
}

/** Hooks that ran: a failed post-failover hook is shouted, never hidden (the failover itself stands). */
function hookLines(hooks: HookOutcome[] | undefined): string[] {
  return (hooks ?? []).map((h) => (h.ok ? `  ${h.hook}: ok (${h.detail})` : `  ${h.hook.toUpperCase()} FAILED (the failover stands; do its work by hand): ${h.detail}`));
}
