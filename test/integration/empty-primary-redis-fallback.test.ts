/**
 * The empty-primary guard's fallback (Redis, persistence off), with real redis-server processes and the real
 * Temporal dev server, under an acked writer: the primary is SIGKILLed and a failover started; right before the
 * promotion the primary starts again EMPTY and the chosen candidate resyncs from it, while the other replica cannot
 * (its masterauth no longer matches) and still holds the data. The candidate is refused (CandidateResynced), the
 * other replica is promoted instead, the resynced one and the empty node follow it, and every write acknowledged
 * to both replicas before the kill (WAIT 2) is on the new primary.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFailover } from '../../client/commands/failover';
import { loadInventory } from '../../inventory/load';
import { sleep } from '../../sandbox/ports';
import { startRedisFleet, type RedisFleet } from '../../sandbox/redis';
import { AckedWriter } from '../../sandbox/writer';
import { captureIO, startTestWorker, type TestWorker } from '../helpers';

const POLICY = { probeIntervalMs: 300, probesToConfirm: 3, failoverBlockMs: 600_000 };
// As in empty-primary-redis.test.ts: an empty primary takes no write before a replica synced from it.
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

describe('the empty-primary guard falls back to a replica that still holds the data (Redis)', () => {
  let tw: TestWorker;
  let fleet: RedisFleet;
  let inventory = '';
  /** Called by the promotion activity right before it checks its candidate (the worker's failpoint). */
  let beforePromote: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    fleet = await startRedisFleet({ cluster: 'ep-fallback', extraConfig: CONFIG });
    inventory = fleet.writeInventory(undefined, { policy: POLICY });
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
    await fleet?.stop();
  });

  it('the resynced candidate is refused and the other replica promoted: 0 writes acknowledged before the kill lost', { timeout: 60_000 }, async () => {
    const [p, ...replicas] = fleet.nodes;
    const info = async (n: (typeof fleet.nodes)[number]) => {
      const c = n.client();
      return c.info('replication').finally(() => c.disconnect());
    };
    const field = (text: string, k: string) => new RegExp(`${k}:(\\S+)`).exec(text)?.[1];
    // Acknowledged once WAIT says both replicas have it: the replica kept is the one with the LOWER offset, so
    // under the primary's plain OK a write only the resynced candidate had received would be lost by design.
    const writer = new AckedWriter(fleet.nodes, fleet.password, undefined, 2).start();
    try {
      await until('acknowledged writes', async () => writer.ackedKeys.length > 200);
      await p.stop('SIGKILL');
      const killedAt = writer.now();
      const seen = await until('the replicas see the link down', async () => {
        const all = await Promise.all(replicas.map(async (n) => ({ n, text: await info(n) })));
        return all.every((x) => x.text.includes('master_link_status:down')) && all;
      });
      const beforeKill = writer.ackedKeys.filter((_, i) => writer.ackTimes[i] < killedAt);
      // The failover's choice (core/redis/failover.ts): the highest offset, ties by name.
      const ranked = seen.map((x) => ({ node: x.n, offset: Number(field(x.text, 'master_repl_offset')) })).sort((a, b) => b.offset - a.offset || (a.node.id < b.node.id ? -1 : 1));
      const [first, other] = ranked.map((r) => r.node);
      // The other replica cannot sync from the returning primary: it keeps the data.
      const oc = other.client();
      await oc.config('SET', 'masterauth', 'not-the-password').finally(() => oc.disconnect());
      beforePromote = async () => {
        await p.start(); // nothing on disk: an EMPTY primary
        await until(
          'the candidate resynced from the empty primary',
          async () => {
            const [pi, fi] = [await info(p), await info(first)];
            return field(fi, 'master_link_status') === 'up' && field(fi, 'master_replid') === field(pi, 'master_replid');
          },
          4_000,
        );
      };
      const io = captureIO();
      const r = await runFailover({ cluster: fleet.cluster, inventory, address: tw.address, taskQueue: tw.taskQueue, force: true, wait: true }, io);
      expect(r.exitCode, io.text()).toBe(0);
      expect(io.text()).toMatch(new RegExp(`${first.id} resynced since the verdict \\(from ${p.id}\\)`));
      expect(io.text()).toMatch(new RegExp(`failed over ${fleet.cluster}: ${p.id} -> ${other.id} \\(.*${first.id} resynced since the verdict \\(empty-primary guard\\)\\)`));
      // The other replica is the primary; the resynced candidate and the empty node follow it.
      const roles = await fleet.roles();
      expect(roles).toEqual({ [p.id]: 'slave', [first.id]: 'slave', [other.id]: 'master' });
      await until('writes on the new primary', async () => writer.ackedBy[writer.ackedBy.length - 1] === other.id);
      await writer.stop();
      expect(beforeKill.length).toBeGreaterThan(0);
      const missing = new Set(await writer.missingOn(other.host, other.port));
      expect(beforeKill.filter((k) => missing.has(k))).toEqual([]);
    } finally {
      beforePromote = undefined;
      await writer.close();
    }
  });
});
