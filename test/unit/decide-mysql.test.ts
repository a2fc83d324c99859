/** The MySQL/MariaDB switchover decision and its GTID arithmetic: pure, no servers. */
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_MYSQL_POLICY,
  appliedPos,
  decideMysqlSwitchover,
  errantGtids,
  gtidIncludes,
  lagTransactions,
  normalizeGtidPos,
  parseGtidPos,
  recheckMysqlDecision,
  type MysqlNodeProbe,
} from '../../core/mysql/decide';

const primary = (over: Partial<MysqlNodeProbe> = {}): MysqlNodeProbe => ({
  node: 'db-1',
  address: '127.0.0.1:3306',
  promotion: 'neutral',
  reachable: true,
  role: 'primary',
  readOnly: false,
  gtidBinlogPos: '0-1-100',
  gtidSlavePos: '',
  ...over,
});
const replica = (node: string, pos: string, over: Partial<MysqlNodeProbe> = {}): MysqlNodeProbe => ({
  node,
  address: `127.0.0.1:${node.slice(-1)}`,
  promotion: 'neutral',
  reachable: true,
  role: 'replica',
  readOnly: true,
  gtidBinlogPos: pos,
  gtidSlavePos: pos,
  sourceNode: 'db-1',
  sourceAddress: '127.0.0.1:3306',
  ioRunning: 'Yes',
  sqlRunning: true,
  secondsBehind: 0,
  sqlDelay: 0,
  usingGtid: 'Slave_Pos',
  ...over,
});
const policy = { ...DEFAULT_MYSQL_POLICY, maxLagTransactions: 10, maxLagSeconds: 5 };

describe('GTID arithmetic (MariaDB domain-server-seq)', () => {
  it('parses, normalises and rejects malformed positions', () => {
    expect([...parseGtidPos('0-1-10, 2-5-3').values()]).toEqual([
      { domain: 0, server: 1, seq: 10 },
      { domain: 2, server: 5, seq: 3 },
    ]);
    expect(parseGtidPos('').size).toBe(0);
    expect(normalizeGtidPos('2-5-3,0-1-10')).toBe('0-1-10,2-5-3');
    expect(() => parseGtidPos('0-1')).toThrow(/malformed/);
  });

  it('errant GTIDs: a foreign domain, a higher seq, or the same seq from another server; lag is not errant', () => {
    expect(errantGtids('0-1-90', '0-1-100')).toEqual([]);
    expect(errantGtids('0-2-90', '0-1-100')).toEqual([]); // lower seq from an earlier primary: lag
    expect(errantGtids('0-3-101', '0-1-100')).toEqual(['0-3-101']);
    expect(errantGtids('0-3-100', '0-1-100')).toEqual(['0-3-100']);
    expect(errantGtids('0-1-100,7-3-1', '0-1-100')).toEqual(['7-3-1']);
    expect(errantGtids('', '0-1-100')).toEqual([]);
  });

  it('inclusion and lag count per domain', () => {
    expect(gtidIncludes('0-2-100,1-1-5', '0-1-100')).toBe(true);
    expect(gtidIncludes('0-2-99', '0-1-100')).toBe(false);
    expect(gtidIncludes('0-1-5', '')).toBe(true);
    expect(gtidIncludes('0-1-5', '1-1-1')).toBe(false);
    expect(lagTransactions('0-1-90', '0-1-100,1-1-5')).toBe(15);
    expect(lagTransactions('0-1-100', '0-1-100')).toBe(0);
    expect(appliedPos({ ...replica('db-2', '0-1-5'), gtidBinlogPos: '0-1-5', gtidSlavePos: '0-1-7,1-2-1' })).toBe('0-1-7,1-2-1');
  });
});

describe('decideMysqlSwitchover', () => {
  it('chooses the most advanced healthy replica and ranks the rest with reasons', () => {
    const r = decideMysqlSwitchover([primary(), replica('db-2', '0-1-95'), replica('db-3', '0-1-99')], { policy });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.decision.candidate).toBe('db-3');
    expect(r.decision.primary).toBe('db-1');
    expect(r.decision.primaryGtid).toBe('0-1-100');
    expect(r.decision.followers).toEqual(['db-2']);
    expect(r.decision.lagging).toEqual([expect.objectContaining({ node: 'db-2', lagTransactions: 5, reason: 'eligible, 4 transactions behind db-3' })]);
    expect(r.decision.reasons.join(' ')).toMatch(/1 transactions and 0 s behind/);
  });

  it('breaks ties by promotion rule, then by name', () => {
    const tie = (p2: 'prefer' | 'neutral', p3: 'prefer' | 'neutral') =>
      decideMysqlSwitchover([primary(), replica('db-2', '0-1-100', { promotion: p2 }), replica('db-3', '0-1-100', { promotion: p3 })], { policy });
    const a = tie('neutral', 'prefer');
    const b = tie('neutral', 'neutral');
    expect(a.ok && a.decision.candidate).toBe('db-3');
    expect(b.ok && b.decision.candidate).toBe('db-2');
    expect(b.ok && b.decision.equal.map((n) => n.node)).toEqual(['db-3']);
  });

  it('never promotes promotion: never, and says so for --to', () => {
    const nodes = [primary(), replica('db-2', '0-1-100', { promotion: 'never' }), replica('db-3', '0-1-90')];
    const r = decideMysqlSwitchover(nodes, { policy });
    expect(r.ok && r.decision.candidate).toBe('db-3');
    const to = decideMysqlSwitchover(nodes, { policy, to: 'db-2' });
    expect(!to.ok && to.refusal.code).toBe('TargetPromotionNever');
  });

  it.each([
    ['TargetLagging', replica('db-2', '0-1-80'), /lags 20 transactions behind db-1 \(limit 10/],
    ['TargetLagging', replica('db-2', '0-1-100', { secondsBehind: 30 }), /30 s behind db-1 \(limit 5 s\)/],
    ['TargetErrantGtids', replica('db-2', '0-2-101', { gtidSlavePos: '0-1-100' }), /errant GTIDs the primary db-1 lacks: 0-2-101/],
    ['TargetReplicationStopped', replica('db-2', '0-1-100', { ioRunning: 'No', sqlRunning: false, secondsBehind: null }), /not replicating \(IO thread No, SQL thread No/],
    ['TargetReplicationStopped', replica('db-2', '0-1-100', { sqlRunning: false, lastError: 'Duplicate entry' }), /SQL thread No: Duplicate entry/],
    ['TargetIsPrimary', primary(), /already the primary/],
    ['NotReplicaOfPrimary', replica('db-2', '0-1-100', { sourceNode: 'db-3' }), /replicates from db-3, not from the primary db-1/],
    ['TargetUnreachable', { ...replica('db-2', ''), reachable: false, error: 'ECONNREFUSED' }, /unreachable \(ECONNREFUSED\)/],
    ['TargetDelayed', replica('db-2', '0-1-100', { sqlDelay: 3600 }), /delayed replica \(MASTER_DELAY 3600 s\)/],
  ])('--to refuses %s with the reason', (code, target, reason) => {
    const nodes = target.node === 'db-1' ? [primary(), replica('db-2', '0-1-100'), replica('db-3', '0-1-100')] : [primary(), target, replica('db-3', '0-1-100')];
    const r = decideMysqlSwitchover(nodes, { policy, to: target.node });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.refusal.code).toBe(code);
    expect(r.refusal.errorType).toBe('PreconditionFailed');
    expect(r.refusal.message).toMatch(reason);
  });

  it('unknown --to is an UnknownNode refusal', () => {
    const r = decideMysqlSwitchover([primary(), replica('db-2', '0-1-100')], { to: 'ghost' });
    expect(!r.ok && r.refusal.errorType).toBe('UnknownNode');
    expect(!r.ok && r.refusal.message).toMatch(/--to ghost: no such node/);
  });

  it('refuses with no eligible candidate, listing every rejection', () => {
    const r = decideMysqlSwitchover([primary(), replica('db-2', '0-1-50'), replica('db-3', '0-1-100', { ioRunning: 'No' })], { policy });
    expect(!r.ok && r.refusal.code).toBe('NoEligibleCandidate');
    expect(!r.ok && r.refusal.rejected.map((x) => x.node)).toEqual(['db-2', 'db-3']);
  });

  it('refuses when another replica could not follow the new primary (errant GTIDs or unreachable)', () => {
    const errant = decideMysqlSwitchover([primary(), replica('db-2', '0-1-100'), replica('db-3', '0-1-100,5-3-1')], { policy, to: 'db-2' });
    expect(!errant.ok && errant.refusal.code).toBe('FollowerCannotFollow');
    const down = decideMysqlSwitchover([primary(), replica('db-2', '0-1-100'), { ...replica('db-3', ''), reachable: false, error: 'timeout' }], { policy, to: 'db-2' });
    expect(!down.ok && down.refusal.message).toMatch(/db-3 is unreachable \(timeout\): it could not be repointed/);
  });

  it('refuses without a single writable primary', () => {
    const none = decideMysqlSwitchover([replica('db-2', '0-1-1'), replica('db-3', '0-1-1')]);
    expect(!none.ok && none.refusal.code).toBe('NoPrimary');
    const two = decideMysqlSwitchover([primary(), { ...primary({ node: 'db-2' }) }, replica('db-3', '0-1-1')]);
    expect(!two.ok && two.refusal.code).toBe('MultipleWritable');
    const writableReplica = decideMysqlSwitchover([primary(), replica('db-2', '0-1-100', { readOnly: false })]);
    expect(!writableReplica.ok && writableReplica.refusal.code).toBe('MultipleWritable');
    const fenced = decideMysqlSwitchover([primary({ readOnly: true }), replica('db-2', '0-1-100')]);
    expect(!fenced.ok && fenced.refusal.code).toBe('PrimaryReadOnly');
  });
});

describe('recheckMysqlDecision (veto)', () => {
  const nodes = [primary(), replica('db-2', '0-1-100'), replica('db-3', '0-1-100')];
  it('holds when nothing changed', () => {
    expect(recheckMysqlDecision(nodes, { primary: 'db-1', candidate: 'db-2' }, policy)).toBeUndefined();
  });
  it('stops when the candidate stopped replicating, or the primary changed', () => {
    expect(recheckMysqlDecision([primary(), replica('db-2', '0-1-100', { sqlRunning: false }), replica('db-3', '0-1-100')], { primary: 'db-1', candidate: 'db-2' }, policy)).toMatch(
      /candidate no longer qualifies: db-2 is not replicating/,
    );
    expect(recheckMysqlDecision(nodes, { primary: 'db-3', candidate: 'db-2' }, policy)).toMatch(/primary changed from db-3 to db-1/);
  });
});
