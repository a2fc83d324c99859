/**
 * The empty-primary guard for MySQL/MariaDB (core/mysql/empty-primary.ts) and how the monitor round uses it
 * (core/monitor-round.ts): a primary back without its data (wiped, restored, RESET MASTER) while replicas hold it
 * is never followed (failover at once, its last sight kept); found with nobody holding the data it is reported as
 * LOST once; a failover candidate whose position went backwards since the verdict is refused.
 */
import { describe, expect, it } from 'vitest';
import { initialDetectState, mysqlMonitorRound, type DetectState } from '../../core/monitor-round';
import { mysqlCandidateLostData, mysqlCollapsed, mysqlPrimaryReset, restarted, updateMysqlDatasets } from '../../core/mysql/empty-primary';
import type { MysqlFailoverNodeProbe, MysqlFailoverProbe } from '../../core/mysql/failover';
import { formatMonitorStatus } from '../../client/commands/monitor';
import { formatClusterStatus, mysqlClusterStatus, type ClusterStatus } from '../../core/status';

const policy = { probeIntervalMs: 300, probesToConfirm: 3, failoverBlockMs: 60_000, catchUpTimeoutMs: 5000, verifyTimeoutMs: 5000 };
const at = (t: number) => new Date(1_700_000_000_000 + t).toISOString();
const base = (node: string): MysqlFailoverNodeProbe => ({ node, address: `${node}:1`, promotion: 'neutral', reachable: true });
const primary = (node: string, gtid: string, o: Partial<MysqlFailoverNodeProbe> = {}): MysqlFailoverNodeProbe => ({
  ...base(node),
  role: 'primary',
  readOnly: false,
  gtidBinlogPos: gtid,
  gtidCurrentPos: gtid,
  gtidSlavePos: '',
  gtidBinlogState: gtid,
  startedAt: 1000,
  ...o,
});
const replica = (node: string, of: string, gtid: string, o: Partial<MysqlFailoverNodeProbe> = {}): MysqlFailoverNodeProbe => ({
  ...base(node),
  role: 'replica',
  readOnly: true,
  sourceNode: of,
  ioRunning: 'Yes',
  sqlRunning: true,
  gtidBinlogPos: gtid,
  gtidSlavePos: gtid,
  gtidIoPos: gtid,
  gtidBinlogState: gtid,
  startedAt: 500,
  ...o,
});
const probe = (t: number, ...nodes: MysqlFailoverNodeProbe[]): MysqlFailoverProbe => ({ cluster: 'c', engine: 'mysql', policy, routingHook: false, nodes, probedAt: at(t) });
const down = { ioRunning: 'No', lastIoError: 'Got fatal error 1236 from master' };

function run(s: DetectState, probes: MysqlFailoverProbe[]) {
  const actions: { kind: string; returnedEmpty?: unknown; reason?: string }[] = [];
  for (const p of probes) {
    const r = mysqlMonitorRound(s, p, Date.parse(p.probedAt));
    s = r.state;
    actions.push(r.action);
  }
  return { s, kinds: actions.map((a) => a.kind), actions };
}

const healthy = (t: number) => probe(t, primary('a', '0-1-100'), replica('b', 'a', '0-1-100'), replica('c', 'a', '0-1-98'));
/** `a` wiped and initialised again (a new server start, nothing in its binary log), read-only or not. */
const wiped = (t: number, o: Partial<MysqlFailoverNodeProbe> = {}) =>
  probe(t, primary('a', '', { startedAt: 1500, gtidBinlogState: '', ...o }), replica('b', 'a', '0-1-100', down), replica('c', 'a', '0-1-98', down));

describe('MariaDB dataset comparison', () => {
  it('a collapse is a position or binlog-state entry that went back; growth, or a new server id, is not', () => {
    const d = (gtid: string, gtidState = gtid) => ({ offset: 0, dbsize: 0, gtid, gtidState, at: 0 });
    expect(mysqlCollapsed(d('0-1-100'), d(''))).toEqual(['0-1-100']);
    expect(mysqlCollapsed(d('0-1-100,1-1-5'), d('0-1-120'))).toEqual(['1-1-5']);
    expect(mysqlCollapsed(d('0-1-100'), d('0-1-150'))).toBeUndefined();
    expect(mysqlCollapsed(d('0-1-100'), d('0-2-101', '0-1-100,0-2-101'))).toBeUndefined();
    // Wiped, then as many transactions again under its own server id: the other server's entry is gone.
    expect(mysqlCollapsed(d('0-1-100', '0-2-40,0-1-100'), d('0-1-150', '0-1-150'))).toEqual(['0-2-40']);
    // Wiped, then past its old sequence number under the same server id: only InnoDB's LSN shows it.
    expect(mysqlCollapsed({ ...d('0-1-100'), lsn: 70_000 }, { ...d('0-1-150'), lsn: 45_000 })).toEqual(['InnoDB LSN 70000 -> 45000 (its data directory was replaced)']);
    expect(mysqlCollapsed({ ...d('0-1-100'), lsn: 70_000 }, { ...d('0-1-150'), lsn: 71_000 })).toBeUndefined();
    expect(restarted({ ...d(''), startedAt: 1000 }, { ...d(''), startedAt: 1001 })).toBe(false);
    expect(restarted({ ...d(''), startedAt: 1000 }, { ...d(''), startedAt: 1500 })).toBe(true);
  });

  it('a primary back without its data: who still holds it, or that it is lost', () => {
    const d0 = updateMysqlDatasets(undefined, healthy(0).nodes, 0);
    const e = mysqlPrimaryReset(d0, wiped(600).nodes, 'a', 600)!;
    expect(e.holders).toEqual(['b', 'c']);
    expect(e.before).toMatchObject({ gtid: '0-1-100', dbsize: 100 });
    expect(e.text).toMatch(/^a restarted and came back EMPTY or reset: 0-1-100 \(100 transactions\) before, empty \(0 transactions\) now; it lacks 0-1-100 it had; b, c still hold the data: not followed/);
    // RESET MASTER: the same server start.
    const reset = mysqlPrimaryReset(d0, [primary('a', '0-1-3'), replica('b', 'a', '0-1-100', down)], 'a', 600)!;
    expect(reset.text).toMatch(/was RESET without a restart/);
    // Nobody holds more (the only replica was wiped too): LOST, with how much.
    const lost = mysqlPrimaryReset(d0, [primary('a', '', { startedAt: 1500, gtidBinlogState: '' }), replica('b', 'a', '', { ...down, gtidBinlogState: '' })], 'a', 600)!;
    expect(lost.holders).toEqual([]);
    expect(lost.text).toMatch(/no replica holds the data: it is LOST \(100 transactions, 0-1-100 -> empty\)/);
    // A restart that kept everything, or a promotion: not this.
    expect(mysqlPrimaryReset(d0, [primary('a', '0-1-100', { startedAt: 1500 }), replica('b', 'a', '0-1-100')], 'a', 600)).toBeUndefined();
    expect(mysqlPrimaryReset(d0, [primary('a', '0-1-120'), replica('b', 'a', '0-1-120')], 'a', 600)).toBeUndefined();
    const lsn0 = updateMysqlDatasets(undefined, [primary('a', '0-1-100', { innodbLsn: 70_000 }), replica('b', 'a', '0-1-100')], 0);
    const past = mysqlPrimaryReset(lsn0, [primary('a', '0-1-150', { startedAt: 1500, innodbLsn: 45_000 }), replica('b', 'a', '0-1-100', down)], 'a', 600)!;
    expect(past.text).toMatch(/now; InnoDB LSN 70000 -> 45000 \(its data directory was replaced\); b still hold the data/);
  });

  it('without memory (a monitor started afterwards): replicas that cannot stream from it and hold more show it', () => {
    const e = mysqlPrimaryReset(undefined, wiped(0).nodes, 'a', 0)!;
    expect(e.holders).toEqual(['b', 'c']);
    expect(e.text).toMatch(/it lacks what b, c already hold from it \(0-1-100\)/);
    // Replicas streaming from it (IO Yes) are not ahead of it whatever the read order; a replica's own errant
    // write (in its binlog, not from a source) is not data the primary lost.
    expect(mysqlPrimaryReset(undefined, [primary('a', '0-1-100'), replica('b', 'a', '0-1-101')], 'a', 0)).toBeUndefined();
    expect(mysqlPrimaryReset(undefined, [primary('a', '0-1-100'), replica('b', 'a', '0-1-100', { ...down, gtidBinlogPos: '0-2-101' })], 'a', 0)).toBeUndefined();
  });

  it('one probe that read the primary after its replicas (a manual failover): replicas streaming from it and holding more show it too', () => {
    const streaming = [primary('a', ''), replica('b', 'a', '0-1-100'), replica('c', 'a', '0-1-90')];
    expect(mysqlPrimaryReset(undefined, streaming, 'a', 0)).toBeUndefined();
    const e = mysqlPrimaryReset(undefined, streaming, 'a', 0, undefined, { primaryReadLast: true })!;
    expect(e.holders).toEqual(['b', 'c']);
    expect(e.text).toMatch(/^a came back EMPTY or reset: 0-1-100 \(100 transactions\) before, empty \(0 transactions\) now; it lacks what b, c already hold from it \(0-1-100\); b, c still hold the data/);
    // A live primary includes what its replicas received; a replica's own errant write is not the primary's loss;
    // a primary whose replicated position (gtid_slave_pos, log_slave_updates off) holds it is not reset either.
    expect(mysqlPrimaryReset(undefined, [primary('a', '0-1-101'), replica('b', 'a', '0-1-100')], 'a', 0, undefined, { primaryReadLast: true })).toBeUndefined();
    expect(mysqlPrimaryReset(undefined, [primary('a', '0-1-100'), replica('b', 'a', '0-1-100', { gtidBinlogPos: '0-2-101' })], 'a', 0, undefined, { primaryReadLast: true })).toBeUndefined();
    expect(mysqlPrimaryReset(undefined, [primary('a', '', { gtidSlavePos: '0-1-100' }), replica('b', 'a', '0-1-100')], 'a', 0, undefined, { primaryReadLast: true })).toBeUndefined();
  });

  it('a candidate is refused when its position went back since the verdict; one as it was, further, or promoted, is not', () => {
    expect(mysqlCandidateLostData('b', '0-1-100', replica('b', 'a', '0-1-100'))).toBeUndefined();
    expect(mysqlCandidateLostData('b', '0-1-100', replica('b', 'a', '0-1-90', { gtidIoPos: '0-1-100' }))).toBeUndefined();
    expect(mysqlCandidateLostData('b', '0-1-100', primary('b', '0-1-100'))).toBeUndefined();
    expect(mysqlCandidateLostData('b', '0-1-100', { ...primary('b', ''), readOnly: true })).toBe(
      'b lost data since the verdict: it had applied 0-1-100 then, it holds empty now (0-1-100 went back; it replicates from nobody)',
    );
    expect(mysqlCandidateLostData('b', '0-1-100', replica('b', 'a', '0-1-40'))).toMatch(/b lost data since the verdict: it had applied 0-1-100 then, it holds 0-1-40 now/);
  });
});

describe('the MariaDB monitor round with the empty-primary guard', () => {
  it('a primary back EMPTY while its replicas hold the data is not followed: failover at once, last sight kept', () => {
    const start = run(initialDetectState(), [healthy(0)]).s;
    const { s, kinds, actions } = run(start, [wiped(300, { readOnly: true })]);
    expect(kinds).toEqual(['failover']);
    expect(actions[0]).toMatchObject({ returnedEmpty: { node: 'a' } });
    expect(actions[0].reason).toMatch(/a restarted and came back EMPTY or reset/);
    expect(s.lastKnown).toMatchObject({ primary: 'a', gtid: '0-1-100' });
    expect(s.emptyReturns).toHaveLength(1);
    expect(s.verdict).toBe('dead');
  });

  it('without the guard the same fleet reads alive (it answers as primary): the rounds before the change', () => {
    const start = run(initialDetectState(), [healthy(0)]).s;
    const { s } = run(start, [probe(300, primary('a', '0-1-100', { readOnly: true }), replica('b', 'a', '0-1-100', { ioRunning: 'Connecting' }), replica('c', 'a', '0-1-98', { ioRunning: 'Connecting' }))]);
    expect(s.verdict).toBe('alive');
    expect(s.emptyReturns).toBeUndefined();
  });

  it('anti-flapping still holds: blocked with why, not followed meanwhile, reported once', () => {
    const start = run(initialDetectState({ lastFailoverAtMs: Date.parse(at(0)) }), [healthy(0)]).s;
    const { s, kinds } = run(start, [wiped(300), wiped(600, { gtidBinlogPos: '0-1-5', gtidCurrentPos: '0-1-5', gtidBinlogState: '0-1-5' })]);
    expect(kinds).toEqual(['blocked', 'none']);
    expect(s.verdict).toBe('blocked');
    expect(s.emptyPrimary?.node).toBe('a');
    expect(s.emptyReturns).toHaveLength(1);
    expect(s.lastKnown?.gtid).toBe('0-1-100');
  });

  it('found with nobody holding the data: reported once as LOST, then followed', () => {
    const start = run(initialDetectState(), [probe(0, primary('a', '0-1-100'), replica('b', 'a', '0-1-100'))]).s;
    const gone = (t: number) => probe(t, primary('a', '', { startedAt: 1500, gtidBinlogState: '' }), replica('b', 'a', '', { gtidBinlogState: '', ioRunning: 'Yes' }));
    const { s, kinds } = run(start, [gone(300), gone(600)]);
    expect(kinds).toEqual(['changed', 'none']);
    expect(s.emptyReturns).toHaveLength(1);
    expect(s.emptyReturns![0].text).toMatch(/LOST \(100 transactions, 0-1-100 -> empty\)/);
    expect(s.verdict).toBe('alive');
  });

  it('a node flagged as back empty or reset is never fenced into replicating; re-cloned (a replica of the primary again), its flag clears', () => {
    const flagged = { a: ['reset: came back empty or reset (held 0-1-100 before); re-clone it', '0-1-5'] };
    const after = (t: number, a: MysqlFailoverNodeProbe) => probe(t, a, primary('b', '0-1-110', { startedAt: 500 }), replica('c', 'b', '0-1-110'));
    const start = run(initialDetectState({ flagged, lastKnown: { primary: 'b', offset: 0, gtid: '0-1-100' } }), [after(0, { ...primary('a', '0-1-5'), readOnly: true })]);
    const kept = run(start.s, [1, 2, 3, 4].map((i) => after(i * 300, { ...primary('a', '0-1-5'), readOnly: true })));
    expect(kept.kinds).not.toContain('fence');
    expect(kept.s.flagged).toEqual(flagged);
    const recloned = run(kept.s, [after(1500, replica('a', 'b', '0-1-110'))]);
    expect(recloned.kinds).toEqual(['changed']);
    expect(recloned.s.flagged).toEqual({});
  });

  it('a replica restarted, or the primary restarted with its data: no event', () => {
    const start = run(initialDetectState(), [healthy(0)]).s;
    const { s, kinds } = run(start, [
      probe(300, primary('a', '0-1-101'), replica('b', 'a', '0-1-100', { startedAt: 900, ioRunning: 'Connecting' }), replica('c', 'a', '0-1-101')),
      probe(600, primary('a', '0-1-101', { startedAt: 1500 }), replica('b', 'a', '0-1-101', { ioRunning: 'Connecting' }), replica('c', 'a', '0-1-101', { ioRunning: 'Connecting' })),
    ]);
    expect(kinds).toEqual(['none', 'none']);
    expect(s.emptyReturns).toBeUndefined();
  });
});

describe('status lines', () => {
  it('a node flagged as back empty or reset says so and what to do, not "errant GTIDs"', () => {
    const flagged = { a: ['reset: came back empty or reset (held 0-1-100 before); re-clone it', '0-1-5'] };
    const m = formatMonitorStatus('handover-monitor-c', { cluster: 'c', failovers: [], rounds: 1, fenced: [], flagged }).join('\n');
    expect(m).toContain('! a FLAGGED: came back empty or reset (held 0-1-100 before); re-clone it (handover backup provision-replica --node a); left read-only and not replicating, holding only 0-1-5 of its own; cleared once it replicates from the primary again');
    const st = { cluster: 'c', engine: 'mysql', topology: 'replication', primaries: [], nodes: [], problems: [], operations: [], monitor: { workflowId: 'handover-monitor-c', flagged } } as unknown as ClusterStatus;
    expect(formatClusterStatus(st).join('\n')).toContain('! a FLAGGED by the monitor: came back empty or reset (held 0-1-100 before); re-clone it; left read-only and not replicating, holding only 0-1-5 of its own');
  });

  it('status, from one probe: a primary lacking what its replicas hold from it is not a healthy primary', () => {
    const text = formatClusterStatus(mysqlClusterStatus('c', wiped(0).nodes)).join('\n');
    expect(text).toContain('! a answers as primary without transactions its replicas hold from it (0-1-100; it has empty): back EMPTY or reset, not a healthy primary; b, c still hold the data');
    expect(formatClusterStatus(mysqlClusterStatus('c', healthy(0).nodes)).join('\n')).not.toMatch(/EMPTY/);
  });
});
