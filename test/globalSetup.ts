/**
 * One real Temporal dev server for the whole test run (with Handover's search attributes), health-checked
 * before any test starts and stopped after the last one. Tests connect with createFromExistingServer.
 */
import type { TestProject } from 'vitest/node';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { startDevServer, type DevServer } from '../sandbox/temporal';
import { buildSharedWorkflowBundle, TEST_BUNDLE_ENV } from '../sandbox/bundle';

declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
    temporalUiUrl: string;
  }
}

let server: DevServer | undefined;

export default async function setup(project: TestProject) {
  // The workflow bundle, built once for every test process (they inherit this environment).
  const bundle = await buildSharedWorkflowBundle();
  process.env[TEST_BUNDLE_ENV] = bundle;
  // Long polls return after 10 s instead of a minute, so a worker that stopped drops out of the task queue's
  // pollers within seconds: doctor.test.ts runs with HANDOVER_POLLER_FRESH_MS=20000 and still counts live workers.
  server = await startDevServer({ dynamicConfig: { 'matching.longPollExpirationInterval': '10s' } });
  project.provide('temporalAddress', server.address);
  project.provide('temporalUiUrl', server.uiUrl);
  return async () => {
    await server?.stop();
    rmSync(path.dirname(bundle), { recursive: true, force: true });
  };
}
