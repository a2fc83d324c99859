/**
 * Encryption at rest of backup artifacts: streaming AES-256-GCM in frames (node:crypto), so an artifact is
 * encrypted while it streams into the store and decrypted while it streams out, never buffered whole, and
 * every frame is authenticated before a byte of it is passed on.
 *
 *   header  "HNDENC01" | frameBytes (uint32 BE) | salt (32 bytes) | keyId length (uint8) | keyId
 *   frame   length (uint32 BE; high bit set on the last frame) | ciphertext | GCM tag (16 bytes)
 *
 * The data key is HKDF-SHA256(master key, salt, "handover-backup-v1"): a fresh random salt per artifact, so a
 * (key, nonce) pair never repeats across artifacts; the nonce is the frame's index (96-bit big-endian). Each
 * frame's additional data is the whole header, its index and its last-frame flag: frames cannot be
 * reordered, dropped, moved between artifacts, or cut off at a frame boundary (the stream must end with the
 * frame flagged last, and nothing may follow it).
 *
 * Keys: the inventory's backup.encryption.keys, each an id and a secret reference (env or file) holding 32
 * bytes as 64 hex characters or base64. New artifacts use the last key listed; any listed key decrypts (so a
 * rotation appends a key and keeps the old ones until no stored backup needs them). Only the key id is in the
 * manifest; the key itself is resolved in the activity and never leaves it.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import type { EncryptionRecord } from '../../core/backup/decide';
import { ErrorType, HandoverError } from '../../core/errors';
import { resolveSecret } from '../../inventory/secrets';
import type { ClusterSpec } from '../../inventory/schema';

const MAGIC = Buffer.from('HNDENC01', 'latin1');
const LAST = 0x80000000;
export const DEFAULT_FRAME_BYTES = 1024 * 1024;

export interface KeyRing {
  /** The key new artifacts are encrypted with (undefined: encryption not configured). */
  current?: { id: string; key: Buffer };
  get(id: string): Buffer | undefined;
  ids: string[];
}

export function parseKey(text: string, what: string): Buffer {
  const t = text.trim();
  const key = /^[0-9a-fA-F]{64}$/.test(t) ? Buffer.from(t, 'hex') : Buffer.from(t, 'base64');
  if (key.length !== 32) throw new HandoverError(ErrorType.PreconditionFailed, `${what} is not a 256-bit key (64 hex characters or 32 bytes in base64)`);
  return key;
}

/** The cluster's keys from the inventory, resolved from the worker's environment or files. */
export function keyRing(c: Pick<ClusterSpec, 'name' | 'backup'>, env: NodeJS.ProcessEnv = process.env): KeyRing {
  const spec = c.backup?.encryption;
  const keys = new Map<string, Buffer>();
  for (const k of spec?.keys ?? []) {
    const text = resolveSecret(k.key, `backup encryption key ${k.id} of ${c.name}`, env);
    if (text === undefined) throw new HandoverError(ErrorType.PreconditionFailed, `backup encryption key ${k.id} of ${c.name} is not set`);
    keys.set(k.id, parseKey(text, `backup encryption key ${k.id} of ${c.name}`));
  }
  const ids = [...keys.keys()];
  const last = ids[ids.length - 1];
  return { current: last ? { id: last, key: keys.get(last)! } : undefined, get: (id) => keys.get(id), ids };
}

function header(frameBytes: number, salt: Buffer, keyId: string): Buffer {
  const id = Buffer.from(keyId, 'utf8');
  const h = Buffer.alloc(8 + 4 + 32 + 1 + id.length);
  MAGIC.copy(h, 0);
  h.writeUInt32BE(frameBytes, 8);
  salt.copy(h, 12);
  h[44] = id.length;
  id.copy(h, 45);
  return h;
}

const dataKey = (master: Buffer, salt: Buffer) => Buffer.from(hkdfSync('sha256', master, salt, 'handover-backup-v1', 32));

function nonce(index: number): Buffer {
  const n = Buffer.alloc(12);
  n.writeBigUInt64BE(BigInt(index), 4);
  return n;
}

function aad(head: Buffer, index: number, last: boolean): Buffer {
  const a = Buffer.alloc(head.length + 5);
  head.copy(a, 0);
  a.writeUInt32BE(index, head.length);
  a[head.length + 4] = last ? 1 : 0;
  return a;
}

/** An encrypting stream with key `key.id`; `record` is what the manifest stores. */
export function encryptStream(key: { id: string; key: Buffer }, frameBytes = DEFAULT_FRAME_BYTES): { stream: Transform; record: EncryptionRecord } {
  const salt = randomBytes(32);
  const head = header(frameBytes, salt, key.id);
  const dk = dataKey(key.key, salt);
  let pending: Buffer[] = [];
  let pendingLen = 0;
  let index = 0;
  const frame = (plain: Buffer, last: boolean): Buffer => {
    const c = createCipheriv('aes-256-gcm', dk, nonce(index));
    c.setAAD(aad(head, index, last));
    const body = Buffer.concat([c.update(plain), c.final()]);
    const len = Buffer.alloc(4);
    len.writeUInt32BE((plain.length | (last ? LAST : 0)) >>> 0);
    index++;
    return Buffer.concat([len, body, c.getAuthTag()]);
  };
  let started = false;
  const stream = new Transform({
    transform(chunk: Buffer, _e, cb: TransformCallback) {
      if (!started) {
        started = true;
        this.push(head);
      }
      pending.push(chunk);
      pendingLen += chunk.length;
      if (pendingLen >= frameBytes) {
        let all = Buffer.concat(pending);
        while (all.length >= frameBytes) {
          this.push(frame(all.subarray(0, frameBytes), false));
          all = all.subarray(frameBytes);
        }
        pending = all.length ? [all] : [];
        pendingLen = all.length;
      }
      cb();
    },
    flush(cb: TransformCallback) {
      if (!started) this.push(head);
      this.push(frame(Buffer.concat(pending), true));
      cb();
    },
  });
  return { stream, record: { alg: 'aes-256-gcm-framed', keyId: key.id, frameBytes } };
}

/**
 * A decrypting stream: each frame is authenticated before its plaintext is passed on; a flipped byte, a wrong
 * key, a reordered, missing or truncated frame, or bytes after the last frame fail the stream.
 */
export function decryptStream(keys: KeyRing, expect?: EncryptionRecord): Transform {
  let buf: Buffer = Buffer.alloc(0);
  let head: Buffer | undefined;
  let dk: Buffer | undefined;
  let frameBytes = 0;
  let index = 0;
  let done = false;
  return new Transform({
    transform(chunk: Buffer, _e, cb: TransformCallback) {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      try {
        if (!head) {
          if (buf.length < 45) return cb();
          if (!buf.subarray(0, 8).equals(MAGIC)) throw new Error('not an encrypted artifact (bad header)');
          const idLen = buf[44];
          if (buf.length < 45 + idLen) return cb();
          head = Buffer.from(buf.subarray(0, 45 + idLen));
          frameBytes = head.readUInt32BE(8);
          const keyId = head.subarray(45).toString('utf8');
          if (expect && (expect.keyId !== keyId || expect.frameBytes !== frameBytes)) throw new Error(`artifact header (key ${keyId}, frames ${frameBytes}) differs from the manifest (key ${expect.keyId}, frames ${expect.frameBytes})`);
          const key = keys.get(keyId);
          if (!key) throw new Error(`no key ${keyId} among the worker's backup keys (${keys.ids.join(', ') || 'none configured'})`);
          dk = dataKey(key, head.subarray(12, 44));
          buf = buf.subarray(45 + idLen);
        }
        while (buf.length >= 4) {
          if (done) throw new Error('bytes after the last frame');
          const raw = buf.readUInt32BE(0);
          const last = (raw & LAST) !== 0;
          const len = raw & ~LAST;
          if (len > frameBytes) throw new Error(`frame ${index} longer than the frame size`);
          if (buf.length < 4 + len + 16) break;
          const d = createDecipheriv('aes-256-gcm', dk!, nonce(index));
          d.setAAD(aad(head, index, last));
          d.setAuthTag(buf.subarray(4 + len, 4 + len + 16));
          let plain: Buffer;
          try {
            plain = Buffer.concat([d.update(buf.subarray(4, 4 + len)), d.final()]);
          } catch {
            throw new Error(`frame ${index} fails authentication (corrupted, or another key)`);
          }
          this.push(plain);
          buf = buf.subarray(4 + len + 16);
          index++;
          if (last) done = true;
        }
        cb();
      } catch (e) {
        cb(new Error(`decrypting: ${(e as Error).message}`));
      }
    },
    flush(cb: TransformCallback) {
      if (!head) return cb(new Error('decrypting: the artifact ends before its header'));
      if (!done || buf.length) return cb(new Error(`decrypting: truncated after frame ${index} (no last frame)`));
      cb();
    },
  });
}
