/**
 * A run scheduled for later (`handover switchover --at TIME`): before its first activity the workflow sleeps in a
 * visible `scheduled` step (phase `scheduled` in the search attribute, the UI and `status`), holding the cluster's
 * lock so nothing else starts in between. An abort (cancellation) while it waits ends the run `Aborted` with
 * nothing changed. Deterministic: a workflow timer only.
 */
import { sleep } from '@temporalio/workflow';
import { Runbook } from './runbook';
import { abortedFailure, isCancellation } from './approval';

/** Patch marker: a switchover with a start time waits for it first (runs without one are unchanged). */
export const PATCH_SCHEDULED_START = 'switchover-scheduled-start';

export async function waitForScheduledStart(runbook: string, cluster: string, startAt: number): Promise<void> {
  const rb = new Runbook(runbook, cluster);
  const at = new Date(startAt).toISOString();
  const summary = `wait until ${at}, then start (abort before then changes nothing)`;
  rb.plan([{ name: 'scheduled', summary }]);
  try {
    await rb.step('scheduled', summary, async () => {
      await sleep(Math.max(1, startAt - Date.now()));
      return { audit: `the scheduled time ${at} came: starting` };
    });
  } catch (e) {
    if (!isCancellation(e)) throw e;
    rb.skipRemaining('aborted');
    rb.setPhase('aborted');
    throw abortedFailure(cluster, runbook, `the run scheduled for ${at} never started`);
  }
}
