/**
 * A failover that fails for good after the point of no return (issue 21 item 2), through the real CLI, a real
 * worker and a real four-node Redis fleet: the primary is SIGKILLed, `failover --force` promotes the preferred
 * replica, one replica follows it and another cannot be repointed (its automation user lost REPLICAOF in the
 * ACL: NOPERM on every attempt). The run ends HandoverIncomplete, exit 1, saying what was done (the primary
 * changed from the dead one to the promoted one) and where the cluster stands (the primary now, who follows it,
 * who does not and why) in the message and as --json `standing`; the servers are then queried: they are as
 * described.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadInventory } from '../../inventory/load';
import { startRedisFleet, type RedisFleet } from '../../sandbox/redis';
import { runCli, startTestWorker, until, type TestWorker } from '../helpers';

describe('failover that cannot repoint a replica after the promotion', () => {
  let fleet: RedisFleet;
  let tw: TestWorker;
  let inventory: string;
  beforeAll(async () => {
    fleet = await startRedisFleet({ cluster: 'fi', replicas: 3 });
    // fi-2 is promoted (prefer), fi-4 never is: the run's choice does not depend on offsets.
    inventory = fleet.writeInventory(undefined, { promotion: { 'fi-2': 'prefer', 'fi-4': 'never' } });
    tw = await startTestWorker({ inventory: () => loadInventory(inventory) });
  });
  afterAll(async () => {
    await tw?.stop();
    await fleet?.stop();
  });

  it('ends HandoverIncomplete (exit 1): the primary changed, who follows, who does not and why; the servers agree', async () => {
    const [dead, promoted, follower, denied] = fleet.nodes;
    const d = denied.client();
    const f = follower.client();
    const p = promoted.client();
    try {
      await d.call('ACL', 'SETUSER', 'default', '-replicaof');
      await dead.stop('SIGKILL');
      await until('the replicas see the primary gone', async () => /master_link_status:down/.test(await f.info('replication')), 10_000, 50);

      const r = await runCli(['failover', '--cluster', 'fi', '--force', '--wait', '--json', '--address', tw.address, '--task-queue', tw.taskQueue, '--inventory', inventory]);
      expect(r.code, r.out + r.err).toBe(1);
      const j = JSON.parse(r.out.trim().split('\n').pop()!) as { failed: boolean; type: string; message: string; standing: unknown };
      expect(j).toMatchObject({ failed: true, type: 'HandoverIncomplete' });
      // What was done, what failed, and where it stands, in one line.
      expect(j.message).toMatch(
        new RegExp(
          `^failed \\(HandoverIncomplete\\): failover of fi passed the point of no return \\(${promoted.id} promoted, ${dead.id} dead\\): ` +
            `${denied.id} not repointed: .*NOPERM.*; repoint it \\(REPLICAOF ${promoted.id}\\) once fixed\\. ` +
            `Where it stands: the primary is now ${promoted.id} \\(was ${dead.id}\\); following ${promoted.id}: ${follower.id}; ` +
            `NOT following: ${dead.id} \\(unreachable.*\\); ${denied.id} \\(its replication link to ${dead.id} is down`,
        ),
      );
      expect(j.standing).toEqual({
        primary: promoted.id,
        previousPrimary: dead.id,
        changed: true,
        following: [follower.id],
        notFollowing: [
          { node: dead.id, reason: expect.stringMatching(/^unreachable/) },
          { node: denied.id, reason: expect.stringMatching(new RegExp(`^its replication link to ${dead.id} is down`)) },
        ],
      });

      // The servers are as described.
      expect(await p.info('replication')).toMatch(/role:master/);
      const fr = await f.info('replication');
      expect(fr).toMatch(new RegExp(`master_port:${promoted.port}\\b`));
      await until('the follower linked to the new primary', async () => /master_link_status:up/.test(await f.info('replication')), 10_000, 50);
      const dr = await d.info('replication');
      expect(dr).toMatch(/role:slave/);
      expect(dr).toMatch(new RegExp(`master_port:${dead.port}\\b`));
      expect(dr).toMatch(/master_link_status:down/);
      expect((await fleet.roles())[dead.id]).toBe('down');
    } finally {
      d.disconnect();
      f.disconnect();
      p.disconnect();
    }
  });
});
