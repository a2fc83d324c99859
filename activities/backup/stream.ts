/** Streaming helpers shared by the backup activities: run a tool, compress, hash while streaming, store. */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import { Duplex } from 'node:stream';
import { createGunzip, createGzip } from 'node:zlib';
import type { BackupCompression, BackupManifest, EncryptionRecord } from '../../core/backup/decide';
import { decryptStream, encryptStream, type KeyRing } from './crypto';
import { tool } from './tools';

/** A compressing (or decompressing) stream: zlib in-process for gzip, the zstd tool as a child for zstd. */
export function codecStream(c: BackupCompression, dir: 'compress' | 'decompress', env: NodeJS.ProcessEnv = process.env): Duplex {
  if (c === 'gzip') return dir === 'compress' ? createGzip({ level: 1 }) : createGunzip();
  const child = spawn(tool('zstd', env), dir === 'compress' ? ['-1', '-T0', '-q', '-c'] : ['-d', '-q', '-c'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const d = Duplex.from({ writable: child.stdin!, readable: child.stdout! });
  child.once('close', (code) => {
    if (code !== 0) d.destroy(new Error(`zstd exited with ${code}: ${err.trim()}`));
  });
  child.once('error', (e) => d.destroy(e));
  return d;
}
import type { BackupStorage } from './storage/common';

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
  /** Sees every raw chunk of the tool's output (mbstream metadata reader). */
  tap?: (chunk: Buffer) => void;
  /** Bytes durable in the store so far (local: written; S3: parts uploaded). */
  onStored?: (storedSoFar: number) => void;
}): Promise<ToolRun> {
  const child = spawn(o.cmd, o.args, { env: o.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => {
    if (stderr.length < 8192) stderr += b.toString();
  });
  const exited = new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
  let rawSize = 0;
  const headParts: Buffer[] = [];
  let headLen = 0;
  const want = o.headBytes ?? 65536;
  // The last chunks, as long as they hold 16 KiB without the oldest (kept by reference: no copy per chunk).
  const tailParts: Buffer[] = [];
  let tailLen = 0;
  const rawTap = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      rawSize += chunk.length;
      if (headLen < want) {
        headParts.push(chunk.subarray(0, want - headLen));
        headLen += Math.min(chunk.length, want - headLen);
      }
      tailParts.push(chunk);
      tailLen += chunk.length;
      while (tailLen - tailParts[0].length >= TAIL_BYTES) tailLen -= tailParts.shift()!.length;
      try {
        o.tap?.(chunk);
        o.onChunk?.(rawSize);
      } catch (e) {
        cb(e as Error);
        return;
      }
      cb(null, chunk);
    },
  });
  const hash = createHash('sha256');
  let size = 0;
  const storedTap = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      size += chunk.length;
      cb(null, chunk);
    },
  });
  // Fail the stored stream when the tool fails, so the temp file is never renamed into place.
  const enc = o.encrypt ? encryptStream(o.encrypt) : undefined;
  const compressed = child.stdout!.pipe(rawTap).pipe(codecStream(o.compression ?? 'gzip', 'compress', o.env));
  const guarded = (enc ? compressed.pipe(enc.stream) : compressed).pipe(storedTap);
  const exitCheck = exited.then((code) => {
    if (code !== 0) guarded.destroy(new Error(`${o.cmd} exited with ${code}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`));
    return code;
  });
  child.stdout!.on('error', (e) => guarded.destroy(e));
  rawTap.on('error', (e) => guarded.destroy(e));
  try {
    await o.storage.putStream(o.cluster, o.id, o.file, guarded as unknown as Readable, { onStored: o.onStored });
  } catch (e) {
    child.kill('SIGKILL');
    await exited.catch(() => undefined);
    throw e;
  }
  const exitStatus = await exitCheck;
  if (exitStatus !== 0) throw new Error(`${o.cmd} exited with ${exitStatus}: ${stderr.trim()}`);
  return { rawSize, size, sha256: hash.digest('hex'), exitStatus, stderr, head: Buffer.concat(headParts), tail: Buffer.concat(tailParts).subarray(-TAIL_BYTES), ...(enc ? { encryption: enc.record } : {}) };
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
