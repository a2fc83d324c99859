/**
 * Take: the engine's tool streams the data over the network (Redis: `redis-cli --rdb -`; MariaDB:
 * `mariadb-dump --single-transaction`) through the compressor and a sha256 into the store; the manifest, with
 * the position and a content fingerprint read around the transfer, is written last.
 *
 * Idempotent: an ID whose manifest is stored returns that manifest and does nothing; one without a manifest
 * clears the interrupted attempt (temp files, multipart uploads) and takes again under the same ID.
 */
import type Redis from 'ioredis';
import { heartbeatWhile } from '../activity';
import type { BackupManifest, ShardBackup } from '../../core/backup/decide';
import { ErrorType, HandoverError } from '../../core/errors';
import { classifyMysqlError, mysqlTarget } from '../mysql/conn';
import { classifyRedisError, parseInfo, redisTarget } from '../redis/conn';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chooseIncrementalBase, type PhysicalRecord } from '../../core/backup/decide';
import { artifactFile, compressionOf, EXT, type BackupCluster, type BackupContext } from './context';
import { mbstreamTap, parseCheckpoints, physicalGtid } from './mbstream';
import { checkDatadirReachable, incrementalBasedir, PHYSICAL_ARTIFACT, physicalTakeArgs } from './physical';
import type { TakeBackupInput, TakeBackupResult } from './contracts';
import { dumpArgs, gtidFromDumpHead, mysqlFingerprint, optionFile, userSchemas } from './mysql';
import { parseRdbHeader, redisCliArgs, redisCliEnv, redisFingerprint, stableFingerprint } from './redis';
import type { BackupStorage } from './storage';
import { streamToolToStorage } from './stream';
import { doltBackupSyncAll, doltStagingRoot } from './dolt';
import { tool } from './tools';

interface Progress {
  /** Raw bytes read from the tool. */
  bytes: number;
  /** Bytes durable in the store. */
  stored: number;
  streamMs: number;
  /** What kind of take this was, for the audit (physical: full or incremental on which base). */
  note?: string;
}

/** Failpoints inside the stream: the first raw chunk, and the first bytes durable in the store (an S3 part). */
function streamHooks(ctx: BackupContext, progress: Progress) {
  let read = false;
  let stored = false;
  return {
    onChunk: (n: number) => {
      progress.bytes = n;
      if (!read) {
        read = true;
        void ctx.failpoint('takeBackup.streaming');
      }
    },
    onStored: (n: number) => {
      progress.stored = n;
      if (!stored) {
        stored = true;
        void ctx.failpoint('takeBackup.uploading');
      }
    },
  };
}

async function takeRedis(ctx: BackupContext, c: BackupCluster, input: TakeBackupInput, storage: BackupStorage, progress: Progress): Promise<BackupManifest> {
  const compression = compressionOf(c, ctx.env);
  const target = redisTarget(c, input.node, ctx.env);
  const startedAt = new Date().toISOString();
  const { before, version } = await ctx.withRedis(c, input.node, async (cl) => ({ before: await redisFingerprint(cl), version: parseInfo(await cl.info('server')) }));
  const s0 = Date.now();
  const run = await streamToolToStorage({
    cmd: tool('redis-cli', ctx.env),
    args: redisCliArgs(target),
    env: redisCliEnv(target, ctx.env),
    storage,
    cluster: c.name,
    id: input.id,
    file: artifactFile(c, compression),
    compression,
    encrypt: ctx.keysOf(c).current,
    ...streamHooks(ctx, progress),
  });
  progress.streamMs = Date.now() - s0;
  const after = await ctx.withRedis(c, input.node, (cl) => redisFingerprint(cl, undefined, Object.keys(before.sample)));
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
    artifact: { file: artifactFile(c, compression), size: run.size, sha256: run.sha256, compression, ...(run.encryption ? { encryption: run.encryption } : {}) },
    rawSize: run.rawSize,
    startedAt,
    endedAt: new Date().toISOString(),
    tool: { name: 'redis-cli', args: redisCliArgs(target), exitStatus: run.exitStatus },
    content: { redis: fp },
  };
}

/**
 * Redis Cluster: every shard's RDB from its chosen source (`redis-cli --rdb -` against that node: its own
 * keys only), one after the other, each fingerprinted around its transfer; one manifest lists them all.
 */
async function takeRedisCluster(ctx: BackupContext, c: BackupCluster, input: TakeBackupInput, storage: BackupStorage, progress: Progress): Promise<BackupManifest> {
  const compression = compressionOf(c, ctx.env);
  const startedAt = new Date().toISOString();
  const shards: ShardBackup[] = [];
  let version = '';
  const s0 = Date.now();
  for (const [i, s] of input.shards!.entries()) {
    const target = redisTarget(c, s.node, ctx.env);
    const file = `shard${i + 1}-${artifactFile(c, compression)}`;
    // A Cluster replica answers reads of its shard's keys only after READONLY (else MOVED to its primary).
    const readonly = async (cl: Redis) => (s.role === 'replica' ? cl.call('READONLY') : undefined);
    const { before, info } = await ctx.withRedis(c, s.node, async (cl) => (await readonly(cl), { before: await redisFingerprint(cl), info: parseInfo(await cl.info('server')) }));
    version = info.valkey_version ? `valkey ${info.valkey_version}` : `redis ${info.redis_version}`;
    const run = await streamToolToStorage({
      cmd: tool('redis-cli', ctx.env),
      args: redisCliArgs(target),
      env: redisCliEnv(target, ctx.env),
      storage,
      cluster: c.name,
      id: input.id,
      file,
      compression,
      encrypt: ctx.keysOf(c).current,
      ...streamHooks(ctx, progress),
    });
    const after = await ctx.withRedis(c, s.node, async (cl) => (await readonly(cl), await redisFingerprint(cl, undefined, Object.keys(before.sample))));
    const header = parseRdbHeader(run.head);
    const fp = stableFingerprint(before, after, header.db0Keys);
    if (typeof fp === 'string') throw new Error(`shard ${s.slots} (${s.node}): ${fp}`);
    shards.push({
      slots: s.slots,
      node: s.node,
      role: s.role,
      primary: s.primary,
      position: { ...(header.aux['repl-offset'] !== undefined ? { offset: Number(header.aux['repl-offset']) } : {}), ...(header.aux['repl-id'] ? { replid: header.aux['repl-id'] } : {}) },
      artifact: { file, size: run.size, sha256: run.sha256, compression, ...(run.encryption ? { encryption: run.encryption } : {}) },
      rawSize: run.rawSize,
      content: { redis: fp },
    });
  }
  progress.streamMs = Date.now() - s0;
  const first = shards[0];
  return {
    format: 1,
    id: input.id,
    cluster: c.name,
    engine: 'redis',
    node: first.node,
    role: first.role,
    fromPrimary: shards.some((s) => s.role === 'primary'),
    engineVersion: version,
    position: first.position,
    artifact: first.artifact,
    rawSize: shards.reduce((a, s) => a + s.rawSize, 0),
    shards,
    startedAt,
    endedAt: new Date().toISOString(),
    tool: { name: 'redis-cli', args: ['--rdb', '-', `(each of ${shards.length} shards)`], exitStatus: 0 },
    content: { redis: first.content.redis },
  };
}

async function takeMysql(ctx: BackupContext, c: BackupCluster, input: TakeBackupInput, storage: BackupStorage, progress: Progress): Promise<BackupManifest> {
  const compression = compressionOf(c, ctx.env);
  const method = c.backup?.method ?? 'logical';
  if (input.incremental && method !== 'physical')
    throw new HandoverError(ErrorType.PreconditionFailed, `refused: an incremental backup needs backup.method: physical (cluster ${c.name} is ${method}); nothing was taken`);
  const target = mysqlTarget(c, input.node, ctx.env);
  const startedAt = new Date().toISOString();
  // An incremental builds on the newest good physical backup whose chain is whole; without one it is a full.
  let base: BackupManifest | undefined;
  let baseNote = '';
  if (input.incremental) {
    const all = await storage.list(c.name);
    const pick = chooseIncrementalBase(all.map((b) => ({ ...b, method: b.manifest?.method })));
    if ('base' in pick) base = all.find((b) => b.id === pick.base)!.manifest;
    else baseNote = pick.none;
  }
  const conn = await ctx.connect(target);
  let sqlStopped = false;
  try {
    const [[v]] = (await conn.query('SELECT VERSION() AS v, @@datadir AS d')) as unknown as [[{ v: string; d: string }]];
    const schemas = await userSchemas(conn);
    if (!schemas.length) throw new HandoverError(ErrorType.PreconditionFailed, `${input.node} holds no user schema: nothing to back up`);
    if (method === 'physical') checkDatadirReachable(input.node, v.d);
    if (input.role === 'replica') {
      // The copy and the fingerprint must see the same data: the replica stops applying (the primary is not
      // touched; the replica catches up afterwards), as mariadb-dump --dump-slave does.
      await conn.query('STOP SLAVE SQL_THREAD');
      sqlStopped = true;
    }
    const before = sqlStopped ? undefined : await mysqlFingerprint(conn, schemas);
    // On a stopped replica the data cannot change: fingerprint it while the tool streams, not after it.
    const during = sqlStopped ? mysqlFingerprint(conn, schemas) : undefined;
    during?.catch(() => undefined); // awaited below; a failed take must not leave it unhandled
    const opt = optionFile({ user: target.user, password: target.password });
    const mb = method === 'physical' ? mbstreamTap() : undefined;
    const tmpTarget = method === 'physical' ? mkdtempSync(path.join(os.tmpdir(), 'handover-mbtarget-')) : undefined;
    const basedir = base ? incrementalBasedir(base) : undefined;
    const args =
      method === 'physical'
        ? physicalTakeArgs(target, { datadir: v.d, targetDir: tmpTarget!, replica: sqlStopped, incrementalBasedir: basedir?.dir })
        : dumpArgs(target, schemas);
    const file = (method === 'physical' ? PHYSICAL_ARTIFACT : 'dump.sql') + EXT[compression];
    let run;
    const s0 = Date.now();
    try {
      run = await streamToolToStorage({
        cmd: tool(method === 'physical' ? 'mariadb-backup' : 'mariadb-dump', ctx.env),
        args: [...opt.args, ...args],
        env: ctx.env,
        storage,
        cluster: c.name,
        id: input.id,
        file,
        compression,
        encrypt: ctx.keysOf(c).current,
        ...(mb ? { tap: (b: Buffer) => mb.push(b) } : {}),
        ...streamHooks(ctx, progress),
      });
    } finally {
      opt.cleanup();
      basedir?.cleanup();
      if (tmpTarget) rmSync(tmpTarget, { recursive: true, force: true });
    }
    progress.streamMs = Date.now() - s0;
    const after = during ? await during : await mysqlFingerprint(conn, schemas);
    const unstable = before
      ? after
          .filter((t) => {
            const b = before.find((x) => x.table === t.table);
            return !b || b.rows !== t.rows || b.checksum !== t.checksum;
          })
          .map((t) => t.table)
      : [];
    let gtid: string | undefined;
    let physical: PhysicalRecord | undefined;
    if (mb) {
      if (mb.meta.error || !mb.meta.chunks) throw new Error(`mariadb-backup's output of ${input.id} is not an mbstream: ${mb.meta.error ?? 'empty'}`);
      const f = mb.meta.files;
      const cp = parseCheckpoints(f.xtrabackup_checkpoints ?? f.mariadb_backup_checkpoints);
      if (!cp) throw new Error(`no xtrabackup_checkpoints in the mbstream of ${input.id}`);
      gtid = physicalGtid(f);
      const binlogInfo = f.xtrabackup_binlog_info ?? f.mariadb_backup_binlog_info;
      const slaveInfo = f.xtrabackup_slave_info ?? f.mariadb_backup_slave_info;
      physical = {
        kind: base ? 'incremental' : 'full',
        fromLsn: cp.fromLsn,
        toLsn: cp.toLsn,
        lastLsn: cp.lastLsn,
        checkpoints: f.xtrabackup_checkpoints ?? f.mariadb_backup_checkpoints!,
        ...(binlogInfo !== undefined ? { binlogInfo } : {}),
        ...(slaveInfo !== undefined ? { slaveInfo } : {}),
      };
      if (baseNote) progress.note = `full (${baseNote})`;
      else if (base) progress.note = `incremental on ${base.id} (LSN ${cp.fromLsn} -> ${cp.lastLsn})`;
    } else gtid = gtidFromDumpHead(run.tail.toString('latin1')) ?? gtidFromDumpHead(run.head.toString('latin1'));
    if (gtid === undefined) throw new Error(`no GTID position in the ${method === 'physical' ? 'mbstream metadata' : 'dump header'} of ${input.id}`);
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
      artifact: { file, size: run.size, sha256: run.sha256, compression, ...(run.encryption ? { encryption: run.encryption } : {}) },
      rawSize: run.rawSize,
      startedAt,
      endedAt: new Date().toISOString(),
      tool: { name: method === 'physical' ? 'mariadb-backup' : 'mariadb-dump', args, exitStatus: run.exitStatus },
      ...(method === 'physical' ? { method, physical } : {}),
      ...(base ? { base: base.id } : {}),
      content: { mysql: { tables: after.filter((t) => !unstable.includes(t.table)), consistent: sqlStopped || unstable.length === 0, ...(unstable.length ? { unstable } : {}) } },
    };
  } catch (e) {
    throw classifyMysqlError(e, target);
  } finally {
    if (sqlStopped) await conn.query('START SLAVE SQL_THREAD').catch(() => undefined);
    conn.destroy();
  }
}

async function takeDolt(ctx: BackupContext, c: BackupCluster, input: TakeBackupInput, storage: BackupStorage, progress: Progress): Promise<BackupManifest> {
  const startedAt = new Date().toISOString();
  const compression = compressionOf(c, ctx.env);
  const staging = mkdtempSync(path.join(doltStagingRoot(ctx.env), `handover-dolt-${input.id}-`));
  try {
    const { databases, version } = await ctx.withDolt(c, input.node, async (conn) => {
      const [[v]] = (await conn.query('SELECT dolt_version() AS v')) as unknown as [[{ v: string }]];
      return { databases: await doltBackupSyncAll(conn, staging), version: v.v };
    });
    await ctx.failpoint('takeBackup.synced');
    const args = ['-C', staging, '-cf', '-', ...Object.keys(databases)];
    const s0 = Date.now();
    const run = await streamToolToStorage({ cmd: 'tar', args, env: ctx.env, storage, cluster: c.name, id: input.id, file: artifactFile(c, compression), compression, encrypt: ctx.keysOf(c).current, ...streamHooks(ctx, progress) });
    progress.streamMs = Date.now() - s0;
    return {
      format: 1,
      id: input.id,
      cluster: c.name,
      engine: 'dolt',
      node: input.node,
      role: input.role,
      fromPrimary: input.fromPrimary,
      engineVersion: `dolt ${version}`,
      position: {},
      artifact: { file: artifactFile(c, compression), size: run.size, sha256: run.sha256, compression, ...(run.encryption ? { encryption: run.encryption } : {}) },
      rawSize: run.rawSize,
      startedAt,
      endedAt: new Date().toISOString(),
      tool: { name: 'dolt_backup', args: ["CALL dolt_backup('sync-url', 'file://<staging>/<db>')", `tar ${args.slice(2).join(' ')}`], exitStatus: run.exitStatus },
      content: { dolt: { databases } },
    };
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

/**
 * Take backup `id` from `node`: stream the tool's output through the compressor into storage, hashing as it
 * goes, then write the manifest last. Heartbeats the bytes streamed. Re-run with the same ID: returns the
 * stored manifest if there is one, else clears the interrupted attempt and takes again.
 */
export async function takeBackup(ctx: BackupContext, input: TakeBackupInput): Promise<TakeBackupResult> {
  const c = ctx.clusterOf(input.cluster);
  const storage = ctx.storageOf(c);
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
    ...(m.method ? { method: m.method } : {}),
    ...(m.base ? { base: m.base } : {}),
    ...(m.shards ? { shards: m.shards.map((s) => ({ slots: s.slots, node: s.node, keys: s.content.redis.dbsize, size: s.artifact.size })) } : {}),
    durationMs: Date.parse(m.endedAt) - Date.parse(m.startedAt),
    streamMs: 0,
    audit: `${already ? 'already taken: ' : ''}${m.id} from ${m.shards ? `${m.shards.length} shards (${m.shards.map((s) => `${s.slots} from ${s.node}, ${s.content.redis.dbsize} keys`).join('; ')})` : m.node} (${m.role}${m.fromPrimary ? ', no healthy replica' : ''})${m.method === 'physical' ? ` with mariadb-backup (${m.physical?.kind}${m.base ? ` on ${m.base}` : ''}, LSN ${m.physical?.fromLsn}..${m.physical?.lastLsn})` : ''}: ${m.rawSize} bytes -> ${m.artifact.size} ${m.artifact.compression}${m.artifact.encryption ? ` encrypted (key ${m.artifact.encryption.keyId})` : ''}, sha256 ${m.artifact.sha256.slice(0, 12)}…, position ${m.engine === 'dolt' ? Object.entries(m.content.dolt?.databases ?? {}).map(([d, h]) => `${d}@${h.slice(0, 8)}`).join(',') : (m.position.gtid ?? `${m.position.replid ?? '?'}:${m.position.offset ?? '?'}`)}, in ${storage.location}`,
  });
  if (existing?.manifest) return summary(existing.manifest, true);
  if (c.engine === 'redis' && c.topology === 'cluster' && !input.shards?.length)
    throw new HandoverError(ErrorType.PreconditionFailed, `${c.name} is a Redis Cluster: a backup takes every shard (the backup workflow chooses one source per shard); nothing was taken`);
  const cleared = await storage.clearPartial(c.name, input.id);
  const progress: Progress = { bytes: 0, stored: 0, streamMs: 0 };
  const manifest = await heartbeatWhile(() => (c.engine === 'redis' && input.shards?.length ? takeRedisCluster(ctx, c, input, storage, progress) : c.engine === 'redis' ? takeRedis(ctx, c, input, storage, progress) : c.engine === 'dolt' ? takeDolt(ctx, c, input, storage, progress) : takeMysql(ctx, c, input, storage, progress)), () => ({ id: input.id, bytes: progress.bytes, stored: progress.stored })).catch((e) => {
    throw c.engine === 'redis' ? classifyRedisError(e, { cluster: c.name, node: input.node }) : e;
  });
  await ctx.failpoint('takeBackup.beforeManifest');
  await storage.putJson(c.name, input.id, 'manifest.json', manifest);
  const r = summary(manifest, false);
  r.durationMs = Date.now() - t0;
  r.streamMs = progress.streamMs;
  if (progress.note) r.audit += `; ${progress.note}`;
  if (cleared) r.audit += `; cleared ${cleared} partial write(s) of an earlier attempt`;
  return r;
}
