/** Dolt rolling restart decisions (core/dolt/rolling.ts): stale detection and the order of actions, both topologies alike. */
import { describe, expect, it } from 'vitest';
import { nextDoltRollingAction, whyDoltStale, type DoltSpecProbe } from '../../core/dolt/rolling';
import type { DesiredSpec } from '../../core/rolling';

const T = 1_800_000_000; // epoch seconds
const node = (id: string, role: DoltSpecProbe['role'], extra: Partial<DoltSpecProbe> = {}): DoltSpecProbe => ({
  node: id,
  reachable: true,
  role,
  startedAt: T - 3600,
  config: { max_connections: '151' },
  ...(role === 'replica' ? { following: true } : {}),
  ...extra,
});
const reason: DesiredSpec = { config: {}, restartStartedBefore: T * 1000, reason: 'OS patch' };

describe('Dolt rolling restart decisions', () => {
  it('stale: a listed variable differs, or the server started before a --reason roll (never a node this roll restarted)', () => {
    expect(whyDoltStale(node('a', 'replica'), { config: { max_connections: '200' } })).toBe('max_connections=151, wanted 200');
    expect(whyDoltStale(node('a', 'replica'), { config: { max_connections: '151' } })).toBeUndefined();
    expect(whyDoltStale(node('a', 'replica', { config: {} }), { config: { nope: '1' } })).toBe('nope=(unknown variable), wanted 1');
    expect(whyDoltStale(node('a', 'replica'), reason)).toMatch(/before this roll/);
    expect(whyDoltStale(node('a', 'replica'), { ...reason, restarted: ['a'] })).toBeUndefined();
    expect(whyDoltStale(node('a', 'replica', { startedAt: T + 5 }), reason)).toBeUndefined();
  });

  it('replicas first in name order, then the handover to a current replica (prefer first, never `never`), then done', () => {
    const nodes = [node('p', 'primary'), node('r2', 'replica'), node('r1', 'replica')];
    expect(nextDoltRollingAction(nodes, reason)).toMatchObject({ kind: 'restart', node: 'r1', primary: 'p', runId: String(T - 3600) });
    const rolled = { ...reason, restarted: ['r1', 'r2'] };
    expect(nextDoltRollingAction(nodes, rolled)).toMatchObject({ kind: 'handover', from: 'p', to: 'r1' });
    expect(nextDoltRollingAction([node('p', 'primary'), node('r1', 'replica', { promotion: 'never' }), node('r2', 'replica', { promotion: 'prefer' })], rolled)).toMatchObject({ kind: 'handover', to: 'r2' });
    expect(nextDoltRollingAction([node('p', 'replica'), node('r1', 'primary')], { ...reason, restarted: ['r1'] })).toMatchObject({ kind: 'restart', node: 'p', primary: 'r1' });
    expect(nextDoltRollingAction([node('p', 'replica'), node('r1', 'primary')], { ...reason, restarted: ['r1', 'p'] })).toEqual({ kind: 'done' });
  });

  it('refusals: a node down, no or two primaries, no replica following, the last following replica while the primary is stale, no candidate', () => {
    expect(nextDoltRollingAction([node('p', 'primary'), node('r', 'replica', { reachable: false, error: 'refused' })], reason)).toMatchObject({ kind: 'refuse', code: 'NodeDown' });
    expect(nextDoltRollingAction([node('p', 'replica'), node('r', 'replica')], reason)).toMatchObject({ kind: 'refuse', code: 'UnexpectedTopology', reason: 'no primary' });
    expect(nextDoltRollingAction([node('p', 'primary'), node('r', 'primary')], reason)).toMatchObject({ kind: 'refuse', code: 'UnexpectedTopology' });
    expect(nextDoltRollingAction([node('p', 'primary'), node('r', 'replica', { following: false, followDetail: 'lag 9000 ms' })], reason)).toMatchObject({ kind: 'refuse', code: 'NoHealthyReplica', reason: expect.stringContaining('lag 9000 ms') });
    expect(nextDoltRollingAction([node('p', 'primary'), node('r1', 'replica'), node('r2', 'replica', { following: false })], reason)).toMatchObject({ kind: 'refuse', code: 'LastInSyncReplica' });
    expect(nextDoltRollingAction([node('p', 'primary'), node('r1', 'replica', { promotion: 'never' })], { ...reason, restarted: ['r1'] })).toMatchObject({ kind: 'refuse', code: 'NoEligibleCandidate' });
  });
});
