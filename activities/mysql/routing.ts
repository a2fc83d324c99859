/**
 * The MySQL/MariaDB routing hook: a command from the inventory that moves the writer endpoint after a promotion.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { ErrorType } from '../../core/errors';
import { activity } from '../activity';
import { hookEnvironment, runShell } from '../hooks';
import { mysqlOps, type MysqlActivityDeps } from './node';

export interface RoutingHookInput {
  cluster: string;
  primary: string;
  oldPrimary: string;
}
export interface RoutingHookResult {
  ran: boolean;
  exitCode: number;
  output: string;
  ms: number;
  audit: string;
}

export function createMysqlRoutingActivities(deps: MysqlActivityDeps) {
  const { env, spec } = mysqlOps(deps);
  return {
    /**
     * Run the inventory's routing hook (a command that moves the writer endpoint: HAProxy runtime API, DNS,
     * proxy admin) after promotion. {cluster} {primary} {host} {port} {oldPrimary} are substituted and also
     * exported as HANDOVER_* variables. A non-zero exit is a non-retryable RoutingHookFailed failure with the
     * output's tail: the workflow reports it, never hides it. Idempotent as far as the hook itself is.
     */
    runRoutingHook: activity(async (input: RoutingHookInput): Promise<RoutingHookResult> => {
      const c = spec(input.cluster);
      if (!c.routingHook) return { ran: false, exitCode: 0, output: '', ms: 0, audit: 'no routing hook configured' };
      const p = c.nodes.find((n) => n.id === input.primary)!;
      const vars: Record<string, string> = { cluster: c.name, primary: p.id, host: p.host, port: String(p.port), oldPrimary: input.oldPrimary };
      const cmd = c.routingHook.replace(/\{(cluster|primary|host|port|oldPrimary)\}/g, (_m, k: string) => vars[k]);
      const { code, output, ms } = await runShell(
        cmd,
        hookEnvironment(deps.inventory(), c, { HANDOVER_CLUSTER: c.name, HANDOVER_PRIMARY: p.id, HANDOVER_PRIMARY_HOST: p.host, HANDOVER_PRIMARY_PORT: String(p.port), HANDOVER_OLD_PRIMARY: input.oldPrimary }, env),
      );
      if (code !== 0)
        throw ApplicationFailure.create({ type: ErrorType.RoutingHookFailed, nonRetryable: true, message: `routing hook exited ${code} after ${ms} ms: ${output || '(no output)'}` });
      return { ran: true, exitCode: 0, output, ms, audit: `ran the routing hook for ${p.id} (${p.host}:${p.port}): exit 0 after ${ms} ms${output ? `: ${output.slice(-200)}` : ''}` };
    }),
  };
}
