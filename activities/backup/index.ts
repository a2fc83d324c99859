/**
 * Backup activities: probe the sources, take (stream, compress, hash, store; manifest last), verify (sha256,
 * then a restore into a scratch server compared with the manifest), list, prune, restore. Inputs carry names
 * and the frozen backup ID only; addresses, credentials and the storage location come from the worker.
 *
 * Idempotent: takeBackup with an ID whose manifest is stored returns that manifest and does nothing; one
 * without a manifest clears the interrupted attempt's temp files and takes again. verifyBackup re-checks and
 * rewrites the same record. pruneBackups re-plans from what is stored. restoreBackup refuses a non-empty
 * target, so a retry after a completed restore into a node is refused rather than repeated.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { Context } from '@temporalio/activity';
import type Redis from 'ioredis';
import type mysql from 'mysql2/promise';
import { compareMysqlContent, compareRedisContent, planRetention, type BackupManifest, type BackupSourceView, type RetentionPlan, type VerificationRecord } from '../../core/backup/decide';
import { lagTransactions, appliedPos } from '../../core/mysql/decide';
import { ErrorType, HandoverError } from '../../core/errors';
import { findCluster } from '../../inventory/load';
import type { ClusterSpec } from '../../inventory/schema';
import { LocalDirStorage, type BackupStorage, type StoredBackup } from './storage';
import { hashStored, streamToolToStorage } from './stream';
import { parseRdbHeader, redisCliArgs, redisCliEnv, redisFingerprint, stableFingerprint, startScratchRedis } from './redis';
import { MARIADB_DUMP, dumpArgs, gtidFromDumpHead, loadDump, mysqlFingerprint, optionFile, startScratchMaria, userSchemas } from './mysql';
import { classifyMysqlError, connectMysql, mysqlTarget, type MysqlConnect } from '../mysql/conn';
import { mysqlOps } from '../mysql/node';
import { activity } from '../activity';
import { redisOps, type RedisActivityDeps } from '../redis/switchover';
import { classifyRedisError, parseInfo, redisTarget } from '../redis/conn';

export interface BackupActivityDeps extends RedisActivityDeps {
  connectMysql?: MysqlConnect;
  /** Storage override (tests); default: the cluster's backup.storage.dir, else HANDOVER_BACKUP_DIR. */
  storage?: (cluster: ClusterSpec) => BackupStorage;
}

export interface ProbeBackupResult {
  cluster: string;
  engine: 'redis' | 'mysql';
  maxLag: number;
  lagUnit: 'bytes' | 'transactions';
  keep: number;
  storage: string;
  nodes: BackupSourceView[];
}

export interface TakeBackupInput {
  cluster: string;
  id: string;
  node: string;
  role: 'primary' | 'replica';
  fromPrimary: boolean;
}
export interface TakeBackupResult {
  id: string;
  alreadyTaken: boolean;
  node: string;
  size: number;
  rawSize: number;
  sha256: string;
  position: BackupManifest['position'];
  durationMs: number;
  /** The tool's streaming alone (tool start to artifact renamed), this attempt; 0 when already taken. */
  streamMs: number;
  audit: string;
}

export interface BackupRef {
  cluster: string;
  id: string;
}

export interface VerifyBackupResult extends VerificationRecord {
  audit: string;
}

export type RestoreTarget = { kind: 'scratch' } | { kind: 'node'; node: string };
export interface RestoreBackupInput extends BackupRef {
  target: RestoreTarget;
}
export interface RestoreBackupResult {
  id: string;
  target: string;
  /** Scratch target: where the restored server listens, its directory, and the file holding its password (Redis). */
  address?: string;
  socket?: string;
  dir?: string;
  passwordFile?: string;
  keys?: number;
  tables?: number;
  restoreMs: number;
  audit: string;
}

export interface PruneInput {
  cluster: string;
  keep: number;
  /** The backup this run took: never deleted. */
  protect?: string;
}
export interface PruneResult extends RetentionPlan {
  audit: string;
}

const ARTIFACT = { redis: 'dump.rdb', mysql: 'dump.sql' } as const;
const EXT = { gzip: '.gz', zstd: '.zst' } as const;
const compressionOf = (c: ClusterSpec) => c.backup?.compression ?? 'gzip';

/** Keep an activity's heartbeat going while it works (the profile's heartbeat timeout is short). */
function heartbeating<T>(details: () => unknown, fn: () => Promise<T>): Promise<T> {
  let ctx: Context | undefined;
  try {
    ctx = Context.current();
  } catch {
    ctx = undefined; // called outside an activity (tests, bench)
  }
  if (!ctx) return fn();
  const c = ctx;
  c.heartbeat(details());
  const t = setInterval(() => c.heartbeat(details()), 1000);
  return fn().finally(() => clearInterval(t));
}

export function createBackupActivities(deps: BackupActivityDeps) {
  const env = deps.env ?? process.env;
  const failpoint = deps.failpoint ?? (() => undefined);
  const connect = deps.connectMysql ?? connectMysql;
  const redis = redisOps(deps);
  const mysqlO = mysqlOps({ ...deps, connectMysql: connect });

  function clusterOf(name: string): ClusterSpec & { engine: 'redis' | 'mysql' } {
    const c = findCluster(deps.inventory(), name);
    if (c.engine === 'dolt')
      throw new HandoverError(ErrorType.WrongEngine, `cluster ${name} is engine dolt: its backup SQL (CALL dolt_backup('sync', name)) is built in core/dolt.ts but not run by this worker (untested against a live Dolt server)`);
    return c as ClusterSpec & { engine: 'redis' | 'mysql' };
  }

  function storageOf(c: ClusterSpec): BackupStorage {
    if (deps.storage) return deps.storage(c);
    const dir = c.backup?.storage?.dir ?? env.HANDOVER_BACKUP_DIR;
    if (!dir) throw new HandoverError(ErrorType.PreconditionFailed, `cluster ${c.name} has no backup storage: set backup.storage.dir in the inventory or HANDOVER_BACKUP_DIR on the worker`);
    return new LocalDirStorage(dir);
  }

  async function stored(c: ClusterSpec, id: string): Promise<StoredBackup & { manifest: BackupManifest }> {
    const b = await storageOf(c).get(c.name, id);
    if (!b) throw new HandoverError(ErrorType.PreconditionFailed, `no backup ${id} of cluster ${c.name} in ${storageOf(c).location}`);
    if (!b.manifest) throw new HandoverError(ErrorType.PreconditionFailed, `backup ${id} is ${b.state}: ${b.detail ?? 'no manifest'}`);
    return b as StoredBackup & { manifest: BackupManifest };
  }

  async function withRedis<T>(c: ClusterSpec, node: string, fn: (cl: Redis) => Promise<T>): Promise<T> {
    return redis.withNode(c, node, fn);
  }

  async function withMysql<T>(c: ClusterSpec, node: string, fn: (conn: mysql.Connection) => Promise<T>): Promise<T> {
    return mysqlO.withNode(c, node, fn);
  }

  // ---- take -------------------------------------------------------------------------------------------------

  async function takeRedis(c: ClusterSpec, input: TakeBackupInput, storage: BackupStorage, progress: { bytes: number; streamMs: number }): Promise<BackupManifest> {
    const target = redisTarget(c, input.node, env);
    const startedAt = new Date().toISOString();
    const { before, version } = await withRedis(c, input.node, async (cl) => ({ before: await redisFingerprint(cl), version: parseInfo(await cl.info('server')) }));
    let hit = false;
    const s0 = Date.now();
    const run = await streamToolToStorage({
      cmd: 'redis-cli',
      args: redisCliArgs(target),
      env: redisCliEnv(target, env),
      storage,
      cluster: c.name,
      id: input.id,
      file: ARTIFACT.redis + EXT[compressionOf(c)],
      compression: compressionOf(c),
      onChunk: (n) => {
        progress.bytes = n;
        if (!hit) {
          hit = true;
          void failpoint('takeBackup.streaming');
        }
      },
    });
    progress.streamMs = Date.now() - s0;
    const after = await withRedis(c, input.node, (cl) => redisFingerprint(cl, undefined, Object.keys(before.sample)));
    const header = parseRdbHeader(run.head);
    const fp = stableFingerprint(before, after, header.db0Keys);
    if (typeof fp === 'string') throw new Error(fp);
    return {
      format: 1,
      id: input.id,
      cluster: c.name,
      engine: 'redis',
      node: input.node,
      role: input.role,
      fromPrimary: input.fromPrimary,
      engineVersion: version.valkey_version ? `valkey ${version.valkey_version}` : `redis ${version.redis_version}`,
      position: { ...(header.aux['repl-offset'] !== undefined ? { offset: Number(header.aux['repl-offset']) } : {}), ...(header.aux['repl-id'] ? { replid: header.aux['repl-id'] } : {}) },
      artifact: { file: ARTIFACT.redis + EXT[compressionOf(c)], size: run.size, sha256: run.sha256, compression: compressionOf(c) },
      rawSize: run.rawSize,
      startedAt,
      endedAt: new Date().toISOString(),
      tool: { name: 'redis-cli', args: redisCliArgs(target), exitStatus: run.exitStatus },
      content: { redis: fp },
    };
  }

  async function takeMysql(c: ClusterSpec, input: TakeBackupInput, storage: BackupStorage, progress: { bytes: number; streamMs: number }): Promise<BackupManifest> {
    const target = mysqlTarget(c, input.node, env);
    const startedAt = new Date().toISOString();
    const conn = await connect(target);
    let sqlStopped = false;
    try {
      const [[v]] = (await conn.query('SELECT VERSION() AS v')) as unknown as [[{ v: string }]];
      const schemas = await userSchemas(conn);
      if (!schemas.length) throw new HandoverError(ErrorType.PreconditionFailed, `${input.node} holds no user schema: nothing to back up`);
      if (input.role === 'replica') {
        // The dump and the fingerprint must see the same data: the replica stops applying (the primary is not
        // touched; the replica catches up afterwards), as mariadb-dump --dump-slave does.
        await conn.query('STOP SLAVE SQL_THREAD');
        sqlStopped = true;
      }
      const before = sqlStopped ? undefined : await mysqlFingerprint(conn, schemas);
      // On a stopped replica the data cannot change: fingerprint it while the dump streams, not after it.
      const during = sqlStopped ? mysqlFingerprint(conn, schemas) : undefined;
      during?.catch(() => undefined); // awaited below; a failed dump must not leave it unhandled
      const opt = optionFile({ user: target.user, password: target.password });
      let hit = false;
      let run;
      const s0 = Date.now();
      try {
        run = await streamToolToStorage({
          cmd: MARIADB_DUMP,
          args: [...opt.args, ...dumpArgs(target, schemas)],
          env,
          storage,
          cluster: c.name,
          id: input.id,
          file: ARTIFACT.mysql + EXT[compressionOf(c)],
          compression: compressionOf(c),
          onChunk: (n) => {
            progress.bytes = n;
            if (!hit) {
              hit = true;
              void failpoint('takeBackup.streaming');
            }
          },
        });
      } finally {
        opt.cleanup();
      }
      progress.streamMs = Date.now() - s0;
      const after = during ? await during : await mysqlFingerprint(conn, schemas);
      const unstable = before ? after.filter((t) => { const b = before.find((x) => x.table === t.table); return !b || b.rows !== t.rows || b.checksum !== t.checksum; }).map((t) => t.table) : [];
      const gtid = gtidFromDumpHead(run.tail.toString('latin1')) ?? gtidFromDumpHead(run.head.toString('latin1'));
      if (gtid === undefined) throw new Error(`no GTID position in the dump header of ${input.id}`);
      return {
        format: 1,
        id: input.id,
        cluster: c.name,
        engine: 'mysql',
        node: input.node,
        role: input.role,
        fromPrimary: input.fromPrimary,
        engineVersion: v.v,
        position: { gtid },
        artifact: { file: ARTIFACT.mysql + EXT[compressionOf(c)], size: run.size, sha256: run.sha256, compression: compressionOf(c) },
        rawSize: run.rawSize,
        startedAt,
        endedAt: new Date().toISOString(),
        tool: { name: 'mariadb-dump', args: dumpArgs(target, schemas), exitStatus: run.exitStatus },
        content: { mysql: { tables: after.filter((t) => !unstable.includes(t.table)), consistent: sqlStopped || unstable.length === 0, ...(unstable.length ? { unstable } : {}) } },
      };
    } catch (e) {
      throw classifyMysqlError(e, target);
    } finally {
      if (sqlStopped) await conn.query('START SLAVE SQL_THREAD').catch(() => undefined);
      conn.destroy();
    }
  }

  // ---- verify -----------------------------------------------------------------------------------------------

  async function verify(c: ClusterSpec, id: string): Promise<VerificationRecord> {
    const storage = storageOf(c);
    const b = await stored(c, id);
    const m = b.manifest;
    const started = Date.now();
    const checks: string[] = [];
    const fail = (failure: string): VerificationRecord => ({ id, ok: false, at: new Date().toISOString(), checks, failure, restoreMs: Date.now() - started });
    const h = await hashStored(storage.readStream(c.name, id, m.artifact.file));
    if (h.size !== m.artifact.size) return fail(`size ${h.size} != manifest ${m.artifact.size}`);
    if (h.sha256 !== m.artifact.sha256) return fail(`sha256 ${h.sha256} != manifest ${m.artifact.sha256}`);
    checks.push(`sha256 ${h.sha256.slice(0, 12)}… and size ${h.size} match`);
    if (m.engine === 'redis') {
      const want = m.content.redis!;
      let scratch;
      try {
        scratch = await startScratchRedis({ storage, cluster: c.name, id, file: m.artifact.file, compression: m.artifact.compression, engineVersion: m.engineVersion });
      } catch (e) {
        return fail(`the RDB does not load into a scratch server: ${(e as Error).message.split('\n')[0]}`);
      }
      try {
        const cl = await scratch.client();
        try {
          const got = await redisFingerprint(cl, undefined, Object.keys(want.sample));
          const why = compareRedisContent(want, got);
          if (why) return fail(why);
          checks.push(`restored into a scratch server on 127.0.0.1:${scratch.port}: DBSIZE ${got.dbsize} and ${Object.keys(want.sample).length} sampled keys match`);
        } finally {
          cl.disconnect();
        }
      } finally {
        await scratch.stop();
      }
    } else {
      const want = m.content.mysql!;
      const scratch = await startScratchMaria(id);
      try {
        try {
          await loadDump({ storage, cluster: c.name, id, file: m.artifact.file, compression: m.artifact.compression, connArgs: ['--no-defaults', `--socket=${scratch.socket}`, '--user=root'] });
        } catch (e) {
          return fail(`the dump does not load into a scratch server: ${(e as Error).message.split('\n')[0]}`);
        }
        const conn = await scratch.root();
        try {
          const got = await mysqlFingerprint(conn, await userSchemas(conn));
          const why = compareMysqlContent(want.tables, got, want.unstable);
          if (why) return fail(why);
          checks.push(`restored into a scratch mariadbd on 127.0.0.1:${scratch.port}: ${want.tables.length} tables' row counts and CHECKSUM TABLE match${want.unstable?.length ? `; ${want.unstable.length} changed during the dump, checked present` : ''}`);
        } finally {
          await conn.end();
        }
      } finally {
        await scratch.stop();
      }
    }
    return { id, ok: true, at: new Date().toISOString(), checks, restoreMs: Date.now() - started };
  }

  // ---- restore ----------------------------------------------------------------------------------------------

  async function restoreRedis(c: ClusterSpec, b: StoredBackup & { manifest: BackupManifest }, target: RestoreTarget, storage: BackupStorage): Promise<Omit<RestoreBackupResult, 'restoreMs' | 'audit'>> {
    const m = b.manifest;
    if (target.kind === 'scratch') {
      const s = await startScratchRedis({ storage, cluster: c.name, id: m.id, file: m.artifact.file, compression: m.artifact.compression, engineVersion: m.engineVersion, keep: true });
      const cl = await s.client();
      const keys = await cl.dbsize();
      cl.disconnect();
      const passwordFile = path.join(s.dir, 'password');
      writeFileSync(passwordFile, s.password + '\n', { mode: 0o600 });
      return { id: m.id, target: 'scratch', address: `127.0.0.1:${s.port}`, dir: s.dir, passwordFile, keys };
    }
    // An empty node of the cluster: it replicates once from a scratch server holding the RDB (over the network,
    // no file access to the node), then is detached from it.
    const node = target.node;
    const dbsize = await withRedis(c, node, (cl) => cl.dbsize());
    if (dbsize > 0) throw new HandoverError(ErrorType.TargetNotEmpty, `refused: ${node} holds ${dbsize} keys; restore only into an empty node (nothing was changed)`);
    const password = redisTarget(c, node, env).password;
    const s = await startScratchRedis({ storage, cluster: c.name, id: m.id, file: m.artifact.file, compression: m.artifact.compression, engineVersion: m.engineVersion, password });
    try {
      const want = await (async () => {
        const cl = await s.client();
        try {
          return await cl.dbsize();
        } finally {
          cl.disconnect();
        }
      })();
      await withRedis(c, node, async (cl) => {
        await cl.call('REPLICAOF', '127.0.0.1', String(s.port));
        const until = Date.now() + 120_000;
        for (;;) {
          const r = parseInfo(await cl.info('replication'));
          if (r.master_link_status === 'up' && r.master_sync_in_progress === '0' && (await cl.dbsize()) === want) break;
          if (Date.now() > until) throw new Error(`${node} did not finish loading from the scratch server within 120 s`);
          await new Promise((res) => setTimeout(res, 50));
        }
        await cl.call('REPLICAOF', 'NO', 'ONE');
      });
      return { id: m.id, target: node, keys: want };
    } finally {
      await s.stop();
    }
  }

  async function restoreMysql(c: ClusterSpec, b: StoredBackup & { manifest: BackupManifest }, target: RestoreTarget, storage: BackupStorage): Promise<Omit<RestoreBackupResult, 'restoreMs' | 'audit'>> {
    const m = b.manifest;
    if (target.kind === 'scratch') {
      const s = await startScratchMaria(m.id, true);
      await loadDump({ storage, cluster: c.name, id: m.id, file: m.artifact.file, compression: m.artifact.compression, connArgs: ['--no-defaults', `--socket=${s.socket}`, '--user=root'] });
      return { id: m.id, target: 'scratch', address: `127.0.0.1:${s.port}`, socket: s.socket, dir: s.dir, tables: m.content.mysql?.tables.length };
    }
    const node = target.node;
    const schemas = await withMysql(c, node, (conn) => userSchemas(conn));
    if (schemas.length) throw new HandoverError(ErrorType.TargetNotEmpty, `refused: ${node} already has schemas ${schemas.join(', ')}; restore only into an empty node (nothing was changed)`);
    const t = mysqlTarget(c, node, env);
    const opt = optionFile({ user: t.user, password: t.password });
    try {
      await loadDump({ storage, cluster: c.name, id: m.id, file: m.artifact.file, compression: m.artifact.compression, connArgs: [...opt.args, '-h', t.host, '-P', String(t.port), '--protocol=TCP'] });
    } finally {
      opt.cleanup();
    }
    return { id: m.id, target: node, tables: m.content.mysql?.tables.length };
  }

  return {
    /** Every node's role, link and lag, engine-neutral, plus the cluster's backup settings. Read-only. */
    probeBackupSources: activity(async ({ cluster }: { cluster: string }): Promise<ProbeBackupResult> => {
      const c = clusterOf(cluster);
      const storage = storageOf(c).location;
      const keep = c.backup?.keep ?? 7;
      if (c.engine === 'redis') {
        const nodes = await redis.probeAll(c);
        const primary = nodes.find((n) => n.reachable && n.role === 'primary');
        return {
          cluster,
          engine: 'redis',
          maxLag: c.policy.maxLagBytes,
          lagUnit: 'bytes',
          keep,
          storage,
          nodes: nodes.map((n) => ({
            node: n.node,
            reachable: n.reachable,
            error: n.error,
            role: n.role,
            replicaOf: n.primaryNode,
            replicating: n.linkUp,
            lag: n.role === 'primary' ? 0 : primary?.offset !== undefined && n.offset !== undefined ? Math.max(0, primary.offset - n.offset) : undefined,
            version: n.version,
          })),
        };
      }
      const nodes = await mysqlO.probeAll(c);
      const primary = nodes.find((n) => n.reachable && n.role === 'primary');
      return {
        cluster,
        engine: 'mysql',
        maxLag: c.policy.maxLagTransactions,
        lagUnit: 'transactions',
        keep,
        storage,
        nodes: nodes.map((n) => ({
          node: n.node,
          reachable: n.reachable,
          error: n.error,
          role: n.role,
          replicaOf: n.sourceNode,
          replicating: n.ioRunning === 'Yes' && n.sqlRunning === true,
          lag: n.role === 'primary' ? 0 : primary ? lagTransactions(appliedPos(n), primary.gtidBinlogPos) : undefined,
          version: n.version,
        })),
      };
    }),

    /**
     * Take backup `id` from `node`: stream the tool's output through gzip into storage (temp, rename), hashing
     * as it goes, then write the manifest last. Heartbeats the bytes streamed. Re-run with the same ID: returns
     * the stored manifest if there is one, else clears the interrupted attempt and takes again.
     */
    takeBackup: activity(async (input: TakeBackupInput): Promise<TakeBackupResult> => {
      const c = clusterOf(input.cluster);
      const storage = storageOf(c);
      const t0 = Date.now();
      const existing = await storage.get(c.name, input.id);
      const summary = (m: BackupManifest, already: boolean): TakeBackupResult => ({
        id: m.id,
        alreadyTaken: already,
        node: m.node,
        size: m.artifact.size,
        rawSize: m.rawSize,
        sha256: m.artifact.sha256,
        position: m.position,
        durationMs: Date.parse(m.endedAt) - Date.parse(m.startedAt),
        streamMs: 0,
        audit: `${already ? 'already taken: ' : ''}${m.id} from ${m.node} (${m.role}${m.fromPrimary ? ', no healthy replica' : ''}): ${m.rawSize} bytes -> ${m.artifact.size} gzip, sha256 ${m.artifact.sha256.slice(0, 12)}…, position ${m.position.gtid ?? `${m.position.replid ?? '?'}:${m.position.offset ?? '?'}`}, in ${storage.location}`,
      });
      if (existing?.manifest) return summary(existing.manifest, true);
      await storage.clearPartial(c.name, input.id);
      const progress = { bytes: 0, streamMs: 0 };
      const manifest = await heartbeating(
        () => ({ id: input.id, bytes: progress.bytes }),
        () => (c.engine === 'redis' ? takeRedis(c, input, storage, progress) : takeMysql(c, input, storage, progress)),
      ).catch((e) => {
        throw c.engine === 'redis' ? classifyRedisError(e, { cluster: c.name, node: input.node }) : e;
      });
      await failpoint('takeBackup.beforeManifest');
      await storage.putJson(c.name, input.id, 'manifest.json', manifest);
      const r = summary(manifest, false);
      r.durationMs = Date.now() - t0;
      r.streamMs = progress.streamMs;
      return r;
    }),

    /**
     * Verify a stored backup: size and sha256 of the artifact against the manifest first, then a restore into a
     * scratch server on a free loopback port (removed afterwards) compared with the manifest's content record.
     * Writes verification.json (ok or not) atomically; returns the record (the workflow fails on !ok).
     */
    verifyBackup: activity(async ({ cluster, id, record = true }: BackupRef & { record?: boolean }): Promise<VerifyBackupResult> => {
      const c = clusterOf(cluster);
      const rec = await heartbeating(() => ({ id }), () => verify(c, id));
      if (record) await storageOf(c).putJson(c.name, id, 'verification.json', rec);
      return { ...rec, audit: rec.ok ? `verified ${id}: ${rec.checks.join('; ')} (${rec.restoreMs} ms)` : `verification of ${id} FAILED: ${rec.failure}` };
    }),

    /** Record a verification (ok: the backup is listed good; not ok: failed). Atomic; rewriting it is a no-op. */
    markBackupVerified: activity(async ({ cluster, record }: { cluster: string; record: VerificationRecord }): Promise<{ state: string; audit: string }> => {
      const c = clusterOf(cluster);
      const storage = storageOf(c);
      await stored(c, record.id);
      await storage.putJson(c.name, record.id, 'verification.json', record);
      const b = await storage.get(c.name, record.id);
      return { state: b?.state ?? 'missing', audit: `${record.id} is now ${b?.state}` };
    }),

    /** What is stored for the cluster, newest first, with each backup's state. Read-only. */
    listBackups: activity(async ({ cluster }: { cluster: string }) => {
      const c = clusterOf(cluster);
      const storage = storageOf(c);
      const all = await storage.list(c.name);
      return { storage: storage.location, backups: all.map(({ manifest, verification, problems: _p, ...rest }) => ({ ...rest, engine: manifest?.engine, sha256: manifest?.artifact.sha256, position: manifest?.position, fromPrimary: manifest?.fromPrimary, verifiedAt: verification?.at })) };
    }),

    /** Retention: delete what planRetention allows (older than a newer good backup), manifest first. */
    pruneBackups: activity(async (input: PruneInput): Promise<PruneResult> => {
      const c = clusterOf(input.cluster);
      const storage = storageOf(c);
      const plan = planRetention(await storage.list(c.name), input.keep, input.protect);
      for (const d of plan.delete) await storage.remove(c.name, d.id);
      return { ...plan, audit: `kept ${plan.keep.length} (${plan.keep.join(', ') || 'none'}); deleted ${plan.delete.length}${plan.delete.length ? `: ${plan.delete.map((d) => `${d.id} (${d.reason})`).join('; ')}` : ''}` };
    }),

    /** Restore a backup into a fresh scratch server (left running; its address returned) or an empty node. */
    restoreBackup: activity(async (input: RestoreBackupInput): Promise<RestoreBackupResult> => {
      const c = clusterOf(input.cluster);
      const storage = storageOf(c);
      const b = await stored(c, input.id);
      const t0 = Date.now();
      const h = await hashStored(storage.readStream(c.name, input.id, b.manifest.artifact.file));
      if (h.sha256 !== b.manifest.artifact.sha256) throw new HandoverError(ErrorType.VerificationFailed, `backup ${input.id}: artifact sha256 ${h.sha256} != manifest ${b.manifest.artifact.sha256}; not restored`);
      const r = await heartbeating(() => ({ id: input.id }), () => (c.engine === 'redis' ? restoreRedis(c, b, input.target, storage) : restoreMysql(c, b, input.target, storage)));
      const restoreMs = Date.now() - t0;
      return { ...r, restoreMs, audit: `restored ${input.id} into ${r.target === 'scratch' ? `a scratch server at ${r.address} (dir ${r.dir})` : r.target}${r.keys !== undefined ? `: ${r.keys} keys` : r.tables !== undefined ? `: ${r.tables} tables` : ''} in ${restoreMs} ms` };
    }),
  };
}
