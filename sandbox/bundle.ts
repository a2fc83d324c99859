/**
 * One workflow bundle for a whole test or bench run instead of one per worker: webpack takes 5-10 s here, and a
 * CI run starts some sixty workers. test/globalSetup.ts builds it once and hands its path to the test processes in
 * HANDOVER_TEST_WORKFLOW_BUNDLE; elsewhere (a bench, a chaos run) it is built on first use and kept for the
 * process. The code is what a production worker runs (worker/bundle.ts: workflows/ with its interceptors).
 */
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { workflowBundleCode } from '../worker/bundle';

export const TEST_BUNDLE_ENV = 'HANDOVER_TEST_WORKFLOW_BUNDLE';

let building: Promise<string> | undefined;

/** Builds the bundle into a new temporary directory; returns its path. */
export async function buildSharedWorkflowBundle(): Promise<string> {
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'handover-bundle-')), 'workflow-bundle.js');
  writeFileSync(file, await workflowBundleCode());
  return file;
}

/** The path of the run's workflow bundle: the one globalSetup built, or one built now (once per process). */
export function sharedWorkflowBundle(): Promise<string> {
  const given = process.env[TEST_BUNDLE_ENV];
  if (given && existsSync(given)) return Promise.resolve(given);
  building ??= buildSharedWorkflowBundle();
  return building;
}
