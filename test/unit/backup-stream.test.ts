/**
 * The take's stream path (activities/backup/stream.ts) with real child processes: a tool's stdout through the
 * compressor into a local store, whole or not at all. zstd into a local store without encryption goes through
 * the chunk path (both stdouts read into reused buffers, LocalDirStorage.putChunks); gzip through putStream.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { execFileSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { LocalDirStorage } from '../../activities/backup/storage';
import { streamToolToStorage } from '../../activities/backup/stream';

const dir = mkdtempSync(path.join(os.tmpdir(), 'handover-stream-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const storage = new LocalDirStorage(dir);
const cluster = 'c1';
// 24 MiB of text (compressible, larger than every buffer on the way), then a line that marks the end.
const SCRIPT = 'i=0; while [ $i -lt 24 ]; do head -c 1048576 /dev/zero | tr "\\0" "x"; i=$((i+1)); done; echo; echo END-OF-OUTPUT';
const expected = Buffer.concat([Buffer.alloc(24 << 20, 'x'), Buffer.from('\nEND-OF-OUTPUT\n')]);
const decompress = (c: 'zstd' | 'gzip', b: Buffer) => (c === 'gzip' ? gunzipSync(b) : execFileSync('zstd', ['-d', '-q', '-c'], { input: b, maxBuffer: 64 << 20 }));

describe.each(['zstd', 'gzip'] as const)('streamToolToStorage with %s into a local store', (compression) => {
  it('stores what the tool printed, with its sha256, size, raw size, head and tail', async () => {
    const id = `${compression}-ok-20261201T000000000Z`;
    let chunks = 0;
    const r = await streamToolToStorage({ cmd: 'sh', args: ['-c', SCRIPT], storage, cluster, id, file: 'out', compression, onChunk: () => chunks++ });
    const stored = readFileSync(path.join(dir, cluster, id, 'out'));
    expect(decompress(compression, stored).equals(expected)).toBe(true);
    expect(r.size).toBe(stored.length);
    expect(r.sha256).toBe(createHash('sha256').update(stored).digest('hex'));
    expect(r.rawSize).toBe(expected.length);
    expect(r.exitStatus).toBe(0);
    expect(r.head.equals(expected.subarray(0, 65536))).toBe(true);
    expect(r.tail.toString().endsWith('END-OF-OUTPUT\n')).toBe(true);
    expect(chunks).toBeGreaterThan(1);
  });

  it('a tool that exits non-zero after printing leaves nothing in the store, and its stderr is in the error', async () => {
    const id = `${compression}-fail-20261201T000000000Z`;
    await expect(streamToolToStorage({ cmd: 'sh', args: ['-c', `${SCRIPT}; echo broken pipe to the server >&2; exit 3`], storage, cluster, id, file: 'out', compression })).rejects.toThrow(/exited with 3: broken pipe to the server/);
    expect(readdirSync(path.join(dir, cluster, id))).toEqual([]);
  });

  it('a failure while streaming (here from onChunk) stops the tool and leaves nothing in the store', async () => {
    const id = `${compression}-abort-20261201T000000000Z`;
    const t0 = Date.now();
    await expect(
      streamToolToStorage({ cmd: 'sh', args: ['-c', `${SCRIPT}; exec sleep 30`], storage, cluster, id, file: 'out', compression, onChunk: (n) => {
        if (n > 4 << 20) throw new Error('worker lost its lease');
      } }),
    ).rejects.toThrow(/worker lost its lease/);
    expect(Date.now() - t0).toBeLessThan(20_000);
    expect(readdirSync(path.join(dir, cluster, id))).toEqual([]);
  });
});
