/**
 * No Redis/Valkey switchover leaves the cluster without a writable primary: ACL permissions are checked with
 * ACL DRYRUN before anything changes, and a promotion refused after the old primary was demoted (REPLICAOF NO
 * ONE denied on the candidate) is reverted. Real redis-server / valkey-server and the real Temporal dev server;
 * each case starts its own fleet. The ACL is changed on one node only (ACL rules are per server).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadInventory } from '../../inventory/load';
import { runSwitchover } from '../../client/commands/switchover';
import { runPlan } from '../../client/commands/plan';
import { startRedisFleet, waitForReplication, type RedisFleet } from '../../sandbox/redis';
import { AckedWriter } from '../../sandbox/writer';
import { captureIO, commandCalls, moreAcks, runCli, startTestWorker, until, type TestWorker } from '../helpers';

let fleet: RedisFleet | undefined;
let inventory = '';
let tw: TestWorker;
let onPaused: (() => Promise<void>) | undefined;

beforeAll(async () => {
  tw = await startTestWorker({
    inventory: () => loadInventory(inventory),
    failpoint: async (name) => {
      if (name === 'ensureRedisHandedOver.paused' && onPaused) {
        const f = onPaused;
        onPaused = undefined;
        await f();
      }
    },
  });
});
afterAll(async () => {
  await tw?.stop();
});
afterEach(async () => {
  onPaused = undefined;
  await fleet?.stop();
  fleet = undefined;
});

async function newFleet(flavor: 'redis' | 'valkey', cluster: string): Promise<RedisFleet> {
  fleet = await startRedisFleet({ flavor, cluster });
  inventory = fleet.writeInventory();
  return fleet;
}
const opts = (f: RedisFleet, to?: string) => ({ cluster: f.cluster, wait: true, inventory, address: tw.address, taskQueue: tw.taskQueue, to });

async function acl(f: RedisFleet, node: string, ...rule: string[]) {
  const c = f.nodes.find((n) => n.id === node)!.client();
  try {
    await c.call('ACL', 'SETUSER', 'default', ...rule);
  } finally {
    c.disconnect();
  }
}

/** Exactly one master, the expected one, holding every acknowledged write. */
async function oneMasterWithEveryAck(f: RedisFleet, expected: string, writer: AckedWriter) {
  const stats = await writer.stop();
  await writer.close();
  const roles = await f.roles();
  expect(Object.entries(roles).filter(([, r]) => r === 'master').map(([id]) => id)).toEqual([expected]);
  expect(stats.acked).toBeGreaterThan(50);
  const n = f.nodes.find((x) => x.id === expected)!;
  expect(await writer.missingOn(n.host, n.port), `acknowledged writes missing on ${expected}`).toEqual([]);
}

describe.each(['redis', 'valkey'] as const)('%s switchover: ACL permissions checked before anything changes', (flavor) => {
  it('REPLICAOF denied on a replica: plan, switchover and status name it; no mutating command reaches any node', async () => {
    const f = await newFleet(flavor, `acl-${flavor}`);
    const [n1, n2] = f.nodes;
    await acl(f, n2.id, '-replicaof');
    const writer = new AckedWriter(f.nodes, f.password).start();
    await moreAcks(writer, 60);
    const mutating = ['replicaof', 'client|pause', 'client|unpause', 'failover', 'config|rewrite'];
    const before = await commandCalls(f, mutating);

    const planIo = captureIO();
    expect((await runPlan({ runbook: 'switchover', ...opts(f, n2.id) }, planIo)).exitCode, planIo.text()).toBe(2);
    const run = captureIO();
    expect((await runSwitchover(opts(f, n2.id), run)).exitCode, run.text()).toBe(2);
    for (const text of [planIo.text(), run.text()]) {
      expect(text).toContain(`refused (PreconditionFailed): the automation user lacks replicaof (promote and repoint) on ${n2.id}: ACL SETUSER`);
      expect(text).toContain('+replicaof');
      expect(text).toContain('nothing was changed');
    }
    const status = await runCli(['status', '--cluster', f.cluster, '--inventory', inventory, '--address', tw.address]);
    expect(status.out).toContain(`! the automation user lacks replicaof (promote and repoint) on ${n2.id}`);
    expect(await commandCalls(f, mutating)).toEqual(before);
    await oneMasterWithEveryAck(f, n1.id, writer);
  });
});

describe('redis switchover: a promotion refused after the demotion is reverted', () => {
  it('REPLICAOF denied on the candidate while writes are paused: the old primary is primary again and takes writes; the candidate follows it', async () => {
    const f = await newFleet('redis', 'revert-redis');
    const [n1, n2] = f.nodes;
    const writer = new AckedWriter(f.nodes, f.password).start();
    await moreAcks(writer, 60);
    // The candidate has synced (a replica that holds no keys yet is refused before the pause: main's copy, with a
    // 300 ms sleep here, failed so once).
    await waitForReplication(f, n1.id);
    onPaused = () => acl(f, n2.id, '-replicaof');
    const io = captureIO();
    const r = await runSwitchover(opts(f, n2.id), io);
    expect(r.exitCode, io.text()).toBe(1);
    expect(io.text()).toMatch(
      new RegExp(
        `failed \\(HandoverAborted\\): switchover of ${f.cluster} undone: REPLICAOF NO ONE on ${n2.id} failed \\(the automation user lacks an ACL permission on ${n2.id} .*'replicaof'.*\\); ${n1.id} was made primary again and takes writes; ${n1.id} is still the primary and writable`,
      ),
    );
    await moreAcks(writer, 50); // the old primary takes writes again
    await oneMasterWithEveryAck(f, n1.id, writer);
    // The candidate never stopped being a replica of the old primary: its link comes back up (bounded wait).
    let link = '';
    await until(`${n2.id}'s link to ${n1.id} up`, async () => {
      const c = n2.client();
      const info = await c.info('replication').finally(() => c.disconnect());
      link = /master_port:(\d+)/.exec(info)?.[1] !== String(n1.port) ? 'wrong-primary' : (/master_link_status:(\w+)/.exec(info)?.[1] ?? '');
      return link === 'up';
    }, 5000, 50).catch(() => undefined);
    expect(link).toBe('up');
  });
});
