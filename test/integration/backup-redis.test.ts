/**
 * Redis backups end to end (real Temporal, real redis-server): a populated fleet backed up from a replica over
 * the network, restored into a fresh server with every key equal; a flipped byte fails verification; retention
 * keeps exactly N; a restore into a node that holds data is refused before anything is written; a restore into
 * an empty node brings every key.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Redis from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisKeyDigest } from '../../activities/backup/redis';
import { runBackupList, runBackupRestore, runBackupRun, runBackupVerify } from '../../client/commands/backup';
import { loadInventory } from '../../inventory/load';
import { startStandaloneRedis, stopByPidfile, startRedisFleet, type RedisFleet } from '../../sandbox/redis';
import { withBackupBlock } from '../../sandbox/backup';
import { captureIO, startTestWorker, type TestWorker } from '../helpers';
import { createActivities } from '../../activities';
import { AckedWriter } from '../../sandbox/writer';

/** Every key of a server with its digest. */
async function contents(c: Redis): Promise<Map<string, string | null>> {
  const out = new Map<string, string | null>();
  let cursor = '0';
  do {
    const [next, keys] = await c.scan(cursor, 'COUNT', 1000);
    for (const k of keys) out.set(k, await redisKeyDigest(c, k));
    cursor = next;
  } while (cursor !== '0');
  return out;
}

describe('backup: Redis', () => {
  let fleet: RedisFleet;
  let tw: TestWorker;
  let inventory: string;
  let dir: string;
  const cluster = 'bk-redis';
  const opts = () => ({ address: tw.address, taskQueue: tw.taskQueue, inventory, json: true });

  beforeAll(async () => {
    fleet = await startRedisFleet({ cluster });
    dir = mkdtempSync(path.join(os.tmpdir(), 'handover-backups-'));
    inventory = path.join(fleet.baseDir, 'inventory.yaml');
    writeFileSync(inventory, withBackupBlock(fleet.inventoryYaml(), dir, 2));
    const p = fleet.nodes[0].client();
    const pipe = p.pipeline();
    for (let i = 0; i < 5000; i++) pipe.set(`str:${i}`, `value-${i}-${'x'.repeat(i % 50)}`);
    for (let i = 0; i < 200; i++) pipe.hset(`hash:${i}`, 'a', String(i), 'b', `b${i}`);
    for (let i = 0; i < 100; i++) pipe.rpush(`list:${i}`, 'x', 'y', String(i));
    for (let i = 0; i < 100; i++) pipe.sadd(`set:${i}`, 'm', 'n', String(i));
    for (let i = 0; i < 100; i++) pipe.zadd(`zset:${i}`, i, 'a', i + 1, 'b');
    pipe.set('bin', Buffer.from([0, 1, 2, 255, 254]));
    await pipe.exec();
    await p.call('WAIT', '2', '5000');
    p.disconnect();
    tw = await startTestWorker({ inventory: () => loadInventory(inventory) });
  });
  afterAll(async () => {
    await tw?.stop();
    await fleet?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  let first = '';

  it('backs up from a replica, verifies, lists it good; a fresh server restored from it holds every key', async () => {
    const io = captureIO();
    const r = await runBackupRun({ ...opts(), cluster, wait: true }, io);
    expect(r.exitCode, io.text()).toBe(0);
    const rep = r.report!;
    first = rep.id;
    expect(rep.node).not.toBe(`${cluster}-1`); // a replica, not the primary
    expect(rep.fromPrimary).toBe(false);
    expect(rep.take.position.offset).toBeGreaterThan(0);
    expect(rep.verification.ok).toBe(true);
    expect(rep.steps.map((s) => s.step)).toEqual(['probe', 'choose source', 'take', 'verify', 'mark good', 'prune']);
    const manifest = JSON.parse(readFileSync(path.join(dir, cluster, rep.id, 'manifest.json'), 'utf8'));
    expect(manifest).toMatchObject({ cluster, engine: 'redis', node: rep.node, tool: { name: 'redis-cli', exitStatus: 0 }, content: { redis: { dbsize: 5501 } } });
    expect(Object.keys(manifest.content.redis.sample)).toHaveLength(64);
    expect(JSON.stringify(manifest.tool.args)).not.toContain(fleet.password);

    const list = await runBackupList({ ...opts(), cluster }, captureIO());
    expect(list.backups).toEqual([expect.objectContaining({ id: rep.id, state: 'good' })]);

    const rio = captureIO();
    const restored = await runBackupRestore({ ...opts(), cluster, id: rep.id, scratch: true }, rio);
    expect(restored.exitCode, rio.text()).toBe(0);
    const res = (restored as { report?: { address?: string; dir?: string; passwordFile?: string } }).report!;
    const [host, port] = res.address!.split(':');
    const scratch = new Redis({ host, port: Number(port), password: readFileSync(res.passwordFile!, 'utf8').trim(), lazyConnect: true });
    const primary = fleet.nodes[0].client();
    try {
      await scratch.connect();
      const [want, got] = await Promise.all([contents(primary), contents(scratch)]);
      expect(got.size).toBe(5501);
      expect(got).toEqual(want);
    } finally {
      scratch.disconnect();
      primary.disconnect();
      await stopByPidfile(res.dir!, 'SIGKILL');
      rmSync(res.dir!, { recursive: true, force: true });
    }
  });

  it('backup list checks each artifact cheaply: a truncated one is listed changed, a removed one missing (good before)', async () => {
    const file = path.join(dir, cluster, first, 'dump.rdb.gz');
    const saved = readFileSync(file);
    try {
      const good = await runBackupList({ ...opts(), cluster }, captureIO());
      expect(good.backups).toEqual([expect.objectContaining({ id: first, state: 'good', size: saved.length })]);
      writeFileSync(file, saved.subarray(0, 100));
      const io = captureIO();
      const cut = await runBackupList({ ...opts(), cluster, json: false }, io);
      expect(cut.backups).toEqual([expect.objectContaining({ id: first, state: 'changed', recordedState: 'good', size: 100 })]);
      expect(io.text()).toMatch(new RegExp(`changed +${first} .*artifact dump\\.rdb\\.gz is 100 B, the manifest says ${saved.length} B`));
      rmSync(file);
      const gone = await runBackupList({ ...opts(), cluster, json: true }, captureIO());
      expect(gone.backups).toEqual([expect.objectContaining({ id: first, state: 'missing', recordedState: 'good', artifact: expect.objectContaining({ check: 'missing', size: null, expectedSize: saved.length }) })]);
    } finally {
      writeFileSync(file, saved);
    }
    expect((await runBackupList({ ...opts(), cluster }, captureIO())).backups).toEqual([expect.objectContaining({ id: first, state: 'good' })]);
  });

  it('one flipped byte in the artifact fails verification (sha256 first) and the backup is listed failed', async () => {
    const file = path.join(dir, cluster, first, 'dump.rdb.gz');
    const bytes = readFileSync(file);
    const saved = Buffer.from(bytes);
    bytes[Math.floor(bytes.length / 2)] ^= 0x01;
    writeFileSync(file, bytes);
    const io = captureIO();
    const v = await runBackupVerify({ ...opts(), cluster, id: first }, io);
    expect(v.exitCode).toBe(1);
    expect(io.text()).toMatch(/VerificationFailed.*sha256/);
    const list = await runBackupList({ ...opts(), cluster }, captureIO());
    expect(list.backups).toEqual([expect.objectContaining({ id: first, state: 'failed' })]);
    // Restoring a corrupted artifact is refused too.
    const rio = captureIO();
    expect((await runBackupRestore({ ...opts(), cluster, id: first, scratch: true }, rio)).exitCode).toBe(1);
    expect(rio.text()).toMatch(/sha256/);
    writeFileSync(file, saved);
    expect((await runBackupVerify({ ...opts(), cluster, id: first }, captureIO())).exitCode).toBe(0);
  });

  it('retention keeps exactly N (2) good backups, deleting the older ones only after a newer one verified', async () => {
    const ids: string[] = [first];
    for (let i = 0; i < 3; i++) {
      const io = captureIO();
      const r = await runBackupRun({ ...opts(), cluster, wait: true }, io);
      expect(r.exitCode, io.text()).toBe(0);
      ids.push(r.report!.id);
    }
    const list = await runBackupList({ ...opts(), cluster }, captureIO());
    expect(list.backups!.map((b) => `${b.id}:${b.state}`)).toEqual([`${ids[3]}:good`, `${ids[2]}:good`]);
    expect(readdirSync(path.join(dir, cluster)).sort()).toEqual([ids[2], ids[3]].sort());
  });

  it('activities run twice: the second take, verify and prune change nothing', async () => {
    const a = createActivities({ inventory: () => loadInventory(inventory) });
    const list = await runBackupList({ ...opts(), cluster }, captureIO());
    const id = list.backups![0].id;
    const files = () => readdirSync(path.join(dir, cluster, id)).map((f) => `${f}:${readFileSync(path.join(dir, cluster, id, f)).length}`).sort();
    const before = files();
    const take = await a.takeBackup({ cluster, id, node: `${cluster}-2`, role: 'replica', fromPrimary: false });
    expect(take).toMatchObject({ id, alreadyTaken: true });
    expect(files()).toEqual(before);
    const v1 = await a.verifyBackup({ cluster, id, record: false });
    const v2 = await a.verifyBackup({ cluster, id, record: false });
    expect([v1.ok, v2.ok, v1.checks.length]).toEqual([true, true, 2]);
    const p1 = await a.pruneBackups({ cluster, keep: 2 });
    const p2 = await a.pruneBackups({ cluster, keep: 2 });
    expect(p2.delete).toEqual([]);
    expect(p2.keep.sort()).toEqual(p1.keep.sort());
    expect(readdirSync(path.join(dir, cluster))).toHaveLength(2);
  });

  it('restore into a node that holds data is refused before anything is written; into an empty node it brings every key', async () => {
    const list = await runBackupList({ ...opts(), cluster }, captureIO());
    const id = list.backups![0].id;
    const replica = fleet.nodes[2];
    const before = await contents(replica.client());
    const io = captureIO();
    const refused = await runBackupRestore({ ...opts(), cluster, id, to: replica.id }, io);
    expect(refused.exitCode).toBe(2);
    expect(io.text()).toMatch(/TargetNotEmpty.*holds 5501 keys/);
    const after = replica.client();
    expect(await contents(after)).toEqual(before);
    expect(await after.call('ROLE').then((r) => (r as string[])[0])).toBe('slave');
    after.disconnect();

    // An empty standalone node, added to the inventory under the cluster's password.
    const fresh = await startStandaloneRedis({ id: `${cluster}-fresh`, dir: path.join(fleet.baseDir, 'fresh'), password: fleet.password });
    const port = fresh.port;
    try {
      const yaml = readFileSync(inventory, 'utf8') + `      - id: ${cluster}-fresh\n        host: 127.0.0.1\n        port: ${port}\n`;
      writeFileSync(inventory, yaml);
      const rio = captureIO();
      const ok = await runBackupRestore({ ...opts(), cluster, id, to: `${cluster}-fresh` }, rio);
      expect(ok.exitCode, rio.text()).toBe(0);
      const fc = fresh.client();
      const got = await contents(fc);
      expect(got.size).toBe(5501);
      expect(got).toEqual(before);
      expect(await fc.call('ROLE').then((r) => (r as string[])[0])).toBe('master');
      fc.disconnect();
    } finally {
      await fresh.stop('SIGKILL');
    }
  });
  it('under continuous writes: a backup taken meanwhile verifies (DBSIZE from the RDB header, sample keys that did not change)', async () => {
    const writer = new AckedWriter(fleet.nodes, fleet.password).start();
    try {
      await new Promise((r) => setTimeout(r, 300));
      const io = captureIO();
      const r = await runBackupRun({ ...opts(), cluster, wait: true }, io);
      expect(r.exitCode, io.text()).toBe(0);
      expect(r.report!.verification.ok).toBe(true);
      const m = JSON.parse(readFileSync(path.join(dir, cluster, r.report!.id, 'manifest.json'), 'utf8'));
      expect(m.content.redis.dbsize).toBeGreaterThan(5501);
    } finally {
      await writer.stop();
    }
  });
});
