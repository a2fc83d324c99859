/**
 * handover backup run|list|verify|restore|schedule
 *
 *   run      --cluster NAME [--keep N] [--node NODE] [--replica-only] [--incremental] [--wait]   the backup runbook on the cluster's lock ID
 *   list     --cluster NAME                                                      what storage holds, with each backup's state
 *   verify   --cluster NAME --id ID                                              sha256, then a restore into a scratch server
 *   restore  --cluster NAME --id ID (--scratch | --to NODE)                      into a fresh scratch server or an empty node
 *   provision-replica --cluster NAME --node NODE [--id ID]                       a new replica from a physical backup
 *   schedule --cluster NAME [--cron EXPR] [--keep N] [--pause|--unpause|--trigger|--delete]
 *            a Temporal Schedule with ID handover-backup-<cluster> (overlap SKIP); creating it again is a no-op
 *            (or updates the cron/keep), so it is idempotent.
 */
import { ScheduleAlreadyRunning, ScheduleNotFoundError, WorkflowExecutionAlreadyStartedError, WorkflowFailedError, WorkflowNotFoundError, type WorkflowHandle } from '@temporalio/client';
import { lastSegment, readArchiveState, segmentSeqs } from '../../activities/backup/archive';
import { readLease, releaseLeaseOf } from '../../activities/backup/lease';
import { describeHolder, judgeLease } from '../../core/backup/lease';
import type { ArchiveHeartbeat } from '../../activities/backup';
import type { PitrTarget } from '../../core/backup/binlog';
import type { ArchiverStatus, BinlogArchiverInput, PitrRestoreInput, PitrRestoreReport } from '../../workflows/pitr';
import { existsSync } from 'node:fs';
import { z } from 'zod';
import { openStorage, type BackupStorage } from '../../activities/backup/storage';
import type { RestoreBackupResult, VerifyBackupResult } from '../../activities/backup';
import { backupScheduleId } from '../../core/backup/decide';
import { HandoverError } from '../../core/errors';
import { SA_CLUSTER, SA_PHASE, SA_RUNBOOK, archiverWorkflowId, operationWorkflowId } from '../../core/ids';
import { findCluster, inventoryPath, loadInventory } from '../../inventory/load';
import type { BackupInput, BackupReport, ProvisionReplicaInput, ProvisionReplicaReport } from '../../workflows/backup';
import { CliError, CommonOptions, EXIT, connect, exitCodeForFailure, follow, precheckNames, oneLine, rootFailure, sayFailure, type IO } from '../common';
import { startRunbook } from '../start';
import { standingLines } from '../standing';
import { warnWhenNoWorker } from '../workers';
import { refuseKeyMismatch } from '../keys';
import { refuseInventoryMismatch } from '../worker-read';

type Result = { exitCode: number; workflowId?: string };

// ---- run ------------------------------------------------------------------------------------------------------

export const BackupRunOptions = CommonOptions.extend({
  cluster: z.string().min(1),
  keep: z.coerce.number().int().min(1).optional(),
  node: z.string().min(1).optional(),
  replicaOnly: z.boolean().default(false),
  incremental: z.boolean().default(false),
  wait: z.boolean().default(false),
  requestedBy: z.string().optional(),
});
export type BackupRunOptions = z.input<typeof BackupRunOptions>;

export async function runBackupRun(raw: BackupRunOptions, io: IO): Promise<{ exitCode: number; report?: BackupReport; workflowId: string }> {
  const o = BackupRunOptions.parse(raw);
  const input: BackupInput = { cluster: o.cluster, keep: o.keep, node: o.node, replicaOnly: o.replicaOnly, ...(o.incremental ? { incremental: true } : {}), requestedBy: o.requestedBy ?? process.env.USER };
  return startRunbook<BackupReport>(o, io, {
    runbook: 'backup',
    workflowType: 'backup',
    cluster: o.cluster,
    nodes: [o.node],
    input,
    wait: o.wait,
    dryRun: false,
    summary: `backup of ${o.cluster}${o.node ? ` from ${o.node}` : ''}`,
    details: `Backup of cluster \`${o.cluster}\`: probe, choose a healthy in-sync replica, take, verify in a scratch server, mark good, prune.`,
    format: formatBackupReport,
  });
}

export function formatBackupReport(r: BackupReport): string {
  return [
    `backed up ${r.cluster}: ${r.id} from ${r.node}${r.fromPrimary ? ' (the primary: no healthy in-sync replica)' : ''}`,
    ...(r.take.method === 'physical' ? [`  mariadb-backup, ${r.take.base ? `incremental on ${r.take.base}` : 'full'}`] : []),
    `  ${r.take.rawSize} bytes -> ${r.take.size} stored (compressed), sha256 ${r.take.sha256}, position ${r.take.position.gtid ?? (r.take.position.offset === undefined && r.take.position.replid === undefined ? 'n/a (dolt: database hashes in the manifest)' : `${r.take.position.replid ?? '?'}:${r.take.position.offset ?? '?'}`)}`,
    `  verified: ${r.verification.checks.join('; ')}`,
    `  kept ${r.kept.length}${r.pruned.length ? `, pruned ${r.pruned.join(', ')}` : ''} (${r.storage})`,
  ].join('\n');
}

// ---- list -----------------------------------------------------------------------------------------------------

export const BackupListOptions = CommonOptions.extend({ cluster: z.string().min(1) });
export type BackupListOptions = z.input<typeof BackupListOptions>;

/**
 * Reads the store named by the CLI's inventory (backup.storage: a local directory or S3; S3 credentials are
 * read from this machine's environment or files, as a worker would) or HANDOVER_BACKUP_DIR directly.
 */
export async function runBackupList(raw: BackupListOptions, io: IO): Promise<Result & { backups?: { id: string; state: string }[] }> {
  const o = BackupListOptions.parse(raw);
  let storage: BackupStorage;
  try {
    const file = inventoryPath(o.inventory);
    // Without an inventory file here (and none named), HANDOVER_BACKUP_DIR alone says where to look.
    const spec = o.inventory || process.env.HANDOVER_INVENTORY || existsSync(file) ? findCluster(loadInventory(file), o.cluster) : { name: o.cluster, backup: undefined };
    storage = openStorage(spec);
  } catch (e) {
    if (e instanceof HandoverError) {
      sayFailure(o, io, new CliError(EXIT.refused, `refused (${e.type}): ${e.message}`));
      return { exitCode: EXIT.refused };
    }
    throw e;
  }
  const all = await storage.list(o.cluster);
  // Each artifact's presence and size, cheaply (a stat or an S3 HEAD; nothing is read): a backup whose artifact
  // was removed or truncated after verification is shown as such, not as the manifest remembers it.
  const checks = await Promise.all(all.map((b) => (b.manifest ? artifactCheck(storage, o.cluster, b.id, b.manifest.artifact) : Promise.resolve(undefined))));
  const backups = all.map((b, i) => {
    const c = checks[i];
    const bad = c && c.check !== 'ok';
    return {
      id: b.id,
      state: bad ? c.check : b.state,
      ...(bad ? { recordedState: b.state } : {}),
      startedAt: b.startedAt,
      node: b.node,
      size: c ? (c.size ?? undefined) : b.size,
      ...(c ? { artifact: c } : {}),
      sha256: b.manifest?.artifact.sha256,
      position: b.manifest?.position,
      method: b.manifest?.engine === 'mysql' ? (b.manifest.method ?? 'logical') : undefined,
      base: b.manifest?.base,
      fromPrimary: b.manifest?.fromPrimary,
      verifiedAt: b.verification?.at,
      detail: bad ? c.detail : b.detail,
    };
  });
  if (o.json) io.out(JSON.stringify({ cluster: o.cluster, storage: storage.location, backups }));
  else {
    io.out(`${o.cluster}: ${backups.length} backup(s) in ${storage.location}`);
    for (const b of backups)
      io.out(`  ${b.state.padEnd(10)} ${b.id}  ${b.node ?? ''} ${b.size !== undefined ? `${b.size} B` : ''}${b.method === 'physical' ? (b.base ? ` physical incremental on ${b.base}` : ' physical full') : ''}${b.detail ? `  (${b.detail})` : ''}`);
  }
  return { exitCode: EXIT.ok, backups };
}

export interface ArtifactCheck {
  file: string;
  /** The size the manifest recorded. */
  expectedSize: number;
  /** The size found in storage; null when the artifact is not there. */
  size: number | null;
  check: 'ok' | 'missing' | 'changed';
  detail?: string;
}

/** Pure: what a stat of the artifact says against the manifest. */
export function judgeArtifact(a: { file: string; size: number }, found: { size: number } | undefined): ArtifactCheck {
  if (!found) return { file: a.file, expectedSize: a.size, size: null, check: 'missing', detail: `artifact ${a.file} is not in storage (the manifest says ${a.size} B): restore it or re-run the backup` };
  if (found.size !== a.size) return { file: a.file, expectedSize: a.size, size: found.size, check: 'changed', detail: `artifact ${a.file} is ${found.size} B, the manifest says ${a.size} B (truncated or replaced since it was written): do not restore it; backup verify says more` };
  return { file: a.file, expectedSize: a.size, size: found.size, check: 'ok' };
}

async function artifactCheck(storage: BackupStorage, cluster: string, id: string, a: { file: string; size: number }): Promise<ArtifactCheck> {
  try {
    return judgeArtifact(a, await storage.stat(cluster, id, a.file));
  } catch (e) {
    return { file: a.file, expectedSize: a.size, size: null, check: 'missing', detail: `artifact ${a.file} cannot be checked: ${(e as Error).message}` };
  }
}

// ---- verify / restore: short workflows on their own IDs ------------------------------------------------------

async function startAndFollow<R>(o: CommonOptions, io: IO, s: { workflowId: string; workflowType: string; cluster: string; nodes?: string[]; input: unknown; summary: string; format: (r: R) => string }): Promise<Result & { report?: R }> {
  try {
    precheckNames(o, s.cluster, s.nodes ?? []);
    const { client, close, keyIds } = await connect(o);
    try {
      const pollers = await refuseKeyMismatch(client, o.taskQueue, keyIds);
      await refuseInventoryMismatch(client, o, s.cluster, pollers);
      let handle;
      try {
        handle = await client.workflow.start(s.workflowType, {
          workflowId: s.workflowId,
          taskQueue: o.taskQueue,
          args: [s.input],
          workflowIdConflictPolicy: 'FAIL',
          workflowIdReusePolicy: 'ALLOW_DUPLICATE',
          typedSearchAttributes: [
            { key: SA_CLUSTER, value: s.cluster },
            { key: SA_RUNBOOK, value: 'backup' },
            { key: SA_PHASE, value: 'starting' },
          ],
          staticSummary: s.summary,
        });
      } catch (e) {
        if (e instanceof WorkflowExecutionAlreadyStartedError) throw new CliError(EXIT.alreadyRunning, `already running: ${s.workflowId}`, 'AlreadyRunning');
        throw e;
      }
      if (!o.json) io.out(`running ${s.summary}: ${s.workflowId}`);
      const stopWatching = warnWhenNoWorker(client, handle, o.taskQueue, io);
      try {
        const report = await follow<R>(handle, io, { json: o.json });
        io.out(o.json ? JSON.stringify(report) : s.format(report));
        return { exitCode: EXIT.ok, report, workflowId: s.workflowId };
      } catch (e) {
        if (!(e instanceof WorkflowFailedError)) throw e;
        const { type, message } = rootFailure(e);
        const code = exitCodeForFailure(e);
        const line = oneLine(`${code === EXIT.refused ? 'refused' : 'failed'} (${type ?? 'error'}): ${message}`);
        if (o.json) io.out(JSON.stringify({ workflowId: s.workflowId, failed: true, type: type ?? 'Failed', message: line }));
        else io.err(line);
        return { exitCode: code, workflowId: s.workflowId };
      } finally {
        stopWatching();
      }
    } finally {
      await close();
    }
  } catch (e) {
    if (!(e instanceof CliError)) throw e;
    sayFailure(o, io, e, { workflowId: s.workflowId });
    return { exitCode: e.exitCode, workflowId: s.workflowId };
  }
}

export const BackupVerifyOptions = CommonOptions.extend({ cluster: z.string().min(1), id: z.string().min(1) });
export type BackupVerifyOptions = z.input<typeof BackupVerifyOptions>;

export async function runBackupVerify(raw: BackupVerifyOptions, io: IO) {
  const o = BackupVerifyOptions.parse(raw);
  return startAndFollow<Omit<VerifyBackupResult, 'audit'>>(o, io, {
    workflowId: `handover-backup-verify-${o.cluster}`,
    workflowType: 'verifyBackupRun',
    cluster: o.cluster,
    input: { cluster: o.cluster, id: o.id },
    summary: `verify backup ${o.id} of ${o.cluster}`,
    format: (r) => `verified ${r.id}: ${r.checks.join('; ')} (${r.restoreMs} ms)`,
  });
}

export const BackupRestoreOptions = CommonOptions.extend({
  cluster: z.string().min(1),
  id: z.string().min(1).optional(),
  /** Point-in-time: replay archived binlogs on the newest base before the target up to this time or GTID. */
  toTime: z.string().min(1).optional(),
  toGtid: z.string().min(1).optional(),
  to: z.string().min(1).optional(),
  /** Point in time into a node: it may hold schemas (dropped), and it is left writable. */
  replace: z.boolean().default(false),
  writable: z.boolean().default(false),
  scratch: z.boolean().default(false),
});
export type BackupRestoreOptions = z.input<typeof BackupRestoreOptions>;

export async function runBackupRestore(raw: BackupRestoreOptions, io: IO) {
  const o = BackupRestoreOptions.parse(raw);
  if (!!o.to === o.scratch) {
    sayFailure(o, io, new CliError(EXIT.refused, 'refused (UsageError): give exactly one of --scratch (a fresh scratch server) or --to NODE (an empty node)'));
    return { exitCode: EXIT.refused };
  }
  if ([o.id, o.toTime, o.toGtid].filter((x) => x !== undefined).length !== 1) {
    sayFailure(o, io, new CliError(EXIT.refused, 'refused (UsageError): give exactly one of --id ID (a backup as taken), --to-time T or --to-gtid G (point in time)'));
    return { exitCode: EXIT.refused };
  }
  if ((o.replace || o.writable) && (!o.to || o.id !== undefined)) {
    sayFailure(o, io, new CliError(EXIT.refused, `refused (UsageError): ${o.replace ? '--replace' : '--writable'} applies to a point-in-time restore into a node (--to-time T or --to-gtid G with --to NODE)`));
    return { exitCode: EXIT.refused };
  }
  if (o.toTime !== undefined || o.toGtid !== undefined) {
    // Checked here too, so a typo is refused before a workflow starts.
    if (o.toGtid !== undefined && !/^\d+-\d+-\d+$/.test(o.toGtid)) {
      sayFailure(o, io, new CliError(EXIT.refused, `refused (UsageError): --to-gtid ${o.toGtid} is not a GTID (domain-server-seq, e.g. 0-1-42)`));
      return { exitCode: EXIT.refused };
    }
    if (o.toTime !== undefined && Number.isNaN(Date.parse(o.toTime))) {
      sayFailure(o, io, new CliError(EXIT.refused, `refused (UsageError): --to-time ${o.toTime} is not a time (ISO 8601, e.g. 2026-11-30T19:00:00Z)`));
      return { exitCode: EXIT.refused };
    }
    const target: PitrTarget = o.toGtid !== undefined ? { gtid: o.toGtid } : { time: new Date(Date.parse(o.toTime!)).toISOString() };
    const into: PitrRestoreInput['into'] = o.to ? { kind: 'node', node: o.to, ...(o.replace ? { replace: true } : {}), ...(o.writable ? { writable: true } : {}) } : { kind: 'scratch' };
    const input: PitrRestoreInput = { cluster: o.cluster, target, into, requestedBy: process.env.USER };
    return startAndFollow<PitrRestoreReport>(o, io, {
      // Into a node of the cluster: a mutating operation, on the cluster's lock ID.
      workflowId: o.to ? operationWorkflowId(o.cluster) : `handover-restore-${o.cluster}`,
      workflowType: 'pitrRestore',
      cluster: o.cluster,
      nodes: o.to ? [o.to] : [],
      input,
      summary: `restore ${o.cluster} to ${o.toGtid !== undefined ? `GTID ${o.toGtid}` : `time ${target && 'time' in target ? target.time : ''}`} into ${o.to ?? 'a scratch server'}`,
      format: formatPitrReport,
    });
  }
  return startAndFollow<RestoreBackupResult>(o, io, {
    // Into a node of the cluster: a mutating operation, on the cluster's lock ID.
    workflowId: o.to ? operationWorkflowId(o.cluster) : `handover-restore-${o.cluster}`,
    workflowType: 'restoreBackupRun',
    cluster: o.cluster,
    input: { cluster: o.cluster, id: o.id!, target: o.to ? { kind: 'node', node: o.to } : { kind: 'scratch' } },
    summary: `restore backup ${o.id!} of ${o.cluster} into ${o.to ?? 'a scratch server'}`,
    format: (r) =>
      r.scratchCluster
        ? formatScratchCluster(o.cluster, r)
        : `restored ${r.id} into ${r.target === 'scratch' ? `a scratch server at ${r.address} (dir ${r.dir}${r.passwordFile ? `, password in ${r.passwordFile}` : ''}${r.socket ? `, root over ${r.socket}` : ''})` : r.target} in ${r.restoreMs} ms`,
  });
}

/** A Redis Cluster backup restored into a scratch cluster: every node, its slots and keys, where it lives. */
export function formatScratchCluster(cluster: string, r: RestoreBackupResult): string {
  const sc = r.scratchCluster!;
  return [
    `restored ${r.id} into a scratch Redis Cluster of ${sc.nodes.length} nodes on this worker (not part of ${cluster}; left running): ${r.keys} keys in ${r.restoreMs} ms`,
    ...sc.nodes.map((n) => `  ${n.address}  slots ${n.slots}  ${n.keys} keys  (dir ${n.dir})`),
    `  dir ${r.dir}, password in ${r.passwordFile} (every node)${sc.fullCoverage ? '' : '; the shards leave some slots unowned: cluster-require-full-coverage no'}`,
    `  connect: redis-cli -c -h ${r.address!.replace(/:\d+$/, '')} -p ${r.address!.replace(/^.*:/, '')} -a "$(cat ${r.passwordFile})"; stop: kill the redis.pid of each node's dir`,
  ].join('\n');
}

export function formatPitrReport(r: PitrRestoreReport): string {
  const t = 'gtid' in r.plan.target ? `GTID ${r.plan.target.gtid}` : `time ${r.plan.target.time}`;
  return [
    r.node
      ? `restored ${r.cluster} to ${t} into node ${r.node.node}: standalone (no replication), ${r.node.readOnly ? 'read-only' : 'WRITABLE'}, gtid_binlog_pos ${r.node.gtidBinlogPos || '(empty)'}, gtid_slave_pos ${r.node.gtidSlavePos || '(empty)'}`
      : `restored ${r.cluster} to ${t} into a scratch server at ${r.restored.address} (dir ${r.restored.dir}${r.restored.socket ? `, root over ${r.restored.socket}` : ''})`,
    `  base ${r.plan.base} (${r.plan.method}, ${r.plan.baseGtid}), restored in ${r.restored.restoreMs} ms`,
    `  replayed ${r.replay.transactions} transaction(s)${r.replay.firstGtid ? ` ${r.replay.firstGtid}..${r.replay.lastGtid}` : ''} from ${r.plan.segments.length} archived segment(s) in ${r.replay.replayMs} ms; at ${r.replay.endPos || r.plan.baseGtid} (verified)`,
    ...standingLines(r.standing),
    ...(r.notes ?? []).map((n) => `  ! ${n}`),
  ].join('\n');
}

// ---- archive: the continuous binlog archive ------------------------------------------------------------------

export const BackupArchiveOptions = CommonOptions.extend({
  action: z.enum(['start', 'stop', 'status']),
  cluster: z.string().min(1),
  runMs: z.coerce.number().int().min(1000).optional(),
  segmentMs: z.coerce.number().int().min(100).optional(),
  /** The archive lease's lifetime (ms): an archiver silent for this long may be taken over (default 60000). */
  leaseTtlMs: z.coerce.number().int().min(2000).optional(),
});
export type BackupArchiveOptions = z.input<typeof BackupArchiveOptions>;

export interface ArchiveStatusView {
  workflowId: string;
  running: boolean;
  primary?: string;
  archivedPos?: string;
  lagTransactions?: number;
  coveredUntil?: string;
  lagMs?: number;
  segments: number;
  lastSegment?: { seq: number; lastGtid: string; lastTs: string };
  followed: string[];
  note?: string;
  lastError?: string;
  /** Not running because its last run failed: why (one line). */
  ended?: string;
  /** Who holds the archive's lease (one archiver per archive), as the store says. */
  lease?: { holder: string; namespace: string; generation: number; expiresAt: string; released: boolean; text: string };
}

/**
 * start: the archiver workflow (idempotent: reports it when running), refused (ArchiveLeaseHeld) when another
 * archiver (another namespace or Temporal) holds the archive's lease; stop: terminate it and release its lease
 * (what is stored stays);
 * status: the archive's state in the store (what is archived, to when it is known complete) and, while the
 * archiver runs, its live heartbeat (the primary it streams, its lag).
 */
export async function runBackupArchive(raw: BackupArchiveOptions, io: IO): Promise<Result & { status?: ArchiveStatusView }> {
  const o = BackupArchiveOptions.parse(raw);
  const workflowId = archiverWorkflowId(o.cluster);
  try {
    precheckNames(o, o.cluster, []);
    const { client, close, keyIds } = await connect(o);
    try {
      const handle = client.workflow.getHandle(workflowId);
      const running = await handle
        .describe()
        .then((d) => d.status.name === 'RUNNING')
        .catch((e) => (e instanceof WorkflowNotFoundError ? false : Promise.reject(e)));
      const namespace = client.options.namespace;
      const storageOf = () => openStorage(findCluster(loadInventory(inventoryPath(o.inventory)), o.cluster));
      if (o.action === 'stop') {
        if (running) await handle.terminate('stopped with handover backup archive stop');
        // Its lease goes with it: the next archiver starts at once (not after the lease's lifetime).
        const released = await releaseLeaseOf(storageOf(), o.cluster, { archiver: workflowId, namespace }).catch(() => undefined);
        io.out(
          o.json
            ? JSON.stringify({ workflowId, stopped: running, leaseReleased: !!released })
            : `${running ? `stopped ${workflowId} (archived segments stay in the store)` : `${workflowId} was not running`}${released ? '; its archive lease released' : ''}`,
        );
        return { exitCode: EXIT.ok, workflowId };
      }
      if (o.action === 'status') {
        const status = await archiveStatus(o, workflowId, running, handle);
        io.out(o.json ? JSON.stringify(status) : formatArchiveStatus(status));
        return { exitCode: EXIT.ok, workflowId, status };
      }
      await refuseKeyMismatch(client, o.taskQueue, keyIds);
      if (!running) {
        // One archiver per archive: refused before starting when another one (another namespace or Temporal) holds it.
        const storage = storageOf();
        const { lease } = await readLease(storage, o.cluster);
        if (lease && lease.owner.archiver === workflowId && lease.owner.namespace === namespace) {
          await releaseLeaseOf(storage, o.cluster, { archiver: workflowId, namespace }); // left by an earlier run of this archiver
        } else {
          const v = judgeLease(o.cluster, lease, { token: '' }, Date.now());
          if (!v.take) throw new CliError(EXIT.refused, `refused (ArchiveLeaseHeld): ${v.refusal.replace(/^refused: /, '')}; nothing was started`, 'ArchiveLeaseHeld');
        }
      }
      const input: BinlogArchiverInput = { cluster: o.cluster, ...(o.runMs ? { runMs: o.runMs } : {}), ...(o.segmentMs ? { segmentMs: o.segmentMs } : {}), ...(o.leaseTtlMs ? { leaseTtlMs: o.leaseTtlMs } : {}) };
      try {
        await client.workflow.start('binlogArchiver', {
          workflowId,
          taskQueue: o.taskQueue,
          args: [input],
          workflowIdConflictPolicy: 'FAIL',
          typedSearchAttributes: [
            { key: SA_CLUSTER, value: o.cluster },
            { key: SA_RUNBOOK, value: 'binlog-archive' },
          ],
          staticSummary: `binlog archive of ${o.cluster}`,
        });
        io.out(o.json ? JSON.stringify({ workflowId, started: true }) : `archiving ${o.cluster}'s binlogs: ${workflowId}`);
      } catch (e) {
        if (!(e instanceof WorkflowExecutionAlreadyStartedError)) throw e;
        io.out(o.json ? JSON.stringify({ workflowId, started: false }) : `already archiving ${o.cluster}'s binlogs: ${workflowId}`);
      }
      return { exitCode: EXIT.ok, workflowId };
    } finally {
      await close();
    }
  } catch (e) {
    if (!(e instanceof CliError)) throw e;
    sayFailure(o, io, e, { workflowId });
    return { exitCode: e.exitCode, workflowId };
  }
}

async function archiveStatus(o: z.output<typeof BackupArchiveOptions>, workflowId: string, running: boolean, handle: WorkflowHandle): Promise<ArchiveStatusView> {
  const inv = loadInventory(inventoryPath(o.inventory));
  const storage: BackupStorage = openStorage(findCluster(inv, o.cluster));
  // One listing and the last manifest (not every manifest: in an object store each is a GET).
  const [seqs, last, state, { lease }] = await Promise.all([segmentSeqs(storage, o.cluster), lastSegment(storage, o.cluster), readArchiveState(storage, o.cluster), readLease(storage, o.cluster)]);
  let live: Partial<ArchiveHeartbeat> | undefined;
  let wf: ArchiverStatus | undefined;
  let ended: string | undefined;
  if (!running) {
    // Ended on its own (e.g. refused: another archiver holds the archive's lease): why.
    const d = await handle.describe().catch(() => undefined);
    if (d?.status.name === 'FAILED') {
      const f = await handle.result().then(
        () => undefined,
        (e: unknown) => rootFailure(e),
      );
      if (f) ended = `${f.type ? `${f.type}: ` : ''}${f.message}`;
    }
  }
  if (running) {
    wf = await handle.query<ArchiverStatus>('archiveStatus').catch(() => undefined);
    const d = await handle.describe().catch(() => undefined);
    const hb = d?.raw.pendingActivities?.find((a) => a.activityType?.name === 'archiveBinlogs')?.heartbeatDetails?.payloads?.[0];
    if (hb?.data) {
      try {
        live = JSON.parse(Buffer.from(hb.data).toString('utf8')) as Partial<ArchiveHeartbeat>;
      } catch {
        live = undefined;
      }
    }
  }
  const coveredUntil = live?.coveredUntil ?? state?.coveredUntil;
  return {
    workflowId,
    running,
    primary: live?.primary ?? state?.primary,
    archivedPos: live?.archivedPos || state?.archivedPos || last?.endPos,
    lagTransactions: live?.lagTransactions ?? state?.lagTransactions,
    ...(coveredUntil ? { coveredUntil: new Date(coveredUntil).toISOString(), lagMs: Date.now() - coveredUntil } : {}),
    segments: seqs.length,
    ...(last ? { lastSegment: { seq: last.seq, lastGtid: last.lastGtid, lastTs: last.lastTs } } : {}),
    followed: wf?.followed ?? [],
    ...(live?.note ?? state?.note ? { note: live?.note ?? state?.note } : {}),
    ...(wf?.lastError ? { lastError: wf.lastError } : {}),
    ...(ended ? { ended } : {}),
    ...(lease
      ? {
          lease: {
            holder: lease.owner.archiver,
            namespace: lease.owner.namespace,
            generation: lease.generation,
            expiresAt: lease.expiresAt,
            released: !!lease.released,
            text: lease.released ? `released by ${lease.owner.archiver} (namespace ${lease.owner.namespace})` : `held by ${describeHolder(lease, Date.now())}`,
          },
        }
      : {}),
  };
}

export function formatArchiveStatus(s: ArchiveStatusView): string {
  return [
    `binlog archive ${s.workflowId}: ${s.running ? 'running' : 'NOT running'}; primary ${s.primary ?? '?'}; archived up to ${s.archivedPos || 'nothing yet'} in ${s.segments} segment(s)`,
    `  lag: ${s.lagTransactions ?? '?'} transaction(s); complete up to ${s.coveredUntil ?? 'unknown'}${s.lagMs !== undefined ? ` (${Math.round(s.lagMs / 100) / 10} s ago)` : ''}`,
    ...(s.lastSegment ? [`  last segment ${s.lastSegment.seq}: up to ${s.lastSegment.lastGtid} (${s.lastSegment.lastTs})`] : []),
    ...s.followed.map((f) => `  followed ${f}`),
    ...(s.lease ? [`  lease (generation ${s.lease.generation}): ${s.lease.text}`] : []),
    ...(s.note ? [`  ! ${s.note}`] : []),
    ...(s.lastError ? [`  ! last error: ${s.lastError}`] : []),
    ...(s.ended ? [`  ! ended: ${s.ended}`] : []),
  ].join('\n');
}

// ---- provision-replica ---------------------------------------------------------------------------------------

export const BackupProvisionOptions = CommonOptions.extend({
  cluster: z.string().min(1),
  node: z.string().min(1),
  id: z.string().min(1).optional(),
  timeoutMs: z.coerce.number().int().min(1000).optional(),
});
export type BackupProvisionOptions = z.input<typeof BackupProvisionOptions>;

/** A new replica from a physical backup, on the cluster's lock ID (a mutating operation). */
export async function runBackupProvisionReplica(raw: BackupProvisionOptions, io: IO) {
  const o = BackupProvisionOptions.parse(raw);
  const input: ProvisionReplicaInput = { cluster: o.cluster, node: o.node, ...(o.id ? { id: o.id } : {}), ...(o.timeoutMs ? { timeoutMs: o.timeoutMs } : {}), requestedBy: process.env.USER };
  return startAndFollow<ProvisionReplicaReport>(o, io, {
    workflowId: operationWorkflowId(o.cluster),
    workflowType: 'provisionReplica',
    cluster: o.cluster,
    nodes: [o.node],
    input,
    summary: `provision ${o.node} of ${o.cluster} from ${o.id ?? 'the newest good physical backup'}`,
    format: (r) =>
      `provisioned ${r.node} from ${r.id}: restored in ${r.restoreMs} ms, gtid_slave_pos ${r.gtid}, replicating from ${r.primary}, every node converged after ${r.convergedMs} ms`,
  });
}

// ---- schedule -------------------------------------------------------------------------------------------------

export const BackupScheduleOptions = CommonOptions.extend({
  cluster: z.string().min(1),
  cron: z.string().min(1).optional(),
  keep: z.coerce.number().int().min(1).optional(),
  pause: z.boolean().default(false),
  unpause: z.boolean().default(false),
  trigger: z.boolean().default(false),
  delete: z.boolean().default(false),
});
export type BackupScheduleOptions = z.input<typeof BackupScheduleOptions>;

export async function runBackupSchedule(raw: BackupScheduleOptions, io: IO): Promise<Result & { scheduleId: string; created?: boolean; updated?: boolean }> {
  const o = BackupScheduleOptions.parse(raw);
  const scheduleId = backupScheduleId(o.cluster);
  const say = (text: string, obj: Record<string, unknown>) => (o.json ? io.out(JSON.stringify({ scheduleId, ...obj })) : io.out(text));
  if (o.pause && o.unpause) {
    sayFailure(o, io, new CliError(EXIT.refused, 'refused (UsageError): --pause and --unpause together'), { scheduleId });
    return { exitCode: EXIT.refused, scheduleId };
  }
  try {
    precheckNames(o, o.cluster, []);
    const { client, close } = await connect(o);
    try {
      const handle = client.schedule.getHandle(scheduleId);
      let created = false;
      let updated = false;
      if (o.cron) {
        const action = {
          type: 'startWorkflow' as const,
          workflowType: 'scheduledBackup',
          workflowId: `handover-backup-scheduled-${o.cluster}`,
          taskQueue: o.taskQueue,
          args: [{ cluster: o.cluster, ...(o.keep ? { keep: o.keep } : {}) }],
          typedSearchAttributes: [
            { key: SA_CLUSTER, value: o.cluster },
            { key: SA_RUNBOOK, value: 'backup' },
          ],
          staticSummary: `scheduled backup of ${o.cluster}`,
        };
        try {
          await client.schedule.create({ scheduleId, memo: { cron: o.cron }, spec: { cronExpressions: [o.cron] }, action, policies: { overlap: 'SKIP', catchupWindow: '1 minute' }, state: { paused: o.pause, note: `handover backup schedule of ${o.cluster}` } });
          created = true;
        } catch (e) {
          if (!(e instanceof ScheduleAlreadyRunning)) throw e;
          // Idempotent: the same schedule again changes nothing; a different cron or keep updates it in place.
          const d = await handle.describe();
          // The server keeps a cron compiled into calendars; the cron as given is in the schedule's memo.
          const sameCron = (d.memo as { cron?: string } | undefined)?.cron === o.cron;
          const sameArgs = JSON.stringify(d.action.args) === JSON.stringify(action.args);
          const sameQueue = d.action.taskQueue === o.taskQueue;
          if (!sameCron || !sameArgs || !sameQueue) {
            await handle.update((prev) => ({ ...prev, memo: { cron: o.cron }, spec: { cronExpressions: [o.cron!] }, action: { ...action }, policies: { ...prev.policies, overlap: 'SKIP' } }));
            updated = true;
          }
        }
      }
      if (o.delete) {
        await handle.delete();
        say(`deleted schedule ${scheduleId}`, { deleted: true });
        return { exitCode: EXIT.ok, scheduleId };
      }
      if (o.pause && !created) await handle.pause(`paused by ${process.env.USER ?? 'handover'}`);
      if (o.unpause) await handle.unpause(`unpaused by ${process.env.USER ?? 'handover'}`);
      if (o.trigger) await handle.trigger('SKIP');
      const d = await handle.describe();
      const next = d.info.nextActionTimes?.[0];
      say(
        `${created ? 'created' : updated ? 'updated' : 'unchanged'} schedule ${scheduleId}: cron ${JSON.stringify((d.memo as { cron?: string } | undefined)?.cron ?? '?')}, overlap ${d.policies.overlap}, ${d.state.paused ? 'paused' : 'active'}${o.trigger ? ', triggered now' : ''}${next ? `, next ${next.toISOString()}` : ''}`,
        { created, updated, cron: (d.memo as { cron?: string } | undefined)?.cron, paused: d.state.paused, triggered: o.trigger, overlap: d.policies.overlap, nextActionTimes: d.info.nextActionTimes, recentActions: d.info.recentActions.length },
      );
      return { exitCode: EXIT.ok, scheduleId, created, updated };
    } catch (e) {
      if (e instanceof ScheduleNotFoundError) throw new CliError(EXIT.refused, `refused (NotFound): no schedule ${scheduleId}; create it with --cron EXPR`);
      throw e;
    } finally {
      await close();
    }
  } catch (e) {
    if (!(e instanceof CliError)) throw e;
    sayFailure(o, io, e, { scheduleId });
    return { exitCode: e.exitCode, scheduleId };
  }
}
