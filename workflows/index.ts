// Every workflow the worker registers. Deterministic code only (see eslint.config.mjs).
export { switchover, rollingRestart, failover, monitor } from './route';
export { redisSwitchover } from './redis/switchover';
export { mysqlSwitchover } from './mysql/switchover';
export { redisRollingRestart } from './redis/rolling-restart';
export { mysqlRollingRestart } from './mysql/rolling-restart';
export { redisFailover } from './redis/failover';
export { redisMonitor } from './redis/monitor';
export { mysqlFailover } from './mysql/failover';
export { mysqlMonitor } from './mysql/monitor';
export { doltSwitchover } from './dolt/switchover';
export { doltFailover } from './dolt/failover';
export { backup, scheduledBackup, verifyBackupRun, restoreBackupRun, provisionReplica } from './backup';
export { binlogArchiver, pitrRestore } from './pitr';
export { clusterStatus } from './status';
export { doctor } from './doctor';
export { maintenance } from './maintenance';
