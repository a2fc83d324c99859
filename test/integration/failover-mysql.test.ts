/**
 * Unplanned failover of MariaDB 10.11 (1 primary + 2 GTID replicas) with real mariadbd processes and the real
 * Temporal dev server:
 *  - a lost probe (primary frozen briefly) and a crash-restart shorter than the window cause no failover;
 *  - the monitor detects a SIGKILLed primary under the transactional writer, promotes one replica, the other
 *    follows, and the restarted old primary comes back read-only and replicating (or, when its last commits
 *    never reached a replica, read-only and flagged); detection+recovery time is measured;
 *  - a second failover within the block period waits for an acknowledgement; an old primary with errant
 *    transactions is left read-only, not replicating, and flagged.
 * One fleet for the file; every test starts from `ready()` (any node left down, frozen, flagged or on
 * semi-sync by another test repaired, the monitor stopped) and starts what it needs itself, so each passes
 * alone and in any order.
 */
import mysql from 'mysql2/promise';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMysqlFailoverActivities } from '../../activities/mysql/failover';
import { runFailover } from '../../client/commands/failover';
import { runMonitor, withLiveView } from '../../client/commands/monitor';
import { pendingWatch } from '../../client/progress';
import { monitorWorkflowId } from '../../core/ids';
import { loadInventory } from '../../inventory/load';
import { APP_SCHEMA, startMariaFleet, type MariaFleet } from '../../sandbox/mariadb';
import { sleep } from '../../sandbox/ports';
import { SqlWriter } from '../../sandbox/sql-writer';
import type { MysqlFailoverReport } from '../../workflows/mysql/failover';
import type { MonitorStatus } from '../../workflows/monitor';
import { captureIO, until as untilCondition, moreAcks, startTestWorker, type TestWorker } from '../helpers';

// Window: 5 consecutive DeadMaster rounds 400 ms apart (about 2 s plus probe time).
const POLICY = { probeIntervalMs: 400, probesToConfirm: 5, failoverBlockMs: 600_000, catchUpTimeoutMs: 20_000, verifyTimeoutMs: 30_000 };

/** The shared condition wait, with this file's bound (60_000 ms) and poll (100 ms). */
const until = <T,>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 60_000) => untilCondition<T>(what, fn, timeoutMs, 100);

describe('unplanned failover (MariaDB)', () => {
  let fleet: MariaFleet;
  let tw: TestWorker;
  let inventory: string;
  let acts: ReturnType<typeof createMysqlFailoverActivities>;
  const opts = () => ({ cluster: fleet.cluster, inventory, address: tw.address, taskQueue: tw.taskQueue });
  /** What `handover monitor --status --json` returns (the query with the live view), read over the test worker's connection: no new connection per poll. */
  const status = async (): Promise<MonitorStatus> => {
    const h = tw.env.client.workflow.getHandle(monitorWorkflowId(fleet.cluster));
    return withLiveView(await h.query<MonitorStatus>('status'), await pendingWatch(h).catch(() => undefined));
  };
  const node = (id: string) => fleet.nodes.find((n) => n.id === id)!;
  const others = (id: string) => fleet.nodes.filter((n) => n.id !== id);

  /**
   * The start of every test: the monitor stopped, the inventory without hooks, every node up and resumed, semi-sync
   * off, one writable primary (whichever is now) and every other node replicating from it (a flagged old
   * primary re-based: MariaFleet.setPrimary). Returns the primary.
   */
  async function ready(): Promise<string> {
    await tw.env.client.workflow.getHandle(monitorWorkflowId(fleet.cluster)).terminate('test: ready()').catch(() => undefined); // none running: fine
    fleet.writeInventory(inventory, { policy: POLICY });
    const primary = await fleet.setPrimary();
    for (const n of fleet.nodes) await fleet.sql(n.id, 'SET GLOBAL rpl_semi_sync_master_enabled = OFF, rpl_semi_sync_slave_enabled = OFF');
    return primary;
  }
  /** A new monitor (no failovers, no block), once it has seen `primary` alive. */
  async function startMonitor(primary: string): Promise<void> {
    expect((await runMonitor(opts(), captureIO())).exitCode).toBe(0);
    await until('the monitor sees the primary', async () => (await status()).lastKnown?.primary === primary);
  }

  /** Wait until the monitor has seen the primary alive at or after `t` (so no earlier fault can still lead to a failover). */
  const seenAliveAfter = (t: number) => until('the monitor sees the primary alive again', async () => ((await status()).lastKnown?.seenAt ?? 0) >= t);

  beforeAll(async () => {
    fleet = await startMariaFleet({ cluster: 'fo-maria' });
    inventory = fleet.writeInventory(undefined, { policy: POLICY });
    tw = await startTestWorker({ inventory: () => loadInventory(inventory) });
    acts = createMysqlFailoverActivities({ inventory: () => loadInventory(inventory) });
  });
  afterAll(async () => {
    if (tw) await runMonitor({ ...opts(), stop: true }, captureIO()).catch(() => undefined);
    for (const n of fleet?.nodes ?? []) await n.stop('SIGCONT').catch(() => undefined);
    await tw?.stop();
    await fleet?.stop();
  });

  it('a manual failover while the primary lives is refused, nothing changed', async () => {
    const primary = await ready();
    const before = await fleet.state();
    const io = captureIO();
    const r = await runFailover({ ...opts(), wait: true }, io);
    expect(r.exitCode, io.text()).toBe(2);
    expect(io.text()).toMatch(new RegExp(`the primary ${primary} answers: use switchover`));
    const after = await fleet.state();
    for (const id of Object.keys(before)) expect({ ro: after[id].readOnly, src: after[id].source }).toEqual({ ro: before[id].readOnly, src: before[id].source });
  });

  it('a lost probe and a crash-restart shorter than the window cause no failover', { timeout: 120_000 }, async () => {
    const primary = await ready();
    await startMonitor(primary);
    const n1 = node(primary);
    // Frozen about one probe interval: probes time out, the replicas' IO threads stay up.
    await n1.stop('SIGSTOP');
    await sleep(600); // the fault's length (what is tested: a freeze shorter than the window)
    await n1.stop('SIGCONT');
    await seenAliveAfter(Date.now());
    expect((await status()).failovers).toEqual([]);
    // Killed and restarted at once: the replicas see the link drop, but the primary is back within the window.
    const t0 = Date.now();
    await n1.stop('SIGKILL');
    await n1.start();
    const restartMs = Date.now() - t0;
    await seenAliveAfter(Date.now());
    const s = await status();
    console.log(`[failover-mysql] crash-restart took ${restartMs} ms; monitor verdict: ${s.lastVerdict}`);
    expect(s.failovers).toEqual([]);
    const st = await fleet.state();
    // The restarted primary comes back read-only (--read-only=ON in its config): the monitor does not make it
    // writable by itself; the operator (here the test) does.
    expect(st[primary].readOnly).toBe(true);
    for (const r of others(primary)) expect(st[r.id].source).toBe(`127.0.0.1:${n1.port}`);
    await fleet.sql(primary, 'SET GLOBAL read_only = OFF');
    await fleet.waitForReplication(primary, 30_000);
  });

  it('detects a SIGKILLed primary under writes, promotes one replica, the other follows, the old primary returns read-only', { timeout: 180_000 }, async () => {
    const primary = await ready();
    await startMonitor(primary);
    const writer = new SqlWriter(fleet.nodes, fleet.appUser, fleet.appPassword).start();
    await moreAcks(writer, 20);
    const n1 = node(primary);
    const killedAt = writer.now();
    const killedWall = Date.now();
    await n1.stop('SIGKILL');
    const s = await until<MonitorStatus>('a failover', async () => {
      const x = await status();
      return x.failovers.length === 1 && x;
    });
    const to = s.failovers[0].to;
    expect(others(primary).map((n) => n.id)).toContain(to);
    await until('writes resume on the new primary', async () => writer.primariesSeen.includes(to) && writer.ackTimes[writer.ackTimes.length - 1] > killedAt);
    const recoveredMs = Math.round(writer.maxGapMs(killedAt));
    const other = others(primary).find((n) => n.id !== to)!.id;
    let st = await fleet.state();
    expect(st[to]).toMatchObject({ up: true, readOnly: false });
    expect(st[to].source).toBeUndefined();
    expect(st[other]).toMatchObject({ up: true, readOnly: true, source: `127.0.0.1:${node(to).port}`, io: 'Yes', sql: 'Yes' });

    // The old primary comes back: read-only before anything else, then a replica of the new primary.
    await n1.start();
    const back = await until<MonitorStatus>('old primary fenced', async () => {
      const x = await status();
      return x.fenced.includes(n1.id) && x;
    });
    await moreAcks(writer, 20);
    await writer.stop();
    await writer.close();
    st = await fleet.state();
    expect(st[n1.id].readOnly).toBe(true);
    const flagged = back.flagged[n1.id];
    if (flagged) {
      // Its last commits never reached a replica: errant, so it must not replicate.
      expect(st[n1.id].source).toBeUndefined();
    } else {
      expect(st[n1.id]).toMatchObject({ source: `127.0.0.1:${node(to).port}`, io: 'Yes', sql: 'Yes' });
      // Run again (as a retry would): it sees the end state and changes nothing.
      const again = await acts.ensureMysqlRejoined({ cluster: fleet.cluster, node: n1.id, primary: to, promotedGtid: s.failovers[0].promotedGtid });
      expect(again.outcome).toBe('already');
    }
    await until('replicas converge', async () => {
      const x = await fleet.state();
      return Object.entries(x).every(([id, v]) => id === to || (flagged && id === n1.id) || v.gtidBinlogPos === x[to].gtidBinlogPos);
    }, 30_000);
    const missing = await writer.missingOn(node(to));
    const f = s.failovers[0];
    console.log(
      `[failover-mysql] detection+recovery ${recoveredMs} ms (largest gap between two acknowledged commits from the kill on), ` +
        `monitor detectMs=${f.detectMs}, failover done ${f.at - killedWall} ms after the kill, lost (monitor's window)=${f.lostTransactions}, ` +
        `acked commits missing on the new primary=${missing.length} of ${writer.ackedKeys.length}, old primary ${flagged ? `FLAGGED ${flagged.join(',')}` : 'rejoined as replica'}`,
    );
    expect(recoveredMs).toBeLessThan(30_000);
    expect(Object.values(st).filter((x) => x.up && x.readOnly === false)).toHaveLength(1);
  });

  it('blocks a second failover until acknowledged; an old primary with errant transactions stays read-only and flagged', { timeout: 240_000 }, async () => {
    const first = await ready();
    await startMonitor(first);
    // The first failover (the one whose block period the second falls in): its old primary stays down.
    await node(first).stop('SIGKILL');
    const before = await until<MonitorStatus>('the first failover', async () => {
      const x = await status();
      return x.failovers.length === 1 && x;
    });
    const primaryId = before.failovers[0].to;
    const primary = node(primaryId);
    const replicas = others(primaryId).filter((n) => n.id !== first);
    await until('the replica follows the new primary', async () => {
      const st = await fleet.state();
      return replicas.every((r) => st[r.id].source === `127.0.0.1:${primary.port}` && st[r.id].io === 'Yes' && st[r.id].gtidBinlogPos === st[primaryId].gtidBinlogPos);
    }, 30_000);
    // An errant transaction: committed on the primary while no replica receives.
    for (const r of replicas) await fleet.sql(r.id, 'STOP SLAVE IO_THREAD');
    await fleet.sql(primaryId, `INSERT INTO ${APP_SCHEMA}.acks (k, v) VALUES ('errant-${Date.now()}', 1)`);
    const [{ pos: errantPos }] = await fleet.sql<{ pos: string }[]>(primaryId, 'SELECT @@global.gtid_binlog_pos AS pos');
    // The monitor observes the primary at errantPos (its data-loss window counts it).
    await until('the monitor sees the errant position', async () => (await status()).lastKnown?.gtid === errantPos);
    await primary.stop('SIGKILL');

    // Confirmed dead, but within the block period of the first failover: refused, visible, until --ack.
    const blocked = await until<MonitorStatus>('anti-flap block', async () => {
      const x = await status();
      return x.blocked ? x : undefined;
    });
    expect(blocked.blocked).toMatch(/anti-flapping/);
    expect(blocked.failovers).toHaveLength(1);
    // Still blocked a few rounds later (the live view moved on), nothing started.
    const r0 = (await status()).rounds;
    await until('more rounds', async () => (await status()).rounds >= r0 + 3);
    expect((await status()).failovers).toHaveLength(1);
    expect((await runMonitor({ ...opts(), ack: true }, captureIO())).exitCode).toBe(0);
    const after = await until<MonitorStatus>('second failover', async () => {
      const x = await status();
      return x.failovers.length === 2 && x;
    });
    const to = after.failovers[1].to;
    expect(after.failovers[1].from).toBe(primaryId);
    expect(after.failovers[1].lostTransactions).toBe(1);

    await primary.start();
    const flagged = await until<MonitorStatus>('old primary flagged', async () => {
      const x = await status();
      return x.flagged[primaryId] && x;
    });
    expect(flagged.flagged[primaryId]).toEqual([errantPos]);
    // Run again: still flagged, still read-only, still not replicating.
    const again = await acts.ensureMysqlRejoined({ cluster: fleet.cluster, node: primaryId, primary: after.failovers[1].to, promotedGtid: after.failovers[1].promotedGtid });
    expect(again).toMatchObject({ outcome: 'flagged', errantGtids: [errantPos], wasWritable: false });
    const r1 = (await status()).rounds;
    await until('more rounds', async () => (await status()).rounds >= r1 + 3);
    const st = await fleet.state();
    expect(st[primaryId]).toMatchObject({ up: true, readOnly: true });
    expect(st[primaryId].source).toBeUndefined();
    expect(st[to]).toMatchObject({ readOnly: false });
    expect(Object.values(st).filter((x) => x.up && x.readOnly === false)).toHaveLength(1);
    console.log(`[failover-mysql] errant old primary ${primaryId} flagged with ${flagged.flagged[primaryId].join(',')}; new primary ${to}`);
  });

  it('a frozen (SIGSTOPped) primary resumed after the promotion never acknowledges a write (semi-synchronous replication)', { timeout: 240_000 }, async () => {
    const primaryId = await ready();
    const primary = node(primaryId);
    await startMonitor(primaryId);
    // Semi-sync, no timeout fallback: a commit is acknowledged only once a replica has it. MariaDB has no
    // min-replicas-to-write; without this a resumed frozen primary takes writes until the monitor fences it.
    // Master side on the primary only: with log_slave_updates a replica with it on would wait for acks of its own.
    for (const q of ['SET GLOBAL rpl_semi_sync_master_enabled = ON', 'SET GLOBAL rpl_semi_sync_master_timeout = 3600000']) await fleet.sql(primaryId, q);
    for (const n of fleet.nodes) {
      await fleet.sql(n.id, 'SET GLOBAL rpl_semi_sync_slave_enabled = ON');
      if (n.id !== primaryId) {
        await fleet.sql(n.id, 'STOP SLAVE IO_THREAD');
        await fleet.sql(n.id, 'START SLAVE IO_THREAD');
      }
    }
    await until('semi-sync on', async () => {
      const [r] = await fleet.sql<{ Value: string }[]>(primaryId, "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_clients'");
      return Number(r.Value) === 2;
    });
    const writer = new SqlWriter(fleet.nodes, fleet.appUser, fleet.appPassword).start();
    await moreAcks(writer, 20);
    await primary.stop('SIGSTOP');
    const after = await until<MonitorStatus>('failover from the frozen primary', async () => {
      const x = await status();
      return x.failovers.length === 1 && x;
    }, 90_000);
    const to = after.failovers[0].to;
    expect(after.failovers[0].from).toBe(primaryId);
    // Resume it and write to it directly, as a client that never heard of the failover and keeps reconnecting
    // (one new session per write, every 100 ms), until the monitor has fenced it and a few writes after that. Each
    // such commit is committed locally and waits for a semi-sync acknowledgement that never comes; the fence
    // (a global read lock whose wait blocks new writes, the application sessions killed meanwhile) must still
    // complete, and no write may be acknowledged.
    await primary.stop('SIGCONT');
    const resumedAt = Date.now();
    const accepted: string[] = [];
    const refusals: Record<string, number> = {};
    let attempts = 0;
    let staleStop = false;
    const stale = (async () => {
      for (let i = 0; !staleStop; i++) {
        let c: mysql.Connection | undefined;
        try {
          attempts++;
          c = await mysql.createConnection({ host: primary.host, port: primary.port, user: fleet.appUser, password: fleet.appPassword, database: APP_SCHEMA, connectTimeout: 1000 });
          await c.query({ sql: 'INSERT INTO acks (k, v) VALUES (?, ?)', values: [`stale-${Date.now()}-${i}`, i], timeout: 500 });
          accepted.push(`stale-${i}`);
        } catch (e) {
          const err = e as { code?: string; errno?: number };
          const k = err.code ?? String(err.errno);
          refusals[k] = (refusals[k] ?? 0) + 1;
        } finally {
          c?.destroy();
        }
        await sleep(100); // the stale client's own pace
      }
    })();
    let attemptsAtFence = 0;
    let fenced: MonitorStatus;
    try {
      fenced = await until<MonitorStatus>('frozen primary fenced while the stale client writes', async () => {
        const x = await status();
        if (!x.fenced.includes(primaryId) || (await fleet.state())[primaryId].readOnly !== true) return false;
        attemptsAtFence = attempts;
        return x;
      }, 60_000);
      // A few more writes after the fence: every one refused.
      await until('stale writes after the fence', async () => attempts >= attemptsAtFence + 3);
    } finally {
      staleStop = true;
      await stale;
    }
    const fenceMs = Date.now() - resumedAt;
    await writer.stop();
    await writer.close();
    console.log(
      `[failover-mysql] frozen primary ${primaryId} resumed: fenced within ${fenceMs} ms while a stale client wrote (${attemptsAtFence} attempts before the fence was seen, ${attempts} in all), ${accepted.length} acknowledged, refusals ${JSON.stringify(refusals)}; new primary ${to}; ${fenced.flagged[primaryId] ? `flagged ${fenced.flagged[primaryId].join(',')}` : 'rejoined'}`,
    );
    // The fence happened under the stale client's load, not after it stopped: it was writing before the fence
    // and after it, and at least one of its commits hung (committed locally, waiting for an acknowledgement) and
    // ended in an error, its client timing out or its session killed by the fence.
    expect(attemptsAtFence).toBeGreaterThanOrEqual(1);
    expect(attempts).toBeGreaterThanOrEqual(attemptsAtFence + 3);
    expect((refusals.PROTOCOL_CONNECTION_LOST ?? 0) + (refusals.PROTOCOL_SEQUENCE_TIMEOUT ?? 0)).toBeGreaterThanOrEqual(1);
    expect(accepted).toEqual([]);
    expect(refusals.ER_OPTION_PREVENTS_STATEMENT ?? 0).toBeGreaterThanOrEqual(1); // read-only refused the writes after the fence
    // The following writer's acknowledged commits are all on the new primary: none was acknowledged by the old one
    // after the promotion (those never reached the new primary).
    expect(writer.ackedKeys.length).toBeGreaterThan(0);
    expect(await writer.missingOn(node(to))).toEqual([]);
    const st = await fleet.state();
    expect(st[primaryId].readOnly).toBe(true);
    expect(Object.values(st).filter((x) => x.up && x.readOnly === false)).toHaveLength(1);
    expect(st[to].readOnly).toBe(false);
  });

  it('handover failover without a monitor confirms over the window itself, promotes, and says the data-loss window is unknown', { timeout: 120_000 }, async () => {
    const primaryId = await ready();
    const primary = node(primaryId);
    await primary.stop('SIGKILL');
    // A pre-failover hook that exits non-zero stops the run before anything changes (fails closed).
    const hookLog = path.join(fleet.baseDir, `hooks-${Date.now()}.log`);
    const record = (what: string) => `echo "${what} {oldPrimary} {newPrimary} $HANDOVER_NEW_PRIMARY" >> ${hookLog}`;
    fleet.writeInventory(inventory, { policy: POLICY, hooks: { preFailover: [`${record('pre')}; exit 3`] } });
    const refused = captureIO();
    expect((await runFailover({ ...opts(), wait: true }, refused)).exitCode, refused.text()).toBe(2);
    expect(refused.text()).toMatch(/refused \(PreHookFailed\): preFailover hook #1 exited 3 .*the failover was not started/);
    expect(Object.values(await fleet.state()).filter((x) => x.up && x.readOnly === false)).toHaveLength(0); // nobody promoted
    // Then a succeeding pre-hook and a failing post-hook: the failover completes and reports the post-hook failure.
    fleet.writeInventory(inventory, { policy: POLICY, hooks: { preFailover: [record('pre')], postFailover: ['exit 7', record('post')] } });
    const io = captureIO();
    const t0 = Date.now();
    const r = await runFailover({ ...opts(), wait: true }, io);
    expect(r.exitCode, io.text()).toBe(5); // done with warnings: a post-failover hook failed
    const report = r.report as MysqlFailoverReport;
    expect(report.hooks!.map((h) => [h.hook, h.ok])).toEqual([
      ['pre-failover hook 1', true],
      ['post-failover hook 1', false],
      ['post-failover hook 2', true],
    ]);
    const hookLines = readFileSync(hookLog, 'utf8').trim().split('\n');
    expect(hookLines).toEqual([
      expect.stringMatching(new RegExp(`^pre ${primaryId} \\S+ \\S+$`)),
      `pre ${primaryId} ${report.newPrimary} ${report.newPrimary}`,
      `post ${primaryId} ${report.newPrimary} ${report.newPrimary}`,
    ]);
    expect(report.engine).toBe('mysql');
    expect(report.oldPrimary).toBe(primaryId);
    expect(report.dataLossWindow.transactions).toBeUndefined();
    expect(report.fenced).toMatch(/^pending/);
    expect(report.steps.map((x) => x.step)).toContain('confirm');
    expect(io.text()).toMatch(new RegExp(`failed over ${fleet.cluster}: ${primaryId} -> ${report.newPrimary}`));
    const st = await fleet.state();
    expect(Object.values(st).filter((x) => x.up && x.readOnly === false)).toHaveLength(1);
    console.log(`[failover-mysql] manual failover ${primaryId} -> ${report.newPrimary} in ${Date.now() - t0} ms (confirmation ${report.steps.find((x) => x.step === 'confirm')?.ms} ms)`);
  });
});
