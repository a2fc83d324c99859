/**
 * The empty-primary guard (core/empty-primary.ts) and how the monitor round uses it (core/monitor-round.ts):
 * run_id and dataset compared across rounds; a primary back empty while replicas still hold its data is never
 * followed (failover at once), one found after its replicas resynced is reported as lost; a failover candidate
 * that resynced since the verdict is refused; persistence off under an auto-restarting controller is a risk.
 */
import { describe, expect, it } from 'vitest';
import { candidateCollapsed, collapsed, primaryRestartedEmpty, updateDatasets } from '../../core/empty-primary';
import { initialDetectState, redisMonitorRound, type DetectState } from '../../core/monitor-round';
import { redisRestartRisks } from '../../core/restart-risk';
import { formatClusterStatus, redisClusterStatus } from '../../core/status';
import type { RedisClusterProbe, RedisNodeProbe } from '../../core/types';

const policy = { probeIntervalMs: 300, probesToConfirm: 3, failoverBlockMs: 60_000 } as RedisClusterProbe['policy'];
const at = (t: number) => new Date(1_700_000_000_000 + t).toISOString();
const base = (node: string): RedisNodeProbe => ({ node, address: `${node}:1`, promotion: 'neutral', reachable: true });
const primary = (node: string, runId: string, offset: number, dbsize: number, replid = `r-${runId}`): RedisNodeProbe => ({ ...base(node), role: 'primary', runId, replid, offset, dbsize, persistent: false });
const replica = (node: string, of: string, offset: number, dbsize: number, o: Partial<RedisNodeProbe> = {}): RedisNodeProbe => ({ ...base(node), role: 'replica', primaryNode: of, linkUp: true, runId: `run-${node}`, replid: 'r-old', offset, dbsize, ...o });
const dead = (node: string): RedisNodeProbe => ({ ...base(node), reachable: false, error: 'ECONNREFUSED' });
const probe = (t: number, ...nodes: RedisNodeProbe[]): RedisClusterProbe => ({ cluster: 'c', engine: 'redis', policy, nodes, probedAt: at(t) });

function run(s: DetectState, probes: RedisClusterProbe[]) {
  const actions: { kind: string; returnedEmpty?: unknown }[] = [];
  for (const p of probes) {
    const r = redisMonitorRound(s, p, Date.parse(p.probedAt));
    s = r.state;
    actions.push(r.action);
  }
  return { s, kinds: actions.map((a) => a.kind), actions };
}

const healthy = (t: number) => probe(t, primary('a', 'old', 5000, 1000, 'r-old'), replica('b', 'a', 5000, 1000), replica('c', 'a', 4990, 1000));

describe('dataset comparison', () => {
  it('a collapse is fewer than half the keys, or an offset behind within the same replication history', () => {
    const was = { runId: 'x', replid: 'r1', offset: 5000, dbsize: 1000, at: 0 };
    expect(collapsed(was, { ...was, dbsize: 0, offset: 0, replid: 'r2' })).toBe(true);
    expect(collapsed(was, { ...was, dbsize: 400 })).toBe(true);
    expect(collapsed(was, { ...was, dbsize: 900 })).toBe(false);
    expect(collapsed(was, { ...was, offset: 4000 })).toBe(true);
    // A restart from an AOF file starts a new history at offset 0 with every key: not a collapse.
    expect(collapsed(was, { ...was, replid: 'r2', offset: 0 })).toBe(false);
  });

  it('an unreachable node keeps its last sight; a held node keeps what it had before', () => {
    const d0 = updateDatasets(undefined, healthy(0).nodes, 0);
    const d1 = updateDatasets(d0, [dead('a'), replica('b', 'a', 5000, 1000, { linkUp: false })], 300);
    expect(d1.a).toMatchObject({ runId: 'old', dbsize: 1000, at: 0 });
    const d2 = updateDatasets(d1, [primary('a', 'new', 0, 0)], 600, ['a']);
    expect(d2.a.runId).toBe('old');
  });

  it('a primary back under a new run_id with its dataset collapsed: who still holds the data, or that it is lost', () => {
    const d0 = updateDatasets(undefined, healthy(0).nodes, 0);
    const back = [primary('a', 'new', 0, 0), replica('b', 'a', 5000, 1000, { linkUp: false }), replica('c', 'a', 4990, 1000, { linkUp: false })];
    const e = primaryRestartedEmpty(d0, back, 'a', 600)!;
    expect(e.holders).toEqual(['b', 'c']);
    expect(e.before).toMatchObject({ dbsize: 1000, offset: 5000 });
    expect(e.text).toMatch(/a restarted .* came back EMPTY: 1000 keys, offset 5000.*b, c still hold the data/);
    const resynced = [primary('a', 'new', 14, 0), replica('b', 'a', 14, 0, { replid: 'r-new' }), replica('c', 'a', 14, 0, { replid: 'r-new' })];
    const lost = primaryRestartedEmpty(d0, resynced, 'a', 900)!;
    expect(lost.holders).toEqual([]);
    expect(lost.text).toMatch(/the data is LOST \(1000 keys, offset 5000 -> 14\)/);
    // Same run_id (FLUSHALL by the application), or a restart that kept its data (persistence on): not this.
    expect(primaryRestartedEmpty(d0, [primary('a', 'old', 5100, 0, 'r-old')], 'a', 600)).toBeUndefined();
    expect(primaryRestartedEmpty(d0, [primary('a', 'new', 0, 1000)], 'a', 600)).toBeUndefined();
  });

  it('a candidate is refused when it resynced since the verdict; one still as it was, or mid-sync, is not', () => {
    const v = { offset: 5000, dbsize: 1000, replid: 'r-old' };
    expect(candidateCollapsed('b', v, { role: 'replica', offset: 14, dbsize: 0, replid: 'r-new', primaryNode: 'a' })).toMatch(/b resynced since the verdict \(from a\): 1000 keys, offset 5000 of r-old then; 0 keys, offset 14 of r-new now/);
    expect(candidateCollapsed('b', v, { role: 'replica', offset: 5000, dbsize: 1000, replid: 'r-old' })).toBeUndefined();
    expect(candidateCollapsed('b', v, { role: 'primary', offset: 0, dbsize: 0 })).toBeUndefined();
  });
});

describe('the monitor round with the empty-primary guard', () => {
  it('(i/ii) a primary back EMPTY while its replicas hold the data is not followed: failover at once, last sight kept', () => {
    const start = run(initialDetectState(), [healthy(0)]).s;
    const { s, kinds, actions } = run(start, [
      probe(300, dead('a'), replica('b', 'a', 5000, 1000, { linkUp: false }), replica('c', 'a', 4990, 1000, { linkUp: false })),
      probe(600, primary('a', 'new', 0, 0), replica('b', 'a', 5000, 1000, { linkUp: false }), replica('c', 'a', 4990, 1000, { linkUp: false })),
    ]);
    expect(kinds).toEqual(['none', 'failover']);
    expect(actions[1]).toMatchObject({ returnedEmpty: { node: 'a', runId: 'new' } });
    expect(s.lastKnown).toMatchObject({ primary: 'a', offset: 5000 });
    expect(s.emptyReturns).toHaveLength(1);
    expect(s.verdict).toBe('dead');
  });

  it('(iii) found only after the replicas resynced from it: reported once as LOST with keys and offsets, then followed', () => {
    const start = run(initialDetectState(), [healthy(0)]).s;
    const resynced = (t: number) => probe(t, primary('a', 'new', 14, 0), replica('b', 'a', 14, 0, { replid: 'r-new' }), replica('c', 'a', 14, 0, { replid: 'r-new' }));
    const { s, kinds } = run(start, [resynced(600), resynced(900)]);
    expect(kinds).toEqual(['changed', 'none']);
    expect(s.emptyReturns).toHaveLength(1);
    expect(s.emptyReturns![0]).toMatchObject({ holders: [], before: { dbsize: 1000, offset: 5000 }, after: { dbsize: 0, offset: 14 } });
    expect(s.verdict).toBe('alive');
  });

  it('held while it runs under that run_id: once its replicas resynced from it (whatever it took since), the loss is recorded once', () => {
    const start = run(initialDetectState({ lastFailoverAtMs: Date.parse(at(0)) }), [healthy(0)]).s;
    const back = probe(600, primary('a', 'new', 0, 0), replica('b', 'a', 5000, 1000, { linkUp: false }), replica('c', 'a', 4990, 1000, { linkUp: false }));
    // It took 3000 keys since (more than it lost), its replicas resynced from it: still the same empty return.
    const later = (t: number) => probe(t, primary('a', 'new', 9000, 3000, 'r-new'), replica('b', 'a', 9000, 3000, { replid: 'r-new' }), replica('c', 'a', 9000, 3000, { replid: 'r-new' }));
    const { s, kinds } = run(start, [back, later(900), later(1200)]);
    expect(kinds).toEqual(['blocked', 'changed', 'none']);
    expect(s.emptyReturns!.map((e) => e.holders)).toEqual([['b', 'c'], []]);
    expect(s.emptyReturns![1].text).toMatch(/LOST \(1000 keys, offset 5000 -> 0\)/);
    expect(s.emptyPrimary).toBeUndefined();
  });

  it('anti-flapping still holds: blocked is reported with why, and the data is not followed meanwhile', () => {
    const start = run(initialDetectState({ lastFailoverAtMs: Date.parse(at(0)) }), [healthy(0)]).s;
    const { s, kinds } = run(start, [probe(600, primary('a', 'new', 0, 0), replica('b', 'a', 5000, 1000, { linkUp: false }), replica('c', 'a', 4990, 1000, { linkUp: false }))]);
    expect(kinds).toEqual(['blocked']);
    expect(s.verdict).toBe('blocked');
    expect(s.emptyPrimary?.node).toBe('a');
  });

  it('a replica restarted empty (a rolling restart without persistence) is no loss and no action', () => {
    const start = run(initialDetectState(), [healthy(0)]).s;
    const { s, kinds } = run(start, [probe(300, primary('a', 'old', 5100, 1000, 'r-old'), replica('b', 'a', 0, 0, { runId: 'run-b2', linkUp: false }), replica('c', 'a', 5100, 1000))]);
    expect(kinds).toEqual(['none']);
    expect(s.emptyReturns).toBeUndefined();
  });
});

describe('persistence off under an auto-restarting controller', () => {
  it('is a certain restart risk of the primary, naming the detection window', () => {
    const nodes = [primary('a', 'x', 1, 1), replica('b', 'a', 1, 1, { persistent: false, configFile: '/x.conf' })].map((n) => ({ ...n, configFile: '/x.conf', minReplicasToWrite: true }));
    const risks = redisRestartRisks(nodes, 'replication', { autoRestart: true, detectionWindowMs: 900 });
    expect(risks).toHaveLength(1);
    expect(risks[0]).toMatchObject({ node: 'a', certain: true });
    expect(risks[0].text).toMatch(/persistence OFF .* faster than the detection window \(900 ms here\)/);
    expect(redisRestartRisks(nodes, 'replication', { autoRestart: false })).toHaveLength(0);
    expect(redisRestartRisks(nodes.map((n) => ({ ...n, persistent: true })), 'replication', { autoRestart: true })).toHaveLength(0);
  });
});

describe('status', () => {
  it('flags the risk (with the controller) and prints the monitor\'s empty returns as ! lines', () => {
    const nodes = [primary('a', 'x', 1, 1), replica('b', 'a', 1, 1)].map((n) => ({ ...n, configFile: '/x.conf', minReplicasToWrite: true }));
    const st = redisClusterStatus('c', 'replication', nodes, { autoRestart: true, detectionWindowMs: 900 });
    st.monitor = { workflowId: 'handover-monitor-c', flagged: {}, emptyReturns: ['2026-01-01T00:00:00.000Z: a restarted ... the data is LOST (10 keys, offset 5 -> 0)'] };
    const text = formatClusterStatus(st).join('\n');
    expect(text).toMatch(/! restart risk: a is a primary with persistence OFF/);
    expect(text).toContain('! monitor: EMPTY PRIMARY 2026-01-01T00:00:00.000Z: a restarted ... the data is LOST (10 keys, offset 5 -> 0)');
  });
});
