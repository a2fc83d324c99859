/**
 * Operator hooks around a failover (activities/hooks.ts), one step each: pre-failover hooks run after the
 * decision and before the point of no return and fail closed (the first failure ends the run, nothing
 * changed); post-failover hooks run after verification and fail open (each failure is reported, the run ends
 * done). No step is scheduled when the inventory lists no hooks.
 */
import { patched } from '@temporalio/workflow';
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

/**
 * Hooks on every runbook (switchover, rolling restart, and the promotion inside any of them). New in runs
 * recorded after this marker; a run recorded before never reaches it (its probes carry no such hook counts).
 */
export const PATCH_RUNBOOK_HOOKS = 'hooks-on-every-runbook';

type RunbookHookKind = 'preSwitchover' | 'postSwitchover' | 'postPromotion' | 'preRollingRestart' | 'postRollingRestart';

const HOOK_LABEL: Record<RunbookHookKind, string> = {
  preSwitchover: 'pre-switchover hook',
  postSwitchover: 'post-switchover hook',
  postPromotion: 'post-promotion hook',
  preRollingRestart: 'pre-rolling-restart hook',
  postRollingRestart: 'post-rolling-restart hook',
};

/** How many hooks of `kind` a probe reported, 0 when none (or the probe predates the kind). */
export const hookCount = (hooks: Partial<Record<string, number>> | undefined, kind: RunbookHookKind): number => hooks?.[kind] ?? 0;

/** The plan's entries for `count` hooks of `kind`, named as the steps that run them. */
export function hookPlan(kind: RunbookHookKind, count: number): { name: string; summary: string }[] {
  const pre = kind.startsWith('pre');
  return Array.from({ length: count }, (_, i) => ({ name: `${HOOK_LABEL[kind]} ${i + 1}`, summary: `${HOOK_LABEL[kind]} ${i + 1} (${pre ? 'fails closed: nothing changed if it fails' : 'fails open: a failure is reported'})` }));
}

/**
 * Pre-hooks (fail closed): run in order before anything changes; the first failure ends the run with
 * PreHookFailed and nothing changed (the remaining steps are marked skipped).
 */
export async function runPreHooks(rb: Runbook, kind: 'preSwitchover' | 'preRollingRestart', count: number, r: HookRun): Promise<HookOutcome[]> {
  const out: HookOutcome[] = [];
  if (count === 0 || !patched(PATCH_RUNBOOK_HOOKS)) return out;
  for (let i = 0; i < count; i++) {
    const name = `${HOOK_LABEL[kind]} ${i + 1}`;
    try {
      const h = await rb.step(name, hookPlan(kind, count)[i].summary, () => mutate.runHook.executeWithOptions(hookOptions(`${name} for ${r.cluster}`), [{ ...r, kind, index: i }]));
      out.push({ hook: name, ok: true, detail: h.audit });
    } catch (e) {
      rb.skipRemaining(`${name} failed`);
      throw e;
    }
  }
  return out;
}

/** Post-hooks (fail open): each failure is audited and returned (ok: false); the run goes on. */
export async function runPostHooks(rb: Runbook, kind: 'postSwitchover' | 'postPromotion' | 'postRollingRestart', count: number, r: HookRun): Promise<HookOutcome[]> {
  const out: HookOutcome[] = [];
  if (count === 0 || !patched(PATCH_RUNBOOK_HOOKS)) return out;
  for (let i = 0; i < count; i++) {
    const name = `${HOOK_LABEL[kind]} ${i + 1}`;
    try {
      const h = await rb.step(name, hookPlan(kind, count)[i].summary, () => mutate.runHook.executeWithOptions(hookOptions(`${name} for ${r.cluster}`), [{ ...r, kind, index: i }]));
      out.push({ hook: name, ok: true, detail: h.audit });
    } catch (e) {
      out.push({ hook: name, ok: false, detail: messageOf(e) });
      rb.audit(name, `${HOOK_LABEL[kind].toUpperCase()} ${i + 1} FAILED (the run goes on; do its work by hand): ${messageOf(e)}`);
    }
  }
  return out;
}
