/**
 * Point-in-time recovery, the pure parts: GTID arithmetic (MariaDB GTIDs `domain-server-seq`), the binlog
 * event format as far as archiving and replay need it (event boundaries, GTID events, where a transaction
 * ends), the archive's segment manifests, and the decisions: which base and which segments a restore to a
 * GTID or a time needs, and which archived transactions it replays. No I/O: unit-tested without a server.
 *
 * Binlog v4 events (what `mariadb-binlog --raw` writes after the 4-byte magic `\xfebin`):
 *   header  timestamp u32 | type u8 | server_id u32 | event_length u32 | next_pos u32 | flags u16   (19 bytes)
 *   GTID_EVENT (162) body: seq_no u64 | domain_id u32 | flags2 u8 | ...   (flags2 & 1: standalone, no COMMIT follows)
 * A transaction starts at its GTID event and ends at its XID event (16), at a QUERY event (2) whose text is
 * COMMIT or ROLLBACK, or (standalone: DDL) after the one event following the GTID event.
 */

export interface Gtid {
  domain: number;
  server: number;
  seq: number;
}

/** A GTID position: per domain, the last GTID (like @@gtid_binlog_pos). */
export type GtidPos = Record<number, Gtid>;

export class GtidSyntaxError extends Error {}

export function parseGtid(s: string): Gtid {
  const m = /^\s*(\d+)-(\d+)-(\d+)\s*$/.exec(s);
  if (!m) throw new GtidSyntaxError(`not a GTID: "${s}" (want domain-server-seq, e.g. 0-1-42)`);
  return { domain: Number(m[1]), server: Number(m[2]), seq: Number(m[3]) };
}

export const formatGtid = (g: Gtid) => `${g.domain}-${g.server}-${g.seq}`;

export function parseGtidPos(s: string | undefined): GtidPos {
  const out: GtidPos = {};
  for (const part of (s ?? '').split(',').map((x) => x.trim()).filter(Boolean)) {
    const g = parseGtid(part);
    out[g.domain] = g;
  }
  return out;
}

export function formatGtidPos(p: GtidPos): string {
  return Object.values(p)
    .sort((a, b) => a.domain - b.domain)
    .map(formatGtid)
    .join(',');
}

/** Whether position `p` includes transaction `g` (same domain, seq at or past it). */
export const posIncludes = (p: GtidPos, g: Gtid) => (p[g.domain]?.seq ?? 0) >= g.seq;

/** `p` advanced by transaction `g` (a copy). */
export function advance(p: GtidPos, g: Gtid): GtidPos {
  return { ...p, [g.domain]: g };
}

/** Whether `a` is at or past `b` in every domain of `b`. */
export function posCovers(a: GtidPos, b: GtidPos): boolean {
  return Object.values(b).every((g) => posIncludes(a, g));
}

/** Transactions in `ahead` not in `behind`, summed over domains (a lag in transactions). */
export function transactionsBetween(behind: GtidPos, ahead: GtidPos): number {
  let n = 0;
  for (const g of Object.values(ahead)) n += Math.max(0, g.seq - (behind[g.domain]?.seq ?? 0));
  return n;
}

// ---- events ------------------------------------------------------------------------------------------------------

export const BINLOG_MAGIC = Buffer.from([0xfe, 0x62, 0x69, 0x6e]);
export const EV = { QUERY: 2, STOP: 3, ROTATE: 4, XID: 16, FORMAT_DESCRIPTION: 15, HEARTBEAT: 27, BINLOG_CHECKPOINT: 161, GTID: 162, GTID_LIST: 163 } as const;
const HEADER = 19;

export interface BinlogEvent {
  type: number;
  /** Seconds since the epoch (the statement's start on the server that wrote it). */
  ts: number;
  serverId: number;
  bytes: Buffer;
}

/**
 * Whole events from `buf` (no magic); `rest` is the incomplete tail to prepend to the next chunk. A length
 * below the header size means the bytes are not a binlog stream: an error, never a silent skip.
 */
export function splitEvents(buf: Buffer): { events: BinlogEvent[]; rest: Buffer } {
  const events: BinlogEvent[] = [];
  let off = 0;
  while (buf.length - off >= HEADER) {
    const len = buf.readUInt32LE(off + 9);
    if (len < HEADER) throw new Error(`binlog event at byte ${off} has length ${len}: not a binlog stream`);
    if (buf.length - off < len) break;
    events.push({ type: buf[off + 4], ts: buf.readUInt32LE(off), serverId: buf.readUInt32LE(off + 5), bytes: buf.subarray(off, off + len) });
    off += len;
  }
  return { events, rest: buf.subarray(off) };
}

/** A GTID event's GTID and whether it is standalone (no COMMIT/XID follows: DDL). */
export function gtidOfEvent(e: BinlogEvent): { gtid: Gtid; standalone: boolean } {
  const b = e.bytes;
  const seq = Number(b.readBigUInt64LE(HEADER));
  const domain = b.readUInt32LE(HEADER + 8);
  const flags2 = b[HEADER + 12];
  return { gtid: { domain, server: e.serverId, seq }, standalone: (flags2 & 1) !== 0 };
}

/** A QUERY event's statement text (the checksum, when the stream has one, is cut off by the caller's `checksumLen`). */
export function queryText(e: BinlogEvent, checksumLen: number): string {
  const b = e.bytes;
  const dbLen = b[HEADER + 8];
  const statusLen = b.readUInt16LE(HEADER + 11);
  const start = HEADER + 13 + statusLen + dbLen + 1;
  return b.subarray(start, b.length - checksumLen).toString('utf8');
}

/** The checksum length a FORMAT_DESCRIPTION event announces (MariaDB: its last byte before the CRC is the algorithm). */
export function checksumLenOfFde(e: BinlogEvent): number {
  // body: binlog_version u16 | server_version 50 | create_ts u32 | header_len u8 | post-header lengths ... | checksum_alg u8 | crc u32
  const alg = e.bytes[e.bytes.length - 5];
  return alg === 1 ? 4 : 0;
}

export interface ArchivedTransaction {
  gtid: Gtid;
  ts: number;
  /** The transaction's events, verbatim (each with its own checksum). */
  events: Buffer[];
  bytes: number;
}

/**
 * Assembles whole transactions from a stream of events (one server's stream, or one archived segment): keeps
 * the latest FORMAT_DESCRIPTION event (a replayable file starts with it) and drops what is not part of a
 * transaction (rotate, checkpoint, GTID list, heartbeat, stop).
 */
export class TransactionAssembler {
  fde?: Buffer;
  private checksumLen = 4;
  private cur?: { gtid: Gtid; ts: number; standalone: boolean; events: Buffer[]; bytes: number };

  /** Whole transactions completed by these events. */
  push(events: BinlogEvent[]): ArchivedTransaction[] {
    const done: ArchivedTransaction[] = [];
    for (const e of events) {
      if (e.type === EV.FORMAT_DESCRIPTION) {
        this.fde = Buffer.from(e.bytes);
        this.checksumLen = checksumLenOfFde(e);
        continue;
      }
      if (e.type === EV.GTID) {
        // A GTID event while a transaction is open: the open one was cut off (a server's stream restarted); dropped.
        const g = gtidOfEvent(e);
        this.cur = { gtid: g.gtid, ts: e.ts, standalone: g.standalone, events: [Buffer.from(e.bytes)], bytes: e.bytes.length };
        continue;
      }
      if (!this.cur) continue; // outside a transaction: rotate, checkpoint, GTID list, heartbeat, stop
      if (e.type === EV.ROTATE || e.type === EV.HEARTBEAT || e.type === EV.BINLOG_CHECKPOINT || e.type === EV.GTID_LIST || e.type === EV.STOP) continue;
      this.cur.events.push(Buffer.from(e.bytes));
      this.cur.bytes += e.bytes.length;
      const ends =
        this.cur.standalone ||
        e.type === EV.XID ||
        (e.type === EV.QUERY && /^\s*(COMMIT|ROLLBACK)\s*$/i.test(queryText(e, this.checksumLen)));
      if (ends) {
        done.push({ gtid: this.cur.gtid, ts: this.cur.ts, events: this.cur.events, bytes: this.cur.bytes });
        this.cur = undefined;
      }
    }
    return done;
  }

  /** Whether a transaction is open (its end not seen yet). */
  get open(): boolean {
    return this.cur !== undefined;
  }
}

/** A replayable binlog file: the magic, a FORMAT_DESCRIPTION event, then the transactions' events. */
export function binlogFile(fde: Buffer, txns: ArchivedTransaction[]): Buffer {
  return Buffer.concat([BINLOG_MAGIC, fde, ...txns.flatMap((t) => t.events)]);
}

/** Every transaction of a stored segment (a binlogFile), in order, with its FORMAT_DESCRIPTION event. */
export function readSegment(buf: Buffer): { fde?: Buffer; txns: ArchivedTransaction[] } {
  if (!buf.subarray(0, 4).equals(BINLOG_MAGIC)) throw new Error('not a binlog file (bad magic)');
  const { events, rest } = splitEvents(buf.subarray(4));
  if (rest.length) throw new Error(`binlog file ends inside an event (${rest.length} bytes left)`);
  const a = new TransactionAssembler();
  const txns = a.push(events);
  if (a.open) throw new Error('binlog file ends inside a transaction');
  return { fde: a.fde, txns };
}

// ---- the archive -------------------------------------------------------------------------------------------------

/** The archive's pseudo backup ID: its files live under <root>/<cluster>/binlog-archive/. Never listed as a backup. */
export const ARCHIVE_ID = 'binlog-archive';

/** seg-00000042 */
export const segmentName = (seq: number) => `seg-${String(seq).padStart(8, '0')}`;
export function segmentSeqOf(file: string): number | undefined {
  const m = /^seg-(\d{8})\.json$/.exec(file);
  return m ? Number(m[1]) : undefined;
}

/** The manifest of one archived segment (seg-NNNNNNNN.json, written after its data file). */
export interface SegmentManifest {
  format: 1;
  cluster: string;
  seq: number;
  /** The primary it was read from. */
  node: string;
  /** The position the segment continues from: its first transaction is the next one after it. */
  startAfter: string;
  /** The position after its last transaction (what the next segment continues from). */
  endPos: string;
  firstGtid: string;
  lastGtid: string;
  /** Binlog timestamps (seconds, the server's statement start) of the first and last transaction, ISO. */
  firstTs: string;
  lastTs: string;
  transactions: number;
  artifact: { file: string; size: number; sha256: string; compression: 'gzip' | 'zstd'; encryption?: { alg: 'aes-256-gcm-framed'; keyId: string; frameBytes: number } };
  rawSize: number;
  writtenAt: string;
  /** The archive found the new primary behind what it had archived (a failover that lost transactions): from here on it continues from there. */
  forkedAt?: string;
}

/** The archive's progress (state.json, rewritten as it goes): how far it is known complete. */
export interface ArchiveState {
  cluster: string;
  /** The primary being streamed, and its position when last read. */
  primary?: string;
  primaryPos?: string;
  /** The position after the last archived transaction. */
  archivedPos: string;
  /** Every transaction the primary wrote before this time (epoch ms) is archived (the archive was caught up then). */
  coveredUntil?: number;
  lagTransactions?: number;
  updatedAt: number;
  note?: string;
}

export function validateSegment(v: unknown): SegmentManifest | string {
  const m = v as Partial<SegmentManifest>;
  if (!m || m.format !== 1) return 'format is not 1';
  for (const k of ['cluster', 'node', 'startAfter', 'endPos', 'firstGtid', 'lastGtid', 'firstTs', 'lastTs', 'writtenAt'] as const) if (typeof m[k] !== 'string') return `${k} missing`;
  if (typeof m.seq !== 'number' || typeof m.transactions !== 'number' || typeof m.rawSize !== 'number') return 'seq, transactions or rawSize missing';
  if (!m.artifact || typeof m.artifact.file !== 'string' || typeof m.artifact.sha256 !== 'string') return 'artifact missing';
  return m as SegmentManifest;
}

// ---- restore decisions -------------------------------------------------------------------------------------------

export type PitrTarget = { gtid: string } | { time: string };

export interface PitrBaseView {
  id: string;
  state: string;
  gtid?: string;
  startedAt: string;
  method?: string;
}

export interface PitrPlan {
  base: string;
  baseGtid: string;
  method: string;
  /** Segments to read, in order. */
  segments: number[];
  /** The frozen target: a GTID, or a time as epoch seconds (transactions stamped at or before it). */
  target: { gtid: string } | { untilSec: number; time: string };
  reason: string;
}

export interface PitrRefusal {
  refusal: string;
  kind: 'before-oldest-base' | 'after-archive-end' | 'no-archive' | 'bad-target';
}

/**
 * The base and segments for a restore to `target`:
 *  - to a GTID G (domain d): the newest good MariaDB backup whose GTID in d is at or before G and which the
 *    archive continues (its position at or past the archive's first startAfter), then every segment whose
 *    transactions lie after the base and up to G. G must be a base's position or an archived transaction.
 *  - to a time T: the newest good backup started at or before T (its data holds nothing stamped after T),
 *    then the segments up to the first one stamped after T; T must not be after the time the archive is known
 *    complete to (`coveredUntil`), nor before the oldest usable base.
 * Refusals say which bound was crossed, before anything is restored.
 */
export function planPitr(o: { backups: PitrBaseView[]; segments: SegmentManifest[]; coveredUntilMs?: number; target: PitrTarget }): PitrPlan | PitrRefusal {
  const segs = [...o.segments].sort((a, b) => a.seq - b.seq);
  if (!segs.length) return { kind: 'no-archive', refusal: 'no archived binlogs for this cluster (start the archiver: handover backup archive start)' };
  const archiveStart = parseGtidPos(segs[0].startAfter);
  const last = segs[segs.length - 1];
  const archiveEnd = parseGtidPos(last.endPos);
  const good = o.backups.filter((b) => b.state === 'good' && b.gtid !== undefined && posCovers(parseGtidPos(b.gtid), archiveStart));
  const usable = good.sort((a, b) => b.startedAt.localeCompare(a.startedAt) || b.id.localeCompare(a.id));
  const oldest = usable[usable.length - 1];
  if ('gtid' in o.target) {
    let g: Gtid;
    try {
      g = parseGtid(o.target.gtid);
    } catch (e) {
      return { kind: 'bad-target', refusal: (e as Error).message };
    }
    if (!posIncludes(archiveEnd, g)) return { kind: 'after-archive-end', refusal: `GTID ${formatGtid(g)} is after the archive's end (${last.endPos}, segment ${last.seq})` };
    const base = usable.find((b) => (parseGtidPos(b.gtid)[g.domain]?.seq ?? 0) <= g.seq);
    if (!base) return { kind: 'before-oldest-base', refusal: `GTID ${formatGtid(g)} is before the oldest usable base (${oldest ? `${oldest.id} at ${oldest.gtid}` : 'no good backup at or after the archive start ' + segs[0].startAfter})` };
    const bpos = parseGtidPos(base.gtid);
    const need = posIncludes(bpos, g) ? [] : segs.filter((s) => !posCovers(bpos, parseGtidPos(s.endPos)) && !posIncludes(parseGtidPos(s.startAfter), g));
    return { base: base.id, baseGtid: base.gtid!, method: base.method ?? 'logical', segments: need.map((s) => s.seq), target: { gtid: formatGtid(g) }, reason: `newest good base at or before ${formatGtid(g)}: ${base.id} (${base.gtid})` };
  }
  const ms = Date.parse(o.target.time);
  if (Number.isNaN(ms)) return { kind: 'bad-target', refusal: `not a time: "${o.target.time}" (want ISO 8601, e.g. 2026-11-30T19:00:00Z)` };
  const untilSec = Math.floor(ms / 1000);
  const covered = o.coveredUntilMs ?? Date.parse(last.lastTs);
  if (ms > covered) return { kind: 'after-archive-end', refusal: `time ${new Date(ms).toISOString()} is after the archive's end (complete to ${new Date(covered).toISOString()})` };
  // Transactions are stamped in whole seconds: a base started before the end of T's second holds none stamped after T.
  const base = usable.find((b) => Date.parse(b.startedAt) < (untilSec + 1) * 1000);
  if (!base) return { kind: 'before-oldest-base', refusal: `time ${new Date(ms).toISOString()} is before the oldest usable base (${oldest ? `${oldest.id}, started ${oldest.startedAt}` : 'no good backup at or after the archive start'})` };
  const bpos = parseGtidPos(base.gtid);
  const need: number[] = [];
  for (const s of segs) {
    if (posCovers(bpos, parseGtidPos(s.endPos))) continue;
    need.push(s.seq);
    if (Date.parse(s.lastTs) > untilSec * 1000) break; // the first segment with a transaction after T is the last read
  }
  return { base: base.id, baseGtid: base.gtid!, method: base.method ?? 'logical', segments: need, target: { untilSec, time: new Date(ms).toISOString() }, reason: `newest good base started at or before ${new Date(ms).toISOString()}: ${base.id} (${base.gtid})` };
}

/**
 * Which archived transactions a restore replays, in order: segments as read (each with the position it
 * continues from), after the base's position, up to the target. A segment that continues from a position
 * behind what was archived before it (a failover lost transactions the archive had read) drops those
 * transactions first: they are not in the cluster's history. Returns the transactions and the position the
 * replay ends at.
 */
export function selectReplay<T extends { gtid: Gtid; ts: number }>(
  segments: { startAfter: string; txns: T[] }[],
  baseGtid: string,
  target: PitrPlan['target'],
): { txns: T[]; endPos: GtidPos; reachedTarget: boolean } {
  let chosen: T[] = [];
  const base = parseGtidPos(baseGtid);
  let reached = false;
  outer: for (const s of segments) {
    const from = parseGtidPos(s.startAfter);
    chosen = chosen.filter((t) => !(from[t.gtid.domain] && t.gtid.seq > from[t.gtid.domain].seq));
    for (const t of s.txns) {
      if ('untilSec' in target && t.ts > target.untilSec) {
        reached = true;
        break outer;
      }
      if (posIncludes(base, t.gtid)) continue;
      chosen.push(t);
      if ('gtid' in target) {
        const g = parseGtid(target.gtid);
        if (t.gtid.domain === g.domain && t.gtid.seq >= g.seq) {
          if (t.gtid.seq > g.seq || t.gtid.server !== g.server) chosen.pop();
          reached = true;
          break outer;
        }
      }
    }
  }
  if ('gtid' in target && posIncludes(base, parseGtid(target.gtid))) reached = true;
  let endPos = { ...base };
  for (const t of chosen) endPos = advance(endPos, t.gtid);
  return { txns: chosen, endPos, reachedTarget: reached || 'untilSec' in target };
}

/**
 * Archive retention: the segments no restore can need once backups are pruned — every transaction of theirs at
 * or before the oldest kept good base's GTID — except the newest segment, whose end is where the archiver
 * continues from. Nothing when no kept base has a GTID.
 */
export function segmentsToPrune(segments: SegmentManifest[], oldestKeptBaseGtid: string | undefined): number[] {
  if (!oldestKeptBaseGtid || !segments.length) return [];
  const base = parseGtidPos(oldestKeptBaseGtid);
  const last = Math.max(...segments.map((s) => s.seq));
  return segments.filter((s) => s.seq < last && posCovers(base, parseGtidPos(s.endPos))).map((s) => s.seq).sort((a, b) => a - b);
}

/**
 * Where a replay into a node stands, from the node's gtid_binlog_pos: the replay sets the binary log's state to
 * the base position, then each replayed transaction advances it (committed with its data), so a position on
 * that path says exactly which transactions are in. `done`: all are; `resume`: the first `from` are;
 * `fresh`: the position is not on the path (nothing replayed yet, or something else wrote): reset and replay all.
 */
export function replayProgress(nodePos: string, basePos: GtidPos, txns: { gtid: Gtid }[]): { state: 'done' | 'resume' | 'fresh'; from: number } {
  const want = formatGtidPos(parseGtidPos(nodePos));
  let p = basePos;
  if (want && formatGtidPos(p) === want) return txns.length ? { state: 'resume', from: 0 } : { state: 'done', from: 0 };
  for (let i = 0; i < txns.length; i++) {
    p = advance(p, txns[i].gtid);
    if (formatGtidPos(p) === want) return i + 1 === txns.length ? { state: 'done', from: i + 1 } : { state: 'resume', from: i + 1 };
  }
  return { state: 'fresh', from: 0 };
}
