/**
 * handover plan <switchover|rolling-restart|failover> --cluster NAME [--to NODE] [--set k=v ...] [--version V] [--reason TEXT] [--force] [--json]
 * Print what the runbook would do, by running only its probe and decide steps (the --dry-run paths):
 * the candidate and why, the steps in order, what is paused and for how long at most. Changes nothing.
 */
import { CliError, CommonOptions, EXIT, sayFailure, type IO } from '../common';
import { runRollingRestart } from './rolling-restart';
import { runSwitchover } from './switchover';
import { runFailover } from './failover';
import { planWarnings } from './status';

export const PLANNABLE = ['switchover', 'rolling-restart', 'failover'] as const;

export interface PlanOptions extends Partial<CommonOptions> {
  runbook: string;
  cluster: string;
  to?: string;
  set?: string[];
  version?: string;
  includeSentinels?: boolean;
  reason?: string;
  restartAll?: boolean;
  force?: boolean;
}

export async function runPlan(o: PlanOptions, io: IO): Promise<{ exitCode: number; report?: unknown; workflowId: string; restartRisks?: string[]; notFollowing?: { node: string; reason: string }[] }> {
  const r = await planOf(o, io);
  if (r.exitCode !== EXIT.ok) return r;
  // The returning-primary race is closed by each node's own configuration, which no runbook step can fix:
  // said beside every plan (`!` certain, `?` cannot be checked remotely). And the nodes that will not follow
  // the new primary (link down, unreachable), before anything runs, not as a verification failure after it.
  const rep = r.report as { newPrimary?: string; decision?: { candidate?: string }; allowDegraded?: boolean } | undefined;
  const { restartRisks, notFollowing } = await planWarnings(CommonOptions.parse(o), o.cluster, rep?.decision?.candidate ?? rep?.newPrimary ?? o.to);
  if (!o.json) {
    for (const line of restartRisks) io.out(`  ${line}`);
    for (const n of notFollowing)
      io.out(
        o.runbook === 'switchover'
          ? rep?.allowDegraded
            ? `  ! ${n.node} will not follow the new primary: ${n.reason}; the switchover would hand the primary over and leave it behind (allowDegraded; --no-allow-degraded refuses instead)`
            : `  ! ${n.node} will not follow the new primary: ${n.reason}; the switchover would refuse (nothing changed) unless --allow-degraded, which hands the primary over and leaves it behind (or policy.allowDegraded: true in the inventory)`
          : `  ! ${n.node} will not follow the new primary: ${n.reason}; the ${o.runbook} would hand the primary over and leave it behind`,
      );
  }
  return { ...r, restartRisks, notFollowing };
}

async function planOf(o: PlanOptions, io: IO): Promise<{ exitCode: number; report?: unknown; workflowId: string }> {
  const { runbook, ...rest } = o;
  switch (runbook) {
    case 'switchover':
      return runSwitchover({ ...rest, cluster: o.cluster, to: o.to, dryRun: true, wait: true }, io);
    case 'rolling-restart':
      return runRollingRestart({ ...rest, cluster: o.cluster, set: o.set ?? [], version: o.version, includeSentinels: o.includeSentinels ?? false, reason: o.reason, restartAll: o.restartAll ?? false, dryRun: true, wait: true }, io);
    case 'failover':
      return runFailover({ ...rest, cluster: o.cluster, force: o.force ?? false, dryRun: true, wait: true }, io);
    default: {
      const e = new CliError(EXIT.refused, `refused (UsageError): cannot plan ${JSON.stringify(runbook)}; plan one of: ${PLANNABLE.join(', ')}`);
      sayFailure(o, io, e);
      return { exitCode: e.exitCode, workflowId: '' };
    }
  }
}
