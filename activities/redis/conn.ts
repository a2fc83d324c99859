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
import { classifyTlsError, nodeTls, plaintextToTlsNode, speaksTls, tlsMaterial, type EffectiveTls } from '../tls';

export interface RedisTarget {
  cluster: string;
  node: string;
  host: string;
  port: number;
  username?: string;
  password?: string;
  /** From the inventory's tls blocks; undefined: plaintext. */
  tls?: EffectiveTls;
}

/** ioredis' `tls` option for a target (files read now), or undefined for plaintext. */
export function redisTlsOptions(t: { cluster: string; node: string; tls?: EffectiveTls }) {
  if (!t.tls) return undefined;
  const m = tlsMaterial(t.tls, t);
  return { ca: m.ca, cert: m.cert, key: m.key, servername: m.servername, rejectUnauthorized: m.rejectUnauthorized };
}

/**
 * Why a connection that failed before its first answer failed, when it is about TLS: the handshake or the
 * certificate check (wrong CA, name, client certificate), or a plaintext client cut off by a TLS-only node.
 */
export async function tlsCause(e: unknown, t: { cluster: string; node: string; host: string; port: number; tls?: EffectiveTls }): Promise<HandoverError | undefined> {
  const typed = classifyTlsError(e, t);
  if (typed) return typed;
  const msg = (e as Error)?.message ?? String(e);
  if (!t.tls && /Connection is closed|ECONNRESET|socket hang up|timed? ?out/i.test(msg) && (await speaksTls(t.host, t.port))) return plaintextToTlsNode(t);
  // TLS 1.3: a server that requires a client certificate accepts the handshake, then closes the connection.
  if (t.tls && !t.tls.cert && /Connection is closed|ECONNRESET/i.test(msg))
    return new HandoverError(ErrorType.TlsFailed, `TLS to ${t.node} (cluster ${t.cluster}, ${t.host}:${t.port}) failed: the server closed the connection after the handshake; it may require a client certificate (tls.cert and tls.key); nothing was changed`);
  return undefined;
}

/** Opens a connected client; injected so tests and benchmarks can wrap it. */
export type RedisConnect = (target: RedisTarget) => Promise<Redis>;

export const connectRedis: RedisConnect = async (t) => {
  const client = new Redis({
    host: t.host,
    port: t.port,
    username: t.username,
    password: t.password,
    tls: redisTlsOptions(t),
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
    const tlsFailure = await tlsCause(lastError ?? e, t);
    if (tlsFailure) throw tlsFailure;
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
    tls: nodeTls(cluster, node.id),
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
  const [replText, serverText, dbsize, persistence] = await Promise.all([
    client.info('replication'),
    client.info('server'),
    client.dbsize(),
    // Persistence (the empty-primary guard): unknown when the automation user may not CONFIG GET.
    (client.call('CONFIG', 'GET', 'save', 'appendonly') as Promise<string[]>).catch(() => undefined),
  ]);
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
    replid: repl.master_replid,
  };
  if (Array.isArray(persistence) && persistence.length >= 4) {
    const cfg: Record<string, string> = {};
    for (let i = 0; i + 1 < persistence.length; i += 2) cfg[String(persistence[i])] = String(persistence[i + 1]);
    if ('save' in cfg && 'appendonly' in cfg) probe.persistent = cfg.save !== '' || cfg.appendonly === 'yes';
  }
  // A node of a TLS cluster must replicate over TLS too (its own tls-replication yes): with it off, a REPLICAOF
  // to a TLS-only port never links (or, with a plaintext port open, replicates in clear). Unknown when the
  // automation user may not CONFIG GET: not flagged then.
  if (nodeTls(cluster, node.id)) {
    const v = (await client.call('CONFIG', 'GET', 'tls-replication').catch(() => undefined)) as string[] | undefined;
    if (Array.isArray(v) && v.length >= 2 && v[1] !== 'yes') probe.tlsReplicationOff = true;
  }
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
