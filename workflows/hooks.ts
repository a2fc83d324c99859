/**
 * Operator hooks around a failover (activities/hooks.ts), one step each: pre-failover hooks run after the
 * decision and before the point of no return and fail closed (the first failure ends the run, nothing
 * changed); post-failover hooks run after verification and fail open (each failure is reported, the run ends
 * done). No step is scheduled when the inventory lists no hooks.
 */
import { mutate } from './profiles';
import { messageOf, type Runbook } from './runbook';

export interface HookOutcome {
  hook: string;
  ok: boolean;
  detail: string;
}

interface HookRun {
  cluster: string;
  oldPrimary: string;
  newPrimary: string;
}

const hookOptions = (summary: string) => ({ summary, startToCloseTimeout: '45s' as const, heartbeatTimeout: '45s' as const });

export async function runPreFailoverHooks(rb: Runbook, count: number, r: HookRun): Promise<HookOutcome[]> {
  const out: HookOutcome[] = [];
  for (let i = 0; i < count; i++) {
    const name = `pre-failover hook ${i + 1}`;
    try {
      const h = await rb.step(name, `${name} (fails closed): promote ${r.newPrimary}?`, () =>
        mutate.runFailoverHook.executeWithOptions(hookOptions(`${name} for ${r.cluster}`), [{ ...r, kind: 'preFailover', index: i }]),
      );
      out.push({ hook: name, ok: true, detail: h.audit });
    } catch (e) {
      rb.skipRemaining(`${name} failed`);
      throw e;
    }
  }
  return out;
}

export async function runPostFailoverHooks(rb: Runbook, count: number, r: HookRun): Promise<HookOutcome[]> {
  const out: HookOutcome[] = [];
  for (let i = 0; i < count; i++) {
    const name = `post-failover hook ${i + 1}`;
    try {
      const h = await rb.step(name, `${name} (fails open)`, () => mutate.runFailoverHook.executeWithOptions(hookOptions(`${name} for ${r.cluster}`), [{ ...r, kind: 'postFailover', index: i }]));
      out.push({ hook: name, ok: true, detail: h.audit });
    } catch (e) {
      out.push({ hook: name, ok: false, detail: messageOf(e) });
      rb.audit(name, `POST-FAILOVER HOOK FAILED (the failover stands): ${messageOf(e)}`);
    }
  }
  return out;
}
