/**
 * Temporal itself restarts in the middle of a rolling restart (dev server with --db-filename, same ports):
 * the run continues to completion when the server is back, every node rolled, no acknowledged write lost.
 */
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { afterAll, describe, expect, it } from 'vitest';
import { createActivities } from '../../activities';
import { runRollingRestart } from '../../client/commands/rolling-restart';
import { operationWorkflowId } from '../../core/ids';
import { loadInventory } from '../../inventory/load';
import { sleep } from '../../sandbox/ports';
import { startRedisFleet, waitForReplication, type RedisFleet } from '../../sandbox/redis';
import { startDevServer, type DevServer } from '../../sandbox/temporal';
import { AckedWriter } from '../../sandbox/writer';
import { createHandoverWorker } from '../../worker/worker';
import { captureIO, moreAcks, until } from '../helpers';

describe('Temporal restarts mid-roll', () => {
  let fleet: RedisFleet | undefined;
  let server: DevServer | undefined;
  afterAll(async () => {
    await server?.stop();
    await fleet?.stop();
  });

  it('the rolling restart finishes after the server comes back', async () => {
    const dbFile = path.join(mkdtempSync(path.join(os.tmpdir(), 'handover-temporal-')), 'temporal.db');
    server = await startDevServer({ dbFile });
    const port = Number(server.address.split(':')[1]);
    const uiPort = Number(server.uiUrl.split(':')[2]);
    fleet = await startRedisFleet({ cluster: 'tmprestart' });
    const inventory = fleet.writeInventory();
    const connection = await NativeConnection.connect({ address: server.address });
    const worker = await createHandoverWorker({ connection, taskQueue: 'tmprestart', activities: createActivities({ inventory: () => loadInventory(inventory) }) });
    const running = worker.run();
    const writer = new AckedWriter(fleet.nodes, fleet.password).start();
    try {
      const io = captureIO();
      const started = await runRollingRestart({ cluster: 'tmprestart', set: ['hz=29'], address: server.address, taskQueue: 'tmprestart' }, io);
      expect(started.exitCode, io.text()).toBe(0);
      // Let the first replica restart begin, then take Temporal down for a few seconds.
      const first = fleet.nodes[1];
      await until(`${first.id} restarted with hz 29`, async () => {
        const c = first.client();
        return ((await c.config('GET', 'hz').finally(() => c.disconnect())) as string[])[1] === '29';
      }, 10_000);
      await server.stop();
      await sleep(3000); // the outage (what is tested: Temporal down for a few seconds mid-roll)
      server = await startDevServer({ port, uiPort, dbFile });
      expect(server.address).toBe(`127.0.0.1:${port}`);

      const conn = await Connection.connect({ address: server.address });
      const report = (await new Client({ connection: conn }).workflow.getHandle(operationWorkflowId('tmprestart')).result()) as { restarts: { node: string }[]; handovers: unknown[] };
      await conn.close();
      expect(report.restarts.map((r) => r.node).sort()).toEqual(fleet.nodes.map((n) => n.id).sort());
      expect(report.handovers).toHaveLength(1);
      await moreAcks(writer, 50); // writes go on after the roll
      const stats = await writer.stop();
      expect(stats.acked).toBeGreaterThan(50);
      const primary = (await fleet.primary())!;
      await waitForReplication(fleet, primary.id);
      expect(await writer.missingOn(primary.host, primary.port)).toEqual([]);
      for (const n of fleet.nodes) {
        const x = n.client();
        expect(((await x.config('GET', 'hz')) as string[])[1]).toBe('29');
        x.disconnect();
      }
    } finally {
      await writer.close();
      worker.shutdown();
      await running;
      await connection.close();
    }
  }, 240_000);
});
