/**
 * `handover status`'s PENDING RESTART column (like patronictl's): whether a restart of the node would change
 * what it runs. Pure: what the node reports and what is on its host's disk in, the reasons out. A node is
 * pending a restart when
 *   - the executable its process runs was replaced or removed on disk since it started (a package upgrade), and
 *     the binary now at that path is another version than the one running (or is gone); or
 *   - its config file sets a restart-only setting (Redis: one CONFIG SET refuses, REDIS_RESTART_ONLY; MariaDB: a
 *     read-only system variable, information_schema.SYSTEM_VARIABLES.READ_ONLY = YES) to another value than the
 *     running one.
 * What is known only on the node's host (the process, its files) is read there (activities/pending-restart.ts);
 * elsewhere the column says `-`.
 */

/** Redis/Valkey settings CONFIG SET refuses (immutable: read at startup only). */
export const REDIS_RESTART_ONLY = [
  'daemonize',
  'supervised',
  'databases',
  'io-threads',
  'tcp-backlog',
  'unixsocket',
  'unixsocketperm',
  'logfile',
  'syslog-enabled',
  'syslog-ident',
  'syslog-facility',
  'cluster-enabled',
  'cluster-config-file',
  'cluster-port',
  'aclfile',
  'always-show-logo',
  'set-proc-title',
  'enable-protected-configs',
  'enable-debug-command',
  'enable-module-command',
] as const;

/** What the host says about the node's executable (undefined: not readable from here). */
export interface ExecutableOnDisk {
  /** The path the process was started from. */
  path: string;
  /** The kernel marks the process's executable "(deleted)": the file was replaced or removed since the start. */
  replaced: boolean;
  /** The version the file now at `path` reports (`--version`), undefined when it is gone or says none. */
  versionOnDisk?: string;
}

/** "Redis server v=7.0.15 sha=…" / "Valkey server v=9.1.2 …" / "mariadbd  Ver 10.11.14-MariaDB-0+deb12u2 for …" -> "7.0.15" / "10.11.14". */
export function versionFromBinaryOutput(text: string): string | undefined {
  return /\bv=(\d+\.\d+(?:\.\d+)?)/.exec(text)?.[1] ?? /\bVer\s+(\d+\.\d+(?:\.\d+)?)/.exec(text)?.[1];
}

/** The numeric part of a running version: "redis 7.0.15" / "10.11.14-MariaDB-0+deb12u2" -> "7.0.15" / "10.11.14". */
export function versionNumber(v: string | undefined): string | undefined {
  return v === undefined ? undefined : /(\d+\.\d+(?:\.\d+)?)/.exec(v)?.[1];
}

/** Why a restart would change the executable, or undefined. */
export function executableReason(running: string | undefined, exe: ExecutableOnDisk): string | undefined {
  if (!exe.replaced) return undefined;
  const run = versionNumber(running);
  if (exe.versionOnDisk === undefined) return `its executable ${exe.path} was replaced or removed on disk since it started`;
  if (run !== undefined && exe.versionOnDisk !== run) return `the binary on disk (${exe.path}) is ${exe.versionOnDisk}, it runs ${run}`;
  return `its executable ${exe.path} was replaced on disk since it started (same version ${exe.versionOnDisk})`;
}

const norm = (v: string) => v.trim().replace(/^["']|["']$/g, '').toLowerCase();

/** Redis: the restart-only settings whose value in the config file differs from the running one (file and runtime values shown: none is a secret). */
export function redisRestartOnlyDrift(file: Map<string, string>, runtime: Record<string, string>): string[] {
  const out: string[] = [];
  for (const k of REDIS_RESTART_ONLY) {
    const f = file.get(k);
    const r = runtime[k];
    if (f === undefined || r === undefined) continue;
    if (norm(f) !== norm(r)) out.push(`${k} is ${f} in the config file, ${r} running (read at start only)`);
  }
  return out;
}

/** A my.cnf text's options from the server's sections ([mysqld], [mariadbd], [server], [mariadb]), names with '_' for '-'. */
export function parseOptionFile(text: string): Map<string, string> {
  const out = new Map<string, string>();
  let inServer = false;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const sec = /^\[([^\]]+)\]$/.exec(line);
    if (sec) {
      inServer = ['mysqld', 'mariadbd', 'server', 'mariadb'].includes(sec[1].trim().toLowerCase());
      continue;
    }
    if (!inServer || line.startsWith('!')) continue;
    const m = /^([A-Za-z0-9_.-]+)\s*(?:=\s*(.*))?$/.exec(line);
    if (!m) continue;
    const name = m[1].replace(/-/g, '_').toLowerCase().replace(/^loose_/, '');
    out.set(name, m[2] === undefined ? 'ON' : m[2].replace(/\s+#.*$/, '').trim());
  }
  return out;
}

/** A MariaDB variable's value, comparable: booleans as on/off, sizes (K/M/G/T) in bytes, quotes dropped, lower case. */
export function normalizeVariable(v: string): string {
  const t = norm(v);
  if (['on', 'true', 'yes', '1'].includes(t)) return 'on';
  if (['off', 'false', 'no', '0'].includes(t)) return 'off';
  const size = /^(\d+)([kmgt])$/.exec(t);
  if (size) return String(Number(size[1]) * 1024 ** (' kmgt'.indexOf(size[2])));
  return t;
}

/**
 * Options whose variable does not hold the option's value (log_bin holds ON, not the base name; paths are
 * resolved by the server): not compared.
 */
const MYSQL_NOT_COMPARED = new Set(['log_bin', 'log_bin_index', 'relay_log', 'relay_log_index', 'pid_file', 'socket', 'datadir', 'basedir', 'tmpdir', 'log_error', 'general_log_file', 'slow_query_log_file', 'plugin_dir']);

/** A read-only variable as the server reports it, with the numeric range and block size it clamps a setting to. */
export interface ReadOnlyVariable {
  value: string;
  min?: string | null;
  max?: string | null;
  block?: string | null;
}

/** What the server makes of a numeric setting at startup: clamped to [min, max], rounded down to the block size. */
function asServerTakesIt(fileValue: string, v: ReadOnlyVariable): string {
  const n = normalizeVariable(fileValue);
  if (!/^\d+$/.test(n)) return n;
  let x = BigInt(n);
  if (v.min != null && /^\d+$/.test(v.min) && x < BigInt(v.min)) x = BigInt(v.min);
  if (v.max != null && /^\d+$/.test(v.max) && x > BigInt(v.max)) x = BigInt(v.max);
  if (v.block != null && /^\d+$/.test(v.block) && BigInt(v.block) > 1n) x -= x % BigInt(v.block);
  return x.toString();
}

/**
 * MariaDB: the read-only variables (restart-only) the option file sets to another value than the running one;
 * a number is compared as the server takes it (clamped to its range, rounded to its block size: a 1M buffer whose
 * minimum is 2M runs at 2M and a restart would not change that).
 */
export function mysqlRestartOnlyDrift(file: Map<string, string>, readOnlyRuntime: Record<string, ReadOnlyVariable>): string[] {
  const out: string[] = [];
  for (const [k, f] of file) {
    const r = readOnlyRuntime[k];
    if (r === undefined || MYSQL_NOT_COMPARED.has(k) || f.includes('/')) continue;
    if (asServerTakesIt(f, r) !== normalizeVariable(r.value)) out.push(`${k} is ${f} in the option file, ${r.value} running (read-only variable)`);
  }
  return out;
}
