/**
 * One real Temporal dev server for the whole test run (with Handover's search attributes), health-checked
 * before any test starts and stopped after the last one. Tests connect with createFromExistingServer.
 */
import type { TestProject } from 'vitest/node';
import { startDevServer, type DevServer } from '../sandbox/temporal';

declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
    temporalUiUrl: string;
  }
}

let server: DevServer | undefined;

export default async function setup(project: TestProject) {
  // Long polls return after 10 s instead of a minute, so a worker that stopped drops out of the task queue's
  // pollers within seconds: doctor.test.ts runs with HANDOVER_POLLER_FRESH_MS=20000 and still counts live workers.
  server = await startDevServer({ dynamicConfig: { 'matching.longPollExpirationInterval': '10s' } });
  project.provide('temporalAddress', server.address);
  project.provide('temporalUiUrl', server.uiUrl);
  return async () => {
    await server?.stop();
  };
}
