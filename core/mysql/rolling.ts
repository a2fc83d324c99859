/**
 * Rolling restart decisions for MySQL/MariaDB (GTID replication). Pure, like core/rolling.ts: the workflow
 * re-probes before every action and asks `nextMysqlRollingAction` what to do next, so stale detection is
 * stateless (version and the listed server variables, read live) and a re-run continues with the stale nodes.
 */
import { appliedPos, decideMysqlSwitchover, findMysqlPrimary, lagTransactions, whyUnprivileged, type MysqlNodeProbe, type MysqlPolicy } from './decide';
import { versionMatches, whyRestartDue, type DesiredSpec, type RollingAction } from '../rolling';

/** A MySQL probe plus what the roll compares: the asked-for variables (SHOW GLOBAL VARIABLES) and the start time. */
export interface MysqlSpecProbe extends MysqlNodeProbe {
  /** Variable name -> value as the server reports it (undefined: the server has no such variable). */
  config?: Record<string, string | undefined>;
  /** When the running server process started (epoch seconds, from UNIX_TIMESTAMP() - Uptime); its "run id". */
  startedAt?: number;
}

/** "10.11.14-MariaDB-0+deb12u2" -> "mariadb 10.11.14"; "8.0.36" -> "mysql 8.0.36" (matched by versionMatches). */
export function mysqlVersionName(raw: string | undefined): string | undefined {
  if (!raw) return undefined;
  const num = /^(\d+(?:\.\d+)*)/.exec(raw)?.[1] ?? raw;
  return `${/mariadb/i.test(raw) ? 'mariadb' : 'mysql'} ${num}`;
}

/** Server variables compare case-insensitively (ON/on, OFF/off); numbers as the server prints them. */
const sameValue = (have: string | undefined, want: string) => have !== undefined && have.toLowerCase() === want.toLowerCase();

/** Why a node differs from the desired spec, or undefined when it is current. */
export function whyMysqlStale(n: MysqlSpecProbe, desired: DesiredSpec): string | undefined {
  const diffs: string[] = [];
  const version = mysqlVersionName(n.version);
  if (desired.version && !versionMatches(version, desired.version)) diffs.push(`runs ${version}, wanted ${desired.version}`);
  const due = whyRestartDue(n.startedAt === undefined ? undefined : n.startedAt * 1000, desired, n.node);
  if (due) diffs.push(due);
  for (const [k, v] of Object.entries(desired.config)) {
    const have = n.config?.[k];
    if (!sameValue(have, v)) diffs.push(`${k}=${have ?? '(unknown variable)'}, wanted ${v}`);
  }
  return diffs.length ? diffs.join('; ') : undefined;
}

/**
 * The next step: replicas first (one at a time, in name order), each only while another replica is healthy
 * when the primary is stale too; then hand the primary over (the switchover's own candidate rules, among the
 * current replicas only); then the old primary, by then a replica. Guards: a single writable primary, every
 * node reachable, a healthy replica (both threads running, within the lag limit).
 */
export function nextMysqlRollingAction(nodes: MysqlSpecProbe[], desired: DesiredSpec, opts: { policy: MysqlPolicy }): RollingAction {
  const found = findMysqlPrimary(nodes);
  if ('refusal' in found) return { kind: 'refuse', code: found.refusal.code, reason: found.refusal.message };
  const primary = found.primary as MysqlSpecProbe;
  const down = nodes.filter((n) => !n.reachable);
  if (down.length) return { kind: 'refuse', code: 'NodeDown', reason: `${down.map((n) => n.node).join(', ')} unreachable; a rolling restart needs every node up` };
  // Every node is restarted and the primary handed over: a missing privilege or an errant replica refuses the
  // roll before the first restart, not at the handover after the replicas were restarted.
  const unprivileged = whyUnprivileged(nodes);
  if (unprivileged) return { kind: 'refuse', code: 'MissingPrivilege', reason: unprivileged };
  const errant = nodes.filter((n) => n.node !== found.primary.node && n.errantGtids?.length);
  if (errant.length)
    return { kind: 'refuse', code: 'ErrantGtids', reason: errant.map((n) => `${n.node} has errant GTIDs ${n.errantGtids!.join(',')}: it could not follow a new primary`).join('; ') };
  const replicas = nodes.filter((n) => n.node !== primary.node);
  const healthy = (n: MysqlSpecProbe) =>
    n.role === 'replica' && n.sourceNode === primary.node && n.ioRunning === 'Yes' && !!n.sqlRunning && lagTransactions(appliedPos(n), primary.gtidBinlogPos) <= opts.policy.maxLagTransactions;
  if (!replicas.some(healthy)) return { kind: 'refuse', code: 'NoHealthyReplica', reason: `no replica of ${primary.node} is replicating and within ${opts.policy.maxLagTransactions} transactions` };

  const staleReplicas = replicas.filter((n) => whyMysqlStale(n, desired)).sort((a, b) => (a.node < b.node ? -1 : 1));
  const primaryStale = whyMysqlStale(primary, desired);
  if (staleReplicas.length) {
    const r = staleReplicas[0];
    const othersHealthy = replicas.filter((n) => n.node !== r.node && healthy(n));
    if (primaryStale && othersHealthy.length === 0 && replicas.length > 1)
      return { kind: 'refuse', code: 'LastInSyncReplica', reason: `${r.node} is the last healthy replica and the primary ${primary.node} is stale; refusing to restart it` };
    return { kind: 'restart', node: r.node, role: 'replica', runId: String(r.startedAt ?? ''), primary: primary.node, reason: whyMysqlStale(r, desired)! };
  }
  if (primaryStale) {
    const fresh = nodes.filter((n) => n.node === primary.node || !whyMysqlStale(n, desired));
    const d = decideMysqlSwitchover(fresh, { policy: opts.policy });
    if (!d.ok) return { kind: 'refuse', code: d.refusal.code, reason: `primary ${primary.node} is stale (${primaryStale}) but no current replica can take over: ${d.refusal.message}` };
    return { kind: 'handover', from: primary.node, to: d.decision.candidate, reason: primaryStale };
  }
  return { kind: 'done' };
}
