/**
 * A replica that will not follow the new primary (its link down: a wrong masterauth), met by a switchover
 * through the real CLI, a real worker and a real Redis fleet (issue 21 item 2):
 *  - without --allow-degraded the switchover is refused up front: exit 2, the message names the node, why, and
 *    the flag; nothing changed;
 *  - with --allow-degraded it hands over, repoints that node too (so it follows once its credentials are fixed),
 *    and ends "done with warnings" (exit 5) saying where the cluster stands: the new primary (and the old one),
 *    who follows it, who does not and why; --json carries the same as `standing` and `notFollowing`;
 *  - the inventory's policy.allowDegraded: true does the same without the flag; --no-allow-degraded refuses.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadInventory } from '../../inventory/load';
import { startRedisFleet, type RedisFleet } from '../../sandbox/redis';
import { runCli, startTestWorker, until, type TestWorker } from '../helpers';

describe('switchover with a replica that will not follow', () => {
  let fleet: RedisFleet;
  let tw: TestWorker;
  let inventory: string;
  beforeAll(async () => {
    fleet = await startRedisFleet({ cluster: 'dg' });
    inventory = fleet.writeInventory();
    tw = await startTestWorker({ inventory: () => loadInventory(inventory) });
  });
  afterAll(async () => {
    await tw?.stop();
    await fleet?.stop();
  });
  const conn = () => ['--address', tw.address, '--task-queue', tw.taskQueue, '--inventory', inventory];

  /** The current primary, a candidate and a third node whose link is cut by a wrong masterauth (restored by `heal`). */
  async function breakOne() {
    const roles = await fleet.roles();
    const primary = fleet.nodes.find((n) => roles[n.id] === 'master')!;
    const [candidate, broken] = fleet.nodes.filter((n) => n !== primary);
    const c = broken.client();
    await c.call('CONFIG', 'SET', 'masterauth', 'wrong-password');
    await c.call('CLIENT', 'KILL', 'TYPE', 'master');
    await until('the link down', async () => /master_link_status:down/.test(await c.info('replication')), 10_000, 100);
    const heal = async () => {
      await c.call('CONFIG', 'SET', 'masterauth', fleet.password);
      await until('the link up', async () => /master_link_status:up/.test(await c.info('replication')), 15_000, 100);
    };
    return { primary, candidate, broken, c, heal };
  }

  it('without --allow-degraded: refused up front, exit 2, nothing changed', async () => {
    const { candidate, broken, c, heal } = await breakOne();
    try {
      const before = await fleet.roles();
      const r = await runCli(['switchover', '--cluster', 'dg', '--to', candidate.id, '--wait', ...conn()]);
      expect(r.code, r.err).toBe(2);
      expect(r.err).toMatch(new RegExp(`^refused \\(PreconditionFailed\\): ${broken.id} will not follow the new primary: its replication link to \\S+ is down .*; nothing was changed\\. Fix it first, or pass --allow-degraded`, 'm'));
      expect(await fleet.roles()).toEqual(before);
      const j = await runCli(['switchover', '--cluster', 'dg', '--to', candidate.id, '--wait', '--json', ...conn()]);
      expect(j.code).toBe(2);
      expect(JSON.parse(j.out.trim())).toMatchObject({ failed: true, type: 'PreconditionFailed', message: expect.stringMatching(new RegExp(`${broken.id} will not follow`)) });
      expect(await fleet.roles()).toEqual(before);
    } finally {
      await heal();
      c.disconnect();
    }
  });

  it('--allow-degraded: hands over, leaves the node behind repointed, exit 5 saying where the cluster stands', async () => {
    const { primary, candidate, broken, c, heal } = await breakOne();
    try {
      const r = await runCli(['switchover', '--cluster', 'dg', '--to', candidate.id, '--allow-degraded', '--wait', '--json', ...conn()]);
      expect(r.code, r.err).toBe(5);
      const report = JSON.parse(r.out.trim().split('\n').pop()!) as { newPrimary: string; standing: unknown; notFollowing: { node: string; reason: string }[] };
      expect(report.newPrimary).toBe(candidate.id);
      expect(report.standing).toEqual({
        primary: candidate.id,
        previousPrimary: primary.id,
        changed: true,
        following: [primary.id],
        notFollowing: [{ node: broken.id, reason: expect.stringMatching(new RegExp(`its replication link to ${candidate.id} is down`)) }],
      });
      expect(report.notFollowing.map((n) => n.node)).toEqual([broken.id]);
      // Persist only what Handover changed: the wrong masterauth set at runtime is not written to the node's config
      // file (its role is), and the repoint's audit says so.
      const conf = readFileSync(path.join(fleet.baseDir, broken.id, 'redis.conf'), 'utf8');
      expect(conf).not.toMatch(/wrong-password/);
      expect(conf).toMatch(new RegExp(`^replicaof \\S+ ${candidate.port}$`, 'm'));
      expect((report as unknown as { audit: string[] }).audit).toContainEqual(expect.stringMatching(new RegExp(`^repoint ${broken.id}: .*persisted only the role in .*redis\\.conf \\(not CONFIG REWRITE\\): runtime differs from the file in masterauth, left unpersisted`)));
      expect((await fleet.roles())[candidate.id]).toBe('master');
      // Repointed although its link is down: once its credentials are fixed it follows the new primary.
      expect(await c.info('replication')).toMatch(new RegExp(`master_port:${candidate.port}\\b`));
      await heal();
      expect(await fleet.roles()).toEqual({ [candidate.id]: 'master', [primary.id]: 'slave', [broken.id]: 'slave' });
    } finally {
      await c.call('CONFIG', 'SET', 'masterauth', fleet.password);
      c.disconnect();
    }
  });

  it('--allow-degraded in text: the ending names the primary, who follows and who does not', async () => {
    const { primary, candidate, broken, c, heal } = await breakOne();
    try {
      const r = await runCli(['switchover', '--cluster', 'dg', '--to', candidate.id, '--allow-degraded', '--wait', ...conn()]);
      expect(r.code, r.err).toBe(5);
      expect(r.out).toMatch(new RegExp(`where it stands: primary ${candidate.id} \\(was ${primary.id}\\)\\n\\s+following ${candidate.id}: ${primary.id}\\n\\s+NOT following: ${broken.id}: its replication link to ${candidate.id} is down`));
      expect(r.err).toMatch(new RegExp(`^done with warnings: ${broken.id} does not follow the new primary: its replication link to ${candidate.id} is down`, 'm'));
      await heal();
    } finally {
      await c.call('CONFIG', 'SET', 'masterauth', fleet.password);
      c.disconnect();
    }
  });

  it('policy.allowDegraded: true in the inventory hands over without the flag (audit says so); --no-allow-degraded refuses', async () => {
    const { primary, candidate, broken, c, heal } = await breakOne();
    fleet.writeInventory(inventory, { policy: { allowDegraded: 'true' } });
    try {
      const no = await runCli(['switchover', '--cluster', 'dg', '--to', candidate.id, '--no-allow-degraded', '--wait', ...conn()]);
      expect(no.code, no.err).toBe(2);
      expect(no.err).toMatch(new RegExp(`^refused \\(PreconditionFailed\\): ${broken.id} will not follow the new primary`, 'm'));
      expect((await fleet.roles())[primary.id]).toBe('master');
      const r = await runCli(['switchover', '--cluster', 'dg', '--to', candidate.id, '--wait', '--json', ...conn()]);
      expect(r.code, r.err).toBe(5);
      const report = JSON.parse(r.out.trim().split('\n').pop()!) as { newPrimary: string; allowDegraded?: boolean; audit: string[] };
      expect(report.newPrimary).toBe(candidate.id);
      expect(report.allowDegraded).toBe(true);
      expect(report.audit).toContain('policy: allowDegraded from the inventory policy');
      await heal();
    } finally {
      fleet.writeInventory(inventory);
      await c.call('CONFIG', 'SET', 'masterauth', fleet.password);
      c.disconnect();
    }
  });
});
