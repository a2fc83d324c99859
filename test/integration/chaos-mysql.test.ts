/**
 * Crash-safety in CI for MariaDB: the real worker process is SIGKILLed between the fence and the promotion
 * (inside the MASTER_GTID_WAIT catch-up, and between STOP SLAVE and RESET SLAVE ALL), and inside a rolling
 * restart just before a node is restarted; a fresh worker must finish with exactly one writable node, every
 * replica converged on it, every acknowledged commit present, never two writable nodes. Every point is
 * judged by the strict checker (bench/chaos/checker.ts) that `npm run chaos` uses; each failed condition is
 * named in `failures`, and the tests assert there is none.
 * An unplanned failover kills the primary under the writer, and the worker between STOP SLAVE and RESET SLAVE
 * ALL on the promoted node; lost commits must lie within the reported window; the dead primary, restarted, is fenced.
 * `npm run chaos -- switchover-mysql|rolling-restart-mysql|failover-mysql` run every kill point.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { BACKUP_MYSQL, FAILOVER_MYSQL, ROLLING_RESTART_MYSQL, SWITCHOVER_MYSQL, runChaos, summaryFailures, type ChaosSummary } from '../../bench/chaos/index';
import { startMysqlLab, type MysqlLab } from '../../bench/lab';
import { checkPoint, mysqlProbe } from '../../bench/chaos/index';
import { SplitBrainSampler } from '../../bench/chaos/sampler';
import { SqlWriter } from '../../sandbox/sql-writer';

/** The strict checker found nothing wrong at any point, and every point was killed where it should be. */
function expectStrict(s: ChaosSummary, points: string[], lines: string[]): void {
  expect(summaryFailures(s), lines.join('\n')).toEqual([]);
  expect(s.points.map((p) => p.point)).toEqual(points);
  for (const p of s.points) expect(p, lines.join('\n')).toMatchObject({ killed: true, completed: true, failures: [], multiplePrimaries: 0 });
  expect(s).toMatchObject({ killPoints: points.length, completed: points.length, failed: 0, multiplePrimaries: 0 });
}

describe('MariaDB runbooks survive SIGKILL of the worker', () => {
  let lab: MysqlLab;
  beforeAll(async () => {
    lab = await startMysqlLab({ cluster: 'ci-chaos-maria', address: inject('temporalAddress'), inventory: { routingHook: 'true', controller: true }, log: () => undefined });
  });
  afterAll(async () => {
    await lab?.close();
  });

  it('the checks can fail: a replica made writable by hand is a split in the sampler and two writable nodes in the end state', async () => {
    const probe = mysqlProbe(lab.fleet);
    const before = await probe.endState();
    const primary = Object.keys(before).find((id) => before[id].writable)!;
    const other = lab.fleet.nodes.find((n) => n.id !== primary)!.id;
    await lab.fleet.sql(other, 'SET GLOBAL read_only = OFF');
    try {
      const views = await probe.views();
      expect(views).toMatchObject({ [primary]: 'writable', [other]: 'writable' });
      expect(SplitBrainSampler.judge(views).split).toBe(true);
      // The test writer refuses to choose between two writable nodes.
      const writer = new SqlWriter(lab.fleet.nodes, lab.fleet.appUser, lab.fleet.appPassword);
      expect(await writer.discoverWritable()).toBeUndefined();
      expect(writer.ambiguous).toBe(1);
      await writer.close();
      const failures = checkPoint({
        point: 'manual',
        killed: true,
        run: { ok: true },
        settle: [],
        end: await probe.endState(),
        expected: { primary, why: 'unchanged' },
        writes: { acked: 100, minAcked: 30, ambiguous: 0, lostOnPrimary: 0, behindPrimary: {} },
        samples: { samples: 100, withDownNode: 0, split: 0, splitExamples: [], maxGapMs: 10 },
        postconditions: [],
      });
      expect(failures.join('\n')).toMatch(/end state: 2 writable nodes/);
    } finally {
      probe.closeViews();
      await lab.fleet.sql(other, 'SET GLOBAL read_only = ON');
    }
  }, 60_000);

  it('switchover: one writable node, converged GTIDs, no lost commit at each kill point', async () => {
    // One point here; `npm run chaos -- switchover-mysql` runs all of them.
    const points = ['inside:ensureMysqlPrimary.stopped'];
    const lines: string[] = [];
    const s = await runChaos(lab, SWITCHOVER_MYSQL, points, (m) => lines.push(m));
    expectStrict(s, points, lines);
  }, 300_000);

  it('rolling restart: every node started exactly once on the new variable, no lost commit', async () => {
    const points = ['inside:ensureMysqlNodeRestarted.beforeRestart'];
    const lines: string[] = [];
    const s = await runChaos(lab, ROLLING_RESTART_MYSQL, points, (m) => lines.push(m));
    expectStrict(s, points, lines);
  }, 300_000);

  it('unplanned failover, primary killed under the writer: one writable node, lost commits only within the reported window, the old primary fenced', async () => {
    const lines: string[] = [];
    const s = await runChaos(lab, FAILOVER_MYSQL, ['inside:ensureMysqlPrimary.stopped'], (m) => lines.push(m));
    expectStrict(s, ['inside:ensureMysqlPrimary.stopped'], lines);
  }, 300_000);

  // The drained failover's point (after:ensureMysqlPrimary) is chaos-monitor's MariaDB child point; `npm run chaos` runs it here too.
  it('backup: killed while streaming the dump from a replica; the retry finishes it good, the replica applies again', async () => {
    const lines: string[] = [];
    const s = await runChaos(lab, BACKUP_MYSQL, ['inside:takeBackup.streaming'], (m) => lines.push(m));
    expectStrict(s, ['inside:takeBackup.streaming'], lines);
  }, 300_000);
});
