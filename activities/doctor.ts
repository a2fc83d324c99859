/**
 * `handover doctor`'s database and host checks, run on the worker (the `doctor` workflow, workflows/doctor.ts):
 * the worker's inventory, its secrets, its network route to every node and the binaries on its host, so the
 * CLI needs Temporal alone. Read-only: the runbooks' own probes, nothing changed.
 *   doctorChecks   for each cluster asked about (all without `cluster`): the inventory line, one line per node
 *                  (reachable, credentials, privileges/ACL), each Sentinel, and the backup binaries
 * runDoctorChecks is also what the CLI runs itself with `doctor --direct` (or when no worker can), from its own
 * inventory: `where` names the machine in the lines.
 */
import { hostname } from 'node:os';
import { existsSync } from 'node:fs';
import { HandoverError } from '../core/errors';
import type { Check } from '../core/doctor';
import { describeMissingPrivileges, parseGrants } from '../core/mysql/privileges';
import { describeMissingRedisPermissions } from '../core/redis/permissions';
import { findCluster, loadInventory } from '../inventory/load';
import type { ClusterSpec, Inventory } from '../inventory/schema';
import { clusterShape, type ClusterShape } from '../inventory/shape';
import { connectRedis as defaultConnectRedis } from './redis/conn';
import { redisOps, type RedisActivityDeps } from './redis/node';
import { createRedisSentinelActivities } from './redis/sentinel';
import { mysqlOps } from './mysql/node';
import type { MysqlConnect } from './mysql/conn';
import { doltOps } from './dolt/node';
import { doltRemoteOps } from './dolt/remote';
import { MARIADB_BACKUP_GRANTS } from './backup/mysql';
import { findDolt, findTool, TOOL_ENV, type ToolName } from './backup/tools';
import { toFailure } from './activity';
import type { StatusDeps } from './status';

/** What status reads with (the inventory, the connections, the environment), and the inventory's file. */
export interface DoctorDeps extends StatusDeps {
  /** The file the inventory comes from, when known (the worker's HANDOVER_INVENTORY): named in the inventory line. */
  inventoryFile?: string;
}

export interface DoctorChecksResult {
  checks: Check[];
  /** Each cluster's definition as the inventory read here has it (the CLI compares its own file with these). */
  shapes: Record<string, ClusterShape>;
}

/** Where the checks ran, as the lines say it. */
interface Where {
  /** "on worker host h1 (pid 12)" / "on this machine". */
  host: string;
  /** "from the worker's host" / "from this machine". */
  from: string;
}

/** Whether backups are configured for the cluster: a `backup:` block, or HANDOVER_BACKUP_DIR for every cluster. */
const takesBackups = (c: ClusterSpec, env: NodeJS.ProcessEnv) => !!c.backup || !!env.HANDOVER_BACKUP_DIR;

async function redisChecks(inv: Inventory, c: ClusterSpec, env: NodeJS.ProcessEnv, connectRedis: RedisActivityDeps['connectRedis'], where: Where, add: (c: Check) => void): Promise<string[]> {
  const ops = redisOps({ inventory: () => inv, connectRedis, env });
  const versions: string[] = [];
  for (const n of c.nodes) {
    const check = `${c.name}/${n.id}`;
    try {
      const [p] = await ops.probeAllWithPermissions({ ...c, nodes: [n] });
      if (!p.reachable) add({ check, status: 'FAIL', detail: `${n.host}:${n.port} unreachable: ${p.error}`, fix: `start the node, or fix host/port (and tls) in the inventory; check firewalls ${where.from}` });
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
async function doltChecks(inv: Inventory, c: ClusterSpec, env: NodeJS.ProcessEnv, connectMysql: MysqlConnect | undefined, where: Where, add: (c: Check) => void): Promise<void> {
  const ops = doltOps({ inventory: () => inv, env, connectMysql });
  if (c.topology === 'remote-replicas') {
    // Read replicas through a remote: each node's part (primary pushing, read-only replica pulling) and the remote in every database.
    const remote = doltRemoteOps({ inventory: () => inv, env, connectMysql });
    for (const n of c.nodes) {
      const check = `${c.name}/${n.id}`;
      try {
        const p = await remote.probeNode(c as ClusterSpec & { replicationRemote: string }, n.id);
        if (!p.reachable) add({ check, status: 'FAIL', detail: `${n.host}:${n.port} unreachable: ${p.error}`, fix: `start the node, or fix host/port in the inventory; check firewalls ${where.from}` });
        else if (p.missingRemote?.length) add({ check, status: 'FAIL', detail: `${n.host}:${n.port} has no remote ${c.replicationRemote} in ${p.missingRemote.join(', ')}`, fix: `CALL dolt_remote('add', '${c.replicationRemote}', <url>) in each database` });
        else if (p.role !== 'primary' && p.role !== 'replica') add({ check, status: 'FAIL', detail: `${n.host}:${n.port} dolt ${p.version} is ${p.role} (read_only ${p.readOnly ? 1 : 0}, dolt_replicate_to_remote '${p.replicateTo}', dolt_read_replica_remote '${p.readReplicaRemote}')`, fix: 'handover switchover finishes or undoes a stopped run; else set the node\'s config and restart it' });
        else add({ check, status: 'ok', detail: `${n.host}:${n.port} dolt ${p.version} ${p.role === 'primary' ? `primary pushing to ${c.replicationRemote}` : `read replica of ${c.replicationRemote}`}; credentials work` });
      } catch (e) {
        add({ check, status: 'FAIL', detail: e instanceof HandoverError ? `${e.type}: ${e.message}` : (e as Error).message, fix: 'fix the credentials the inventory names (env variable or file) or the account on the node' });
      }
    }
  } else for (const n of c.nodes) {
    const check = `${c.name}/${n.id}`;
    try {
      const p = await ops.probeOne(c, n.id);
      if (!p.reachable) add({ check, status: 'FAIL', detail: `${n.host}:${n.port} unreachable: ${p.error}`, fix: `start the node, or fix host/port in the inventory; check firewalls ${where.from}` });
      else if (p.role !== 'primary' && p.role !== 'standby') add({ check, status: 'FAIL', detail: `${n.host}:${n.port} dolt ${p.version} is ${p.role} at epoch ${p.epoch}`, fix: 'resolve the two primaries (handover failover, or dolt_assume_cluster_role at a higher epoch)' });
      else add({ check, status: 'ok', detail: `${n.host}:${n.port} dolt ${p.version} ${p.role} at epoch ${p.epoch}; credentials work` });
    } catch (e) {
      add({ check, status: 'FAIL', detail: e instanceof HandoverError ? `${e.type}: ${e.message}` : (e as Error).message, fix: 'fix the credentials the inventory names (env variable or file) or the account on the node' });
    }
  }
  if (takesBackups(c, env)) {
    const d = findDolt(env);
    add(d ? { check: `${c.name}/dolt`, status: 'ok', detail: `dolt for backup verification: ${d} (${where.host})` } : { check: `${c.name}/dolt`, status: 'FAIL', detail: `no dolt binary for backup verification ${where.host}`, fix: 'put dolt on the PATH or set HANDOVER_DOLT' });
  }
}

async function mysqlChecks(inv: Inventory, c: ClusterSpec, env: NodeJS.ProcessEnv, connectMysql: MysqlConnect | undefined, where: Where, add: (c: Check) => void): Promise<void> {
  const ops = mysqlOps({ inventory: () => inv, env, connectMysql });
  const user = (c as { credentials?: { username?: string } }).credentials?.username;
  const backups = takesBackups(c, env);
  for (const n of c.nodes) {
    const check = `${c.name}/${n.id}`;
    try {
      const p = await ops.probeOne(c, n.id);
      if (!p.reachable) {
        add({ check, status: 'FAIL', detail: `${n.host}:${n.port} unreachable: ${p.error}`, fix: `start the node, or fix host/port (and tls) in the inventory; check firewalls ${where.from}` });
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

function binaryChecks(clusters: ClusterSpec[], redisVersions: string[], env: NodeJS.ProcessEnv, where: Where, add: (c: Check) => void): void {
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
        ? { check: `binaries/${name}`, status: 'ok', detail: `${found} (${where.host})` }
        : { check: `binaries/${name}`, status: 'FAIL', detail: `${name} not found ${where.host}: backup verification needs it`, fix: `install it on the worker host or set ${TOOL_ENV[name]} to its path` },
    );
  }
}

/** Every check for `cluster` (all clusters without it) with the inventory and credentials in `deps`. UnknownCluster is a FAIL line. */
export async function runDoctorChecks(deps: DoctorDeps, input: { cluster?: string }, where: Where): Promise<DoctorChecksResult> {
  const checks: Check[] = [];
  const add = (c: Check) => checks.push(c);
  const env = deps.env ?? process.env;
  const connectRedis = deps.connectRedis ?? defaultConnectRedis;
  let inv: Inventory;
  try {
    inv = deps.inventory();
  } catch (e) {
    add({ check: 'inventory', status: 'FAIL', detail: `${deps.inventoryFile ? `${deps.inventoryFile}: ` : ''}${(e as Error).message}`, fix: 'point --inventory / HANDOVER_INVENTORY at the inventory (docs/inventory.md)' });
    return { checks, shapes: {} };
  }
  // The worker keeps its last good inventory when the file breaks (worker/main.ts): say so rather than hide it.
  let fileProblem: string | undefined;
  if (deps.inventoryFile) {
    try {
      if (!existsSync(deps.inventoryFile)) throw new Error('not found');
      loadInventory(deps.inventoryFile);
    } catch (e) {
      fileProblem = (e as Error).message;
    }
  }
  const file = deps.inventoryFile ? `${deps.inventoryFile}: ` : '';
  if (fileProblem) add({ check: 'inventory', status: 'FAIL', detail: `${file}${fileProblem} (${where.host}; the last good one, ${inv.clusters.length} cluster(s), stays in use)`, fix: 'fix the file (docs/inventory.md)' });
  else add({ check: 'inventory', status: 'ok', detail: `${file}${inv.clusters.length} cluster(s) (${where.host})` });
  let clusters: ClusterSpec[] = inv.clusters;
  if (input.cluster) {
    try {
      clusters = [findCluster(inv, input.cluster)];
    } catch (e) {
      add({ check: input.cluster, status: 'FAIL', detail: (e as Error).message });
      clusters = [];
    }
  }
  const redisVersions: string[] = [];
  for (const c of clusters) {
    if (c.engine === 'redis') redisVersions.push(...(await redisChecks(inv, c, env, connectRedis, where, add)));
    else if (c.engine === 'mysql') await mysqlChecks(inv, c, env, deps.connectMysql, where, add);
    else await doltChecks(inv, c, env, deps.connectMysql, where, add);
  }
  binaryChecks(clusters, redisVersions, env, where, add);
  return { checks, shapes: Object.fromEntries(clusters.map((c) => [c.name, clusterShape(c)])) };
}

export function createDoctorActivities(deps: DoctorDeps) {
  return {
    /** `handover doctor`'s inventory, node and binary lines, read on this worker. Read-only. */
    async doctorChecks(input: { cluster?: string }): Promise<DoctorChecksResult> {
      try {
        return await runDoctorChecks(deps, input, { host: `on worker host ${hostname()} (pid ${process.pid})`, from: "from the worker's host" });
      } catch (e) {
        throw toFailure(e);
      }
    },
  };
}
