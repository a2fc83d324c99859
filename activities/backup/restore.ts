/**
 * Restore a stored backup (its sha256 re-checked first) into a fresh scratch server on this worker, left
 * running, or into an empty node of the cluster, refused before any write when the node holds data.
 *
 *  - Redis into a node: a scratch server on this worker holds the RDB and the node replicates from it once
 *    (REPLICAOF <scratch host> <port>, then REPLICAOF NO ONE): over the network, no file access to the node.
 *    The scratch server listens on HANDOVER_SCRATCH_HOST, else on this worker's address on the route to the
 *    node (loopback for a node on this host). A node that cannot connect within 15 s is put back as it was.
 *  - MariaDB into a node: the dump is streamed from the store into the `mariadb` client over TCP.
 *  - A Redis Cluster backup: --scratch only, into a scratch Redis Cluster of one node per shard
 *    (scratch-redis-cluster.ts); into a node it is refused before anything is read or changed.
 *
 * A retry after a completed restore into a node is refused (the node is no longer empty), never repeated.
 */
import { heartbeatWhile } from '../activity';
import { nodeTls } from '../tls';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ErrorType, HandoverError } from '../../core/errors';
import { mysqlTarget } from '../mysql/conn';
import { parseInfo, redisTarget } from '../redis/conn';
import { type BackupCluster, type BackupContext, type Stored } from './context';
import type { RestoreBackupInput, RestoreBackupResult, RestoreTarget } from './contracts';
import { loadDump, mysqlClientTlsArgs, optionFile, userSchemas } from './mysql';
import { checkDatadirReachable, moveBack, preparePhysical, startScratchOnPhysical } from './physical';
import { isAlive, sleep } from './scratch';
import { startScratchMaria } from './scratch-mysql';
import { localAddressToward } from './scratch';
import { startScratchRedis } from './scratch-redis';
import { startScratchRedisCluster } from './scratch-redis-cluster';
import { startScratchDolt } from './dolt';
import type { BackupStorage } from './storage';
import { hashStored } from './stream';

type Restored = Omit<RestoreBackupResult, 'restoreMs' | 'audit'>;

/** How long a Redis node may take to open its replication connection to the scratch server before the restore gives up. */
const SCRATCH_CONNECT_MS = 15_000;

async function restoreRedis(ctx: BackupContext, c: BackupCluster, b: Stored, target: RestoreTarget, storage: BackupStorage): Promise<Restored> {
  const m = b.manifest;
  const from = { storage, cluster: c.name, id: m.id, artifact: m.artifact, keys: ctx.keysOf(c), engineVersion: m.engineVersion, env: ctx.env };
  if (target.kind === 'scratch') {
    const s = await startScratchRedis({ ...from, keep: true });
    const cl = await s.client();
    const keys = await cl.dbsize();
    cl.disconnect();
    const passwordFile = path.join(s.dir, 'password');
    writeFileSync(passwordFile, s.password + '\n', { mode: 0o600 });
    return { id: m.id, target: 'scratch', address: `${s.host}:${s.port}`, dir: s.dir, passwordFile, keys };
  }
  const node = target.node;
  // The node loads the backup by replicating from a plaintext scratch server: a TLS node (tls-replication yes)
  // cannot. Refused before anything is started or changed.
  if (nodeTls(c, node))
    throw new HandoverError(ErrorType.PreconditionFailed, `refused: ${node} is reached over TLS and would load the backup by replicating from a plaintext scratch server; restore --scratch and copy the keys instead (nothing was changed)`);
  const dbsize = await ctx.withRedis(c, node, (cl) => cl.dbsize());
  if (dbsize > 0) throw new HandoverError(ErrorType.TargetNotEmpty, `refused: ${node} holds ${dbsize} keys; restore only into an empty node (nothing was changed)`);
  // The scratch server takes the node's password, so the node's own masterauth (if any) lets it in. It listens
  // where the node can reach it: HANDOVER_SCRATCH_HOST when set, else this worker's address on the route to the
  // node (loopback for a node on this host; the bridge or LAN address for a node on another host).
  const t = redisTarget(c, node, ctx.env);
  const host = ctx.env.HANDOVER_SCRATCH_HOST || (await localAddressToward(t.host));
  const before = parseInfo(await ctx.withRedis(c, node, (cl) => cl.info('replication')));
  const s = await startScratchRedis({ ...from, password: t.password, host });
  let pointed = false;
  let loaded = false;
  try {
    const want = await (async () => {
      const cl = await s.client();
      try {
        return await cl.dbsize();
      } finally {
        cl.disconnect();
      }
    })();
    await ctx.withRedis(c, node, async (cl) => {
      await cl.call('REPLICAOF', s.host, String(s.port));
      pointed = true;
      const t0 = Date.now();
      let connected = false;
      for (;;) {
        const r = parseInfo(await cl.info('replication'));
        if (r.master_sync_in_progress === '1' || r.master_link_status === 'up') connected = true;
        if (r.master_link_status === 'up' && r.master_sync_in_progress === '0' && (await cl.dbsize()) === want) break;
        // A node that cannot open a connection to the scratch server never starts the sync: say so early.
        if (!connected && Date.now() - t0 > SCRATCH_CONNECT_MS)
          throw new HandoverError(ErrorType.PreconditionFailed, `${node} (${t.host}) could not connect to the scratch server at ${s.host}:${s.port} within ${SCRATCH_CONNECT_MS / 1000} s: the node must reach this worker on that address (HANDOVER_SCRATCH_HOST) and any port; its replication was put back as it was, nothing was loaded`);
        if (Date.now() - t0 > 120_000) throw new Error(`${node} did not finish loading from the scratch server ${s.host}:${s.port} within 120 s`);
        await new Promise((res) => setTimeout(res, 50));
      }
      await cl.call('REPLICAOF', 'NO', 'ONE');
      loaded = true;
    });
    return { id: m.id, target: node, keys: want };
  } finally {
    // Not loaded: the node follows what it followed before (or nothing), never a scratch server about to stop.
    if (pointed && !loaded) {
      await ctx
        .withRedis(c, node, (cl) => (before.role === 'slave' && before.master_host ? cl.call('REPLICAOF', before.master_host, before.master_port) : cl.call('REPLICAOF', 'NO', 'ONE')))
        .catch(() => undefined);
    }
    await s.stop();
  }
}

/**
 * A physical backup into a node: the node must be empty, on this host (its datadir reachable) and under a
 * `local` controller (its option file and binary). The chain is prepared beside the datadir (same filesystem:
 * --move-back renames), the node is stopped (SIGTERM to its pid file), its datadir set aside, the prepared one
 * moved in, the node started with `<binary> --defaults-file=<configFile>` and waited for; then the old datadir
 * is removed. Binary logs outside the datadir are not touched.
 */
async function restorePhysicalIntoNode(ctx: BackupContext, c: BackupCluster, chain: Stored[], node: string, storage: BackupStorage, replace = false): Promise<Restored> {
  const m = chain[chain.length - 1].manifest;
  const spec = c.controller;
  if (spec?.type !== 'local')
    throw new HandoverError(ErrorType.PreconditionFailed, `refused: a physical restore into ${node} replaces its datadir, which needs a local controller on the node's host (cluster ${c.name} has ${spec ? `a ${spec.type} controller` : 'none'}); nothing was changed`);
  const { schemas, datadir, pidFile } = await ctx.withMysql(c, node, async (conn) => {
    const [[v]] = (await conn.query('SELECT @@datadir AS d, @@pid_file AS p')) as unknown as [[{ d: string; p: string }]];
    return { schemas: await userSchemas(conn), datadir: path.resolve(v.d), pidFile: v.p };
  });
  if (schemas.length && !replace) throw new HandoverError(ErrorType.TargetNotEmpty, `refused: ${node} already has schemas ${schemas.join(', ')}; restore only into an empty node (nothing was changed)`);
  checkDatadirReachable(node, datadir);
  const configFile = spec.configFile.replaceAll('{node}', node);
  if (!existsSync(configFile)) throw new HandoverError(ErrorType.PreconditionFailed, `refused: the option file ${configFile} of ${node} does not exist (nothing was changed)`);
  const parent = path.dirname(datadir);
  const prepared = path.join(parent, `.handover-restore-${m.id}`);
  const aside = `${datadir}.handover-replaced-${m.id}`;
  rmSync(prepared, { recursive: true, force: true });
  try {
    await preparePhysical({ storage, cluster: c.name, chain: chain.map((x) => x.manifest), datadir: prepared, keys: ctx.keysOf(c), env: ctx.env });
    const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : undefined;
    if (pid && isAlive(pid)) {
      process.kill(pid, 'SIGTERM');
      const until = Date.now() + 120_000;
      while (isAlive(pid)) {
        if (Date.now() > until) throw new Error(`${node} (pid ${pid}) did not shut down within 120 s of SIGTERM`);
        await sleep(50);
      }
    }
    rmSync(aside, { recursive: true, force: true });
    renameSync(datadir, aside);
    mkdirSync(datadir, { mode: 0o750 });
    await moveBack({ prepared, datadir, env: ctx.env });
    const child = spawn(spec.binary, [`--defaults-file=${configFile}`], { detached: true, stdio: 'ignore' });
    child.unref();
    const until = Date.now() + 300_000;
    for (;;) {
      try {
        await ctx.withMysql(c, node, (conn) => conn.query('SELECT 1'));
        break;
      } catch (e) {
        if (Date.now() > until) throw new Error(`${node} did not answer within 300 s of starting on the restored datadir: ${(e as Error).message}`);
        await sleep(200);
      }
    }
    rmSync(aside, { recursive: true, force: true });
  } finally {
    rmSync(prepared, { recursive: true, force: true });
  }
  return { id: m.id, target: node, tables: m.content.mysql?.tables.length };
}

async function restoreMysql(ctx: BackupContext, c: BackupCluster, b: Stored, target: RestoreTarget, storage: BackupStorage): Promise<Restored> {
  const m = b.manifest;
  if (m.method === 'physical') {
    const chain = await ctx.chainOf(c, m.id, storage);
    if (target.kind === 'node') return restorePhysicalIntoNode(ctx, c, chain, target.node, storage, target.replace);
    const s = await startScratchOnPhysical({ storage, cluster: c.name, chain: chain.map((x) => x.manifest), keys: ctx.keysOf(c), env: ctx.env, keep: true });
    return { id: m.id, target: 'scratch', address: `unix:${s.socket}`, socket: s.socket, dir: s.dir, tables: m.content.mysql?.tables.length };
  }
  const from = { storage, cluster: c.name, id: m.id, artifact: m.artifact, keys: ctx.keysOf(c), env: ctx.env };
  if (target.kind === 'scratch') {
    const s = await startScratchMaria(m.id, { keep: true, env: ctx.env });
    await loadDump({ ...from, connArgs: ['--no-defaults', `--socket=${s.socket}`, '--user=root'] });
    return { id: m.id, target: 'scratch', address: `${s.host}:${s.port}`, socket: s.socket, dir: s.dir, tables: m.content.mysql?.tables.length };
  }
  const node = target.node;
  const schemas = await ctx.withMysql(c, node, (conn) => userSchemas(conn));
  if (schemas.length && !target.replace) throw new HandoverError(ErrorType.TargetNotEmpty, `refused: ${node} already has schemas ${schemas.join(', ')}; restore only into an empty node (nothing was changed)`);
  // replace: what the node holds goes first (a retried attempt drops what an interrupted one loaded, and loads again).
  if (schemas.length) await ctx.withMysql(c, node, async (conn) => {
    for (const s of schemas) await conn.query(`DROP DATABASE \`${s.replace(/`/g, '``')}\``);
  });
  const t = mysqlTarget(c, node, ctx.env);
  const opt = optionFile({ user: t.user, password: t.password });
  try {
    await loadDump({ ...from, connArgs: [...opt.args, '-h', t.host, '-P', String(t.port), '--protocol=TCP', ...mysqlClientTlsArgs(t)] });
  } finally {
    opt.cleanup();
  }
  return { id: m.id, target: node, tables: m.content.mysql?.tables.length };
}

async function restoreDolt(ctx: BackupContext, c: BackupCluster, b: Stored, target: RestoreTarget, storage: BackupStorage): Promise<Restored> {
  const m = b.manifest;
  if (target.kind !== 'scratch')
    throw new HandoverError(ErrorType.PreconditionFailed, `refused: restoring a Dolt backup into a cluster node is not built (restore --scratch, then clone or push from it); nothing was changed`);
  const s = await startScratchDolt({ storage, cluster: c.name, id: m.id, artifact: m.artifact, keys: ctx.keysOf(c), env: ctx.env, keep: true });
  return { id: m.id, target: 'scratch', address: `${s.host}:${s.port}`, dir: s.dir, tables: Object.keys(m.content.dolt?.databases ?? {}).length };
}

/**
 * A Redis Cluster backup: into a scratch cluster on this worker (one node per shard, each owning its shard's
 * slots, left running). Into a node it is refused before anything is read or changed: a node of a live cluster
 * serves some slots, and one shard loaded into it would not be a restore of the cluster.
 */
async function restoreRedisClusterBackup(ctx: BackupContext, c: BackupCluster, b: Stored, target: RestoreTarget, storage: BackupStorage): Promise<RestoreBackupResult> {
  const m = b.manifest;
  const shards = m.shards!;
  if (target.kind !== 'scratch')
    throw new HandoverError(
      ErrorType.PreconditionFailed,
      `refused: backup ${m.id} is a Redis Cluster backup of ${shards.length} shards; restoring a shard into a live cluster node (${target.node}) is not supported: use --scratch (a scratch cluster of ${shards.length} nodes on this worker); nothing was changed`,
    );
  const t0 = Date.now();
  const r = await heartbeatWhile(async () => {
    // Every shard's artifact is read once before anything is started: a corrupted shard is never half-restored.
    for (const s of shards) {
      const h = await hashStored(storage.readStream(c.name, m.id, s.artifact.file));
      if (h.sha256 !== s.artifact.sha256) throw new HandoverError(ErrorType.VerificationFailed, `backup ${m.id} shard ${s.slots}: artifact sha256 ${h.sha256} != manifest ${s.artifact.sha256}; not restored`);
    }
    return startScratchRedisCluster({ storage, cluster: c.name, id: m.id, keys: ctx.keysOf(c), engineVersion: m.engineVersion, env: ctx.env, shards });
  }, () => ({ id: m.id }));
  const restoreMs = Date.now() - t0;
  const keys = r.nodes.reduce((a, n) => a + n.keys, 0);
  return {
    id: m.id,
    target: 'scratch',
    address: r.nodes[0].address,
    dir: r.dir,
    passwordFile: r.passwordFile,
    keys,
    scratchCluster: { nodes: r.nodes, fullCoverage: r.fullCoverage },
    restoreMs,
    audit: `restored ${m.id} into a scratch Redis Cluster (not part of ${c.name}) of ${r.nodes.length} nodes: ${r.nodes.map((n) => `${n.address} slots ${n.slots}, ${n.keys} keys`).join('; ')} (dir ${r.dir}) in ${restoreMs} ms`,
  };
}

export async function restoreBackup(ctx: BackupContext, input: RestoreBackupInput): Promise<RestoreBackupResult> {
  const c = ctx.clusterOf(input.cluster);
  const storage = ctx.storageOf(c);
  const b = await ctx.stored(c, input.id, storage);
  if (b.manifest.shards) return restoreRedisClusterBackup(ctx, c, b, input.target, storage);
  const t0 = Date.now();
  const r = await heartbeatWhile(async () => {
      // Every artifact (a physical incremental: its whole chain) is read once before anything is loaded: a
      // corrupted one is never half-restored.
      for (const x of await ctx.chainOf(c, input.id, storage)) {
        const h = await hashStored(storage.readStream(c.name, x.id, x.manifest.artifact.file));
        if (h.sha256 !== x.manifest.artifact.sha256) throw new HandoverError(ErrorType.VerificationFailed, `backup ${x.id}${x.id === input.id ? '' : ` (base of ${input.id})`}: artifact sha256 ${h.sha256} != manifest ${x.manifest.artifact.sha256}; not restored`);
      }
      return c.engine === 'redis' ? restoreRedis(ctx, c, b, input.target, storage) : c.engine === 'dolt' ? restoreDolt(ctx, c, b, input.target, storage) : restoreMysql(ctx, c, b, input.target, storage);
    }, () => ({ id: input.id }));
  const restoreMs = Date.now() - t0;
  return {
    ...r,
    ...(b.manifest.position.gtid !== undefined ? { gtid: b.manifest.position.gtid } : {}),
    restoreMs,
    audit: `restored ${input.id} into ${r.target === 'scratch' ? `a scratch server at ${r.address} (dir ${r.dir})` : r.target}${r.keys !== undefined ? `: ${r.keys} keys` : r.tables !== undefined ? `: ${r.tables} tables` : ''} in ${restoreMs} ms`,
  };
}
