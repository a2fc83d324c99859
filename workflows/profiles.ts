/**
 * Named timeout profiles, one activity proxy each (CONVENTIONS 4):
 *  - probe:  short, read-only, retried freely.
 *  - mutate: capped attempts; typed precondition failures are never retried.
 *  - wait:   long, heartbeating; a retried attempt resumes from its heartbeat details.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { NON_RETRYABLE } from '../core/errors';

export const probe = proxyActivities<Activities>({
  startToCloseTimeout: '10s',
  retry: { initialInterval: '300ms', backoffCoefficient: 2, maximumInterval: '3s', maximumAttempts: 5, nonRetryableErrorTypes: NON_RETRYABLE },
});

export const mutate = proxyActivities<Activities>({
  startToCloseTimeout: '30s',
  heartbeatTimeout: '5s',
  retry: { initialInterval: '500ms', backoffCoefficient: 2, maximumInterval: '5s', maximumAttempts: 4, nonRetryableErrorTypes: NON_RETRYABLE },
});

export const wait = proxyActivities<Activities>({
  startToCloseTimeout: '10m',
  heartbeatTimeout: '5s',
  retry: { initialInterval: '500ms', backoffCoefficient: 2, maximumInterval: '5s', maximumAttempts: 10, nonRetryableErrorTypes: NON_RETRYABLE },
});

/**
 * watch: the monitor's detection loop (activities/monitor.ts), one call per stretch of rounds. It heartbeats every
 * round; a worker that dies is noticed at the heartbeat timeout and the next attempt resumes from the last
 * heartbeat's details. Retried without limit (the monitor never gives up watching); typed failures
 * (credentials, inventory) reach the workflow, which reports them and tries again.
 */
export const watch = proxyActivities<Activities>({
  startToCloseTimeout: '10m',
  heartbeatTimeout: '4s',
  retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '2s', nonRetryableErrorTypes: NON_RETRYABLE },
});
