/**
 * mariadbd processes from a copied, initialised datadir: the scratch servers that backup verification and
 * restore load a dump into, and (through sandbox/mariadb.ts) the test fleets.
 *
 * Fast start: one datadir is initialised with mariadb-install-db (about half a second) per machine and server
 * version, then copied per server. Every server starts with read_only=ON; root is reachable over its unix socket.
 */
import { execFile, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import mysql from 'mysql2/promise';
import { isAlive, scratchHost, sleep, startOnFreePort } from './scratch';
import { tool } from './tools';

const execFileP = promisify(execFile);

export interface MariaNodeProcess {
  id: string;
  host: string;
  port: number;
  serverId: number;
  dir: string;
  socket: string;
  /** Start it; `extraArgs` (e.g. --read-only=OFF, a misconfigured node) apply to this start only. */
  start(extraArgs?: string[]): Promise<void>;
  /** SIGTERM (clean shutdown, waits), SIGKILL (waits), SIGSTOP/SIGCONT (returns at once). */
  stop(signal?: NodeJS.Signals): Promise<void>;
  pid(): number | undefined;
  /** A root connection over the node's unix socket (the caller ends it). */
  root(): Promise<mysql.Connection>;
  /** Client TLS (contents) for a node that requires it (sandbox fleets with `tls: true`); undefined: plaintext. */
  tls?: { ca: Buffer; cert?: Buffer; key?: Buffer };
}

/** The mariadbd binary (HANDOVER_MARIADBD, PATH, /usr/sbin, .tools/bin). */
export const mariadbdBinary = (env: NodeJS.ProcessEnv = process.env) => tool('mariadbd', env);

/** Small-footprint server options shared by the template and every server. */
const SMALL = ['--innodb-buffer-pool-size=16M', '--innodb-log-file-size=4M', '--skip-performance-schema', '--innodb-log-buffer-size=1M', '--key-buffer-size=1M'];

/** One initialised datadir per machine and server version, copied for each server (mariadb-install-db once). */
export async function templateDir(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const { stdout } = await execFileP(mariadbdBinary(env), ['--version']);
  const version = /Ver (\S+)/.exec(stdout)?.[1] ?? 'unknown';
  const dir = path.join(os.tmpdir(), `handover-mariadb-template-${version}`);
  if (existsSync(path.join(dir, 'mysql', 'user.frm')) || existsSync(path.join(dir, 'mysql', 'global_priv.frm'))) return dir;
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'handover-mariadb-template-build-'));
  const data = path.join(tmp, 'data');
  await execFileP(tool('mariadb-install-db', env), ['--no-defaults', '--user=root', `--datadir=${data}`, '--auth-root-authentication-method=normal', '--skip-test-db', '--skip-log-bin', ...SMALL]);
  try {
    renameSync(data, dir);
  } catch {
    /* another process built it first */
  }
  rmSync(tmp, { recursive: true, force: true });
  return dir;
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-8).join('\n');
  } catch {
    return '(no error log)';
  }
}

/**
 * A unix socket path may hold at most 107 bytes: `<dir>/mysqld.sock` when that fits, else a short private
 * directory of its own (a worker whose TMPDIR is long would otherwise fail every MariaDB verification).
 */
export function socketPathFor(dir: string): { socket: string; ownDir?: string } {
  const inDir = path.join(dir, 'mysqld.sock');
  if (Buffer.byteLength(inDir) <= 100) return { socket: inDir };
  const base = Buffer.byteLength(os.tmpdir()) <= 60 ? os.tmpdir() : '/tmp';
  const ownDir = mkdtempSync(path.join(base, 'hm-'));
  return { socket: path.join(ownDir, 'mysqld.sock'), ownDir };
}

/** `wrap`: a command prefix the server runs under (the test fleet's `ip netns exec <ns>`; it execs, same pid). `args`: extra server options (e.g. TLS). */
export function mariaNode(o: { id: string; port: number; serverId: number; dir: string; host?: string; socket?: string; env?: NodeJS.ProcessEnv; wrap?: string[]; args?: string[] }): MariaNodeProcess {
  const host = o.host ?? '127.0.0.1';
  const binary = mariadbdBinary(o.env);
  const datadir = path.join(o.dir, 'data');
  const socket = o.socket ?? path.join(o.dir, 'mysqld.sock');
  const pidFile = path.join(o.dir, 'mysqld.pid');
  const errorLog = path.join(o.dir, 'error.log');
  const args = [
    '--no-defaults',
    '--user=root',
    `--datadir=${datadir}`,
    `--socket=${socket}`,
    `--port=${o.port}`,
    `--bind-address=${host}`,
    `--pid-file=${pidFile}`,
    `--log-error=${errorLog}`,
    `--server-id=${o.serverId}`,
    `--log-bin=${path.join(datadir, 'binlog')}`,
    '--binlog-format=ROW',
    '--gtid-strict-mode=ON',
    '--log-slave-updates=ON',
    '--skip-name-resolve',
    '--read-only=ON',
    '--slave-net-timeout=5',
    '--event-scheduler=ON',
    '--max-connections=200',
    ...SMALL,
    ...(o.args ?? []),
  ];
  writeFileSync(path.join(o.dir, 'args'), args.join('\n') + '\n');
  // The same options as an option file, for a node controller (rolling restart) to start it from:
  // `mariadbd --defaults-file=<dir>/my.cnf` (the controller adds or replaces variables in it).
  writeFileSync(path.join(o.dir, 'my.cnf'), ['[mariadbd]', ...args.filter((a) => a !== '--no-defaults').map((a) => a.replace(/^--/, ''))].join('\n') + '\n');
  const pid = (): number | undefined => {
    try {
      const p = Number(readFileSync(pidFile, 'utf8').trim());
      return p > 0 && isAlive(p) ? p : undefined;
    } catch {
      return undefined;
    }
  };
  const root = () => mysql.createConnection({ socketPath: socket, user: 'root', password: '', multipleStatements: false, connectTimeout: 2000 });
  const node: MariaNodeProcess = {
    id: o.id,
    host,
    port: o.port,
    serverId: o.serverId,
    dir: o.dir,
    socket,
    async start(extraArgs: string[] = []) {
      if (pid() !== undefined) return;
      const argv = [...(o.wrap ?? []), binary, ...args, ...extraArgs];
      const proc = spawn(argv[0], argv.slice(1), { stdio: 'ignore', detached: true });
      proc.unref();
      const deadline = Date.now() + 30_000;
      for (;;) {
        if (proc.exitCode !== null) throw new Error(`${o.id} exited with ${proc.exitCode}: ${tail(errorLog)}`);
        try {
          const c = await root();
          await c.end();
          return;
        } catch {
          /* not yet */
        }
        if (Date.now() > deadline) throw new Error(`${o.id} did not accept connections within 30 s: ${tail(errorLog)}`);
        await sleep(30);
      }
    },
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      const p = pid();
      if (p === undefined) return;
      process.kill(p, signal);
      if (signal === 'SIGSTOP' || signal === 'SIGCONT') return;
      const deadline = Date.now() + 20_000;
      while (isAlive(p)) {
        if (Date.now() > deadline) process.kill(p, 'SIGKILL');
        await sleep(20);
      }
    },
    pid,
    root,
  };
  return node;
}

export interface ScratchMaria {
  host: string;
  port: number;
  socket: string;
  dir: string;
  root(): Promise<mysql.Connection>;
  stop(): Promise<void>;
}

/**
 * A scratch mariadbd on a free port of the scratch host (loopback unless HANDOVER_SCRATCH_HOST) from the
 * initialised template datadir; root over its socket only. A start that loses its port to another process is
 * retried on a new one with a fresh copy of the datadir.
 */
export async function startScratchMaria(id: string, o: { keep?: boolean; env?: NodeJS.ProcessEnv } = {}): Promise<ScratchMaria> {
  const template = await templateDir(o.env);
  const dir = mkdtempSync(path.join(os.tmpdir(), `handover-restore-${id}-`));
  const host = scratchHost(o.env);
  const sock = socketPathFor(dir);
  const cleanup = () => {
    rmSync(dir, { recursive: true, force: true });
    if (sock.ownDir) rmSync(sock.ownDir, { recursive: true, force: true });
  };
  let node: MariaNodeProcess;
  try {
    node = await startOnFreePort(
      async (port) => {
        rmSync(path.join(dir, 'data'), { recursive: true, force: true });
        mkdirSync(dir, { recursive: true });
        cpSync(template, path.join(dir, 'data'), { recursive: true });
        rmSync(path.join(dir, 'error.log'), { force: true });
        const n = mariaNode({ id: `scratch-${id}`, port, serverId: 4000 + Math.floor(Math.random() * 1000), dir, host, socket: sock.socket, env: o.env });
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
    cleanup();
    throw e;
  }
  return {
    host,
    port: node.port,
    socket: node.socket,
    dir,
    root: () => node.root(),
    async stop() {
      await node.stop('SIGKILL');
      if (!o.keep) cleanup();
    },
  };
}
