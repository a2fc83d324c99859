/** Redis Cluster shard switchover decision (pure): the shard by slot or node, the candidate, the refusals. */
import { describe, expect, it } from 'vitest';
import { decideClusterShardSwitchover, slotsInclude } from '../../core/redis/cluster-switchover';
import type { SpecProbe } from '../../core/redis/rolling';

const n = (node: string, over: Partial<SpecProbe>): SpecProbe => ({ node, address: node, promotion: 'neutral', reachable: true, role: 'replica', linkUp: true, offset: 100, clusterOk: true, ...over });
const nodes = [
  n('a', { role: 'primary', slots: '0-5460', linkUp: undefined }),
  n('b', { role: 'primary', slots: '5461-10922', linkUp: undefined }),
  n('a2', { primaryNode: 'a', offset: 100 }),
  n('a3', { primaryNode: 'a', offset: 90 }),
  n('b2', { primaryNode: 'b' }),
];
const o = { maxLagBytes: 50 };

describe('Redis Cluster shard switchover decision', () => {
  it('reads slot lists', () => {
    expect(slotsInclude('0-5460 10923', 10923)).toBe(true);
    expect(slotsInclude('0-5460 [5461->-abc]', 5461)).toBe(false);
    expect(slotsInclude('', 0)).toBe(false);
  });

  it('finds the shard by slot or by node; a named replica is the candidate, else the most advanced in-sync one', () => {
    const bySlot = decideClusterShardSwitchover(nodes, { ...o, shard: '17' });
    expect(bySlot).toMatchObject({ ok: true, decision: { primary: 'a', candidate: 'a2', slots: '0-5460', others: ['a3'] } });
    expect(decideClusterShardSwitchover(nodes, { ...o, shard: 'a' })).toMatchObject({ ok: true, decision: { primary: 'a', candidate: 'a2' } });
    expect(decideClusterShardSwitchover(nodes, { ...o, shard: 'a3' })).toMatchObject({ ok: true, decision: { primary: 'a', candidate: 'a3' } });
    expect(decideClusterShardSwitchover(nodes, { ...o, shard: '6000', to: 'b2' })).toMatchObject({ ok: true, decision: { primary: 'b', candidate: 'b2' } });
  });

  it('refuses with the reason: unknown node or slot, a replica of another shard, a lagging or unlinked candidate, cluster not ok, a dead primary', () => {
    const code = (shard: string, to?: string, ns = nodes) => {
      const r = decideClusterShardSwitchover(ns, { ...o, shard, to });
      return r.ok ? 'ok' : r.refusal.code;
    };
    expect(code('zz')).toBe('UnknownShard');
    expect(code('16384')).toBe('UnknownShard');
    expect(code('16000')).toBe('UnknownShard'); // no primary serves it
    expect(code('a', 'b2')).toBe('NotReplicaOfPrimary');
    expect(code('a', undefined, nodes.map((x) => (x.node.startsWith('a') && x.role === 'replica' ? { ...x, linkUp: false } : x)))).toBe('NoEligibleCandidate');
    expect(code('a3', undefined, nodes.map((x) => (x.node === 'a3' ? { ...x, offset: 10 } : x)))).toBe('CandidateLagging');
    expect(code('a', undefined, nodes.map((x) => (x.node === 'b2' ? { ...x, clusterOk: false } : x)))).toBe('ClusterNotOk');
    expect(code('a2', undefined, nodes.map((x) => (x.node === 'a' ? { ...x, reachable: false } : x)))).toBe('NodeDown');
  });
});
