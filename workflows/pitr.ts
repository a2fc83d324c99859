/**
 * Point-in-time recovery (MariaDB):
 *  - binlogArchiver: the cluster's continuous binlog archive. ID `handover-binlog-archive-<cluster>`, not the
 *    cluster's lock ID: it runs beside switchovers, failovers and backups and follows the primary they leave.
 *    It calls `archiveBinlogs` (one heartbeating attempt streams for up to `runMs`) in a loop and continues as
 *    new every `callsPerRun` calls, so its history stays bounded. The store's segment manifests are the
 *    archive's state: any attempt, on any worker, continues after the last stored one. One archiver per archive:
 *    each call takes the archive's lease in the store under the archiver's token (made once, carried across
 *    continue-as-new); when another archiver holds it (ArchiveLeaseHeld) this one ends, failed, naming it.
 *  - pitrRestore: plan (the newest good base before the target and the segments after it; a target out of
 *    range is refused before anything is restored), restore the base into a fresh scratch server, replay the
 *    archived transactions after the base's GTID up to exactly the target, verify the position reached.
 *    Into a node (on the cluster's lock ID): the node is checked (core/backup/pitr-node.ts: never the primary,
 *    a writable node, a replicating node or a source; schemas only with `replace`), every refusal before
 *    anything changes; then detached (read-only, no replication), restored, replayed into, verified, left
 *    standalone and read-only (unless `writable`); the report says where the cluster stands.
 */
import { ApplicationFailure, CancellationScope, continueAsNew, defineQuery, isCancellation, proxyActivities, patched, setHandler, sleep, uuid4 } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { ArchiveBinlogsResult, PitrFinishResult, PlanPitrResult, ReplayBinlogsResult, RestoreBackupResult } from '../activities/backup';
import type { PitrTarget } from '../core/backup/binlog';
import { judgePitrTarget } from '../core/backup/pitr-node';
import { ErrorType, NON_RETRYABLE } from '../core/errors';
import { standingLine, standingOf, type ClusterStanding } from '../core/standing';
import { mysqlClusterStatus } from '../core/status';
import { mutate, probe } from './profiles';
import { Runbook, failureTypeOf, messageOf } from './runbook';

export interface BinlogArchiverInput {
  cluster: string;
  /** How long one archiving call streams before returning (ms; default 5 minutes). */
  runMs?: number;
  /** Segment cut: age of its first transaction (ms; default 10 s) or size (bytes; default 16 MiB). */
  segmentMs?: number;
  segmentBytes?: number;
  /** Calls per workflow run before continue-as-new (default 50). */
  callsPerRun?: number;
  /** The archive lease's lifetime (ms; default 60 s): a holder silent for this long may be taken over. */
  leaseTtlMs?: number;
  /** This archiver's lease token (made at its first run, carried across continue-as-new). */
  leaseToken?: string;
  /** Carried across continue-as-new. */
  carried?: ArchiverStatus;
}

export interface ArchiverStatus {
  cluster: string;
  calls: number;
  segmentsStored: number;
  transactionsStored: number;
  primary?: string;
  archivedPos?: string;
  lagTransactions?: number;
  coveredUntil?: number;
  followed: string[];
  lastError?: string;
}

export const archiverStatusQuery = defineQuery<ArchiverStatus>('archiveStatus');

export async function binlogArchiver(input: BinlogArchiverInput): Promise<void> {
  const runMs = input.runMs ?? 300_000;
  const archive = proxyActivities<Activities>({
    startToCloseTimeout: runMs + 600_000,
    heartbeatTimeout: '10s',
    // Retried without limit (the archive never gives up); typed failures reach the loop below.
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '5s', nonRetryableErrorTypes: NON_RETRYABLE },
  });
  const status: ArchiverStatus = input.carried ?? { cluster: input.cluster, calls: 0, segmentsStored: 0, transactionsStored: 0, followed: [] };
  // The archiver's lease token, made once (runs recorded before the lease use the workflow ID as their token).
  const leaseToken = patched('binlog-archive-lease-token') ? (input.leaseToken ?? uuid4()) : undefined;
  setHandler(archiverStatusQuery, () => status);
  for (let i = 0; i < (input.callsPerRun ?? 50); i++) {
    let r: ArchiveBinlogsResult;
    try {
      r = await archive.archiveBinlogs.executeWithOptions({ summary: `archive ${input.cluster}'s binlogs` }, [
        { cluster: input.cluster, runMs, segmentMs: input.segmentMs, segmentBytes: input.segmentBytes, ...(leaseToken ? { leaseToken } : {}), ...(input.leaseTtlMs ? { leaseTtlMs: input.leaseTtlMs } : {}) },
      ]);
    } catch (e) {
      if (isCancellation(e)) throw e;
      // Another archiver writes this archive: this one ends (two would interleave segments), naming the holder.
      if (failureTypeOf(e) === ErrorType.ArchiveLeaseHeld) throw ApplicationFailure.create({ message: messageOf(e), type: ErrorType.ArchiveLeaseHeld, nonRetryable: true });
      status.lastError = (e as Error).message;
      await CancellationScope.nonCancellable(() => sleep('5s'));
      continue;
    }
    status.calls++;
    status.segmentsStored += r.segmentsStored;
    status.transactionsStored += r.transactionsStored;
    status.primary = r.primary;
    status.archivedPos = r.archivedPos;
    status.lagTransactions = r.lagTransactions;
    status.coveredUntil = r.coveredUntil;
    status.followed = [...status.followed, ...r.followed].slice(-20);
    status.lastError = undefined;
  }
  await continueAsNew<typeof binlogArchiver>({ ...input, ...(leaseToken ? { leaseToken } : {}), carried: status });
}

const long = proxyActivities<Activities>({
  startToCloseTimeout: '6h',
  heartbeatTimeout: '10s',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '10s', maximumAttempts: 10, nonRetryableErrorTypes: NON_RETRYABLE },
});
const store = proxyActivities<Activities>({
  startToCloseTimeout: '60s',
  retry: { initialInterval: '500ms', backoffCoefficient: 2, maximumInterval: '5s', maximumAttempts: 5, nonRetryableErrorTypes: NON_RETRYABLE },
});

export interface PitrRestoreInput {
  cluster: string;
  target: PitrTarget;
  /**
   * A fresh scratch server, or a node of the cluster: `replace` lets a node holding schemas be restored into
   * (they are dropped); `writable` leaves it read_only OFF at the end (default read-only).
   */
  into: { kind: 'scratch' } | { kind: 'node'; node: string; replace?: boolean; writable?: boolean };
  requestedBy?: string;
}

export interface PitrRestoreReport {
  runbook: 'pitr-restore';
  cluster: string;
  plan: Omit<PlanPitrResult, 'audit'>;
  restored: Omit<RestoreBackupResult, 'audit'>;
  replay: Omit<ReplayBinlogsResult, 'audit'>;
  /** Into a node: how it was left. */
  node?: Omit<PitrFinishResult, 'audit' | 'changed'>;
  /** Into a node: where the cluster stands at the end (the restored node among those not following). */
  standing?: ClusterStanding;
  /** Into a node: what the operator should know about the node left in the cluster. */
  notes?: string[];
  steps: { step: string; ms: number }[];
  audit: string[];
}

export async function pitrRestore(input: PitrRestoreInput): Promise<PitrRestoreReport> {
  const { cluster } = input;
  const rb = new Runbook('pitr-restore', cluster);
  const what = 'gtid' in input.target ? `GTID ${input.target.gtid}` : `time ${input.target.time}`;
  if (input.requestedBy) rb.audit('start', `requested by ${input.requestedBy}`);
  if (input.into.kind === 'node') return pitrRestoreIntoNode(rb, input, input.into, what);
  rb.plan([
    { name: 'plan', summary: `the base and archived segments for ${what}` },
    { name: 'restore base', summary: 'the base into a fresh scratch server' },
    { name: 'replay', summary: `archived transactions after the base up to ${what}; verify the position` },
  ]);
  const plan = await rb.step('plan', `the base and archived segments for ${what}`, () => store.planPitrRestore.executeWithOptions({ summary: `plan a restore of ${cluster} to ${what}` }, [{ cluster, target: input.target }]), (p) => p.audit);
  const restored = await rb.step('restore base', `restore ${plan.base} into a fresh scratch server`, () =>
    long.restoreBackup.executeWithOptions({ summary: `restore ${plan.base} into a scratch server` }, [{ cluster, id: plan.base, target: { kind: 'scratch' } }]),
  );
  const replay = await rb.step('replay', `replay ${plan.segments.length} segment(s) up to ${what}`, () =>
    long.replayBinlogs.executeWithOptions({ summary: `replay ${cluster}'s binlogs to ${what}` }, [{ cluster, plan: strip(plan), socket: restored.socket ?? '' }]),
  );
  rb.setPhase('done');
  return { runbook: 'pitr-restore', cluster, plan: strip(plan), restored: strip(restored), replay: strip(replay), steps: rb.timings(), audit: rb.progress.audit };
}

function strip<T extends { audit: unknown }>(r: T): Omit<T, 'audit'> {
  const out: Partial<T> = { ...r };
  delete out.audit;
  return out as Omit<T, 'audit'>;
}

/** A point-in-time restore into a node of the cluster (on the cluster's lock ID): see the file's comment. */
async function pitrRestoreIntoNode(rb: Runbook, input: PitrRestoreInput, into: { node: string; replace?: boolean; writable?: boolean }, what: string): Promise<PitrRestoreReport> {
  const { cluster } = input;
  const { node } = into;
  const replace = into.replace === true;
  const writable = into.writable === true;
  rb.plan([
    { name: 'plan', summary: `the base and archived segments for ${what}` },
    { name: 'check node', summary: `${node}: not the primary, not writable, not replicating, not a source; empty${replace ? ' or replaced' : ''}` },
    { name: 'detach', summary: `${node} read-only, its replication removed (re-checked first)` },
    { name: 'restore base', summary: `the base into ${node}` },
    { name: 'replay', summary: `archived transactions after the base up to ${what} into ${node}; verify its position` },
    { name: 'finish', summary: `${node} standalone, ${writable ? 'WRITABLE' : 'read-only'}, gtid_slave_pos the restored position` },
    { name: 'standing', summary: `see where ${cluster} stands` },
  ]);
  const refuse = (message: string, type: string = ErrorType.PreconditionFailed) => ApplicationFailure.create({ message: `refused: ${message} (nothing was changed)`, type, nonRetryable: true });
  const plan = await rb.step('plan', `the base and archived segments for ${what}`, () => store.planPitrRestore.executeWithOptions({ summary: `plan a restore of ${cluster} to ${what}` }, [{ cluster, target: input.target }]), (p) => p.audit);
  const target = { cluster, node, method: plan.method };
  const seen = await rb.step('check node', `may ${node} be restored into?`, () => probe.probePitrTarget.executeWithOptions({ summary: `check ${node} for a point-in-time restore` }, [target]), (p) =>
    `saw ${p.nodes.map((n) => `${n.node}=${!n.reachable ? 'down' : `${n.readOnly ? 'ro' : 'WRITABLE'} ${n.role === 'replica' ? `replica of ${n.sourceNode ?? n.sourceAddress ?? '?'} (io ${n.ioRunning ?? '?'}, sql ${n.sqlRunning ? 'Yes' : 'No'})` : 'standalone'}`}`).join(' ')}${p.target ? `; ${node}: log_bin ${p.target.logBin ? 'ON' : 'OFF'}, schemas ${p.target.schemas.join(', ') || 'none'}` : ''}`,
  );
  const verdict = judgePitrTarget(seen, { replace, method: plan.method });
  if (!verdict.ok) {
    rb.skipRemaining('refused: nothing was changed');
    throw refuse(verdict.refusal, verdict.errorType);
  }
  for (const n of verdict.notes) rb.audit('check node', n);
  await rb.step('detach', `${node} read-only, its replication removed`, () => mutate.ensurePitrTargetDetached.executeWithOptions({ summary: `detach ${node} for the restore` }, [{ ...target, replace }]));
  // From here the node changes: a failure says what it was left as and where the cluster stands.
  const lookAtStanding = async (): Promise<ClusterStanding | undefined> => {
    try {
      const now = await rb.step('standing', `see where ${cluster} stands`, () => probe.probeMysqlCluster.executeWithOptions({ summary: `see where ${cluster} stands` }, [{ cluster }]), () => undefined);
      const st = standingOf(mysqlClusterStatus(cluster, now.nodes), { expected: verdict.primary });
      rb.audit('standing', standingLine(st));
      return st;
    } catch {
      return undefined;
    }
  };
  let restored: RestoreBackupResult;
  let replay: ReplayBinlogsResult;
  let left: PitrFinishResult;
  try {
    // replace: the check allowed it (the node was empty, or --replace); a retried attempt also drops what an interrupted one loaded.
    restored = await rb.step('restore base', `restore ${plan.base} into ${node}`, () =>
      long.restoreBackup.executeWithOptions({ summary: `restore ${plan.base} into ${node}` }, [{ cluster, id: plan.base, target: { kind: 'node', node, replace: true } }]),
    );
    replay = await rb.step('replay', `replay ${plan.segments.length} segment(s) up to ${what} into ${node}`, () =>
      long.replayBinlogs.executeWithOptions({ summary: `replay ${cluster}'s binlogs to ${what} into ${node}` }, [{ cluster, plan: strip(plan), node }]),
    );
    left = await rb.step('finish', `${node} standalone, ${writable ? 'WRITABLE' : 'read-only'}`, () =>
      mutate.ensurePitrNodeFinished.executeWithOptions({ summary: `leave ${node} standalone and ${writable ? 'writable' : 'read-only'}` }, [{ cluster, node, endPos: replay.endPos, writable }]),
    );
  } catch (e) {
    rb.skipRemaining('failed');
    const st = await lookAtStanding();
    rb.setPhase('failed');
    throw ApplicationFailure.create({
      type: failureTypeOf(e) ?? ErrorType.VerificationFailed,
      nonRetryable: true,
      message: `point-in-time restore of ${cluster} into ${node} failed: ${messageOf(e)}. ${node} was detached (read-only, no replication) and is only partly restored: run the restore again (--replace) or rebuild it. ${st ? `Where ${cluster} stands: ${standingLine(st)}` : `${cluster}'s other nodes were not touched`}`,
      details: st ? [{ standing: st }] : undefined,
    });
  }
  const st = await lookAtStanding();
  const notes = [
    `${node} holds ${cluster}'s history up to ${replay.endPos} and replicates from nobody: switchovers of ${cluster} are refused while it stays in the inventory so; to rejoin it, CHANGE MASTER TO the primary with MASTER_USE_GTID=slave_pos and START SLAVE (it continues after ${replay.endPos}), or take it out of the inventory`,
    ...(writable ? [`${node} is WRITABLE besides ${verdict.primary ?? 'the primary'}: ${cluster} has two writable nodes; the binlog archiver waits and switchovers refuse until ${node} is read-only again (SET GLOBAL read_only = ON) or out of the inventory`] : []),
  ];
  for (const n of notes) rb.audit('finish', n);
  rb.setPhase('done');
  return {
    runbook: 'pitr-restore',
    cluster,
    plan: strip(plan),
    restored: strip(restored),
    replay: strip(replay),
    node: { node: left.node, readOnly: left.readOnly, gtidBinlogPos: left.gtidBinlogPos, gtidSlavePos: left.gtidSlavePos, replicating: left.replicating },
    ...(st ? { standing: st } : {}),
    notes,
    steps: rb.timings(),
    audit: rb.progress.audit,
  };
}
