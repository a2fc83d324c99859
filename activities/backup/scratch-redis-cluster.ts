/**
 * A scratch Redis Cluster from a Cluster backup (restore --scratch): one scratch server per shard in cluster
 * mode (cluster-enabled, its own nodes.conf in its own directory under one parent), each started from its
 * shard's RDB through startScratchRedis (the same streaming, decryption and decompression as every restore),
 * given exactly the slots the manifest records for its shard, met with the others, and waited for until every
 * node says cluster_state:ok and every node's CLUSTER NODES view agrees. Each node's DBSIZE must equal the
 * shard's recorded key count. Left running; a failure stops every node and removes the directory.
 *
 * A node that loads an RDB in cluster mode claims the slots its keys hash to ("Taking responsibility for
 * slot"), so each node is given only the slots it does not own yet, after reading what it owns.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type Redis from 'ioredis';
import { checkScratchKeys, parseClusterNodes, planScratchCluster, scratchClusterDisagreement, slotsToAdd, type ScratchNodeView } from '../../core/backup/cluster-restore';
import type { ShardBackup } from '../../core/backup/decide';
import { ErrorType, HandoverError } from '../../core/errors';
import { scratchHost, sleep } from './scratch';
import { startScratchRedis, type ScratchRedis } from './scratch-redis';
import type { ArtifactSource } from './stream';

/** How long the met nodes may take to agree on the cluster (gossip converges in about a second). */
const CONVERGE_MS = 60_000;

export interface ScratchClusterNode {
  address: string;
  dir: string;
  slots: string;
  keys: number;
}

export interface ScratchRedisCluster {
  dir: string;
  passwordFile: string;
  nodes: ScratchClusterNode[];
  /** false: the shards leave some slots unowned; the scratch cluster runs with cluster-require-full-coverage no. */
  fullCoverage: boolean;
}

/** A node's own line: from CLUSTER NODES text, or from its view. */
function myLine(x: string | ScratchNodeView) {
  return (typeof x === 'string' ? parseClusterNodes(x) : x.nodes).find((l) => l.flags.includes('myself'))!;
}

async function viewOf(s: ScratchRedis, cl: Redis): Promise<ScratchNodeView> {
  const info = String(await cl.call('CLUSTER', 'INFO'));
  const nodes = parseClusterNodes(String(await cl.call('CLUSTER', 'NODES')));
  return {
    address: `${s.host}:${s.port}`,
    myId: nodes.find((l) => l.flags.includes('myself'))?.id ?? '',
    state: /cluster_state:(\w+)/.exec(info)?.[1] ?? '',
    nodes,
    dbsize: await cl.dbsize(),
  };
}

export async function startScratchRedisCluster(o: Omit<ArtifactSource, 'artifact'> & { engineVersion: string; shards: ShardBackup[]; convergeMs?: number }): Promise<ScratchRedisCluster> {
  const env = o.env ?? process.env;
  const plan = planScratchCluster(o.shards);
  if (!plan.ok) throw new HandoverError(ErrorType.PreconditionFailed, `backup ${o.id}: the manifest's shards cannot form a cluster: ${plan.refusal}; nothing was restored`);
  const dir = mkdtempSync(path.join(os.tmpdir(), `handover-restore-${o.id}-cluster-`));
  const host = scratchHost(env);
  const password = createHash('sha256').update(`${Math.random()}${Date.now()}`).digest('hex').slice(0, 24);
  const servers: ScratchRedis[] = [];
  const clients: Redis[] = [];
  try {
    const started = await Promise.allSettled(
      o.shards.map((s, i) =>
        startScratchRedis({ ...o, env, artifact: s.artifact, password, host, keep: true, dir: path.join(dir, `shard-${i + 1}`), clusterMode: { nodeTimeoutMs: 5000, requireFullCoverage: plan.fullCoverage } }),
      ),
    );
    for (const r of started) if (r.status === 'fulfilled') servers.push(r.value);
    const failed = started.findIndex((r) => r.status === 'rejected');
    if (failed >= 0) throw new Error(`shard ${o.shards[failed].slots}: its RDB does not start a scratch cluster node: ${((started[failed] as PromiseRejectedResult).reason as Error).message.split('\n')[0]}`);
    for (const s of servers) clients.push(await s.client());

    // Before any node meets another: a distinct config epoch each (as redis-cli --cluster create does), then the
    // shard's slots the node did not claim from its keys at load.
    for (const [i, s] of o.shards.entries()) {
      const cl = clients[i];
      const owned = myLine(String(await cl.call('CLUSTER', 'NODES'))).slots;
      const add = slotsToAdd(s.slots, owned);
      if ('refusal' in add) throw new HandoverError(ErrorType.VerificationFailed, `shard ${s.slots}: ${add.refusal}`);
      await cl.call('CLUSTER', 'SET-CONFIG-EPOCH', String(i + 1)).catch(() => undefined);
      for (let k = 0; k < add.add.length; k += 4096) await cl.call('CLUSTER', 'ADDSLOTS', ...add.add.slice(k, k + 4096).map(String));
    }
    for (const s of servers.slice(1)) await clients[0].call('CLUSTER', 'MEET', s.host, String(s.port), String(s.busPort));

    const deadline = Date.now() + (o.convergeMs ?? CONVERGE_MS);
    let views: ScratchNodeView[];
    for (;;) {
      views = await Promise.all(servers.map((s, i) => viewOf(s, clients[i])));
      const why = scratchClusterDisagreement(o.shards, views);
      if (!why) break;
      if (Date.now() > deadline) throw new HandoverError(ErrorType.VerificationFailed, `the scratch cluster did not agree within ${(o.convergeMs ?? CONVERGE_MS) / 1000} s: ${why}`);
      await sleep(100);
    }
    const keys = checkScratchKeys(o.shards.map((s) => ({ slots: s.slots, dbsize: s.content.redis.dbsize })), views);
    if (keys) throw new HandoverError(ErrorType.VerificationFailed, keys);

    const passwordFile = path.join(dir, 'password');
    writeFileSync(passwordFile, password + '\n', { mode: 0o600 });
    return {
      dir,
      passwordFile,
      fullCoverage: plan.fullCoverage,
      nodes: servers.map((s, i) => ({ address: views[i].address, dir: s.dir, slots: myLine(views[i]).slots, keys: views[i].dbsize })),
    };
  } catch (e) {
    await Promise.all(servers.map((s) => s.stop().catch(() => undefined)));
    rmSync(dir, { recursive: true, force: true });
    const m = (e as Error).message;
    const tail = 'the scratch cluster was stopped and removed, nothing else was touched';
    throw e instanceof HandoverError ? new HandoverError(e.type, `${m}; ${tail}`) : new Error(`${m}; ${tail}`);
  } finally {
    for (const cl of clients) cl.disconnect();
  }
}
