/** Shapes shared by activities, workflows and the CLI. Pure data: no secrets, only names and observations. */

export type Promotion = 'prefer' | 'neutral' | 'never';

/** Candidate order by promotion rule: prefer before neutral; never is never chosen. One ranking for every engine. */
export const PROMOTION_RANK: Record<Promotion, number> = { prefer: 0, neutral: 1, never: 2 };

/** Why a decision refused (nothing is changed): `N` is the engine's ranked-node type. */
export interface Refusal<N> {
  code: string;
  errorType: 'PreconditionFailed' | 'UnknownNode';
  message: string;
  /** Per node, why it could not be chosen. */
  rejected: N[];
}

export type DecideResult<D, N> = { ok: true; decision: D } | { ok: false; refusal: Refusal<N> };

/** What one probe of one Redis/Valkey node saw. */
export interface RedisNodeProbe {
  node: string;
  address: string; // host:port as in the inventory
  promotion: Promotion;
  reachable: boolean;
  error?: string;
  /** Commands the automation user may not run there (ACL DRYRUN; core/redis-permissions.ts), when any. */
  missingPermissions?: string[];
  role?: 'primary' | 'replica';
  /** For a replica: the inventory node it replicates from (undefined when its primary is not in the inventory). */
  primaryNode?: string;
  /** For a replica: host:port it is configured to replicate from. */
  primaryAddress?: string;
  linkUp?: boolean;
  /** master_repl_offset on a primary, slave_repl_offset on a replica (bytes of the replication stream). */
  offset?: number;
  /** On a primary: per connected replica, the offset it acknowledged, keyed by host:port. */
  replicaAcks?: Record<string, number>;
  dbsize?: number;
  version?: string;
  /** master_failover_state: no-failover | waiting-for-sync | failover-in-progress */
  failoverState?: string;
  /** The server process's run_id: a new one proves a restart. */
  runId?: string;
  /** master_replid: the replication history `offset` counts in (a full resync from another primary changes it). */
  replid?: string;
  /** save != "" or appendonly yes (CONFIG GET); undefined when the automation user may not read it. */
  persistent?: boolean;
  /** INFO server config_file: '' when the server runs without one (CONFIG REWRITE then cannot persist anything). */
  configFile?: string;
  /** On a primary: whether min-replicas-to-write is above 0 (INFO replication shows min_slaves_good_slaves then). */
  minReplicasToWrite?: boolean;
  /** A node of a cluster with TLS in the inventory whose own config says tls-replication no (CONFIG GET). */
  tlsReplicationOff?: boolean;
}

/** A cluster's runbook limits, from the inventory (see inventory/schema.ts for the defaults). */
export interface RedisPolicy {
  /** Inventory policy.allowDegraded (absent in histories recorded before it: false). */
  allowDegraded?: boolean;
  maxLagBytes: number;
  catchUpTimeoutMs: number;
  pauseTimeoutMs: number;
  verifyTimeoutMs: number;
  restartTimeoutMs: number;
  /** pause-promote (default) or the server's own FAILOVER. */
  handoverMethod: 'pause-promote' | 'failover';
  probeIntervalMs: number;
  probesToConfirm: number;
  failoverBlockMs: number;
}

/** The operator hook kinds (inventory `hooks:`): pre-hooks fail closed, post-hooks fail open. */
export const HOOK_KINDS = ['preFailover', 'postFailover', 'preSwitchover', 'postSwitchover', 'postPromotion', 'preRollingRestart', 'postRollingRestart'] as const;
export type HookKind = (typeof HOOK_KINDS)[number];
/** How many hooks of each kind the inventory lists (older probes carry only the failover kinds). */
export type HookCounts = { preFailover: number; postFailover: number } & Partial<Record<Exclude<HookKind, 'preFailover' | 'postFailover'>, number>>;

export interface RedisClusterProbe {
  cluster: string;
  engine: 'redis';
  /** replication | sentinel | cluster (absent in histories recorded before it existed: replication). */
  topology?: string;
  policy: RedisPolicy;
  /** How many operator hooks the inventory lists, by kind (absent in older histories: none). */
  hooks?: HookCounts;
  nodes: RedisNodeProbe[];
  probedAt: string;
  /** The inventory's controller restarts a crashed node by itself (controller.autoRestart; absent in older histories). */
  autoRestart?: boolean;
}

/**
 * How far a long wait has come, as a waiting activity puts it in its heartbeat details (`{ ..., progress }`).
 * The CLI reads it from the pending activity (DescribeWorkflowExecution) to draw a progress bar under the
 * running step; heartbeats are not in workflow history, so this never changes a runbook's commands.
 */
export interface WaitProgress {
  /** What is awaited, e.g. "cache-2 catching up with cache-1". */
  what: string;
  done: number;
  total: number;
  /** bytes (replication offset), transactions (GTID), ms (time against the step's deadline). */
  unit: 'bytes' | 'transactions' | 'ms';
  /** The state seen last, e.g. "link down or loading", "1.2 KiB behind". */
  note?: string;
}

/** A step as the `progress` query reports it. */
export type StepStatus = 'pending' | 'running' | 'done' | 'failed' | 'skipped' | 'compensated';
export interface StepProgress {
  name: string;
  summary: string;
  status: StepStatus;
  startedAt?: number;
  endedAt?: number;
  detail?: string;
}
export interface RunbookProgress {
  runbook: string;
  cluster: string;
  phase: string;
  pointOfNoReturnPassed: boolean;
  steps: StepProgress[];
  audit: string[];
  /** --require-approval: the plan waiting for (or given) approval; absent when the run has no approval gate. */
  approval?: ApprovalProgress;
  /** Set once an abort (workflow cancellation) was requested. */
  abortRequested?: boolean;
}

/** The approval gate as the `progress` query shows it. */
export interface ApprovalProgress {
  status: 'waiting' | 'approved' | 'rejected' | 'timed-out' | 'aborted';
  /** Hash of the plan, computed in the workflow; an approval must name it. */
  planHash: string;
  /** What the approver approves: the decision in one line, then the steps in order. */
  summary: string;
  plan: string[];
  timeoutMs: number;
  /** Workflow clock, ms since the epoch. */
  deadline: number;
  approver?: string;
  reason?: string;
}
