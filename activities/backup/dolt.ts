/**
 * Dolt backups (engine: dolt): what the backup verbs need for Dolt.
 *
 *  - take:    on the source node, for each user database, `CALL dolt_backup('sync-url', 'file://<staging>/<db>')`
 *             (Dolt writes a backup remote, every ref and working set, as a directory of table files) between two
 *             reads of dolt_hashof_db() that must agree (else it syncs again); then the staging directory is
 *             streamed through `tar` and the compressor into the store. The staging directory is written by the
 *             dolt server and read by the worker: HANDOVER_DOLT_STAGING names a directory both see at the same
 *             path (default: the worker's temporary directory, which works when the server runs on the worker's
 *             host). It is removed afterwards.
 *  - verify / restore --scratch: the artifact is unpacked, each database restored with `dolt backup restore
 *             file://… <db>` into a fresh data directory, a scratch `dolt sql-server` started on it, and every
 *             database's dolt_hashof_db() compared with the manifest's.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import mysql from 'mysql2/promise';
import { ErrorType, HandoverError } from '../../core/errors';
import { readDoltHashes } from '../dolt/node';
import { freePort, scratchHost, sleep } from './scratch';
import { openArtifact, type ArtifactSource } from './stream';
import { findDolt } from './tools';

export function doltTool(env: NodeJS.ProcessEnv = process.env): string {
  const p = findDolt(env);
  if (!p) throw new Error('dolt not found: put it on the worker\'s PATH, set HANDOVER_DOLT, or run `npm run bootstrap` (links it into .tools/bin)');
  return p;
}

export const doltStagingRoot = (env: NodeJS.ProcessEnv = process.env) => env.HANDOVER_DOLT_STAGING ?? os.tmpdir();

const ident = (name: string) => `\`${name.replace(/`/g, '``')}\``;

/**
 * Sync every user database of the node behind `conn` into `staging/<db>` with dolt_backup('sync-url'), each
 * between two equal reads of its hash (at most `tries` attempts per database). Returns the hashes.
 */
export async function doltBackupSyncAll(conn: mysql.Connection, staging: string, tries = 10): Promise<Record<string, string>> {
  const dbs = Object.keys(await readDoltHashes(conn));
  if (!dbs.length) throw new HandoverError(ErrorType.PreconditionFailed, 'the node holds no user database: nothing to back up');
  const out: Record<string, string> = {};
  for (const db of dbs) {
    await conn.query(`USE ${ident(db)}`);
    const hash = async () => String(((await conn.query('SELECT dolt_hashof_db() AS h'))[0] as { h: string }[])[0].h);
    for (let i = 1; ; i++) {
      const before = await hash();
      rmSync(path.join(staging, db), { recursive: true, force: true });
      await conn.query({ sql: 'CALL dolt_backup(?, ?)', values: ['sync-url', `file://${path.join(staging, db)}`], timeout: 6 * 3600_000 });
      const after = await hash();
      if (before === after) {
        out[db] = after;
        break;
      }
      if (i >= tries) throw new Error(`database ${db} kept changing during ${tries} dolt_backup syncs (hash ${before} -> ${after})`);
    }
  }
  return out;
}

/** Spawn and wait; rejects with the last lines of stderr on a non-zero exit. */
function run(cmd: string, args: string[], o: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: o.cwd, env: o.env ?? process.env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`${path.basename(cmd)} ${args[0]} exited with ${code}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`))));
  });
}

/** Unpack the stored artifact (tar of one backup directory per database) into `dir`. */
/** The stored tar of a Dolt backup (read, decrypted when encrypted, decompressed) unpacked into `dir`. */
export async function unpackDoltArtifact(o: ArtifactSource & { dir: string }): Promise<string[]> {
  const child = spawn('tar', ['-C', o.dir, '--ignore-zeros', '-xf', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  const exited = new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve(code ?? 1));
  });
  try {
    await pipeline(openArtifact(o), child.stdin!);
  } catch (e) {
    child.kill('SIGKILL');
    await exited.catch(() => undefined);
    throw new Error(`unpacking the backup failed: ${(e as Error).message}${stderr ? `; tar: ${stderr.trim()}` : ''}`);
  }
  const code = await exited;
  if (code !== 0) throw new Error(`tar exited with ${code}: ${stderr.trim()}`);
  return readdirSync(o.dir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort();
}

export interface ScratchDolt {
  host: string;
  port: number;
  dir: string;
  /** Every database's dolt_hashof_db() (as root). */
  hashes(): Promise<Record<string, string>>;
  stop(): Promise<void>;
}

/**
 * Restore the stored backup into a scratch `dolt sql-server` on this worker: unpack, `dolt backup restore` each
 * database into a fresh data directory, start the server on a free port (root without a password, on the
 * scratch host only). With `keep`, the server and its directory stay (restore --scratch).
 */
export async function startScratchDolt(o: ArtifactSource & { keep?: boolean }): Promise<ScratchDolt> {
  const env = o.env ?? process.env;
  const dolt = doltTool(env);
  const dir = mkdtempSync(path.join(os.tmpdir(), `handover-scratch-dolt-${o.id}-`));
  const unpacked = path.join(dir, 'backup');
  const data = path.join(dir, 'data');
  const home = path.join(dir, 'home');
  for (const d of [unpacked, data, path.join(home, '.dolt')]) mkdirSync(d, { recursive: true });
  writeFileSync(path.join(home, '.dolt', 'config_global.json'), JSON.stringify({ 'user.email': 'handover@localhost', 'user.name': 'handover', 'metrics.disabled': 'true' }));
  const denv = { ...env, DOLT_ROOT_PATH: home, HOME: home };
  let child: ReturnType<typeof spawn> | undefined;
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  try {
    const dbs = await unpackDoltArtifact({ ...o, dir: unpacked, env });
    for (const db of dbs) await run(dolt, ['backup', 'restore', `file://${path.join(unpacked, db)}`, db], { cwd: data, env: denv });
    rmSync(unpacked, { recursive: true, force: true });
    const host = scratchHost(env);
    const port = await freePort(host);
    child = spawn(dolt, ['sql-server', '--host', host, '--port', String(port)], { cwd: data, env: denv, stdio: 'ignore', detached: !!o.keep });
    if (o.keep) child.unref();
    writeFileSync(path.join(dir, 'dolt.pid'), String(child.pid));
    const c = child;
    const connect = () => mysql.createConnection({ host, port, user: 'root', connectTimeout: 1000 });
    for (const until = Date.now() + 30_000; ; await sleep(100)) {
      if (c.exitCode !== null) throw new Error(`the scratch dolt sql-server exited with ${c.exitCode}`);
      try {
        const conn = await connect();
        await conn.end();
        break;
      } catch (e) {
        if (Date.now() > until) throw new Error(`the scratch dolt sql-server did not answer on ${host}:${port}: ${(e as Error).message}`);
      }
    }
    return {
      host,
      port,
      dir,
      async hashes() {
        const conn = await connect();
        try {
          return await readDoltHashes(conn);
        } finally {
          conn.destroy();
        }
      },
      async stop() {
        if (c.exitCode === null) {
          const gone = new Promise((r) => c.once('exit', r));
          c.kill('SIGTERM');
          await gone;
        }
        cleanup();
      },
    };
  } catch (e) {
    child?.kill('SIGKILL');
    cleanup();
    throw e;
  }
}
