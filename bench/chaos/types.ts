/**
 * The shapes shared by the chaos harness, its engine probes and its checker. Engine-neutral: a scenario is an
 * engine probe (a primary sampler, a writer, an end-state reader) plus the kill points of one runbook.
 */
import type { DoltLab, DoltRemoteLab, Lab, MysqlLab, RedisClusterLab } from '../lab';

/** What one node says in one sample: it would take a client's write, it would refuse it, or it did not answer. */
export type NodeView = 'writable' | 'read-only' | 'down';

/** One node at the end of a point, as the engine reports it. */
export interface EndNode {
  up: boolean;
  /** Would take an application write now (Redis: master and not refusing for min-replicas; MariaDB: read_only = 0). */
  writable: boolean;
  /** The node it replicates from (by id), when it is a replica. */
  follows?: string;
  /** Its replication link / threads are up (Redis master_link_status:up; MariaDB IO and SQL threads Yes). */
  linkUp?: boolean;
  /** Free-form detail for the failure text (role, read_only, source). */
  detail: string;
}

/** The application writer a probe runs through every point: every acknowledged write is recorded with the node that acknowledged it. */
export interface ChaosWriter {
  readonly ackedKeys: string[];
  readonly ackTimes: number[];
  readonly ackedBy: string[];
  /** Discovery rounds refused because more than one node claimed to be the primary. */
  readonly ambiguous: number;
  readonly errors: number;
  start(): this;
  stop(): Promise<{ acked: number; errors: number; maxGapMs: number }>;
  close(): Promise<void>;
  now(): number;
  /** Acknowledged keys missing on a node. */
  missingOn(node: string): Promise<string[]>;
}

/** What an engine offers the harness. */
export interface EngineProbe {
  engine: 'redis' | 'mysql' | 'dolt';
  nodes: string[];
  /** One split-brain sample: every node asked at once. */
  views(): Promise<Record<string, NodeView>>;
  /** Release the sampler's connections. */
  closeViews(): void;
  writer(prefix: string): ChaosWriter;
  /** Per-node end state. */
  endState(): Promise<Record<string, EndNode>>;
  /** Wait until every other node (but `exclude`) replicates from `primary` and holds everything it has; a message when that does not happen. */
  converge(primary: string, timeoutMs: number, exclude: string[]): Promise<string | undefined>;
  /** Bring the fleet to a comparable start (e.g. empty the data set), and converge it. Problems, if any. */
  reset(): Promise<string[]>;
  /**
   * A sharded engine (Redis Cluster): its shards as the fleet stands after `reset`. Each shard is judged as a
   * fleet of its own (its own split-brain sampler, one writable node, the others following it and converged,
   * every acknowledged write of the shard on each of its nodes) by the same checker; the writer stays the
   * whole fleet's, and its `missingOn(node)` answers for the keys of that node's shard only.
   */
  shards?(): Promise<ShardProbe[]>;
}

/** One shard of a sharded engine, named by its slot ranges (stable across failovers: the slots move with the role). */
export interface ShardProbe extends Pick<EngineProbe, 'nodes' | 'views' | 'closeViews' | 'endState' | 'converge'> {
  name: string;
}

/**
 * The usual `reset`: the fleet must have exactly one writable node, and every other node converges on it (the
 * previous point may have left a replica still applying). Problems, if any.
 */
export async function convergeOnTheWritable(probe: Pick<EngineProbe, 'endState' | 'converge'>): Promise<string[]> {
  const end = await probe.endState();
  const writable = Object.entries(end).filter(([, n]) => n.writable).map(([id]) => id);
  if (writable.length !== 1) return [`${writable.length} writable nodes: ${JSON.stringify(end)}`];
  const e = await probe.converge(writable[0], 60_000, []);
  return e ? [`not converged: ${e}`] : [];
}

/** Counts of the continuous split-brain sampler. Every sample counts; no re-sampling filter. */
export interface SampleStats {
  samples: number;
  /** Samples in which at least one node did not answer (recorded, not a failure by itself). */
  withDownNode: number;
  /** Samples in which two or more nodes were writable. */
  split: number;
  /** The first few split samples, as `node=view` lists with their time since the sampler started. */
  splitExamples: string[];
  /** Longest time between two consecutive samples (ms): a sampler that stalls sees nothing. */
  maxGapMs: number;
}

export type AnyLab = Lab | MysqlLab | DoltLab | DoltRemoteLab | RedisClusterLab;

/** The snapshot taken before a run: the primary then, and whatever the scenario needs for its postcondition. */
export interface Before {
  primary?: string;
  /** A sharded engine: each shard's single writable node before the run, by shard name. */
  primaries?: Record<string, string>;
  extra?: unknown;
}

/** Said by `start` of a failover scenario: which node it killed, when the signal went, and when the process was gone (writer clock). */
export interface KillMark {
  node: string;
  at: number;
  goneAt: number;
}

/**
 * What the settle step found. `flagged`: a returned old primary the runbook left read-only and out of
 * replication on purpose, because it holds transactions the promoted node never had (errant GTIDs). The
 * checker accepts that only for GTIDs the primary lacks (`notErrant` lists those it holds, read by the harness)
 * and, when acknowledged commits were lost, with the flagged node holding them all.
 */
export interface SettleResult {
  problems: string[];
  flagged?: { node: string; errantGtids: string[]; notErrant: string[] };
}

/** A runbook under chaos. */
export interface Scenario<L extends AnyLab = AnyLab> {
  name: string;
  engine: 'redis' | 'mysql' | 'dolt';
  points: string[];
  /** How the lab is built (Redis: sentinels, extra config, inventory policy; Dolt: read replicas through a remote). */
  lab?: { sentinels?: boolean; extraConfig?: string[]; policy?: Record<string, number | string>; doltTopology?: 'remote-replicas'; redisTopology?: 'cluster' };
  /** The fewest acknowledged writes that make a loss assertion meaningful. */
  minAcked: number;
  /**
   * 'none': every acknowledged write must be on every node. 'reported-window': a failover killed the primary
   * under the writer; writes it acknowledged may be lost, but only as many as the run's report says.
   */
  loss: 'none' | 'reported-window';
  probe(lab: L): EngineProbe;
  /** Once, before the first point. */
  prepare?(lab: L): void | Promise<void>;
  before?(lab: L): Promise<unknown>;
  /**
   * Start the i-th run without waiting for it. A failover scenario kills the primary first (once `writing()`
   * says the writer is acknowledging right now) and says so through `kill`.
   */
  start(lab: L, i: number, log: (m: string) => void, kill: (m: KillMark) => void, writing: () => Promise<void>): Promise<void>;
  /** The primary the run must leave (its postcondition), from the snapshot and the run's report; a string is a failure. */
  expectPrimary?(before: Before, report: unknown, kill?: KillMark): { primary: string; why: string } | { failure: string };
  /** A sharded engine: the primary each shard must have (by shard name), from the snapshot and the run's report. */
  expectPrimaries?(before: Before, report: unknown): Record<string, { primary: string; why: string } | { failure: string }>;
  /** After the run, with the writer and the sampler still running (e.g. restart a killed node and fence it). */
  settle?(lab: L, report: unknown, kill?: KillMark): Promise<SettleResult>;
  /**
   * The run to wait for, when it is not simply the latest run on the cluster's lock ID (a monitor starts the
   * failover itself, after the kill: the result of the first such run started after the point began).
   */
  result?(lab: L, since: Date): Promise<unknown>;
  /** Postconditions beyond the common ones (every node on the new setting, one new good backup). Problems. */
  check?(lab: L, i: number, before: Before, report: unknown): Promise<string[]>;
  /**
   * For loss 'reported-window': does the report's data-loss window bound these lost writes? undefined when it
   * does, else why not (including "the report gives no window").
   */
  lossBound?(report: unknown, lost: string[], ackedAt: (key: string) => number | undefined): string | undefined;
}

/** Everything the checker judges, gathered by the harness for one point. */
/** What belongs to the run of a point, judged once whatever the fleet's shape (checkRun). */
export interface RunEvidence {
  point: string;
  killed: boolean;
  /** Why the worker did not die at the failpoint (finished first, failed first, never reached it). */
  killNote?: string;
  run: { ok: true } | { ok: false; error: string };
  settle: string[];
  writes: {
    acked: number;
    minAcked: number;
    ambiguous: number;
  };
  postconditions: string[];
}

/** What belongs to one group of nodes — every node of the fleet, or one shard — judged per group (checkGroup). */
export interface GroupEvidence {
  /** A returned old primary left read-only and out of replication on purpose (see SettleResult). */
  flagged?: {
    node: string;
    errantGtids: string[];
    lostMissingOnIt: number;
    /** Of errantGtids, those the end primary's binlog state holds (so not errant), read by the harness itself. */
    notErrant: string[];
  };
  end: Record<string, EndNode>;
  expected: { primary: string; why: string } | { failure: string };
  /** undefined when every node converged on the end primary. */
  notConverged?: string;
  writes: {
    /** Acknowledged writes missing on the end primary. */
    lostOnPrimary: number;
    /** Per node: acknowledged writes it lacks that the end primary has (must be 0 everywhere). */
    behindPrimary: Record<string, number>;
  };
  /** Failover scenarios only (loss 'reported-window'). */
  loss?: {
    killed: string;
    /** Writes the killed primary acknowledged (before its process was gone). */
    ackedByKilledBeforeKill: number;
    /** Time from the killed primary's last acknowledgement to the SIGKILL (ms; 0 when it still acknowledged after the signal): the writer was writing into the kill. */
    lastAckBeforeKillMs?: number;
    /** Lost writes not acknowledged by the killed primary before the kill (must be 0). */
    lostElsewhere: number;
    /** undefined when the report's window bounds the loss. */
    unbounded?: string;
  };
  samples: SampleStats;
}

/** The evidence of a point over a fleet judged as one group. */
export type PointEvidence = RunEvidence & GroupEvidence;

export interface PointResult {
  point: string;
  killed: boolean;
  /** True only when the checker found nothing wrong. */
  completed: boolean;
  /** Every failed condition, named. Empty exactly when completed. */
  failures: string[];
  lostAckedWrites: number;
  /** Split-brain samples (two writable nodes in one sample). */
  multiplePrimaries: number;
  samples: number;
  samplesWithDownNode: number;
  /** Longest time between two split-brain samples (ms). */
  sampleMaxGapMs: number;
  newPrimary?: string;
  acked: number;
  /** Writer discovery rounds refused because two nodes claimed the primary role. */
  writerAmbiguous: number;
  /** Failover scenarios: what the killed primary had acknowledged, and what the report allowed. */
  loss?: PointEvidence['loss'];
  /** A returned old primary left out of replication on purpose (errant GTIDs). */
  flagged?: string;
  writeBlockedMs: number;
  ms: number;
  /** The failures joined (kept for readers of the old JSON). */
  error?: string;
}

export interface ChaosSummary {
  killPoints: number;
  completed: number;
  lostAckedWrites: number;
  multiplePrimaries: number;
  failed: number;
  runbook: string;
  points: PointResult[];
}
