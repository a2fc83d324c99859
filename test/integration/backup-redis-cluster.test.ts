/**
 * Redis Cluster backups of every shard (real Temporal, a real 3-shard Redis Cluster, sandbox/redis-cluster.ts):
 * one run takes each shard's RDB from a healthy replica of its primary, lists every shard with its slots in one
 * manifest, and verifies each shard by loading it into its own scratch server (DBSIZE and sampled key digests);
 * the shards' key counts add up to the keys written. A flipped byte in one shard fails verification naming
 * that shard; a restore of a Cluster backup is refused plainly, changing nothing.
 */
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBackupRestore, runBackupRun, runBackupVerify } from '../../client/commands/backup';
import { loadInventory } from '../../inventory/load';
import { startRedisClusterFleet, type RedisClusterFleet } from '../../sandbox/redis-cluster';
import { withBackupBlock } from '../../sandbox/backup';
import type { BackupManifest } from '../../core/backup/decide';
import { captureIO, startTestWorker, type TestWorker } from '../helpers';

describe('backup: Redis Cluster, every shard', () => {
  let fleet: RedisClusterFleet;
  let tw: TestWorker;
  let inventory: string;
  let dir: string;
  const cluster = 'bk-rcl';
  const KEYS = 3000;
  const opts = () => ({ address: tw.address, taskQueue: tw.taskQueue, inventory, json: true });

  beforeAll(async () => {
    fleet = await startRedisClusterFleet({ cluster });
    dir = mkdtempSync(path.join(os.tmpdir(), 'handover-backups-'));
    inventory = path.join(fleet.baseDir, 'inventory.yaml');
    writeFileSync(inventory, withBackupBlock(fleet.inventoryYaml(), dir, 3));
    const cc = fleet.clusterClient();
    for (let i = 0; i < KEYS; i += 500) await Promise.all(Array.from({ length: 500 }, (_, k) => cc.set(`key:${i + k}`, `value-${i + k}`)));
    await cc.hset('h:1', 'a', '1', 'b', '2');
    cc.disconnect();
    await fleet.waitHealthy();
    tw = await startTestWorker({ inventory: () => loadInventory(inventory) });
  });
  afterAll(async () => {
    await tw?.stop();
    await fleet?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('takes every shard from a replica into one manifest and verifies each in its own scratch server', async () => {
    const io = captureIO();
    const r = await runBackupRun({ ...opts(), cluster, wait: true }, io);
    expect(r.exitCode, io.text()).toBe(0);
    const rep = r.report!;
    const shards = rep.take.shards!;
    expect(shards).toHaveLength(3);
    expect(shards.reduce((a, s) => a + s.keys, 0)).toBe(KEYS + 1);
    for (const s of shards) expect(s.keys).toBeGreaterThan(0);
    const roles = await fleet.roles();
    for (const s of shards) expect(roles[s.node]).toBe('slave');
    const m = JSON.parse(readFileSync(path.join(dir, cluster, rep.id, 'manifest.json'), 'utf8')) as BackupManifest;
    expect(m.shards!.map((s) => s.slots).sort()).toEqual(['0-5460', '10923-16383', '5461-10922']);
    expect(rep.verification.ok).toBe(true);
    expect(rep.verification.checks.join('\n')).toMatch(/each of 3 shards restored into its own scratch server and matched/);

    // A flipped byte in one shard's artifact: verification fails naming that shard; a restore is refused plainly.
    const file = path.join(dir, cluster, rep.id, m.shards![1].artifact.file);
    const saved = readFileSync(file);
    const bad = Buffer.from(saved);
    bad[Math.floor(bad.length / 2)] ^= 0xff;
    writeFileSync(file, bad);
    try {
      const vio = captureIO();
      expect((await runBackupVerify({ ...opts(), cluster, id: rep.id }, vio)).exitCode).toBe(1);
      expect(vio.text()).toContain(`shard ${m.shards![1].slots}`);
    } finally {
      writeFileSync(file, saved);
    }
    const rio = captureIO();
    expect((await runBackupRestore({ ...opts(), cluster, id: rep.id, scratch: true }, rio)).exitCode).toBe(2);
    expect(rio.text()).toMatch(/3 Redis Cluster shards: restoring them .* is not built/);
  });
});
