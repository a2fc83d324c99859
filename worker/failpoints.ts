/**
 * Fault injection for the chaos harness, in the style of etcd's gofail: named points where the worker can be
 * made to SIGKILL itself. Off unless HANDOVER_FAILPOINT is set; the harness restarts the worker without it.
 *
 *   HANDOVER_FAILPOINT=before:ensureRedisHandedOver     kill as the activity starts, before any side effect
 *   HANDOVER_FAILPOINT=after:ensureRedisReplicaOf#2     kill after the 2nd such activity did its work, before
 *                                                       its result reaches Temporal
 *   HANDOVER_FAILPOINT=inside:waitForRedisCatchUp.loop  kill at a named point inside an activity
 */
import type { ActivityInboundCallsInterceptor, ActivityExecuteInput, Next } from '@temporalio/worker';
import { closeSync, openSync } from 'node:fs';
import { Context } from '@temporalio/activity';

export interface Failpoints {
  /** The spec, e.g. "after:ensureRedisReplicaOf#2"; undefined when off. */
  spec?: string;
  /** Call at a named point inside an activity. */
  hit(name: string): void;
  interceptor?: () => ActivityInboundCallsInterceptor;
}

export function parseFailpoint(spec: string | undefined): { when: 'before' | 'after' | 'inside'; name: string; nth: number } | undefined {
  if (!spec) return undefined;
  const m = /^(before|after|inside):([A-Za-z0-9_.]+)(?:#(\d+))?$/.exec(spec);
  if (!m) throw new Error(`HANDOVER_FAILPOINT: cannot parse "${spec}" (want before|after|inside:<name>[#n])`);
  return { when: m[1] as 'before' | 'after' | 'inside', name: m[2], nth: m[3] ? Number(m[3]) : 1 };
}

export function createFailpoints(
  spec: string | undefined,
  kill: () => void = () => process.kill(process.pid, 'SIGKILL'),
  /** With several workers armed, a file that only the first to reach the point may create (then it dies). */
  onceToken: string | undefined = process.env.HANDOVER_FAILPOINT_ONCE,
): Failpoints {
  const fp = parseFailpoint(spec);
  if (!fp) return { hit: () => undefined };
  let count = 0;
  const claim = () => {
    if (!onceToken) return true;
    try {
      closeSync(openSync(onceToken, 'wx'));
      return true;
    } catch {
      return false;
    }
  };
  const fire = (when: string, name: string) => {
    if (when !== fp.when || name !== fp.name) return;
    count++;
    if (count === fp.nth && claim()) {
      process.stderr.write(`[failpoint] ${spec}: SIGKILL\n`);
      kill();
    }
  };
  return {
    spec,
    hit: (name) => fire('inside', name),
    interceptor: () => ({
      async execute(input: ActivityExecuteInput, next: Next<ActivityInboundCallsInterceptor, 'execute'>) {
        const type = Context.current().info.activityType;
        fire('before', type);
        const result = await next(input);
        fire('after', type);
        return result;
      },
    }),
  };
}
