/**
 * The Redis/Valkey node layer every Redis activity module shares: the activity dependencies, connections per node
 * from the worker's inventory (activities/redis/conn.ts), probes (with the automation user's ACL permissions),
 * and persisting a node's role across a restart.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type Redis from 'ioredis';
import { DRIFT_KEYS, configDrift, withRole } from '../../core/redis/config-drift';
import { HandoverError } from '../../core/errors';
import type { RedisNodeProbe } from '../../core/types';
import type { ClusterSpec, Inventory } from '../../inventory/schema';
import { withDeadline } from '../activity';
import { classifyRedisError, readNode, redisClusterSpec, redisTarget, type RedisConnect } from './conn';
import { REDIS_ACL_CHECK_COMMANDS, REDIS_REQUIRED_COMMANDS, missingRedisPermissions } from '../../core/redis/permissions';

export interface RedisActivityDeps {
  /** The worker's current inventory. */
  inventory: () => Inventory;
  connectRedis: RedisConnect;
  env?: NodeJS.ProcessEnv;
  /** Fault injection for the chaos harness: called at named points, a no-op in production. */
  failpoint?: (name: string) => void | Promise<void>;
  /** A probe of one node that takes longer is reported unreachable ("timeout after N ms"): `handover status`. */
  probeTimeoutMs?: number;
}

/**
 * Write the node's current role (and settings) to its config file, as Sentinel does after a failover, so a
 * restart brings it back as what it is now. Best effort: a server started without a config file refuses.
 */
export async function persistRole(cl: Redis, opts: { set?: Record<string, string>; strict?: boolean } = {}): Promise<string> {
  // Persist only what Handover changed: when the node runs on this host (loopback), its config file is readable
  // from this worker and a runtime setting differs from it (core/redis/config-drift.ts), only the role line is
  // written and the drift is reported;
  // otherwise CONFIG REWRITE as before (the drift cannot be seen from here).
  try {
    const file = /config_file:(.*)/.exec(await cl.info('server'))?.[1]?.trim() ?? '';
    // Only a node on this host: the same path on the worker's host would be another server's file.
    const host = cl.options.host ?? '';
    if (file && /^(127\.|localhost$|::1$|\[::1\]$)/.test(host)) {
      let text: string | undefined;
      try {
        text = readFileSync(file, 'utf8');
      } catch {
        text = undefined;
      }
      if (text !== undefined) {
        const runtime: Record<string, string> = {};
        for (const k of DRIFT_KEYS) {
          const kv = (await cl.config('GET', k).catch(() => [])) as string[];
          if (kv.length >= 2) runtime[k] = kv[1];
        }
        const drift = configDrift(text, runtime, Object.keys(opts.set ?? {}));
        if (drift.length) {
          const repl = /role:(\w+)[\s\S]*?master_host:(\S+)[\s\S]*?master_port:(\d+)/.exec(await cl.info('replication'));
          const role = repl && repl[1] === 'slave' ? { host: repl[2], port: Number(repl[3]) } : undefined;
          writeFileSync(file, withRole(text, role, opts.set));
          return `; persisted only the role in ${file} (not CONFIG REWRITE): runtime differs from the file in ${drift.join(', ')}, left unpersisted`;
        }
      }
    }
  } catch (e) {
    // A file that could be read but not written: say so rather than persist the drift.
    if ((e as NodeJS.ErrnoException).code === 'EACCES' || (e as NodeJS.ErrnoException).code === 'EROFS') return `; NOT persisted: the config file differs from runtime and cannot be written (${(e as Error).message})`;
    // otherwise fall through to CONFIG REWRITE
  }
  if (opts.strict) await cl.call('CONFIG', 'REWRITE');
  else await cl.call('CONFIG', 'REWRITE').catch(() => undefined);
  return '';
}


/** The node-level helpers every Redis activity module shares: inventory look-up, connections, probes. */
export function redisOps(deps: RedisActivityDeps) {
  const env = deps.env ?? process.env;

  function spec(cluster: string): ClusterSpec {
    return redisClusterSpec(deps.inventory(), cluster);
  }

  async function withNode<T>(cluster: ClusterSpec, node: string, fn: (c: Redis) => Promise<T>): Promise<T> {
    const target = redisTarget(cluster, node, env);
    const client = await deps.connectRedis(target);
    try {
      return await fn(client);
    } catch (e) {
      throw classifyRedisError(e, target);
    } finally {
      client.disconnect();
    }
  }

  async function probeOne(cluster: ClusterSpec, node: string): Promise<RedisNodeProbe> {
    const n = cluster.nodes.find((x) => x.id === node)!;
    try {
      return await withDeadline(withNode(cluster, node, (c) => readNode(c, cluster, n)), deps.probeTimeoutMs);
    } catch (e) {
      if (e instanceof HandoverError) throw e; // wrong credentials, missing secret: never "unreachable"
      return { node: n.id, address: `${n.host}:${n.port}`, promotion: n.promotion, reachable: false, error: (e as Error).message };
    }
  }

  async function probeAll(cluster: ClusterSpec): Promise<RedisNodeProbe[]> {
    return Promise.all(cluster.nodes.map((n) => probeOne(cluster, n.id)));
  }

  /**
   * probeAll, plus each reachable node's missing ACL permissions (ACL DRYRUN of every command the runbooks
   * send, pipelined: one round trip a node). Where ACL WHOAMI or DRYRUN themselves are denied, those two are
   * reported missing: nothing else could be checked. Redis before 7 has no DRYRUN: not checked there.
   */
  async function probeAllWithPermissions(cluster: ClusterSpec): Promise<RedisNodeProbe[]> {
    const nodes = await probeAll(cluster);
    await Promise.all(
      nodes.map(async (p) => {
        if (!p.reachable) return;
        const missing = await withNode(cluster, p.node, async (cl) => {
          let user: string;
          try {
            user = String(await cl.call('ACL', 'WHOAMI'));
          } catch (e) {
            return /no permissions/i.test((e as Error).message) ? [...REDIS_ACL_CHECK_COMMANDS] : [];
          }
          const pipe = cl.pipeline();
          for (const c of REDIS_REQUIRED_COMMANDS) pipe.call('ACL', 'DRYRUN', user, ...c.args);
          const answers = ((await pipe.exec()) ?? []).map(([err, v]) => err ?? String(v));
          if (answers.some((a) => a instanceof Error && /no permissions to run the 'acl\|dryrun'/i.test(a.message))) return [...REDIS_ACL_CHECK_COMMANDS];
          if (answers.some((a) => a instanceof Error && /unknown subcommand|unknown command/i.test(a.message))) return [];
          return missingRedisPermissions(answers);
        });
        if (missing.length) p.missingPermissions = missing;
      }),
    );
    return nodes;
  }

  return { env, spec, withNode, probeOne, probeAll, probeAllWithPermissions };
}
