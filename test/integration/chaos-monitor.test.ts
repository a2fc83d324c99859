/**
 * Crash-safety of the monitor-started failover in CI (bench/chaos/monitor.ts), both engines, judged by the strict
 * checker: the monitor watches, the primary is SIGKILLed under the writer, and the worker process is SIGKILLed
 * (a) during detection, inside the detection activity in a round that already saw the primary dead, and (b)
 * inside the failover child the monitor started, right after the promotion. A fresh worker must finish: one
 * writable primary, every node following it, lost writes only within the reported window, no split-brain sample.
 * For (a) (a round still "suspect" 1.1 s after the first, so a heartbeat carrying it reached Temporal) the
 * monitor's history shows the detection activity's retried attempt resumed from the heartbeat details: its
 * result says so, and its first dead round is the killed attempt's (within 3 s of the primary's kill; a fresh
 * attempt could only see it after that worker died and the 4 s heartbeat timeout).
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { defaultPayloadConverter } from '@temporalio/common';
import { FAILOVER_MYSQL_MONITOR, FAILOVER_REDIS_MONITOR, primaryKilledAt, runChaos, summaryFailures, type AnyLab, type ChaosSummary } from '../../bench/chaos/index';
import { startLab, startMysqlLab } from '../../bench/lab';
import { monitorWorkflowId } from '../../core/ids';
import type { WatchResult } from '../../activities/monitor';

function expectStrict(s: ChaosSummary, points: string[], lines: string[]): void {
  expect(summaryFailures(s), lines.join('\n')).toEqual([]);
  expect(s.points.map((p) => p.point)).toEqual(points);
  for (const p of s.points) expect(p, lines.join('\n')).toMatchObject({ killed: true, completed: true, failures: [], multiplePrimaries: 0 });
  expect(s.points.every((p) => p.acked > 0)).toBe(true);
}

/** The detection activity's completed call that ended in a failover, in the (last) monitor run. */
async function watchFailoverCall(lab: AnyLab): Promise<WatchResult<unknown>> {
  const history = await lab.client.workflow.getHandle(monitorWorkflowId(lab.fleet.cluster)).fetchHistory();
  for (const e of history.events ?? []) {
    const payload = e.activityTaskCompletedEventAttributes?.result?.payloads?.[0];
    if (!payload) continue;
    const result = defaultPayloadConverter.fromPayload(payload) as WatchResult<unknown>;
    if (result.action?.kind === 'failover') return result;
  }
  throw new Error('no detection call ending in a failover in the monitor history');
}

/**
 * Resumed from the heartbeat: the attempt that returned says so, and the death it confirmed was first seen
 * within a round or so of the primary's kill, i.e. by the attempt that was killed (a fresh attempt could only
 * have seen it after the heartbeat timeout, 4 s after that worker died).
 */
function expectResumed(result: WatchResult<unknown>, cluster: string): void {
  expect(result.resumed).toBe(true);
  expect(result.attempt).toBeGreaterThanOrEqual(2);
  expect(result.state.firstDeadAt! - primaryKilledAt[cluster]).toBeLessThan(3_000);
}

describe('the monitor-started failover survives SIGKILL of the worker', () => {
  let labs: AnyLab[] = [];
  beforeAll(() => {
    labs = [];
  });
  afterAll(async () => {
    for (const l of labs) await l.close();
  });

  it('Redis: killed during detection (resumed from the heartbeat), then inside the child after the promotion', async () => {
    const lab = await startLab({ cluster: 'ci-chaos-mon', address: inject('temporalAddress'), log: () => undefined, ...FAILOVER_REDIS_MONITOR.lab });
    labs.push(lab);
    const lines: string[] = [];
    const detect = await runChaos(lab, FAILOVER_REDIS_MONITOR, ['inside:watchCluster.suspect'], (m) => lines.push(m));
    expectStrict(detect, ['inside:watchCluster.suspect'], lines);
    expectResumed(await watchFailoverCall(lab), lab.fleet.cluster);
    const child = await runChaos(lab, FAILOVER_REDIS_MONITOR, ['after:ensureRedisPromoted'], (m) => lines.push(m));
    expectStrict(child, ['after:ensureRedisPromoted'], lines);
  }, 600_000);

  it('MariaDB: killed during detection (resumed from the heartbeat), then inside the child after the promotion', async () => {
    const lab = await startMysqlLab({ cluster: 'ci-chaos-mon-maria', address: inject('temporalAddress'), inventory: { routingHook: 'true', controller: true, policy: FAILOVER_MYSQL_MONITOR.lab!.policy }, log: () => undefined });
    labs.push(lab);
    const lines: string[] = [];
    const detect = await runChaos(lab, FAILOVER_MYSQL_MONITOR, ['inside:watchCluster.suspect'], (m) => lines.push(m));
    expectStrict(detect, ['inside:watchCluster.suspect'], lines);
    expectResumed(await watchFailoverCall(lab), lab.fleet.cluster);
    const child = await runChaos(lab, FAILOVER_MYSQL_MONITOR, ['after:ensureMysqlPrimary'], (m) => lines.push(m));
    expectStrict(child, ['after:ensureMysqlPrimary'], lines);
  }, 600_000);
});
