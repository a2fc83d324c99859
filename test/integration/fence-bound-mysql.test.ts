/**
 * The MariaDB fence is bounded server-side: a worker SIGKILLed right after it fenced the old primary (read_only
 * ON) cannot keep writes blocked longer than `fenceBoundMs`, because a one-shot event scheduled with the fence
 * turns read_only OFF again. When a worker returns, the run notices the old primary took writes again and
 * undoes (it stays the primary); nothing is lost and there are never two writable nodes. Without
 * event_scheduler the fence is refused before anything changes; a completed switchover leaves no event behind.
 */
import { inject } from 'vitest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WorkflowFailedError } from '@temporalio/client';
import { spawnWorker, startMysqlLab, type MysqlLab } from '../../bench/lab';
import { runSwitchover } from '../../client/commands/switchover';
import { operationWorkflowId } from '../../core/ids';
import { sleep } from '../../sandbox/ports';
import { SqlWriter } from '../../sandbox/sql-writer';
import { captureIO } from '../helpers';

const BOUND_MS = 3000;

describe('MariaDB fence bound (server-side)', () => {
  let lab: MysqlLab;
  const opts = () => ({ cluster: lab.fleet.cluster, inventory: lab.inventory, address: lab.address, taskQueue: lab.taskQueue });
  const writable = async () => Object.entries(await lab.fleet.state()).filter(([, s]) => s.up && s.readOnly === false).map(([id]) => id);
  const events = async (node: string) => (await lab.fleet.sql<{ n: number }[]>(node, "SELECT COUNT(*) AS n FROM information_schema.EVENTS WHERE EVENT_NAME = 'handover_fence_bound'"))[0].n;

  beforeAll(async () => {
    lab = await startMysqlLab({ cluster: 'fence-bound', address: inject('temporalAddress'), inventory: { policy: { fenceBoundMs: BOUND_MS } }, log: () => undefined });
  });
  afterAll(async () => {
    await lab?.close();
  });

  it('a worker killed after the fence holds writes no longer than the bound; the resumed run undoes, nothing lost', async () => {
    const [primary] = await writable();
    expect(primary).toBeDefined();
    const worker = spawnWorker(lab, 'after:ensureMysqlFenced');
    const writer = new SqlWriter(lab.fleet.nodes, lab.fleet.appUser, lab.fleet.appPassword, `fb${Date.now().toString(36)}`).start();
    let restarted: ReturnType<typeof spawnWorker> | undefined;
    let twoWritable = 0;
    try {
      await sleep(500);
      const io = captureIO();
      expect((await runSwitchover(opts(), io)).exitCode, io.text()).toBe(0);
      expect((await worker.exited).signal).toBe('SIGKILL');
      const killedAt = Date.now();
      // No worker runs now. The old primary must take writes again by itself at the bound.
      let fenceSeen = false;
      let liftedAt = 0;
      while (Date.now() - killedAt < BOUND_MS + 5000) {
        const w = await writable();
        if (w.length > 1) twoWritable++;
        if (w.length === 0) fenceSeen = true;
        if (w.length === 1 && w[0] === primary && fenceSeen) {
          liftedAt = Date.now();
          break;
        }
        await sleep(100);
      }
      expect(fenceSeen).toBe(true);
      expect(liftedAt, 'the fence was not lifted by the server within bound + 5 s').toBeGreaterThan(0);
      const liftedAfterKill = liftedAt - killedAt;
      // The event fires BOUND_MS after the fence (within the scheduler's 1 s resolution); the kill came just after it.
      expect(liftedAfterKill).toBeLessThanOrEqual(BOUND_MS + 1500);
      await sleep(500);
      const acksBeforeRestart = writer.ackedKeys.length;
      await sleep(500);
      expect(writer.ackedKeys.length, 'writes resumed on the old primary while no worker ran').toBeGreaterThan(acksBeforeRestart);

      // A worker returns: the run sees the old primary writable again and undoes; nothing was promoted.
      restarted = spawnWorker(lab);
      const err = await lab.client.workflow
        .getHandle(operationWorkflowId(lab.fleet.cluster))
        .result()
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(err).toBeInstanceOf(WorkflowFailedError);
      const cause = (err as WorkflowFailedError).cause as Error & { type?: string };
      expect(cause.type).toBe('FenceBoundExpired');
      expect(cause.message).toMatch(new RegExp(`switchover of ${lab.fleet.cluster} undone: ${primary} takes writes again \\(its fence bound of ${BOUND_MS} ms expired`));
      console.log(`[fence-bound] fence lifted by the server ${liftedAfterKill} ms after the worker was killed (bound ${BOUND_MS} ms); writer's longest gap ${Math.round(writer.maxGapMs())} ms`);
    } finally {
      await writer.stop();
      await worker.stop();
      await restarted?.stop();
      await writer.close();
    }
    expect(twoWritable).toBe(0);
    expect(await writable()).toEqual([primary]);
    await lab.fleet.waitForReplication(primary, 30_000);
    for (const n of lab.fleet.nodes) expect(await writer.missingOn(n), n.id).toEqual([]);
    expect(writer.maxGapMs()).toBeLessThan(BOUND_MS + 2500);
    for (const n of lab.fleet.nodes) expect(await events(n.id), `event left on ${n.id}`).toBe(0);
  }, 180_000);

  it('a completed switchover leaves no bound event on any node; event_scheduler OFF is refused before anything changes', async () => {
    const [primary] = await writable();
    const w = spawnWorker(lab);
    try {
      const io = captureIO();
      const r = await runSwitchover({ ...opts(), wait: true }, io);
      expect(r.exitCode, io.text()).toBe(0);
      const [now] = await writable();
      expect(now).not.toBe(primary);
      for (const n of lab.fleet.nodes) expect(await events(n.id), `event left on ${n.id}`).toBe(0);
      await lab.fleet.waitForReplication(now, 30_000);

      await lab.fleet.sql(now, 'SET GLOBAL event_scheduler = OFF');
      const before = await lab.fleet.state();
      const refused = captureIO();
      const r2 = await runSwitchover({ ...opts(), wait: true }, refused);
      expect(r2.exitCode, refused.text()).toBe(2);
      expect(refused.text()).toMatch(/event_scheduler=OFF: its fence would have no server-side bound; set event_scheduler=ON/);
      expect(await writable()).toEqual([now]);
      const after = await lab.fleet.state();
      for (const id of Object.keys(before)) expect(after[id].gtidBinlogPos, id).toBe(before[id].gtidBinlogPos);
      for (const n of lab.fleet.nodes) expect(await events(n.id), `event left on ${n.id}`).toBe(0);
    } finally {
      await lab.fleet.sql((await writable())[0], 'SET GLOBAL event_scheduler = ON').catch(() => undefined);
      await w.stop();
    }
  }, 180_000);
});
