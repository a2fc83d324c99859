/**
 * Backup activities, one verb per file (the engines side by side inside each):
 *
 *   probe.ts    probeBackupSources                      every node's role, link and lag
 *   take.ts     takeBackup                              tool -> compress -> sha256 -> store; manifest last
 *   verify.ts   verifyBackup                            sha256, then a restore into a scratch server, compared
 *   restore.ts  restoreBackup                           into a scratch server or an empty node
 *   prune.ts    listBackups, markBackupVerified, pruneBackups, ensureMysqlRestoredPosition (a provisioned replica)
 *
 * Beside them: what each engine's tools need (redis.ts, mysql.ts), the scratch servers (scratch*.ts), the store
 * (storage/: local directory, S3), streaming (stream.ts), where tools are found (tools.ts), and what every verb
 * shares (context.ts). Inputs carry names and the frozen backup ID only; addresses, credentials and the storage
 * location come from the worker's inventory and environment.
 */
import type { VerificationRecord } from '../../core/backup/decide';
import { activity, heartbeatWhile } from '../activity';
import { backupContext, type BackupActivityDeps } from './context';
import type { BackupRef, PruneInput, RestoreBackupInput, TakeBackupInput, VerifyBackupResult } from './contracts';
import { archiveBinlogs, type ArchiveBinlogsInput } from './archive';
import { planPitrRestore, replayBinlogs, type PlanPitrInput, type ReplayBinlogsInput } from './pitr';
import { ensurePitrNodeFinished, ensurePitrTargetDetached, probePitrTarget, type PitrDetachInput, type PitrFinishInput, type PitrTargetInput } from './pitr-node';
import { probeBackupSources } from './probe';
import { ensureRestoredPosition, listBackups, markBackupVerified, pruneBackups } from './prune';
import { restoreBackup } from './restore';
import { takeBackup } from './take';
import { verifyStored } from './verify';

export type { BackupActivityDeps } from './context';
export type * from './contracts';
export type { ArchiveBinlogsInput, ArchiveBinlogsResult, ArchiveHeartbeat } from './archive';
export type { PlanPitrInput, PlanPitrResult, ReplayBinlogsInput, ReplayBinlogsResult } from './pitr';
export type { PitrDetachInput, PitrFinishInput, PitrFinishResult, PitrTargetInput } from './pitr-node';

export function createBackupActivities(deps: BackupActivityDeps) {
  const ctx = backupContext(deps);
  return {
    /** Every node's role, link and lag, engine-neutral, plus the cluster's backup settings. Read-only. */
    probeBackupSources: activity((input: { cluster: string }) => probeBackupSources(ctx, input)),

    /** Take backup `id` from `node` into the store, manifest last (take.ts). Idempotent under the same ID. */
    takeBackup: activity((input: TakeBackupInput) => takeBackup(ctx, input)),

    /**
     * Verify a stored backup (verify.ts). Writes verification.json (ok or not) unless `record` is false;
     * returns the record (the workflow fails on !ok).
     */
    verifyBackup: activity(async ({ cluster, id, record = true }: BackupRef & { record?: boolean }): Promise<VerifyBackupResult> => {
      const c = ctx.clusterOf(cluster);
      const rec = await heartbeatWhile(() => verifyStored(ctx, c, id), () => ({ id }));
      if (record) await ctx.storageOf(c).putJson(c.name, id, 'verification.json', rec);
      return { ...rec, audit: rec.ok ? `verified ${id}: ${rec.checks.join('; ')} (${rec.restoreMs} ms)` : `verification of ${id} FAILED: ${rec.failure}` };
    }),

    /** Record a verification (ok: the backup is listed good; not ok: failed). Rewriting it is a no-op. */
    markBackupVerified: activity((input: { cluster: string; record: VerificationRecord }) => markBackupVerified(ctx, input)),

    /** What is stored for the cluster, newest first, with each backup's state. Read-only. */
    listBackups: activity((input: { cluster: string }) => listBackups(ctx, input)),

    /** Retention: delete what planRetention allows (older than a newer good backup), manifest first. */
    pruneBackups: activity((input: PruneInput) => pruneBackups(ctx, input)),

    /** Restore a backup into a fresh scratch server (left running; its address returned) or an empty node. */
    restoreBackup: activity((input: RestoreBackupInput) => restoreBackup(ctx, input)),

    /** A node restored from a physical backup takes the backup's GTID as its replication position (prune.ts). */
    ensureMysqlRestoredPosition: activity((input: { cluster: string; node: string; gtid: string }) => ensureRestoredPosition(ctx, input)),

    /** Stream the primary's binlog into the store in segments for up to runMs, following primary changes (archive.ts). Heartbeats. */
    archiveBinlogs: activity((input: ArchiveBinlogsInput) => archiveBinlogs(ctx, input)),

    /** Which base and archived segments a point-in-time restore needs; a target out of range is refused (pitr.ts). Read-only. */
    planPitrRestore: activity((input: PlanPitrInput) => planPitrRestore(ctx, input)),

    /** Replay the planned transactions into a restored scratch server or node and verify its position (pitr.ts); into a node a retry continues. */
    replayBinlogs: activity((input: ReplayBinlogsInput) => replayBinlogs(ctx, input)),

    /** A point-in-time restore into a node: every node's role and links, and the target's log_bin, schemas, grants (pitr-node.ts). Read-only. */
    probePitrTarget: activity((input: PitrTargetInput) => probePitrTarget(ctx, input)),

    /** Re-check the target, then leave it read-only with no replication configured (pitr-node.ts). A no-op when it is. */
    ensurePitrTargetDetached: activity((input: PitrDetachInput) => ensurePitrTargetDetached(ctx, input)),

    /** After the replay: read_only as asked, gtid_slave_pos the replayed position, standalone (pitr-node.ts). A no-op when it is. */
    ensurePitrNodeFinished: activity((input: PitrFinishInput) => ensurePitrNodeFinished(ctx, input)),
  };
}
