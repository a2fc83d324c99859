/** Backups under chaos, both engines: the worker is killed at every step of a backup taken under the writer. */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { runBackupList, runBackupRun } from '../../client/commands/backup';
import { quietIO } from './common';

export const BACKUP_POINTS = [
  ...['probeBackupSources', 'takeBackup', 'verifyBackup', 'markBackupVerified', 'pruneBackups'].flatMap((a) => [`before:${a}`, `after:${a}`]),
  'inside:takeBackup.streaming',
  'inside:takeBackup.beforeManifest',
];

/**
 * The lab's inventory gains a backup block (local storage beside the fleet, keep 100 so nothing is pruned);
 * `method: physical` for the MariaDB physical matrix (mariadb-backup on the lab's loopback nodes).
 */
export function addBackupBlock(lab: { inventory: string }, o: { method?: 'logical' | 'physical' } = {}): void {
  const yaml = readFileSync(lab.inventory, 'utf8');
  if (/^\s+backup:$/m.test(yaml)) return;
  const dir = path.join(path.dirname(lab.inventory), 'backups');
  writeFileSync(
    lab.inventory,
    yaml.replace(/^(\s+)engine: (\w+)$/m, (_m, sp: string, e: string) => `${sp}engine: ${e}\n${sp}backup:\n${sp}  storage: { type: local, dir: ${dir} }\n${sp}  keep: 100${o.method ? `\n${sp}  method: ${o.method}` : ''}`),
  );
}

export async function backupStates(lab: { inventory: string }, cluster: string): Promise<{ id: string; state: string }[]> {
  const r = await runBackupList({ cluster, inventory: lab.inventory, json: true }, { out: () => undefined, err: () => undefined, isTTY: false });
  if (r.exitCode !== 0 || !r.backups) throw new Error(`backup list exited ${r.exitCode}`);
  return r.backups;
}

/**
 * Exactly one more backup than before, it is the one the run reported, and every backup is listed good: an
 * interrupted take is finished by the retry under the same ID, never left behind as a second, partial artifact.
 */
export async function checkOneNewGoodBackup(lab: { inventory: string }, cluster: string, before: unknown, report: unknown): Promise<string[]> {
  const prior = before as { id: string }[];
  const now = await backupStates(lab, cluster);
  const added = now.filter((b) => !prior.some((p) => p.id === b.id));
  const problems: string[] = [];
  if (added.length !== 1) problems.push(`${added.length} new backups (want exactly 1): ${JSON.stringify(added)}`);
  const reported = (report as { id?: string } | undefined)?.id;
  if (added.length === 1 && reported !== added[0].id) problems.push(`the run reported backup ${reported ?? 'none'}, the new one is ${added[0].id}`);
  const notGood = now.filter((b) => b.state !== 'good');
  if (notGood.length) problems.push(`backups not good: ${JSON.stringify(notGood)}`);
  return problems;
}

export async function startBackup(lab: { address: string; taskQueue: string; inventory: string }, cluster: string, i: number, log: (m: string) => void): Promise<void> {
  const r = await runBackupRun({ cluster, inventory: lab.inventory, address: lab.address, taskQueue: lab.taskQueue, requestedBy: `chaos run ${i}` }, quietIO(log));
  if (r.exitCode !== 0) throw new Error(`could not start: exit ${r.exitCode}`);
}
