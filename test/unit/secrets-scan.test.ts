/** The canary scanner of the secret tests (test/secrets.ts) finds a secret in every form it claims to. */
import { describe, expect, it } from 'vitest';
import { canaryForms, decodeAll, findCanaries } from '../secrets';

const secret = 'canary-0123456789abcdef-0123456789abcdef';
const canaries = { pw: secret };
const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');

describe('canary scanner', () => {
  it('finds the secret in clear, JSON-escaped, hex, and in base64 at each of the three alignments and both alphabets', () => {
    expect(findCanaries(`x ${secret} y`, canaries, 'w')).not.toEqual([]);
    expect(findCanaries(Buffer.from(secret).toString('hex'), canaries, 'w')).not.toEqual([]);
    for (const prefix of ['', 'a', 'ab', 'abc', 'password=']) {
      const enc = b64(`${prefix}${secret}\n?>?>`);
      expect(findCanaries(`{"data":"${enc}"}`, canaries, 'w'), prefix).not.toEqual([]);
      expect(findCanaries(enc.replace(/\+/g, '-').replace(/\//g, '_'), canaries, 'w'), prefix).not.toEqual([]);
    }
    expect(findCanaries('canary-0123456789abcdef-0123456789abcdeX and other text', canaries, 'w')).toEqual([]);
    expect(canaryForms(secret).every((f) => f.length >= secret.length)).toBe(true);
  });

  it('decodes payloads, nested payloads and metadata', () => {
    const inner = { metadata: { encoding: b64('json/plain') }, data: b64(JSON.stringify({ password: secret })) };
    const outer = { events: [{ failure: { encodedAttributes: { metadata: { encoding: b64('json/plain') }, data: b64(JSON.stringify({ details: inner })) } } }] };
    const text = decodeAll(JSON.stringify(outer));
    expect(text).toContain(secret);
    expect(text).toContain('json/plain');
  });
});
