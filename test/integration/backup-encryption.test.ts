/**
 * Encryption at rest for the logical artifacts (the physical ones: backup-mysql-physical.test.ts): a Redis RDB
 * and a MariaDB dump taken with backup.encryption, stored as frames no plaintext shows through, verified and
 * restored through on-the-fly decryption; a changed byte (sha256 updated to match) fails on the frame's
 * authentication; after a rotation the old backup still verifies and the new one uses the new key; without
 * the old key it no longer decrypts; no key in any history or CLI output.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MARIADB_BACKUP_GRANTS } from '../../activities/backup/mysql';
import { runBackupRestore, runBackupRun, runBackupVerify } from '../../client/commands/backup';
import { loadInventory } from '../../inventory/load';
import { withBackupBlock } from '../../sandbox/backup';
import { startMariaFleet, type MariaFleet } from '../../sandbox/mariadb';
import { startRedisFleet, stopByPidfile, type RedisFleet } from '../../sandbox/redis';
import { captureIO, startTestWorker, type TestWorker } from '../helpers';

const K1 = randomBytes(32).toString('hex');
const K2 = randomBytes(32).toString('hex');
const keys = (ids: string[]) => `{ keys: [ ${ids.map((id) => `{ id: ${id}, key: { env: HANDOVER_TEST_ENC_${id.toUpperCase()} } }`).join(', ')} ] }`;

describe('backup encryption at rest: Redis and MariaDB logical', () => {
  let redis: RedisFleet;
  let maria: MariaFleet;
  let tw: TestWorker;
  let dir: string;
  let invRedis: string;
  let invMaria: string;
  let both: string;
  const out: string[] = [];
  const opts = () => ({ address: tw.address, taskQueue: tw.taskQueue, inventory: both, json: true });
  const write = (ids: string[]) => {
    writeFileSync(invRedis, withBackupBlock(redis.inventoryYaml(), dir, 5, 'zstd', { encryption: keys(ids) }));
    writeFileSync(invMaria, withBackupBlock(maria.inventoryYaml(), dir, 5, 'gzip', { method: 'logical', encryption: keys(ids) }));
    // One inventory with both clusters.
    writeFileSync(both, readFileSync(invRedis, 'utf8') + readFileSync(invMaria, 'utf8').replace(/^clusters:\n/, ''));
  };

  beforeAll(async () => {
    process.env.HANDOVER_TEST_ENC_K1 = K1;
    process.env.HANDOVER_TEST_ENC_K2 = K2;
    redis = await startRedisFleet({ cluster: 'enc-redis', replicas: 1 });
    maria = await startMariaFleet({ cluster: 'enc-maria', replicas: 1 });
    dir = mkdtempSync(path.join(os.tmpdir(), 'handover-backups-enc-'));
    invRedis = path.join(dir, 'r.yaml');
    invMaria = path.join(dir, 'm.yaml');
    both = path.join(dir, 'inventory.yaml');
    write(['k1']);
    const p = redis.nodes[0].client();
    const pipe = p.pipeline();
    for (let i = 0; i < 2000; i++) pipe.set(`secret-key-${i}`, `plaintext-value-${i}`);
    await pipe.exec();
    await p.call('WAIT', '1', '5000');
    p.disconnect();
    await maria.sql(0, `GRANT ${MARIADB_BACKUP_GRANTS.join(', ')} ON *.* TO 'handover'@'127.0.0.1'`);
    await maria.sql(0, 'CREATE DATABASE shop');
    await maria.sql(0, 'CREATE TABLE shop.items (id INT PRIMARY KEY, note VARCHAR(64)) ENGINE=InnoDB');
    await maria.sql(0, `INSERT INTO shop.items VALUES ${Array.from({ length: 2000 }, (_, i) => `(${i}, 'plaintext-note-${i}')`).join(',')}`);
    await maria.waitForReplication(0);
    tw = await startTestWorker({ inventory: () => loadInventory(both) });
  });
  afterAll(async () => {
    await tw?.stop();
    await redis?.stop();
    await maria?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const ids: Record<string, string> = {};

  for (const cluster of ['enc-redis', 'enc-maria']) {
    it(`${cluster}: taken encrypted (no plaintext stored), verified and restored through decryption; a changed byte fails authentication`, async () => {
      const io = captureIO();
      const r = await runBackupRun({ ...opts(), cluster, wait: true }, io);
      out.push(io.text());
      expect(r.exitCode, io.text()).toBe(0);
      const id = r.report!.id;
      ids[cluster] = id;
      const mfile = path.join(dir, cluster, id, 'manifest.json');
      const m = JSON.parse(readFileSync(mfile, 'utf8'));
      expect(m.artifact.encryption).toEqual({ alg: 'aes-256-gcm-framed', keyId: 'k1', frameBytes: 1048576 });
      const file = path.join(dir, cluster, id, m.artifact.file);
      const stored = readFileSync(file);
      expect(stored.subarray(0, 8).toString('latin1')).toBe('HNDENC01');
      expect(stored.includes(Buffer.from('plaintext'))).toBe(false);
      expect(r.report!.verification.ok).toBe(true);

      const rio = captureIO();
      const restored = await runBackupRestore({ ...opts(), cluster, id, scratch: true }, rio);
      out.push(rio.text());
      expect(restored.exitCode, rio.text()).toBe(0);
      const rep = (restored as { report?: { keys?: number; tables?: number; dir?: string } }).report!;
      if (cluster === 'enc-redis') expect(rep.keys).toBe(2000);
      else expect(rep.tables).toBe(2); // shop.items and the writer's acks table
      if (cluster === 'enc-redis') await stopByPidfile(rep.dir!, 'SIGKILL');
      else process.kill(Number(readFileSync(path.join(rep.dir!, 'mysqld.pid'), 'utf8')), 'SIGKILL');
      rmSync(rep.dir!, { recursive: true, force: true });

      const flipped = Buffer.from(stored);
      flipped[flipped.length - 30] ^= 0x04;
      writeFileSync(file, flipped);
      writeFileSync(mfile, JSON.stringify({ ...m, artifact: { ...m.artifact, sha256: createHash('sha256').update(flipped).digest('hex') } }));
      const vio = captureIO();
      expect((await runBackupVerify({ ...opts(), cluster, id }, vio)).exitCode).toBe(1);
      expect(vio.text()).toMatch(/VerificationFailed.*fails authentication/);
      writeFileSync(file, stored);
      writeFileSync(mfile, JSON.stringify(m));
      const again = captureIO();
      expect((await runBackupVerify({ ...opts(), cluster, id }, again)).exitCode, again.text()).toBe(0); // listed good again
    });
  }

  it('rotation: with k2 appended new backups use k2 and the k1 ones still verify; with k1 removed they no longer decrypt', async () => {
    write(['k1', 'k2']);
    for (const cluster of ['enc-redis', 'enc-maria']) {
      const io = captureIO();
      const r = await runBackupRun({ ...opts(), cluster, wait: true }, io);
      out.push(io.text());
      expect(r.exitCode, io.text()).toBe(0);
      expect(JSON.parse(readFileSync(path.join(dir, cluster, r.report!.id, 'manifest.json'), 'utf8')).artifact.encryption.keyId).toBe('k2');
      const v = captureIO();
      expect((await runBackupVerify({ ...opts(), cluster, id: ids[cluster] }, v)).exitCode, v.text()).toBe(0);
    }
    write(['k2']);
    const v = captureIO();
    expect((await runBackupVerify({ ...opts(), cluster: 'enc-maria', id: ids['enc-maria'] }, v)).exitCode).toBe(1);
    expect(v.text()).toMatch(/no key k1 among the worker's backup keys \(k2\)/);
    write(['k1', 'k2']);
  });

  it('no key in any workflow history or CLI output', async () => {
    const connection = await Connection.connect({ address: tw.address });
    try {
      const client = new Client({ connection });
      let n = 0;
      for await (const w of client.workflow.list({ query: `HandoverCluster = 'enc-redis' OR HandoverCluster = 'enc-maria'` })) {
        const h = JSON.stringify(await client.workflow.getHandle(w.workflowId, w.runId).fetchHistory());
        expect(h).not.toContain(K1);
        expect(h).not.toContain(K2);
        n++;
      }
      expect(n).toBeGreaterThanOrEqual(8);
    } finally {
      await connection.close();
    }
    const all = out.join('\n');
    expect(all.length).toBeGreaterThan(0);
    expect(all).not.toContain(K1);
    expect(all).not.toContain(K2);
  });
});
