/** One input and one result per backup activity (the workflows import these as types). */
import type { BackupManifest, BackupSourceView, RetentionPlan, VerificationRecord } from '../../core/backup/decide';

export interface ProbeBackupResult {
  cluster: string;
  engine: 'redis' | 'mysql' | 'dolt';
  maxLag: number;
  lagUnit: 'bytes' | 'transactions' | 'ms';
  keep: number;
  storage: string;
  nodes: BackupSourceView[];
  /** Redis Cluster: every shard is backed up (chooseShardSources); absent for every other topology. */
  topology?: 'cluster';
}

export interface TakeBackupInput {
  cluster: string;
  id: string;
  node: string;
  role: 'primary' | 'replica';
  fromPrimary: boolean;
  /** method: physical — an incremental on the newest good physical backup (a full when there is none). */
  incremental?: boolean;
  /** Redis Cluster: every shard's source (node is the first's). */
  shards?: { slots: string; primary: string; node: string; role: 'primary' | 'replica' }[];
}
export interface TakeBackupResult {
  id: string;
  alreadyTaken: boolean;
  node: string;
  size: number;
  rawSize: number;
  sha256: string;
  position: BackupManifest['position'];
  method?: BackupManifest['method'];
  /** An incremental's base. */
  base?: string;
  /** Redis Cluster: each shard's slots, source and keys. */
  shards?: { slots: string; node: string; keys: number; size: number }[];
  durationMs: number;
  /** The tool's streaming alone (tool start to artifact stored), this attempt; 0 when already taken. */
  streamMs: number;
  audit: string;
}

export interface BackupRef {
  cluster: string;
  id: string;
}

export interface VerifyBackupResult extends VerificationRecord {
  audit: string;
}

/**
 * Into a node: refused when it holds schemas, unless `replace` (a point-in-time restore into a node whose check
 * allowed it): its schemas are dropped first (logical), or its datadir replaced whatever it holds (physical).
 */
export type RestoreTarget = { kind: 'scratch' } | { kind: 'node'; node: string; replace?: boolean };
export interface RestoreBackupInput extends BackupRef {
  target: RestoreTarget;
}
export interface RestoreBackupResult {
  id: string;
  target: string;
  /** Scratch target: where the restored server listens, its directory, and the file holding its password (Redis). */
  address?: string;
  socket?: string;
  dir?: string;
  passwordFile?: string;
  keys?: number;
  tables?: number;
  /**
   * A Redis Cluster backup restored with --scratch: a scratch cluster of one node per shard (not part of the
   * live cluster); `address` is its first node, `dir` the parent of every node's directory, `keys` the sum.
   */
  scratchCluster?: {
    nodes: { address: string; dir: string; slots: string; keys: number }[];
    /** false: the shards leave some slots unowned; the scratch cluster runs with cluster-require-full-coverage no. */
    fullCoverage: boolean;
  };
  /** MariaDB: the backup's GTID position (what a provisioned replica continues from). */
  gtid?: string;
  restoreMs: number;
  audit: string;
}

export interface PruneInput {
  cluster: string;
  keep: number;
  /** The backup this run took: never deleted. */
  protect?: string;
}
export interface PruneResult extends RetentionPlan {
  audit: string;
}
