/** Backup tests, bench and chaos: an inventory's YAML with a `backup:` block on its cluster. */

/** Where the block stores backups: a local directory, or an S3 storage block (YAML flow mapping, see sandbox/s3.ts). */
export type BackupStore = string | { s3: string };

export function withBackupBlock(yaml: string, store: BackupStore, keep: number, compression: 'gzip' | 'zstd' = 'gzip', more: { method?: 'logical' | 'physical'; encryption?: string } = {}): string {
  const storage = typeof store === 'string' ? `{ type: local, dir: ${store} }` : store.s3;
  const extra = (sp: string) => `${more.method ? `\n${sp}  method: ${more.method}` : ''}${more.encryption ? `\n${sp}  encryption: ${more.encryption}` : ''}`;
  return yaml.replace(/^(\s+)engine: (\w+)$/m, (_m, sp: string, e: string) => `${sp}engine: ${e}\n${sp}backup:\n${sp}  storage: ${storage}\n${sp}  keep: ${keep}\n${sp}  compression: ${compression}${extra(sp)}`);
}
