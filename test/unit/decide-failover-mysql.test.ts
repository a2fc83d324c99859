import { describe, expect, it } from 'vitest';
import { confirmedDead } from '../../core/failover';
import { chooseMysqlFailoverCandidate, errantOnReturn, mergeMax, mysqlDataLoss, mysqlDeadMasterRound, receivedPos, type MysqlFailoverNodeProbe } from '../../core/mysql/failover';

const n = (node: string, over: Partial<MysqlFailoverNodeProbe> = {}): MysqlFailoverNodeProbe => ({
  node,
  address: node,
  promotion: 'neutral',
  reachable: true,
  role: 'replica',
  readOnly: true,
  sourceNode: 'a',
  ioRunning: 'Connecting',
  sqlRunning: true,
  gtidBinlogPos: '0-1-100',
  gtidSlavePos: '0-1-100',
  gtidIoPos: '0-1-100',
  sqlDelay: 0,
  ...over,
});
const deadA = n('a', { reachable: false, role: undefined, sourceNode: undefined, error: 'connect ETIMEDOUT' });

describe('MySQL DeadMaster rule', () => {
  it('is dead only when the primary is unreachable and every reachable replica has its IO thread down', () => {
    expect(mysqlDeadMasterRound([deadA, n('b'), n('c', { ioRunning: 'No' })], 'a')).toMatchObject({ dead: true, primary: 'a' });
    expect(mysqlDeadMasterRound([deadA, n('b'), n('c', { ioRunning: 'Yes' })], 'a')).toEqual({ dead: false, reason: 'c still receive from a (IO thread Yes)' });
    expect(mysqlDeadMasterRound([n('a', { role: 'primary', readOnly: false, sourceNode: undefined }), n('b')], 'a')).toMatchObject({ dead: false, reason: 'a answers as primary' });
    expect(mysqlDeadMasterRound([deadA, n('b', { reachable: false }), n('c', { reachable: false })], 'a')).toMatchObject({ dead: false, reason: expect.stringMatching(/no reachable replica/) });
    expect(mysqlDeadMasterRound([deadA, n('b'), n('c')], 'x')).toMatchObject({ dead: false, reason: 'unknown primary x' });
  });
  it('one lost probe (the replicas still linked) is never confirmation', () => {
    const rounds = [mysqlDeadMasterRound([deadA, n('b', { ioRunning: 'Yes' })], 'a'), mysqlDeadMasterRound([deadA, n('b')], 'a')];
    expect(confirmedDead(rounds, 2)).toBe(false);
    rounds.push(mysqlDeadMasterRound([deadA, n('b')], 'a'));
    expect(confirmedDead(rounds, 2)).toBe(true);
  });
});

describe('MySQL failover candidate', () => {
  it('is the replica that received the most (relay log counts), then promotion rule, then name', () => {
    const b = n('b', { gtidSlavePos: '0-1-90', gtidBinlogPos: '0-1-90', gtidIoPos: '0-1-98' });
    const c = n('c', { gtidSlavePos: '0-1-95', gtidBinlogPos: '0-1-95', gtidIoPos: '0-1-95' });
    expect(chooseMysqlFailoverCandidate([deadA, b, c], 'a')).toMatchObject({ candidate: 'b', candidateReceived: '0-1-98', candidateApplied: '0-1-90', followers: ['c'] });
    expect(chooseMysqlFailoverCandidate([deadA, n('b'), n('c', { promotion: 'prefer' })], 'a')).toMatchObject({ candidate: 'c' });
    expect(chooseMysqlFailoverCandidate([deadA, n('b'), n('c')], 'a')).toMatchObject({ candidate: 'b' });
  });
  it('excludes promotion: never, delayed, stopped SQL threads and replicas of someone else, with reasons', () => {
    const r = chooseMysqlFailoverCandidate([deadA, n('b', { promotion: 'never', gtidIoPos: '0-1-200' }), n('c', { sqlDelay: 60 }), n('d', { sqlRunning: false }), n('e', { sourceNode: 'z' }), n('f')], 'a');
    expect(r).toMatchObject({ candidate: 'f' });
    expect((r as { rejected: { node: string; reason: string }[] }).rejected.map((x) => x.node)).toEqual(['b', 'c', 'd', 'e']);
    expect(chooseMysqlFailoverCandidate([deadA, n('b', { reachable: false })], 'a')).toEqual({ refusal: expect.stringMatching(/no reachable, promotable replica of a: b unreachable/) });
  });
  it('received position merges applied and relay log per domain', () => {
    expect(receivedPos(n('b', { gtidBinlogPos: '0-1-5,1-2-9', gtidSlavePos: '0-1-7', gtidIoPos: '0-1-8' }))).toBe('0-1-8,1-2-9');
    expect(mergeMax('0-1-3', '')).toBe('0-1-3');
  });
});

describe('MySQL fencing and data-loss window', () => {
  it('flags GTIDs a returning old primary has that the promoted node never had', () => {
    expect(errantOnReturn('0-1-100', '0-1-100', '0-2-130')).toEqual([]);
    expect(errantOnReturn('0-1-103', '0-1-100', '0-2-130')).toEqual(['0-1-103']); // lower seq than now, still never replicated
    expect(errantOnReturn('0-1-140', undefined, '0-2-130')).toEqual(['0-1-140']);
    expect(errantOnReturn('0-1-100,5-1-1', '0-1-100', '0-2-101')).toEqual(['5-1-1']);
  });
  it('reports the window honestly, unknown without an observation', () => {
    expect(mysqlDataLoss('0-1-105', '0-1-100')).toMatchObject({ transactions: 5, missing: '0-1-100 .. 0-1-105' });
    expect(mysqlDataLoss('0-1-100', '0-1-100')).toMatchObject({ transactions: 0 });
    expect(mysqlDataLoss(undefined, '0-1-100').transactions).toBeUndefined();
  });
});
