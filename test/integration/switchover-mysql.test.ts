/**
 * Planned switchover of MariaDB 10.11 (1 primary + 2 GTID replicas) against real mariadbd processes and the
 * real Temporal dev server, the automation connecting as the least-privilege `handover` user.
 *
 *  - Under a continuous transactional writer: no acknowledged commit lost, identical GTID positions and row
 *    counts on every node afterwards, never two writable nodes (sampled every 100 ms), the old primary
 *    read-only from its fence on, the routing hook run with the new primary.
 *  - Refusals change nothing: read_only, replication configuration and threads, GTID positions and the
 *    server's own counters of replication-changing statements are compared before and after.
 *  - Each test sets the primary it starts from (MariaFleet.setPrimary); the errant-GTID case takes its errant
 *    transaction back afterwards, so no test depends on another's order.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createMysqlActivities } from '../../activities/mysql/switchover';
import { loadInventory } from '../../inventory/load';
import { runSwitchover } from '../../client/commands/switchover';
import { startMariaFleet, type MariaFleet, type NodeState } from '../../sandbox/mariadb';
import { SqlWriter } from '../../sandbox/sql-writer';
import { sleep } from '../../sandbox/ports';
import type { MysqlSwitchoverReport } from '../../workflows/mysql/switchover';
import { captureIO, moreAcks, startTestWorker, until, type TestWorker } from '../helpers';

interface Sample {
  t: number;
  writable: string[];
  state: Record<string, NodeState>;
}

/** Samples every node's read_only and replication source every 100 ms until stopped. */
function startSampler(fleet: MariaFleet) {
  const samples: Sample[] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const t = Date.now();
      let state = await fleet.state();
      // The fence kills every non-automation session, the sampler's own root connection included: ask again.
      for (let i = 0; i < 3 && Object.values(state).some((s) => !s.up); i++) state = await fleet.state();
      samples.push({ t, state, writable: Object.entries(state).filter(([, s]) => s.up && s.readOnly === false).map(([id]) => id) });
      await sleep(Math.max(0, 100 - (Date.now() - t)));
    }
  })();
  return {
    samples,
    async stop() {
      stopped = true;
      await loop;
      return samples;
    },
  };
}

describe('MariaDB switchover under a continuous transactional writer', () => {
  let fleet: MariaFleet;
  let tw: TestWorker;
  let inventory: string;
  let hookFile: string;

  beforeAll(async () => {
    fleet = await startMariaFleet({ cluster: 'sw-maria' });
    hookFile = path.join(fleet.baseDir, 'writer-endpoint');
    inventory = fleet.writeInventory(undefined, { routingHook: `echo {primary} {host}:{port} from {oldPrimary} >> ${hookFile}` });
    tw = await startTestWorker({ inventory: () => loadInventory(inventory) });
  });
  afterAll(async () => {
    await tw?.stop();
    await fleet?.stop();
  });

  it('hands the primary over and back: no acknowledged commit lost, never two writable nodes, all nodes identical', async () => {
    const [n1] = fleet.nodes;
    await fleet.setPrimary(n1.id);
    writeFileSync(hookFile, '');
    const writer = new SqlWriter(fleet.nodes, fleet.appUser, fleet.appPassword).start();
    const sampler = startSampler(fleet);
    await moreAcks(writer, 20);
    await until('a few samples', async () => sampler.samples.length >= 3);
    const opts = { cluster: fleet.cluster, wait: true, inventory, address: tw.address, taskQueue: tw.taskQueue };

    const t1 = Date.now();
    const io1 = captureIO();
    const first = await runSwitchover(opts, io1);
    const t1end = Date.now();
    expect(first.exitCode, io1.text()).toBe(0);
    const r1 = first.report as unknown as MysqlSwitchoverReport;
    expect(r1.engine).toBe('mysql');
    expect(r1.oldPrimary).toBe(n1.id);
    expect(r1.newPrimary).not.toBe(n1.id);
    expect(r1.routing).toEqual(expect.objectContaining({ ran: true, ok: true }));
    expect(io1.text()).toMatch(new RegExp(`switched over ${fleet.cluster}: ${n1.id} -> ${r1.newPrimary}`));
    expect(io1.text()).toMatch(/fenced at GTID \d+-\d+-\d+(,\d+-\d+-\d+)*; \d+ application session\(s\) killed/);
    expect(io1.text()).toMatch(new RegExp(`routing hook: ran the routing hook for ${r1.newPrimary}`));
    await moreAcks(writer, 20); // committed again, on the new primary

    const t2 = Date.now();
    const io2 = captureIO();
    const second = await runSwitchover({ ...opts, to: n1.id }, io2);
    const t2end = Date.now();
    expect(second.exitCode, io2.text()).toBe(0);
    const r2 = second.report as unknown as MysqlSwitchoverReport;
    expect(r2.newPrimary).toBe(n1.id);
    expect(r2.oldPrimary).toBe(r1.newPrimary);
    await moreAcks(writer, 20);

    const stats = await writer.stop();
    await writer.close();
    const samples = await sampler.stop();

    // The writer followed the writable node both times.
    expect(writer.primariesSeen).toEqual([n1.id, r1.newPrimary, n1.id]);
    expect(stats.acked).toBeGreaterThan(300);

    // Never two writable nodes; none only inside a switchover; exactly one before, between and after.
    expect(samples.length).toBeGreaterThan(20);
    for (const s of samples) expect(Object.values(s.state).every((x) => x.up), `a node did not answer at ${s.t}`).toBe(true);
    for (const s of samples) expect(s.writable.length, `sample at ${s.t}: ${JSON.stringify(s.writable)}`).toBeLessThanOrEqual(1);
    const outside = samples.filter((s) => !((s.t >= t1 && s.t <= t1end) || (s.t >= t2 && s.t <= t2end)));
    for (const s of outside) expect(s.writable.length, `sample at ${s.t} outside the switchovers`).toBe(1);
    const zero = samples.filter((s) => s.writable.length === 0);

    // The old primary is read-only from its fence on, until (and after) it is repointed.
    const oldPrimaryStaysFenced = (old: string, from: number, to: number) => {
      const window = samples.filter((s) => s.t >= from && s.t <= to);
      const fencedAt = window.findIndex((s) => s.state[old].readOnly === true);
      expect(fencedAt, `${old} never seen read-only`).toBeGreaterThanOrEqual(0);
      for (const s of window.slice(fencedAt)) expect(s.state[old].readOnly, `${old} writable again at ${s.t}`).toBe(true);
    };
    oldPrimaryStaysFenced(n1.id, t1, t2);
    oldPrimaryStaysFenced(r1.newPrimary, t2, Date.now());

    // Converged: one writable primary, every replica following it with identical GTID positions and rows.
    await fleet.waitForReplication(n1.id);
    const st = await fleet.state();
    expect(Object.values(st).filter((s) => !s.readOnly)).toHaveLength(1);
    expect(st[n1.id].readOnly).toBe(false);
    const positions = new Set(Object.values(st).map((s) => s.gtidBinlogPos));
    expect(positions.size, JSON.stringify(st)).toBe(1);
    const counts = await Promise.all(fleet.nodes.map(async (n) => (await fleet.sql<{ c: number }[]>(n.id, 'SELECT COUNT(*) AS c FROM handover_app.acks'))[0].c));
    expect(new Set(counts).size, `row counts ${counts}`).toBe(1);
    expect(counts[0]).toBeGreaterThanOrEqual(stats.acked);
    for (const n of fleet.nodes) expect(await writer.missingOn(n), `${n.id} missing acknowledged commits`).toEqual([]);

    // The routing hook ran with each new primary.
    const hookLines = readFileSync(hookFile, 'utf8').trim().split('\n');
    const nodeOf = (id: string) => fleet.nodes.find((n) => n.id === id)!;
    expect(hookLines).toEqual([
      `${r1.newPrimary} 127.0.0.1:${nodeOf(r1.newPrimary).port} from ${n1.id}`,
      `${n1.id} 127.0.0.1:${n1.port} from ${r1.newPrimary}`,
    ]);

    const gap1 = writer.maxGapMs(writer.now() - (Date.now() - t1), writer.now() - (Date.now() - t1end));
    console.log(
      `[mariadb switchover] acked=${stats.acked} errors=${stats.errors} ${JSON.stringify(writer.errorCodes)} writer maxGapMs=${stats.maxGapMs} ` +
        `(first switchover ${Math.round(gap1)}) writePauseMs=${r1.writePauseMs}/${r2.writePauseMs} killed=${r1.killedSessions}/${r2.killedSessions} ` +
        `samples=${samples.length} zeroWritable=${zero.length} runs=${t1end - t1}/${t2end - t2} ms steps1=${JSON.stringify(r1.steps)} gtid=${[...positions][0]}`,
    );
    expect(stats.maxGapMs).toBeLessThan(10_000);
    expect(r1.writePauseMs).toBeGreaterThan(0);
    expect(r1.writePauseMs).toBeLessThan(10_000);

    // No password is anywhere in the run's history.
    const history = await tw.env.client.workflow.getHandle(`handover-${fleet.cluster}`).fetchHistory();
    const text = JSON.stringify(history).replace(/"data":"([A-Za-z0-9+/=]+)"/g, (_m, b64: string) => JSON.stringify(Buffer.from(b64, 'base64').toString('utf8')));
    expect(text).toContain('newPrimary');
    for (const secret of [fleet.handoverPassword, fleet.replPassword, fleet.appPassword]) expect(text).not.toContain(secret);
  });

  it('every ensure* activity run again on the converged cluster changes nothing', async () => {
    const [n1, n2, n3] = fleet.nodes;
    await fleet.setPrimary(n1.id);
    const acts = createMysqlActivities({ inventory: () => loadInventory(inventory) });
    const counters = () => Promise.all(fleet.nodes.map((n) => fleet.sql<{ Variable_name: string; Value: string }[]>(n.id, "SHOW GLOBAL STATUS WHERE Variable_name IN ('Com_change_master', 'Com_start_slave', 'Com_stop_slave', 'Com_reset_slave', 'Com_set_option', 'Com_kill')")));
    const before = await counters();
    const st = await fleet.state();
    const primary = await acts.ensureMysqlPrimary({ cluster: fleet.cluster, node: n1.id, mustInclude: st[n1.id].gtidBinlogPos! });
    expect(primary).toEqual(expect.objectContaining({ alreadyHeld: true }));
    expect((await acts.ensureMysqlWritable({ cluster: fleet.cluster, node: n1.id })).changed).toBe(false);
    for (const n of [n2, n3]) {
      const r = await acts.ensureMysqlReplicaOf({ cluster: fleet.cluster, node: n.id, primary: n1.id });
      expect(r.changed, r.audit).toBe(false);
    }
    expect(await counters()).toEqual(before);
    // And the refusals that guard them: never demote a writable primary, never undo past the point of no return.
    await expect(acts.ensureMysqlReplicaOf({ cluster: fleet.cluster, node: n1.id, primary: n2.id })).rejects.toThrow(/writable primary; refusing to make it a replica/);
    await expect(acts.ensureMysqlWritable({ cluster: fleet.cluster, node: n2.id })).rejects.toThrow(/passed the point of no return/);
    await expect(acts.ensureMysqlPrimary({ cluster: fleet.cluster, node: n2.id, mustInclude: '' })).rejects.toThrow(new RegExp(`refusing to promote ${n2.id}: ${n1.id} still writable`));
    expect(await counters()).toEqual(before);
  });

  it('a failing routing hook is reported (step failed, report.routing), and the switchover still completes and verifies', async () => {
    await fleet.setPrimary(fleet.nodes[0].id);
    const failing = path.join(fleet.baseDir, 'failing-hook.yaml');
    writeFileSync(failing, fleet.inventoryYaml({ routingHook: 'echo haproxy said no >&2; exit 7' }));
    const saved = inventory;
    inventory = failing; // the worker reads the inventory on every activity
    try {
      const io = captureIO();
      const r = await runSwitchover({ cluster: fleet.cluster, wait: true, inventory, address: tw.address, taskQueue: tw.taskQueue, to: fleet.nodes[1].id }, io);
      expect(r.exitCode, io.text()).toBe(5); // done with warnings (the routing hook failed)
      const rep = r.report as unknown as MysqlSwitchoverReport;
      expect(rep.routing).toEqual({ ran: true, ok: false, detail: expect.stringMatching(/routing hook exited 7 after \d+ ms: haproxy said no/) });
      expect(rep.audit.join('\n')).toMatch(/ROUTING HOOK FAILED/);
      expect(io.text()).toMatch(/failed\s+routing: .*routing hook exited 7/);
      expect(io.text()).toMatch(/ROUTING HOOK FAILED: routing hook exited 7 .* \(move the writer endpoint to \S+ by hand\)/);
      expect(rep.verify?.primary).toBe(fleet.nodes[1].id);
      await fleet.waitForReplication(fleet.nodes[1].id);
    } finally {
      inventory = saved;
    }
  });
});

describe('MariaDB switchover refusals and undo (nothing changes)', () => {
  let fleet: MariaFleet;
  let tw: TestWorker;
  let inventory: string;
  let opts: { address: string; taskQueue: string; wait: boolean; inventory: string; cluster: string };
  let holdProbeMs = 0;
  let onFence: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    fleet = await startMariaFleet({ cluster: 'refuse-maria' });
    inventory = fleet.writeInventory(undefined, { policy: { maxLagTransactions: 10, catchUpTimeoutMs: 3000 } });
    tw = await startTestWorker({
      inventory: () => loadInventory(inventory),
      failpoint: async (name) => {
        if (name === 'probeMysqlCluster.start' && holdProbeMs) await sleep(holdProbeMs);
        if (name === 'ensureMysqlFenced.beforeFence' && onFence) await onFence();
      },
    });
    opts = { address: tw.address, taskQueue: tw.taskQueue, wait: true, inventory, cluster: fleet.cluster };
    await fleet.sql(0, "INSERT INTO handover_app.acks (k, v) VALUES ('seed', 1)");
  });
  afterAll(async () => {
    await tw?.stop();
    await fleet?.stop();
  });

  /**
   * Per node: read_only, replication source, threads and delay, GTID positions, and the server's counters of
   * statements that change replication or settings or kill sessions (CHANGE MASTER, START/STOP/RESET SLAVE,
   * SET, KILL). Equal before and after means the run changed nothing.
   */
  async function snapshot(): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const n of fleet.nodes) {
      const [v] = await fleet.sql<Record<string, unknown>[]>(n.id, 'SELECT @@read_only AS ro, @@gtid_binlog_pos AS b, @@gtid_slave_pos AS s');
      const ss = (await fleet.sql<Record<string, unknown>[]>(n.id, 'SHOW SLAVE STATUS'))[0];
      const com = await fleet.sql<{ Variable_name: string; Value: string }[]>(
        n.id,
        "SHOW GLOBAL STATUS WHERE Variable_name IN ('Com_change_master', 'Com_start_slave', 'Com_stop_slave', 'Com_slave_start', 'Com_slave_stop', 'Com_reset_slave', 'Com_set_option', 'Com_kill')",
      );
      out[n.id] =
        `ro=${v.ro} binlog=${v.b} slave=${v.s} ` +
        (ss ? `source=${ss.Master_Port} io=${ss.Slave_IO_Running} sql=${ss.Slave_SQL_Running} delay=${ss.SQL_Delay} ` : 'no-replication ') +
        com.map((c) => `${c.Variable_name}=${c.Value}`).join(' ');
    }
    return out;
  }

  let before: Record<string, string>;
  beforeEach(async () => {
    await fleet.setPrimary(0);
  });

  async function refused(o: { to?: string }, pattern: RegExp, code = 2) {
    before = await snapshot();
    const io = captureIO();
    const r = await runSwitchover({ ...opts, ...o }, io);
    expect(r.exitCode, io.text()).toBe(code);
    expect(io.text()).toMatch(pattern);
    expect(await snapshot()).toEqual(before);
    return io.text();
  }

  it('target already primary', async () => {
    const [n1] = fleet.nodes;
    await refused({ to: n1.id }, new RegExp(`refused \\(PreconditionFailed\\): cannot switch over to ${n1.id}: ${n1.id} is already the primary`));
  });

  it('candidate lagging beyond the limit (delayed SQL thread, 30 transactions behind, limit 10)', async () => {
    const n2 = fleet.nodes[1];
    await fleet.sql(n2.id, 'STOP SLAVE');
    await fleet.sql(n2.id, 'CHANGE MASTER TO MASTER_DELAY = 3600');
    await fleet.sql(n2.id, 'START SLAVE');
    try {
      for (let i = 0; i < 30; i++) await fleet.sql(0, 'INSERT INTO handover_app.acks (k, v) VALUES (?, ?)', [`lag-${i}`, i]);
      // The other replica is caught up; the delayed one has received but not applied them.
      const goal = (await fleet.state())[fleet.nodes[0].id].gtidBinlogPos!;
      await fleet.sql(fleet.nodes[2].id, 'SELECT MASTER_GTID_WAIT(?, 10)', [goal]);
      await refused({ to: n2.id }, new RegExp(`PreconditionFailed.*${n2.id} lags 30 transactions behind ${fleet.nodes[0].id} \\(limit 10`));
    } finally {
      await fleet.sql(n2.id, 'STOP SLAVE');
      await fleet.sql(n2.id, 'CHANGE MASTER TO MASTER_DELAY = 0');
      await fleet.sql(n2.id, 'START SLAVE');
    }
  });

  it('candidate with replication stopped', async () => {
    const n2 = fleet.nodes[1];
    await fleet.sql(n2.id, 'STOP SLAVE');
    try {
      await refused({ to: n2.id }, new RegExp(`PreconditionFailed.*${n2.id} is not replicating \\(IO thread No, SQL thread No`));
    } finally {
      await fleet.sql(n2.id, 'START SLAVE');
    }
  });

  it('a second operation on the same cluster is refused as already running (exit 3)', async () => {
    // Hold the cluster with a run whose probe is slowed down; it will itself refuse (--to the primary).
    holdProbeMs = 3000;
    before = await snapshot();
    try {
      const ioFirst = captureIO();
      const first = runSwitchover({ ...opts, to: fleet.nodes[0].id }, ioFirst);
      await until('the first run to hold the cluster', async () => (await tw.env.client.workflow.getHandle(`handover-${fleet.cluster}`).describe()).status.name === 'RUNNING');
      const io = captureIO();
      const second = await runSwitchover(opts, io);
      expect(second.exitCode, io.text()).toBe(3);
      expect(io.text()).toMatch(new RegExp(`already running: handover-${fleet.cluster} \\(switchover, run `));
      const r1 = await first;
      expect(r1.exitCode, ioFirst.text()).toBe(2);
      expect(await snapshot()).toEqual(before);
    } finally {
      holdProbeMs = 0;
    }
  });

  it('candidate that stops applying during catch-up: the fence is undone, the old primary writable again', async () => {
    const [n1, n2] = fleet.nodes;
    onFence = async () => {
      await fleet.sql(n2.id, 'STOP SLAVE SQL_THREAD');
      await fleet.sql(n1.id, 'INSERT INTO handover_app.acks (k, v) VALUES (?, ?)', [`undo-${Date.now()}`, 1]);
    };
    try {
      const io = captureIO();
      const r = await runSwitchover({ ...opts, to: n2.id }, io);
      expect(r.exitCode, io.text()).toBe(1);
      expect(io.text()).toMatch(new RegExp(`failed \\(HandoverAborted\\): switchover of ${fleet.cluster} undone: candidate ${n2.id} stopped applying replication.*${n1.id} is still the primary and writable`));
      const st = await fleet.state();
      expect(st[n1.id]).toEqual(expect.objectContaining({ readOnly: false }));
      expect(st[n1.id].source).toBeUndefined();
      expect(st[n2.id]).toEqual(expect.objectContaining({ readOnly: true, source: `127.0.0.1:${n1.port}`, sql: 'No' }));
      expect(st[fleet.nodes[2].id]).toEqual(expect.objectContaining({ readOnly: true, source: `127.0.0.1:${n1.port}`, sql: 'Yes' }));
    } finally {
      onFence = undefined;
      await fleet.sql(n2.id, 'START SLAVE SQL_THREAD');
    }
  });

  it('candidate with errant GTIDs (a write made on the replica itself); and as a follower that could not follow', async () => {
    const n3 = fleet.nodes[2];
    const c = await n3.root();
    try {
      await c.query('SET GLOBAL read_only = OFF');
      await c.query("INSERT INTO handover_app.acks (k, v) VALUES ('errant', 1)");
      await c.query('SET GLOBAL read_only = ON');
    } finally {
      await c.end();
    }
    try {
      await refused({ to: n3.id }, new RegExp(`PreconditionFailed.*${n3.id} has errant GTIDs the primary ${fleet.nodes[0].id} lacks: 0-3-\\d+`));
      await refused({}, new RegExp(`PreconditionFailed.*cannot switch over to ${fleet.nodes[1].id}: ${n3.id} has errant GTIDs 0-3-\\d+: it could not replicate from the new primary`));
    } finally {
      // Taken back by hand for the tests after this one: the row removed unlogged, the binary log reset to the
      // primary's GTID state, replication resumed from the primary's position.
      const [p] = await fleet.sql<{ state: string; pos: string }[]>(0, 'SELECT @@gtid_binlog_state AS state, @@gtid_binlog_pos AS pos');
      const r = await n3.root();
      try {
        await r.query('STOP SLAVE');
        await r.query('SET SESSION sql_log_bin = 0');
        await r.query("DELETE FROM handover_app.acks WHERE k = 'errant'");
        await r.query('RESET MASTER');
        await r.query('SET GLOBAL gtid_binlog_state = ?', [p.state]);
        await r.query('SET GLOBAL gtid_slave_pos = ?', [p.pos]);
        await r.query('START SLAVE');
      } finally {
        await r.end();
      }
    }
  });
});

// Keep the sandbox's inventory helper honest: the YAML it writes validates and names the least-privilege user.
describe('MariaDB sandbox inventory', () => {
  it('validates and connects as the handover user', async () => {
    const fleet = await startMariaFleet({ cluster: 'inv-maria', replicas: 1 });
    try {
      const file = fleet.writeInventory();
      const c = loadInventory(file).clusters[0];
      expect(c).toEqual(expect.objectContaining({ engine: 'mysql', flavor: 'mariadb', credentials: { username: 'handover', password: { env: fleet.passwordEnv } } }));
      const grants = await fleet.sql<Record<string, string>[]>(0, "SHOW GRANTS FOR 'handover'@'127.0.0.1'");
      expect(Object.values(grants[0])[0]).toMatch(/^GRANT RELOAD, PROCESS, CONNECTION ADMIN, READ_ONLY ADMIN, REPLICATION SLAVE ADMIN, BINLOG ADMIN, SLAVE MONITOR ON \*\.\* TO `handover`@`127.0.0.1`/);
      expect(Object.values(grants[1])[0]).toMatch(/^GRANT EVENT ON `mysql`\.\* TO `handover`@`127.0.0.1`/);
    } finally {
      await fleet.stop();
    }
  });
});
