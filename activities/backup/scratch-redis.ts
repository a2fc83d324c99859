/**
 * Redis/Valkey server processes over a redis.conf in their own directory: the scratch servers that backup
 * verification and restore start from an RDB, and (through sandbox/redis.ts) the test fleets. A server is
 * detached, like a service, and found again by its pidfile.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import Redis from 'ioredis';
import { isAlive, scratchHost, sleep, startOnFreePorts } from './scratch';
import { openArtifact, type ArtifactSource } from './stream';
import { redisServerFor } from './tools';

export interface RedisNodeProcess {
  id: string;
  host: string;
  port: number;
  dir: string;
  process?: ChildProcess;
  start(): Promise<void>;
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** The running server's pid (from its pidfile), if it is alive. */
  pid(): number | undefined;
  client(): Redis;
  /** Client TLS for a server with tls-port only (sandbox fleets with `tls: true`); undefined: plaintext. */
  tls?: RedisClientTls;
}

/** node:tls client options (contents, not paths) for a server that speaks TLS only. */
export interface RedisClientTls {
  ca: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

function pidFromFile(dir: string): number | undefined {
  try {
    const pid = Number(readFileSync(path.join(dir, 'redis.pid'), 'utf8').trim());
    return pid > 0 && isAlive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

function logTail(dir: string): string {
  try {
    return readFileSync(path.join(dir, 'server.log'), 'utf8').split('\n').slice(-5).join('\n');
  } catch {
    return '';
  }
}

/** Signal the server whose pidfile is in `dir` and, unless it is SIGSTOP/SIGCONT, wait until it is gone. */
export async function stopByPidfile(dir: string, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  const pid = pidFromFile(dir);
  if (pid === undefined) return;
  process.kill(pid, signal);
  if (signal === 'SIGSTOP' || signal === 'SIGCONT') return;
  const deadline = Date.now() + 5000;
  while (isAlive(pid)) {
    if (Date.now() > deadline) process.kill(pid, 'SIGKILL');
    await sleep(20);
  }
}

export function redisClient(host: string, port: number, password: string | undefined, tls?: RedisClientTls): Redis {
  const c = new Redis({ host, port, password, tls, lazyConnect: false, maxRetriesPerRequest: 1, connectTimeout: 2000, enableOfflineQueue: true, retryStrategy: (n) => (n > 20 ? null : 100) });
  c.on('error', () => undefined);
  return c;
}

/**
 * One server process over `<dir>/redis.conf` (written by the caller). start() waits for PING; a server that
 * exits while starting rejects with its log's last lines (so "Address already in use" can be retried).
 */
export function startNodeProcess(o: { id: string; port: number; dir: string; binary: string; password: string; host?: string; wrap?: string[]; tls?: RedisClientTls }): RedisNodeProcess {
  const { id, port, dir, binary, password, tls } = o;
  const host = o.host ?? '127.0.0.1';
  const node: RedisNodeProcess = {
    id,
    host,
    port,
    dir,
    async start() {
      // `wrap`: a command prefix the server runs under (the test fleet's `ip netns exec <ns>`; it execs, same pid).
      const argv = [...(o.wrap ?? []), binary, path.join(dir, 'redis.conf')];
      const proc = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
      proc.unref();
      node.process = proc;
      let err = '';
      proc.stderr!.on('data', (b) => (err += b.toString()));
      (proc.stderr as unknown as { unref?: () => void }).unref?.();
      const deadline = Date.now() + 10_000;
      for (;;) {
        if (proc.exitCode !== null) throw new Error(`${id} exited: ${err}${logTail(dir)}`);
        // Bounded: another process holding the port may accept the connection and never answer (this one then exits).
        const c = new Redis({ host, port, password, tls, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, connectTimeout: 1000, commandTimeout: 1000 });
        c.on('error', () => undefined);
        let timer: NodeJS.Timeout | undefined;
        try {
          await Promise.race([
            (async () => {
              await c.connect();
              await c.ping();
            })(),
            new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('no answer')), 2000))),
          ]);
          clearTimeout(timer);
          c.disconnect();
          return;
        } catch {
          clearTimeout(timer);
          c.disconnect();
        }
        if (Date.now() > deadline) throw new Error(`${id} did not answer PING within 10s: ${err}${logTail(dir)}`);
        await sleep(50);
      }
    },
    stop: (signal: NodeJS.Signals = 'SIGTERM') => stopByPidfile(dir, signal),
    pid: () => pidFromFile(dir),
    client: () => redisClient(host, port, password, tls),
    tls,
  };
  return node;
}

export interface ScratchRedis {
  host: string;
  port: number;
  /** A cluster node's bus port (cluster-port). */
  busPort?: number;
  dir: string;
  password: string;
  client(): Promise<Redis>;
  stop(): Promise<void>;
}

/** A scratch server in cluster mode (cluster-enabled, its own nodes.conf in its directory). */
export interface ScratchClusterNodeOptions {
  nodeTimeoutMs: number;
  /** false: the shards do not cover every slot, and cluster_state is ok without full coverage. */
  requireFullCoverage: boolean;
}

/**
 * A scratch redis-server (or valkey-server, matching `engineVersion`) on a free port of `host`, else the scratch
 * host (loopback unless HANDOVER_SCRATCH_HOST says otherwise), started from the backup's RDB, streamed from storage
 * into a temporary directory. A random password unless `password` is given.
 */
export async function startScratchRedis(o: ArtifactSource & { engineVersion: string; password?: string; keep?: boolean; host?: string; dir?: string; clusterMode?: ScratchClusterNodeOptions }): Promise<ScratchRedis> {
  const env = o.env ?? process.env;
  const dir = o.dir ?? mkdtempSync(path.join(os.tmpdir(), `handover-restore-${o.id}-`));
  if (o.dir) mkdirSync(dir, { recursive: true, mode: 0o700 });
  const host = o.host ?? scratchHost(env);
  const password = o.password ?? createHash('sha256').update(`${Math.random()}${Date.now()}`).digest('hex').slice(0, 24);
  let node: RedisNodeProcess;
  let busPort: number | undefined;
  try {
    await pipeline(openArtifact({ ...o, env }), createWriteStream(path.join(dir, 'dump.rdb')));
    const binary = redisServerFor(o.engineVersion, env);
    // A cluster node binds its cluster bus too (cluster-port, named in CLUSTER MEET): both ports picked free.
    node = await startOnFreePorts(
      o.clusterMode ? 2 : 1,
      async ([port, bus]) => {
        busPort = o.clusterMode ? bus : undefined;
        const conf = [`port ${port}`, `bind ${host}`, `dir ${dir}`, 'dbfilename dump.rdb', 'daemonize no', `pidfile ${path.join(dir, 'redis.pid')}`, `logfile ${path.join(dir, 'server.log')}`, 'save ""', 'appendonly no', `requirepass ${password}`];
        if (o.clusterMode) {
          rmSync(path.join(dir, 'nodes.conf'), { force: true }); // a retry on new ports starts a new node
          conf.push('cluster-enabled yes', `cluster-config-file ${path.join(dir, 'nodes.conf')}`, `cluster-port ${bus}`, `cluster-node-timeout ${o.clusterMode.nodeTimeoutMs}`);
          if (!o.clusterMode.requireFullCoverage) conf.push('cluster-require-full-coverage no');
        }
        writeFileSync(path.join(dir, 'redis.conf'), conf.join('\n') + '\n', { mode: 0o600 });
        const n = startNodeProcess({ id: `scratch-${o.id}`, port, dir, binary, password, host });
        try {
          await n.start();
        } catch (e) {
          await n.stop('SIGKILL').catch(() => undefined);
          throw e;
        }
        return n;
      },
      { host },
    );
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const client = async () => {
    for (let i = 0; ; i++) {
      const c = new Redis({ host, port: node.port, password, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
      c.on('error', () => undefined);
      try {
        await c.connect();
        await c.dbsize(); // LOADING until the RDB is in
        return c;
      } catch (e) {
        c.disconnect();
        if (i > 600) throw e;
        await sleep(50);
      }
    }
  };
  return {
    host,
    port: node.port,
    ...(busPort !== undefined ? { busPort } : {}),
    dir,
    password,
    client,
    async stop() {
      await node.stop('SIGKILL');
      if (!o.keep) rmSync(dir, { recursive: true, force: true });
    },
  };
}
