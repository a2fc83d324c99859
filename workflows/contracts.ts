/**
 * The inputs and results the CLI and the engine runbooks share, written once (each engine's runbook takes the
 * same input; the engine is the inventory's, looked up by workflows/route.ts). Names and numbers only: a
 * workflow input never carries a secret.
 */
import type { DesiredSpec } from '../core/rolling';
import type { ClusterStanding } from '../core/standing';
import type { RedisClusterProbe } from '../core/types';
import type { MysqlFailoverProbe } from '../core/mysql/failover';

/** A planned switchover, whatever the engine: names only, never a credential. */
export interface SwitchoverInput {
  cluster: string;
  /** Node to promote; chosen by the decision when omitted. */
  to?: string;
  /** Redis Cluster: the shard to switch over, named by one of its nodes or a slot it serves (a replica named here is the candidate). */
  shard?: string;
  /** Stop after the decision and return the plan. */
  dryRun?: boolean;
  /** Who asked (shown in the audit trail); never a credential. */
  requestedBy?: string;
  /** Publish the plan after probe+decide and wait for the `approve` update before changing anything. */
  requireApproval?: boolean;
  /** How long to wait for approval (default 30 min); then the run ends with nothing changed. */
  approvalTimeoutMs?: number;
  /**
   * --allow-degraded: hand over even when another replica will not follow the new primary (link down, auth
   * failure, unreachable): the run finishes and reports it (exit 5). Without it such a switchover is refused up
   * front, nothing changed. Set only when the flag was given (--allow-degraded true, --no-allow-degraded
   * false); absent, the inventory's `policy.allowDegraded` decides (older inputs replay unchanged).
   */
  allowDegraded?: boolean;
  /** --at TIME: epoch ms; the run waits in a visible `scheduled` step until then (abortable, nothing changed). */
  startAt?: number;
}

/** A rolling restart, whatever the engine (Sentinels only on a Sentinel topology). */
export interface RollingRestartInput {
  cluster: string;
  /** Config values every node must run with. */
  set?: Record<string, string>;
  /** Version every node must run (the controller maps it to a binary or a template). */
  version?: string;
  /** Sentinel topology: restart every Sentinel too (one at a time, keeping quorum), not only on a version change. */
  includeSentinels?: boolean;
  /** Restart every node once even when nothing changes (OS patching): every node started before the roll. */
  restartAll?: boolean;
  /** --reason: why every node is restarted once (implies restartAll); recorded in the audit, the report and the summary. */
  reason?: string;
  /** Probe and report what is stale and the first action; change nothing. */
  dryRun?: boolean;
  requestedBy?: string;
  /** Probe, decide, publish the plan and wait for the `approve` update before the first restart. */
  requireApproval?: boolean;
  /** How long to wait for approval (default 30 min); then the run ends with nothing changed. */
  approvalTimeoutMs?: number;
  /**
   * Nodes in maintenance (handover maintenance): `skip` leaves them as they are (reported, exit 5), `wait` waits
   * for their window to end before restarting them. Absent (runs started before it): windows are not read.
   */
  maintenance?: 'skip' | 'wait';
}

export interface RollingRestartReport {
  runbook: 'rolling-restart';
  cluster: string;
  dryRun: boolean;
  desired: DesiredSpec;
  /** Stale nodes found by the first probe, with why. */
  staleAtStart: { node: string; reason: string }[];
  /** Restarts in the order they happened, with the node's role at that moment and the primary it follows. */
  restarts: { node: string; role: 'replica'; primary: string; reason: string }[];
  handovers: { from: string; to: string; writePauseMs: number; workflowId: string }[];
  /** Sentinels restarted, in order (sentinel topology). */
  sentinelRestarts: string[];
  primary: string;
  steps: { step: string; ms: number }[];
  audit: string[];
  /** --require-approval: who approved which plan. */
  approval?: { approver: string; planHash: string };
  /** --reason / --restart-all: the restart token (the frozen start and the reason). */
  restartToken?: string;
  /** Operator hooks the roll itself ran (pre/post rolling restart, a Redis Cluster shard's post-promotion); a handover's own are in its child switchover's report. */
  hooks?: { hook: string; ok: boolean; detail: string }[];
  /** Nodes left unrestarted because they were in maintenance (`--maintenance skip`), with the window. */
  skipped?: { node: string; reason: string }[];
  /** Where the cluster stands at the end (core/standing.ts); absent for a Redis Cluster (a primary per shard) and in older runs. */
  standing?: ClusterStanding;
}

/** An unplanned failover, whatever the engine: names and positions only. */
export interface FailoverInput {
  cluster: string;
  /** Skip the dead-primary confirmation (the primary must still not answer as primary). */
  force?: boolean;
  /** Redis Cluster: the shard whose primary died, named by that primary or one of its replicas. */
  shard?: string;
  /** Set by the monitor: it already confirmed the primary dead over its window. */
  confirmedBy?: string;
  /** The primary as the monitor last saw it alive: its offset (Redis) or gtid_binlog_pos (MySQL), and when (epoch ms), for the data-loss window. */
  lastKnown?: { primary: string; offset: number; gtid?: string; seenAt?: number };
  /** Epoch ms of the monitor's first probe round, after its last sight, that did not find the primary alive. */
  deadSince?: number;
  /**
   * Set by a monitor whose detection loop confirmed the death (activities/monitor.ts): the verdict and the probe of
   * the confirming round. The failover decides from it and does not probe the dead primary again.
   */
  confirmed?: {
    reason: string;
    probe: RedisClusterProbe | MysqlFailoverProbe;
    /** Redis/Valkey: the dead primary answers again, restarted EMPTY (core/empty-primary.ts): replaced all the same, never followed. */
    returnedEmpty?: { node: string; runId?: string };
  };
  requestedBy?: string;
  /** Stop after confirm and decide and return the plan (handover plan failover). */
  dryRun?: boolean;
  /** On-demand runs: publish the plan after decide and wait for the `approve` update before promoting. */
  requireApproval?: boolean;
  approvalTimeoutMs?: number;
}

/** What `handover plan failover` prints: the failover as it would run; nothing was changed. */
export interface FailoverPlanReport {
  runbook: 'failover';
  engine?: 'mysql';
  dryRun: true;
  cluster: string;
  oldPrimary: string;
  newPrimary: string;
  reasons: string[];
  plan: string[];
  steps: { step: string; ms: number }[];
  audit: string[];
}
