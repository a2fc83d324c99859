/** The `--wait` renderers are pure: a progress frame in, lines out. */
import { describe, expect, it } from 'vitest';
import { bar, emptyPlainState, formatAmount, formatDuration, plainUpdate, renderFrame, type ProgressFrame } from '../../client/progress';
import type { RunbookProgress, WaitProgress } from '../../core/types';

const T0 = 1_700_000_000_000;

function switchover(over: Partial<RunbookProgress> = {}): RunbookProgress {
  return {
    runbook: 'switchover',
    cluster: 'cache',
    phase: 'catch-up',
    pointOfNoReturnPassed: false,
    audit: [],
    steps: [
      { name: 'probe', summary: 'probe every node of cache', status: 'done', startedAt: T0, endedAt: T0 + 12, detail: 'saw cache-1=primary@100' },
      { name: 'decide', summary: 'choose the candidate', status: 'done', startedAt: T0 + 12, endedAt: T0 + 12 },
      { name: 'catch-up', summary: 'wait for cache-2 to catch up with cache-1', status: 'running', startedAt: T0 + 20 },
      { name: 'veto', summary: 're-check the decision before the point of no return', status: 'pending' },
    ],
    ...over,
  };
}

const catchUp = (done: number): WaitProgress => ({ what: 'cache-2 catching up with cache-1', done, total: 4096, unit: 'bytes', note: `${4096 - done} bytes to go` });

describe('formatting', () => {
  it('durations, amounts and bars', () => {
    expect(formatDuration(850)).toBe('850 ms');
    expect(formatDuration(12_340)).toBe('12.3 s');
    expect(formatDuration(125_000)).toBe('2m05s');
    expect(formatAmount(512, 'bytes')).toBe('512 B');
    expect(formatAmount(12_698, 'bytes')).toBe('12.4 KiB');
    expect(formatAmount(3 * 1024 * 1024, 'bytes')).toBe('3.0 MiB');
    expect(formatAmount(1, 'transactions')).toBe('1 transaction');
    expect(formatAmount(4000, 'ms')).toBe('4.0 s');
    expect(bar({ done: 1, total: 4 }, 8, true)).toBe('[##......]  25%');
    expect(bar({ done: 4, total: 4 }, 4)).toBe('[████] 100%');
    // Nothing to wait for is complete; more than the total is clamped.
    expect(bar({ done: 0, total: 0 }, 4, true)).toBe('[####] 100%');
    expect(bar({ done: 9, total: 4 }, 4, true)).toBe('[####] 100%');
  });
});

describe('renderFrame (TTY)', () => {
  it('one line per step with icon and elapsed time; the wait bar under the running step', () => {
    const lines = renderFrame({ progress: switchover(), wait: catchUp(1024), now: T0 + 1520 });
    expect(lines).toEqual([
      'switchover of cache: catch-up',
      '  ✓ probe     probe every node of cache                            12 ms',
      '  ✓ decide    choose the candidate                                 0 ms',
      '  ▶ catch-up  wait for cache-2 to catch up with cache-1            1.5 s',
      '              [█████░░░░░░░░░░░░░░░]  25%  cache-2 catching up with cache-1: 1.0 KiB of 4.0 KiB (3072 bytes to go)',
      '  · veto      re-check the decision before the point of no return',
    ]);
  });

  it('says when the point of no return is passed, and shows why a step failed', () => {
    const p = switchover({
      phase: 'verify',
      pointOfNoReturnPassed: true,
      steps: [{ name: 'verify', summary: 'verify one primary', status: 'failed', startedAt: T0, endedAt: T0 + 30_000, detail: 'cache-3 link down' }],
    });
    expect(renderFrame({ progress: p, now: T0 + 40_000 })).toEqual([
      'switchover of cache: verify (past the point of no return)',
      '  ✗ verify    verify one primary  30.0 s',
      '              cache-3 link down',
    ]);
  });

  it('a time-bounded wait (restart readiness) shows time spent of time allowed and the state seen last', () => {
    const p = switchover({ steps: [{ name: 'ready cache-3', summary: 'wait for cache-3 to be linked and caught up', status: 'running', startedAt: T0 }] });
    const [, , barLine] = renderFrame({ progress: p, wait: { what: 'cache-3 ready as a replica of cache-1', done: 15_000, total: 60_000, unit: 'ms', note: 'link down or loading' }, now: T0 + 15_000 });
    expect(barLine.trim()).toBe('[█████░░░░░░░░░░░░░░░]  25%  cache-3 ready as a replica of cache-1: 15.0 s of 1m00s allowed (link down or loading)');
  });

  it('cuts lines to the terminal width so a redraw in place counts them right', () => {
    const lines = renderFrame({ progress: switchover(), wait: catchUp(0), now: T0 + 100, columns: 40 });
    expect(lines.every((l) => [...l].length <= 39)).toBe(true);
    expect(lines[4].endsWith('…')).toBe(true);
  });
});

describe('plainUpdate (non-TTY)', () => {
  it('prints a step when it starts and when it ends, and a wait at each 25 % mark, nothing twice', () => {
    let state = emptyPlainState();
    const frame = (progress: RunbookProgress, wait?: WaitProgress, now = T0 + 1000): ProgressFrame => ({ progress, wait, now });

    let u = plainUpdate(state, frame(switchover(), catchUp(100)));
    state = u.state;
    expect(u.lines).toEqual([
      'done     probe: probe every node of cache (12 ms) — saw cache-1=primary@100',
      'done     decide: choose the candidate (0 ms)',
      'running  catch-up: wait for cache-2 to catch up with cache-1',
      '         catch-up: [....................]   2%  cache-2 catching up with cache-1: 100 B of 4.0 KiB (3996 bytes to go)',
    ]);

    // Same state, a little further: below the next mark, nothing printed.
    u = plainUpdate(state, frame(switchover(), catchUp(900)));
    state = u.state;
    expect(u.lines).toEqual([]);

    // Crosses 50 %: one line.
    u = plainUpdate(state, frame(switchover(), catchUp(2100)));
    state = u.state;
    expect(u.lines).toEqual(['         catch-up: [##########..........]  51%  cache-2 catching up with cache-1: 2.1 KiB of 4.0 KiB (1996 bytes to go)']);

    // The step ends, the next starts.
    const next = switchover();
    next.steps[2] = { ...next.steps[2], status: 'done', endedAt: T0 + 2020, detail: 'saw cache-2 at offset 4096' };
    next.steps[3] = { ...next.steps[3], status: 'running', startedAt: T0 + 2020 };
    u = plainUpdate(state, frame(next, undefined, T0 + 2100));
    expect(u.lines).toEqual([
      'done     catch-up: wait for cache-2 to catch up with cache-1 (2.0 s) — saw cache-2 at offset 4096',
      'running  veto: re-check the decision before the point of no return',
    ]);
  });
});

describe('the approval gate', () => {
  it('shows the time waited against the approval timeout and the plan hash under the running approval step', () => {
    const p = switchover({
      phase: 'approval',
      steps: [
        { name: 'probe', summary: 'probe every node of cache', status: 'done', startedAt: T0, endedAt: T0 + 12 },
        { name: 'decide', summary: 'choose the candidate', status: 'done', startedAt: T0 + 12, endedAt: T0 + 12 },
        { name: 'approval', summary: 'wait for approval of plan 0123456789abcdef (handover approve; at most 30m)', status: 'running', startedAt: T0 + 20 },
        { name: 'catch-up', summary: 'wait for cache-2 to catch up with cache-1', status: 'pending' },
      ],
      approval: { status: 'waiting', planHash: '0123456789abcdef', summary: 's', plan: ['p'], timeoutMs: 1_800_000, deadline: T0 + 20 + 1_800_000 },
    });
    const lines = renderFrame({ progress: p, now: T0 + 20 + 450_000 });
    const i = lines.findIndex((l) => l.includes('approval  wait for approval'));
    expect(lines[i + 1].trim()).toBe('[█████░░░░░░░░░░░░░░░]  25%  plan 0123456789abcdef waiting for handover approve: 7m30s of 30m00s allowed (then it ends with nothing changed)');
  });
});

describe('approval gate and abort', () => {
  const gate = { planHash: 'a1b2c3d4', summary: 'switch cache-1 -> cache-2', plan: ['catch-up', 'handover'], timeoutMs: 1_800_000, deadline: T0 + 1_800_000 };

  it('the frame says what the run waits for, how long is left, and who decided', () => {
    const p = switchover({ phase: 'awaiting approval', steps: switchover().steps.slice(0, 2), approval: { ...gate, status: 'waiting' } });
    expect(renderFrame({ progress: p, now: T0 + 60_000 }).slice(0, 2)).toEqual([
      'switchover of cache: awaiting approval',
      '  waiting for approval of plan a1b2c3d4 (29m00s left): switch cache-1 -> cache-2',
    ]);
    p.approval = { ...gate, status: 'rejected', approver: 'alice', reason: 'peak hour' };
    expect(renderFrame({ progress: p, now: T0 })[1]).toBe('  rejected by alice: peak hour (plan a1b2c3d4)');
  });

  it('plain lines: the gate once per status, an abort once, with what it will do', () => {
    const base = switchover({ steps: switchover().steps.slice(0, 2) });
    let u = plainUpdate(emptyPlainState(), { progress: { ...base, approval: { ...gate, status: 'waiting' } }, now: T0 });
    expect(u.lines.slice(0, 1)).toEqual(['waiting  waiting for approval of plan a1b2c3d4 (30m00s left): switch cache-1 -> cache-2']);
    u = plainUpdate(u.state, { progress: { ...base, approval: { ...gate, status: 'waiting' } }, now: T0 + 5000 });
    expect(u.lines).toEqual([]);
    u = plainUpdate(u.state, { progress: { ...base, approval: { ...gate, status: 'approved', approver: 'bob' } }, now: T0 + 6000 });
    expect(u.lines).toEqual(['approval approved by bob (plan a1b2c3d4)']);
    u = plainUpdate(u.state, { progress: { ...base, abortRequested: true }, now: T0 + 7000 });
    expect(u.lines).toEqual(['abort    requested: undoing what was done']);
    u = plainUpdate(u.state, { progress: { ...base, abortRequested: true }, now: T0 + 8000 });
    expect(u.lines).toEqual([]);
    expect(plainUpdate(emptyPlainState(), { progress: { ...base, steps: [], abortRequested: true, pointOfNoReturnPassed: true }, now: T0 }).lines).toEqual([
      'abort    requested: past the point of no return, the run finishes forward',
    ]);
  });
});
