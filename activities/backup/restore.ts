/**
 * Restore a stored backup (its sha256 re-checked first) into a fresh scratch server on this worker, left
 * running, or into an empty node of the cluster, refused before any write when the node holds data.
 *
 *  - Redis into a node: a scratch server on this worker holds the RDB and the node replicates from it once
 *    (REPLICAOF <scratch host> <port>, then REPLICAOF NO ONE): over the network, no file access to the node.
 *    The node must reach the scratch host (HANDOVER_SCRATCH_HOST, default loopback: a node on the worker's host).
 *  - MariaDB into a node: the dump is streamed from the store into the `mariadb` client over TCP.
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
import { startScratchRedis } from './scratch-redis';
import type { BackupStorage } from './storage';
import { hashStored } from './stream';

type Restored = Omit<RestoreBackupResult, 'restoreMs' | 'audit'>;

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
  // The scratch server takes the node's password, so the node's own masterauth (if any) lets it in.
  const password = redisTarget(c, node, ctx.env).password;
  const s = await startScratchRedis({ ...from, password });
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
      const until = Date.now() + 120_000;
      for (;;) {
        const r = parseInfo(await cl.info('replication'));
        if (r.master_link_status === 'up' && r.master_sync_in_progress === '0' && (await cl.dbsize()) === want) break;
        if (Date.now() > until) throw new Error(`${node} did not finish loading from the scratch server ${s.host}:${s.port} within 120 s`);
        await new Promise((res) => setTimeout(res, 50));
      }
      await cl.call('REPLICAOF', 'NO', 'ONE');
    });
    return { id: m.id, target: node, keys: want };
  } finally {
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
async function restorePhysicalIntoNode(ctx: BackupContext, c: BackupCluster, chain: Stored[], node: string, storage: BackupStorage): Promise<Restored> {
  const m = chain[chain.length - 1].manifest;
  const spec = c.controller;
  if (spec?.type !== 'local')
    throw new HandoverError(ErrorType.PreconditionFailed, `refused: a physical restore into ${node} replaces its datadir, which needs a local controller on the node's host (cluster ${c.name} has ${spec ? `a ${spec.type} controller` : 'none'}); nothing was changed`);
  const { schemas, datadir, pidFile } = await ctx.withMysql(c, node, async (conn) => {
    const [[v]] = (await conn.query('SELECT @@datadir AS d, @@pid_file AS p')) as unknown as [[{ d: string; p: string }]];
    return { schemas: await userSchemas(conn), datadir: path.resolve(v.d), pidFile: v.p };
  });
  if (schemas.length) throw new HandoverError(ErrorType.TargetNotEmpty, `refused: ${node} already has schemas ${schemas.join(', ')}; restore only into an empty node (nothing was changed)`);
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
    if (target.kind === 'node') return restorePhysicalIntoNode(ctx, c, chain, target.node, storage);
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
  if (schemas.length) throw new HandoverError(ErrorType.TargetNotEmpty, `refused: ${node} already has schemas ${schemas.join(', ')}; restore only into an empty node (nothing was changed)`);
  const t = mysqlTarget(c, node, ctx.env);
  const opt = optionFile({ user: t.user, password: t.password });
  try {
    await loadDump({ ...from, connArgs: [...opt.args, '-h', t.host, '-P', String(t.port), '--protocol=TCP', ...mysqlClientTlsArgs(t)] });
  } finally {
    opt.cleanup();
  }
  return { id: m.id, target: node, tables: m.content.mysql?.tables.length };
}

export async function restoreBackup(ctx: BackupContext, input: RestoreBackupInput): Promise<RestoreBackupResult> {
  const c = ctx.clusterOf(input.cluster);
  const storage = ctx.storageOf(c);
  const b = await ctx.stored(c, input.id, storage);
  const t0 = Date.now();
  const r = await heartbeatWhile(async () => {
      // Every artifact (a physical incremental: its whole chain) is read once before anything is loaded: a
      // corrupted one is never half-restored.
      for (const x of await ctx.chainOf(c, input.id, storage)) {
        const h = await hashStored(storage.readStream(c.name, x.id, x.manifest.artifact.file));
        if (h.sha256 !== x.manifest.artifact.sha256) throw new HandoverError(ErrorType.VerificationFailed, `backup ${x.id}${x.id === input.id ? '' : ` (base of ${input.id})`}: artifact sha256 ${h.sha256} != manifest ${x.manifest.artifact.sha256}; not restored`);
      }
      return c.engine === 'redis' ? restoreRedis(ctx, c, b, input.target, storage) : restoreMysql(ctx, c, b, input.target, storage);
    }, () => ({ id: input.id }));
  const restoreMs = Date.now() - t0;
  return {
    ...r,
    ...(b.manifest.position.gtid !== undefined ? { gtid: b.manifest.position.gtid } : {}),
    restoreMs,
    audit: `restored ${input.id} into ${r.target === 'scratch' ? `a scratch server at ${r.address} (dir ${r.dir})` : r.target}${r.keys !== undefined ? `: ${r.keys} keys` : r.tables !== undefined ? `: ${r.tables} tables` : ''} in ${restoreMs} ms`,
  };
}
