/**
 * The PENDING RESTART column of `handover status` (core/pending-restart.ts says what counts): read only for a
 * node whose address is loopback, i.e. whose process runs on the machine that reads status (the worker, or the
 * CLI with --direct), and only when that process is the one the node reports (its pid's start time matches the
 * node's uptime: a port forwarded from a container is not this host's process). Read-only; every failure to
 * read means "cannot be known" (undefined, shown `-`).
 */
import { execFile } from 'node:child_process';
import { readFile, readlink } from 'node:fs/promises';
import type Redis from 'ioredis';
import type mysql from 'mysql2/promise';
import { executableReason, mysqlRestartOnlyDrift, parseOptionFile, redisRestartOnlyDrift, REDIS_RESTART_ONLY, versionFromBinaryOutput, type ExecutableOnDisk, type ReadOnlyVariable } from '../core/pending-restart';
import { parseRedisConf } from '../core/redis/config-drift';

/** Loopback: the node's process is on this machine. */
export const isLoopback = (host: string) => /^(127\.|localhost$|::1$|\[::1\]$)/.test(host);

/** Linux's USER_HZ: /proc start times are in these ticks (100 on every architecture Node runs on). */
const CLK_TCK = 100;

function binaryVersion(path: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(path, ['--version'], { timeout: 2_000 }, (err, stdout) => resolve(err ? undefined : versionFromBinaryOutput(String(stdout))));
  });
}

/** The executable of `pid` as this host sees it, when `pid` is the process that has been up `uptimeSec` seconds. */
export async function processExecutable(pid: number, uptimeSec: number): Promise<ExecutableOnDisk | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const startTicks = Number(fields[19]);
    const btime = Number(/^btime (\d+)$/m.exec(await readFile('/proc/stat', 'utf8'))?.[1]);
    const startedAt = btime + startTicks / CLK_TCK;
    if (!Number.isFinite(startedAt) || Math.abs(startedAt - (Date.now() / 1000 - uptimeSec)) > 5) return undefined;
    const link = await readlink(`/proc/${pid}/exe`);
    const replaced = link.endsWith(' (deleted)');
    const path = replaced ? link.slice(0, -' (deleted)'.length) : link;
    return { path, replaced, ...(replaced ? { versionOnDisk: await binaryVersion(path) } : {}) };
  } catch {
    return undefined;
  }
}

const infoField = (info: string, k: string) => new RegExp(`^${k}:(.*)$`, 'm').exec(info)?.[1]?.trim();

/** Redis/Valkey: the reasons a restart is pending ([] none), or undefined when it cannot be known from here. */
export async function redisPendingRestart(cl: Redis, host: string): Promise<string[] | undefined> {
  if (!isLoopback(host)) return undefined;
  const info = await cl.info('server');
  const pid = Number(infoField(info, 'process_id'));
  const uptime = Number(infoField(info, 'uptime_in_seconds'));
  const running = infoField(info, 'valkey_version') ?? infoField(info, 'redis_version');
  const exe = await processExecutable(pid, uptime);
  if (!exe) return undefined;
  const reasons: string[] = [];
  const ex = executableReason(running, exe);
  if (ex) reasons.push(ex);
  const file = infoField(info, 'config_file');
  if (file) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch {
      return undefined;
    }
    const runtime: Record<string, string> = {};
    const kv = (await cl.call('CONFIG', 'GET', ...REDIS_RESTART_ONLY)) as string[];
    for (let i = 0; i + 1 < kv.length; i += 2) runtime[kv[i]] = kv[i + 1];
    reasons.push(...redisRestartOnlyDrift(parseRedisConf(text), runtime));
  }
  return reasons;
}

/**
 * MariaDB: the same, the option file being the one the node's `local` controller starts it with (`configFile`
 * for this node; a server does not say which file it read). Without one it cannot be known.
 */
export async function mysqlPendingRestart(conn: mysql.Connection, host: string, optionFile: string | undefined): Promise<string[] | undefined> {
  if (!isLoopback(host) || !optionFile) return undefined;
  const [rows] = (await conn.query("SELECT @@pid_file AS pidFile, @@version AS version, (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'UPTIME') AS uptime")) as unknown as [{ pidFile: string; version: string; uptime: string }[]];
  const { pidFile, version, uptime } = rows[0];
  let pid: number;
  let text: string;
  try {
    pid = Number((await readFile(pidFile, 'utf8')).trim());
    text = await readFile(optionFile, 'utf8');
  } catch {
    return undefined;
  }
  const exe = await processExecutable(pid, Number(uptime));
  if (!exe) return undefined;
  const reasons: string[] = [];
  const ex = executableReason(version, exe);
  if (ex) reasons.push(ex);
  const [vars] = (await conn.query(
    "SELECT LOWER(VARIABLE_NAME) AS name, GLOBAL_VALUE AS value, NUMERIC_MIN_VALUE AS min, NUMERIC_MAX_VALUE AS max, NUMERIC_BLOCK_SIZE AS block FROM information_schema.SYSTEM_VARIABLES WHERE READ_ONLY = 'YES'",
  )) as unknown as [{ name: string; value: string | null; min: string | null; max: string | null; block: string | null }[]];
  const readOnly: Record<string, ReadOnlyVariable> = {};
  for (const v of vars) if (v.value !== null) readOnly[v.name] = { value: String(v.value), min: v.min === null ? null : String(v.min), max: v.max === null ? null : String(v.max), block: v.block === null ? null : String(v.block) };
  reasons.push(...mysqlRestartOnlyDrift(parseOptionFile(text), readOnly));
  return reasons;
}
