/**
 * `handover status`, `handover history` and `--wait` progress, as a user runs them (commander parseAsync), against
 * real redis-server and mariadbd processes and the real Temporal dev server.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, Connection } from '@temporalio/client';
import { loadInventory } from '../../inventory/load';
import { startRedisFleet, type RedisFleet } from '../../sandbox/redis';
import { startMariaFleet, type MariaFleet } from '../../sandbox/mariadb';
import { sleep } from '../../sandbox/ports';
import type { ClusterStatus } from '../../core/status';
import type { HistoryEntry } from '../../client/commands/history';
import { captureIO, startTestWorker, type TestWorker, runCli } from '../helpers';
import { runSwitchover } from '../../client/commands/switchover';
import { runApprove } from '../../client/commands/approve';

const run = runCli;

/** Visibility is eventually consistent: retry until `ok` holds (10 s at most). */
async function eventually<T>(fn: () => Promise<T>, ok: (v: T) => boolean): Promise<T> {
  let v = await fn();
  for (let i = 0; i < 50 && !ok(v); i++) {
    await sleep(200);
    v = await fn();
  }
  return v;
}

let slowReadiness = false;

describe('handover status / history / --wait', () => {
  let redis: RedisFleet;
  let maria: MariaFleet;
  let tw: TestWorker;
  let inventory: string;
  beforeAll(async () => {
    redis = await startRedisFleet({ cluster: 'sh' });
    maria = await startMariaFleet({ cluster: 'sh-maria' });
    inventory = path.join(redis.baseDir, 'both.yaml');
    writeFileSync(inventory, redis.inventoryYaml() + maria.inventoryYaml().replace(/^clusters:\n/, ''));
    // Readiness waits here take well under a second; the --wait test slows each check of one so the CLI's
    // 250 ms polling sees the wait for certain (a named failpoint inside the activity, a no-op otherwise).
    tw = await startTestWorker({ inventory: () => loadInventory(inventory), failpoint: async (name) => (slowReadiness && name === 'waitForRedisNodeReady.loop' ? sleep(400) : undefined) });
  });
  afterAll(async () => {
    await tw?.stop();
    await redis?.stop();
    await maria?.stop();
  });

  const common = () => ['--address', tw.address, '--task-queue', tw.taskQueue, '--inventory', inventory];

  it('status --json: every cluster of the inventory, primary, replicas linked with their lag, nothing running', async () => {
    await maria.sql(0, 'CREATE DATABASE IF NOT EXISTS st');
    await maria.sql(0, 'CREATE TABLE IF NOT EXISTS st.t (id INT PRIMARY KEY)');
    await maria.sql(0, 'INSERT INTO st.t VALUES (1), (2), (3)');
    await maria.waitForReplication(0, 30_000);
    const r = await run(['status', '--json', ...common()]);
    expect(r.code, r.err).toBe(0);
    const { clusters } = JSON.parse(r.out) as { clusters: ClusterStatus[] };
    expect(clusters.map((c) => c.cluster)).toEqual(['sh', 'sh-maria']);
    const [rc, mc] = clusters;
    expect(rc).toMatchObject({ engine: 'redis', topology: 'replication', primaries: ['sh-1'], problems: [], operations: [] });
    expect(rc.nodes.map((n) => [n.node, n.role, n.replicaOf, n.link])).toEqual([
      ['sh-1', 'primary', undefined, undefined],
      ['sh-2', 'replica', 'sh-1', 'up'],
      ['sh-3', 'replica', 'sh-1', 'up'],
    ]);
    for (const n of rc.nodes.slice(1)) expect(n.lagBytes).toBeGreaterThanOrEqual(0);
    expect(mc).toMatchObject({ engine: 'mysql', primaries: ['sh-maria-1'], problems: [], operations: [] });
    expect(mc.nodes.slice(1).map((n) => [n.node, n.replicaOf, n.link, n.lagTransactions, n.readOnly])).toEqual([
      ['sh-maria-2', 'sh-maria-1', 'io Yes sql Yes', 0, true],
      ['sh-maria-3', 'sh-maria-1', 'io Yes sql Yes', 0, true],
    ]);
    // Credentials come from the environment the inventory names; no password is ever printed.
    expect(r.out).not.toContain(redis.password);
    expect(r.out).not.toContain(maria.handoverPassword);
  });

  it('status shows an unreachable replica as a problem, and a running operation with its phase', async () => {
    // A run nobody works on (no worker polls this task queue) stays open: it is "the running operation".
    const started = await run(['switchover', '--cluster', 'sh', '--address', tw.address, '--task-queue', 'nobody-polls-this', '--inventory', inventory]);
    expect(started.code, started.err).toBe(0);
    await redis.nodes[2].stop();
    try {
      const r = await eventually(
        () => run(['status', '--cluster', 'sh', ...common()]),
        (x) => /running: switchover handover-sh/.test(x.out),
      );
      expect(r.code, r.err).toBe(0);
      const lines = r.out.trim().split('\n');
      expect(lines[0]).toBe('sh (redis, replication): primary sh-1');
      expect(lines[1]).toMatch(/^ {2}NODE +ADDRESS +ROLE +LAG +VERSION +PENDING RESTART +MAINTENANCE +LINK$/);
      // Nodes on this host, started from a binary still on disk and as their config files say: no restart pending.
      expect(lines[2]).toMatch(/^ {2}sh-1 +127\.0\.0\.1:\d+ +primary at \d+ +- +(redis|valkey) \S+ +no +- +-$/);
      expect(lines[3]).toMatch(/^ {2}sh-2 +127\.0\.0\.1:\d+ +replica of sh-1 +\d+ B +(redis|valkey) \S+ +no +- +up$/);
      expect(lines[4]).toMatch(/^ {2}sh-3 +127\.0\.0\.1:\d+ +UNREACHABLE/);
      expect(lines).toContainEqual(expect.stringMatching(/^ {2}! sh-3 unreachable/));
      expect(lines[lines.length - 1]).toMatch(/^ {2}running: switchover handover-sh \(phase starting, since \d{4}-\d\d-\d\dT/);
    } finally {
      await redis.nodes[2].start();
      const conn = await Connection.connect({ address: tw.address });
      await new Client({ connection: conn }).workflow.getHandle('handover-sh').terminate('test: nobody works on it');
      await conn.close();
    }
  });

  it('status is bounded: a frozen (SIGSTOPped) node shows as a timeout, and status returns within a few seconds', async () => {
    const [frozenRedis, frozenMaria] = [redis.nodes[1], maria.nodes[2]];
    await frozenRedis.stop('SIGSTOP');
    await frozenMaria.stop('SIGSTOP');
    try {
      const t0 = Date.now();
      const r = await run(['status', '--json', ...common()]);
      const ms = Date.now() - t0;
      expect(r.code, r.err).toBe(0);
      const { clusters } = JSON.parse(r.out) as { clusters: ClusterStatus[] };
      const node = (c: string, n: string) => clusters.find((x) => x.cluster === c)!.nodes.find((x) => x.node === n)!;
      // A frozen node accepts the TCP connection (the kernel) and never answers: the per-node bound names it.
      // (Redis: the status probe's 2.5 s bound; MariaDB: the connection's 2 s bound for the server's greeting.)
      expect(node('sh', frozenRedis.id)).toMatchObject({ reachable: false, error: expect.stringMatching(/timeout after 2500 ms/) });
      expect(node('sh-maria', frozenMaria.id)).toMatchObject({ reachable: false, error: expect.stringMatching(/^timeout after 2000 ms connecting/) });
      // The other nodes are read as usual, in parallel with the frozen ones.
      expect(node('sh', 'sh-1').role).toBe('primary');
      expect(node('sh-maria', 'sh-maria-1').role).toBe('primary');
      // Per-node bound 2.5 s, in parallel; the CLI's start and the workflow round trip on top.
      expect(ms).toBeLessThan(8_000);
    } finally {
      await frozenRedis.stop('SIGCONT');
      await frozenMaria.stop('SIGCONT');
    }
  });

  it('switchover --wait prints one plain line per step change (non-TTY), then the report', async () => {
    await eventually(
      () => run(['status', '--cluster', 'sh', '--json', ...common()]),
      (x) => (JSON.parse(x.out) as { clusters: ClusterStatus[] }).clusters[0].problems.length === 0,
    );
    const r = await run(['switchover', '--cluster', 'sh', '--to', 'sh-3', '--wait', ...common()]);
    expect(r.code, r.err).toBe(0);
    const lines = r.out.trim().split('\n');
    expect(lines[0]).toBe('running switchover of sh: handover-sh');
    // Each step printed when it starts and once when it ends, in order, with its time and audit line.
    const steps = lines.filter((l) => /^(running|done|failed) /.test(l)).map((l) => /^(\w+) +([^:]+):/.exec(l)!.slice(1, 3).join(' '));
    for (const s of ['probe', 'decide', 'catch-up', 'veto', 'handover', 'repoint sh-2', 'repoint sh-1', 'verify']) {
      expect(steps.filter((x) => x === `done ${s}`), s).toHaveLength(1);
      expect(steps.filter((x) => x === `failed ${s}`), s).toHaveLength(0);
    }
    expect(steps.indexOf('done probe')).toBeLessThan(steps.indexOf('done handover'));
    expect(steps.indexOf('done handover')).toBeLessThan(steps.indexOf('done verify'));
    expect(lines.find((l) => l.startsWith('done     probe:'))).toMatch(/^done {5}probe: probe every node of sh \((\d+ ms|\d+\.\d s)\) — saw sh-1=primary@\d+ sh-2=replica@\d+ sh-3=replica@\d+$/);
    expect(r.out).toMatch(/\nswitched over sh: sh-1 -> sh-3\n/);
    expect(await redis.roles()).toEqual({ 'sh-1': 'slave', 'sh-2': 'slave', 'sh-3': 'master' });
  });

  it('history: the runs on a cluster, newest first, with runbook, status, phase and summary; --limit; text table', async () => {
    const r = await eventually(
      () => run(['history', '--cluster', 'sh', '--json', ...common()]),
      (x) => ((JSON.parse(x.out) as { runs: HistoryEntry[] }).runs ?? []).length >= 2 && !/"status":"RUNNING"/.test(x.out),
    );
    expect(r.code, r.err).toBe(0);
    const { runs } = JSON.parse(r.out) as { runs: HistoryEntry[] };
    expect(runs).toHaveLength(2);
    expect(runs[0]).toMatchObject({ workflowId: 'handover-sh', runbook: 'switchover', cluster: 'sh', status: 'COMPLETED', phase: 'done', summary: 'switchover of sh to sh-3' });
    expect(runs[0].durationMs).toBeGreaterThan(0);
    expect(runs[1]).toMatchObject({ workflowId: 'handover-sh', runbook: 'switchover', cluster: 'sh', status: 'TERMINATED', phase: 'starting', summary: 'switchover of sh' });
    expect(Date.parse(runs[0].startTime)).toBeGreaterThan(Date.parse(runs[1].startTime));

    const one = await run(['history', '--cluster', 'sh', '--limit', '1', '--json', ...common()]);
    expect((JSON.parse(one.out) as { runs: HistoryEntry[] }).runs.map((x) => x.status)).toEqual(['COMPLETED']);

    const text = await run(['history', '--cluster', 'sh', ...common()]);
    const [head, first, second] = text.out.trim().split('\n');
    expect(head).toMatch(/^STARTED +STATUS +RUNBOOK +CLUSTER +PHASE +TOOK +WORKFLOW ID +SUMMARY$/);
    expect(first).toMatch(/^\d{4}-\d\d-\d\dT\S+Z +COMPLETED +switchover +sh +done +\d+\.\d s +handover-sh +switchover of sh to sh-3$/);
    expect(second).toMatch(/ TERMINATED +switchover +sh +starting +/);

    // Another cluster's filter does not see these runs.
    const none = await run(['history', '--cluster', 'sh-maria', '--json', ...common()]);
    expect((JSON.parse(none.out) as { runs: HistoryEntry[] }).runs).toEqual([]);
  });

  it('rolling-restart --wait shows the waits from the activities\' heartbeats: restart readiness against its deadline', async () => {
    slowReadiness = true;
    const r = await run(['rolling-restart', '--cluster', 'sh', '--set', 'hz=15', '--wait', ...common()]).finally(() => (slowReadiness = false));
    expect(r.code, r.err).toBe(0);
    const lines = r.out.trim().split('\n');
    // Every replica was restarted and waited for (step lines), the readiness wait showed as a bar line.
    for (const n of ['sh-1', 'sh-2', 'sh-3']) expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^done {5}ready ${n}: wait for ${n} to be linked and caught up \\(`)));
    const bars = lines.filter((l) => /^ {9}(ready|restart) sh-\d: \[[#.]{20}\] +\d+%  sh-\d (ready as a replica of sh-\d|back after the restart): \S+( ms| s|m\d\ds) of 2m00s allowed \(.+\)$/.test(l));
    expect(bars.length, r.out).toBeGreaterThan(0);
    expect(r.out).toMatch(/\nrolled sh: primary is sh-\d\n/);
  });

  it('switchover --require-approval --wait shows the gate while it waits, then who approved it', async () => {
    const io = captureIO();
    const waiting = runSwitchover({ cluster: 'sh', requireApproval: true, wait: true, address: tw.address, taskQueue: tw.taskQueue, inventory }, io);
    // The gate shows in the plain progress lines before anyone approves.
    await eventually(async () => io.lines.join('\n'), (t) => /^running  approval: /m.test(t));
    const ap = captureIO();
    expect((await runApprove({ workflowId: 'handover-sh', approver: 'oncall-alice', address: tw.address, inventory }, ap)).exitCode, ap.text()).toBe(0);
    const r = await waiting;
    expect(r.exitCode, io.text()).toBe(0);
    // The gate is the run's `approval` step: its start while it waits, its end with the approver.
    const gate = io.lines.filter((l) => /^\w+ +approval: /.test(l));
    expect(gate).toHaveLength(2);
    expect(gate[0]).toMatch(/^running  approval: wait for approval of plan [0-9a-f]+ /);
    expect(gate[1]).toMatch(/^done {5}approval: wait for approval of plan [0-9a-f]+ .* — approved by oncall-alice \(plan [0-9a-f]+\)$/);
    // After the decision, and approved before the catch-up starts.
    const at = (re: RegExp) => io.lines.findIndex((l) => re.test(l));
    expect(at(/^done {5}decide:/)).toBeLessThan(at(/^running  approval:/));
    expect(at(/^done {5}approval:/)).toBeLessThan(at(/^(running|done) {2,5}catch-up:/));
  });

  it('status and history refuse cleanly: unknown cluster (exit 2), Temporal unreachable (history exit 4; status still reads the databases)', async () => {
    const unknown = await run(['status', '--cluster', 'nope', ...common()]);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toMatch(/^refused \(UnknownCluster\): unknown cluster "nope".*in the worker's inventory/m);
    const h = await run(['history', '--address', '127.0.0.1:1']);
    expect(h.code).toBe(4);
    expect(h.err).toMatch(/cannot reach Temporal at 127\.0\.0\.1:1/);
    const s = await run(['status', '--cluster', 'sh', '--address', '127.0.0.1:1', '--inventory', inventory]);
    expect(s.code, s.err).toBe(0);
    expect(s.out).toMatch(/^sh \(redis, replication\): primary sh-\d\n/);
    expect(s.out).toMatch(/operations: unknown \(Temporal not reachable\)/);
    expect(s.err).toMatch(/^status read from this machine with its inventory and credentials: cannot reach Temporal/);
  });

  it('status reads on the worker: the CLI needs no inventory of its own; --direct reads from here and needs one', async () => {
    const none = path.join(redis.baseDir, 'no-such-inventory.yaml');
    const w = await run(['status', '--json', '--cluster', 'sh', '--address', tw.address, '--task-queue', tw.taskQueue, '--inventory', none]);
    expect(w.code, w.err).toBe(0);
    const body = JSON.parse(w.out) as { readBy: string; clusters: ClusterStatus[] };
    expect(body.readBy).toBe('worker');
    expect(body.clusters.map((c) => c.cluster)).toEqual(['sh']);
    expect(body.clusters[0].nodes.filter((n) => n.reachable)).toHaveLength(redis.nodes.length);
    const d = await run(['status', '--direct', '--cluster', 'sh', '--address', tw.address, '--task-queue', tw.taskQueue, '--inventory', none]);
    expect(d.code).toBe(2);
    expect(d.err).toMatch(/^refused \(InvalidInventory\): no inventory at /);
  });

  it("a CLI inventory that disagrees with the worker's: status warns (exit 5), a runbook is refused naming the difference, nothing started", async () => {
    const other = path.join(redis.baseDir, 'other.yaml');
    const p2 = redis.nodes[1].port;
    const text = readFileSync(inventory, 'utf8').replace(`port: ${p2}`, `port: ${p2 + 1}`);
    expect(text).not.toBe(readFileSync(inventory, 'utf8'));
    writeFileSync(other, text);
    const conn = ['--address', tw.address, '--task-queue', tw.taskQueue, '--inventory', other];
    const s = await run(['status', '--cluster', 'sh', ...conn]);
    expect(s.code, s.err).toBe(5);
    expect(s.err).toMatch(new RegExp(`warning: InventoryMismatch: .*other\\.yaml and the worker's inventory disagree on cluster sh: nodes\\[1\\]\\.port is ${p2 + 1} here, ${p2} on the worker`));
    const before = (await redis.primary())!.id;
    const sw = await run(['switchover', '--cluster', 'sh', '--wait', ...conn]);
    expect(sw.code).toBe(2);
    expect(sw.err).toMatch(new RegExp(`^refused \\(InventoryMismatch\\): .*nodes\\[1\\]\\.port is ${p2 + 1} here, ${p2} on the worker.*nothing was started`));
    expect((await redis.primary())!.id).toBe(before);
  });
});
