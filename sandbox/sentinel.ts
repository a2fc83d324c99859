/**
 * Three real redis-sentinel processes on loopback watching a replication fleet (sandbox/redis.ts), with a
 * quorum of 2. Detached and found by pidfile, like the data nodes. With `hosts` (sandbox/netns.ts) Sentinel i
 * binds hosts[i].address and runs under hosts[i].wrap (`ip netns exec <ns>`), beside a data node.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import Redis from 'ioredis';
import { sleep, startOnFreePort } from './ports';
import { stopByPidfile, type RedisFleet } from './redis';

export interface SentinelProcess {
  id: string;
  host: string;
  port: number;
  dir: string;
  start(): Promise<void>;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export interface SentinelSet {
  masterName: string;
  sentinels: SentinelProcess[];
  /** YAML lines for the inventory's `sentinel:` block (indented for a cluster entry). */
  inventoryBlock(): string;
  /** The master address every sentinel reports, or undefined while they disagree. */
  agreedMaster(): Promise<string | undefined>;
  stop(): Promise<void>;
}

export async function startSentinels(fleet: RedisFleet, o: { count?: number; downAfterMs?: number; masterName?: string; hosts?: { address: string; wrap: string[] }[] } = {}): Promise<SentinelSet> {
  const masterName = o.masterName ?? fleet.cluster;
  const primary = (await fleet.primary())!;
  const sentinelProcess = (i: number, port: number): SentinelProcess => {
    const id = `${fleet.cluster}-sentinel-${i + 1}`;
    const dir = path.join(fleet.baseDir, id);
    mkdirSync(dir, { recursive: true });
    const conf = path.join(dir, 'sentinel.conf');
    const log = path.join(dir, 'sentinel.log');
    const host = o.hosts?.[i]?.address ?? '127.0.0.1';
    const wrap = o.hosts?.[i]?.wrap ?? [];
    writeFileSync(
      conf,
      [
        `port ${port}`,
        `bind ${host}`,
        // Announced by address: peers on other hosts reach it there (sentinel.conf keeps it across restarts).
        ...(o.hosts ? [`sentinel announce-ip ${host}`] : []),
        'daemonize no',
        `pidfile ${path.join(dir, 'redis.pid')}`,
        `logfile ${log}`,
        `dir ${dir}`,
        'sentinel resolve-hostnames no',
        `sentinel monitor ${masterName} ${primary.host} ${primary.port} 2`,
        `sentinel auth-pass ${masterName} ${fleet.password}`,
        `sentinel down-after-milliseconds ${masterName} ${o.downAfterMs ?? 2000}`,
        `sentinel failover-timeout ${masterName} 20000`,
        `sentinel parallel-syncs ${masterName} 1`,
      ].join('\n') + '\n',
      { mode: 0o600 },
    );
    const logTail = () => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').slice(-5).join('\n') : '');
    return {
      id,
      host,
      port,
      dir,
      async start() {
        const argv = [...wrap, 'redis-sentinel', conf];
        const p = spawn(argv[0], argv.slice(1), { stdio: 'ignore', detached: true });
        p.unref();
        const deadline = Date.now() + 10_000;
        for (;;) {
          // Ours: the process that answers on the port is the one just spawned (INFO's process_id), not
          // another server that took the port first; this one then exits ("Address already in use").
          if (p.exitCode !== null) throw new Error(`${id} exited with ${p.exitCode}: ${logTail()}`);
          const c = new Redis({ host, port, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
          c.on('error', () => undefined);
          try {
            await c.connect();
            if (Number(/process_id:(\d+)/.exec(await c.info('server'))?.[1]) === p.pid) return;
          } catch {
            // not answering yet
          } finally {
            c.disconnect();
          }
          if (Date.now() > deadline) throw new Error(`${id} did not start: ${logTail()}`);
          await sleep(50);
        }
      },
      stop: (signal: NodeJS.Signals = 'SIGTERM') => stopByPidfile(dir, signal),
    };
  };
  // Each sentinel on a port the kernel called free, started again on a new one should another process bind it
  // first (the probe closes its socket before the sentinel binds).
  const sentinels = await Promise.all(
    Array.from({ length: o.count ?? 3 }, (_, i) =>
      startOnFreePort(async (port) => {
        const s = sentinelProcess(i, port);
        try {
          await s.start();
        } catch (e) {
          await s.stop('SIGKILL').catch(() => undefined);
          throw e;
        }
        return s;
      }),
    ),
  );
  const set: SentinelSet = {
    masterName,
    sentinels,
    inventoryBlock() {
      return ['    sentinel:', `      masterName: ${masterName}`, '      nodes:', ...sentinels.map((s) => `        - { id: ${s.id}, host: ${s.host}, port: ${s.port} }`)].join('\n') + '\n';
    },
    async agreedMaster() {
      const seen = await Promise.all(
        sentinels.map(async (s) => {
          const c = new Redis({ host: s.host, port: s.port, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
          c.on('error', () => undefined);
          try {
            await c.connect();
            const r = (await c.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', masterName)) as string[];
            return `${r[0]}:${r[1]}`;
          } catch {
            return undefined;
          } finally {
            c.disconnect();
          }
        }),
      );
      return seen.every((x) => x && x === seen[0]) ? seen[0] : undefined;
    },
    async stop() {
      await Promise.all(sentinels.map((s) => s.stop('SIGKILL')));
    },
  };
  // Ready: every sentinel knows the replicas and the other sentinels.
  const deadline = Date.now() + 30_000;
  for (;;) {
    let ok = true;
    for (const s of sentinels) {
      const c = new Redis({ host: s.host, port: s.port, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
      c.on('error', () => undefined);
      try {
        await c.connect();
        const m = (await c.call('SENTINEL', 'MASTER', masterName)) as string[];
        const f = Object.fromEntries(m.flatMap((v, i) => (i % 2 === 0 ? [[v, m[i + 1]]] : [])));
        if (Number(f['num-slaves']) !== fleet.nodes.length - 1 || Number(f['num-other-sentinels']) !== sentinels.length - 1) ok = false;
      } catch {
        ok = false;
      } finally {
        c.disconnect();
      }
    }
    if (ok) return set;
    if (Date.now() > deadline) throw new Error('sentinels did not discover the fleet and each other within 30 s');
    await sleep(200);
  }
}
