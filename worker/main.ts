/**
 * The worker process:  npm run worker   (or: tsx worker/main.ts)
 *
 * Environment:
 *   Temporal: Temporal's own env config (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_*,
 *   TEMPORAL_PROFILE / TEMPORAL_CONFIG_FILE), overridden by HANDOVER_TEMPORAL_ADDRESS / HANDOVER_NAMESPACE
 *   (client/temporal.ts); nothing set: 127.0.0.1:7233, namespace "default", plaintext.
 *   HANDOVER_TEMPORAL_CONNECT_TIMEOUT_S  how long to keep retrying an unreachable Temporal at start (default 60;
 *                              one line per attempt, then exit 1)
 *   HANDOVER_SHUTDOWN_GRACE    how long activities may finish after SIGTERM/SIGINT (default 10s)
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
import type { Duration } from '@temporalio/common';
import { explainConnectError, resolveTemporal, type TemporalTarget } from '../client/temporal';
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

/**
 * Connect to Temporal, retrying every 2 s for up to HANDOVER_TEMPORAL_CONNECT_TIMEOUT_S (default 60): a worker
 * started before Temporal (a reboot, a deploy) waits for it; a wrong address or TLS setting says so, once per
 * attempt, in one line naming the address and TLS mode, and the worker exits 1 when the time is up.
 */
export async function connectTemporal(t: TemporalTarget, env: NodeJS.ProcessEnv, log: (m: string) => void = (m) => console.error(m)): Promise<NativeConnection> {
  const deadline = Date.now() + Number(env.HANDOVER_TEMPORAL_CONNECT_TIMEOUT_S ?? 60) * 1000;
  for (let attempt = 1; ; attempt++) {
    try {
      return await NativeConnection.connect({ address: t.address, tls: t.tls, apiKey: t.apiKey, metadata: t.metadata });
    } catch (e) {
      const line = explainConnectError(e, t);
      if (Date.now() + 2000 > deadline) throw new Error(`${line}; gave up after ${attempt} attempt(s)`);
      log(`[worker] ${line}; retrying in 2 s (attempt ${attempt})`);
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
}

export async function main(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const target = resolveTemporal({}, env);
  const { namespace } = target;
  const file = inventoryPath(undefined, env);
  const inventory = watchedInventory(file);
  const failpoints = createFailpoints(env.HANDOVER_FAILPOINT);
  const dataConverter = dataConverterFromEnv(env);
  const connection = await connectTemporal(target, env);
  const worker = await createHandoverWorker({
    connection,
    namespace,
    activities: createActivities({ inventory, env, failpoint: failpoints.hit }),
    workflowBundlePath: env.HANDOVER_WORKFLOW_BUNDLE,
    taskQueue: env.HANDOVER_TASK_QUEUE,
    failpoints,
    dataConverter,
    extra: { shutdownGraceTime: (env.HANDOVER_SHUTDOWN_GRACE ?? '10s') as Duration },
  });
  console.error(`[worker] polling ${target.describe}${dataConverter ? ' payloads=encrypted' : ''} inventory=${file} clusters=${inventory().clusters.map((c) => c.name).join(',')}`);
  await worker.run();
  await connection.close();
}

if (require.main === module) {
  main().catch((e) => {
    console.error(`[worker] ${(e as Error).message}`);
    process.exit(1);
  });
}
