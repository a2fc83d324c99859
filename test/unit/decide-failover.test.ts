import { describe, expect, it } from 'vitest';
import { chooseFailoverCandidate, deadMasterRound } from '../../core/redis/failover';
import { confirmedDead, whyBlocked } from '../../core/failover';
import type { RedisNodeProbe } from '../../core/types';

const n = (node: string, over: Partial<RedisNodeProbe> = {}): RedisNodeProbe => ({ node, address: node, promotion: 'neutral', reachable: true, role: 'replica', primaryNode: 'a', linkUp: false, offset: 100, dbsize: 5, ...over });
const deadA = n('a', { reachable: false, role: undefined, primaryNode: undefined });

describe('DeadMaster rule', () => {
  it('is dead only when unreachable and every reachable replica has its link down', () => {
    expect(deadMasterRound([deadA, n('b'), n('c')], 'a')).toMatchObject({ dead: true });
    expect(deadMasterRound([deadA, n('b'), n('c', { linkUp: true })], 'a')).toEqual({ dead: false, reason: 'c still linked to a' });
    expect(deadMasterRound([n('a', { role: 'primary', primaryNode: undefined }), n('b')], 'a')).toMatchObject({ dead: false, reason: 'a answers as primary' });
    expect(deadMasterRound([deadA, n('b', { reachable: false })], 'a')).toMatchObject({ dead: false, reason: expect.stringMatching(/no reachable replica/) });
  });
  it('needs N consecutive dead rounds: one lost probe is not a dead primary', () => {
    const d = { dead: true as const, primary: 'a', reason: '' };
    const alive = { dead: false as const, reason: '' };
    expect(confirmedDead([d], 3)).toBe(false);
    expect(confirmedDead([d, alive, d, d], 3)).toBe(false);
    expect(confirmedDead([alive, d, d, d], 3)).toBe(true);
  });
});

describe('failover candidate', () => {
  it('is the most advanced reachable, promotable replica holding data', () => {
    expect(chooseFailoverCandidate([deadA, n('b', { offset: 90 }), n('c', { offset: 95 })], 'a')).toMatchObject({ candidate: 'c', followers: ['b'] });
    expect(chooseFailoverCandidate([deadA, n('b', { offset: 90 }), n('c', { offset: 95, promotion: 'never' })], 'a')).toMatchObject({ candidate: 'b' });
    expect(chooseFailoverCandidate([deadA, n('b', { offset: 99, dbsize: 0 }), n('c', { offset: 95 })], 'a')).toMatchObject({ candidate: 'c' });
    expect(chooseFailoverCandidate([deadA, n('b', { reachable: false })], 'a')).toEqual({ refusal: expect.stringMatching(/no reachable, promotable replica/) });
  });
});

describe('anti-flapping', () => {
  it('blocks a second failover within the period unless acknowledged', () => {
    expect(whyBlocked(undefined, 1000, 600_000, false)).toBeUndefined();
    expect(whyBlocked(1000, 61_000, 600_000, false)).toMatch(/last failover was 60 s ago/);
    expect(whyBlocked(1000, 61_000, 600_000, true)).toBeUndefined();
    expect(whyBlocked(1000, 700_000, 600_000, false)).toBeUndefined();
  });
});
