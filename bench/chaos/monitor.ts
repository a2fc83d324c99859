/**
 * The monitor-started failover under chaos, both engines: the cluster's monitor is started and sees the primary,
 * the primary is SIGKILLed under the writer, and the monitor confirms the death and starts the failover child by
 * itself. The worker is killed during detection (inside the detection activity, in a round whose verdict is
 * already "suspect": the next attempt must resume from the heartbeat details) and inside the child (around the
 * promotion, a repoint and the verification). Judged by the same strict checker as every scenario; the loss
 * allowed is the data-loss window the child reported. Each point starts a fresh monitor and stops it after settling.
 */
import { performance } from 'node:perf_hooks';
import { operationWorkflowId, monitorWorkflowId } from '../../core/ids';
import { runMonitor } from '../../client/commands/monitor';
import type { MonitorStatus } from '../../workflows/monitor';
import { sleep } from '../../sandbox/ports';
import type { Lab, MysqlLab } from '../lab';
import { quietIO, started } from './common';
import { FAILOVER_REDIS } from './redis';
import { FAILOVER_MYSQL, mysqlProbe } from './mysql';
import type { AnyLab, KillMark, Scenario, SettleResult } from './types';

/**
 * A confirmation window (8 rounds 300 ms apart: 2.1 s) longer than the detection kill point's wait (a detection call
 * can begin a round or two into a death, after returning for a change such as a restart risk gone): that point fires in a
 * round still "suspect" at least 1.1 s after the first one (so a heartbeat carrying the half-confirmed death
 * reached Temporal: heartbeats are throttled to one a second).
 */
export const MONITOR_CHAOS_POLICY = { probeIntervalMs: 300, probesToConfirm: 8, failoverBlockMs: 1000 };

/** Killed during detection (a half-confirmed death) and inside the child the monitor started. */
export const MONITOR_REDIS_POINTS = ['inside:watchCluster.suspect', 'before:ensureRedisPromoted', 'after:ensureRedisPromoted', 'after:ensureRedisReplicaOf', 'before:verifyRedisTopology'];
export const MONITOR_MYSQL_POINTS = ['inside:watchCluster.suspect', 'before:ensureMysqlPrimary', 'after:ensureMysqlPrimary', 'after:ensureMysqlReplicaOf', 'before:verifyMysqlFailover'];

/** Epoch ms of the last primary SIGKILL per cluster (tests compare the monitor's first dead round with it). */
export const primaryKilledAt: Record<string, number> = {};

const cli = (lab: AnyLab) => ({ cluster: lab.fleet.cluster, address: lab.address, taskQueue: lab.taskQueue });

/** Start the monitor, wait until it watches `primary`, then kill the primary under the writer. */
async function monitorThenKill(lab: AnyLab, primary: { id: string; stop: (s: NodeJS.Signals) => Promise<unknown> }, log: (m: string) => void, kill: (m: KillMark) => void, writing: () => Promise<void>): Promise<void> {
  await runMonitor({ ...cli(lab), stop: true }, quietIO(() => undefined)).catch(() => undefined);
  started(await runMonitor(cli(lab), quietIO(log)));
  for (const deadline = Date.now() + 60_000; ; await sleep(100)) {
    const s = (await runMonitor({ ...cli(lab), status: true, json: true }, quietIO(() => undefined)).catch(() => undefined))?.status as MonitorStatus | undefined;
    if (s?.lastKnown?.primary === primary.id && !s.blind) break;
    if (Date.now() > deadline) throw new Error(`the monitor did not come to watch ${primary.id} within 60 s`);
  }
  await writing();
  const at = performance.now();
  primaryKilledAt[lab.fleet.cluster] = Date.now();
  await primary.stop('SIGKILL');
  kill({ node: primary.id, at, goneAt: performance.now() });
  log(`[chaos] killed primary ${primary.id} under the writer; the monitor fails over by itself`);
}

/** The first failover run on the cluster's lock ID started after `since`, to its end. */
async function childResult(lab: AnyLab, since: Date): Promise<unknown> {
  const id = operationWorkflowId(lab.fleet.cluster);
  for (const deadline = Date.now() + 180_000; Date.now() < deadline; await sleep(200)) {
    const d = await lab.client.workflow.getHandle(id).describe().catch(() => undefined);
    if (d && d.startTime >= since) return lab.client.workflow.getHandle(id, d.runId).result();
  }
  throw new Error('the monitor started no failover within 180 s');
}

/** The engine's settle step, then the monitor stopped (it would otherwise fence and watch on into the next point). */
function thenStopMonitor<L extends AnyLab>(settle: Scenario<L>['settle']): Scenario<L>['settle'] {
  return async (lab, report, kill) => {
    const r: SettleResult = (await settle?.(lab, report, kill)) ?? { problems: [] };
    const stop = await runMonitor({ ...cli(lab), stop: true }, quietIO(() => undefined));
    if (stop.exitCode !== 0) r.problems.push(`could not stop ${monitorWorkflowId(lab.fleet.cluster)}`);
    return r;
  };
}

export const FAILOVER_REDIS_MONITOR: Scenario<Lab> = {
  ...FAILOVER_REDIS,
  name: 'failover-redis-monitor',
  lab: { ...FAILOVER_REDIS.lab, policy: MONITOR_CHAOS_POLICY },
  points: MONITOR_REDIS_POINTS,
  async start(lab, _i, log, kill, writing) {
    const primary = await lab.fleet.primary();
    if (!primary) throw new Error(`no single primary before the failover: ${JSON.stringify(await lab.fleet.roles())}`);
    await monitorThenKill(lab, primary, log, kill, writing);
  },
  result: childResult,
  settle: thenStopMonitor(FAILOVER_REDIS.settle),
};

export const FAILOVER_MYSQL_MONITOR: Scenario<MysqlLab> = {
  ...FAILOVER_MYSQL,
  name: 'failover-mysql-monitor',
  lab: { policy: MONITOR_CHAOS_POLICY },
  points: MONITOR_MYSQL_POINTS,
  async start(lab, _i, log, kill, writing) {
    const end = await mysqlProbe(lab.fleet).endState();
    const writable = Object.entries(end).filter(([, n]) => n.writable).map(([id]) => id);
    if (writable.length !== 1) throw new Error(`want one writable node before the failover, found ${writable.join(',') || 'none'}`);
    await monitorThenKill(lab, lab.fleet.nodes.find((n) => n.id === writable[0])!, log, kill, writing);
  },
  result: childResult,
  settle: thenStopMonitor(FAILOVER_MYSQL.settle),
};
