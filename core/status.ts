/**
 * `handover status`: what one look at a cluster's probes says, as data (pure; the CLI probes and prints).
 * Per node: role, whom it replicates from, the link, and the lag (Redis: replication offset bytes behind its
 * primary; MySQL/MariaDB: GTID transactions still to apply, and Seconds_Behind_Master). Problems an on-call
 * engineer should see first (no primary, two primaries, a link down, an unreachable node) are listed apart.
 */
import { mysqlPrimaryReset } from './mysql/empty-primary';
import { appliedPos, lagTransactions, type MysqlNodeProbe } from './mysql/decide';
import { mysqlRestartRisks, redisRestartRisks, riskLine, type ControllerView } from './restart-risk';
import { describeMissingPrivileges } from './mysql/privileges';
import { describeMissingRedisPermissions } from './redis/permissions';
import type { RedisNodeProbe } from './types';
import type { DoltNodeProbe } from './dolt/decide';
import type { DoltRemoteNodeProbe } from './dolt/remote';
import type { MaintenanceWindow } from './maintenance';

export interface NodeStatus {
  node: string;
  address: string;
  reachable: boolean;
  error?: string;
  role?: 'primary' | 'replica';
  /** Replica: the inventory node it replicates from (or host:port when that is not in the inventory). */
  replicaOf?: string;
  /** Replica: "up" / "down" (Redis master_link_status), or MySQL "io Yes sql Yes". */
  link?: string;
  linkUp?: boolean;
  lagBytes?: number;
  lagTransactions?: number;
  secondsBehind?: number | null;
  /** Dolt: the cluster-mode epoch of its role; a standby's lag as its primary reports it (ms, largest over databases). */
  epoch?: number;
  lagMillis?: number;
  /** Dolt read replica through a remote: commits its primary has that it lacks (null: diverged). */
  lagCommits?: number | null;
  /** MySQL/MariaDB: read_only (a primary should not be; replicas should be). */
  readOnly?: boolean;
  /** Redis: replication offset; MySQL/MariaDB: the applied GTID position. */
  position?: string;
  version?: string;
  /** The node's open maintenance window (handover maintenance), when it has one. */
  maintenance?: MaintenanceWindow;
  /**
   * Why a restart of the node would change what it runs (core/pending-restart.ts): [] none; undefined when it
   * cannot be known from where status was read (a node not on that host, a file not readable).
   */
  pendingRestart?: string[];
}

/** A runbook running on the cluster (open workflow with its HandoverCluster search attribute). */
export interface OperationStatus {
  workflowId: string;
  runId: string;
  workflowType: string;
  runbook?: string;
  phase?: string;
  startTime: string;
}

export interface ClusterStatus {
  cluster: string;
  engine: 'redis' | 'mysql' | 'dolt';
  topology: string;
  /** Nodes that act as primary (Redis Cluster: one per shard; MySQL: the writable one). */
  primaries: string[];
  nodes: NodeStatus[];
  problems: string[];
  /** Open operations, or undefined when Temporal could not be asked. */
  operations?: OperationStatus[];
  /** Why the cluster could not be probed at all (e.g. a missing credential): names the reference, never a value. */
  error?: string;
  /** Nodes whose own configuration lets them take writes on restart (core/restart-risk.ts), as `!` / `?` lines. */
  restartRisks?: string[];
  /** What the cluster's monitor says, when one runs (asked through its status query). */
  monitor?: MonitorSummary;
}

/** The part of a running monitor's status that `handover status` shows. */
export interface MonitorSummary {
  workflowId: string;
  primary?: string;
  /** Nodes left read-only and not rejoined, with every errant GTID. */
  flagged: Record<string, string[]>;
  blind?: string;
  blocked?: string;
  /** The primaries it saw back EMPTY after a restart, or reset (core/empty-primary.ts, core/mysql/empty-primary.ts), one line each. */
  emptyReturns?: string[];
  /** Set when the monitor could not be asked. */
  error?: string;
}

export function redisClusterStatus(cluster: string, topology: string, probes: RedisNodeProbe[], controller: ControllerView = {}): ClusterStatus {
  const byNode = new Map(probes.map((p) => [p.node, p]));
  const primaries = probes.filter((p) => p.reachable && p.role === 'primary').map((p) => p.node);
  const problems: string[] = [];
  const nodes: NodeStatus[] = probes.map((p) => {
    const s: NodeStatus = { node: p.node, address: p.address, reachable: p.reachable, error: p.error, role: p.role, version: p.version, position: p.offset === undefined ? undefined : String(p.offset) };
    if (!p.reachable) problems.push(`${p.node} unreachable${p.error ? `: ${p.error}` : ''}`);
    if (p.missingPermissions?.length) problems.push(describeMissingRedisPermissions(p.node, undefined, p.missingPermissions));
    if (p.reachable && p.role === 'replica') {
      s.replicaOf = p.primaryNode ?? p.primaryAddress;
      s.linkUp = !!p.linkUp;
      s.link = p.linkUp ? 'up' : 'down';
      const up = p.primaryNode ? byNode.get(p.primaryNode) : undefined;
      if (up?.reachable && up.role === 'primary' && up.offset !== undefined) s.lagBytes = Math.max(0, up.offset - (p.offset ?? 0));
      if (!p.linkUp) problems.push(`${p.node}: link to ${s.replicaOf ?? '?'} down`);
      else if (p.primaryNode && up?.reachable && up.role !== 'primary') problems.push(`${p.node} replicates from ${p.primaryNode}, which is a ${up.role}`);
    }
    return s;
  });
  if (primaries.length === 0) problems.unshift('no reachable primary');
  else if (topology !== 'cluster' && primaries.length > 1) problems.unshift(`${primaries.length} primaries: ${primaries.join(', ')}`);
  const risks = redisRestartRisks(probes, topology, controller).map(riskLine);
  return { cluster, engine: 'redis', topology, primaries, nodes, problems, ...(risks.length ? { restartRisks: risks } : {}) };
}

export function mysqlClusterStatus(cluster: string, probes: MysqlNodeProbe[]): ClusterStatus {
  const writable = probes.filter((p) => p.reachable && p.role === 'primary' && p.readOnly === false);
  const primary = writable.length === 1 ? writable[0] : undefined;
  const problems: string[] = [];
  const nodes: NodeStatus[] = probes.map((p) => {
    const s: NodeStatus = { node: p.node, address: p.address, reachable: p.reachable, error: p.error, role: p.role, readOnly: p.readOnly, version: p.version };
    if (!p.reachable) {
      problems.push(`${p.node} unreachable${p.error ? `: ${p.error}` : ''}`);
      return s;
    }
    s.position = appliedPos(p) || '';
    if (p.role === 'replica') {
      s.replicaOf = p.sourceNode ?? p.sourceAddress;
      s.linkUp = p.ioRunning === 'Yes' && !!p.sqlRunning;
      s.link = `io ${p.ioRunning ?? '?'} sql ${p.sqlRunning ? 'Yes' : 'No'}`;
      s.secondsBehind = p.secondsBehind;
      if (primary && p.sourceNode === primary.node) s.lagTransactions = lagTransactions(appliedPos(p), primary.gtidBinlogPos);
      if (!s.linkUp) problems.push(`${p.node}: replication from ${s.replicaOf ?? '?'} not running (${s.link}${p.lastError ? `: ${p.lastError}` : ''})`);
      if (p.readOnly === false) problems.push(`${p.node} is a writable replica`);
    }
    if (p.errantGtids?.length) problems.push(`${p.node} has errant GTIDs ${p.errantGtids.join(',')}${p.role === 'replica' && !p.sqlRunning ? ' (its SQL thread has stopped)' : ''}: it cannot follow ${primary?.node ?? 'the primary'}`);
    if (p.missingPrivileges?.length) problems.push(describeMissingPrivileges(p.node, undefined, p.missingPrivileges));
    return s;
  });
  if (writable.length === 0) problems.unshift('no writable primary');
  else if (writable.length > 1) problems.unshift(`${writable.length} writable nodes: ${writable.map((w) => w.node).join(', ')}`);
  // A node replicating from nobody that lacks what its replicas already hold from it came back empty or reset
  // (core/mysql/empty-primary.ts, from this probe alone): never a healthy primary, whatever else it answers.
  for (const r of probes.filter((p) => p.reachable && p.role === 'primary')) {
    const e = mysqlPrimaryReset(undefined, probes, r.node, 0);
    if (e)
      problems.unshift(
        `${r.node} answers as primary without transactions its replicas hold from it (${e.before.gtid}; it has ${e.after.gtid || 'empty'}): back EMPTY or reset, not a healthy primary${e.holders.length ? `; ${e.holders.join(', ')} still hold the data` : ''}`,
      );
  }
  const risks = mysqlRestartRisks(probes).map(riskLine);
  return { cluster, engine: 'mysql', topology: 'replication', primaries: writable.map((w) => w.node), nodes, problems, ...(risks.length ? { restartRisks: risks } : {}) };
}

/**
 * Dolt sql-server cluster mode: the primary (role primary), each standby with its epoch and the lag its primary
 * reports for it (dolt_cluster_status rows whose standby remote is named like the node, or every row when the
 * primary has one standby). Problems: no primary, two primaries, detected_broken_config, a standby at another
 * epoch than the primary, a push failing.
 */
export function doltClusterStatus(cluster: string, probes: DoltNodeProbe[]): ClusterStatus {
  const primaries = probes.filter((p) => p.reachable && p.role === 'primary');
  const primary = primaries.length === 1 ? primaries[0] : undefined;
  const problems: string[] = [];
  const standbys = probes.filter((p) => p !== primary);
  const nodes: NodeStatus[] = probes.map((p) => {
    const s: NodeStatus = { node: p.node, address: p.address, reachable: p.reachable, error: p.error, version: p.version, readOnly: p.readOnly, epoch: p.epoch };
    if (!p.reachable) {
      problems.push(`${p.node} unreachable${p.error ? `: ${p.error}` : ''}`);
      return s;
    }
    s.position = `epoch ${p.epoch}`;
    if (p.role === 'detected_broken_config') problems.push(`${p.node} detected two primaries at epoch ${p.epoch} (detected_broken_config): it takes no writes`);
    if (p.role === 'primary') {
      s.role = 'primary';
      return s;
    }
    s.role = 'replica';
    s.replicaOf = primary?.node;
    if (primary) {
      const rows = (primary.replication ?? []).filter((r) => r.remote === p.node || standbys.length === 1);
      const failing = rows.filter((r) => r.error);
      s.linkUp = rows.length > 0 && !failing.length;
      s.link = failing.length ? `error (${failing[0].error})` : rows.length ? 'up' : 'no databases pushed';
      const lags = rows.map((r) => r.lagMillis).filter((x): x is number => x !== null);
      if (lags.length) s.lagMillis = Math.max(...lags);
      if (failing.length) problems.push(`${primary.node} cannot push to ${p.node}: ${failing[0].error}`);
      if (p.epoch !== primary.epoch) problems.push(`${p.node} is ${p.role} at epoch ${p.epoch}, the primary ${primary.node} at ${primary.epoch}`);
    }
    return s;
  });
  if (primaries.length === 0) problems.unshift('no reachable primary');
  else if (primaries.length > 1) problems.unshift(`${primaries.length} primaries: ${primaries.map((p) => `${p.node}@${p.epoch}`).join(', ')}`);
  return { cluster, engine: 'dolt', topology: 'replication', primaries: primaries.map((p) => p.node), nodes, problems };
}

/**
 * Dolt read replicas through a remote: the primary (writable, pushing to the remote), each read replica with
 * its lag as a commit distance from the primary (a replica pulls when a transaction starts, so this is what a
 * reader of it sees). Problems: no primary, two primaries, a node fenced or misconfigured, a replica diverged,
 * a database without the remote.
 */
export function doltRemoteStatus(cluster: string, remote: string, probes: DoltRemoteNodeProbe[]): ClusterStatus {
  const primaries = probes.filter((p) => p.reachable && p.role === 'primary');
  const primary = primaries.length === 1 ? primaries[0] : undefined;
  const problems: string[] = [];
  const nodes: NodeStatus[] = probes.map((p) => {
    const s: NodeStatus = { node: p.node, address: p.address, reachable: p.reachable, error: p.error, version: p.version, readOnly: p.readOnly };
    if (!p.reachable) {
      problems.push(`${p.node} unreachable${p.error ? `: ${p.error}` : ''}`);
      return s;
    }
    if (p.missingRemote?.length) problems.push(`${p.node} has no remote ${remote} in ${p.missingRemote.join(', ')}`);
    if (p.role === 'primary') {
      s.role = 'primary';
      s.position = `pushing to ${remote}`;
      return s;
    }
    if (p.role !== 'replica') {
      problems.push(p.role === 'fenced' ? `${p.node} is fenced: configured as a primary but read-only (a switchover stopped between its fence and its end?)` : `${p.node} neither pushes to nor reads from ${remote} as a read-only replica (read_only ${p.readOnly ? 1 : 0}, dolt_replicate_to_remote '${p.replicateTo}', dolt_read_replica_remote '${p.readReplicaRemote}')`);
      s.position = p.role;
      return s;
    }
    s.role = 'replica';
    s.replicaOf = primary?.node;
    s.link = `via ${remote}`;
    s.linkUp = p.behindCommits !== null;
    if (primary) {
      s.lagCommits = p.behindCommits ?? null;
      if (p.behindCommits === null) problems.push(`${p.node} has diverged from ${primary.node}: ${p.behindDetail}`);
    }
    return s;
  });
  if (primaries.length === 0) problems.unshift('no reachable primary');
  else if (primaries.length > 1) problems.unshift(`${primaries.length} primaries: ${primaries.map((p) => p.node).join(', ')}`);
  return { cluster, engine: 'dolt', topology: 'remote-replicas', primaries: primaries.map((p) => p.node), nodes, problems };
}

function lagText(n: NodeStatus): string {
  const parts: string[] = [];
  if (n.lagCommits !== undefined) parts.push(n.lagCommits === null ? 'DIVERGED' : `${n.lagCommits} commit(s)`);
  if (n.lagBytes !== undefined) parts.push(`${n.lagBytes} B`);
  if (n.lagMillis !== undefined) parts.push(`${n.lagMillis} ms`);
  if (n.lagTransactions !== undefined) parts.push(`${n.lagTransactions} trx`);
  if (n.secondsBehind !== undefined) parts.push(`${n.secondsBehind === null ? '?' : n.secondsBehind} s behind`);
  return parts.join(', ');
}

/** The MAINTENANCE cell: "until 2026-12-01T10:00Z (why, by who)" or "-". */
function maintenanceText(n: NodeStatus): string {
  const w = n.maintenance;
  if (!w) return '-';
  const why = [w.reason, w.by ? `by ${w.by}` : undefined].filter(Boolean).join(', ');
  return `until ${new Date(w.untilMs).toISOString().replace(/:\d\d\.\d{3}Z$/, 'Z')}${why ? ` (${why})` : ''}`;
}

/** Rows padded into columns (the last column is not padded). */
export function table(rows: string[][], indent = '  '): string[] {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => (indent + r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).trimEnd());
}

/**
 * Human-readable lines for one cluster: a head line, then one row per node like `patronictl list` (node,
 * address, role, lag, version, maintenance, link), then the problems and the running operations.
 */
export function formatClusterStatus(s: ClusterStatus): string[] {
  const head = `${s.cluster} (${s.engine}, ${s.topology}): ${s.error ? 'not probed' : s.primaries.length ? `primary ${s.primaries.join(', ')}` : 'NO PRIMARY'}`;
  const lines = [head];
  if (s.error) lines.push(`  error: ${s.error}`);
  if (s.nodes.length) {
    const rows: string[][] = [['NODE', 'ADDRESS', 'ROLE', 'LAG', 'VERSION', 'PENDING RESTART', 'MAINTENANCE', 'LINK']];
    for (const n of s.nodes) {
      if (!n.reachable) {
        rows.push([n.node, n.address, 'UNREACHABLE', '-', '-', '-', maintenanceText(n), n.error ?? '']);
        continue;
      }
      const role =
        n.role === 'replica'
          ? `replica of ${n.replicaOf ?? '?'}${n.readOnly === false ? ', WRITABLE' : ''}`
          : `${n.role ?? '?'}${n.readOnly && n.role === 'primary' ? ' (read-only)' : ''}${n.position ? ` at ${n.position}` : ''}`;
      rows.push([n.node, n.address, role, n.role === 'replica' ? lagText(n) || '?' : '-', n.version ?? '?', n.pendingRestart === undefined ? '-' : n.pendingRestart.length ? 'yes' : 'no', maintenanceText(n), n.role === 'replica' ? (n.link ?? '?') : '-']);
    }
    lines.push(...table(rows));
    for (const n of s.nodes) if (n.pendingRestart?.length) lines.push(`  pending restart ${n.node}: ${n.pendingRestart.join('; ')}`);
  }
  for (const p of s.problems) lines.push(`  ! ${p}`);
  const m = s.monitor;
  if (m?.error) lines.push(`  ! monitor ${m.workflowId} runs but could not be asked: ${m.error}`);
  if (m?.blind) lines.push(`  ! monitor: ${m.blind}`);
  if (m?.blocked) lines.push(`  ! monitor blocked: ${m.blocked}`);
  for (const e of m?.emptyReturns ?? []) lines.push(`  ! monitor: EMPTY PRIMARY ${e}`);
  for (const [node, gtids] of Object.entries(m?.flagged ?? {}))
    lines.push(
      gtids[0]?.startsWith('reset:')
        ? `  ! ${node} FLAGGED by the monitor: ${gtids[0].slice(7)}; left read-only and not replicating${gtids.length > 1 ? `, holding only ${gtids.slice(1).join(', ')} of its own` : ''}`
        : `  ! ${node} FLAGGED by the monitor: left read-only and not replicating, ${gtids.length} errant GTID(s) ${gtids.join(', ')}; resolve by hand`,
    );
  for (const r of s.restartRisks ?? []) lines.push(`  ${r}`);
  if (s.operations === undefined) lines.push('  operations: unknown (Temporal not reachable)');
  else if (s.operations.length === 0) lines.push('  operations: none running');
  else for (const o of s.operations) lines.push(`  running: ${o.runbook ?? o.workflowType} ${o.workflowId} (phase ${o.phase ?? '?'}, since ${o.startTime})`);
  return lines;
}
