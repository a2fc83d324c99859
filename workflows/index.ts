// Every workflow the worker registers. Deterministic code only (see eslint.config.mjs).
export { switchover } from './switchover';
export { redisSwitchover } from './switchover-redis';
export { mysqlSwitchover } from './switchover-mysql';
export { rollingRestart } from './rolling-restart';
export { redisRollingRestart } from './rolling-restart-redis';
export { mysqlRollingRestart } from './rolling-restart-mysql';
export { redisFailover } from './failover-redis';
export { redisMonitor } from './monitor-redis';
export { mysqlFailover } from './failover-mysql';
export { mysqlMonitor } from './monitor-mysql';
export { failover, monitor } from './failover';
export { backup, scheduledBackup, verifyBackupRun, restoreBackupRun } from './backup';
