/**
 * The main job on an embedded default:  npm start  [-- --once] [-- --flavor valkey]
 *
 * Starts a local sandbox (the Temporal dev server, a 3-node Redis fleet on loopback, the Handover worker and a
 * continuous writer), runs a planned switchover under that write load through the real CLI code, checks that
 * every acknowledged write survived, and prints the Temporal UI address. With --once (or without a terminal)
 * it then stops everything; otherwise it stays up for you to explore and run more commands until Ctrl-C.
 */
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { createActivities } from '../activities';
import { processIO } from '../client/common';
import { runSwitchover } from '../client/commands/switchover';
import { operationWorkflowId } from '../core/ids';
import { loadInventory } from '../inventory/load';
import { createHandoverWorker } from '../worker/worker';
import { ROOT, type RedisFlavor } from './paths';
import { sleep } from './ports';
import { startRedisFleet, waitForReplication } from './redis';
import { startDevServer } from './temporal';
import { AckedWriter } from './writer';

async function main() {
  // Ctrl-C is handled below, so that the writer, worker, fleet and server all stop in order.
  // Warnings and errors only: the steps are printed by the CLI's progress view.
  Runtime.install({ shutdownSignals: [], logger: new DefaultLogger('WARN') });
  const args = process.argv.slice(2);
  const once = args.includes('--once') || !process.stdout.isTTY;
  const flavor: RedisFlavor = args.includes('--flavor') ? (args[args.indexOf('--flavor') + 1] as RedisFlavor) : 'redis';
  const dir = path.join(ROOT, '.sandbox');
  rmSync(path.join(dir, 'fleet'), { recursive: true, force: true });
  mkdirSync(path.join(dir, 'fleet'), { recursive: true });
  const say = (m: string) => processIO.out(m);

  say('starting the Temporal dev server ...');
  const server = await startDevServer({ port: 7233, uiPort: 8233, dbFile: path.join(dir, 'temporal.db') });
  say(`starting a ${flavor} fleet (1 primary + 2 replicas) ...`);
  const fleet = await startRedisFleet({ flavor, cluster: 'sandbox', baseDir: path.join(dir, 'fleet'), passwordEnv: 'HANDOVER_SANDBOX_PASSWORD' });
  const inventory = fleet.writeInventory(path.join(dir, 'inventory.yaml'));
  const connection = await NativeConnection.connect({ address: server.address });
  const worker = await createHandoverWorker({
    connection,
    activities: createActivities({ inventory: () => loadInventory(inventory) }),
  });
  const running = worker.run();
  const writer = new AckedWriter(fleet.nodes, fleet.password).start();
  let exitCode = 0;
  const shutdown = async () => {
    await writer.close();
    worker.shutdown();
    await running;
    await connection.close();
    await fleet.stop();
    await server.stop();
  };
  try {
    say('');
    say(`Temporal UI:   ${server.uiUrl}`);
    say(`Temporal:      ${server.address}`);
    say(`inventory:     ${inventory}`);
    say(`nodes:         ${fleet.nodes.map((n) => `${n.id}=${n.host}:${n.port}`).join('  ')}`);
    say('');
    await sleep(1000);
    say(`writer: ${writer.ackedKeys.length} acknowledged writes so far; running a switchover under that load:`);
    const r = await runSwitchover({ cluster: fleet.cluster, wait: true, address: server.address, inventory }, processIO);
    exitCode = r.exitCode;
    await sleep(500);
    const stats = await writer.stop();
    const primary = await fleet.primary();
    if (primary) await waitForReplication(fleet, primary.id);
    const lost = primary ? (await writer.missingOn(primary.host, primary.port)).length : -1;
    say('');
    say(`writer: ${stats.acked} acknowledged writes, ${lost} lost; longest pause between two acknowledgements ${stats.maxGapMs} ms`);
    say(`see the run: ${server.uiUrl}/namespaces/default/workflows/${operationWorkflowId(fleet.cluster)}`);
    if (lost !== 0) exitCode = 1;
    if (!once) {
      writer.start();
      say('');
      say('The sandbox stays up (writer still running). In another terminal, for example:');
      say(`  HANDOVER_TEMPORAL_ADDRESS=${server.address} HANDOVER_INVENTORY=${inventory} npx handover switchover --cluster sandbox --wait`);
      say('Ctrl-C stops everything.');
      await new Promise<void>((resolve) => {
        process.once('SIGINT', () => resolve());
        process.once('SIGTERM', () => resolve());
      });
    }
  } finally {
    await shutdown();
  }
  process.exit(exitCode);
}

main().catch((e) => {
  console.error(`handover sandbox: ${(e as Error).stack}`);
  process.exit(1);
});
