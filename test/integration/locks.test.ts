/**
 * One mutating operation per cluster, across runbooks, on one Redis cluster with a real worker: while a
 * switchover (at its approval gate), a rolling restart (at its approval gate), a failover started by the monitor
 * (inside its pre-failover hook) or a backup (inside its take) holds the cluster's lock ID `handover-<cluster>`,
 * every other runbook's start is refused with exit 3 and `already running: handover-<cluster> (<runbook>, run
 * <the holder's run ID>)`, and the monitor's own failover is not started (its verdict names the lock). A refused
 * start changes nothing: no mutating command reaches a server, no backup is written, the holder is still the
 * same running run. Once the holder ends, what was refused can run (the monitor's failover does, by itself).
 * Each test starts its own fleet, worker and monitor. The same across the four runbooks on one MariaDB cluster
 * (a switchover at its gate, a failover started by the monitor inside its pre-failover hook, a backup inside its
 * take): a refused start changes no server (read_only, source, threads, GTID positions, the pids, and the calls
 * of CHANGE MASTER / START / STOP / RESET SLAVE / KILL / SHUTDOWN).
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Context } from '@temporalio/activity';
import Redis from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { runApprove } from '../../client/commands/approve';
import { runBackupList, runBackupRun } from '../../client/commands/backup';
import { runFailover } from '../../client/commands/failover';
import { runMonitor } from '../../client/commands/monitor';
import { runRollingRestart } from '../../client/commands/rolling-restart';
import { runSwitchover } from '../../client/commands/switchover';
import { operationWorkflowId } from '../../core/ids';
import { loadInventory } from '../../inventory/load';
import { withBackupBlock } from '../../sandbox/backup';
import { sleep } from '../../sandbox/ports';
import { startRedisFleet, type RedisFleet } from '../../sandbox/redis';
import { startMariaFleet, type MariaFleet } from '../../sandbox/mariadb';
import { MARIADB_BACKUP_GRANTS } from '../../activities/backup/mysql';
import type { MonitorStatus } from '../../workflows/monitor';
import type { RunbookProgress } from '../../core/types';
import { captureIO, startTestWorker, type TestWorker } from '../helpers';

const MUTATING = ['replicaof', 'slaveof', 'client|pause', 'client|unpause', 'failover', 'config|set', 'config|rewrite', 'shutdown'];
const POLICY = { probeIntervalMs: 300, probesToConfirm: 3, failoverBlockMs: 1_000 };

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** Per live node: role, run_id and the calls of every mutating command (a killed node is left out). */
async function mutatingCalls(fleet: RedisFleet): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const n of fleet.nodes.filter((x) => x.pid())) {
    const c = new Redis({ host: n.host, port: n.port, password: fleet.password, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    c.on('error', () => undefined);
    try {
      await c.connect();
      const stats = await c.info('commandstats');
      const role = ((await c.call('ROLE')) as unknown[])[0];
      const runId = /run_id:(\w+)/.exec(await c.info('server'))![1];
      out[n.id] = `${role} ${runId} ` + MUTATING.map((cmd) => `${cmd}=${new RegExp(`cmdstat_${cmd.replace('|', '\\|')}:calls=(\\d+)`).exec(stats)?.[1] ?? 0}`).join(' ');
    } finally {
      c.disconnect();
    }
  }
  return out;
}

interface Setup {
  fleet: RedisFleet;
  tw: TestWorker;
  inventory: string;
  backups: string;
  cluster: string;
  base: { cluster: string; address: string; taskQueue: string; inventory: string };
}

describe('one operation per cluster, across runbooks (redis)', () => {
  const cleanups: (() => Promise<unknown> | unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await Promise.resolve(c()).catch(() => undefined);
  });

  /** A fresh fleet with a backup block (and `hooks`, when given), a worker, and the monitor. */
  async function setup(cluster: string, o: { preFailover?: string[]; failpoint?: (name: string) => Promise<void> } = {}): Promise<Setup> {
    const fleet = await startRedisFleet({ cluster });
    cleanups.push(() => fleet.stop());
    const backups = mkdtempSync(path.join(os.tmpdir(), 'handover-lock-backups-'));
    cleanups.push(() => rmSync(backups, { recursive: true, force: true }));
    let yaml = withBackupBlock(fleet.inventoryYaml({ policy: POLICY }), backups, 2);
    if (o.preFailover) yaml = yaml.replace(/^(\s+)engine: redis$/m, (_m, sp: string) => `${sp}engine: redis\n${sp}hooks:\n${sp}  preFailover: ${JSON.stringify(o.preFailover)}`);
    const inventory = path.join(fleet.baseDir, 'inventory.yaml');
    writeFileSync(inventory, yaml);
    const tw = await startTestWorker({ inventory: () => loadInventory(inventory), failpoint: o.failpoint });
    cleanups.push(() => tw.stop());
    const base = { cluster, address: tw.address, taskQueue: tw.taskQueue, inventory };
    expect((await runMonitor(base, captureIO())).exitCode).toBe(0);
    cleanups.push(() => runMonitor({ ...base, stop: true }, captureIO()));
    await until('the monitor sees the primary', async () => (await monitorStatus(base)).lastKnown?.primary === `${cluster}-1`);
    return { fleet, tw, inventory, backups, cluster, base };
  }

  async function monitorStatus(base: Setup['base']): Promise<MonitorStatus> {
    return (await runMonitor({ ...base, status: true, json: true }, captureIO())).status!;
  }

  /** The run holding the cluster's lock: its type and run ID, still running. */
  async function holder(s: Setup): Promise<{ type: string; runId: string }> {
    const d = await s.tw.env.client.workflow.getHandle(operationWorkflowId(s.cluster)).describe();
    expect(d.status.name).toBe('RUNNING');
    return { type: d.type, runId: d.runId };
  }

  const waitingForApproval = (s: Setup) =>
    until('the approval gate', async () => (await s.tw.env.client.workflow.getHandle(operationWorkflowId(s.cluster)).query<RunbookProgress>('progress')).approval?.status === 'waiting');

  /** Each challenger refused with exit 3 naming the holder; nothing changed; the holder is the same run. */
  async function expectRefused(s: Setup, runbook: string, challengers: Record<string, (io: ReturnType<typeof captureIO>) => Promise<{ exitCode: number }>>) {
    const h = await holder(s);
    const before = await mutatingCalls(s.fleet);
    const backupsBefore = readdirSync(s.backups).join(',');
    for (const [name, start] of Object.entries(challengers)) {
      const io = captureIO();
      const r = await start(io);
      expect({ name, exitCode: r.exitCode, said: io.text() }).toEqual({ name, exitCode: 3, said: `already running: ${operationWorkflowId(s.cluster)} (${runbook}, run ${h.runId})` });
    }
    expect(await mutatingCalls(s.fleet)).toEqual(before);
    expect(readdirSync(s.backups).join(',')).toBe(backupsBefore);
    expect(await holder(s)).toEqual(h);
    return h;
  }

  it('a switchover waiting for approval: rolling restart, backup, manual failover and the monitor\'s failover are refused; rejected, the monitor fails over', { timeout: 180_000 }, async () => {
    const s = await setup('lk-sw');
    const sw = captureIO();
    expect((await runSwitchover({ ...s.base, requireApproval: true }, sw)).exitCode, sw.text()).toBe(0);
    await waitingForApproval(s);
    const h = await expectRefused(s, 'switchover', {
      'rolling-restart': (io) => runRollingRestart({ ...s.base, set: ['hz=22'], wait: true }, io),
      backup: (io) => runBackupRun({ ...s.base, wait: true }, io),
      failover: (io) => runFailover({ ...s.base, force: true, wait: true }, io),
    });
    expect(h.type).toBe('switchover');
    // The primary dies while the switchover holds the cluster: the monitor confirms it but cannot start its
    // failover; nothing is promoted.
    const before = await mutatingCalls(s.fleet);
    await s.fleet.nodes[0].stop('SIGKILL');
    const blocked = await until('the monitor refused by the lock', async () => {
      const x = await monitorStatus(s.base);
      return /^failover did not run: already running: handover-lk-sw /.test(x.lastVerdict ?? '') && x;
    });
    expect(blocked.failovers).toEqual([]);
    expect(await mutatingCalls(s.fleet)).toEqual(Object.fromEntries(Object.entries(before).filter(([id]) => id !== 'lk-sw-1')));
    expect(await holder(s)).toEqual(h);
    // Rejected, the switchover ends with nothing changed; the next confirmed round fails over.
    expect((await runApprove({ ...s.base, workflowId: operationWorkflowId('lk-sw'), reject: true, reason: 'lock test', approver: 'test' }, captureIO())).exitCode).toBe(0);
    const done = await until('the monitor fails over once the lock is free', async () => {
      const x = await monitorStatus(s.base);
      return x.failovers.length === 1 && x;
    });
    expect(['lk-sw-2', 'lk-sw-3']).toContain(done.failovers[0].to);
  });

  it('a rolling restart waiting for approval: switchover, backup and manual failover are refused', { timeout: 120_000 }, async () => {
    const s = await setup('lk-rr');
    const rr = captureIO();
    expect((await runRollingRestart({ ...s.base, set: ['hz=22'], requireApproval: true }, rr)).exitCode, rr.text()).toBe(0);
    await waitingForApproval(s);
    const h = await expectRefused(s, 'rolling-restart', {
      switchover: (io) => runSwitchover({ ...s.base, wait: true }, io),
      backup: (io) => runBackupRun({ ...s.base, wait: true }, io),
      failover: (io) => runFailover({ ...s.base, force: true, wait: true }, io),
    });
    expect(h.type).toBe('rollingRestart');
    expect((await runApprove({ ...s.base, workflowId: operationWorkflowId('lk-rr'), reject: true, reason: 'lock test', approver: 'test' }, captureIO())).exitCode).toBe(0);
    await until('the roll ended', async () => (await s.tw.env.client.workflow.getHandle(operationWorkflowId('lk-rr')).describe()).status.name !== 'RUNNING');
    // The lock is free again: a switchover now runs.
    const ok = captureIO();
    expect((await runSwitchover({ ...s.base, wait: true }, ok)).exitCode, ok.text()).toBe(0);
  });

  it('a failover started by the monitor (inside its pre-failover hook): switchover, rolling restart, backup and manual failover are refused', { timeout: 180_000 }, async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'handover-lock-hook-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const [reached, release] = [path.join(dir, 'reached'), path.join(dir, 'release')];
    // Bounded below the hook's own 30 s limit; the test releases it as soon as the refusals are checked.
    const hook = `touch ${reached}; i=0; while [ ! -e ${release} ] && [ $i -lt 250 ]; do sleep 0.1; i=$((i+1)); done; test -e ${release}`;
    const s = await setup('lk-fo', { preFailover: [hook] });
    await s.fleet.nodes[0].stop('SIGKILL');
    await until('the failover reached its pre-failover hook', async () => existsSync(reached));
    const h = await expectRefused(s, 'failover', {
      switchover: (io) => runSwitchover({ ...s.base, wait: true }, io),
      'rolling-restart': (io) => runRollingRestart({ ...s.base, set: ['hz=22'], wait: true }, io),
      backup: (io) => runBackupRun({ ...s.base, wait: true }, io),
      failover: (io) => runFailover({ ...s.base, force: true, wait: true }, io),
    });
    expect(h.type).toBe('redisFailover');
    writeFileSync(release, '');
    const done = await until('the monitor\'s failover completes', async () => {
      const x = await monitorStatus(s.base);
      return x.failovers.length === 1 && x;
    });
    expect(['lk-fo-2', 'lk-fo-3']).toContain(done.failovers[0].to);
    expect(Object.values(await s.fleet.roles()).filter((r) => r === 'master')).toHaveLength(1);
  });

  it('a backup (held inside its take): switchover, rolling restart and manual failover are refused; released, the backup is good', { timeout: 120_000 }, async () => {
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let reached = false;
    // Held inside the take activity, heartbeating, as a long copy would be.
    const failpoint = async (name: string) => {
      if (name !== 'takeBackup.beforeManifest') return;
      reached = true;
      let done = false;
      void released.then(() => (done = true));
      while (!done) {
        Context.current().heartbeat();
        await sleep(200);
      }
    };
    const s = await setup('lk-bk', { failpoint });
    cleanups.push(() => release());
    const b = captureIO();
    const run = runBackupRun({ ...s.base, wait: true }, b);
    await until('the backup is inside its take', async () => reached);
    const h = await expectRefused(s, 'backup', {
      switchover: (io) => runSwitchover({ ...s.base, wait: true }, io),
      'rolling-restart': (io) => runRollingRestart({ ...s.base, set: ['hz=22'], wait: true }, io),
      failover: (io) => runFailover({ ...s.base, force: true, wait: true }, io),
    });
    expect(h.type).toBe('backup');
    release();
    expect((await run).exitCode, b.text()).toBe(0);
    const list = await runBackupList({ ...s.base }, captureIO());
    expect(list.backups).toEqual([expect.objectContaining({ state: 'good' })]);
  });
});

const MYSQL_MUTATING = ['Com_change_master', 'Com_start_slave', 'Com_stop_slave', 'Com_slave_start', 'Com_slave_stop', 'Com_reset_slave', 'Com_kill', 'Com_shutdown'];

/** Per live MariaDB node: pid, read_only, source, threads, GTID positions and the calls of every mutating statement. */
async function mysqlMutations(fleet: MariaFleet): Promise<Record<string, string>> {
  const st = await fleet.state();
  const out: Record<string, string> = {};
  for (const n of fleet.nodes.filter((x) => x.pid())) {
    const rows = await fleet.sql<{ Variable_name: string; Value: string }[]>(n.id, `SHOW GLOBAL STATUS WHERE Variable_name IN (${MYSQL_MUTATING.map((v) => `'${v}'`).join(', ')})`);
    out[n.id] = `pid=${n.pid()} ${JSON.stringify(st[n.id])} ` + rows.map((r) => `${r.Variable_name}=${r.Value}`).sort().join(' ');
  }
  return out;
}

describe('one operation per cluster, across runbooks (mariadb)', () => {
  const cleanups: (() => Promise<unknown> | unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await Promise.resolve(c()).catch(() => undefined);
  });
  interface MSetup {
    fleet: MariaFleet;
    tw: TestWorker;
    backups: string;
    cluster: string;
    base: Setup['base'];
  }

  /** A fresh fleet (controller, backup block, hooks when given), a worker, and the monitor following the primary. */
  async function setup(cluster: string, o: { preFailover?: string[]; failpoint?: (name: string) => Promise<void> } = {}): Promise<MSetup> {
    const fleet = await startMariaFleet({ cluster });
    cleanups.push(() => fleet.stop());
    for (const n of fleet.nodes) cleanups.push(() => n.stop('SIGCONT'));
    await fleet.sql(0, `GRANT ${MARIADB_BACKUP_GRANTS.join(', ')} ON *.* TO '${fleet.handoverUser}'@'127.0.0.1'`);
    const backups = mkdtempSync(path.join(os.tmpdir(), 'handover-lock-backups-'));
    cleanups.push(() => rmSync(backups, { recursive: true, force: true }));
    const inventory = path.join(fleet.baseDir, 'inventory.yaml');
    writeFileSync(inventory, withBackupBlock(fleet.inventoryYaml({ controller: true, policy: POLICY, hooks: o.preFailover ? { preFailover: o.preFailover } : undefined }), backups, 2));
    const tw = await startTestWorker({ inventory: () => loadInventory(inventory), failpoint: o.failpoint });
    cleanups.push(() => tw.stop());
    const base = { cluster, address: tw.address, taskQueue: tw.taskQueue, inventory };
    expect((await runMonitor(base, captureIO())).exitCode).toBe(0);
    cleanups.push(() => runMonitor({ ...base, stop: true }, captureIO()));
    await until('the monitor sees the primary', async () => (await monitorStatus(base)).lastKnown?.primary === `${cluster}-1`);
    return { fleet, tw, backups, cluster, base };
  }

  async function monitorStatus(base: Setup['base']): Promise<MonitorStatus> {
    return (await runMonitor({ ...base, status: true, json: true }, captureIO())).status!;
  }

  async function holder(s: MSetup): Promise<{ type: string; runId: string }> {
    const d = await s.tw.env.client.workflow.getHandle(operationWorkflowId(s.cluster)).describe();
    expect(d.status.name).toBe('RUNNING');
    return { type: d.type, runId: d.runId };
  }

  async function expectRefused(s: MSetup, runbook: string, challengers: Record<string, (io: ReturnType<typeof captureIO>) => Promise<{ exitCode: number }>>) {
    const h = await holder(s);
    const before = await mysqlMutations(s.fleet);
    const backupsBefore = readdirSync(s.backups).join(',');
    for (const [name, start] of Object.entries(challengers)) {
      const io = captureIO();
      const r = await start(io);
      expect({ name, exitCode: r.exitCode, said: io.text() }).toEqual({ name, exitCode: 3, said: `already running: ${operationWorkflowId(s.cluster)} (${runbook}, run ${h.runId})` });
    }
    expect(await mysqlMutations(s.fleet)).toEqual(before);
    expect(readdirSync(s.backups).join(',')).toBe(backupsBefore);
    expect(await holder(s)).toEqual(h);
    return h;
  }

  const roll = (s: MSetup) => (io: ReturnType<typeof captureIO>) => runRollingRestart({ ...s.base, set: ['max_connections=321'], wait: true }, io);

  it('a switchover waiting for approval: rolling restart, backup, manual failover and the monitor\'s failover are refused; rejected, the monitor fails over', { timeout: 180_000 }, async () => {
    const s = await setup('lkm-sw');
    const sw = captureIO();
    expect((await runSwitchover({ ...s.base, requireApproval: true }, sw)).exitCode, sw.text()).toBe(0);
    await until('the approval gate', async () => (await s.tw.env.client.workflow.getHandle(operationWorkflowId(s.cluster)).query<RunbookProgress>('progress')).approval?.status === 'waiting');
    const h = await expectRefused(s, 'switchover', {
      'rolling-restart': roll(s),
      backup: (io) => runBackupRun({ ...s.base, wait: true }, io),
      failover: (io) => runFailover({ ...s.base, force: true, wait: true }, io),
    });
    expect(h.type).toBe('switchover');
    const before = await mysqlMutations(s.fleet);
    await s.fleet.nodes[0].stop('SIGKILL');
    const blocked = await until('the monitor refused by the lock', async () => {
      const x = await monitorStatus(s.base);
      return /^failover did not run: already running: handover-lkm-sw /.test(x.lastVerdict ?? '') && x;
    });
    expect(blocked.failovers).toEqual([]);
    // Nothing promoted: the replicas' own state is unchanged but for their IO threads, which lost the primary.
    const after = await mysqlMutations(s.fleet);
    for (const id of ['lkm-sw-2', 'lkm-sw-3']) expect(after[id].replace(/"io":"\w+",?/, '')).toBe(before[id].replace(/"io":"\w+",?/, ''));
    expect(await holder(s)).toEqual(h);
    expect((await runApprove({ ...s.base, workflowId: operationWorkflowId('lkm-sw'), reject: true, reason: 'lock test', approver: 'test' }, captureIO())).exitCode).toBe(0);
    const done = await until('the monitor fails over once the lock is free', async () => {
      const x = await monitorStatus(s.base);
      return x.failovers.length === 1 && x;
    }, 60_000);
    expect(['lkm-sw-2', 'lkm-sw-3']).toContain(done.failovers[0].to);
  });

  it('a failover started by the monitor (inside its pre-failover hook): switchover, rolling restart, backup and manual failover are refused', { timeout: 180_000 }, async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'handover-lock-hook-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const [reached, release] = [path.join(dir, 'reached'), path.join(dir, 'release')];
    const hook = `touch ${reached}; i=0; while [ ! -e ${release} ] && [ $i -lt 250 ]; do sleep 0.1; i=$((i+1)); done; test -e ${release}`;
    const s = await setup('lkm-fo', { preFailover: [hook] });
    await s.fleet.nodes[0].stop('SIGKILL');
    await until('the failover reached its pre-failover hook', async () => existsSync(reached));
    const h = await expectRefused(s, 'failover', {
      switchover: (io) => runSwitchover({ ...s.base, wait: true }, io),
      'rolling-restart': roll(s),
      backup: (io) => runBackupRun({ ...s.base, wait: true }, io),
      failover: (io) => runFailover({ ...s.base, force: true, wait: true }, io),
    });
    expect(h.type).toBe('mysqlFailover');
    writeFileSync(release, '');
    const done = await until('the monitor\'s failover completes', async () => {
      const x = await monitorStatus(s.base);
      return x.failovers.length === 1 && x;
    }, 60_000);
    expect(['lkm-fo-2', 'lkm-fo-3']).toContain(done.failovers[0].to);
    const st = await s.fleet.state();
    expect(['lkm-fo-2', 'lkm-fo-3'].filter((id) => st[id].up && st[id].readOnly === false)).toEqual([done.failovers[0].to]);
  });

  it('a backup (held inside its take): switchover, rolling restart and manual failover are refused; released, the backup is good', { timeout: 120_000 }, async () => {
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let reached = false;
    const failpoint = async (name: string) => {
      if (name !== 'takeBackup.beforeManifest') return;
      reached = true;
      let done = false;
      void released.then(() => (done = true));
      while (!done) {
        Context.current().heartbeat();
        await sleep(200);
      }
    };
    const s = await setup('lkm-bk', { failpoint });
    cleanups.push(() => release());
    const b = captureIO();
    const run = runBackupRun({ ...s.base, wait: true }, b);
    await until('the backup is inside its take', async () => reached);
    const h = await expectRefused(s, 'backup', {
      switchover: (io) => runSwitchover({ ...s.base, wait: true }, io),
      'rolling-restart': roll(s),
      failover: (io) => runFailover({ ...s.base, force: true, wait: true }, io),
    });
    expect(h.type).toBe('backup');
    release();
    expect((await run).exitCode, b.text()).toBe(0);
    expect((await runBackupList({ ...s.base }, captureIO())).backups).toEqual([expect.objectContaining({ state: 'good' })]);
  });
});
