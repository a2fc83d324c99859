/**
 * Redis Cluster backups of every shard (real Temporal, a real 3-shard Redis Cluster, sandbox/redis-cluster.ts):
 * one run takes each shard's RDB from a healthy replica of its primary, lists every shard with its slots in one
 * manifest, and verifies each shard by loading it into its own scratch server (DBSIZE and sampled key digests);
 * the shards' key counts add up to the keys written. A flipped byte in one shard fails verification naming
 * that shard. A restore --scratch brings up a scratch Redis Cluster of one node per shard, each owning exactly
 * its shard's slots, from which a cluster client reads back every key written; --to NODE is refused, changing
 * nothing. Both cases share one backup (taken once, by whichever case runs first).
 */
import { readFileSync, statSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import Redis, { Cluster } from 'ioredis';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatScratchCluster, runBackupRestore, runBackupRun, runBackupVerify } from '../../client/commands/backup';
import { loadInventory } from '../../inventory/load';
import { startRedisClusterFleet, type RedisClusterFleet } from '../../sandbox/redis-cluster';
import { stopByPidfile } from '../../sandbox/redis';
import { withBackupBlock } from '../../sandbox/backup';
import type { BackupManifest } from '../../core/backup/decide';
import type { RestoreBackupResult } from '../../activities/backup';
import { captureIO, startTestWorker, type TestWorker } from '../helpers';

describe('backup: Redis Cluster, every shard', () => {
  let fleet: RedisClusterFleet;
  let tw: TestWorker;
  let inventory: string;
  let dir: string;
  const cluster = 'bk-rcl';
  const KEYS = 3000;
  const opts = () => ({ address: tw.address, taskQueue: tw.taskQueue, inventory, json: true });
  // One backup for both cases, taken by whichever runs first (neither depends on the other having run).
  let taken: Promise<{ exitCode: number; out: string; report?: Awaited<ReturnType<typeof runBackupRun>>['report'] }> | undefined;
  const backup = () =>
    (taken ??= (async () => {
      const io = captureIO();
      const r = await runBackupRun({ ...opts(), cluster, wait: true }, io);
      return { exitCode: r.exitCode, out: io.text(), report: r.report };
    })());
  const manifestOf = (id: string) => JSON.parse(readFileSync(path.join(dir, cluster, id, 'manifest.json'), 'utf8')) as BackupManifest;

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
    const r = await backup();
    expect(r.exitCode, r.out).toBe(0);
    const rep = r.report!;
    const shards = rep.take.shards!;
    expect(shards).toHaveLength(3);
    expect(shards.reduce((a, s) => a + s.keys, 0)).toBe(KEYS + 1);
    for (const s of shards) expect(s.keys).toBeGreaterThan(0);
    const roles = await fleet.roles();
    for (const s of shards) expect(roles[s.node]).toBe('slave');
    const m = manifestOf(rep.id);
    expect(m.shards!.map((s) => s.slots).sort()).toEqual(['0-5460', '10923-16383', '5461-10922']);
    expect(rep.verification.ok).toBe(true);
    expect(rep.verification.checks.join('\n')).toMatch(/each of 3 shards restored into its own scratch server and matched/);

    // A flipped byte in one shard's artifact: verification fails naming that shard.
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
  });

  it('restores into a scratch Redis Cluster (every key back, each node its shard\'s slots); --to NODE is refused, nothing changed', async () => {
    const b = await backup();
    expect(b.exitCode, b.out).toBe(0);
    const id = b.report!.id;
    const m = manifestOf(id);

    // Into a node of the live cluster: refused before anything changes (the node keeps its keys and role).
    const node = fleet.nodes[0];
    const probeNode = async () => {
      const c = new Redis({ host: node.host, port: node.port, password: fleet.password, lazyConnect: true, maxRetriesPerRequest: 1 });
      try {
        await c.connect();
        return { keys: await c.dbsize(), role: /role:(\w+)/.exec(await c.info('replication'))![1] };
      } finally {
        c.disconnect();
      }
    };
    const before = await probeNode();
    const tio = captureIO();
    expect((await runBackupRestore({ ...opts(), cluster, id, to: node.id }, tio)).exitCode).toBe(2);
    expect(tio.text()).toMatch(/Redis Cluster backup of 3 shards; restoring a shard into a live cluster node .* is not supported: use --scratch/);
    expect(tio.text()).toContain('nothing was changed');
    expect(await probeNode()).toEqual(before);

    const rio = captureIO();
    const r = await runBackupRestore({ ...opts(), cluster, id, scratch: true }, rio);
    expect(r.exitCode, rio.text()).toBe(0);
    const rep = r.report as RestoreBackupResult;
    const sc = rep.scratchCluster!;
    const password = readFileSync(rep.passwordFile!, 'utf8').trim();
    const cc = new Cluster(
      sc.nodes.map((n) => ({ host: n.address.split(':')[0], port: Number(n.address.split(':')[1]) })),
      { redisOptions: { password, connectTimeout: 2000 }, slotsRefreshTimeout: 2000 },
    );
    cc.on('error', () => undefined);
    try {
      expect(formatScratchCluster(cluster, rep)).toMatch(/into a scratch Redis Cluster of 3 nodes on this worker \(not part of bk-rcl; left running\)/);
      expect(statSync(rep.passwordFile!).mode & 0o777).toBe(0o600);
      // Each scratch node owns exactly its shard's slots and holds its shard's keys, from its own CLUSTER NODES view.
      expect(sc.nodes).toHaveLength(m.shards!.length);
      for (const [i, n] of sc.nodes.entries()) {
        const s = m.shards![i];
        expect(n.slots).toBe(s.slots);
        expect(n.keys).toBe(s.content.redis.dbsize);
        const c = new Redis({ host: n.address.split(':')[0], port: Number(n.address.split(':')[1]), password, lazyConnect: true, maxRetriesPerRequest: 1 });
        try {
          await c.connect();
          expect(String(await c.call('CLUSTER', 'INFO'))).toContain('cluster_state:ok');
          const mine = String(await c.call('CLUSTER', 'NODES')).split('\n').find((l) => l.includes('myself'))!;
          expect(mine.split(' ').slice(8).join(' ')).toBe(s.slots);
          expect(await c.dbsize()).toBe(s.content.redis.dbsize);
        } finally {
          c.disconnect();
        }
      }
      // Every key written before the backup reads back with its value through a cluster client.
      let read = 0;
      for (let i = 0; i < KEYS; i += 500) {
        const got = await Promise.all(Array.from({ length: 500 }, (_, k) => cc.get(`key:${i + k}`)));
        for (const [k, v] of got.entries()) expect(v).toBe(`value-${i + k}`);
        read += got.length;
      }
      expect(await cc.hgetall('h:1')).toEqual({ a: '1', b: '2' });
      expect(read).toBe(KEYS);
      expect(read).toBeGreaterThan(0);
    } finally {
      cc.disconnect();
      await Promise.all(sc.nodes.map((n) => stopByPidfile(n.dir, 'SIGKILL')));
      rmSync(rep.dir!, { recursive: true, force: true });
    }
  });
});
