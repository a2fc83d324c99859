/** Streaming helpers shared by the backup activities: run a tool, compress, hash while streaming, store. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { Transform, type Readable, type Writable } from 'node:stream';
import { Duplex } from 'node:stream';
import { createGunzip, createGzip } from 'node:zlib';
import type { BackupCompression, BackupManifest, EncryptionRecord } from '../../core/backup/decide';
import { decryptStream, encryptStream, type KeyRing } from './crypto';
import { tool } from './tools';
import type { BackupStorage } from './storage/common';

/** zstd's fastest level that still entropy-codes literals (--fast=N stores them raw), on every core. */
const ZSTD_COMPRESS = ['-1', '-T0', '-q', '-c'];
export const ZSTD_DECOMPRESS = ['-d', '-q', '-c'];

/** The zstd tool as a child: its two ends, and `failed`, which resolves with the error when it fails or exits non-zero. */
function zstdChild(dir: 'compress' | 'decompress', env: NodeJS.ProcessEnv): { input: Writable; output: Readable; failed: Promise<Error> } {
  const child = spawn(tool('zstd', env), dir === 'compress' ? ZSTD_COMPRESS : ZSTD_DECOMPRESS, { stdio: ['pipe', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const failed = new Promise<Error>((resolve) => {
    child.once('error', resolve);
    child.once('close', (code) => {
      if (code !== 0) resolve(new Error(`zstd exited with ${code}: ${err.trim()}`));
    });
  });
  return { input: child.stdin!, output: child.stdout!, failed };
}

/** A compressing (or decompressing) stream: zlib in-process for gzip, the zstd tool as a child for zstd. */
export function codecStream(c: BackupCompression, dir: 'compress' | 'decompress', env: NodeJS.ProcessEnv = process.env): Duplex {
  if (c === 'gzip') return dir === 'compress' ? createGzip({ level: 1 }) : createGunzip();
  const z = zstdChild(dir, env);
  const d = Duplex.from({ writable: z.input, readable: z.output });
  void z.failed.then((e) => d.destroy(e));
  return d;
}

/**
 * A compressor as its two ends: `input`'s write callback fires only once the chunk is written on (the zstd
 * child's stdin: written into the pipe; zlib: consumed), so the caller may reuse the chunk's memory then.
 * `failed` resolves with the error when the zstd child exits non-zero.
 */
function compressor(c: BackupCompression, env: NodeJS.ProcessEnv = process.env): { input: Writable; output: Readable; failed: Promise<Error> } {
  if (c === 'gzip') {
    const z = createGzip({ level: 1 });
    return { input: z, output: z, failed: new Promise<Error>(() => undefined) };
  }
  return zstdChild('compress', env);
}

const TAIL_BYTES = 16384;

export interface ToolRun {
  rawSize: number;
  size: number;
  sha256: string;
  exitStatus: number;
  stderr: string;
  /** The first bytes of the tool's output (headers carry the position). */
  head: Buffer;
  /** The last 16 KiB of it (mariadb-dump prints the GTID state at the end). */
  tail: Buffer;
  /** How the stored bytes are encrypted (for the manifest), when they are. */
  encryption?: EncryptionRecord;
}

/** How much of a tool's output one read takes (the buffer is reused for every read). */
const READ_BUFFER = 1 << 20;

/**
 * `cmd args` spawned with its stdout on a Unix socket that this process reads into one reused buffer (net's
 * `onread`), instead of a pipe whose every 64 KiB read is a new Buffer: a backup streams GBs through here, and
 * those allocations kept the garbage collector busy (promotions, mark-compacts) in a worker's large heap.
 * `data(chunk)` sees a view valid only during the call; when it returns a promise the next read waits for it.
 */
async function spawnReadingStdout(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  on: { data(chunk: Buffer): Promise<void> | undefined; end(): void; error(e: Error): void },
  stdin: 'ignore' | 'pipe' = 'ignore',
): Promise<{ child: ChildProcess; reader: net.Socket }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'handover-out-'));
  const server = net.createServer();
  try {
    const sockPath = path.join(dir, 's');
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(sockPath, resolve);
    });
    const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
    const buffer = Buffer.allocUnsafe(READ_BUFFER);
    const reader: net.Socket = net.connect({
      path: sockPath,
      onread: {
        buffer,
        callback: (n: number, b: Buffer) => {
          let wait: Promise<void> | undefined;
          try {
            wait = on.data(b.subarray(0, n));
          } catch (e) {
            reader.destroy();
            on.error(e as Error);
            return false;
          }
          if (!wait) return true;
          wait.then(
            () => reader.resume(),
            (e: Error) => {
              reader.destroy();
              on.error(e);
            },
          );
          return false; // paused until the chunk is written on (the buffer is reused)
        },
      },
    });
    reader.on('end', () => on.end());
    reader.on('error', (e) => on.error(e));
    const writer = await accepted;
    // The child gets the socket's other end as its stdout; this process closes its copy, so the reader sees
    // the end of the stream when the child (and anything it left running) closes it.
    const child = spawn(cmd, args, { env, stdio: [stdin, writer, 'pipe'] });
    writer.destroy();
    return { child, reader };
  } finally {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Run `cmd args` and stream its stdout through the compressor into `storage` as `file` (whole or not at all), counting the
 * raw bytes, keeping the first `headBytes`, and computing the sha256 and size of what is stored, all while
 * streaming. `onChunk` runs for every raw chunk (heartbeats, failpoints). A non-zero exit status fails the
 * write, so nothing is renamed into place.
 */
export async function streamToolToStorage(o: {
  cmd: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  storage: BackupStorage;
  cluster: string;
  id: string;
  file: string;
  headBytes?: number;
  compression?: BackupCompression;
  onChunk?: (rawSoFar: number) => void;
  /** Encrypt what is stored with this key (after compression). */
  encrypt?: { id: string; key: Buffer };
  /** Sees every raw chunk of the tool's output (mbstream metadata reader); the chunk is valid only during the call. */
  tap?: (chunk: Buffer) => void;
  /** Bytes durable in the store so far (local: written; S3: parts uploaded). */
  onStored?: (storedSoFar: number) => void;
}): Promise<ToolRun> {
  if (!o.encrypt && o.compression === 'zstd' && o.storage.putChunks) return streamToolThroughZstd(o, o.storage.putChunks.bind(o.storage));
  const raw = rawTap(o);
  const codec = compressor(o.compression ?? 'gzip', o.env);
  const enc = o.encrypt ? encryptStream(o.encrypt) : undefined;
  const hash = createHash('sha256');
  let size = 0;
  const storedTap = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      size += chunk.length;
      cb(null, chunk);
    },
  });
  const guarded = (enc ? codec.output.pipe(enc.stream) : codec.output).pipe(storedTap);
  codec.failed.then((e) => guarded.destroy(e), () => undefined);
  codec.input.on('error', (e) => guarded.destroy(e));
  codec.output.on('error', (e) => guarded.destroy(e));
  const { child, reader } = await spawnReadingStdout(o.cmd, o.args, o.env ?? process.env, {
    data(chunk) {
      raw.see(chunk);
      // The reused buffer is read again only once the compressor has taken this chunk.
      return new Promise<void>((resolve, reject) => codec.input.write(chunk, (e) => (e ? reject(e) : resolve())));
    },
    end: () => codec.input.end(),
    error: (e) => guarded.destroy(e),
  });
  const { exited, stderr: stderrOf, error: exitError } = exitOf(child, o.cmd);
  // Fail the stored stream when the tool fails, so the temp file is never renamed into place.
  const exitCheck = exited.then(
    (code) => {
      if (code !== 0) guarded.destroy(exitError(code));
      return code;
    },
    (e: Error) => {
      guarded.destroy(e);
      throw e;
    },
  );
  exitCheck.catch(() => undefined); // awaited below; when the store fails first, that error is the one thrown
  try {
    await o.storage.putStream(o.cluster, o.id, o.file, guarded as unknown as Readable, { onStored: o.onStored });
  } catch (e) {
    child.kill('SIGKILL');
    reader.destroy();
    await exited.catch(() => undefined);
    throw e;
  }
  const exitStatus = await exitCheck;
  if (exitStatus !== 0) throw new Error(`${o.cmd} exited with ${exitStatus}: ${stderrOf().trim()}`);
  return { ...raw.result(), size, sha256: hash.digest('hex'), exitStatus, stderr: stderrOf(), ...(enc ? { encryption: enc.record } : {}) };
}

type StreamToolOptions = Parameters<typeof streamToolToStorage>[0];

/** The raw side's bookkeeping: size, the first bytes, the last 16 KiB, the tap and onChunk. */
function rawTap(o: Pick<StreamToolOptions, 'headBytes' | 'tap' | 'onChunk'>) {
  let rawSize = 0;
  const want = o.headBytes ?? 65536;
  const head = Buffer.alloc(want);
  let headLen = 0;
  const tail = Buffer.alloc(TAIL_BYTES);
  let tailLen = 0;
  return {
    see(chunk: Buffer) {
      rawSize += chunk.length;
      if (headLen < want) headLen += chunk.copy(head, headLen, 0, Math.min(chunk.length, want - headLen));
      if (chunk.length >= TAIL_BYTES) {
        chunk.copy(tail, 0, chunk.length - TAIL_BYTES);
        tailLen = TAIL_BYTES;
      } else {
        const keep = Math.min(tailLen, TAIL_BYTES - chunk.length);
        tail.copy(tail, 0, tailLen - keep, tailLen);
        chunk.copy(tail, keep);
        tailLen = keep + chunk.length;
      }
      o.tap?.(chunk);
      o.onChunk?.(rawSize);
    },
    result: () => ({ rawSize, head: head.subarray(0, headLen), tail: tail.subarray(0, tailLen) }),
  };
}

/** A child's exit as a promise of its status, with the last of its stderr kept; `error(code)` names it with its last stderr lines. */
function exitOf(child: ChildProcess, name: string): { exited: Promise<number>; stderr(): string; error(code: number): Error } {
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => {
    if (stderr.length < 8192) stderr += b.toString();
  });
  const exited = new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
  exited.catch(() => undefined);
  return { exited, stderr: () => stderr, error: (code) => new Error(`${name} exited with ${code}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`) };
}

/**
 * streamToolToStorage for zstd into a store that takes chunks (local, unencrypted): the tool's stdout and zstd's
 * stdout are both read into a reused buffer, and each compressed chunk is hashed and written before the next
 * read. No Buffer is allocated per chunk, so a GB stream does not drive a long-lived worker's garbage collector
 * (a per-chunk Buffer did: mark-compacts every few hundred ms in a worker with a large heap).
 */
async function streamToolThroughZstd(o: StreamToolOptions, putChunks: NonNullable<BackupStorage['putChunks']>): Promise<ToolRun> {
  const env = o.env ?? process.env;
  const raw = rawTap(o);
  const hash = createHash('sha256');
  let size = 0;
  let src: { child: ChildProcess; reader: net.Socket } | undefined;
  let toolExit: ReturnType<typeof exitOf> | undefined;
  const kill = (z?: { child: ChildProcess; reader: net.Socket }) => {
    for (const p of [src, z]) {
      p?.child.kill('SIGKILL');
      p?.reader.destroy();
    }
  };
  await putChunks(
    o.cluster,
    o.id,
    o.file,
    async (write) => {
      let fail!: (e: Error) => void;
      let ended!: () => void;
      const done = new Promise<void>((resolve, reject) => {
        ended = resolve;
        fail = reject;
      });
      const z = await spawnReadingStdout(
        tool('zstd', env),
        ZSTD_COMPRESS,
        env,
        {
          data(chunk) {
            hash.update(chunk);
            size += chunk.length;
            return write(chunk);
          },
          end: () => ended(),
          error: (e) => fail(e),
        },
        'pipe',
      );
      const zExit = exitOf(z.child, 'zstd');
      const zIn = z.child.stdin!;
      zIn.on('error', (e) => fail(e));
      try {
        src = await spawnReadingStdout(o.cmd, o.args, env, {
          data(chunk) {
            raw.see(chunk);
            // The reused buffer is read again only once zstd has taken this chunk.
            return new Promise<void>((resolve, reject) => zIn.write(chunk, (e) => (e ? reject(e) : resolve())));
          },
          end: () => zIn.end(),
          error: (e) => fail(e),
        });
        toolExit = exitOf(src.child, o.cmd);
        const children = [toolExit, zExit];
        // A tool that fails fails the write (nothing is renamed into place), and so does zstd.
        for (const c of children) void c.exited.then((code) => code !== 0 && fail(c.error(code)), fail);
        await done;
        // Only a whole stream from a tool that succeeded is kept: both exits are awaited before the file is renamed in.
        for (const c of children) {
          const code = await c.exited;
          if (code !== 0) throw c.error(code);
        }
      } catch (e) {
        kill(z);
        throw e;
      }
    },
    { onStored: o.onStored },
  ).catch(async (e: Error) => {
    kill();
    await toolExit?.exited.catch(() => undefined);
    throw e;
  });
  return { ...raw.result(), size, sha256: hash.digest('hex'), exitStatus: 0, stderr: toolExit!.stderr() };
}

/** Where an artifact is and how it was written: what reading it back needs. */
export interface ArtifactSource {
  storage: BackupStorage;
  cluster: string;
  id: string;
  artifact: Pick<BackupManifest['artifact'], 'file' | 'compression' | 'encryption'>;
  /** The worker's keys (needed when the artifact is encrypted). */
  keys?: KeyRing;
  env?: NodeJS.ProcessEnv;
}

/** A stored artifact as the tool wrote it: read from the store, decrypted (frame by frame), decompressed. */
export function openArtifact(o: ArtifactSource): Readable {
  const src = openCompressed(o);
  const dec = codecStream(o.artifact.compression, 'decompress', o.env);
  src.on('error', (e) => dec.destroy(e));
  return src.pipe(dec) as unknown as Readable;
}

/** A stored artifact read from the store and decrypted (frame by frame), still compressed. */
export function openCompressed(o: ArtifactSource): Readable {
  const a = o.artifact;
  const src = o.storage.readStream(o.cluster, o.id, a.file);
  if (!a.encryption) return src;
  if (!o.keys) throw new Error(`backup ${o.id} is encrypted with key ${a.encryption.keyId}: no keys given`);
  const plain = decryptStream(o.keys, a.encryption);
  src.on('error', (e) => plain.destroy(e));
  return src.pipe(plain);
}

/** sha256 and size of a stored file, read back. */
export async function hashStored(source: Readable): Promise<{ sha256: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const chunk of source) {
    h.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { sha256: h.digest('hex'), size };
}
