/**
 * Sentinel topology: the primary role moves through Sentinel (SENTINEL FAILOVER), so the operator never races
 * Sentinel's own election, and writes are paused on the old primary until the candidate has every byte, so
 * nothing acknowledged is lost.
 */
import { Context } from '@temporalio/activity';
import Redis from 'ioredis';
import { ErrorType, HandoverError } from '../../core/errors';
import type { RedisNodeProbe } from '../../core/types';
import type { ClusterSpec } from '../../inventory/schema';
import { resolveSecret } from '../../inventory/secrets';
import { activity } from '../activity';
import { persistRole, redisOps, type RedisActivityDeps } from './node';
import { controllerFor } from '../controllers';
import { sentinelTls } from '../tls';
import { redisTlsOptions } from './conn';
import type { SentinelProbe } from '../../core/redis/rolling';
import { FAILOVER_INFO_PERIOD_MS, FAILOVER_LEAD_MS } from '../../core/redis/sentinel-timing';

/** From the pause to SENTINEL FAILOVER on open connections: PAUSE, two INFO, REPLICAOF, UNPAUSE (ms). */
const ALIGN_PREP_MS = 10;

export interface PinInput {
  cluster: string;
  candidate: string;
}
export interface PinResult {
  pinned: string[];
  audit: string;
}
export interface UnpinInput {
  cluster: string;
}

/** Sentinel's replica-priority for each inventory promotion rule (lower wins; 0 is never). */
export const REPLICA_PRIORITY = { prefer: 10, neutral: 100, never: 0 } as const;
export interface SentinelHandoverInput {
  cluster: string;
  from: string;
  to: string;
  pauseTimeoutMs: number;
  /**
   * Time SENTINEL FAILOVER against Sentinel's INFO schedule so that its first INFO of the candidate after its
   * SLAVEOF NO ONE comes about 330 ms after the request instead of about 1 s (see alignWithSentinelInfo).
   */
  alignFailover?: boolean;
}

export interface SentinelInfoPeriodInput {
  cluster: string;
  /** One period for every Sentinel, or a period per Sentinel id (a restore; ids not listed are left alone). */
  periodMs: number | Record<string, number>;
}
export interface SentinelInfoPeriodResult {
  /** Each answering Sentinel's info-period before this call (ms). */
  before: Record<string, number>;
  audit: string;
}


const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function createRedisSentinelActivities(deps: RedisActivityDeps) {
  const { env, spec, withNode, probeOne } = redisOps(deps);
  const failpoint = deps.failpoint ?? (() => undefined);

  function sentinelsOf(c: ClusterSpec) {
    if (!c.sentinel) throw new HandoverError(ErrorType.PreconditionFailed, `cluster ${c.name} has no sentinel block`);
    const password = resolveSecret(c.sentinel.password, `cluster ${c.name} sentinel password`, env);
    const tls = sentinelTls(c);
    /** ioredis' tls option for Sentinel `id` (the cluster's tls, overridden by the sentinel block's). */
    const tlsFor = (id: string) => redisTlsOptions({ cluster: c.name, node: `sentinel ${id}`, tls });
    return { name: c.sentinel.masterName, nodes: c.sentinel.nodes, password, tlsFor };
  }

  async function askSentinel<T>(c: ClusterSpec, i: number, fn: (s: Redis) => Promise<T>): Promise<T> {
    const s = sentinelsOf(c);
    const n = s.nodes[i % s.nodes.length];
    const cl = new Redis({ host: n.host, port: n.port, password: s.password, tls: s.tlsFor(n.id), lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, connectTimeout: 2000, commandTimeout: 5000 });
    cl.on('error', () => undefined);
    try {
      await cl.connect();
      return await fn(cl);
    } finally {
      cl.disconnect();
    }
  }

  /** host:port each sentinel reports for the master (undefined for one that does not answer). */
  async function sentinelViews(c: ClusterSpec): Promise<(string | undefined)[]> {
    const s = sentinelsOf(c);
    return Promise.all(
      s.nodes.map((_, i) =>
        askSentinel(c, i, async (cl) => {
          const r = (await cl.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', s.name)) as string[];
          return `${r[0]}:${r[1]}`;
        }).catch(() => undefined),
      ),
    );
  }

  /** One Sentinel: version, run_id, start time, and whether it sees the master, the replicas and its peers. */
  async function probeSentinel(c: ClusterSpec, i: number): Promise<SentinelProbe> {
    const s = sentinelsOf(c);
    const id = s.nodes[i].id;
    try {
      return await askSentinel(c, i, async (cl) => {
        const server = await cl.info('server');
        const m = (await cl.call('SENTINEL', 'MASTER', s.name)) as string[];
        const f = Object.fromEntries(m.flatMap((v, j) => (j % 2 === 0 ? [[v, m[j + 1]]] : [])));
        const replicas = c.nodes.length - 1;
        const peers = s.nodes.length - 1;
        const healthy = Number(f['num-slaves']) >= replicas && Number(f['num-other-sentinels']) >= peers && !String(f.flags).includes('down');
        return {
          id,
          reachable: true,
          version: `redis ${/redis_version:([\d.]+)/.exec(server)?.[1]}`,
          runId: /run_id:(\w+)/.exec(server)?.[1],
          startedAtMs: Date.now() - Number(/uptime_in_seconds:(\d+)/.exec(server)?.[1] ?? 0) * 1000,
          healthy,
          detail: healthy ? undefined : `sees ${f['num-slaves']} replicas and ${f['num-other-sentinels']} other sentinels (want ${replicas} and ${peers}), flags ${f.flags}`,
        };
      });
    } catch (e) {
      return { id, reachable: false, detail: (e as Error).message };
    }
  }

  /** SENTINEL REPLICAS as field maps. */
  async function replicasOf(cl: Redis, name: string): Promise<Record<string, string>[]> {
    return ((await cl.call('SENTINEL', 'REPLICAS', name)) as string[][]).map((a) => Object.fromEntries(a.flatMap((v, i) => (i % 2 === 0 ? [[v, a[i + 1]]] : []))) as Record<string, string>);
  }

  /**
   * Wait (at most 2 s, never failing) for the moment to ask the Sentinel on `cl` for SENTINEL FAILOVER. Sentinel sees a
   * promotion only in an INFO of the promoted replica, and while it fails over it sends that INFO once a second
   * counted from the previous reply (`info-refresh` in SENTINEL REPLICAS is its age). Asked at a random moment,
   * the first INFO after its SLAVEOF NO ONE comes up to a second later, and clients wait for it: Sentinel names the
   * new primary only then. Asked when the age is 1000 - FAILOVER_LEAD_MS - `prepMs`, the next INFO is due just
   * after the SLAVEOF NO ONE. Needs Sentinel's normal INFO period above 1000 - FAILOVER_LEAD_MS, else the age
   * never gets there (HANDOVER_INFO_PERIOD_MS is). Returns what it did, for the audit.
   */
  async function alignWithSentinelInfo(cl: Redis, name: string, id: string, toPort: number, prepMs: number): Promise<string> {
    const want = FAILOVER_INFO_PERIOD_MS - FAILOVER_LEAD_MS - prepMs;
    const t0 = Date.now();
    try {
      for (;;) {
        const a0 = Date.now();
        const to = (await replicasOf(cl, name)).find((r) => Number(r.port) === toPort);
        const age = Number(to?.['info-refresh'] ?? NaN) + (Date.now() - a0) / 2;
        if (!Number.isFinite(age)) return `${id} does not list the candidate; not aligned`;
        if (age <= want) {
          // Until its next INFO at about HANDOVER_INFO_PERIOD_MS the age only grows with the clock: sleep the
          // difference rather than poll for a narrow window.
          const rest = Math.max(0, want - 5 - age);
          await sleep(rest);
          return `asked when ${id}'s INFO of the candidate was ${Math.round(age + rest)} ms old (after ${Date.now() - t0} ms)`;
        }
        if (Date.now() - t0 > 2000) return `${id}'s INFO of the candidate was never under ${Math.round(want)} ms old within 2 s (last ${Math.round(age)} ms); not aligned`;
        await sleep(15);
      }
    } catch (e) {
      return `not aligned: ${(e as Error).message}`;
    }
  }

  return {
    /** Probe every Sentinel of the cluster. Read-only. */
    probeRedisSentinels: activity(async ({ cluster }: { cluster: string }): Promise<{ sentinels: SentinelProbe[] }> => {
      const c = spec(cluster);
      return { sentinels: await Promise.all(sentinelsOf(c).nodes.map((_, i) => probeSentinel(c, i))) };
    }),

    /**
     * Ensure Sentinel `id` has been restarted since `sinceRunId` (a new run_id proves it) and is healthy again:
     * it sees the master, every replica and every other Sentinel. Not restarted twice.
     */
    ensureRedisSentinelRestarted: activity(async (input: { cluster: string; id: string; sinceRunId: string; timeoutMs: number }): Promise<{ restarted: boolean; audit: string }> => {
      const ctx = Context.current();
      const c = spec(input.cluster);
      const i = sentinelsOf(c).nodes.findIndex((n) => n.id === input.id);
      if (i < 0) throw new HandoverError(ErrorType.UnknownNode, `unknown sentinel ${input.id} in cluster ${input.cluster}`);
      const before = await probeSentinel(c, i);
      let did = `saw ${input.id} already restarted (run_id ${before.runId?.slice(0, 8)})`;
      let restarted = false;
      if (!before.reachable || before.runId === input.sinceRunId) {
        const controller = controllerFor(c.controller, c.name);
        const s = sentinelsOf(c);
        const n = s.nodes[i];
        const client = before.reachable ? new Redis({ host: n.host, port: n.port, password: s.password, tls: s.tlsFor(n.id), lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 }) : undefined;
        client?.on('error', () => undefined);
        await client?.connect().catch(() => undefined);
        did = await controller.restartSentinel({ id: input.id, host: n.host, client });
        client?.disconnect();
        restarted = true;
      }
      const deadline = Date.now() + input.timeoutMs;
      for (;;) {
        ctx.heartbeat();
        const p = await probeSentinel(c, i);
        if (p.reachable && p.runId !== input.sinceRunId && p.healthy) return { restarted, audit: `${did}; ${input.id} sees the master, its replicas and its peers again` };
        if (Date.now() > deadline) throw new HandoverError(ErrorType.VerificationFailed, `${input.id} not healthy within ${input.timeoutMs} ms after restart (${p.detail ?? 'unreachable'}); stopping the roll here`);
        await sleep(200);
      }
    }),

    /**
     * Ensure every answering Sentinel runs with `SENTINEL DEBUG info-period` = `periodMs` (Redis 7.0+). Returns
     * each one's period before, so the caller can restore it later with the same activity. Idempotent: setting
     * a value twice is the same as once. A Sentinel that does not answer, or has no SENTINEL DEBUG (Redis 6),
     * is reported and left alone: the handover is then only slower, never less safe.
     */
    ensureRedisSentinelInfoPeriod: activity(async (input: SentinelInfoPeriodInput): Promise<SentinelInfoPeriodResult> => {
      const c = spec(input.cluster);
      const s = sentinelsOf(c);
      const before: Record<string, number> = {};
      const lines: string[] = [];
      await Promise.all(
        s.nodes.map(async (n, i) => {
          const target = typeof input.periodMs === 'number' ? input.periodMs : input.periodMs[n.id];
          if (target === undefined) return;
          try {
            await askSentinel(c, i, async (cl) => {
              const d = (await cl.call('SENTINEL', 'DEBUG')) as unknown[];
              const flat = d.flat() as unknown[];
              const k = flat.findIndex((x) => String(x).toUpperCase() === 'INFO-PERIOD');
              const was = Number(flat[k + 1]);
              before[n.id] = was;
              if (was !== target) await cl.call('SENTINEL', 'DEBUG', 'info-period', String(target));
              lines.push(`${n.id} ${was === target ? `already ${target}` : `${was} -> ${target}`} ms`);
            });
          } catch (e) {
            lines.push(`${n.id} left alone (${(e as Error).message})`);
          }
        }),
      );
      return { before, audit: `Sentinel info-period: ${lines.sort().join(', ')}` };
    }),

    /**
     * Pin Sentinel's choice to the candidate: every other replica gets replica-priority 0 (never promoted) for
     * the duration of the handover. Idempotent: setting 0 twice is the same as once.
     */
    ensureRedisPromotionPinned: activity(async (input: PinInput): Promise<PinResult> => {
      const c = spec(input.cluster);
      const pinned = c.nodes.filter((n) => n.id !== input.candidate).map((n) => n.id);
      for (const node of pinned) await withNode(c, node, (cl) => cl.config('SET', 'replica-priority', '0'));
      return { pinned, audit: `set replica-priority 0 on ${pinned.join(', ') || 'no node'} so Sentinel can only choose ${input.candidate}` };
    }),

    /**
     * Unpin: every node's replica-priority back to what its inventory `promotion` says (prefer 10, neutral
     * 100, never 0), persisted with CONFIG REWRITE. Derived from the inventory rather than remembered, so a
     * retry after a crash restores the same values.
     */
    ensureRedisPromotionUnpinned: activity(async (input: UnpinInput): Promise<{ audit: string }> => {
      const c = spec(input.cluster);
      const set: string[] = [];
      for (const n of c.nodes) {
        const value = String(REPLICA_PRIORITY[n.promotion]);
        await withNode(c, n.id, async (cl) => {
          await cl.config('SET', 'replica-priority', value);
          // Handover's own setting: written to the file even when other settings drift (Sentinel's CONFIG
          // REWRITE after its failover persisted the pinned 0; a restart must not bring that back).
          await persistRole(cl, { set: { 'replica-priority': value } });
        });
        set.push(`${n.id}=${value}`);
      }
      return { audit: `set replica-priority from the inventory's promotion rules: ${set.join(', ')}` };
    }),

    /**
     * Ensure `to` is the primary Sentinel knows, `from` its replica. Pause writes on `from` (bounded), wait
     * until `to` has `from`'s offset, make `from` a replica of `to` (the point of no return: it can never
     * accept a write again), lift the pause, then SENTINEL FAILOVER so Sentinel itself promotes `to` (the only
     * promotable replica, see ensureRedisPromotionPinned) and reconfigures the others. -INPROG means a
     * failover is already under way: it is waited for. Resumes from whatever state it finds.
     */
    ensureRedisSentinelHandover: activity(async (input: SentinelHandoverInput): Promise<{ alreadyHeld: boolean; handoverMs: number; audit: string }> => {
      const ctx = Context.current();
      const c = spec(input.cluster);
      const s = sentinelsOf(c);
      const toSpec = c.nodes.find((n) => n.id === input.to)!;
      const toAddr = `${toSpec.host}:${toSpec.port}`;
      const settledOn = async () => {
        const views = (await sentinelViews(c)).filter((v) => v !== undefined);
        return views.length >= Math.floor(s.nodes.length / 2) + 1 && views.every((v) => v === toAddr);
      };
      const state = async (): Promise<[RedisNodeProbe, RedisNodeProbe]> => Promise.all([probeOne(c, input.from), probeOne(c, input.to)]);
      let [from, to] = await state();
      const done = (f: RedisNodeProbe, t: RedisNodeProbe) => t.role === 'primary' && f.role === 'replica' && f.primaryNode === input.to;
      if (done(from, to) && (await settledOn())) return { alreadyHeld: true, handoverMs: 0, audit: `saw ${input.to} primary, ${input.from} its replica, Sentinels agree; changed nothing` };
      let t0 = Date.now();
      let firstReply: string | undefined;
      let firstReplyMs = 0;
      const steps: string[] = [];
      if (!(from.role === 'replica' && from.primaryNode === input.to) && !done(from, to)) {
        if (!(from.role === 'primary' && to.role === 'replica' && to.primaryNode === input.from && to.linkUp))
          throw new HandoverError(ErrorType.UnexpectedTopology, `cannot hand over: ${input.from} is ${from.role}, ${input.to} is ${to.role}${to.primaryNode ? ` of ${to.primaryNode}` : ''}`);
        // Before the point of no return, and before pausing anything: the Sentinel that will be asked must
        // itself see the candidate as the only promotable replica. Sentinel reads replica-priority from INFO it
        // refreshes only every 10 s, so right after pinning (or after an earlier unpin) its view can be stale,
        // and it would refuse (NOGOODSLAVE) or, worse, promote a replica Handover did not choose.
        const waitUntil = Date.now() + 30_000;
        let view = '';
        for (;;) {
          ctx.heartbeat();
          view = await askSentinel(c, 0, async (cl) => {
            const reps = await replicasOf(cl, s.name);
            const isTo = (r: Record<string, string>) => Number(r.port) === toSpec.port;
            const cand = reps.find(isTo);
            const bad = (r: Record<string, string>) => /s_down|o_down|disconnected/.test(r.flags ?? '');
            if (!cand) return `Sentinel does not list ${input.to} as a replica`;
            if (Number(cand['slave-priority']) === 0 || bad(cand) || cand['master-link-status'] !== 'ok')
              return `Sentinel sees ${input.to} with priority ${cand['slave-priority']}, flags ${cand.flags}, link ${cand['master-link-status']}`;
            const others = reps.filter((r) => !isTo(r) && Number(r['slave-priority']) !== 0 && !bad(r));
            return others.length ? `Sentinel still sees ${others.map((r) => `${r.ip}:${r.port}`).join(', ')} as promotable` : '';
          }).catch((e: Error) => `first Sentinel does not answer: ${e.message}`);
          if (view === '') break;
          if (Date.now() > waitUntil)
            throw new HandoverError(ErrorType.HandoverAborted, `${view} after 30 s; nothing was paused or changed`);
          await sleep(250);
        }
        steps.push(`Sentinel ${s.nodes[0].id} sees only ${input.to} as promotable (after ${Date.now() - t0} ms)`);
        // Every connection is opened before the pause, so the pause covers commands only.
        await withNode(c, input.from, async (fc) =>
          withNode(c, input.to, async (tc) =>
            askSentinel(c, 0, async (sc) => {
              if (input.alignFailover) steps.push(await alignWithSentinelInfo(sc, s.name, s.nodes[0].id, toSpec.port, ALIGN_PREP_MS));
              t0 = Date.now(); // the write pause starts here
              const off = async (cl: Redis, f: string) => Number(new RegExp(`${f}:(\\d+)`).exec(await cl.info('replication'))?.[1] ?? -1);
              await fc.call('CLIENT', 'PAUSE', String(input.pauseTimeoutMs), 'WRITE');
              for (;;) {
                const [goal, seen] = await Promise.all([off(fc, 'master_repl_offset'), off(tc, 'slave_repl_offset')]);
                if (seen >= goal) break;
                if (Date.now() > t0 + input.pauseTimeoutMs - 50) {
                  await fc.call('CLIENT', 'UNPAUSE');
                  throw new HandoverError(ErrorType.HandoverAborted, `${input.to} did not catch up with ${input.from} within the ${input.pauseTimeoutMs} ms write pause; writes resumed, ${input.from} is still primary`);
                }
                await sleep(1);
              }
              // POINT OF NO RETURN: demote first; a primary that answers as a replica is one Sentinel fails over from.
              await fc.call('REPLICAOF', toSpec.host, String(toSpec.port));
              await fc.call('CLIENT', 'UNPAUSE');
              // Aligned: Sentinel is asked at once, on the connection already open, at the moment chosen above;
              // the role is persisted after (and again below, should this attempt die in between).
              if (input.alignFailover) {
                firstReply = String(await sc.call('SENTINEL', 'FAILOVER', s.name).catch((e: Error) => e.message));
                firstReplyMs = Date.now() - t0;
              }
              await persistRole(fc);
            }),
          ),
        );
        steps.push(`paused writes on ${input.from}, waited for ${input.to}, REPLICAOF ${input.to} on ${input.from}, unpaused`);
        await failpoint('ensureRedisSentinelHandover.demoted');
      }
      // Promotion by Sentinel. One Sentinel is asked (the first that answers), never several at once: each
      // would start its own failover with its own epoch, which is racing Sentinel's election. It is asked
      // again only when it reports no failover in progress and `to` is still not promoted.
      const deadline = Date.now() + input.pauseTimeoutMs + 60_000;
      const inProgress = async (i: number) =>
        askSentinel(c, i, async (cl) => String(((await cl.call('SENTINEL', 'MASTER', s.name)) as string[]).join(' ')).includes('failover_in_progress')).catch(() => false);
      let asked = -1;
      for (let i = 0; ; i = (i + 1) % s.nodes.length) {
        const reply = i === 0 && firstReply !== undefined ? firstReply : await askSentinel(c, i, (cl) => cl.call('SENTINEL', 'FAILOVER', s.name) as Promise<string>).catch((e: Error) => e.message);
        steps.push(`SENTINEL FAILOVER ${s.name} on ${s.nodes[i].id}: ${/INPROG/.test(String(reply)) ? 'already in progress, waiting' : reply}${i === 0 && firstReply !== undefined ? ` (${firstReplyMs} ms after the pause began)` : ''}`);
        firstReply = undefined;
        if (reply === 'OK' || /INPROG/.test(String(reply)) || /NOGOODSLAVE/.test(String(reply))) {
          asked = i;
          break;
        }
        if (Date.now() > deadline) throw new Error(`no Sentinel accepted SENTINEL FAILOVER: ${reply}`);
        await sleep(200);
      }
      // The moment that ends the pause for Sentinel clients is when the Sentinel asked names `to` (they ask
      // Sentinel where the primary is): polled every 10 ms; then `to` must answer as primary.
      const namedBy = (i: number) =>
        askSentinel(c, i, async (cl) => ((await cl.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', s.name)) as string[]).join(':') === toAddr).catch(() => false);
      let namedAt: number | undefined;
      let checkedAt = Date.now();
      for (;;) {
        ctx.heartbeat();
        if (namedAt === undefined && (await namedBy(asked))) namedAt = Date.now();
        if (namedAt !== undefined) {
          [from, to] = await state();
          if (to.role === 'primary') break;
        }
        if (Date.now() > deadline) throw new Error(`Sentinel did not promote ${input.to} within ${input.pauseTimeoutMs + 60_000} ms`);
        await sleep(namedAt === undefined ? 10 : 100);
        if (Date.now() - checkedAt < 500) continue;
        checkedAt = Date.now();
        // Another Sentinel may have done it, or the one asked may have given up: look, and ask again if so.
        [from, to] = await state();
        if (to.role === 'primary') break;
        if (!(await inProgress(asked)) && (await state())[1].role !== 'primary') {
          await sleep(400);
          const reply = await askSentinel(c, asked, (cl) => cl.call('SENTINEL', 'FAILOVER', s.name) as Promise<string>).catch((e: Error) => e.message);
          steps.push(`again on ${s.nodes[asked].id}: ${/INPROG/.test(String(reply)) ? 'in progress' : reply}`);
        }
      }
      const handoverMs = (namedAt ?? Date.now()) - t0;
      if (!steps.some((x) => x.startsWith('paused writes'))) {
        // Resumed after the demotion: an earlier attempt may have died before persisting the old primary's role.
        await withNode(c, input.from, (fc) => persistRole(fc)).then(
          () => steps.push(`persisted ${input.from}'s role`),
          (e: Error) => steps.push(`could not persist ${input.from}'s role (${e.message})`),
        );
      }
      // Settled: every Sentinel that answers names `to`, and none has a failover in progress. Only then may
      // the caller unpin (a Sentinel still failing over could otherwise pick another replica).
      for (;;) {
        ctx.heartbeat();
        const views = await sentinelViews(c);
        const answering = views.filter((v) => v !== undefined);
        const busy = await Promise.all(s.nodes.map((_, i) => inProgress(i)));
        if (answering.length >= Math.floor(s.nodes.length / 2) + 1 && answering.every((v) => v === toAddr) && !busy.some(Boolean)) break;
        if (Date.now() > deadline) throw new Error(`Sentinels have not settled on ${input.to} (${views.join(', ')})`);
        await sleep(100);
      }
      return { alreadyHeld: false, handoverMs, audit: `${steps.join('; ')}; ${input.to} promoted by Sentinel, named by ${s.nodes[asked].id} ${handoverMs} ms after the pause began; every answering Sentinel reports ${toAddr}, none failing over` };
    }),
  };
}
