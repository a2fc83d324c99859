/**
 * handover doctor against the real dev server, a real worker and real fleets (Redis and MariaDB in one
 * inventory): every check ok; then a revoked grant, a revoked ACL permission, a stopped worker and an
 * unreachable Temporal each turn the right line to FAIL with a non-zero exit code.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadInventory } from '../../inventory/load';
import { startRedisFleet, type RedisFleet } from '../../sandbox/redis';
import { startMariaFleet, type MariaFleet } from '../../sandbox/mariadb';
import { MARIADB_BACKUP_GRANTS } from '../../activities/backup/mysql';
import { runDoctor, type Check } from '../../client/commands/doctor';
import { captureIO, runCli, startTestWorker, until, type TestWorker } from '../helpers';

describe('handover doctor', () => {
  let redis: RedisFleet;
  let maria: MariaFleet;
  let tw: TestWorker;
  let dir: string;
  let inventory: string;
  /** Backups on for every cluster: the backup grants and binaries are checked too. */
  let env: NodeJS.ProcessEnv;
  let workerStopped = false;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'handover-doctor-'));
    redis = await startRedisFleet({ cluster: 'doc-cache' });
    maria = await startMariaFleet({ cluster: 'doc-db' });
    await maria.sql(0, `GRANT ${MARIADB_BACKUP_GRANTS.join(', ')} ON *.* TO 'handover'@'127.0.0.1'`);
    await maria.waitForReplication(0);
    inventory = path.join(dir, 'inventory.yaml');
    writeFileSync(inventory, redis.inventoryYaml() + maria.inventoryYaml().replace(/^clusters:\n/, ''));
    // The shared dev server's long polls last 10 s (test/globalSetup.ts): a live worker re-polls well within 20 s.
    env = { ...process.env, HANDOVER_BACKUP_DIR: path.join(dir, 'backups'), HANDOVER_POLLER_FRESH_MS: '20000' };
    tw = await startTestWorker({ inventory: () => loadInventory(inventory) });
  });
  afterAll(async () => {
    if (!workerStopped) await tw?.stop();
    await redis?.stop();
    await maria?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const opts = (extra: Record<string, unknown> = {}) => ({ address: tw.address, taskQueue: tw.taskQueue, inventory, ...extra });
  const line = (checks: Check[], name: string) => checks.find((c) => c.check === name);

  it('all ok: Temporal, search attributes, a worker, every node, grants and ACLs, backup binaries; exit 0', async () => {
    const io = captureIO();
    const r = await runDoctor(opts(), io, env);
    expect(r.checks.filter((c) => c.status !== 'ok'), io.text()).toEqual([]);
    expect(r.exitCode).toBe(0);
    const names = r.checks.map((c) => c.check);
    expect(names).toEqual(expect.arrayContaining(['temporal', 'namespace', 'search attributes', 'workers', 'inventory', 'doc-cache/doc-cache-1', 'doc-db/doc-db-1', 'doc-db/doc-db-3', 'binaries/redis-cli', 'binaries/redis-server', 'binaries/mariadbd', 'binaries/mariadb-dump']));
    expect(io.lines[0]).toMatch(/^ok    temporal: reachable at 127\.0\.0\.1:\d+ \(plaintext\)$/);
    expect(io.lines).toContain('ok    search attributes: HandoverCluster, HandoverRunbook, HandoverPhase registered (Keyword)');
    expect(line(r.checks, 'workers')!.detail).toMatch(new RegExp(`polling task queue ${tw.taskQueue}`));
    expect(io.lines[io.lines.length - 1]).toBe('all checks passed');
    console.log(io.text());
  });

  it('the CLI wiring: handover doctor --cluster --json', async () => {
    const r = await runCli(['doctor', '--cluster', 'doc-cache', '--json', '--address', tw.address, '--task-queue', tw.taskQueue, '--inventory', inventory]);
    expect(r.code, r.err).toBe(0);
    const out = JSON.parse(r.out.trim());
    expect(out.ok).toBe(true);
    expect(out.checks.map((c: Check) => c.check)).not.toContain('doc-db/doc-db-1');
  });

  it('a revoked MariaDB grant: that node FAILs with the GRANT that fixes it; exit 1', async () => {
    // On the primary, binlogged: every node loses it (the account is replicated).
    await maria.sql(0, "REVOKE READ_ONLY ADMIN ON *.* FROM 'handover'@'127.0.0.1'");
    await maria.waitForReplication(0);
    try {
      const io = captureIO();
      const r = await runDoctor(opts({ cluster: 'doc-db' }), io, env);
      expect(r.exitCode).toBe(1);
      const failed = r.checks.filter((c) => c.status === 'FAIL');
      expect(failed.map((c) => c.check)).toEqual(['doc-db/doc-db-1', 'doc-db/doc-db-2', 'doc-db/doc-db-3']);
      expect(failed[0].detail).toMatch(/the automation user lacks READ_ONLY ADMIN \(SET GLOBAL read_only.*GRANT READ_ONLY ADMIN ON \*\.\* TO 'handover'/);
      expect(io.lines).toContain('3 check(s) failed');
      console.log(io.text());
    } finally {
      await maria.sql(0, "GRANT READ_ONLY ADMIN ON *.* TO 'handover'@'127.0.0.1'");
      await maria.waitForReplication(0);
    }
  });

  it('a revoked Redis ACL permission: that node FAILs naming the command; exit 1', async () => {
    const n = redis.nodes[1];
    const c = n.client();
    await c.call('ACL', 'SETUSER', 'default', '-replicaof');
    try {
      const io = captureIO();
      const r = await runDoctor(opts({ cluster: 'doc-cache' }), io, env);
      expect(r.exitCode).toBe(1);
      expect(r.checks.filter((x) => x.status === 'FAIL').map((x) => x.check)).toEqual([`doc-cache/${n.id}`]);
      expect(line(r.checks, `doc-cache/${n.id}`)!.detail).toMatch(/lacks replicaof .*ACL SETUSER <automation user> \+replicaof/);
      console.log(io.text());
    } finally {
      await c.call('ACL', 'SETUSER', 'default', '+replicaof');
      c.disconnect();
    }
  });

  it('wrong credentials: every node FAILs as such (not as unreachable); exit 1', async () => {
    const io = captureIO();
    const r = await runDoctor(opts({ cluster: 'doc-cache' }), io, { ...env, [redis.passwordEnv]: 'not-the-password' });
    expect(r.exitCode).toBe(1);
    const failed = r.checks.filter((c) => c.status === 'FAIL');
    expect(failed.map((c) => c.check)).toEqual(redis.nodes.map((n) => `doc-cache/${n.id}`));
    for (const c of failed) expect(c.detail).toMatch(/^AuthenticationFailed: /);
    expect(failed[0].detail).not.toContain('not-the-password');
    console.log(io.text());
  });

  it('Temporal unreachable: exit 4, its line FAILs, the database checks still run', async () => {
    const io = captureIO();
    const r = await runDoctor({ ...opts(), address: '127.0.0.1:1' }, io, env);
    expect(r.exitCode).toBe(4);
    expect(line(r.checks, 'temporal')).toMatchObject({ status: 'FAIL' });
    expect(line(r.checks, 'temporal')!.detail).toMatch(/cannot reach Temporal at 127\.0\.0\.1:1/);
    expect(line(r.checks, 'workers')!.status).toBe('skip');
    expect(line(r.checks, 'doc-cache/doc-cache-1')!.status).toBe('ok');
  });

  it('a stopped worker: the workers line FAILs; exit 1', async () => {
    workerStopped = true;
    await tw.stop();
    const started = Date.now();
    // The poller goes stale HANDOVER_POLLER_FRESH_MS (20 s here) after the worker's last poll.
    const r = await until('the workers line FAILs', async () => {
      const x = await runDoctor(opts({ cluster: 'doc-cache' }), captureIO(), env);
      return line(x.checks, 'workers')!.status === 'FAIL' && x;
    }, 60_000, 250);
    console.log(`workers line FAILed ${Math.round((Date.now() - started) / 1000)} s after the worker stopped`);
    expect(line(r.checks, 'workers')).toMatchObject({ status: 'FAIL' });
    expect(line(r.checks, 'workers')!.detail).toMatch(new RegExp(`no worker polls task queue ${tw.taskQueue}`));
    expect(r.exitCode).toBe(1);
  }, 90_000);
});
