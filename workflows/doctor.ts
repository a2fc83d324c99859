/**
 * doctor: `handover doctor`'s database and host checks run on the worker (activities/doctor.ts), with the
 * worker's inventory, secrets and binaries, so the CLI needs Temporal alone. One read-only activity; no lock (it
 * is not an operation on the cluster), a short deadline, a workflow ID of its own (core/ids.ts doctorWorkflowId).
 */
import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { DoctorChecksResult } from '../activities/doctor';
import { NON_RETRYABLE } from '../core/errors';

const check = proxyActivities<Activities>({
  // Nodes are checked one after another, each bounded by its connect timeout; one retry for a worker lost mid-check.
  startToCloseTimeout: '60s',
  retry: { initialInterval: '200ms', maximumAttempts: 2, nonRetryableErrorTypes: NON_RETRYABLE },
});

export interface DoctorInput {
  /** One cluster; all of the worker's inventory without it. */
  cluster?: string;
}

export async function doctor(input: DoctorInput): Promise<DoctorChecksResult> {
  return await check.doctorChecks({ cluster: input.cluster });
}
