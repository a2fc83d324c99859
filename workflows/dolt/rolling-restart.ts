/**
 * Rolling restart of a Dolt cluster, both topologies (sql-server cluster mode: a primary and its standbys; read
 * replicas through a remote): replicas first, one at a time, each restarted by the inventory's controller and
 * back following the primary before the next; then the primary handed over by the Dolt switchover (a child
 * run of `switchover`, which routes by topology: roles at a new epoch, or fence, push, promote, re-point); then
 * the old primary, by then a replica, restarted. `--set` writes system variables into each node's sql-server
 * config; `--reason` / `--restart-all` restart every node once with nothing changed (the restart token).
 *
 * Stateless like the other engines' rolls: before every action the cluster is re-probed and
 * `nextDoltRollingAction` says what is stale and what comes next, so a resumed or repeated run continues with
 * the stale nodes only. Called by the `rollingRestart` router (not registered as its own type).
 */
import { ApplicationFailure } from '@temporalio/workflow';
import { nextDoltRollingAction, whyDoltStale } from '../../core/dolt/rolling';
import { ErrorType } from '../../core/errors';
import type { DesiredSpec } from '../../core/rolling';
import { probe, wait } from '../profiles';
import { Runbook } from '../runbook';
import { handoverByChildSwitchover, runRoll, type RollEngine } from '../rolling';
import type { RollingRestartInput, RollingRestartReport } from '../contracts';
import type { DoltSpecProbe } from '../../core/dolt/rolling';

type DoltRollProbe = Awaited<ReturnType<typeof probe.probeDoltSpecs>>;

export async function doltRollingRestart(input: RollingRestartInput): Promise<RollingRestartReport> {
  const { cluster } = input;
  if (input.version !== undefined)
    throw ApplicationFailure.create({ type: ErrorType.PreconditionFailed, nonRetryable: true, message: `--version is not supported for engine dolt (the controller starts the node's one binary); nothing was changed. Use --set or --reason` });
  const desired: DesiredSpec = {
    config: input.set ?? {},
    ...(input.restartAll || input.reason !== undefined ? { restartStartedBefore: Date.now(), ...(input.reason !== undefined ? { reason: input.reason } : {}) } : {}),
  };
  const keys = Object.keys(desired.config);
  const rb = new Runbook('rolling-restart', cluster);
  if (input.requestedBy) rb.audit('start', `requested by ${input.requestedBy}: ${JSON.stringify(desired)}`);

  const engine: RollEngine<DoltSpecProbe, DoltRollProbe> = {
    transient: new Set(['NoHealthyReplica', 'LastInSyncReplica', 'NoEligibleCandidate']),
    probe: () => probe.probeDoltSpecs.executeWithOptions({ summary: `probe ${cluster}: which nodes are stale` }, [{ cluster, keys }]),
    saw: (p) => `saw ${p.nodes.map((n) => `${n.node}=${n.reachable ? `${n.role}${n.role === 'replica' && !n.following ? '(not following)' : ''}` : 'down'}${whyDoltStale(n, desired) ? '(stale)' : ''}`).join(' ')}`,
    stale: (n) => whyDoltStale(n, desired),
    decide: (p) => nextDoltRollingAction(p.nodes, desired),
    primaryOf: (p) => p.nodes.find((n) => n.reachable && n.role === 'primary')?.node,
    needsController: (stale) => stale > 0,
    async restart(action, probed) {
      const node = action.node;
      await rb.step(`restart ${node}`, `restart ${node} (replica): ${action.reason}`, () =>
        wait.ensureDoltNodeRestarted.executeWithOptions({ summary: `restart ${node} (replica)` }, [{ cluster, node, sinceStartedAt: Number(action.runId) || 0, set: desired.config, timeoutMs: probed.policy.restartTimeoutMs }]),
      );
      await rb.step(`ready ${node}`, `wait for ${node} to follow ${action.primary} again`, () =>
        wait.waitForDoltNodeReady.executeWithOptions({ summary: `wait for ${node} to follow ${action.primary}` }, [{ cluster, node, primary: action.primary, timeoutMs: probed.policy.restartTimeoutMs }]),
      );
    },
    async handover(action, _probed, round) {
      return handoverByChildSwitchover(rb, cluster, action, round, 'switchover');
    },
    async finish(st) {
      const v = await rb.step('verify', `verify one primary (${st.primary}), every other node following it`, () =>
        wait.verifyDoltRolled.executeWithOptions({ summary: `verify one primary (${st.primary}), every other node following it` }, [{ cluster, primary: st.primary, timeoutMs: st.verifyTimeoutMs }]),
      );
      return { primary: v.primary, verified: v.nodes };
    },
    standing(p, opts) {
      const primaries = p.nodes.filter((n) => n.reachable && n.role === 'primary').map((n) => n.node);
      const primary = primaries.length === 1 ? primaries[0] : undefined;
      const others = p.nodes.filter((n) => n.node !== primary);
      return {
        primary,
        ...(opts.previousPrimary && primary && opts.previousPrimary !== primary ? { previousPrimary: opts.previousPrimary } : {}),
        changed: !!opts.previousPrimary && !!primary && opts.previousPrimary !== primary,
        following: primary ? others.filter((n) => n.reachable && n.role === 'replica' && n.following).map((n) => n.node) : [],
        notFollowing: others
          .filter((n) => !primary || !(n.reachable && n.role === 'replica' && n.following))
          .map((n) => ({ node: n.node, reason: !n.reachable ? `unreachable${n.error ? ` (${n.error})` : ''}` : !primary ? 'no single primary' : (n.followDetail ?? `${n.role}`) })),
      };
    },
  };
  return runRoll(rb, input, desired, engine);
}
