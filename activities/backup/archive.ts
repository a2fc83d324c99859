/**
 * Continuous binlog archiving (point-in-time recovery): `archiveBinlogs` streams the current primary's binlog
 * into the backup store in segments, for up to `runMs`, then returns (the `binlogArchiver` workflow calls it
 * again, so its history stays bounded).
 *
 *   mariadb-binlog --read-from-remote-server --raw --stop-never --start-position=<GTID position>
 *
 * writes the primary's events into a private temporary directory as they come; they are read back as they
 * grow, cut into whole transactions (core/backup/binlog.ts), and every `segmentMs` (or `segmentBytes`) the
 * transactions read so far are stored as one segment: a replayable binlog file (magic, FORMAT_DESCRIPTION,
 * the transactions' events verbatim) compressed, encrypted when keys are configured, hashed, stored whole or
 * not at all (`seg-NNNNNNNN.binlog.zst`), then its manifest (`seg-NNNNNNNN.json`: first/last GTID and
 * timestamp, the position it continues from and ends at, size, sha256, key id). The manifests in the store are
 * the archive's truth: an attempt starts from the last manifest's end position, so a worker killed
 * mid-segment (data stored, manifest not) redoes that segment from the same position: no gap, no duplicate.
 *
 * The primary is the one reachable node with read_only OFF. Every second the archiver reads every node: when
 * another node is the primary (switchover, failover) it stores what it has read, stops the tool and starts
 * again on the new primary from the GTID position after the last archived transaction. If the new primary is
 * behind that position (a failover that lost transactions the archive had read), it continues from the new
 * primary's position and records `forkedAt`; a restore drops the archived transactions past it (they are not
 * in the cluster's history).
 *
 * One archiver at a time: every call first takes the archive's lease in the store (activities/backup/lease.ts),
 * renews it while it runs and before storing a manifest, and a second archiver (another workflow, namespace or
 * Temporal) is refused with ArchiveLeaseHeld naming the holder; a lease not renewed for its lifetime (the
 * holder died) is taken over.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { Context } from '@temporalio/activity';
import {
  ARCHIVE_ID,
  TransactionAssembler,
  advance,
  binlogFile,
  formatGtid,
  formatGtidPos,
  parseGtidPos,
  posCovers,
  segmentName,
  segmentSeqOf,
  splitEvents,
  transactionsBetween,
  validateSegment,
  type ArchiveState,
  type ArchivedTransaction,
  type GtidPos,
  type SegmentManifest,
} from '../../core/backup/binlog';
import type { BackupCompression } from '../../core/backup/decide';
import { LEASE_TTL_MS, describeHolder, type LeaseOwner } from '../../core/backup/lease';
import { ErrorType, HandoverError } from '../../core/errors';
import { mysqlTarget, replicationAccount } from '../mysql/conn';
import { compressionOf, EXT, type BackupCluster, type BackupContext } from './context';
import { encryptStream } from './crypto';
import { ArchiveLeaseHolder, localOwner } from './lease';
import { mysqlClientTlsArgs, optionFile } from './mysql';
import type { BackupStorage } from './storage';
import { codecStream } from './stream';
import { tool } from './tools';

export interface ArchiveBinlogsInput {
  cluster: string;
  /** How long this call archives before returning (ms; default 5 minutes). */
  runMs?: number;
  /** A segment is stored once its first transaction is this old (ms; default 10 s) ... */
  segmentMs?: number;
  /** ... or it holds this many bytes (default 16 MiB). */
  segmentBytes?: number;
  /** The archiver's lease token (fixed for the archiver's life, carried across continue-as-new) and lifetime (ms; default 60 s). */
  leaseToken?: string;
  leaseTtlMs?: number;
  /** Outside a workflow (tests, tools): who this call is; default a fresh local owner. */
  owner?: LeaseOwner;
}

export interface ArchiveBinlogsResult {
  cluster: string;
  primary?: string;
  archivedPos: string;
  segmentsStored: number;
  transactionsStored: number;
  lagTransactions?: number;
  coveredUntil?: number;
  /** Primary changes followed in this call: "old -> new at <pos>". */
  followed: string[];
  /** The archive's lease: its generation at the end, and how this call took it. */
  lease: { generation: number; took: 'free' | 'released' | 'expired' | 'ours'; from?: string };
  audit: string;
}

/** What the heartbeat carries (the CLI's `archive status` reads it from the pending activity). */
export interface ArchiveHeartbeat extends ArchiveState {
  segmentsStored: number;
  nextSeq: number;
}

/**
 * A segment's data file: `seg-NNNNNNNN.<attempt>.binlog.zst`. The attempt tag (the lease session's first 8 hex
 * digits) keeps an archiver that lost its lease mid-segment from overwriting the data of the segment its
 * successor stored under the same number; the manifest names the file it describes.
 */
export const SEGMENT_DATA = (seq: number, c: BackupCompression, tag?: string) => `${segmentName(seq)}${tag ? `.${tag}` : ''}.binlog${EXT[c]}`;

/** The sequence number of a segment data file (with or without an attempt tag). */
export function segmentDataSeqOf(file: string): number | undefined {
  const m = /^seg-(\d{8})(?:\.[0-9a-f]{8})?\.binlog(?:\.[a-z0-9]+)?$/.exec(file);
  return m ? Number(m[1]) : undefined;
}

/** How many manifests are read at once (an object store answers each GET in a round trip). */
const READ_PARALLEL = 16;

/** The sequence numbers of the segment manifests in the store, ascending (one listing; nothing is read). */
export async function segmentSeqs(storage: BackupStorage, cluster: string): Promise<number[]> {
  const seqs: number[] = [];
  for (const f of await storage.listFiles(cluster, ARCHIVE_ID)) {
    const seq = segmentSeqOf(f);
    if (seq !== undefined) seqs.push(seq);
  }
  return seqs.sort((a, b) => a - b);
}

/** One segment's manifest, validated; undefined when it is not in the store. */
export async function readSegmentManifest(storage: BackupStorage, cluster: string, seq: number): Promise<SegmentManifest | undefined> {
  const f = `${segmentName(seq)}.json`;
  const text = await storage.readText(cluster, ARCHIVE_ID, f);
  if (text === undefined) return undefined;
  const m = validateSegment(JSON.parse(text));
  if (typeof m === 'string') throw new HandoverError(ErrorType.VerificationFailed, `archived segment ${f} of ${cluster} is invalid: ${m}`);
  if (m.seq !== seq) throw new HandoverError(ErrorType.VerificationFailed, `archived segment ${f} of ${cluster} names seq ${m.seq}`);
  return m;
}

/**
 * The last stored segment's manifest (where the archive continues): one listing and one read, whatever the
 * archive's length (in an object store, not a GET per segment).
 */
export async function lastSegment(storage: BackupStorage, cluster: string): Promise<SegmentManifest | undefined> {
  const seqs = await segmentSeqs(storage, cluster);
  for (let i = seqs.length - 1; i >= 0; i--) {
    const m = await readSegmentManifest(storage, cluster, seqs[i]);
    if (m) return m; // removed between the listing and the read (retention): the one before
  }
  return undefined;
}

/** Every valid segment manifest in the store, by sequence number (read READ_PARALLEL at a time). */
export async function listSegments(storage: BackupStorage, cluster: string): Promise<SegmentManifest[]> {
  const seqs = await segmentSeqs(storage, cluster);
  const out: SegmentManifest[] = [];
  for (let i = 0; i < seqs.length; i += READ_PARALLEL) {
    const got = await Promise.all(seqs.slice(i, i + READ_PARALLEL).map((seq) => readSegmentManifest(storage, cluster, seq)));
    for (const m of got) if (m) out.push(m);
  }
  return out;
}

export async function readArchiveState(storage: BackupStorage, cluster: string): Promise<ArchiveState | undefined> {
  const t = await storage.readText(cluster, ARCHIVE_ID, 'state.json');
  return t === undefined ? undefined : (JSON.parse(t) as ArchiveState);
}

interface NodeView {
  node: string;
  readOnly?: boolean;
  pos?: string;
  error?: string;
}

async function viewNodes(ctx: BackupContext, c: BackupCluster): Promise<{ primary?: NodeView; nodes: NodeView[] }> {
  const nodes = await Promise.all(
    c.nodes.map(async (n): Promise<NodeView> => {
      try {
        return await ctx.withMysql(c, n.id, async (conn) => {
          const [[v]] = (await conn.query('SELECT @@read_only AS ro, @@gtid_binlog_pos AS pos')) as unknown as [[{ ro: number; pos: string }]];
          return { node: n.id, readOnly: Number(v.ro) !== 0, pos: v.pos };
        });
      } catch (e) {
        return { node: n.id, error: (e as Error).message };
      }
    }),
  );
  const writable = nodes.filter((n) => n.readOnly === false);
  return { primary: writable.length === 1 ? writable[0] : undefined, nodes };
}

/** A server ID for the archiver's binlog connection, fixed per cluster (a replica's ID must be unique on its primary). */
export function archiverServerId(cluster: string): number {
  const h = createHash('sha256').update(cluster).digest().readUInt32BE(0);
  return 3_000_000_000 + (h % 1_000_000_000);
}

/** Store `data` compressed (and encrypted), hashed, whole or not at all. */
async function storeSegment(o: { storage: BackupStorage; cluster: string; file: string; data: Buffer; compression: BackupCompression; encrypt?: { id: string; key: Buffer }; env: NodeJS.ProcessEnv }) {
  const hash = createHash('sha256');
  let size = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _e, cb) {
      hash.update(chunk);
      size += chunk.length;
      cb(null, chunk);
    },
  });
  const enc = o.encrypt ? encryptStream(o.encrypt) : undefined;
  const compressed = Readable.from([o.data]).pipe(codecStream(o.compression, 'compress', o.env));
  const stored = (enc ? compressed.pipe(enc.stream) : compressed).pipe(tap);
  compressed.on('error', (e) => stored.destroy(e));
  await o.storage.putStream(o.cluster, ARCHIVE_ID, o.file, stored as unknown as Readable);
  return { size, sha256: hash.digest('hex'), ...(enc ? { encryption: enc.record } : {}) };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Reads what `mariadb-binlog --raw` writes into `dir` as it grows, file after file (one per server binlog). */
class RawTail {
  private file?: string;
  private offset = 0;
  private rest: Buffer = Buffer.alloc(0);
  constructor(private readonly dir: string) {}

  /** New whole events since the last call. */
  read(): ReturnType<typeof splitEvents>['events'] {
    const names = readdirSync(this.dir).sort();
    const out: ReturnType<typeof splitEvents>['events'] = [];
    for (;;) {
      if (!this.file) {
        if (!names.length) return out;
        this.file = names[0];
        this.offset = 4; // the magic
        this.rest = Buffer.alloc(0);
      }
      const p = path.join(this.dir, this.file);
      const size = statSync(p).size;
      if (size > this.offset) {
        const buf = Buffer.alloc(size - this.offset);
        const fd = openSync(p, 'r');
        try {
          readSync(fd, buf, 0, buf.length, this.offset);
        } finally {
          closeSync(fd);
        }
        this.offset = size;
        const { events, rest } = splitEvents(this.rest.length ? Buffer.concat([this.rest, buf]) : buf);
        out.push(...events);
        this.rest = Buffer.from(rest);
      }
      const i = names.indexOf(this.file);
      // The tool moved on to the next binlog: this one is complete (read to its end above); remove it.
      if (i >= 0 && i < names.length - 1 && statSync(p).size === this.offset) {
        rmSync(p, { force: true });
        this.file = undefined;
        names.splice(0, i + 1);
        continue;
      }
      return out;
    }
  }
}

export async function archiveBinlogs(ctx: BackupContext, input: ArchiveBinlogsInput): Promise<ArchiveBinlogsResult> {
  const c = ctx.clusterOf(input.cluster);
  if (c.engine !== 'mysql') throw new HandoverError(ErrorType.WrongEngine, `refused: cluster ${c.name} is engine ${c.engine}; binlog archiving is MariaDB only`);
  const storage = ctx.storageOf(c);
  const keys = ctx.keysOf(c);
  const compression = compressionOf(c, ctx.env);
  const runMs = input.runMs ?? 300_000;
  const segmentMs = input.segmentMs ?? 10_000;
  const segmentBytes = input.segmentBytes ?? 16 * 1024 * 1024;
  const deadline = Date.now() + runMs;
  let actx: Context | undefined;
  try {
    actx = Context.current();
  } catch {
    actx = undefined;
  }
  const cancelled = () => actx?.cancellationSignal.aborted ?? false;

  // One archiver per archive: the lease first (before clearPartial, which would abort another archiver's uploads).
  const wf = actx?.info.workflowExecution;
  const owner: LeaseOwner =
    input.owner ??
    (wf
      ? { archiver: wf.workflowId, namespace: actx!.info.workflowNamespace ?? 'default', token: input.leaseToken ?? `${actx!.info.workflowNamespace ?? 'default'}/${wf.workflowId}`, session: randomUUID(), host: os.hostname(), pid: process.pid }
      : localOwner());
  const lease = await ArchiveLeaseHolder.acquire({ storage, cluster: c.name, owner, ttlMs: input.leaseTtlMs ?? LEASE_TTL_MS });
  const tookFrom = lease.took.why === 'expired' && lease.took.previous ? describeHolder(lease.took.previous, Date.now()) : undefined;

  await storage.clearPartial(c.name, ARCHIVE_ID);
  // Where the archive continues: the last stored manifest (any attempt, any worker, either store).
  const lastSeg = await lastSegment(storage, c.name);
  let nextSeq = lastSeg ? lastSeg.seq + 1 : 1;
  // Data files past the last manifest: left by an attempt that died (or lost its lease) between data and manifest.
  // Nothing describes them and this archiver holds the lease: removed (they are written again, under this attempt's tag).
  const firstOrphan = nextSeq;
  for (const f of await storage.listFiles(c.name, ARCHIVE_ID)) {
    const seq = segmentDataSeqOf(f);
    if (seq !== undefined && seq >= firstOrphan) await storage.removeFile(c.name, ARCHIVE_ID, f);
  }
  const tag = owner.session.replace(/-/g, '').slice(0, 8).toLowerCase();
  let archived: GtidPos | undefined = lastSeg ? parseGtidPos(lastSeg.endPos) : undefined;
  const prev = await readArchiveState(storage, c.name).catch(() => undefined);
  const state: ArchiveHeartbeat = { cluster: c.name, archivedPos: lastSeg?.endPos ?? '', coveredUntil: prev?.coveredUntil, updatedAt: Date.now(), segmentsStored: 0, nextSeq };
  let transactionsStored = 0;
  const followed: string[] = [];
  const beat = () => actx?.heartbeat({ ...state, nextSeq });
  const saveState = () => storage.putJson(c.name, ARCHIVE_ID, 'state.json', { cluster: state.cluster, primary: state.primary, primaryPos: state.primaryPos, archivedPos: state.archivedPos, coveredUntil: state.coveredUntil, lagTransactions: state.lagTransactions, updatedAt: Date.now(), note: state.note } satisfies ArchiveState);
  beat();
  let lastPrimary = prev?.primary;

  while (Date.now() < deadline && !cancelled()) {
    const view = await viewNodes(ctx, c);
    if (!view.primary) {
      state.note = `no single writable node (${view.nodes.map((n) => `${n.node}=${n.error ? 'down' : n.readOnly ? 'read-only' : 'writable'}`).join(' ')}); waiting`;
      beat();
      await lease.ensure();
      await sleep(500);
      continue;
    }
    const primary = view.primary.node;
    const ppos = parseGtidPos(view.primary.pos);
    let forkedAt: string | undefined;
    if (!archived) archived = ppos; // the archive begins where the primary is now
    // A new primary behind what was archived: a failover lost transactions the archive had read.
    const from: GtidPos = { ...archived };
    for (const g of Object.values(archived)) {
      const p = ppos[g.domain];
      if (!p || p.seq < g.seq) {
        if (p) from[g.domain] = p;
        else delete from[g.domain];
        forkedAt = formatGtidPos(from);
      }
    }
    if (lastPrimary && lastPrimary !== primary) followed.push(`${lastPrimary} -> ${primary} at ${formatGtidPos(from)}${forkedAt ? ` (behind the archive: continues from the new primary)` : ''}`);
    lastPrimary = primary;
    state.primary = primary;
    state.primaryPos = view.primary.pos;
    state.note = undefined;

    // ---- one session on this primary --------------------------------------------------------------------------
    const t = mysqlTarget(c, primary, ctx.env);
    const acct = replicationAccount(c, ctx.env);
    const opt = optionFile(acct);
    const dir = mkdtempSync(path.join(os.tmpdir(), `handover-binlog-${c.name}-`));
    const args = [
      ...opt.args,
      '--read-from-remote-server',
      '--raw',
      '--stop-never',
      `--stop-never-slave-server-id=${archiverServerId(c.name)}`,
      `--start-position=${formatGtidPos(from)}`,
      `--result-file=${dir}/`,
      '-h',
      t.host,
      '-P',
      String(t.port),
      '--protocol=TCP',
      ...mysqlClientTlsArgs(t),
      // A file name is required; with a GTID start position the server starts from the GTID, whatever its files are called.
      'binlog.000001',
    ];
    let child: ChildProcess | undefined;
    let exited: { code: number | null; stderr: string } | undefined;
    let stderr = '';
    const tail = new RawTail(dir);
    const asm = new TransactionAssembler();
    let pending: ArchivedTransaction[] = [];
    let pendingBytes = 0;
    let pendingSince = 0;
    let startAfter: GtidPos = from;
    let pendingForkedAt = forkedAt;
    const flush = async () => {
      if (!pending.length) return;
      if (!asm.fde) throw new Error('no FORMAT_DESCRIPTION event read from the primary before its transactions');
      await lease.ensure({ verify: true });
      const seq = nextSeq;
      const data = binlogFile(asm.fde, pending);
      const file = SEGMENT_DATA(seq, compression, /^[0-9a-f]{8}$/.test(tag) ? tag : undefined);
      const stored = await storeSegment({ storage, cluster: c.name, file, data, compression, encrypt: keys.current, env: ctx.env });
      let endPos = startAfter;
      for (const x of pending) endPos = advance(endPos, x.gtid);
      const first = pending[0];
      const last = pending[pending.length - 1];
      const m: SegmentManifest = {
        format: 1,
        cluster: c.name,
        seq,
        node: primary,
        startAfter: formatGtidPos(startAfter),
        endPos: formatGtidPos(endPos),
        firstGtid: formatGtid(first.gtid),
        lastGtid: formatGtid(last.gtid),
        firstTs: new Date(first.ts * 1000).toISOString(),
        lastTs: new Date(last.ts * 1000).toISOString(),
        transactions: pending.length,
        artifact: { file, size: stored.size, sha256: stored.sha256, compression, ...(stored.encryption ? { encryption: stored.encryption } : {}) },
        rawSize: data.length,
        writtenAt: new Date().toISOString(),
        ...(pendingForkedAt ? { forkedAt: pendingForkedAt } : {}),
      };
      await ctx.failpoint('archiveBinlogs.segment');
      // Still this archiver's (a lease released by `archive stop`, or taken over after a pause, is seen here, before the manifest).
      await lease.ensure({ verify: true });
      await storage.putJson(c.name, ARCHIVE_ID, `${segmentName(seq)}.json`, m);
      transactionsStored += pending.length;
      state.segmentsStored++;
      nextSeq = seq + 1;
      archived = endPos;
      startAfter = endPos;
      pendingForkedAt = undefined;
      state.archivedPos = m.endPos;
      pending = [];
      pendingBytes = 0;
    };
    try {
      child = spawn(tool('mariadb-binlog', ctx.env), args, { stdio: ['ignore', 'ignore', 'pipe'] });
      child.stderr!.on('data', (b: Buffer) => {
        if (stderr.length < 4096) stderr += b.toString();
      });
      child.once('error', (e) => (exited = { code: -1, stderr: e.message }));
      child.once('close', (code) => (exited = { code, stderr }));
      let lastCheck = Date.now();
      for (;;) {
        const done = asm.push(tail.read());
        for (const x of done) {
          if (!pending.length) pendingSince = Date.now();
          pending.push(x);
          pendingBytes += x.bytes;
        }
        if (pending.length && (Date.now() - pendingSince >= segmentMs || pendingBytes >= segmentBytes)) await flush();
        if (exited) break;
        if (Date.now() >= deadline || cancelled()) break;
        if (Date.now() - lastCheck >= 1000) {
          lastCheck = Date.now();
          await lease.ensure();
          const checkAt = Date.now();
          const v = await viewNodes(ctx, c);
          if (v.primary && v.primary.node !== primary) break; // followed on the next round, from the archived position
          const pnow = v.nodes.find((n) => n.node === primary);
          if (pnow?.pos !== undefined) {
            const pp = parseGtidPos(pnow.pos);
            state.primaryPos = pnow.pos;
            state.lagTransactions = transactionsBetween(archived ?? {}, pp);
            // Everything the primary had written when read was archived: the archive is complete up to then.
            if (archived && posCovers(archived, pp)) state.coveredUntil = checkAt;
            await saveState().catch(() => undefined);
          }
          beat();
        }
        await sleep(100);
      }
      // Whatever whole transactions the tool wrote before it stopped or was stopped.
      child.kill('SIGTERM');
      for (const x of asm.push(tail.read())) {
        pending.push(x);
        pendingBytes += x.bytes;
      }
      await flush();
      if (exited && !(Date.now() >= deadline || cancelled())) {
        state.note = `mariadb-binlog on ${primary} exited (${exited.code}): ${exited.stderr.trim().split('\n').slice(-2).join(' | ')}`;
        beat();
        await sleep(500);
      }
    } finally {
      child?.kill('SIGKILL');
      opt.cleanup();
      rmSync(dir, { recursive: true, force: true });
    }
    await saveState().catch(() => undefined);
  }
  await saveState().catch(() => undefined);
  // Cancelled (the workflow cancelled, or gone: terminated): the next archiver may start at once. Otherwise
  // kept for this archiver's next call.
  if (cancelled()) await lease.release();
  return {
    cluster: c.name,
    primary: state.primary,
    archivedPos: state.archivedPos,
    segmentsStored: state.segmentsStored,
    transactionsStored,
    lagTransactions: state.lagTransactions,
    coveredUntil: state.coveredUntil,
    followed,
    lease: { generation: lease.lease.generation, took: lease.took.why, ...(tookFrom ? { from: tookFrom } : {}) },
    audit: `archived ${transactionsStored} transaction(s) in ${state.segmentsStored} segment(s) from ${state.primary ?? 'no primary'}, up to ${state.archivedPos || 'nothing yet'}${followed.length ? `; followed ${followed.join('; ')}` : ''}${tookFrom ? `; took the archive's lease over from ${tookFrom}` : ''}`,
  };
}
