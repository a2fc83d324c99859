/**
 * MySQL/MariaDB activities: every side effect of the MySQL switchover. Each is small, named for the end state
 * it ensures, reads before it acts, acts only when needed, re-reads, and returns what it saw plus an audit line.
 * Inputs carry cluster and node names and GTID positions only; addresses and credentials come from the worker's
 * inventory (activities/mysql-conn.ts). The SQL that differs between servers is in activities/mysql-flavor.ts.
 */
import { runShell } from './hooks';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type mysql from 'mysql2/promise';
import { ErrorType, HandoverError } from '../core/errors';
import {
  appliedPos,
  errantOf,
  findMysqlPrimary,
  gtidIncludes,
  lagTransactions,
  normalizeGtidPos,
  recheckMysqlDecision,
  type MysqlClusterProbe,
  type MysqlNodeProbe,
  type MysqlPolicy,
} from '../core/decide-mysql';
import { missingMysqlPrivileges } from '../core/mysql-privileges';
import type { Promotion } from '../core/types';
import type { ClusterSpec, Inventory } from '../inventory/schema';
import { FENCE_BOUND_EVENT, cancelFenceBound, flavorOf, type MysqlFlavor } from './mysql-flavor';
import { ER, classifyMysqlError, connectMysql as defaultConnect, mysqlClusterSpec, mysqlNodeAt, mysqlTarget, replicationAccount, type MysqlConnect } from './mysql-conn';
import { activity } from './redis';
import { timeProgress } from './progress';

export interface MysqlActivityDeps {
  inventory: () => Inventory;
  connectMysql?: MysqlConnect;
  env?: NodeJS.ProcessEnv;
  /** Fault injection for tests: called at named points, a no-op in production. */
  failpoint?: (name: string) => void | Promise<void>;
}

export interface MysqlClusterInput {
  cluster: string;
}
export interface MysqlVetoInput {
  cluster: string;
  primary: string;
  candidate: string;
  policy: MysqlPolicy;
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
export interface EnsureMysqlReplicaOfInput {
  cluster: string;
  node: string;
  primary: string;
}
export interface EnsureMysqlReplicaOfResult {
  changed: boolean;
  before: string;
  audit: string;
}
export interface VerifyMysqlInput {
  cluster: string;
  primary: string;
  timeoutMs: number;
  /** Nodes the run could not repoint: reported as they are, not waited for. */
  skip?: string[];
}
export interface VerifyMysqlResult {
  primary: string;
  goal: string;
  /** The skipped nodes, each as seen at the end. */
  skipped?: string[];
  nodes: { node: string; writable: boolean; gtid: string; io?: string; sql?: boolean }[];
  waitedMs: number;
  audit: string;
}
export interface RoutingHookInput {
  cluster: string;
  primary: string;
  oldPrimary: string;
}
export interface RoutingHookResult {
  ran: boolean;
  exitCode: number;
  output: string;
  ms: number;
  audit: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Read queries carry a client-side timeout, so a frozen (SIGSTOPped) server cannot hang a probe. */
const READ_TIMEOUT_MS = 5_000;

type Row = Record<string, unknown>;

async function rows(conn: mysql.Connection, sql: string, params: unknown[] = [], timeout?: number): Promise<Row[]> {
  const [r] = await conn.query({ sql, values: params, timeout });
  return r as Row[];
}

/** Heartbeat every second while `fn` runs (a blocking statement cannot heartbeat itself). */
async function beating<T>(fn: () => Promise<T>): Promise<T> {
  let ctx: Context | undefined;
  try {
    ctx = Context.current();
  } catch {
    ctx = undefined;
  }
  const t = ctx ? setInterval(() => ctx!.heartbeat(), 1000) : undefined;
  try {
    return await fn();
  } finally {
    if (t) clearInterval(t);
  }
}

/** What one node is: read_only, GTID positions, replication threads and source. Never mutates. */
export async function readMysqlNode(conn: mysql.Connection, cluster: ClusterSpec, flavor: MysqlFlavor, nodeId: string): Promise<MysqlNodeProbe> {
  const n = cluster.nodes.find((x) => x.id === nodeId)!;
  const st = flavor.parseState((await rows(conn, flavor.readState, [], READ_TIMEOUT_MS))[0]);
  const rs = flavor.parseReplicaStatus(await rows(conn, flavor.replicaStatus, [], READ_TIMEOUT_MS));
  const probe: MysqlNodeProbe = {
    node: n.id,
    address: `${n.host}:${n.port}`,
    promotion: n.promotion as Promotion,
    reachable: true,
    role: rs ? 'replica' : 'primary',
    readOnly: st.readOnly || st.superReadOnly,
    serverId: st.serverId,
    version: st.version,
    gtidBinlogPos: normalizeGtidPos(st.gtid.binlog),
    gtidCurrentPos: normalizeGtidPos(st.gtid.current),
    gtidSlavePos: normalizeGtidPos(st.gtid.slave),
    gtidBinlogState: st.gtid.binlogState,
  };
  if (rs) {
    probe.sourceAddress = `${rs.sourceHost}:${rs.sourcePort}`;
    probe.sourceNode = mysqlNodeAt(cluster, rs.sourceHost, rs.sourcePort);
    probe.ioRunning = rs.ioRunning;
    probe.sqlRunning = rs.sqlRunning;
    probe.secondsBehind = rs.secondsBehind;
    probe.sqlDelay = rs.sqlDelay;
    probe.usingGtid = rs.usingGtid;
    probe.lastError = rs.lastSqlError || rs.lastIoError || undefined;
  }
  return probe;
}

/**
 * The privileges the automation user lacks on this node (MariaDB: its own SHOW GRANTS, of which only the
 * privilege names are read), or undefined when it lacks none or the flavor's privileges are not modelled.
 */
export async function readMissingPrivileges(conn: mysql.Connection, cluster: ClusterSpec): Promise<string[] | undefined> {
  if (flavorOf(cluster.flavor).name !== 'mariadb') return undefined;
  const lines = (await rows(conn, 'SHOW GRANTS', [], READ_TIMEOUT_MS)).map((r) => String(Object.values(r)[0] ?? ''));
  const missing = missingMysqlPrivileges(lines, { fenceBound: cluster.policy.fenceBoundMs > 0 });
  return missing.length ? missing : undefined;
}

/** Fill in each node's errant GTIDs relative to the cluster's single writable primary, when there is one. */
function markErrant(nodes: MysqlNodeProbe[]): MysqlNodeProbe[] {
  const found = findMysqlPrimary(nodes);
  if ('refusal' in found) return nodes;
  for (const n of nodes) if (n.reachable && n.node !== found.primary.node) n.errantGtids = errantOf(n, found.primary);
  return nodes;
}

const describe = (p: MysqlNodeProbe) =>
  !p.reachable
    ? `${p.node} unreachable`
    : p.role === 'replica'
      ? `${p.node} replica of ${p.sourceNode ?? p.sourceAddress} (io ${p.ioRunning}, sql ${p.sqlRunning ? 'Yes' : 'No'}) ${p.readOnly ? 'read-only' : 'WRITABLE'} at ${appliedPos(p) || 'empty'}`
      : `${p.node} primary ${p.readOnly ? 'read-only' : 'writable'} at ${p.gtidBinlogPos || 'empty'}`;

export function mysqlOps(deps: MysqlActivityDeps) {
  const env = deps.env ?? process.env;
  const connect = deps.connectMysql ?? defaultConnect;
  const spec = (cluster: string) => mysqlClusterSpec(deps.inventory(), cluster);
  const flavor = (c: ClusterSpec) => flavorOf(c.flavor);

  async function withNode<T>(c: ClusterSpec, node: string, fn: (conn: mysql.Connection) => Promise<T>): Promise<T> {
    const target = mysqlTarget(c, node, env);
    const conn = await connect(target);
    try {
      return await fn(conn);
    } catch (e) {
      throw classifyMysqlError(e, target);
    } finally {
      conn.destroy();
    }
  }

  async function probeOne(c: ClusterSpec, node: string): Promise<MysqlNodeProbe> {
    const n = c.nodes.find((x) => x.id === node)!;
    try {
      return await withNode(c, node, async (conn) => {
        const probe = await readMysqlNode(conn, c, flavor(c), node);
        probe.missingPrivileges = await readMissingPrivileges(conn, c);
        return probe;
      });
    } catch (e) {
      if (e instanceof HandoverError) throw e; // wrong credentials, missing grant or secret: never "unreachable"
      return { node: n.id, address: `${n.host}:${n.port}`, promotion: n.promotion as Promotion, reachable: false, error: (e as Error).message };
    }
  }

  /**
   * Probe every node, then read the node(s) replicating from nobody once more, after every replica was read.
   * Under writes a replica read after its primary can be ahead of that earlier read, which would look like an
   * errant GTID; anything a replica has came from its primary before the replica was read, so the primary's
   * second read includes it. (Found by the switchover test under a continuous writer.)
   */
  async function probeAll(c: ClusterSpec): Promise<MysqlNodeProbe[]> {
    const nodes = await Promise.all(c.nodes.map((n) => probeOne(c, n.id)));
    const again = await Promise.all(nodes.map((n) => (n.reachable && n.role === 'primary' ? probeOne(c, n.node) : Promise.resolve(n))));
    return markErrant(again.map((n, i) => (n.reachable ? n : nodes[i])));
  }

  return { env, spec, flavor, withNode, probeOne, probeAll };
}

export function createMysqlActivities(deps: MysqlActivityDeps) {
  const failpoint = deps.failpoint ?? (() => undefined);
  const { env, spec, flavor, withNode, probeOne, probeAll } = mysqlOps(deps);

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

  /**
   * Ensure `node` replicates from `primary` with GTID (slave_pos), both threads running, read-only. A no-op
   * when it already does. A node that still has transactions of its own in its binary log (an old primary)
   * first adopts them as its replication position (gtid_slave_pos), so it continues where it is. Refuses,
   * before touching it, a writable node (demoting it would discard writes) and a node with GTIDs the new
   * primary lacks (its replication positions are left as they are).
   */
  const ensureReplicaOf = async (input: EnsureMysqlReplicaOfInput): Promise<EnsureMysqlReplicaOfResult> =>
    beating(async () => {
      const c = spec(input.cluster);
      const fl = flavor(c);
      const primarySpec = c.nodes.find((x) => x.id === input.primary);
      if (!primarySpec) throw new HandoverError(ErrorType.UnknownNode, `unknown node ${input.primary} in cluster ${input.cluster}`);
      const newPrimary = await probeOne(c, input.primary);
      if (!newPrimary.reachable) throw new Error(`${input.primary} unreachable: ${newPrimary.error}`);
      return withNode(c, input.node, async (conn) => {
        const before = await readMysqlNode(conn, c, fl, input.node);
        const beforeText = describe(before);
        const following = before.role === 'replica' && before.sourceNode === input.primary && before.usingGtid !== 'No';
        if (following && before.ioRunning !== 'No' && before.sqlRunning && before.readOnly)
          return { changed: false, before: beforeText, audit: `saw ${beforeText}; changed nothing` };
        if (!before.readOnly && before.role === 'primary')
          throw new HandoverError(ErrorType.UnexpectedTopology, `${input.node} is a writable primary; refusing to make it a replica of ${input.primary} (its writes would be discarded)`);
        // The primary is read again after the node: its GTID set only grows, while under writes a node fed
        // through a chain (from the old primary, already repointed to the new one) can be ahead of the snapshot
        // taken above; compared with that snapshot, the new primary's own transactions looked errant.
        const primaryNow = await probeOne(c, input.primary);
        if (!primaryNow.reachable) throw new Error(`${input.primary} unreachable: ${primaryNow.error}`);
        const errant = errantOf(before, primaryNow);
        if (errant.length)
          throw new HandoverError(ErrorType.UnexpectedTopology, `${input.node} has GTIDs ${errant.join(',')} that ${input.primary} lacks: it cannot replicate from it`);
        const did: string[] = [];
        if (!before.readOnly) {
          for (const s of fl.fence) await conn.query(s);
          did.push(...fl.fence);
        }
        if (!following) {
          const repl = replicationAccount(c, env);
          // Positions are read once replication has stopped: a replica still applying moves them between the
          // first read and STOP SLAVE, and adopting the stale one would replay (gtid_strict_mode: out of order).
          let at = before;
          if (before.role === 'replica') {
            await conn.query(fl.stopReplica);
            did.push(fl.stopReplica);
            at = await readMysqlNode(conn, c, fl, input.node);
          }
          const pos = appliedPos(at);
          if (normalizeGtidPos(at.gtidSlavePos) !== pos) {
            for (const s of fl.adoptPosition(pos)) await conn.query(s.sql, s.params);
            did.push(`adopted ${pos || 'empty'} as its replication position`);
          }
          await failpoint('ensureMysqlReplicaOf.beforeChange');
          const ch = fl.changeSource({ host: primarySpec.host, port: primarySpec.port, user: repl.user, password: repl.password });
          await conn.query(ch.sql, ch.params);
          did.push(`CHANGE MASTER TO ${input.primary} (${primarySpec.host}:${primarySpec.port}) with GTID`);
        }
        await conn.query(fl.startReplica);
        did.push(fl.startReplica);
        // Wait (bounded) for both threads to run, so a bad source surfaces here, not in verify.
        const until = Date.now() + 10_000;
        let after = await readMysqlNode(conn, c, fl, input.node);
        while (!(after.ioRunning === 'Yes' && after.sqlRunning) && Date.now() < until) {
          await sleep(50);
          after = await readMysqlNode(conn, c, fl, input.node);
        }
        if (!(after.role === 'replica' && after.sourceNode === input.primary && after.ioRunning === 'Yes' && after.sqlRunning))
          throw new Error(`${input.node} is not replicating from ${input.primary} after ${did.join('; ')}: ${describe(after)}${after.lastError ? ` (${after.lastError})` : ''}`);
        return { changed: true, before: beforeText, audit: `saw ${beforeText}; ${did.join('; ')}` };
      });
    });

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
        policy: { maxLagTransactions: p.maxLagTransactions, maxLagSeconds: p.maxLagSeconds, catchUpTimeoutMs: p.catchUpTimeoutMs, verifyTimeoutMs: p.verifyTimeoutMs, fenceGraceMs: p.fenceGraceMs },
        routingHook: c.routingHook !== undefined,
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
      return { nodes, audit: `saw ${describe(prim)}; ${describe(cand)}; decision stands` };
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
        beating(async () => {
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
      return withNode(c, input.node, async (conn) => {
        const before = await readMysqlNode(conn, c, fl, input.node);
        if (before.role === 'primary' && !before.readOnly) return { alreadyHeld: true, promotedAt: Date.now(), audit: `saw ${input.node} already a writable primary; changed nothing` };
        if (!gtidIncludes(appliedPos(before), input.mustInclude))
          throw new HandoverError(ErrorType.UnexpectedTopology, `${input.node} at ${appliedPos(before) || 'empty'} lacks ${input.mustInclude}: refusing to promote it`);
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
        // event is gone nothing turns it writable behind the new primary's back. If it cannot be reached, its
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
        // Never two writable nodes: every other node that answers must be read-only (the fence holds).
        const others = await Promise.all(c.nodes.filter((n) => n.id !== input.node).map((n) => probeOne(c, n.id)));
        const writable = others.filter((n) => n.reachable && !n.readOnly);
        if (writable.length)
          throw new HandoverError(ErrorType.UnexpectedTopology, `refusing to promote ${input.node}: ${writable.map((n) => n.node).join(', ')} still writable`);
        for (const s of fl.unfence) await conn.query(s);
        const promotedAt = Date.now();
        did.push(...fl.unfence);
        const after = await readMysqlNode(conn, c, fl, input.node);
        if (after.role !== 'primary' || after.readOnly) throw new Error(`${input.node} is not a writable primary after ${did.join('; ')}`);
        return { alreadyHeld: false, promotedAt, audit: `saw ${describe(before)}; ${did.join('; ')}; now writable at ${after.gtidBinlogPos}` };
      });
    }),

    /** Repoint one node at the new primary (ensureReplicaOf above). */
    ensureMysqlReplicaOf: activity(ensureReplicaOf),

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

    /**
     * Verify: exactly one writable node (the primary, replicating from nobody); every other node read-only,
     * replicating from it with both threads running, and at or past the primary's position when verification
     * began. Read-only; heartbeats; resumes with the frozen goal.
     */
    verifyMysqlTopology: activity(async (input: VerifyMysqlInput): Promise<VerifyMysqlResult> => {
      const ctx = Context.current();
      const c = spec(input.cluster);
      const prior = ctx.info.heartbeatDetails as { goal?: string; startedAt: number } | undefined;
      const startedAt = prior?.startedAt ?? Date.now();
      let goal = prior?.goal;
      let problems: string[] = [];
      for (;;) {
        ctx.heartbeat({ goal, startedAt });
        const nodes = await probeAll(c);
        const primary = nodes.find((n) => n.node === input.primary);
        const writable = nodes.filter((n) => n.reachable && !n.readOnly);
        problems = [];
        if (writable.length !== 1 || writable[0].node !== input.primary) problems.push(`writable: ${writable.map((n) => n.node).join(', ') || 'none'} (expected ${input.primary})`);
        if (primary?.role !== 'primary') problems.push(`${input.primary} still replicates from ${primary?.sourceNode ?? primary?.sourceAddress ?? '?'}`);
        if (goal === undefined && primary?.reachable && primary.role === 'primary' && !primary.readOnly) goal = primary.gtidBinlogPos ?? '';
        const skip = new Set(input.skip ?? []);
        for (const n of nodes) {
          if (n.node === input.primary || skip.has(n.node)) continue;
          if (!n.reachable) problems.push(`${n.node} unreachable`);
          else if (n.role !== 'replica' || n.sourceNode !== input.primary) problems.push(`${n.node} replicates from ${n.sourceNode ?? n.sourceAddress ?? 'nobody'}`);
          else if (n.ioRunning !== 'Yes' || !n.sqlRunning) problems.push(`${n.node} io ${n.ioRunning} sql ${n.sqlRunning ? 'Yes' : 'No'}${n.lastError ? `: ${n.lastError}` : ''}`);
          else if (!gtidIncludes(appliedPos(n), goal)) problems.push(`${n.node} at ${appliedPos(n)} short of ${goal}`);
        }
        if (problems.length === 0) {
          const waitedMs = Date.now() - startedAt;
          return {
            primary: input.primary,
            goal: goal ?? '',
            nodes: nodes.map((n) => ({ node: n.node, writable: !n.readOnly, gtid: appliedPos(n), io: n.ioRunning, sql: n.sqlRunning })),
            skipped: skip.size ? nodes.filter((n) => skip.has(n.node)).map(describe) : undefined,
            waitedMs,
            audit: `saw one writable primary ${input.primary} and ${nodes.length - 1 - skip.size} read-only replicas running, at or past ${goal || 'empty'}${skip.size ? `; NOT repointed: ${nodes.filter((n) => skip.has(n.node)).map(describe).join('; ')}` : ''}; changed nothing`,
          };
        }
        if (Date.now() - startedAt > input.timeoutMs) throw new HandoverError(ErrorType.VerificationFailed, `verification failed after ${input.timeoutMs} ms: ${problems.join('; ')}`);
        await sleep(100);
      }
    }),

    /**
     * Run the inventory's routing hook (a command that moves the writer endpoint: HAProxy runtime API, DNS,
     * proxy admin) after promotion. {cluster} {primary} {host} {port} {oldPrimary} are substituted and also
     * exported as HANDOVER_* variables. A non-zero exit is a non-retryable RoutingHookFailed failure with the
     * output's tail: the workflow reports it, never hides it. Idempotent as far as the hook itself is.
     */
    runRoutingHook: activity(async (input: RoutingHookInput): Promise<RoutingHookResult> => {
      const c = spec(input.cluster);
      if (!c.routingHook) return { ran: false, exitCode: 0, output: '', ms: 0, audit: 'no routing hook configured' };
      const p = c.nodes.find((n) => n.id === input.primary)!;
      const vars: Record<string, string> = { cluster: c.name, primary: p.id, host: p.host, port: String(p.port), oldPrimary: input.oldPrimary };
      const cmd = c.routingHook.replace(/\{(cluster|primary|host|port|oldPrimary)\}/g, (_m, k: string) => vars[k]);
      const { code, output, ms } = await runShell(cmd, { HANDOVER_CLUSTER: c.name, HANDOVER_PRIMARY: p.id, HANDOVER_PRIMARY_HOST: p.host, HANDOVER_PRIMARY_PORT: String(p.port), HANDOVER_OLD_PRIMARY: input.oldPrimary });
      if (code !== 0)
        throw ApplicationFailure.create({ type: ErrorType.RoutingHookFailed, nonRetryable: true, message: `routing hook exited ${code} after ${ms} ms: ${output || '(no output)'}` });
      return { ran: true, exitCode: 0, output, ms, audit: `ran the routing hook for ${p.id} (${p.host}:${p.port}): exit 0 after ${ms} ms${output ? `: ${output.slice(-200)}` : ''}` };
    }),
  };
}

export type MysqlActivities = ReturnType<typeof createMysqlActivities>;
