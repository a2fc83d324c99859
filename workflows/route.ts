/**
 * The workflows the CLI starts: `switchover`, `failover`, `monitor`, `rollingRestart`. Each asks the worker's
 * inventory which engine the cluster runs and hands over to that engine's runbook in workflows/<engine>/ (a
 * plain function call: same workflow, same history, same progress query; the monitor continues as the engine's
 * own monitor workflow). Adding an engine is one case per function here and one folder of runbooks.
 */
import { ApplicationFailure, makeContinueAsNewFunc, patched } from '@temporalio/workflow';
import { ErrorType } from '../core/errors';
import { probe } from './profiles';
import type { FailoverInput, FailoverPlanReport, RollingRestartInput, RollingRestartReport, SwitchoverInput } from './contracts';
import type { MonitorState } from './monitor';
import { PATCH_SCHEDULED_START, waitForScheduledStart } from './scheduled';
import { redisSwitchover, type SwitchoverReport } from './redis/switchover';
import { redisClusterSwitchover, type ClusterSwitchoverReport } from './redis/cluster-switchover';
import { redisClusterFailover, type ClusterFailoverReport } from './redis/cluster-failover';

/** Patch marker: a failover of a Redis Cluster shard (--shard). */
const PATCH_CLUSTER_FAILOVER = 'redis-cluster-failover';

/** Patch marker: a switchover of a Redis Cluster shard (before it, refused as WrongEngine). */
const PATCH_CLUSTER_SWITCHOVER = 'redis-cluster-switchover';
import { redisFailover, type FailoverReport } from './redis/failover';
import type { redisMonitor } from './redis/monitor';
import { redisRollingRestart } from './redis/rolling-restart';
import { mysqlSwitchover, type MysqlSwitchoverReport } from './mysql/switchover';
import { mysqlFailover, type MysqlFailoverReport } from './mysql/failover';
import type { mysqlMonitor } from './mysql/monitor';
import { mysqlRollingRestart } from './mysql/rolling-restart';
import { doltSwitchover, type DoltSwitchoverReport } from './dolt/switchover';
import { doltFailover, type DoltFailoverReport } from './dolt/failover';
import { doltRemoteSwitchover, type DoltRemoteSwitchoverReport } from './dolt/remote-switchover';
import { doltRollingRestart } from './dolt/rolling-restart';

const describe = (cluster: string) => probe.describeCluster.executeWithOptions({ summary: `look up ${cluster} in the inventory` }, [{ cluster }]);
const wrongEngine = (message: string) => ApplicationFailure.create({ message, type: ErrorType.WrongEngine, nonRetryable: true });

export async function switchover(input: SwitchoverInput): Promise<SwitchoverReport | MysqlSwitchoverReport | DoltSwitchoverReport | DoltRemoteSwitchoverReport | ClusterSwitchoverReport> {
  // --at TIME: wait in a visible `scheduled` step before anything else (only runs started with a time).
  if (input.startAt !== undefined && patched(PATCH_SCHEDULED_START)) await waitForScheduledStart('switchover', input.cluster, input.startAt);
  const d = await describe(input.cluster);
  switch (d.engine) {
    case 'redis':
      if (d.topology === 'cluster') {
        // Runs recorded before the Cluster switchover existed were refused here: they replay so.
        if (!patched(PATCH_CLUSTER_SWITCHOVER))
          throw wrongEngine(`${input.cluster} is a Redis Cluster: its shards change primaries with CLUSTER FAILOVER (handover rolling-restart does that shard by shard); switchover handles replication topologies`);
        return redisClusterSwitchover(input);
      }
      if (input.shard !== undefined) throw ApplicationFailure.create({ type: ErrorType.PreconditionFailed, nonRetryable: true, message: `--shard is for Redis Cluster; ${input.cluster} has topology ${d.topology}; nothing was changed` });
      return redisSwitchover(input);
    case 'mysql':
      if (input.shard !== undefined) throw ApplicationFailure.create({ type: ErrorType.PreconditionFailed, nonRetryable: true, message: `--shard is for Redis Cluster; ${input.cluster} is a MySQL cluster; nothing was changed` });
      return mysqlSwitchover(input);
    case 'dolt':
      // Read replicas through a remote: a topology no run recorded before it existed could have.
      if (d.topology === 'remote-replicas') return doltRemoteSwitchover(input);
      return doltSwitchover(input);
    default:
      throw wrongEngine(`no switchover runbook for engine ${d.engine}`);
  }
}

export async function rollingRestart(input: RollingRestartInput): Promise<RollingRestartReport> {
  const d = await describe(input.cluster);
  switch (d.engine) {
    case 'redis':
      return redisRollingRestart(input);
    case 'mysql':
      return mysqlRollingRestart(input);
    case 'dolt':
      return doltRollingRestart(input);
    default:
      throw wrongEngine(`no rolling-restart runbook for engine ${d.engine}`);
  }
}

/** Failover and monitor handle replication topologies: Sentinel and Redis Cluster fail over by themselves. */
async function failoverEngineOf(cluster: string): Promise<string> {
  const d = await describe(cluster);
  if (d.engine === 'redis' && d.topology !== 'replication')
    throw wrongEngine(
      `${cluster} has topology ${d.topology}: ${d.topology === 'cluster' ? 'a Redis Cluster fails over by itself; when it cannot, name the shard: handover failover --cluster … --shard <dead primary>' : "Sentinel fails over by itself; Handover's failover and monitor handle replication topologies"}`,
    );
  if (d.engine === 'dolt' && d.topology === 'remote-replicas')
    throw wrongEngine(`${cluster} has topology remote-replicas: Handover has no failover or monitor for Dolt read replicas through a remote (a dead primary's unpushed commits are not on the remote); handover switchover promotes a replica while the primary answers`);
  return d.engine;
}

export async function failover(input: FailoverInput): Promise<FailoverReport | MysqlFailoverReport | DoltFailoverReport | FailoverPlanReport | ClusterFailoverReport> {
  // A Redis Cluster shard whose primary died (--shard): new in runs recorded after this marker; runs without
  // --shard take the path they always took.
  if (input.shard !== undefined && patched(PATCH_CLUSTER_FAILOVER)) {
    const d = await describe(input.cluster);
    if (d.engine === 'redis' && d.topology === 'cluster') return redisClusterFailover(input);
    throw ApplicationFailure.create({ type: ErrorType.PreconditionFailed, nonRetryable: true, message: `--shard is for Redis Cluster; ${input.cluster} is ${d.engine} with topology ${d.topology}; nothing was changed` });
  }
  const engine = await failoverEngineOf(input.cluster);
  if (engine === 'redis') return redisFailover(input);
  if (engine === 'mysql') return mysqlFailover(input);
  if (engine === 'dolt') return doltFailover(input);
  throw wrongEngine(`no failover runbook for engine ${engine}`);
}

export async function monitor(state: MonitorState): Promise<void> {
  const engine = await failoverEngineOf(state.cluster);
  if (engine === 'redis') return makeContinueAsNewFunc<typeof redisMonitor>({ workflowType: 'redisMonitor' })({ ...state, failovers: state.failovers ?? [] });
  if (engine === 'mysql') return makeContinueAsNewFunc<typeof mysqlMonitor>({ workflowType: 'mysqlMonitor' })({ ...state, failovers: state.failovers ?? [] });
  throw wrongEngine(`no monitor for engine ${engine}`);
}
