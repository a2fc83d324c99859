/**
 * Dolt sql-server cluster mode (engine: dolt): what a probe of a node says, and the pure decisions of the
 * switchover and the failover. No I/O.
 *
 * In cluster mode every server has a role (`primary` or `standby`) at an epoch (@@dolt_cluster_role,
 * @@dolt_cluster_role_epoch). The primary pushes every database (and users, grants) to each standby remote of
 * its `cluster:` config and reports each push in `dolt_cluster.dolt_cluster_status` (replication_lag_millis,
 * current_error). A role changes only through `CALL dolt_assume_cluster_role(role, epoch)`: the same role at a
 * higher epoch, or another role at a strictly higher epoch. A primary asked to become standby first blocks
 * writes and waits until every standby has everything it acknowledged (it fails and stays primary when it
 * cannot); a server that hears of a primary at a higher epoch becomes standby by itself; two primaries at one
 * epoch both stop taking writes (`detected_broken_config`).
 */
import { ErrorType, type ErrorTypeName } from '../errors';
import type { Promotion } from '../types';

export type DoltRole = 'primary' | 'standby' | 'detected_broken_config';

/** One row of dolt_cluster.dolt_cluster_status: one database pushed to (primary) or received from (standby) one remote. */
export interface DoltReplicationRow {
  database: string;
  remote: string;
  role: string;
  epoch: number;
  /** Primary: how far the remote is behind (ms); null when it has not been reached yet. */
  lagMillis: number | null;
  lastUpdate: string | null;
  error: string | null;
}

export interface DoltNodeProbe {
  node: string;
  address: string;
  promotion?: Promotion;
  reachable: boolean;
  error?: string;
  role?: DoltRole;
  epoch?: number;
  readOnly?: boolean;
  version?: string;
  /** The user databases (not information_schema, mysql, dolt_cluster). */
  databases?: string[];
  replication?: DoltReplicationRow[];
  /** dolt_hashof_db() of each user database (the working set of its checked-out branch). */
  hashes?: Record<string, string>;
}

export interface DoltPolicy {
  catchUpTimeoutMs: number;
  verifyTimeoutMs: number;
  /** The largest replication_lag_millis a candidate may be behind when chosen (policy maxLagSeconds × 1000). */
  maxLagMillis: number;
  /**
   * How close (replication_lag_millis) every standby must be before the demotion (policy pauseTimeoutMs): the
   * demotion blocks writes until the standbys have everything, so this bounds that pause. Under a steady write
   * load the lag is rarely 0 (every commit is behind until its push): "caught up" is Dolt's demotion's job.
   */
  nearMillis: number;
  probeIntervalMs: number;
  probesToConfirm: number;
}

export interface DoltRefusal {
  errorType: ErrorTypeName;
  message: string;
}

export interface DoltSwitchoverDecision {
  primary: string;
  candidate: string;
  /** The other standbys: moved to the new epoch after the promotion. */
  followers: string[];
  /** The epoch the old primary is demoted at and the candidate promoted at: one more than any seen. */
  epoch: number;
  fromEpoch: number;
  reasons: string[];
}

export type Decided<T> = { ok: true; decision: T } | { ok: false; refusal: DoltRefusal };

const refuse = (errorType: ErrorTypeName, message: string): { ok: false; refusal: DoltRefusal } => ({ ok: false, refusal: { errorType, message } });

/** Every epoch a probe saw: each node's and each status row's. */
export function maxEpoch(probes: DoltNodeProbe[]): number {
  let m = 0;
  for (const p of probes) {
    if (p.epoch !== undefined) m = Math.max(m, p.epoch);
    for (const r of p.replication ?? []) m = Math.max(m, r.epoch);
  }
  return m;
}

/** The primary's rows that are not caught up: a lag other than 0, or an error. */
export function laggingRows(primary: DoltNodeProbe, maxLagMillis = 0): DoltReplicationRow[] {
  return (primary.replication ?? []).filter((r) => r.error !== null || r.lagMillis === null || r.lagMillis > maxLagMillis);
}

export const describeRow = (r: DoltReplicationRow) => `${r.database}→${r.remote} ${r.error ? `error: ${r.error}` : r.lagMillis === null ? 'not reached yet' : `lag ${r.lagMillis} ms`}`;

/**
 * Planned switchover of a primary/standby pair (or one primary and several standbys): exactly one reachable
 * primary, every node reachable (the primary's demotion waits for every standby), the candidate a standby at
 * the primary's epoch, the primary's pushes to every standby without error and within maxLagMillis.
 */
export function decideDoltSwitchover(probes: DoltNodeProbe[], o: { to?: string; policy: Pick<DoltPolicy, 'maxLagMillis'> }): Decided<DoltSwitchoverDecision> {
  const down = probes.filter((p) => !p.reachable);
  if (down.length) return refuse(ErrorType.PreconditionFailed, `${down.map((p) => `${p.node} unreachable${p.error ? ` (${p.error})` : ''}`).join('; ')}: a Dolt switchover needs every node (the primary's demotion waits for every standby); nothing was changed`);
  const broken = probes.filter((p) => p.role === 'detected_broken_config');
  if (broken.length) return refuse(ErrorType.UnexpectedTopology, `${broken.map((p) => p.node).join(', ')} detected two primaries at one epoch (detected_broken_config) and take no writes: choose the primary and run handover failover; nothing was changed`);
  const primaries = probes.filter((p) => p.role === 'primary');
  if (primaries.length !== 1) return refuse(ErrorType.UnexpectedTopology, primaries.length ? `${primaries.length} primaries (${primaries.map((p) => `${p.node}@${p.epoch}`).join(', ')}); nothing was changed` : 'no primary: every node is a standby (handover failover promotes one); nothing was changed');
  const primary = primaries[0];
  const standbys = probes.filter((p) => p !== primary);
  let candidate: DoltNodeProbe | undefined;
  if (o.to) {
    candidate = probes.find((p) => p.node === o.to);
    if (!candidate) return refuse(ErrorType.UnknownNode, `--to ${o.to}: no such node (nodes: ${probes.map((p) => p.node).join(', ')})`);
    if (candidate === primary) return refuse(ErrorType.PreconditionFailed, `--to ${o.to} is already the primary; nothing was changed`);
    if (candidate.promotion === 'never') return refuse(ErrorType.PreconditionFailed, `--to ${o.to} has promotion: never in the inventory; nothing was changed`);
  } else {
    const eligible = standbys.filter((p) => p.promotion !== 'never');
    candidate = eligible.find((p) => p.promotion === 'prefer') ?? eligible[0];
    if (!candidate) return refuse(ErrorType.PreconditionFailed, 'no standby may be promoted (promotion: never on every one); nothing was changed');
  }
  if (candidate.role !== 'standby') return refuse(ErrorType.PreconditionFailed, `${candidate.node} is ${candidate.role ?? 'of unknown role'}, not a standby; nothing was changed`);
  if (candidate.epoch !== primary.epoch)
    return refuse(ErrorType.PreconditionFailed, `${candidate.node} is a standby at epoch ${candidate.epoch}, the primary ${primary.node} at ${primary.epoch}: it does not follow this primary; nothing was changed`);
  const behind = laggingRows(primary, o.policy.maxLagMillis);
  if (behind.length) return refuse(ErrorType.PreconditionFailed, `${primary.node}'s standbys are not caught up: ${behind.map(describeRow).join('; ')}; nothing was changed`);
  const epoch = maxEpoch(probes) + 1;
  return {
    ok: true,
    decision: {
      primary: primary.node,
      candidate: candidate.node,
      followers: standbys.filter((p) => p !== candidate).map((p) => p.node),
      epoch,
      fromEpoch: primary.epoch ?? 0,
      reasons: [
        o.to ? `--to ${o.to}` : candidate.promotion === 'prefer' ? `${candidate.node} has promotion: prefer` : `${candidate.node} is a standby of ${primary.node}`,
        `${primary.node} primary at epoch ${primary.epoch}, every standby caught up (${(primary.replication ?? []).map(describeRow).join('; ') || 'no databases'})`,
        `new epoch ${epoch}`,
      ],
    },
  };
}

export interface DoltFailoverDecision {
  candidate: string;
  /** Reachable standbys other than the candidate: moved to the new epoch after the promotion. */
  followers: string[];
  /** Nodes that did not answer: the dead primary among them; each is demoted by the new epoch when it returns. */
  unreachable: string[];
  epoch: number;
  reasons: string[];
}

/**
 * Unplanned failover: no reachable node is primary (a reachable primary is refused: use switchover), and a
 * reachable standby may be promoted. Among several, `prefer` first, then the one that last heard from the
 * primary (its status rows' newest last_update), then inventory order. The epoch is one more than any seen,
 * so the old primary, when it returns at its old epoch, hears of a primary at a higher epoch and steps down.
 */
export function decideDoltFailover(probes: DoltNodeProbe[]): Decided<DoltFailoverDecision> {
  const live = probes.filter((p) => p.reachable);
  const primary = live.find((p) => p.role === 'primary');
  if (primary) return refuse(ErrorType.PreconditionFailed, `${primary.node} answers as primary at epoch ${primary.epoch}: the primary is not dead (a planned move is handover switchover); nothing was changed`);
  const candidates = live.filter((p) => (p.role === 'standby' || p.role === 'detected_broken_config') && p.promotion !== 'never');
  if (!candidates.length)
    return refuse(ErrorType.PreconditionFailed, `no reachable standby may be promoted (${probes.map((p) => `${p.node}: ${p.reachable ? `${p.role}${p.promotion === 'never' ? ', promotion never' : ''}` : 'unreachable'}`).join('; ')}); nothing was changed`);
  const newest = (p: DoltNodeProbe) => (p.replication ?? []).reduce((m, r) => (r.lastUpdate && r.lastUpdate > m ? r.lastUpdate : m), '');
  const ranked = [...candidates].sort((a, b) => (a.promotion === 'prefer' ? 0 : 1) - (b.promotion === 'prefer' ? 0 : 1) || newest(b).localeCompare(newest(a)));
  const c = ranked[0];
  const epoch = maxEpoch(probes) + 1;
  return {
    ok: true,
    decision: {
      candidate: c.node,
      followers: live.filter((p) => p !== c).map((p) => p.node),
      unreachable: probes.filter((p) => !p.reachable).map((p) => p.node),
      epoch,
      reasons: [`no reachable primary`, `${c.node} ${c.role} at epoch ${c.epoch}${newest(c) ? `, last update from the primary ${newest(c)}` : ''}${c.promotion === 'prefer' ? ', promotion: prefer' : ''}`, `new epoch ${epoch}`],
    },
  };
}

/** Whether one probe round finds the primary dead: no reachable node answers as primary. */
export function doltPrimaryAlive(probes: DoltNodeProbe[]): string | undefined {
  return probes.find((p) => p.reachable && p.role === 'primary')?.node;
}

/** Databases whose hash differs between two nodes (or that one of them lacks). */
export function hashMismatches(a: Record<string, string>, b: Record<string, string>): string[] {
  const names = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  return names.filter((d) => a[d] !== b[d]);
}
