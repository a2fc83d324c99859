/**
 * Point-in-time restore: plan (which base, which archived segments: `planPitr`, pure) and replay (the
 * segments' transactions after the base's GTID up to exactly the target, through `mariadb-binlog | mariadb`
 * into the restored server), then verify: the restored server's binlog position must be the planned end.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import mysql from 'mysql2/promise';
import { binlogFile, formatGtid, formatGtidPos, type ArchivedTransaction, parseGtidPos, planPitr, readSegment, replayProgress, selectReplay, type PitrPlan, type PitrTarget, type SegmentManifest } from '../../core/backup/binlog';
import { ErrorType, HandoverError } from '../../core/errors';
import { heartbeatWhile } from '../activity';
import { listSegments, readArchiveState, readSegmentManifest } from './archive';
import type { BackupContext } from './context';
import { mysqlTarget } from '../mysql/conn';
import { mysqlClientTlsArgs, optionFile } from './mysql';
import { hashStored, openArtifact } from './stream';
import { tool } from './tools';

export interface PlanPitrInput {
  cluster: string;
  target: PitrTarget;
}
export type PlanPitrResult = PitrPlan & { audit: string };

export async function planPitrRestore(ctx: BackupContext, input: PlanPitrInput): Promise<PlanPitrResult> {
  const c = ctx.clusterOf(input.cluster);
  if (c.engine !== 'mysql') throw new HandoverError(ErrorType.WrongEngine, `refused: cluster ${c.name} is engine ${c.engine}; point-in-time restore is MariaDB only (nothing was changed)`);
  const storage = ctx.storageOf(c);
  const [backups, segments, state] = await Promise.all([storage.list(c.name), listSegments(storage, c.name), readArchiveState(storage, c.name)]);
  const plan = planPitr({
    backups: backups.map((b) => ({ id: b.id, state: b.state, gtid: b.manifest?.position.gtid, startedAt: b.startedAt, method: b.manifest?.method })),
    segments,
    coveredUntilMs: state?.coveredUntil,
    target: input.target,
  });
  if ('refusal' in plan) throw new HandoverError(ErrorType.PreconditionFailed, `refused (${plan.kind}): ${plan.refusal}; nothing was restored`);
  const t = 'gtid' in plan.target ? `GTID ${plan.target.gtid}` : `time ${plan.target.time}`;
  return { ...plan, audit: `to ${t}: base ${plan.base} (${plan.method}, ${plan.baseGtid}), ${plan.segments.length} segment(s) ${plan.segments.length ? `${plan.segments[0]}..${plan.segments[plan.segments.length - 1]}` : ''}; ${plan.reason}` };
}

export interface ReplayBinlogsInput {
  cluster: string;
  plan: PitrPlan;
  /** A restored scratch server's socket (root, no password). */
  socket?: string;
  /**
   * Or a node of the cluster (restored from the plan's base), reached as the automation user over TCP. Its binary
   * log is reset to the base position (gtid_binlog_state) before the first transaction, so its gtid_binlog_pos
   * says which transactions are in: a retried replay continues after them (replayProgress) and the verification
   * compares the whole position.
   */
  node?: string;
}
export interface ReplayBinlogsResult {
  transactions: number;
  firstGtid?: string;
  lastGtid?: string;
  /** The restored server's binlog position after the replay (equal to the plan's end when verified). */
  endPos: string;
  verified: boolean;
  replayMs: number;
  /** Into a node: transactions an earlier attempt had already replayed (continued after them). */
  alreadyReplayed?: number;
  audit: string;
}

async function readStoredSegment(ctx: BackupContext, c: ReturnType<BackupContext['clusterOf']>, m: SegmentManifest): Promise<Buffer> {
  const storage = ctx.storageOf(c);
  const h = await hashStored(storage.readStream(c.name, 'binlog-archive', m.artifact.file));
  if (h.sha256 !== m.artifact.sha256 || h.size !== m.artifact.size) throw new HandoverError(ErrorType.VerificationFailed, `archived segment ${m.seq}: sha256 ${h.sha256} (${h.size} bytes) != manifest ${m.artifact.sha256} (${m.artifact.size}); not replayed`);
  const parts: Buffer[] = [];
  for await (const chunk of openArtifact({ storage, cluster: c.name, id: 'binlog-archive', artifact: m.artifact, keys: ctx.keysOf(c), env: ctx.env })) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

/** The replay's connection and `mariadb` client arguments: a scratch server's socket as root, or a node as the automation user. */
async function withReplayTarget<T>(ctx: BackupContext, c: ReturnType<BackupContext['clusterOf']>, input: ReplayBinlogsInput, fn: (conn: mysql.Connection, clientArgs: string[]) => Promise<T>): Promise<T> {
  if (input.node) {
    const t = mysqlTarget(c, input.node, ctx.env);
    const opt = optionFile({ user: t.user, password: t.password });
    try {
      return await ctx.withMysql(c, input.node, (conn) => fn(conn, [...opt.args, '-h', t.host, '-P', String(t.port), '--protocol=TCP', ...mysqlClientTlsArgs(t), '--binary-mode']));
    } finally {
      opt.cleanup();
    }
  }
  if (!input.socket) throw new Error('replayBinlogs needs a scratch socket or a node');
  const conn = await mysql.createConnection({ socketPath: input.socket, user: 'root', password: '' });
  try {
    return await fn(conn, ['--no-defaults', `--socket=${input.socket}`, '--user=root', '--binary-mode']);
  } finally {
    await conn.end().catch(() => undefined);
  }
}

/** Pipe binlog files through `mariadb-binlog | mariadb`; rejects with both tools' stderr. */
async function pipeBinlogs(ctx: BackupContext, files: string[], clientArgs: string[]): Promise<void> {
  if (!files.length) return;
  const dec = spawn(tool('mariadb-binlog', ctx.env), files, { stdio: ['ignore', 'pipe', 'pipe'] });
  const cli = spawn(tool('mariadb', ctx.env), clientArgs, { stdio: ['pipe', 'ignore', 'pipe'] });
  let err = '';
  dec.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  cli.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const codes = Promise.all([dec, cli].map((p) => new Promise<number>((res, rej) => (p.once('error', rej), p.once('close', (code) => res(code ?? 1))))));
  await pipeline(dec.stdout!, cli.stdin!);
  const [a, b] = await codes;
  if (a !== 0 || b !== 0) throw new Error(`replay failed (mariadb-binlog ${a}, mariadb ${b}): ${err.trim().split('\n').slice(-3).join(' | ')}`);
}

export async function replayBinlogs(ctx: BackupContext, input: ReplayBinlogsInput): Promise<ReplayBinlogsResult> {
  const c = ctx.clusterOf(input.cluster);
  const t0 = Date.now();
  return heartbeatWhile(async () => {
    const storage = ctx.storageOf(c);
    const read: { startAfter: string; fde?: Buffer; txns: (ArchivedTransaction & { seq: number })[]; seq: number }[] = [];
    for (const seq of input.plan.segments) {
      const m = await readSegmentManifest(storage, c.name, seq);
      if (!m) throw new HandoverError(ErrorType.VerificationFailed, `archived segment ${seq} of ${c.name} is gone; not replayed`);
      const seg = readSegment(await readStoredSegment(ctx, c, m));
      read.push({ startAfter: m.startAfter, fde: seg.fde, txns: seg.txns.map((t) => ({ ...t, seq })), seq });
    }
    const sel = selectReplay(read, input.plan.baseGtid, input.plan.target);
    if (!sel.reachedTarget) throw new HandoverError(ErrorType.VerificationFailed, `the archived segments do not reach GTID ${'gtid' in input.plan.target ? input.plan.target.gtid : ''}; not replayed`);
    const dir = mkdtempSync(path.join(os.tmpdir(), `handover-replay-${c.name}-`));
    try {
      return await withReplayTarget(ctx, c, input, async (conn, clientArgs) => {
        const base = parseGtidPos(input.plan.baseGtid);
        let todo = sel.txns;
        let already = 0;
        if (input.node) {
          // Nothing may replicate into the node while it is replayed into (the detach step removed its replication).
          const [st] = (await conn.query('SHOW SLAVE STATUS')) as unknown as [unknown[]];
          if (st.length) {
            await conn.query('STOP SLAVE');
            await conn.query('RESET SLAVE ALL');
          }
          const [[cur]] = (await conn.query('SELECT @@gtid_binlog_pos AS pos')) as unknown as [[{ pos: string }]];
          const prog = replayProgress(cur.pos, base, sel.txns);
          if (prog.state === 'fresh') {
            // The node's own binary log (the base's load, anything before) goes; it starts at the base position.
            await conn.query('RESET MASTER');
            if (Object.keys(base).length) await conn.query('SET GLOBAL gtid_binlog_state = ?', [formatGtidPos(base)]);
          } else {
            already = prog.from;
            todo = sel.txns.slice(prog.from);
          }
        } else {
          // The restored base's own binlog (a dump load writes one) would make the replayed GTIDs out of order.
          await conn.query('RESET MASTER');
        }
        const files: string[] = [];
        for (const s of read) {
          const txns = todo.filter((t) => t.seq === s.seq);
          if (!txns.length) continue;
          if (!s.fde) throw new Error(`archived segment ${s.seq} has no FORMAT_DESCRIPTION event`);
          const f = path.join(dir, `replay-${s.seq}.bin`);
          writeFileSync(f, binlogFile(s.fde, txns));
          files.push(f);
        }
        // One segment at a time: a worker killed between two (or inside one: a transaction commits whole or not
        // at all) leaves the node's gtid_binlog_pos at the last transaction in; a retried attempt continues after it.
        for (let i = 0; i < files.length; i++) {
          await pipeBinlogs(ctx, [files[i]], clientArgs);
          if (i < files.length - 1) await ctx.failpoint('replayBinlogs.segment');
        }
        const [[v]] = (await conn.query('SELECT @@gtid_binlog_pos AS pos')) as unknown as [[{ pos: string }]];
        const got = parseGtidPos(v.pos);
        const want = parseGtidPos(formatGtidPos(sel.endPos));
        // Into a node: the whole position (it started at the base's); a scratch server: the replayed domains.
        const verified = input.node
          ? formatGtidPos(got) === formatGtidPos(want)
          : [...new Set(sel.txns.map((t) => t.gtid.domain))].every((d) => got[d]?.seq === want[d]?.seq && got[d]?.server === want[d]?.server);
        if (!verified) throw new HandoverError(ErrorType.VerificationFailed, `after the replay ${input.node ?? 'the restored server'} is at ${v.pos || '(empty)'}, expected ${formatGtidPos(sel.endPos)}`);
        const first = sel.txns[0];
        const last = sel.txns[sel.txns.length - 1];
        const replayMs = Date.now() - t0;
        return {
          transactions: sel.txns.length,
          ...(first ? { firstGtid: formatGtid(first.gtid) } : {}),
          ...(last ? { lastGtid: formatGtid(last.gtid) } : {}),
          endPos: formatGtidPos(sel.endPos),
          verified,
          replayMs,
          ...(input.node ? { alreadyReplayed: already } : {}),
          audit: `replayed ${sel.txns.length} transaction(s)${first ? ` ${formatGtid(first.gtid)}..${formatGtid(last.gtid)}` : ''} from ${files.length} segment file(s)${already ? ` (${already} already in from an earlier attempt)` : ''} into ${input.node ?? 'the scratch server'}; it is at ${formatGtidPos(sel.endPos) || '(empty)'} (verified) in ${replayMs} ms`,
        };
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
