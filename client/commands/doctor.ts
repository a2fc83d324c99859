/**
 * handover doctor [--cluster NAME] [--json]
 * Is this installation ready to run runbooks? One line per check, `ok`, `FAIL` (with what to do) or `skip`:
 *
 *   temporal            reachable at the configured address (TLS mode, namespace), as client/temporal.ts resolves it
 *   namespace           registered
 *   search attributes   HandoverCluster, HandoverRunbook, HandoverPhase registered as Keyword (core/ids.ts)
 *   workers             at least one worker polls the task queue for workflow and for activity tasks (DescribeTaskQueue,
 *                       pollers seen in the last POLLER_FRESH_MS, or HANDOVER_POLLER_FRESH_MS: a worker stopped longer ago
 *                       no longer counts)
 *   inventory           the file loads
 *   <cluster>/<node>    reachable as configured, the credentials work, the automation user's privileges suffice for
 *                       every runbook (MariaDB: SHOW GRANTS, activities/mysql/switchover.ts readMissingPrivileges;
 *                       Redis/Valkey: ACL DRYRUN of every command the runbooks send, probeAllWithPermissions); with
 *                       backups configured (a `backup:` block or HANDOVER_BACKUP_DIR), MariaDB's backup grants too
 *   <cluster>/sentinel  topology sentinel: each Sentinel answers
 *   binaries            what backups and their verification spawn (activities/backup/*): redis-cli, redis-server or valkey-server,
 *                       mariadbd, mariadb-install-db, mariadb-dump, mariadb, zstd (with compression: zstd), found on
 *                       THIS host: run doctor where the worker runs (the container, the systemd host)
 *
 * Like `handover status`, the databases are read from this process with the inventory's credentials (read-only
 * probes, no workflow left behind). Exit 0 when every check passes, 4 when Temporal cannot be reached (the
 * other checks still run and print), 1 otherwise.
 */
import { existsSync } from 'node:fs';
import { Connection } from '@temporalio/client';
import { z } from 'zod';
import { HandoverError } from '../../core/errors';
import { SEARCH_ATTRIBUTES } from '../../core/ids';
import { describeMissingPrivileges, parseGrants } from '../../core/mysql/privileges';
import { describeMissingRedisPermissions } from '../../core/redis/permissions';
import { findCluster, inventoryPath, loadInventory } from '../../inventory/load';
import type { ClusterSpec, Inventory } from '../../inventory/schema';
import { connectRedis } from '../../activities/redis/conn';
import { redisOps } from '../../activities/redis/node';
import { createRedisSentinelActivities } from '../../activities/redis/sentinel';
import { mysqlOps } from '../../activities/mysql/node';
import { doltOps } from '../../activities/dolt/node';
import { findDolt } from '../../activities/backup/tools';
import { MARIADB_BACKUP_GRANTS } from '../../activities/backup/mysql';
import { findTool, TOOL_ENV, type ToolName } from '../../activities/backup/tools';
import { diagnoseTls, explainConnectError, resolveTemporal, tcpRefusal, tlsMode, type TemporalTarget } from '../temporal';
import { CliError, CommonOptions, EXIT, type IO } from '../common';

export const DoctorOptions = CommonOptions.extend({
  cluster: z.string().min(1).optional(),
});
export type DoctorOptions = z.input<typeof DoctorOptions>;

export type CheckStatus = 'ok' | 'FAIL' | 'skip';
export interface Check {
  check: string;
  status: CheckStatus;
  detail: string;
  /** What to do about a FAIL. */
  fix?: string;
}

/**
 * Temporal API enum values (temporal.api.enums.v1; @temporalio/proto is not a direct dependency): stable wire
 * numbers.
 */
const INDEXED_VALUE_TYPE_KEYWORD = 2;
const TASK_QUEUE_KIND_NORMAL = 1;
const TASK_QUEUE_TYPE_WORKFLOW = 1;
const TASK_QUEUE_TYPE_ACTIVITY = 2;

/**
 * A poller last seen longer ago than this is a worker that went away: an idle worker re-polls at least every
 * ~60-70 s (long polls), so a live one is never older; a stopped one fails this check 60-90 s after it stopped.
 */
export const POLLER_FRESH_MS = 90_000;

/**
 * The window in force: HANDOVER_POLLER_FRESH_MS overrides it for a server whose long polls are shorter than the
 * default minute (matching.longPollExpirationInterval): keep it above that interval, or a live idle worker
 * looks gone.
 */
export function pollerFreshMs(env: NodeJS.ProcessEnv): number {
  const v = env.HANDOVER_POLLER_FRESH_MS;
  if (v === undefined || v === '') return POLLER_FRESH_MS;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1000) throw new CliError(EXIT.refused, `refused (InvalidOption): HANDOVER_POLLER_FRESH_MS=${v}: say a whole number of milliseconds, at least 1000`);
  return n;
}


export function formatCheck(c: Check): string {
  return `${c.status.padEnd(4)}  ${c.check}: ${c.detail}${c.fix ? ` -> ${c.fix}` : ''}`;
}

async function temporalChecks(o: z.infer<typeof DoctorOptions>, add: (c: Check) => void, freshMs: number): Promise<{ reachable: boolean }> {
  let t: TemporalTarget;
  try {
    t = resolveTemporal(o);
  } catch (e) {
    add({ check: 'temporal', status: 'FAIL', detail: (e as Error).message, fix: 'fix the Temporal config file or the TEMPORAL_* variables' });
    return { reachable: false };
  }
  let connection: Connection;
  try {
    const refused = await tcpRefusal(t.address);
    if (refused !== undefined) throw new Error(refused);
    connection = await Connection.connect({ address: t.address, tls: t.tls, apiKey: t.apiKey, metadata: t.metadata, connectTimeout: 5000 });
  } catch (e) {
    add({
      check: 'temporal',
      status: 'FAIL',
      detail: explainConnectError(e, t, await diagnoseTls(t)),
      fix: 'start Temporal or point TEMPORAL_ADDRESS / --address (and TEMPORAL_TLS_* / TEMPORAL_API_KEY) at it',
    });
    for (const check of ['namespace', 'search attributes', 'workers']) add({ check, status: 'skip', detail: 'Temporal not reachable' });
    return { reachable: false };
  }
  try {
    const ws = connection.workflowService;
    add({ check: 'temporal', status: 'ok', detail: `reachable at ${t.address} (${tlsMode(t.tls)}${t.apiKey ? ' + API key' : ''})` });
    try {
      await ws.describeNamespace({ namespace: t.namespace });
      add({ check: 'namespace', status: 'ok', detail: `${t.namespace} registered` });
    } catch (e) {
      add({ check: 'namespace', status: 'FAIL', detail: `${t.namespace}: ${(e as Error).message}`, fix: `create it (temporal operator namespace create --namespace ${t.namespace}) or set TEMPORAL_NAMESPACE / --namespace` });
      add({ check: 'search attributes', status: 'skip', detail: 'no namespace' });
      add({ check: 'workers', status: 'skip', detail: 'no namespace' });
      return { reachable: true };
    }
    try {
      const r = await connection.operatorService.listSearchAttributes({ namespace: t.namespace });
      const have = r.customAttributes ?? {};
      const missing = Object.keys(SEARCH_ATTRIBUTES).filter((n) => Number(have[n]) !== INDEXED_VALUE_TYPE_KEYWORD);
      if (missing.length)
        add({
          check: 'search attributes',
          status: 'FAIL',
          detail: `${missing.join(', ')} not registered as Keyword in ${t.namespace}`,
          fix: `temporal operator search-attribute create --namespace ${t.namespace} ${missing.map((n) => `--name ${n} --type Keyword`).join(' ')} (Temporal Cloud: tcld namespace search-attributes add)`,
        });
      else add({ check: 'search attributes', status: 'ok', detail: `${Object.keys(SEARCH_ATTRIBUTES).join(', ')} registered (Keyword)` });
    } catch (e) {
      add({ check: 'search attributes', status: 'FAIL', detail: `cannot list them: ${(e as Error).message}`, fix: 'the credentials need to read the namespace (ListSearchAttributes)' });
    }
    try {
      const now = Date.now();
      const fresh = async (taskQueueType: number) => {
        const r = await ws.describeTaskQueue({ namespace: t.namespace, taskQueue: { name: o.taskQueue, kind: TASK_QUEUE_KIND_NORMAL }, taskQueueType });
        return (r.pollers ?? []).filter((p) => {
          const s = p.lastAccessTime?.seconds;
          return s !== undefined && s !== null && now - Number(s) * 1000 < freshMs;
        });
      };
      const wf = await fresh(TASK_QUEUE_TYPE_WORKFLOW);
      const act = await fresh(TASK_QUEUE_TYPE_ACTIVITY);
      const ids = [...new Set([...wf, ...act].map((p) => p.identity ?? '?'))];
      if (wf.length && act.length) add({ check: 'workers', status: 'ok', detail: `${ids.length} polling task queue ${o.taskQueue}: ${ids.join(', ')}` });
      else
        add({
          check: 'workers',
          status: 'FAIL',
          detail: `no worker polls task queue ${o.taskQueue} in namespace ${t.namespace} for ${!wf.length && !act.length ? 'workflow or activity' : !wf.length ? 'workflow' : 'activity'} tasks (none seen in the last ${freshMs / 1000} s)`,
          fix: 'start one (bin/handover-worker, deploy/handover-worker.service) with the same namespace and HANDOVER_TASK_QUEUE',
        });
    } catch (e) {
      add({ check: 'workers', status: 'FAIL', detail: `cannot describe task queue ${o.taskQueue}: ${(e as Error).message}` });
    }
    return { reachable: true };
  } finally {
    await connection.close();
  }
}

/** Whether backups are configured for the cluster: a `backup:` block, or HANDOVER_BACKUP_DIR for every cluster. */
const takesBackups = (c: ClusterSpec, env: NodeJS.ProcessEnv) => !!c.backup || !!env.HANDOVER_BACKUP_DIR;

async function redisChecks(inv: Inventory, c: ClusterSpec, env: NodeJS.ProcessEnv, add: (c: Check) => void): Promise<string[]> {
  const ops = redisOps({ inventory: () => inv, connectRedis, env });
  const versions: string[] = [];
  for (const n of c.nodes) {
    const check = `${c.name}/${n.id}`;
    try {
      const [p] = await ops.probeAllWithPermissions({ ...c, nodes: [n] });
      if (!p.reachable) add({ check, status: 'FAIL', detail: `${n.host}:${n.port} unreachable: ${p.error}`, fix: 'start the node, or fix host/port (and tls) in the inventory; check firewalls from this host' });
      else if (p.missingPermissions?.length) add({ check, status: 'FAIL', detail: `${p.version} ${p.role}: ${describeMissingRedisPermissions(n.id, undefined, p.missingPermissions)}` });
      else add({ check, status: 'ok', detail: `${n.host}:${n.port} ${p.version} ${p.role}; credentials work; ACL permits every runbook command` });
      if (p.version) versions.push(p.version);
    } catch (e) {
      add({ check, status: 'FAIL', detail: e instanceof HandoverError ? `${e.type}: ${e.message}` : (e as Error).message, fix: 'fix the credentials the inventory names (env variable or file) or the user on the node' });
    }
  }
  if (c.sentinel) {
    const { sentinels } = await createRedisSentinelActivities({ inventory: () => inv, connectRedis, env })
      .probeRedisSentinels({ cluster: c.name })
      .catch((e: Error) => ({ sentinels: c.sentinel!.nodes.map((s) => ({ id: s.id, reachable: false, detail: e.message })) }));
    for (const s of sentinels) {
      const spec = c.sentinel.nodes.find((x) => x.id === s.id);
      add(
        s.reachable
          ? { check: `${c.name}/sentinel ${s.id}`, status: 'ok', detail: `${spec?.host}:${spec?.port} answers${s.detail ? ` (${s.detail})` : ''}` }
          : { check: `${c.name}/sentinel ${s.id}`, status: 'FAIL', detail: `${spec?.host}:${spec?.port} unreachable: ${s.detail}`, fix: 'start the Sentinel or fix the sentinel block' },
      );
    }
  }
  return versions;
}

/** Dolt: every node answers with the inventory's credentials, in cluster mode (a role and an epoch); backups need dolt here. */
async function doltChecks(inv: Inventory, c: ClusterSpec, env: NodeJS.ProcessEnv, add: (c: Check) => void): Promise<void> {
  const ops = doltOps({ inventory: () => inv, env });
  for (const n of c.nodes) {
    const check = `${c.name}/${n.id}`;
    try {
      const p = await ops.probeOne(c, n.id);
      if (!p.reachable) add({ check, status: 'FAIL', detail: `${n.host}:${n.port} unreachable: ${p.error}`, fix: 'start the node, or fix host/port in the inventory' });
      else if (p.role !== 'primary' && p.role !== 'standby') add({ check, status: 'FAIL', detail: `${n.host}:${n.port} dolt ${p.version} is ${p.role} at epoch ${p.epoch}`, fix: 'resolve the two primaries (handover failover, or dolt_assume_cluster_role at a higher epoch)' });
      else add({ check, status: 'ok', detail: `${n.host}:${n.port} dolt ${p.version} ${p.role} at epoch ${p.epoch}; credentials work` });
    } catch (e) {
      add({ check, status: 'FAIL', detail: e instanceof HandoverError ? `${e.type}: ${e.message}` : (e as Error).message, fix: 'fix the credentials the inventory names (env variable or file) or the account on the node' });
    }
  }
  if (takesBackups(c, env)) {
    const d = findDolt(env);
    add(d ? { check: `${c.name}/dolt`, status: 'ok', detail: `dolt for backup verification: ${d}` } : { check: `${c.name}/dolt`, status: 'FAIL', detail: 'no dolt binary for backup verification', fix: 'put dolt on the PATH or set HANDOVER_DOLT' });
  }
}

async function mysqlChecks(inv: Inventory, c: ClusterSpec, env: NodeJS.ProcessEnv, add: (c: Check) => void): Promise<void> {
  const ops = mysqlOps({ inventory: () => inv, env });
  const user = (c as { credentials?: { username?: string } }).credentials?.username;
  const backups = takesBackups(c, env);
  for (const n of c.nodes) {
    const check = `${c.name}/${n.id}`;
    try {
      const p = await ops.probeOne(c, n.id);
      if (!p.reachable) {
        add({ check, status: 'FAIL', detail: `${n.host}:${n.port} unreachable: ${p.error}`, fix: 'start the node, or fix host/port (and tls) in the inventory; check firewalls from this host' });
        continue;
      }
      const problems: string[] = [];
      if (p.missingPrivileges?.length) problems.push(describeMissingPrivileges(n.id, user, p.missingPrivileges));
      if (backups) {
        const lines = await ops.withNode(c, n.id, async (conn) => ((await conn.query('SHOW GRANTS'))[0] as Record<string, unknown>[]).map((r) => String(Object.values(r)[0] ?? '')));
        const global = new Set(parseGrants(lines).filter((g) => g.on === '*.*').flatMap((g) => [...g.privileges]));
        const lacking = global.has('ALL PRIVILEGES') || global.has('ALL') ? [] : MARIADB_BACKUP_GRANTS.filter((g) => !global.has(g));
        if (lacking.length) problems.push(`backups: the automation user lacks ${lacking.join(', ')} on ${n.id} (mariadb-dump): GRANT ${lacking.join(', ')} ON *.* TO '${user ?? '<automation user>'}'@'…'`);
      }
      if (problems.length) add({ check, status: 'FAIL', detail: `${p.version ?? ''} ${p.role}: ${problems.join('; ')}`.trim() });
      else add({ check, status: 'ok', detail: `${n.host}:${n.port} ${p.version ?? ''} ${p.role}; credentials work; grants suffice for every runbook${backups ? ' and backups' : ''}` });
    } catch (e) {
      add({
        check,
        status: 'FAIL',
        detail: e instanceof HandoverError ? `${e.type}: ${e.message}` : (e as Error).message,
        fix: 'fix the credentials the inventory names (env variable or file) or the account on the node',
      });
    }
  }
}

function binaryChecks(clusters: ClusterSpec[], redisVersions: string[], env: NodeJS.ProcessEnv, add: (c: Check) => void): void {
  const backedUp = clusters.filter((c) => takesBackups(c, env));
  if (!backedUp.length) {
    add({ check: 'binaries', status: 'skip', detail: 'no cluster has a backup: block and HANDOVER_BACKUP_DIR is not set (backup verification not used)' });
    return;
  }
  const need = new Set<ToolName>();
  if (backedUp.some((c) => c.engine === 'redis')) {
    const valkey = redisVersions.some((v) => v.startsWith('valkey'));
    const redis = redisVersions.some((v) => v.startsWith('redis')) || !valkey;
    need.add('redis-cli');
    if (redis) need.add('redis-server');
    if (valkey) need.add('valkey-server');
  }
  if (backedUp.some((c) => c.engine === 'mysql')) for (const t of ['mariadbd', 'mariadb-install-db', 'mariadb-dump', 'mariadb'] as const) need.add(t);
  if (backedUp.some((c) => c.backup?.compression === 'zstd')) need.add('zstd');
  if (backedUp.some((c) => c.engine === 'mysql' && c.backup?.method === 'physical')) for (const t of ['mariadb-backup', 'mbstream'] as const) need.add(t);
  for (const name of need) {
    // The same look-up the backup activities make (activities/backup/tools.ts): HANDOVER_* variable, PATH, .tools/bin.
    const found = findTool(name, env);
    add(
      found
        ? { check: `binaries/${name}`, status: 'ok', detail: `${found} (on this host)` }
        : { check: `binaries/${name}`, status: 'FAIL', detail: `${name} not found on this host: backup verification needs it`, fix: `install it on the worker host or set ${TOOL_ENV[name]} to its path` },
    );
  }
}

export async function runDoctor(input: DoctorOptions, io: IO, env: NodeJS.ProcessEnv = process.env): Promise<{ exitCode: number; checks: Check[] }> {
  const o = DoctorOptions.parse(input);
  const checks: Check[] = [];
  const add = (c: Check) => {
    checks.push(c);
    if (!o.json) io.out(formatCheck(c));
  };
  const { reachable } = await temporalChecks(o, add, pollerFreshMs(env));

  const file = inventoryPath(o.inventory, env);
  let inv: Inventory | undefined;
  try {
    if (!existsSync(file)) throw new Error(`${file} not found`);
    inv = loadInventory(file);
    add({ check: 'inventory', status: 'ok', detail: `${file}: ${inv.clusters.length} cluster(s)` });
  } catch (e) {
    add({ check: 'inventory', status: 'FAIL', detail: (e as Error).message, fix: 'point --inventory / HANDOVER_INVENTORY at the inventory (docs/inventory.md)' });
  }
  if (inv) {
    let clusters: ClusterSpec[] = inv.clusters;
    if (o.cluster) {
      try {
        clusters = [findCluster(inv, o.cluster)];
      } catch (e) {
        add({ check: o.cluster, status: 'FAIL', detail: (e as Error).message });
        clusters = [];
      }
    }
    const redisVersions: string[] = [];
    for (const c of clusters) {
      if (c.engine === 'redis') redisVersions.push(...(await redisChecks(inv, c, env, add)));
      else if (c.engine === 'mysql') await mysqlChecks(inv, c, env, add);
      else await doltChecks(inv, c, env, add);
    }
    binaryChecks(clusters, redisVersions, env, add);
  }
  const failed = checks.filter((c) => c.status === 'FAIL').length;
  const exitCode = !reachable ? EXIT.unavailable : failed ? EXIT.failed : EXIT.ok;
  if (o.json) io.out(JSON.stringify({ ok: exitCode === EXIT.ok, exitCode, checks }));
  else io.out(failed ? `${failed} check(s) failed` : 'all checks passed');
  return { exitCode, checks };
}
