/**
 * Dolt read replicas through a remote (engine: dolt, topology: remote-replicas): what a probe of a node says,
 * the lag as a commit distance, and the pure decision of the switchover (Dolt's manual steps for remote-based
 * replicas: stop writes, push, promote a replica, re-point the others). No I/O.
 *
 * A primary has @@dolt_replicate_to_remote set to the cluster's remote name: every Dolt commit (every COMMIT
 * with @@dolt_transaction_commit) is pushed to that remote. A read replica has @@dolt_read_replica_remote set
 * to it and pulls from it when a transaction starts. Dolt reads both variables when a database is loaded (at
 * server start), so a node changes its part only by a restart with a new configuration: Handover writes the
 * node's sql-server config (behavior.read_only and system_variables) and restarts it through the inventory's
 * controller. `fenced` is a node configured as a primary but started read-only: it takes no writes, pushes
 * nothing new and pulls nothing (so the commits it holds stay put while a replica is compared with it).
 */
import { ErrorType, type ErrorTypeName } from '../errors';
import type { Promotion } from '../types';

export type DoltRemoteRole = 'primary' | 'replica' | 'fenced' | 'misconfigured';

/** A node's heads: database -> branch -> commit hash. */
export type DoltHeads = Record<string, Record<string, string>>;

export interface DoltRemoteNodeProbe {
  node: string;
  address: string;
  promotion?: Promotion;
  reachable: boolean;
  error?: string;
  version?: string;
  readOnly?: boolean;
  /** @@dolt_replicate_to_remote ('' when unset). */
  replicateTo?: string;
  /** @@dolt_read_replica_remote ('' when unset). */
  readReplicaRemote?: string;
  role?: DoltRemoteRole;
  heads?: DoltHeads;
  /** Databases that have no remote of the cluster's remote name (they cannot replicate). */
  missingRemote?: string[];
  /**
   * A replica: commits the primary has that it lacks (summed over databases and branches), measured on the
   * primary with dolt_log('<replica head>..<branch>'); null when a replica head is not in the primary's
   * history (diverged) or the primary could not be asked; undefined on the primary.
   */
  behindCommits?: number | null;
  behindDetail?: string;
}

/** The part a node plays, from what it says about itself. */
export function remoteRoleOf(p: { readOnly?: boolean; replicateTo?: string; readReplicaRemote?: string }, remote: string): DoltRemoteRole {
  const pushes = p.replicateTo === remote;
  const pulls = p.readReplicaRemote === remote;
  if (pushes && !pulls) return p.readOnly ? 'fenced' : 'primary';
  if (pulls && !pushes && p.readOnly) return 'replica';
  return 'misconfigured';
}

/** The settings a node is restarted with for a part (behavior.read_only and the replication system variables). */
export interface DoltRemoteSettings {
  readOnly: boolean;
  replicateTo: string;
  readReplicaRemote: string;
}

export function settingsFor(role: 'primary' | 'fenced' | 'replica', remote: string): DoltRemoteSettings {
  if (role === 'replica') return { readOnly: true, replicateTo: '', readReplicaRemote: remote };
  return { readOnly: role === 'fenced', replicateTo: remote, readReplicaRemote: '' };
}

/** Branches whose hash differs between two nodes' heads (or that one of them lacks), as `db/branch`. */
export function headMismatches(a: DoltHeads, b: DoltHeads): string[] {
  const out: string[] = [];
  for (const db of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort())
    for (const br of [...new Set([...Object.keys(a[db] ?? {}), ...Object.keys(b[db] ?? {})])].sort()) if (a[db]?.[br] !== b[db]?.[br]) out.push(`${db}/${br}`);
  return out;
}

export const describeRemoteNode = (p: DoltRemoteNodeProbe) =>
  !p.reachable ? `${p.node} unreachable` : `${p.node}=${p.role}${p.behindCommits === undefined ? '' : p.behindCommits === null ? ' (diverged)' : ` (${p.behindCommits} behind)`}`;

export interface DoltRemoteSwitchoverDecision {
  primary: string;
  candidate: string;
  /** The other replicas: they read from the same remote, so they follow the new primary unchanged (checked). */
  followers: string[];
  remote: string;
  reasons: string[];
}

export type DecidedRemote<T> = { ok: true; decision: T } | { ok: false; refusal: { errorType: ErrorTypeName; message: string } };

const refuse = (errorType: ErrorTypeName, message: string): { ok: false; refusal: { errorType: ErrorTypeName; message: string } } => ({ ok: false, refusal: { errorType, message } });

/**
 * Planned switchover through the remote: every node reachable, exactly one primary (writable, pushing to the
 * remote), the candidate a read replica of the remote holding every database of the primary, with the remote
 * configured in each, and not diverged from the primary.
 */
export function decideDoltRemoteSwitchover(probes: DoltRemoteNodeProbe[], o: { to?: string; remote: string }): DecidedRemote<DoltRemoteSwitchoverDecision> {
  const down = probes.filter((p) => !p.reachable);
  if (down.length) return refuse(ErrorType.PreconditionFailed, `${down.map((p) => `${p.node} unreachable${p.error ? ` (${p.error})` : ''}`).join('; ')}: a switchover through the remote needs every node; nothing was changed`);
  const bad = probes.filter((p) => p.role === 'misconfigured' || p.role === 'fenced');
  if (bad.length)
    return refuse(
      ErrorType.UnexpectedTopology,
      `${bad.map((p) => `${p.node} is ${p.role} (read_only ${p.readOnly ? 1 : 0}, dolt_replicate_to_remote '${p.replicateTo ?? ''}', dolt_read_replica_remote '${p.readReplicaRemote ?? ''}')`).join('; ')}: want one writable primary pushing to ${o.remote} and read-only replicas pulling from it; nothing was changed`,
    );
  const primaries = probes.filter((p) => p.role === 'primary');
  if (primaries.length !== 1) return refuse(ErrorType.UnexpectedTopology, primaries.length ? `${primaries.length} primaries (${primaries.map((p) => p.node).join(', ')}); nothing was changed` : 'no primary (no writable node pushes to the remote); nothing was changed');
  const primary = primaries[0];
  let candidate: DoltRemoteNodeProbe | undefined;
  if (o.to) {
    candidate = probes.find((p) => p.node === o.to);
    if (!candidate) return refuse(ErrorType.UnknownNode, `--to ${o.to}: no such node (nodes: ${probes.map((p) => p.node).join(', ')})`);
    if (candidate === primary) return refuse(ErrorType.PreconditionFailed, `--to ${o.to} is already the primary; nothing was changed`);
    if (candidate.promotion === 'never') return refuse(ErrorType.PreconditionFailed, `--to ${o.to} has promotion: never in the inventory; nothing was changed`);
  } else {
    const eligible = probes.filter((p) => p !== primary && p.promotion !== 'never');
    candidate = eligible.find((p) => p.promotion === 'prefer') ?? eligible[0];
    if (!candidate) return refuse(ErrorType.PreconditionFailed, 'no replica may be promoted (promotion: never on every one); nothing was changed');
  }
  const primaryDbs = Object.keys(primary.heads ?? {});
  const lacking = primaryDbs.filter((d) => !(d in (candidate.heads ?? {})));
  if (lacking.length) return refuse(ErrorType.PreconditionFailed, `${candidate.node} lacks database(s) ${lacking.join(', ')} of ${primary.node}; nothing was changed`);
  for (const p of [primary, candidate])
    if (p.missingRemote?.length) return refuse(ErrorType.PreconditionFailed, `${p.node} has no remote ${o.remote} in ${p.missingRemote.join(', ')}; nothing was changed`);
  if (candidate.behindCommits === null) return refuse(ErrorType.PreconditionFailed, `${candidate.node} has diverged from ${primary.node} (${candidate.behindDetail ?? 'a head not in the primary history'}); nothing was changed`);
  return {
    ok: true,
    decision: {
      primary: primary.node,
      candidate: candidate.node,
      followers: probes.filter((p) => p !== primary && p !== candidate).map((p) => p.node),
      remote: o.remote,
      reasons: [
        o.to ? `--to ${o.to}` : candidate.promotion === 'prefer' ? `${candidate.node} has promotion: prefer` : `${candidate.node} is a read replica of ${o.remote}`,
        `${primary.node} pushes to ${o.remote}; ${candidate.node} ${candidate.behindCommits ?? 0} commit(s) behind`,
      ],
    },
  };
}
