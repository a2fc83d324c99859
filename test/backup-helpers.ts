/** Backup tests: an inventory's YAML with a `backup:` block (local storage in `dir`, keep N) on its cluster. */
export function withBackupBlock(yaml: string, dir: string, keep: number, compression: 'gzip' | 'zstd' = 'gzip'): string {
  return yaml.replace(/^(\s+)engine: (\w+)$/m, (_m, sp: string, e: string) => `${sp}engine: ${e}\n${sp}backup:\n${sp}  storage: { type: local, dir: ${dir} }\n${sp}  keep: ${keep}\n${sp}  compression: ${compression}`);
}
