/**
 * Optional payload encryption (AES-256-GCM) for everything Handover puts in Temporal: workflow inputs and
 * results, activity inputs and results, query results, heartbeat details and — with the failure converter in
 * ./failure-converter.ts — failure messages and stack traces. Client and worker must use the same key.
 *
 * Turned on by HANDOVER_CODEC_KEY (32 bytes, base64) or HANDOVER_CODEC_KEY_FILE (a file holding that text).
 * Key rotation: several keys may be given, separated by commas or newlines, newest first: the first encrypts,
 * every one decrypts (a key map by key id), so runs written under an old key stay readable.
 * An encoded payload is `binary/encrypted`, with the key's id (first 16 hex digits of its SHA-256) in its
 * metadata; its data is iv(12) | ciphertext | tag(16) of the original payload serialized as JSON. Payloads
 * that are not encrypted (runs from before the codec was turned on) decode as they are.
 *
 * A worker publishes the key ids it holds in its identity (`… keys=<encrypting>,<others>` or `keys=none`,
 * codecIdentity), which every client sees in DescribeTaskQueue: the CLI refuses to start a run the worker
 * could not read (client/keys.ts). A payload a worker still cannot decode becomes an "undecodable" marker
 * instead of an error (undecodable: 'marker'), which the workflow interceptor workflows/undecodable.ts turns
 * into a non-retryable failure: the run fails and frees the cluster instead of retrying its first task forever.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { DataConverter, Payload, PayloadCodec } from '@temporalio/common';
import { UNDECODABLE_FIELD } from '../core/errors';

export const ENCODING = 'binary/encrypted';
const te = new TextEncoder();
const td = new TextDecoder();

export class CodecKeyError extends Error {
  override name = 'CodecKeyError';
}

export function keyId(key: Buffer): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 16);
}

/**
 * The keys from the environment, newest (encrypting) first, or undefined when encryption is off; a malformed
 * key is an error, not "off".
 */
export function codecKeysFromEnv(env: NodeJS.ProcessEnv = process.env): Buffer[] | undefined {
  let text = env.HANDOVER_CODEC_KEY;
  const file = env.HANDOVER_CODEC_KEY_FILE;
  if (!text && file) {
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new CodecKeyError(`HANDOVER_CODEC_KEY_FILE ${file}: ${(e as Error).message}`);
    }
  }
  if (!text || !text.trim()) return undefined;
  return text
    .split(/[,\s]+/)
    .filter(Boolean)
    .map((t, i) => {
      const key = Buffer.from(t, 'base64');
      if (key.length !== 32) throw new CodecKeyError(`the codec key${i ? ` #${i + 1}` : ''} must be 32 bytes in base64 (got ${key.length} bytes); make one with: openssl rand -base64 32`);
      return key;
    });
}

/** The encrypting key (the first), or undefined when encryption is off. */
export function codecKeyFromEnv(env: NodeJS.ProcessEnv = process.env): Buffer | undefined {
  return codecKeysFromEnv(env)?.[0];
}

export { UNDECODABLE_FIELD };

function serialize(p: Payload): Buffer {
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(p.metadata ?? {})) metadata[k] = Buffer.from(v).toString('base64');
  return Buffer.from(JSON.stringify({ m: metadata, d: p.data ? Buffer.from(p.data).toString('base64') : undefined }));
}

function deserialize(b: Buffer): Payload {
  const o = JSON.parse(b.toString('utf8')) as { m: Record<string, string>; d?: string };
  const metadata: Record<string, Uint8Array> = {};
  for (const [k, v] of Object.entries(o.m)) metadata[k] = new Uint8Array(Buffer.from(v, 'base64'));
  return { metadata, ...(o.d !== undefined ? { data: new Uint8Array(Buffer.from(o.d, 'base64')) } : {}) };
}

export interface AesGcmCodecOptions {
  /** 'throw' (clients): a payload under a key not held is an error. 'marker' (workers): it decodes to {__handoverUndecodable: why}. */
  undecodable?: 'throw' | 'marker';
}

export class AesGcmCodec implements PayloadCodec {
  /** The encrypting key's id. */
  readonly keyId: string;
  /** Every key id this codec decrypts, the encrypting one first. */
  readonly keyIds: string[];
  private readonly key: Buffer;
  private readonly keys: Map<string, Buffer>;
  constructor(
    keys: Buffer | Buffer[],
    private readonly opts: AesGcmCodecOptions = {},
  ) {
    const list = Array.isArray(keys) ? keys : [keys];
    if (!list.length || list.some((k) => k.length !== 32)) throw new CodecKeyError('AES-256-GCM needs 32-byte keys');
    this.key = list[0];
    this.keys = new Map(list.map((k) => [keyId(k), k]));
    this.keyId = keyId(this.key);
    this.keyIds = [...this.keys.keys()];
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', this.key, iv);
      const body = Buffer.concat([iv, cipher.update(serialize(p)), cipher.final(), cipher.getAuthTag()]);
      return { metadata: { encoding: te.encode(ENCODING), 'encryption-key-id': te.encode(this.keyId) }, data: new Uint8Array(body) };
    });
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => {
      const encoding = p.metadata?.encoding ? td.decode(p.metadata.encoding) : undefined;
      if (encoding !== ENCODING) return p;
      const id = p.metadata?.['encryption-key-id'] ? td.decode(p.metadata['encryption-key-id']) : '?';
      const key = this.keys.get(id);
      if (!key) {
        const why = `payload encrypted with key ${id}, this process has key ${this.keyIds.join(', ')}`;
        if (this.opts.undecodable === 'marker') return { metadata: { encoding: te.encode('json/plain') }, data: te.encode(JSON.stringify({ [UNDECODABLE_FIELD]: why, keyId: id })) };
        throw new CodecKeyError(why);
      }
      const b = Buffer.from(p.data ?? new Uint8Array());
      const decipher = createDecipheriv('aes-256-gcm', key, b.subarray(0, 12));
      decipher.setAuthTag(b.subarray(b.length - 16));
      return deserialize(Buffer.concat([decipher.update(b.subarray(12, b.length - 16)), decipher.final()]));
    });
  }
}

/** The failure converter module, .ts from the sources (tsx, vitest) or .js from the build (dist/). */
export const FAILURE_CONVERTER_PATH = path.join(__dirname, `failure-converter${path.extname(__filename)}`);

/**
 * The data converter for clients and workers: undefined when encryption is off (Temporal's default then). With
 * a key, payloads are encrypted and failure messages and stack traces are moved into an encrypted payload.
 */
export function dataConverterFromEnv(env: NodeJS.ProcessEnv = process.env, opts: AesGcmCodecOptions = {}): DataConverter | undefined {
  const keys = codecKeysFromEnv(env);
  if (!keys) return undefined;
  return { payloadCodecs: [new AesGcmCodec(keys, opts)], failureConverterPath: FAILURE_CONVERTER_PATH };
}

/** The key ids a data converter encrypts (first) and decrypts with; [] when encryption is off. */
export function codecKeyIds(dc: DataConverter | undefined): string[] {
  const c = dc?.payloadCodecs?.find((x): x is AesGcmCodec => x instanceof AesGcmCodec);
  return c ? c.keyIds : [];
}

/** What a worker appends to its identity so clients can see which keys it holds: "keys=a,b" or "keys=none". */
export function codecIdentity(dc: DataConverter | undefined): string {
  const ids = codecKeyIds(dc);
  return `keys=${ids.length ? ids.join(',') : 'none'}`;
}

/** The key ids a worker identity publishes (codecIdentity): [] for "none", undefined when it publishes none. */
export function keyIdsOfIdentity(identity: string): string[] | undefined {
  const m = /(?:^|\s)keys=([\w,]+)/.exec(identity);
  if (!m) return undefined;
  return m[1] === 'none' ? [] : m[1].split(',').filter(Boolean);
}
