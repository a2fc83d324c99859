/** `failover` and `monitor`: the workflows the CLI starts; they route by the cluster's engine. */
import { ApplicationFailure, makeContinueAsNewFunc } from '@temporalio/workflow';
import { ErrorType } from '../core/errors';
import { probe } from './profiles';
import { redisFailover, type FailoverPlanReport, type FailoverReport, type RedisFailoverInput } from './redis/failover';
import type { MonitorState, redisMonitor } from './redis/monitor';
import { mysqlFailover, type MysqlFailoverInput, type MysqlFailoverReport } from './mysql/failover';
import type { MysqlMonitorState, mysqlMonitor } from './mysql/monitor';

async function engineOf(cluster: string): Promise<string> {
  const d = await probe.describeCluster.executeWithOptions({ summary: `look up ${cluster} in the inventory` }, [{ cluster }]);
  if (d.engine === 'redis' && d.topology !== 'replication')
    throw ApplicationFailure.create({ message: `${cluster} has topology ${d.topology}: Sentinel and Redis Cluster fail over by themselves; Handover's failover and monitor handle replication topologies`, type: ErrorType.WrongEngine, nonRetryable: true });
  return d.engine;
}

export async function failover(input: RedisFailoverInput & MysqlFailoverInput): Promise<FailoverReport | MysqlFailoverReport | FailoverPlanReport> {
  const engine = await engineOf(input.cluster);
  if (engine === 'redis') return redisFailover(input);
  if (engine === 'mysql') return mysqlFailover(input);
  throw ApplicationFailure.create({ message: `no failover runbook for engine ${engine}`, type: ErrorType.WrongEngine, nonRetryable: true });
}

export async function monitor(state: MonitorState | MysqlMonitorState): Promise<void> {
  const engine = await engineOf(state.cluster);
  if (engine === 'redis') return makeContinueAsNewFunc<typeof redisMonitor>({ workflowType: 'redisMonitor' })({ ...(state as MonitorState), failovers: state.failovers ?? [] });
  if (engine === 'mysql') return makeContinueAsNewFunc<typeof mysqlMonitor>({ workflowType: 'mysqlMonitor' })({ ...(state as MysqlMonitorState), failovers: state.failovers ?? [] });
  throw ApplicationFailure.create({ message: `no monitor for engine ${engine}`, type: ErrorType.WrongEngine, nonRetryable: true });
}
