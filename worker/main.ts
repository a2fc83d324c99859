/**
 * The worker process:  npm run worker   (or: tsx worker/main.ts)
 *
 * Environment:
 *   HANDOVER_TEMPORAL_ADDRESS  Temporal frontend (default 127.0.0.1:7233)
 *   HANDOVER_NAMESPACE         namespace (default "default")
 *   HANDOVER_INVENTORY         inventory file (default ./inventory.yaml); re-read when it changes
 *   HANDOVER_TASK_QUEUE        task queue (default "handover")
 *   HANDOVER_WORKFLOW_BUNDLE   optional prebuilt workflow bundle (faster start)
 *   HANDOVER_FAILPOINT         chaos testing only (worker/failpoints.ts)
 *   HANDOVER_CODEC_KEY[_FILE]  optional AES-256-GCM payload encryption key (codec/aes-gcm.ts); clients need the same
 * Credentials named by the inventory (env variables or files) are read here, by activities, and nowhere else.
 */
import { statSync } from 'node:fs';
import { NativeConnection } from '@temporalio/worker';
import { createActivities } from '../activities';
import { dataConverterFromEnv } from '../codec/aes-gcm';
import { DEFAULT_NAMESPACE } from '../core/ids';
import { inventoryPath, loadInventory } from '../inventory/load';
import type { Inventory } from '../inventory/schema';
import { createFailpoints } from './failpoints';
import { createHandoverWorker } from './worker';

/** The inventory, re-read when the file's mtime changes; a broken edit keeps the last good one and says so. */
export function watchedInventory(file: string, log: (m: string) => void = (m) => console.error(m)): () => Inventory {
  let current = loadInventory(file);
  let mtime = statSync(file).mtimeMs;
  return () => {
    try {
      const m = statSync(file).mtimeMs;
      if (m !== mtime) {
        current = loadInventory(file);
        mtime = m;
        log(`[worker] inventory ${file} reloaded`);
      }
    } catch (e) {
      log(`[worker] inventory ${file} not reloaded, keeping the last good one: ${(e as Error).message}`);
    }
    return current;
  };
}

export async function main(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const address = env.HANDOVER_TEMPORAL_ADDRESS ?? '127.0.0.1:7233';
  const namespace = env.HANDOVER_NAMESPACE ?? DEFAULT_NAMESPACE;
  const file = inventoryPath(undefined, env);
  const inventory = watchedInventory(file);
  const failpoints = createFailpoints(env.HANDOVER_FAILPOINT);
  const dataConverter = dataConverterFromEnv(env);
  const connection = await NativeConnection.connect({ address });
  const worker = await createHandoverWorker({
    connection,
    namespace,
    activities: createActivities({ inventory, env, failpoint: failpoints.hit }),
    workflowBundlePath: env.HANDOVER_WORKFLOW_BUNDLE,
    taskQueue: env.HANDOVER_TASK_QUEUE,
    failpoints,
    dataConverter,
  });
  console.error(`[worker] polling ${address} namespace=${namespace}${dataConverter ? ' payloads=encrypted' : ''} inventory=${file} clusters=${inventory().clusters.map((c) => c.name).join(',')}`);
  await worker.run();
  await connection.close();
}

if (require.main === module) {
  main().catch((e) => {
    console.error(`[worker] ${(e as Error).message}`);
    process.exit(1);
  });
}
