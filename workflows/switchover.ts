/**
 * `switchover`: the workflow the CLI starts. It asks the worker's inventory which engine the cluster runs and
 * hands over to that engine's runbook (a plain function call: same workflow, same history, same progress query).
 */
import { ApplicationFailure } from '@temporalio/workflow';
import { ErrorType } from '../core/errors';
import { probe } from './profiles';
import type { SwitchoverInput } from './contracts';
import { redisSwitchover, type SwitchoverReport } from './redis/switchover';
import { mysqlSwitchover, type MysqlSwitchoverReport } from './mysql/switchover';

export async function switchover(input: SwitchoverInput): Promise<SwitchoverReport | MysqlSwitchoverReport> {
  const d = await probe.describeCluster.executeWithOptions({ summary: `look up ${input.cluster} in the inventory` }, [{ cluster: input.cluster }]);
  switch (d.engine) {
    case 'redis':
      if (d.topology === 'cluster')
        throw ApplicationFailure.create({
          message: `${input.cluster} is a Redis Cluster: its shards change primaries with CLUSTER FAILOVER (handover rolling-restart does that shard by shard); switchover handles replication topologies`,
          type: ErrorType.WrongEngine,
          nonRetryable: true,
        });
      return redisSwitchover(input);
    case 'mysql':
      return mysqlSwitchover(input);
    default:
      throw ApplicationFailure.create({ message: `no switchover runbook for engine ${d.engine}`, type: ErrorType.WrongEngine, nonRetryable: true });
  }
}
