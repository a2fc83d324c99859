/**
 * What is stored, and retention: list a cluster's backups with their states; record a verification; delete
 * what planRetention allows (older than a newer good backup; the run's own backup never), manifest first.
 */
import { ARCHIVE_ID, segmentName, segmentsToPrune } from '../../core/backup/binlog';
import { planRetention, type VerificationRecord } from '../../core/backup/decide';
import { listSegments } from './archive';
import type { BackupContext } from './context';
import type { PruneInput, PruneResult } from './contracts';

export async function listBackups(ctx: BackupContext, { cluster }: { cluster: string }) {
  const c = ctx.clusterOf(cluster);
  const storage = ctx.storageOf(c);
  const all = await storage.list(c.name);
  return {
    storage: storage.location,
    backups: all.map(({ manifest, verification, problems: _p, ...rest }) => ({ ...rest, engine: manifest?.engine, method: manifest?.engine === 'mysql' ? (manifest.method ?? 'logical') : undefined, base: manifest?.base, sha256: manifest?.artifact.sha256, position: manifest?.position, fromPrimary: manifest?.fromPrimary, verifiedAt: verification?.at })),
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
  // MariaDB binlog archive: the segments before the oldest kept good base go with the backups (manifest first,
  // so an interrupted delete leaves a data file no one reads).
  let segments = '';
  if (c.engine === 'mysql') {
    const kept = (await storage.list(c.name)).filter((b) => b.state === 'good' && b.manifest?.position.gtid && plan.keep.includes(b.id));
    const oldest = kept.sort((a, b) => a.startedAt.localeCompare(b.startedAt))[0];
    const segs = await listSegments(storage, c.name);
    const drop = segmentsToPrune(segs, oldest?.manifest?.position.gtid);
    for (const seq of drop) {
      const m = segs.find((s) => s.seq === seq)!;
      await storage.removeFile(c.name, ARCHIVE_ID, `${segmentName(seq)}.json`);
      await storage.removeFile(c.name, ARCHIVE_ID, m.artifact.file);
    }
    if (drop.length) segments = `; archived binlog segments ${drop[0]}..${drop[drop.length - 1]} (before the oldest kept base ${oldest!.id}) deleted`;
  }
  return { ...plan, audit: `kept ${plan.keep.length} (${plan.keep.join(', ') || 'none'}); deleted ${plan.delete.length}${plan.delete.length ? `: ${plan.delete.map((d) => `${d.id} (${d.reason})`).join('; ')}` : ''}${segments}` };
}

/**
 * After a restore into `node` (a new replica): its replication position is the backup's GTID (SET GLOBAL
 * gtid_slave_pos). A no-op when it already is, and when the node already replicates (a retry after the
 * replication step ran).
 */
export async function ensureRestoredPosition(ctx: BackupContext, input: { cluster: string; node: string; gtid: string }): Promise<{ changed: boolean; audit: string }> {
  const c = ctx.clusterOf(input.cluster);
  return ctx.withMysql(c, input.node, async (conn) => {
    const [[v]] = (await conn.query('SELECT @@gtid_slave_pos AS s, @@gtid_binlog_pos AS b')) as unknown as [[{ s: string; b: string }]];
    const [st] = (await conn.query('SHOW SLAVE STATUS')) as unknown as [{ Slave_IO_Running?: string; Slave_SQL_Running?: string }[]];
    if (st[0] && (st[0].Slave_IO_Running === 'Yes' || st[0].Slave_SQL_Running === 'Yes')) return { changed: false, audit: `${input.node} already replicates (gtid_slave_pos ${v.s}); changed nothing` };
    if (v.s === input.gtid) return { changed: false, audit: `${input.node}'s gtid_slave_pos is already ${input.gtid}` };
    await conn.query('SET GLOBAL gtid_slave_pos = ?', [input.gtid]);
    return { changed: true, audit: `${input.node}: gtid_slave_pos ${v.s || '(empty)'} -> ${input.gtid} (the backup's position; gtid_binlog_pos ${v.b || '(empty)'})` };
  });
}
