import { describe, expect, it } from 'vitest';
import { nextRollingAction, nextSentinelRestart, whyStale, type SentinelProbe, type SpecProbe } from '../../core/redis/rolling';
import { versionMatches } from '../../core/rolling';
import { nextClusterRollingAction } from '../../core/redis/rolling-cluster';

const opts = { policy: { maxLagBytes: 100 }, autoRestart: false };
const want = { config: { hz: '25' } };
const node = (n: string, over: Partial<SpecProbe> = {}): SpecProbe => ({
  node: n, address: n, promotion: 'neutral', reachable: true, role: 'replica', primaryNode: 'a', linkUp: true, offset: 1000, dbsize: 5, runId: `run-${n}`, config: { hz: '10' }, persistent: false, version: 'redis 7.0.15', ...over,
});
const primary = (over: Partial<SpecProbe> = {}) => node('a', { role: 'primary', primaryNode: undefined, linkUp: undefined, ...over });
const fresh = { config: { hz: '25' } };

describe('stale detection', () => {
  it('compares config values and versions', () => {
    expect(whyStale(node('b'), want)).toBe('hz=10, wanted 25');
    expect(whyStale(node('b', fresh), want)).toBeUndefined();
    expect(versionMatches('redis 7.0.15', '7.0')).toBe(true);
    expect(versionMatches('redis 7.0.15', '7')).toBe(true);
    expect(versionMatches('redis 7.0.15', '7.2')).toBe(false);
    expect(versionMatches('valkey 9.1.2', 'valkey 9.1')).toBe(true);
    expect(versionMatches('redis 7.0.15', 'valkey 7.0')).toBe(false);
    expect(whyStale(node('b'), { config: {}, version: 'valkey 9.1' })).toBe('runs redis 7.0.15, wanted valkey 9.1');
  });
});

describe('nextRollingAction (replication)', () => {
  it('restarts stale replicas first, in name order, then hands over, then is done', () => {
    expect(nextRollingAction([primary(), node('c'), node('b')], want, opts)).toMatchObject({ kind: 'restart', node: 'b', primary: 'a', runId: 'run-b' });
    expect(nextRollingAction([primary(), node('c'), node('b', fresh)], want, opts)).toMatchObject({ kind: 'restart', node: 'c' });
    expect(nextRollingAction([primary(), node('c', { ...fresh, offset: 990 }), node('b', { ...fresh, offset: 1000 })], want, opts)).toMatchObject({ kind: 'handover', from: 'a', to: 'b' });
    expect(nextRollingAction([primary(fresh), node('c', fresh), node('b', fresh)], want, opts)).toEqual({ kind: 'done' });
  });
  it('hands over only to a current replica', () => {
    // b is current but lags beyond the limit, c is the only in-sync replica and stale: c must not be restarted
    // while the primary is stale (it is the last in-sync replica), and b cannot take over.
    expect(nextRollingAction([primary(), node('b', { ...fresh, offset: 1 }), node('c')], want, opts)).toMatchObject({ kind: 'refuse', code: 'LastInSyncReplica' });
    expect(nextRollingAction([primary(), node('b', { ...fresh, offset: 1 }), node('c', fresh)], want, opts)).toMatchObject({ kind: 'handover', to: 'c' });
    expect(nextRollingAction([primary(), node('b', { ...fresh, promotion: 'never' })], want, opts)).toMatchObject({ kind: 'refuse', code: 'NoEligibleCandidate' });
  });
  it('guards', () => {
    expect(nextRollingAction([primary(), node('b', { reachable: false })], want, opts)).toMatchObject({ kind: 'refuse', code: 'NodeDown' });
    expect(nextRollingAction([primary(), node('b', { linkUp: false })], want, opts)).toMatchObject({ kind: 'refuse', code: 'NoHealthyReplica' });
    expect(nextRollingAction([primary(), node('b')], want, { ...opts, autoRestart: true })).toMatchObject({ kind: 'refuse', code: 'UnsafePersistence' });
    expect(nextRollingAction([primary({ persistent: true }), node('b', { persistent: true })], want, { ...opts, autoRestart: true })).toMatchObject({ kind: 'restart' });
    // Restarting the lagging b is fine: c stays in sync meanwhile.
    expect(nextRollingAction([primary(), node('b', { offset: 1 }), node('c')], want, opts)).toMatchObject({ kind: 'restart', node: 'b' });
    expect(nextRollingAction([primary({ reachable: false }), node('b')], want, opts)).toMatchObject({ kind: 'refuse', code: 'NoPrimary' });
  });
});

describe('nextClusterRollingAction', () => {
  const shard = (p: string, r: string, slots: string, over: { p?: Partial<SpecProbe>; r?: Partial<SpecProbe> } = {}) => [
    node(p, { role: 'primary', primaryNode: undefined, linkUp: undefined, slots, clusterOk: true, ...over.p }),
    node(r, { primaryNode: p, clusterOk: true, ...over.r }),
  ];
  it('goes shard by shard in slot order: replica, failover, then the old primary', () => {
    const s1 = shard('p1', 'r1', '0-5460');
    const s2 = shard('p2', 'r2', '5461-10922');
    expect(nextClusterRollingAction([...s2, ...s1], want, opts)).toMatchObject({ kind: 'restart', node: 'r1', primary: 'p1' });
    expect(nextClusterRollingAction([...s2, ...shard('p1', 'r1', '0-5460', { r: fresh })], want, opts)).toMatchObject({ kind: 'handover', from: 'p1', to: 'r1' });
    // after the failover r1 serves the shard and p1 is its (stale) replica
    expect(nextClusterRollingAction([...s2, ...shard('r1', 'p1', '0-5460', { p: fresh })], want, opts)).toMatchObject({ kind: 'restart', node: 'p1', primary: 'r1' });
    expect(nextClusterRollingAction([...shard('p2', 'r2', '5461-10922', { p: fresh, r: fresh }), ...shard('r1', 'p1', '0-5460', { p: fresh, r: fresh })], want, opts)).toEqual({ kind: 'done' });
  });
  it('refuses when the cluster is not ok or a shard has no in-sync replica', () => {
    expect(nextClusterRollingAction(shard('p1', 'r1', '0-16383', { r: { clusterOk: false } }), want, opts)).toMatchObject({ kind: 'refuse', code: 'ClusterNotOk' });
    expect(nextClusterRollingAction(shard('p1', 'r1', '0-16383', { r: { linkUp: false } }), want, opts)).toMatchObject({ kind: 'refuse', code: 'NoHealthyReplica' });
  });
});

describe('nextSentinelRestart', () => {
  const s = (id: string, over: Partial<SentinelProbe> = {}): SentinelProbe => ({ id, reachable: true, version: 'redis 7.0.15', runId: `r-${id}`, startedAtMs: 1_000, healthy: true, ...over });
  it('restarts stale sentinels one at a time and only while every other one is healthy', () => {
    const o = { includeSentinels: true, rollStartedAtMs: 100_000 };
    expect(nextSentinelRestart([s('a'), s('b'), s('c')], o)).toMatchObject({ kind: 'restart', id: 'a', runId: 'r-a', reason: 'started before this roll' });
    expect(nextSentinelRestart([s('a', { startedAtMs: 101_000 }), s('b'), s('c')], o)).toMatchObject({ kind: 'restart', id: 'b' });
    expect(nextSentinelRestart([s('a', { startedAtMs: 101_000 }), s('b'), s('c', { healthy: false, detail: 'sees 1 replicas' })], o)).toMatchObject({ kind: 'refuse', reason: expect.stringMatching(/not restarting b: c sees 1 replicas/) });
    expect(nextSentinelRestart([s('a', { startedAtMs: 101_000 }), s('b', { startedAtMs: 101_000 })], o)).toEqual({ kind: 'done' });
  });
  it('without --include-sentinels only a version change makes a sentinel stale', () => {
    expect(nextSentinelRestart([s('a'), s('b')], { includeSentinels: false, rollStartedAtMs: 100_000 })).toEqual({ kind: 'done' });
    expect(nextSentinelRestart([s('a'), s('b')], { includeSentinels: false, rollStartedAtMs: 100_000, version: '7.2' })).toMatchObject({ kind: 'restart', id: 'a', reason: 'runs redis 7.0.15, wanted 7.2' });
  });
});

describe('restart every node once (--restart-all)', () => {
  it('a node started before the roll is due, one the roll restarted is not; nothing else needs to differ', async () => {
    const { whyRestartDue } = await import('../../core/rolling');
    const rollAt = Date.parse('2026-11-30T12:00:00Z');
    const desired = { config: {}, restartStartedBefore: rollAt };
    expect(whyRestartDue(rollAt - 3_600_000, desired)).toBe('running since 2026-11-30T11:00:00.000Z, before this roll (restart requested)');
    expect(whyRestartDue(rollAt + 4_000, desired)).toBeUndefined();
    expect(whyRestartDue(rollAt - 1_000, desired)).toBeUndefined(); // whole-second start times
    expect(whyRestartDue(undefined, desired)).toBe('start time unknown; restart requested');
    expect(whyRestartDue(rollAt - 3_600_000, { config: {} })).toBeUndefined();
  });

  it('the restart token: a node the roll restarted is never due again, even when its start time reads as before the roll', async () => {
    const { whyRestartDue, restartTokenOf } = await import('../../core/rolling');
    const rollAt = Date.parse('2026-11-30T12:00:00Z');
    // A server whose clock is 10 s behind the worker's reports a start before the roll right after its restart.
    const skewedStart = rollAt - 10_000;
    const desired = { config: {}, restartStartedBefore: rollAt, reason: 'kernel 6.1.0-31', restarted: ['b'] };
    expect(whyRestartDue(skewedStart, desired, 'b')).toBeUndefined();
    expect(whyRestartDue(undefined, desired, 'b')).toBeUndefined();
    expect(whyRestartDue(skewedStart, desired, 'c')).toMatch(/before this roll \(restart requested\)/);
    expect(restartTokenOf(desired)).toBe('restart every node started before 2026-11-30T12:00:00.000Z (kernel 6.1.0-31)');
    expect(restartTokenOf({ config: {} })).toBeUndefined();
    // Replicas first (name order), then the primary is handed over, then the old primary; each exactly once.
    const old = { startedAtMs: rollAt - 3_600_000, config: {} };
    const d = { config: {}, restartStartedBefore: rollAt, restarted: [] as string[] };
    let nodes = [primary(old), node('b', old), node('c', old)];
    const seq: string[] = [];
    for (let i = 0; i < 10; i++) {
      const a = nextRollingAction(nodes, d, opts);
      if (a.kind === 'done') break;
      if (a.kind === 'restart') {
        seq.push(`restart ${a.node}`);
        d.restarted.push(a.node);
        nodes = nodes.map((n) => (n.node === a.node ? { ...n, startedAtMs: skewedStart, runId: `${n.runId}'` } : n));
      } else if (a.kind === 'handover') {
        seq.push(`handover ${a.from} -> ${a.to}`);
        nodes = nodes.map((n) => (n.node === a.to ? { ...n, role: 'primary', primaryNode: undefined, linkUp: undefined } : { ...n, role: 'replica', primaryNode: a.to, linkUp: true }));
      } else throw new Error(JSON.stringify(a));
    }
    expect(seq).toEqual(['restart b', 'restart c', 'handover a -> b', 'restart a']);
  });
});
