/**
 * Secret canaries over every runbook. A fleet whose passwords are unique canary strings (Redis: the server
 * password; MariaDB: the automation account's and the replication account's, which a failover sends to the
 * replicas in CHANGE MASTER) goes through switchover (text and --json), rolling restart, backup run, verify and
 * restore, the monitor and the failover it starts (the killed primary returns and is fenced), a manual failover,
 * status and history, all through the real CLI (commander) against the real worker process. Then every run on
 * the test's task queue (children and continued-as-new runs included) is read back — `temporal workflow show`
 * with every payload decoded (inputs, results, failures, markers, memos, search attributes, headers) and
 * `temporal workflow describe` (memo, search attributes, pending activities) — and scanned, with everything the
 * worker printed (at DEBUG), everything the CLI printed, what the failover hooks saw in their environment and
 * the backups' manifests, for each canary in clear, base64 (any alignment, both alphabets) and hex. The backups
 * are encrypted at rest with a canary key (backup.encryption), scanned for as written (hex) and as its bytes'
 * base64.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { MARIADB_BACKUP_GRANTS } from '../../activities/backup/mysql';
import { spawnWorkerProcess, type WorkerProcess } from '../../bench/lab';
import { withBackupBlock } from '../../sandbox/backup';
import { startMariaFleet } from '../../sandbox/mariadb';
import { sleep } from '../../sandbox/ports';
import { startRedisFleet, stopByPidfile } from '../../sandbox/redis';
import type { MonitorStatus } from '../../workflows/monitor';
import { runCli } from '../helpers';
import { decodeAll, findCanaries, runTexts, waitForRuns, type RunRef } from '../secrets';

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await sleep(100);
  }
}

/** Every file under `dir` (backups' manifests and verification records are JSON; artifacts are skipped). */
function textFilesUnder(dir: string): { file: string; text: string }[] {
  const out: { file: string; text: string }[] = [];
  for (const name of readdirSync(dir)) {
    const f = path.join(dir, name);
    if (statSync(f).isDirectory()) out.push(...textFilesUnder(f));
    else if (f.endsWith('.json')) out.push({ file: f, text: readFileSync(f, 'utf8') });
  }
  return out;
}

/** A cluster's inventory YAML with failover hooks (inserted after its `engine:` line). */
function withHooks(yaml: string, pre: string[], post: string[]): string {
  return yaml.replace(/^(\s+)engine: (\w+)$/m, (_m, sp: string, e: string) => `${sp}engine: ${e}\n${sp}hooks:\n${sp}  preFailover: ${JSON.stringify(pre)}\n${sp}  postFailover: ${JSON.stringify(post)}`);
}

interface Harness {
  tq: string;
  worker: WorkerProcess;
  workerOut: () => string;
  cliOut: string[];
  /** The real CLI with the connection flags; records what it printed. */
  cli(args: string[]): Promise<{ code: number; out: string; err: string; json?: Record<string, unknown> }>;
}

function harness(address: string, inventory: string): Harness {
  const tq = `canary-${randomUUID()}`;
  let out = '';
  const worker = spawnWorkerProcess({ HANDOVER_TEMPORAL_ADDRESS: address, HANDOVER_INVENTORY: inventory, HANDOVER_TASK_QUEUE: tq, HANDOVER_LOG_LEVEL: 'DEBUG' }, (t) => (out += t));
  const cliOut: string[] = [];
  return {
    tq,
    worker,
    workerOut: () => out,
    cliOut,
    async cli(args) {
      const r = await runCli([...args, '--address', address, '--task-queue', tq, '--inventory', inventory]);
      cliOut.push(`$ handover ${args.join(' ')}\n${r.out}\n${r.err}`);
      let json: Record<string, unknown> | undefined;
      if (args.includes('--json')) {
        const last = r.out.trim().split('\n').at(-1) ?? '';
        try {
          json = JSON.parse(last) as Record<string, unknown>;
        } catch {
          json = undefined;
        }
      }
      return { ...r, json };
    },
  };
}

/**
 * Read back every run on the harness's task queue once `types` are all there and closed (or, for the monitor,
 * at least listed), and scan them and every other output for the canaries. Returns the decoded histories.
 */
async function scanEverything(address: string, h: Harness, canaries: Record<string, string>, types: RegExp[], extra: { where: string; text: string }[]): Promise<{ runs: RunRef[]; decoded: string }> {
  const runs = await waitForRuns(address, `TaskQueue="${h.tq}"`, (rs) => types.every((t) => rs.some((r) => t.test(r.type))), 30_000);
  for (const t of types) expect(runs.map((r) => r.type), `a run of type ${t}`).toEqual(expect.arrayContaining([expect.stringMatching(t)]));
  const leaks: string[] = [];
  const decoded: string[] = [];
  for (const r of runs) {
    const { history, describe } = runTexts(address, r);
    const text = `${decodeAll(history)}\n${decodeAll(describe)}`;
    decoded.push(text);
    leaks.push(...findCanaries(text, canaries, `history/describe of ${r.type} ${r.workflowId} ${r.runId}`));
  }
  leaks.push(...findCanaries(h.workerOut(), canaries, 'worker stdout/stderr'));
  h.cliOut.forEach((t, i) => leaks.push(...findCanaries(t, canaries, `CLI output #${i + 1}: ${t.split('\n')[0]}`)));
  for (const x of extra) leaks.push(...findCanaries(x.text, canaries, x.where));
  const bytes = decoded.reduce((n, t) => n + t.length, 0) + h.workerOut().length + h.cliOut.join('').length;
  console.log(`[secrets] scanned ${runs.length} runs (${[...new Set(runs.map((r) => r.type))].join(', ')}), ${h.cliOut.length} CLI outputs, the worker's output and ${extra.length} files: ${bytes} bytes, ${Object.keys(canaries).length} canaries`);
  expect(leaks).toEqual([]);
  // The scan reads real, decoded content: the worker logged at DEBUG, the CLI printed reports.
  expect(h.workerOut()).toMatch(/polling/);
  expect(h.cliOut.join('\n').length).toBeGreaterThan(2000);
  return { runs, decoded: decoded.join('\n') };
}

/**
 * A backup encryption key that is itself a canary: set in the environment the inventory names, returned as the
 * `encryption` block and its two canary forms (the hex the inventory holds, and its bytes in base64).
 */
function canaryBackupKey(cluster: string, canaries: Record<string, string>): string {
  const key = randomBytes(32);
  const env = `HANDOVER_${cluster.replace(/\W/g, '_').toUpperCase()}_BACKUP_KEY`;
  process.env[env] = key.toString('hex');
  canaries['backup key (hex)'] = key.toString('hex');
  canaries['backup key (its bytes in base64)'] = key.toString('base64');
  return `{ keys: [ { id: canary, key: { env: ${env} } } ] }`;
}

describe('secret canaries over every runbook', () => {
  const address = inject('temporalAddress');
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await Promise.resolve(c()).catch(() => undefined);
  });

  it('redis: switchover, rolling restart, backup run/verify/restore, the monitor and its failover, a manual failover, status, history: no canary anywhere', { timeout: 480_000 }, async () => {
    const cluster = 'canary-r';
    const canaries: Record<string, string> = { 'redis password': `canary-redis-${randomUUID()}` };
    const fleet = await startRedisFleet({ cluster, password: canaries['redis password'] });
    cleanups.push(() => fleet.stop());
    const dir = mkdtempSync(path.join(os.tmpdir(), 'handover-canary-backups-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const hookEnv = path.join(fleet.baseDir, 'hook-env.txt');
    const inventory = path.join(fleet.baseDir, 'inventory.yaml');
    const policy = { probeIntervalMs: 300, probesToConfirm: 3, failoverBlockMs: 1_000 };
    writeFileSync(inventory, withHooks(withBackupBlock(fleet.inventoryYaml({ policy }), dir, 3, 'gzip', { encryption: canaryBackupKey(cluster, canaries) }), [`env >> ${hookEnv}`], [`env >> ${hookEnv}`]));
    const p = fleet.nodes[0].client();
    for (let i = 0; i < 500; i++) await p.set(`k:${i}`, `v${i}`);
    p.disconnect();

    const h = harness(address, inventory);
    cleanups.push(() => h.worker.stop());
    // The worker bundles the workflows from the sources at start: slow on a loaded machine.
    await until('the worker polls', async () => {
      if (h.worker.proc.exitCode !== null) throw new Error(`worker exited: ${h.workerOut()}`);
      return /polling/.test(h.workerOut());
    }, 240_000);
    const node = (id: string) => fleet.nodes.find((n) => n.id === id)!;
    const primaryId = async () => (await fleet.primary())?.id;

    // Switchover, text then JSON.
    expect((await h.cli(['switchover', '--cluster', cluster, '--wait'])).code).toBe(0);
    const sj = await h.cli(['switchover', '--cluster', cluster, '--wait', '--json']);
    expect(sj.code, sj.out + sj.err).toBe(0);
    expect(sj.json).toMatchObject({ newPrimary: expect.stringMatching(/^canary-r-\d$/) });
    // Rolling restart: every node restarted on a new setting, the primary handed over (a child switchover).
    const rr = await h.cli(['rolling-restart', '--cluster', cluster, '--set', 'hz=21', '--wait']);
    expect(rr.code, rr.out + rr.err).toBe(0);
    // Backup run, verify, restore into a scratch server (whose own password is a secret too).
    const b = await h.cli(['backup', 'run', '--cluster', cluster, '--wait', '--json']);
    expect(b.code, b.out + b.err).toBe(0);
    const id = String(b.json!.id);
    expect((await h.cli(['backup', 'verify', '--cluster', cluster, '--id', id])).code).toBe(0);
    const rs = await h.cli(['backup', 'restore', '--cluster', cluster, '--id', id, '--scratch', '--json']);
    expect(rs.code, rs.out + rs.err).toBe(0);
    const scratch = rs.json as { dir: string; passwordFile: string };
    canaries['scratch server password'] = readFileSync(scratch.passwordFile, 'utf8').trim();
    expect(canaries['scratch server password'].length).toBeGreaterThanOrEqual(16);
    await stopByPidfile(scratch.dir, 'SIGKILL');
    rmSync(scratch.dir, { recursive: true, force: true });
    expect((await h.cli(['backup', 'list', '--cluster', cluster])).code).toBe(0);

    // The monitor; the primary SIGKILLed: the monitor fails over; the old primary returns and is fenced.
    expect((await h.cli(['monitor', '--cluster', cluster])).code).toBe(0);
    const monitorStatus = async () => (await h.cli(['monitor', '--cluster', cluster, '--status', '--json'])).json as unknown as MonitorStatus;
    const p1 = (await primaryId())!;
    await until('the monitor sees the primary', async () => (await monitorStatus()).lastKnown?.primary === p1);
    await node(p1).stop('SIGKILL');
    const s = await until('the monitor fails over', async () => {
      const x = await monitorStatus();
      return x.failovers.length === 1 && x;
    });
    await node(p1).start();
    await until('the old primary fenced', async () => (await monitorStatus()).fenced.includes(p1) && (await fleet.roles())[p1] === 'slave');
    expect((await h.cli(['monitor', '--cluster', cluster, '--status'])).code).toBe(0);
    expect((await h.cli(['monitor', '--cluster', cluster, '--stop'])).code).toBe(0);
    // A manual failover: the new primary SIGKILLed, `handover failover` confirms the death and promotes.
    const p2 = s.failovers[0].to;
    await node(p2).stop('SIGKILL');
    const fo = await h.cli(['failover', '--cluster', cluster, '--wait', '--json']);
    expect(fo.code, fo.out + fo.err).toBe(0);
    await node(p2).start();
    expect((await h.cli(['status', '--cluster', cluster])).code).not.toBe(-1);
    expect((await h.cli(['status', '--cluster', cluster, '--json'])).code).not.toBe(-1);
    expect((await h.cli(['history', '--cluster', cluster])).code).toBe(0);
    expect(readFileSync(hookEnv, 'utf8')).toMatch(/HANDOVER_CLUSTER=canary-r/); // the hooks ran (4 of them)
    await h.worker.stop();

    const { decoded } = await scanEverything(address, h, canaries, [/^switchover$/, /^rollingRestart$/, /^redisSwitchover$/, /^backup$/, /^verifyBackupRun$/, /^restoreBackupRun$/, /[mM]onitor$/, /^redisFailover$/, /^failover$/], [
      { where: 'failover hooks environment', text: readFileSync(hookEnv, 'utf8') },
      ...textFilesUnder(dir).map((f) => ({ where: f.file, text: f.text })),
    ]);
    // What was decoded is the real content: inputs and results by name.
    // The backups were encrypted with the canary key (their manifests name it by its id only).
    expect(textFilesUnder(dir).map((f) => f.text).join('\n')).toMatch(/"keyId":\s*"canary"/);
    expect(decoded).toMatch(/"cluster":"canary-r"/);
    expect(decoded).toMatch(/"newPrimary":"canary-r-\d"/);
    expect(decoded).toMatch(/HandoverCluster/);
  });

  it('mariadb: switchover, rolling restart, backup run/verify/restore, the monitor and its failover, a manual failover, status, history: no canary anywhere', { timeout: 600_000 }, async () => {
    const cluster = 'canary-m';
    const canaries: Record<string, string> = { 'automation password': `canary-handover-${randomUUID()}`, 'replication password': `canary-repl-${randomUUID()}` };
    const fleet = await startMariaFleet({ cluster, passwords: { handover: canaries['automation password'], repl: canaries['replication password'] } });
    cleanups.push(() => fleet.stop());
    await fleet.sql(0, `GRANT ${MARIADB_BACKUP_GRANTS.join(', ')} ON *.* TO 'handover'@'127.0.0.1'`);
    await fleet.sql(0, 'CREATE DATABASE shop');
    await fleet.sql(0, 'CREATE TABLE shop.items (id INT PRIMARY KEY, note VARCHAR(64)) ENGINE=InnoDB');
    await fleet.sql(0, `INSERT INTO shop.items VALUES ${Array.from({ length: 200 }, (_, i) => `(${i}, 'item ${i}')`).join(',')}`);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'handover-canary-backups-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const hookEnv = path.join(fleet.baseDir, 'hook-env.txt');
    const policy = { probeIntervalMs: 400, probesToConfirm: 5, failoverBlockMs: 1_000, catchUpTimeoutMs: 20_000, verifyTimeoutMs: 30_000 };
    const inventory = path.join(fleet.baseDir, 'inventory.yaml');
    writeFileSync(inventory, withBackupBlock(fleet.inventoryYaml({ policy, controller: true, hooks: { preFailover: [`env >> ${hookEnv}`], postFailover: [`env >> ${hookEnv}`] } }), dir, 3, 'gzip', { method: 'logical', encryption: canaryBackupKey(cluster, canaries) }));

    const h = harness(address, inventory);
    cleanups.push(() => h.worker.stop());
    // The worker bundles the workflows from the sources at start: slow on a loaded machine.
    await until('the worker polls', async () => {
      if (h.worker.proc.exitCode !== null) throw new Error(`worker exited: ${h.workerOut()}`);
      return /polling/.test(h.workerOut());
    }, 240_000);
    const node = (id: string) => fleet.nodes.find((n) => n.id === id)!;
    const writable = async () => Object.entries(await fleet.state()).filter(([, x]) => x.up && x.readOnly === false).map(([n]) => n);

    expect((await h.cli(['switchover', '--cluster', cluster, '--wait'])).code).toBe(0);
    const sj = await h.cli(['switchover', '--cluster', cluster, '--wait', '--json']);
    expect(sj.code, sj.out + sj.err).toBe(0);
    const rr = await h.cli(['rolling-restart', '--cluster', cluster, '--set', 'max_connections=321', '--wait']);
    expect(rr.code, rr.out + rr.err).toBe(0);
    const b = await h.cli(['backup', 'run', '--cluster', cluster, '--wait', '--json']);
    expect(b.code, b.out + b.err).toBe(0);
    const id = String(b.json!.id);
    expect((await h.cli(['backup', 'verify', '--cluster', cluster, '--id', id])).code).toBe(0);
    const rs = await h.cli(['backup', 'restore', '--cluster', cluster, '--id', id, '--scratch', '--json']);
    expect(rs.code, rs.out + rs.err).toBe(0);
    const scratch = rs.json as { dir: string };
    process.kill(Number(readFileSync(path.join(scratch.dir, 'mysqld.pid'), 'utf8')), 'SIGKILL');
    cleanups.push(() => rmSync(scratch.dir, { recursive: true, force: true }));

    // The monitor fails over a SIGKILLed primary (the survivors repointed with the replication password); the
    // old primary returns and is fenced (rejoined with it, or flagged).
    expect((await h.cli(['monitor', '--cluster', cluster])).code).toBe(0);
    const monitorStatus = async () => (await h.cli(['monitor', '--cluster', cluster, '--status', '--json'])).json as unknown as MonitorStatus;
    const [p1] = await writable();
    await until('the monitor sees the primary', async () => (await monitorStatus()).lastKnown?.primary === p1);
    await node(p1).stop('SIGKILL');
    const s = await until('the monitor fails over', async () => {
      const x = await monitorStatus();
      return x.failovers.length === 1 && x;
    }, 120_000);
    await node(p1).start();
    await until('the old primary fenced', async () => (await monitorStatus()).fenced.includes(p1), 120_000);
    expect((await h.cli(['monitor', '--cluster', cluster, '--status'])).code).toBe(0);
    expect((await h.cli(['monitor', '--cluster', cluster, '--stop'])).code).toBe(0);
    // A manual failover of the next primary.
    const p2 = s.failovers[0].to;
    await node(p2).stop('SIGKILL');
    const fo = await h.cli(['failover', '--cluster', cluster, '--wait', '--json']);
    expect(fo.code, fo.out + fo.err).toBe(0);
    expect((await h.cli(['status', '--cluster', cluster])).code).not.toBe(-1);
    expect((await h.cli(['status', '--cluster', cluster, '--json'])).code).not.toBe(-1);
    expect((await h.cli(['history', '--cluster', cluster])).code).toBe(0);
    expect(readFileSync(hookEnv, 'utf8')).toMatch(/HANDOVER_CLUSTER=canary-m/);
    await h.worker.stop();

    const { decoded } = await scanEverything(address, h, canaries, [/^switchover$/, /^rollingRestart$/, /^mysqlSwitchover$/, /^backup$/, /^verifyBackupRun$/, /^restoreBackupRun$/, /[mM]onitor$/, /^mysqlFailover$/, /^failover$/], [
      { where: 'failover hooks environment', text: readFileSync(hookEnv, 'utf8') },
      ...textFilesUnder(dir).map((f) => ({ where: f.file, text: f.text })),
    ]);
    expect(textFilesUnder(dir).map((f) => f.text).join('\n')).toMatch(/"keyId":\s*"canary"/);
    expect(decoded).toMatch(/"cluster":"canary-m"/);
    expect(decoded).toMatch(/"newPrimary":"canary-m-\d"/);
    // The replication account is named (by its user) where a repoint happened, never with its password.
    expect(decoded).toMatch(/canary-m-\d/);
  });
});
