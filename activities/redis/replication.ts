/**
 * Replication topology activities every Redis/Valkey runbook shares: repoint a node at a primary
 * (ensureRedisReplicaOf) and verify the whole cluster follows one primary (verifyRedisTopology).
 */
import { Context } from '@temporalio/activity';
import { ErrorType, HandoverError } from '../../core/errors';
import { activity } from '../activity';
import { readNode } from './conn';
import { persistRole, redisOps, type RedisActivityDeps } from './node';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface EnsureReplicaOfInput {
  cluster: string;
  node: string;
  primary: string;
}
export interface EnsureReplicaOfResult {
  changed: boolean;
  before: string;
  audit: string;
}
export interface VerifyInput {
  cluster: string;
  primary: string;
  timeoutMs: number;
  /** Nodes not to wait for (a dead old primary after a failover). */
  ignore?: string[];
}
export interface VerifyResult {
  primary: string;
  nodes: { node: string; role: string; lagBytes: number; linkUp?: boolean }[];
  waitedMs: number;
  audit: string;
}

export function createRedisReplicationActivities(deps: RedisActivityDeps) {
  const failpoint = deps.failpoint ?? (() => undefined);
  const { spec, withNode, probeOne } = redisOps(deps);
  return {
    /**
     * Ensure `node` replicates from `primary`. A no-op when it already does. Refuses to demote a node that is
     * itself a primary (that would discard its writes): that is not a repoint, it is a different runbook.
     */
    ensureRedisReplicaOf: activity(async (input: EnsureReplicaOfInput): Promise<EnsureReplicaOfResult> => {
      const c = spec(input.cluster);
      const primary = c.nodes.find((x) => x.id === input.primary);
      if (!primary) throw new HandoverError(ErrorType.UnknownNode, `unknown node ${input.primary} in cluster ${input.cluster}`);
      return withNode(c, input.node, async (cl) => {
        const n = c.nodes.find((x) => x.id === input.node)!;
        const before = await readNode(cl, c, n);
        const beforeText = before.role === 'primary' ? 'primary' : `replica of ${before.primaryNode ?? before.primaryAddress}`;
        if (before.role === 'replica' && before.primaryNode === input.primary)
          return { changed: false, before: beforeText, audit: `saw ${input.node} already a replica of ${input.primary}; changed nothing` };
        if (before.role === 'primary')
          throw new HandoverError(ErrorType.UnexpectedTopology, `${input.node} is a primary; refusing to make it a replica of ${input.primary} (its writes would be discarded)`);
        await failpoint('ensureRedisReplicaOf.beforeAct');
        await cl.call('REPLICAOF', primary.host, String(primary.port));
        const persisted = await persistRole(cl);
        const after = await readNode(cl, c, n);
        if (!(after.role === 'replica' && after.primaryNode === input.primary))
          throw new Error(`${input.node} did not take REPLICAOF ${input.primary} (now ${after.role} of ${after.primaryAddress})`);
        return { changed: true, before: beforeText, audit: `saw ${input.node} ${beforeText}; issued REPLICAOF ${input.primary}${persisted}` };
      });
    }),

    /**
     * Verify: exactly one primary, every other node its replica with the link up and an offset at least the
     * primary's offset when verification began. Read-only; heartbeats; resumes with the frozen goal.
     */
    verifyRedisTopology: activity(async (input: VerifyInput): Promise<VerifyResult> => {
      const ctx = Context.current();
      const c = spec(input.cluster);
      const prior = ctx.info.heartbeatDetails as { goal: number; startedAt: number } | undefined;
      const startedAt = prior?.startedAt ?? Date.now();
      let goal = prior?.goal;
      let problems: string[] = [];
      for (;;) {
        ctx.heartbeat({ goal, startedAt });
        // Ignored nodes (a dead or frozen old primary) are not even probed: a frozen one would hang the probe.
        const nodes = await Promise.all(c.nodes.filter((n) => !input.ignore?.includes(n.id)).map((n) => probeOne(c, n.id)));
        const primaries = nodes.filter((n) => n.role === 'primary');
        const primary = nodes.find((n) => n.node === input.primary);
        problems = [];
        if (primaries.length !== 1 || primaries[0].node !== input.primary)
          problems.push(`primaries: ${primaries.map((p) => p.node).join(', ') || 'none'} (expected ${input.primary})`);
        if (goal === undefined && primary?.role === 'primary') goal = primary.offset ?? 0;
        ctx.heartbeat({ goal, startedAt });
        for (const n of nodes) {
          if (n.node === input.primary || input.ignore?.includes(n.node)) continue;
          if (!n.reachable) problems.push(`${n.node} unreachable`);
          else if (n.role !== 'replica' || n.primaryNode !== input.primary) problems.push(`${n.node} is ${n.role} of ${n.primaryNode ?? n.primaryAddress ?? '-'}`);
          else if (!n.linkUp) problems.push(`${n.node} link down`);
          else if ((n.offset ?? 0) < (goal ?? 0)) problems.push(`${n.node} at ${n.offset} < ${goal}`);
        }
        if (problems.length === 0) {
          const waitedMs = Date.now() - startedAt;
          const po = primary?.offset ?? 0;
          return {
            primary: input.primary,
            nodes: nodes.map((n) => ({ node: n.node, role: n.role ?? 'unknown', lagBytes: n.node === input.primary ? 0 : Math.max(0, po - (n.offset ?? 0)), linkUp: n.linkUp })),
            waitedMs,
            audit: `saw one primary ${input.primary} and ${nodes.length - 1} linked replicas at or past offset ${goal}; changed nothing`,
          };
        }
        if (Date.now() - startedAt > input.timeoutMs)
          throw new HandoverError(ErrorType.VerificationFailed, `verification failed after ${input.timeoutMs} ms: ${problems.join('; ')}`);
        await sleep(100);
      }
    }),
  };
}
