/**
 * handover doctor against the real dev server, a real worker and real fleets (Redis and MariaDB in one
 * inventory): every check ok, the database and binary checks run on the worker (the CLI process, given no
 * inventory and no secret, opens no database connection); then a revoked grant, a revoked ACL permission, a wrong
 * password on the worker, an inventory on the CLI that differs from the worker's, a stopped worker and an
 * unreachable Temporal each turn the right line to FAIL with a non-zero exit code. Each test restores what it
 * changes; the stopped worker is one of its own.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
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
  /** The CLI's environment. */
  let env: NodeJS.ProcessEnv;
  /** The worker's: its secrets and, backups on for every cluster, the backup grants and binaries are checked too. */
  let workerEnv: NodeJS.ProcessEnv;

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
    workerEnv = { ...process.env, HANDOVER_BACKUP_DIR: path.join(dir, 'backups') };
    tw = await startTestWorker({ inventory: () => loadInventory(inventory), inventoryFile: inventory, env: workerEnv });
  });
  afterAll(async () => {
    await tw?.stop();
    await redis?.stop();
    await maria?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const opts = (extra: Record<string, unknown> = {}) => ({ address: tw.address, taskQueue: tw.taskQueue, inventory, ...extra });
  const line = (checks: Check[], name: string) => checks.find((c) => c.check === name);

  it('all ok: Temporal, search attributes, a worker, the codec, every node, grants and ACLs, backup binaries (on the worker); exit 0', async () => {
    const io = captureIO();
    const r = await runDoctor(opts(), io, env);
    expect(r.checks.filter((c) => c.status !== 'ok'), io.text()).toEqual([]);
    expect(r.exitCode).toBe(0);
    expect(r.checkedBy).toBe('worker');
    const names = r.checks.map((c) => c.check);
    expect(names).toEqual(expect.arrayContaining(['temporal', 'namespace', 'search attributes', 'workers', 'codec', 'inventory', 'doc-cache/doc-cache-1', 'doc-db/doc-db-1', 'doc-db/doc-db-3', 'binaries/redis-cli', 'binaries/redis-server', 'binaries/mariadbd', 'binaries/mariadb-dump', 'inventory (this machine)']));
    expect(io.lines[0]).toMatch(/^ok    temporal: reachable at 127\.0\.0\.1:\d+ \(plaintext\) from this machine$/);
    expect(line(r.checks, 'inventory')!.detail).toBe(`${inventory}: 2 cluster(s) (on worker host ${hostname()} (pid ${process.pid}))`);
    expect(line(r.checks, 'binaries/redis-cli')!.detail).toMatch(/\(on worker host /);
    expect(line(r.checks, 'inventory (this machine)')!.detail).toBe(`${inventory} agrees with the worker's on doc-cache, doc-db`);
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

  it("wrong credentials on the worker: every node FAILs as such (not as unreachable); exit 1", async () => {
    const io = captureIO();
    const good = workerEnv[redis.passwordEnv];
    workerEnv[redis.passwordEnv] = 'not-the-password';
    const r = await runDoctor(opts({ cluster: 'doc-cache' }), io, env).finally(() => (workerEnv[redis.passwordEnv] = good));
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
    // No worker to run them on: the CLI runs them from this machine with its inventory, and says so.
    expect(r.checkedBy).toBe('cli');
    expect(io.errors.join('\n')).toMatch(/checks ran on this machine with its inventory and credentials: Temporal is not reachable from this machine/);
    expect(line(r.checks, 'inventory')!.detail).toMatch(/\(on this machine\)$/);
    expect(line(r.checks, 'doc-cache/doc-cache-1')!.status).toBe('ok');
  });

  it('--direct: the inventory, node and binary checks run from this machine with its inventory and credentials', async () => {
    const io = captureIO();
    const r = await runDoctor(opts({ cluster: 'doc-cache', direct: true }), io, env);
    expect(r.exitCode, io.text()).toBe(0);
    expect(r.checkedBy).toBe('cli');
    expect(io.errors).toEqual([]); // asked for: nothing to explain
    expect(line(r.checks, 'inventory')!.detail).toBe(`${inventory}: 2 cluster(s) (on this machine)`);
    expect(line(r.checks, 'doc-cache/doc-cache-1')!.status).toBe('ok');
    expect(line(r.checks, 'binaries/redis-cli')!.detail).toMatch(/\(on this machine\)$/);
    expect(line(r.checks, 'codec')).toBeUndefined();
  });

  it("an inventory on this machine that differs from the worker's: its line FAILs naming the difference; exit 1", async () => {
    const other = path.join(dir, 'other.yaml');
    writeFileSync(other, readFileSync(inventory, 'utf8').replace(`port: ${redis.nodes[2].port}`, `port: ${redis.nodes[2].port + 1}`));
    const io = captureIO();
    const r = await runDoctor(opts({ cluster: 'doc-cache', inventory: other }), io, env);
    expect(r.exitCode).toBe(1);
    expect(r.checkedBy).toBe('worker');
    expect(r.checks.filter((c) => c.status === 'FAIL').map((c) => c.check)).toEqual(['inventory (this machine)']);
    expect(line(r.checks, 'inventory (this machine)')!.detail).toBe(`${other} and the worker's inventory disagree on cluster doc-cache: nodes[2].port is ${redis.nodes[2].port + 1} here, ${redis.nodes[2].port} on the worker`);
    console.log(io.text());
  });

  it('the CLI needs Temporal alone: a CLI process with no inventory and no database secret opens no database connection; every check ok', async () => {
    // A preload that records every TCP connect of the CLI process (ioredis, mysql2 and gRPC all go through net.Socket).
    const hook = path.join(dir, 'connect-log.cjs');
    const log = path.join(dir, 'connects.log');
    writeFileSync(log, '');
    writeFileSync(
      hook,
      `const net = require('node:net'); const fs = require('node:fs'); const connect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function (...args) {
  let o = args[0]; if (Array.isArray(o)) o = o[0];
  const port = o && typeof o === 'object' ? o.port : o;
  if (port !== undefined && port !== null && !Number.isNaN(Number(port))) fs.appendFileSync(${JSON.stringify(log)}, String(port) + '\\n');
  return connect.apply(this, args);
};\n`,
    );
    const secrets = [redis.passwordEnv, maria.passwordEnv, maria.replPasswordEnv];
    const cliEnv: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(env).filter(([k]) => !secrets.includes(k) && k !== 'HANDOVER_BACKUP_DIR'));
    cliEnv.HANDOVER_INVENTORY = path.join(dir, 'none', 'inventory.yaml');
    cliEnv.NODE_OPTIONS = `${env.NODE_OPTIONS ?? ''} --require ${hook}`.trim();
    const cwd = path.join(dir, 'cli-cwd');
    mkdirSync(cwd, { recursive: true });
    const root = path.join(__dirname, '..', '..');
    const r = await new Promise<{ code: number; out: string; err: string }>((resolve) =>
      execFile(path.join(root, 'node_modules', '.bin', 'tsx'), [path.join(root, 'client', 'cli.ts'), 'doctor', '--json', '--address', tw.address, '--task-queue', tw.taskQueue], { cwd, env: cliEnv, timeout: 90_000 }, (e, out, err) =>
        resolve({ code: e ? Number((e as { code?: number }).code ?? -1) : 0, out, err }),
      ),
    );
    expect(r.code, r.err).toBe(0);
    const out = JSON.parse(r.out.trim()) as { checkedBy: string; checks: Check[] };
    expect(out.checkedBy).toBe('worker');
    expect(out.checks.filter((c) => c.status === 'FAIL')).toEqual([]);
    for (const n of ['doc-cache/doc-cache-1', 'doc-cache/doc-cache-3', 'doc-db/doc-db-1', 'doc-db/doc-db-3']) expect(line(out.checks, n)?.status).toBe('ok');
    expect(line(out.checks, 'inventory (this machine)')).toMatchObject({ status: 'skip' });
    for (const s of secrets) expect(r.out + r.err).not.toContain(String(process.env[s]));
    const ports = readFileSync(log, 'utf8').split('\n').filter(Boolean).map(Number);
    const temporalPort = Number(tw.address.split(':').pop());
    expect(ports, 'the hook saw the CLI connect to Temporal').toContain(temporalPort);
    const dbPorts = [...redis.nodes.map((n) => n.port), ...maria.nodes.map((n) => n.port)];
    expect(ports.filter((p) => dbPorts.includes(p)), 'database ports the CLI process connected to').toEqual([]);
  }, 120_000);

  it('a stopped worker: the workers line FAILs; exit 1', async () => {
    // A worker of its own on its own task queue, so the shared one keeps serving the other tests.
    const own = await startTestWorker({ inventory: () => loadInventory(inventory), env: workerEnv });
    await until('the workers line is ok while it runs', async () => line((await runDoctor({ ...opts({ cluster: 'doc-cache' }), taskQueue: own.taskQueue }, captureIO(), env)).checks, 'workers')!.status === 'ok', 30_000, 250);
    await own.stop();
    const started = Date.now();
    // The poller goes stale HANDOVER_POLLER_FRESH_MS (20 s here) after the worker's last poll.
    const r = await until('the workers line FAILs', async () => {
      const x = await runDoctor({ ...opts({ cluster: 'doc-cache' }), taskQueue: own.taskQueue }, captureIO(), env);
      return line(x.checks, 'workers')!.status === 'FAIL' && x;
    }, 60_000, 250);
    console.log(`workers line FAILed ${Math.round((Date.now() - started) / 1000)} s after the worker stopped`);
    expect(line(r.checks, 'workers')).toMatchObject({ status: 'FAIL' });
    expect(line(r.checks, 'workers')!.detail).toMatch(new RegExp(`no worker polls task queue ${own.taskQueue}`));
    expect(r.exitCode).toBe(1);
  }, 90_000);
});
