/**
 * Every workflow ID, task queue and search attribute name is built here, so that two entry points can never
 * disagree on them. Pure: imported by workflows, worker and client alike.
 */
import { defineSearchAttributeKey } from '@temporalio/common';

export const TASK_QUEUE = 'handover';
export const DEFAULT_NAMESPACE = 'default';

/**
 * One mutating operation per cluster at a time: every mutating runbook on a cluster uses this one workflow ID,
 * started with the "fail if running" conflict policy, so a second start is refused by the server itself.
 */
export function operationWorkflowId(cluster: string): string {
  return `handover-${cluster}`;
}

/** The long-running monitor of a cluster (not a mutating operation: it starts failovers on the lock ID). */
export function monitorWorkflowId(cluster: string): string {
  return `handover-monitor-${cluster}`;
}

/** The binlog archiver of a cluster (point-in-time recovery): not the lock ID, it runs beside switchovers and failovers. */
export function archiverWorkflowId(cluster: string): string {
  return `handover-binlog-archive-${cluster}`;
}

/** A `handover status` read on the worker (read-only, no lock): one per call. */
export function statusWorkflowId(cluster: string | undefined, unique: string): string {
  return `handover-status-${cluster ?? 'all'}-${unique}`;
}

/** A `handover doctor` check on the worker (read-only, no lock): one per call. */
export function doctorWorkflowId(cluster: string | undefined, unique: string): string {
  return `handover-doctor-${cluster ?? 'all'}-${unique}`;
}

/** A cluster's maintenance windows (workflows/maintenance.ts): not a mutating operation, never the lock. */
export function maintenanceWorkflowId(cluster: string): string {
  return `handover-maintenance-${cluster}`;
}

export type RunbookName = 'switchover' | 'failover' | 'rolling-restart' | 'backup';

export const SA_CLUSTER = defineSearchAttributeKey('HandoverCluster', 'KEYWORD');
export const SA_RUNBOOK = defineSearchAttributeKey('HandoverRunbook', 'KEYWORD');
export const SA_PHASE = defineSearchAttributeKey('HandoverPhase', 'KEYWORD');

/** The search attributes a Temporal namespace needs, as `temporal server start-dev --search-attribute` takes them. */
export const SEARCH_ATTRIBUTES: Record<string, 'Keyword'> = {
  HandoverCluster: 'Keyword',
  HandoverRunbook: 'Keyword',
  HandoverPhase: 'Keyword',
};
