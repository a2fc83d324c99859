/**
 * MariaDB: a replica that will not follow the new primary (errant GTIDs: a write made on the replica itself),
 * met by a switchover through the real CLI, a real worker and a real MariaDB fleet (issue 21):
 *  - without --allow-degraded the switchover is refused up front: exit 2, the message names the node, why,
 *    that nothing changed and the flag; `plan` warns first; the roles are unchanged;
 *  - with --allow-degraded it hands over and leaves that node behind (not repointed: it could not replicate
 *    from the new primary), ends done with warnings (exit 5) saying where the cluster stands;
 *  - `status` on the same fleet: the PENDING RESTART column reads `no` for each node (on this host, under the
 *    local controller, its option file as it runs), and `yes` with the reason once a node's option file sets a
 *    restart-only variable (back_log) to another value.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadInventory } from '../../inventory/load';
import { startMariaFleet, type MariaFleet } from '../../sandbox/mariadb';
import { runCli, startTestWorker, type TestWorker } from '../helpers';

describe('MariaDB switchover with a replica that will not follow', () => {
  let fleet: MariaFleet;
  let tw: TestWorker;
  let inventory: string;
  beforeAll(async () => {
    fleet = await startMariaFleet({ cluster: 'dgm' });
    inventory = fleet.writeInventory(undefined, { controller: true });
    tw = await startTestWorker({ inventory: () => loadInventory(inventory) });
  });
  afterAll(async () => {
    await tw?.stop();
    await fleet?.stop();
  });
  const conn = () => ['--address', tw.address, '--task-queue', tw.taskQueue, '--inventory', inventory];
  const writable = async () => {
    const st = await fleet.state();
    return fleet.nodes.filter((n) => st[n.id].up && st[n.id].readOnly === false).map((n) => n.id);
  };

  /** Every node replicating from the current primary, then an errant write on a third node (`heal` takes it back). */
  async function breakOne() {
    const [primaryId] = await writable();
    await fleet.setPrimary(primaryId);
    const primary = fleet.nodes.find((n) => n.id === primaryId)!;
    const [candidate, broken] = fleet.nodes.filter((n) => n !== primary);
    const c = await broken.root();
    try {
      await c.query('SET GLOBAL read_only = OFF');
      await c.query("INSERT INTO handover_app.acks (k, v) VALUES ('errant-dgm', 1)");
      await c.query('SET GLOBAL read_only = ON');
    } finally {
      await c.end();
    }
    /** The row removed unlogged, the binary log reset to the primary's GTID state, replication resumed from its position. */
    const heal = async () => {
      const [now] = await writable();
      const [p] = await fleet.sql<{ state: string; pos: string }[]>(now, 'SELECT @@gtid_binlog_state AS state, @@gtid_binlog_pos AS pos');
      const r = await broken.root();
      try {
        await r.query('STOP SLAVE');
        await r.query('SET SESSION sql_log_bin = 0');
        await r.query("DELETE FROM handover_app.acks WHERE k = 'errant-dgm'");
        await r.query('RESET MASTER');
        await r.query('SET GLOBAL gtid_binlog_state = ?', [p.state]);
        await r.query('SET GLOBAL gtid_slave_pos = ?', [p.pos]);
        await r.query('START SLAVE');
      } finally {
        await r.end();
      }
    };
    return { primary, candidate, broken, heal };
  }

  it('without --allow-degraded: plan warns, the switchover is refused up front (exit 2), nothing changed', async () => {
    const { primary, candidate, broken, heal } = await breakOne();
    try {
      const plan = await runCli(['plan', 'switchover', '--cluster', 'dgm', '--to', candidate.id, ...conn()]);
      expect(`${plan.out}\n${plan.err}`).toMatch(new RegExp(`${broken.id} has errant GTIDs 0-\\d+-\\d+: it could not replicate from the new primary`));
      const r = await runCli(['switchover', '--cluster', 'dgm', '--to', candidate.id, '--wait', ...conn()]);
      expect(r.code, r.err).toBe(2);
      expect(r.err).toMatch(
        new RegExp(`^refused \\(PreconditionFailed\\): cannot switch over to ${candidate.id}: ${broken.id} has errant GTIDs 0-\\d+-\\d+: it could not replicate from the new primary; nothing was changed\\. Fix it first, or pass --allow-degraded`, 'm'),
      );
      expect(await writable()).toEqual([primary.id]);
    } finally {
      await heal();
    }
  });

  it('--allow-degraded: hands over, leaves the node behind, exit 5 saying where the cluster stands', async () => {
    const { primary, candidate, broken, heal } = await breakOne();
    try {
      const r = await runCli(['switchover', '--cluster', 'dgm', '--to', candidate.id, '--allow-degraded', '--wait', '--json', ...conn()]);
      expect(r.code, `${r.out}\n${r.err}`).toBe(5);
      const report = JSON.parse(r.out.trim().split('\n').pop()!) as { newPrimary: string; standing: unknown; notFollowing: { node: string; reason: string }[] };
      expect(report.newPrimary).toBe(candidate.id);
      expect(report.standing).toEqual({
        primary: candidate.id,
        previousPrimary: primary.id,
        changed: true,
        following: [primary.id],
        notFollowing: [{ node: broken.id, reason: expect.stringMatching(new RegExp(`replicates from ${primary.id}, not from ${candidate.id}`)) }],
      });
      expect(report.notFollowing.map((n) => n.node)).toEqual([broken.id]);
      expect(await writable()).toEqual([candidate.id]);
      expect((await fleet.state())[broken.id].source).toMatch(new RegExp(`:${primary.port}$`));
    } finally {
      await heal();
    }
  });

  it('status: PENDING RESTART reads no for each node (this host, the local controller, the option file as it runs)', async () => {
    const st = await runCli(['status', '--cluster', 'dgm', ...conn()]);
    expect(st.code, st.err).toBe(0);
    expect(st.out).toMatch(/^ {2}NODE +ADDRESS +ROLE +LAG +VERSION +PENDING RESTART +MAINTENANCE +LINK$/m);
    for (const n of fleet.nodes) expect(st.out).toMatch(new RegExp(`^ {2}${n.id} +127\\.0\\.0\\.1:${n.port} +.* +\\S+-MariaDB\\S* +no +- +`, 'm'));
    const js = JSON.parse((await runCli(['status', '--cluster', 'dgm', '--json', ...conn()])).out) as { clusters: { nodes: { node: string; pendingRestart?: string[] }[] }[] };
    expect(js.clusters[0].nodes.map((n) => n.pendingRestart)).toEqual(fleet.nodes.map(() => []));
    // A restart-only variable (back_log) set in one node's option file to another value than it runs with.
    const n3 = fleet.nodes[2];
    const file = path.join(fleet.baseDir, n3.id, 'my.cnf');
    const text = readFileSync(file, 'utf8');
    const [{ running }] = await fleet.sql<{ running: string }[]>(n3.id, 'SELECT @@back_log AS running');
    const want = String(Number(running) + 7);
    writeFileSync(file, `${text}\n[mysqld]\nback_log = ${want}\n`);
    try {
      const again = await runCli(['status', '--cluster', 'dgm', ...conn()]);
      expect(again.out).toMatch(new RegExp(`^ {2}${n3.id} +127\\.0\\.0\\.1:${n3.port} +.* +yes +- +`, 'm'));
      expect(again.out).toMatch(new RegExp(`^ {2}pending restart ${n3.id}: back_log is ${want} in the option file, ${running} running \\(read-only variable\\)$`, 'm'));
    } finally {
      writeFileSync(file, text);
    }
  });
});
