/**
 * The empty-primary guard for MariaDB (core/mysql/empty-primary.ts) with real mariadbd processes and the real
 * Temporal dev server, under an acknowledged-commit writer: the primary is SIGKILLed, its data directory wiped and
 * initialised again (as a pod rescheduled onto an empty volume would be, its init creating the accounts and the
 * empty schema without binary logging, and coming back writable), and started well inside the detection window.
 * It answers as primary, so the DeadMaster rule alone would call it alive forever. The monitor sees it back without
 * its transactions and fails over at once: the most advanced replica is promoted, the other follows it, the empty
 * node is made read-only, never made a replica from its own position, and flagged; `status` and `monitor --status`
 * say so. Every commit acknowledged before the kill is on the new primary.
 * And a failover candidate that lost data right before its promotion (restored to an older state: 50 transactions
 * back) is refused; the other replica, which still holds them, is promoted, and the restored one rejoins it. Each
 * case on its own fleet; the worker is shared.
 */
import { cpSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFailover } from '../../client/commands/failover';
import { runMonitor } from '../../client/commands/monitor';
import { runStatus } from '../../client/commands/status';
import { loadInventory } from '../../inventory/load';
import { APP_SCHEMA, primaryInitSql, startMariaFleet, templateDir, type MariaFleet } from '../../sandbox/mariadb';
import { SqlWriter } from '../../sandbox/sql-writer';
import type { MonitorStatus } from '../../workflows/monitor';
import type { MysqlFailoverReport } from '../../workflows/mysql/failover';
import { captureIO, until as untilCondition, startTestWorker, type TestWorker } from '../helpers';

// A detection window of 30 rounds x 300 ms (9 s): far longer than the node takes to come back, so a failover here
// can only come from the guard (once it answers, the DeadMaster rule reads "alive").
const POLICY = { probeIntervalMs: 300, probesToConfirm: 30, failoverBlockMs: 600_000, catchUpTimeoutMs: 20_000, verifyTimeoutMs: 30_000 };
const WINDOW_MS = POLICY.probeIntervalMs * POLICY.probesToConfirm;

/** The shared condition wait, with this file's bound (30_000 ms) and poll (50 ms). */
const until = <T,>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 30_000) => untilCondition<T>(what, fn, timeoutMs, 50);

describe('the empty-primary guard (MariaDB)', () => {
  let fleet: MariaFleet;
  let tw: TestWorker;
  let inventory: string;
  const fleets: MariaFleet[] = [];
  /** Called by the promotion activity right before it reads and checks its candidate (the worker's failpoint). */
  let beforePromote: (() => Promise<void>) | undefined;
  const opts = () => ({ cluster: fleet.cluster, inventory, address: tw.address, taskQueue: tw.taskQueue });
  const status = async () => (await runMonitor({ ...opts(), status: true, json: true }, captureIO())).status as MonitorStatus;

  beforeAll(async () => {
    tw = await startTestWorker({
      inventory: () => loadInventory(inventory),
      failpoint: async (name) => {
        if (name === 'ensureMysqlPrimary.check' && beforePromote) {
          const f = beforePromote;
          beforePromote = undefined;
          await f();
        }
      },
    });
  });
  afterAll(async () => {
    await tw?.stop();
    for (const f of fleets) await f.stop();
  });
  async function newFleet(cluster: string, extra: Parameters<MariaFleet['writeInventory']>[1] = {}) {
    fleet = await startMariaFleet({ cluster });
    fleets.push(fleet);
    inventory = fleet.writeInventory(undefined, { policy: POLICY, ...extra });
  }

  /**
   * Semi-synchronous replication from `primary`, no timeout fallback: a commit is acknowledged only once a replica
   * has received it, so "every commit acknowledged before the kill is on the new primary" is a property, not a
   * race with the binlog dump (asynchronously, the primary's last commits acknowledged before a SIGKILL may never
   * have been sent). Master side on the primary only (see failover-mysql.test.ts).
   */
  async function semiSync(primary: string) {
    for (const q of ['SET GLOBAL rpl_semi_sync_master_enabled = ON', 'SET GLOBAL rpl_semi_sync_master_timeout = 3600000']) await fleet.sql(primary, q);
    for (const n of fleet.nodes) {
      if (n.id === primary) continue;
      await fleet.sql(n.id, 'SET GLOBAL rpl_semi_sync_slave_enabled = ON');
      await fleet.sql(n.id, 'STOP SLAVE IO_THREAD');
      await fleet.sql(n.id, 'START SLAVE IO_THREAD');
    }
    await until('semi-sync on', async () => {
      const [r] = await fleet.sql<{ Value: string }[]>(primary, "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_clients'");
      return Number(r.Value) === fleet.nodes.length - 1;
    });
  }

  /**
   * The primary's data directory wiped and initialised again, started, and its init run: the accounts and the empty
   * schema (not binary-logged), and writable, as its deployment starts it. Returns when it started.
   */
  async function restartEmpty(p: MariaFleet['nodes'][number]): Promise<number> {
    rmSync(path.join(p.dir, 'data'), { recursive: true, force: true });
    cpSync(await templateDir(), path.join(p.dir, 'data'), { recursive: true });
    await p.start();
    const startedAt = Date.now();
    const c = await p.root();
    try {
      for (const q of [
        'SET SESSION sql_log_bin = 0',
        "DELETE FROM mysql.global_priv WHERE User = 'root' AND Host <> 'localhost'",
        ...primaryInitSql({ hostPat: '127.0.0.1', replPassword: fleet.replPassword, handoverPassword: fleet.handoverPassword, appPassword: fleet.appPassword }),
      ])
        await c.query(q);
    } finally {
      await c.end();
    }
    return startedAt;
  }

  it('a primary back EMPTY (data directory wiped) inside the window: failover at once to the best replica, the empty node kept out and flagged, 0 commits acknowledged before the kill lost', { timeout: 90_000 }, async () => {
    await newFleet('ep-maria');
    const [p, ...replicas] = fleet.nodes;
    await semiSync(p.id);
    const writer = new SqlWriter(fleet.nodes, fleet.appUser, fleet.appPassword).start();
    try {
      await until('acknowledged commits', async () => writer.ackedKeys.length > 200);
      expect((await runMonitor(opts(), captureIO())).exitCode).toBe(0);
      await until('the monitor watches the primary', async () => {
        const s = await status();
        return s.lastKnown?.primary === p.id && s.rounds >= 2 && s;
      });
      await p.stop('SIGKILL');
      const killedAt = writer.now();
      const backAt = await restartEmpty(p);

      const s = await until('the failover', async () => {
        const x = await status();
        return x.failovers.length === 1 && x;
      });
      const ev = s.emptyReturns?.[0];
      expect(ev?.node).toBe(p.id);
      expect(ev?.holders.length).toBeGreaterThan(0);
      expect(ev?.text).toMatch(new RegExp(`^${p.id} restarted and came back EMPTY or reset: 0-1-\\d+ \\(\\d+ transactions\\) before`));
      // Seen within a few rounds of its return, long before the window could have confirmed anything.
      expect(ev!.at - backAt).toBeLessThan(WINDOW_MS / 2);
      const to = s.failovers[0].to;
      expect(s.failovers[0].from).toBe(p.id);
      expect(replicas.map((r) => r.id)).toContain(to);
      expect(s.flagged[p.id]?.[0]).toMatch(/^reset: came back empty or reset/);

      // The new primary is the one writable node; the other replica follows it; the empty node is read-only and
      // replicates from nobody (it was never made a replica from its own, empty, position).
      const st = await fleet.state();
      expect(Object.entries(st).filter(([, v]) => v.up && v.readOnly === false).map(([id]) => id)).toEqual([to]);
      const other = replicas.find((r) => r.id !== to)!;
      const toNode = fleet.nodes.find((n) => n.id === to)!;
      expect(st[other.id]).toMatchObject({ source: `${toNode.host}:${toNode.port}`, io: 'Yes', sql: 'Yes' });
      expect(st[p.id]).toMatchObject({ up: true, readOnly: true });
      expect(st[p.id].source).toBeUndefined();

      const text = captureIO();
      expect((await runStatus(opts(), text)).exitCode).toBe(0);
      expect(text.text()).toMatch(/! monitor: EMPTY PRIMARY .* restarted and came back EMPTY or reset/);
      expect(text.text()).toContain(`! ${p.id} FLAGGED by the monitor: came back empty or reset`);

      await until('commits on the new primary', async () => writer.ackedBy[writer.ackedBy.length - 1] === to);
      await writer.stop();
      const before = writer.ackedKeys.filter((_, i) => writer.ackTimes[i] < killedAt);
      expect(before.length).toBeGreaterThan(0);
      const missing = new Set(await writer.missingOn(toNode));
      expect(before.filter((k) => missing.has(k))).toEqual([]);
      // What is missing is only what the empty node itself acknowledged after its return (lost with it, by design).
      const emptyAcked = new Set(writer.ackedKeys.filter((_, i) => writer.ackedBy[i] === p.id && writer.ackTimes[i] > killedAt));
      expect([...missing].filter((k) => !emptyAcked.has(k))).toEqual([]);
    } finally {
      await writer.close();
      await runMonitor({ ...opts(), stop: true }, captureIO()).catch(() => undefined);
    }
  });
  it('a candidate that lost data right before its promotion is refused: the other replica, still holding it, is promoted; 0 acknowledged commits lost', { timeout: 90_000 }, async () => {
    // The candidate is known in advance: replicas level (the writer stopped), ties broken by promotion: prefer.
    await newFleet('ep-maria-cand', { policy: { ...POLICY, probesToConfirm: 2 }, promotion: { 'ep-maria-cand-2': 'prefer' } });
    const [p, cand, other] = fleet.nodes;
    const writer = new SqlWriter(fleet.nodes, fleet.appUser, fleet.appPassword).start();
    try {
      await until('acknowledged commits', async () => writer.ackedKeys.length > 200);
      await writer.stop();
      await fleet.waitForReplication(p.id);
      const [{ pos }] = await fleet.sql<{ pos: string }[]>(cand.id, 'SELECT @@gtid_slave_pos AS pos');
      const [d, srv, seq] = pos.split('-').map(Number);
      const older = `${d}-${srv}-${seq - 50}`;
      await p.stop('SIGKILL');
      // Right before the promotion: the candidate is restored to an older state (its last 50 transactions gone).
      beforePromote = async () => {
        for (const q of [
          'STOP SLAVE',
          'SET SESSION sql_log_bin = 0',
          `DELETE FROM ${APP_SCHEMA}.acks ORDER BY v DESC LIMIT 50`,
          'RESET MASTER',
          `SET GLOBAL gtid_binlog_state = '${older}'`,
          `SET GLOBAL gtid_slave_pos = '${older}'`,
          'START SLAVE',
        ])
          await fleet.sql(cand.id, q);
      };
      const io = captureIO();
      const r = await runFailover({ ...opts(), force: true, wait: true }, io);
      expect(r.exitCode, io.text()).toBe(0);
      expect(io.text()).toContain(`${cand.id} lost data since the verdict: it had applied ${pos} then, it holds ${older} now`);
      expect(io.text()).toMatch(new RegExp(`failed over ${fleet.cluster}: ${p.id} -> ${other.id} \\(.*${cand.id} lost data since the verdict \\(empty-primary guard\\)\\)`));
      // The other replica is the one writable node; the restored one replays what it lacked from it.
      const st = await fleet.state();
      expect(Object.entries(st).filter(([, v]) => v.up && v.readOnly === false).map(([id]) => id)).toEqual([other.id]);
      await until('the restored candidate caught up on the new primary', async () => {
        const x = await fleet.state();
        return x[cand.id].source === `${other.host}:${other.port}` && x[cand.id].io === 'Yes' && x[cand.id].gtidSlavePos === x[other.id].gtidBinlogPos;
      });
      expect(writer.ackedKeys.length).toBeGreaterThan(0);
      expect(await writer.missingOn(other)).toEqual([]);
      expect(await writer.missingOn(cand)).toEqual([]);
    } finally {
      beforePromote = undefined;
      await writer.close();
    }
  });

  it('handover failover (no monitor) of a primary back EMPTY: refused without --force saying why and how; with --force the empty node is kept out and flagged, a replica holding the data promoted, 0 acknowledged commits lost', { timeout: 90_000 }, async () => {
    await newFleet('ep-maria-manual');
    const [p, ...replicas] = fleet.nodes;
    await semiSync(p.id);
    const writer = new SqlWriter(fleet.nodes, fleet.appUser, fleet.appPassword).start();
    try {
      await until('acknowledged commits', async () => writer.ackedKeys.length > 100);
      await p.stop('SIGKILL');
      await writer.stop();
      await restartEmpty(p);
      // MariaDB lets the replicas stream from it again (its binary log lacks their domain altogether): no IO error
      // shows the reset, only that they hold what it lacks.
      await until('the replicas stream from the empty node', async () => {
        const st = await fleet.state();
        return replicas.every((r) => st[r.id].io === 'Yes' && st[r.id].source === `${p.host}:${p.port}`) && st;
      });
      const [{ pos }] = await fleet.sql<{ pos: string }[]>(replicas[0].id, 'SELECT @@gtid_slave_pos AS pos');
      const before = await fleet.state();

      // Without --force: one line saying what was seen and how to proceed; nothing changed.
      const refused = captureIO();
      const r0 = await runFailover({ ...opts(), wait: true }, refused);
      expect(r0.exitCode, refused.text()).toBe(2);
      expect(refused.text()).toMatch(new RegExp(`the primary ${p.id} answers but came back EMPTY or reset: it holds .*; re-run with --force to keep ${p.id} out \\(read-only, flagged\\) and promote the best of ${replicas.map((x) => x.id).join(', ')}; nothing was changed`));
      console.log(`[empty-primary-mysql] without --force: ${refused.text().trim()}`);
      const after0 = await fleet.state();
      for (const id of Object.keys(before)) expect({ ro: after0[id].readOnly, src: after0[id].source }).toEqual({ ro: before[id].readOnly, src: before[id].source });
      expect(after0[p.id].readOnly).toBe(false); // the empty node, writable as its init left it

      // With --force: kept out, a replica promoted, the other follows it.
      const io = captureIO();
      const r = await runFailover({ ...opts(), force: true, wait: true }, io);
      const report = r.report as MysqlFailoverReport;
      expect(r.exitCode, io.text()).toBe(5); // done with warnings: the empty node is flagged (re-clone it)
      expect(report.oldPrimary).toBe(p.id);
      expect(report.fenced).toBe('flagged');
      expect(report.returnedEmpty).toMatch(new RegExp(`^${p.id} came back EMPTY or reset`));
      expect(report.errantGtids?.[0]).toBe(`reset: came back empty or reset (held ${pos} before); re-clone it`);
      expect(io.text()).toContain(`keep ${p.id} out`);
      const to = report.newPrimary;
      expect(replicas.map((x) => x.id)).toContain(to);
      const st = await fleet.state();
      expect(Object.entries(st).filter(([, v]) => v.up && v.readOnly === false).map(([id]) => id)).toEqual([to]);
      const toNode = fleet.nodes.find((n) => n.id === to)!;
      const other = replicas.find((x) => x.id !== to)!;
      expect(st[other.id]).toMatchObject({ source: `${toNode.host}:${toNode.port}`, io: 'Yes', sql: 'Yes' });
      expect(st[p.id]).toMatchObject({ up: true, readOnly: true });
      expect(st[p.id].source).toBeUndefined();
      expect(writer.ackedKeys.length).toBeGreaterThan(0);
      expect(await writer.missingOn(toNode)).toEqual([]);
      console.log(`[empty-primary-mysql] manual --force: exit ${r.exitCode}, ${p.id} kept out, ${to} promoted; ${report.returnedEmpty}`);
    } finally {
      await writer.close();
    }
  });
});
