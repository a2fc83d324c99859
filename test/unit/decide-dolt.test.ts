import { describe, expect, it } from 'vitest';
import { decideDoltFailover, decideDoltSwitchover, hashMismatches, maxEpoch, type DoltNodeProbe } from '../../core/dolt/decide';
import { doltClusterStatus, formatClusterStatus } from '../../core/status';

const row = (remote: string, o: { lag?: number | null; error?: string | null; epoch?: number; role?: string; lastUpdate?: string } = {}) => ({
  database: 'app',
  remote,
  role: o.role ?? 'primary',
  epoch: o.epoch ?? 1,
  lagMillis: o.lag === undefined ? 0 : o.lag,
  lastUpdate: o.lastUpdate ?? null,
  error: o.error ?? null,
});
const node = (id: string, role: DoltNodeProbe['role'], epoch: number, extra: Partial<DoltNodeProbe> = {}): DoltNodeProbe => ({ node: id, address: `127.0.0.1:${id}`, promotion: 'neutral', reachable: true, role, epoch, replication: [], ...extra });
const policy = { maxLagMillis: 10_000 };

describe('Dolt switchover decision', () => {
  const pair = () => [node('a', 'primary', 3, { replication: [row('b', { lag: 40, epoch: 3 })] }), node('b', 'standby', 3, { replication: [row('b', { role: 'standby', epoch: 3, lag: null })] })];

  it('promotes the standby at one epoch more than any seen', () => {
    const r = decideDoltSwitchover(pair(), { policy });
    expect(r).toMatchObject({ ok: true, decision: { primary: 'a', candidate: 'b', followers: [], epoch: 4, fromEpoch: 3 } });
    const seenHigher = pair();
    seenHigher[0].replication![0].epoch = 9;
    expect(decideDoltSwitchover(seenHigher, { policy })).toMatchObject({ ok: true, decision: { epoch: 10 } });
  });

  it('refuses with the reason and nothing changed', () => {
    const down = pair();
    down[1] = { node: 'b', address: 'x', reachable: false, error: 'ECONNREFUSED' };
    expect(decideDoltSwitchover(down, { policy })).toMatchObject({ ok: false, refusal: { errorType: 'PreconditionFailed', message: expect.stringMatching(/b unreachable \(ECONNREFUSED\).*nothing was changed/) } });
    expect(decideDoltSwitchover(pair(), { to: 'a', policy })).toMatchObject({ ok: false, refusal: { message: expect.stringMatching(/already the primary/) } });
    expect(decideDoltSwitchover(pair(), { to: 'z', policy })).toMatchObject({ ok: false, refusal: { errorType: 'UnknownNode' } });
    const noPrimary = pair();
    noPrimary[0].role = 'standby';
    expect(decideDoltSwitchover(noPrimary, { policy })).toMatchObject({ ok: false, refusal: { errorType: 'UnexpectedTopology', message: expect.stringMatching(/no primary/) } });
    const otherEpoch = pair();
    otherEpoch[1].epoch = 2;
    expect(decideDoltSwitchover(otherEpoch, { policy })).toMatchObject({ ok: false, refusal: { message: expect.stringMatching(/does not follow this primary/) } });
    const failing = pair();
    failing[0].replication = [row('b', { error: 'connection refused' })];
    expect(decideDoltSwitchover(failing, { policy })).toMatchObject({ ok: false, refusal: { message: expect.stringMatching(/not caught up: app→b error: connection refused/) } });
    const lagging = pair();
    lagging[0].replication = [row('b', { lag: 20_000 })];
    expect(decideDoltSwitchover(lagging, { policy })).toMatchObject({ ok: false, refusal: { message: expect.stringMatching(/lag 20000 ms/) } });
    const broken = pair();
    broken[1].role = 'detected_broken_config';
    expect(decideDoltSwitchover(broken, { policy })).toMatchObject({ ok: false, refusal: { message: expect.stringMatching(/detected_broken_config/) } });
    const never = pair();
    never[1].promotion = 'never';
    expect(decideDoltSwitchover(never, { policy })).toMatchObject({ ok: false, refusal: { message: expect.stringMatching(/promotion: never/) } });
  });

  it('with several standbys, prefers promotion: prefer and moves the others to the new epoch', () => {
    const three = [node('a', 'primary', 1, { replication: [row('b'), row('c')] }), node('b', 'standby', 1), node('c', 'standby', 1, { promotion: 'prefer' })];
    expect(decideDoltSwitchover(three, { policy })).toMatchObject({ ok: true, decision: { candidate: 'c', followers: ['b'], epoch: 2 } });
  });
});

describe('Dolt failover decision', () => {
  it('refuses while a primary answers; otherwise promotes the standby that heard last, at a higher epoch', () => {
    expect(decideDoltFailover([node('a', 'primary', 1), node('b', 'standby', 1)])).toMatchObject({ ok: false, refusal: { message: expect.stringMatching(/a answers as primary/) } });
    const dead: DoltNodeProbe = { node: 'a', address: 'x', reachable: false };
    const r = decideDoltFailover([
      dead,
      node('b', 'standby', 5, { replication: [row('b', { role: 'standby', epoch: 5, lastUpdate: '2026-01-01 10:00:00' })] }),
      node('c', 'standby', 5, { replication: [row('c', { role: 'standby', epoch: 5, lastUpdate: '2026-01-01 10:00:03' })] }),
    ]);
    expect(r).toMatchObject({ ok: true, decision: { candidate: 'c', followers: ['b'], unreachable: ['a'], epoch: 6 } });
    expect(decideDoltFailover([dead, node('b', 'standby', 1, { promotion: 'never' })])).toMatchObject({ ok: false, refusal: { message: expect.stringMatching(/no reachable standby may be promoted/) } });
  });
  it('maxEpoch and hash comparison', () => {
    expect(maxEpoch([])).toBe(0);
    expect(maxEpoch([node('a', 'standby', 2, { replication: [row('x', { epoch: 7 })] })])).toBe(7);
    expect(hashMismatches({ a: '1', b: '2' }, { a: '1', b: '3', c: '4' })).toEqual(['b', 'c']);
  });
});

describe('Dolt status', () => {
  it('shows the primary, each standby with epoch and lag, and the problems', () => {
    const s = doltClusterStatus('d', [node('a', 'primary', 2, { replication: [row('b', { lag: 12, epoch: 2 })] }), node('b', 'standby', 2)]);
    expect(s).toMatchObject({ engine: 'dolt', primaries: ['a'], problems: [] });
    expect(s.nodes[1]).toMatchObject({ role: 'replica', replicaOf: 'a', linkUp: true, lagMillis: 12, epoch: 2 });
    expect(formatClusterStatus(s).join('\n')).toMatch(/b +127\.0\.0\.1:b +replica of a +12 ms +\S+ +- +- +up/);
    const bad = doltClusterStatus('d', [node('a', 'primary', 2, { replication: [row('b', { error: 'refused', lag: null })] }), node('b', 'standby', 1), { node: 'c', address: 'x', reachable: false }]);
    expect(bad.problems).toEqual(expect.arrayContaining([expect.stringMatching(/b is standby at epoch 1, the primary a at 2/), 'c unreachable']));
    expect(doltClusterStatus('d', [node('a', 'primary', 2), node('b', 'primary', 3)]).problems[0]).toMatch(/2 primaries/);
  });
});
