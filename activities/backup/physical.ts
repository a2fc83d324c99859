/**
 * MariaDB physical backups with mariadb-backup (Debian `mariadb-backup`, the tool formerly named mariabackup):
 *
 *  - take:    `mariadb-backup --backup --stream=mbstream` on the database host (it reads the node's datadir,
 *             so the worker runs where the datadir is; it connects over TCP with the automation account from
 *             a private option file), through the compressor (and the encryption) into the store. The stream
 *             is read as it passes (mbstream.ts) for the tool's metadata: the GTID (xtrabackup_binlog_info,
 *             xtrabackup_slave_info) and the LSNs (xtrabackup_checkpoints). An incremental passes its base's
 *             checkpoints as --incremental-basedir.
 *  - prepare: every artifact of the chain (full first) fetched, decompressed, `mbstream -x` into a directory;
 *             `mariadb-backup --prepare` on the full, then `--prepare --incremental-dir` for each incremental.
 *  - start:   a scratch mariadbd on the prepared datadir (socket only, --skip-grant-tables: the source's
 *             accounts are not needed to read it), or the prepared datadir moved into an empty node's datadir
 *             (`mariadb-backup --move-back`) while that node is stopped by its `local` controller.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { BackupManifest } from '../../core/backup/decide';
import { ErrorType, HandoverError } from '../../core/errors';
import type { MysqlTarget } from '../mysql/conn';
import { mysqlClientTlsArgs } from './mysql';
import { mariaNode, socketPathFor, type ScratchMaria } from './scratch-mysql';
import { scratchHost, startOnFreePort } from './scratch';
import type { BackupStorage } from './storage';
import type { KeyRing } from './crypto';
import { ZSTD_DECOMPRESS, openArtifact, openCompressed } from './stream';
import { tool } from './tools';

export const PHYSICAL_ARTIFACT = 'backup.mbstream';

/** The grants mariadb-backup needs (on top of the automation's PROCESS and SLAVE MONITOR). */
export const MARIADB_PHYSICAL_GRANTS = ['RELOAD', 'PROCESS', 'LOCK TABLES', 'BINLOG MONITOR', 'SLAVE MONITOR'];

/** The datadir must be readable here: mariadb-backup copies its files, so it runs on the database host. */
export function checkDatadirReachable(node: string, datadir: string): void {
  try {
    accessSync(datadir, constants.R_OK | constants.X_OK);
    accessSync(path.join(datadir, 'ibdata1'), constants.R_OK);
  } catch (e) {
    throw new HandoverError(
      ErrorType.PreconditionFailed,
      `refused: ${node}'s datadir ${datadir} is not readable by this worker (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); method: physical runs mariadb-backup on the database host — run a worker there (nothing was taken)`,
    );
  }
}

export function physicalTakeArgs(t: MysqlTarget, o: { datadir: string; targetDir: string; replica: boolean; incrementalBasedir?: string }): string[] {
  return [
    '--backup',
    '--stream=mbstream',
    `--target-dir=${o.targetDir}`,
    `--datadir=${o.datadir}`,
    `--host=${t.host}`,
    `--port=${t.port}`,
    '--protocol=TCP',
    ...mysqlClientTlsArgs(t),
    ...(o.replica ? ['--slave-info'] : []),
    '--parallel=2',
    ...(o.incrementalBasedir ? [`--incremental-basedir=${o.incrementalBasedir}`] : []),
  ];
}

/** A directory holding the base's xtrabackup_checkpoints, for --incremental-basedir. Call cleanup() in finally. */
export function incrementalBasedir(base: BackupManifest): { dir: string; cleanup(): void } {
  if (!base.physical) throw new Error(`${base.id} is not a physical backup`);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'handover-incbase-'));
  writeFileSync(path.join(dir, 'xtrabackup_checkpoints'), base.physical.checkpoints);
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

function run(cmd: string, args: string[], o: { env?: NodeJS.ProcessEnv; stdout?: Writable } = {}): { done: Promise<void>; stdin: Writable; kill(): void } {
  // stdout: another child's stdin (the pipe's write end is duplicated into this child), else ignored.
  const child = spawn(cmd, args, { env: o.env ?? process.env, stdio: ['pipe', o.stdout ?? 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => {
    stderr = (stderr + b.toString()).slice(-8192);
  });
  const done = new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => (code === 0 ? resolve() : reject(new Error(`${path.basename(cmd)} ${args[0] ?? ''} exited with ${code ?? signal}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`))));
  });
  return { done, stdin: child.stdin!, kill: () => child.kill('SIGKILL') };
}

/**
 * Fetch one artifact (decrypted, decompressed) into `mbstream -x -C dir`. With zstd the decompressor writes
 * straight into mbstream (its stdout is mbstream's stdin): only the stored bytes pass through this process,
 * not the raw stream, which is twice their size and more.
 */
async function extract(o: { storage: BackupStorage; cluster: string; m: BackupManifest; dir: string; env: NodeJS.ProcessEnv; keys?: KeyRing }): Promise<void> {
  mkdirSync(o.dir, { recursive: true });
  const src = { storage: o.storage, cluster: o.cluster, id: o.m.id, artifact: o.m.artifact, keys: o.keys, env: o.env };
  const x = run(tool('mbstream', o.env), ['-x', '-C', o.dir], { env: o.env });
  const procs = [x];
  try {
    if (o.m.artifact.compression === 'zstd') {
      const z = run(tool('zstd', o.env), ZSTD_DECOMPRESS, { env: o.env, stdout: x.stdin });
      procs.unshift(z);
      x.stdin.destroy(); // zstd holds the write end now: mbstream sees the end of the stream when zstd exits
      await pipeline(openCompressed(src), z.stdin);
    } else await pipeline(openArtifact(src), x.stdin);
    // A tool that fails is reported by its own message (a failed decompressor leaves mbstream an early end).
    for (const p of procs) await p.done;
  } catch (e) {
    const settled = await Promise.race([Promise.allSettled(procs.map((p) => p.done)), new Promise<undefined>((r) => setTimeout(r, 1000, undefined))]);
    for (const p of procs) p.kill();
    await Promise.allSettled(procs.map((p) => p.done));
    const toolErr = settled?.find((r): r is PromiseRejectedResult => r.status === 'rejected')?.reason as Error | undefined;
    const msg = (e as Error).message;
    throw new Error(`extracting ${o.m.id}: ${toolErr && toolErr.message !== msg ? `${msg} (${toolErr.message})` : msg}`);
  }
}

/**
 * The chain (full first) fetched, extracted and prepared into `datadir`, which ends up a datadir a mariadbd
 * starts on. Scratch directories of the incrementals are removed.
 */
export async function preparePhysical(o: { storage: BackupStorage; cluster: string; chain: BackupManifest[]; datadir: string; env: NodeJS.ProcessEnv; keys?: KeyRing; onStep?: (s: string) => void }): Promise<void> {
  const [full, ...incs] = o.chain;
  if (!full?.physical || full.physical.kind !== 'full') throw new Error(`the chain does not start with a full physical backup (${full?.id})`);
  o.onStep?.(`extract ${full.id}`);
  await extract({ storage: o.storage, cluster: o.cluster, m: full, dir: o.datadir, env: o.env, keys: o.keys });
  const mb = tool('mariadb-backup', o.env);
  o.onStep?.(`prepare ${full.id}`);
  await run(mb, ['--prepare', `--target-dir=${o.datadir}`], { env: o.env }).done;
  for (const inc of incs) {
    const dir = `${o.datadir}.inc-${inc.id}`;
    try {
      o.onStep?.(`extract ${inc.id}`);
      await extract({ storage: o.storage, cluster: o.cluster, m: inc, dir, env: o.env, keys: o.keys });
      o.onStep?.(`apply ${inc.id}`);
      await run(mb, ['--prepare', `--target-dir=${o.datadir}`, `--incremental-dir=${dir}`], { env: o.env }).done;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

/** Server options of a scratch server on a prepared datadir: nothing reaches it but its socket. */
const SCRATCH_ON_PREPARED = ['--skip-grant-tables', '--skip-networking', '--skip-slave-start', '--event-scheduler=DISABLED'];

/**
 * A scratch mariadbd on the prepared chain: socket only, without the grant tables (root over the socket
 * needs no password of the source's). `keep`: left in place after stop() (restore --scratch).
 */
export async function startScratchOnPhysical(o: { storage: BackupStorage; cluster: string; chain: BackupManifest[]; env: NodeJS.ProcessEnv; keys?: KeyRing; keep?: boolean; bufferPoolMiB?: number }): Promise<ScratchMaria> {
  const id = o.chain[o.chain.length - 1].id;
  const dir = mkdtempSync(path.join(os.tmpdir(), `handover-restore-${id}-`));
  const sock = socketPathFor(dir);
  const cleanup = () => {
    rmSync(dir, { recursive: true, force: true });
    if (sock.ownDir) rmSync(sock.ownDir, { recursive: true, force: true });
  };
  const host = scratchHost(o.env);
  try {
    await preparePhysical({ ...o, datadir: path.join(dir, 'data') });
    const node = await startOnFreePort(
      async (port) => {
        const n = mariaNode({ id: `scratch-${id}`, port, serverId: 4000 + Math.floor(Math.random() * 1000), dir, host, socket: sock.socket, env: o.env, args: [...SCRATCH_ON_PREPARED, `--innodb-buffer-pool-size=${o.bufferPoolMiB ?? 64}M`] });
        try {
          await n.start();
        } catch (e) {
          await n.stop('SIGKILL').catch(() => undefined);
          throw e;
        }
        return n;
      },
      { host },
    );
    return {
      host,
      port: node.port,
      socket: node.socket,
      dir,
      root: () => node.root(),
      async stop() {
        await node.stop('SIGKILL');
        if (!o.keep) cleanup();
      },
    };
  } catch (e) {
    cleanup();
    throw e;
  }
}

/** `mariadb-backup --move-back` of a prepared datadir into an (empty) datadir. */
export async function moveBack(o: { prepared: string; datadir: string; env: NodeJS.ProcessEnv }): Promise<void> {
  await run(tool('mariadb-backup', o.env), ['--no-defaults', '--move-back', `--target-dir=${o.prepared}`, `--datadir=${o.datadir}`], { env: o.env }).done;
}
