/**
 * Backups in a local directory (or a shared filesystem mounted at the same path on every worker). Every file
 * is written to a temporary name in the same directory, fsynced, then renamed, so a reader sees a whole file
 * or none; a take that dies leaves at most `*.tmp-*` files and no manifest, which list() reports as
 * incomplete and never as good.
 */
import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { checkNames, describeBackup, newestFirst, startedAtFromId, type BackupStorage, type PutOptions, type StoredBackup } from './common';

const READ_CHUNK = 1 << 20;
const SYNC_EVERY = 64 << 20;

export class LocalDirStorage implements BackupStorage {
  constructor(readonly dir: string) {}

  get location(): string {
    return `local:${this.dir}`;
  }

  private backupDir(cluster: string, id: string): string {
    checkNames(cluster, id);
    return path.join(this.dir, cluster, id);
  }

  private filePath(cluster: string, id: string, file: string): string {
    return path.join(this.backupDir(cluster, id), path.basename(file));
  }

  async list(cluster: string): Promise<StoredBackup[]> {
    let ids: string[];
    try {
      ids = (await fs.readdir(path.join(this.dir, cluster), { withFileTypes: true })).filter((d) => d.isDirectory() && startedAtFromId(d.name)).map((d) => d.name);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const out: StoredBackup[] = [];
    for (const id of ids) {
      const b = await this.get(cluster, id);
      if (b) out.push(b);
    }
    return out.sort(newestFirst);
  }

  async get(cluster: string, id: string): Promise<StoredBackup | undefined> {
    const dir = this.backupDir(cluster, id);
    const read = (f: string) => fs.readFile(path.join(dir, f), 'utf8').catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? undefined : Promise.reject(e)));
    const [mText, vText] = await Promise.all([read('manifest.json'), read('verification.json')]);
    const exists = mText !== undefined || !!(await fs.stat(dir).catch(() => undefined));
    return describeBackup(id, mText, vText, exists);
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

  putStream(cluster: string, id: string, file: string, source: Readable, o: PutOptions = {}): Promise<void> {
    let stored = 0;
    // Written-back while it streams (fdatasync every SYNC_EVERY bytes, through a second descriptor, one at a
    // time): the fsync before the rename then waits for the last few MiB, not for the whole artifact.
    let side: fs.FileHandle | undefined;
    let syncedAt = 0;
    let syncing: Promise<void> = Promise.resolve();
    const count = new Transform({
      transform(chunk: Buffer, _e, cb) {
        stored += chunk.length;
        o.onStored?.(stored);
        if (side && stored - syncedAt >= SYNC_EVERY) {
          syncedAt = stored;
          const h = side;
          syncing = syncing.then(() => h.datasync()).catch(() => undefined); // the final fsync reports failures
        }
        cb(null, chunk);
      },
    });
    return this.atomicWrite(cluster, id, file, async (tmp) => {
      const ws = createWriteStream(tmp, { mode: 0o600 });
      let opening: Promise<void> | undefined;
      ws.once('open', () => {
        opening = fs.open(tmp, 'r+').then(
          (h) => {
            side = h;
          },
          () => undefined,
        );
      });
      try {
        await pipeline(source, count, ws);
      } finally {
        await opening;
        await syncing;
        await side?.close();
      }
    });
  }

  putChunks(cluster: string, id: string, file: string, produce: (write: (chunk: Buffer) => Promise<void>) => Promise<void>, o: PutOptions = {}): Promise<void> {
    return this.atomicWrite(cluster, id, file, async (tmp) => {
      const fh = await fs.open(tmp, 'w', 0o600);
      let stored = 0;
      let syncedAt = 0;
      let syncing: Promise<void> = Promise.resolve();
      try {
        await produce(async (chunk) => {
          for (let off = 0; off < chunk.length; ) off += (await fh.write(chunk, off, chunk.length - off)).bytesWritten;
          stored += chunk.length;
          o.onStored?.(stored);
          // Written back while it streams, one fdatasync at a time (as putStream).
          if (stored - syncedAt >= SYNC_EVERY) {
            syncedAt = stored;
            syncing = syncing.then(() => fh.datasync()).catch(() => undefined); // the final fsync reports failures
          }
        });
      } finally {
        await syncing;
        await fh.close();
      }
    });
  }

  putJson(cluster: string, id: string, file: string, value: unknown): Promise<void> {
    return this.atomicWrite(cluster, id, file, (tmp) => fs.writeFile(tmp, JSON.stringify(value, null, 2) + '\n', { mode: 0o600 }));
  }

  async putJsonIfAbsent(cluster: string, id: string, file: string, value: unknown): Promise<boolean> {
    const dir = this.backupDir(cluster, id);
    await fs.mkdir(dir, { recursive: true });
    const final = path.join(dir, path.basename(file));
    const tmp = `${final}.tmp-${randomBytes(4).toString('hex')}`;
    try {
      const fh = await fs.open(tmp, 'wx', 0o600);
      try {
        await fh.writeFile(JSON.stringify(value, null, 2) + '\n');
        await fh.sync();
      } finally {
        await fh.close();
      }
      // link(2) fails with EEXIST when the name exists (like open O_EXCL), and the file appears whole.
      try {
        await fs.link(tmp, final);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
        throw e;
      }
      const d = await fs.open(dir, 'r');
      await d.sync().catch(() => undefined);
      await d.close();
      return true;
    } finally {
      await fs.rm(tmp, { force: true });
    }
  }

  async stat(cluster: string, id: string, file: string): Promise<{ size: number } | undefined> {
    try {
      return { size: (await fs.stat(this.filePath(cluster, id, file))).size };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }

  readStream(cluster: string, id: string, file: string): Readable {
    // 1 MiB reads, not the default 64 KiB: a restore reads artifacts of GBs, and each read is a round trip
    // through libuv's thread pool (a sixteenth of the per-chunk work in this process).
    return createReadStream(this.filePath(cluster, id, file), { highWaterMark: READ_CHUNK });
  }

  async clearPartial(cluster: string, id: string): Promise<number> {
    const dir = this.backupDir(cluster, id);
    const names = await fs.readdir(dir).catch(() => [] as string[]);
    const partial = names.filter((n) => /\.tmp-[0-9a-f]+$/.test(n));
    await Promise.all(partial.map((n) => fs.rm(path.join(dir, n), { force: true })));
    return partial.length;
  }

  async listFiles(cluster: string, id: string): Promise<string[]> {
    const names = await fs.readdir(this.backupDir(cluster, id)).catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? [] : Promise.reject(e)));
    return names.filter((n) => !/\.tmp-[0-9a-f]+$/.test(n)).sort();
  }

  async removeFile(cluster: string, id: string, file: string): Promise<void> {
    await fs.rm(this.filePath(cluster, id, file), { force: true });
  }

  readText(cluster: string, id: string, file: string): Promise<string | undefined> {
    return fs.readFile(this.filePath(cluster, id, file), 'utf8').catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? undefined : Promise.reject(e)));
  }

  async remove(cluster: string, id: string): Promise<void> {
    // The manifest goes first: a removal interrupted half-way leaves an "incomplete" backup, never a "good" one.
    const dir = this.backupDir(cluster, id);
    await fs.rm(path.join(dir, 'verification.json'), { force: true });
    await fs.rm(path.join(dir, 'manifest.json'), { force: true });
    await fs.rm(dir, { recursive: true, force: true });
  }
}
