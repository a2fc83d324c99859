/** The monitor's per-round decision (core/monitor-round.ts): when the detection loop returns to the workflow, and why. */
import { describe, expect, it } from 'vitest';
import { initialDetectState, redisMonitorRound, failedProbeRound, type DetectState } from '../../core/monitor-round';
import type { RedisClusterProbe, RedisNodeProbe } from '../../core/types';

const policy = { probeIntervalMs: 300, probesToConfirm: 3, failoverBlockMs: 60_000 } as RedisClusterProbe['policy'];
const at = (t: number) => new Date(1_700_000_000_000 + t).toISOString();
const primary = (node: string, offset = 100): RedisNodeProbe => ({ node, address: `${node}:1`, promotion: 'neutral', reachable: true, role: 'primary', offset, dbsize: 5 });
const replica = (node: string, of: string, linkUp = true): RedisNodeProbe => ({ node, address: `${node}:1`, promotion: 'neutral', reachable: true, role: 'replica', primaryNode: of, linkUp, offset: 100, dbsize: 5 });
const dead = (node: string): RedisNodeProbe => ({ node, address: `${node}:1`, promotion: 'neutral', reachable: false, error: 'ECONNREFUSED' });
const probe = (t: number, ...nodes: RedisNodeProbe[]): RedisClusterProbe => ({ cluster: 'c', engine: 'redis', policy, nodes, probedAt: at(t) });

function run(s: DetectState, probes: RedisClusterProbe[]) {
  const actions: string[] = [];
  for (const p of probes) {
    const r = redisMonitorRound(s, p, Date.parse(p.probedAt));
    s = r.state;
    actions.push(r.action.kind);
  }
  return { s, actions };
}

describe('one monitor round, decided', () => {
  it('adopts the fleet primary once (a change), then stays quiet while it lives, refreshing its offset', () => {
    const { s, actions } = run(initialDetectState(), [probe(0, primary('a', 10), replica('b', 'a'), replica('c', 'a')), probe(300, primary('a', 20), replica('b', 'a'), replica('c', 'a'))]);
    expect(actions).toEqual(['changed', 'none']);
    expect(s.lastKnown).toMatchObject({ primary: 'a', offset: 20 });
    expect(s.rounds).toBe(2);
    expect(s.verdict).toBe('alive');
  });

  it('returns a failover only after probesToConfirm consecutive DeadMaster rounds, with the last sighting kept', () => {
    const start = run(initialDetectState(), [probe(0, primary('a', 42), replica('b', 'a'), replica('c', 'a'))]).s;
    const gone = (t: number) => probe(t, dead('a'), replica('b', 'a', false), replica('c', 'a', false));
    const { s, actions } = run(start, [gone(300), gone(600), gone(900)]);
    expect(actions).toEqual(['none', 'none', 'failover']);
    expect(s.lastKnown).toMatchObject({ primary: 'a', offset: 42 });
    expect(s.firstDeadAt).toBe(Date.parse(at(300)));
    expect(s.lostSightAt).toBe(Date.parse(at(300)));
  });

  it('one live round in between restarts the count (a brief outage is no death)', () => {
    const start = run(initialDetectState(), [probe(0, primary('a'), replica('b', 'a'), replica('c', 'a'))]).s;
    const gone = (t: number) => probe(t, dead('a'), replica('b', 'a', false), replica('c', 'a', false));
    const { actions } = run(start, [gone(300), gone(600), probe(900, primary('a'), replica('b', 'a'), replica('c', 'a')), gone(1200), gone(1500)]);
    expect(actions).toEqual(['none', 'none', 'none', 'none', 'none']);
  });

  it('a node claiming the primary role beside the live primary is to be fenced first', () => {
    const start = run(initialDetectState(), [probe(0, primary('b'), replica('c', 'b'), dead('a'))]).s;
    const r = redisMonitorRound(start, probe(300, primary('a'), primary('b'), replica('c', 'b')), Date.parse(at(300)));
    expect(r.action).toEqual({ kind: 'fence', primary: 'b', nodes: ['a'] });
  });

  it('an anti-flapping block is reported once, not every round, and an acknowledgement lets the failover through', () => {
    const start = run(initialDetectState({ lastFailoverAtMs: Date.parse(at(0)) }), [probe(0, primary('a'), replica('b', 'a'), replica('c', 'a'))]).s;
    const gone = (t: number) => probe(t, dead('a'), replica('b', 'a', false), replica('c', 'a', false));
    const { s, actions } = run(start, [gone(300), gone(600), gone(900), gone(1200)]);
    expect(actions).toEqual(['none', 'none', 'blocked', 'none']);
    const acked = redisMonitorRound({ ...s, acknowledged: true }, gone(1500), Date.parse(at(1500)));
    expect(acked.action.kind).toBe('failover');
  });

  it('a failed probe is a blind round: said once, and the primary counts as unseen from then', () => {
    const start = run(initialDetectState(), [probe(0, primary('a'), replica('b', 'a'))]).s;
    const r1 = failedProbeRound(start, 'inventory unreadable', 500);
    expect(r1.action.kind).toBe('changed');
    expect(r1.state.lostSightAt).toBe(500);
    expect(failedProbeRound(r1.state, 'inventory unreadable', 800).action.kind).toBe('none');
  });
});
