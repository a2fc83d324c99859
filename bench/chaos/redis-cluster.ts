/**
 * Redis Cluster under chaos: the engine probe of a sharded fleet and the kill points of the Cluster runbooks
 * (`switchover --shard`, the shard-by-shard rolling restart).
 *
 * The harness judges a sharded probe shard by shard with the one checker (bench/chaos/harness.ts, `shards`):
 *  - a shard is a primary and its replica, named by its slot ranges (the slots move with the role);
 *  - split brain, per shard and per sample: both nodes of one shard acknowledged a direct SET of a key of the
 *    shard's slots (redisClusterShardProbes); the masters of different shards are not a split;
 *  - at the end, per shard: exactly one master (cluster_state ok), the expected one; the other node its
 *    replica with the link up and caught up (WAIT); every acknowledged key of the shard's slots on both nodes;
 *  - for the whole cluster (a postcondition): every node's CLUSTER NODES view the same, cluster_state ok.
 *
 * The writer is the application's: an ioredis Cluster client writing keys across every shard, following
 * MOVED through failovers; a write is acknowledged when it answered OK.
 */
import Redis, { ReplyError } from 'ioredis';
import { runRollingRestart } from '../../client/commands/rolling-restart';
import { runSwitchover } from '../../client/commands/switchover';
import { waitForReplication, type RedisFleet } from '../../sandbox/redis';
import type { RedisClusterFleet } from '../../sandbox/redis-cluster';
import { sleep } from '../../sandbox/ports';
import { ClusterAckedWriter } from '../../sandbox/writer';
import type { RedisClusterLab } from '../lab';
import { chaosWriter, quietIO, started } from './common';
import { everyNodeRolled, redisClusterShardProbes, startsPerNode } from './redis';
import type { Before, EndNode, EngineProbe, Scenario, ShardProbe } from './types';

type Node = RedisClusterFleet['nodes'][number];

function open(fleet: RedisClusterFleet, n: Node): Redis {
  const c = new Redis({ host: n.host, port: n.port, password: fleet.password, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, connectTimeout: 1000, commandTimeout: 5000 });
  c.on('error', () => undefined);
  return c;
}

const field = (info: string, k: string) => new RegExp(`^${k}:(.*)$`, 'm').exec(info)?.[1]?.trim();

/** Each named node as the harness sees it: writable = master of an ok cluster (a master of a failed cluster answers CLUSTERDOWN). */
async function endStateOf(fleet: RedisClusterFleet, ids: string[]): Promise<Record<string, EndNode>> {
  const byPort = (port?: string) => fleet.nodes.find((n) => String(n.port) === port)?.id;
  const out: Record<string, EndNode> = {};
  await Promise.all(
    ids.map(async (id) => {
      const n = fleet.nodes.find((x) => x.id === id)!;
      const c = open(fleet, n);
      try {
        await c.connect();
        const [repl, info] = await Promise.all([c.info('replication'), c.call('CLUSTER', 'INFO') as Promise<string>]);
        const role = field(repl, 'role');
        const ok = field(info, 'cluster_state') === 'ok';
        const follows = role === 'slave' ? byPort(field(repl, 'master_port')) : undefined;
        const linkUp = field(repl, 'master_link_status') === 'up';
        out[id] = {
          up: true,
          writable: role === 'master' && ok,
          follows,
          linkUp,
          detail: `${role === 'master' ? `master, ${field(repl, 'connected_slaves')} replica(s)` : `replica of ${follows ?? field(repl, 'master_port')}, link ${linkUp ? 'up' : 'down'}`}, cluster_state ${ok ? 'ok' : 'fail'}`,
        };
      } catch (e) {
        out[id] = { up: false, writable: false, detail: `no answer: ${(e as Error).message}` };
      } finally {
        c.disconnect();
      }
    }),
  );
  return out;
}

/** The nodes of a shard (but `exclude`) follow `primary`, linked, and acknowledged its offset (WAIT). */
function convergeShard(fleet: RedisClusterFleet, members: string[], primary: string, timeoutMs: number, exclude: string[]): Promise<string | undefined> {
  const nodes = fleet.nodes.filter((n) => members.includes(n.id) && !exclude.includes(n.id));
  // waitForReplication reads only `nodes` and `password`: a shard is a replication fleet of its own.
  return waitForReplication({ nodes, password: fleet.password } as unknown as RedisFleet, primary, timeoutMs).then(
    () => undefined,
    (e) => (e as Error).message,
  );
}

/**
 * Acknowledged keys of `node`'s shard it does not hold: each key is read from the node directly (READONLY, so a
 * replica answers for its shard); a key of another shard's slots is answered MOVED and is not this node's.
 */
async function missingOnNode(fleet: RedisClusterFleet, node: string, keys: string[]): Promise<string[]> {
  const n = fleet.nodes.find((x) => x.id === node)!;
  const c = open(fleet, n);
  try {
    await c.connect();
    await c.call('READONLY');
    const missing: string[] = [];
    for (let i = 0; i < keys.length; i += 500) {
      const chunk = keys.slice(i, i + 500);
      const p = c.pipeline();
      for (const k of chunk) p.get(k);
      const res = (await p.exec()) ?? [];
      res.forEach(([err, v], j) => {
        if (err) {
          if (err instanceof ReplyError && /^MOVED /.test(err.message)) return;
          throw err;
        }
        if (v === null) missing.push(chunk[j]);
      });
    }
    return missing;
  } finally {
    c.disconnect();
  }
}

/** Shards from one node's replication view: each master with the nodes whose master port is its port. */
async function shardsByRole(fleet: RedisClusterFleet): Promise<{ primary: string; members: string[] }[]> {
  const end = await endStateOf(
    fleet,
    fleet.nodes.map((n) => n.id),
  );
  return Object.entries(end)
    .filter(([, e]) => e.writable)
    .map(([id]) => ({ primary: id, members: [id, ...Object.entries(end).filter(([, e]) => e.follows === id).map(([r]) => r)] }));
}

/**
 * Every node's CLUSTER NODES gives the same picture (who is master of which slots, who replicates whom, no
 * node flagged failing) and says cluster_state ok; gossip gets `graceMs` to spread a new config epoch.
 */
export async function clusterViewsAgree(fleet: RedisClusterFleet, graceMs = 10_000): Promise<string[]> {
  const byAddr = new Map(fleet.nodes.map((n) => [`${n.host}:${n.port}`, n.id]));
  let problems: string[] = [];
  for (const deadline = Date.now() + graceMs; ; await sleep(200)) {
    problems = [];
    const pictures = new Map<string, string[]>();
    for (const n of fleet.nodes) {
      const c = open(fleet, n);
      try {
        await c.connect();
        if (!String(await c.call('CLUSTER', 'INFO')).includes('cluster_state:ok')) problems.push(`${n.id}: cluster_state not ok`);
        const lines = String(await c.call('CLUSTER', 'NODES')).trim().split('\n').map((l) => l.split(' '));
        const hex = new Map(lines.map((f) => [f[0], byAddr.get(f[1].split('@')[0]) ?? f[1]]));
        const picture = lines
          .map((f) => {
            const flags = f[2].split(',').filter((x) => x !== 'myself');
            const failing = flags.some((x) => x === 'fail' || x === 'fail?') ? ' FAILING' : '';
            return flags.includes('master') ? `${hex.get(f[0])} master ${f.slice(8).join(' ') || '(no slots)'}${failing}` : `${hex.get(f[0])} replica of ${hex.get(f[3]) ?? f[3]}${failing}`;
          })
          .sort();
        const key = picture.join('; ');
        pictures.set(key, [...(pictures.get(key) ?? []), n.id]);
        if (picture.some((x) => x.endsWith(' FAILING') || x.includes('(no slots)'))) problems.push(`${n.id} sees ${picture.filter((x) => x.endsWith(' FAILING') || x.includes('(no slots)')).join(', ')}`);
      } catch (e) {
        problems.push(`${n.id}: ${(e as Error).message}`);
      } finally {
        c.disconnect();
      }
    }
    if (pictures.size > 1) problems.push(`the nodes' CLUSTER NODES views differ: ${[...pictures.entries()].map(([p, ids]) => `${ids.join(',')} see [${p}]`).join(' | ')}`);
    if (problems.length === 0 || Date.now() > deadline) return problems;
  }
}

export function redisClusterProbe(fleet: RedisClusterFleet): EngineProbe {
  const all = fleet.nodes.map((n) => n.id);
  return {
    engine: 'redis',
    nodes: all,
    views() {
      return Promise.reject(new Error('a Redis Cluster is sampled shard by shard (shards())'));
    },
    closeViews: () => undefined,
    writer(prefix) {
      const client = fleet.clusterClient();
      const w = new ClusterAckedWriter(client, prefix);
      const cw = chaosWriter(w, (node) => missingOnNode(fleet, node, w.ackedKeys));
      cw.close = async () => client.disconnect();
      return cw;
    },
    endState: () => endStateOf(fleet, all),
    async converge(primary, timeoutMs, exclude) {
      const shard = (await shardsByRole(fleet)).find((s) => s.primary === primary);
      return shard ? convergeShard(fleet, shard.members, primary, timeoutMs, exclude) : `${primary} is not a master`;
    },
    async reset() {
      // Each point starts from a healthy, agreeing cluster with an empty data set (a roll re-syncs every node).
      const problems: string[] = [];
      await fleet.waitHealthy(60_000).catch((e: Error) => problems.push(e.message));
      if (problems.length) return problems;
      const shards = await shardsByRole(fleet);
      for (const s of shards) {
        const c = open(fleet, fleet.nodes.find((n) => n.id === s.primary)!);
        try {
          await c.connect();
          await c.flushall();
        } finally {
          c.disconnect();
        }
      }
      for (const s of shards) {
        const e = await convergeShard(fleet, s.members, s.primary, 30_000, []);
        if (e) problems.push(`shard of ${s.primary} not converged: ${e}`);
      }
      return problems;
    },
    async shards(): Promise<ShardProbe[]> {
      return (await redisClusterShardProbes(fleet)).map((s) => ({
        name: s.slots,
        nodes: s.shard,
        views: () => s.probe.views(),
        closeViews: () => s.probe.closeViews(),
        endState: () => endStateOf(fleet, s.shard),
        converge: (primary, timeoutMs, exclude) => convergeShard(fleet, s.shard, primary, timeoutMs, exclude),
      }));
    },
  };
}

type ClusterScenario = Scenario<RedisClusterLab>;
const base = {
  engine: 'redis' as const,
  lab: { redisTopology: 'cluster' as const },
  minAcked: 200,
  loss: 'none' as const,
  probe: (lab: RedisClusterLab) => redisClusterProbe(lab.fleet),
};

/** Does a shard named by its slot ranges ("0-5460" or "0-10,20-30") hold `slot`? */
const holds = (shard: string, slot: number) =>
  shard.split(',').some((r) => {
    const [a, b] = r.split('-').map(Number);
    return slot >= a && slot <= (b ?? a);
  });

/** The slot whose shard the i-th switchover point moves: the three shards in turn. */
export const switchoverSlot = (i: number) => [0, 8000, 16383][i % 3];

/**
 * A shard switchover moves the named shard's primary to the one the report names (a node of that shard, not the
 * one before); every other shard keeps its primary.
 */
export function shardSwitchedOver(before: Before, report: unknown): Record<string, { primary: string; why: string } | { failure: string }> {
  const r = report as { shard?: string; oldPrimary?: string; newPrimary?: string } | undefined;
  const out: Record<string, { primary: string; why: string } | { failure: string }> = {};
  for (const [shard, was] of Object.entries(before.primaries ?? {})) {
    const named = r?.shard !== undefined && /^\d+$/.test(r.shard) ? holds(shard, Number(r.shard)) : r?.shard === was;
    if (!named) out[shard] = { primary: was, why: `shard ${shard} was not switched over (--shard ${r?.shard ?? '?'})` };
    else if (!r?.newPrimary) out[shard] = { failure: 'the report names no new primary' };
    else if (r.oldPrimary !== was) out[shard] = { failure: `the report says it switched from ${r.oldPrimary}, the shard's primary before the run was ${was}` };
    else if (r.newPrimary === was) out[shard] = { failure: `the report's new primary ${r.newPrimary} is the old one` };
    else out[shard] = { primary: r.newPrimary, why: `the switchover reported ${r.oldPrimary} -> ${r.newPrimary}` };
  }
  return out;
}

/** Every activity boundary of a Cluster shard switchover (the second probe: where the shard stands at the end), and inside its CLUSTER FAILOVER. */
export const SWITCHOVER_REDIS_CLUSTER_POINTS = [
  ...['describeCluster', 'probeRedisSpecs', 'ensureRedisClusterFailover', 'waitForRedisClusterAgreement', 'probeRedisSpecs#2'].flatMap((a) => [`before:${a}`, `after:${a}`]),
  'inside:ensureRedisClusterFailover.beforeFailover',
  'inside:ensureRedisClusterFailover.issued',
];

export const SWITCHOVER_REDIS_CLUSTER: ClusterScenario = {
  ...base,
  name: 'switchover-redis-cluster',
  points: SWITCHOVER_REDIS_CLUSTER_POINTS,
  async start(lab, i, log) {
    started(await runSwitchover({ cluster: lab.fleet.cluster, shard: String(switchoverSlot(i)), address: lab.address, taskQueue: lab.taskQueue, requestedBy: `chaos run ${i}` }, quietIO(log)));
  },
  expectPrimaries: shardSwitchedOver,
  check: (lab) => clusterViewsAgree(lab.fleet),
};

/**
 * The roll hands every shard over exactly once (CLUSTER FAILOVER to its replica, then the old primary is
 * restarted as a replica): each shard ends on the node that was its replica, and the report says so.
 */
export function everyShardHandedOver(before: Before, report: unknown, members: Record<string, string[]>): Record<string, { primary: string; why: string } | { failure: string }> {
  const handovers = (report as { handovers?: { from: string; to: string }[] } | undefined)?.handovers ?? [];
  const out: Record<string, { primary: string; why: string } | { failure: string }> = {};
  for (const [shard, was] of Object.entries(before.primaries ?? {})) {
    const other = (members[shard] ?? []).filter((n) => n !== was);
    const mine = handovers.filter((h) => h.from === was || (members[shard] ?? []).includes(h.to));
    if (other.length !== 1) out[shard] = { failure: `shard ${shard} has ${other.length} replica(s), the scenario expects one` };
    else if (mine.length !== 1 || mine[0].from !== was || mine[0].to !== other[0])
      out[shard] = { failure: `the report's handovers of shard ${shard} are ${JSON.stringify(mine)}, expected exactly ${was} -> ${other[0]}` };
    else out[shard] = { primary: other[0], why: `the roll reported ${was} -> ${other[0]}` };
  }
  return out;
}

/**
 * Before and after each activity of the Cluster roll (the first shard's replica, its CLUSTER FAILOVER, and the
 * restart of its old primary, by then a replica), the last shard's handover and the last node's readiness wait
 * (the roll's last step), and inside the restart, the readiness wait and the handover.
 */
export const ROLLING_RESTART_REDIS_CLUSTER_POINTS = [
  ...[
    'describeCluster',
    'probeRedisSpecs',
    'ensureRedisConfigPersisted',
    'ensureRedisNodeRestarted',
    'waitForRedisNodeReady',
    'ensureRedisClusterFailover',
    'ensureRedisNodeRestarted#2',
    'ensureRedisClusterFailover#3',
    'waitForRedisNodeReady#6',
  ].flatMap((a) => [`before:${a}`, `after:${a}`]),
  'inside:ensureRedisNodeRestarted.beforeRestart',
  'inside:waitForRedisNodeReady.loop',
  'inside:ensureRedisClusterFailover.beforeFailover',
  'inside:ensureRedisClusterFailover.issued',
];

export const ROLLING_RESTART_REDIS_CLUSTER: ClusterScenario = {
  ...base,
  name: 'rolling-restart-redis-cluster',
  points: ROLLING_RESTART_REDIS_CLUSTER_POINTS,
  async start(lab, i, log) {
    started(await runRollingRestart({ cluster: lab.fleet.cluster, set: [`hz=${11 + i}`], address: lab.address, taskQueue: lab.taskQueue, requestedBy: `chaos run ${i}` }, quietIO(log)));
  },
  // The shards' members (fixed pairs: a failover swaps roles inside a pair) and every node's count of starts.
  async before(lab) {
    const members = Object.fromEntries((await redisClusterShardProbes(lab.fleet)).map((s) => [s.slots, s.shard]));
    return { members, starts: startsPerNode(lab.fleet) };
  },
  expectPrimaries: (before, report) => everyShardHandedOver(before, report, (before.extra as { members: Record<string, string[]> }).members),
  async check(lab, i, before) {
    return [...(await everyNodeRolled(lab, i, (before.extra as { starts: Record<string, number> }).starts)), ...(await clusterViewsAgree(lab.fleet))];
  },
};

export const REDIS_CLUSTER_SCENARIOS: ClusterScenario[] = [SWITCHOVER_REDIS_CLUSTER, ROLLING_RESTART_REDIS_CLUSTER];
