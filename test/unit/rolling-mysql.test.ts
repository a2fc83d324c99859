/** MySQL/MariaDB rolling-restart decisions and the option-file edit of the local mariadbd controller: pure. */
import { describe, expect, it } from 'vitest';
import { DEFAULT_MYSQL_POLICY } from '../../core/mysql/decide';
import { mysqlVersionName, nextMysqlRollingAction, whyMysqlStale, type MysqlSpecProbe } from '../../core/mysql/rolling';
import { setOptionFileValues } from '../../activities/controllers';

const node = (id: string, over: Partial<MysqlSpecProbe> = {}): MysqlSpecProbe => ({
  node: id,
  address: `127.0.0.1:${id.slice(-1)}`,
  promotion: 'neutral',
  reachable: true,
  role: 'replica',
  readOnly: true,
  version: '10.11.14-MariaDB-0+deb12u2',
  gtidBinlogPos: '0-1-100',
  gtidSlavePos: '0-1-100',
  sourceNode: 'db-1',
  ioRunning: 'Yes',
  sqlRunning: true,
  secondsBehind: 0,
  sqlDelay: 0,
  usingGtid: 'Slave_Pos',
  config: { max_connections: '151' },
  startedAt: 1000,
  ...over,
});
const primary = (over: Partial<MysqlSpecProbe> = {}) => node('db-1', { role: 'primary', readOnly: false, sourceNode: undefined, ioRunning: undefined, sqlRunning: undefined, ...over });
const want = { config: { max_connections: '300' } };
const opts = { policy: DEFAULT_MYSQL_POLICY };
const current = { config: { max_connections: '300' } };

describe('MySQL rolling restart decisions', () => {
  it('refuses before the first restart when a node lacks a privilege or a replica holds errant GTIDs', () => {
    const lacking = nextMysqlRollingAction([primary(), node('db-2', { missingPrivileges: ['READ_ONLY ADMIN'] }), node('db-3')], want, opts);
    expect(lacking).toEqual(expect.objectContaining({ kind: 'refuse', code: 'MissingPrivilege' }));
    expect((lacking as { reason: string }).reason).toMatch(/^the automation user lacks READ_ONLY ADMIN .* on db-2: GRANT READ_ONLY ADMIN ON \*\.\* TO/);
    expect(nextMysqlRollingAction([primary(), node('db-2'), node('db-3', { errantGtids: ['0-3-7'], sqlRunning: false })], want, opts)).toEqual({
      kind: 'refuse',
      code: 'ErrantGtids',
      reason: 'db-3 has errant GTIDs 0-3-7: it could not follow a new primary',
    });
  });

  it('names the version and why a node is stale (variables compare case-insensitively)', () => {
    expect(mysqlVersionName('10.11.14-MariaDB-0+deb12u2')).toBe('mariadb 10.11.14');
    expect(mysqlVersionName('8.0.36')).toBe('mysql 8.0.36');
    expect(whyMysqlStale(node('db-2'), want)).toBe('max_connections=151, wanted 300');
    expect(whyMysqlStale(node('db-2', { config: { read_only: 'ON' } }), { config: { read_only: 'on' } })).toBeUndefined();
    expect(whyMysqlStale(node('db-2', { config: {} }), { config: { nope: '1' } })).toBe('nope=(unknown variable), wanted 1');
    expect(whyMysqlStale(node('db-2'), { config: {}, version: '10.11' })).toBeUndefined();
    expect(whyMysqlStale(node('db-2'), { config: {}, version: 'mariadb 11.4' })).toBe('runs mariadb 10.11.14, wanted mariadb 11.4');
  });

  it('restarts replicas first in name order, then hands the primary over to a current replica, then is done', () => {
    const nodes = [primary(), node('db-3'), node('db-2')];
    expect(nextMysqlRollingAction(nodes, want, opts)).toEqual({ kind: 'restart', node: 'db-2', role: 'replica', runId: '1000', primary: 'db-1', reason: 'max_connections=151, wanted 300' });
    const afterReplicas = [primary(), node('db-2', current), node('db-3', current)];
    expect(nextMysqlRollingAction(afterReplicas, want, opts)).toEqual(expect.objectContaining({ kind: 'handover', from: 'db-1', to: 'db-2' }));
    const afterHandover = [node('db-1', { sourceNode: 'db-2' }), node('db-2', { ...current, role: 'primary', readOnly: false, sourceNode: undefined }), node('db-3', { ...current, sourceNode: 'db-2' })];
    expect(nextMysqlRollingAction(afterHandover, want, opts)).toEqual(expect.objectContaining({ kind: 'restart', node: 'db-1', primary: 'db-2' }));
    const done = afterHandover.map((n) => ({ ...n, ...current }));
    expect(nextMysqlRollingAction(done, want, opts)).toEqual({ kind: 'done' });
  });

  it('refuses: two writable nodes, a node down, no healthy replica, the last healthy replica while the primary is stale', () => {
    expect(nextMysqlRollingAction([primary(), node('db-2', { readOnly: false })], want, opts)).toEqual(expect.objectContaining({ kind: 'refuse', code: 'MultipleWritable' }));
    expect(nextMysqlRollingAction([primary(), node('db-2'), node('db-3', { reachable: false })], want, opts)).toEqual(expect.objectContaining({ kind: 'refuse', code: 'NodeDown' }));
    expect(nextMysqlRollingAction([primary(), node('db-2', { sqlRunning: false })], want, opts)).toEqual(expect.objectContaining({ kind: 'refuse', code: 'NoHealthyReplica' }));
    expect(nextMysqlRollingAction([primary(), node('db-2'), node('db-3', { ioRunning: 'Connecting' })], want, opts)).toEqual(
      expect.objectContaining({ kind: 'refuse', code: 'LastInSyncReplica' }),
    );
    // A lagging current replica cannot take over: the handover waits (refusal the workflow retries mid-roll).
    const lagging = [primary({ gtidBinlogPos: '0-1-5000' }), node('db-2', { ...current, gtidBinlogPos: '0-1-100', gtidSlavePos: '0-1-100' })];
    expect(nextMysqlRollingAction(lagging, want, opts)).toEqual(expect.objectContaining({ kind: 'refuse', code: 'NoHealthyReplica' }));
  });

  it('writes variables into the [mariadbd] group of an option file, replacing an existing line (dashes or underscores)', () => {
    const text = '[client]\nport=1\n[mariadbd]\nport=3306\nmax-connections=200\n';
    expect(setOptionFileValues(text, { max_connections: '300', slave_net_timeout: '7' })).toBe('[client]\nport=1\n[mariadbd]\nslave_net_timeout=7\nport=3306\nmax_connections=300\n');
    expect(setOptionFileValues(text, { port: '3307' })).toBe('[client]\nport=1\n[mariadbd]\nport=3307\nmax-connections=200\n');
    expect(setOptionFileValues('', { a: '1' })).toBe('\n[mariadbd]\na=1');
  });
});
