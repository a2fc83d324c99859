/**
 * The exit-code contract (docs/cli.md#exit-codes), as a user meets it: every command run through the real CLI
 * (runMain: commander parsing and its error handling) with its bad inputs, against the real dev server, a real
 * worker and a real Redis fleet. Each case asserts the exit code, one line on stderr naming the failure type, and
 * the same case again with --json: one JSON object on stdout with `type` and `message`, nothing else there.
 *
 *   0 done · 1 failed after changing something · 2 refused / bad input, nothing changed · 3 busy · 4 Temporal or
 *   the cluster unreachable · 5 done with warnings
 *
 * Exit 1 and 5 need a run that fails or warns after the point of no return: they are asserted where those runs
 * are made (rolling-restart-more.test.ts: a replica lost mid-roll, exit 1; switchover-mysql.test.ts: a failing
 * routing hook, exit 5; failover-redis/-mysql: a failing post-failover hook, exit 5; operator-*: abort after
 * the point of no return, exit 5).
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { loadInventory } from '../../inventory/load';
import { startRedisFleet, type RedisFleet } from '../../sandbox/redis';
import { captureIO, runCli, startTestWorker, until, type TestWorker } from '../helpers';
import { warnWhenNoWorker } from '../../client/workers';

/**
 * The CLI's own stderr lines. The in-process test worker logs to the same stderr (multi-line records that start
 * with a timestamp), so only lines in the CLI's forms are taken: every CLI ending starts with one of these words.
 */
const cliLines = (err: string) => err.split('\n').filter((l) => /^(refused|failed|error|unavailable|already running|cannot reach|warning|done with)\b/.test(l));

describe('exit codes: every command, its bad inputs, text and --json', () => {
  let fleet: RedisFleet;
  let tw: TestWorker;
  let inventory: string;
  let deadInventory: string;
  let badInventory: string;
  beforeAll(async () => {
    fleet = await startRedisFleet({ cluster: 'cx' });
    inventory = fleet.writeInventory();
    // The same cluster, every node on a port nothing listens on: "the cluster is unreachable".
    deadInventory = path.join(fleet.baseDir, 'dead.yaml');
    let port = 0;
    writeFileSync(deadInventory, fleet.inventoryYaml().replace(/port: \d+/g, () => `port: ${++port}`));
    badInventory = path.join(fleet.baseDir, 'bad.yaml');
    writeFileSync(badInventory, 'clusters:\n  - name: cx\n    engine: redis\n    nodes:\n      - { id: cx-1, host: "10.0.0.1:6379", port: 6379 }\n      - { id: cx-2, host: 10.0.0.2, port: 6379, promotoin: prefer }\n');
    tw = await startTestWorker({ inventory: () => loadInventory(inventory) });
  });
  afterAll(async () => {
    await tw?.stop();
    await fleet?.stop();
  });

  const conn = () => ['--address', tw.address, '--task-queue', tw.taskQueue, '--inventory', inventory];

  /** Run `args` as text and as --json; both must end with `code`, one line matching `message`, and (json) one object. */
  async function expectEnding(args: string[], code: number, message: RegExp, type?: string | RegExp) {
    const t = await runCli(args);
    expect(t.code, `${args.join(' ')}\n${t.out}\n${t.err}`).toBe(code);
    const lines = cliLines(t.err);
    expect(lines, `${args.join(' ')}\n${t.err}`).toHaveLength(1);
    expect(lines[0]).toMatch(message);
    const j = await runCli([...args, '--json']);
    expect(j.code, `${args.join(' ')} --json\n${j.err}`).toBe(code);
    const outLines = j.out.trim().split('\n');
    expect(outLines, `${args.join(' ')} --json`).toHaveLength(1);
    const obj = JSON.parse(outLines[0]) as { type?: string; message?: string; failed?: boolean };
    expect(obj.failed).toBe(true);
    expect(typeof obj.type).toBe('string');
    if (type) expect(obj.type).toMatch(type);
    expect(obj.message).toMatch(message);
    return { text: t, json: obj };
  }

  // ---- 2: refused or bad input, nothing changed --------------------------------------------------------------
  const BAD: [string, () => string[], RegExp, string][] = [
    ['switchover without --cluster', () => ['switchover', ...conn()], /required option '--cluster <name>' not specified; see handover switchover --help/, 'UsageError'],
    ['a duration without a unit', () => ['switchover', '--cluster', 'cx', '--require-approval', '--approval-timeout', '5', ...conn()], /--approval-timeout 5: a duration needs a unit; say 5s or 5m/, 'UsageError'],
    ['"5 minutes": an extra word', () => ['switchover', '--cluster', 'cx', '--approval-timeout', '5', 'minutes', ...conn()], /too many arguments for 'switchover'/, 'UsageError'],
    ['an unknown flag', () => ['switchover', '--cluster', 'cx', '--bogus', ...conn()], /unknown option '--bogus'/, 'UsageError'],
    ['an unknown cluster', () => ['switchover', '--cluster', 'nope', ...conn()], /refused \(UnknownCluster\)/, 'UnknownCluster'],
    ['an invalid inventory (two problems, one line)', () => ['switchover', '--cluster', 'cx', '--address', tw.address, '--inventory', badInventory], /^refused \(InvalidInventory\): invalid inventory .*bad\.yaml: .*nodes\[0\]\.host: "10\.0\.0\.1:6379" carries a port.*; .*nodes\[1\]\.promotoin/, 'InvalidInventory'],
    ['an unknown node', () => ['switchover', '--cluster', 'cx', '--to', 'nope', ...conn()], /refused \(UnknownNode\)/, 'UnknownNode'],
    ['--set without =', () => ['rolling-restart', '--cluster', 'cx', '--set', 'hz', ...conn()], /--set hz: expected key=value/, 'UsageError'],
    ['rolling-restart with an extra word', () => ['rolling-restart', '--cluster', 'cx', 'now', ...conn()], /too many arguments/, 'UsageError'],
    ['failover: a bad duration', () => ['failover', '--cluster', 'cx', '--approval-timeout', 'soon', ...conn()], /not a duration/, 'UsageError'],
    ['monitor of an unknown cluster', () => ['monitor', '--cluster', 'nope', ...conn()], /refused \(UnknownCluster\)/, 'UnknownCluster'],
    ['monitor --status with no monitor', () => ['monitor', '--cluster', 'cx', '--status', ...conn()], /refused \(NotFound\): no monitor handover-monitor-cx/, 'NotFound'],
    ['backup run --keep abc', () => ['backup', 'run', '--cluster', 'cx', '--keep', 'abc', ...conn()], /--keep "abc": expected a whole number from 1 to 1000/, 'UsageError'],
    ['backup verify without --id', () => ['backup', 'verify', '--cluster', 'cx', ...conn()], /required option '--id <id>'/, 'UsageError'],
    ['backup restore: neither --scratch nor --to', () => ['backup', 'restore', '--cluster', 'cx', '--id', 'x', ...conn()], /exactly one of --scratch/, 'UsageError'],
    ['backup schedule --pause --unpause', () => ['backup', 'schedule', '--cluster', 'cx', '--pause', '--unpause', ...conn()], /--pause and --unpause together/, 'UsageError'],
    ['backup schedule --keep 0', () => ['backup', 'schedule', '--cluster', 'cx', '--keep', '0', ...conn()], /--keep "0": expected a whole number/, 'UsageError'],
    ['backup schedule of none', () => ['backup', 'schedule', '--cluster', 'cx', '--pause', ...conn()], /refused \(NotFound\): no schedule handover-backup-cx/, 'NotFound'],
    ['backup list of an unknown cluster', () => ['backup', 'list', '--cluster', 'nope', ...conn()], /refused \(UnknownCluster\)/, 'UnknownCluster'],
    ['plan of a backup', () => ['plan', 'backup', '--cluster', 'cx', ...conn()], /cannot plan "backup"/, 'UsageError'],
    ['plan without a runbook', () => ['plan', '--cluster', 'cx', ...conn()], /missing required argument 'runbook'/, 'UsageError'],
    ['approve without an ID', () => ['approve', ...conn()], /missing required argument 'workflow-id'/, 'UsageError'],
    ['approve of no run', () => ['approve', 'handover-nope', ...conn()], /refused \(NotFound\): no run handover-nope/, 'NotFound'],
    ['abort of no run', () => ['abort', 'handover-nope', ...conn()], /refused \(NotFound\): no run handover-nope/, 'NotFound'],
    ['status of an unknown cluster', () => ['status', '--cluster', 'nope', ...conn()], /refused \(UnknownCluster\)/, 'UnknownCluster'],
    ['status with an extra word', () => ['status', 'cx', ...conn()], /too many arguments for 'status'/, 'UsageError'],
    ['history --limit abc', () => ['history', '--limit', 'abc', ...conn()], /--limit "abc": expected a whole number from 1 to 1000/, 'UsageError'],
    ['history --limit 0', () => ['history', '--limit', '0', ...conn()], /--limit "0": expected a whole number/, 'UsageError'],
    ['doctor with an extra word', () => ['doctor', 'now', ...conn()], /too many arguments for 'doctor'/, 'UsageError'],
    ['codec-server --port 99999', () => ['codec-server', '--port', '99999'], /--port "99999": expected a whole number from 0 to 65535/, 'UsageError'],
    ['completion for fish', () => ['completion', 'fish'], /no completion for "fish"; say bash or zsh/, 'UsageError'],
    ['an unknown command', () => ['bogus'], /unknown command 'bogus'/, 'UsageError'],
  ];
  for (const [what, args, message, type] of BAD)
    it(`exit 2, ${what}`, async () => {
      const before = await fleet.roles();
      await expectEnding(args(), 2, message, type);
      expect(await fleet.roles()).toEqual(before);
    });

  it('exit 2, refused by the worker before anything changed (switchover to the primary)', async () => {
    await expectEnding(['switchover', '--cluster', 'cx', '--to', 'cx-1', '--wait', ...conn()], 2, /^refused \(PreconditionFailed\): cannot switch over to cx-1: cx-1 is already the primary/, 'PreconditionFailed');
    expect(await fleet.roles()).toEqual({ 'cx-1': 'master', 'cx-2': 'slave', 'cx-3': 'slave' });
  });

  // ---- 4: Temporal unreachable, or the cluster -------------------------------------------------------------
  for (const args of [
    ['switchover', '--cluster', 'cx'],
    ['rolling-restart', '--cluster', 'cx'],
    ['failover', '--cluster', 'cx'],
    ['monitor', '--cluster', 'cx'],
    ['backup', 'run', '--cluster', 'cx'],
    ['backup', 'verify', '--cluster', 'cx', '--id', 'x'],
    ['backup', 'schedule', '--cluster', 'cx', '--trigger'],
    ['plan', 'switchover', '--cluster', 'cx'],
    ['approve', 'handover-cx'],
    ['abort', 'handover-cx'],
    ['history'],
  ])
    it(`exit 4, Temporal unreachable: ${args.slice(0, 2).join(' ')}`, async () => {
      await expectEnding([...args, '--address', '127.0.0.1:1', '--inventory', inventory], 4, /cannot reach Temporal at 127\.0\.0\.1:1/, 'TemporalUnreachable');
    });

  it('exit 4, status of a cluster none of whose nodes answers; its nodes are shown unreachable', async () => {
    const r = await runCli(['status', '--cluster', 'cx', '--address', tw.address, '--inventory', deadInventory]);
    expect(r.code, r.err).toBe(4);
    expect(r.out).toMatch(/cx-1 unreachable/);
  });

  // ---- 3: busy ---------------------------------------------------------------------------------------------
  it('exit 3 while another operation holds the cluster, for every runbook; the holder is named', async () => {
    // A switchover waiting for approval holds the cluster and changes nothing.
    const held = await runCli(['switchover', '--cluster', 'cx', '--require-approval', '--approval-timeout', '5m', ...conn()]);
    expect(held.code, held.err).toBe(0);
    try {
      for (const args of [['switchover', '--cluster', 'cx'], ['rolling-restart', '--cluster', 'cx'], ['failover', '--cluster', 'cx'], ['backup', 'run', '--cluster', 'cx'], ['plan', 'switchover', '--cluster', 'cx']])
        await expectEnding([...args, ...conn()], 3, /^already running: handover-cx \(switchover, run [0-9a-f-]+\)$/, 'AlreadyRunning');
    } finally {
      const a = await runCli(['abort', 'handover-cx', ...conn()]);
      expect(a.code, a.err).toBe(0);
      expect(a.out).toMatch(/aborted/);
    }
    expect(await fleet.roles()).toEqual({ 'cx-1': 'master', 'cx-2': 'slave', 'cx-3': 'slave' });
  });

  // ---- 0 --------------------------------------------------------------------------------------------------
  it('exit 0: --version, --help with examples and the exit-code table, global options before the command', async () => {
    const v = await runCli(['--version']);
    expect(v.code).toBe(0);
    expect(v.out.trim()).toMatch(/^handover \d+\.\d+\.\d+$/);
    const h = await runCli(['--help']);
    expect(h.code).toBe(0);
    expect(h.out).toMatch(/Examples:\n\s+handover status --cluster cache-a/);
    expect(h.out).toMatch(/Exit codes:\n\s+0 {2}done\n\s+1 {2}failed after changing something/);
    expect(h.out).toMatch(/ {2}5 {2}done with warnings/);
    const sub = await runCli(['switchover', '--help']);
    expect(sub.code).toBe(0);
    expect(sub.out).toMatch(/--approval-timeout <duration>/);
    // Global options before the command and after it give the same answer.
    const before = await runCli(['--json', '--inventory', inventory, '--address', tw.address, 'status', '--cluster', 'cx']);
    const after = await runCli(['status', '--cluster', 'cx', '--json', '--inventory', inventory, '--address', tw.address]);
    expect(before.code, before.err).toBe(0);
    expect(after.code, after.err).toBe(0);
    expect(JSON.parse(before.out).clusters[0].primaries).toEqual(['cx-1']);
    expect(JSON.parse(after.out).clusters[0].primaries).toEqual(['cx-1']);
    // rolling-restart keeps its own --version (the version every node must run).
    const plan = await runCli(['plan', 'rolling-restart', '--cluster', 'cx', '--version', '7.0', ...conn()]);
    expect(plan.out).not.toMatch(/^handover \d/);
    expect(plan.err).not.toMatch(/UsageError/);
    expect(plan.code, plan.err).toBe(0);
    expect(plan.out).toMatch(/changed nothing/);
  });

  it('plan warns, before anything runs, about a replica that will not follow (its link down: a wrong masterauth)', async () => {
    const c = fleet.nodes[2].client();
    try {
      await c.call('CONFIG', 'SET', 'masterauth', 'wrong-password');
      await c.call('CLIENT', 'KILL', 'TYPE', 'master');
      await until('cx-3 sees its link down', async () => !/master_link_status:up/.test(await c.info('replication')), 10_000);
      const r = await runCli(['plan', 'switchover', '--cluster', 'cx', '--to', 'cx-2', ...conn()]);
      expect(r.code, r.err).toBe(0);
      expect(r.out).toMatch(/! cx-3 will not follow the new primary: its replication link to cx-1 is down \(down; wrong replication credentials, or the network\); the switchover would refuse \(nothing changed\) unless --allow-degraded, which hands the primary over and leaves it behind/);
      expect(r.out).not.toMatch(/cx-2 will not follow/);
    } finally {
      await c.call('CONFIG', 'SET', 'masterauth', fleet.password);
      await until('cx-3 sees its link up again', async () => /master_link_status:up/.test(await c.info('replication')), 10_000);
      c.disconnect();
    }
    expect(await fleet.roles()).toEqual({ 'cx-1': 'master', 'cx-2': 'slave', 'cx-3': 'slave' });
  });

  it('completion: bash completes commands, subcommands and each command\'s flags; zsh gets the same through bashcompinit', async () => {
    const b = await runCli(['completion', 'bash']);
    expect(b.code).toBe(0);
    expect(b.out).toMatch(/complete -o default -F _handover handover/);
    expect(b.out).toMatch(/"backup run"\) words="[^"]*--keep/);
    expect(b.out).toMatch(/"switchover"\) words="[^"]*--approval-timeout/);
    const z = await runCli(['completion', 'zsh']);
    expect(z.code).toBe(0);
    expect(z.out).toMatch(/^#compdef handover/);
    expect(z.out).toMatch(/bashcompinit/);
  });

  it('--wait: a run no worker picks up is said so on stderr within a few seconds', async () => {
    const queue = `nobody-${randomUUID()}`;
    const handle = await tw.env.client.workflow.start('switchover', { workflowId: `handover-nobody-${randomUUID()}`, taskQueue: queue, args: [{ cluster: 'cx', dryRun: true }] });
    const io = captureIO();
    const t0 = Date.now();
    const stop = warnWhenNoWorker(tw.env.client, handle, queue, io, 1000);
    try {
      await until('the warning', async () => io.errors.length > 0, 5000, 20);
    } finally {
      stop();
      await handle.terminate('test done');
    }
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(io.errors).toEqual([expect.stringMatching(new RegExp(`^warning: no worker polls task queue ${queue} in namespace default .*start one \\(bin/handover-worker\\)`))]);
    // And a run a worker takes is not warned about.
    const ok = await tw.env.client.workflow.start('switchover', { workflowId: `handover-cx-plan-${randomUUID()}`, taskQueue: tw.taskQueue, args: [{ cluster: 'cx', dryRun: true }] });
    const io2 = captureIO();
    const stop2 = warnWhenNoWorker(tw.env.client, ok, tw.taskQueue, io2, 1000);
    await ok.result().catch(() => undefined);
    // The look after 1 s was made, and did not warn.
    expect(await stop2.looked).toBe(false);
    stop2();
    expect(io2.errors).toEqual([]);
  });
});
