/** The monitor's pure parts: following the fleet's primary, the honest data-loss window, restart risks, errant lists. */
import { describe, expect, it } from 'vitest';
import { mysqlLossWindow, redisLossWindow } from '../../core/data-loss';
import { listErrantGtids, errantOnReturn, ERRANT_LIST_MAX } from '../../core/mysql/failover';
import type { MysqlNodeProbe } from '../../core/mysql/decide';
import { fleetPrimary, followTopology, mysqlTopo, redisTopo, type TopoNode } from '../../core/monitor-topology';
import { mysqlRestartRisks, redisRestartRisks, riskLine } from '../../core/restart-risk';
import type { RedisNodeProbe } from '../../core/types';

const root = (node: string, writable = true): TopoNode => ({ node, reachable: true, root: true, writable });
const rep = (node: string, source: string): TopoNode => ({ node, reachable: true, root: false, writable: false, source });
const down = (node: string): TopoNode => ({ node, reachable: false, root: false, writable: false });

describe('the monitor follows the fleet, not its memory', () => {
  it('adopts the primary every reachable replica follows after a switchover it did not run', () => {
    // a was the primary; a switchover made b the primary, a and c its replicas.
    const d = followTopology([rep('a', 'b'), root('b'), rep('c', 'b')], 'a');
    expect(d).toMatchObject({ primary: 'b', adopted: expect.stringMatching(/primary moved from a: adopted b/) });
    expect(d.blind).toBeUndefined();
  });

  it('follows chains of replicas to their root', () => {
    expect(fleetPrimary([root('a'), rep('b', 'a'), rep('c', 'b')])).toEqual({ primary: 'a', followers: ['b', 'c'] });
  });

  it('never adopts a returning old primary: the replicas follow the real one', () => {
    // b is the new primary (monitor memory); a came back writable beside it, with no replica behind it.
    expect(followTopology([root('a'), root('b'), rep('c', 'b')], 'b')).toEqual({ primary: 'b', adopted: undefined });
    // Same fleet, a monitor whose memory is stale (a): still b, and a is the one to fence.
    expect(followTopology([root('a'), root('b'), rep('c', 'b')], 'a')).toMatchObject({ primary: 'b' });
  });

  it('never follows a replica back to a returning old primary, away from the node its own failover promoted', () => {
    // The monitor failed over a -> b; c could not be repointed and still follows a, which came back writable.
    expect(followTopology([root('a'), root('b'), rep('c', 'a')], 'b', 'b')).toMatchObject({ primary: 'b', adopted: undefined });
    // Once b no longer takes writes (a planned switchover back to a fenced it), the fleet's primary is adopted.
    expect(followTopology([root('a'), root('b', false), rep('c', 'a')], 'b', 'b')).toMatchObject({ primary: 'a' });
  });

  it('keeps a dead primary its replicas still point at (that is how its death is confirmed)', () => {
    const d = followTopology([down('a'), rep('b', 'a'), rep('c', 'a')], 'a');
    expect(d).toEqual({ primary: 'a', adopted: undefined });
  });

  it('does not adopt mid-switchover, while the replicas still follow the fenced (read-only) old primary', () => {
    const d = followTopology([root('a', false), root('b'), rep('c', 'a')], 'a');
    expect(d.primary).toBe('a');
    expect(d.adopted).toBeUndefined();
    expect(d.blind).toBeUndefined();
  });

  it('says loudly when it cannot confirm anything', () => {
    expect(followTopology([root('a', false), rep('b', 'a')], undefined).blind).toMatch(/^no primary known, nothing can be confirmed; no reachable node takes writes/);
    // Memory a is gone from the replicas' view and the fleet is split: blind, with the reason.
    const split = followTopology([root('a', false), root('b'), root('c'), rep('d', 'b'), rep('e', 'c')], 'a');
    expect(split.primary).toBe('a');
    expect(split.blind).toMatch(/cannot confirm a death of a: it answers read-only and no reachable replica follows it; the replicas do not all follow one writable primary/);
    // A live primary nobody follows: its death could not be confirmed.
    expect(followTopology([root('a'), down('b')], 'a').blind).toMatch(/cannot confirm a death of a: it answers as primary and no reachable replica follows it/);
  });

  it('with no memory and no replica, adopts the only writable node but stays blind', () => {
    const d = followTopology([root('a'), down('b')], undefined);
    expect(d.primary).toBe('a');
    expect(d.adopted).toMatch(/the only writable node/);
    expect(d.blind).toMatch(/no reachable replica follows it/);
  });

  it('reads MariaDB and Redis probes the same way', () => {
    const m = (node: string, o: Partial<MysqlNodeProbe>): MysqlNodeProbe => ({ node, address: node, promotion: 'neutral', reachable: true, ...o });
    expect(fleetPrimary(mysqlTopo([m('a', { role: 'replica', sourceNode: 'b', readOnly: true }), m('b', { role: 'primary', readOnly: false })]))).toMatchObject({ primary: 'b' });
    // A read-only MariaDB root takes no writes: not a primary to adopt.
    expect(fleetPrimary(mysqlTopo([m('a', { role: 'replica', sourceNode: 'b', readOnly: true }), m('b', { role: 'primary', readOnly: true })]))).toMatchObject({ unclear: 'no reachable node takes writes' });
    const r = (node: string, o: Partial<RedisNodeProbe>): RedisNodeProbe => ({ node, address: node, promotion: 'neutral', reachable: true, ...o });
    expect(fleetPrimary(redisTopo([r('a', { role: 'replica', primaryNode: 'b' }), r('b', { role: 'primary' }), r('c', { role: 'primary' })]))).toMatchObject({ primary: 'b' });
  });
});

describe('the data-loss window says what is known and what is not', () => {
  it('never says 0 lost when the primary was seen before it died', () => {
    const w = mysqlLossWindow('db-1', '0-1-120', { lastSight: { position: '0-1-118', at: 1_000 }, deadSince: 1_450, confirmedAt: 3_500 });
    expect(w).toMatchObject({ unit: 'transactions', knownLost: 0, lastSeenAt: 1_000, unobservedMs: 450, seenBeforeConfirmMs: 2_500 });
    expect(w.summary).toBe(
      'no loss known: the promoted node had 0-1-120, everything db-1 was seen with (0-1-118, 450 ms before the first probe that did not find it); NOT known: whatever db-1 committed after that sight (up to 450 ms of writes) that no replica received; if db-1 was cut off (a partition) rather than dead, also what it acknowledged until it was fenced, unless semi-synchronous replication without fallback (rpl_semi_sync_master_timeout longer than the partition) kept it from acknowledging what its replicas lacked',
    );
    expect(w.summary).not.toMatch(/\b0 (transactions )?lost/);
  });

  it('counts what the primary was seen with and the promoted node lacks as certainly lost (a lower bound)', () => {
    const w = mysqlLossWindow('db-1', '0-1-100', { lastSight: { position: '0-1-103', at: 1_000 }, deadSince: 1_400, confirmedAt: 3_000 });
    expect(w.knownLost).toBe(3);
    expect(w.summary).toMatch(/^at least 3 transactions lost: db-1 was seen at 0-1-103 \(400 ms before the first probe that did not find it\), the promoted node had 0-1-100; NOT known/);
    const r = redisLossWindow('c-1', 5_000, { lastSight: { position: 5_300, at: 10 }, deadSince: 210, confirmedAt: 2_000 });
    expect(r).toMatchObject({ unit: 'bytes', knownLost: 300, unobservedMs: 200 });
    expect(r.summary).toMatch(/^at least 300 bytes lost: .*NOT known: whatever c-1 committed after that sight \(up to 200 ms of writes\)/);
    expect(r.summary).toMatch(/if c-1 was cut off \(a partition\) rather than dead, also what it acknowledged until min-replicas-to-write stopped it \(about min-replicas-max-lag \+ 1 s after its replicas lost it\)/);
  });

  it('is unknown without a monitor, and uses the confirmation time when the death was not seen', () => {
    expect(redisLossWindow('c-1', 5, { confirmedAt: 1 })).toEqual({ unit: 'bytes', summary: expect.stringMatching(/^unknown: c-1 was not observed before it died/) });
    const w = redisLossWindow('c-1', 5, { lastSight: { position: 5, at: 100 }, confirmedAt: 2_100 });
    expect(w.unobservedMs).toBeUndefined();
    expect(w.summary).toMatch(/2000 ms before the failover was confirmed.*up to 2000 ms of writes/);
  });
});

describe('a flagged node lists every errant GTID', () => {
  it('three errant commits show as one position entry; all three are listed', () => {
    const errant = errantOnReturn('0-1-103', '0-1-100', '0-2-150');
    expect(errant).toEqual(['0-1-103']);
    expect(listErrantGtids(errant, '0-1-100', '0-2-150')).toEqual(['0-1-101', '0-1-102', '0-1-103']);
  });
  it('without the promoted position, from what the primary has now; a same-sequence divergence is one GTID', () => {
    expect(listErrantGtids(['0-1-12'], undefined, '0-2-10')).toEqual(['0-1-11', '0-1-12']);
    expect(listErrantGtids(['0-1-10'], undefined, '0-2-10')).toEqual(['0-1-10']);
    expect(listErrantGtids(['3-1-2'], '0-2-10', '0-2-10')).toEqual(['3-1-1', '3-1-2']);
  });
  it('many are given as one range that still names every one', () => {
    expect(listErrantGtids([`0-1-${100 + ERRANT_LIST_MAX + 1}`], '0-1-100', undefined)).toEqual([`0-1-101..0-1-${100 + ERRANT_LIST_MAX + 1}`]);
  });
});

describe('restart risks: a configuration that lets a node take writes on restart', () => {
  const m = (node: string, o: Partial<MysqlNodeProbe>): MysqlNodeProbe => ({ node, address: node, promotion: 'neutral', reachable: true, role: 'primary', readOnly: false, ...o });
  it('MariaDB: read_only never set or OFF in the config is certain; set at runtime cannot be checked', () => {
    expect(mysqlRestartRisks([m('a', { readOnlyOrigin: 'COMPILE-TIME' })]).map(riskLine)).toEqual([expect.stringMatching(/^! restart risk: a: read_only is not set in its option files: restarted, it comes back WRITABLE.*no SET PERSIST/)]);
    expect(mysqlRestartRisks([m('a', { readOnlyOrigin: 'CONFIG', readOnlyOriginPath: '/etc/my.cnf' })])[0]).toMatchObject({ certain: true, text: expect.stringMatching(/read_only=OFF in \/etc\/my.cnf/) });
    expect(mysqlRestartRisks([m('a', { readOnlyOrigin: 'COMMAND-LINE' })])[0].text).toMatch(/on its command line/);
    expect(mysqlRestartRisks([m('a', { readOnlyOrigin: 'SQL' })]).map(riskLine)).toEqual([expect.stringMatching(/^\? restart risk: a: read_only was last set at runtime \(SQL\)/)]);
    // Replicas, read-only nodes and probes without the origin are not flagged.
    expect(mysqlRestartRisks([m('a', {}), m('b', { readOnly: true, readOnlyOrigin: 'SQL' }), m('c', { role: 'replica', readOnly: true, readOnlyOrigin: 'COMMAND-LINE' })])).toEqual([]);
  });
  it('Redis: a primary without min-replicas-to-write, a node without a config file', () => {
    const r = (node: string, o: Partial<RedisNodeProbe>): RedisNodeProbe => ({ node, address: node, promotion: 'neutral', reachable: true, ...o });
    const risks = redisRestartRisks([r('a', { role: 'primary', minReplicasToWrite: false, configFile: '/x/redis.conf' }), r('b', { role: 'replica', configFile: '' }), r('c', { role: 'primary', minReplicasToWrite: true, configFile: '/c.conf' })]);
    expect(risks.map((x) => x.text)).toEqual([
      'a has min-replicas-to-write 0: restarted beside a new primary, it takes writes until fenced; set min-replicas-to-write 1 (and min-replicas-max-lag) in its config',
      'b runs without a config file: CONFIG REWRITE cannot persist its role, so restarted it forgets replicaof and comes back a PRIMARY',
    ]);
    expect(redisRestartRisks([r('a', { role: 'primary', minReplicasToWrite: false, configFile: '/x/redis.conf' })], 'cluster')).toEqual([]);
  });
});
