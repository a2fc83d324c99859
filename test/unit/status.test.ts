/** `handover status` summaries are pure: probes in, links, lag and problems out. */
import { describe, expect, it } from 'vitest';
import { formatClusterStatus, mysqlClusterStatus, redisClusterStatus } from '../../core/status';
import type { MysqlNodeProbe } from '../../core/mysql/decide';
import type { RedisNodeProbe } from '../../core/types';

const r = (node: string, o: Partial<RedisNodeProbe>): RedisNodeProbe => ({ node, address: `127.0.0.1:${6379 + Number(node.slice(-1))}`, promotion: 'neutral', reachable: true, ...o });
const m = (node: string, o: Partial<MysqlNodeProbe>): MysqlNodeProbe => ({ node, address: `127.0.0.1:${3306 + Number(node.slice(-1))}`, promotion: 'neutral', reachable: true, ...o });

describe('redisClusterStatus', () => {
  it('lag in bytes against each replica\'s own primary; a link down and an unreachable node are problems', () => {
    const s = redisClusterStatus('cache', 'replication', [
      r('cache-1', { role: 'primary', offset: 5000 }),
      r('cache-2', { role: 'replica', primaryNode: 'cache-1', linkUp: true, offset: 4200 }),
      r('cache-3', { role: 'replica', primaryNode: 'cache-1', linkUp: false, offset: 100 }),
      r('cache-4', { reachable: false, error: 'connect ECONNREFUSED' }),
    ]);
    expect(s.primaries).toEqual(['cache-1']);
    expect(s.nodes.map((n) => [n.node, n.link, n.lagBytes])).toEqual([
      ['cache-1', undefined, undefined],
      ['cache-2', 'up', 800],
      ['cache-3', 'down', 4900],
      ['cache-4', undefined, undefined],
    ]);
    expect(s.problems).toEqual(['cache-3: link to cache-1 down', 'cache-4 unreachable: connect ECONNREFUSED']);
    s.operations = [];
    expect(formatClusterStatus(s)).toEqual([
      'cache (redis, replication): primary cache-1',
      '  NODE     ADDRESS         ROLE                LAG     VERSION  PENDING RESTART  MAINTENANCE  LINK',
      '  cache-1  127.0.0.1:6380  primary at 5000     -       ?        -                -            -',
      '  cache-2  127.0.0.1:6381  replica of cache-1  800 B   ?        -                -            up',
      '  cache-3  127.0.0.1:6382  replica of cache-1  4900 B  ?        -                -            down',
      '  cache-4  127.0.0.1:6383  UNREACHABLE         -       -        -                -            connect ECONNREFUSED',
      '  ! cache-3: link to cache-1 down',
      '  ! cache-4 unreachable: connect ECONNREFUSED',
      '  operations: none running',
    ]);
  });

  it('two primaries is a problem on a replication topology, one per shard is normal on a Redis Cluster', () => {
    const nodes = [r('c-1', { role: 'primary', offset: 1 }), r('c-2', { role: 'primary', offset: 1 })];
    expect(redisClusterStatus('c', 'replication', nodes).problems).toEqual(['2 primaries: c-1, c-2']);
    expect(redisClusterStatus('c', 'cluster', nodes).problems).toEqual([]);
    expect(redisClusterStatus('c', 'replication', [r('c-1', { reachable: false })]).problems[0]).toBe('no reachable primary');
  });
});

describe('the per-node table', () => {
  it('shows a node\'s maintenance window with its end, reason and who set it', () => {
    const s = redisClusterStatus('cache', 'replication', [r('cache-1', { role: 'primary', offset: 1, version: '7.0.15' }), r('cache-2', { role: 'replica', primaryNode: 'cache-1', linkUp: true, offset: 1, version: '7.0.15' })]);
    s.nodes[1].maintenance = { node: 'cache-2', untilMs: Date.parse('2026-12-01T10:00:00Z'), setAtMs: 0, reason: 'kernel patch', by: 'alice' };
    const text = formatClusterStatus(s);
    expect(text[1]).toMatch(/^ {2}NODE +ADDRESS +ROLE +LAG +VERSION +PENDING RESTART +MAINTENANCE +LINK$/);
    expect(text[3]).toMatch(/^ {2}cache-2 +127\.0\.0\.1:6381 +replica of cache-1 +0 B +7\.0\.15 +- +until 2026-12-01T10:00Z \(kernel patch, by alice\) +up$/);
  });

  it('shows a pending restart as yes / no / - (unknown), with the reasons under the table', () => {
    const s = redisClusterStatus('cache', 'replication', [r('cache-1', { role: 'primary', offset: 1, version: '7.0.15' }), r('cache-2', { role: 'replica', primaryNode: 'cache-1', linkUp: true, offset: 1, version: '7.0.15' }), r('cache-3', { role: 'replica', primaryNode: 'cache-1', linkUp: true, offset: 1, version: '7.0.15' })]);
    s.nodes[0].pendingRestart = [];
    s.nodes[1].pendingRestart = ['the binary on disk (/usr/bin/redis-server) is 7.2.4, it runs 7.0.15'];
    const text = formatClusterStatus(s);
    expect(text[2]).toMatch(/^ {2}cache-1 .* 7\.0\.15 +no +- +-$/);
    expect(text[3]).toMatch(/^ {2}cache-2 .* 7\.0\.15 +yes +- +up$/);
    expect(text[4]).toMatch(/^ {2}cache-3 .* 7\.0\.15 +- +- +up$/);
    expect(text[5]).toBe('  pending restart cache-2: the binary on disk (/usr/bin/redis-server) is 7.2.4, it runs 7.0.15');
  });
});

describe('mysqlClusterStatus', () => {
  it('GTID transactions still to apply; stopped threads, a writable replica and errant GTIDs are problems', () => {
    const s = mysqlClusterStatus('db', [
      m('db-1', { role: 'primary', readOnly: false, gtidBinlogPos: '0-1-120' }),
      m('db-2', { role: 'replica', readOnly: true, sourceNode: 'db-1', ioRunning: 'Yes', sqlRunning: true, secondsBehind: 0, gtidSlavePos: '0-1-118', gtidBinlogPos: '' }),
      m('db-3', { role: 'replica', readOnly: false, sourceNode: 'db-1', ioRunning: 'Connecting', sqlRunning: true, secondsBehind: null, gtidSlavePos: '0-1-100', errantGtids: ['0-3-1'], lastError: 'error connecting to master' }),
    ]);
    expect(s.primaries).toEqual(['db-1']);
    expect(s.nodes.map((n) => [n.node, n.link, n.lagTransactions, n.secondsBehind])).toEqual([
      ['db-1', undefined, undefined, undefined],
      ['db-2', 'io Yes sql Yes', 2, 0],
      ['db-3', 'io Connecting sql Yes', 20, null],
    ]);
    expect(s.problems).toEqual([
      'db-3: replication from db-1 not running (io Connecting sql Yes: error connecting to master)',
      'db-3 is a writable replica',
      'db-3 has errant GTIDs 0-3-1: it cannot follow db-1',
    ]);
    const text = formatClusterStatus(s);
    expect(text[3]).toMatch(/^ {2}db-2 +127\.0\.0\.1:3308 +replica of db-1 +2 trx, 0 s behind +\? +- +- +io Yes sql Yes$/);
    expect(text[4]).toMatch(/^ {2}db-3 +127\.0\.0\.1:3309 +replica of db-1, WRITABLE +20 trx, \? s behind +\? +- +- +io Connecting sql Yes$/);
    expect(text[text.length - 1]).toBe('  operations: unknown (Temporal not reachable)');
  });

  it('an errant replica whose SQL thread stopped, and a node lacking privileges, are problems', () => {
    const s = mysqlClusterStatus('db', [
      m('db-1', { role: 'primary', readOnly: false, gtidBinlogPos: '0-1-120' }),
      m('db-2', { role: 'replica', readOnly: true, sourceNode: 'db-1', ioRunning: 'Yes', sqlRunning: false, gtidSlavePos: '0-1-100', errantGtids: ['0-2-101'], missingPrivileges: ['CONNECTION ADMIN'] }),
    ]);
    expect(s.problems).toContain('db-2 has errant GTIDs 0-2-101 (its SQL thread has stopped): it cannot follow db-1');
    expect(s.problems.find((p) => p.startsWith('the automation user lacks CONNECTION ADMIN'))).toMatch(/on db-2: GRANT CONNECTION ADMIN ON \*\.\* TO/);
  });

  it('no writable node, or two, leads the problems', () => {
    expect(mysqlClusterStatus('db', [m('db-1', { role: 'primary', readOnly: true })]).problems[0]).toBe('no writable primary');
    expect(mysqlClusterStatus('db', [m('db-1', { role: 'primary', readOnly: false }), m('db-2', { role: 'primary', readOnly: false })]).problems[0]).toBe('2 writable nodes: db-1, db-2');
  });
});
