import { describe, expect, it } from 'vitest';
import { decideRedisSwitchover, recheckRedisDecision } from '../../core/redis/decide';
import type { RedisNodeProbe } from '../../core/types';

const primary = (over: Partial<RedisNodeProbe> = {}): RedisNodeProbe => ({
  node: 'a', address: '127.0.0.1:1', promotion: 'neutral', reachable: true, role: 'primary', offset: 1000, dbsize: 10, failoverState: 'no-failover', ...over,
});
const replica = (node: string, over: Partial<RedisNodeProbe> = {}): RedisNodeProbe => ({
  node, address: `127.0.0.1:${node}`, promotion: 'neutral', reachable: true, role: 'replica', primaryNode: 'a', linkUp: true, offset: 1000, dbsize: 10, ...over,
});
const policy = { maxLagBytes: 100 };

describe('decideRedisSwitchover', () => {
  it('picks the highest offset, then prefer over neutral, then name', () => {
    const r = decideRedisSwitchover([primary(), replica('c', { offset: 990 }), replica('b', { offset: 995 })], { policy });
    expect(r.ok && r.decision.candidate).toBe('b');
    if (!r.ok) return;
    expect(r.decision.lagging.map((n) => n.node)).toEqual(['c']);
    expect(r.decision.followers).toEqual(['c']);

    const tie = decideRedisSwitchover([primary(), replica('b'), replica('c', { promotion: 'prefer' })], { policy });
    expect(tie.ok && tie.decision.candidate).toBe('c');
    const byName = decideRedisSwitchover([primary(), replica('c'), replica('b')], { policy });
    expect(byName.ok && byName.decision.candidate).toBe('b');
    expect(byName.ok && byName.decision.equal.map((n) => n.node)).toEqual(['c']);
  });

  it('sorts rejected nodes with a reason each', () => {
    const r = decideRedisSwitchover(
      [primary(), replica('b'), replica('c', { reachable: false, error: 'ECONNREFUSED' }), replica('d', { promotion: 'never', offset: 1000 }), replica('e', { linkUp: false })],
      { policy },
    );
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.decision.candidate).toBe('b');
    expect(r.decision.cannotReplicate.map((n) => n.node).sort()).toEqual(['c', 'e']);
    expect(r.decision.equal).toEqual([expect.objectContaining({ node: 'd', reason: expect.stringContaining('promotion: never') })]);
  });

  it.each([
    ['TargetIsPrimary', 'a', [primary(), replica('b')]],
    ['UnknownNode', 'zz', [primary(), replica('b')]],
    ['NotReplicaOfPrimary', 'b', [primary(), replica('b', { primaryNode: 'c' }), replica('c')]],
    ['TargetLinkDown', 'b', [primary(), replica('b', { linkUp: false })]],
    ['TargetPromotionNever', 'b', [primary(), replica('b', { promotion: 'never' })]],
    ['TargetEmpty', 'b', [primary(), replica('b', { dbsize: 0 })]],
    ['TargetLagging', 'b', [primary(), replica('b', { offset: 800 })]],
    ['TargetUnreachable', 'b', [primary(), replica('b', { reachable: false })]],
  ] as const)('refuses --to with %s', (code, to, nodes) => {
    const r = decideRedisSwitchover([...nodes], { to, policy });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.refusal.code).toBe(code);
    expect(r.refusal.message).toMatch(new RegExp(to));
  });

  it('allows an empty candidate when the primary is empty too', () => {
    const r = decideRedisSwitchover([primary({ dbsize: 0 }), replica('b', { dbsize: 0 })], { policy });
    expect(r.ok && r.decision.candidate).toBe('b');
  });

  it('refuses without a single live primary, and when no replica qualifies', () => {
    const none = decideRedisSwitchover([primary({ reachable: false }), replica('b')], { policy });
    expect(!none.ok && none.refusal.code).toBe('NoPrimary');
    const two = decideRedisSwitchover([primary(), replica('b', { role: 'primary' })], { policy });
    expect(!two.ok && two.refusal.code).toBe('MultiplePrimaries');
    const noCand = decideRedisSwitchover([primary(), replica('b', { offset: 1 }), replica('c', { promotion: 'never' })], { policy });
    expect(!noCand.ok && noCand.refusal.code).toBe('NoEligibleCandidate');
    if (!noCand.ok) expect(noCand.refusal.rejected.map((x) => x.node).sort()).toEqual(['b', 'c']);
  });
});

describe('recheckRedisDecision (veto)', () => {
  it('holds when nothing changed', () => {
    expect(recheckRedisDecision([primary(), replica('b')], { primary: 'a', candidate: 'b' }, policy)).toBeUndefined();
  });
  it('vetoes a changed primary, a failover in progress, or a candidate that stopped qualifying', () => {
    expect(recheckRedisDecision([primary({ node: 'x' }), replica('b', { primaryNode: 'x' })], { primary: 'a', candidate: 'b' }, policy)).toMatch(/primary changed/);
    expect(recheckRedisDecision([primary({ failoverState: 'waiting-for-sync' }), replica('b')], { primary: 'a', candidate: 'b' }, policy)).toMatch(/in progress/);
    expect(recheckRedisDecision([primary(), replica('b', { linkUp: false })], { primary: 'a', candidate: 'b' }, policy)).toMatch(/no longer qualifies.*link/);
  });
});
