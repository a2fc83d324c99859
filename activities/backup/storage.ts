/**
 * Where backup artifacts live, behind one interface. Now: a local directory. Layout:
 *
 *   <dir>/<cluster>/<backup-id>/<artifact>            e.g. dump.rdb.gz, dump.sql.gz
 *   <dir>/<cluster>/<backup-id>/manifest.json         written last: without it the backup is "incomplete"
 *   <dir>/<cluster>/<backup-id>/verification.json     written by verification: ok -> "good", else "failed"
 *
 * Every file is written to a temporary name in the same directory, fsynced, then renamed, so a reader sees a
 * whole file or none; a take that dies leaves at most `*.tmp-*` files and no manifest, which list() reports as
 * incomplete and never as good.
 */
import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { backupState, type BackupListing, type BackupManifest, type VerificationRecord } from '../../core/backup/decide';
import { parseManifest, parseVerification } from '../../core/backup/manifest';

export interface StoredBackup extends BackupListing {
  manifest?: BackupManifest;
  verification?: VerificationRecord;
  /** Why the manifest did not validate (then the backup is "failed"). */
  problems?: string[];
}

export interface BackupStorage {
  /** Human-readable location, for audit lines (no secrets). */
  readonly location: string;
  list(cluster: string): Promise<StoredBackup[]>;
  get(cluster: string, id: string): Promise<StoredBackup | undefined>;
  /** Write `file` of backup `id` from `source`, atomically (temp, fsync, rename). */
  putStream(cluster: string, id: string, file: string, source: Readable): Promise<void>;
  putJson(cluster: string, id: string, file: string, value: unknown): Promise<void>;
  readStream(cluster: string, id: string, file: string): Readable;
  /** Absolute path of a stored file, when the store is a local directory (verification reads it in place). */
  localPath(cluster: string, id: string, file: string): string;
  /** Remove leftovers of an interrupted write (`*.tmp-*`) in one backup. */
  clearPartial(cluster: string, id: string): Promise<number>;
  remove(cluster: string, id: string): Promise<void>;
}

const ID_RE = /^[a-z0-9][a-z0-9._-]{0,62}-(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})Z$/;

function startedAtFromId(id: string): string | undefined {
  const m = ID_RE.exec(id);
  return m ? `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}.${m[7]}Z` : undefined;
}

export class LocalDirStorage implements BackupStorage {
  constructor(readonly dir: string) {}

  get location(): string {
    return `local:${this.dir}`;
  }

  private backupDir(cluster: string, id: string): string {
    if (!/^[a-z0-9][a-z0-9._-]*$/.test(cluster) || !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(id)) throw new Error(`bad backup path ${cluster}/${id}`);
    return path.join(this.dir, cluster, id);
  }

  localPath(cluster: string, id: string, file: string): string {
    return path.join(this.backupDir(cluster, id), path.basename(file));
  }

  async list(cluster: string): Promise<StoredBackup[]> {
    let ids: string[];
    try {
      ids = (await fs.readdir(path.join(this.dir, cluster), { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const out: StoredBackup[] = [];
    for (const id of ids) {
      const b = await this.get(cluster, id);
      if (b) out.push(b);
    }
    return out.sort((a, b) => b.startedAt.localeCompare(a.startedAt) || b.id.localeCompare(a.id));
  }

  async get(cluster: string, id: string): Promise<StoredBackup | undefined> {
    const dir = this.backupDir(cluster, id);
    const startedFromId = startedAtFromId(id);
    if (!startedFromId) return undefined; // not a backup directory
    const read = (f: string) => fs.readFile(path.join(dir, f), 'utf8').catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? undefined : Promise.reject(e)));
    const [mText, vText] = await Promise.all([read('manifest.json'), read('verification.json')]);
    if (mText === undefined && !(await fs.stat(dir).catch(() => undefined))) return undefined;
    const verification = vText === undefined ? undefined : parseVerification(vText);
    if (mText === undefined) return { id, startedAt: startedFromId, state: 'incomplete', detail: 'no manifest: the take did not finish (or is running)' };
    const parsed = parseManifest(mText);
    if ('problems' in parsed) return { id, startedAt: startedFromId, state: 'failed', problems: parsed.problems, detail: `manifest invalid: ${parsed.problems.join('; ')}` };
    const m = parsed.manifest;
    if (m.id !== id) return { id, startedAt: startedFromId, state: 'failed', detail: `manifest names ${m.id}` };
    const state = backupState({ hasManifest: true, verification });
    return {
      id,
      startedAt: m.startedAt,
      state,
      size: m.artifact.size,
      node: m.node,
      manifest: m,
      verification,
      detail: state === 'failed' ? verification?.failure : state === 'unverified' ? 'not verified yet' : undefined,
    };
  }

  private async atomicWrite(cluster: string, id: string, file: string, write: (tmp: string) => Promise<void>): Promise<void> {
    const dir = this.backupDir(cluster, id);
    await fs.mkdir(dir, { recursive: true });
    const final = path.join(dir, path.basename(file));
    const tmp = `${final}.tmp-${randomBytes(4).toString('hex')}`;
    try {
      await write(tmp);
      const fh = await fs.open(tmp, 'r+');
      await fh.sync();
      await fh.close();
      await fs.rename(tmp, final);
      const d = await fs.open(dir, 'r');
      await d.sync().catch(() => undefined);
      await d.close();
    } catch (e) {
      await fs.rm(tmp, { force: true });
      throw e;
    }
  }

  putStream(cluster: string, id: string, file: string, source: Readable): Promise<void> {
    return this.atomicWrite(cluster, id, file, (tmp) => pipeline(source, createWriteStream(tmp, { mode: 0o600 })));
  }

  putJson(cluster: string, id: string, file: string, value: unknown): Promise<void> {
    return this.atomicWrite(cluster, id, file, (tmp) => fs.writeFile(tmp, JSON.stringify(value, null, 2) + '\n', { mode: 0o600 }));
  }

  readStream(cluster: string, id: string, file: string): Readable {
    return createReadStream(this.localPath(cluster, id, file));
  }

  async clearPartial(cluster: string, id: string): Promise<number> {
    const dir = this.backupDir(cluster, id);
    const names = await fs.readdir(dir).catch(() => [] as string[]);
    const partial = names.filter((n) => /\.tmp-[0-9a-f]+$/.test(n));
    await Promise.all(partial.map((n) => fs.rm(path.join(dir, n), { force: true })));
    return partial.length;
  }

  async remove(cluster: string, id: string): Promise<void> {
    // The manifest goes first: a removal interrupted half-way leaves an "incomplete" backup, never a "good" one.
    const dir = this.backupDir(cluster, id);
    await fs.rm(path.join(dir, 'verification.json'), { force: true });
    await fs.rm(path.join(dir, 'manifest.json'), { force: true });
    await fs.rm(dir, { recursive: true, force: true });
  }
}
