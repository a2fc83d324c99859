/**
 * The worker process:  node dist/worker/main.js   (the build: npm run build; bin/handover-worker picks it)
 *                      npm run worker             (development: the sources through tsx)
 *
 * Environment:
 *   Temporal: Temporal's own env config (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_*,
 *   TEMPORAL_PROFILE / TEMPORAL_CONFIG_FILE), overridden by HANDOVER_TEMPORAL_ADDRESS / HANDOVER_NAMESPACE
 *   (client/temporal.ts); nothing set: 127.0.0.1:7233, namespace "default", plaintext.
 *   HANDOVER_TEMPORAL_CONNECT_TIMEOUT_S  how long to keep retrying an unreachable Temporal at start (default 60;
 *                              one line per attempt, every 2 s, then exit 1; a supervisor restarts it). Once
 *                              connected, the SDK retries a lost Temporal itself; /healthz answers 503 meanwhile.
 *   HANDOVER_SHUTDOWN_GRACE    how long activities may finish after SIGTERM/SIGINT (default 10s)
 *   HANDOVER_INVENTORY         inventory file (default ./inventory.yaml); re-read when it changes
 *   HANDOVER_TASK_QUEUE        task queue (default "handover")
 *   HANDOVER_WORKFLOW_BUNDLE   prebuilt workflow bundle (default from the build: dist/workflow-bundle.js; from
 *                              the sources: bundled at start). With a codec key HANDOVER_WORKFLOW_BUNDLE_CODEC
 *                              instead (default dist/workflow-bundle-codec.js): a plain bundle is never used then.
 *   HANDOVER_METRICS_ADDRESS, HANDOVER_HEALTH_ADDRESS, HANDOVER_LOG_FORMAT, HANDOVER_LOG_LEVEL: worker/telemetry.ts
 *   HANDOVER_FAILPOINT         chaos testing only (worker/failpoints.ts)
 *   HANDOVER_CODEC_KEY[_FILE]  optional AES-256-GCM payload encryption key (codec/aes-gcm.ts); clients need the same
 * Credentials named by the inventory (env variables or files) are read here, by activities, and nowhere else.
 */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { NativeConnection, type Logger, type Worker } from '@temporalio/worker';
import { createActivities } from '../activities';
import { dataConverterFromEnv } from '../codec/aes-gcm';
import type { Duration } from '@temporalio/common';
import { explainConnectError, resolveTemporal, type TemporalTarget } from '../client/temporal';
import { inventoryPath, loadInventory } from '../inventory/load';
import { TASK_QUEUE } from '../core/ids';
import type { Inventory } from '../inventory/schema';
import { createFailpoints } from './failpoints';
import { createHandoverWorker } from './worker';
import { BUNDLE_FILE, CODEC_BUNDLE_FILE } from './bundle';
import { installTelemetry, startHealthServer, telemetryFromEnv, type Health } from './telemetry';

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

/**
 * The prebuilt bundle to load: HANDOVER_WORKFLOW_BUNDLE (HANDOVER_WORKFLOW_BUNDLE_CODEC with a codec key: a
 * bundle made with the codec's failure converter), else the build's (dist/, when this file runs from it and
 * the file exists); undefined: bundle workflows/ at start.
 */
export function defaultBundle(env: NodeJS.ProcessEnv, codec: boolean): string | undefined {
  const given = codec ? env.HANDOVER_WORKFLOW_BUNDLE_CODEC : env.HANDOVER_WORKFLOW_BUNDLE;
  if (given) return given;
  if (path.extname(__filename) !== '.js') return undefined;
  const p = path.join(__dirname, '..', codec ? CODEC_BUNDLE_FILE : BUNDLE_FILE);
  return existsSync(p) ? p : undefined;
}

/** Healthy: the worker runs, both pollers poll, and Temporal answers (GetSystemInfo within 2 s). */
async function workerHealth(worker: Worker | undefined, connection: NativeConnection | undefined, what: string): Promise<Health> {
  if (!worker || !connection) return { ok: false, detail: `connecting to Temporal at ${what}` };
  const s = worker.getStatus();
  if (s.runState !== 'RUNNING') return { ok: false, detail: `worker ${s.runState.toLowerCase()}` };
  if (s.workflowPollerState !== 'POLLING' || s.activityPollerState !== 'POLLING')
    return { ok: false, detail: `pollers: workflow ${s.workflowPollerState.toLowerCase()}, activity ${s.activityPollerState.toLowerCase()}` };
  try {
    await connection.withDeadline(Date.now() + 2000, () => connection.workflowService.getSystemInfo({}));
  } catch (e) {
    return { ok: false, detail: `Temporal at ${what} does not answer: ${(e as Error).message.split('\n')[0]}` };
  }
  return { ok: true, detail: `polling ${what}` };
}

export async function main(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const telemetry = telemetryFromEnv(env);
  const logger: Logger = installTelemetry(telemetry);
  const say = (m: string) => logger.info(m, { sdkComponent: 'handover-worker' });
  const warn = (m: string) => logger.warn(m, { sdkComponent: 'handover-worker' });
  const target = resolveTemporal({}, env);
  const { namespace } = target;
  const taskQueue = env.HANDOVER_TASK_QUEUE ?? TASK_QUEUE;
  const file = inventoryPath(undefined, env);
  const inventory = watchedInventory(file, warn);
  const failpoints = createFailpoints(env.HANDOVER_FAILPOINT);
  // A payload under a key this worker does not hold becomes a marker the run fails on (workflows/undecodable.ts).
  const dataConverter = dataConverterFromEnv(env, { undecodable: 'marker' });
  let worker: Worker | undefined;
  let connection: NativeConnection | undefined;
  const what = `${target.describe}, task queue ${taskQueue}`;
  const health = telemetry.healthAddress ? await startHealthServer(telemetry.healthAddress, () => workerHealth(worker, connection, what)) : undefined;
  if (health) say(`health check on http://${telemetry.healthAddress}/healthz`);
  if (telemetry.metricsAddress) say(`Prometheus metrics on http://${telemetry.metricsAddress}/metrics`);
  try {
    connection = await connectTemporal(target, env, warn);
    const bundle = defaultBundle(env, !!dataConverter);
    worker = await createHandoverWorker({
      connection,
      namespace,
      activities: createActivities({ inventory, inventoryFile: file, env, failpoint: failpoints.hit }),
      ...(dataConverter ? { codecWorkflowBundlePath: bundle } : { workflowBundlePath: bundle }),
      taskQueue,
      failpoints,
      dataConverter,
      extra: { shutdownGraceTime: (env.HANDOVER_SHUTDOWN_GRACE ?? '10s') as Duration },
    });
    say(`polling ${what}${dataConverter ? ' payloads=encrypted' : ''} inventory=${file} clusters=${inventory().clusters.map((c) => c.name).join(',')}${bundle ? ` bundle=${bundle}` : ''}`);
    await worker.run();
    await connection.close();
  } finally {
    await health?.close();
  }
}

if (require.main === module) {
  main().catch((e) => {
    // The last line (e.g. Temporal still unreachable when HANDOVER_TEMPORAL_CONNECT_TIMEOUT_S ran out), in the
    // configured format, then exit 1 for the supervisor to restart.
    const msg = `[worker] ${(e as Error).message}`;
    console.error(process.env.HANDOVER_LOG_FORMAT?.toLowerCase() === 'json' ? JSON.stringify({ time: new Date().toISOString(), level: 'ERROR', msg }) : msg);
    process.exit(1);
  });
}
