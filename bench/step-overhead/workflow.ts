/**
 * The step-overhead benchmark's workflow (bench/step-overhead/index.ts): N calls of one short activity, in a row,
 * through the proxy each lever names. Bench-only: not registered by the Handover worker.
 */
import { proxyActivities, proxyLocalActivities } from '@temporalio/workflow';

export interface StepActivities {
  /** One short real read (INFO replication on a Redis node over an open connection). */
  stepRead(i: number): Promise<number>;
}

export type StepProxy = 'activity' | 'activity-no-eager' | 'local';

const timeouts = { startToCloseTimeout: '10s', retry: { maximumAttempts: 3 } } as const;
const proxies: Record<StepProxy, StepActivities> = {
  activity: proxyActivities<StepActivities>({ ...timeouts, allowEagerDispatch: true }),
  'activity-no-eager': proxyActivities<StepActivities>({ ...timeouts, allowEagerDispatch: false }),
  local: proxyLocalActivities<StepActivities>(timeouts),
};

export async function stepOverhead(n: number, proxy: StepProxy): Promise<number> {
  let sum = 0;
  for (let i = 0; i < n; i++) sum += await proxies[proxy].stepRead(i);
  return sum;
}
