/**
 * Point-in-time recovery (MariaDB):
 *  - binlogArchiver: the cluster's continuous binlog archive. ID `handover-binlog-archive-<cluster>`, not the
 *    cluster's lock ID: it runs beside switchovers, failovers and backups and follows the primary they leave.
 *    It calls `archiveBinlogs` (one heartbeating attempt streams for up to `runMs`) in a loop and continues as
 *    new every `callsPerRun` calls, so its history stays bounded. The store's segment manifests are the
 *    archive's state: any attempt, on any worker, continues after the last stored one.
 *  - pitrRestore: plan (the newest good base before the target and the segments after it; a target out of
 *    range is refused before anything is restored), restore the base into a fresh scratch server, replay the
 *    archived transactions after the base's GTID up to exactly the target, verify the position reached.
 */
import { ApplicationFailure, CancellationScope, continueAsNew, defineQuery, isCancellation, proxyActivities, setHandler, sleep } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { ArchiveBinlogsResult, PlanPitrResult, ReplayBinlogsResult, RestoreBackupResult } from '../activities/backup';
import type { PitrTarget } from '../core/backup/binlog';
import { ErrorType, NON_RETRYABLE } from '../core/errors';
import { Runbook } from './runbook';

export interface BinlogArchiverInput {
  cluster: string;
  /** How long one archiving call streams before returning (ms; default 5 minutes). */
  runMs?: number;
  /** Segment cut: age of its first transaction (ms; default 10 s) or size (bytes; default 16 MiB). */
  segmentMs?: number;
  segmentBytes?: number;
  /** Calls per workflow run before continue-as-new (default 50). */
  callsPerRun?: number;
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
  setHandler(archiverStatusQuery, () => status);
  for (let i = 0; i < (input.callsPerRun ?? 50); i++) {
    let r: ArchiveBinlogsResult;
    try {
      r = await archive.archiveBinlogs.executeWithOptions({ summary: `archive ${input.cluster}'s binlogs` }, [{ cluster: input.cluster, runMs, segmentMs: input.segmentMs, segmentBytes: input.segmentBytes }]);
    } catch (e) {
      if (isCancellation(e)) throw e;
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
  await continueAsNew<typeof binlogArchiver>({ ...input, carried: status });
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
  /** Only a fresh scratch server is built (a node: refused). */
  into: { kind: 'scratch' } | { kind: 'node'; node: string };
  requestedBy?: string;
}

export interface PitrRestoreReport {
  runbook: 'pitr-restore';
  cluster: string;
  plan: Omit<PlanPitrResult, 'audit'>;
  restored: Omit<RestoreBackupResult, 'audit'>;
  replay: Omit<ReplayBinlogsResult, 'audit'>;
  steps: { step: string; ms: number }[];
  audit: string[];
}

export async function pitrRestore(input: PitrRestoreInput): Promise<PitrRestoreReport> {
  const { cluster } = input;
  const rb = new Runbook('pitr-restore', cluster);
  const what = 'gtid' in input.target ? `GTID ${input.target.gtid}` : `time ${input.target.time}`;
  rb.plan([
    { name: 'plan', summary: `the base and archived segments for ${what}` },
    { name: 'restore base', summary: 'the base into a fresh scratch server' },
    { name: 'replay', summary: `archived transactions after the base up to ${what}; verify the position` },
  ]);
  if (input.requestedBy) rb.audit('start', `requested by ${input.requestedBy}`);
  if (input.into.kind !== 'scratch')
    throw ApplicationFailure.create({ message: `refused: a point-in-time restore into a node (${input.into.node}) is not built; restore with --scratch and copy from it (nothing was changed)`, type: ErrorType.PreconditionFailed, nonRetryable: true });
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
