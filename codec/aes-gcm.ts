/**
 * Optional payload encryption (AES-256-GCM) for everything Handover puts in Temporal: workflow inputs and
 * results, activity inputs and results, query results, heartbeat details and — with the failure converter in
 * ./failure-converter.ts — failure messages and stack traces. Client and worker must use the same key.
 *
 * Turned on by HANDOVER_CODEC_KEY (32 bytes, base64) or HANDOVER_CODEC_KEY_FILE (a file holding that text).
 * An encoded payload is `binary/encrypted`, with the key's id (first 16 hex digits of its SHA-256) in its
 * metadata; its data is iv(12) | ciphertext | tag(16) of the original payload serialized as JSON. Payloads
 * that are not encrypted (runs from before the codec was turned on) decode as they are.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { DataConverter, Payload, PayloadCodec } from '@temporalio/common';

export const ENCODING = 'binary/encrypted';
const te = new TextEncoder();
const td = new TextDecoder();

export class CodecKeyError extends Error {
  override name = 'CodecKeyError';
}

export function keyId(key: Buffer): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 16);
}

/** The key from the environment, or undefined when encryption is off; a malformed key is an error, not "off". */
export function codecKeyFromEnv(env: NodeJS.ProcessEnv = process.env): Buffer | undefined {
  let text = env.HANDOVER_CODEC_KEY;
  const file = env.HANDOVER_CODEC_KEY_FILE;
  if (!text && file) {
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new CodecKeyError(`HANDOVER_CODEC_KEY_FILE ${file}: ${(e as Error).message}`);
    }
  }
  if (!text) return undefined;
  const key = Buffer.from(text.trim(), 'base64');
  if (key.length !== 32) {
    throw new CodecKeyError(`the codec key must be 32 bytes in base64 (got ${key.length} bytes); make one with: openssl rand -base64 32`);
  }
  return key;
}

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

export class AesGcmCodec implements PayloadCodec {
  readonly keyId: string;
  constructor(private readonly key: Buffer) {
    if (key.length !== 32) throw new CodecKeyError('AES-256-GCM needs a 32-byte key');
    this.keyId = keyId(key);
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
      if (id !== this.keyId) throw new CodecKeyError(`payload encrypted with key ${id}, this process has key ${this.keyId}`);
      const b = Buffer.from(p.data ?? new Uint8Array());
      const decipher = createDecipheriv('aes-256-gcm', this.key, b.subarray(0, 12));
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
export function dataConverterFromEnv(env: NodeJS.ProcessEnv = process.env): DataConverter | undefined {
  const key = codecKeyFromEnv(env);
  if (!key) return undefined;
  return { payloadCodecs: [new AesGcmCodec(key)], failureConverterPath: FAILURE_CONVERTER_PATH };
}
