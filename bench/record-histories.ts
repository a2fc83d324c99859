/**
 * Records workflow histories for the replay test:  npx tsx bench/record-histories.ts [--only name,name]
 * Runs real runbooks in a lab — switchovers (completed, crashed-and-resumed, refused, dry run), rolling
 * restarts (completed, crashed-and-resumed), a failover (Redis), and MariaDB switchovers (completed, crashed
 * and resumed inside the catch-up, refused, dry run), and Redis switchovers behind the approval gate (approved;
 * aborted while waiting), Redis backups (completed, crashed mid-stream and resumed), Dolt switchovers (completed,
 * crashed inside the demotion and resumed, refused, dry run) and a Dolt failover — and writes their histories to test/histories/.
 * Re-record after an intended, patched change of workflow code; never to make a non-determinism failure go
 * away. --only records just the named files (e.g. --only rolling-restart-redis-completed).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { runBackupRun } from '../client/commands/backup';
import { runFailover } from '../client/commands/failover';
import { runRollingRestart } from '../client/commands/rolling-restart';
import { runSwitchover } from '../client/commands/switchover';
import { runApprove } from '../client/commands/approve';
import { runAbort } from '../client/commands/abort';
import type { RunbookProgress } from '../core/types';
import { operationWorkflowId } from '../core/ids';
import { ROOT, temporalBinary } from '../sandbox/paths';
import { waitForReplication } from '../sandbox/redis';
import { parseArgs, spawnWorker, startDoltLab, startLab, startMysqlLab, type DoltLab, type Lab, type MysqlLab } from './lab';

const quiet = { out: () => undefined, err: (m: string) => process.stderr.write(m + '\n'), isTTY: false };

type Start = (lab: Lab | MysqlLab | DoltLab) => Promise<{ exitCode: number }>;

async function record(lab: Lab | MysqlLab | DoltLab, name: string, start: Start, failpoint?: string) {
  const w = spawnWorker(lab, failpoint);
  const started = await start(lab);
  let w2: ReturnType<typeof spawnWorker> | undefined;
  if (failpoint) {
    await w.exited;
    w2 = spawnWorker(lab);
  }
  const handle = lab.client.workflow.getHandle(operationWorkflowId(lab.fleet.cluster));
  await handle.result().catch(() => undefined);
  // The history as `temporal workflow show -o json` prints it (what the UI exports too).
  const json = execFileSync(temporalBinary(), ['workflow', 'show', '--address', lab.address, '--workflow-id', handle.workflowId, '--output', 'json'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const file = path.join(ROOT, 'test', 'histories', `${name}.json`);
  writeFileSync(file, json);
  process.stderr.write(`recorded ${file} (start exit ${started.exitCode}, ${JSON.parse(json).events.length} events)\n`);
  await w.stop();
  await w2?.stop();
}

const common = (lab: Lab | MysqlLab | DoltLab) => ({ cluster: lab.fleet.cluster, address: lab.address, taskQueue: lab.taskQueue, requestedBy: 'record-histories' });

/** Start a --require-approval switchover, wait for its approval gate, then approve it or abort it. */
const gated = (then: 'approve' | 'abort') => async (l: Lab | MysqlLab | DoltLab) => {
  const started = await runSwitchover({ ...common(l), requireApproval: true }, quiet);
  const workflowId = operationWorkflowId(l.fleet.cluster);
  const handle = l.client.workflow.getHandle(workflowId);
  for (const until = Date.now() + 30_000; ; await new Promise((r) => setTimeout(r, 100))) {
    const p = await handle.query<RunbookProgress>('progress').catch(() => undefined);
    if (p?.approval?.status === 'waiting') break;
    if (Date.now() > until) throw new Error('no approval gate within 30 s');
  }
  const r = then === 'approve' ? await runApprove({ address: l.address, workflowId, approver: 'record-histories' }, quiet) : await runAbort({ address: l.address, workflowId, wait: false }, quiet);
  if (r.exitCode !== 0) throw new Error(`${then} exited ${r.exitCode}`);
  return started;
};

async function main() {
  const { opts } = parseArgs(['record', ...process.argv.slice(2)]);
  const only = opts.only ? new Set(opts.only.split(',')) : undefined;
  const want = (name: string) => !only || only.has(name);
  const lab = await startLab({ cluster: 'replay' });
  try {
    const sw = (o: { to?: string; dryRun?: boolean } = {}) => (l: Lab | MysqlLab | DoltLab) => runSwitchover({ ...common(l), ...o }, quiet);
    if (want('switchover-redis-completed')) await record(lab, 'switchover-redis-completed', sw());
    if (want('switchover-redis-crashed-resumed')) await record(lab, 'switchover-redis-crashed-resumed', sw(), 'inside:ensureRedisHandedOver.demoted');
    if (want('switchover-redis-refused')) await record(lab, 'switchover-redis-refused', sw({ to: (await lab.fleet.primary())!.id }));
    if (want('switchover-redis-dry-run')) await record(lab, 'switchover-redis-dry-run', sw({ dryRun: true }));
    if (want('switchover-redis-approved')) await record(lab, 'switchover-redis-approved', gated('approve'));
    if (want('switchover-redis-aborted')) await record(lab, 'switchover-redis-aborted', gated('abort'));
    const roll = (hz: number) => (l: Lab | MysqlLab | DoltLab) => runRollingRestart({ ...common(l), set: [`hz=${hz}`] }, quiet);
    if (want('rolling-restart-redis-completed')) await record(lab, 'rolling-restart-redis-completed', roll(13));
    if (want('rolling-restart-redis-crashed-resumed')) await record(lab, 'rolling-restart-redis-crashed-resumed', roll(14), 'inside:ensureRedisNodeRestarted.beforeRestart');
    // Backups: the worker processes inherit HANDOVER_BACKUP_DIR (the lab's inventory has no backup block).
    process.env.HANDOVER_BACKUP_DIR = mkdtempSync(path.join(os.tmpdir(), 'handover-replay-backups-'));
    const bk = (l: Lab | MysqlLab | DoltLab) => runBackupRun({ ...common(l), keep: 2 }, quiet);
    if (want('backup-redis-completed')) await record(lab, 'backup-redis-completed', bk);
    if (want('backup-redis-crashed-resumed')) await record(lab, 'backup-redis-crashed-resumed', bk, 'inside:takeBackup.streaming');
  } finally {
    await lab.close();
  }
  const mysqlNames = [...['completed', 'crashed-resumed', 'refused', 'dry-run'].map((n) => `switchover-mysql-${n}`), 'rolling-restart-mysql-completed'];
  if (mysqlNames.some(want)) {
    const mlab = await startMysqlLab({ cluster: 'replay-maria', inventory: { routingHook: 'echo {primary} {host}:{port}', controller: true } });
    try {
      const sw = (o: { to?: string; dryRun?: boolean } = {}) => (l: Lab | MysqlLab | DoltLab) => runSwitchover({ ...common(l), ...o }, quiet);
      if (want('switchover-mysql-completed')) await record(mlab, 'switchover-mysql-completed', sw());
      if (want('switchover-mysql-crashed-resumed')) await record(mlab, 'switchover-mysql-crashed-resumed', sw(), 'inside:ensureMysqlCaughtUp.loop');
      const st = await mlab.fleet.state();
      const writable = Object.entries(st).find(([, s]) => s.readOnly === false)![0];
      if (want('switchover-mysql-refused')) await record(mlab, 'switchover-mysql-refused', sw({ to: writable }));
      if (want('switchover-mysql-dry-run')) await record(mlab, 'switchover-mysql-dry-run', sw({ dryRun: true }));
      if (want('rolling-restart-mysql-completed')) await record(mlab, 'rolling-restart-mysql-completed', (l) => runRollingRestart({ ...common(l), set: ['max_connections=250'] }, quiet));
    } finally {
      await mlab.close();
    }
  }
  const doltNames = [...['completed', 'crashed-resumed', 'refused', 'dry-run'].map((n) => `switchover-dolt-${n}`), 'failover-dolt-completed'];
  if (doltNames.some(want)) {
    const dlab = await startDoltLab({ cluster: 'replay-dolt', inventory: { policy: { probeIntervalMs: 300, probesToConfirm: 2 } } });
    try {
      const sw = (o: { to?: string; dryRun?: boolean } = {}) => (l: Lab | MysqlLab | DoltLab) => runSwitchover({ ...common(l), ...o }, quiet);
      if (want('switchover-dolt-completed')) await record(dlab, 'switchover-dolt-completed', sw());
      if (want('switchover-dolt-crashed-resumed')) await record(dlab, 'switchover-dolt-crashed-resumed', sw(), 'inside:ensureDoltRole.standby');
      const st = await dlab.fleet.state();
      const primary = Object.entries(st).find(([, s]) => s.role === 'primary')![0];
      if (want('switchover-dolt-refused')) await record(dlab, 'switchover-dolt-refused', sw({ to: primary }));
      if (want('switchover-dolt-dry-run')) await record(dlab, 'switchover-dolt-dry-run', sw({ dryRun: true }));
      if (want('failover-dolt-completed'))
        await record(dlab, 'failover-dolt-completed', async (l) => {
          await dlab.fleet.waitForReplication(primary);
          await dlab.fleet.nodes.find((n) => n.id === primary)!.kill();
          return runFailover({ ...common(l) }, quiet);
        });
    } finally {
      await dlab.close();
    }
  }
  if (want('failover-redis-completed')) {
    const fo = await startLab({ cluster: 'replayfo', extraConfig: ['min-replicas-to-write 1', 'min-replicas-max-lag 2', 'repl-timeout 3'] });
    try {
      await record(fo, 'failover-redis-completed', async (l) => {
        const primary = (await fo.fleet.primary())!;
        await waitForReplication(fo.fleet, primary.id);
        await primary.stop('SIGKILL');
        return runFailover({ ...common(l), force: true }, quiet);
      });
    } finally {
      await fo.close();
    }
  }
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(1);
});
