/**
 * `handover switchover --at TIME` (issue 21 item 9) through the real CLI, a real worker and a real Redis fleet:
 * the run waits in a visible `scheduled` phase (status and history show it, it holds the cluster), an abort
 * before the time ends it with nothing changed, and a run whose time comes switches over.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadInventory } from '../../inventory/load';
import { startRedisFleet, waitForReplication, type RedisFleet } from '../../sandbox/redis';
import { runCli, startTestWorker, until, type TestWorker } from '../helpers';

describe('switchover --at', () => {
  let fleet: RedisFleet;
  let tw: TestWorker;
  let inventory: string;
  beforeAll(async () => {
    fleet = await startRedisFleet({ cluster: 'at' });
    inventory = fleet.writeInventory();
    tw = await startTestWorker({ inventory: () => loadInventory(inventory) });
  });
  afterAll(async () => {
    await tw?.stop();
    await fleet?.stop();
  });
  const conn = () => ['--address', tw.address, '--task-queue', tw.taskQueue, '--inventory', inventory];

  it('waits in a visible scheduled phase holding the cluster; an abort before its time changes nothing', async () => {
    const before = await fleet.roles();
    const r = await runCli(['switchover', '--cluster', 'at', '--at', '1h', ...conn()]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^started handover-at /m);
    expect(r.out).toMatch(/^scheduled for \d{4}-\d\d-\d\dT[\d:.]+Z; until then it holds the cluster and changes nothing \(handover abort handover-at cancels it\)$/m);
    const st = await until('status shows the scheduled phase', async () => {
      const s = await runCli(['status', '--cluster', 'at', ...conn()]);
      return /running: switchover handover-at \(phase scheduled, since /.test(s.out) && s;
    });
    expect(st.code).toBe(0);
    const h = await runCli(['history', '--cluster', 'at', '--json', ...conn()]);
    expect(h.out).toMatch(/"phase":"scheduled"/);
    // It holds the cluster: another runbook is busy (3), nothing started.
    const busy = await runCli(['rolling-restart', '--cluster', 'at', '--set', 'hz=11', ...conn()]);
    expect(busy.code, busy.err).toBe(3);
    const a = await runCli(['abort', 'handover-at', ...conn()]);
    expect(a.code, `${a.out}\n${a.err}`).toBe(0);
    expect(`${a.out}${a.err}`).toMatch(/aborted: switchover of at aborted by the operator before the point of no return: nothing changed; the run scheduled for \S+ never started/);
    expect(await fleet.roles()).toEqual(before);
  });

  it('a run whose time comes switches over; --at in the past or without a unit is refused', async () => {
    const primary = (await fleet.primary())!;
    await waitForReplication(fleet, primary.id);
    const t0 = Date.now();
    const r = await runCli(['switchover', '--cluster', 'at', '--at', '2s', '--wait', '--json', ...conn()]);
    expect(r.code, r.err).toBe(0);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(2000);
    const report = JSON.parse(r.out.trim().split('\n').pop()!) as { oldPrimary: string; newPrimary: string; audit: string[] };
    expect(report.oldPrimary).toBe(primary.id);
    expect((await fleet.roles())[report.newPrimary]).toBe('master');
    for (const [at, msg] of [
      ['2001-01-01T00:00Z', /--at 2001-01-01T00:00Z: that time has passed/],
      ['5', /--at 5: a duration needs a unit; say 5s or 5m/],
      ['tomorrow', /--at tomorrow: neither a duration/],
    ] as [string, RegExp][]) {
      const x = await runCli(['switchover', '--cluster', 'at', '--at', at, ...conn()]);
      expect(x.code).toBe(2);
      expect(x.err).toMatch(msg);
    }
  });
});
