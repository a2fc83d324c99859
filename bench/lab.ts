/**
 * A lab for benchmarks and chaos runs: a fresh Temporal dev server (or an existing one), a real Redis/Valkey
 * fleet, its inventory file, a prebuilt workflow bundle, and helpers to run the worker in-process or as a
 * separate process that can be SIGKILLed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { NativeConnection } from '@temporalio/worker';
import { createActivities } from '../activities';
import { loadInventory } from '../inventory/load';
import { Client, Connection } from '@temporalio/client';
import { startDevServer, type DevServer } from '../sandbox/temporal';
import { startRedisFleet, type RedisFleet } from '../sandbox/redis';
import { startSentinels, type SentinelSet } from '../sandbox/sentinel';
import { startMariaFleet, type MariaFleet, type MariaInventoryExtra } from '../sandbox/mariadb';
import { startDoltFleet, type DoltFleet, type DoltInventoryExtra } from '../sandbox/dolt';
import { startDoltRemoteFleet, type DoltRemoteFleet } from '../sandbox/dolt-remote';
import { startRedisClusterFleet, type RedisClusterFleet } from '../sandbox/redis-cluster';
import type { RedisFlavor } from '../sandbox/paths';
import { ROOT } from '../sandbox/paths';
import { createHandoverWorker } from '../worker/worker';
import { sharedWorkflowBundle, TEST_BUNDLE_ENV } from '../sandbox/bundle';

export interface Lab {
  address: string;
  server?: DevServer;
  fleet: RedisFleet;
  /** Three real redis-sentinel processes when the lab was started with `sentinels: true`. */
  sentinels?: SentinelSet;
  inventory: string;
  bundlePath: string;
  client: Client;
  taskQueue: string;
  close(): Promise<void>;
}

export async function startLab(o: { flavor?: RedisFlavor; cluster: string; policy?: Record<string, number | string>; address?: string; sentinels?: boolean; extraConfig?: string[]; log?: (m: string) => void }): Promise<Lab> {
  const log = o.log ?? ((m: string) => process.stderr.write(m + '\n'));
  const server = o.address ? undefined : await startDevServer();
  const address = o.address ?? server!.address;
  log(`[lab] temporal at ${address}${server ? ` (UI ${server.uiUrl})` : ''}`);
  const fleet = await startRedisFleet({ flavor: o.flavor ?? 'redis', cluster: o.cluster, extraConfig: o.extraConfig });
  const sentinels = o.sentinels ? await startSentinels(fleet) : undefined;
  const inventory = fleet.writeInventory(undefined, { policy: o.policy, sentinelBlock: sentinels?.inventoryBlock() });
  log(`[lab] ${fleet.flavor} fleet ${fleet.cluster}: ${fleet.nodes.map((n) => `${n.id}@${n.port}`).join(' ')}`);
  const bundlePath = await sharedWorkflowBundle();
  const connection = await Connection.connect({ address });
  const client = new Client({ connection });
  return {
    address,
    server,
    fleet,
    sentinels,
    inventory,
    bundlePath,
    client,
    taskQueue: `lab-${o.cluster}`,
    async close() {
      await connection.close();
      await sentinels?.stop();
      await fleet.stop();
      await server?.stop();
    },
  };
}

/** What a worker needs from a lab (Redis or MariaDB). */
export type WorkerLab = Pick<Lab, 'address' | 'inventory' | 'bundlePath' | 'taskQueue'>;

/** A lab on a MariaDB fleet (1 primary + 2 GTID replicas, the least-privilege automation user). */
export interface MysqlLab extends Omit<Lab, 'fleet'> {
  fleet: MariaFleet;
}

/**
 * What the MariaDB and Dolt labs share around their fleet: a dev server (unless `address` is given), the fleet
 * and its inventory, the prebuilt workflow bundle, a client, the task queue `lab-<cluster>`.
 */
async function labAround<F extends { cluster: string; baseDir: string; nodes: { id: string; port: number }[]; stop(): Promise<unknown> }>(
  o: { cluster: string; address?: string; log?: (m: string) => void },
  engine: string,
  startFleet: () => Promise<F>,
  writeInventory: (fleet: F) => string,
): Promise<Omit<Lab, 'fleet'> & { fleet: F }> {
  const log = o.log ?? ((m: string) => process.stderr.write(m + '\n'));
  const server = o.address ? undefined : await startDevServer();
  const address = o.address ?? server!.address;
  log(`[lab] temporal at ${address}${server ? ` (UI ${server.uiUrl})` : ''}`);
  const fleet = await startFleet();
  const inventory = writeInventory(fleet);
  log(`[lab] ${engine} fleet ${fleet.cluster}: ${fleet.nodes.map((n) => `${n.id}@${n.port}`).join(' ')}`);
  const bundlePath = await sharedWorkflowBundle();
  const connection = await Connection.connect({ address });
  const client = new Client({ connection });
  return {
    address,
    server,
    fleet,
    inventory,
    bundlePath,
    client,
    taskQueue: `lab-${o.cluster}`,
    async close() {
      await connection.close();
      await fleet.stop();
      await server?.stop();
    },
  };
}

export function startMysqlLab(o: { cluster: string; inventory?: MariaInventoryExtra; address?: string; replicas?: number; log?: (m: string) => void }): Promise<MysqlLab> {
  return labAround(o, 'mariadb', () => startMariaFleet({ cluster: o.cluster, replicas: o.replicas }), (f) => f.writeInventory(undefined, o.inventory));
}

/** A lab on a Dolt sql-server cluster (a primary/standby pair in cluster mode, sandbox/dolt.ts). */
export interface DoltLab extends Omit<Lab, 'fleet'> {
  fleet: DoltFleet;
}

export function startDoltLab(o: { cluster: string; inventory?: DoltInventoryExtra; standbys?: number; address?: string; log?: (m: string) => void }): Promise<DoltLab> {
  return labAround(o, 'dolt', () => startDoltFleet({ cluster: o.cluster, standbys: o.standbys }), (f) => f.writeInventory(undefined, o.inventory));
}

/** A lab on Dolt read replicas through a file:// remote (a primary and two replicas, sandbox/dolt-remote.ts). */
export interface DoltRemoteLab extends Omit<Lab, 'fleet'> {
  fleet: DoltRemoteFleet;
}

export function startDoltRemoteLab(o: { cluster: string; policy?: Record<string, number>; hooks?: Partial<Record<string, string[]>>; address?: string; log?: (m: string) => void }): Promise<DoltRemoteLab> {
  return labAround(o, 'dolt (remote-replicas)', () => startDoltRemoteFleet({ cluster: o.cluster }), (f) => f.writeInventory(undefined, { policy: o.policy, hooks: o.hooks }));
}

/** A lab on a Redis Cluster (3 shards x 1 primary + 1 replica, cluster-enabled processes, sandbox/redis-cluster.ts). */
export interface RedisClusterLab extends Omit<Lab, 'fleet'> {
  fleet: RedisClusterFleet;
}

export function startRedisClusterLab(o: { cluster: string; flavor?: RedisFlavor; policy?: Record<string, number | string>; address?: string; log?: (m: string) => void }): Promise<RedisClusterLab> {
  return labAround(o, `${o.flavor ?? 'redis'} cluster`, () => startRedisClusterFleet({ cluster: o.cluster, flavor: o.flavor }), (f) => f.writeInventory(undefined, { policy: o.policy }));
}

/** The Handover worker in this process, on the lab's task queue and prebuilt bundle. */
export async function startLabWorker(lab: WorkerLab): Promise<{ stop(): Promise<void> }> {
  const connection = await NativeConnection.connect({ address: lab.address });
  const worker = await createHandoverWorker({
    connection,
    taskQueue: lab.taskQueue,
    workflowBundlePath: lab.bundlePath,
    activities: createActivities({ inventory: () => loadInventory(lab.inventory) }),
  });
  const running = worker.run();
  return {
    async stop() {
      worker.shutdown();
      await running;
      await connection.close();
    },
  };
}

export interface WorkerProcess {
  proc: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(): Promise<void>;
}

/** The real worker (worker/main.ts) as a separate process, optionally with a failpoint armed. */
export function spawnWorker(lab: WorkerLab, failpoint?: string, log?: (m: string) => void, onceToken?: string): WorkerProcess {
  return spawnWorkerProcess(
    {
      HANDOVER_TEMPORAL_ADDRESS: lab.address,
      HANDOVER_INVENTORY: lab.inventory,
      HANDOVER_WORKFLOW_BUNDLE: lab.bundlePath,
      HANDOVER_TASK_QUEUE: lab.taskQueue,
      HANDOVER_FAILPOINT: failpoint,
      HANDOVER_FAILPOINT_ONCE: onceToken,
    },
    (text, stream) => {
      if (log && stream === 'stderr' && /failpoint|\[worker\]|Error/.test(text)) log(text.trimEnd());
    },
  );
}

/**
 * worker/main.ts as a child process with `env` over this process's environment (an undefined value removes
 * the variable); `onOutput` sees everything it prints; `wrap` runs it on a lab host (sandbox/netns.ts).
 */
export function spawnWorkerProcess(env: Record<string, string | undefined>, onOutput?: (text: string, stream: 'stdout' | 'stderr') => void, wrap: string[] = []): WorkerProcess {
  const full: NodeJS.ProcessEnv = { ...process.env };
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete full[k];
    else full[k] = v;
  }
  // The run's shared workflow bundle (sandbox/bundle.ts) when the caller names none: no webpack at start.
  if (!('HANDOVER_WORKFLOW_BUNDLE' in env) && full[TEST_BUNDLE_ENV]) full.HANDOVER_WORKFLOW_BUNDLE = full[TEST_BUNDLE_ENV];
  // One process (node with the tsx loader), so the failpoint's SIGKILL is the exit signal the harness sees.
  // `wrap`: a prefix that execs (a lab host's `ip netns exec <ns>`), so the pid and the exit signal stay the worker's.
  const argv = [...wrap, process.execPath, '--import', 'tsx', path.join(ROOT, 'worker', 'main.ts')];
  const proc = spawn(argv[0], argv.slice(1), { env: full, cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout!.on('data', (b: Buffer) => onOutput?.(b.toString(), 'stdout'));
  proc.stderr!.on('data', (b: Buffer) => onOutput?.(b.toString(), 'stderr'));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  return {
    proc,
    exited,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 8000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Parse `name [--json] [--key value]` style arguments. */
export function parseArgs(argv: string[]): { name?: string; json: boolean; opts: Record<string, string> } {
  const opts: Record<string, string> = {};
  let name: string | undefined;
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--json') json = true;
    else if (a.startsWith('--')) opts[a.slice(2)] = argv[++i] ?? '';
    else if (!name) name = a;
  }
  return { name, json, opts };
}

export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return Math.round(s[i] * 10) / 10;
}
