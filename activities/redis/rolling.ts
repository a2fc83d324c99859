/**
 * Rolling-restart activities for Redis/Valkey. Same rules as activities/redis.ts: named for the end state,
 * read before acting, no-op when it already holds, an audit line each.
 */
import { hookCounts } from '../hooks';
import type { HookCounts } from '../../core/types';
import { Context } from '@temporalio/activity';
import type Redis from 'ioredis';
import { ErrorType, HandoverError } from '../../core/errors';
import type { SpecProbe } from '../../core/redis/rolling';
import type { RedisPolicy } from '../../core/types';
import { timeProgress } from '../progress';
import type { ClusterSpec } from '../../inventory/schema';
import { controllerFor } from '../controllers';
import { activity, heartbeatWhile } from '../activity';
import { persistRole, type RedisActivityDeps } from './node';
import { readNode, redisClusterSpec, redisTarget } from './conn';

/**
 * How long a Redis Cluster replica pursues a manual failover (CLUSTER FAILOVER) before giving it up
 * (CLUSTER_MF_TIMEOUT in redis and valkey, 5 s), plus a margin: after that no manual failover is in progress.
 */
export const CLUSTER_MANUAL_FAILOVER_TIMEOUT_MS = 5000 + 1000;

export interface ProbeSpecsInput {
  cluster: string;
  keys: string[];
  /** Which probe of its run this is (failover --shard numbers them); unused here: it tells the commands of a run apart in its history. */
  probe?: number;
}
export interface ProbeSpecsResult {
  cluster: string;
  nodes: SpecProbe[];
  autoRestart: boolean;
  hasController: boolean;
  policy: RedisPolicy;
  topology: string;
  /** How many operator hooks the inventory lists, by kind (absent in older histories: none). */
  hooks?: HookCounts;
}
export interface PersistConfigInput {
  cluster: string;
  node: string;
  set: Record<string, string>;
}
export interface RestartInput {
  cluster: string;
  node: string;
  /** The run_id seen before the restart: a node with another run_id has already been restarted. */
  sinceRunId: string;
  version?: string;
  timeoutMs: number;
}
export interface RestartResult {
  restarted: boolean;
  runId: string;
  audit: string;
}
export interface ClusterFailoverInput {
  cluster: string;
  from: string;
  to: string;
  timeoutMs: number;
}
export interface NodeReadyInput {
  cluster: string;
  node: string;
  primary: string;
  timeoutMs: number;
  /** Also within this many bytes of the primary's current offset (in sync, not merely past the goal). */
  maxLagBytes?: number;
}

export interface ClusterAgreementInput {
  cluster: string;
  /** The shard's new primary, the slots it must serve (any, when not given), and the old primary that must be its replica (when given). */
  primary: string;
  slots?: string;
  replica?: string;
  timeoutMs: number;
}

export interface ClusterTakeoverInput {
  cluster: string;
  /** The replica to promote, and the dead primary of its shard. */
  node: string;
  deadPrimary: string;
  /** How long CLUSTER FAILOVER FORCE (needs a majority of primaries) may take before TAKEOVER (needs none). */
  forceTimeoutMs: number;
  timeoutMs: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function createRedisRollingActivities(deps: RedisActivityDeps) {
  const env = deps.env ?? process.env;
  const failpoint = deps.failpoint ?? (() => undefined);
  const spec = (cluster: string): ClusterSpec => redisClusterSpec(deps.inventory(), cluster);

  async function open(c: ClusterSpec, node: string): Promise<Redis | undefined> {
    try {
      return await deps.connectRedis(redisTarget(c, node, env));
    } catch (e) {
      if (e instanceof HandoverError) throw e;
      return undefined;
    }
  }

  async function probeSpec(c: ClusterSpec, node: string, keys: string[]): Promise<SpecProbe> {
    const n = c.nodes.find((x) => x.id === node)!;
    const cl = await open(c, node);
    if (!cl) return { node, address: `${n.host}:${n.port}`, promotion: n.promotion, reachable: false, error: 'unreachable' };
    try {
      const p: SpecProbe = await readNode(cl, c, n);
      const wanted = [...new Set([...keys, 'save', 'appendonly'])];
      const config: Record<string, string> = {};
      for (const k of wanted) {
        const r = (await cl.config('GET', k)) as string[];
        for (let i = 0; i + 1 < r.length; i += 2) config[r[i]] = r[i + 1];
      }
      p.persistent = (config.save ?? '') !== '' || config.appendonly === 'yes';
      p.config = Object.fromEntries(keys.map((k) => [k, config[k]]));
      const uptime = Number(/uptime_in_seconds:(\d+)/.exec(await cl.info('server'))?.[1]);
      if (Number.isFinite(uptime)) p.startedAtMs = Date.now() - uptime * 1000;
      const loading = /loading:1/.test(await cl.info('persistence'));
      if (loading) p.linkUp = false;
      if (c.topology === 'cluster') {
        p.clusterOk = ((await cl.call('CLUSTER', 'INFO')) as string).includes('cluster_state:ok');
        const myself = ((await cl.call('CLUSTER', 'NODES')) as string).split('\n').find((l) => l.split(' ')[2]?.includes('myself'));
        p.slots = myself?.split(' ').slice(8).join(' ') ?? '';
      }
      return p;
    } catch (e) {
      return { node, address: `${n.host}:${n.port}`, promotion: n.promotion, reachable: false, error: (e as Error).message };
    } finally {
      cl.disconnect();
    }
  }

  return {
    /** Probe every node with the config values the roll compares (and persistence). Read-only. */
    probeRedisSpecs: activity(async ({ cluster, keys }: ProbeSpecsInput): Promise<ProbeSpecsResult> => {
      const c = spec(cluster);
      const nodes = await Promise.all(c.nodes.map((n) => probeSpec(c, n.id, keys)));
      return { cluster, nodes, autoRestart: c.controller?.autoRestart ?? false, hasController: !!c.controller, policy: c.policy, topology: c.topology, hooks: hookCounts(c) };
    }),

    /**
     * Ensure the node runs with `set` and that its config file says so, including its current replication
     * role (CONFIG REWRITE), so that the restart brings it back as what it is now, never as a stale primary.
     * Values already in place are not set again; the rewrite itself is idempotent.
     */
    ensureRedisConfigPersisted: activity(async (input: PersistConfigInput): Promise<{ changed: string[]; audit: string }> => {
      const c = spec(input.cluster);
      const cl = await open(c, input.node);
      if (!cl) throw new Error(`${input.node} unreachable`);
      try {
        const changed: string[] = [];
        for (const [k, v] of Object.entries(input.set)) {
          const [, have] = (await cl.config('GET', k)) as string[];
          if (have === v) continue;
          try {
            await cl.config('SET', k, v);
          } catch (e) {
            throw new HandoverError(ErrorType.PreconditionFailed, `CONFIG SET ${k} ${v} on ${input.node} refused: ${(e as Error).message}`);
          }
          changed.push(`${k}=${v}`);
        }
        // Persist only what Handover changed (the settings asked for and the role): a runtime setting that differs
        // from the file is reported, not written (activities/redis/node.ts persistRole).
        const persisted = await persistRole(cl, { set: input.set, strict: true });
        return { changed, audit: `${changed.length ? `set ${changed.join(' ')}` : 'config already current'} on ${input.node}; ${persisted ? persisted.replace(/^; /, '') : 'CONFIG REWRITE so a restart keeps its role and settings'}` };
      } finally {
        cl.disconnect();
      }
    }),

    /**
     * Ensure the node has been restarted since `sinceRunId` (a new run_id proves it). A node that already has
     * a new run_id is not restarted again; one that is down is started. Waits (heartbeating) until it answers.
     */
    ensureRedisNodeRestarted: activity(async (input: RestartInput): Promise<RestartResult> => {
      const ctx = Context.current();
      const c = spec(input.cluster);
      const controller = controllerFor(c.controller, c.name);
      const n = c.nodes.find((x) => x.id === input.node)!;
      const runIdOf = async (cl: Redis) => /run_id:(\w+)/.exec(await cl.info('server'))?.[1] ?? '';
      let cl = await open(c, input.node);
      if (cl) {
        const now = await runIdOf(cl);
        if (now !== input.sinceRunId) {
          cl.disconnect();
          return { restarted: false, runId: now, audit: `saw ${input.node} with run_id ${now.slice(0, 8)} (was ${input.sinceRunId.slice(0, 8)}): already restarted; changed nothing` };
        }
      }
      await failpoint('ensureRedisNodeRestarted.beforeRestart');
      const did = await heartbeatWhile(() => controller.restart({ node: n, version: input.version, client: cl })); // a `command` restart may take a while
      cl?.disconnect();
      const deadline = Date.now() + input.timeoutMs;
      for (;;) {
        ctx.heartbeat({ progress: timeProgress(`${input.node} back after the restart`, deadline - input.timeoutMs, input.timeoutMs, cl ? 'restarting' : 'down') });
        cl = await open(c, input.node);
        if (cl) {
          const now = await runIdOf(cl).catch(() => '');
          cl.disconnect();
          if (now && now !== input.sinceRunId) return { restarted: true, runId: now, audit: `${did}; ${input.node} answers with run_id ${now.slice(0, 8)}` };
        }
        if (Date.now() > deadline) throw new HandoverError(ErrorType.VerificationFailed, `${input.node} did not come back within ${input.timeoutMs} ms after: ${did}; stopping the roll here`);
        await sleep(100);
      }
    }),

    /**
     * Redis Cluster: ensure `to` serves its shard as primary and `from` is its replica, through CLUSTER FAILOVER
     * (default mode) on `to`: the primary pauses its clients, `to` catches up with its offset, then takes the
     * slots over; clients are redirected with MOVED. A no-op when it already holds.
     *
     * A retry after a worker died mid-activity reads how far the attempt got from its heartbeat details:
     * `issuedAt` (the replica accepted the FAILOVER): that failover is waited for until its deadline and, when
     * the cluster gave up on it, reported as HandoverAborted, not issued again; `issuing` only (the worker died
     * before the replica answered, perhaps before anything was sent): it is waited for until the cluster's own
     * manual-failover timeout has passed, after which none is in progress and it is issued.
     */
    ensureRedisClusterFailover: activity(async (input: ClusterFailoverInput): Promise<{ alreadyHeld: boolean; handoverMs: number; audit: string }> => {
      const ctx = Context.current();
      const c = spec(input.cluster);
      const prior = ctx.info.heartbeatDetails as { issuing?: number; issuedAt?: number } | undefined;
      const done = async () => {
        const [f, t] = await Promise.all([probeSpec(c, input.from, []), probeSpec(c, input.to, [])]);
        return { ok: t.role === 'primary' && f.role === 'replica' && f.primaryNode === input.to, f, t };
      };
      let now = await done();
      if (now.ok) return { alreadyHeld: true, handoverMs: 0, audit: `saw ${input.to} already primary of its shard with ${input.from} its replica; changed nothing` };
      const pendingSince = prior?.issuedAt ?? prior?.issuing;
      if (pendingSince !== undefined) {
        const how = prior?.issuedAt !== undefined ? 'issued' : 'was issuing';
        const until = prior?.issuedAt !== undefined ? prior.issuedAt + input.timeoutMs : pendingSince + CLUSTER_MANUAL_FAILOVER_TIMEOUT_MS;
        for (; Date.now() <= until; await sleep(50)) {
          ctx.heartbeat(prior);
          now = await done();
          if (now.ok) {
            const handoverMs = Date.now() - pendingSince;
            return { alreadyHeld: false, handoverMs, audit: `the CLUSTER FAILOVER an earlier attempt ${how} on ${input.to} completed: saw ${input.to} primary and ${input.from} its replica ${handoverMs} ms after it` };
          }
        }
        if (prior?.issuedAt !== undefined)
          throw new HandoverError(ErrorType.HandoverAborted, `the CLUSTER FAILOVER issued on ${input.to} at ${new Date(prior.issuedAt).toISOString()} did not complete within ${input.timeoutMs} ms; ${input.from} still serves the shard`);
      }
      if (!(now.t.role === 'replica' && now.t.primaryNode === input.from))
        throw new HandoverError(ErrorType.UnexpectedTopology, `cannot fail over: ${input.to} is ${now.t.role}${now.t.primaryNode ? ` of ${now.t.primaryNode}` : ''}, not a replica of ${input.from}`);
      const issuedAt = Date.now();
      ctx.heartbeat({ issuing: issuedAt });
      const cl = await open(c, input.to);
      if (!cl) throw new Error(`${input.to} unreachable`);
      try {
        await failpoint('ensureRedisClusterFailover.beforeFailover');
        await cl.call('CLUSTER', 'FAILOVER');
      } finally {
        cl.disconnect();
      }
      ctx.heartbeat({ issuedAt });
      await failpoint('ensureRedisClusterFailover.issued');
      for (;;) {
        await sleep(5);
        ctx.heartbeat({ issuedAt });
        now = await done();
        if (now.ok) {
          const handoverMs = Date.now() - issuedAt;
          return { alreadyHeld: false, handoverMs, audit: `issued CLUSTER FAILOVER on ${input.to}; saw ${input.to} primary and ${input.from} its replica after ${handoverMs} ms` };
        }
        if (Date.now() - issuedAt > input.timeoutMs)
          throw new HandoverError(ErrorType.HandoverAborted, `CLUSTER FAILOVER on ${input.to} did not complete within ${input.timeoutMs} ms; ${input.from} still serves the shard`);
      }
    }),

    /**
     * Ensure `node` (a replica of the dead `deadPrimary`) is a primary of the cluster: CLUSTER FAILOVER FORCE
     * (no handshake with the dead primary; a majority of primaries still votes the new config epoch), and when
     * that has not made it primary within `forceTimeoutMs`, CLUSTER FAILOVER TAKEOVER (no vote: the replica
     * bumps the epoch itself — for a cluster that lost its majority). A no-op when it is primary already; a
     * retry resumes from the stage in its heartbeat details and never goes back to FORCE after TAKEOVER.
     */
    ensureRedisClusterTakeover: activity(async (input: ClusterTakeoverInput): Promise<{ alreadyHeld: boolean; method: 'none' | 'force' | 'takeover'; promotedMs: number; audit: string }> => {
      const ctx = Context.current();
      const c = spec(input.cluster);
      const prior = ctx.info.heartbeatDetails as { stage?: 'force' | 'takeover'; issuedAt?: number } | undefined;
      const isPrimary = async () => (await probeSpec(c, input.node, [])).role === 'primary';
      if (await isPrimary()) return { alreadyHeld: true, method: 'none', promotedMs: 0, audit: `saw ${input.node} already primary; changed nothing` };
      const t0 = prior?.issuedAt ?? Date.now();
      const issue = async (how: 'FORCE' | 'TAKEOVER') => {
        const cl = await open(c, input.node);
        if (!cl) throw new Error(`${input.node} unreachable`);
        try {
          await cl.call('CLUSTER', 'FAILOVER', how);
        } finally {
          cl.disconnect();
        }
      };
      let stage = prior?.stage ?? 'force';
      if (stage === 'force' && !prior?.stage) {
        ctx.heartbeat({ stage, issuedAt: t0 });
        await failpoint('ensureRedisClusterTakeover.beforeForce');
        await issue('FORCE');
      } else await issue(stage === 'force' ? 'FORCE' : 'TAKEOVER');
      for (;;) {
        await sleep(50);
        ctx.heartbeat({ stage, issuedAt: t0 });
        if (await isPrimary()) {
          const promotedMs = Date.now() - t0;
          return { alreadyHeld: false, method: stage, promotedMs, audit: `issued CLUSTER FAILOVER ${stage === 'force' ? 'FORCE' : 'FORCE, then TAKEOVER after ' + input.forceTimeoutMs + ' ms,'} on ${input.node}; saw it primary (replacing ${input.deadPrimary}) after ${promotedMs} ms` };
        }
        if (stage === 'force' && Date.now() - t0 > input.forceTimeoutMs) {
          stage = 'takeover';
          ctx.heartbeat({ stage, issuedAt: t0 });
          await issue('TAKEOVER');
        }
        if (Date.now() - t0 > input.timeoutMs) throw new HandoverError(ErrorType.HandoverAborted, `${input.node} did not become primary within ${input.timeoutMs} ms of CLUSTER FAILOVER ${stage.toUpperCase()}`);
      }
    }),

    /**
     * Wait until every reachable node's CLUSTER NODES agrees that `primary` is a master serving `slots` and
     * `replica` is its replica, and every node says cluster_state:ok. Read-only: safe to retry; the wait
     * starts again from the same condition.
     */
    waitForRedisClusterAgreement: activity(async (input: ClusterAgreementInput): Promise<{ waitedMs: number; views: Record<string, string>; audit: string }> => {
      const ctx = Context.current();
      const c = spec(input.cluster);
      const t0 = Date.now();
      const addrOf = (n: { host: string; port: number }) => `${n.host}:${n.port}`;
      const idByAddr = new Map(c.nodes.map((n) => [addrOf(n), n.id]));
      for (;;) {
        const views: Record<string, string> = {};
        await Promise.all(
          c.nodes.map(async (n) => {
            const cl = await open(c, n.id);
            if (!cl) return void (views[n.id] = 'unreachable');
            try {
              const ok = ((await cl.call('CLUSTER', 'INFO')) as string).includes('cluster_state:ok');
              const lines = ((await cl.call('CLUSTER', 'NODES')) as string).trim().split('\n').map((l) => l.split(' '));
              const hexToNode = new Map(lines.map((f) => [f[0], idByAddr.get(f[1].split('@')[0]) ?? f[1]]));
              const line = (node: string) => lines.find((f) => hexToNode.get(f[0]) === node);
              const p = line(input.primary);
              const r = input.replica === undefined ? undefined : line(input.replica);
              const problems: string[] = [];
              if (!ok) problems.push('cluster_state not ok');
              const flags = (f: string[] | undefined) => (f ? f[2].split(',') : []);
              if (!p || !flags(p).includes('master') || flags(p).some((x) => x === 'fail' || x === 'fail?')) problems.push(`${input.primary} is ${p ? p[2] : 'unknown'}`);
              else if (input.slots !== undefined ? p.slice(8).filter((s) => !s.startsWith('[')).join(' ') !== input.slots : p.length < 9) problems.push(`${input.primary} serves ${p.slice(8).join(' ') || 'no slots'}`);
              if (input.replica !== undefined && (!r || !flags(r).includes('slave') || hexToNode.get(r[3]) !== input.primary)) problems.push(`${input.replica} is ${r ? `${r[2]} of ${hexToNode.get(r[3]) ?? r[3]}` : 'unknown'}`);
              views[n.id] = problems.length ? problems.join(', ') : 'agrees';
            } catch (e) {
              views[n.id] = `error: ${(e as Error).message}`;
            } finally {
              cl.disconnect();
            }
          }),
        );
        const disagree = Object.entries(views).filter(([, v]) => v !== 'agrees' && v !== 'unreachable');
        const agreeing = Object.values(views).filter((v) => v === 'agrees').length;
        if (disagree.length === 0 && agreeing > 0) {
          const waitedMs = Date.now() - t0;
          return { waitedMs, views, audit: `every reachable node's CLUSTER NODES shows ${input.primary} master of ${input.slots ?? 'its slots'}${input.replica ? ` and ${input.replica} its replica` : ''} (${agreeing} of ${c.nodes.length} nodes) after ${waitedMs} ms` };
        }
        if (Date.now() - t0 > input.timeoutMs)
          throw new HandoverError(ErrorType.VerificationFailed, `the nodes' CLUSTER NODES views do not agree within ${input.timeoutMs} ms: ${disagree.map(([k, v]) => `${k}: ${v}`).join('; ')}`);
        ctx.heartbeat({ progress: timeProgress(`every node agrees ${input.primary} serves ${input.slots ?? 'its slots'}`, t0, input.timeoutMs, disagree.map(([k, v]) => `${k}: ${v}`).join('; ')) });
        await sleep(100);
      }
    }),

    /**
     * Wait until the node is a replica of `primary`, linked, done loading, and has caught up with the
     * primary's offset as it was when the wait began (frozen in heartbeat details across retries). Read-only.
     */
    waitForRedisNodeReady: activity(async (input: NodeReadyInput): Promise<{ waitedMs: number; audit: string }> => {
      const ctx = Context.current();
      const c = spec(input.cluster);
      const prior = ctx.info.heartbeatDetails as { goal?: number; startedAt: number } | undefined;
      const startedAt = prior?.startedAt ?? Date.now();
      let goal = prior?.goal;
      let last = '';
      for (;;) {
        if (goal === undefined) {
          const p = await probeSpec(c, input.primary, []);
          if (p.role === 'primary') goal = p.offset;
        }
        ctx.heartbeat({ goal, startedAt, progress: timeProgress(`${input.node} ready as a replica of ${input.primary}`, startedAt, input.timeoutMs, last || 'checking') });
        await failpoint('waitForRedisNodeReady.loop');
        const r = await probeSpec(c, input.node, []);
        last = !r.reachable ? 'unreachable' : r.role !== 'replica' ? `role ${r.role}` : r.primaryNode !== input.primary ? `replica of ${r.primaryNode ?? r.primaryAddress}` : !r.linkUp ? 'link down or loading' : `offset ${r.offset} < ${goal}`;
        // The primary's offset now: a replica that just finished a full sync may still be draining the
        // backlog that piled up meanwhile; it is ready once it is within the lag limit again.
        const lagNow = input.maxLagBytes === undefined ? 0 : Math.max(0, ((await probeSpec(c, input.primary, [])).offset ?? 0) - (r.offset ?? 0));
        if (r.clusterOk === false) last = 'cluster_state not ok';
        else if (lagNow > (input.maxLagBytes ?? Infinity)) last = `${lagNow} bytes behind ${input.primary} (limit ${input.maxLagBytes})`;
        else if (r.reachable && r.role === 'replica' && r.primaryNode === input.primary && r.linkUp && goal !== undefined && (r.offset ?? 0) >= goal) {
          const waitedMs = Date.now() - startedAt;
          return { waitedMs, audit: `saw ${input.node} replica of ${input.primary}, linked, at ${r.offset} >= ${goal} after ${waitedMs} ms` };
        }
        if (Date.now() - startedAt > input.timeoutMs)
          throw new HandoverError(ErrorType.VerificationFailed, `${input.node} not ready within ${input.timeoutMs} ms (${last}); stopping the roll here`);
        ctx.heartbeat({ goal, startedAt, progress: timeProgress(`${input.node} ready as a replica of ${input.primary}`, startedAt, input.timeoutMs, last) });
        await sleep(100);
      }
    }),
  };
}

