/**
 * Operator commands against the real dev server, a real worker and real Redis processes, run as a user runs
 * them (commander parseAsync): `plan` (probe and decide only), `--require-approval` with `approve` (accept,
 * reject, validator refusals, timeout) and `abort` (while waiting for approval, during the catch-up, after the
 * point of no return). Each test sets the roles it starts from (setRedisPrimary) and does not depend on
 * another test having run.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { operationWorkflowId } from '../../core/ids';
import type { RunbookProgress } from '../../core/types';
import { loadInventory } from '../../inventory/load';
import { setRedisPrimary, startRedisFleet, type RedisFleet } from '../../sandbox/redis';
import { sleep } from '../../sandbox/ports';
import { captureIO, commandCalls, startTestWorker, type TestWorker, runCli } from '../helpers';
import { runSwitchover } from '../../client/commands/switchover';

const MUTATING = ['replicaof', 'slaveof', 'client|pause', 'client|unpause', 'failover', 'config|set', 'config|rewrite', 'shutdown'];

/** A failpoint the test can hold: the activity waits at it until released. */
class Hold {
  private release_?: () => void;
  private reached_?: () => void;
  readonly reached: Promise<void>;
  private readonly released: Promise<void>;
  constructor(readonly name: string) {
    this.reached = new Promise((r) => (this.reached_ = r));
    this.released = new Promise((r) => (this.release_ = r));
  }
  async at(): Promise<void> {
    this.reached_!();
    await this.released;
  }
  release(): void {
    this.release_!();
  }
}

describe('operator commands: plan, approve, abort (Redis)', () => {
  let fleet: RedisFleet;
  let tw: TestWorker;
  let inventory: string;
  let hold: Hold | undefined;
  const id = () => operationWorkflowId(fleet.cluster);

  beforeAll(async () => {
    fleet = await startRedisFleet({ cluster: 'ops' });
    inventory = fleet.writeInventory();
    tw = await startTestWorker({
      inventory: () => loadInventory(inventory),
      failpoint: async (name) => {
        if (hold && hold.name === name) await hold.at();
      },
    });
  });
  afterAll(async () => {
    hold?.release();
    await tw?.stop();
    await fleet?.stop();
  });

  const run = runCli;
  const common = () => ['--address', tw.address, '--task-queue', tw.taskQueue, '--inventory', inventory];
  /** The CLI's own error lines (the in-process worker logs to stderr too). */
  const cliErrors = (err: string) => err.split('\n').filter((l) => /^(refused|failed)/.test(l));

  async function progress(): Promise<RunbookProgress> {
    return tw.env.client.workflow.getHandle(id()).query<RunbookProgress>('progress');
  }
  async function waitFor<T>(what: string, f: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const v = await f().catch(() => undefined);
      if (v) return v;
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
      await sleep(100);
    }
  }
  const waitingForApproval = () => waitFor('the approval gate', async () => ((await progress()).approval?.status === 'waiting' ? (await progress()).approval : undefined));
  async function activityTypes(): Promise<string[]> {
    const h = await tw.env.client.workflow.getHandle(id()).fetchHistory();
    return [...new Set((h.events ?? []).map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name).filter((n): n is string => !!n))].sort();
  }
  async function primaryWritable(): Promise<string> {
    const p = await fleet.primary();
    const c = p!.client();
    try {
      await c.set('operator-test', String(Date.now()));
      return p!.id;
    } finally {
      c.disconnect();
    }
  }
  const mutatingCalls = async () => {
    const calls = await commandCalls(fleet, MUTATING);
    return calls;
  };

  it('plan switchover runs only probe and decide: the plan is printed, no mutating command reaches a server', async () => {
    await setRedisPrimary(fleet, 'ops-1');
    const before = await mutatingCalls();
    const r = await run(['plan', 'switchover', '--cluster', 'ops', ...common()]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/plan for ops \(dry run, nothing changed\)/);
    expect(r.out).toMatch(/candidate ops-2: replica of ops-1/);
    expect(r.out).toMatch(/hand ops-1 -> ops-2 over \(pause-promote; writes paused at most 5000 ms\)/);
    expect(await activityTypes()).toEqual(['describeCluster', 'probeRedisCluster']);
    expect(await mutatingCalls()).toEqual(before);
  });

  it('plan rolling-restart --json runs only the probe: stale nodes and the first action, nothing changed', async () => {
    await setRedisPrimary(fleet, 'ops-1');
    const before = await mutatingCalls();
    const r = await run(['plan', 'rolling-restart', '--cluster', 'ops', '--set', 'maxmemory-policy=allkeys-lru', '--json', ...common()]);
    expect(r.code, r.err).toBe(0);
    const report = JSON.parse(r.out.trim().split('\n').pop()!);
    expect(report).toMatchObject({ runbook: 'rolling-restart', dryRun: true, restarts: [], handovers: [] });
    expect(report.staleAtStart.map((s: { node: string }) => s.node).sort()).toEqual(['ops-1', 'ops-2', 'ops-3']);
    expect(report.audit.join('\n')).toMatch(/first action: restart ops-[23]/);
    // readMaintenance: the maintenance windows the roll honours (read-only).
    expect(await activityTypes()).toEqual(['describeCluster', 'probeRedisSpecs', 'readMaintenance']);
    expect(await mutatingCalls()).toEqual(before);
  });

  it('plan of an unknown runbook is refused in one line with exit code 2', async () => {
    const r = await run(['plan', 'backup', '--cluster', 'ops', ...common()]);
    expect(r.code).toBe(2);
    expect(cliErrors(r.err)).toEqual(['refused (UsageError): cannot plan "backup"; plan one of: switchover, rolling-restart, failover']);
  });

  it('--require-approval: the validator refuses a wrong plan hash and a missing approver; approve then completes the switchover', async () => {
    await setRedisPrimary(fleet, 'ops-1');
    const before = await mutatingCalls();
    const s = await run(['switchover', '--cluster', 'ops', '--to', 'ops-2', '--require-approval', ...common()]);
    expect(s.code, s.err).toBe(0);
    expect(s.out).toMatch(/waits for approval .*handover approve handover-ops/);
    const gate = await waitingForApproval();
    expect(gate.planHash).toMatch(/^[0-9a-f]{16}$/);
    expect(gate.plan.join('\n')).toMatch(/hand ops-1 -> ops-2 over/);
    const p = await progress();
    expect(p.phase).toBe('approval');
    // The approval step is listed where it happens: after decide, before the catch-up.
    expect(p.steps.map((x) => x.name).slice(0, 4)).toEqual(['probe', 'decide', 'approval', 'catch-up']);
    // Nothing changed while waiting.
    expect(await mutatingCalls()).toEqual(before);

    const wrong = await run(['approve', id(), '--plan-hash', '0123456789abcdef', '--approver', 'alice', ...common()]);
    expect(wrong.code).toBe(2);
    expect(cliErrors(wrong.err)).toEqual([`refused (InvalidApproval): plan hash 0123456789abcdef does not match the plan waiting for approval (${gate.planHash}); re-read the plan`]);
    const nobody = await run(['approve', id(), '--plan-hash', gate.planHash, '--approver', '', ...common()]);
    expect(nobody.code).toBe(2);
    expect(cliErrors(nobody.err)).toEqual(['refused (InvalidApproval): an approval must name its approver (--approver, default $USER)']);
    expect((await progress()).approval?.status).toBe('waiting');

    // Without --plan-hash: the waiting plan is read, printed with its hash, and approved.
    const ok = await run(['approve', id(), '--approver', 'alice', ...common()]);
    expect(ok.code, ok.err).toBe(0);
    expect(ok.out).toContain(`plan ${gate.planHash} of ${id()}: switch ops over from ops-1 to ops-2`);
    expect(ok.out).toContain(`approved plan ${gate.planHash} of ${id()} as alice`);
    const report = (await tw.env.client.workflow.getHandle(id()).result()) as { newPrimary: string; approval: { approver: string; planHash: string } };
    expect(report.newPrimary).toBe('ops-2');
    expect(report.approval).toEqual({ approver: 'alice', planHash: gate.planHash });
    expect(await fleet.roles()).toEqual({ 'ops-1': 'slave', 'ops-2': 'master', 'ops-3': 'slave' });
    // A second approve finds nothing waiting.
    const again = await run(['approve', id(), '--approver', 'alice', ...common()]);
    expect(again.code).toBe(2);
    expect(cliErrors(again.err)[0]).toMatch(/^refused \(InvalidApproval\): handover-ops is not waiting for approval \(approval approved by alice/);
  });

  it('--reject ends the run with nothing changed (ApprovalRejected, exit 2 for a --wait follower)', async () => {
    await setRedisPrimary(fleet, 'ops-2');
    const before = await mutatingCalls();
    // The follower (--wait) runs beside the CLI under test: it gets its own IO rather than the process's.
    const fio = captureIO();
    const follower = runSwitchover({ cluster: 'ops', to: 'ops-3', requireApproval: true, wait: true, address: tw.address, taskQueue: tw.taskQueue, inventory }, fio);
    await waitingForApproval();
    const rej = await run(['approve', id(), '--reject', '--reason', 'change freeze', '--approver', 'bob', ...common()]);
    const f = await follower;
    expect(rej.code, rej.err).toBe(0);
    expect(rej.out).toMatch(/rejected plan [0-9a-f]{16} of handover-ops as bob \(change freeze\); the run ends with nothing changed/);
    expect(f.exitCode, fio.text()).toBe(2);
    expect(fio.errors).toEqual([expect.stringMatching(/^refused \(ApprovalRejected\): plan [0-9a-f]{16} for ops rejected by bob: change freeze; nothing was changed$/)]);
    expect(fio.lines.join('\n')).toMatch(/failed +approval: wait for approval of plan [0-9a-f]{16} \(handover approve; at most 30m\)( \(\d+(\.\d+)? m?s\))? — plan [0-9a-f]{16} for ops rejected by bob/);
    expect(await fleet.roles()).toEqual({ 'ops-1': 'slave', 'ops-2': 'master', 'ops-3': 'slave' });
    expect(await mutatingCalls()).toEqual(before);
    expect(await activityTypes()).toEqual(['describeCluster', 'probeRedisCluster']);
  });

  it('--approval-timeout ends the run with nothing changed (ApprovalTimedOut)', async () => {
    await setRedisPrimary(fleet, 'ops-2');
    const before = await mutatingCalls();
    const r = await run(['switchover', '--cluster', 'ops', '--to', 'ops-3', '--require-approval', '--approval-timeout', '2s', '--wait', ...common()]);
    expect(r.code).toBe(2);
    expect(cliErrors(r.err)).toEqual([expect.stringMatching(/^refused \(ApprovalTimedOut\): no approval of plan [0-9a-f]{16} for ops within 2s; nothing was changed$/)]);
    expect(await fleet.roles()).toEqual({ 'ops-1': 'slave', 'ops-2': 'master', 'ops-3': 'slave' });
    expect(await mutatingCalls()).toEqual(before);
  });

  it('abort while waiting for approval: aborted, nothing changed, the same primary still writable', async () => {
    await setRedisPrimary(fleet, 'ops-2');
    const before = await mutatingCalls();
    const s = await run(['switchover', '--cluster', 'ops', '--to', 'ops-3', '--require-approval', ...common()]);
    expect(s.code, s.err).toBe(0);
    await waitingForApproval();
    const a = await run(['abort', id(), ...common()]);
    expect(a.code, a.err).toBe(0);
    expect(a.out).toMatch(/^aborted: switchover of ops aborted by the operator before the point of no return: nothing changed; ops-2 is still the primary and writable/);
    expect(await primaryWritable()).toBe('ops-2');
    expect(await fleet.roles()).toEqual({ 'ops-1': 'slave', 'ops-2': 'master', 'ops-3': 'slave' });
    expect(await mutatingCalls()).toEqual(before);
    const p = await progress();
    expect(p.approval?.status).toBe('aborted');
    expect(p.phase).toBe('aborted');
    // Nothing left to abort.
    const again = await run(['abort', id(), ...common()]);
    expect(again.code).toBe(2);
    expect(cliErrors(again.err)).toEqual(['refused (NotRunning): handover-ops is failed; there is nothing to abort']);
  });

  it('abort during the catch-up (held at a failpoint): aborted, nothing changed, the same primary still writable', async () => {
    await setRedisPrimary(fleet, 'ops-2');
    const before = await mutatingCalls();
    hold = new Hold('waitForRedisCatchUp.loop');
    try {
      const s = await run(['switchover', '--cluster', 'ops', '--to', 'ops-3', ...common()]);
      expect(s.code, s.err).toBe(0);
      await hold.reached;
      expect((await progress()).phase).toBe('catch-up');
      const a = await run(['abort', id(), ...common()]);
      expect(a.code, a.err).toBe(0);
      expect(a.out).toMatch(/^aborted: switchover of ops aborted by the operator before the point of no return: nothing changed; ops-2 is still the primary and writable/);
    } finally {
      hold.release();
      hold = undefined;
    }
    expect(await primaryWritable()).toBe('ops-2');
    expect(await fleet.roles()).toEqual({ 'ops-1': 'slave', 'ops-2': 'master', 'ops-3': 'slave' });
    expect(await mutatingCalls()).toEqual(before);
    expect(await activityTypes()).toEqual(['describeCluster', 'probeRedisCluster', 'waitForRedisCatchUp']);
  });

  it('abort after the point of no return (held while repointing): the run finishes forward and says so (exit 5)', async () => {
    // ops-2 is primary; hand over to ops-1, and hold the repoint of ops-3 (past the point of no return).
    await setRedisPrimary(fleet, 'ops-2');
    hold = new Hold('ensureRedisReplicaOf.beforeAct');
    let a: { code: number; out: string; err: string };
    try {
      const s = await run(['switchover', '--cluster', 'ops', '--to', 'ops-1', ...common()]);
      expect(s.code, s.err).toBe(0);
      await hold.reached;
      expect((await progress()).pointOfNoReturnPassed).toBe(true);
      const aborting = run(['abort', id(), ...common()]);
      await waitFor('the abort to be seen', async () => (await progress()).abortRequested);
      hold.release();
      a = await aborting;
    } finally {
      hold.release();
      hold = undefined;
    }
    expect(a.code, a.err).toBe(5);
    expect(a.out.trim()).toBe('abort requested after the point of no return: finished forward (ops-1 is the primary)');
    expect(await fleet.roles()).toEqual({ 'ops-1': 'master', 'ops-2': 'slave', 'ops-3': 'slave' });
    expect(await primaryWritable()).toBe('ops-1');
    const p = await progress();
    expect(p.phase).toBe('done');
    expect(p.audit.join('\n')).toMatch(/abort: abort requested after the point of no return: finished forward \(ops-1 is the primary\)/);
  });

  const runIds = async () => Object.fromEntries(Object.entries(await commandCalls(fleet, [])).map(([k, v]) => [k, v.trim()]));

  it('rolling-restart --require-approval, aborted while waiting: nothing restarted', async () => {
    await setRedisPrimary(fleet, 'ops-1');
    const before = await runIds();
    const s = await run(['rolling-restart', '--cluster', 'ops', '--set', 'hz=20', '--require-approval', ...common()]);
    expect(s.code, s.err).toBe(0);
    const gate = await waitingForApproval();
    expect(gate.plan).toEqual(expect.arrayContaining(['restart stale ops-1 (hz=10, wanted 20)', expect.stringMatching(/^first action: restart ops-[23]$/)]));
    const a = await run(['abort', id(), ...common()]);
    expect(a.code, a.err).toBe(0);
    expect(a.out.trim()).toBe('aborted: rolling restart of ops aborted by the operator while waiting for approval: nothing changed');
    expect(await runIds()).toEqual(before);
  });

  it('rolling-restart approved, then aborted during the first restart: that restart finishes, the roll stops before the next', async () => {
    await setRedisPrimary(fleet, 'ops-1');
    const before = await runIds();
    hold = new Hold('ensureRedisNodeRestarted.beforeRestart');
    let a: { code: number; out: string; err: string };
    try {
      // A setting of its own (hz=24): every node is stale whatever another test restarted.
      const s = await run(['rolling-restart', '--cluster', 'ops', '--set', 'hz=24', '--require-approval', ...common()]);
      expect(s.code, s.err).toBe(0);
      const gate = await waitingForApproval();
      const ok = await run(['approve', id(), '--plan-hash', gate.planHash, '--approver', 'dave', ...common()]);
      expect(ok.code, ok.err).toBe(0);
      await hold.reached;
      const aborting = run(['abort', id(), ...common()]);
      await waitFor('the abort to be seen', async () => (await progress()).abortRequested);
      hold.release();
      a = await aborting;
    } finally {
      hold.release();
      hold = undefined;
    }
    expect(a.code, a.err).toBe(0);
    expect(a.out.trim()).toMatch(/^aborted: rolling restart of ops aborted by the operator between steps: 1 node\(s\) restarted \(ops-[23]\), 0 handover\(s\); the step in flight had finished; re-run rolling-restart to roll the remaining stale nodes$/);
    const after = await runIds();
    const restarted = Object.keys(before).filter((k) => before[k].split(' ')[1] !== after[k].split(' ')[1]);
    expect(restarted).toHaveLength(1);
    expect(await fleet.roles()).toEqual({ 'ops-1': 'master', 'ops-2': 'slave', 'ops-3': 'slave' });
    expect(await primaryWritable()).toBe('ops-1');
  }, 60_000);
});

describe('operator commands on an unplanned failover (Redis, primary SIGKILLed)', () => {
  let fleet: RedisFleet;
  let tw: TestWorker;
  let inventory: string;
  const id = () => operationWorkflowId(fleet.cluster);

  beforeAll(async () => {
    fleet = await startRedisFleet({ cluster: 'opf' });
    inventory = fleet.writeInventory(undefined, { policy: { probeIntervalMs: 200, probesToConfirm: 2 } });
    tw = await startTestWorker({ inventory: () => loadInventory(inventory) });
    await fleet.nodes[0].stop('SIGKILL');
  });
  afterAll(async () => {
    await tw?.stop();
    await fleet?.stop();
  });

  const run = runCli;
  const common = () => ['--address', tw.address, '--task-queue', tw.taskQueue, '--inventory', inventory];
  const progress = () => tw.env.client.workflow.getHandle(id()).query<RunbookProgress>('progress');
  const live = () => commandCalls({ ...fleet, nodes: fleet.nodes.slice(1) } as RedisFleet, MUTATING);
  async function waitingForApproval() {
    for (const until = Date.now() + 20_000; Date.now() < until; await sleep(100)) {
      const p = await progress().catch(() => undefined);
      if (p?.approval?.status === 'waiting') return p.approval;
    }
    throw new Error('timed out waiting for the approval gate');
  }

  it('plan failover confirms the primary dead and decides, read-only: the plan is printed, nothing promoted', async () => {
    await setRedisPrimary(fleet, 'opf-1'); // (dead) both live nodes its replicas
    const before = await live();
    const r = await run(['plan', 'failover', '--cluster', 'opf', ...common()]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/plan for opf \(dry run, nothing changed\): fail over from opf-1 \(dead\) to opf-2/);
    expect(r.out).toMatch(/1\. promote opf-2 to primary \(point of no return\)\n\s+2\. make opf-3 a replica of opf-2/);
    const h = await tw.env.client.workflow.getHandle(id()).fetchHistory();
    const types = new Set((h.events ?? []).map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name).filter(Boolean));
    // readMaintenance: the maintenance windows the failover honours (read-only).
    expect([...types].sort()).toEqual(['describeCluster', 'probeRedisCluster', 'readMaintenance']);
    expect(await live()).toEqual(before);
    expect(await fleet.roles()).toEqual({ 'opf-1': 'down', 'opf-2': 'slave', 'opf-3': 'slave' });
  });

  it('failover --require-approval: aborted while waiting promotes nothing; approved, it promotes the candidate', async () => {
    await setRedisPrimary(fleet, 'opf-1');
    const before = await live();
    const s = await run(['failover', '--cluster', 'opf', '--force', '--require-approval', ...common()]);
    expect(s.code, s.err).toBe(0);
    await waitingForApproval();
    const a = await run(['abort', id(), ...common()]);
    expect(a.code, a.err).toBe(0);
    expect(a.out.trim()).toBe('aborted: failover of opf aborted by the operator before the point of no return: nothing changed; nothing was promoted');
    expect(await live()).toEqual(before);
    expect(await fleet.roles()).toEqual({ 'opf-1': 'down', 'opf-2': 'slave', 'opf-3': 'slave' });

    const s2 = await run(['failover', '--cluster', 'opf', '--force', '--require-approval', ...common()]);
    expect(s2.code, s2.err).toBe(0);
    const gate = await waitingForApproval();
    expect(gate.plan[0]).toBe('promote opf-2 to primary (point of no return)');
    const ok = await run(['approve', id(), '--plan-hash', gate.planHash, '--approver', 'erin', ...common()]);
    expect(ok.code, ok.err).toBe(0);
    const report = (await tw.env.client.workflow.getHandle(id()).result()) as { newPrimary: string; approval: unknown };
    expect(report).toMatchObject({ newPrimary: 'opf-2', approval: { approver: 'erin', planHash: gate.planHash } });
    expect(await fleet.roles()).toEqual({ 'opf-1': 'down', 'opf-2': 'master', 'opf-3': 'slave' });
  });
});
