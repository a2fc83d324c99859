/** The CLI as a user runs it: commander parsing (parseAsync) into the real command against the real server. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadInventory } from '../../inventory/load';
import { startRedisFleet, type RedisFleet } from '../../sandbox/redis';
import { startTestWorker, type TestWorker, runCli } from '../helpers';

describe('handover CLI', () => {
  let fleet: RedisFleet;
  let tw: TestWorker;
  let inventory: string;
  beforeAll(async () => {
    fleet = await startRedisFleet({ cluster: 'cli' });
    inventory = fleet.writeInventory();
    tw = await startTestWorker({ inventory: () => loadInventory(inventory) });
  });
  afterAll(async () => {
    await tw?.stop();
    await fleet?.stop();
  });

  const run = runCli;

  const common = () => ['--address', tw.address, '--task-queue', tw.taskQueue, '--inventory', inventory];

  it('--dry-run prints the plan and changes nothing', async () => {
    const r = await run(['switchover', '--cluster', 'cli', '--dry-run', ...common()]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/plan for cli \(dry run, nothing changed\)/);
    expect(r.out).toMatch(/candidate cli-2: replica of cli-1 with its link up/);
    expect(r.out).toMatch(/3\. hand cli-1 -> cli-2 over \(pause-promote; writes paused at most 5000 ms\)/);
    expect(await fleet.roles()).toEqual({ 'cli-1': 'master', 'cli-2': 'slave', 'cli-3': 'slave' });
  });

  it('--wait --json switches over and prints the report as JSON', async () => {
    const r = await run(['switchover', '--cluster', 'cli', '--to', 'cli-3', '--wait', '--json', ...common()]);
    expect(r.code, r.err).toBe(0);
    const report = JSON.parse(r.out.trim().split('\n').pop()!);
    expect(report).toMatchObject({ runbook: 'switchover', cluster: 'cli', oldPrimary: 'cli-1', newPrimary: 'cli-3', dryRun: false });
    expect(report.verify.nodes).toHaveLength(3);
    expect(await fleet.roles()).toEqual({ 'cli-1': 'slave', 'cli-2': 'slave', 'cli-3': 'master' });
  });

  it('a refusal is one line on stderr with exit code 2', async () => {
    const r = await run(['switchover', '--cluster', 'cli', '--to', 'cli-3', '--wait', ...common()]);
    expect(r.code).toBe(2);
    // (the in-process test worker logs to stderr too; the CLI's own error is its one line)
    expect(r.err.split('\n').filter((l) => /^(refused|failed)/.test(l))).toEqual(['refused (PreconditionFailed): cannot switch over to cli-3: cli-3 is already the primary']);
  });

  it('failover --dry-run on a live primary: refused (use switchover), nothing changed', async () => {
    // (The plan of a failover with the primary down is tested in operator-redis.test.ts, "plan failover".)
    const before = await fleet.roles();
    const r = await run(['failover', '--cluster', 'cli', '--dry-run', '--force', ...common()]);
    expect(r.code).toBe(2);
    expect(r.out).toMatch(/planning failover of cli/);
    expect(r.err).toMatch(/refused \(PreconditionFailed\): the primary cli-3 answers: use switchover for a planned change; nothing was changed/);
    expect(await fleet.roles()).toEqual(before);
  });

  it('an unreachable Temporal is exit code 4', async () => {
    const r = await run(['switchover', '--cluster', 'cli', '--address', '127.0.0.1:1', '--inventory', inventory]);
    expect(r.code).toBe(4);
    expect(r.err).toMatch(/cannot reach Temporal at 127\.0\.0\.1:1/);
  });
});
