/**
 * No MariaDB switchover leaves the cluster without a writable primary (issue: privilege pre-checks, undo after
 * every fence, errant GTIDs on stopped replicas, repoint order and isolation). Real mariadbd 10.11 fleets and
 * the real Temporal dev server; the automation connects as the least-privilege `handover` user, and grants are
 * revoked on one node only (sql_log_bin = 0, so the REVOKE does not replicate).
 *
 * Each case starts its own fleet, so none depends on another's end state. Every case ends by checking that
 * exactly one node is writable (the expected one) and that every commit the writer saw acknowledged is on it.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadInventory } from '../../inventory/load';
import { runSwitchover } from '../../client/commands/switchover';
import { runPlan } from '../../client/commands/plan';
import { startMariaFleet, type MariaFleet } from '../../sandbox/mariadb';
import { SqlWriter } from '../../sandbox/sql-writer';
import { captureIO, moreAcks, runCli, startTestWorker, until, type TestWorker } from '../helpers';

let fleet: MariaFleet | undefined;
let inventory = '';
let tw: TestWorker;
/** Called by the worker just before the fence (after probe, decide and veto passed). */
let beforeFence: (() => Promise<void>) | undefined;

beforeAll(async () => {
  tw = await startTestWorker({
    inventory: () => loadInventory(inventory),
    failpoint: async (name) => {
      if (name === 'ensureMysqlFenced.beforeFence' && beforeFence) {
        const f = beforeFence;
        beforeFence = undefined;
        await f();
      }
    },
  });
});
afterAll(async () => {
  await tw?.stop();
});
afterEach(async () => {
  beforeFence = undefined;
  await fleet?.stop();
  fleet = undefined;
});

async function newFleet(name: string): Promise<MariaFleet> {
  fleet = await startMariaFleet({ cluster: name });
  inventory = fleet.writeInventory();
  await fleet.sql(0, "INSERT INTO handover_app.acks (k, v) VALUES ('seed', 1)");
  await fleet.waitForReplication(0);
  return fleet;
}

const opts = (f: MariaFleet, extra: { to?: string } = {}) => ({ cluster: f.cluster, wait: true, inventory, address: tw.address, taskQueue: tw.taskQueue, ...extra });

/** Revoke on one node only: the statement is not binlogged, so no other node loses the grant. */
async function revokeOn(f: MariaFleet, node: string, privilege: string) {
  const c = await f.nodes.find((n) => n.id === node)!.root();
  try {
    await c.query('SET SESSION sql_log_bin = 0');
    await c.query(`REVOKE ${privilege} ON *.* FROM 'handover'@'127.0.0.1'`);
  } finally {
    await c.end();
  }
}

/** read_only, source, GTID positions and the replication/KILL statement counters of every node. */
async function snapshot(f: MariaFleet): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const n of f.nodes) {
    const [v] = await f.sql<Record<string, unknown>[]>(n.id, 'SELECT @@read_only AS ro, @@gtid_binlog_pos AS b, @@gtid_slave_pos AS s');
    const ss = (await f.sql<Record<string, unknown>[]>(n.id, 'SHOW SLAVE STATUS'))[0];
    const com = await f.sql<{ Variable_name: string; Value: string }[]>(
      n.id,
      "SHOW GLOBAL STATUS WHERE Variable_name IN ('Com_change_master', 'Com_start_slave', 'Com_stop_slave', 'Com_slave_start', 'Com_slave_stop', 'Com_reset_slave', 'Com_kill')",
    );
    out[n.id] = `ro=${v.ro} binlog=${v.b} slave=${v.s} ${ss ? `source=${ss.Master_Port} io=${ss.Slave_IO_Running}` : 'no-replication'} ${com.map((c) => `${c.Variable_name}=${c.Value}`).join(' ')}`;
  }
  return out;
}

/** Exactly one writable node, the expected one, holding every acknowledged commit; returns the writer's count. */
async function oneWritablePrimaryWithEveryAck(f: MariaFleet, expected: string, writer: SqlWriter): Promise<number> {
  const stats = await writer.stop();
  await writer.close();
  const st = await f.state();
  expect(Object.entries(st).filter(([, s]) => s.up && s.readOnly === false).map(([id]) => id)).toEqual([expected]);
  expect(st[expected].source, `${expected} replicates from nobody`).toBeUndefined();
  expect(stats.acked).toBeGreaterThan(20);
  expect(await writer.missingOn(f.nodes.find((n) => n.id === expected)!), `acknowledged commits missing on ${expected}`).toEqual([]);
  return stats.acked;
}

const eventsOn = async (f: MariaFleet, node: string) =>
  Number((await f.sql<{ n: number }[]>(node, "SELECT COUNT(*) AS n FROM information_schema.EVENTS WHERE EVENT_SCHEMA = 'mysql' AND EVENT_NAME = 'handover_fence_bound'"))[0].n);

describe('MariaDB switchover: privileges checked before anything changes', () => {
  it('missing REPLICATION SLAVE ADMIN on the candidate and CONNECTION ADMIN on the primary: plan, switchover and status name both; nothing changes', async () => {
    const f = await newFleet('priv-maria');
    const [n1, n2] = f.nodes;
    await revokeOn(f, n2.id, 'REPLICATION SLAVE ADMIN');
    await revokeOn(f, n1.id, 'CONNECTION ADMIN');
    const writer = new SqlWriter(f.nodes, f.appUser, f.appPassword).start();
    await moreAcks(writer, 25);
    const before = await snapshot(f);

    const planIo = captureIO();
    const plan = await runPlan({ runbook: 'switchover', ...opts(f, { to: n2.id }) }, planIo);
    expect(plan.exitCode, planIo.text()).toBe(2);
    const run = captureIO();
    const r = await runSwitchover(opts(f, { to: n2.id }), run);
    expect(r.exitCode, run.text()).toBe(2);
    for (const text of [planIo.text(), run.text()]) {
      expect(text).toMatch(/refused \(PreconditionFailed\): /);
      expect(text).toContain(`the automation user lacks CONNECTION ADMIN (KILL of application sessions on the fenced primary) on ${n1.id}: GRANT CONNECTION ADMIN ON *.* TO`);
      expect(text).toContain(`lacks REPLICATION SLAVE ADMIN (STOP/START/RESET SLAVE and CHANGE MASTER (promote, repoint)) on ${n2.id}: GRANT REPLICATION SLAVE ADMIN ON *.* TO`);
      expect(text).toContain('nothing was changed');
    }
    const status = await runCli(['status', '--cluster', f.cluster, '--inventory', inventory, '--address', tw.address]);
    expect(status.out).toContain(`! the automation user lacks CONNECTION ADMIN (KILL of application sessions on the fenced primary) on ${n1.id}`);
    expect(status.out).toContain(`! the automation user lacks REPLICATION SLAVE ADMIN`);

    // Nothing changed on any node but the writer's own commits (positions move with them).
    const after = await snapshot(f);
    const strip = (s: Record<string, string>) => Object.fromEntries(Object.entries(s).map(([k, v]) => [k, v.replace(/binlog=\S* slave=\S* /, '')]));
    expect(strip(after)).toEqual(strip(before));
    await oneWritablePrimaryWithEveryAck(f, n1.id, writer);
  });
});

describe('MariaDB switchover: every privilege the runbooks need is checked', () => {
  it('each one revoked on one node alone is named by plan, with its GRANT, and nothing changes', async () => {
    const f = await newFleet('eachpriv-maria');
    const [, n2] = f.nodes;
    const before = await snapshot(f);
    const grant = async (privilege: string, on = '*.*') => {
      const c = await n2.root();
      try {
        await c.query('SET SESSION sql_log_bin = 0');
        await c.query(`GRANT ${privilege} ON ${on} TO 'handover'@'127.0.0.1'`);
      } finally {
        await c.end();
      }
    };
    for (const privilege of ['REPLICATION SLAVE ADMIN', 'SLAVE MONITOR', 'READ_ONLY ADMIN', 'CONNECTION ADMIN', 'PROCESS', 'RELOAD', 'BINLOG ADMIN']) {
      await revokeOn(f, n2.id, privilege);
      const io = captureIO();
      const r = await runPlan({ runbook: 'switchover', ...opts(f) }, io);
      await grant(privilege);
      expect(r.exitCode, io.text()).toBe(2);
      // SLAVE MONITOR is needed to read the node at all: the probe itself names it (the server's own words).
      if (privilege === 'SLAVE MONITOR') expect(io.text()).toMatch(new RegExp(`the automation user lacks a grant on ${n2.id} .*(SLAVE|REPLICA) MONITOR`));
      else expect(io.text()).toContain(`the automation user lacks ${privilege} (`);
      if (privilege !== 'SLAVE MONITOR') expect(io.text()).toContain(`on ${n2.id}: GRANT ${privilege} ON *.* TO`);
    }
    // EVENT on the mysql schema, needed by the fence bound.
    const c = await n2.root();
    try {
      await c.query('SET SESSION sql_log_bin = 0');
      await c.query("REVOKE EVENT ON mysql.* FROM 'handover'@'127.0.0.1'");
    } finally {
      await c.end();
    }
    const io = captureIO();
    expect((await runPlan({ runbook: 'switchover', ...opts(f) }, io)).exitCode, io.text()).toBe(2);
    expect(io.text()).toContain(`EVENT ON mysql.* (the fence bound event) on ${n2.id}: GRANT EVENT ON mysql.* TO`);
    await grant('EVENT', 'mysql.*');
    const ok = captureIO();
    expect((await runPlan({ runbook: 'switchover', ...opts(f) }, ok)).exitCode, ok.text()).toBe(0);
    const strip = (x: Record<string, string>) => Object.fromEntries(Object.entries(x).map(([k, v]) => [k, v.replace(/binlog=\S* slave=\S* /, '')]));
    expect(strip(await snapshot(f))).toEqual(strip(before));
  });
});

describe('MariaDB switchover: a promotion that fails after the fence is undone', () => {
  for (const [privilege, where] of [
    ['REPLICATION SLAVE ADMIN', 'STOP SLAVE on the candidate (nothing reset yet)'],
    ['READ_ONLY ADMIN', 'read_only OFF on the candidate (after RESET SLAVE ALL)'],
  ] as const) {
    it(`${privilege} revoked on the candidate after the veto: fails at ${where}; the old primary takes writes again, the candidate follows it`, async () => {
      const f = await newFleet(`undo-${privilege.split(' ')[0].toLowerCase().replace('_', '')}`);
      const [n1, n2] = f.nodes;
      const writer = new SqlWriter(f.nodes, f.appUser, f.appPassword).start();
      await moreAcks(writer, 25);
      beforeFence = () => revokeOn(f, n2.id, privilege);
      const io = captureIO();
      const r = await runSwitchover(opts(f, { to: n2.id }), io);
      expect(r.exitCode, io.text()).toBe(1);
      expect(io.text()).toMatch(new RegExp(`failed \\(HandoverAborted\\): switchover of ${f.cluster} undone: .*${privilege}.*; ${n1.id} is still the primary and writable, ${n2.id} replicates from it again`));
      await moreAcks(writer, 20); // the old primary takes writes again
      await oneWritablePrimaryWithEveryAck(f, n1.id, writer);
      await f.waitForReplication(n1.id);
      expect(await eventsOn(f, n1.id), 'the fence bound event is gone from the old primary').toBe(0);
    });
  }
});

describe('MariaDB switchover: errant GTIDs on a replica whose SQL thread stopped', () => {
  it('status, plan and switchover name the errant GTIDs; nothing changes', async () => {
    const f = await newFleet('errant-maria');
    const [n1, , n3] = f.nodes;
    // An errant write on a replica (root bypasses read_only), then the primary writes past it: strict mode
    // stops the replica's SQL thread, and by position alone the replica now only looks behind.
    await f.sql(n3.id, "INSERT INTO handover_app.acks (k, v) VALUES ('errant-1', 1)");
    const errant = (await f.state())[n3.id].gtidBinlogPos!;
    for (let i = 0; i < 5; i++) await f.sql(n1.id, 'INSERT INTO handover_app.acks (k, v) VALUES (?, ?)', [`p-${i}`, i]);
    await until(`${n3.id}'s SQL thread stopped`, async () => (await f.state())[n3.id].sql === 'No', 10_000).catch(() => undefined);
    // The other replica has the primary's writes before the snapshot (it was still applying them: a flake).
    await until(`${f.nodes[1].id} caught up`, async () => {
      const x = await f.state();
      return x[f.nodes[1].id].gtidBinlogPos === x[n1.id].gtidBinlogPos;
    }, 10_000);
    const st = await f.state();
    expect(st[n3.id].sql).toBe('No');
    expect(st[n3.id].io).toBe('Yes');
    const before = await snapshot(f);

    const status = await runCli(['status', '--cluster', f.cluster, '--inventory', inventory, '--address', tw.address]);
    expect(status.out).toContain(`! ${n3.id} has errant GTIDs ${errant} (its SQL thread has stopped): it cannot follow ${n1.id}`);
    const planIo = captureIO();
    expect((await runPlan({ runbook: 'switchover', ...opts(f) }, planIo)).exitCode, planIo.text()).toBe(2);
    const run = captureIO();
    expect((await runSwitchover(opts(f), run)).exitCode, run.text()).toBe(2);
    for (const text of [planIo.text(), run.text()]) expect(text).toContain(`${n3.id} has errant GTIDs ${errant}: it could not replicate from the new primary`);
    expect(await snapshot(f)).toEqual(before);
  });
});

describe('MariaDB switchover: repoint order and isolation', () => {
  it('a replica that turns errant after the veto is left untouched and reported; the old primary is repointed first; verification covers every node', async () => {
    const f = await newFleet('isolate-maria');
    const [n1, n2, n3] = f.nodes;
    const writer = new SqlWriter(f.nodes, f.appUser, f.appPassword).start();
    await moreAcks(writer, 25);
    let n3Before: Record<string, string> = {};
    beforeFence = async () => {
      await f.sql(n3.id, "INSERT INTO handover_app.acks (k, v) VALUES ('errant-late', 1)");
      n3Before = await snapshot(f);
    };
    const io = captureIO();
    const r = await runSwitchover(opts(f, { to: n2.id }), io);
    expect(r.exitCode, io.text()).toBe(1);
    expect(io.text()).toMatch(
      new RegExp(`failed \\(HandoverIncomplete\\): switchover of ${f.cluster} incomplete: ${n2.id} is the primary and takes writes; NOT repointed \\(left as they were\\): ${n3.id}: ${n3.id} has GTIDs \\S+ that ${n2.id} lacks`),
    );
    await moreAcks(writer, 20); // the new primary takes writes
    await oneWritablePrimaryWithEveryAck(f, n2.id, writer);
    const st = await f.state();
    // The old primary follows the new one and has every acknowledged commit too.
    expect(st[n1.id].source).toBe(`127.0.0.1:${n2.port}`);
    expect(st[n1.id].io).toBe('Yes');
    expect(st[n1.id].readOnly).toBe(true);
    expect(await writer.missingOn(n1)).toEqual([]);
    // n3 was not touched: still configured on the old primary, no CHANGE MASTER / STOP SLAVE, positions not rewritten.
    const counters = (s: string) => s.replace(/^.*?(source=)/, '$1').replace(/io=\S+ /, '');
    expect(counters((await snapshot(f))[n3.id])).toBe(counters(n3Before[n3.id]));
    // The run's steps: the old primary repointed before the other replicas, verification ran.
    const progress = await tw.env.client.workflow.getHandle(`handover-${f.cluster}`).query<{ steps: { name: string; status: string }[] }>('progress');
    const names = progress.steps.map((s) => `${s.name}:${s.status}`);
    expect(names.indexOf(`repoint ${n1.id}:done`)).toBeGreaterThanOrEqual(0);
    expect(names.indexOf(`repoint ${n1.id}:done`)).toBeLessThan(names.indexOf(`repoint ${n3.id}:failed`));
    expect(names).toContain('verify:done');
  });
});
