/**
 * Redis/Valkey under chaos: the engine probe (a split-brain sampler over INFO replication, the AckedWriter,
 * an end-state reader) and the kill points of each runbook.
 *
 * "Writable" is what a client would see: ROLE master and not refusing writes for lack of good replicas
 * (min-replicas-to-write). A dead primary restarted from its own config comes back as a master with no
 * replicas; with min-replicas-to-write it refuses writes (NOREPLICAS) and is not writable.
 */
import Redis, { ReplyError } from 'ioredis';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities } from '../../activities';
import { runFailover } from '../../client/commands/failover';
import { runRollingRestart } from '../../client/commands/rolling-restart';
import { runSwitchover } from '../../client/commands/switchover';
import { loadInventory } from '../../inventory/load';
import { waitForReplication, type RedisFleet } from '../../sandbox/redis';
import { sleep } from '../../sandbox/ports';
import { AckedWriter } from '../../sandbox/writer';
import type { Lab } from '../lab';
import { BACKUP_POINTS, addBackupBlock, backupStates, checkOneNewGoodBackup, startBackup } from './backup';
import { chaosWriter, failedOver, lostBeforeSight, quietIO, reasonRoll, rolled, started, switchedOver, unchanged } from './common';
import type { EndNode, EngineProbe, KillMark, NodeView, Scenario, SettleResult } from './types';

interface Replication {
  role: string;
  masterPort?: number;
  linkUp: boolean;
  goodReplicas?: number;
  minToWrite: number;
}

function parseReplication(info: string, minToWrite: number): Replication {
  const f = (k: string) => new RegExp(`^${k}:(.*)$`, 'm').exec(info)?.[1]?.trim();
  const good = f('min_slaves_good_slaves');
  return { role: f('role') ?? '?', masterPort: f('master_port') ? Number(f('master_port')) : undefined, linkUp: f('master_link_status') === 'up', goodReplicas: good === undefined ? undefined : Number(good), minToWrite };
}

const writable = (r: Replication) => r.role === 'master' && (r.minToWrite === 0 || (r.goodReplicas ?? 0) >= r.minToWrite);

async function readReplication(c: Redis): Promise<Replication> {
  const [info, cfg] = await Promise.all([c.info('replication'), c.config('GET', 'min-replicas-to-write') as Promise<string[]>]);
  return parseReplication(info, Number(cfg[1] ?? 0));
}

/** The SET the writer sends, as it travels in the replication stream (RESP): what a lost write costs in bytes. */
export function setCommandBytes(key: string): number {
  const value = String(Number(key.slice(key.lastIndexOf(':') + 1)) + 1); // AckedWriter writes SET <prefix>:<seq> <seq + 1>
  const bulk = (s: string) => `$${Buffer.byteLength(s)}\r\n${s}\r\n`;
  return Buffer.byteLength(`*3\r\n${bulk('SET')}${bulk(key)}${bulk(value)}`);
}

/**
 * The client's first connection open (or 500 ms gone by): a sampler's first round must not count a connection
 * still opening as a silent node. Only the first: a node that went away later is answered for at once.
 */
function firstConnect(c: Redis): Promise<Redis> {
  if (c.status === 'ready' || (c as Redis & { everReady?: boolean }).everReady) return Promise.resolve(c);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(c), 500);
    c.once('ready', () => {
      clearTimeout(t);
      resolve(c);
    });
  });
}

/**
 * Split-brain views of a Redis Cluster, one per shard (a primary and its replica, paired as the cluster
 * reports them when this is called; a roll's CLUSTER FAILOVER swaps roles inside a pair, never across pairs):
 * two writable nodes of one shard in one sample is a split; the masters of different shards are not.
 *
 * The view is the client's own: each node is sent a SET of a key in its shard's slots, directly (no
 * redirection). `writable`: the node acknowledged it; `read-only`: it answered with an error (MOVED from a
 * replica, CLUSTERDOWN, ...); `down`: no answer within 500 ms. ROLE alone would not do: during CLUSTER FAILOVER
 * the old master still says "master" for some milliseconds after the new one does, while its writes are paused
 * (they are answered MOVED once it learns it is a replica), which acknowledges nothing.
 */
export async function redisClusterShardProbes(fleet: { nodes: { id: string; host: string; port: number }[]; password: string }): Promise<{ shard: string[]; slots: string; probe: Pick<EngineProbe, 'views' | 'closeViews'> }[]> {
  const c = new Redis({ host: fleet.nodes[0].host, port: fleet.nodes[0].port, password: fleet.password, lazyConnect: true, retryStrategy: () => null });
  const shards = new Map<string, { members: string[]; slots: [number, number][]; tag?: string }>();
  try {
    await c.connect();
    // <id> <ip:port@cport> <flags> <master id or -> <ping> <pong> <epoch> <link> <slot ranges...>
    const lines = String(await c.call('CLUSTER', 'NODES')).trim().split('\n');
    for (const l of lines) {
      const [id, addr, flags, master, , , , , ...ranges] = l.split(' ');
      const port = Number(/:(\d+)@/.exec(addr)?.[1]);
      const node = fleet.nodes.find((n) => n.port === port)?.id;
      if (!node) throw new Error(`CLUSTER NODES names ${addr}, not a node of the fleet`);
      const key = flags.includes('slave') ? master : id;
      const s = shards.get(key) ?? { members: [], slots: [] };
      s.members.push(node);
      for (const r of ranges.filter((x) => /^\d/.test(x))) {
        const [a, b] = r.split('-').map(Number);
        s.slots.push([a, b ?? a]);
      }
      shards.set(key, s);
    }
    const slotless = [...shards.values()].filter((s) => s.slots.length === 0);
    if (slotless.length) throw new Error(`CLUSTER NODES on ${fleet.nodes[0].id} lists a shard without slots (${slotless.map((s) => s.members.join('+')).join(', ')}): its view has not converged`);
    // A hash tag per shard: every probe key of the shard carries it, so it lands in the shard's slots.
    for (let i = 0; [...shards.values()].some((s) => !s.tag); i++) {
      if (i > 100_000) throw new Error('no hash tag found for every shard');
      const slot = Number(await c.call('CLUSTER', 'KEYSLOT', `sb${i}`));
      const s = [...shards.values()].find((x) => !x.tag && x.slots.some(([a, b]) => slot >= a && slot <= b));
      if (s) s.tag = `sb${i}`;
    }
  } finally {
    c.disconnect();
  }
  let seq = 0;
  return [...shards.values()].map((s) => {
    const members = [...s.members].sort().map((id) => fleet.nodes.find((n) => n.id === id)!);
    let clients: Map<string, Redis> | undefined;
    const open = () =>
      (clients ??= new Map(
        members.map((n) => {
          const r = new Redis({ host: n.host, port: n.port, password: fleet.password, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => 50, commandTimeout: 500, connectTimeout: 500 });
          r.on('error', () => undefined);
          r.once('ready', () => Object.assign(r, { everReady: true }));
          return [n.id, r];
        }),
      ));
    return {
      shard: members.map((n) => n.id),
      slots: [...s.slots]
        .sort(([a], [b]) => a - b)
        .map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`))
        .join(','),
      probe: {
        async views() {
          const cs = open();
          const out: Record<string, NodeView> = {};
          await Promise.all(
            members.map(async (n) => {
              out[n.id] = await firstConnect(cs.get(n.id)!)
                .then((r) => r.set(`{${s.tag}}:split-brain-probe:${n.id}`, String(++seq)))
                .then(
                  (ok) => (ok === 'OK' ? 'writable' : 'read-only'),
                  (e: unknown) => (e instanceof ReplyError ? 'read-only' : 'down'),
                );
            }),
          );
          return out;
        },
        closeViews() {
          for (const r of clients?.values() ?? []) r.disconnect();
          clients = undefined;
        },
      },
    };
  });
}

export function redisProbe(fleet: RedisFleet): EngineProbe {
  let clients: Map<string, Redis> | undefined;
  const sampler = () =>
    (clients ??= new Map(
      fleet.nodes.map((n) => {
        const c = new Redis({ host: n.host, port: n.port, password: fleet.password, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => 50, commandTimeout: 500, connectTimeout: 500 });
        c.on('error', () => undefined);
        c.once('ready', () => Object.assign(c, { everReady: true }));
        return [n.id, c];
      }),
    ));
  const byPort = (port?: number) => fleet.nodes.find((n) => n.port === port)?.id;
  return {
    engine: 'redis',
    nodes: fleet.nodes.map((n) => n.id),
    async views() {
      const cs = sampler();
      const out: Record<string, NodeView> = {};
      await Promise.all(
        fleet.nodes.map(async (n) => {
          out[n.id] = await firstConnect(cs.get(n.id)!)
            .then(readReplication)
            .then(
              (r) => (writable(r) ? 'writable' : 'read-only'),
              () => 'down' as const,
            );
        }),
      );
      return out;
    },
    closeViews() {
      for (const c of clients?.values() ?? []) c.disconnect();
      clients = undefined;
    },
    writer(prefix) {
      const w = new AckedWriter(fleet.nodes, fleet.password, prefix);
      return chaosWriter(w, (node) => {
        const n = fleet.nodes.find((x) => x.id === node)!;
        return w.missingOn(n.host, n.port);
      });
    },
    async endState() {
      const out: Record<string, EndNode> = {};
      await Promise.all(
        fleet.nodes.map(async (n) => {
          const c = new Redis({ host: n.host, port: n.port, password: fleet.password, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, connectTimeout: 1000 });
          c.on('error', () => undefined);
          try {
            await c.connect();
            const r = await readReplication(c);
            const follows = r.role === 'slave' ? byPort(r.masterPort) : undefined;
            out[n.id] = {
              up: true,
              writable: writable(r),
              follows,
              linkUp: r.linkUp,
              detail: r.role === 'master' ? `master, ${r.goodReplicas ?? '?'} good replicas of ${r.minToWrite} needed` : `replica of ${follows ?? r.masterPort}, link ${r.linkUp ? 'up' : 'down'}`,
            };
          } catch (e) {
            out[n.id] = { up: false, writable: false, detail: `no answer: ${(e as Error).message}` };
          } finally {
            c.disconnect();
          }
        }),
      );
      return out;
    },
    // (Redis never leaves a node out: a returning old primary is always re-synced.)
    converge: (primary, timeoutMs) => waitForReplication(fleet, primary, timeoutMs).then(
      () => undefined,
      (e) => (e as Error).message,
    ),
    async reset() {
      // Each kill point is its own experiment: start from an empty data set so runs stay comparable (a roll
      // re-syncs every node, which would otherwise take longer with every point).
      const p0 = await fleet.primary();
      if (!p0) return [`no single primary: ${JSON.stringify(await fleet.roles())}`];
      const c = p0.client();
      await c.flushall();
      c.disconnect();
      return waitForReplication(fleet, p0.id, 30_000).then(
        () => [],
        (e) => [`not converged: ${(e as Error).message}`],
      );
    },
  };
}

type RedisScenario = Scenario<Lab>;
const base = { engine: 'redis' as const, minAcked: 200, loss: 'none' as const, probe: (lab: Lab) => redisProbe(lab.fleet) };

/** Every activity boundary of a Redis switchover, plus the kill points inside its steps. */
export const SWITCHOVER_REDIS_POINTS = [
  ...['describeCluster', 'probeRedisCluster', 'waitForRedisCatchUp', 'vetoRedisHandover', 'ensureRedisHandedOver', 'ensureRedisReplicaOf#1', 'ensureRedisReplicaOf#2', 'verifyRedisTopology'].flatMap(
    (a) => [`before:${a}`, `after:${a}`],
  ),
  'inside:waitForRedisCatchUp.loop',
  'inside:ensureRedisHandedOver.paused',
  'inside:ensureRedisHandedOver.demoted',
  'inside:ensureRedisReplicaOf.beforeAct',
];

const startSwitchover = async (lab: Lab, i: number, log: (m: string) => void) =>
  started(await runSwitchover({ cluster: lab.fleet.cluster, address: lab.address, taskQueue: lab.taskQueue, requestedBy: `chaos run ${i}` }, quietIO(log)));

export const SWITCHOVER_REDIS: RedisScenario = { ...base, name: 'switchover-redis', points: SWITCHOVER_REDIS_POINTS, start: startSwitchover, expectPrimary: switchedOver };

/** The same switchover with `handoverMethod: failover` (the server's FAILOVER TO … TIMEOUT): killed around and inside it. */
export const SWITCHOVER_REDIS_FAILOVER_METHOD: RedisScenario = {
  ...base,
  name: 'switchover-redis-failover-method',
  lab: { policy: { handoverMethod: 'failover' } },
  points: ['before:ensureRedisHandedOver', 'inside:ensureRedisHandedOver.beforeFailover', 'inside:ensureRedisHandedOver.failoverPolling', 'after:ensureRedisHandedOver', 'before:ensureRedisReplicaOf#1', 'after:verifyRedisTopology'],
  start: startSwitchover,
  expectPrimary: switchedOver,
};

/** How many times each node's server has started (its log says "Server initialized" once per start). */
export function startsPerNode(fleet: { nodes: { id: string; dir: string }[] }): Record<string, number> {
  return Object.fromEntries(fleet.nodes.map((n) => [n.id, (readFileSync(path.join(n.dir, 'server.log'), 'utf8').match(/Server initialized/g) ?? []).length]));
}

/** Every node restarted exactly once, and running the new setting. */
export async function everyNodeRolled(lab: { fleet: { nodes: { id: string; dir: string; client(): Redis }[] } }, i: number, before: unknown): Promise<string[]> {
  const problems: string[] = [];
  const starts = startsPerNode(lab.fleet);
  for (const n of lab.fleet.nodes) {
    const extra = starts[n.id] - (before as Record<string, number>)[n.id];
    if (extra !== 1) problems.push(`${n.id} started ${extra} times (want exactly 1)`);
    const c = n.client();
    const hz = ((await c.config('GET', 'hz')) as string[])[1];
    c.disconnect();
    if (hz !== String(11 + i)) problems.push(`${n.id} runs hz=${hz}, wanted ${11 + i}`);
  }
  return problems;
}

export const ROLLING_RESTART_REDIS_POINTS = [
  ...['describeCluster', 'probeRedisSpecs', 'ensureRedisConfigPersisted', 'ensureRedisNodeRestarted', 'waitForRedisNodeReady', 'ensureRedisHandedOver', 'ensureRedisNodeRestarted#3', 'verifyRedisTopology#2'].flatMap(
    (a) => [`before:${a}`, `after:${a}`],
  ),
  'inside:ensureRedisNodeRestarted.beforeRestart',
  'inside:ensureRedisHandedOver.demoted',
];

export const ROLLING_RESTART_REDIS: RedisScenario = {
  ...base,
  name: 'rolling-restart-redis',
  points: ROLLING_RESTART_REDIS_POINTS,
  async start(lab, i, log) {
    started(await runRollingRestart({ cluster: lab.fleet.cluster, set: [`hz=${11 + i}`], address: lab.address, taskQueue: lab.taskQueue, requestedBy: `chaos run ${i}` }, quietIO(log)));
  },
  before: async (lab) => startsPerNode(lab.fleet),
  expectPrimary: rolled,
  check: (lab, i, before) => everyNodeRolled(lab, i, before.extra),
};

/**
 * `rolling-restart --reason`: every node restarted once with nothing changed (OS patching). Killed right after a
 * restart acted but before Temporal heard of it (the retried activity must see the new run_id and not restart
 * again), inside a restart, and after the handover: every node started exactly once, the restart token in the report.
 */
export const ROLLING_RESTART_REDIS_REASON_POINTS = [
  'after:ensureRedisNodeRestarted',
  'inside:ensureRedisNodeRestarted.beforeRestart',
  'after:ensureRedisHandedOver',
  'before:ensureRedisNodeRestarted#3',
  'after:ensureRedisNodeRestarted#3',
];

export const ROLLING_RESTART_REDIS_REASON: RedisScenario = {
  ...base,
  name: 'rolling-restart-redis-reason',
  points: ROLLING_RESTART_REDIS_REASON_POINTS,
  ...reasonRoll((lab) => startsPerNode(lab.fleet)),
};

/** Sentinel topology: the primary is handed over through SENTINEL FAILOVER, then every Sentinel is restarted. */
export const ROLLING_RESTART_REDIS_SENTINEL_POINTS = [
  ...[
    'describeCluster',
    'probeRedisSpecs',
    'ensureRedisConfigPersisted',
    'ensureRedisNodeRestarted',
    'waitForRedisNodeReady',
    'probeRedisCluster',
    'waitForRedisCatchUp',
    'ensureRedisPromotionPinned',
    'ensureRedisSentinelInfoPeriod',
    'ensureRedisSentinelHandover',
    'ensureRedisSentinelInfoPeriod#2',
    'ensureRedisPromotionUnpinned',
    'ensureRedisNodeRestarted#3',
    'probeRedisSentinels',
    'ensureRedisSentinelRestarted#2',
    'verifyRedisTopology#2',
  ].flatMap((a) => [`before:${a}`, `after:${a}`]),
  'inside:ensureRedisSentinelHandover.demoted',
];

export const ROLLING_RESTART_REDIS_SENTINEL: RedisScenario = {
  ...ROLLING_RESTART_REDIS,
  name: 'rolling-restart-redis-sentinel',
  lab: { sentinels: true },
  points: ROLLING_RESTART_REDIS_SENTINEL_POINTS,
  async start(lab, i, log) {
    started(await runRollingRestart({ cluster: lab.fleet.cluster, set: [`hz=${11 + i}`], includeSentinels: true, address: lab.address, taskQueue: lab.taskQueue, requestedBy: `chaos run ${i}` }, quietIO(log)));
  },
  async check(lab, i, before) {
    const problems = await everyNodeRolled(lab, i, before.extra);
    // Sentinel must agree with the data nodes, and keep its quorum.
    const primary = await lab.fleet.primary();
    let agreed: string | undefined;
    for (let k = 0; k < 50 && agreed !== `127.0.0.1:${primary?.port}`; k++, await sleep(200)) agreed = await lab.sentinels!.agreedMaster();
    if (agreed !== `127.0.0.1:${primary?.port}`) problems.push(`Sentinels agree on ${agreed ?? 'nothing'}, the primary is ${primary?.id}`);
    const s = lab.sentinels!.sentinels[0];
    const c = new Redis({ host: s.host, port: s.port, lazyConnect: true, retryStrategy: () => null });
    await c.connect();
    const quorum = String(await c.call('SENTINEL', 'CKQUORUM', lab.fleet.cluster).catch((e: Error) => e.message));
    c.disconnect();
    if (!quorum.startsWith('OK')) problems.push(`Sentinel quorum: ${quorum}`);
    // Sentinel's info-period, lowered for the handover only, is back to the default on every Sentinel.
    for (const x of lab.sentinels!.sentinels) {
      const d = new Redis({ host: x.host, port: x.port, lazyConnect: true, retryStrategy: () => null });
      await d.connect();
      const kv = ((await d.call('SENTINEL', 'DEBUG')) as unknown[]).flat().map(String);
      d.disconnect();
      const period = Number(kv[kv.findIndex((k) => k.toUpperCase() === 'INFO-PERIOD') + 1]);
      if (period !== 10_000) problems.push(`${x.id} still has info-period ${period} ms`);
    }
    return problems;
  },
};

// (No `after:ensureRedisFenced`: with the old primary down, the fence step fails by design — "fencing pending"
// — so there is no successful completion to die after.)
export const FAILOVER_REDIS_POINTS = [...['describeCluster', 'probeRedisCluster', 'ensureRedisPromoted', 'ensureRedisReplicaOf', 'verifyRedisTopology'].flatMap((a) => [`before:${a}`, `after:${a}`]), 'before:ensureRedisFenced'];

/** Kill the primary (SIGKILL), say so, and start `handover failover --force`. */
async function killPrimaryAndFailOver(lab: Lab, i: number, log: (m: string) => void, kill: (m: KillMark) => void, writing: () => Promise<void>, drain: boolean): Promise<void> {
  const primary = await lab.fleet.primary();
  if (!primary) throw new Error(`no single primary before the failover: ${JSON.stringify(await lab.fleet.roles())}`);
  if (drain) {
    const c = primary.client();
    await c.call('CLIENT', 'PAUSE', '3000', 'WRITE');
    c.disconnect();
    await waitForReplication(lab.fleet, primary.id, 2500);
  }
  if (!drain) await writing();
  const at = performance.now();
  await primary.stop('SIGKILL'); // returns once the process is gone, which can take a second under load
  kill({ node: primary.id, at, goneAt: performance.now() });
  log(`[chaos] killed primary ${primary.id}${drain ? ' (writes paused and replicas caught up first)' : ' under the writer'}`);
  started(await runFailover({ cluster: lab.fleet.cluster, force: true, address: lab.address, taskQueue: lab.taskQueue, requestedBy: `chaos run ${i}` }, quietIO(log)));
}

/** The dead node is restarted (a master with no replicas, from its own config) and fenced with the monitor's activity, under the writer and the sampler. */
async function restartAndFence(lab: Lab, _report: unknown, kill?: { node: string }): Promise<SettleResult> {
  const dead = lab.fleet.nodes.find((n) => n.id === kill?.node);
  const primary = await lab.fleet.primary();
  if (!dead || dead.pid() || !primary) return { problems: [`expected ${kill?.node ?? 'the killed node'} dead and one primary, roles ${JSON.stringify(await lab.fleet.roles())}`] };
  await dead.start();
  const acts = createActivities({ inventory: () => loadInventory(lab.inventory) });
  await new MockActivityEnvironment().run(acts.ensureRedisFenced, { cluster: lab.fleet.cluster, node: dead.id, primary: primary.id });
  return { problems: [] };
}

/** Does the report's window (bytes of replication stream) hold the lost SETs? */
function redisLossBound(report: unknown, all: string[], ackedAt: (key: string) => number | undefined): string | undefined {
  const lost = lostBeforeSight(report, all, ackedAt);
  if (lost.length === 0) return undefined;
  const w = (report as { dataLossWindow?: { bytes?: number; note?: string } } | undefined)?.dataLossWindow;
  const need = lost.reduce((n, k) => n + setCommandBytes(k), 0);
  if (w?.bytes === undefined) return `the report gives no bound ("${w?.note ?? 'no dataLossWindow'}"), and ${lost.length} acknowledged write(s) (${need} bytes of stream) were lost`;
  if (need > w.bytes) return `the report bounds the loss at ${w.bytes} bytes, but the ${lost.length} lost write(s) are ${need} bytes of stream`;
  return undefined;
}

/**
 * Unplanned failover as it happens: the primary is SIGKILLed under the running writer, then `handover
 * failover --force` runs and the worker is killed at each boundary. Writes the dead primary acknowledged
 * but never replicated may be lost, but only within the data-loss window the run reports. Afterwards the dead
 * node is restarted and fenced, under the writer and the sampler, and must come back as a replica.
 */
export const FAILOVER_REDIS: RedisScenario = {
  ...base,
  name: 'failover-redis',
  lab: { extraConfig: ['min-replicas-to-write 1', 'min-replicas-max-lag 2', 'repl-timeout 3'] },
  points: FAILOVER_REDIS_POINTS,
  loss: 'reported-window',
  start: (lab, i, log, kill, writing) => killPrimaryAndFailOver(lab, i, log, kill, writing, false),
  expectPrimary: failedOver,
  settle: restartAndFence,
  lossBound: redisLossBound,
};

/**
 * The same failover with nothing to lose: writes paused on the primary and its replicas seen caught up before
 * the kill, so every acknowledged write is on a survivor and losing one would mean a wrong promotion.
 */
export const FAILOVER_REDIS_DRAINED: RedisScenario = {
  ...FAILOVER_REDIS,
  name: 'failover-redis-drained',
  loss: 'none',
  start: (lab, i, log, kill, writing) => killPrimaryAndFailOver(lab, i, log, kill, writing, true),
};

export const BACKUP_REDIS: RedisScenario = {
  ...base,
  name: 'backup-redis',
  points: BACKUP_POINTS,
  prepare: addBackupBlock,
  start: (lab, i, log) => startBackup(lab, lab.fleet.cluster, i, log),
  before: (lab) => backupStates(lab, lab.fleet.cluster),
  expectPrimary: unchanged,
  check: (lab, _i, before, report) => checkOneNewGoodBackup(lab, lab.fleet.cluster, before.extra, report),
};

export const REDIS_SCENARIOS: RedisScenario[] = [SWITCHOVER_REDIS, SWITCHOVER_REDIS_FAILOVER_METHOD, ROLLING_RESTART_REDIS, ROLLING_RESTART_REDIS_REASON, ROLLING_RESTART_REDIS_SENTINEL, FAILOVER_REDIS, FAILOVER_REDIS_DRAINED, BACKUP_REDIS];
