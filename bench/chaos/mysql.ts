/**
 * MariaDB under chaos: the engine probe (a split-brain sampler over @@read_only, the transactional SqlWriter,
 * an end-state reader over SHOW SLAVE STATUS and GTID positions) and the kill points of each runbook.
 * "Writable" is read_only = 0: what the application user (no privilege to bypass it) can commit on.
 */
import { parseGtidState } from '../../core/mysql/decide';
import type mysql from 'mysql2/promise';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities } from '../../activities';
import { MARIADB_BACKUP_GRANTS } from '../../activities/backup/mysql';
import type { EnsureMysqlRejoinedResult } from '../../activities/mysql/failover';
import { runFailover } from '../../client/commands/failover';
import { runRollingRestart } from '../../client/commands/rolling-restart';
import { runSwitchover } from '../../client/commands/switchover';
import { loadInventory } from '../../inventory/load';
import type { MariaFleet } from '../../sandbox/mariadb';
import { sleep } from '../../sandbox/ports';
import { SqlWriter } from '../../sandbox/sql-writer';
import type { MysqlLab } from '../lab';
import { BACKUP_POINTS, addBackupBlock, backupStates, checkOneNewGoodBackup, startBackup } from './backup';
import { chaosWriter, failedOver, lostBeforeSight, quietIO, reasonRoll, rolled, started, switchedOver, unchanged } from './common';
import type { EndNode, EngineProbe, KillMark, NodeView, Scenario, SettleResult } from './types';
import { convergeOnTheWritable } from './types';

export function mysqlProbe(fleet: MariaFleet): EngineProbe {
  // One root session per node over its socket, reopened after a failure (a fence ends other sessions too).
  const conns = new Map<string, mysql.Connection>();
  const drop = (id: string) => {
    conns.get(id)?.destroy();
    conns.delete(id);
  };
  const byPort = (source?: string) => fleet.nodes.find((n) => source === `127.0.0.1:${n.port}`)?.id;
  const probe: EngineProbe = {
    engine: 'mysql',
    nodes: fleet.nodes.map((n) => n.id),
    async views() {
      const out: Record<string, NodeView> = {};
      await Promise.all(
        fleet.nodes.map(async (n) => {
          try {
            let c = conns.get(n.id);
            if (!c) {
              c = await n.root();
              c.on('error', () => drop(n.id));
              conns.set(n.id, c);
            }
            const [r] = await c.query({ sql: 'SELECT @@global.read_only AS ro', timeout: 1000 });
            out[n.id] = Number((r as { ro: number }[])[0].ro) === 0 ? 'writable' : 'read-only';
          } catch {
            drop(n.id);
            out[n.id] = 'down';
          }
        }),
      );
      return out;
    },
    closeViews() {
      for (const id of [...conns.keys()]) drop(id);
    },
    writer(prefix) {
      const w = new SqlWriter(fleet.nodes, fleet.appUser, fleet.appPassword, prefix);
      return chaosWriter(w, (node) => w.missingOn(fleet.nodes.find((n) => n.id === node)!));
    },
    async endState() {
      const st = await fleet.state();
      return Object.fromEntries(
        fleet.nodes.map((n): [string, EndNode] => {
          const s = st[n.id];
          if (!s?.up) return [n.id, { up: false, writable: false, detail: 'no answer' }];
          const follows = byPort(s.source);
          return [
            n.id,
            {
              up: true,
              writable: s.readOnly === false,
              follows,
              linkUp: s.io === 'Yes' && s.sql === 'Yes',
              detail: `read_only=${s.readOnly ? 1 : 0}${s.source ? ` source ${follows ?? s.source} io=${s.io} sql=${s.sql}` : ' no source'} gtid_binlog_pos=${s.gtidBinlogPos || 'empty'}`,
            },
          ];
        }),
      );
    },
    /** Every other node (but `exclude`) replicating from the primary, both threads running, with its gtid_binlog_pos. */
    async converge(primary, timeoutMs, exclude) {
      const p = fleet.nodes.find((n) => n.id === primary)!;
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const st = await fleet.state();
        const goal = st[primary]?.gtidBinlogPos;
        const bad = fleet.nodes
          .filter((n) => n.id !== primary && !exclude.includes(n.id))
          .filter((n) => {
            const s = st[n.id];
            return !(s?.up && s.source === `127.0.0.1:${p.port}` && s.io === 'Yes' && s.sql === 'Yes' && s.gtidBinlogPos === goal);
          });
        if (st[primary]?.up && bad.length === 0) return undefined;
        if (Date.now() > deadline) return `within ${timeoutMs} ms: ${bad.map((n) => `${n.id} ${JSON.stringify(st[n.id])}`).join('; ')} (primary at ${goal})`;
        await sleep(50);
      }
    },
    async reset() {
      // A node the previous point left flagged (read-only, replicating from nobody: it holds errant GTIDs) was
      // judged by that point; here it is re-based onto the primary's history (what an operator's re-clone does)
      // so this point starts from a converged fleet.
      const end = await probe.endState();
      const writable = Object.entries(end).filter(([, n]) => n.writable).map(([id]) => id);
      const stray = Object.entries(end).filter(([, n]) => n.up && !n.writable && n.detail.includes(' no source'));
      if (writable.length === 1 && stray.length) await fleet.setPrimary(writable[0], 60_000);
      return convergeOnTheWritable(probe);
    },
  };
  return probe;
}

type MysqlScenario = Scenario<MysqlLab>;
const base = { engine: 'mysql' as const, minAcked: 30, loss: 'none' as const, probe: (lab: MysqlLab) => mysqlProbe(lab.fleet) };

/** Every activity boundary of a MariaDB switchover (routing hook configured), plus the points inside its steps. */
export const SWITCHOVER_MYSQL_POINTS = [
  ...[
    'describeCluster',
    'probeMysqlCluster',
    'vetoMysqlHandover',
    'ensureMysqlFenced',
    'ensureMysqlCaughtUp',
    'ensureMysqlPrimary',
    'runRoutingHook',
    'ensureMysqlReplicaOf#1',
    'ensureMysqlReplicaOf#2',
    'verifyMysqlTopology',
  ].flatMap((a) => [`before:${a}`, `after:${a}`]),
  'inside:probeMysqlCluster.start',
  'inside:ensureMysqlFenced.beforeFence',
  'inside:ensureMysqlCaughtUp.loop',
  'inside:ensureMysqlPrimary.stopped',
  'inside:ensureMysqlReplicaOf.beforeChange',
];

export const SWITCHOVER_MYSQL: MysqlScenario = {
  ...base,
  name: 'switchover-mysql',
  points: SWITCHOVER_MYSQL_POINTS,
  async start(lab, i, log) {
    started(await runSwitchover({ cluster: lab.fleet.cluster, address: lab.address, taskQueue: lab.taskQueue, requestedBy: `chaos run ${i}` }, quietIO(log)));
  },
  expectPrimary: switchedOver,
};

/** How many times each mariadbd has started (its error log says "ready for connections" once per start). */
function mariaStartsPerNode(fleet: MariaFleet): Record<string, number> {
  return Object.fromEntries(fleet.nodes.map((n) => [n.id, (readFileSync(path.join(n.dir, 'error.log'), 'utf8').match(/ready for connections/g) ?? []).length]));
}

export const ROLLING_RESTART_MYSQL_POINTS = [
  ...['describeCluster', 'probeMysqlSpecs', 'ensureMysqlNodeRestarted', 'waitForMysqlNodeReady', 'ensureMysqlFenced', 'ensureMysqlPrimary', 'ensureMysqlNodeRestarted#3', 'verifyMysqlTopology#2'].flatMap((a) => [
    `before:${a}`,
    `after:${a}`,
  ]),
  'inside:ensureMysqlNodeRestarted.beforeRestart',
  'inside:ensureMysqlCaughtUp.loop',
];

export const ROLLING_RESTART_MYSQL: MysqlScenario = {
  ...base,
  name: 'rolling-restart-mysql',
  points: ROLLING_RESTART_MYSQL_POINTS,
  async start(lab, i, log) {
    started(await runRollingRestart({ cluster: lab.fleet.cluster, set: [`max_connections=${201 + i}`], address: lab.address, taskQueue: lab.taskQueue, requestedBy: `chaos run ${i}` }, quietIO(log)));
  },
  before: async (lab) => mariaStartsPerNode(lab.fleet),
  expectPrimary: rolled,
  async check(lab, i, before) {
    const problems: string[] = [];
    const starts = mariaStartsPerNode(lab.fleet);
    for (const n of lab.fleet.nodes) {
      const extra = starts[n.id] - (before.extra as Record<string, number>)[n.id];
      if (extra !== 1) problems.push(`${n.id} started ${extra} times (want exactly 1)`);
      const [v] = await lab.fleet.sql<{ Value: string }[]>(n.id, "SHOW GLOBAL VARIABLES LIKE 'max_connections'");
      if (v.Value !== String(201 + i)) problems.push(`${n.id} runs max_connections=${v.Value}, wanted ${201 + i}`);
    }
    return problems;
  },
};

/** `rolling-restart --reason` (nothing changed): every node started exactly once, killed mid-roll. */
export const ROLLING_RESTART_MYSQL_REASON_POINTS = ['after:ensureMysqlNodeRestarted', 'inside:ensureMysqlNodeRestarted.beforeRestart', 'after:ensureMysqlPrimary', 'after:ensureMysqlNodeRestarted#3'];

export const ROLLING_RESTART_MYSQL_REASON: MysqlScenario = {
  ...base,
  name: 'rolling-restart-mysql-reason',
  points: ROLLING_RESTART_MYSQL_REASON_POINTS,
  ...reasonRoll((lab) => mariaStartsPerNode(lab.fleet)),
};

// (No `after:ensureMysqlRejoined`: with the old primary down, the fence step fails by design — "fencing
// pending" — so there is no successful completion to die after.)
export const FAILOVER_MYSQL_POINTS = [
  ...['describeCluster', 'probeMysqlFailover', 'waitMysqlRelayApplied', 'ensureMysqlPrimary', 'runRoutingHook', 'ensureMysqlReplicaOf', 'verifyMysqlFailover'].flatMap((a) => [`before:${a}`, `after:${a}`]),
  'before:ensureMysqlRejoined',
  'inside:ensureMysqlPrimary.stopped',
];

async function killPrimaryAndFailOver(lab: MysqlLab, i: number, log: (m: string) => void, kill: (m: KillMark) => void, writing: () => Promise<void>, drain: boolean): Promise<void> {
  const end = await mysqlProbe(lab.fleet).endState();
  const writable = Object.entries(end).filter(([, n]) => n.writable).map(([id]) => id);
  if (writable.length !== 1) throw new Error(`want one writable node before the failover, found ${writable.join(',') || 'none'}`);
  const primary = lab.fleet.nodes.find((n) => n.id === writable[0])!;
  if (drain) {
    await lab.fleet.sql(primary.id, 'SET GLOBAL read_only = ON');
    await lab.fleet.waitForReplication(primary.id, 30_000);
  }
  if (!drain) await writing();
  const at = performance.now();
  await primary.stop('SIGKILL'); // returns once the process is gone, which can take a second under load
  kill({ node: primary.id, at, goneAt: performance.now() });
  log(`[chaos] killed primary ${primary.id}${drain ? ' (made read-only and replicas caught up first)' : ' under the writer'}`);
  started(await runFailover({ cluster: lab.fleet.cluster, force: true, address: lab.address, taskQueue: lab.taskQueue, requestedBy: `chaos run ${i}` }, quietIO(log)));
}

/**
 * The dead primary restarted (read_only=ON from its config) and fenced with the monitor's activity, under the
 * writer and the sampler, with the promoted position from the report (as the monitor passes it).
 */
async function restartAndRejoin(lab: MysqlLab, report: unknown, kill?: { node: string }): Promise<SettleResult> {
  const dead = lab.fleet.nodes.find((n) => n.id === kill?.node);
  const end = await mysqlProbe(lab.fleet).endState();
  const writable = Object.entries(end).filter(([, n]) => n.writable).map(([id]) => id);
  if (!dead || dead.pid() || writable.length !== 1) return { problems: [`expected ${kill?.node ?? 'the killed node'} dead and one writable node, found writable=${writable.join(',') || 'none'}`] };
  await dead.start();
  const promotedGtid = (report as { dataLossWindow?: { promotedGtid?: string } } | undefined)?.dataLossWindow?.promotedGtid;
  const acts = createActivities({ inventory: () => loadInventory(lab.inventory) });
  const r: EnsureMysqlRejoinedResult = await new MockActivityEnvironment().run(acts.ensureMysqlRejoined, { cluster: lab.fleet.cluster, node: dead.id, primary: writable[0], promotedGtid });
  if (r.outcome !== 'flagged') return { problems: [] };
  // Read here, not taken from the runbook: each flagged GTID must be past what the primary's binlog state holds.
  const [{ s: state }] = await lab.fleet.sql<{ s: string }[]>(writable[0], 'SELECT @@global.gtid_binlog_state AS s');
  return { problems: [], flagged: { node: dead.id, errantGtids: r.errantGtids, notErrant: heldBy(state, r.errantGtids) } };
}

/** The GTIDs (`d-s-n`) a binlog state (the last sequence number per domain and server) holds. */
export function heldBy(state: string, gtids: string[]): string[] {
  const entries = parseGtidState(state);
  return gtids.filter((g) => {
    const [want] = parseGtidState(g);
    return entries.some((e) => e.domain === want.domain && e.server === want.server && e.seq >= want.seq);
  });
}

/** Does the report's window (transactions) hold the lost commits (one transaction each)? */
function mysqlLossBound(report: unknown, all: string[], ackedAt: (key: string) => number | undefined): string | undefined {
  const lost = lostBeforeSight(report, all, ackedAt);
  if (lost.length === 0) return undefined;
  const w = (report as { dataLossWindow?: { transactions?: number; note?: string } } | undefined)?.dataLossWindow;
  if (w?.transactions === undefined) return `the report gives no bound ("${w?.note ?? 'no dataLossWindow'}"), and ${lost.length} acknowledged commit(s) were lost`;
  if (lost.length > w.transactions) return `the report bounds the loss at ${w.transactions} transaction(s), but ${lost.length} acknowledged commit(s) were lost`;
  return undefined;
}

/**
 * Unplanned failover of MariaDB as it happens: the primary is SIGKILLed under the running writer, then
 * `handover failover --force` runs while the worker is killed at each boundary. Commits the dead primary
 * acknowledged but never shipped may be lost, only within the report's window. The dead node, restarted, is
 * fenced: a replica of the new primary, or (holding the lost commits as errant GTIDs) left read-only and flagged.
 */
export const FAILOVER_MYSQL: MysqlScenario = {
  ...base,
  name: 'failover-mysql',
  points: FAILOVER_MYSQL_POINTS,
  loss: 'reported-window',
  start: (lab, i, log, kill, writing) => killPrimaryAndFailOver(lab, i, log, kill, writing, false),
  expectPrimary: failedOver,
  settle: restartAndRejoin,
  lossBound: mysqlLossBound,
};

/** The same failover with nothing to lose: the primary made read-only and its replicas seen at its GTID position before the kill. */
export const FAILOVER_MYSQL_DRAINED: MysqlScenario = {
  ...FAILOVER_MYSQL,
  name: 'failover-mysql-drained',
  loss: 'none',
  start: (lab, i, log, kill, writing) => killPrimaryAndFailOver(lab, i, log, kill, writing, true),
};

/** MariaDB backup from a replica (its SQL thread is paused for the dump): the end state also needs it applying again. */
export const BACKUP_MYSQL: MysqlScenario = {
  ...base,
  name: 'backup-mysql',
  points: BACKUP_POINTS,
  async prepare(lab) {
    addBackupBlock(lab);
    const end = await mysqlProbe(lab.fleet).endState();
    const writable = Object.entries(end).filter(([, n]) => n.writable).map(([id]) => id);
    await lab.fleet.sql(writable[0], `GRANT ${MARIADB_BACKUP_GRANTS.join(', ')} ON *.* TO '${lab.fleet.handoverUser}'@'127.0.0.1'`);
  },
  start: (lab, i, log) => startBackup(lab, lab.fleet.cluster, i, log),
  before: (lab) => backupStates(lab, lab.fleet.cluster),
  expectPrimary: unchanged,
  check: (lab, _i, before, report) => checkOneNewGoodBackup(lab, lab.fleet.cluster, before.extra, report),
};

/**
 * The same with backup.method: physical: mariadb-backup --stream=mbstream from the replica (killed inside the
 * stream, before the manifest, around every activity), verified by extract + prepare + a scratch server. The
 * strict checker: exactly one new backup, good, the one reported; the replica applying again; the writer's
 * acknowledged writes on every node.
 */
export const BACKUP_MYSQL_PHYSICAL: MysqlScenario = {
  ...BACKUP_MYSQL,
  name: 'backup-mysql-physical',
  async prepare(lab) {
    addBackupBlock(lab, { method: 'physical' });
    const end = await mysqlProbe(lab.fleet).endState();
    const writable = Object.entries(end).filter(([, n]) => n.writable).map(([id]) => id);
    await lab.fleet.sql(writable[0], `GRANT ${MARIADB_BACKUP_GRANTS.join(', ')} ON *.* TO '${lab.fleet.handoverUser}'@'127.0.0.1'`);
  },
};

export const MYSQL_SCENARIOS: MysqlScenario[] = [SWITCHOVER_MYSQL, ROLLING_RESTART_MYSQL, ROLLING_RESTART_MYSQL_REASON, FAILOVER_MYSQL, FAILOVER_MYSQL_DRAINED, BACKUP_MYSQL, BACKUP_MYSQL_PHYSICAL];
