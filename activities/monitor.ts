/**
 * The monitor's detection loop, shared by both engines (activities/redis/monitor.ts, activities/mysql/monitor.ts):
 * one long-running, heartbeating activity per stretch of rounds. It keeps its connections to the nodes open,
 * probes every `probeIntervalMs` (fixed rate: the probe's own time is part of the interval), decides each round
 * with the pure rule of core/monitor-round.ts and returns to the workflow only when that rule asks for it (a
 * confirmed DeadMaster, a node to fence, an anti-flapping block, a change of what the monitor reports) or at a
 * checkpoint (`checkpointMs`, or `maxRounds` rounds: the workflow's continue-as-new budget).
 *
 * Each round's state goes into the heartbeat details, so a retried attempt (the worker died; the heartbeat
 * timeout expired) resumes from the last heartbeat instead of from the input: the consecutive DeadMaster
 * verdicts, the primary's last sighting and the round counter survive a worker crash. The details are also
 * what `handover monitor --status` reads for the live view between checkpoints (client/commands/monitor.ts).
 */
import { CancelledFailure, Context } from '@temporalio/activity';
import { HandoverError } from '../core/errors';
import { failedProbeRound, type DetectState, type RoundAction, type RoundResult } from '../core/monitor-round';

export interface WatchInput {
  cluster: string;
  /** The detection state to start from (a retried attempt starts from its last heartbeat instead). */
  state: DetectState;
  /** Return after this many rounds (the workflow's rounds left before it continues as new). */
  maxRounds: number;
  /** Return at least this often (a checkpoint: the workflow's status and the metrics catch up). */
  checkpointMs: number;
}

export interface WatchResult<P> {
  state: DetectState;
  action: RoundAction | { kind: 'checkpoint' };
  /** The probe of the deciding round (the failover starts from it; it is not probed again). */
  probe?: P;
  /** Rounds this call ran (across its attempts). */
  roundsDone: number;
  /** Whether this attempt resumed from the heartbeat details of an earlier one. */
  resumed: boolean;
  /** Heartbeat-detail resumptions so far in this call (the attempts that found a predecessor's state). */
  attempt: number;
}

/** What each round heartbeats: a retried attempt resumes from it; `monitor --status` shows it live. */
export interface WatchBeat {
  kind: 'monitor-watch';
  state: DetectState;
  roundsDone: number;
  /** Epoch ms of the round (the live view's age). */
  at: number;
}

/**
 * Connections kept open across rounds, one per node address; a failed one is dropped and reopened next round.
 *
 * `use` with a deadline bounds one node's probe inside a round (core/monitor-round.ts probeDeadlineMs): past it
 * the call rejects with "no answer within N ms" and the connection is dropped (closed), so a hung socket never
 * queues the next round's commands behind the unanswered ones, and a late answer, arriving on a closed
 * connection, is never read as the next round's. A connection still being opened when the deadline passes is
 * closed as soon as it opens instead of being kept.
 */
export class NodePool<C> {
  private readonly conns = new Map<string, C>();
  constructor(
    private readonly open: (key: string) => Promise<C>,
    private readonly close: (c: C) => void,
  ) {}

  async use<T>(key: string, fn: (c: C) => Promise<T>, deadlineMs?: number): Promise<T> {
    if (deadlineMs === undefined) return this.run(key, fn, { abandoned: false });
    const call: { abandoned: boolean; conn?: C } = { abandoned: false };
    const attempt = this.run(key, fn, call);
    attempt.catch(() => undefined); // a failure after the deadline has nobody waiting for it
    let t: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      t = setTimeout(() => {
        call.abandoned = true;
        if (call.conn !== undefined) this.dropIf(key, call.conn);
        reject(new Error(`no answer within ${deadlineMs} ms`));
      }, deadlineMs);
    });
    try {
      return await Promise.race([attempt, late]);
    } finally {
      clearTimeout(t);
    }
  }

  private async run<T>(key: string, fn: (c: C) => Promise<T>, call: { abandoned: boolean; conn?: C }): Promise<T> {
    let c = this.conns.get(key);
    if (c === undefined) {
      const opened = await this.open(key);
      if (call.abandoned) {
        this.closeQuietly(opened);
        throw new Error('opened after the deadline: closed');
      }
      c = opened;
      this.conns.set(key, c);
    }
    call.conn = c;
    try {
      return await fn(c);
    } catch (e) {
      this.dropIf(key, c); // only this call's connection: a later round may have opened a new one meanwhile
      throw e;
    }
  }

  /** Drop `key`'s connection if it is still `c`. */
  private dropIf(key: string, c: C): void {
    if (this.conns.get(key) === c) this.drop(key);
  }

  private closeQuietly(c: C): void {
    try {
      this.close(c);
    } catch {
      /* already closed */
    }
  }

  drop(key: string): void {
    const c = this.conns.get(key);
    this.conns.delete(key);
    if (c !== undefined) this.closeQuietly(c);
  }

  closeAll(): void {
    for (const k of [...this.conns.keys()]) this.drop(k);
  }
}

function currentContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined; // called outside an activity (tests)
  }
}

/** Sleep `ms`, or throw at once when the activity is cancelled (the monitor acknowledged, stopped, or the worker shuts down). */
async function pause(ctx: Context | undefined, ms: number): Promise<void> {
  if (ms <= 0) return;
  let t: NodeJS.Timeout | undefined;
  const slept = new Promise<void>((r) => (t = setTimeout(r, ms)));
  try {
    await (ctx ? Promise.race([slept, ctx.cancelled]) : slept);
  } finally {
    clearTimeout(t);
  }
}

export async function watchLoop<P extends { policy: { probeIntervalMs: number } }>(
  input: WatchInput,
  o: {
    probe: () => Promise<P>;
    decide: (s: DetectState, p: P, nowMs: number) => RoundResult;
    failpoint?: (name: string) => void | Promise<void>;
    /** Called when the loop ends (connections closed). */
    close: () => void;
  },
): Promise<WatchResult<P>> {
  const ctx = currentContext();
  const prior = ctx?.info.heartbeatDetails as WatchBeat | undefined;
  const resumedFrom = prior?.kind === 'monitor-watch' ? prior : undefined;
  let state = resumedFrom?.state ?? input.state;
  // The anti-flapping inputs are the workflow's for this call, whatever the earlier attempt had.
  state = { ...state, lastFailoverAtMs: input.state.lastFailoverAtMs, acknowledged: input.state.acknowledged, flagged: input.state.flagged };
  let roundsDone = resumedFrom?.roundsDone ?? 0;
  const attempt = ctx?.info.attempt ?? 1;
  const startedAt = Date.now();
  let interval = 1000;
  let suspectSince: number | undefined;
  try {
    for (;;) {
      const t0 = Date.now();
      let p: P | undefined;
      let r: RoundResult;
      // A silent node holds a round up to the probe deadline (NodePool.use): keep heartbeating the unchanged state
      // meanwhile, so a slow round is not taken for a dead worker.
      const beat = ctx ? setInterval(() => ctx.heartbeat({ kind: 'monitor-watch', state, roundsDone, at: Date.now() } satisfies WatchBeat), 1000) : undefined;
      try {
        p = await o.probe();
        interval = p.policy.probeIntervalMs;
        r = o.decide(state, p, Date.now());
      } catch (e) {
        if (e instanceof HandoverError || e instanceof CancelledFailure) throw e; // typed (credentials, inventory): the workflow reports it
        p = undefined;
        r = failedProbeRound(state, (e as Error).message, Date.now());
      } finally {
        clearInterval(beat);
      }
      state = r.state;
      roundsDone++;
      ctx?.heartbeat({ kind: 'monitor-watch', state, roundsDone, at: Date.now() } satisfies WatchBeat);
      await o.failpoint?.('watchCluster.round');
      // Chaos: a death half-confirmed, and a heartbeat carrying it surely sent (heartbeats are throttled to one a
      // second): the worker killed here must leave the next attempt that state to resume from.
      suspectSince = state.verdict === 'suspect' ? (suspectSince ?? Date.now()) : undefined;
      if (suspectSince !== undefined && Date.now() - suspectSince >= 1100) await o.failpoint?.('watchCluster.suspect');
      if (r.action.kind !== 'none') return { state, action: r.action, probe: p, roundsDone, resumed: !!resumedFrom, attempt };
      if (roundsDone >= input.maxRounds || Date.now() - startedAt >= input.checkpointMs) return { state, action: { kind: 'checkpoint' }, roundsDone, resumed: !!resumedFrom, attempt };
      await pause(ctx, interval - (Date.now() - t0));
    }
  } finally {
    o.close();
  }
}
