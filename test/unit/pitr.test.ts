import { describe, expect, it } from 'vitest';
import {
  BINLOG_MAGIC,
  EV,
  TransactionAssembler,
  binlogFile,
  formatGtidPos,
  parseGtid,
  parseGtidPos,
  planPitr,
  posCovers,
  readSegment,
  segmentsToPrune,
  selectReplay,
  splitEvents,
  transactionsBetween,
  type SegmentManifest,
} from '../../core/backup/binlog';

/** A binlog v4 event: 19-byte header, body, and a 4-byte (fake) checksum when `crc`. */
function ev(type: number, ts: number, server: number, body: Buffer, crc = true): Buffer {
  const len = 19 + body.length + (crc ? 4 : 0);
  const h = Buffer.alloc(19);
  h.writeUInt32LE(ts, 0);
  h[4] = type;
  h.writeUInt32LE(server, 5);
  h.writeUInt32LE(len, 9);
  return Buffer.concat([h, body, crc ? Buffer.alloc(4) : Buffer.alloc(0)]);
}
const fde = () => {
  const body = Buffer.alloc(80);
  body[body.length - 1] = 1; // checksum alg CRC32 (the last body byte before the CRC)
  return ev(EV.FORMAT_DESCRIPTION, 1, 1, body);
};
function gtidEv(seq: number, domain: number, server: number, ts: number, standalone = false): Buffer {
  const b = Buffer.alloc(13 + 6);
  b.writeBigUInt64LE(BigInt(seq), 0);
  b.writeUInt32LE(domain, 8);
  b[12] = standalone ? 1 : 0;
  return ev(EV.GTID, ts, server, b);
}
function queryEv(text: string, ts: number, server: number): Buffer {
  const post = Buffer.alloc(13);
  post[8] = 0; // db length
  post.writeUInt16LE(0, 11); // status vars length
  return ev(EV.QUERY, ts, server, Buffer.concat([post, Buffer.from([0]), Buffer.from(text)]));
}
const rows = (ts: number, server: number) => ev(23, ts, server, Buffer.alloc(10));
const xid = (ts: number, server: number) => ev(EV.XID, ts, server, Buffer.alloc(8));
const txn = (seq: number, ts: number, server = 1) => [gtidEv(seq, 0, server, ts), rows(ts, server), xid(ts, server)];

describe('GTID arithmetic', () => {
  it('parses, formats and compares positions', () => {
    expect(parseGtid('0-1-42')).toEqual({ domain: 0, server: 1, seq: 42 });
    expect(() => parseGtid('0-1')).toThrow(/not a GTID/);
    const p = parseGtidPos('1-2-5, 0-1-42');
    expect(formatGtidPos(p)).toBe('0-1-42,1-2-5');
    expect(posCovers(parseGtidPos('0-2-50,1-2-5'), p)).toBe(true);
    expect(posCovers(parseGtidPos('0-2-41,1-2-5'), p)).toBe(false);
    expect(transactionsBetween(parseGtidPos('0-1-40'), parseGtidPos('0-2-45,1-1-2'))).toBe(7);
  });
});

describe('binlog events', () => {
  it('cuts a stream into whole transactions across chunk boundaries; standalone DDL and COMMIT queries end one', () => {
    const stream = Buffer.concat([fde(), ev(EV.GTID_LIST, 1, 1, Buffer.alloc(4)), ...txn(1, 100), gtidEv(2, 0, 1, 101, true), queryEv('CREATE TABLE t (id INT)', 101, 1), gtidEv(3, 0, 1, 102), queryEv('BEGIN', 102, 1), queryEv('INSERT INTO t VALUES (1)', 102, 1), queryEv('COMMIT', 102, 1), ...txn(4, 103)]);
    const a = new TransactionAssembler();
    const got: number[] = [];
    let rest = Buffer.alloc(0);
    for (let off = 0; off < stream.length; off += 7) {
      const r = splitEvents(Buffer.concat([rest, stream.subarray(off, off + 7)]));
      rest = Buffer.from(r.rest);
      got.push(...a.push(r.events).map((t) => t.gtid.seq));
    }
    expect(rest.length).toBe(0);
    expect(got).toEqual([1, 2, 3, 4]);
    expect(a.open).toBe(false);
    expect(a.fde).toBeDefined();
  });
  it('a stored segment reads back with its transactions; one cut inside a transaction is refused', () => {
    const a = new TransactionAssembler();
    const t = a.push(splitEvents(Buffer.concat([fde(), ...txn(7, 200), ...txn(8, 201)])).events);
    const file = binlogFile(a.fde!, t);
    expect(file.subarray(0, 4).equals(BINLOG_MAGIC)).toBe(true);
    expect(readSegment(file).txns.map((x) => x.gtid.seq)).toEqual([7, 8]);
    expect(() => readSegment(file.subarray(0, file.length - xid(0, 1).length))).toThrow(/inside a transaction/);
  });
});

const seg = (seq: number, startAfter: string, endPos: string, first: string, last: string, firstTs: number, lastTs: number): SegmentManifest => ({
  format: 1,
  cluster: 'c',
  seq,
  node: 'n',
  startAfter,
  endPos,
  firstGtid: first,
  lastGtid: last,
  firstTs: new Date(firstTs * 1000).toISOString(),
  lastTs: new Date(lastTs * 1000).toISOString(),
  transactions: parseGtid(last).seq - parseGtid(first).seq + 1,
  artifact: { file: `seg-${seq}`, size: 1, sha256: 'x', compression: 'zstd' },
  rawSize: 1,
  writtenAt: new Date(lastTs * 1000).toISOString(),
});

describe('planPitr', () => {
  const segments = [seg(1, '0-1-10', '0-1-20', '0-1-11', '0-1-20', 1000, 1010), seg(2, '0-1-20', '0-2-30', '0-1-21', '0-2-30', 1011, 1020), seg(3, '0-2-30', '0-2-40', '0-2-31', '0-2-40', 1021, 1030)];
  const backups = [
    { id: 'old', state: 'good', gtid: '0-1-5', startedAt: new Date(990_000).toISOString() }, // before the archive: unusable
    { id: 'b1', state: 'good', gtid: '0-1-12', startedAt: new Date(1002_000).toISOString() },
    { id: 'b2', state: 'good', gtid: '0-2-25', startedAt: new Date(1015_500).toISOString(), method: 'physical' },
    { id: 'bad', state: 'failed', gtid: '0-2-35', startedAt: new Date(1025_000).toISOString() },
  ];
  it('to a GTID: the newest good base at or before it, the segments after the base up to it', () => {
    expect(planPitr({ backups, segments, target: { gtid: '0-2-33' } })).toMatchObject({ base: 'b2', baseGtid: '0-2-25', method: 'physical', segments: [2, 3] });
    expect(planPitr({ backups, segments, target: { gtid: '0-1-15' } })).toMatchObject({ base: 'b1', segments: [1] });
    expect(planPitr({ backups, segments, target: { gtid: '0-1-12' } })).toMatchObject({ base: 'b1', segments: [] });
  });
  it('refuses targets out of range with the bound crossed', () => {
    expect(planPitr({ backups, segments, target: { gtid: '0-2-41' } })).toMatchObject({ kind: 'after-archive-end' });
    expect(planPitr({ backups, segments, target: { gtid: '0-1-11' } })).toMatchObject({ kind: 'before-oldest-base' });
    expect(planPitr({ backups, segments, target: { gtid: 'x' } })).toMatchObject({ kind: 'bad-target' });
    expect(planPitr({ backups, segments: [], target: { gtid: '0-1-11' } })).toMatchObject({ kind: 'no-archive' });
    expect(planPitr({ backups, segments, coveredUntilMs: 1040_000, target: { time: new Date(1041_000).toISOString() } })).toMatchObject({ kind: 'after-archive-end' });
    expect(planPitr({ backups, segments, target: { time: new Date(995_000).toISOString() } })).toMatchObject({ kind: 'before-oldest-base' });
  });
  it('to a time: the newest base started within T\'s second, segments up to the first stamped after T', () => {
    // b2 started at 1015.5 s: usable for T = 1015 s (nothing in it is stamped after 1015).
    expect(planPitr({ backups, segments, coveredUntilMs: 1040_000, target: { time: new Date(1015_000).toISOString() } })).toMatchObject({ base: 'b2', segments: [2], target: { untilSec: 1015 } });
    expect(planPitr({ backups, segments, coveredUntilMs: 1040_000, target: { time: new Date(1005_000).toISOString() } })).toMatchObject({ base: 'b1', segments: [1] });
  });
});

describe('selectReplay', () => {
  const t = (seq: number, ts: number, server = 1) => ({ gtid: { domain: 0, server, seq }, ts });
  const segs = [
    { startAfter: '0-1-10', txns: [t(11, 100), t(12, 100), t(13, 101)] },
    { startAfter: '0-1-13', txns: [t(14, 102), t(15, 103, 2)] },
  ];
  it('replays after the base up to and including the GTID', () => {
    const r = selectReplay(segs, '0-1-11', { gtid: '0-1-14' });
    expect(r.txns.map((x) => x.gtid.seq)).toEqual([12, 13, 14]);
    expect(formatGtidPos(r.endPos)).toBe('0-1-14');
    expect(r.reachedTarget).toBe(true);
  });
  it('to a time: everything stamped at or before it, stopping at the first stamped after', () => {
    expect(selectReplay(segs, '0-1-10', { untilSec: 101, time: '' }).txns.map((x) => x.gtid.seq)).toEqual([11, 12, 13]);
  });
  it('a segment that continues from behind what was archived (failover loss) drops the lost transactions', () => {
    const forked = [{ startAfter: '0-1-10', txns: [t(11, 100), t(12, 100), t(13, 101)] }, { startAfter: '0-1-12', txns: [t(13, 102, 2), t(14, 103, 2)] }];
    const r = selectReplay(forked, '0-1-10', { gtid: '0-2-14' });
    expect(r.txns.map((x) => `${x.gtid.server}-${x.gtid.seq}`)).toEqual(['1-11', '1-12', '2-13', '2-14']);
  });
});

describe('segmentsToPrune', () => {
  const segments = [seg(1, '0-1-10', '0-1-20', '0-1-11', '0-1-20', 1000, 1010), seg(2, '0-1-20', '0-2-30', '0-1-21', '0-2-30', 1011, 1020), seg(3, '0-2-30', '0-2-40', '0-2-31', '0-2-40', 1021, 1030)];
  it('drops the segments wholly at or before the oldest kept base, never the newest', () => {
    expect(segmentsToPrune(segments, '0-2-25')).toEqual([1]);
    expect(segmentsToPrune(segments, '0-2-30')).toEqual([1, 2]);
    expect(segmentsToPrune(segments, '0-2-99')).toEqual([1, 2]);
    expect(segmentsToPrune(segments, '0-1-15')).toEqual([]);
    expect(segmentsToPrune(segments, undefined)).toEqual([]);
  });
});
