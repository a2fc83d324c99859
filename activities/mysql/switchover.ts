/**
 * MySQL/MariaDB activities: every side effect of the MySQL switchover. Each is small, named for the end state
 * it ensures, reads before it acts, acts only when needed, re-reads, and returns what it saw plus an audit line.
 * Inputs carry cluster and node names and GTID positions only; addresses and credentials come from the worker's
 * inventory (activities/mysql/conn.ts, read through activities/mysql/node.ts). The SQL that differs between
 * servers is in activities/mysql/flavor.ts.
 */
import { mysqlCandidateLostData } from '../../core/mysql/empty-primary';
import { hookCounts } from '../hooks';
import { Context } from '@temporalio/activity';
import { ErrorType, HandoverError } from '../../core/errors';
import {
  appliedPos,
  gtidIncludes,
  lagTransactions,
  recheckMysqlDecision,
  type MysqlClusterProbe,
  type MysqlNodeProbe,
  type MysqlPolicy,
} from '../../core/mysql/decide';
import { FENCE_BOUND_EVENT, cancelFenceBound, fenceBoundFired } from './flavor';
import { ER } from './conn';
import { activity, heartbeatWhile } from '../activity';
import { timeProgress } from '../progress';
import { createMysqlReplicationActivities } from './replication';
import { createMysqlRoutingActivities } from './routing';
import { describeMysqlNode, mysqlOps, readMysqlNode, rows, type MysqlActivityDeps } from './node';


export interface MysqlClusterInput {
  cluster: string;
}
export interface MysqlVetoInput {
  cluster: string;
  primary: string;
  candidate: string;
  policy: MysqlPolicy;
  /** --allow-degraded: a follower that can no longer follow does not veto (set only when true). */
  allowDegraded?: boolean;
}
export interface MysqlVetoResult {
  nodes: MysqlNodeProbe[];
  audit: string;
}
export interface EnsureMysqlFencedInput {
  cluster: string;
  node: string;
  /** How long open application transactions may take to finish before their sessions are killed (ms). */
  graceMs: number;
}
export interface EnsureMysqlFencedResult {
  alreadyFenced: boolean;
  /** The fenced node's gtid_binlog_pos once no application write can reach it any more. */
  finalGtid: string;
  /** Epoch ms at which read_only took effect (for the write-blocked figure), or when it was first seen. */
  fencedAt: number;
  killedSessions: number;
  audit: string;
}
export interface EnsureMysqlCaughtUpInput {
  cluster: string;
  primary: string;
  candidate: string;
  /** The fenced primary's final position (frozen by the workflow). */
  position: string;
  timeoutMs: number;
}
export interface EnsureMysqlCaughtUpResult {
  position: string;
  candidatePos: string;
  waitedMs: number;
  resumed: boolean;
  audit: string;
}
export interface EnsureMysqlNodeInput {
  cluster: string;
  node: string;
}
export interface EnsureMysqlWritableResult {
  changed: boolean;
  audit: string;
}
export interface EnsureMysqlPrimaryInput {
  cluster: string;
  node: string;
  /** The position the node must have applied before it may take writes (the fenced primary's final GTID). */
  mustInclude: string;
  /** Switchover: the fenced old primary, whose fence bound is cancelled (and read_only re-checked) before promoting. */
  fencedPrimary?: string;
  /**
   * Failover (the empty-primary guard): what the node had applied at the verdict. A node whose position went
   * back since (wiped, restored, reset) is refused with CandidateResynced, before anything is touched.
   */
  appliedAtVerdict?: string;
}
export interface EnsureMysqlPrimaryResult {
  alreadyHeld: boolean;
  /** Epoch ms at which the node accepted writes (read_only OFF), or when it was first seen writable. */
  promotedAt: number;
  audit: string;
}
export interface EnsureMysqlPromotionUndoneInput {
  cluster: string;
  /** The fenced old primary, made writable again. */
  primary: string;
  /** The candidate whose promotion failed. */
  candidate: string;
}
export interface EnsureMysqlPromotionUndoneResult {
  /** undone: the old primary takes writes again; promoted: the candidate already did, go forward. */
  outcome: 'undone' | 'promoted';
  promotedAt?: number;
  candidateRepointed?: boolean;
  audit: string;
}
export function createMysqlActivities(deps: MysqlActivityDeps) {
  const failpoint = deps.failpoint ?? (() => undefined);
  const { spec, flavor, withNode, probeOne, probeAll } = mysqlOps(deps);
  const replication = createMysqlReplicationActivities(deps);
  const { ensureReplicaOf } = replication;

  /**
   * Compensation before the point of no return: ensure `node` takes writes again (read_only OFF). A no-op
   * when it already does. Refuses when the node replicates from someone (then the switch went through).
   */
  const ensureWritable = async (input: EnsureMysqlNodeInput): Promise<EnsureMysqlWritableResult> => {
    const c = spec(input.cluster);
    const fl = flavor(c);
    return withNode(c, input.node, async (conn) => {
      const before = await readMysqlNode(conn, c, fl, input.node);
      if (before.role !== 'primary')
        throw new HandoverError(ErrorType.UnexpectedTopology, `${input.node} replicates from ${before.sourceNode ?? before.sourceAddress}: the handover passed the point of no return and cannot be undone`);
      // The fence's bound is no longer needed (or already fired, leaving a disabled event behind): drop it.
      const dropped = c.policy.fenceBoundMs > 0 && (await cancelFenceBound(conn, fl));
      if (!before.readOnly) return { changed: dropped, audit: `saw ${input.node} writable; ${dropped ? `dropped the spent ${FENCE_BOUND_EVENT}` : 'changed nothing'}` };
      for (const s of fl.unfence) await conn.query(s);
      const after = await readMysqlNode(conn, c, fl, input.node);
      if (after.readOnly) throw new Error(`${input.node} still read-only after ${fl.unfence.join('; ')}`);
      return { changed: true, audit: `saw ${input.node} read-only; ${fl.unfence.join('; ')}` };
    });
  };

  return {
    /**
     * Probe every node: read_only, gtid_binlog_pos / gtid_current_pos / gtid_slave_pos, replication threads,
     * Seconds_Behind_Master, source (mapped to an inventory node) and errant GTIDs. Read-only: safe to retry.
     */
    probeMysqlCluster: activity(async ({ cluster }: MysqlClusterInput): Promise<MysqlClusterProbe> => {
      const c = spec(cluster);
      await failpoint('probeMysqlCluster.start');
      const nodes = await probeAll(c);
      const p = c.policy;
      return {
        cluster,
        engine: 'mysql',
        flavor: c.flavor ?? 'mariadb',
        policy: { maxLagTransactions: p.maxLagTransactions, maxLagSeconds: p.maxLagSeconds, catchUpTimeoutMs: p.catchUpTimeoutMs, verifyTimeoutMs: p.verifyTimeoutMs, fenceGraceMs: p.fenceGraceMs, ...(p.allowDegraded ? { allowDegraded: true } : {}) },
        routingHook: c.routingHook !== undefined,
        hooks: hookCounts(c),
        nodes,
        probedAt: new Date().toISOString(),
      };
    }),

    /** The veto: re-probe and re-check the frozen decision just before the fence. Read-only; fails closed. */
    vetoMysqlHandover: activity(async (input: MysqlVetoInput): Promise<MysqlVetoResult> => {
      const c = spec(input.cluster);
      const nodes = await probeAll(c);
      const why = recheckMysqlDecision(nodes, input, input.policy);
      if (why) throw new HandoverError(ErrorType.PreconditionFailed, `veto: ${why}; nothing was changed`, { nodes });
      const cand = nodes.find((n) => n.node === input.candidate)!;
      const prim = nodes.find((n) => n.node === input.primary)!;
      return { nodes, audit: `saw ${describeMysqlNode(prim)}; ${describeMysqlNode(cand)}; decision stands` };
    }),

    /**
     * Ensure the primary refuses application writes: read_only ON (super_read_only where the flavor has it).
     * Setting it waits for open write transactions, bounded by lock_wait_timeout = the grace; past the grace
     * the sessions holding transactions are killed and the fence retried. Then every application session is
     * killed so pools reconnect and find the new writer. Returns the final gtid_binlog_pos, read once the
     * fence holds. Safe to retry: an already read-only node is not changed (sessions are swept again).
     */
    ensureMysqlFenced: activity(
      async (input: EnsureMysqlFencedInput): Promise<EnsureMysqlFencedResult> =>
        heartbeatWhile(async () => {
          const c = spec(input.cluster);
          const fl = flavor(c);
          const self = new Set([c.credentials.username, c.replicationCredentials?.username, 'system user', 'event_scheduler'].filter(Boolean) as string[]);
          return withNode(c, input.node, async (conn) => {
            const before = await readMysqlNode(conn, c, fl, input.node);
            if (before.role !== 'primary') throw new HandoverError(ErrorType.UnexpectedTopology, `cannot fence ${input.node}: it is a replica of ${before.sourceNode ?? before.sourceAddress}`);
            const [{ id: myId }] = (await rows(conn, 'SELECT CONNECTION_ID() AS id')) as { id: number }[];
            /** Application sessions (optionally only those with an open InnoDB transaction). */
            const appSessions = async (withTrx: boolean) =>
              (
                (await rows(
                  conn,
                  withTrx
                    ? 'SELECT p.ID AS id, p.USER AS user FROM information_schema.PROCESSLIST p JOIN information_schema.INNODB_TRX t ON t.trx_mysql_thread_id = p.ID'
                    : 'SELECT ID AS id, USER AS user, COMMAND AS command FROM information_schema.PROCESSLIST',
                )) as { id: number; user: string; command?: string }[]
              ).filter((s) => s.id !== myId && !self.has(s.user) && s.command !== 'Binlog Dump' && s.command !== 'Daemon');
            const kill = async (ids: number[]) => {
              let n = 0;
              for (const id of ids) {
                try {
                  await conn.query('KILL CONNECTION ?', [id]);
                  n++;
                } catch (e) {
                  if ((e as { errno?: number }).errno !== ER.NO_SUCH_THREAD) throw e;
                }
              }
              return n;
            };
            let killed = 0;
            let fencedAt = Date.now();
            const alreadyFenced = !!before.readOnly;
            const boundMs = c.policy.fenceBoundMs;
            if (!alreadyFenced && boundMs > 0 && Context.current().info.attempt > 1 && (await fenceBoundFired(conn)))
              // An earlier attempt fenced, then its worker died before reporting; the bound lifted the fence and the
              // old primary has taken writes since. The decision the run was started on is that old: undo, do not
              // fence again behind the operator's back.
              throw new HandoverError(
                ErrorType.FenceBoundExpired,
                `${input.node} takes writes again (its fence bound of ${boundMs} ms expired while no worker ran the switchover), before the candidate was promoted`,
              );
            if (!alreadyFenced) {
              if (boundMs > 0) {
                // The bound first: read_only is never ON without the event that lifts it (a retried fence keeps
                // the first attempt's deadline, since an already read-only node is not touched here).
                const [{ es }] = (await rows(conn, 'SELECT @@global.event_scheduler AS es')) as { es: string }[];
                if (String(es).toUpperCase() !== 'ON')
                  throw new HandoverError(
                    ErrorType.FenceBoundUnavailable,
                    `${input.node} runs with event_scheduler=${es}: its fence would have no server-side bound; set event_scheduler=ON on every node (my.cnf and SET GLOBAL), or policy fenceBoundMs: 0 to fence without a bound. Nothing was changed`,
                  );
                for (const s of fl.fenceBound(boundMs / 1000)) await conn.query(s);
              }
              await failpoint('ensureMysqlFenced.beforeFence');
              await conn.query('SET SESSION lock_wait_timeout = ?', [Math.max(1, Math.ceil(input.graceMs / 1000))]);
              const fence = async () => {
                for (const s of fl.fence) await conn.query(s);
              };
              try {
                await fence();
              } catch (e) {
                if ((e as { errno?: number }).errno !== ER.LOCK_WAIT_TIMEOUT) throw e;
                // Past the grace: end the sessions whose open transactions hold the fence off, then fence.
                killed += await kill((await appSessions(true)).map((s) => s.id));
                await conn.query('SET SESSION lock_wait_timeout = 10');
                await fence();
              }
              fencedAt = Date.now();
            }
            // No application write can commit now: sweep the remaining application sessions.
            killed += await kill((await appSessions(false)).map((s) => s.id));
            const after = await readMysqlNode(conn, c, fl, input.node);
            if (!after.readOnly) throw new Error(`${input.node} still writable after ${fl.fence.join('; ')}`);
            return {
              alreadyFenced,
              finalGtid: after.gtidBinlogPos ?? '',
              fencedAt,
              killedSessions: killed,
              audit: `${alreadyFenced ? `saw ${input.node} already read-only` : `saw ${input.node} writable; ${boundMs > 0 ? `scheduled ${FENCE_BOUND_EVENT} (read_only OFF in ${boundMs} ms unless the promotion cancels it); ` : ''}${fl.fence.join('; ')}`}; killed ${killed} application session(s); final position ${after.gtidBinlogPos || 'empty'}`,
            };
          });
        }),
    ),

    /**
     * Wait until the candidate has applied the fenced primary's final position (MASTER_GTID_WAIT in one-second
     * slices, heartbeating). The goal and the start time are frozen in the heartbeat details, so a retried
     * attempt neither restarts the clock nor moves the goal. Should the fenced primary's position still move
     * (an account allowed past read_only), the goal follows it. Changes nothing; CatchUpTimeout at the deadline.
     */
    ensureMysqlCaughtUp: activity(async (input: EnsureMysqlCaughtUpInput): Promise<EnsureMysqlCaughtUpResult> => {
      const ctx = Context.current();
      const c = spec(input.cluster);
      const fl = flavor(c);
      const prior = ctx.info.heartbeatDetails as { goal: string; startedAt: number } | undefined;
      const startedAt = prior?.startedAt ?? Date.now();
      let goal = prior?.goal ?? input.position;
      const deadline = startedAt + input.timeoutMs;
      return withNode(c, input.candidate, async (conn) => {
        for (;;) {
          ctx.heartbeat({ goal, startedAt });
          await failpoint('ensureMysqlCaughtUp.loop');
          const slice = Math.max(0.05, Math.min(1, (deadline - Date.now()) / 1000));
          const [{ r }] = (await rows(conn, fl.waitForPosition, [goal, slice])) as { r: unknown }[];
          const cand = await readMysqlNode(conn, c, fl, input.candidate);
          if (cand.role !== 'replica' || cand.sourceNode !== input.primary)
            throw new HandoverError(ErrorType.UnexpectedTopology, `candidate ${input.candidate} is no longer a replica of ${input.primary}`);
          if (!cand.sqlRunning) throw new HandoverError(ErrorType.HandoverAborted, `candidate ${input.candidate} stopped applying replication: ${cand.lastError ?? 'SQL thread not running'}`);
          if (fl.waitReached(r) && gtidIncludes(appliedPos(cand), goal)) {
            const now = await probeOne(c, input.primary);
            if (!now.reachable) throw new Error(`${input.primary} unreachable while confirming its final position: ${now.error}`);
            if (!now.readOnly)
              throw new HandoverError(
                ErrorType.FenceBoundExpired,
                `${input.primary} takes writes again (its fence bound of ${c.policy.fenceBoundMs} ms expired, or read_only was turned off by hand) before ${input.candidate} was promoted`,
              );
            if (now.gtidBinlogPos && !gtidIncludes(goal, now.gtidBinlogPos)) {
              goal = now.gtidBinlogPos; // the fenced primary still moved: follow it
              continue;
            }
            const waitedMs = Date.now() - startedAt;
            return {
              position: goal,
              candidatePos: appliedPos(cand),
              waitedMs,
              resumed: prior !== undefined,
              audit: `saw ${input.candidate} at ${appliedPos(cand)}, including ${input.primary}'s final ${goal || 'empty'}, after ${waitedMs} ms; changed nothing`,
            };
          }
          if (Date.now() >= deadline)
            throw new HandoverError(ErrorType.CatchUpTimeout, `candidate ${input.candidate} did not apply ${goal} within ${input.timeoutMs} ms (at ${appliedPos(cand) || 'empty'})`);
          // For `--wait` progress bars only: transactions still to apply, against the catch-up deadline.
          const behind = lagTransactions(appliedPos(cand), goal);
          ctx.heartbeat({ goal, startedAt, progress: { ...timeProgress(`${input.candidate} applying ${input.primary}'s final position`, startedAt, input.timeoutMs), note: `${behind} transaction(s) to apply` } });
        }
      });
    }),

    /** Compensation before the promotion: the old primary writable again (ensureWritable above). */
    ensureMysqlWritable: activity(ensureWritable),

    /**
     * Ensure `node` is the primary: replication stopped and forgotten, read_only OFF. Only once it has applied
     * `mustInclude` (the fenced primary's final position), so no acknowledged commit is left behind. Safe to
     * retry: resumes from whatever it finds (still replicating, reset but read-only, already writable).
     */
    ensureMysqlPrimary: activity(async (input: EnsureMysqlPrimaryInput): Promise<EnsureMysqlPrimaryResult> => {
      const c = spec(input.cluster);
      const fl = flavor(c);
      await failpoint('ensureMysqlPrimary.check');
      return withNode(c, input.node, async (conn) => {
        const before = await readMysqlNode(conn, c, fl, input.node);
        if (before.role === 'primary' && !before.readOnly) return { alreadyHeld: true, promotedAt: Date.now(), audit: `saw ${input.node} already a writable primary; changed nothing` };
        const lost = input.appliedAtVerdict !== undefined ? mysqlCandidateLostData(input.node, input.appliedAtVerdict, before) : undefined;
        if (lost) throw new HandoverError(ErrorType.CandidateResynced, `${lost}: not promoted; nothing was changed`);
        if (!gtidIncludes(appliedPos(before), input.mustInclude))
          throw new HandoverError(ErrorType.UnexpectedTopology, `${input.node} at ${appliedPos(before) || 'empty'} lacks ${input.mustInclude}: refusing to promote it`);
        // Never two writable nodes: every other node that answers must be read-only (the fence holds). Checked before
        // anything is touched, so a refusal leaves the candidate as it was.
        const others = await Promise.all(c.nodes.filter((n) => n.id !== input.node).map((n) => probeOne(c, n.id)));
        const writable = others.filter((n) => n.reachable && !n.readOnly);
        if (writable.length)
          throw new HandoverError(ErrorType.UnexpectedTopology, `refusing to promote ${input.node}: ${writable.map((n) => n.node).join(', ')} still writable`);
        const did: string[] = [];
        // Replication first: stopping and forgetting it makes nobody writable, and fails (a missing grant, a
        // broken node) while the old primary's fence bound is still armed. The workflow's undo then repoints
        // the candidate and makes the old primary writable again.
        if (before.role === 'replica') {
          await conn.query(fl.stopReplica);
          await failpoint('ensureMysqlPrimary.stopped');
          await conn.query(fl.resetReplica);
          did.push(fl.stopReplica, fl.resetReplica);
        }
        // Then cancel the fence's bound on the old primary, and only then check it is still read-only: once the
        // event is gone nothing turns it writable behind the new primary's back (the bound is the one way a node
        // seen read-only above can turn writable by itself). If it cannot be reached, its
        // event cannot be cancelled, so nothing is promoted (it would take writes again at the bound).
        const old = input.fencedPrimary;
        if (old && old !== input.node && c.policy.fenceBoundMs > 0) {
          const stillFenced = await withNode(c, old, async (oc) => {
            if (await cancelFenceBound(oc, fl)) did.push(`DROP EVENT ${FENCE_BOUND_EVENT} on ${old}`);
            return !!(await readMysqlNode(oc, c, fl, old)).readOnly;
          }).catch((e: unknown) => {
            if (e instanceof HandoverError) throw e;
            throw new Error(`cannot cancel the fence bound on ${old} (${(e as Error).message}): not promoting ${input.node}, ${old} would take writes again at the bound`);
          });
          if (!stillFenced)
            throw new HandoverError(
              ErrorType.FenceBoundExpired,
              `${old} takes writes again (its fence bound of ${c.policy.fenceBoundMs} ms expired before the promotion): ${old} is still the primary, ${input.node} was not promoted; run the switchover again`,
            );
        }
        for (const s of fl.unfence) await conn.query(s);
        const promotedAt = Date.now();
        did.push(...fl.unfence);
        const after = await readMysqlNode(conn, c, fl, input.node);
        if (after.role !== 'primary' || after.readOnly) throw new Error(`${input.node} is not a writable primary after ${did.join('; ')}`);
        return { alreadyHeld: false, promotedAt, audit: `saw ${describeMysqlNode(before)}; ${did.join('; ')}; now writable at ${after.gtidBinlogPos}` };
      });
    }),

    /**
     * Undo a promotion that failed before the candidate took writes: when `candidate` is still read-only (it
     * took no write), the old primary is made writable again (its fence bound dropped) and then the candidate
     * is repointed at it. When the candidate is writable, the promotion took effect: nothing is undone and
     * the workflow finishes forward. Safe to retry: each half is a no-op once it holds. A failure to repoint
     * the candidate is reported, not thrown: by then the cluster has its writable primary back.
     */
    ensureMysqlPromotionUndone: activity(async (input: EnsureMysqlPromotionUndoneInput): Promise<EnsureMysqlPromotionUndoneResult> => {
      const c = spec(input.cluster);
      const cand = await probeOne(c, input.candidate);
      if (!cand.reachable)
        throw new Error(`${input.candidate} unreachable (${cand.error}): cannot tell whether it took writes, so ${input.primary} is not made writable yet`);
      if (!cand.readOnly) return { outcome: 'promoted', promotedAt: Date.now(), audit: `saw ${input.candidate} writable: the promotion took effect; nothing undone` };
      const w = await ensureWritable({ cluster: input.cluster, node: input.primary });
      let candidate: string;
      try {
        candidate = (await ensureReplicaOf({ cluster: input.cluster, node: input.candidate, primary: input.primary })).audit;
      } catch (e) {
        candidate = `NOT repointed: ${(e as Error).message}`;
      }
      return {
        outcome: 'undone',
        candidateRepointed: !candidate.startsWith('NOT'),
        audit: `saw ${input.candidate} read-only (it took no write); ${input.primary}: ${w.audit}; ${input.candidate}: ${candidate}`,
      };
    }),

    ...replication.activities,
    ...createMysqlRoutingActivities(deps),
  };
}

export type MysqlActivities = ReturnType<typeof createMysqlActivities>;
