/**
 * The activity factory: production passes the worker's inventory and real connections; tests inject their own.
 *   const activities = createActivities({ inventory: () => inv, connectRedis, connectMysql });
 */
import { createRedisActivities } from './redis/switchover';
import type { RedisActivityDeps } from './redis/node';
import { connectRedis } from './redis/conn';
import { createInventoryActivities } from './inventory';
import { createRedisRollingActivities } from './redis/rolling';
import { createRedisSentinelActivities } from './redis/sentinel';
import { createRedisFailoverActivities } from './redis/failover';
import { createMysqlActivities } from './mysql/switchover';
import { createMysqlRollingActivities } from './mysql/rolling';
import { createMysqlFailoverActivities } from './mysql/failover';
import { createRedisMonitorActivities } from './redis/monitor';
import { createMysqlMonitorActivities } from './mysql/monitor';
import { createHookActivities } from './hooks';
import { createDoltActivities } from './dolt/cluster';
import { createDoltRemoteActivities } from './dolt/remote';
import { createDoltRollingActivities } from './dolt/rolling';
import { connectMysql, type MysqlConnect } from './mysql/conn';
import { createBackupActivities, type BackupActivityDeps } from './backup';
import { createStatusActivities } from './status';
import { createDoctorActivities } from './doctor';
import { createMaintenanceActivities } from './maintenance';

export interface ActivityDeps extends Partial<Pick<RedisActivityDeps, 'connectRedis' | 'env' | 'failpoint'>> {
  inventory: RedisActivityDeps['inventory'];
  connectMysql?: MysqlConnect;
  /** Backup storage override (tests); default: the inventory's backup.storage.dir, else HANDOVER_BACKUP_DIR. */
  backupStorage?: BackupActivityDeps['storage'];
  /** The inventory's file (the worker's HANDOVER_INVENTORY), named by `handover doctor`. */
  inventoryFile?: string;
}

export function createActivities(deps: ActivityDeps) {
  const full: RedisActivityDeps & { connectMysql: MysqlConnect } = { connectRedis, connectMysql, ...deps };
  return {
    ...createInventoryActivities(full),
    ...createMaintenanceActivities(),
    ...createRedisActivities(full),
    ...createRedisRollingActivities(full),
    ...createRedisSentinelActivities(full),
    ...createRedisFailoverActivities(full),
    ...createMysqlActivities(full),
    ...createMysqlRollingActivities(full),
    ...createMysqlFailoverActivities(full),
    ...createRedisMonitorActivities(full),
    ...createMysqlMonitorActivities(full),
    ...createHookActivities(full),
    ...createDoltActivities(full),
    ...createDoltRemoteActivities(full),
    ...createDoltRollingActivities(full),
    ...createBackupActivities({ ...full, storage: deps.backupStorage }),
    ...createStatusActivities(full),
    ...createDoctorActivities(full),
  };
}

export type Activities = ReturnType<typeof createActivities>;
