/**
 * Rolling-restart activities for MySQL/MariaDB. Same rules as activities/mysql.ts: named for the end state,
 * read before acting, no-op when it already holds, an audit line each. The automation user needs no extra
 * grant: variables and Uptime are readable by any account, and the node controller restarts the process.
 */
import { hookCounts } from '../hooks';
import type { HookCounts } from '../../core/types';
import { Context } from '@temporalio/activity';
import type mysql from 'mysql2/promise';
import { ErrorType, HandoverError } from '../../core/errors';
import { appliedPos, gtidIncludes, lagTransactions, type MysqlPolicy } from '../../core/mysql/decide';
import type { MysqlSpecProbe } from '../../core/mysql/rolling';
import { controllerFor } from '../controllers';
import { activity, heartbeatWhile } from '../activity';
import { timeProgress } from '../progress';
import { mysqlOps, readMysqlNode, type MysqlActivityDeps } from './node';

export interface ProbeMysqlSpecsInput {
  cluster: string;
  /** Server variables the roll compares (SHOW GLOBAL VARIABLES). */
  keys: string[];
}
export interface ProbeMysqlSpecsResult {
  cluster: string;
  nodes: MysqlSpecProbe[];
  hasController: boolean;
  policy: MysqlPolicy & { restartTimeoutMs: number };
  /** How many operator hooks the inventory lists, by kind (absent in older histories: none). */
  hooks?: HookCounts;
}
export interface EnsureMysqlNodeRestartedInput {
  cluster: string;
  node: string;
  /** The process start time seen before the restart (epoch s); a node started later has been restarted. */
  sinceRunId: string;
  version?: string;
  /** Variables the node must start with (the controller writes them to its configuration). */
  set: Record<string, string>;
  timeoutMs: number;
}
export interface EnsureMysqlNodeRestartedResult {
  restarted: boolean;
  startedAt: number;
  audit: string;
}
export interface WaitForMysqlNodeReadyInput {
  cluster: string;
  node: string;
  primary: string;
  timeoutMs: number;
  maxLagTransactions: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The running process's start time (epoch seconds) and pid file: Uptime and @@pid_file need no privilege. */
async function processOf(conn: mysql.Connection): Promise<{ startedAt: number; pidFile: string }> {
  const [r] = await conn.query({ sql: "SELECT UNIX_TIMESTAMP() - CAST(VARIABLE_VALUE AS UNSIGNED) AS s, @@global.pid_file AS p FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'UPTIME'", timeout: 5_000 });
  const row = (r as { s: number | string; p: string }[])[0];
  return { startedAt: Number(row.s), pidFile: row.p };
}

export function createMysqlRollingActivities(deps: MysqlActivityDeps) {
  const failpoint = deps.failpoint ?? (() => undefined);
  const { spec, flavor, withNode, probeAll } = mysqlOps(deps);

  return {
    /** Probe every node (mysql probe) plus the asked-for variables and the process start time. Read-only. */
    probeMysqlSpecs: activity(async ({ cluster, keys }: ProbeMysqlSpecsInput): Promise<ProbeMysqlSpecsResult> => {
      const c = spec(cluster);
      const nodes: MysqlSpecProbe[] = await probeAll(c);
      await Promise.all(
        nodes.map(async (n) => {
          if (!n.reachable) return;
          try {
            await withNode(c, n.node, async (conn) => {
              n.startedAt = (await processOf(conn)).startedAt;
              const config: Record<string, string | undefined> = {};
              for (const k of keys) {
                const [r] = await conn.query({ sql: 'SHOW GLOBAL VARIABLES LIKE ?', values: [k.replaceAll('-', '_')], timeout: 5_000 });
                config[k] = (r as { Value: string }[])[0]?.Value;
              }
              n.config = config;
            });
          } catch (e) {
            if (e instanceof HandoverError) throw e;
            n.reachable = false;
            n.error = (e as Error).message;
          }
        }),
      );
      const p = c.policy;
      return {
        cluster,
        nodes,
        hasController: !!c.controller,
        hooks: hookCounts(c),
        policy: { maxLagTransactions: p.maxLagTransactions, maxLagSeconds: p.maxLagSeconds, catchUpTimeoutMs: p.catchUpTimeoutMs, verifyTimeoutMs: p.verifyTimeoutMs, fenceGraceMs: p.fenceGraceMs, restartTimeoutMs: p.restartTimeoutMs },
      };
    }),

    /**
     * Ensure the node's server process has been restarted since `sinceRunId` (its start time): a node started
     * later is not restarted again; otherwise the controller restarts it (with `set` and `version`). Waits,
     * heartbeating, until it answers again. Safe to retry: a retry after the restart sees the new start time.
     */
    ensureMysqlNodeRestarted: activity(async (input: EnsureMysqlNodeRestartedInput): Promise<EnsureMysqlNodeRestartedResult> => {
      const ctx = Context.current();
      const c = spec(input.cluster);
      const controller = controllerFor(c.controller, c.name, 'mysql');
      const n = c.nodes.find((x) => x.id === input.node)!;
      const since = Number(input.sinceRunId);
      const now = await withNode(c, input.node, processOf).catch((e) => {
        if (e instanceof HandoverError) throw e;
        return undefined; // down: the controller starts it
      });
      // Start times are whole seconds computed from Uptime: allow one second of rounding.
      if (now && now.startedAt > since + 1)
        return { restarted: false, startedAt: now.startedAt, audit: `saw ${input.node} running since ${new Date(now.startedAt * 1000).toISOString()} (after ${new Date(since * 1000).toISOString()}): already restarted; changed nothing` };
      await failpoint('ensureMysqlNodeRestarted.beforeRestart');
      const did = await heartbeatWhile(() => controller.restart({ node: n, version: input.version, set: input.set, pidFile: now?.pidFile }));
      const deadline = Date.now() + input.timeoutMs;
      // Restarted: a later start time, or (start times being whole seconds) answering after it was seen down.
      let sawDown = false;
      for (;;) {
        ctx.heartbeat({ progress: timeProgress(`${input.node} back after the restart`, deadline - input.timeoutMs, input.timeoutMs, sawDown ? 'down' : 'restarting') });
        const back = await withNode(c, input.node, processOf).catch((e) => {
          if (e instanceof HandoverError) throw e;
          return undefined;
        });
        if (!back) sawDown = true;
        if (back && (back.startedAt > since + 1 || sawDown)) return { restarted: true, startedAt: back.startedAt, audit: `${did}; ${input.node} answers again` };
        if (Date.now() > deadline) throw new HandoverError(ErrorType.VerificationFailed, `${input.node} did not come back within ${input.timeoutMs} ms after: ${did}; stopping the roll here`);
        await sleep(200);
      }
    }),

    /**
     * Wait until the node is a read-only replica of `primary` with both threads running, has applied the
     * primary's gtid_binlog_pos as it was when the wait began (frozen in heartbeat details across retries),
     * and is within `maxLagTransactions` of the primary now. Read-only.
     */
    waitForMysqlNodeReady: activity(async (input: WaitForMysqlNodeReadyInput): Promise<{ waitedMs: number; audit: string }> => {
      const ctx = Context.current();
      const c = spec(input.cluster);
      const fl = flavor(c);
      const prior = ctx.info.heartbeatDetails as { goal?: string; startedAt: number } | undefined;
      const startedAt = prior?.startedAt ?? Date.now();
      let goal = prior?.goal;
      let last = '';
      for (;;) {
        const p = await withNode(c, input.primary, (conn) => readMysqlNode(conn, c, fl, input.primary)).catch((e) => {
          if (e instanceof HandoverError) throw e;
          return undefined;
        });
        if (goal === undefined && p?.role === 'primary') goal = p.gtidBinlogPos ?? '';
        ctx.heartbeat({ goal, startedAt, progress: timeProgress(`${input.node} ready as a replica of ${input.primary}`, startedAt, input.timeoutMs, last || 'checking') });
        const r = await withNode(c, input.node, (conn) => readMysqlNode(conn, c, fl, input.node)).catch((e) => {
          if (e instanceof HandoverError) throw e;
          return undefined;
        });
        if (!r) last = 'unreachable';
        else if (r.role !== 'replica' || r.sourceNode !== input.primary) last = `replicates from ${r.sourceNode ?? r.sourceAddress ?? 'nobody'}`;
        else if (!r.readOnly) last = 'writable';
        else if (r.ioRunning !== 'Yes' || !r.sqlRunning) last = `io ${r.ioRunning} sql ${r.sqlRunning ? 'Yes' : 'No'}${r.lastError ? `: ${r.lastError}` : ''}`;
        else if (goal === undefined || !gtidIncludes(appliedPos(r), goal)) last = `at ${appliedPos(r) || 'empty'}, short of ${goal ?? '(primary not read yet)'}`;
        else if (p && lagTransactions(appliedPos(r), p.gtidBinlogPos) > input.maxLagTransactions) last = `${lagTransactions(appliedPos(r), p.gtidBinlogPos)} transactions behind ${input.primary}`;
        else {
          const waitedMs = Date.now() - startedAt;
          return { waitedMs, audit: `saw ${input.node} read-only replica of ${input.primary}, threads running, at ${appliedPos(r)} including ${goal || 'empty'} after ${waitedMs} ms` };
        }
        if (Date.now() - startedAt > input.timeoutMs)
          throw new HandoverError(ErrorType.VerificationFailed, `${input.node} not ready within ${input.timeoutMs} ms (${last}); stopping the roll here`);
        ctx.heartbeat({ goal, startedAt, progress: timeProgress(`${input.node} ready as a replica of ${input.primary}`, startedAt, input.timeoutMs, last) });
        await sleep(100);
      }
    }),
  };
}
