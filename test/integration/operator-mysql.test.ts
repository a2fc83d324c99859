/**
 * Operator commands on MariaDB (1 primary + 2 GTID replicas, real mariadbd processes) against the real dev
 * server, run as a user runs them (commander parseAsync): `plan` runs only probe and decide; approval;
 * abort during the catch-up (the old primary is fenced read-only then: the abort makes it writable again)
 * and after the point of no return (the run finishes forward). Each test sets the primary it starts from
 * (fleet.setPrimary) and does not depend on another test having run.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { operationWorkflowId } from '../../core/ids';
import type { RunbookProgress } from '../../core/types';
import { loadInventory } from '../../inventory/load';
import { startMariaFleet, type MariaFleet, type NodeState } from '../../sandbox/mariadb';
import { sleep } from '../../sandbox/ports';
import { startTestWorker, type TestWorker, runCli } from '../helpers';

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

/** read_only and replication source per node: the topology as an operator sees it. */
function topology(s: Record<string, NodeState>): Record<string, string> {
  return Object.fromEntries(Object.entries(s).map(([id, n]) => [id, n.up ? `${n.readOnly ? 'ro' : 'rw'} ${n.source ?? 'primary'}` : 'down']));
}

describe('operator commands: plan, approve, abort (MariaDB)', () => {
  let fleet: MariaFleet;
  let tw: TestWorker;
  let inventory: string;
  let hold: Hold | undefined;
  const id = () => operationWorkflowId(fleet.cluster);

  beforeAll(async () => {
    fleet = await startMariaFleet({ cluster: 'opm' });
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
  const progress = () => tw.env.client.workflow.getHandle(id()).query<RunbookProgress>('progress');
  async function waitFor<T>(what: string, f: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const v = await f().catch(() => undefined);
      if (v) return v;
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
      await sleep(100);
    }
  }
  async function activityTypes(): Promise<string[]> {
    const h = await tw.env.client.workflow.getHandle(id()).fetchHistory();
    return [...new Set((h.events ?? []).map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name).filter((n): n is string => !!n))].sort();
  }
  /** Nodes that take application writes (read_only OFF). */
  async function writableNodes(): Promise<string[]> {
    const s = await fleet.state();
    return Object.entries(s).filter(([, n]) => n.up && n.readOnly === false).map(([id]) => id);
  }

  it('plan switchover runs only probe and decide and changes nothing', async () => {
    await fleet.setPrimary('opm-1');
    const before = await fleet.state();
    const r = await run(['plan', 'switchover', '--cluster', 'opm', ...common()]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/plan for opm \(dry run, nothing changed\)/);
    expect(r.out).toMatch(/candidate opm-[23] at /);
    expect(r.out).toMatch(/make opm-1 read-only \(application sessions get \d+ ms, then are killed\)/);
    expect(await activityTypes()).toEqual(['describeCluster', 'probeMysqlCluster']);
    expect(await fleet.state()).toEqual(before);
  });

  it('abort during the catch-up (old primary fenced): the undo makes it writable again, the same primary', async () => {
    await fleet.setPrimary('opm-1');
    const before = topology(await fleet.state());
    expect(before['opm-1']).toBe('rw primary');
    hold = new Hold('ensureMysqlCaughtUp.loop');
    try {
      const s = await run(['switchover', '--cluster', 'opm', '--to', 'opm-2', ...common()]);
      expect(s.code, s.err).toBe(0);
      await hold.reached;
      // The fence holds: nothing writable while the candidate catches up.
      expect(await writableNodes()).toEqual([]);
      const a = await run(['abort', id(), ...common()]);
      expect(a.code, a.err).toBe(0);
      expect(a.out).toMatch(/^aborted: switchover of opm aborted by the operator before the point of no return: nothing changed; opm-1 was made writable again and is still the primary/);
    } finally {
      hold.release();
      hold = undefined;
    }
    expect(await writableNodes()).toEqual(['opm-1']);
    expect(topology(await fleet.state())).toEqual(before);
    const p = await progress();
    expect(p.steps.find((x) => x.name === 'undo')?.status).toBe('done');
    expect(p.phase).toBe('aborted');
  });

  it('--require-approval then approve: the switchover completes with the approver recorded', async () => {
    await fleet.setPrimary('opm-1');
    const s = await run(['switchover', '--cluster', 'opm', '--to', 'opm-2', '--require-approval', ...common()]);
    expect(s.code, s.err).toBe(0);
    const gate = await waitFor('the approval gate', async () => ((await progress()).approval?.status === 'waiting' ? (await progress()).approval : undefined));
    expect(await writableNodes()).toEqual(['opm-1']);
    const ok = await run(['approve', id(), '--plan-hash', gate.planHash, '--approver', 'carol', '--reason', 'ticket 42', ...common()]);
    expect(ok.code, ok.err).toBe(0);
    const report = (await tw.env.client.workflow.getHandle(id()).result()) as { newPrimary: string; approval: unknown };
    expect(report).toMatchObject({ newPrimary: 'opm-2', approval: { approver: 'carol', planHash: gate.planHash } });
    expect(await writableNodes()).toEqual(['opm-2']);
    expect((await progress()).audit.join('\n')).toMatch(/approval: approved by carol \(plan [0-9a-f]{16}\): ticket 42/);
  });

  it('abort after the point of no return (held during the promotion): the run finishes forward (exit 5)', async () => {
    await fleet.setPrimary('opm-2');
    hold = new Hold('ensureMysqlPrimary.stopped');
    let a: { code: number; out: string; err: string };
    try {
      const s = await run(['switchover', '--cluster', 'opm', '--to', 'opm-1', ...common()]);
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
    expect(a.out.trim()).toBe('abort requested after the point of no return: finished forward (opm-1 is the primary)');
    expect(await writableNodes()).toEqual(['opm-1']);
    const t = topology(await fleet.state());
    expect(t['opm-2']).toMatch(/^ro /);
    expect(t['opm-3']).toMatch(/^ro /);
  });

  it('plan failover (primary SIGKILLed) confirms and decides, read-only: the plan is printed, nothing promoted', async () => {
    await fleet.setPrimary('opm-1');
    await fleet.nodes[0].stop('SIGKILL');
    const before = await fleet.state();
    const r = await run(['plan', 'failover', '--cluster', 'opm', ...common()]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/plan for opm \(dry run, nothing changed\): fail over from opm-1 \(dead\) to opm-[23]/);
    expect(r.out).toMatch(/promote opm-[23]: stop and reset replication, read_only OFF \(point of no return\)/);
    // readMaintenance: the maintenance windows the failover honours (read-only).
    expect(await activityTypes()).toEqual(['describeCluster', 'probeMysqlFailover', 'readMaintenance']);
    expect(await fleet.state()).toEqual(before);
    expect(await writableNodes()).toEqual([]);
  });
});
