/**
 * MariaDB runbooks with each node in its own network namespace (sandbox/netns.ts: 10.77.12.0/24 on bridge
 * hnd-brm; accounts created for 10.77.12.%, the worker and Temporal in the root namespace) and real network
 * faults:
 *  - switchover under a transactional writer: no acknowledged commit lost;
 *  - (a) the primary cut off from the worker only (replicas still replicating): the monitor does not fail over;
 *  - (b) the primary's link cut (off from everyone), without and with semi-sync: failover; on heal the old primary
 *    is fenced (read-only); the commits a client on the isolated side had acknowledged are counted (with semi-sync
 *    none of them may be lost);
 *  - (c) a replica's link cut in the middle of a switchover: what the runbook does; nothing acked is lost;
 *  - one-way loss (nftables): the primary's packets to the worker dropped: no failover; the primary's packets to
 *    its replicas dropped: no failover, and after the heal every acknowledged commit is on every node;
 *  - rolling restart: the local controller starts each mariadbd again inside its own namespace (its launcher);
 *  - (c) a replica's link cut during a rolling restart: the roll stops safely, names it, nothing acked is lost;
 *  - backup take from a replica on another host, verify, restore into an empty node on a fourth host.
 * Needs root (ip netns); skipped otherwise. Leftover namespaces of a dead run (hnd-*) are removed first.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MARIADB_BACKUP_GRANTS } from '../../activities/backup/mysql';
import { mariaNode, templateDir, type MariaNodeProcess } from '../../activities/backup/scratch-mysql';
import { runBackupList, runBackupRestore, runBackupRun, runBackupVerify } from '../../client/commands/backup';
import { runMonitor } from '../../client/commands/monitor';
import { runRollingRestart } from '../../client/commands/rolling-restart';
import { withBackupBlock } from '../../sandbox/backup';
import { runSwitchover } from '../../client/commands/switchover';
import { loadInventory } from '../../inventory/load';
import { APP_SCHEMA, startMariaFleet, type MariaFleet } from '../../sandbox/mariadb';
import { createNetLab, namespaceOf, removeLeftovers, type NetHost, type NetLab } from '../../sandbox/netns';
import { runNsWriter } from '../../sandbox/ns-writer';
import { freePort, sleep } from '../../sandbox/ports';
import { SqlWriter } from '../../sandbox/sql-writer';
import type { MonitorStatus } from '../../workflows/monitor';
import { captureIO, startTestWorker, type TestWorker } from '../helpers';

const POLICY = { probeIntervalMs: 400, probesToConfirm: 5, failoverBlockMs: 600_000, catchUpTimeoutMs: 20_000, verifyTimeoutMs: 30_000 };

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

describe.skipIf(process.getuid?.() !== 0)('multi-host mariadb (network namespaces)', () => {
  let lab: NetLab;
  let hosts: NetHost[];
  let tw: TestWorker;
  let inventory = '';
  let fleet: MariaFleet | undefined;
  let onFailpoint: { name: string; run: () => Promise<void> } | undefined;
  const opts = (f: MariaFleet) => ({ cluster: f.cluster, inventory, address: tw.address, taskQueue: tw.taskQueue });
  const status = async (f: MariaFleet) => (await runMonitor({ ...opts(f), status: true, json: true }, captureIO())).status!;

  beforeAll(async () => {
    await removeLeftovers();
    lab = await createNetLab({ lab: 'm', subnet: '10.77.12' });
    // 0-2: the fleet; 3: an empty node to restore into.
    hosts = [];
    for (let i = 0; i < 4; i++) hosts.push(await lab.addHost());
    tw = await startTestWorker({
      inventory: () => loadInventory(inventory),
      failpoint: async (name) => {
        if (onFailpoint && name === onFailpoint.name) {
          const f = onFailpoint.run;
          onFailpoint = undefined;
          await f();
        }
      },
    });
  });
  afterEach(async () => {
    onFailpoint = undefined;
    for (const h of hosts ?? []) {
      await lab.heal(h);
      await lab.rejoinRoot(h);
      await lab.clearDrops(h);
    }
    if (fleet) await runMonitor({ ...opts(fleet), stop: true }, captureIO()).catch(() => undefined);
    await fleet?.stop();
    fleet = undefined;
  });
  afterAll(async () => {
    await tw?.stop();
    await lab?.remove();
    await removeLeftovers();
  });

  async function newFleet(cluster: string, extra: { controller?: boolean } = {}): Promise<MariaFleet> {
    fleet = await startMariaFleet({ cluster, hosts: hosts.slice(0, 3), userHost: lab.hostPattern });
    inventory = fleet.writeInventory(undefined, { policy: POLICY, ...extra });
    expect(fleet.nodes.map((n) => n.host)).toEqual(hosts.slice(0, 3).map((h) => h.address));
    return fleet;
  }
  const writable = async (f: MariaFleet) => {
    const st = await f.state();
    return Object.entries(st).filter(([, s]) => s.up && s.readOnly === false).map(([id]) => id);
  };

  it('switchover under a writer across hosts: no acknowledged commit lost', async () => {
    const f = await newFleet('mhm-sw');
    const writer = new SqlWriter(f.nodes, f.appUser, f.appPassword).start();
    await sleep(500);
    const io = captureIO();
    const r = await runSwitchover({ ...opts(f), wait: true, to: f.nodes[1].id }, io);
    expect(r.exitCode, io.text()).toBe(0);
    await sleep(300);
    const stats = await writer.stop();
    await writer.close();
    expect(await writable(f)).toEqual([f.nodes[1].id]);
    const missing = await writer.missingOn(f.nodes[1]);
    console.log(`[multihost-mysql] switchover: acked ${stats.acked}, missing ${missing.length}, writer max gap ${stats.maxGapMs} ms`);
    expect(stats.acked).toBeGreaterThan(20);
    expect(missing).toEqual([]);
  });

  it('(a) primary cut off from the worker only, replicas still replicating: the monitor does not fail over', { timeout: 120_000 }, async () => {
    const f = await newFleet('mhm-a');
    const [p] = f.nodes;
    expect((await runMonitor(opts(f), captureIO())).exitCode).toBe(0);
    await until('monitor sees the primary', async () => (await status(f)).lastKnown?.primary === p.id);
    await lab.isolateFromRoot(hosts[0]);
    const verdicts = new Set<string>();
    const end = Date.now() + 12_000; // > 5 probe rounds past probesToConfirm, and past slave-net-timeout (5 s)
    while (Date.now() < end) {
      const s = await status(f);
      if (s.lastVerdict) verdicts.add(s.lastVerdict);
      expect(s.failovers).toEqual([]);
      await sleep(500);
    }
    console.log(`[multihost-mysql] (a) verdicts while isolated from the worker: ${[...verdicts].join(' | ')}`);
    await lab.rejoinRoot(hosts[0]);
    await until('primary answers again', async () => (await writable(f)).join() === p.id);
    expect((await status(f)).failovers).toEqual([]);
    const st = await f.state();
    for (const n of f.nodes.slice(1)) expect(st[n.id]).toMatchObject({ source: `${p.host}:${p.port}`, io: 'Yes', sql: 'Yes' });
  });

  // (b), measured in the same run without and with the guard (MariaDB semi-synchronous replication).
  async function primaryCutOffFromEveryone(semiSync: boolean) {
    const label = semiSync ? 'semi-sync' : 'no semi-sync';
    const f = await newFleet(semiSync ? 'mhm-bs' : 'mhm-b');
    const [p] = f.nodes;
    if (semiSync) {
      // The guard: the primary acknowledges a commit only once a replica has it (no fallback to asynchronous
      // within the run: a timeout of 10 minutes).
      for (const r of f.nodes.slice(1)) {
        await f.sql(r.id, 'SET GLOBAL rpl_semi_sync_slave_enabled = ON');
        await f.sql(r.id, 'STOP SLAVE IO_THREAD');
        await f.sql(r.id, 'START SLAVE IO_THREAD');
      }
      await f.sql(p.id, 'SET GLOBAL rpl_semi_sync_master_timeout = 600000');
      await f.sql(p.id, 'SET GLOBAL rpl_semi_sync_master_enabled = ON');
      await until('both replicas acknowledge semi-synchronously', async () => {
        const [r] = await f.sql<{ Value: string }[]>(p.id, "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_clients'");
        return Number(r?.Value) === 2;
      });
    }
    expect((await runMonitor(opts(f), captureIO())).exitCode).toBe(0);
    await until('monitor sees the primary', async () => (await status(f)).lastKnown?.primary === p.id);
    const isolatedClient = runNsWriter({ wrap: hosts[0].wrap, engine: 'mysql', host: p.host, port: p.port, user: f.appUser, password: f.appPassword, prefix: 'iso', durationMs: 35_000, intervalMs: 5 });
    await sleep(1500);
    const cutAt = Date.now();
    await lab.cut(hosts[0]);
    const s = await until<MonitorStatus>('a failover', async () => {
      const x = await status(f);
      return x.failovers.length === 1 && x;
    }, 90_000);
    const fo = s.failovers[0];
    const failoverSeenAt = Date.now();
    await sleep(Math.max(0, cutAt + 15_000 - Date.now()));
    const healAt = Date.now();
    await lab.heal(hosts[0]);
    const fenced = await until<MonitorStatus>('old primary fenced (read-only)', async () => {
      const x = await status(f);
      return x.fenced.includes(p.id) && (await f.state())[p.id].readOnly === true && x;
    }, 60_000);
    const fencedAt = Date.now();
    const iso = await isolatedClient;
    expect(await writable(f)).toEqual([fo.to]);

    const c = await mysql.createConnection({ host: f.nodes.find((n) => n.id === fo.to)!.host, port: f.nodes.find((n) => n.id === fo.to)!.port, user: f.appUser, password: f.appPassword, database: APP_SCHEMA });
    const present = new Set<string>();
    for (let i = 0; i < iso.acks.length; i += 1000) {
      const [r] = await c.query('SELECT k FROM acks WHERE k IN (?)', [iso.acks.slice(i, i + 1000).map((a) => a.key)]);
      for (const x of r as { k: string }[]) present.add(x.k);
    }
    await c.end();
    const phase = (a: { at: number }) => (a.at < cutAt ? 'beforeCut' : a.at < healAt ? 'partition' : a.at < fencedAt ? 'healToFence' : 'afterFence');
    const count: Record<string, { acked: number; lost: number }> = {};
    for (const a of iso.acks) {
      const k = phase(a);
      count[k] ??= { acked: 0, lost: 0 };
      count[k].acked++;
      if (!present.has(a.key)) count[k].lost++;
    }
    const lost = iso.acks.filter((a) => !present.has(a.key));
    const lastAckOnOld = iso.acks.filter((a) => a.at >= cutAt).at(-1)?.at;
    console.log(
      `[multihost-mysql] (b) ${label}: failover ${fo.from} -> ${fo.to} detectMs=${fo.detectMs} seen ${failoverSeenAt - cutAt} ms after the cut; ` +
        `heal at +${healAt - cutAt} ms, fenced ${fencedAt - healAt} ms after heal (${fenced.flagged[p.id] ? `flagged errant ${fenced.flagged[p.id].join(',')}` : 'rejoined'}); ` +
        `isolated client acked ${iso.acks.length}, lost ${lost.length} (by phase ${JSON.stringify(count)}); last ack on the old primary ${lastAckOnOld ? lastAckOnOld - cutAt : '-'} ms after the cut; ` +
        `report: lostTransactions=${fo.lostTransactions} unobservedMs=${fo.unobservedMs} loss="${fo.loss}"; client errors ${JSON.stringify(iso.errors)}`,
    );
    expect(iso.acks.length).toBeGreaterThan(20);
    expect(count.afterFence?.acked ?? 0).toBe(0);
    // With the guard, no commit the isolated primary acknowledged is lost: each one had reached a replica, and the
    // failover promotes the replica that has the most.
    if (semiSync) expect(lost.map((a) => a.key)).toEqual([]);
    return { acked: iso.acks.length, lost: lost.length, count };
  }

  it('(b) primary link cut (off from everyone), no semi-sync: fails over, fences the old primary on heal, counts the isolated side acknowledged commits', { timeout: 180_000 }, async () => {
    await primaryCutOffFromEveryone(false);
  });

  it('(b) the same with semi-sync (the guard): the isolated primary acknowledges nothing that is then lost', { timeout: 180_000 }, async () => {
    await primaryCutOffFromEveryone(true);
  });

  it('(c) a replica cut off in the middle of a switchover: the runbook says what it did; nothing acked is lost', { timeout: 180_000 }, async () => {
    const f = await newFleet('mhm-c');
    const [p, cand, other] = f.nodes;
    const writer = new SqlWriter([p, cand], f.appUser, f.appPassword).start();
    await sleep(500);
    let cutAt = 0;
    onFailpoint = {
      name: 'ensureMysqlPrimary.stopped',
      run: async () => {
        cutAt = Date.now();
        await lab.cut(hosts[2]);
      },
    };
    const io = captureIO();
    const t0 = Date.now();
    const r = await runSwitchover({ ...opts(f), wait: true, to: cand.id }, io);
    const tookMs = Date.now() - t0;
    await sleep(300);
    const stats = await writer.stop();
    await writer.close();
    const w = await writable(f);
    expect(w).toHaveLength(1);
    const missing = await writer.missingOn(f.nodes.find((n) => n.id === w[0])!);
    console.log(`[multihost-mysql] (c) exit ${r.exitCode} after ${tookMs} ms (cut ${cutAt ? cutAt - t0 : '-'} ms in); writable ${w}; acked ${stats.acked}, missing ${missing.length}; output:\n${io.text()}`);
    expect(cutAt).toBeGreaterThan(0);
    expect(missing).toEqual([]);
    expect(w).toEqual([cand.id]);
    expect(io.text()).toContain(`NOT repointed (left as they were): ${other.id}`);
    await lab.heal(hosts[2]);
  });

  it('one-way loss: the primary\'s packets to the worker dropped (the worker\'s still arrive): the monitor does not fail over', { timeout: 120_000 }, async () => {
    const f = await newFleet('mhm-ow1');
    const [p] = f.nodes;
    expect((await runMonitor(opts(f), captureIO())).exitCode).toBe(0);
    await until('monitor sees the primary', async () => (await status(f)).lastKnown?.primary === p.id);
    await lab.dropOutput(hosts[0], [lab.gateway]);
    const verdicts = new Set<string>();
    const end = Date.now() + 12_000;
    while (Date.now() < end) {
      const s = await status(f);
      if (s.lastVerdict) verdicts.add(s.lastVerdict);
      expect(s.failovers).toEqual([]);
      await sleep(500);
    }
    console.log(`[multihost-mysql] one-way primary->worker: verdicts ${[...verdicts].join(' | ')}`);
    await lab.clearDrops(hosts[0]);
    await until('primary answers again', async () => (await writable(f)).join() === p.id);
    expect((await status(f)).failovers).toEqual([]);
  });

  it('one-way loss: the primary\'s packets to its replicas dropped (theirs still arrive): no failover; after the heal every acknowledged commit is on every node', { timeout: 120_000 }, async () => {
    const f = await newFleet('mhm-ow2');
    const [p, r1, r2] = f.nodes;
    expect((await runMonitor(opts(f), captureIO())).exitCode).toBe(0);
    await until('monitor sees the primary', async () => (await status(f)).lastKnown?.primary === p.id);
    const writer = new SqlWriter(f.nodes, f.appUser, f.appPassword).start();
    await sleep(1000);
    const cutAt = Date.now();
    await lab.dropOutput(hosts[0], [r1.host, r2.host]);
    const verdicts = new Set<string>();
    const end = Date.now() + 12_000; // past slave_net_timeout: the replicas' IO threads reconnect and cannot
    while (Date.now() < end) {
      const s = await status(f);
      if (s.lastVerdict) verdicts.add(s.lastVerdict);
      expect(s.failovers).toEqual([]);
      await sleep(500);
    }
    const st = await f.state();
    await lab.clearDrops(hosts[0]);
    await f.waitForReplication(0, 60_000);
    await sleep(300);
    const stats = await writer.stop();
    await writer.close();
    // The last commits before the writer stopped: every replica has them too before it is read.
    await f.waitForReplication(0, 30_000);
    const missing: Record<string, number> = {};
    for (const n of f.nodes) missing[n.id] = (await writer.missingOn(n)).length;
    console.log(`[multihost-mysql] one-way primary->replicas: ${Math.round((end - cutAt) / 1000)} s cut; IO threads at the end of it ${[r1, r2].map((n) => `${n.id}=${st[n.id].io}`).join(' ')}; verdicts ${[...verdicts].join(' | ')}; acked ${stats.acked}, missing per node ${JSON.stringify(missing)}`);
    expect(stats.acked).toBeGreaterThan(20);
    expect(Object.values(missing)).toEqual([0, 0, 0]);
    expect(await writable(f)).toEqual([p.id]);
    expect((await status(f)).failovers).toEqual([]);
  });

  it('rolling restart across hosts: the local controller starts each mariadbd again inside its own namespace; nothing acked is lost', { timeout: 240_000 }, async () => {
    const f = await newFleet('mhm-roll', { controller: true });
    const pidsBefore = f.nodes.map((n) => n.pid());
    const writer = new SqlWriter(f.nodes, f.appUser, f.appPassword).start();
    await sleep(500);
    const io = captureIO();
    const r = await runRollingRestart({ ...opts(f), set: ['max_connections=321'], wait: true }, io);
    expect(r.exitCode, io.text()).toBe(0);
    await sleep(300);
    const stats = await writer.stop();
    await writer.close();
    expect(r.report!.restarts).toHaveLength(3);
    const w = await writable(f);
    expect(w).toHaveLength(1);
    const missing = await writer.missingOn(f.nodes.find((n) => n.id === w[0])!);
    const where = await Promise.all(f.nodes.map((n) => namespaceOf(n.pid()!)));
    console.log(`[multihost-mysql] rolling restart: acked ${stats.acked}, missing ${missing.length}, writer max gap ${stats.maxGapMs} ms; writable ${w}; nodes run in ${where.join(', ')}`);
    expect(stats.acked).toBeGreaterThan(20);
    expect(missing).toEqual([]);
    f.nodes.forEach((n, i) => expect(n.pid()).not.toBe(pidsBefore[i]));
    expect(where).toEqual(hosts.slice(0, 3).map((h) => h.ns));
    for (const n of f.nodes) expect(await f.sql<{ v: number }[]>(n.id, 'SELECT @@max_connections AS v')).toEqual([{ v: 321 }]);
    expect(io.text()).toContain('netns-exec.sh');
  });

  it('(c) a replica cut off during a rolling restart: the roll stops safely naming it and the primary; nothing acked is lost', { timeout: 240_000 }, async () => {
    const f = await newFleet('mhm-rc', { controller: true });
    const [p, r1, r2] = f.nodes;
    const writer = new SqlWriter([p], f.appUser, f.appPassword).start();
    await sleep(500);
    // Replicas roll first, in name order: just before r1's restart, r2's host is cut off.
    let cutAt = 0;
    onFailpoint = {
      name: 'ensureMysqlNodeRestarted.beforeRestart',
      run: async () => {
        cutAt = Date.now();
        await lab.cut(hosts[2]);
      },
    };
    const io = captureIO();
    const t0 = Date.now();
    const r = await runRollingRestart({ ...opts(f), set: ['max_connections=322'], wait: true }, io);
    const tookMs = Date.now() - t0;
    await sleep(300);
    const stats = await writer.stop();
    await writer.close();
    const missing = await writer.missingOn(p);
    console.log(`[multihost-mysql] (c) roll: exit ${r.exitCode} after ${tookMs} ms (cut ${cutAt ? cutAt - t0 : '-'} ms in); acked ${stats.acked}, missing ${missing.length}; ${io.text().split('\n').filter((l) => /failed/.test(l)).join(' | ')}`);
    expect(cutAt).toBeGreaterThan(0);
    expect(r.exitCode, io.text()).toBe(1);
    expect(io.text()).toMatch(new RegExp(`failed \\(HandoverIncomplete\\): stopped safely: ${r2.id} unreachable; .*the primary is ${p.id}`));
    expect(await writable(f)).toEqual([p.id]);
    expect(await f.sql<{ v: number }[]>(r1.id, 'SELECT @@max_connections AS v')).toEqual([{ v: 322 }]);
    expect(stats.acked).toBeGreaterThan(20);
    expect(missing).toEqual([]);
  });

  it('backup across hosts: taken from a replica on another host, verified, restored into an empty node on a fourth host', { timeout: 240_000 }, async () => {
    const f = await newFleet('mhm-bk');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'handover-mhm-bk-'));
    let empty: MariaNodeProcess | undefined;
    try {
      inventory = path.join(f.baseDir, 'inventory-bk.yaml');
      writeFileSync(inventory, withBackupBlock(f.inventoryYaml({ policy: POLICY }), dir, 3));
      // A user schema to back up (the writer's handover_app is the sandbox's own, not backed up).
      await f.sql(0, `GRANT ${MARIADB_BACKUP_GRANTS.join(', ')} ON *.* TO 'handover'@'${lab.hostPattern}'`);
      await f.sql(0, 'CREATE DATABASE shop');
      await f.sql(0, 'CREATE TABLE shop.items (k VARCHAR(64) PRIMARY KEY, v BIGINT NOT NULL) ENGINE=InnoDB');
      const values = Array.from({ length: 2000 }, (_, i) => `('bk${i}', ${i})`);
      await f.sql(0, `INSERT INTO shop.items (k, v) VALUES ${values.join(',')}`);
      await f.waitForReplication(0);
      const io = captureIO();
      const r = await runBackupRun({ ...opts(f), wait: true }, io);
      expect(r.exitCode, io.text()).toBe(0);
      const rep = r.report!;
      expect(rep.node).not.toBe(f.nodes[0].id);
      expect(rep.verification.ok).toBe(true);
      const list = await runBackupList({ cluster: f.cluster, inventory, json: true }, captureIO());
      expect(list.backups).toEqual([expect.objectContaining({ id: rep.id, state: 'good' })]);
      const vio = captureIO();
      expect((await runBackupVerify({ ...opts(f), id: rep.id }, vio)).exitCode, vio.text()).toBe(0);

      // An empty mariadbd on host 3 with the automation account (rights to create what the dump creates).
      const edir = path.join(f.baseDir, 'empty');
      mkdirSync(edir, { recursive: true });
      cpSync(await templateDir(), path.join(edir, 'data'), { recursive: true });
      empty = mariaNode({ id: `${f.cluster}-empty`, port: await freePort(), serverId: 99, dir: edir, host: hosts[3].address, wrap: hosts[3].wrap });
      await empty.start();
      const root = await empty.root();
      await root.query(`CREATE USER 'handover'@'${lab.hostPattern}' IDENTIFIED BY '${f.handoverPassword}'`);
      await root.query(`GRANT ALL PRIVILEGES ON *.* TO 'handover'@'${lab.hostPattern}'`);
      await root.query('SET GLOBAL read_only = OFF');
      await root.end();
      writeFileSync(inventory, readFileSync(inventory, 'utf8') + `      - id: ${f.cluster}-empty\n        host: ${hosts[3].address}\n        port: ${empty.port}\n`);
      const rio = captureIO();
      const ok = await runBackupRestore({ ...opts(f), id: rep.id, to: `${f.cluster}-empty` }, rio);
      expect(ok.exitCode, rio.text()).toBe(0);
      const conn = await empty.root();
      try {
        const [rows] = await conn.query('SELECT COUNT(*) AS n, SUM(v) AS s FROM shop.items');
        const [want] = await f.sql<{ n: number; s: string }[]>(0, 'SELECT COUNT(*) AS n, SUM(v) AS s FROM shop.items');
        console.log(`[multihost-mysql] backup ${rep.id} from ${rep.node} (${rep.take.size} bytes); restored into ${f.cluster}-empty at ${hosts[3].address} (${await namespaceOf(empty.pid()!)}): ${JSON.stringify(rows)}`);
        expect(rows).toEqual([want]);
        expect(Number(want.n)).toBe(2000);
      } finally {
        await conn.end();
      }
    } finally {
      await empty?.stop('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
