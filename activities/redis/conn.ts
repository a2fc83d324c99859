/**
 * Connections to Redis/Valkey nodes, resolved from the worker's inventory. The password is looked up here,
 * inside the activity, and never leaves this module except inside the ioredis client.
 */
import Redis from 'ioredis';
import { ErrorType, HandoverError } from '../../core/errors';
import type { RedisNodeProbe, Promotion } from '../../core/types';
import { findEngineCluster, findNode } from '../../inventory/load';
import type { ClusterSpec, Inventory, NodeSpec } from '../../inventory/schema';
import { resolveSecret } from '../../inventory/secrets';
import { sameAddress } from '../activity';

export interface RedisTarget {
  cluster: string;
  node: string;
  host: string;
  port: number;
  username?: string;
  password?: string;
}

/** Opens a connected client; injected so tests and benchmarks can wrap it. */
export type RedisConnect = (target: RedisTarget) => Promise<Redis>;

export const connectRedis: RedisConnect = async (t) => {
  const client = new Redis({
    host: t.host,
    port: t.port,
    username: t.username,
    password: t.password,
    lazyConnect: true,
    connectTimeout: 2_000,
    commandTimeout: 5_000,
    maxRetriesPerRequest: 0,
    enableReadyCheck: false,
    retryStrategy: () => null,
    connectionName: 'handover',
  });
  // ioredis reports a failed AUTH as an 'error' event and then rejects connect() with "Connection is closed".
  let lastError: unknown;
  client.on('error', (e) => (lastError = e));
  try {
    await client.connect();
    await client.ping(); // forces NOAUTH / WRONGPASS to surface now
  } catch (e) {
    client.disconnect();
    const auth = classifyRedisError(lastError ?? e, t);
    throw auth instanceof HandoverError ? auth : classifyRedisError(e, t);
  }
  return client;
};

/** Turn a driver error into a typed one; authentication failures are not retryable. */
export function classifyRedisError(e: unknown, t: { cluster: string; node: string }): Error {
  const msg = (e as Error)?.message ?? String(e);
  if (/WRONGPASS|NOAUTH|invalid password|AUTH failed/i.test(msg)) {
    return new HandoverError(ErrorType.AuthenticationFailed, `authentication to ${t.node} (cluster ${t.cluster}) failed: ${msg.split('\n')[0]}`);
  }
  if (/^NOPERM/.test(msg)) return new HandoverError(ErrorType.PreconditionFailed, `the automation user lacks an ACL permission on ${t.node} (cluster ${t.cluster}): ${msg.split('\n')[0]}`);
  return e instanceof Error ? e : new Error(msg);
}

export interface RedisContext {
  cluster: ClusterSpec;
  node: NodeSpec;
  target: RedisTarget;
}

export const redisClusterSpec = (inv: Inventory, cluster: string): ClusterSpec => findEngineCluster(inv, cluster, 'redis');

export function redisTarget(cluster: ClusterSpec, nodeName: string, env: NodeJS.ProcessEnv): RedisTarget {
  const node = findNode(cluster, nodeName);
  return {
    cluster: cluster.name,
    node: node.id,
    host: node.host,
    port: node.port,
    username: cluster.credentials.username,
    password: resolveSecret(cluster.credentials.password, `cluster ${cluster.name} password`, env),
  };
}

export function parseInfo(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    if (!line || line.startsWith('#')) continue;
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}


/** Which inventory node listens on host:port. */
export function nodeAt(cluster: ClusterSpec, host: string, port: number): NodeSpec | undefined {
  return cluster.nodes.find((n) => sameAddress(n.host, n.port, host, port));
}

/** Read what one node is: role, offset, link, keys, version. Never mutates. */
export async function readNode(client: Redis, cluster: ClusterSpec, node: NodeSpec): Promise<RedisNodeProbe> {
  const [replText, serverText, dbsize] = await Promise.all([client.info('replication'), client.info('server'), client.dbsize()]);
  const repl = parseInfo(replText);
  const server = parseInfo(serverText);
  const probe: RedisNodeProbe = {
    node: node.id,
    address: `${node.host}:${node.port}`,
    promotion: node.promotion as Promotion,
    reachable: true,
    dbsize,
    version: server.valkey_version ? `valkey ${server.valkey_version}` : `redis ${server.redis_version}`,
    runId: server.run_id,
    failoverState: repl.master_failover_state,
    configFile: server.config_file ?? undefined,
  };
  if (repl.role === 'master') {
    probe.role = 'primary';
    probe.offset = Number(repl.master_repl_offset);
    probe.minReplicasToWrite = repl.min_slaves_good_slaves !== undefined || repl.min_replicas_good_replicas !== undefined;
    probe.replicaAcks = {};
    for (const [k, v] of Object.entries(repl)) {
      if (!/^slave\d+$/.test(k)) continue;
      const f = Object.fromEntries(v.split(',').map((kv) => kv.split('=') as [string, string]));
      probe.replicaAcks[`${f.ip}:${f.port}`] = Number(f.offset);
    }
  } else {
    probe.role = 'replica';
    probe.primaryAddress = `${repl.master_host}:${repl.master_port}`;
    probe.primaryNode = nodeAt(cluster, repl.master_host, Number(repl.master_port))?.id;
    probe.linkUp = repl.master_link_status === 'up';
    probe.offset = Number(repl.slave_repl_offset ?? 0);
  }
  return probe;
}
