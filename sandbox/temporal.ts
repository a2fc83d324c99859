/**
 * The real Temporal dev server (`temporal server start-dev`), started by the project on loopback ports with
 * Handover's search attributes registered, and stopped with it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { Connection } from '@temporalio/client';
import { SEARCH_ATTRIBUTES } from '../core/ids';
import { temporalBinary } from './paths';
import { ADDRESS_IN_USE } from '../activities/backup/scratch';
import { freePort, portIsFree, sleep } from './ports';

export interface DevServer {
  address: string;
  uiUrl: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

export interface DevServerOptions {
  /** Preferred ports; a busy one is replaced by a free one. */
  port?: number;
  uiPort?: number;
  /** Persist state to this file (needed to restart the server and keep its runs). */
  dbFile?: string;
  log?: (line: string) => void;
  /** Server dynamic configuration (`--dynamic-config-value KEY=VALUE`), e.g. system.enableActivityEagerExecution. */
  dynamicConfig?: Record<string, string | number | boolean>;
  /** Extra environment for the server process (e.g. the Go runtime's GOGC). */
  env?: Record<string, string>;
}

export async function startDevServer(opts: DevServerOptions = {}): Promise<DevServer> {
  // Ports the kernel called free; should another process bind one first (the probe closes its socket before
  // the server binds), the server exits with "address already in use" and is started again on new ones.
  for (let attempt = 1; ; attempt++) {
    const port = attempt === 1 && opts.port && (await portIsFree(opts.port)) ? opts.port : await freePort();
    const uiPort = attempt === 1 && opts.uiPort && (await portIsFree(opts.uiPort)) ? opts.uiPort : await freePort();
    try {
      return await startDevServerOn(port, uiPort, opts);
    } catch (e) {
      if (attempt >= 5 || !ADDRESS_IN_USE.test((e as Error).message)) throw e;
    }
  }
}

async function startDevServerOn(port: number, uiPort: number, opts: DevServerOptions): Promise<DevServer> {
  const args = ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(port), '--ui-port', String(uiPort), '--log-level', 'error'];
  for (const [name, type] of Object.entries(SEARCH_ATTRIBUTES)) args.push('--search-attribute', `${name}=${type}`);
  if (opts.dbFile) args.push('--db-filename', opts.dbFile);
  for (const [k, v] of Object.entries(opts.dynamicConfig ?? {})) args.push('--dynamic-config-value', `${k}=${JSON.stringify(v)}`);
  const proc = spawn(temporalBinary(), args, { stdio: ['ignore', 'pipe', 'pipe'], detached: false, env: { ...process.env, ...opts.env } });
  let output = '';
  const collect = (b: Buffer) => {
    output = (output + b.toString()).slice(-8000);
    opts.log?.(b.toString());
  };
  proc.stdout!.on('data', collect);
  proc.stderr!.on('data', collect);
  const address = `127.0.0.1:${port}`;
  const server: DevServer = {
    address,
    uiUrl: `http://127.0.0.1:${uiPort}`,
    process: proc,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await Promise.race([exited, sleep(5000)]);
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    },
  };
  try {
    await waitForHealth(address, proc, () => output);
    // Healthy, and still running (a server that lost its port to another one exits).
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`temporal dev server exited (${proc.exitCode ?? proc.signalCode}): ${output}`);
  } catch (e) {
    await server.stop();
    throw e;
  }
  return server;
}

/** Healthy: the frontend answers and the default namespace is registered. */
export async function waitForHealth(address: string, proc?: ChildProcess, output?: () => string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  while (Date.now() < deadline) {
    if (proc && (proc.exitCode !== null || proc.signalCode !== null))
      throw new Error(`temporal dev server exited (${proc.exitCode ?? proc.signalCode}): ${output?.() ?? ''}`);
    try {
      const conn = await Connection.connect({ address, connectTimeout: 1000 });
      try {
        await conn.workflowService.describeNamespace({ namespace: 'default' });
        return;
      } finally {
        await conn.close();
      }
    } catch (e) {
      lastError = (e as Error).message;
    }
    await sleep(200);
  }
  throw new Error(`temporal dev server at ${address} not healthy after ${timeoutMs} ms: ${lastError}`);
}
