/** What long waits put in their heartbeat details for `--wait` progress bars (never in workflow history). */
import type { WaitProgress } from '../core/types';

/** A wait measured against its deadline: time spent of the time allowed, with the state seen last. */
export function timeProgress(what: string, startedAt: number, timeoutMs: number, note?: string): WaitProgress {
  return { what, done: Math.min(timeoutMs, Math.max(0, Date.now() - startedAt)), total: timeoutMs, unit: 'ms', note };
}
