/**
 * Verify: the stored artifact's size and sha256 against its manifest first (read back from the store, so any
 * worker verifies what any other took), then a restore into a scratch server on this worker, removed
 * afterwards, compared with the manifest's content record (Redis: DBSIZE and sampled key digests; MariaDB: each
 * table's row count and CHECKSUM TABLE).
 */
import { compareDoltContent, compareMysqlContent, compareRedisContent, type VerificationRecord } from '../../core/backup/decide';
import { startScratchDolt } from './dolt';
import type { BackupCluster, BackupContext, Stored } from './context';
import { loadDump, mysqlFingerprint, userSchemas } from './mysql';
import { redisFingerprint } from './redis';
import { startScratchOnPhysical } from './physical';
import { startScratchMaria } from './scratch-mysql';
import { startScratchRedis } from './scratch-redis';
import type { BackupStorage } from './storage';
import { hashStored } from './stream';

type Check = { ok: true; check: string } | { ok: false; failure: string };

async function verifyRedisContent(ctx: BackupContext, c: BackupCluster, b: Stored, storage: BackupStorage): Promise<Check> {
  const m = b.manifest;
  const want = m.content.redis!;
  let scratch;
  try {
    scratch = await startScratchRedis({ storage, cluster: c.name, id: m.id, artifact: m.artifact, keys: ctx.keysOf(c), engineVersion: m.engineVersion, env: ctx.env });
  } catch (e) {
    return { ok: false, failure: `the RDB does not load into a scratch server: ${(e as Error).message.split('\n')[0]}` };
  }
  try {
    const cl = await scratch.client();
    try {
      const got = await redisFingerprint(cl, undefined, Object.keys(want.sample));
      const why = compareRedisContent(want, got);
      if (why) return { ok: false, failure: why };
      return { ok: true, check: `restored into a scratch server on ${scratch.host}:${scratch.port}: DBSIZE ${got.dbsize} and ${Object.keys(want.sample).length} sampled keys match` };
    } finally {
      cl.disconnect();
    }
  } finally {
    await scratch.stop();
  }
}

/** Redis Cluster: every shard's RDB into its own scratch server, each compared with that shard's fingerprint. */
async function verifyRedisShards(ctx: BackupContext, c: BackupCluster, b: Stored, storage: BackupStorage): Promise<Check> {
  const m = b.manifest;
  const done: string[] = [];
  for (const s of m.shards!) {
    let scratch;
    try {
      scratch = await startScratchRedis({ storage, cluster: c.name, id: m.id, artifact: s.artifact, keys: ctx.keysOf(c), engineVersion: m.engineVersion, env: ctx.env });
    } catch (e) {
      return { ok: false, failure: `shard ${s.slots}: the RDB does not load into a scratch server: ${(e as Error).message.split('\n')[0]}` };
    }
    try {
      const cl = await scratch.client();
      try {
        const got = await redisFingerprint(cl, undefined, Object.keys(s.content.redis.sample));
        const why = compareRedisContent(s.content.redis, got);
        if (why) return { ok: false, failure: `shard ${s.slots}: ${why}` };
        done.push(`${s.slots}: DBSIZE ${got.dbsize}, ${Object.keys(s.content.redis.sample).length} sampled keys`);
      } finally {
        cl.disconnect();
      }
    } finally {
      await scratch.stop();
    }
  }
  return { ok: true, check: `each of ${m.shards!.length} shards restored into its own scratch server and matched (${done.join('; ')})` };
}

async function verifyMysqlContent(ctx: BackupContext, c: BackupCluster, b: Stored, storage: BackupStorage): Promise<Check> {
  const m = b.manifest;
  const want = m.content.mysql!;
  const scratch = await startScratchMaria(m.id, { env: ctx.env });
  try {
    try {
      await loadDump({ storage, cluster: c.name, id: m.id, artifact: m.artifact, keys: ctx.keysOf(c), env: ctx.env, connArgs: ['--no-defaults', `--socket=${scratch.socket}`, '--user=root'] });
    } catch (e) {
      return { ok: false, failure: `the dump does not load into a scratch server: ${(e as Error).message.split('\n')[0]}` };
    }
    const conn = await scratch.root();
    try {
      const got = await mysqlFingerprint(conn, await userSchemas(conn));
      const why = compareMysqlContent(want.tables, got, want.unstable);
      if (why) return { ok: false, failure: why };
      return {
        ok: true,
        check: `restored into a scratch mariadbd on ${scratch.host}:${scratch.port}: ${want.tables.length} tables' row counts and CHECKSUM TABLE match${want.unstable?.length ? `; ${want.unstable.length} changed during the dump, checked present` : ''}`,
      };
    } finally {
      await conn.end();
    }
  } finally {
    await scratch.stop();
  }
}

async function verifyDoltContent(ctx: BackupContext, c: BackupCluster, b: Stored, storage: BackupStorage): Promise<Check> {
  const m = b.manifest;
  const want = m.content.dolt!.databases;
  let scratch;
  try {
    scratch = await startScratchDolt({ storage, cluster: c.name, id: m.id, artifact: m.artifact, keys: ctx.keysOf(c), env: ctx.env });
  } catch (e) {
    return { ok: false, failure: `the backup does not restore into a scratch dolt sql-server: ${(e as Error).message.split('\n')[0]}` };
  }
  try {
    const got = await scratch.hashes();
    const why = compareDoltContent(want, got);
    if (why) return { ok: false, failure: why };
    return { ok: true, check: `restored into a scratch dolt sql-server on ${scratch.host}:${scratch.port}: dolt_hashof_db() of ${Object.keys(want).length} database(s) match (${Object.keys(want).join(', ')})` };
  } finally {
    await scratch.stop();
  }
}

async function verifyPhysicalContent(ctx: BackupContext, c: BackupCluster, chain: Stored[], storage: BackupStorage): Promise<Check> {
  const m = chain[chain.length - 1].manifest;
  const want = m.content.mysql!;
  let scratch;
  try {
    scratch = await startScratchOnPhysical({ storage, cluster: c.name, chain: chain.map((b) => b.manifest), keys: ctx.keysOf(c), env: ctx.env });
  } catch (e) {
    return { ok: false, failure: `the physical backup does not extract, prepare or start in a scratch server: ${(e as Error).message.split('\n')[0]}` };
  }
  try {
    const conn = await scratch.root();
    try {
      const got = await mysqlFingerprint(conn, await userSchemas(conn));
      const why = compareMysqlContent(want.tables, got, want.unstable);
      if (why) return { ok: false, failure: why };
      const [[pos]] = (await conn.query('SELECT @@gtid_slave_pos AS s')) as unknown as [[{ s: string }]];
      return {
        ok: true,
        check: `${chain.length > 1 ? `chain ${chain.map((b) => b.id).join(' + ')} ` : ''}extracted, prepared and started in a scratch mariadbd (socket ${scratch.socket}): ${want.tables.length} tables' row counts and CHECKSUM TABLE match${want.unstable?.length ? `; ${want.unstable.length} changed during the copy, checked present` : ''}; gtid_slave_pos ${pos.s || '(empty)'}`,
      };
    } finally {
      await conn.end();
    }
  } finally {
    await scratch.stop();
  }
}

/** The verification record of backup `id` (ok, or the first failed check). Writes nothing. */
export async function verifyStored(ctx: BackupContext, c: BackupCluster, id: string): Promise<VerificationRecord> {
  const storage = ctx.storageOf(c);
  const b = await ctx.stored(c, id, storage);
  const m = b.manifest;
  const started = Date.now();
  const checks: string[] = [];
  const fail = (failure: string): VerificationRecord => ({ id, ok: false, at: new Date().toISOString(), checks, failure, restoreMs: Date.now() - started });
  let chain: Stored[];
  try {
    chain = await ctx.chainOf(c, id, storage);
  } catch (e) {
    return fail((e as Error).message);
  }
  for (const s of m.shards ?? []) {
    const h = await hashStored(storage.readStream(c.name, id, s.artifact.file));
    if (h.size !== s.artifact.size || h.sha256 !== s.artifact.sha256) return fail(`shard ${s.slots}: ${s.artifact.file} size ${h.size} sha256 ${h.sha256} != manifest ${s.artifact.size} ${s.artifact.sha256}`);
    checks.push(`shard ${s.slots}: sha256 ${h.sha256.slice(0, 12)}… and size ${h.size} match`);
  }
  for (const x of m.shards ? [] : chain) {
    const h = await hashStored(storage.readStream(c.name, x.id, x.manifest.artifact.file));
    const who = x.id === id ? '' : `base ${x.id}: `;
    if (h.size !== x.manifest.artifact.size) return fail(`${who}size ${h.size} != manifest ${x.manifest.artifact.size}`);
    if (h.sha256 !== x.manifest.artifact.sha256) return fail(`${who}sha256 ${h.sha256} != manifest ${x.manifest.artifact.sha256}`);
    checks.push(`${who}sha256 ${h.sha256.slice(0, 12)}… and size ${h.size} match`);
  }
  const r =
    m.shards ? await verifyRedisShards(ctx, c, b, storage) : m.engine === 'redis' ? await verifyRedisContent(ctx, c, b, storage) : m.engine === 'dolt' ? await verifyDoltContent(ctx, c, b, storage) : m.method === 'physical' ? await verifyPhysicalContent(ctx, c, chain, storage) : await verifyMysqlContent(ctx, c, b, storage);
  if (!r.ok) return fail(r.failure);
  checks.push(r.check);
  return { id, ok: true, at: new Date().toISOString(), checks, restoreMs: Date.now() - started };
}
