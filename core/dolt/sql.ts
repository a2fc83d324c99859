/**
 * SQL builders for Dolt's stored procedures (unit-tested on the statements they send). The runbooks do not use
 * them: the switchover and failover call dolt_assume_cluster_role in activities/dolt/cluster.ts (decisions in
 * core/dolt/decide.ts), and backups call dolt_backup('sync-url', …) in activities/backup/dolt.ts. Kept for a
 * backup remote configured on the servers (`dolt_backup('sync', name)`, inventory backup.doltBackupName).
 */

export interface SqlStatement {
  sql: string;
  params: (string | number)[];
}

const BACKUP_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;

/** `CALL dolt_backup('sync', name)`: push the database to the named backup remote (configured with `dolt backup add`). */
export function doltBackupSync(name: string): SqlStatement {
  if (!BACKUP_NAME.test(name)) throw new Error(`dolt backup name ${JSON.stringify(name)}: want 1-63 of A-Z a-z 0-9 _ -`);
  return { sql: 'CALL dolt_backup(?, ?)', params: ['sync', name] };
}

/** `CALL dolt_backup('sync-url', url)`: push to a backup URL (file:///..., aws://..., gs://...). */
export function doltBackupSyncUrl(url: string): SqlStatement {
  if (!/^(file|aws|gs|oci|https?):\/\/\S+$/.test(url)) throw new Error(`dolt backup url ${JSON.stringify(url)}: want file:// aws:// gs:// oci:// or http(s)://`);
  return { sql: 'CALL dolt_backup(?, ?)', params: ['sync-url', url] };
}

/** What the standby reports: `SELECT @@dolt_cluster_role, @@dolt_cluster_role_epoch`. */
export const DOLT_CLUSTER_ROLE_QUERY = 'SELECT @@GLOBAL.dolt_cluster_role AS role, @@GLOBAL.dolt_cluster_role_epoch AS epoch';

/**
 * Standby promotion under Dolt's cluster roles: `CALL dolt_assume_cluster_role('primary', epoch)` with an epoch
 * strictly greater than every epoch seen in the cluster (Dolt refuses a role change at a stale epoch, which is
 * what fences an old primary). Returns the statements for: the new primary, then each other node demoted to
 * standby at the same epoch.
 */
export function doltPromotion(o: { seenEpochs: number[]; standbys: string[] }): { epoch: number; promote: SqlStatement; demote: { node: string; statement: SqlStatement }[] } {
  for (const e of o.seenEpochs) if (!Number.isInteger(e) || e < 0) throw new Error(`epoch ${e}: want a non-negative integer`);
  const epoch = Math.max(0, ...o.seenEpochs) + 1;
  return {
    epoch,
    promote: { sql: 'CALL dolt_assume_cluster_role(?, ?)', params: ['primary', epoch] },
    demote: o.standbys.map((node) => ({ node, statement: { sql: 'CALL dolt_assume_cluster_role(?, ?)', params: ['standby', epoch] } })),
  };
}
