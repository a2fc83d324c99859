/**
 * Backup schedules through the CLI (commander, parseAsync): created twice (the second changes nothing), listed
 * by `temporal schedule list`, triggered, its run completing with a good backup; paused and unpaused; a
 * scheduled run while another operation holds the cluster is skipped, not queued. (Artifacts compressed with zstd here.)
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBackupList, runBackupRun, runBackupSchedule } from '../../client/commands/backup';
import { backupScheduleId } from '../../core/backup/decide';
import { loadInventory } from '../../inventory/load';
import { temporalBinary } from '../../sandbox/paths';
import { sleep } from '../../sandbox/ports';
import { startRedisFleet, type RedisFleet } from '../../sandbox/redis';
import type { ScheduledBackupReport } from '../../workflows/backup';
import { withBackupBlock } from '../../sandbox/backup';
import { captureIO, startTestWorker, type TestWorker, runCli } from '../helpers';

describe('backup schedule', () => {
  let fleet: RedisFleet;
  let tw: TestWorker;
  let inventory: string;
  let dir: string;
  let client: Client;
  let connection: Connection;
  const cluster = 'bk-sched';
  const scheduleId = backupScheduleId(cluster);

  beforeAll(async () => {
    fleet = await startRedisFleet({ cluster });
    dir = mkdtempSync(path.join(os.tmpdir(), 'handover-backups-'));
    inventory = path.join(fleet.baseDir, 'inventory.yaml');
    writeFileSync(inventory, withBackupBlock(fleet.inventoryYaml(), dir, 2, 'zstd')); // this cluster's artifacts: zstd
    const p = fleet.nodes[0].client();
    for (let i = 0; i < 100; i++) await p.set(`k${i}`, `v${i}`);
    await p.call('WAIT', '2', '5000');
    p.disconnect();
    tw = await startTestWorker({ inventory: () => loadInventory(inventory) });
    connection = await Connection.connect({ address: tw.address });
    client = new Client({ connection });
  });
  afterAll(async () => {
    await client?.schedule.getHandle(scheduleId).delete().catch(() => undefined);
    await connection?.close();
    await tw?.stop();
    await fleet?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const cli = runCli;
  const common = () => ['--address', tw.address, '--task-queue', tw.taskQueue, '--inventory', inventory, '--json'];
  const lastJson = (s: string) => JSON.parse(s.trim().split('\n').pop()!);

  /** The newest scheduled run started after `since` actions, awaited to its end. */
  async function nextRun(since: number): Promise<ScheduledBackupReport> {
    const h = client.schedule.getHandle(scheduleId);
    for (let i = 0; i < 200; i++) {
      const d = await h.describe();
      if (d.info.recentActions.length > since) {
        const a = d.info.recentActions[d.info.recentActions.length - 1].action;
        return (await client.workflow.getHandle(a.workflow.workflowId, a.workflow.firstExecutionRunId).result()) as ScheduledBackupReport;
      }
      await sleep(100);
    }
    throw new Error('the schedule did not start a run');
  }

  it('created through the CLI twice: one schedule (the second changes nothing), seen by `temporal schedule list`', async () => {
    const a = await cli(['backup', 'schedule', '--cluster', cluster, '--cron', '0 3 * * *', '--keep', '2', ...common()]);
    expect(a.code, a.err).toBe(0);
    expect(lastJson(a.out)).toMatchObject({ scheduleId, created: true, updated: false, paused: false, overlap: 'SKIP', cron: '0 3 * * *' });
    const b = await cli(['backup', 'schedule', '--cluster', cluster, '--cron', '0 3 * * *', '--keep', '2', ...common()]);
    expect(b.code, b.err).toBe(0);
    expect(lastJson(b.out)).toMatchObject({ scheduleId, created: false, updated: false });
    let listed = '';
    for (let i = 0; i < 50 && !listed.includes(scheduleId); i++, await sleep(200))
      listed = execFileSync(temporalBinary(), ['schedule', 'list', '--address', tw.address], { encoding: 'utf8' });
    expect(listed).toContain(scheduleId);
    expect(listed.split('\n').filter((l) => l.includes(scheduleId))).toHaveLength(1);
  });

  it('fires on --trigger and its run completes with a good backup', async () => {
    const t = await cli(['backup', 'schedule', '--cluster', cluster, '--trigger', ...common()]);
    expect(t.code, t.err).toBe(0);
    expect(lastJson(t.out)).toMatchObject({ triggered: true });
    const run = await nextRun(0);
    expect(run.skipped).toBe(false);
    expect(run.report!.verification.ok).toBe(true);
    const list = await runBackupList({ cluster, inventory }, captureIO());
    expect(list.backups).toEqual([expect.objectContaining({ id: run.report!.id, state: 'good' })]);
    expect(readdirSync(path.join(dir, cluster, run.report!.id)).sort()).toEqual(['dump.rdb.zst', 'manifest.json', 'verification.json']);
  });

  it('pause and unpause; a changed cron updates the same schedule', async () => {
    const p = await cli(['backup', 'schedule', '--cluster', cluster, '--pause', ...common()]);
    expect(lastJson(p.out)).toMatchObject({ paused: true });
    expect((await client.schedule.getHandle(scheduleId).describe()).state.paused).toBe(true);
    const u = await cli(['backup', 'schedule', '--cluster', cluster, '--unpause', ...common()]);
    expect(lastJson(u.out)).toMatchObject({ paused: false });
    const c = await runBackupSchedule({ cluster, cron: '30 4 * * *', keep: 2, address: tw.address, taskQueue: tw.taskQueue, inventory }, captureIO());
    expect(c).toMatchObject({ exitCode: 0, created: false, updated: true });
  });

  it('a scheduled run while another operation holds the cluster is skipped, not queued', async () => {
    // Hold the cluster's lock ID with a long backup-shaped run on a queue nobody polls.
    const holder = await client.workflow.start('backup', { workflowId: `handover-${cluster}`, taskQueue: 'nobody-polls-this', args: [{ cluster }] });
    try {
      await client.schedule.getHandle(scheduleId).trigger();
      const run = await nextRun(1);
      expect(run).toMatchObject({ skipped: true, childWorkflowId: `handover-${cluster}` });
      expect(run.reason).toMatch(/another operation holds/);
      // And `backup run` by hand is refused as "already running" (exit 3), as every runbook on a held cluster.
      const io = captureIO();
      const direct = await runBackupRun({ cluster, address: tw.address, taskQueue: tw.taskQueue, inventory }, io);
      expect(direct.exitCode).toBe(3);
      expect(io.text()).toMatch(new RegExp(`already running: handover-${cluster}`));
    } finally {
      await holder.terminate('test done');
    }
  });
});
