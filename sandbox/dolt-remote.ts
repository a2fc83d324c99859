/**
 * Real `dolt sql-server` processes as read replicas through a file:// remote (topology: remote-replicas): node 1
 * is the primary (writable, @@dolt_replicate_to_remote = origin), the others read-only read replicas
 * (@@dolt_read_replica_remote = origin), all with @@dolt_replicate_all_heads = 1 and behavior
 * dolt_transaction_commit: true (every SQL COMMIT is a Dolt commit, so every transaction replicates). Each node
 * has its own sql-server config (YAML, with data_dir) and DOLT_ROOT_PATH, and runs detached exactly as the
 * inventory's `local` controller (engine dolt) restarts it: `env DOLT_ROOT_PATH=… dolt sql-server --config …`
 * in its data_dir, found again by the pid in <data_dir>/.dolt/sql-server.info.
 *
 * Users: created on the primary; its privileges file is copied to each replica before it first starts
 * (privileges are per server in remote-based replication). handover (ALL), app (SELECT, INSERT on the app
 * database), root@localhost without a password for the sandbox itself.
 */
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { DOLT_NOT_FOUND, findDolt } from '../activities/backup/tools';
import { sleep, startOnFreePort } from './ports';

export const DOLT_REMOTE_APP_DB = 'handover_app';
export const DOLT_REMOTE_NAME = 'origin';

export interface DoltRemoteNode {
  id: string;
  host: string;
  port: number;
  dir: string;
  dataDir: string;
  home: string;
  configFile: string;
}

export interface DoltRemoteFleet {
  cluster: string;
  binary: string;
  nodes: DoltRemoteNode[];
  baseDir: string;
  remoteDir: string;
  passwordEnv: string;
  appUser: string;
  appPassword: string;
  /** The inventory; `hooks`: operator hooks by kind (preSwitchover, postPromotion, ...). */
  writeInventory(file?: string, extra?: { policy?: Record<string, number>; hooks?: Partial<Record<string, string[]>> }): string;
  sql<T = Record<string, unknown>[]>(node: string | number, query: string, params?: unknown[], db?: string): Promise<T>;
  /** Each node's read_only and replication variables (undefined when it does not answer). */
  state(): Promise<Record<string, { readOnly: boolean; push: string; pull: string } | undefined>>;
  /** SIGTERM every node (by its pid file) and remove the files. */
  stop(): Promise<void>;
}

const rand = () => Math.random().toString(36).slice(2, 12);
const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

function yamlFor(n: DoltRemoteNode, role: 'primary' | 'replica', remoteDir: string): string {
  return [
    'log_level: info',
    `data_dir: ${n.dataDir}`,
    'behavior:',
    `  read_only: ${role === 'replica'}`,
    '  autocommit: true',
    '  dolt_transaction_commit: true',
    'listener:',
    `  host: ${n.host}`,
    `  port: ${n.port}`,
    'system_variables:',
    '  dolt_replicate_all_heads: 1',
    `  dolt_replication_remote_url_template: file://${remoteDir}/{database}`,
    `  dolt_replicate_to_remote: "${role === 'primary' ? DOLT_REMOTE_NAME : ''}"`,
    `  dolt_read_replica_remote: "${role === 'replica' ? DOLT_REMOTE_NAME : ''}"`,
    '',
  ].join('\n');
}

const launcher = (baseDir: string) => `env DOLT_ROOT_PATH=${baseDir}/{node}/home HOME=${baseDir}/{node}/home`;

function pidOf(n: DoltRemoteNode): number | undefined {
  const info = path.join(n.dataDir, '.dolt', 'sql-server.info');
  return existsSync(info) ? Number(readFileSync(info, 'utf8').split(':')[0]) : undefined;
}

/**
 * Start `n` detached (as the controller does) and wait until it answers SQL. A server that exits at start throws
 * its log's last lines, so startOnFreePort starts it again on a new port when it lost its port ("Port N
 * already in use."); a server answering on the port counts only when it is this one (its sql-server.info pid).
 */
async function startNode(binary: string, n: DoltRemoteNode): Promise<void> {
  const logFile = path.join(n.dir, 'server.log');
  const log = openSync(logFile, 'a');
  const child = spawn('env', [`DOLT_ROOT_PATH=${n.home}`, `HOME=${n.home}`, binary, 'sql-server', '--config', n.configFile], { cwd: n.dataDir, detached: true, stdio: ['ignore', log, log] });
  closeSync(log);
  let exited = false;
  child.once('exit', () => (exited = true));
  child.unref();
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited) throw new Error(`dolt sql-server ${n.id} exited at start: ${readFileSync(logFile, 'utf8').trim().split('\n').slice(-6).join('\n')}`);
    try {
      const conn = await mysql.createConnection({ host: n.host, port: n.port, user: 'root', connectTimeout: 1000 });
      await conn.query('SELECT 1');
      await conn.end();
      if (!exited && pidOf(n) === child.pid) return;
      throw new Error(`the server answering on ${n.port} is not ${n.id}'s`);
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`dolt sql-server ${n.id} not answering on ${n.port}: ${(e as Error).message}`);
      await sleep(100);
    }
  }
}

/** Write `n`'s config on a free port and start it there, again on a new port when another process took it first. */
async function startOnItsPort(binary: string, n: DoltRemoteNode, role: 'primary' | 'replica', remoteDir: string): Promise<void> {
  await startOnFreePort(async (port) => {
    n.port = port;
    rmSync(path.join(n.dataDir, '.dolt', 'sql-server.info'), { force: true }); // left by a start that lost its port
    writeFileSync(n.configFile, yamlFor(n, role, remoteDir));
    await startNode(binary, n);
  });
}

async function stopNode(n: DoltRemoteNode): Promise<void> {
  const pid = pidOf(n);
  if (!pid || !isAlive(pid)) return;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 15_000;
  while (isAlive(pid)) {
    if (Date.now() > deadline) process.kill(pid, 'SIGKILL');
    await sleep(50);
  }
}

export async function startDoltRemoteFleet(opts: { cluster?: string; replicas?: number } = {}): Promise<DoltRemoteFleet> {
  const binary = findDolt();
  if (!binary) throw new Error(DOLT_NOT_FOUND);
  const cluster = opts.cluster ?? `doltr-${rand().slice(0, 6)}`;
  const passwordEnv = `HANDOVER_${cluster.replace(/[^A-Za-z0-9]/g, '_').toUpperCase()}_PW`;
  const handoverPassword = `h-${rand()}`;
  const appPassword = `a-${rand()}`;
  process.env[passwordEnv] = handoverPassword;
  const baseDir = mkdtempSync(path.join(os.tmpdir(), `handover-${cluster}-`));
  const remoteDir = path.join(baseDir, 'remote');
  mkdirSync(remoteDir);
  const nodes: DoltRemoteNode[] = [];
  for (let i = 0; i < 1 + (opts.replicas ?? 2); i++) {
    const id = `${cluster}-${i + 1}`;
    const dir = path.join(baseDir, id);
    // Its port is chosen when it starts (startOnItsPort).
    const n: DoltRemoteNode = { id, host: '127.0.0.1', port: 0, dir, dataDir: path.join(dir, 'data'), home: path.join(dir, 'home'), configFile: path.join(dir, 'server.yaml') };
    mkdirSync(n.dataDir, { recursive: true });
    mkdirSync(path.join(n.home, '.dolt'), { recursive: true });
    writeFileSync(path.join(n.home, '.dolt', 'config_global.json'), JSON.stringify({ 'user.email': 'handover@localhost', 'user.name': 'handover', 'metrics.disabled': 'true' }));
    nodes.push(n);
  }
  const byRef = (ref: string | number) => (typeof ref === 'number' ? nodes[ref] : nodes.find((n) => n.id === ref)!);

  async function sql<T>(ref: string | number, query: string, params: unknown[] = [], db?: string): Promise<T> {
    const n = byRef(ref);
    const conn = await mysql.createConnection({ host: n.host, port: n.port, user: 'root', database: db, connectTimeout: 2000 });
    try {
      const [r] = await conn.query(query, params);
      return r as T;
    } finally {
      conn.destroy();
    }
  }

  const fleet: DoltRemoteFleet = {
    cluster,
    binary,
    nodes,
    baseDir,
    remoteDir,
    passwordEnv,
    appUser: 'app',
    appPassword,
    writeInventory(file = path.join(baseDir, 'inventory.yaml'), extra = {}) {
      const lines = [
        'clusters:',
        `  - name: ${cluster}`,
        '    engine: dolt',
        '    topology: remote-replicas',
        `    replicationRemote: ${DOLT_REMOTE_NAME}`,
        `    credentials: { username: handover, password: { env: ${passwordEnv} } }`,
        `    controller: { type: local, binary: ${binary}, configFile: "${baseDir}/{node}/server.yaml", launcher: "${launcher(baseDir)}" }`,
      ];
      if (extra.policy) lines.push(`    policy: { ${Object.entries(extra.policy).map(([k, v]) => `${k}: ${v}`).join(', ')} }`);
      if (extra.hooks) lines.push('    hooks:', ...Object.entries(extra.hooks).map(([k, v]) => `      ${k}: ${JSON.stringify(v ?? [])}`));
      lines.push('    nodes:');
      for (const n of nodes) lines.push(`      - { id: ${n.id}, host: ${n.host}, port: ${n.port} }`);
      writeFileSync(file, lines.join('\n') + '\n');
      return file;
    },
    sql,
    async state() {
      const out: Record<string, { readOnly: boolean; push: string; pull: string } | undefined> = {};
      await Promise.all(
        nodes.map(async (n) => {
          try {
            const [r] = await sql<{ ro: number; push: string; pull: string }[]>(n.id, 'SELECT @@GLOBAL.read_only AS ro, @@GLOBAL.dolt_replicate_to_remote AS push, @@GLOBAL.dolt_read_replica_remote AS pull');
            out[n.id] = { readOnly: Number(r.ro) === 1, push: String(r.push ?? ''), pull: String(r.pull ?? '') };
          } catch {
            out[n.id] = undefined;
          }
        }),
      );
      return out;
    },
    async stop() {
      await Promise.all(nodes.map(stopNode));
      rmSync(baseDir, { recursive: true, force: true });
    },
  };

  try {
    const [p, ...replicas] = nodes;
    await startOnItsPort(binary, p, 'primary', remoteDir);
    await sql(0, `CREATE DATABASE ${DOLT_REMOTE_APP_DB}`);
    await sql(0, 'CREATE TABLE acks (k VARCHAR(64) PRIMARY KEY, v BIGINT NOT NULL)', [], DOLT_REMOTE_APP_DB);
    await sql(0, `CREATE USER 'handover'@'%' IDENTIFIED BY '${handoverPassword}'`);
    await sql(0, `GRANT ALL PRIVILEGES ON *.* TO 'handover'@'%' WITH GRANT OPTION`);
    await sql(0, `CREATE USER 'app'@'%' IDENTIFIED BY '${appPassword}'`);
    await sql(0, `GRANT SELECT, INSERT ON ${DOLT_REMOTE_APP_DB}.* TO 'app'@'%'`);
    const remotes = await sql<{ name: string }[]>(0, 'SELECT name FROM dolt_remotes', [], DOLT_REMOTE_APP_DB);
    if (!remotes.some((r) => r.name === DOLT_REMOTE_NAME)) throw new Error(`${p.id}: the database has no remote ${DOLT_REMOTE_NAME} (dolt_replication_remote_url_template)`);
    await sql(0, 'CALL dolt_push(?, ?)', [DOLT_REMOTE_NAME, 'main'], DOLT_REMOTE_APP_DB);
    const privileges = path.join(p.dataDir, '.doltcfg', 'privileges.db');
    for (const r of replicas) {
      execFileSync(binary, ['clone', `file://${remoteDir}/${DOLT_REMOTE_APP_DB}`, DOLT_REMOTE_APP_DB], { cwd: r.dataDir, env: { ...process.env, DOLT_ROOT_PATH: r.home, HOME: r.home }, stdio: 'ignore' });
      mkdirSync(path.join(r.dataDir, '.doltcfg'), { recursive: true });
      copyFileSync(privileges, path.join(r.dataDir, '.doltcfg', 'privileges.db'));
      await startOnItsPort(binary, r, 'replica', remoteDir);
    }
  } catch (e) {
    await fleet.stop().catch(() => undefined);
    throw e;
  }
  return fleet;
}
