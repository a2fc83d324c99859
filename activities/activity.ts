/**
 * What every activity module shares, whatever the engine: the wrapper that turns typed errors into
 * non-retryable failures, the one heartbeat helper, and host:port comparison.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { HandoverError } from '../core/errors';

/** A typed, non-retryable failure: what no retry can fix (bad input, refused precondition, aborted handover). */
export function toFailure(e: unknown): unknown {
  if (e instanceof HandoverError) return ApplicationFailure.create({ message: e.message, type: e.type, nonRetryable: true, details: e.details === undefined ? [] : [e.details] });
  return e;
}

/** Wrap an activity so typed errors become non-retryable failures. */
export function activity<I, O>(fn: (input: I) => Promise<O>): (input: I) => Promise<O> {
  return async (input: I) => {
    try {
      return await fn(input);
    } catch (e) {
      throw toFailure(e);
    }
  };
}

/**
 * Heartbeat at once and then every second while `fn` runs (a blocking statement, a restart or a stream cannot heartbeat
 * itself), with `details()` as the heartbeat details when given. Outside an activity (tests calling an
 * activity function directly) it just runs `fn`.
 */
export async function heartbeatWhile<T>(fn: () => Promise<T>, details?: () => unknown): Promise<T> {
  let ctx: Context | undefined;
  try {
    ctx = Context.current();
  } catch {
    ctx = undefined;
  }
  ctx?.heartbeat(details?.());
  const t = ctx ? setInterval(() => ctx!.heartbeat(details?.()), 1000) : undefined;
  try {
    return await fn();
  } finally {
    if (t) clearInterval(t);
  }
}

/** "localhost", "127.0.0.1" and "::1" name the same loopback host; everything else compares as written. */
const normalizeHost = (h: string) => (h === 'localhost' || h === '::1' ? '127.0.0.1' : h);

/** Whether two host:port pairs name the same server. */
export const sameAddress = (aHost: string, aPort: number, bHost: string, bPort: number) => aPort === bPort && normalizeHost(aHost) === normalizeHost(bHost);

/** `p`, or a rejection "timeout after N ms" when it takes longer (no deadline when `ms` is undefined). */
export function withDeadline<T>(p: Promise<T>, ms: number | undefined): Promise<T> {
  if (ms === undefined) return p;
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (t = setTimeout(() => reject(new Error(`timeout after ${ms} ms`)), ms)));
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}
