/**
 * The monitor's per-probe deadline: the pure default (core/monitor-round.ts probeDeadlineMs), the inventory
 * field's bounds, and the connection pool's behaviour at the deadline (activities/monitor.ts NodePool) with
 * plain objects standing in for connections (no database involved: what is tested is the pool's bookkeeping).
 */
import { describe, expect, it } from 'vitest';
import { probeDeadlineMs } from '../../core/monitor-round';
import { InventoryError, parseInventory } from '../../inventory/load';
import { NodePool } from '../../activities/monitor';

const inv = (policy: string) => `clusters:
  - name: cache-a
    engine: redis
    credentials:
      password: { env: CACHE_A_PASSWORD }
    policy: { ${policy} }
    nodes:
      - { id: cache-a-1, host: 10.0.0.1, port: 6379 }
      - { id: cache-a-2, host: 10.0.0.2, port: 6379 }
`;

describe('probeDeadlineMs', () => {
  it('is the probe interval, at least 500 ms and at most 5 s, unless the policy sets probeTimeoutMs', () => {
    expect(probeDeadlineMs({ probeIntervalMs: 300 })).toBe(500);
    expect(probeDeadlineMs({ probeIntervalMs: 1000 })).toBe(1000);
    expect(probeDeadlineMs({ probeIntervalMs: 30_000 })).toBe(5000);
    expect(probeDeadlineMs({ probeIntervalMs: 300, probeTimeoutMs: 200 })).toBe(200);
    expect(probeDeadlineMs({ probeIntervalMs: 30_000, probeTimeoutMs: 2000 })).toBe(2000);
  });

  it('the inventory takes probeTimeoutMs between 100 and 5000 ms and refuses anything else with a typed error naming the line', () => {
    const c = parseInventory(inv('probeIntervalMs: 300, probeTimeoutMs: 800')).clusters[0];
    expect(c.policy.probeTimeoutMs).toBe(800);
    expect(parseInventory(inv('probeIntervalMs: 300')).clusters[0].policy.probeTimeoutMs).toBeUndefined();
    for (const bad of ['probeTimeoutMs: 50', 'probeTimeoutMs: 6000', 'probeTimeoutMs: 1.5']) {
      let err: unknown;
      try {
        parseInventory(inv(bad), 'inv.yaml');
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(InventoryError);
      expect((err as InventoryError).problems[0]).toMatchObject({ line: 6, path: 'clusters[0].policy.probeTimeoutMs' });
    }
  });
});

interface FakeConn {
  id: number;
  closed: boolean;
  /** Resolves the command in flight (a late answer). */
  answer?: (v: string) => void;
}

function pool(openDelayMs = 0) {
  let n = 0;
  const opened: FakeConn[] = [];
  const p = new NodePool<FakeConn>(
    async () => {
      if (openDelayMs) await new Promise((r) => setTimeout(r, openDelayMs));
      const c: FakeConn = { id: ++n, closed: false };
      opened.push(c);
      return c;
    },
    (c) => (c.closed = true),
  );
  return { p, opened };
}

/** A command that answers only when told to (a silent node). */
const hang = (c: FakeConn) => new Promise<string>((r) => (c.answer = (v) => r(`${v} from #${c.id}`)));

describe('NodePool deadline', () => {
  it('a silent node: the call rejects "no answer within N ms" at the deadline and its connection is closed', async () => {
    const { p, opened } = pool();
    const t0 = Date.now();
    await expect(p.use('a', hang, 60)).rejects.toThrow('no answer within 60 ms');
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(opened[0].closed).toBe(true);
  });

  it('a late answer is never the next round\'s: the next call runs on a new connection and gets its own answer', async () => {
    const { p, opened } = pool();
    await expect(p.use('a', hang, 30)).rejects.toThrow('no answer within 30 ms');
    const next = p.use('a', hang, 1000);
    await new Promise((r) => setTimeout(r, 10));
    opened[0].answer!('late'); // the first round's answer arrives now
    opened[1].answer!('fresh');
    expect(await next).toBe('fresh from #2');
    expect(opened[1].closed).toBe(false);
  });

  it('a failure of the abandoned call after a new connection was opened leaves the new one alone', async () => {
    const { p, opened } = pool();
    let failOld: (e: Error) => void = () => undefined;
    await expect(p.use('a', () => new Promise<string>((_, rej) => (failOld = rej)), 30)).rejects.toThrow('no answer within 30 ms');
    expect(await p.use('a', async (c) => `ok #${c.id}`, 1000)).toBe('ok #2');
    failOld(new Error('connection closed'));
    await new Promise((r) => setTimeout(r, 5));
    expect(await p.use('a', async (c) => `ok #${c.id}`, 1000)).toBe('ok #2'); // still pooled, not reopened
    expect(opened).toHaveLength(2);
  });

  it('a connection that opens after the deadline is closed, not kept', async () => {
    const { p, opened } = pool(80);
    await expect(p.use('a', async () => 'x', 20)).rejects.toThrow('no answer within 20 ms');
    await new Promise((r) => setTimeout(r, 120));
    expect(opened).toHaveLength(1);
    expect(opened[0].closed).toBe(true);
    expect(await p.use('a', async (c) => `ok #${c.id}`, 1000)).toBe('ok #2');
  });

  it('an answer within the deadline keeps the connection for the next round', async () => {
    const { p, opened } = pool();
    expect(await p.use('a', async (c) => `ok #${c.id}`, 1000)).toBe('ok #1');
    expect(await p.use('a', async (c) => `ok #${c.id}`, 1000)).toBe('ok #1');
    expect(opened[0].closed).toBe(false);
  });
});
