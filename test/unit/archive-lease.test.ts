/** The binlog archive lease's decisions (core/backup/lease.ts): who may take it, and what the next generation says. */
import { describe, expect, it } from 'vitest';
import { judgeLease, leaseFile, leaseGenerationOf, nextLease, validateLease, type LeaseOwner } from '../../core/backup/lease';

const owner = (name: string, token = `t-${name}`, session = `s-${name}`): LeaseOwner => ({ archiver: name, namespace: 'default', token, session, host: 'h', pid: 1 });
const T0 = Date.parse('2026-12-01T00:00:00Z');

describe('archive lease', () => {
  it('names generations in order and parses them back', () => {
    expect(leaseFile(7)).toBe('lease-00000007.json');
    expect(leaseGenerationOf('lease-00000007.json')).toBe(7);
    expect(leaseGenerationOf('seg-00000007.json')).toBeUndefined();
  });

  it('takes a free, released, expired or own lease; refuses a live one, naming its holder in one line', () => {
    const a = nextLease({ cluster: 'c', owner: owner('arch-a'), ttlMs: 60_000, now: T0 });
    expect(a).toMatchObject({ generation: 1, expiresAt: new Date(T0 + 60_000).toISOString() });
    expect(judgeLease('c', undefined, owner('b'), T0)).toMatchObject({ take: true, why: 'free' });
    const v = judgeLease('c', a, owner('arch-b'), T0 + 2000);
    expect(v.take).toBe(false);
    if (!v.take) {
      expect(v.refusal).toMatch(/^refused: the binlog archive of c is written by another archiver arch-a \(namespace default\) on h:1, renewed 2 s ago, expires in 58 s; /);
      expect(v.refusal).not.toContain('\n');
    }
    expect(judgeLease('c', a, owner('arch-a', 't-arch-a', 'other-session'), T0 + 2000)).toMatchObject({ take: true, why: 'ours' });
    expect(judgeLease('c', a, owner('arch-b'), T0 + 60_000)).toMatchObject({ take: true, why: 'expired', previous: a });
    const released = nextLease({ cluster: 'c', cur: a, owner: owner('arch-a'), ttlMs: 60_000, now: T0 + 5000, release: true });
    expect(released).toMatchObject({ generation: 2, released: true, takenAt: a.takenAt });
    expect(judgeLease('c', released, owner('arch-b'), T0 + 5001)).toMatchObject({ take: true, why: 'released' });
  });

  it('a renewal keeps takenAt; a new holder starts its own; a bad record is named', () => {
    const a = nextLease({ cluster: 'c', owner: owner('a'), ttlMs: 1000, now: T0 });
    const r = nextLease({ cluster: 'c', cur: a, owner: owner('a'), ttlMs: 1000, now: T0 + 300 });
    expect(r).toMatchObject({ generation: 2, takenAt: a.takenAt, renewedAt: new Date(T0 + 300).toISOString() });
    const b = nextLease({ cluster: 'c', cur: r, owner: owner('b'), ttlMs: 1000, now: T0 + 2000 });
    expect(b.takenAt).toBe(new Date(T0 + 2000).toISOString());
    expect(validateLease({ format: 1, generation: 1 })).toBe('no owner');
    expect(validateLease(a)).toEqual(a);
  });
});

describe('segment data file names', () => {
  it('carry the attempt tag and parse back with or without it', async () => {
    const { SEGMENT_DATA, segmentDataSeqOf } = await import('../../activities/backup/archive');
    expect(SEGMENT_DATA(42, 'zstd', '0a1b2c3d')).toBe('seg-00000042.0a1b2c3d.binlog.zst');
    expect(segmentDataSeqOf('seg-00000042.0a1b2c3d.binlog.zst')).toBe(42);
    expect(segmentDataSeqOf(SEGMENT_DATA(7, 'gzip'))).toBe(7);
    expect(segmentDataSeqOf('seg-00000042.json')).toBeUndefined();
    expect(segmentDataSeqOf('seg-00000042.binlog.zst.tmp-0a1b2c3d')).toBeUndefined();
  });
});
