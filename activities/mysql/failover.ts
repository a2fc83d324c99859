/**
 * Unplanned-failover activities for MySQL/MariaDB (GTID replication): the failover probe (reachability, each
 * replica's IO thread and Last_IO_Error, received GTID position), the bounded wait for the candidate to apply
 * its relay log, fencing a returning old primary (read_only ON first, then CHANGE MASTER; errant GTIDs: left
 * read-only and flagged), and a verification that tolerates nodes still down. Promotion and repointing reuse
 * the switchover's ensureMysqlPrimary / ensureMysqlReplicaOf (activities/mysql.ts).
 */
import { hookCounts } from '../hooks';
import { Context } from '@temporalio/activity';
import type mysql from 'mysql2/promise';
import { errantOnReturn, listErrantGtids, receivedPos, type MysqlFailoverNodeProbe, type MysqlFailoverProbe } from '../../core/mysql/failover';
import { mysqlCandidateLostData } from '../../core/mysql/empty-primary';
import { appliedPos, gtidIncludes, normalizeGtidPos, type MysqlNodeProbe } from '../../core/mysql/decide';
import { ErrorType, HandoverError } from '../../core/errors';
import type { Promotion } from '../../core/types';
import type { ClusterSpec } from '../../inventory/schema';
import { createMysqlActivities } from './switchover';
import { mysqlOps, readMysqlNode, readMissingPrivileges, type MysqlActivityDeps } from './node';
import { ER } from './conn';
import { FENCE_BOUND_EVENT, cancelFenceBound, type MysqlFlavor } from './flavor';
import { activity } from '../activity';

export interface WaitRelayAppliedInput {
  cluster: string;
  node: string;
  /** What the candidate had received when chosen (frozen by the workflow). */
  position: string;
  timeoutMs: number;
  /**
   * The empty-primary guard: what the candidate had applied at the verdict. A candidate whose position went back
   * since (wiped, restored, reset) is refused at once with CandidateResynced instead of waited for.
   */
  appliedAtVerdict?: string;
}
export interface WaitRelayAppliedResult {
  applied: string;
  waitedMs: number;
  audit: string;
}
export interface EnsureMysqlRejoinedInput {
  cluster: string;
  node: string;
  primary: string;
  /** The promoted node's position at promotion: anything of the node's own beyond it was never replicated. */
  promotedGtid?: string;
}
export interface EnsureMysqlRejoinedResult {
  /** rejoined: now a read-only replica of `primary`; flagged: read-only, NOT replicating (errant GTIDs). */
  outcome: 'already' | 'rejoined' | 'flagged';
  errantGtids: string[];
  wasWritable: boolean;
  audit: string;
}
export interface EnsureMysqlKeptOutInput {
  cluster: string;
  node: string;
  /** Why it is kept out (the monitor's verdict), for the audit. */
  reason: string;
}
export interface EnsureMysqlKeptOutResult {
  wasWritable: boolean;
  /** What it holds now (its own writes since it came back, if any): never replicated anywhere. */
  gtid: string;
  audit: string;
}
export interface VerifyMysqlFailoverInput {
  cluster: string;
  primary: string;
  /** Nodes not expected to answer or replicate yet (down, or flagged). */
  ignore: string[];
  timeoutMs: number;
}
export interface VerifyMysqlFailoverResult {
  primary: string;
  nodes: { node: string; writable: boolean; gtid: string; io?: string; sql?: boolean }[];
  waitedMs: number;
  audit: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** The fence's bound on its global read lock (lock_wait_timeout), and how often application sessions are swept meanwhile. */
const FENCE_LOCK_WAIT_S = 5;
const FENCE_SWEEP_MS = 50;
const SESSIONS_SQL = 'SELECT ID AS id, USER AS user, COMMAND AS command FROM information_schema.PROCESSLIST';
type Session = { id: number; user: string; command: string };
const READ_TIMEOUT_MS = 5_000;
type Row = Record<string, unknown>;

async function rows(conn: mysql.Connection, sql: string, params: unknown[] = [], timeout = READ_TIMEOUT_MS): Promise<Row[]> {
  const [r] = await conn.query({ sql, values: params, timeout });
  return r as Row[];
}

function heartbeat(details?: unknown): void {
  try {
    Context.current().heartbeat(details);
  } catch {
    /* called outside an activity (tests) */
  }
}

/** One node: the switchover probe plus Gtid_IO_Pos and Last_IO_Error, over `use`'s connection. Unreachable is an observation. */
export async function probeFailoverNode(
  c: ClusterSpec,
  node: string,
  use: <T>(fn: (conn: mysql.Connection) => Promise<T>) => Promise<T>,
  fl: MysqlFlavor,
): Promise<MysqlFailoverNodeProbe> {
  const n = c.nodes.find((x) => x.id === node)!;
  try {
    return await use(async (conn) => {
      const p: MysqlFailoverNodeProbe = await readMysqlNode(conn, c, fl, node);
      p.missingPrivileges = await readMissingPrivileges(conn, c);
      if (p.role === 'replica') {
        const r = (await rows(conn, fl.replicaStatus))[0] ?? {};
        if (r.Gtid_IO_Pos !== undefined) p.gtidIoPos = normalizeGtidPos(String(r.Gtid_IO_Pos ?? ''));
        p.lastIoError = String(r.Last_IO_Error ?? '') || undefined;
      }
      return p;
    });
  } catch (e) {
    if (e instanceof HandoverError) throw e;
    return { node: n.id, address: `${n.host}:${n.port}`, promotion: n.promotion as Promotion, reachable: false, error: (e as Error).message };
  }
}

/** Every node; primaries are read again after the replicas (a replica read later must not look ahead). */
export async function probeFailoverNodes(c: ClusterSpec, probeOne: (c: ClusterSpec, node: string) => Promise<MysqlFailoverNodeProbe>): Promise<MysqlFailoverNodeProbe[]> {
  const nodes = await Promise.all(c.nodes.map((n) => probeOne(c, n.id)));
  const again = await Promise.all(nodes.map((n) => (n.reachable && n.role === 'primary' ? probeOne(c, n.node) : Promise.resolve(n))));
  return again.map((n, i) => (n.reachable ? n : nodes[i]));
}

/** The failover probe's frame around the nodes: policy, hooks, when. */
export function failoverProbeOf(cluster: string, c: ClusterSpec, nodes: MysqlFailoverNodeProbe[]): MysqlFailoverProbe {
  const p = c.policy;
  return {
    cluster,
    engine: 'mysql',
    policy: { probeIntervalMs: p.probeIntervalMs, probesToConfirm: p.probesToConfirm, failoverBlockMs: p.failoverBlockMs, catchUpTimeoutMs: p.catchUpTimeoutMs, verifyTimeoutMs: p.verifyTimeoutMs },
    routingHook: c.routingHook !== undefined,
    hooks: hookCounts(c),
    nodes,
    probedAt: new Date().toISOString(),
  };
}

export function createMysqlFailoverActivities(deps: MysqlActivityDeps) {
  const { spec, flavor, withNode } = mysqlOps(deps);
  const base = createMysqlActivities(deps);

  const probeOne = (c: ClusterSpec, node: string) => probeFailoverNode(c, node, (fn) => withNode(c, node, fn), flavor(c));
  const probeAll = (c: ClusterSpec) => probeFailoverNodes(c, probeOne);

  /**
   * Make a writable node read-only while its clients keep writing, bounded by FENCE_LOCK_WAIT_S. A commit in
   * flight holds read_only off, and on a resumed frozen primary under semi-sync every commit waits for an
   * acknowledgement that never comes (it is already committed locally; only its OK is held back). So: FLUSH
   * TABLES WITH READ LOCK on `conn`; while it waits, its pending lock already blocks every new write ("Waiting
   * for backup lock"), and a second automation session kills every application session every FENCE_SWEEP_MS
   * (a killed session's client gets an error, never an OK; semi-sync is never turned off, which would
   * acknowledge commits the new primary lacks). Once the lock is held: the flavor's fence (read_only ON) in the
   * same session, then UNLOCK TABLES. Returns the audit lines. Throws when the lock is not granted in time
   * (nothing changed but the sessions killed) or a kill is refused (the automation user lacks CONNECTION ADMIN).
   */
  async function fenceUnderGlobalReadLock(c: ClusterSpec, node: string, conn: mysql.Connection, fl: MysqlFlavor, isAutomation: (s: Session) => boolean): Promise<string[]> {
    const startedAt = Date.now();
    await conn.query(`SET SESSION lock_wait_timeout = ${FENCE_LOCK_WAIT_S}`);
    const [{ id: me }] = (await rows(conn, 'SELECT CONNECTION_ID() AS id')) as { id: number }[];
    let settled = false;
    const lock = conn.query({ sql: 'FLUSH TABLES WITH READ LOCK', timeout: (FENCE_LOCK_WAIT_S + 5) * 1000 }).then(
      () => {
        settled = true;
        return undefined;
      },
      (e: unknown) => {
        settled = true;
        return e as Error & { errno?: number };
      },
    );
    const killed = new Set<number>();
    await withNode(c, node, async (k) => {
      const [{ id: sweeper }] = (await rows(k, 'SELECT CONNECTION_ID() AS id')) as { id: number }[];
      while (!settled) {
        const all = (await rows(k, SESSIONS_SQL)) as Session[];
        for (const v of all.filter((x) => x.id !== me && x.id !== sweeper && !isAutomation(x) && !killed.has(x.id))) {
          await k.query('KILL CONNECTION ?', [v.id]).then(
            () => killed.add(v.id),
            (e: { errno?: number }) => {
              if (e.errno === ER.KILL_DENIED) throw e; // no CONNECTION ADMIN: the lock would only time out
              killed.add(v.id); // gone already (NO_SUCH_THREAD)
            },
          );
        }
        await Promise.race([lock, sleep(FENCE_SWEEP_MS)]);
      }
    });
    const failed = await lock;
    const killedLine = `killed ${killed.size} application session(s) while it waited`;
    if (failed) {
      if (failed.errno === ER.LOCK_WAIT_TIMEOUT)
        throw new Error(`${node}: FLUSH TABLES WITH READ LOCK not granted within ${FENCE_LOCK_WAIT_S} s (${killedLine}); ${node} is still writable`);
      throw failed;
    }
    try {
      for (const s of fl.fence) await conn.query(s);
    } finally {
      await conn.query('UNLOCK TABLES');
    }
    return [`FLUSH TABLES WITH READ LOCK in ${Date.now() - startedAt} ms (${killedLine})`, ...fl.fence, 'UNLOCK TABLES'];
  }

  /**
   * read_only ON first, under a global read lock while every application session is killed
   * (fenceUnderGlobalReadLock), a fence bound left on it dropped, every application session killed; unless
   * `done(before)` says the node is already as wanted.
   */
  async function fenceReadOnly(c: ClusterSpec, node: string, done: (before: MysqlNodeProbe) => boolean) {
    const fl = flavor(c);
    const self = new Set([c.credentials.username, c.replicationCredentials?.username, 'system user', 'event_scheduler'].filter(Boolean) as string[]);
    const isAutomation = (s: Session) => self.has(s.user) || s.command === 'Binlog Dump' || s.command === 'Daemon';
    return withNode(c, node, async (conn) => {
      const before = await readMysqlNode(conn, c, fl, node);
      if (done(before)) return { before, after: before, already: true, did: [] as string[] };
      const did: string[] = [];
      // A fence bound left by a switchover that never finished would turn this node writable later: drop it.
      if (c.policy.fenceBoundMs > 0 && (await cancelFenceBound(conn, fl))) did.push(`DROP EVENT ${FENCE_BOUND_EVENT}`);
      if (!before.readOnly) did.push(...(await fenceUnderGlobalReadLock(c, node, conn, fl, isAutomation)));
      const [{ id: myId }] = (await rows(conn, 'SELECT CONNECTION_ID() AS id')) as { id: number }[];
      const sessions = (await rows(conn, SESSIONS_SQL)) as Session[];
      let killed = 0;
      for (const s of sessions.filter((x) => x.id !== myId && !isAutomation(x))) {
        await conn.query('KILL CONNECTION ?', [s.id]).then(
          () => killed++,
          () => undefined,
        );
      }
      if (killed) did.push(`killed ${killed} application session(s)`);
      const after = await readMysqlNode(conn, c, fl, node);
      if (!after.readOnly) throw new Error(`${node} still writable after ${fl.fence.join('; ')}`);
      return { before, after, already: false, did };
    });
  }

  return {
    /** Probe every node for the failover decision and the monitor. Read-only: safe to retry. */
    probeMysqlFailover: activity(async ({ cluster }: { cluster: string }): Promise<MysqlFailoverProbe> => {
      const c = spec(cluster);
      return failoverProbeOf(cluster, c, await probeAll(c));
    }),

    /**
     * Wait, bounded, until `node` has applied `position` (what it had received from the dead primary: its relay
     * log). MASTER_GTID_WAIT in one-second slices with heartbeats; read-only, so a retry simply waits again.
     * Times out with CatchUpTimeout (nothing changed: the workflow refuses to promote a node with unapplied
     * transactions it knows of).
     */
    waitMysqlRelayApplied: activity(async (input: WaitRelayAppliedInput): Promise<WaitRelayAppliedResult> => {
      const c = spec(input.cluster);
      const fl = flavor(c);
      const startedAt = Date.now();
      const deadline = startedAt + input.timeoutMs;
      return withNode(c, input.node, async (conn) => {
        for (;;) {
          heartbeat();
          const now = await readMysqlNode(conn, c, fl, input.node);
          const lost = input.appliedAtVerdict !== undefined ? mysqlCandidateLostData(input.node, input.appliedAtVerdict, now) : undefined;
          if (lost) throw new HandoverError(ErrorType.CandidateResynced, `${lost}: not promoted; nothing was changed`);
          if (gtidIncludes(appliedPos(now), input.position)) {
            const waitedMs = Date.now() - startedAt;
            return { applied: appliedPos(now), waitedMs, audit: `saw ${input.node} applied ${appliedPos(now) || 'empty'} including received ${input.position || 'empty'} after ${waitedMs} ms; changed nothing` };
          }
          if (now.role === 'replica' && !now.sqlRunning) throw new HandoverError(ErrorType.HandoverAborted, `${input.node} stopped applying its relay log: ${now.lastError ?? 'SQL thread not running'}`);
          if (Date.now() >= deadline)
            throw new HandoverError(ErrorType.CatchUpTimeout, `${input.node} did not apply its relay log up to ${input.position} within ${input.timeoutMs} ms (applied ${appliedPos(now) || 'empty'}); nothing was changed`);
          const slice = Math.max(0.05, Math.min(1, (deadline - Date.now()) / 1000));
          await rows(conn, fl.waitForPosition, [input.position, slice], 10_000);
        }
      });
    }),

    /**
     * Fence a node that came back (an old primary) and rejoin it: read_only ON FIRST (open transactions get
     * two seconds, then their sessions are killed; every application session is then killed), and only then,
     * if it holds no GTID the promoted node lacks, CHANGE MASTER to `primary` with MASTER_USE_GTID=slave_pos
     * (ensureMysqlReplicaOf). With errant GTIDs it is left read-only and not replicating, and flagged.
     * Safe to retry: each part reads first and is a no-op when it already holds.
     */
    ensureMysqlRejoined: activity(async (input: EnsureMysqlRejoinedInput): Promise<EnsureMysqlRejoinedResult> => {
      const c = spec(input.cluster);
      const primaryNow = await probeOne(c, input.primary);
      if (!primaryNow.reachable || primaryNow.role !== 'primary' || primaryNow.readOnly)
        throw new HandoverError(ErrorType.UnexpectedTopology, `cannot rejoin ${input.node}: ${input.primary} is not a reachable writable primary`);
      const fenced = await fenceReadOnly(c, input.node, (before) => before.role === 'replica' && before.sourceNode === input.primary && !!before.readOnly && before.ioRunning === 'Yes' && !!before.sqlRunning);
      const b = fenced.before;
      if (fenced.already) return { outcome: 'already', errantGtids: [], wasWritable: false, audit: `saw ${input.node} already a read-only replica of ${input.primary}, threads running; changed nothing` };
      const errant = listErrantGtids(errantOnReturn(b.gtidBinlogPos, input.promotedGtid, primaryNow.gtidBinlogPos), input.promotedGtid, primaryNow.gtidBinlogPos);
      const saw = `saw ${input.node} ${b.role === 'replica' ? `replica of ${b.sourceNode ?? b.sourceAddress}` : 'primary'} ${b.readOnly ? 'read-only' : 'WRITABLE'} at ${b.gtidBinlogPos || 'empty'}`;
      if (errant.length)
        return {
          outcome: 'flagged',
          errantGtids: errant,
          wasWritable: !b.readOnly,
          audit: `${saw}; ${[...fenced.did, 'left read-only'].join('; ')}; FLAGGED: errant GTIDs ${errant.join(',')} (never replicated to ${input.primary}, promoted at ${input.promotedGtid ?? '?'}): not rejoined, resolve by hand (discard and reclone, or reapply)`,
        };
      const r = await base.ensureMysqlReplicaOf({ cluster: input.cluster, node: input.node, primary: input.primary });
      return { outcome: 'rejoined', errantGtids: [], wasWritable: !b.readOnly, audit: `${saw}; ${[...fenced.did, r.audit].join('; ')}` };
    }),

    /**
     * Keep a node that came back EMPTY or reset (the monitor's empty-primary guard) out of the cluster: read_only
     * ON (no bound: nothing turns it writable again; a fence bound left on it is dropped), every application
     * session killed, replication left as it is (it holds nothing the cluster needs, and it must not be made a
     * replica from its own position: it would skip what it lost). Done before the promotion, which refuses while
     * another node is writable. Safe to retry: a read-only node is not changed (its sessions are swept again).
     */
    ensureMysqlKeptOut: activity(async (input: EnsureMysqlKeptOutInput): Promise<EnsureMysqlKeptOutResult> => {
      const c = spec(input.cluster);
      const f = await fenceReadOnly(c, input.node, () => false);
      const b = f.before;
      return {
        wasWritable: !b.readOnly,
        gtid: f.after.gtidBinlogPos ?? '',
        audit: `saw ${input.node} replicating from ${b.role === 'replica' ? (b.sourceNode ?? b.sourceAddress) : 'nobody'}, ${b.readOnly ? 'read-only' : 'WRITABLE'} at ${b.gtidBinlogPos || 'empty'} (${input.reason}); ${[...f.did, 'kept out: not a replica, not a candidate'].join('; ')}`,
      };
    }),

    /**
     * Verify after a failover: `primary` the only writable node, every other answering node (not ignored) a
     * read-only replica of it with both threads running and at or past the primary's position when
     * verification began. Read-only; bounded by timeoutMs.
     */
    verifyMysqlFailover: activity(async (input: VerifyMysqlFailoverInput): Promise<VerifyMysqlFailoverResult> => {
      const c = spec(input.cluster);
      const startedAt = Date.now();
      let goal: string | undefined;
      for (;;) {
        heartbeat();
        const nodes = await probeAll(c);
        const problems: string[] = [];
        const p = nodes.find((n) => n.node === input.primary);
        const writable = nodes.filter((n) => n.reachable && !n.readOnly);
        if (writable.length !== 1 || writable[0].node !== input.primary) problems.push(`writable: ${writable.map((n) => n.node).join(', ') || 'none'} (expected ${input.primary})`);
        if (p?.role !== 'primary') problems.push(`${input.primary} is not a primary`);
        if (goal === undefined && p?.reachable && p.role === 'primary') goal = p.gtidBinlogPos ?? '';
        for (const n of nodes) {
          if (n.node === input.primary || input.ignore.includes(n.node)) continue;
          if (!n.reachable) problems.push(`${n.node} unreachable`);
          else if (n.role !== 'replica' || n.sourceNode !== input.primary) problems.push(`${n.node} replicates from ${n.sourceNode ?? n.sourceAddress ?? 'nobody'}`);
          else if (n.ioRunning !== 'Yes' || !n.sqlRunning) problems.push(`${n.node} io ${n.ioRunning} sql ${n.sqlRunning ? 'Yes' : 'No'}`);
          else if (!gtidIncludes(receivedPos(n), goal)) problems.push(`${n.node} at ${appliedPos(n)} short of ${goal}`);
        }
        if (!problems.length) {
          const waitedMs = Date.now() - startedAt;
          return {
            primary: input.primary,
            nodes: nodes.map((n) => ({ node: n.node, writable: n.reachable && !n.readOnly, gtid: n.reachable ? appliedPos(n) : '', io: n.ioRunning, sql: n.sqlRunning })),
            waitedMs,
            audit: `saw ${input.primary} the only writable node; ${nodes.filter((n) => n.node !== input.primary && !input.ignore.includes(n.node)).length} replica(s) running from it${input.ignore.length ? `; not checked: ${input.ignore.join(', ')}` : ''}; changed nothing`,
          };
        }
        if (Date.now() - startedAt > input.timeoutMs) throw new HandoverError(ErrorType.VerificationFailed, `verification failed after ${input.timeoutMs} ms: ${problems.join('; ')}`);
        await sleep(100);
      }
    }),
  };
}

export type MysqlFailoverActivities = ReturnType<typeof createMysqlFailoverActivities>;
