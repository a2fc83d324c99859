/** `rollingRestart`: the workflow the CLI starts; routes by the cluster's engine (see switchover.ts). */
import { ApplicationFailure } from '@temporalio/workflow';
import { ErrorType } from '../core/errors';
import { probe } from './profiles';
import type { RollingRestartInput, RollingRestartReport } from './contracts';
import { redisRollingRestart } from './redis/rolling-restart';
import { mysqlRollingRestart } from './mysql/rolling-restart';

export async function rollingRestart(input: RollingRestartInput): Promise<RollingRestartReport> {
  const d = await probe.describeCluster.executeWithOptions({ summary: `look up ${input.cluster} in the inventory` }, [{ cluster: input.cluster }]);
  switch (d.engine) {
    case 'redis':
      return redisRollingRestart(input);
    case 'mysql':
      return mysqlRollingRestart(input);
    default:
      throw ApplicationFailure.create({ message: `no rolling-restart runbook for engine ${d.engine}`, type: ErrorType.WrongEngine, nonRetryable: true });
  }
}
