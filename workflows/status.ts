/**
 * clusterStatus: `handover status` (and the CLI's inventory check) run on the worker. One read-only activity;
 * no lock (it is not an operation on the cluster), a short deadline, a workflow ID of its own
 * (core/ids.ts statusWorkflowId).
 */
import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { ReadClusterStatusResult } from '../activities/status';
import { NON_RETRYABLE } from '../core/errors';

const read = proxyActivities<Activities>({
  // Every node within STATUS_PROBE_TIMEOUT_MS (2.5 s), in parallel; one retry for a worker lost mid-read.
  startToCloseTimeout: '15s',
  retry: { initialInterval: '200ms', maximumAttempts: 2, nonRetryableErrorTypes: NON_RETRYABLE },
});

export interface ClusterStatusInput {
  /** One cluster; all of the worker's inventory without it. */
  cluster?: string;
  /** false: only the clusters' shapes (the inventory check before a runbook starts), no database touched. */
  probe?: boolean;
}

export async function clusterStatus(input: ClusterStatusInput): Promise<ReadClusterStatusResult> {
  return await read.readClusterStatus({ cluster: input.cluster, probe: input.probe ?? true });
}
