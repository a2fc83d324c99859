/**
 * Real redis-server / valkey-server processes on free loopback ports, wired as 1 primary + N replicas, for
 * tests, the demo, benchmarks and chaos runs. Each node can be stopped (SIGTERM/SIGKILL/SIGSTOP) and started
 * again with the same configuration.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Redis from 'ioredis';
import { redisClient, startNodeProcess, stopByPidfile, type RedisNodeProcess } from '../activities/backup/scratch-redis';
import { makeDbTls, tlsInventoryLines, type DbTls } from './db-tls';
import { NETNS_LAUNCHER, redisServerBinary, type RedisFlavor } from './paths';
import { sleep, startOnFreePort } from './ports';

// The server process itself is production code (backup verification starts scratch servers with it).
export { redisClient, startNodeProcess, stopByPidfile, type RedisNodeProcess };

export interface RedisFleet {
  flavor: RedisFlavor;
  cluster: string;
  password: string;
  /** Name of the environment variable the inventory points at for the password. */
  passwordEnv: string;
  nodes: RedisNodeProcess[];
  baseDir: string;
  /** With `tls: true`: the certificates (every node listens on tls-port only, port 0). */
  tls?: DbTls;
  /**
   * YAML inventory text for this fleet. `tls`: the cluster's tls block (default: the fleet's CA and client
   * certificate when it has TLS); false: none (a plaintext-only inventory).
   */
  inventoryYaml(extra?: {
    promotion?: Record<string, 'prefer' | 'neutral' | 'never'>;
    policy?: Record<string, number | string>;
    binaries?: Record<string, string>;
    sentinelBlock?: string;
    /** Operator hooks (inventory `hooks:`), by kind (preSwitchover, postPromotion, ...). */
    hooks?: Partial<Record<string, string[]>>;
    tls?: false | { ca?: string; cert?: string; key?: string; serverName?: string; verify?: boolean };
  }): string;
  /** Writes the inventory to a file and returns its path. */
  writeInventory(file?: string, extra?: Parameters<RedisFleet['inventoryYaml']>[0]): string;
  /** Current roles: node id -> 'master' | 'slave' | 'down'. */
  roles(): Promise<Record<string, string>>;
  primary(): Promise<RedisNodeProcess | undefined>;
  stop(): Promise<void>;
}

export interface FleetOptions {
  flavor?: RedisFlavor;
  cluster?: string;
  replicas?: number;
  password?: string;
  passwordEnv?: string;
  baseDir?: string;
  /** Extra redis.conf lines for every node (e.g. min-replicas-to-write 1). */
  extraConfig?: string[];
  /**
   * One host per node (sandbox/netns.ts): node i binds hosts[i].address and runs under hosts[i].wrap
   * (`ip netns exec <ns>`), replicas replicate from the first one's address. Default: every node on loopback.
   */
  hosts?: { address: string; wrap: string[] }[];
  /**
   * TLS only: every node has `port 0` and `tls-port` (the inventory port), certificates made by openssl,
   * `tls-replication yes`, and `tls-auth-clients yes` (clients present a certificate of the fleet's CA).
   */
  tls?: boolean;
}

/** The redis.conf lines of a TLS-only node: no plaintext port, replication and clients over TLS. */
export function tlsRedisConf(port: number, t: DbTls, authClients: 'yes' | 'optional' | 'no' = 'yes'): string[] {
  return ['port 0', `tls-port ${port}`, `tls-cert-file ${t.serverCert}`, `tls-key-file ${t.serverKey}`, `tls-ca-cert-file ${t.ca}`, 'tls-replication yes', `tls-auth-clients ${authClients}`];
}

/** The redis.conf lines every sandbox node shares: loopback, pidfile and log in its dir, no persistence. */
export function baseRedisConf(o: { port: number; dir: string; password: string; bind?: string }): string[] {
  return [
    `port ${o.port}`,
    `bind ${o.bind ?? '127.0.0.1'}`,
    `dir ${o.dir}`,
    'daemonize no',
    `pidfile ${path.join(o.dir, 'redis.pid')}`,
    `logfile ${path.join(o.dir, 'server.log')}`,
    'save ""',
    'appendonly no',
    'protected-mode no',
    `requirepass ${o.password}`,
    `masterauth ${o.password}`,
    'repl-diskless-sync yes',
    'repl-diskless-sync-delay 0',
  ];
}

/** node id -> 'master' | 'slave' | 'down', each node asked for its ROLE. */
export async function rolesOf(nodes: { id: string; host: string; port: number; tls?: RedisNodeProcess['tls'] }[], password: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  await Promise.all(
    nodes.map(async (n) => {
      const c = new Redis({ host: n.host, port: n.port, password, tls: n.tls, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, connectTimeout: 1000 });
      c.on('error', () => undefined);
      try {
        await c.connect();
        out[n.id] = String(((await c.call('ROLE')) as unknown[])[0]);
      } catch {
        out[n.id] = 'down';
      } finally {
        c.disconnect();
      }
    }),
  );
  return out;
}

export async function startRedisFleet(opts: FleetOptions = {}): Promise<RedisFleet> {
  const flavor = opts.flavor ?? 'redis';
  const cluster = opts.cluster ?? `cache-${Math.random().toString(36).slice(2, 8)}`;
  const password = opts.password ?? `pw-${Math.random().toString(36).slice(2)}`;
  const passwordEnv = opts.passwordEnv ?? `HANDOVER_PW_${cluster.replace(/[^A-Za-z0-9]/g, '_').toUpperCase()}`;
  process.env[passwordEnv] = password;
  const baseDir = opts.baseDir ?? mkdtempSync(path.join(os.tmpdir(), `handover-${cluster}-`));
  const binary = redisServerBinary(flavor);
  const tls = opts.tls ? makeDbTls(baseDir) : undefined;
  const count = 1 + (opts.replicas ?? 2);
  if (opts.hosts && opts.hosts.length < count) throw new Error(`${count} nodes need ${count} hosts, got ${opts.hosts.length}`);
  const hostOf = (i: number) => opts.hosts?.[i]?.address ?? '127.0.0.1';
  // Each node is started on a port the kernel called free and, should another process bind it first (the probe
  // closes its socket before the server binds), started again on a new one: the primary first, since the
  // replicas' config names its port.
  const startNode = (i: number, primaryPort?: number) =>
    startOnFreePort(async (port) => {
      const id = `${cluster}-${i + 1}`;
      const dir = path.join(baseDir, id);
      mkdirSync(dir, { recursive: true });
      rmSync(path.join(dir, 'server.log'), { force: true });
      const node = startNodeProcess({ id, port, dir, binary, password, host: hostOf(i), wrap: opts.hosts?.[i]?.wrap, tls: tls?.client });
      const base = baseRedisConf({ port, dir, password, bind: hostOf(i) });
      const lines = [...(tls ? [...tlsRedisConf(port, tls), ...base.filter((l) => !l.startsWith('port '))] : base), 'repl-ping-replica-period 1', 'repl-timeout 10'];
      lines.push(...(opts.extraConfig ?? []));
      if (primaryPort !== undefined) lines.push(`replicaof ${hostOf(0)} ${primaryPort}`);
      writeFileSync(path.join(dir, 'redis.conf'), lines.join('\n') + '\n', { mode: 0o600 });
      try {
        await node.start();
      } catch (e) {
        await node.stop('SIGKILL').catch(() => undefined);
        throw e;
      }
      return node;
    });
  const first = await startNode(0);
  const rest = await Promise.allSettled(Array.from({ length: count - 1 }, (_, i) => startNode(i + 1, first.port)));
  const failed = rest.find((r) => r.status === 'rejected');
  if (failed) {
    await Promise.all([first, ...rest.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []))].map((n) => n.stop('SIGKILL')));
    throw (failed as PromiseRejectedResult).reason;
  }
  const nodes: RedisNodeProcess[] = [first, ...rest.map((r) => (r as PromiseFulfilledResult<RedisNodeProcess>).value)];

  const fleet: RedisFleet = {
    flavor,
    cluster,
    password,
    passwordEnv,
    nodes,
    baseDir,
    tls,
    inventoryYaml(extra = {}) {
      const out = [
        'clusters:',
        `  - name: ${cluster}`,
        '    engine: redis',
        `    topology: ${extra.sentinelBlock ? 'sentinel' : 'replication'}`,
        '    credentials:',
        `      password: { env: ${passwordEnv} }`,
      ];
      if (extra.policy && Object.keys(extra.policy).length) {
        out.push('    policy:');
        for (const [k, v] of Object.entries(extra.policy)) out.push(`      ${k}: ${v}`);
      }
      const tlsBlock = extra.tls === false ? undefined : (extra.tls ?? (tls && { ca: tls.ca, cert: tls.clientCert, key: tls.clientKey }));
      if (tlsBlock) out.push(...tlsInventoryLines('    ', tlsBlock));
      if (extra.sentinelBlock) out.push(extra.sentinelBlock.trimEnd());
      if (extra.hooks) out.push('    hooks:', ...Object.entries(extra.hooks).map(([k, v]) => `      ${k}: ${JSON.stringify(v ?? [])}`));
      out.push('    controller:', '      type: local', `      configFile: ${path.join(baseDir, '{node}', 'redis.conf')}`, `      binary: ${binary}`);
      // Nodes (and Sentinels) on lab hosts are started again inside their own network namespace.
      if (opts.hosts) out.push(`      launcher: ${NETNS_LAUNCHER}`);
      if (extra.sentinelBlock) out.push(`      sentinelConfigFile: ${path.join(baseDir, '{node}', 'sentinel.conf')}`);
      if (extra.binaries && Object.keys(extra.binaries).length) {
        out.push('      binaries:');
        for (const [v, b] of Object.entries(extra.binaries)) out.push(`        "${v}": ${b}`);
      }
      out.push('    nodes:');
      for (const n of nodes) {
        out.push(`      - id: ${n.id}`, `        host: ${n.host}`, `        port: ${n.port}`);
        const p = extra.promotion?.[n.id];
        if (p) out.push(`        promotion: ${p}`);
      }
      return out.join('\n') + '\n';
    },
    writeInventory(file = path.join(baseDir, 'inventory.yaml'), extra) {
      writeFileSync(file, fleet.inventoryYaml(extra));
      return file;
    },
    roles: () => rolesOf(nodes, password),
    async primary() {
      const r = await fleet.roles();
      const masters = nodes.filter((n) => r[n.id] === 'master');
      return masters.length === 1 ? masters[0] : undefined;
    },
    async stop() {
      await Promise.all(nodes.map((n) => n.stop('SIGKILL')));
      if (!opts.baseDir && !process.env.HANDOVER_KEEP_SANDBOX) rmSync(baseDir, { recursive: true, force: true });
    },
  };
  await waitForReplication(fleet, nodes[0].id);
  return fleet;
}

/** Wait until every node other than `primaryId` is a replica of it with its link up. */
/**
 * One empty standalone redis-server (`dir` its data directory) on a free port, started again on a new port when
 * another process binds the probed one first (startOnFreePort).
 */
export async function startStandaloneRedis(o: { id: string; dir: string; password: string }): Promise<RedisNodeProcess> {
  return startOnFreePort(async (port) => {
    mkdirSync(o.dir, { recursive: true });
    rmSync(path.join(o.dir, 'server.log'), { force: true });
    writeFileSync(path.join(o.dir, 'redis.conf'), baseRedisConf({ port, dir: o.dir, password: o.password }).join('\n') + '\n', { mode: 0o600 });
    const node = startNodeProcess({ id: o.id, port, dir: o.dir, binary: 'redis-server', password: o.password });
    try {
      await node.start();
    } catch (e) {
      await node.stop('SIGKILL').catch(() => undefined);
      throw e;
    }
    return node;
  });
}

/**
 * Test setup: make `primaryId` the primary and every other live node its replica (REPLICAOF, only where a node
 * is not so already), then wait until every replica has the primary's offset. A primary that is down (killed)
 * is named as the replicas' master all the same, and nothing is waited for.
 */
export async function setRedisPrimary(fleet: RedisFleet, primaryId: string, timeoutMs = 15_000): Promise<void> {
  const primary = fleet.nodes.find((n) => n.id === primaryId)!;
  const up = !!primary.pid();
  for (const n of fleet.nodes.filter((x) => x.pid())) {
    const c = new Redis({ host: n.host, port: n.port, password: fleet.password, tls: n.tls, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    c.on('error', () => undefined);
    try {
      await c.connect();
      const info = await c.info('replication');
      if (n.id === primaryId) {
        if (!/role:master/.test(info)) await c.call('REPLICAOF', 'NO', 'ONE');
      } else if (!/role:slave/.test(info) || !info.includes(`master_port:${primary.port}`)) {
        await c.call('REPLICAOF', primary.host, String(primary.port));
      }
    } finally {
      c.disconnect();
    }
  }
  if (up) await waitForReplication(fleet, primaryId, timeoutMs);
}

export async function waitForReplication(fleet: RedisFleet, primaryId: string, timeoutMs = 15_000): Promise<void> {
  const primary = fleet.nodes.find((n) => n.id === primaryId)!;
  const deadline = Date.now() + timeoutMs;
  const connect = async (n: RedisNodeProcess) => {
    const c = new Redis({ host: n.host, port: n.port, password: fleet.password, tls: n.tls, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    c.on('error', () => undefined);
    await c.connect();
    return c;
  };
  for (;;) {
    let ok = true;
    const seen: string[] = [];
    // Linked is not yet streaming: every replica must have applied the stream up to the primary's offset as read
    // at the start of this round (a writer still running moves it on, never back).
    let goal = NaN;
    const p = await connect(primary).catch((e: Error) => (seen.push(`${primaryId}: ${e.message}`), undefined));
    try {
      if (p) goal = Number(/master_repl_offset:(\d+)/.exec(await p.info('replication'))?.[1] ?? NaN);
    } catch (e) {
      seen.push(`${primaryId}: ${(e as Error).message}`);
    } finally {
      p?.disconnect();
    }
    if (Number.isNaN(goal)) ok = false;
    for (const n of fleet.nodes) {
      if (n.id === primaryId) continue;
      let c: Redis | undefined;
      try {
        c = await connect(n);
        const info = await c.info('replication');
        const offset = Number(/slave_repl_offset:(\d+)/.exec(info)?.[1] ?? -1);
        if (!info.includes(`master_port:${primary.port}`) || !info.includes('master_link_status:up') || !(offset >= goal)) {
          ok = false;
          seen.push(`${n.id}: ${/role:(\w+)/.exec(info)?.[1] ?? '?'} of port ${/master_port:(\d+)/.exec(info)?.[1] ?? '-'}, link ${/master_link_status:(\w+)/.exec(info)?.[1] ?? '-'}, offset ${offset} of ${goal}`);
        }
      } catch (e) {
        ok = false;
        seen.push(`${n.id}: ${(e as Error).message}`);
      } finally {
        c?.disconnect();
      }
    }
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`replication to ${primaryId} not established within ${timeoutMs} ms (last seen: ${seen.join('; ')})`);
    await sleep(50);
  }
}
