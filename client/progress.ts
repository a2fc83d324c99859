/**
 * `--wait` live progress. Two sources, polled together:
 *  - the workflow's `progress` query (workflows/runbook.ts): the steps with status, start and end times;
 *  - the run's pending activities (DescribeWorkflowExecution): a long wait puts a WaitProgress in its heartbeat
 *    details (catch-up bytes, transactions to apply, restart readiness against its deadline).
 * Neither is in workflow history, so following a run never changes what the runbook does.
 *
 * The renderers are pure (state -> lines) and unit-tested: on a TTY the whole frame is redrawn in place
 * (ANSI cursor-up + clear), otherwise one plain line is printed per change (a step changes status, or a wait
 * crosses a 25 % mark).
 */
import type { WorkflowHandle } from '@temporalio/client';
import { decodeArrayFromPayloads } from '@temporalio/common/lib/internal-non-workflow';
import type { RunbookProgress, StepProgress, WaitProgress } from '../core/types';
import type { DetectState } from '../core/monitor-round';
import type { IO } from './common';

export interface ProgressFrame {
  progress: RunbookProgress;
  /** Terminal width: each line is cut to fit, so that redrawing in place counts lines right. */
  columns?: number;
  /** What the running step's activity reported last (absent when the step is not a long wait). */
  wait?: WaitProgress;
  /** Wall clock, ms since the epoch: running steps' elapsed time is measured against it. */
  now: number;
}

const ICON: Record<string, string> = { pending: '·', running: '▶', done: '✓', failed: '✗', skipped: '-', compensated: '↺' };

/** "850 ms", "12.3 s", "2m05s". */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

/** An amount in the wait's unit: "512 B", "12.4 KiB", "3 transactions", "4.0 s". */
export function formatAmount(n: number, unit: WaitProgress['unit']): string {
  if (unit === 'ms') return formatDuration(n);
  if (unit === 'transactions') return `${n} transaction${n === 1 ? '' : 's'}`;
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** Fraction done, 0..1; a wait with nothing to wait for is complete. */
export function fraction(w: Pick<WaitProgress, 'done' | 'total'>): number {
  if (!(w.total > 0)) return 1;
  return Math.min(1, Math.max(0, w.done / w.total));
}

/** `[██████░░░░] 60%` (TTY) or `[######....] 60%` (plain). */
export function bar(w: Pick<WaitProgress, 'done' | 'total'>, width = 20, plain = false): string {
  const f = fraction(w);
  const full = Math.round(f * width);
  const [on, off] = plain ? ['#', '.'] : ['█', '░'];
  return `[${on.repeat(full)}${off.repeat(width - full)}] ${String(Math.floor(f * 100)).padStart(3)}%`;
}

/** One line for a wait: bar, amounts, and the state seen last. */
export function waitLine(w: WaitProgress, plain = false): string {
  const amounts = w.unit === 'ms' ? `${formatAmount(w.done, 'ms')} of ${formatAmount(w.total, 'ms')} allowed` : `${formatAmount(w.done, w.unit)} of ${formatAmount(w.total, w.unit)}`;
  return `${bar(w, 20, plain)}  ${w.what}: ${amounts}${w.note ? ` (${w.note})` : ''}`;
}

function stepElapsed(s: StepProgress, now: number): string {
  if (s.startedAt === undefined) return '';
  return formatDuration(Math.max(0, (s.endedAt ?? now) - s.startedAt));
}

/** The step a wait belongs to: the last one running (a child workflow's parent step stays running too). */
function runningStep(p: RunbookProgress): StepProgress | undefined {
  return [...p.steps].reverse().find((s) => s.status === 'running');
}

/** The whole frame, for a TTY: a header, one line per step, the bar under the running step, failures' reasons. */
export function renderFrame(f: ProgressFrame): string[] {
  const p = f.progress;
  const nameWidth = Math.min(28, Math.max(8, ...p.steps.map((s) => s.name.length)));
  const summaryWidth = Math.min(72, Math.max(10, ...p.steps.map((s) => s.summary.length)));
  const running = runningStep(p);
  const lines = [`${p.runbook} of ${p.cluster}: ${p.phase}${p.pointOfNoReturnPassed ? ' (past the point of no return)' : ''}${p.abortRequested ? ' (abort requested)' : ''}`];
  for (const s of p.steps) {
    const t = stepElapsed(s, f.now);
    const summary = s.summary.length > summaryWidth ? s.summary.slice(0, summaryWidth - 1) + '…' : s.summary.padEnd(summaryWidth);
    lines.push(`  ${ICON[s.status] ?? '?'} ${s.name.padEnd(nameWidth)}  ${summary}  ${t}`.trimEnd());
    // Under the step's summary column: a wait's bar (the approval gate's countdown too), a failure's reason.
    if (s === running && f.wait) lines.push(`${' '.repeat(nameWidth + 6)}${waitLine(f.wait)}`);
    else if (s === running && s.name === 'approval' && p.approval?.status === 'waiting') lines.push(`${' '.repeat(nameWidth + 6)}${waitLine(approvalWait(p.approval, f.now))}`);
    if ((s.status === 'failed' || s.status === 'compensated') && s.detail) lines.push(`${' '.repeat(nameWidth + 6)}${s.detail}`);
  }
  const w = f.columns;
  return w && w > 10 ? lines.map((l) => ([...l].length >= w ? [...l].slice(0, w - 2).join('') + '…' : l)) : lines;
}

/** The approval gate as a wait against its timeout (the plan hash to approve in the note). */
export function approvalWait(a: NonNullable<RunbookProgress['approval']>, now: number): WaitProgress {
  return { what: `plan ${a.planHash} waiting for handover approve`, done: Math.max(0, now - (a.deadline - a.timeoutMs)), total: a.timeoutMs, unit: 'ms', note: 'then it ends with nothing changed' };
}

/** What the plain renderer has printed so far. */
export interface PlainState {
  status: Record<string, string>;
  /** Whether the abort request was printed. */
  abort?: boolean;
  /** Per wait ("step: what"), the last 25 % mark printed. */
  marks: Record<string, number>;
}

export const emptyPlainState = (): PlainState => ({ status: {}, marks: {} });

/**
 * The plain (non-TTY) renderer: the lines to print for what changed since `prev`, and the new state. A step
 * is printed when it starts and when it ends (with its time and its audit line or failure); a wait when it
 * first shows and at each 25 % mark.
 */
export function plainUpdate(prev: PlainState, f: ProgressFrame): { lines: string[]; state: PlainState } {
  const state: PlainState = { ...prev, status: { ...prev.status }, marks: { ...prev.marks } };
  const lines: string[] = [];
  for (const s of f.progress.steps) {
    if (state.status[s.name] === s.status) continue;
    state.status[s.name] = s.status;
    if (s.status === 'pending') continue;
    const t = s.status === 'running' ? '' : stepElapsed(s, f.now);
    lines.push(`${s.status.padEnd(9)}${s.name}: ${s.summary}${t ? ` (${t})` : ''}${s.detail && s.status !== 'running' ? ` — ${s.detail}` : ''}`);
  }
  if (f.progress.abortRequested && !state.abort) {
    state.abort = true;
    lines.push(`abort    requested${f.progress.pointOfNoReturnPassed ? ': past the point of no return, the run finishes forward' : ': undoing what was done'}`);
  }
  const running = runningStep(f.progress);
  if (running && f.wait) {
    const key = `${running.name}: ${f.wait.what}`;
    const mark = Math.floor(fraction(f.wait) * 4) * 25;
    if (state.marks[key] === undefined || mark > state.marks[key]) {
      state.marks[key] = mark;
      lines.push(`         ${running.name}: ${waitLine(f.wait, true)}`);
    }
  }
  return { lines, state };
}

/** The first pending activity's WaitProgress (heartbeat details `{ ..., progress }`), if any. */
export async function pendingWait(handle: WorkflowHandle): Promise<WaitProgress | undefined> {
  const d = await handle.describe();
  for (const pa of d.raw.pendingActivities ?? []) {
    const payloads = pa.heartbeatDetails?.payloads;
    if (!payloads?.length) continue;
    const [details] = await decodeArrayFromPayloads(handle.client.options.loadedDataConverter, payloads);
    const w = (details as { progress?: WaitProgress } | undefined)?.progress;
    if (w && typeof w.done === 'number' && typeof w.total === 'number') return w;
  }
  return undefined;
}

/**
 * The monitor's live view between its checkpoints: the detection activity heartbeats its state every round
 * (activities/monitor.ts WatchBeat), so the status query's counters and last sighting are brought up to date
 * from the pending activity's details. Undefined when there is no such activity (the per-round monitor, or
 * between two calls).
 */
export async function pendingWatch(handle: WorkflowHandle): Promise<{ state: DetectState; roundsDone: number; at: number } | undefined> {
  const d = await handle.describe();
  for (const pa of d.raw.pendingActivities ?? []) {
    const payloads = pa.heartbeatDetails?.payloads;
    if (!payloads?.length) continue;
    const [details] = await decodeArrayFromPayloads(handle.client.options.loadedDataConverter, payloads);
    const w = details as { kind?: string; state?: DetectState; roundsDone?: number; at?: number } | undefined;
    if (w?.kind === 'monitor-watch' && w.state) return { state: w.state, roundsDone: w.roundsDone ?? 0, at: w.at ?? 0 };
  }
  return undefined;
}

/**
 * Follow a run until it ends, rendering its progress: redrawn in place on a TTY, plain lines otherwise,
 * nothing with --json. Returns the result or throws the workflow's failure.
 */
export async function follow<T>(handle: WorkflowHandle, io: IO, opts: { json: boolean; intervalMs?: number }): Promise<T> {
  const result = handle.result() as Promise<T>;
  let done = false;
  result.then(
    () => (done = true),
    () => (done = true),
  );
  let drawn = 0;
  let plain = emptyPlainState();
  const draw = async () => {
    if (opts.json) return;
    let progress: RunbookProgress;
    try {
      progress = await handle.query<RunbookProgress>('progress');
    } catch {
      return; // no worker yet, or the run just ended
    }
    const wait = done ? undefined : await pendingWait(handle).catch(() => undefined);
    const frame: ProgressFrame = { progress, wait, now: Date.now(), columns: io.isTTY ? process.stdout.columns : undefined };
    if (io.isTTY) {
      const lines = renderFrame(frame);
      io.out((drawn ? `\x1b[${drawn}A\x1b[J` : '') + lines.join('\n'));
      drawn = lines.length;
    } else {
      const u = plainUpdate(plain, frame);
      plain = u.state;
      for (const l of u.lines) io.out(l);
    }
  };
  while (!done) {
    await draw();
    await Promise.race([result.catch(() => undefined), new Promise((r) => setTimeout(r, opts.intervalMs ?? 250))]);
  }
  await draw();
  return result;
}
