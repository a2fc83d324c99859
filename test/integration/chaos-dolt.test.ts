/**
 * Crash-safety in CI for Dolt (sql-server cluster mode, a primary/standby pair): the real worker process is
 * SIGKILLed inside the old primary's demotion (before dolt_assume_cluster_role('standby') is sent) and inside the
 * candidate's promotion; a fresh worker must finish with exactly one writable node, the other a standby at its
 * epoch with the same data, every acknowledged commit present, never two writable nodes. Judged by the strict
 * checker (bench/chaos/checker.ts) that `npm run chaos -- switchover-dolt` uses for every point.
 * The remote switchover (topology: remote-replicas) at one point: the worker SIGKILLed inside the fence with the
 * old primary stopped (its offline push not yet done, no node writable); the resumed run must finish the same
 * way (`npm run chaos -- switchover-dolt-remote` runs every boundary).
 * Skipped, saying so, only when no dolt binary is found.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { SWITCHOVER_DOLT, SWITCHOVER_DOLT_REMOTE, checkPoint, doltProbe, runChaos, summaryFailures, type ChaosSummary } from '../../bench/chaos/index';
import { startDoltLab, startDoltRemoteLab, type DoltLab, type DoltRemoteLab } from '../../bench/lab';
import { SplitBrainSampler } from '../../bench/chaos/sampler';
import { DOLT_NOT_FOUND, doltBinary } from '../../sandbox/dolt';

const bin = doltBinary();
if (!bin) console.log(`SKIPPED: the Dolt crash tests (test/integration/chaos-dolt.test.ts): ${DOLT_NOT_FOUND}`);

function expectStrict(s: ChaosSummary, points: string[], lines: string[]): void {
  expect(summaryFailures(s), lines.join('\n')).toEqual([]);
  expect(s.points.map((p) => p.point)).toEqual(points);
  for (const p of s.points) expect(p, lines.join('\n')).toMatchObject({ killed: true, completed: true, failures: [], multiplePrimaries: 0, lostAckedWrites: 0 });
  for (const p of s.points) expect(p.acked).toBeGreaterThan(0);
  expect(s).toMatchObject({ killPoints: points.length, completed: points.length, failed: 0, multiplePrimaries: 0 });
}

describe.skipIf(!bin)('the Dolt switchover survives SIGKILL of the worker', () => {
  let lab: DoltLab;
  beforeAll(async () => {
    lab = await startDoltLab({ cluster: 'ci-chaos-dolt', address: inject('temporalAddress'), log: () => undefined });
  });
  afterAll(async () => {
    await lab?.close();
  });

  it('the checks can fail: two writable nodes are a failure of the end state and a split sample; the probe sees exactly one writable node', async () => {
    const probe = doltProbe(lab.fleet);
    const before = await probe.endState();
    const primary = Object.keys(before).find((id) => before[id].writable)!;
    const other = lab.fleet.nodes.find((n) => n.id !== primary)!.id;
    const st = await lab.fleet.state();
    // Dolt refuses a second primary at the same epoch (both stop writing), so two writable nodes are built as evidence.
    const failures = checkPoint({
      point: 'manual',
      killed: true,
      run: { ok: true },
      settle: [],
      end: { [primary]: { up: true, writable: true, detail: 'primary' }, [other]: { up: true, writable: true, detail: 'primary' } },
      expected: { primary, why: 'unchanged' },
      writes: { acked: 100, minAcked: 30, ambiguous: 0, lostOnPrimary: 0, behindPrimary: {} },
      samples: { samples: 100, withDownNode: 0, split: 0, splitExamples: [], maxGapMs: 10 },
      postconditions: [],
    });
    expect(failures.join('\n')).toMatch(/end state: 2 writable nodes/);
    expect(SplitBrainSampler.judge({ [primary]: 'writable', [other]: 'writable' }).split).toBe(true);
    expect(st[other]).toMatchObject({ role: 'standby' });
    expect(await probe.views()).toEqual({ [primary]: 'writable', [other]: 'read-only' });
    probe.closeViews();
  }, 60_000);

  it('switchover: one writable node, the standby at its epoch with the same data, no lost commit at each kill point', async () => {
    const points = ['inside:ensureDoltRole.standby', 'inside:ensureDoltRole.primary'];
    const lines: string[] = [];
    const s = await runChaos(lab, SWITCHOVER_DOLT, points, (m) => lines.push(m));
    expectStrict(s, points, lines);
  }, 300_000);
});

describe.skipIf(!bin)('the Dolt remote switchover survives SIGKILL of the worker', () => {
  let lab: DoltRemoteLab;
  beforeAll(async () => {
    lab = await startDoltRemoteLab({ cluster: 'ci-chaos-doltr', address: inject('temporalAddress'), policy: { catchUpTimeoutMs: 15_000, verifyTimeoutMs: 30_000 }, log: () => undefined });
  });
  afterAll(async () => {
    await lab?.close();
  });

  it('remote switchover: killed inside the fence with the old primary stopped; one writable node, every replica at its head, no lost commit', async () => {
    const points = ['inside:ensureDoltRemoteRole.fenced.stopped'];
    const lines: string[] = [];
    const s = await runChaos(lab, SWITCHOVER_DOLT_REMOTE, points, (m) => lines.push(m));
    expectStrict(s, points, lines);
  }, 300_000);
});
