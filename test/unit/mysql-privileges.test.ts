import { describe, expect, it } from 'vitest';
import { MARIADB_FENCE_BOUND_PRIVILEGE, describeMissingPrivileges, missingMysqlPrivileges, parseGrants } from '../../core/mysql/privileges';
import { decideMysqlSwitchover, errantGtidsInState, errantOf, recheckMysqlDecision, type MysqlNodeProbe } from '../../core/mysql/decide';

const FULL = [
  "GRANT RELOAD, PROCESS, BINLOG ADMIN, CONNECTION ADMIN, READ_ONLY ADMIN, REPLICATION SLAVE ADMIN, SLAVE MONITOR ON *.* TO `handover`@`%` IDENTIFIED BY PASSWORD '*0123456789ABCDEF'",
  'GRANT EVENT ON `mysql`.* TO `handover`@`%`',
];

describe('missingMysqlPrivileges (SHOW GRANTS)', () => {
  it('the documented grants lack nothing, with or without the fence bound', () => {
    expect(missingMysqlPrivileges(FULL, { fenceBound: true })).toEqual([]);
    expect(missingMysqlPrivileges([FULL[0]], { fenceBound: false })).toEqual([]);
  });

  it('names each missing privilege, EVENT on mysql.* only when a fence bound is armed', () => {
    const lines = ["GRANT RELOAD, PROCESS, BINLOG ADMIN, READ_ONLY ADMIN, SLAVE MONITOR ON *.* TO `handover`@`%` IDENTIFIED BY PASSWORD '*X'"];
    expect(missingMysqlPrivileges(lines, { fenceBound: false })).toEqual(['REPLICATION SLAVE ADMIN', 'CONNECTION ADMIN']);
    expect(missingMysqlPrivileges(lines, { fenceBound: true })).toEqual(['REPLICATION SLAVE ADMIN', 'CONNECTION ADMIN', MARIADB_FENCE_BOUND_PRIVILEGE]);
  });

  it('ALL PRIVILEGES covers everything; SUPER alone is not trusted; aliases are understood', () => {
    expect(missingMysqlPrivileges(['GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION'], { fenceBound: true })).toEqual([]);
    expect(missingMysqlPrivileges(['GRANT SUPER ON *.* TO `x`@`%`'], { fenceBound: false })).toHaveLength(7);
    expect(missingMysqlPrivileges(["GRANT RELOAD, PROCESS, BINLOG ADMIN, CONNECTION ADMIN, READ ONLY ADMIN, REPLICATION SLAVE ADMIN, REPLICA MONITOR ON *.* TO `h`@`%`"], { fenceBound: false })).toEqual([]);
  });

  it('reads privilege names only: no password hash survives parsing, role grants are skipped', () => {
    const g = parseGrants([...FULL, 'GRANT `ops_role` TO `handover`@`%`']);
    expect(JSON.stringify(g)).not.toContain('0123456789ABCDEF');
    expect(g.map((x) => x.on)).toEqual(['*.*', 'mysql']);
  });

  it('the refusal line names the node, the privilege, what it is for and the GRANT that fixes it', () => {
    expect(describeMissingPrivileges('db-2', 'handover', ['REPLICATION SLAVE ADMIN', MARIADB_FENCE_BOUND_PRIVILEGE])).toBe(
      "the automation user lacks REPLICATION SLAVE ADMIN (STOP/START/RESET SLAVE and CHANGE MASTER (promote, repoint)), EVENT ON mysql.* (the fence bound event) on db-2: GRANT REPLICATION SLAVE ADMIN ON *.* TO 'handover'@'…'; GRANT EVENT ON mysql.* TO 'handover'@'…'",
    );
  });
});

const node = (node: string, o: Partial<MysqlNodeProbe>): MysqlNodeProbe => ({ node, address: `127.0.0.1:${node.length}`, promotion: 'prefer', reachable: true, ...o });

describe('errant GTIDs regardless of replication thread state', () => {
  it('an errant write the primary has since passed in sequence numbers is still errant by binlog state', () => {
    // db-3 wrote 0-3-5 when the primary was at 0-1-4; strict mode stopped its SQL thread at 0-1-5; the primary went on.
    const replica = { gtidBinlogPos: '0-3-5', gtidBinlogState: '0-1-4,0-3-5', gtidSlavePos: '0-1-4' };
    const primary = { gtidBinlogPos: '0-1-9', gtidBinlogState: '0-1-9' };
    expect(errantGtidsInState(replica.gtidBinlogState, primary.gtidBinlogState, replica.gtidSlavePos)).toEqual(['0-3-5']);
    expect(errantOf(replica, primary)).toEqual(['0-3-5']);
  });

  it('lag is not errant; history the primary logged (an earlier primary) is not errant; an empty primary state tells nothing', () => {
    expect(errantGtidsInState('0-1-4', '0-1-9', '0-1-4')).toEqual([]);
    expect(errantGtidsInState('0-2-7,0-1-20', '0-2-7,0-1-25', '0-1-20')).toEqual([]);
    expect(errantGtidsInState('0-3-5', '')).toEqual([]);
  });

  it('history the node received by replication is not errant, even when the primary\'s binary log was reset since', () => {
    // The replica got 0-2-2532 from an earlier primary, then 0-1-2629 from the current one, whose history was
    // reset (RESET MASTER on a re-cloned node): its state knows only its own recent writes.
    expect(errantGtidsInState('0-2-2532,0-1-2629', '0-1-2629', '0-1-2629')).toEqual([]);
    // An old primary's own writes after what it last applied, which the new primary never got, are errant.
    expect(errantGtidsInState('0-2-2532,0-1-2640', '0-1-2629,0-3-2635', '0-2-2532')).toEqual(['0-1-2640']);
  });

  it('the switchover is refused before anything changes when a follower is errant with its SQL thread stopped', () => {
    const nodes = [
      node('db-1', { role: 'primary', readOnly: false, gtidBinlogPos: '0-1-9', gtidBinlogState: '0-1-9' }),
      node('db-2', { role: 'replica', readOnly: true, sourceNode: 'db-1', ioRunning: 'Yes', sqlRunning: true, secondsBehind: 0, gtidBinlogPos: '0-1-9', gtidSlavePos: '0-1-9', gtidBinlogState: '0-1-9' }),
      node('db-3', { role: 'replica', readOnly: true, sourceNode: 'db-1', ioRunning: 'Yes', sqlRunning: false, secondsBehind: null, gtidBinlogPos: '0-3-5', gtidSlavePos: '0-1-4', gtidBinlogState: '0-1-4,0-3-5' }),
    ];
    const r = decideMysqlSwitchover(nodes);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.refusal.code).toBe('FollowerCannotFollow');
      expect(r.refusal.message).toContain('db-3 has errant GTIDs 0-3-5');
    }
  });

  it('a node lacking a privilege refuses the switchover up front, and the veto re-checks it', () => {
    const nodes = [
      node('db-1', { role: 'primary', readOnly: false, gtidBinlogPos: '0-1-9' }),
      node('db-2', { role: 'replica', readOnly: true, sourceNode: 'db-1', ioRunning: 'Yes', sqlRunning: true, secondsBehind: 0, gtidSlavePos: '0-1-9', missingPrivileges: ['REPLICATION SLAVE ADMIN'] }),
    ];
    const r = decideMysqlSwitchover(nodes);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.refusal.code).toBe('MissingPrivilege');
      expect(r.refusal.message).toMatch(/^the automation user lacks REPLICATION SLAVE ADMIN .* on db-2: GRANT REPLICATION SLAVE ADMIN ON \*\.\* TO .*; nothing was changed$/);
    }
    expect(recheckMysqlDecision(nodes, { primary: 'db-1', candidate: 'db-2' })).toContain('lacks REPLICATION SLAVE ADMIN');
  });
});
