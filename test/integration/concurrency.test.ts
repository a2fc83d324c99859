/**
 * One mutating operation per cluster: 1,000 pairs of `handover switchover` started at the same instant, each
 * pair on its own cluster, through the real CLI code against the real dev server. In every pair exactly one
 * proceeds and the other is told "already running" (exit 3) with the holder named. No worker polls the task
 * queue, so nothing touches a database; the started runs are terminated afterwards.
 */
import { randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { runSwitchover } from '../../client/commands/switchover';
import { operationWorkflowId } from '../../core/ids';
import { captureIO } from '../helpers';

const PAIRS = 1000;
const WAVE = 50;

describe('one operation per cluster', () => {
  const address = inject('temporalAddress');
  const taskQueue = `pairs-${randomUUID()}`;
  const prefix = `pair${randomUUID().slice(0, 8)}`;
  afterAll(async () => {
    const connection = await Connection.connect({ address });
    const client = new Client({ connection });
    for (let i = 0; i < PAIRS; i += 100) {
      await Promise.all(
        Array.from({ length: Math.min(100, PAIRS - i) }, (_, j) =>
          client.workflow
            .getHandle(operationWorkflowId(`${prefix}-${i + j}`))
            .terminate('test cleanup')
            .catch(() => undefined),
        ),
      );
    }
    await connection.close();
  });

  it(`of ${PAIRS} simultaneous pairs of starts on one cluster each, exactly one of each pair proceeds`, async () => {
    const started = Date.now();
    const pair = async (i: number) => {
      const cluster = `${prefix}-${i}`;
      const ios = [captureIO(), captureIO()];
      const [a, b] = await Promise.all(ios.map((io, k) => runSwitchover({ cluster, address, taskQueue, requestedBy: `pair ${i} side ${k}` }, io)));
      return { cluster, codes: [a.exitCode, b.exitCode].sort(), texts: ios.map((io) => io.text()) };
    };
    // Each CLI call opens its own connection, as separate `handover` processes would; WAVE pairs (2 x WAVE
    // connections) race at a time, both sides of a pair always at the same instant.
    const results = [];
    for (let i = 0; i < PAIRS; i += WAVE) results.push(...(await Promise.all(Array.from({ length: Math.min(WAVE, PAIRS - i) }, (_, j) => pair(i + j)))));
    const ms = Date.now() - started;
    const bad = results.filter((r) => r.codes[0] !== 0 || r.codes[1] !== 3);
    expect(bad.slice(0, 3), `${bad.length} pairs without exactly one winner`).toEqual([]);
    for (const r of results) {
      const loser = r.texts.find((t) => t.startsWith('already running'))!;
      expect(loser).toMatch(new RegExp(`^already running: ${operationWorkflowId(r.cluster)} \\(switchover, run [0-9a-f-]+\\)$`));
      expect(r.texts.find((t) => t.startsWith('started'))).toMatch(/^started handover-/);
    }
    // Temporal holds exactly one run per cluster.
    const connection = await Connection.connect({ address });
    try {
      const client = new Client({ connection });
      let count = 0;
      for (let i = 0; i < 50; i++) {
        count = (await client.workflow.count(`WorkflowId STARTS_WITH "handover-${prefix}-"`)).count;
        if (count === PAIRS) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(count).toBe(PAIRS);
    } finally {
      await connection.close();
    }
    console.log(`[pairs] ${PAIRS} pairs (${2 * PAIRS} starts) in ${ms} ms: ${PAIRS} started, ${PAIRS} refused as already running`);
  }, 300_000);
});
