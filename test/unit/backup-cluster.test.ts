/** Redis Cluster backups, the pure parts: one source per shard (a linked in-sync replica, else the primary), the refusals. */
import { describe, expect, it } from 'vitest';
import { chooseShardSources, type BackupSourceView } from '../../core/backup/decide';

const p = (node: string, slots: string): BackupSourceView => ({ node, reachable: true, role: 'primary', lag: 0, slots });
const r = (node: string, of: string, lag: number, replicating = true): BackupSourceView => ({ node, reachable: true, role: 'replica', replicaOf: of, replicating, lag });

describe('chooseShardSources', () => {
  it('takes each shard from a linked replica of its own primary within maxLag, else from the primary', () => {
    const c = chooseShardSources([p('a', '0-5460'), r('a2', 'a', 10), p('b', '5461-10922'), r('b2', 'b', 5000), p('c', '10923-16383'), r('c2', 'c', 0, false)], { maxLag: 100, allowPrimary: true });
    expect(c).toEqual({
      shards: [
        expect.objectContaining({ slots: '0-5460', primary: 'a', node: 'a2', role: 'replica' }),
        expect.objectContaining({ slots: '5461-10922', primary: 'b', node: 'b', role: 'primary' }),
        expect.objectContaining({ slots: '10923-16383', primary: 'c', node: 'c', role: 'primary' }),
      ],
    });
  });

  it('refuses: an unreachable node, no primary with slots, --replica-only without a healthy replica', () => {
    expect(chooseShardSources([p('a', '0-16383'), { node: 'x', reachable: false }], { maxLag: 100, allowPrimary: true })).toEqual({ refusal: expect.stringMatching(/x unreachable/) });
    expect(chooseShardSources([p('a', '')], { maxLag: 100, allowPrimary: true })).toEqual({ refusal: 'no primary serves slots' });
    expect(chooseShardSources([p('a', '0-16383'), r('a2', 'a', 5000)], { maxLag: 100, allowPrimary: false })).toEqual({ refusal: expect.stringMatching(/shard 0-16383 \(a\) has no healthy in-sync replica/) });
  });
});
