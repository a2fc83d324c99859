/**
 * Every Redis activity, run twice with the same input against real servers: the second run changes nothing
 * (no further mutating command reaches any server) and reports that the end state already held.
 * Activities run outside a worker, in @temporalio/testing's MockActivityEnvironment.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActivities, type Activities } from '../../activities';
import { loadInventory } from '../../inventory/load';
import { commandCalls } from '../helpers';
import { startRedisFleet, waitForReplication, type RedisFleet } from '../../sandbox/redis';

// CLIENT UNPAUSE is not counted: on a server that is not paused it changes nothing, and the compensation
// step (ensureRedisWritable) sends it unconditionally because Redis 7.0 does not report whether it is paused.
const MUTATING = ['replicaof', 'slaveof', 'failover', 'client|pause', 'config|set', 'shutdown'];

const mutations = (fleet: RedisFleet) => commandCalls(fleet, MUTATING);

describe('activities are idempotent against real Redis', () => {
  let fleet: RedisFleet;
  let acts: Activities;
  const env = new MockActivityEnvironment();
  const twice = async <I, O>(fn: (i: I) => Promise<O>, input: I): Promise<[O, O]> => {
    const first = (await env.run(fn, input)) as O;
    const before = await mutations(fleet);
    const second = (await env.run(fn, input)) as O;
    expect(await mutations(fleet), 'the second run sent no mutating command').toEqual(before);
    return [first, second];
  };

  beforeAll(async () => {
    fleet = await startRedisFleet({ cluster: 'idem' });
    const inventory = fleet.writeInventory();
    acts = createActivities({ inventory: () => loadInventory(inventory) });
  });
  afterAll(async () => {
    await fleet?.stop();
  });

  it('probe, veto and catch-up read and change nothing', async () => {
    const [a, b] = await twice(acts.probeRedisCluster, { cluster: 'idem' });
    const shape = (p: typeof a) => p.nodes.map((n) => ({ node: n.node, role: n.role, primaryNode: n.primaryNode, linkUp: n.linkUp, dbsize: n.dbsize }));
    expect(shape(b)).toEqual(shape(a));
    await twice(acts.vetoRedisHandover, { cluster: 'idem', primary: 'idem-1', candidate: 'idem-2', policy: { maxLagBytes: 1 << 20 } });
    await twice(acts.waitForRedisCatchUp, { cluster: 'idem', primary: 'idem-1', candidate: 'idem-2', timeoutMs: 10_000 });
  });

  it('handover, repoint and verify: the second run finds the end state and leaves it', async () => {
    const [h1, h2] = await twice(acts.ensureRedisHandedOver, { cluster: 'idem', from: 'idem-1', to: 'idem-2', method: 'pause-promote', pauseTimeoutMs: 5000 });
    expect([h1.alreadyHeld, h2.alreadyHeld]).toEqual([false, true]);
    const [r1, r2] = await twice(acts.ensureRedisReplicaOf, { cluster: 'idem', node: 'idem-3', primary: 'idem-2' });
    expect([r1.changed, r2.changed]).toEqual([true, false]);
    const [w1, w2] = await twice(acts.ensureRedisWritable, { cluster: 'idem', node: 'idem-2' });
    expect([w1.aborted, w2.aborted]).toEqual([false, false]);
    const [v1, v2] = await twice(acts.verifyRedisTopology, { cluster: 'idem', primary: 'idem-2', timeoutMs: 10_000 });
    expect(v2.primary).toBe(v1.primary);
    expect(await fleet.roles()).toEqual({ 'idem-1': 'slave', 'idem-2': 'master', 'idem-3': 'slave' });
  });

  it('config, restart and readiness: a node is restarted once, not twice', async () => {
    await waitForReplication(fleet, 'idem-2');
    const [c1, c2] = await twice(acts.ensureRedisConfigPersisted, { cluster: 'idem', node: 'idem-3', set: { hz: '17' } });
    expect([c1.changed, c2.changed]).toEqual([['hz=17'], []]);
    const { nodes } = (await env.run(acts.probeRedisSpecs, { cluster: 'idem', keys: ['hz'] })) as Awaited<ReturnType<Activities['probeRedisSpecs']>>;
    const runId = nodes.find((n) => n.node === 'idem-3')!.runId!;
    const [s1, s2] = await twice(acts.ensureRedisNodeRestarted, { cluster: 'idem', node: 'idem-3', sinceRunId: runId, timeoutMs: 30_000 });
    expect([s1.restarted, s2.restarted]).toEqual([true, false]);
    expect(s2.runId).toBe(s1.runId);
    expect(s1.runId).not.toBe(runId);
    await twice(acts.waitForRedisNodeReady, { cluster: 'idem', node: 'idem-3', primary: 'idem-2', timeoutMs: 30_000, maxLagBytes: 1 << 20 });
    const after = (await env.run(acts.probeRedisSpecs, { cluster: 'idem', keys: ['hz'] })) as Awaited<ReturnType<Activities['probeRedisSpecs']>>;
    expect(after.nodes.find((n) => n.node === 'idem-3')).toMatchObject({ config: { hz: '17' }, role: 'replica', primaryNode: 'idem-2' });
  });
});
