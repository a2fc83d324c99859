import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { decryptStream, encryptStream, keyRing, parseKey, type KeyRing } from '../../activities/backup/crypto';

const ring = (keys: Record<string, Buffer>): KeyRing => ({ current: undefined, get: (id) => keys[id], ids: Object.keys(keys) });

async function collect(chunks: Buffer[], t: NodeJS.ReadWriteStream): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(Readable.from(chunks), t, async function* (src) {
    for await (const c of src) out.push(c as Buffer);
  });
  return Buffer.concat(out);
}

describe('framed AES-256-GCM', () => {
  const k1 = { id: 'k1', key: randomBytes(32) };
  const plain = randomBytes(300_000);
  const pieces = (b: Buffer, n: number) => Array.from({ length: Math.ceil(b.length / n) }, (_, i) => b.subarray(i * n, (i + 1) * n));

  it('round-trips whatever the chunking and frame size; the ciphertext carries no plaintext', async () => {
    for (const frame of [1024, 65536]) {
      const e = encryptStream(k1, frame);
      const enc = await collect(pieces(plain, 7777), e.stream);
      expect(e.record).toEqual({ alg: 'aes-256-gcm-framed', keyId: 'k1', frameBytes: frame });
      expect(enc.includes(plain.subarray(1000, 1032))).toBe(false);
      for (const step of [13, 999, enc.length]) {
        expect((await collect(pieces(enc, step), decryptStream(ring({ k1: k1.key }), e.record))).equals(plain)).toBe(true);
      }
    }
    const empty = encryptStream(k1, 1024);
    expect((await collect([await collect([], empty.stream)], decryptStream(ring({ k1: k1.key })))).length).toBe(0);
  });

  it('a flipped byte, a wrong key, a truncated stream, a dropped or swapped frame, or trailing bytes fail', async () => {
    const e = encryptStream(k1, 1024);
    const enc = await collect([plain.subarray(0, 10_000)], e.stream);
    const dec = (b: Buffer, keys = ring({ k1: k1.key })) => collect([b], decryptStream(keys, e.record));
    const flipped = Buffer.from(enc);
    flipped[5000] ^= 1;
    await expect(dec(flipped)).rejects.toThrow(/fails authentication/);
    await expect(dec(enc, ring({ k1: randomBytes(32) }))).rejects.toThrow(/fails authentication/);
    await expect(dec(enc, ring({ other: k1.key }))).rejects.toThrow(/no key k1/);
    const headLen = 45 + 2;
    const frameLen = 4 + 1024 + 16;
    await expect(dec(enc.subarray(0, headLen + frameLen * 3))).rejects.toThrow(/truncated/);
    const dropped = Buffer.concat([enc.subarray(0, headLen), enc.subarray(headLen + frameLen)]);
    await expect(dec(dropped)).rejects.toThrow(/fails authentication/);
    const swapped = Buffer.concat([enc.subarray(0, headLen), enc.subarray(headLen + frameLen, headLen + 2 * frameLen), enc.subarray(headLen, headLen + frameLen), enc.subarray(headLen + 2 * frameLen)]);
    await expect(dec(swapped)).rejects.toThrow(/fails authentication/);
    await expect(dec(Buffer.concat([enc, Buffer.from('xxxxxx')]))).rejects.toThrow(/after the last frame/);
  });

  it('keys from the inventory: env or file, hex or base64; the last one listed encrypts, every one decrypts; bad keys refused', () => {
    const a = randomBytes(32);
    const b = randomBytes(32);
    const r = keyRing({ name: 'c', backup: { keep: 1, method: 'logical', encryption: { keys: [{ id: 'old', key: { env: 'KA' } }, { id: 'new', key: { env: 'KB' } }] } } }, { KA: a.toString('hex'), KB: b.toString('base64') });
    expect(r.current?.id).toBe('new');
    expect(r.current?.key.equals(b)).toBe(true);
    expect(r.get('old')?.equals(a)).toBe(true);
    expect(keyRing({ name: 'c', backup: undefined }).current).toBeUndefined();
    expect(() => parseKey('abcd', 'k')).toThrow(/256-bit/);
    expect(() => keyRing({ name: 'c', backup: { keep: 1, method: 'logical', encryption: { keys: [{ id: 'x', key: { env: 'NOPE' } }] } } }, {})).toThrow(/not set|NOPE/);
  });
});
