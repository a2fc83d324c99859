/**
 * Records workflow histories for the replay test:  npx tsx bench/record-histories.ts [redis|mysql]  (default: both)
 * Runs real switchovers (Redis: completed, crashed-and-resumed, refused, dry run; MariaDB: completed,
 * crashed-and-resumed inside the catch-up, refused, dry run) in a lab and writes their histories
 * to test/histories/. Re-record after an intended, patched change of workflow code; never to make a
 * non-determinism failure go away.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { runSwitchover } from '../client/commands/switchover';
import { operationWorkflowId } from '../core/ids';
import { ROOT, temporalBinary } from '../sandbox/paths';
import { spawnWorker, startLab, startMysqlLab, type Lab, type MysqlLab } from './lab';

const quiet = { out: () => undefined, err: (m: string) => process.stderr.write(m + '\n'), isTTY: false };

async function record(lab: Lab | MysqlLab, name: string, opts: { to?: string; dryRun?: boolean }, failpoint?: string, engine: 'redis' | 'mysql' = 'redis') {
  const w = spawnWorker(lab, failpoint);
  const start = await runSwitchover({ cluster: lab.fleet.cluster, address: lab.address, taskQueue: lab.taskQueue, requestedBy: 'record-histories', ...opts }, quiet);
  let w2: ReturnType<typeof spawnWorker> | undefined;
  if (failpoint) {
    await w.exited;
    w2 = spawnWorker(lab);
  }
  const handle = lab.client.workflow.getHandle(operationWorkflowId(lab.fleet.cluster));
  await handle.result().catch(() => undefined);
  // The history as `temporal workflow show -o json` prints it (what the UI exports too).
  const json = execFileSync(temporalBinary(), ['workflow', 'show', '--address', lab.address, '--workflow-id', handle.workflowId, '--output', 'json'], { encoding: 'utf8' });
  const file = path.join(ROOT, 'test', 'histories', `switchover-${engine}-${name}.json`);
  writeFileSync(file, json);
  process.stderr.write(`recorded ${file} (start exit ${start.exitCode}, ${JSON.parse(json).events.length} events)\n`);
  await w.stop();
  await w2?.stop();
}

async function main() {
  const which = process.argv[2];
  if (which !== 'redis') {
    const mlab = await startMysqlLab({ cluster: 'replay-maria', inventory: { routingHook: 'echo {primary} {host}:{port}' } });
    try {
      await record(mlab, 'completed', {}, undefined, 'mysql');
      await record(mlab, 'crashed-resumed', {}, 'inside:ensureMysqlCaughtUp.loop', 'mysql');
      const st = await mlab.fleet.state();
      const writable = Object.entries(st).find(([, s]) => s.readOnly === false)![0];
      await record(mlab, 'refused', { to: writable }, undefined, 'mysql');
      await record(mlab, 'dry-run', { dryRun: true }, undefined, 'mysql');
    } finally {
      await mlab.close();
    }
  }
  if (which === 'mysql') return;
  const lab = await startLab({ cluster: 'replay' });
  try {
    await record(lab, 'completed', {});
    await record(lab, 'crashed-resumed', {}, 'inside:ensureRedisHandedOver.demoted');
    const primary = (await lab.fleet.primary())!;
    await record(lab, 'refused', { to: primary.id });
    await record(lab, 'dry-run', { dryRun: true });
  } finally {
    await lab.close();
  }
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(1);
});
