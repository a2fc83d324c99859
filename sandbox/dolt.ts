/**
 * Real `dolt sql-server` processes in cluster mode on free loopback ports: node 1 bootstraps as primary at
 * epoch 1, the others as standbys; each lists every other node as a standby remote named by its node id
 * (http://127.0.0.1:<its remotesapi port>/{database}). Each server has its own DOLT_ROOT_PATH (the role and
 * epoch it assumes are persisted in its global config, so two servers must never share one).
 *
 * Users (created on the primary, replicated to the standbys with the databases):
 *  - handover: the automation (ALL PRIVILEGES: dolt_assume_cluster_role and dolt_backup need administrative rights)
 *  - app:      the writer's application user (SELECT, INSERT on the app database)
 * root@localhost (no password) is Dolt's default superuser, used by the sandbox itself.
 *
 * The binary: activities/backup/tools.ts findDolt (PATH, HANDOVER_DOLT, .tools/bin, ../shared/tools/dolt/dolt).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { DOLT_NOT_FOUND, findDolt } from '../activities/backup/tools';
import { ADDRESS_IN_USE } from '../activities/backup/scratch';
import { sleep, startOnFreePorts } from './ports';

export const DOLT_APP_DB = 'handover_app';

/** The dolt binary, or undefined (the Dolt tests then say they were skipped, and why: DOLT_NOT_FOUND). */
export function doltBinary(): string | undefined {
  return findDolt();
}
export { DOLT_NOT_FOUND };

export interface DoltNodeProcess {
  id: string;
  host: string;
  port: number;
  remotesPort: number;
  dir: string;
  home: string;
  pid?: number;
  /** Start (or restart) the server with its config; resolves once it answers SQL. */
  start(): Promise<void>;
  /** SIGTERM and wait for the exit. */
  stop(): Promise<void>;
  /** SIGKILL (a crash) and wait for the exit. */
  kill(): Promise<void>;
  running(): boolean;
}

export interface DoltNodeState {
  up: boolean;
  role?: string;
  epoch?: number;
  readOnly?: boolean;
}

export interface DoltFleet {
  cluster: string;
  binary: string;
  nodes: DoltNodeProcess[];
  baseDir: string;
  passwordEnv: string;
  handoverUser: string;
  handoverPassword: string;
  appUser: string;
  appPassword: string;
  inventoryYaml(extra?: DoltInventoryExtra): string;
  writeInventory(file?: string, extra?: DoltInventoryExtra): string;
  /** Run SQL as root on one node (optionally in a database). */
  sql<T = Record<string, unknown>[]>(node: string | number, query: string, params?: unknown[], db?: string): Promise<T>;
  state(): Promise<Record<string, DoltNodeState>>;
  /** Wait until `primary` is primary and reports every standby caught up, and every other node is a standby. */
  waitForReplication(primary: string | number, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export interface DoltInventoryExtra {
  promotion?: Record<string, 'prefer' | 'neutral' | 'never'>;
  policy?: Record<string, number | string>;
  backup?: string[];
  /** Operator hooks (inventory `hooks:`), by kind (preSwitchover, postPromotion, preFailover, ...). */
  hooks?: Partial<Record<string, string[]>>;
  /**
   * A `local` controller (engine dolt) for the rolling restart: it restarts a node exactly as the fleet starts
   * it (`env DOLT_ROOT_PATH=… dolt sql-server --config <dir>/server.yaml` in its data_dir).
   */
  controller?: boolean;
}

export interface DoltFleetOptions {
  cluster?: string;
  /** Standbys besides the primary (default 1: a primary/standby pair). */
  standbys?: number;
  baseDir?: string;
}

const rand = () => Math.random().toString(36).slice(2, 12);

function logTail(dir: string): string {
  try {
    return readFileSync(path.join(dir, 'server.log'), 'utf8').trim().split('\n').slice(-6).join('\n');
  } catch {
    return '(no server.log)';
  }
}

/** The pid the running sql-server wrote into its data directory (pid:port:uuid), if any. */
function serverInfoPid(dir: string): number | undefined {
  const info = path.join(dir, 'data', '.dolt', 'sql-server.info');
  return existsSync(info) ? Number(readFileSync(info, 'utf8').split(':')[0]) : undefined;
}

function startNode(binary: string, n: Omit<DoltNodeProcess, 'start' | 'stop' | 'kill' | 'running' | 'pid'>): DoltNodeProcess {
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const node: DoltNodeProcess = {
    ...n,
    running: () => !!child && child.exitCode === null && child.signalCode === null,
    async start() {
      if (node.running()) return;
      const log = openSync(path.join(n.dir, 'server.log'), 'a');
      child = spawn(binary, ['sql-server', '--config', path.join(n.dir, 'server.yaml')], {
        cwd: path.join(n.dir, 'data'),
        env: { ...process.env, DOLT_ROOT_PATH: n.home, HOME: n.home },
        stdio: ['ignore', log, log],
      });
      node.pid = child.pid;
      const c = child;
      exited = new Promise((r) => c.once('exit', () => r()));
      const deadline = Date.now() + 30_000;
      for (;;) {
        // Its log's last lines name a lost port ("Port N already in use.", "bind: address already in use"), so
        // startOnFreePorts starts the fleet again on new ports.
        if (!node.running()) throw new Error(`dolt sql-server ${n.id} exited at start: ${logTail(n.dir)}`);
        try {
          const conn = await mysql.createConnection({ host: n.host, port: n.port, user: 'root', connectTimeout: 1000 });
          await conn.query('SELECT 1');
          await conn.end();
          // The server that answered is this one (its sql-server.info), not another process that holds the port.
          if (node.running() && serverInfoPid(n.dir) === c.pid) return;
          throw new Error(`the server answering on ${n.port} is not ${n.id}'s`);
        } catch (e) {
          if (Date.now() > deadline) throw new Error(`dolt sql-server ${n.id} not answering on ${n.port}: ${(e as Error).message}`);
          await sleep(100);
        }
      }
    },
    async stop() {
      if (!node.running()) return;
      child!.kill('SIGTERM');
      const t = setTimeout(() => child?.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(t);
    },
    async kill() {
      if (!node.running()) return;
      child!.kill('SIGKILL');
      await exited;
    },
  };
  return node;
}

/**
 * The fleet's `dolt sql-server` processes, node i on SQL port ports[2i] and remotesapi port ports[2i+1], each
 * from an empty directory (a retry starts over: a node that started has persisted its role and epoch). Resolves
 * once every node answers; when any fails, every one is killed and the failure (a lost port first) is thrown.
 */
export async function startDoltNodes(o: { binary: string; cluster: string; baseDir: string; ports: number[] }): Promise<DoltNodeProcess[]> {
  const { binary, cluster, baseDir } = o;
  const count = o.ports.length / 2;
  const ports = Array.from({ length: count }, (_, i) => ({ port: o.ports[2 * i], remotesPort: o.ports[2 * i + 1] }));
  const nodes: DoltNodeProcess[] = [];
  for (let i = 0; i < count; i++) {
    const id = `${cluster}-${i + 1}`;
    const dir = path.join(baseDir, id);
    const home = path.join(dir, 'home');
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(path.join(dir, 'data'), { recursive: true });
    mkdirSync(path.join(home, '.dolt'), { recursive: true });
    writeFileSync(path.join(home, '.dolt', 'config_global.json'), JSON.stringify({ 'user.email': 'handover@localhost', 'user.name': 'handover', 'metrics.disabled': 'true' }));
    const remotes = ports
      .map((p, j) => ({ p, j }))
      .filter(({ j }) => j !== i)
      .map(({ p, j }) => `  - name: ${cluster}-${j + 1}\n    remote_url_template: http://127.0.0.1:${p.remotesPort}/{database}`);
    writeFileSync(
      path.join(dir, 'server.yaml'),
      [
        'log_level: info',
        `data_dir: ${path.join(dir, 'data')}`,
        'behavior:',
        '  read_only: false',
        '  autocommit: true',
        'listener:',
        '  host: 127.0.0.1',
        `  port: ${ports[i].port}`,
        'cluster:',
        '  standby_remotes:',
        ...remotes,
        `  bootstrap_role: ${i === 0 ? 'primary' : 'standby'}`,
        '  bootstrap_epoch: 1',
        '  remotesapi:',
        `    port: ${ports[i].remotesPort}`,
        '',
      ].join('\n'),
    );
    nodes.push(startNode(binary, { id, host: '127.0.0.1', port: ports[i].port, remotesPort: ports[i].remotesPort, dir, home }));
  }
  const started = await Promise.allSettled(nodes.map((n) => n.start()));
  const failures = started.flatMap((r) => (r.status === 'rejected' ? [r.reason as Error] : []));
  if (failures.length) {
    await Promise.all(nodes.map((n) => n.kill()));
    throw failures.find((e) => ADDRESS_IN_USE.test(e.message)) ?? failures[0];
  }
  return nodes;
}

export async function startDoltFleet(opts: DoltFleetOptions = {}): Promise<DoltFleet> {
  const binary = doltBinary();
  if (!binary) throw new Error(DOLT_NOT_FOUND);
  const cluster = opts.cluster ?? `dolt-${rand().slice(0, 6)}`;
  const passwordEnv = `HANDOVER_${cluster.replace(/[^A-Za-z0-9]/g, '_').toUpperCase()}_PW`;
  const handoverPassword = `h-${rand()}`;
  const appPassword = `a-${rand()}`;
  process.env[passwordEnv] = handoverPassword;
  const baseDir = opts.baseDir ?? mkdtempSync(path.join(os.tmpdir(), `handover-${cluster}-`));
  const count = 1 + (opts.standbys ?? 1);
  // Every node's SQL and remotesapi ports, picked together (each node's config names the others' remotesapi
  // ports): a start that loses any of them to another process is made again, from empty directories, on new ones.
  const nodes = await startOnFreePorts(2 * count, (ports) => startDoltNodes({ binary, cluster, baseDir, ports }));
  const byRef = (ref: string | number) => (typeof ref === 'number' ? nodes[ref] : nodes.find((n) => n.id === ref)!);

  async function sql<T>(ref: string | number, query: string, params: unknown[] = [], db?: string): Promise<T> {
    const n = byRef(ref);
    const conn = await mysql.createConnection({ host: n.host, port: n.port, user: 'root', database: db, connectTimeout: 2000, multipleStatements: false });
    try {
      const [r] = await conn.query(query, params);
      return r as T;
    } finally {
      conn.destroy();
    }
  }

  async function state(): Promise<Record<string, DoltNodeState>> {
    const out: Record<string, DoltNodeState> = {};
    await Promise.all(
      nodes.map(async (n) => {
        try {
          const [r] = await sql<{ role: string; epoch: number; ro: number }[]>(n.id, 'SELECT @@GLOBAL.dolt_cluster_role AS role, @@GLOBAL.dolt_cluster_role_epoch AS epoch, @@GLOBAL.read_only AS ro');
          out[n.id] = { up: true, role: r.role, epoch: Number(r.epoch), readOnly: Number(r.ro) === 1 };
        } catch {
          out[n.id] = { up: false };
        }
      }),
    );
    return out;
  }

  async function waitForReplication(primaryRef: string | number, timeoutMs = 30_000): Promise<void> {
    const primary = byRef(primaryRef).id;
    const deadline = Date.now() + timeoutMs;
    let why = '';
    for (;;) {
      try {
        const st = await state();
        const rows = await sql<{ lag_ms: number | null; err: string | null }[]>(primary, 'SELECT replication_lag_millis AS lag_ms, current_error AS err FROM dolt_cluster.dolt_cluster_status');
        const bad = Object.entries(st).filter(([id, s]) => !s.up || s.role !== (id === primary ? 'primary' : 'standby'));
        const behind = rows.filter((r) => r.err || r.lag_ms === null || Number(r.lag_ms) !== 0);
        if (!bad.length && !behind.length) return;
        why = `${JSON.stringify(st)} ${JSON.stringify(rows)}`;
      } catch (e) {
        why = (e as Error).message;
      }
      if (Date.now() > deadline) throw new Error(`dolt fleet ${cluster}: replication from ${primary} not caught up within ${timeoutMs} ms: ${why}`);
      await sleep(100);
    }
  }

  const fleet: DoltFleet = {
    cluster,
    binary,
    nodes,
    baseDir,
    passwordEnv,
    handoverUser: 'handover',
    handoverPassword,
    appUser: 'app',
    appPassword,
    inventoryYaml(extra: DoltInventoryExtra = {}) {
      const lines = [
        'clusters:',
        `  - name: ${cluster}`,
        '    engine: dolt',
        `    credentials: { username: handover, password: { env: ${passwordEnv} } }`,
      ];
      if (extra.policy) lines.push(`    policy: { ${Object.entries(extra.policy).map(([k, v]) => `${k}: ${v}`).join(', ')} }`);
      if (extra.backup) lines.push('    backup:', ...extra.backup.map((l) => `      ${l}`));
      if (extra.hooks) lines.push('    hooks:', ...Object.entries(extra.hooks).map(([k, v]) => `      ${k}: ${JSON.stringify(v ?? [])}`));
      if (extra.controller)
        lines.push(`    controller: { type: local, binary: ${binary}, configFile: "${baseDir}/{node}/server.yaml", launcher: "env DOLT_ROOT_PATH=${baseDir}/{node}/home HOME=${baseDir}/{node}/home" }`);
      lines.push('    nodes:');
      for (const n of nodes) lines.push(`      - { id: ${n.id}, host: ${n.host}, port: ${n.port}${extra.promotion?.[n.id] ? `, promotion: ${extra.promotion[n.id]}` : ''} }`);
      return lines.join('\n') + '\n';
    },
    writeInventory(file = path.join(baseDir, 'inventory.yaml'), extra?: DoltInventoryExtra) {
      writeFileSync(file, fleet.inventoryYaml(extra));
      return file;
    },
    sql,
    state,
    waitForReplication,
    async stop() {
      await Promise.all(nodes.map((n) => n.stop()));
      // A node a controller restarted runs detached, known by its pid file only.
      await Promise.all(
        nodes.map(async (n) => {
          const info = path.join(n.dir, 'data', '.dolt', 'sql-server.info');
          const pid = existsSync(info) ? Number(readFileSync(info, 'utf8').split(':')[0]) : 0;
          const alive = () => {
            try {
              process.kill(pid, 0);
              return true;
            } catch {
              return false;
            }
          };
          if (!pid || !alive()) return;
          process.kill(pid, 'SIGTERM');
          for (const deadline = Date.now() + 15_000; alive(); await sleep(50)) if (Date.now() > deadline) process.kill(pid, 'SIGKILL');
        }),
      );
      if (!opts.baseDir) rmSync(baseDir, { recursive: true, force: true });
    },
  };

  try {
    await sql(0, `CREATE DATABASE ${DOLT_APP_DB}`);
    await sql(0, 'CREATE TABLE acks (k VARCHAR(64) PRIMARY KEY, v BIGINT NOT NULL)', [], DOLT_APP_DB);
    await sql(0, `CREATE USER 'handover'@'%' IDENTIFIED BY '${handoverPassword}'`);
    await sql(0, `GRANT ALL PRIVILEGES ON *.* TO 'handover'@'%' WITH GRANT OPTION`);
    await sql(0, `CREATE USER 'app'@'%' IDENTIFIED BY '${appPassword}'`);
    await sql(0, `GRANT SELECT, INSERT ON ${DOLT_APP_DB}.* TO 'app'@'%'`);
    await waitForReplication(0);
    // Users and grants reach a standby by their own replication, which dolt_cluster_status does not show (its
    // rows are databases) and which backs off after a first push that found the standby not yet up: wait until
    // every node lets both accounts in (else a first probe can meet "Access denied for user 'handover'" there).
    for (const n of nodes)
      for (const [user, password] of [
        ['handover', handoverPassword],
        ['app', appPassword],
      ]) {
        const deadline = Date.now() + 30_000;
        for (;;) {
          try {
            const c = await mysql.createConnection({ host: n.host, port: n.port, user, password, connectTimeout: 2000 });
            c.destroy();
            break;
          } catch (e) {
            if (Date.now() > deadline) throw new Error(`dolt fleet ${cluster}: ${user} cannot log in to ${n.id} within 30 s (users and grants not replicated?): ${(e as Error).message}`);
            await sleep(100);
          }
        }
      }
  } catch (e) {
    await fleet.stop().catch(() => undefined);
    throw e;
  }
  return fleet;
}
