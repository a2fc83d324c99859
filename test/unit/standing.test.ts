import { describe, expect, it } from 'vitest';
import { nodesNotFollowing, shardStandingOf, standingAfterVerify, standingFromDetails, standingLine, standingOf } from '../../core/standing';
import type { ClusterStatus } from '../../core/status';

const status = (nodes: ClusterStatus['nodes'], primaries: string[]): ClusterStatus => ({ cluster: 'c', engine: 'redis', topology: 'replication', primaries, nodes, problems: [] });
const n = (node: string, o: Partial<ClusterStatus['nodes'][number]> = {}) => ({ node, address: `${node}:1`, reachable: true, ...o });

describe('where a cluster stands (core/standing.ts)', () => {
  const st = status(
    [
      n('b', { role: 'primary' }),
      n('a', { role: 'replica', replicaOf: 'b', linkUp: true, link: 'up' }),
      n('c', { role: 'replica', replicaOf: 'b', linkUp: false, link: 'down' }),
      n('d', { reachable: false, error: 'timeout after 2500 ms' }),
      n('e', { role: 'replica', replicaOf: 'a', linkUp: true, link: 'up' }),
    ],
    ['b'],
  );

  it('sorts every node but the primary into following / not following, each with why', () => {
    const s = standingOf(st, { expected: 'b', previousPrimary: 'a' });
    expect(s).toEqual({
      primary: 'b',
      previousPrimary: 'a',
      changed: true,
      following: ['a'],
      notFollowing: [
        { node: 'c', reason: 'its replication link to b is down (down; wrong replication credentials, or the network)' },
        { node: 'd', reason: 'unreachable (timeout after 2500 ms)' },
        { node: 'e', reason: 'it replicates from a, not from b' },
      ],
    });
    expect(standingLine(s)).toBe(
      'the primary is now b (was a); following b: a; NOT following: c (its replication link to b is down (down; wrong replication credentials, or the network)); d (unreachable (timeout after 2500 ms)); e (it replicates from a, not from b)',
    );
  });

  it('an unchanged primary is said so; no single primary is said so', () => {
    expect(standingOf(st, { previousPrimary: 'b' })).toMatchObject({ primary: 'b', changed: false });
    expect(standingOf(st, { previousPrimary: 'b' }).previousPrimary).toBeUndefined();
    const two = standingOf(status([n('a', { role: 'primary' }), n('b', { role: 'primary' })], ['a', 'b']));
    expect(two.primary).toBeUndefined();
    expect(standingLine(two)).toMatch(/^no single primary could be seen \(a: 2 primaries: a, b; b: 2 primaries: a, b\)/);
  });

  it('before a switchover (plan, decide): the nodes that will not follow, the primary and candidate excepted', () => {
    expect(nodesNotFollowing(st, ['b', 'a']).map((x) => x.node)).toEqual(['c', 'd']);
  });

  it('Dolt read replicas through a remote: a node neither primary nor replica, and a diverged replica, say so', () => {
    const remote = status(
      [
        n('p', { role: 'primary', position: 'pushing to origin' }),
        n('r', { role: 'replica', replicaOf: 'p', link: 'via origin', linkUp: true, lagCommits: 0 }),
        n('f', { position: 'fenced' }),
        n('d', { role: 'replica', replicaOf: 'p', link: 'via origin', linkUp: false, lagCommits: null }),
      ],
      ['p'],
    );
    expect(standingOf(remote)).toEqual({
      primary: 'p',
      changed: false,
      following: ['r'],
      notFollowing: [
        { node: 'f', reason: 'neither a primary nor a replica (fenced)' },
        { node: 'd', reason: "it has diverged from p (its head is not in the primary's history)" },
      ],
    });
  });

  it('a Redis Cluster shard: only its nodes count (the seeds and whoever replicates from them now)', () => {
    const cluster = status(
      [
        n('a', { reachable: false, error: 'connect ECONNREFUSED' }),
        n('b', { role: 'primary' }),
        n('c', { role: 'replica', replicaOf: 'b', linkUp: true, link: 'up' }),
        n('x', { role: 'primary' }),
        n('y', { role: 'replica', replicaOf: 'x', linkUp: true, link: 'up' }),
      ],
      ['b', 'x'],
    );
    expect(shardStandingOf(cluster, ['a', 'b'], { expected: 'b', previousPrimary: 'a' })).toEqual({
      primary: 'b',
      previousPrimary: 'a',
      changed: true,
      following: ['c'],
      notFollowing: [{ node: 'a', reason: 'unreachable (connect ECONNREFUSED)' }],
    });
    expect(shardStandingOf(cluster, ['x'])).toEqual({ primary: 'x', changed: false, following: ['y'], notFollowing: [] });
  });

  it('a failure carries it in its first detail', () => {
    const s = standingOf(st, { expected: 'b' });
    expect(standingFromDetails([{ standing: s }])).toEqual(s);
    expect(standingFromDetails([{ code: 'x' }])).toBeUndefined();
    expect(standingFromDetails(undefined)).toBeUndefined();
  });

  it('without a primary each node says what it is doing (a failover refusal)', () => {
    const none = standingOf(status([n('a', { reachable: false, error: 'connect ECONNREFUSED' }), n('b', { role: 'replica', replicaOf: 'a', linkUp: false, link: 'down' })], []));
    expect(standingLine(none)).toBe('no single primary could be seen (a: unreachable (connect ECONNREFUSED); b: no primary; a replica of a, link down)');
  });

  it('after a verification: the verified nodes follow, the ones left out say why', () => {
    const s = standingAfterVerify('b', 'a', ['a', 'b', 'c'], [{ node: 'd', reason: 'unreachable' }]);
    expect(s).toEqual({ primary: 'b', previousPrimary: 'a', changed: true, following: ['a', 'c'], notFollowing: [{ node: 'd', reason: 'unreachable' }] });
    expect(standingAfterVerify('b', 'b', ['a', 'b'], [])).toEqual({ primary: 'b', changed: false, following: ['a'], notFollowing: [] });
  });
});
