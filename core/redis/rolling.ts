/**
 * Rolling restart decisions for Redis/Valkey replication (and Sentinel). Pure: the workflow re-probes before every action and asks `nextRollingAction`
 * what to do next, so stale detection is stateless and a re-run after a crash or a partial roll continues
 * with the stale nodes only.
 */
import { decideRedisSwitchover, lagBytes, findPrimary, type SwitchoverPolicy } from './decide';
import type { RedisNodeProbe } from '../types';
import { versionMatches, whyRestartDue, type DesiredSpec, type RollingAction } from '../rolling';

/** A probe plus what the rolling restart needs: the running config values asked for, persistence. */
export interface SpecProbe extends RedisNodeProbe {
  config?: Record<string, string>;
  /** save != "" or appendonly yes */
  persistent?: boolean;
  /** Redis Cluster only: cluster_state:ok as this node sees it, and the slots it serves as a primary. */
  clusterOk?: boolean;
  slots?: string;
  /** When the process started (epoch ms, from INFO uptime_in_seconds; second resolution). */
  startedAtMs?: number;
}

/** Why a node is stale (differs from the desired spec), or undefined when it is current. */
export function whyStale(n: SpecProbe, desired: DesiredSpec): string | undefined {
  const diffs: string[] = [];
  if (desired.version && !versionMatches(n.version, desired.version)) diffs.push(`runs ${n.version}, wanted ${desired.version}`);
  const due = whyRestartDue(n.startedAtMs, desired, n.node);
  if (due) diffs.push(due);
  for (const [k, v] of Object.entries(desired.config)) {
    const have = n.config?.[k];
    if (have !== v) diffs.push(`${k}=${have ?? '(unset)'}, wanted ${v}`);
  }
  return diffs.length ? diffs.join('; ') : undefined;
}

export interface RollingOptions {
  policy: SwitchoverPolicy;
  /** The node controller restarts crashed nodes by itself. */
  autoRestart: boolean;
}

/**
 * The next step of a rolling restart: replicas first (one at a time, in name order), then hand the primary
 * over to a replica that is current AND in sync, then the old primary (by then a replica). Guards:
 * a single live primary; every node reachable; a healthy replica; never the last in-sync replica while the
 * primary is stale; never a primary without persistence under an auto-restarting controller.
 */
export function nextRollingAction(nodes: SpecProbe[], desired: DesiredSpec, opts: RollingOptions): RollingAction {
  const found = findPrimary(nodes);
  if ('refusal' in found) return { kind: 'refuse', code: found.refusal.code, reason: found.refusal.message };
  const primary = found.primary;
  const down = nodes.filter((n) => !n.reachable);
  if (down.length) return { kind: 'refuse', code: 'NodeDown', reason: `${down.map((n) => n.node).join(', ')} unreachable; a rolling restart needs every node up` };
  if (opts.autoRestart && nodes.some((n) => n.persistent === false))
    return {
      kind: 'refuse',
      code: 'UnsafePersistence',
      reason: `persistence is off on ${nodes.filter((n) => n.persistent === false).map((n) => n.node).join(', ')} and the node controller restarts nodes by itself: a primary that came back empty would wipe its replicas`,
    };
  const replicas = nodes.filter((n) => n.node !== primary.node);
  const inSync = (n: SpecProbe) => n.role === 'replica' && n.primaryNode === primary.node && n.linkUp === true && lagBytes(n, primary) <= opts.policy.maxLagBytes;
  if (!replicas.some(inSync)) return { kind: 'refuse', code: 'NoHealthyReplica', reason: `no replica of ${primary.node} is linked and in sync` };

  const staleReplicas = replicas.filter((n) => whyStale(n, desired)).sort((a, b) => (a.node < b.node ? -1 : 1));
  const primaryStale = whyStale(primary, desired);
  if (staleReplicas.length) {
    const r = staleReplicas[0];
    const othersInSync = replicas.filter((n) => n.node !== r.node && inSync(n));
    if (primaryStale && othersInSync.length === 0 && replicas.length > 1)
      return { kind: 'refuse', code: 'LastInSyncReplica', reason: `${r.node} is the last in-sync replica and the primary ${primary.node} is stale; refusing to restart it` };
    return { kind: 'restart', node: r.node, role: 'replica', runId: r.runId ?? '', primary: primary.node, reason: whyStale(r, desired)! };
  }
  if (primaryStale) {
    const fresh = nodes.filter((n) => n.node === primary.node || !whyStale(n, desired));
    const d = decideRedisSwitchover(fresh, { policy: opts.policy });
    if (!d.ok) return { kind: 'refuse', code: d.refusal.code, reason: `primary ${primary.node} is stale (${primaryStale}) but no current replica can take over: ${d.refusal.message}` };
    return { kind: 'handover', from: primary.node, to: d.decision.candidate, reason: primaryStale };
  }
  return { kind: 'done' };
}

/** What one probe of one Sentinel saw. */
export interface SentinelProbe {
  id: string;
  reachable: boolean;
  version?: string;
  runId?: string;
  /** When the process started (ms since epoch, from its uptime; second resolution). */
  startedAtMs?: number;
  /** It knows the master, the expected number of replicas and of other Sentinels. */
  healthy?: boolean;
  detail?: string;
}

export type SentinelAction = { kind: 'restart'; id: string; runId: string; reason: string } | { kind: 'done' } | { kind: 'refuse'; reason: string };

/**
 * Sentinels one at a time, keeping quorum: a Sentinel is stale when it runs another version than wanted, or
 * (with includeSentinels) when it was started before the roll began. One is restarted only while every
 * other Sentinel is healthy, so the others keep a majority throughout.
 */
export function nextSentinelRestart(
  sentinels: SentinelProbe[],
  o: { version?: string; includeSentinels: boolean; rollStartedAtMs: number },
): SentinelAction {
  const stale = sentinels
    .map((s) => ({
      s,
      why:
        o.version && !versionMatches(s.version, o.version)
          ? `runs ${s.version}, wanted ${o.version}`
          : o.includeSentinels && (s.startedAtMs ?? 0) < o.rollStartedAtMs - 2000
            ? 'started before this roll'
            : undefined,
    }))
    .filter((x) => x.why);
  if (!stale.length) return { kind: 'done' };
  const target = stale[0];
  const unhealthy = sentinels.filter((s) => s.id !== target.s.id && !(s.reachable && s.healthy));
  if (unhealthy.length)
    return { kind: 'refuse', reason: `not restarting ${target.s.id}: ${unhealthy.map((s) => `${s.id} ${s.reachable ? s.detail ?? 'unhealthy' : 'unreachable'}`).join(', ')}; restarting it now could lose the quorum` };
  return { kind: 'restart', id: target.s.id, runId: target.s.runId ?? '', reason: target.why! };
}
