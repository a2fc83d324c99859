/**
 * A real Redis Cluster on loopback: 3 shards x (1 primary + 1 replica) of cluster-enabled processes, created
 * with `redis-cli --cluster create`, for the cluster-topology rolling restart. Nodes are detached and found by
 * pidfile, like the replication fleet (sandbox/redis.ts), so a node controller in the worker can restart them.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import Redis, { Cluster } from 'ioredis';
import { redisServerBinary, type RedisFlavor } from './paths';
import { sleep, startOnFreePort } from './ports';
import { baseRedisConf, rolesOf, startNodeProcess, stopByPidfile, type RedisNodeProcess } from './redis';

const execFileAsync = promisify(execFile);

export interface RedisClusterFleet {
  cluster: string;
  password: string;
  passwordEnv: string;
  nodes: RedisNodeProcess[];
  baseDir: string;
  inventoryYaml(extra?: { policy?: Record<string, number | string> }): string;
  writeInventory(file?: string, extra?: { policy?: Record<string, number | string> }): string;
  /** A cluster-aware client (follows MOVED and failovers). */
  clusterClient(): Cluster;
  /** node id -> 'master' | 'slave' | 'down', from each node's own view. */
  roles(): Promise<Record<string, string>>;
  /** Waits until every node reports cluster_state:ok, every primary has a linked replica and every node's view of the shards agrees. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startRedisClusterFleet(opts: { cluster?: string; flavor?: RedisFlavor; shards?: number } = {}): Promise<RedisClusterFleet> {
  const cluster = opts.cluster ?? `rc-${Math.random().toString(36).slice(2, 8)}`;
  const password = `pw-${Math.random().toString(36).slice(2)}`;
  const passwordEnv = `HANDOVER_PW_${cluster.replace(/[^A-Za-z0-9]/g, '_').toUpperCase()}`;
  process.env[passwordEnv] = password;
  const baseDir = mkdtempSync(path.join(os.tmpdir(), `handover-${cluster}-`));
  const binary = redisServerBinary(opts.flavor ?? 'redis');
  const count = 2 * (opts.shards ?? 3);
  // Each node on a port the kernel called free (and its cluster bus port, +10000), started again on a new one
  // should another process bind either first (the probe closes its socket before the server binds).
  const started = await Promise.allSettled(
    Array.from({ length: count }, (_, i) =>
      startOnFreePort(async (port) => {
        const id = `${cluster}-${i + 1}`;
        const dir = path.join(baseDir, id);
        rmSync(dir, { recursive: true, force: true });
        mkdirSync(dir, { recursive: true });
        writeFileSync(
          path.join(dir, 'redis.conf'),
          [...baseRedisConf({ port, dir, password }), 'cluster-enabled yes', `cluster-config-file ${path.join(dir, 'nodes.conf')}`, 'cluster-node-timeout 3000'].join('\n') + '\n',
          { mode: 0o600 },
        );
        const node = startNodeProcess({ id, port, dir, binary, password });
        try {
          await node.start();
        } catch (e) {
          await node.stop('SIGKILL').catch(() => undefined);
          throw e;
        }
        return node;
      }),
    ),
  );
  const failed = started.find((r) => r.status === 'rejected');
  if (failed) {
    await Promise.all(started.flatMap((r) => (r.status === 'fulfilled' ? [r.value.stop('SIGKILL')] : [])));
    throw (failed as PromiseRejectedResult).reason;
  }
  const nodes: RedisNodeProcess[] = started.map((r) => (r as PromiseFulfilledResult<RedisNodeProcess>).value);
  await execFileAsync('redis-cli', ['-a', password, '--no-auth-warning', '--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '1', '--cluster-yes'], { timeout: 60_000 });

  const open = (n: RedisNodeProcess) => {
    const c = new Redis({ host: n.host, port: n.port, password, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, connectTimeout: 1000 });
    c.on('error', () => undefined);
    return c;
  };
  const fleet: RedisClusterFleet = {
    cluster,
    password,
    passwordEnv,
    nodes,
    baseDir,
    inventoryYaml(extra = {}) {
      const out = ['clusters:', `  - name: ${cluster}`, '    engine: redis', '    topology: cluster', '    credentials:', `      password: { env: ${passwordEnv} }`];
      if (extra.policy && Object.keys(extra.policy).length) {
        out.push('    policy:');
        for (const [k, v] of Object.entries(extra.policy)) out.push(`      ${k}: ${v}`);
      }
      out.push('    controller:', '      type: local', `      configFile: ${path.join(baseDir, '{node}', 'redis.conf')}`, `      binary: ${binary}`, '    nodes:');
      for (const n of nodes) out.push(`      - id: ${n.id}`, `        host: ${n.host}`, `        port: ${n.port}`);
      return out.join('\n') + '\n';
    },
    writeInventory(file = path.join(baseDir, 'inventory.yaml'), extra) {
      writeFileSync(file, fleet.inventoryYaml(extra));
      return file;
    },
    clusterClient() {
      const c = new Cluster(
        nodes.map((n) => ({ host: n.host, port: n.port })),
        { redisOptions: { password, connectTimeout: 1000, commandTimeout: 15_000 }, enableOfflineQueue: true, retryDelayOnFailover: 20, retryDelayOnClusterDown: 50, maxRedirections: 32, slotsRefreshTimeout: 1000 },
      );
      c.on('error', () => undefined);
      return c;
    },
    roles: () => rolesOf(nodes, password),
    async waitHealthy(timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        let ok = true;
        let masters = 0;
        for (const n of nodes) {
          const c = open(n);
          try {
            await c.connect();
            if (!(await c.call('CLUSTER', 'INFO') as string).includes('cluster_state:ok')) ok = false;
            // Every node's view agrees on the shards: each master it lists serves slots and each replica names a
            // master (a fresh cluster's gossip still lists a new replica as a slotless master for a moment).
            for (const l of String(await c.call('CLUSTER', 'NODES')).trim().split('\n')) {
              const [, , flags, master, , , , , ...ranges] = l.split(' ');
              if (flags.includes('master') && !ranges.some((r) => /^\d/.test(r))) ok = false;
              if (flags.includes('slave') && master === '-') ok = false;
            }
            const repl = await c.info('replication');
            if (repl.includes('role:master')) {
              masters++;
              if (!/connected_slaves:[1-9]/.test(repl)) ok = false;
            } else if (!repl.includes('master_link_status:up')) ok = false;
          } catch {
            ok = false;
          } finally {
            c.disconnect();
          }
        }
        if (ok && masters === nodes.length / 2) return;
        if (Date.now() > deadline) throw new Error(`redis cluster ${cluster} not healthy within ${timeoutMs} ms`);
        await sleep(100);
      }
    },
    async stop() {
      await Promise.all(nodes.map((n) => stopByPidfile(n.dir, 'SIGKILL')));
      rmSync(baseDir, { recursive: true, force: true });
    },
  };
  await fleet.waitHealthy();
  return fleet;
}

export function readLog(n: RedisNodeProcess): string {
  return readFileSync(path.join(n.dir, 'server.log'), 'utf8');
}
