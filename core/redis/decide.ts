/**
 * Candidate choice for a Redis/Valkey planned switchover. Pure: no I/O, no clock; unit-tested without Temporal
 * and called by the workflow (decide step) and by the veto activity (re-check before the point of no return).
 *
 * Shape follows orchestrator's candidate choice: the chosen replica, and every other node sorted into
 * ahead / equal / lagging / cannotReplicate relative to it, each rejected node with a reason.
 */
import { ErrorType } from '../errors';
import { describeMissingRedisPermissions } from './permissions';
import { PROMOTION_RANK, type DecideResult as GenericDecideResult, type Refusal as GenericRefusal, type RedisNodeProbe } from '../types';

export interface SwitchoverPolicy {
  /** Largest replication lag (bytes) a candidate may have when chosen. */
  maxLagBytes: number;
}

export const DEFAULT_SWITCHOVER_POLICY: SwitchoverPolicy = { maxLagBytes: 1024 * 1024 };

export interface RankedNode {
  node: string;
  offset?: number;
  lagBytes?: number;
  reason: string;
}

export interface SwitchoverDecision {
  primary: string;
  candidate: string;
  primaryOffset: number;
  candidateOffset: number;
  /** Why the candidate won. */
  reasons: string[];
  ahead: RankedNode[];
  equal: RankedNode[];
  lagging: RankedNode[];
  cannotReplicate: RankedNode[];
  /** The other replicas that must follow the new primary (by name, sorted). */
  followers: string[];
}

export type Refusal = GenericRefusal<RankedNode>;
export type DecideResult = GenericDecideResult<SwitchoverDecision, RankedNode>;

/**
 * Why `replica` cannot be promoted in place of `primary`, or undefined when it can.
 * A predicate that refuses returns the reason, never a bare boolean.
 */
export function whyNotCandidate(
  replica: RedisNodeProbe,
  primary: RedisNodeProbe,
  policy: SwitchoverPolicy,
): { code: string; reason: string } | undefined {
  if (!replica.reachable) return { code: 'TargetUnreachable', reason: `${replica.node} is unreachable (${replica.error ?? 'no answer'})` };
  if (replica.node === primary.node) return { code: 'TargetIsPrimary', reason: `${replica.node} is already the primary` };
  if (replica.role !== 'replica') return { code: 'NotReplicaOfPrimary', reason: `${replica.node} is a ${replica.role ?? 'node of unknown role'}, not a replica` };
  if (replica.primaryNode !== primary.node)
    return {
      code: 'NotReplicaOfPrimary',
      reason: `${replica.node} replicates from ${replica.primaryNode ?? replica.primaryAddress ?? 'nowhere'}, not from the primary ${primary.node}`,
    };
  if (!replica.linkUp) return { code: 'TargetLinkDown', reason: `${replica.node} has its replication link to ${primary.node} down` };
  if (replica.promotion === 'never') return { code: 'TargetPromotionNever', reason: `${replica.node} has promotion: never in the inventory` };
  if ((primary.dbsize ?? 0) > 0 && (replica.dbsize ?? 0) === 0)
    return { code: 'TargetEmpty', reason: `${replica.node} holds no keys while the primary ${primary.node} holds ${primary.dbsize}` };
  const lag = lagBytes(replica, primary);
  if (lag > policy.maxLagBytes)
    return { code: 'TargetLagging', reason: `${replica.node} lags ${lag} bytes behind ${primary.node} (limit ${policy.maxLagBytes})` };
  return undefined;
}

export function lagBytes(replica: RedisNodeProbe, primary: RedisNodeProbe): number {
  return Math.max(0, (primary.offset ?? 0) - (replica.offset ?? 0));
}

/** The single reachable primary, or a refusal. */
export function findPrimary(nodes: RedisNodeProbe[]): { primary: RedisNodeProbe } | { refusal: Refusal } {
  const primaries = nodes.filter((n) => n.reachable && n.role === 'primary');
  if (primaries.length === 1) return { primary: primaries[0] };
  const rejected = nodes.map((n) => ({ node: n.node, reason: n.reachable ? `role ${n.role}` : `unreachable: ${n.error ?? 'no answer'}` }));
  if (primaries.length === 0)
    return {
      refusal: {
        code: 'NoPrimary',
        errorType: ErrorType.PreconditionFailed,
        message: 'no reachable primary: a planned switchover needs a live primary (use failover for a dead one)',
        rejected,
      },
    };
  return {
    refusal: {
      code: 'MultiplePrimaries',
      errorType: ErrorType.PreconditionFailed,
      message: `more than one primary: ${primaries.map((p) => p.node).join(', ')}; resolve the split before switching over`,
      rejected,
    },
  };
}

/**
 * Choose the candidate: a replica of the primary with its link up, promotion != never, not empty when the
 * primary has data, within the lag limit. Highest offset wins; ties by promotion rule (prefer first), then name.
 * With `to`, that node must itself qualify, else the refusal names the reason.
 */
export function decideRedisSwitchover(
  nodes: RedisNodeProbe[],
  opts: { to?: string; policy?: SwitchoverPolicy } = {},
): DecideResult {
  const policy = opts.policy ?? DEFAULT_SWITCHOVER_POLICY;
  const found = findPrimary(nodes);
  if ('refusal' in found) return { ok: false, refusal: found.refusal };
  const primary = found.primary;
  const unpermitted = whyUnpermitted(nodes);
  if (unpermitted)
    return {
      ok: false,
      refusal: {
        code: 'MissingPermission',
        errorType: ErrorType.PreconditionFailed,
        message: `${unpermitted}; nothing was changed`,
        rejected: nodes.filter((n) => n.missingPermissions?.length).map((n) => ({ node: n.node, offset: n.offset, reason: `lacks ${n.missingPermissions!.join(', ')}` })),
      },
    };

  const clearReplication = nodes.filter((n) => n.reachable && n.tlsReplicationOff);
  if (clearReplication.length)
    return {
      ok: false,
      refusal: {
        code: 'TlsReplicationOff',
        errorType: ErrorType.PreconditionFailed,
        message: `${whyNotTlsReplication(nodes)}; nothing was changed`,
        rejected: clearReplication.map((n) => ({ node: n.node, offset: n.offset, reason: 'tls-replication no' })),
      },
    };

  const others = nodes.filter((n) => n.node !== primary.node);
  const verdicts = others.map((n) => ({ probe: n, why: whyNotCandidate(n, primary, policy) }));
  const rejectedList: RankedNode[] = verdicts
    .filter((v) => v.why)
    .map((v) => ({ node: v.probe.node, offset: v.probe.offset, lagBytes: v.probe.reachable ? lagBytes(v.probe, primary) : undefined, reason: v.why!.reason }));

  let candidate: RedisNodeProbe | undefined;
  if (opts.to !== undefined) {
    const target = nodes.find((n) => n.node === opts.to);
    if (!target)
      return {
        ok: false,
        refusal: { code: 'UnknownNode', errorType: ErrorType.UnknownNode, message: `--to ${opts.to}: no such node in this cluster (nodes: ${nodes.map((n) => n.node).join(', ')})`, rejected: rejectedList },
      };
    const why = whyNotCandidate(target, primary, policy);
    if (why) return { ok: false, refusal: { code: why.code, errorType: ErrorType.PreconditionFailed, message: `cannot switch over to ${target.node}: ${why.reason}`, rejected: rejectedList } };
    candidate = target;
  } else {
    const eligible = verdicts.filter((v) => !v.why).map((v) => v.probe);
    eligible.sort(
      (a, b) =>
        (b.offset ?? 0) - (a.offset ?? 0) ||
        PROMOTION_RANK[a.promotion] - PROMOTION_RANK[b.promotion] ||
        (a.node < b.node ? -1 : a.node > b.node ? 1 : 0),
    );
    candidate = eligible[0];
    if (!candidate)
      return {
        ok: false,
        refusal: {
          code: 'NoEligibleCandidate',
          errorType: ErrorType.PreconditionFailed,
          message: `no replica of ${primary.node} can be promoted: ${rejectedList.map((r) => r.reason).join('; ') || 'the primary has no replicas'}`,
          rejected: rejectedList,
        },
      };
  }

  const chosen = candidate;
  const reasons = [
    `replica of ${primary.node} with its link up`,
    `offset ${chosen.offset}, ${lagBytes(chosen, primary)} bytes behind the primary (limit ${policy.maxLagBytes})`,
    `promotion: ${chosen.promotion}`,
    `${chosen.dbsize ?? 0} keys (primary has ${primary.dbsize ?? 0})`,
    opts.to !== undefined ? 'named with --to' : 'highest offset, then promotion rule, then name',
  ];
  const ahead: RankedNode[] = [];
  const equal: RankedNode[] = [];
  const lagging: RankedNode[] = [];
  const cannotReplicate: RankedNode[] = [];
  for (const v of verdicts) {
    const n = v.probe;
    if (n.node === chosen.node) continue;
    const behind = (chosen.offset ?? 0) - (n.offset ?? 0);
    const notChosen =
      behind > 0
        ? `eligible, ${behind} bytes behind ${chosen.node}`
        : behind < 0
          ? `eligible, ${-behind} bytes ahead of ${chosen.node}`
          : `eligible, same offset as ${chosen.node}; lost on ${opts.to !== undefined ? '--to' : 'promotion rule or name'}`;
    const entry: RankedNode = { node: n.node, offset: n.offset, lagBytes: n.reachable ? lagBytes(n, primary) : undefined, reason: v.why?.reason ?? notChosen };
    if (!n.reachable || n.role !== 'replica' || n.primaryNode !== primary.node || !n.linkUp) cannotReplicate.push(entry);
    else if ((n.offset ?? 0) > (chosen.offset ?? 0)) ahead.push(entry);
    else if ((n.offset ?? 0) === (chosen.offset ?? 0)) equal.push(entry);
    else lagging.push(entry);
  }
  const followers = others
    .filter((n) => n.node !== chosen.node)
    .map((n) => n.node)
    .sort();
  return {
    ok: true,
    decision: {
      primary: primary.node,
      candidate: chosen.node,
      primaryOffset: primary.offset ?? 0,
      candidateOffset: chosen.offset ?? 0,
      reasons,
      ahead,
      equal,
      lagging,
      cannotReplicate,
      followers,
    },
  };
}

/**
 * The veto: re-check a frozen decision against live state just before the point of no return.
 * Returns the reason to stop, or undefined when the decision still holds.
 */
/** Every node a switchover touches needs the automation's ACL permissions: the reason when one lacks some. */
export function whyUnpermitted(nodes: RedisNodeProbe[]): string | undefined {
  const lacking = nodes.filter((n) => n.reachable && n.missingPermissions?.length);
  return lacking.length ? lacking.map((n) => describeMissingRedisPermissions(n.node, undefined, n.missingPermissions!)).join('; ') : undefined;
}

/** A TLS cluster replicates over TLS only: the reason when a node's own config says tls-replication no. */
export function whyNotTlsReplication(nodes: RedisNodeProbe[]): string | undefined {
  const off = nodes.filter((n) => n.reachable && n.tlsReplicationOff).map((n) => n.node);
  return off.length
    ? `the cluster uses TLS but ${off.join(', ')} ${off.length > 1 ? 'have' : 'has'} tls-replication no: a replica set up by the runbook would not replicate over TLS (set tls-replication yes in the node's config)`
    : undefined;
}

export function recheckRedisDecision(
  nodes: RedisNodeProbe[],
  frozen: { primary: string; candidate: string },
  policy: SwitchoverPolicy = DEFAULT_SWITCHOVER_POLICY,
): string | undefined {
  const found = findPrimary(nodes);
  if ('refusal' in found) return found.refusal.message;
  const unpermitted = whyUnpermitted(nodes);
  if (unpermitted) return unpermitted;
  const clear = whyNotTlsReplication(nodes);
  if (clear) return clear;
  if (found.primary.node !== frozen.primary) return `the primary changed from ${frozen.primary} to ${found.primary.node} since the decision`;
  if (found.primary.failoverState && found.primary.failoverState !== 'no-failover')
    return `a failover is already in progress on ${frozen.primary} (${found.primary.failoverState})`;
  const candidate = nodes.find((n) => n.node === frozen.candidate);
  if (!candidate) return `the candidate ${frozen.candidate} is no longer in the cluster`;
  const why = whyNotCandidate(candidate, found.primary, policy);
  return why ? `the candidate no longer qualifies: ${why.reason}` : undefined;
}
