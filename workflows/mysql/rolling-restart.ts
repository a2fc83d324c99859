/**
 * Rolling restart of a MySQL/MariaDB replication cluster (GTID): replicas first, one at a time, each back,
 * read-only, replicating and caught up (GTID) before the next; then the primary is handed over (the MySQL
 * switchover runbook, as a child workflow) to a current replica; then the old primary, by then a read-only
 * replica of the new one, is restarted and catches up.
 *
 * Stateless: before every action the cluster is re-probed (version, the listed variables via SHOW GLOBAL
 * VARIABLES, replication state) and `nextMysqlRollingAction` says what is stale and what comes next, so a
 * re-run after a crash or a partial roll continues with the stale nodes only, and a re-run after completion
 * changes nothing.
 */
import { nextMysqlRollingAction, whyMysqlStale, type MysqlSpecProbe } from '../../core/mysql/rolling';
import type { DesiredSpec } from '../../core/rolling';
import { probe, wait } from '../profiles';
import { Runbook } from '../runbook';
import { handoverByChildSwitchover, runRoll, type RollEngine } from '../rolling';
import type { RollingRestartInput, RollingRestartReport } from '../contracts';
import { mysqlClusterStatus } from '../../core/status';
import { standingOf } from '../../core/standing';

type MysqlRollProbe = Awaited<ReturnType<typeof probe.probeMysqlSpecs>>;

export async function mysqlRollingRestart(input: RollingRestartInput): Promise<RollingRestartReport> {
  const { cluster } = input;
  // --reason / --restart-all: the restart token, frozen at the roll's start (workflow time: a replay and a
  // resumed run see the same moment); runRoll adds each node it restarts to `restarted`.
  const desired: DesiredSpec = {
    config: input.set ?? {},
    version: input.version,
    ...(input.restartAll || input.reason !== undefined ? { restartStartedBefore: Date.now(), ...(input.reason !== undefined ? { reason: input.reason } : {}) } : {}),
  };
  const keys = Object.keys(desired.config);
  const rb = new Runbook('rolling-restart', cluster);
  if (input.requestedBy) rb.audit('start', `requested by ${input.requestedBy}: ${JSON.stringify(desired)}`);

  const engine: RollEngine<MysqlSpecProbe, MysqlRollProbe> = {
    transient: new Set(['NoHealthyReplica', 'LastInSyncReplica', 'NoEligibleCandidate']),
    probe: () => probe.probeMysqlSpecs.executeWithOptions({ summary: `probe ${cluster}: which nodes are stale` }, [{ cluster, keys }]),
    saw: (p) => `saw ${p.nodes.map((n) => `${n.node}=${n.reachable ? `${n.role}${n.readOnly ? '(ro)' : '(rw)'}` : 'down'}${whyMysqlStale(n, desired) ? '(stale)' : ''}`).join(' ')}`,
    stale: (n) => whyMysqlStale(n, desired),
    decide: (p) => nextMysqlRollingAction(p.nodes, desired, { policy: p.policy }),
    primaryOf: (p) => p.nodes.find((n) => n.reachable && n.role === 'primary' && !n.readOnly)?.node,
    // Nothing stale, nothing to restart: a cluster without a controller may still be asked (it is told "done").
    needsController: (stale) => stale > 0,
    async restart(action, probed) {
      const node = action.node;
      await rb.step(`restart ${node}`, `restart ${node} (replica) with ${action.reason}`, () =>
        wait.ensureMysqlNodeRestarted.executeWithOptions({ summary: `restart ${node} (replica)` }, [
          { cluster, node, sinceRunId: action.runId, version: desired.version, set: desired.config, timeoutMs: probed.policy.restartTimeoutMs },
        ]),
      );
      await rb.step(`ready ${node}`, `wait for ${node} to replicate from ${action.primary} and catch up (GTID)`, () =>
        wait.waitForMysqlNodeReady.executeWithOptions({ summary: `wait for ${node} to replicate and catch up` }, [
          { cluster, node, primary: action.primary, timeoutMs: probed.policy.restartTimeoutMs, maxLagTransactions: probed.policy.maxLagTransactions },
        ]),
      );
    },
    async handover(action, _probed, round) {
      return handoverByChildSwitchover(rb, cluster, action, round, 'mysqlSwitchover');
    },
    async finish(st) {
      const verify = await rb.step('verify', `verify one writable node (${st.primary}), replicas running and converged`, () =>
        wait.verifyMysqlTopology.executeWithOptions({ summary: `verify one writable node (${st.primary}), replicas running` }, [{ cluster, primary: st.primary, timeoutMs: st.verifyTimeoutMs }]),
      );
      return { primary: verify.primary, verified: verify.nodes.map((n) => n.node) };
    },
    standing: (p, opts) => standingOf(mysqlClusterStatus(cluster, p.nodes), opts),
  };
  return runRoll(rb, input, desired, engine);
}
