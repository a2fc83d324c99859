/** The pure part of restoring a Redis Cluster backup into a scratch cluster (core/backup/cluster-restore.ts). */
import { describe, expect, it } from 'vitest';
import { checkScratchKeys, formatSlots, parseClusterNodes, parseSlots, planScratchCluster, scratchClusterDisagreement, slotsToAdd, type ScratchNodeView } from '../../core/backup/cluster-restore';

const SHARDS = [{ slots: '0-5460' }, { slots: '5461-10922' }, { slots: '10923-16383' }];

describe('scratch cluster restore: slots', () => {
  it('parses and formats CLUSTER NODES slot lists, ignoring migration entries', () => {
    expect(parseSlots('0-2 7 [9->-abc]').size).toBe(4);
    expect(formatSlots(parseSlots('7 0-2 3'))).toBe('0-3 7');
    expect(formatSlots([])).toBe('');
    expect(() => parseSlots('5-3')).toThrow(/not a slot range/);
    expect(() => parseSlots('16384')).toThrow(/not a slot range/);
  });

  it('plans a cluster from the shards: overlap refused, partial coverage said', () => {
    expect(planScratchCluster(SHARDS)).toEqual({ ok: true, fullCoverage: true });
    expect(planScratchCluster([{ slots: '0-100' }])).toEqual({ ok: true, fullCoverage: false });
    const r = planScratchCluster([{ slots: '0-100' }, { slots: '100-200' }]);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.refusal).toMatch(/shards 1 \(0-100\) and 2 \(100-200\) both list slot 100/);
    expect(planScratchCluster([{ slots: '' }]).ok).toBe(false);
  });

  it('adds only the slots a node did not claim from its keys; a claimed slot outside the shard is refused', () => {
    const a = slotsToAdd('0-9', '2 5');
    expect('add' in a && a.add).toEqual([0, 1, 3, 4, 6, 7, 8, 9]);
    expect(slotsToAdd('0-9', '0-9')).toEqual({ add: [] });
    expect(slotsToAdd('0-9', '3 12-13')).toEqual({ refusal: 'it holds keys in slots 12-13 outside its recorded slots 0-9' });
  });
});

describe('scratch cluster restore: convergence and keys', () => {
  const line = (id: string, port: number, slots: string, flags = 'master', link = 'connected') => `${id} 127.0.0.1:${port}@${port + 1} ${flags} - 0 0 1 ${link} ${slots}`;
  const view = (i: number, text: string, state = 'ok', dbsize = 10): ScratchNodeView => ({ address: `127.0.0.1:${7000 + i}`, myId: `n${i}`, state, nodes: parseClusterNodes(text), dbsize });
  const all = (me: number) => [0, 1, 2].map((i) => line(`n${i}`, 7000 + i, SHARDS[i].slots, i === me ? 'myself,master' : 'master')).join('\n');

  it('agrees when every node says ok and lists every node as a connected master with its shard\'s slots', () => {
    expect(scratchClusterDisagreement(SHARDS, [0, 1, 2].map((i) => view(i, all(i))))).toBeUndefined();
  });

  it('names the first disagreement: state, a missing node, a handshake, wrong slots', () => {
    expect(scratchClusterDisagreement(SHARDS, [view(0, all(0), 'fail'), view(1, all(1)), view(2, all(2))])).toBe('127.0.0.1:7000 says cluster_state:fail');
    expect(scratchClusterDisagreement(SHARDS, [view(0, line('n0', 7000, '0-5460', 'myself,master')), view(1, all(1)), view(2, all(2))])).toBe('127.0.0.1:7000 lists 1 nodes, not 3');
    const hs = [line('n0', 7000, '0-5460', 'myself,master'), line('n1', 7001, '5461-10922', 'master,handshake'), line('n2', 7002, '10923-16383')].join('\n');
    expect(scratchClusterDisagreement(SHARDS, [view(0, hs), view(1, all(1)), view(2, all(2))])).toBe('127.0.0.1:7000 sees 127.0.0.1:7001 as master,handshake');
    const wrong = [line('n0', 7000, '0-5460', 'myself,master'), line('n1', 7001, ''), line('n2', 7002, '10923-16383')].join('\n');
    expect(scratchClusterDisagreement(SHARDS, [view(0, wrong), view(1, all(1)), view(2, all(2))])).toBe('127.0.0.1:7000 sees 127.0.0.1:7001 owning no slots, not 5461-10922');
  });

  it('checks each node\'s DBSIZE against its shard\'s record', () => {
    const shards = SHARDS.map((s) => ({ ...s, dbsize: 10 }));
    expect(checkScratchKeys(shards, [0, 1, 2].map((i) => ({ address: `a${i}`, dbsize: 10 })))).toBeUndefined();
    expect(checkScratchKeys(shards, [{ address: 'a0', dbsize: 10 }, { address: 'a1', dbsize: 9 }, { address: 'a2', dbsize: 10 }])).toBe('shard 5461-10922 restored into a1 holds 9 keys, the manifest records 10');
  });
});
