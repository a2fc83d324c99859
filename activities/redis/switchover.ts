/**
 * Redis/Valkey activities: every side effect of the Redis runbooks. Each is small, named for the end state it
 * ensures, reads before it acts, acts only when needed, re-reads, and returns what it saw plus an audit line.
 * Inputs carry cluster and node names only; addresses and credentials come from the worker's inventory.
 */
import { hookCounts } from '../hooks';
import { Context } from '@temporalio/activity';
import { activity } from '../activity';
import type Redis from 'ioredis';
import { ErrorType, HandoverError } from '../../core/errors';
import { recheckRedisDecision, type SwitchoverPolicy } from '../../core/redis/decide';
import type { RedisClusterProbe, RedisNodeProbe, WaitProgress } from '../../core/types';
import type { ClusterSpec } from '../../inventory/schema';
import { classifyRedisError, readNode, redisTarget } from './conn';
import { persistRole, redisOps, type RedisActivityDeps } from './node';
import { createRedisReplicationActivities } from './replication';


export interface ClusterInput {
  cluster: string;
}
export interface WaitForCatchUpInput {
  cluster: string;
  primary: string;
  candidate: string;
  timeoutMs: number;
}
export interface WaitForCatchUpResult {
  targetOffset: number;
  candidateOffset: number;
  waitedMs: number;
  resumed: boolean;
  audit: string;
}
export interface VetoInput {
  cluster: string;
  primary: string;
  candidate: string;
  policy: SwitchoverPolicy;
}
export interface VetoResult {
  nodes: RedisNodeProbe[];
  audit: string;
}
export type HandoverMethod = 'pause-promote' | 'failover';
export interface EnsureHandedOverInput {
  cluster: string;
  from: string;
  to: string;
  method: HandoverMethod;
  /** Server-side bound on the write pause (CLIENT PAUSE timeout, or FAILOVER TIMEOUT). */
  pauseTimeoutMs: number;
}
export interface EnsureHandedOverResult {
  alreadyHeld: boolean;
  method: HandoverMethod;
  /** Pause to unpause (pause-promote) or FAILOVER issued to roles switched (failover), as the activity measured it. */
  handoverMs: number;
  audit: string;
}
export interface EnsureWritableInput {
  cluster: string;
  node: string;
}
export interface EnsureWritableResult {
  aborted: boolean;
  audit: string;
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


export function createRedisActivities(deps: RedisActivityDeps) {
  const failpoint = deps.failpoint ?? (() => undefined);
  const { env, spec, withNode, probeOne, probeAllWithPermissions } = redisOps(deps);

  /**
   * The promotion half of a manual handover, `from` already demoted: REPLICAOF NO ONE on the candidate. When
   * the candidate refuses it (an ACL that denies REPLICAOF, a broken node), the candidate took no write (it is
   * still a replica), so the demotion is reverted: `from` is made primary again (its data is the candidate's,
   * writes were paused), its pause lifted, and the handover fails as undone. Never a cluster with no primary.
   */
  async function promoteOrRevert(c: ClusterSpec, input: EnsureHandedOverInput, tc: Redis): Promise<void> {
    try {
      await tc.call('REPLICAOF', 'NO', 'ONE');
    } catch (e) {
      const cause = classifyRedisError(e, redisTarget(c, input.to, env));
      const reverted = await withNode(c, input.from, async (fc) => {
        await fc.call('REPLICAOF', 'NO', 'ONE');
        await fc.call('CLIENT', 'UNPAUSE');
        await persistRole(fc);
        return true;
      }).catch((re: unknown) => `NOT reverted (${(re as Error).message})`);
      throw new HandoverError(
        ErrorType.HandoverAborted,
        `REPLICAOF NO ONE on ${input.to} failed (${cause.message}); ${reverted === true ? `${input.from} was made primary again and takes writes` : `${input.from} ${reverted}`}`,
      );
    }
  }

  /** The FAILOVER method of ensureRedisHandedOver (see there). */
  async function failoverMethod(
    c: ClusterSpec,
    input: EnsureHandedOverInput,
    from: RedisNodeProbe,
    to: RedisNodeProbe,
    done: (f: RedisNodeProbe, t: RedisNodeProbe) => boolean,
  ): Promise<EnsureHandedOverResult> {
    const ctx = Context.current();
    const prior = ctx.info.heartbeatDetails as { issuedAt?: number } | undefined;
    if (!from.reachable) throw new Error(`${input.from} unreachable: ${from.error}`);
    let issuedAt = prior?.issuedAt;
    const inProgress = from.failoverState !== undefined && from.failoverState !== 'no-failover';
    if (!inProgress) {
      if (!(from.role === 'primary' && to.role === 'replica' && to.primaryNode === input.from))
        throw new HandoverError(
          ErrorType.UnexpectedTopology,
          `cannot hand over: ${input.from} is ${from.role}, ${input.to} is ${to.role}${to.primaryNode ? ` of ${to.primaryNode}` : ''}`,
        );
      if (prior?.issuedAt !== undefined)
        throw new HandoverError(
          ErrorType.HandoverAborted,
          `the FAILOVER to ${input.to} issued at ${new Date(prior.issuedAt).toISOString()} was aborted by ${input.from} (the candidate did not catch up within ${input.pauseTimeoutMs} ms); ${input.from} is still primary`,
        );
      // The primary names replicas by the address it sees them at; use that one for FAILOVER TO.
      const toSpec = c.nodes.find((n) => n.id === input.to)!;
      const seen = Object.keys(from.replicaAcks ?? {}).find((a) => a.endsWith(`:${toSpec.port}`)) ?? `${toSpec.host}:${toSpec.port}`;
      const host = seen.slice(0, seen.lastIndexOf(':'));
      issuedAt = Date.now();
      ctx.heartbeat({ issuedAt });
      await failpoint('ensureRedisHandedOver.beforeFailover');
      await withNode(c, input.from, (cl) => cl.call('FAILOVER', 'TO', host, String(toSpec.port), 'TIMEOUT', String(input.pauseTimeoutMs)));
    }
    const started = issuedAt ?? Date.now();
    // Poll the old primary until the server has finished the coordinated failover one way or the other.
    const pollUntil = Date.now() + input.pauseTimeoutMs + 10_000;
    await withNode(c, input.from, async (cl) => {
      let lastBeat = 0;
      for (;;) {
        const state = /master_failover_state:(\S+)/.exec(await cl.info('replication'))?.[1] ?? 'no-failover';
        if (state === 'no-failover') return;
        if (Date.now() - lastBeat > 500) {
          ctx.heartbeat({ issuedAt });
          lastBeat = Date.now();
          await failpoint('ensureRedisHandedOver.failoverPolling');
        }
        if (Date.now() > pollUntil) throw new Error(`${input.from} still in failover state ${state} after ${input.pauseTimeoutMs + 10_000} ms`);
        await sleep(2);
      }
    });
    const handoverMs = Date.now() - started;
    const [f2, t2] = await Promise.all([probeOne(c, input.from), probeOne(c, input.to)]);
    if (done(f2, t2)) {
      await Promise.all([withNode(c, input.from, persistRole), withNode(c, input.to, persistRole)]).catch(() => undefined);
      return { alreadyHeld: false, method: 'failover', handoverMs, audit: `issued FAILOVER TO ${input.to} TIMEOUT ${input.pauseTimeoutMs} on ${input.from}; saw ${input.to} primary, ${input.from} its replica after ${handoverMs} ms` };
    }
    if (f2.role === 'primary')
      throw new HandoverError(
        ErrorType.HandoverAborted,
        `FAILOVER to ${input.to} was aborted by ${input.from} after ${handoverMs} ms (candidate did not catch up within ${input.pauseTimeoutMs} ms); ${input.from} is still primary`,
      );
    throw new HandoverError(ErrorType.UnexpectedTopology, `after FAILOVER: ${input.from} is ${f2.role}, ${input.to} is ${t2.role}`);
  }

  return {
    /**
     * Probe every node of a cluster: role, offset, link, DBSIZE, version. Read-only, so always safe to retry.
     * Unknown cluster, missing secret and wrong password are typed, non-retryable failures.
     */
    probeRedisCluster: activity(async ({ cluster }: ClusterInput): Promise<RedisClusterProbe> => {
      const c = spec(cluster);
      const nodes = await probeAllWithPermissions(c);
      return { cluster, engine: 'redis', topology: c.topology, policy: c.policy, hooks: hookCounts(c), nodes, probedAt: new Date().toISOString(), autoRestart: c.controller?.autoRestart };
    }),

    /**
     * Wait until the candidate has received everything the primary had written when the wait began, so the
     * write pause that follows is short. Heartbeats; a retried attempt resumes with the target offset and the
     * deadline frozen in the heartbeat details, so a crash neither restarts the clock nor moves the goal.
     * Changes nothing: on timeout the run stops with the cluster untouched.
     */
    waitForRedisCatchUp: activity(async (input: WaitForCatchUpInput): Promise<WaitForCatchUpResult> => {
      const ctx = Context.current();
      const c = spec(input.cluster);
      const prior = ctx.info.heartbeatDetails as { targetOffset: number; startedAt: number; fromOffset?: number } | undefined;
      const startedAt = prior?.startedAt ?? Date.now();
      const targetOffset = prior?.targetOffset ?? (await probeOne(c, input.primary)).offset ?? 0;
      const deadline = startedAt + input.timeoutMs;
      let fromOffset = prior?.fromOffset;
      for (;;) {
        ctx.heartbeat({ targetOffset, startedAt, fromOffset });
        await failpoint('waitForRedisCatchUp.loop');
        const cand = await probeOne(c, input.candidate);
        if (!cand.reachable) throw new Error(`candidate ${input.candidate} unreachable: ${cand.error}`);
        // For `--wait` progress bars only (the resume logic reads targetOffset and startedAt).
        fromOffset ??= Math.min(cand.offset ?? 0, targetOffset);
        const progress: WaitProgress = {
          what: `${input.candidate} catching up with ${input.primary}`,
          done: Math.max(0, (cand.offset ?? 0) - fromOffset),
          total: Math.max(0, targetOffset - fromOffset),
          unit: 'bytes',
          note: `${Math.max(0, targetOffset - (cand.offset ?? 0))} bytes to go`,
        };
        ctx.heartbeat({ targetOffset, startedAt, fromOffset, progress });
        if (cand.role !== 'replica' || cand.primaryNode !== input.primary)
          throw new HandoverError(ErrorType.PreconditionFailed, `candidate ${input.candidate} is no longer a replica of ${input.primary}`);
        if ((cand.offset ?? 0) >= targetOffset) {
          const waitedMs = Date.now() - startedAt;
          return {
            targetOffset,
            candidateOffset: cand.offset ?? 0,
            waitedMs,
            resumed: prior !== undefined,
            audit: `saw ${input.candidate} at offset ${cand.offset} >= ${targetOffset} (primary ${input.primary} when the wait began) after ${waitedMs} ms; changed nothing`,
          };
        }
        if (Date.now() > deadline)
          throw new HandoverError(
            ErrorType.CatchUpTimeout,
            `candidate ${input.candidate} did not reach offset ${targetOffset} within ${input.timeoutMs} ms (at ${cand.offset}); nothing was changed`,
          );
        await sleep(50);
      }
    }),

    /**
     * The veto: re-probe and re-check the frozen decision just before the point of no return. Read-only.
     */
    vetoRedisHandover: activity(async (input: VetoInput): Promise<VetoResult> => {
      const c = spec(input.cluster);
      const nodes = await probeAllWithPermissions(c);
      const why = recheckRedisDecision(nodes, input, input.policy);
      if (why) throw new HandoverError(ErrorType.PreconditionFailed, `veto: ${why}; nothing was changed`, { nodes });
      const cand = nodes.find((n) => n.node === input.candidate)!;
      const prim = nodes.find((n) => n.node === input.primary)!;
      return { nodes, audit: `saw ${input.primary} primary at ${prim.offset}, ${input.candidate} replica at ${cand.offset} link up; decision stands` };
    }),

    /**
     * Ensure `to` is the primary and `from` its replica: the handover itself, bounded by a server-side write
     * pause. Two methods (inventory policy.handoverMethod):
     *
     *  pause-promote (default): CLIENT PAUSE <bound> WRITE on `from`; wait until `to` has applied `from`'s final
     *    offset (read directly from `to`, polled every millisecond); REPLICAOF `to` on `from` (the point of no
     *    return: `from` can never accept a write again); REPLICAOF NO ONE on `to`; CLIENT UNPAUSE on `from`.
     *    Paused writes are then answered READONLY, never acknowledged on the old primary. Demoting before
     *    promoting means there is never a moment with two writable primaries, even if the worker dies between
     *    the two commands (then there is briefly none, and the retried step promotes `to`).
     *  failover: the server's own FAILOVER TO <to> TIMEOUT <bound>, which waits for the replica's periodic
     *    acknowledgement (up to a second) before switching.
     *
     * Safe to retry: it reads first and resumes from whatever state it finds (already switched: alreadyHeld;
     * demoted but not yet promoted: promotes; FAILOVER in progress: waits). A pause or FAILOVER that the server
     * ended because `to` did not catch up is reported as HandoverAborted (not retried), `from` still primary.
     */
    ensureRedisHandedOver: activity(async (input: EnsureHandedOverInput): Promise<EnsureHandedOverResult> => {
      const ctx = Context.current();
      const c = spec(input.cluster);
      await failpoint('ensureRedisHandedOver.start');
      const [from, to] = await Promise.all([probeOne(c, input.from), probeOne(c, input.to)]);
      const done = (f: RedisNodeProbe, t: RedisNodeProbe) => t.role === 'primary' && f.role === 'replica' && f.primaryNode === input.to;
      if (done(from, to)) {
        // (A pause left by an attempt that died after promoting lapses by itself within pauseTimeoutMs, and
        // `from` is a replica now: it answers writes READONLY either way. Nothing to send.)
        return { alreadyHeld: true, method: input.method, handoverMs: 0, audit: `saw ${input.to} already primary with ${input.from} its replica; changed nothing` };
      }
      if (input.method === 'failover') return failoverMethod(c, input, from, to, done);

      // Resume: `from` already demoted (a previous attempt died between demote and promote).
      if (from.reachable && from.role === 'replica' && from.primaryNode === input.to && to.role === 'replica') {
        const t0 = Date.now();
        await failpoint('ensureRedisHandedOver.beforePromote');
        await withNode(c, input.to, async (cl) => {
          await promoteOrRevert(c, input, cl);
          await persistRole(cl);
        });
        await withNode(c, input.from, async (cl) => {
          await cl.call('CLIENT', 'UNPAUSE');
          await persistRole(cl);
        }).catch(() => undefined);
        return { alreadyHeld: false, method: input.method, handoverMs: Date.now() - t0, audit: `saw ${input.from} already a replica of ${input.to}; issued REPLICAOF NO ONE on ${input.to}` };
      }
      if (!from.reachable) throw new Error(`${input.from} unreachable: ${from.error}`);
      if (!(from.role === 'primary' && to.role === 'replica' && to.primaryNode === input.from && to.linkUp))
        throw new HandoverError(
          ErrorType.UnexpectedTopology,
          `cannot hand over: ${input.from} is ${from.role}, ${input.to} is ${to.role}${to.primaryNode ? ` of ${to.primaryNode}` : ''}${to.linkUp === false ? ' (link down)' : ''}`,
        );

      const fromSpec = c.nodes.find((n) => n.id === input.from)!;
      const toSpec = c.nodes.find((n) => n.id === input.to)!;
      const fromTarget = redisTarget(c, input.from, env);
      const toTarget = redisTarget(c, input.to, env);
      const fc = await deps.connectRedis(fromTarget);
      const tc = await deps.connectRedis(toTarget);
      try {
        const offsetOf = async (cl: Redis, field: string) => Number(new RegExp(`${field}:(\\d+)`).exec(await cl.info('replication'))?.[1] ?? -1);
        // Pause writes on the old primary, bounded server-side.
        const pausedAt = Date.now();
        await fc.call('CLIENT', 'PAUSE', String(input.pauseTimeoutMs), 'WRITE');
        await failpoint('ensureRedisHandedOver.paused');
        // Wait until the candidate has applied everything the old primary has (re-read each round: the
        // primary's periodic PING to replicas also moves its offset, and must not trigger a full resync later).
        const deadline = pausedAt + input.pauseTimeoutMs - 50;
        let goal = 0;
        let seen = 0;
        for (;;) {
          [goal, seen] = await Promise.all([offsetOf(fc, 'master_repl_offset'), offsetOf(tc, 'slave_repl_offset')]);
          if (seen >= goal) break;
          if (Date.now() > deadline) {
            await fc.call('CLIENT', 'UNPAUSE');
            throw new HandoverError(
              ErrorType.HandoverAborted,
              `${input.to} did not catch up with ${input.from} within the ${input.pauseTimeoutMs} ms write pause (at ${seen} of ${goal}); writes resumed, ${input.from} is still primary`,
            );
          }
          await sleep(1);
        }
        // POINT OF NO RETURN: demote first, so two writable primaries can never exist.
        await fc.call('REPLICAOF', toSpec.host, String(toSpec.port));
        await failpoint('ensureRedisHandedOver.demoted');
        await promoteOrRevert(c, input, tc);
        await fc.call('CLIENT', 'UNPAUSE');
        const handoverMs = Date.now() - pausedAt;
        ctx.heartbeat();
        await Promise.all([persistRole(fc), persistRole(tc)]);
        return {
          alreadyHeld: false,
          method: input.method,
          handoverMs,
          audit: `paused writes on ${input.from} (bound ${input.pauseTimeoutMs} ms); saw ${input.to} at ${seen} >= ${goal}; REPLICAOF ${input.to} on ${input.from} (${fromSpec.host}:${fromSpec.port}); REPLICAOF NO ONE on ${input.to}; unpaused after ${handoverMs} ms`,
        };
      } finally {
        fc.disconnect();
        tc.disconnect();
      }
    }),

    /**
     * Compensation before the point of no return: ensure `node` is a writable primary again. Aborts a
     * coordinated failover still in progress and lifts any client pause. A no-op when it already holds.
     */
    ensureRedisWritable: activity(async (input: EnsureWritableInput): Promise<EnsureWritableResult> => {
      const c = spec(input.cluster);
      return withNode(c, input.node, async (cl) => {
        const n = c.nodes.find((x) => x.id === input.node)!;
        let p = await readNode(cl, c, n);
        let aborted = false;
        if (p.failoverState && p.failoverState !== 'no-failover') {
          await cl.call('FAILOVER', 'ABORT').catch(() => undefined); // may have finished meanwhile
          aborted = true;
          p = await readNode(cl, c, n);
        }
        if (p.role !== 'primary')
          throw new HandoverError(ErrorType.UnexpectedTopology, `${input.node} is a replica of ${p.primaryNode ?? p.primaryAddress}: the handover passed the point of no return and cannot be undone`);
        await cl.call('CLIENT', 'UNPAUSE');
        return { aborted, audit: `saw ${input.node} primary (failover ${aborted ? 'aborted' : 'not in progress'}); ensured writes are not paused` };
      });
    }),

    ...createRedisReplicationActivities(deps),
  };
}

export type RedisActivities = ReturnType<typeof createRedisActivities>;
