/**
 * Replication topology activities every MySQL/MariaDB runbook shares: repoint a node at a primary
 * (ensureMysqlReplicaOf) and verify the whole cluster follows one writable primary (verifyMysqlTopology). Same
 * rules as every activity here: named for the end state, read before acting, act only when needed, re-read.
 */
import { Context } from '@temporalio/activity';
import { ErrorType, HandoverError } from '../../core/errors';
import { appliedPos, errantOf, gtidIncludes, normalizeGtidPos } from '../../core/mysql/decide';
import { activity, heartbeatWhile } from '../activity';
import { nodeTls } from '../tls';
import { replicationAccount } from './conn';
import { describeMysqlNode, mysqlOps, readMysqlNode, type MysqlActivityDeps } from './node';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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

export function createMysqlReplicationActivities(deps: MysqlActivityDeps) {
  const failpoint = deps.failpoint ?? (() => undefined);
  const { env, spec, flavor, withNode, probeOne, probeAll } = mysqlOps(deps);

  /**
   * Ensure `node` replicates from `primary` with GTID (slave_pos), both threads running, read-only. A no-op
   * when it already does. A node that still has transactions of its own in its binary log (an old primary)
   * first adopts them as its replication position (gtid_slave_pos), so it continues where it is. Refuses,
   * before touching it, a writable node (demoting it would discard writes) and a node with GTIDs the new
   * primary lacks (its replication positions are left as they are).
   */
  const ensureReplicaOf = async (input: EnsureMysqlReplicaOfInput): Promise<EnsureMysqlReplicaOfResult> =>
    heartbeatWhile(async () => {
      const c = spec(input.cluster);
      const fl = flavor(c);
      const primarySpec = c.nodes.find((x) => x.id === input.primary);
      if (!primarySpec) throw new HandoverError(ErrorType.UnknownNode, `unknown node ${input.primary} in cluster ${input.cluster}`);
      const newPrimary = await probeOne(c, input.primary);
      if (!newPrimary.reachable) throw new Error(`${input.primary} unreachable: ${newPrimary.error}`);
      return withNode(c, input.node, async (conn) => {
        const before = await readMysqlNode(conn, c, fl, input.node);
        const beforeText = describeMysqlNode(before);
        // Replication to a TLS node is encrypted too: a replica that follows it in clear is repointed with MASTER_SSL.
        const sourceTls = nodeTls(c, input.primary);
        const following = before.role === 'replica' && before.sourceNode === input.primary && before.usingGtid !== 'No' && (!sourceTls || before.sourceSsl === true);
        if (following && before.ioRunning !== 'No' && before.sqlRunning && before.readOnly)
          return { changed: false, before: beforeText, audit: `saw ${beforeText}; changed nothing` };
        if (!before.readOnly && before.role === 'primary')
          throw new HandoverError(ErrorType.UnexpectedTopology, `${input.node} is a writable primary; refusing to make it a replica of ${input.primary} (its writes would be discarded)`);
        // The primary is read again after the node: under writes a node read later can be ahead of an earlier
        // read of its primary (it may even receive the new primary's writes through the old primary, repointed
        // first), which would look errant; whatever it has from the primary, the primary had before this read.
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
          const ssl = sourceTls ? { ca: sourceTls.replicationCa ?? sourceTls.ca, verify: sourceTls.verify } : undefined;
          const ch = fl.changeSource({ host: primarySpec.host, port: primarySpec.port, user: repl.user, password: repl.password, ssl });
          await conn.query(ch.sql, ch.params);
          did.push(`CHANGE MASTER TO ${input.primary} (${primarySpec.host}:${primarySpec.port}) with GTID${ssl ? `, over TLS (CA ${ssl.ca ?? 'the server default'}${ssl.verify ? ', certificate verified' : ', certificate not verified'})` : ''}`);
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
          throw new Error(`${input.node} is not replicating from ${input.primary} after ${did.join('; ')}: ${describeMysqlNode(after)}${after.lastError ? ` (${after.lastError})` : ''}`);
        return { changed: true, before: beforeText, audit: `saw ${beforeText}; ${did.join('; ')}` };
      });
    });

  return {
    /** The raw function, for other activities that repoint within their own step (the promotion's undo). */
    ensureReplicaOf,
    activities: {
      /** Repoint one node at the new primary (ensureReplicaOf above). */
      ensureMysqlReplicaOf: activity(ensureReplicaOf),

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
              skipped: skip.size ? nodes.filter((n) => skip.has(n.node)).map(describeMysqlNode) : undefined,
              waitedMs,
              audit: `saw one writable primary ${input.primary} and ${nodes.length - 1 - skip.size} read-only replicas running, at or past ${goal || 'empty'}${skip.size ? `; NOT repointed: ${nodes.filter((n) => skip.has(n.node)).map(describeMysqlNode).join('; ')}` : ''}; changed nothing`,
            };
          }
          if (Date.now() - startedAt > input.timeoutMs) throw new HandoverError(ErrorType.VerificationFailed, `verification failed after ${input.timeoutMs} ms: ${problems.join('; ')}`);
          await sleep(100);
        }
      }),
    },
  };
}
