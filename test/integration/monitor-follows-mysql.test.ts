/**
 * The MariaDB monitor follows the topology, not its memory (issue #20, items 5-7), with real mariadbd processes
 * and the real Temporal dev server:
 *  - a primary whose own config would let it take writes on restart (read_only=OFF on its command line) is
 *    flagged by `status`, `plan` and the monitor, in text;
 *  - after a switchover and a rolling restart (whose child switchover moves the primary), the monitor watches
 *    the primary the fleet has now; a SIGKILL of that primary brings an automatic failover within the
 *    detection window, and every acknowledged commit (semi-synchronous) is on the new primary;
 *  - the failover report says what is known of the data loss and what is not, never "0 lost";
 *  - an old primary that returns writable (no read_only in its config) with 3 errant commits is fenced, not
 *    adopted, and flagged with all three GTIDs, in `status` and `monitor --status` text.
 * One fleet for the file; every test starts from `ready()` (a node left down or flagged by another test
 * repaired, semi-sync off, the monitor stopped) and starts its own monitor, so each passes alone and in any order.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runMonitor, withLiveView } from '../../client/commands/monitor';
import { pendingWatch } from '../../client/progress';
import { monitorWorkflowId } from '../../core/ids';
import { runPlan } from '../../client/commands/plan';
import { runRollingRestart } from '../../client/commands/rolling-restart';
import { runStatus } from '../../client/commands/status';
import { runSwitchover } from '../../client/commands/switchover';
import { loadInventory } from '../../inventory/load';
import { APP_SCHEMA, startMariaFleet, type MariaFleet } from '../../sandbox/mariadb';
import { SqlWriter } from '../../sandbox/sql-writer';
import type { MonitorStatus } from '../../workflows/monitor';
import { captureIO, until as untilCondition, moreAcks, startTestWorker, type TestWorker } from '../helpers';

// Window: 5 consecutive DeadMaster rounds 400 ms apart (about 2 s plus probe time).
const POLICY = { probeIntervalMs: 400, probesToConfirm: 5, failoverBlockMs: 1_000, catchUpTimeoutMs: 20_000, verifyTimeoutMs: 30_000 };

/** The shared condition wait, with this file's bound (60_000 ms) and poll (100 ms). */
const until = <T,>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 60_000) => untilCondition<T>(what, fn, timeoutMs, 100);

describe('the MariaDB monitor follows the topology', () => {
  let fleet: MariaFleet;
  let tw: TestWorker;
  let inventory: string;
  const opts = () => ({ cluster: fleet.cluster, inventory, address: tw.address, taskQueue: tw.taskQueue });
  /** What `handover monitor --status --json` returns (the query with the live view), read over the test worker's connection: no new connection per poll. */
  const status = async (): Promise<MonitorStatus> => {
    const h = tw.env.client.workflow.getHandle(monitorWorkflowId(fleet.cluster));
    return withLiveView(await h.query<MonitorStatus>('status'), await pendingWatch(h).catch(() => undefined));
  };
  const statusText = async () => {
    const io = captureIO();
    expect((await runMonitor({ ...opts(), status: true }, io)).exitCode).toBe(0);
    return io.text();
  };
  const clusterText = async () => {
    const io = captureIO();
    expect((await runStatus({ ...opts() }, io)).exitCode).toBe(0);
    return io.text();
  };
  const node = (id: string) => fleet.nodes.find((n) => n.id === id)!;
  const writable = async () => Object.entries(await fleet.state()).filter(([, s]) => s.up && s.readOnly === false).map(([id]) => id);

  /** Semi-synchronous replication on `primaryId`: a commit is acknowledged only once a replica has it. */
  async function semiSync(primaryId: string) {
    for (const q of ['SET GLOBAL rpl_semi_sync_master_enabled = ON', 'SET GLOBAL rpl_semi_sync_master_timeout = 3600000']) await fleet.sql(primaryId, q);
    for (const n of fleet.nodes.filter((x) => x.id !== primaryId)) {
      await fleet.sql(n.id, 'SET GLOBAL rpl_semi_sync_slave_enabled = ON');
      await fleet.sql(n.id, 'STOP SLAVE IO_THREAD');
      await fleet.sql(n.id, 'START SLAVE IO_THREAD');
    }
    await until('semi-sync on', async () => {
      const [r] = await fleet.sql<{ Value: string }[]>(primaryId, "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_clients'");
      return Number(r.Value) === fleet.nodes.length - 1;
    });
  }

  /**
   * The start of every test: the monitor stopped, every node up, semi-sync off, one writable primary (whichever is
   * now) and every other node replicating from it (a flagged old primary re-based: MariaFleet.setPrimary).
   */
  async function ready(): Promise<string> {
    await tw.env.client.workflow.getHandle(monitorWorkflowId(fleet.cluster)).terminate('test: ready()').catch(() => undefined); // none running: fine
    const primary = await fleet.setPrimary();
    for (const n of fleet.nodes) await fleet.sql(n.id, 'SET GLOBAL rpl_semi_sync_master_enabled = OFF, rpl_semi_sync_slave_enabled = OFF');
    return primary;
  }
  /** A new monitor (no failovers), once it has seen `primary` alive. */
  async function startMonitor(primary: string): Promise<MonitorStatus> {
    expect((await runMonitor(opts(), captureIO())).exitCode).toBe(0);
    return until<MonitorStatus>('the monitor sees the primary', async () => {
      const x = await status();
      return x.lastKnown?.primary === primary && !x.blind && x;
    });
  }

  beforeAll(async () => {
    fleet = await startMariaFleet({ cluster: 'mf-maria' });
    inventory = fleet.writeInventory(undefined, { policy: POLICY, controller: true });
    tw = await startTestWorker({ inventory: () => loadInventory(inventory) });
  });
  afterAll(async () => {
    if (tw) await runMonitor({ ...opts(), stop: true }, captureIO()).catch(() => undefined);
    await tw?.stop();
    await fleet?.stop();
  });

  it('a primary whose own config lets it take writes on restart is flagged by status, plan and the monitor', { timeout: 120_000 }, async () => {
    const n1 = node(await ready());
    // Turned OFF at runtime (as the sandbox and every promotion do): whether its config sets it cannot be read remotely (?).
    await fleet.sql(n1.id, 'SET GLOBAL read_only = OFF');
    expect(await clusterText()).toMatch(new RegExp(`\\? restart risk: ${n1.id}: read_only was last set at runtime \\(SQL\\)`));
    // Restarted with read_only=OFF on its command line (the replicas reconnect): certain (!).
    await n1.stop('SIGTERM');
    await n1.start(['--read-only=OFF']);
    await fleet.waitForReplication(n1.id, 30_000);
    expect(await writable()).toEqual([n1.id]);
    const text = await clusterText();
    expect(text).toMatch(new RegExp(`! restart risk: ${n1.id}: read_only=OFF on its command line: restarted, it comes back WRITABLE until fenced; set read_only=ON there \\(MariaDB has no SET PERSIST`));
    const io = captureIO();
    const plan = await runPlan({ ...opts(), runbook: 'switchover' }, io);
    expect(plan.exitCode, io.text()).toBe(0);
    expect(io.text()).toMatch(new RegExp(`! restart risk: ${n1.id}: read_only=OFF on its command line`));
    expect((await runMonitor(opts(), captureIO())).exitCode).toBe(0);
    const s = await until<MonitorStatus>('monitor sees the primary', async () => {
      const x = await status();
      return x.lastKnown?.primary === n1.id && !!x.restartRisks?.length && x;
    });
    expect(s.blind).toBeUndefined();
    expect(s.lastKnown!.gtid).toMatch(/^0-\d+-\d+$/);
    expect(await statusText()).toMatch(new RegExp(`! restart risk: ${n1.id}: read_only=OFF on its command line`));
    console.log(`[monitor-follows-mysql] plan printed:\n${io.text()}`);
  });

  it('follows a switchover and a rolling restart; a SIGKILL of the new primary fails over within the window, no acknowledged commit lost', { timeout: 300_000 }, async () => {
    const n1 = node(await ready());
    const n2 = fleet.nodes.find((n) => n.id !== n1.id)!;
    await startMonitor(n1.id);
    const sw = captureIO();
    const r = await runSwitchover({ ...opts(), to: n2.id, wait: true }, sw);
    expect(r.exitCode, sw.text()).toBe(0);
    const afterSwitch = await until<MonitorStatus>('monitor follows the switchover', async () => {
      const x = await status();
      return x.lastKnown?.primary === n2.id && !x.blind && x;
    }, 15_000);
    expect(afterSwitch.adopted).toMatch(new RegExp(`primary moved from ${n1.id}: adopted ${n2.id}`));
    expect(afterSwitch.failovers).toEqual([]);
    expect(afterSwitch.fenced).toEqual([]); // the old primary was repointed by the switchover, never raced

    const roll = captureIO();
    const rr = await runRollingRestart({ ...opts(), set: ['max_connections=222'], wait: true }, roll);
    expect(rr.exitCode, roll.text()).toBe(0);
    const [primaryId] = await writable();
    expect(primaryId).not.toBe(n2.id); // the roll's child switchover moved the primary
    const afterRoll = await until<MonitorStatus>('monitor follows the roll', async () => {
      const x = await status();
      return x.lastKnown?.primary === primaryId && !x.blind && x;
    }, 15_000);
    expect(afterRoll.failovers).toEqual([]);
    expect(await statusText()).toMatch(new RegExp(`^monitor \\S+: primary ${primaryId} \\(last seen at 0-\\d+-\\d+, `));

    await fleet.waitForReplication(primaryId, 30_000);
    await semiSync(primaryId);
    const writer = new SqlWriter(fleet.nodes, fleet.appUser, fleet.appPassword).start();
    await moreAcks(writer, 60);
    const killedWall = Date.now();
    await node(primaryId).stop('SIGKILL');
    const s = await until<MonitorStatus>('automatic failover', async () => {
      const x = await status();
      return x.failovers.length === 1 && x;
    }, 60_000);
    const f = s.failovers[0];
    const failoverMs = f.at - killedWall;
    await until('writes resume on the new primary', async () => writer.primariesSeen.includes(f.to));
    await moreAcks(writer, 20);
    await writer.stop();
    await writer.close();
    const missing = await writer.missingOn(node(f.to));
    console.log(
      `[monitor-follows-mysql] killed ${primaryId} (primary after switchover + roll): failover to ${f.to} ${failoverMs} ms after the kill (detectMs ${f.detectMs}); ` +
        `acked commits ${writer.ackedKeys.length}, missing on the new primary ${missing.length}; loss: ${f.loss}`,
    );
    expect(f.from).toBe(primaryId);
    // Detection window: 5 rounds 400 ms apart after the replicas notice (slave_net_timeout 5 s, heartbeat 1 s).
    expect(failoverMs).toBeLessThan(20_000);
    expect(writer.ackedKeys.length).toBeGreaterThan(50);
    expect(missing).toEqual([]);
    expect(await writable()).toEqual([f.to]);
    // What is known and what is not: never "0 lost".
    expect(f.unobservedMs).toBeGreaterThanOrEqual(0);
    expect(f.unobservedMs).toBeLessThan(5_000);
    expect(f.loss).toMatch(/NOT known: whatever .* committed after that sight \(up to \d+ ms of writes\)/);
    expect(f.loss).not.toMatch(/\b0 transactions lost/);
    expect(await statusText()).toMatch(new RegExp(`failover \\S+: ${primaryId} -> ${f.to}, detected in \\d+ ms; data loss: .*NOT known`));
  });

  it('an old primary that returns writable with 3 errant commits is fenced, not adopted, and flagged with all three GTIDs in text', { timeout: 300_000 }, async () => {
    const primaryId = await ready();
    await startMonitor(primaryId);

    // Three errant commits: taken by the primary while no replica receives.
    const replicas = fleet.nodes.filter((n) => n.id !== primaryId);
    for (const r of replicas) await fleet.sql(r.id, 'STOP SLAVE IO_THREAD');
    for (let i = 0; i < 3; i++) await fleet.sql(primaryId, `INSERT INTO ${APP_SCHEMA}.acks (k, v) VALUES ('errant-${i}-${Date.now()}', ${i})`);
    const [{ pos }] = await fleet.sql<{ pos: string }[]>(primaryId, 'SELECT @@global.gtid_binlog_pos AS pos');
    const [d, srv, last] = pos.split('-').map(Number);
    const errant = [last - 2, last - 1, last].map((q) => `${d}-${srv}-${q}`);
    // Seen by the monitor at that position (it refreshes the primary's position every round).
    await until('monitor sees the errant position', async () => (await status()).lastKnown?.gtid === pos, 15_000);
    await node(primaryId).stop('SIGKILL');
    for (const r of replicas) await fleet.sql(r.id, 'START SLAVE IO_THREAD');
    const s = await until<MonitorStatus>('the failover', async () => {
      const x = await status();
      return x.failovers.length === 1 && x;
    }, 90_000);
    const f = s.failovers[0];
    expect(f.from).toBe(primaryId);
    expect(f.lostTransactions).toBe(3);
    expect(f.loss).toMatch(/^at least 3 transactions lost: .*; NOT known/);

    // It returns WRITABLE (no read_only in its config), beside the new primary: fenced, never adopted.
    await node(primaryId).start(['--read-only=OFF']);
    const flagged = await until<MonitorStatus>('returning primary flagged', async () => {
      const x = await status();
      return x.flagged[primaryId] && x;
    }, 30_000);
    expect(flagged.flagged[primaryId]).toEqual(errant);
    expect(flagged.lastKnown!.primary).toBe(f.to);
    const st = await fleet.state();
    expect(st[primaryId]).toMatchObject({ up: true, readOnly: true });
    expect(st[primaryId].source).toBeUndefined();
    expect(await writable()).toEqual([f.to]);
    const monText = await statusText();
    expect(monText).toContain(`! ${primaryId} FLAGGED: left read-only and not replicating, 3 errant GTID(s) ${errant.join(', ')}`);
    const clText = await clusterText();
    expect(clText).toContain(`! ${primaryId} FLAGGED by the monitor: left read-only and not replicating, 3 errant GTID(s) ${errant.join(', ')}`);
    console.log(`[monitor-follows-mysql] monitor --status:\n${monText}\n[monitor-follows-mysql] status:\n${clText}`);
  });
});
