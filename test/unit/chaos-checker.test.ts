/**
 * The strict chaos checker (bench/chaos/checker.ts) on hand-made evidence: every condition it claims to check
 * fails a point on its own and is named; the split-brain sampler counts every sample.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkGroup, checkPoint, checkRun, unboundedLoss } from '../../bench/chaos/checker';
import { lostBeforeSight } from '../../bench/chaos/common';
import { heldBy } from '../../bench/chaos/mysql';
import { SplitBrainSampler } from '../../bench/chaos/sampler';
import type { EngineProbe, PointEvidence } from '../../bench/chaos/types';

const replica = (of: string) => ({ up: true, writable: false, follows: of, linkUp: true, detail: `replica of ${of}` });
function good(): PointEvidence {
  return {
    point: 'after:x',
    killed: true,
    run: { ok: true },
    settle: [],
    end: { a: replica('b'), b: { up: true, writable: true, detail: 'master' }, c: replica('b') },
    expected: { primary: 'b', why: 'reported' },
    writes: { acked: 500, minAcked: 200, ambiguous: 0, lostOnPrimary: 0, behindPrimary: { a: 0, c: 0 } },
    samples: { samples: 300, withDownNode: 10, split: 0, splitExamples: [], maxGapMs: 40 },
    postconditions: [],
  };
}
const failover = (over: Partial<NonNullable<PointEvidence['loss']>> = {}): PointEvidence['loss'] => ({ killed: 'a', ackedByKilledBeforeKill: 300, lastAckBeforeKillMs: 2, lostElsewhere: 0, ...over });

describe('chaos checker', () => {
  it('a loss is unbounded only when the scenario\'s bound says so, or there is no bound or no report', () => {
    expect(unboundedLoss(0, false, undefined)).toBeUndefined();
    // The bound's undefined means "inside the window the run reported": the point passes (it failed before as "no loss bound").
    expect(unboundedLoss(1, true, () => undefined)).toBeUndefined();
    expect(unboundedLoss(2, true, () => 'the report bounds the loss at 1 transaction(s), but 2 acknowledged commit(s) were lost')).toMatch(/bounds the loss at 1/);
    expect(unboundedLoss(1, true, undefined)).toBe('the scenario has no loss bound');
    expect(unboundedLoss(1, false, () => undefined)).toBe('no report to bound the loss');
  });

  it('passes a point only when everything holds', () => {
    expect(checkPoint(good())).toEqual([]);
  });

  it.each<[string, (e: PointEvidence) => void, RegExp]>([
    ['not killed', (e) => Object.assign(e, { killed: false, killNote: 'the run finished before the kill point' }), /not killed.*finished before/],
    ['run failed', (e) => (e.run = { ok: false, error: 'workflow failed: boom' }), /run did not complete: workflow failed: boom/],
    ['settle problem', (e) => e.settle.push('a not rejoined'), /settle: a not rejoined/],
    ['no writable node', (e) => (e.end.b.writable = false), /0 writable nodes/],
    ['two writable nodes', (e) => (e.end.a.writable = true), /2 writable nodes \(a, b\)/],
    ['wrong primary', (e) => (e.expected = { primary: 'c', why: 'the switchover reported b -> c' }), /b is the primary, expected c/],
    ['postcondition unmet', (e) => (e.expected = { failure: 'the report names no new primary' }), /postcondition: the report names no new primary/],
    ['replica down', (e) => (e.end.c = { up: false, writable: false, detail: 'no answer' }), /c does not answer/],
    ['replica following another', (e) => (e.end.c = replica('a')), /c not following b/],
    ['link down', (e) => (e.end.c.linkUp = false), /c not following b with its link up/],
    ['not converged', (e) => (e.notConverged = 'c at 0-1-5'), /not converged on b/],
    ['too few writes', (e) => (e.writes.acked = 3), /acknowledged 3 writes, fewer than 200/],
    ['lost on the primary', (e) => (e.writes.lostOnPrimary = 2), /2 acknowledged write\(s\) missing on the primary/],
    ['a replica behind', (e) => (e.writes.behindPrimary.c = 4), /c lacks 4 acknowledged write/],
    ['one split sample', (e) => Object.assign(e.samples, { split: 1, splitExamples: ['+5ms a=writable b=writable c=read-only'] }), /split brain: 1 of 300/],
    ['too few samples', (e) => (e.samples.samples = 3), /only 3 samples/],
    ['a stalled sampler', (e) => (e.samples.maxGapMs = 2500), /stalled 2500 ms/],
    ['scenario postcondition', (e) => e.postconditions.push('c runs hz=10, wanted 11'), /postcondition: c runs hz=10/],
  ])('fails and names it: %s', (_name, spoil, message) => {
    const e = good();
    spoil(e);
    const f = checkPoint(e);
    expect(f.length).toBeGreaterThan(0);
    expect(f.join('\n')).toMatch(message);
  });

  it('failover: lost writes pass only when the killed primary acknowledged them and the report bounds them', () => {
    const e = { ...good(), loss: failover() };
    e.writes.lostOnPrimary = 3;
    expect(checkPoint(e)).toEqual([]);
    expect(checkPoint({ ...e, loss: failover({ unbounded: 'the report gives no bound' }) }).join()).toMatch(/data-loss window: the report gives no bound/);
    expect(checkPoint({ ...e, loss: failover({ lostElsewhere: 1 }) }).join()).toMatch(/1 lost write\(s\) were not acknowledged by a/);
    expect(checkPoint({ ...e, loss: failover({ ackedByKilledBeforeKill: 0 }) }).join()).toMatch(/acknowledged no write before the kill/);
    expect(checkPoint({ ...e, loss: failover({ lastAckBeforeKillMs: 5000 }) }).join()).toMatch(/not writing when a was killed/);
  });

  it('a flagged old primary is excused from following only for GTIDs the primary lacks, holding every lost commit', () => {
    const e = { ...good(), loss: failover() };
    e.end.a = { up: true, writable: false, detail: 'read_only=1 no source' };
    e.writes.behindPrimary.a = 40;
    e.flagged = { node: 'a', errantGtids: ['0-1-7'], lostMissingOnIt: 0, notErrant: [] };
    e.writes.lostOnPrimary = 1;
    expect(checkPoint(e)).toEqual([]);
    // A commit in the killed primary's binlog that no client saw acknowledged is errant all the same.
    expect(checkPoint({ ...e, writes: { ...e.writes, lostOnPrimary: 0 } })).toEqual([]);
    expect(checkPoint({ ...e, flagged: { ...e.flagged, notErrant: ['0-1-7'] } }).join()).toMatch(/flagged for 0-1-7, which the primary holds: not errant/);
    expect(checkPoint({ ...e, flagged: { ...e.flagged, errantGtids: [] } }).join()).toMatch(/flagged without an errant GTID/);
    expect(checkPoint({ ...e, flagged: { ...e.flagged, lostMissingOnIt: 1 } }).join()).toMatch(/lacks 1 of the lost commits/);
    expect(checkPoint({ ...e, flagged: undefined }).join()).toMatch(/a not following b/);
  });

  it('heldBy: a GTID is held when the state has its domain and server at or past its sequence number', () => {
    expect(heldBy('0-1-1466,0-2-2025', ['0-1-1467', '0-2-2000', '1-2-1'])).toEqual(['0-2-2000']);
    expect(heldBy('', ['0-1-1'])).toEqual([]);
  });
});

describe('the checker in two parts (a sharded fleet: the run once, then each shard)', () => {
  it('checkRun judges the kill, the run, the settle step, the writes counted and the postconditions; checkGroup the nodes', () => {
    const e = good();
    Object.assign(e, { killed: false, killNote: 'never reached', settle: ['x not fenced'], postconditions: ['y on hz=10'] });
    e.writes.acked = 3;
    e.end.c = replica('a');
    e.samples.split = 1;
    const run = checkRun(e).join('\n');
    const group = checkGroup(e).join('\n');
    for (const m of [/not killed/, /settle: x not fenced/, /acknowledged 3 writes/, /postcondition: y on hz=10/]) {
      expect(run).toMatch(m);
      expect(group).not.toMatch(m);
    }
    for (const m of [/c not following b/, /split brain: 1/]) {
      expect(group).toMatch(m);
      expect(run).not.toMatch(m);
    }
    expect(checkPoint(e)).toEqual([...checkRun(e), ...checkGroup(e)]);
  });
});

describe('split-brain sampler', () => {
  it('counts every sample: one with two writable nodes is a split, one with a silent node is recorded', () => {
    const s = new SplitBrainSampler({} as EngineProbe);
    s.record({ a: 'writable', b: 'read-only', c: 'read-only' });
    s.record({ a: 'writable', b: 'writable', c: 'down' });
    s.record({ a: 'down', b: 'writable', c: 'read-only' });
    expect(s.stats).toMatchObject({ samples: 3, split: 1, withDownNode: 2 });
    expect(s.stats.splitExamples[0]).toMatch(/a=writable b=writable c=down/);
  });
});

describe('layers', () => {
  it('no production folder imports bench/ or test/', () => {
    const ROOT = path.resolve(__dirname, '..', '..');
    const files = (d: string): string[] =>
      readdirSync(d).flatMap((f) => {
        const p = path.join(d, f);
        return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
      });
    const offenders = ['core', 'inventory', 'activities', 'workflows', 'worker', 'client', 'codec']
      .flatMap((d) => files(path.join(ROOT, d)))
      .filter((f) => /from '(\.\.\/)+(bench|test)\//.test(readFileSync(f, 'utf8')))
      .map((f) => path.relative(ROOT, f));
    expect(offenders).toEqual([]);
  });
});

describe('the data-loss window by time (lostBeforeSight)', () => {
  const report = { dataLossWindow: { transactions: 0, lastSeenAt: 1_000 } };
  const at: Record<string, number> = { a: 900, b: 1_000, c: 1_200 };
  it('a lost write acknowledged after the last sight lies in the unobserved part; one acknowledged before it must fit the count', () => {
    expect(lostBeforeSight(report, ['c'], (k) => at[k])).toEqual([]);
    expect(lostBeforeSight(report, ['a', 'b', 'c'], (k) => at[k])).toEqual(['a', 'b']);
  });
  it('without a sight every lost write must fit the count, and an unknown ack time counts as before it', () => {
    expect(lostBeforeSight({ dataLossWindow: { transactions: 0 } }, ['c'], (k) => at[k])).toEqual(['c']);
    expect(lostBeforeSight(report, ['x'], () => undefined)).toEqual(['x']);
  });
});
