/**
 * `handover failover --cluster C --shard <node>` on a real Redis Cluster (3 shards x 1 replica) that cannot
 * fail over by itself (`cluster-replica-no-failover yes` on every node): the shard's primary is SIGKILLed under
 * writes through a cluster-aware client; the run confirms it dead over `probesToConfirm` rounds (the monitor's
 * rule), promotes its replica with CLUSTER FAILOVER FORCE, and ends when every live node's CLUSTER NODES shows
 * the replica master of the shard's slots. cluster_state is ok again and the shard takes writes; writes lost are
 * only ones the killed primary acknowledged, on its own slots. A planned change is refused while the primary
 * answers, and an unknown node is refused, nothing changed.
 */
import Redis from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFailover } from '../../client/commands/failover';
import { loadInventory } from '../../inventory/load';
import { sleep } from '../../sandbox/ports';
import { startRedisClusterFleet, type RedisClusterFleet } from '../../sandbox/redis-cluster';
import { ClusterAckedWriter } from '../../sandbox/writer';
import type { ClusterFailoverReport } from '../../workflows/redis/cluster-failover';
import { captureIO, startTestWorker, type TestWorker } from '../helpers';

/** A key's cluster slot: CRC16 (XMODEM) mod 16384 (the writer's keys have no hash tags). */
function calculateSlot(key: string): number {
  let crc = 0;
  for (const b of Buffer.from(key)) {
    crc ^= b << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}

async function myself(fleet: RedisClusterFleet, id: string): Promise<{ flags: string; slots: string; info: string }> {
  const n = fleet.nodes.find((x) => x.id === id)!;
  const c = new Redis({ host: n.host, port: n.port, password: fleet.password, lazyConnect: true, retryStrategy: () => null });
  await c.connect();
  try {
    const line = ((await c.call('CLUSTER', 'NODES')) as string).split('\n').find((l) => l.includes('myself'))!.split(' ');
    return { flags: line[2], slots: line.slice(8).join(' '), info: (await c.call('CLUSTER', 'INFO')) as string };
  } finally {
    c.disconnect();
  }
}

const inSlots = (slots: string, slot: number) =>
  slots.split(' ').some((p) => {
    const [a, b] = p.split('-').map(Number);
    return slot >= a && slot <= (b ?? a);
  });

describe('failover of a Redis Cluster shard', () => {
  let fleet: RedisClusterFleet;
  let tw: TestWorker;
  let inventory: string;

  beforeAll(async () => {
    fleet = await startRedisClusterFleet({ cluster: 'rcfo' });
    inventory = fleet.writeInventory(undefined, { policy: { probeIntervalMs: 500, probesToConfirm: 3 } });
    // The cluster must not elect a replica by itself: the operator's (Handover's) call.
    for (const n of fleet.nodes) {
      const c = new Redis({ host: n.host, port: n.port, password: fleet.password });
      await c.config('SET', 'cluster-replica-no-failover', 'yes');
      c.disconnect();
    }
    tw = await startTestWorker({ inventory: () => loadInventory(inventory) });
  });
  afterAll(async () => {
    await tw?.stop();
    await fleet?.stop();
  });

  it('refuses while the primary answers, and an unknown node; nothing changed', async () => {
    const roles = await fleet.roles();
    const primary = Object.keys(roles).find((id) => roles[id] === 'master')!;
    for (const [shard, msg] of [
      // Refused with nothing changed, saying where the shard stands (its primary and the replica following it).
      [primary, new RegExp(`refused \\(PreconditionFailed\\): the shard's primary ${primary} answers: use switchover --shard for a planned change; nothing was changed\\. Where the shard stands: the primary is ${primary}; following ${primary}: \\S+$`, 'm')],
      ['nope', /refused \(PreconditionFailed\): --shard nope: no such node/],
    ] as const) {
      const io = captureIO();
      const r = await runFailover({ cluster: 'rcfo', shard, wait: true, inventory, address: tw.address, taskQueue: tw.taskQueue }, io);
      expect(r.exitCode, io.text()).toBe(2);
      expect(io.text()).toMatch(msg);
    }
    expect(await fleet.roles()).toEqual(roles);
  }, 60_000);

  it('a SIGKILLed shard primary: confirmed dead, its replica promoted with FORCE, every live node agrees, the shard takes writes again', async () => {
    const roles = await fleet.roles();
    const primaries = Object.keys(roles).filter((id) => roles[id] === 'master');
    let victim = primaries[0];
    for (const p of primaries) if (/(^| )0-/.test((await myself(fleet, p)).slots)) victim = p;
    const slots = (await myself(fleet, victim)).slots;
    const client = fleet.clusterClient();
    const writer = new ClusterAckedWriter(client).start();
    await sleep(800);
    const killed = fleet.nodes.find((n) => n.id === victim)!;
    await killed.stop('SIGKILL');
    const killedAt = writer.ackedKeys.length;

    const io = captureIO();
    const r = await runFailover({ cluster: 'rcfo', shard: victim, wait: true, inventory, address: tw.address, taskQueue: tw.taskQueue }, io);
    expect(r.exitCode, io.text()).toBe(0);
    const rep = r.report as unknown as ClusterFailoverReport;
    expect(rep.oldPrimary).toBe(victim);
    expect(rep.method).toBe('force');
    expect(io.text()).toMatch(/— 3 consecutive rounds: \S+ unreachable and all 1 reachable replicas report the link down/);
    expect(io.text()).toMatch(/by CLUSTER FAILOVER FORCE/);
    // Where the shard stands: the promoted replica (was the killed primary), which is not following while down.
    expect(rep.standing).toEqual({ primary: rep.newPrimary, previousPrimary: victim, changed: true, following: [], notFollowing: [{ node: victim, reason: expect.stringMatching(/^unreachable/) }] });
    expect(io.text()).toContain(`  where the shard stands: primary ${rep.newPrimary} (was ${victim})\n    following ${rep.newPrimary}: none\n    NOT following: ${victim}: unreachable`);
    const promoted = await myself(fleet, rep.newPrimary);
    expect(promoted.flags).toMatch(/master/);
    expect(promoted.slots).toBe(slots);
    for (const n of fleet.nodes.filter((x) => x.id !== victim)) expect((await myself(fleet, n.id)).info, n.id).toMatch(/cluster_state:ok/);
    expect(Object.entries(rep.views).filter(([id]) => id !== victim).every(([, v]) => v === 'agrees')).toBe(true);

    // The shard takes writes again.
    const grown = writer.ackedKeys.length;
    for (const t0 = Date.now(); writer.ackedKeys.slice(grown).filter((k) => inSlots(slots, calculateSlot(k))).length < 50; await sleep(20))
      if (Date.now() - t0 > 20_000) throw new Error('the promoted shard took no writes within 20 s');
    const stats = await writer.stop();
    expect(stats.acked).toBeGreaterThan(100);
    const missing = await writer.missing();
    // Only writes the killed primary acknowledged (its slots, before the promotion) can be missing.
    expect(missing.filter((k) => !inSlots(slots, calculateSlot(k)))).toEqual([]);
    console.log(`[cluster failover] acked=${stats.acked} (at kill ${killedAt}) missing=${missing.length} (all on the killed shard) promoted after ${rep.promotedMs} ms by ${rep.method}`);
    client.disconnect();
  }, 180_000);
});
