/**
 * The backup store of a cluster, from its inventory's `backup.storage` (local directory or S3-compatible
 * object store), else the worker's HANDOVER_BACKUP_DIR. Used by the activities and by `handover backup list`.
 */
import { ErrorType, HandoverError } from '../../../core/errors';
import type { ClusterSpec } from '../../../inventory/schema';
import type { BackupStorage } from './common';
import { LocalDirStorage } from './local';
import { S3Storage } from './s3';

export * from './common';
export { LocalDirStorage } from './local';
export { S3Storage } from './s3';

export function openStorage(c: Pick<ClusterSpec, 'name' | 'backup'>, env: NodeJS.ProcessEnv = process.env): BackupStorage {
  const s = c.backup?.storage;
  if (s?.type === 's3') return new S3Storage(s, env);
  const dir = s?.dir ?? env.HANDOVER_BACKUP_DIR;
  if (!dir) throw new HandoverError(ErrorType.PreconditionFailed, `cluster ${c.name} has no backup storage: set backup.storage in the inventory or HANDOVER_BACKUP_DIR on the worker`);
  return new LocalDirStorage(dir);
}
