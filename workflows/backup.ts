/**
 * Backups as runbooks:
 *  - backup:          probe -> choose source -> take -> verify -> mark good -> prune. Started on the cluster's
 *                     operation ID (handover-<cluster>), so it never runs while a rolling restart or switchover
 *                     could restart or demote the node being copied, and vice versa.
 *  - scheduledBackup: what a Temporal Schedule starts (the server appends a timestamp to a scheduled workflow's
 *                     ID, so the schedule cannot start the locked ID itself): it runs `backup` as a child on the
 *                     lock ID; when another operation holds the cluster, it records "skipped" and ends.
 *  - verifyBackupRun: re-verify a stored backup (sha256, then a restore into a scratch server).
 *  - restoreBackupRun: restore into a fresh scratch server, or into an empty node (refused before any write
 *                     when the node holds data).
 *  - provisionReplica: a new replica from a physical backup: restore into the empty node, take the backup's
 *                     GTID as its replication position, replicate from the current primary, wait until every
 *                     node converges. On the cluster's lock ID.
 * Decisions are frozen in the workflow (backup ID from the workflow clock, the chosen node), so a retried
 * activity never decides again.
 */
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { ApplicationFailure, executeChild, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { ProbeBackupResult, RestoreBackupResult, RestoreTarget, TakeBackupResult, VerifyBackupResult } from '../activities/backup';
import { backupId, chooseBackupSource, chooseProvisionBackup, chooseShardSources } from '../core/backup/decide';
import { ErrorType, NON_RETRYABLE } from '../core/errors';
import { SA_CLUSTER, SA_PHASE, SA_RUNBOOK, operationWorkflowId } from '../core/ids';
import { mutate, probe, wait } from './profiles';
import { Runbook } from './runbook';

/** Long steps (a dump, a restore): hours allowed, heartbeats every second, a dead worker noticed in 10 s. */
// 10 attempts: a worker cut off from Temporal still "receives" the attempts the server hands to the polls it had
// open before the cut (up to one per open poll, for about a minute), and each is lost to the heartbeat timeout;
// with 5 attempts a take failed that way in the multi-host test (d). Every long step is idempotent.
const long = proxyActivities<Activities>({
  startToCloseTimeout: '6h',
  heartbeatTimeout: '10s',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '10s', maximumAttempts: 10, nonRetryableErrorTypes: NON_RETRYABLE },
});
/** Small storage steps (a manifest, a few deletions): a worker that dies in one is noticed within 30 s. */
const store = proxyActivities<Activities>({
  startToCloseTimeout: '30s',
  retry: { initialInterval: '500ms', backoffCoefficient: 2, maximumInterval: '5s', maximumAttempts: 5, nonRetryableErrorTypes: NON_RETRYABLE },
});

export interface BackupInput {
  cluster: string;
  /** Keep this many verified backups (default: the inventory's backup.keep, else 7). */
  keep?: number;
  /** Back up from this node (it must be a healthy in-sync replica, or the primary). */
  node?: string;
  /** Refuse instead of falling back to the primary when no healthy replica exists. */
  replicaOnly?: boolean;
  /** backup.method: physical — an incremental on the newest good physical backup (a full when there is none). */
  incremental?: boolean;
  requestedBy?: string;
}

export interface BackupReport {
  runbook: 'backup';
  cluster: string;
  id: string;
  node: string;
  fromPrimary: boolean;
  storage: string;
  take: Omit<TakeBackupResult, 'audit'>;
  verification: Omit<VerifyBackupResult, 'audit'>;
  kept: string[];
  pruned: string[];
  steps: { step: string; ms: number }[];
  audit: string[];
}

export async function backup(input: BackupInput): Promise<BackupReport> {
  const { cluster } = input;
  const rb = new Runbook('backup', cluster);
  rb.plan([
    { name: 'probe', summary: `probe ${cluster}: roles, links, lag` },
    { name: 'choose source', summary: 'a healthy in-sync replica, else the primary' },
    { name: 'take', summary: 'stream, compress, hash, store; manifest last' },
    { name: 'verify', summary: 'sha256, then restore into a scratch server and compare' },
    { name: 'mark good', summary: 'record the verification' },
    { name: 'prune', summary: 'retention: keep the newest N good backups' },
  ]);
  if (input.requestedBy) rb.audit('start', `requested by ${input.requestedBy}`);
  const id = backupId(cluster, workflowInfo().startTime.getTime());

  const probed: ProbeBackupResult = await rb.step(
    'probe',
    `probe ${cluster}: roles, links, lag`,
    () => probe.probeBackupSources.executeWithOptions({ summary: `probe ${cluster} for a backup source` }, [{ cluster }]),
    (p) => `saw ${p.nodes.map((n) => `${n.node}=${n.reachable ? `${n.role}${n.role === 'replica' ? `(${n.replicating ? 'linked' : 'unlinked'}, lag ${n.lag ?? '?'} ${p.lagUnit})` : ''}` : 'down'}`).join(' ')}; storage ${p.storage}`,
  );
  // A Redis Cluster: one source per shard. Only probes that say `topology: cluster` take this path; before it
  // existed the probe of a Cluster failed (refused), so recorded runs never reach it.
  if (probed.topology === 'cluster') return clusterBackup(rb, input, id, probed);
  const choice = await rb.step('choose source', 'a healthy in-sync replica, else the primary', async () => {
    const c = chooseBackupSource(probed.nodes, { maxLag: probed.maxLag, allowPrimary: !input.replicaOnly, node: input.node });
    if ('refusal' in c) throw ApplicationFailure.create({ message: `refused: ${c.refusal}; nothing was taken`, type: ErrorType.PreconditionFailed, nonRetryable: true });
    return c;
  }, (c) => `${c.node}: ${c.reason}${c.rejected.length ? `; not: ${c.rejected.map((r) => `${r.node} (${r.reason})`).join(', ')}` : ''}`);

  const take = await rb.step(`take`, `take ${id} from ${choice.node}${choice.fromPrimary ? ' (the primary: no healthy replica)' : ''}`, () =>
    long.takeBackup.executeWithOptions({ summary: `take ${id} from ${choice.node}` }, [{ cluster, id, node: choice.node, role: choice.role, fromPrimary: choice.fromPrimary, ...(input.incremental ? { incremental: true } : {}) }]),
  );
  const verification = await rb.step('verify', `verify ${id}: sha256, then restore into a scratch server`, () =>
    long.verifyBackup.executeWithOptions({ summary: `verify ${id} in a scratch server` }, [{ cluster, id, record: false }]),
  );
  await rb.step(`mark good`, verification.ok ? `mark ${id} good` : `mark ${id} failed`, () =>
    store.markBackupVerified.executeWithOptions({ summary: `record the verification of ${id}` }, [{ cluster, record: { id: verification.id, ok: verification.ok, at: verification.at, checks: verification.checks, failure: verification.failure, restoreMs: verification.restoreMs } }]),
  );
  if (!verification.ok) {
    rb.skipRemaining('verification failed: nothing pruned');
    throw ApplicationFailure.create({ message: `backup ${id} failed verification: ${verification.failure}; it is listed as failed and nothing was pruned`, type: ErrorType.VerificationFailed, nonRetryable: true });
  }
  const keep = input.keep ?? probed.keep;
  const pruned = await rb.step('prune', `retention: keep the newest ${keep} good backups`, () =>
    store.pruneBackups.executeWithOptions({ summary: `prune ${cluster}'s backups to ${keep}` }, [{ cluster, keep, protect: id }]),
  );
  rb.setPhase('done');
  const takeReport = withoutAudit(take);
  const verReport = withoutAudit(verification);
  return {
    runbook: 'backup',
    cluster,
    id,
    node: choice.node,
    fromPrimary: choice.fromPrimary,
    storage: probed.storage,
    take: takeReport,
    verification: verReport,
    kept: pruned.keep,
    pruned: pruned.delete.map((d) => d.id),
    steps: rb.timings(),
    audit: rb.progress.audit,
  };
}

/** Redis Cluster: choose one source per shard, take every shard into one backup, verify each, mark, prune. */
async function clusterBackup(rb: Runbook, input: BackupInput, id: string, probed: ProbeBackupResult): Promise<BackupReport> {
  const { cluster } = input;
  const shards = await rb.step(
    'choose source',
    'one source per shard: a healthy in-sync replica of its primary, else the primary',
    async () => {
      const c = chooseShardSources(probed.nodes, { maxLag: probed.maxLag, allowPrimary: !input.replicaOnly });
      if ('refusal' in c) throw ApplicationFailure.create({ message: `refused: ${c.refusal}; nothing was taken`, type: ErrorType.PreconditionFailed, nonRetryable: true });
      return c.shards;
    },
    (s) => s.map((x) => `shard ${x.slots}: ${x.node} (${x.reason})`).join('; '),
  );
  const first = shards[0];
  const take = await rb.step('take', `take ${id}: ${shards.length} shards`, () =>
    long.takeBackup.executeWithOptions({ summary: `take ${id}: every shard of ${cluster}` }, [{ cluster, id, node: first.node, role: first.role, fromPrimary: shards.some((s) => s.role === 'primary'), shards: shards.map((s) => ({ slots: s.slots, primary: s.primary, node: s.node, role: s.role })) }]),
  );
  const verification = await rb.step('verify', `verify ${id}: sha256 of each shard, then each into its own scratch server`, () =>
    long.verifyBackup.executeWithOptions({ summary: `verify ${id}: every shard in a scratch server` }, [{ cluster, id, record: false }]),
  );
  await rb.step(`mark good`, verification.ok ? `mark ${id} good` : `mark ${id} failed`, () =>
    store.markBackupVerified.executeWithOptions({ summary: `record the verification of ${id}` }, [{ cluster, record: { id: verification.id, ok: verification.ok, at: verification.at, checks: verification.checks, failure: verification.failure, restoreMs: verification.restoreMs } }]),
  );
  if (!verification.ok) {
    rb.skipRemaining('verification failed: nothing pruned');
    throw ApplicationFailure.create({ message: `backup ${id} failed verification: ${verification.failure}; it is listed as failed and nothing was pruned`, type: ErrorType.VerificationFailed, nonRetryable: true });
  }
  const keep = input.keep ?? probed.keep;
  const pruned = await rb.step('prune', `retention: keep the newest ${keep} good backups`, () => store.pruneBackups.executeWithOptions({ summary: `prune ${cluster}'s backups to ${keep}` }, [{ cluster, keep, protect: id }]));
  rb.setPhase('done');
  return {
    runbook: 'backup',
    cluster,
    id,
    node: shards.map((s) => s.node).join(','),
    fromPrimary: shards.some((s) => s.role === 'primary'),
    storage: probed.storage,
    take: withoutAudit(take),
    verification: withoutAudit(verification),
    kept: pruned.keep,
    pruned: pruned.delete.map((d) => d.id),
    steps: rb.timings(),
    audit: rb.progress.audit,
  };
}

function withoutAudit<T extends { audit: unknown }>(r: T): Omit<T, 'audit'> {
  const out: Partial<T> = { ...r };
  delete out.audit;
  return out as Omit<T, 'audit'>;
}

export interface ScheduledBackupReport {
  cluster: string;
  skipped: boolean;
  reason?: string;
  childWorkflowId: string;
  report?: BackupReport;
}

/** Started by the cluster's Temporal Schedule: the backup runs as a child on the cluster's lock ID. */
export async function scheduledBackup(input: BackupInput): Promise<ScheduledBackupReport> {
  const childWorkflowId = operationWorkflowId(input.cluster);
  try {
    const report = await executeChild(backup, {
      workflowId: childWorkflowId,
      args: [{ ...input, requestedBy: input.requestedBy ?? `schedule (${workflowInfo().workflowId})` }],
      typedSearchAttributes: [
        { key: SA_CLUSTER, value: input.cluster },
        { key: SA_RUNBOOK, value: 'backup' },
        { key: SA_PHASE, value: 'starting' },
      ],
      staticSummary: `scheduled backup of ${input.cluster}`,
    });
    return { cluster: input.cluster, skipped: false, childWorkflowId, report };
  } catch (e) {
    if (e instanceof WorkflowExecutionAlreadyStartedError)
      return { cluster: input.cluster, skipped: true, reason: `another operation holds ${childWorkflowId}; this run skipped (the next one will try again)`, childWorkflowId };
    throw e;
  }
}

export async function verifyBackupRun(input: { cluster: string; id: string }): Promise<Omit<VerifyBackupResult, 'audit'> & { audit: string[] }> {
  const rb = new Runbook('backup-verify', input.cluster);
  const v = await rb.step('verify', `verify ${input.id}: sha256, then restore into a scratch server`, () =>
    long.verifyBackup.executeWithOptions({ summary: `verify ${input.id} in a scratch server` }, [{ cluster: input.cluster, id: input.id, record: true }]),
  );
  rb.setPhase(v.ok ? 'verified' : 'failed');
  if (!v.ok) throw ApplicationFailure.create({ message: `backup ${input.id} failed verification: ${v.failure}`, type: ErrorType.VerificationFailed, nonRetryable: true });
  return { ...withoutAudit(v), audit: rb.progress.audit };
}

export async function restoreBackupRun(input: { cluster: string; id: string; target: RestoreTarget }): Promise<RestoreBackupResult & { trail: string[] }> {
  const rb = new Runbook('restore', input.cluster);
  const where = input.target.kind === 'scratch' ? 'a fresh scratch server' : `node ${input.target.node} (must be empty)`;
  const r = await rb.step('restore', `restore ${input.id} into ${where}`, () =>
    long.restoreBackup.executeWithOptions({ summary: `restore ${input.id} into ${where}` }, [input]),
  );
  rb.setPhase('done');
  return { ...r, trail: rb.progress.audit };
}

export interface ProvisionReplicaInput {
  cluster: string;
  node: string;
  /** The backup to provision from (default: the newest good physical backup). */
  id?: string;
  /** How long every node may take to converge after replication starts (ms; default 10 minutes). */
  timeoutMs?: number;
  requestedBy?: string;
}

export interface ProvisionReplicaReport {
  runbook: 'provision-replica';
  cluster: string;
  node: string;
  id: string;
  primary: string;
  gtid: string;
  restoreMs: number;
  convergedMs: number;
  steps: { step: string; ms: number }[];
  audit: string[];
}

/** A new replica from a physical backup: restore, gtid_slave_pos from the backup, replicate, converge. */
export async function provisionReplica(input: ProvisionReplicaInput): Promise<ProvisionReplicaReport> {
  const { cluster, node } = input;
  const rb = new Runbook('provision-replica', cluster);
  rb.plan([
    { name: 'probe', summary: `probe ${cluster}: the primary` },
    { name: 'choose backup', summary: input.id ?? 'the newest good physical backup' },
    { name: 'restore', summary: `restore into ${node} (must be empty)` },
    { name: 'position', summary: "gtid_slave_pos from the backup's GTID" },
    { name: 'replicate', summary: `${node} replicates from the primary` },
    { name: 'converge', summary: 'every node linked and caught up' },
  ]);
  if (input.requestedBy) rb.audit('start', `requested by ${input.requestedBy}`);
  const refuse = (why: string) => ApplicationFailure.create({ message: `refused: ${why}; nothing was changed`, type: ErrorType.PreconditionFailed, nonRetryable: true });
  const probed = await rb.step('probe', `probe ${cluster}: the primary`, () => probe.probeBackupSources.executeWithOptions({ summary: `probe ${cluster}` }, [{ cluster }]));
  if (probed.engine !== 'mysql') throw refuse(`cluster ${cluster} is engine ${probed.engine}: provisioning from a physical backup is MariaDB only`);
  if (!probed.nodes.some((n) => n.node === node)) throw ApplicationFailure.create({ message: `refused: unknown node ${node} in cluster ${cluster}; nothing was changed`, type: ErrorType.UnknownNode, nonRetryable: true });
  // The node to provision replicates from nobody yet, so it looks like a primary: the primary is among the others.
  const primaries = probed.nodes.filter((n) => n.reachable && n.role === 'primary' && n.node !== node);
  if (primaries.length !== 1) throw refuse(`${primaries.length} primaries in ${cluster} besides ${node} (${primaries.map((p) => p.node).join(', ') || 'none reachable'})`);
  const primary = primaries[0].node;
  if (probed.nodes.some((n) => n.node === node && n.role === 'replica' && n.replicaOf === primary && n.replicating))
    throw ApplicationFailure.create({ message: `refused: ${node} already replicates from ${primary}; restore only into an empty node (nothing was changed)`, type: ErrorType.TargetNotEmpty, nonRetryable: true });
  const listed = await rb.step('choose backup', input.id ?? 'the newest good physical backup', () => store.listBackups.executeWithOptions({ summary: `list ${cluster}'s backups` }, [{ cluster }]));
  const pick = chooseProvisionBackup(listed.backups, input.id);
  if ('refusal' in pick) throw refuse(pick.refusal);
  const id = pick.id;
  const restored = await rb.step('restore', `restore ${id} into ${node} (must be empty)`, () =>
    long.restoreBackup.executeWithOptions({ summary: `restore ${id} into ${node}` }, [{ cluster, id, target: { kind: 'node', node } }]),
  );
  const gtid = restored.gtid ?? '';
  await rb.step('position', `gtid_slave_pos ${gtid} on ${node}`, () => mutate.ensureMysqlRestoredPosition.executeWithOptions({ summary: `gtid_slave_pos of ${node} from ${id}` }, [{ cluster, node, gtid }]));
  await rb.step('replicate', `${node} replicates from ${primary}`, () => mutate.ensureMysqlReplicaOf.executeWithOptions({ summary: `make ${node} a replica of ${primary}` }, [{ cluster, node, primary }]));
  const v = await rb.step('converge', 'every node linked and caught up', () =>
    wait.verifyMysqlTopology.executeWithOptions({ summary: `verify ${node} and every replica follow ${primary}` }, [{ cluster, primary, timeoutMs: input.timeoutMs ?? 600_000 }]),
  );
  rb.setPhase('done');
  return { runbook: 'provision-replica', cluster, node, id, primary, gtid, restoreMs: restored.restoreMs, convergedMs: v.waitedMs, steps: rb.timings(), audit: rb.progress.audit };
}
