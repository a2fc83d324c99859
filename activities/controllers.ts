/**
 * Node controllers: how a node is restarted. Behind one interface so the runbook does not care whether the
 * node is a local process, a systemd unit or a Kubernetes pod (a Kubernetes controller fits the same shape).
 * Readiness is never the controller's word: the runbook checks it on the node itself.
 */
import { exec, execFile, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import YAML from 'yaml';
import type Redis from 'ioredis';
import { ErrorType, HandoverError } from '../core/errors';
import type { ControllerSpec, NodeSpec } from '../inventory/schema';

const execAsync = promisify(exec);

export interface RestartRequest {
  node: NodeSpec;
  /** Version to run after the restart, when the roll changes versions. */
  version?: string;
  /** A connected client to the node, for a graceful shutdown; undefined when it is already down. */
  client?: Redis;
  /** engine: mysql — server variables the node must start with (written to its option file by `local`). */
  set?: Record<string, string>;
  /** engine: mysql — the running server's pid file (@@pid_file), for a graceful SIGTERM by `local`; undefined when down. */
  pidFile?: string;
  /**
   * engine: dolt (remote-replicas) — with the server stopped and before it starts again, push every branch of
   * every database in its data_dir to this remote with the dolt CLI (`local` only). A commit that landed while
   * the server shut down is on the node but was never pushed (its replication push died with the server); a
   * node restarted read-only cannot push it over SQL any more.
   */
  pushTo?: string;
  /** engine: dolt — called once the server is stopped, before anything else (the chaos harness's failpoint). */
  onStopped?: () => void | Promise<void>;
}

export interface NodeController {
  restart(req: RestartRequest): Promise<string>;
  /** Restart one Sentinel of the cluster (`host`: its inventory address, for a `local` launcher's {host}). */
  restartSentinel(req: { id: string; host?: string; client?: Redis }): Promise<string>;
}

const fill = (template: string, node: string, version?: string, set?: Record<string, string>) =>
  template
    .replaceAll('{node}', node)
    .replaceAll('{version}', version ?? '')
    .replaceAll('{set}', Object.entries(set ?? {}).map(([k, v]) => `${k}=${v}`).join(' '));

/** `key=value` lines of the [mariadbd] group of an option file, set or replaced (the rest of the file kept). */
export function setOptionFileValues(text: string, set: Record<string, string>): string {
  const lines = text.split('\n');
  const norm = (k: string) => k.trim().replaceAll('-', '_').toLowerCase();
  for (const [k, v] of Object.entries(set)) {
    let group = '';
    const i = lines.findIndex((l) => {
      const t = l.trim();
      if (t.startsWith('[')) group = t;
      return /^\[(mariadbd|mysqld|server)\]$/.test(group) && !t.startsWith('#') && !t.startsWith('[') && norm(t.split('=')[0]) === norm(k);
    });
    if (i >= 0) lines[i] = `${k}=${v}`;
    else {
      const g = lines.findIndex((l) => /^\[(mariadbd|mysqld|server)\]\s*$/.test(l.trim()));
      if (g >= 0) lines.splice(g + 1, 0, `${k}=${v}`);
      else lines.push('[mariadbd]', `${k}=${v}`);
    }
  }
  return lines.join('\n');
}

/** A `local` controller's launcher prefix for one node: split on spaces, {node} and {host} filled. */
export function launcherArgs(launcher: string | undefined, node: string, host: string | undefined): string[] {
  if (!launcher) return [];
  return launcher
    .split(/\s+/)
    .filter(Boolean)
    .map((a) => a.replaceAll('{node}', node).replaceAll('{host}', host ?? ''));
}

/** Start `binary args` detached under the launcher prefix; returns the command line it ran, for the audit. */
function startDetached(prefix: string[], binary: string, args: string[]): string {
  const argv = [...prefix, binary, ...args];
  const child = spawn(argv[0], argv.slice(1), { detached: true, stdio: 'ignore' });
  child.unref();
  return argv.join(' ');
}

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/**
 * engine: mysql, a `local` controller: the node's option file (configFile) gets the requested variables, the
 * running server gets SIGTERM (mariadbd's clean shutdown) and is waited for, then `<binary>
 * --defaults-file=<configFile>` starts detached. No SQL privilege is needed for it (no SHUTDOWN grant).
 */
function localMysqlController(spec: Extract<ControllerSpec, { type: 'local' }>, cluster: string): NodeController {
  return {
    async restart({ node, version, set, pidFile }) {
      const binary = version ? spec.binaries[version] : spec.binary;
      if (!binary) throw new HandoverError(ErrorType.PreconditionFailed, `controller of ${cluster} has no binary for version ${version} (binaries: ${Object.keys(spec.binaries).join(', ') || 'none'})`);
      const configFile = fill(spec.configFile, node.id, version);
      if (!existsSync(configFile)) throw new HandoverError(ErrorType.PreconditionFailed, `controller of ${cluster}: option file ${configFile} of ${node.id} does not exist`);
      if (set && Object.keys(set).length) writeFileSync(configFile, setOptionFileValues(readFileSync(configFile, 'utf8'), set));
      const pid = pidFile && existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : undefined;
      if (pid && isAlive(pid)) {
        process.kill(pid, 'SIGTERM');
        const deadline = Date.now() + 120_000;
        while (isAlive(pid)) {
          if (Date.now() > deadline) throw new Error(`${node.id} (pid ${pid}) did not shut down within 120 s of SIGTERM`);
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      const cmd = startDetached(launcherArgs(spec.launcher, node.id, node.host), binary, [`--defaults-file=${configFile}`]);
      return `${pid ? `stopped ${node.id} (SIGTERM to pid ${pid}) and ` : ''}started ${cmd}${set && Object.keys(set).length ? ` with ${Object.entries(set).map(([k, v]) => `${k}=${v}`).join(' ')}` : ''}`;
    },
    async restartSentinel() {
      throw new HandoverError(ErrorType.PreconditionFailed, `cluster ${cluster} is a MySQL cluster: it has no Sentinels`);
    },
  };
}

/**
 * The settings of a `dolt sql-server` config file (YAML) a restart applies: `read_only` goes to
 * behavior.read_only, every other key to system_variables (the rest of the file kept).
 */
export function setDoltConfigValues(text: string, set: Record<string, string>): string {
  const doc = YAML.parseDocument(text);
  for (const [k, v] of Object.entries(set)) {
    if (k === 'read_only') doc.setIn(['behavior', 'read_only'], v === 'true' || v === '1');
    else doc.setIn(['system_variables', k], /^\d+$/.test(v) ? Number(v) : v);
  }
  return doc.toString();
}

/**
 * engine: dolt, a `local` controller: configFile is the node's sql-server config (YAML). The requested settings
 * are written into it, the running server (pid from <data_dir>/.dolt/sql-server.info, data_dir from the config,
 * else the config's folder) gets SIGTERM and is waited for, then `<binary> sql-server --config <configFile>`
 * starts detached in data_dir under the launcher prefix (e.g. `env DOLT_ROOT_PATH=/srv/{node}/home`).
 */
/**
 * Push every branch of every database under `dataDir` (a folder with a .dolt directory) to `remote` with the dolt
 * CLI, the server stopped. Pushing what the remote has is a no-op; a database without that remote is skipped.
 */
async function pushDoltOffline(argv0: string[], dataDir: string, remote: string): Promise<string[]> {
  const run = (cwd: string, args: string[]) =>
    new Promise<string>((resolve, reject) =>
      execFile(argv0[0], [...argv0.slice(1), ...args], { cwd, timeout: 120_000 }, (err, stdout, stderr) => (err ? reject(new Error(`dolt ${args.join(' ')} in ${cwd}: ${String(stderr || err.message).trim().split('\n').slice(-1)[0]}`)) : resolve(String(stdout)))),
    );
  const out: string[] = [];
  for (const db of readdirSync(dataDir, { withFileTypes: true })) {
    const dir = path.join(dataDir, db.name);
    if (!db.isDirectory() || !existsSync(path.join(dir, '.dolt'))) continue;
    if (!(await run(dir, ['remote'])).split('\n').some((l) => l.trim() === remote)) continue;
    const branches = (await run(dir, ['branch'])).split('\n').map((l) => l.replace(/^\*/, '').trim()).filter(Boolean);
    for (const b of branches) {
      await run(dir, ['push', remote, b]);
      out.push(`${db.name}/${b}`);
    }
  }
  return out;
}

function localDoltController(spec: Extract<ControllerSpec, { type: 'local' }>, cluster: string): NodeController {
  return {
    async restart({ node, set, pushTo, onStopped }) {
      const configFile = fill(spec.configFile, node.id);
      if (!existsSync(configFile)) throw new HandoverError(ErrorType.PreconditionFailed, `controller of ${cluster}: config file ${configFile} of ${node.id} does not exist`);
      let text = readFileSync(configFile, 'utf8');
      if (set && Object.keys(set).length) writeFileSync(configFile, (text = setDoltConfigValues(text, set)));
      const dataDir = path.resolve(path.dirname(configFile), String((YAML.parse(text) as { data_dir?: string } | null)?.data_dir ?? '.'));
      const info = path.join(dataDir, '.dolt', 'sql-server.info');
      const pid = existsSync(info) ? Number(readFileSync(info, 'utf8').split(':')[0]) : undefined;
      if (pid && isAlive(pid)) {
        process.kill(pid, 'SIGTERM');
        const deadline = Date.now() + 60_000;
        while (isAlive(pid)) {
          if (Date.now() > deadline) throw new Error(`${node.id} (pid ${pid}) did not shut down within 60 s of SIGTERM`);
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      await onStopped?.();
      const pushed = pushTo ? await pushDoltOffline([...launcherArgs(spec.launcher, node.id, node.host), spec.binary], dataDir, pushTo) : undefined;
      const argv = [...launcherArgs(spec.launcher, node.id, node.host), spec.binary, 'sql-server', '--config', configFile];
      const child = spawn(argv[0], argv.slice(1), { detached: true, stdio: 'ignore', cwd: dataDir });
      child.unref();
      return `${pid ? `stopped ${node.id} (SIGTERM to pid ${pid}) and ` : ''}${pushed ? `pushed ${pushed.join(', ') || 'nothing'} to ${pushTo} and ` : ''}started ${argv.join(' ')}${set && Object.keys(set).length ? ` with ${Object.entries(set).map(([k, v]) => `${k}=${v}`).join(' ')}` : ''}`;
    },
    async restartSentinel() {
      throw new HandoverError(ErrorType.PreconditionFailed, `cluster ${cluster} is a Dolt cluster: it has no Sentinels`);
    },
  };
}

export function controllerFor(spec: ControllerSpec | undefined, cluster: string, engine: 'redis' | 'mysql' | 'dolt' = 'redis'): NodeController {
  if (!spec) throw new HandoverError(ErrorType.PreconditionFailed, `cluster ${cluster} has no controller in the inventory: a rolling restart needs one (local or command)`);
  if (spec.type === 'local' && engine === 'mysql') return localMysqlController(spec, cluster);
  if (spec.type === 'local' && engine === 'dolt') return localDoltController(spec, cluster);
  if (spec.type === 'local') {
    return {
      async restart({ node, version, client }) {
        const binary = version ? spec.binaries[version] : spec.binary;
        if (!binary) throw new HandoverError(ErrorType.PreconditionFailed, `controller of ${cluster} has no binary for version ${version} (binaries: ${Object.keys(spec.binaries).join(', ') || 'none'})`);
        const configFile = fill(spec.configFile, node.id, version);
        if (client) {
          // Graceful: the server saves (if configured) and exits; the connection closing is the answer.
          await client.call('SHUTDOWN').catch(() => undefined);
        }
        return `shut ${node.id} down and started ${startDetached(launcherArgs(spec.launcher, node.id, node.host), binary, [configFile])}`;
      },
      async restartSentinel({ id, host, client }) {
        if (!spec.sentinelConfigFile) throw new HandoverError(ErrorType.PreconditionFailed, `controller of ${cluster} has no sentinelConfigFile`);
        const configFile = fill(spec.sentinelConfigFile, id);
        if (client) await client.call('SHUTDOWN').catch(() => undefined);
        return `shut ${id} down and started ${startDetached(launcherArgs(spec.launcher, id, host), spec.sentinelBinary, [configFile])}`;
      },
    };
  }
  const run = async (template: string, id: string, version?: string, set?: Record<string, string>) => {
    const cmd = fill(template, id, version, set);
    try {
      await execAsync(cmd, { timeout: 120_000 });
    } catch (e) {
      const x = e as { code?: number; stderr?: string };
      throw new Error(`restart command for ${id} failed (exit ${x.code}): ${(x.stderr ?? '').trim().slice(0, 300)}`);
    }
    return `ran: ${cmd}`;
  };
  return {
    restart: ({ node, version, set }) => run(spec.restart, node.id, version, set),
    async restartSentinel({ id }) {
      if (!spec.restartSentinel) throw new HandoverError(ErrorType.PreconditionFailed, `controller of ${cluster} has no restartSentinel command`);
      return run(spec.restartSentinel, id);
    },
  };
}
