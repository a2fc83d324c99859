/**
 * `rolling-restart --reason TEXT`: every node restarted exactly once with nothing changed (OS patching),
 * replicas first, the primary handed over first, with the real worker process SIGKILLed mid-roll and a fresh
 * worker resuming the run from its history (the restart token — the roll's frozen start and the nodes it
 * restarted — is workflow state). Each point is judged by the strict checker (one writable node, the reported
 * one; every acknowledged write on every node; no split-brain sample) plus: every node's server started exactly
 * once (server.log / error.log), the reason in the report's restart token. Real redis-server and mariadbd
 * fleets, real Temporal dev server. `npm run chaos -- rolling-restart-redis-reason|rolling-restart-mysql-reason`
 * run every kill point.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { ROLLING_RESTART_MYSQL_REASON, ROLLING_RESTART_REDIS_REASON, runChaos, summaryFailures, type ChaosSummary } from '../../bench/chaos/index';
import { startLab, startLabWorker, startMysqlLab, type Lab, type MysqlLab } from '../../bench/lab';
import { nodesUpFor, runCli } from '../helpers';

function expectStrict(s: ChaosSummary, points: string[], lines: string[]): void {
  expect(summaryFailures(s), lines.join('\n')).toEqual([]);
  expect(s.points.map((p) => p.point)).toEqual(points);
  for (const p of s.points) {
    expect(p, lines.join('\n')).toMatchObject({ killed: true, completed: true, failures: [], multiplePrimaries: 0, lostAckedWrites: 0 });
    expect(p.acked).toBeGreaterThan(0);
  }
}

describe('rolling-restart --reason, Redis: worker killed mid-roll', () => {
  let lab: Lab;
  beforeAll(async () => {
    lab = await startLab({ cluster: 'ci-reason', address: inject('temporalAddress'), log: () => undefined });
  });
  afterAll(async () => {
    await lab?.close();
  });

  it('--dry-run names every node as due, with the reason; a bad reason is refused with nothing started', async () => {
    const worker = await startLabWorker(lab);
    try {
      await nodesUpFor(lab.fleet.nodes);
      const plan = await runCli(['plan', 'rolling-restart', '--cluster', lab.fleet.cluster, '--reason', 'kernel 6.1.0-31', '--inventory', lab.inventory, '--address', lab.address, '--task-queue', lab.taskQueue]);
      expect(plan.code, plan.out + plan.err).toBe(0);
      expect(plan.out).toMatch(/restart every node started before \S+ \(kernel 6\.1\.0-31\)/);
      for (const n of lab.fleet.nodes) expect(plan.out).toMatch(new RegExp(`stale ${n.id}: running since .*before this roll \\(restart requested\\)`));
      expect(plan.out).toMatch(/first action: restart/);
    } finally {
      await worker.stop();
    }
    const bad = await runCli(['rolling-restart', '--cluster', lab.fleet.cluster, '--reason', 'two\nlines', '--inventory', lab.inventory, '--address', lab.address, '--task-queue', lab.taskQueue]);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/--reason: one line of 1-200 characters/);
  }, 60_000);

  it('every node started exactly once, nothing lost, at each kill point', async () => {
    // The primary's handover, the delicate point; `npm run chaos -- rolling-restart-redis-reason` runs them all.
    const points = ['after:ensureRedisHandedOver'];
    const lines: string[] = [];
    const s = await runChaos(lab, ROLLING_RESTART_REDIS_REASON, points, (m) => lines.push(m));
    expectStrict(s, points, lines);
  }, 400_000);
});

describe('rolling-restart --reason, MariaDB: worker killed mid-roll', () => {
  let lab: MysqlLab;
  beforeAll(async () => {
    lab = await startMysqlLab({ cluster: 'ci-reason-maria', address: inject('temporalAddress'), inventory: { routingHook: 'true', controller: true }, log: () => undefined });
  });
  afterAll(async () => {
    await lab?.close();
  });

  it('every node started exactly once, no commit lost, at each kill point', async () => {
    // The last restart (the old primary's); `npm run chaos -- rolling-restart-mysql-reason` runs them all.
    const points = ['after:ensureMysqlNodeRestarted#3'];
    const lines: string[] = [];
    const s = await runChaos(lab, ROLLING_RESTART_MYSQL_REASON, points, (m) => lines.push(m));
    expectStrict(s, points, lines);
  }, 400_000);
});
