/**
 * The empty-primary guard (core/empty-primary.ts) with real redis-server processes (persistence off) and the real
 * Temporal dev server, under an acked writer:
 *  (i)  the primary SIGKILLed and started again EMPTY after the monitor's verdict (2x the detection window): never
 *       followed; the best replica is promoted, the empty node becomes its replica, no acknowledged write lost;
 *  (ii) the primary back EMPTY while the failover runs (started again right before the promotion, and the
 *       candidate resynced from it): the candidate is not promoted, the run stops saying so and where the cluster
 *       stands, and the loss is exactly what it says (every write acknowledged before the kill is gone).
 * Each case starts its own 3-node fleet; the worker and the dev server are shared.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFailover } from '../../client/commands/failover';
import { runMonitor } from '../../client/commands/monitor';
import { loadInventory } from '../../inventory/load';
import { sleep } from '../../sandbox/ports';
import { startRedisFleet, type RedisFleet } from '../../sandbox/redis';
import { AckedWriter } from '../../sandbox/writer';
import type { MonitorStatus } from '../../workflows/monitor';
import { captureIO, startTestWorker, type TestWorker } from '../helpers';

const POLICY = { probeIntervalMs: 300, probesToConfirm: 3, failoverBlockMs: 600_000 };
const WINDOW_MS = POLICY.probeIntervalMs * POLICY.probesToConfirm;
// Both sides of the bench run with this fence too (bench/empty-restart.ts): an empty primary takes no write
// before a replica synced from it.
const CONFIG = ['min-replicas-to-write 1', 'min-replicas-max-lag 2', 'repl-timeout 3'];

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

const dbsize = async (fleet: RedisFleet, id: string) => {
  const c = fleet.nodes.find((n) => n.id === id)!.client();
  try {
    return await c.dbsize();
  } finally {
    c.disconnect();
  }
};

describe('the empty-primary guard (Redis, persistence off)', () => {
  let tw: TestWorker;
  let inventory = '';
  /** Called by the promotion activity right before it checks its candidate (the worker's failpoint). */
  let beforePromote: (() => Promise<void>) | undefined;
  const fleets: RedisFleet[] = [];

  beforeAll(async () => {
    tw = await startTestWorker({
      inventory: () => loadInventory(inventory),
      failpoint: async (name) => {
        if (name === 'ensureRedisPromoted.check' && beforePromote) {
          const f = beforePromote;
          beforePromote = undefined;
          await f();
        }
      },
    });
  });
  afterAll(async () => {
    await tw?.stop();
    for (const f of fleets) await f.stop();
  });

  async function fleetUnderWriter(cluster: string) {
    const fleet = await startRedisFleet({ cluster, extraConfig: CONFIG });
    fleets.push(fleet);
    inventory = fleet.writeInventory(undefined, { policy: POLICY });
    const writer = new AckedWriter(fleet.nodes, fleet.password).start();
    await until('acknowledged writes', async () => writer.ackedKeys.length > 200);
    return { fleet, writer, opts: { cluster, inventory, address: tw.address, taskQueue: tw.taskQueue } };
  }

  it('(i) back empty after the verdict: not followed, the best replica promoted, the empty node its replica, 0 acknowledged writes lost', { timeout: 60_000 }, async () => {
    const { fleet, writer, opts } = await fleetUnderWriter('ep-after');
    const [p] = fleet.nodes;
    const status = async () => (await runMonitor({ ...opts, status: true, json: true }, captureIO())).status as MonitorStatus;
    try {
      expect((await runMonitor(opts, captureIO())).exitCode).toBe(0);
      await until('monitor sees the primary', async () => (await status()).lastKnown?.primary === p.id);
      await p.stop('SIGKILL');
      await sleep(2 * WINDOW_MS);
      await p.start(); // nothing on disk: it comes back an EMPTY primary
      const s = await until('the failover', async () => {
        const x = await status();
        return x.failovers.length === 1 && x;
      });
      const to = s.failovers[0].to;
      expect(to).not.toBe(p.id);
      await until('the empty node follows the new primary', async () => (await fleet.roles())[p.id] === 'slave' && (await dbsize(fleet, p.id)) > 0);
      await until('writes on the new primary', async () => writer.ackedBy[writer.ackedBy.length - 1] === to);
      await writer.stop();
      const n = fleet.nodes.find((x) => x.id === to)!;
      expect(writer.ackedKeys.length).toBeGreaterThan(0);
      expect(await writer.missingOn(n.host, n.port)).toEqual([]);
    } finally {
      await writer.close();
      await runMonitor({ ...opts, stop: true }, captureIO()).catch(() => undefined);
    }
  });

  it('(ii) back empty while the failover runs: the resynced candidate is not promoted; the run stops and says where the cluster stands', { timeout: 60_000 }, async () => {
    const { fleet, writer, opts } = await fleetUnderWriter('ep-during');
    const [p] = fleet.nodes;
    try {
      await p.stop('SIGKILL');
      const killedAt = writer.now();
      await until('the replicas see the link down', async () => {
        for (const n of fleet.nodes.slice(1)) {
          const c = n.client();
          const info = await c.info('replication').finally(() => c.disconnect());
          if (!info.includes('master_link_status:down')) return false;
        }
        return true;
      });
      const beforeKill = writer.ackedKeys.filter((_, i) => writer.ackTimes[i] < killedAt);
      // Right before the promotion: the primary starts again EMPTY and every replica resyncs from it.
      beforePromote = async () => {
        await p.start();
        // Resynced: linked to it, in its new replication history (the writer may already be writing to it).
        const replidOf = async (n: (typeof fleet.nodes)[number]) => {
          const c = n.client();
          const info = await c.info('replication').finally(() => c.disconnect());
          return { replid: /master_replid:(\w+)/.exec(info)?.[1], up: info.includes('master_link_status:up') || info.includes('role:master') };
        };
        await until('the replicas resynced from the empty primary', async () => {
          const pr = await replidOf(p);
          for (const n of fleet.nodes.slice(1)) {
            const r = await replidOf(n);
            if (!r.up || r.replid !== pr.replid) return false;
          }
          return true;
        }, 4_000);
      };
      const io = captureIO();
      const r = await runFailover({ ...opts, force: true, wait: true }, io);
      expect(r.exitCode, io.text()).toBe(2);
      expect(io.text()).toMatch(/CandidateResynced/);
      expect(io.text()).toMatch(/resynced since the verdict \(\d+ keys, offset \d+ then\) and no other replica holds it; nothing was promoted/);
      expect(io.text()).toContain(`the cluster stands: ${p.id} primary`);
      // Nothing was promoted: the restarted node is still the only primary, the replicas follow it.
      const roles = await fleet.roles();
      expect(fleet.nodes.filter((n) => roles[n.id] === 'master').map((n) => n.id)).toEqual([p.id]);
      // The loss is what the run said: every write acknowledged before the kill is gone from the primary.
      await writer.stop();
      expect(beforeKill.length).toBeGreaterThan(0);
      expect((await writer.missingOn(p.host, p.port)).filter((k) => beforeKill.includes(k))).toHaveLength(beforeKill.length);
    } finally {
      beforePromote = undefined;
      await writer.close();
    }
  });
});
