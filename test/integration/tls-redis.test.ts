/**
 * TLS to Redis (issue #14 item 2), against real redis-server processes with tls-port only (port 0),
 * tls-replication yes and tls-auth-clients yes: a switchover under a TLS writer loses no acknowledged write and
 * the replicas it repoints link over TLS; a backup streams over TLS (redis-cli --tls) and verifies; a wrong CA,
 * a plaintext-only inventory and a node with tls-replication no are refused before anything changes, naming
 * the node; the monitor fails over a killed primary over TLS and fences it (REPLICAOF to a TLS port) when it
 * returns.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBackupRun } from '../../client/commands/backup';
import { runMonitor } from '../../client/commands/monitor';
import { runSwitchover } from '../../client/commands/switchover';
import { loadInventory } from '../../inventory/load';
import { withBackupBlock } from '../../sandbox/backup';
import { startRedisFleet, waitForReplication, type RedisFleet } from '../../sandbox/redis';
import { AckedWriter } from '../../sandbox/writer';
import { captureIO, commandCalls, moreAcks, startTestWorker, until, type TestWorker } from '../helpers';

const MUTATING = ['replicaof', 'client|pause', 'failover', 'config|set'];

describe('TLS to Redis (tls-port only)', () => {
  let fleet: RedisFleet;
  let tw: TestWorker;
  let inventory: string;
  let backups: string;
  const cluster = 'tls-redis';
  const opts = () => ({ cluster, wait: true, inventory, address: tw.address, taskQueue: tw.taskQueue });

  beforeAll(async () => {
    fleet = await startRedisFleet({ cluster, tls: true });
    backups = mkdtempSync(path.join(os.tmpdir(), 'handover-tls-backups-'));
    inventory = path.join(fleet.baseDir, 'inventory.yaml');
    writeFileSync(inventory, withBackupBlock(fleet.inventoryYaml(), backups, 2));
    tw = await startTestWorker({ inventory: () => loadInventory(inventory) });
  });
  afterAll(async () => {
    await tw?.stop();
    await fleet?.stop();
    if (backups) rmSync(backups, { recursive: true, force: true });
  });

  /** Run a switchover with `yaml` as the inventory (CLI and worker), then put the good inventory back. */
  async function switchoverWith(yaml: string) {
    const good = withBackupBlock(fleet.inventoryYaml(), backups, 2);
    writeFileSync(inventory, yaml);
    try {
      const io = captureIO();
      const r = await runSwitchover(opts(), io);
      return { ...r, text: io.text() };
    } finally {
      writeFileSync(inventory, good);
    }
  }

  it('switches over twice under a TLS writer, losing no acknowledged write; replication stays on TLS', async () => {
    const writer = new AckedWriter(fleet.nodes, fleet.password).start();
    await moreAcks(writer, 50);
    // The switchover refuses an empty or lagging target (its own rule): the replicas first catch up over TLS.
    await waitForReplication(fleet, fleet.nodes[0].id);
    const io1 = captureIO();
    const first = await runSwitchover(opts(), io1);
    expect(first.exitCode, io1.text()).toBe(0);
    const r1 = first.report!;
    expect(r1.oldPrimary).toBe(fleet.nodes[0].id);
    await moreAcks(writer, 50); // acknowledged by the new primary before switching back
    const io2 = captureIO();
    const second = await runSwitchover({ ...opts(), to: r1.oldPrimary }, io2);
    expect(second.exitCode, io2.text()).toBe(0);
    await moreAcks(writer, 50);
    const stats = await writer.stop();
    await writer.close();
    expect(stats.acked).toBeGreaterThan(300);
    expect(writer.primariesSeen).toEqual([fleet.nodes[0].id, r1.newPrimary, fleet.nodes[0].id]);
    // With port 0 there is no plaintext port: a replica linked to the primary replicates over TLS.
    await waitForReplication(fleet, fleet.nodes[0].id);
    for (const n of fleet.nodes) {
      // A replica may still be applying the last writes: every one there within 5 s, else the missing ones named.
      let missing: string[] = [];
      await until(`${n.id} has every acknowledged write`, async () => (missing = await writer.missingOn(n.host, n.port)).length === 0, 5000, 50).catch(() => undefined);
      expect(missing, `${n.id} missing acknowledged writes`).toEqual([]);
    }
    console.log(`[redis tls] acked=${stats.acked} errors=${stats.errors} maxGapMs=${stats.maxGapMs}`);
  });

  it('backs up over TLS (redis-cli --tls with the client certificate) and verifies the backup', async () => {
    const io = captureIO();
    const r = await runBackupRun({ address: tw.address, taskQueue: tw.taskQueue, inventory, json: true, cluster, wait: true }, io);
    expect(r.exitCode, io.text()).toBe(0);
    expect(r.report!.verification.ok).toBe(true);
  });

  it('refuses a wrong CA before anything changes, naming the node', async () => {
    const before = await commandCalls(fleet, MUTATING);
    const r = await switchoverWith(withBackupBlock(fleet.inventoryYaml({ tls: { ca: fleet.tls!.otherCa, cert: fleet.tls!.clientCert, key: fleet.tls!.clientKey } }), backups, 2));
    expect(r.exitCode, r.text).toBe(2);
    expect(r.text).toMatch(/TLS to tls-redis-\d .*certificate/);
    expect(await commandCalls(fleet, MUTATING)).toEqual(before);
  });

  it('refuses a plaintext-only inventory before anything changes, naming the node', async () => {
    const before = await commandCalls(fleet, MUTATING);
    const r = await switchoverWith(withBackupBlock(fleet.inventoryYaml({ tls: false }), backups, 2));
    expect(r.exitCode, r.text).toBe(2);
    expect(r.text).toMatch(/tls-redis-\d .*speaks TLS only/);
    expect(await commandCalls(fleet, MUTATING)).toEqual(before);
  });

  it('refuses when a node of the TLS cluster has tls-replication no, naming it', async () => {
    const replica = fleet.nodes[2];
    const c = replica.client();
    await c.call('CONFIG', 'SET', 'tls-replication', 'no');
    try {
      const before = await commandCalls(fleet, MUTATING);
      const io = captureIO();
      const r = await runSwitchover(opts(), io);
      expect(r.exitCode, io.text()).toBe(2);
      expect(io.text()).toContain(`${replica.id} has tls-replication no`);
      expect(await commandCalls(fleet, MUTATING)).toEqual(before);
    } finally {
      await c.call('CONFIG', 'SET', 'tls-replication', 'yes');
      c.disconnect();
    }
  });

  it('fails over a killed primary (monitor over TLS) and fences it when it returns', { timeout: 120_000 }, async () => {
    writeFileSync(inventory, withBackupBlock(fleet.inventoryYaml({ policy: { probeIntervalMs: 300, probesToConfirm: 3 } }), backups, 2));
    const mon = { cluster, inventory, address: tw.address, taskQueue: tw.taskQueue };
    const status = async () => (await runMonitor({ ...mon, status: true, json: true }, captureIO())).status!;
    try {
      expect((await runMonitor(mon, captureIO())).exitCode).toBe(0);
      const primary = await until('monitor sees the primary', async () => (await status()).lastKnown?.primary);
      const old = fleet.nodes.find((n) => n.id === primary)!;
      await old.stop('SIGKILL');
      const s = await until('a failover', async () => {
        const x = await status();
        return x.failovers.length === 1 && x;
      });
      const newPrimary = s.failovers[0].to;
      expect(newPrimary).not.toBe(primary);
      await old.start();
      await until('old primary fenced over TLS', async () => (await fleet.roles())[old.id] === 'slave', 20_000);
      await waitForReplication(fleet, newPrimary);
      expect(Object.values(await fleet.roles()).filter((r) => r === 'master')).toHaveLength(1);
    } finally {
      await runMonitor({ ...mon, stop: true }, captureIO()).catch(() => undefined);
      writeFileSync(inventory, withBackupBlock(fleet.inventoryYaml(), backups, 2));
    }
  });
});
