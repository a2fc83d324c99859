/**
 * What is stored, and retention: list a cluster's backups with their states; record a verification; delete
 * what planRetention allows (older than a newer good backup; the run's own backup never), manifest first.
 */
import { planRetention, type VerificationRecord } from '../../core/backup/decide';
import type { BackupContext } from './context';
import type { PruneInput, PruneResult } from './contracts';

export async function listBackups(ctx: BackupContext, { cluster }: { cluster: string }) {
  const c = ctx.clusterOf(cluster);
  const storage = ctx.storageOf(c);
  const all = await storage.list(c.name);
  return {
    storage: storage.location,
    backups: all.map(({ manifest, verification, problems: _p, ...rest }) => ({ ...rest, engine: manifest?.engine, sha256: manifest?.artifact.sha256, position: manifest?.position, fromPrimary: manifest?.fromPrimary, verifiedAt: verification?.at })),
  };
}

/** Record a verification (ok: the backup is listed good; not ok: failed). Rewriting the same record is a no-op. */
export async function markBackupVerified(ctx: BackupContext, { cluster, record }: { cluster: string; record: VerificationRecord }): Promise<{ state: string; audit: string }> {
  const c = ctx.clusterOf(cluster);
  const storage = ctx.storageOf(c);
  await ctx.stored(c, record.id, storage);
  await storage.putJson(c.name, record.id, 'verification.json', record);
  const b = await storage.get(c.name, record.id);
  return { state: b?.state ?? 'missing', audit: `${record.id} is now ${b?.state}` };
}

export async function pruneBackups(ctx: BackupContext, input: PruneInput): Promise<PruneResult> {
  const c = ctx.clusterOf(input.cluster);
  const storage = ctx.storageOf(c);
  const plan = planRetention(await storage.list(c.name), input.keep, input.protect);
  for (const d of plan.delete) await storage.remove(c.name, d.id);
  return { ...plan, audit: `kept ${plan.keep.length} (${plan.keep.join(', ') || 'none'}); deleted ${plan.delete.length}${plan.delete.length ? `: ${plan.delete.map((d) => `${d.id} (${d.reason})`).join('; ')}` : ''}` };
}
