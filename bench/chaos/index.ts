/** Every chaos scenario by name, and the run of one scenario on a fresh lab of its engine. */
import { startDoltLab, startDoltRemoteLab, startLab, startMysqlLab, startRedisClusterLab } from '../lab';
import { runChaos } from './harness';
import { MYSQL_SCENARIOS } from './mysql';
import { REDIS_SCENARIOS } from './redis';
import { REDIS_CLUSTER_SCENARIOS } from './redis-cluster';
import { DOLT_SCENARIOS } from './dolt';
import { DOLT_REMOTE_SCENARIOS } from './dolt-remote';
import { DOLT_NOT_FOUND, doltBinary } from '../../sandbox/dolt';
import { FAILOVER_MYSQL_MONITOR, FAILOVER_REDIS_MONITOR } from './monitor';
import type { ChaosSummary, Scenario } from './types';
import type { DoltLab, DoltRemoteLab, Lab, MysqlLab, RedisClusterLab } from '../lab';

export { runChaos, runChaosPoint, summarize } from './harness';
export { checkGroup, checkPoint, checkRun, summaryFailures, MIN_SAMPLES } from './checker';
export * from './redis';
export * from './redis-cluster';
export * from './mysql';
export * from './dolt';
export * from './dolt-remote';
export * from './monitor';
export type * from './types';

export const SCENARIOS: Record<string, Scenario> = Object.fromEntries([...REDIS_SCENARIOS, ...REDIS_CLUSTER_SCENARIOS, FAILOVER_REDIS_MONITOR, ...MYSQL_SCENARIOS, FAILOVER_MYSQL_MONITOR, ...DOLT_SCENARIOS, ...DOLT_REMOTE_SCENARIOS].map((s) => [s.name, s as Scenario]));

/** A fresh lab of the scenario's engine (its own Temporal dev server), the points run, the lab closed. */
export async function runScenario(name: string, o: { points?: string[]; workers?: number; flavor?: 'redis' | 'valkey'; log: (m: string) => void }): Promise<ChaosSummary> {
  const scenario = SCENARIOS[name];
  if (scenario.engine === 'dolt') {
    if (!doltBinary()) throw new Error(`${name}: ${DOLT_NOT_FOUND}`);
    if (scenario.lab?.doltTopology === 'remote-replicas') {
      const lab = await startDoltRemoteLab({ cluster: `chaos-${name.split('-')[0]}-doltr`, policy: { catchUpTimeoutMs: 15_000, verifyTimeoutMs: 30_000 } });
      try {
        return await runChaos(lab, scenario as Scenario<DoltRemoteLab>, o.points ?? scenario.points, o.log, o.workers);
      } finally {
        await lab.close();
      }
    }
    const lab = await startDoltLab({ cluster: `chaos-${name.split('-')[0]}-dolt` });
    try {
      return await runChaos(lab, scenario as Scenario<DoltLab>, o.points ?? scenario.points, o.log, o.workers);
    } finally {
      await lab.close();
    }
  }
  if (scenario.engine === 'mysql') {
    const lab = await startMysqlLab({ cluster: `chaos-${name.split('-')[0]}-maria`, inventory: { routingHook: 'echo {primary} {host}:{port}', controller: true, ...(scenario.lab?.policy ? { policy: scenario.lab.policy } : {}) } });
    try {
      return await runChaos(lab, scenario as Scenario<MysqlLab>, o.points ?? scenario.points, o.log, o.workers);
    } finally {
      await lab.close();
    }
  }
  if (scenario.lab?.redisTopology === 'cluster') {
    const lab = await startRedisClusterLab({ cluster: `chaos-${name.split('-')[0]}-rc`, flavor: o.flavor ?? 'redis', policy: scenario.lab.policy });
    try {
      return await runChaos(lab, scenario as Scenario<RedisClusterLab>, o.points ?? scenario.points, o.log, o.workers);
    } finally {
      await lab.close();
    }
  }
  const lab = await startLab({ cluster: `chaos-${name.split('-')[0]}`, flavor: o.flavor ?? 'redis', ...scenario.lab });
  try {
    return await runChaos(lab, scenario as Scenario<Lab>, o.points ?? scenario.points, o.log, o.workers);
  } finally {
    await lab.close();
  }
}
