/**
 * What every backup verb shares: the cluster and its store from the worker's inventory, the engines' node
 * access, the heartbeat while a long step works, and the artifact's file name.
 */
import type Redis from 'ioredis';
import type mysql from 'mysql2/promise';
import type { BackupCompression, BackupManifest } from '../../core/backup/decide';
import { ErrorType, HandoverError } from '../../core/errors';
import { findCluster } from '../../inventory/load';
import type { ClusterSpec } from '../../inventory/schema';
import { connectMysql, type MysqlConnect } from '../mysql/conn';
import { mysqlOps } from '../mysql/node';
import { doltOps } from '../dolt/node';
import { redisOps, type RedisActivityDeps } from '../redis/node';
import { keyRing } from './crypto';
import { findTool } from './tools';
import { openStorage, type BackupStorage, type StoredBackup } from './storage';

export interface BackupActivityDeps extends RedisActivityDeps {
  connectMysql?: MysqlConnect;
  /** Storage override (tests); default: the cluster's backup.storage, else HANDOVER_BACKUP_DIR. */
  storage?: (cluster: ClusterSpec) => BackupStorage;
}

export type BackupCluster = ClusterSpec & { engine: 'redis' | 'mysql' | 'dolt' };
export type Stored = StoredBackup & { manifest: BackupManifest };

const ARTIFACT = { redis: 'dump.rdb', mysql: 'dump.sql', dolt: 'dolt-backup.tar' } as const;
export const EXT = { gzip: '.gz', zstd: '.zst' } as const;
/**
 * The compression of a new backup: the inventory's backup.compression, else zstd when the worker finds the
 * zstd binary (scripts/bootstrap.sh installs it), else gzip. Decided once per take; the manifest records it,
 * and verify and restore read it from there.
 */
export const compressionOf = (c: Pick<ClusterSpec, 'backup'>, env: NodeJS.ProcessEnv = process.env): BackupCompression =>
  c.backup?.compression ?? (findTool('zstd', env) ? 'zstd' : 'gzip');
export const artifactFile = (c: BackupCluster, compression: BackupCompression) => ARTIFACT[c.engine] + EXT[compression];

export function backupContext(deps: BackupActivityDeps) {
  const env = deps.env ?? process.env;
  const failpoint = deps.failpoint ?? (() => undefined);
  const connect = deps.connectMysql ?? connectMysql;
  const redis = redisOps(deps);
  const mysqlO = mysqlOps({ ...deps, connectMysql: connect });
  const doltO = doltOps({ ...deps, connectMysql: connect });

  function clusterOf(name: string): BackupCluster {
    const c = findCluster(deps.inventory(), name);
    return c as BackupCluster;
  }

  function storageOf(c: ClusterSpec): BackupStorage {
    return deps.storage ? deps.storage(c) : openStorage(c, env);
  }

  async function stored(c: ClusterSpec, id: string, storage = storageOf(c)): Promise<Stored> {
    const b = await storage.get(c.name, id);
    if (!b) throw new HandoverError(ErrorType.PreconditionFailed, `no backup ${id} of cluster ${c.name} in ${storage.location}`);
    if (!b.manifest) throw new HandoverError(ErrorType.PreconditionFailed, `backup ${id} is ${b.state}: ${b.detail ?? 'no manifest'}`);
    return b as Stored;
  }

  /** The chain backup `id` restores from, full first (itself alone for a full or logical backup). */
  async function chainOf(c: ClusterSpec, id: string, storage = storageOf(c)): Promise<Stored[]> {
    const out: Stored[] = [];
    let cur: Stored | undefined = await stored(c, id, storage);
    while (cur) {
      if (out.some((b) => b.id === cur!.id)) throw new HandoverError(ErrorType.VerificationFailed, `the chain of ${id} loops at ${cur.id}`);
      out.unshift(cur);
      const base: string | undefined = cur.manifest.base;
      if (!base) break;
      const b = await storage.get(c.name, base);
      if (!b?.manifest) throw new HandoverError(ErrorType.VerificationFailed, `backup ${id} needs its base ${base}, which is ${b ? `${b.state} (${b.detail ?? 'no manifest'})` : 'missing'}`);
      cur = b as Stored;
    }
    return out;
  }

  return {
    env,
    failpoint,
    chainOf,
    /** The cluster's backup keys, resolved here (never in a workflow input, result or log line). */
    keysOf: (c: ClusterSpec) => keyRing(c, env),
    connect,
    redis,
    mysql: mysqlO,
    dolt: doltO,
    clusterOf,
    storageOf,
    stored,
    withRedis: <T>(c: ClusterSpec, node: string, fn: (cl: Redis) => Promise<T>): Promise<T> => redis.withNode(c, node, fn),
    withMysql: <T>(c: ClusterSpec, node: string, fn: (conn: mysql.Connection) => Promise<T>): Promise<T> => mysqlO.withNode(c, node, fn),
    withDolt: <T>(c: ClusterSpec, node: string, fn: (conn: mysql.Connection) => Promise<T>): Promise<T> => doltO.withNode(c, node, fn),
  };
}

export type BackupContext = ReturnType<typeof backupContext>;
