/**
 * The rolling-restart skeleton every engine shares: the approval gate (probe and decide once, publish the plan
 * and wait for `approve`), abort between steps, and the round loop (re-probe, ask the engine's pure decision for
 * the next action, wait out transient refusals, stop safely on the others, refuse an approved plan the cluster no
 * longer matches, `--dry-run`). The engine supplies its probe, its decision and how it restarts a node or hands
 * the primary over (workflows/<engine>/rolling-restart.ts). Deterministic: workflow APIs only.
 */
import { ApplicationFailure, CancellationScope, executeChild, patched, sleep } from '@temporalio/workflow';
import { ErrorType, REFUSAL_TYPES } from '../core/errors';
import { SA_CLUSTER, SA_RUNBOOK, operationWorkflowId } from '../core/ids';
import { describeAction, restartTokenOf, type DesiredSpec, type RollingAction } from '../core/rolling';
import type { RollingRestartInput, RollingRestartReport } from './contracts';
import { abortWatch, approvalGate } from './approval';
import type { Runbook } from './runbook';
import { hookCount, runPostHooks, runPreHooks, type HookOutcome } from './hooks';
import { describeWindow, windowOf, type MaintenanceWindow } from '../core/maintenance';
import { openWindows } from './maintenance';
import { standingAfterVerify, standingLine, type ClusterStanding } from '../core/standing';
import { failureTypeOf, messageOf } from './runbook';

/**
 * Patch marker: a roll that fails after it changed something (a restart, a handover) looks once at where the
 * cluster stands and ends HandoverIncomplete (exit 1) saying so, whatever failed. Runs recorded before this let
 * the failure through as it was.
 */
export const PATCH_ROLL_ENDS_WITH_STANDING = 'rolling-restart-ends-with-standing';

/** What an engine's roll probe returns, as far as the skeleton needs it. */
export interface RollProbe<N> {
  nodes: N[];
  policy: { verifyTimeoutMs: number; restartTimeoutMs: number };
  hasController: boolean;
  /** How many operator hooks the inventory lists, by kind (absent in older histories: none). */
  hooks?: Partial<Record<string, number>>;
}

type Restart = Extract<RollingAction, { kind: 'restart' }>;
type Handover = Extract<RollingAction, { kind: 'handover' }>;

export interface RollEngine<N extends { node: string }, P extends RollProbe<N>> {
  /** Refusals that a replica catching up after its restart can clear by itself (waited for, bounded). */
  transient: Set<string>;
  /** The probe activity (run as a step by the skeleton) and its audit line. */
  probe(): Promise<P>;
  saw(p: P): string;
  /** Why a node differs from the desired spec, or undefined. */
  stale(n: N): string | undefined;
  /** The next action (pure); also told each round's probe, e.g. to note the topology. */
  decide(p: P): RollingAction;
  /** The primary the probe saw, if any. */
  primaryOf(p: P): string | undefined;
  /** Whether a cluster without a controller is refused (given how many nodes are stale at the start). */
  needsController(staleAtStart: number): boolean;
  restart(a: Restart, p: P): Promise<void>;
  /** Move the primary role; returns the handover for the report (and the new primary when it is known). */
  handover(a: Handover, p: P, round: number): Promise<RollingRestartReport['handovers'][number] & { newPrimary?: string }>;
  /**
   * After the last action, inside the same non-cancellable scope: e.g. Sentinels, then verification. Returns the
   * primary and, when it verified them, the nodes that follow it.
   */
  finish(roll: RollState, stopIfAborted: () => void): Promise<{ primary: string; verified?: string[] }>;
  /** Where the cluster stands by one probe (core/standing.ts); undefined where one primary does not apply (a Redis Cluster). */
  standing(p: P, opts: { expected?: string; previousPrimary?: string }): ClusterStanding | undefined;
}

/** What the roll did so far (the report's fields), shared with the engine's finish. */
export interface RollState {
  staleAtStart: RollingRestartReport['staleAtStart'];
  restarts: RollingRestartReport['restarts'];
  handovers: RollingRestartReport['handovers'];
  sentinelRestarts: string[];
  primary: string;
  verifyTimeoutMs: number;
}

export async function runRoll<N extends { node: string }, P extends RollProbe<N>>(
  rb: Runbook,
  input: RollingRestartInput,
  desired: DesiredSpec,
  engine: RollEngine<N, P>,
): Promise<RollingRestartReport> {
  const { cluster } = input;
  const st: RollState = { staleAtStart: [], restarts: [], handovers: [], sentinelRestarts: [], primary: '', verifyTimeoutMs: 30_000 };
  const hooks: HookOutcome[] = [];
  let firstPrimary: string | undefined;
  /** The primary the first probe saw, and the latest probe (for where the cluster stands at the end). */
  let startPrimary: string | undefined;
  let last: P | undefined;
  let standing: ClusterStanding | undefined;
  let hookCounts: RollProbe<N>['hooks'];
  const probeSummary = `probe ${cluster}: which nodes are stale`;
  const report = (dryRun: boolean, approval?: RollingRestartReport['approval']): RollingRestartReport => ({
    runbook: 'rolling-restart',
    cluster,
    dryRun,
    desired,
    staleAtStart: st.staleAtStart,
    restarts: st.restarts,
    handovers: st.handovers,
    sentinelRestarts: st.sentinelRestarts,
    primary: st.primary,
    ...(approval ? { approval } : {}),
    ...(desired.restartStartedBefore !== undefined ? { restartToken: restartTokenOf(desired) } : {}),
    ...(hooks.length ? { hooks } : {}),
    ...(skipped.size ? { skipped: [...skipped].map(([node, reason]) => ({ node, reason })) } : {}),
    ...(standing ? { standing } : {}),
    steps: rb.timings(),
    audit: rb.progress.audit,
  });
  // Maintenance windows (input.maintenance): nodes skipped, with the window, for the report.
  const skipped = new Map<string, string>();

  const token = restartTokenOf(desired);
  if (token) rb.audit('token', token);

  // Approval gate (--require-approval): probe and decide once, publish the plan (stale nodes, first action)
  // and its hash, and wait for `approve`. Nothing is changed before it is given.
  let approval: RollingRestartReport['approval'];
  let approvedFirst: string | undefined;
  if (input.requireApproval && !input.dryRun) {
    const p = await rb.step('probe (plan)', probeSummary, () => engine.probe());
    const first = engine.decide(p);
    if (first.kind !== 'done' && first.kind !== 'refuse') {
      const stale = p.nodes.filter((n) => engine.stale(n)).map((n) => `${n.node} (${engine.stale(n)})`);
      approvedFirst = describeAction(first);
      const planLines = [...stale.map((x) => `restart stale ${x}`), `first action: ${approvedFirst}`, 'replicas first, one at a time, each back and caught up before the next; the primary is handed over, then restarted'];
      approval = await approvalGate(
        rb,
        input,
        {
          summary: `rolling restart of ${cluster} to ${JSON.stringify(desired)}: ${stale.length} stale node(s)`,
          plan: planLines,
          hashOf: { runbook: 'rolling-restart', cluster, desired, plan: planLines },
        },
        () => ApplicationFailure.create({ message: `rolling restart of ${cluster} aborted by the operator while waiting for approval: nothing changed`, type: ErrorType.Aborted, nonRetryable: true }),
      );
    }
  }

  // Abort (cancellation): the step in flight finishes (a restart or a handover is never cut in the middle),
  // then the roll stops before the next one. Re-running continues with the stale nodes only.
  const abort = abortWatch(rb);
  const stopIfAborted = () => {
    if (!abort.requested()) return;
    rb.skipRemaining('aborted');
    rb.setPhase('aborted');
    throw ApplicationFailure.create({
      message: `rolling restart of ${cluster} aborted by the operator between steps: ${st.restarts.length} node(s) restarted${st.restarts.length ? ` (${st.restarts.map((r) => r.node).join(', ')})` : ''}, ${st.handovers.length} handover(s); the step in flight had finished; re-run rolling-restart to roll the remaining stale nodes`,
      type: ErrorType.Aborted,
      nonRetryable: true,
    });
  };
  // What the roll changed so far, for any ending after the first change.
  const progress = () =>
    `${st.restarts.length} node(s) already rolled${st.restarts.length ? ` (${st.restarts.map((r) => r.node).join(', ')})` : ''}, ${st.handovers.length} handover(s)`;
  const standingNow = (p: P) => engine.standing(p, { expected: st.primary || undefined, previousPrimary: startPrimary });
  const withStanding = (message: string, s: ClusterStanding | undefined) => (s ? `${message}. Where it stands: ${standingLine(s)}` : message);
  /** Marks the failures the roll built itself with where the cluster stands (not wrapped again). */
  const ended = new WeakSet<object>();
  return CancellationScope.nonCancellable(async () => {
    try {
      return await roll();
    } catch (e) {
      // A failure after the first change (a restart or a handover that did not finish, verification, a Sentinel):
      // look once at where the cluster stands and say it, with what was rolled (exit 1, never "nothing changed").
      if (firstPrimary === undefined || ended.has(e as object) || failureTypeOf(e) === ErrorType.Aborted || !patched(PATCH_ROLL_ENDS_WITH_STANDING)) throw e;
      // A refusal of the first action (a pre-hook, a controller without the binary) changed nothing: it stays one.
      if (st.restarts.length + st.handovers.length === 0 && REFUSAL_TYPES.has(failureTypeOf(e) ?? '')) throw e;
      let s: ClusterStanding | undefined;
      try {
        s = standingNow(await rb.step('standing', `see where ${cluster} stands`, () => engine.probe(), () => undefined));
        if (s) rb.audit('standing', standingLine(s));
      } catch {
        s = undefined;
      }
      rb.setPhase('done-incomplete');
      throw ApplicationFailure.create({
        message: withStanding(`rolling restart of ${cluster} stopped after changing it: ${messageOf(e).replace(/\.$/, '')}; ${progress()}; re-run rolling-restart once the cause is fixed to roll the rest`, s),
        type: ErrorType.HandoverIncomplete,
        nonRetryable: true,
        ...(s ? { details: [{ standing: s }] } : {}),
      });
    }
  });

  async function roll(): Promise<RollingRestartReport> {
    // Each round changes one node; a cluster of N nodes needs at most N restarts and one handover.
    let waitedMs = 0;
    for (let round = 1; ; round++) {
      stopIfAborted();
      const probed = await rb.step(`probe #${round}`, probeSummary, () => engine.probe(), (p) => engine.saw(p));
      last = probed;
      if (round === 1) startPrimary = engine.primaryOf(probed);
      if (st.restarts.length + st.handovers.length > 2 * probed.nodes.length + 2)
        throw ApplicationFailure.create({ message: `rolling restart of ${cluster} is not converging after ${st.restarts.length + st.handovers.length} actions; stopped`, type: ErrorType.VerificationFailed, nonRetryable: true });
      if (round === 1) {
        hookCounts = probed.hooks;
        st.staleAtStart = probed.nodes.filter((n) => engine.stale(n)).map((n) => ({ node: n.node, reason: engine.stale(n)! }));
        if (!probed.hasController && !input.dryRun && engine.needsController(st.staleAtStart.length))
          throw ApplicationFailure.create({ message: `cluster ${cluster} has no controller in the inventory; nothing was changed`, type: ErrorType.PreconditionFailed, nonRetryable: true });
      }
      st.verifyTimeoutMs = probed.policy.verifyTimeoutMs;
      // Nodes in maintenance (only when the run says how to treat them): read every round, so a window opened or
      // closed mid-roll counts. `skip`: a replica in maintenance is left out of the decision (and reported).
      let windows: MaintenanceWindow[] = [];
      if (input.maintenance) windows = await openWindows(cluster, (why) => rb.audit('maintenance', `could not read the maintenance windows (${why})`));
      const held = (node: string) => windowOf(windows, node, Date.now());
      const primaryNow = engine.primaryOf(probed);
      const away = input.maintenance === 'skip' ? probed.nodes.filter((n) => n.node !== primaryNow && held(n.node)) : [];
      for (const n of away) if (engine.stale(n) && !skipped.has(n.node)) {
        skipped.set(n.node, describeWindow(held(n.node)!));
        rb.audit('maintenance', `skipping ${describeWindow(held(n.node)!)}`);
      }
      const action = engine.decide(away.length ? { ...probed, nodes: probed.nodes.filter((n) => !away.includes(n)) } : probed);
      st.primary = primaryNow ?? st.primary;
      // The next node to touch is in maintenance: wait for its window to end (`wait`), or, the primary under
      // `skip`, end the roll here with the primary neither handed over nor restarted.
      const target = action.kind === 'restart' ? action.node : action.kind === 'handover' ? action.from : undefined;
      const w = target !== undefined && input.maintenance ? held(target) : undefined;
      if (w && !input.dryRun) {
        if (input.maintenance === 'wait') {
          await rb.step(`wait for ${w.node}`, `wait for the maintenance of ${w.node} to end (until ${new Date(w.untilMs).toISOString()})`, async () => {
            await sleep(Math.max(1, Math.min(w.untilMs - Date.now(), 30_000)));
            return { audit: `${describeWindow(w)}: waited` };
          });
          continue;
        }
        skipped.set(w.node, describeWindow(w));
        rb.audit('maintenance', `the primary ${describeWindow(w)}: not handed over nor restarted`);
        break;
      }
      // Mid-roll, a replica that was just restarted may still be catching up: wait for it (bounded) rather
      // than stop. Other refusals, and any refusal before the first action, stop the run.
      if (action.kind === 'refuse' && round > 1 && engine.transient.has(action.code) && waitedMs < probed.policy.restartTimeoutMs) {
        rb.audit('wait', `${action.reason}; waiting 1 s and probing again`);
        await sleep(1000);
        waitedMs += 1000;
        continue;
      }
      waitedMs = 0;
      if (action.kind === 'refuse') {
        rb.skipRemaining('stopped');
        // Before the first action a refusal changed nothing (exit 2); mid-roll the nodes already rolled stay
        // rolled, so the stop is a failure that says what changed and where the cluster stands (exit 1). Both say
        // where it stands, from the probe the decision was made on.
        const s = standingNow(probed);
        const f = ApplicationFailure.create({
          message: withStanding(
            round === 1
              ? `refused: ${action.reason}; nothing was changed`
              : `stopped safely: ${action.reason}; ${progress()}; the primary is ${st.primary || 'unknown'}; re-run rolling-restart once the cause is fixed to roll the rest`,
            s,
          ),
          type: round === 1 ? ErrorType.PreconditionFailed : ErrorType.HandoverIncomplete,
          nonRetryable: true,
          details: [{ code: action.code, ...(s ? { standing: s } : {}) }],
        });
        ended.add(f);
        throw f;
      }
      if (action.kind === 'done') break;
      if (round === 1 && approvedFirst !== undefined && describeAction(action) !== approvedFirst) {
        rb.skipRemaining('stopped');
        throw ApplicationFailure.create({ message: `the cluster changed after the plan was approved (first action now ${describeAction(action)}, approved ${approvedFirst}); nothing was changed: plan and approve again`, type: ErrorType.PreconditionFailed, nonRetryable: true });
      }
      if (input.dryRun) {
        rb.audit('plan', `stale: ${st.staleAtStart.map((s) => `${s.node} (${s.reason})`).join('; ') || 'none'}; first action: ${action.kind} ${action.kind === 'restart' ? action.node : `${action.from} -> ${action.to}`}`);
        rb.setPhase('planned');
        return report(true);
      }

      // Pre-rolling-restart hooks (fail closed), once, before the first change: a failure ends the run, nothing changed.
      if (firstPrimary === undefined) {
        firstPrimary = st.primary;
        hooks.push(...(await runPreHooks(rb, 'preRollingRestart', hookCount(hookCounts, 'preRollingRestart'), { cluster, oldPrimary: st.primary, newPrimary: st.primary })));
      }
      if (action.kind === 'restart') {
        await engine.restart(action, probed);
        st.restarts.push({ node: action.node, role: 'replica', primary: action.primary, reason: action.reason });
        // The restart token: a node restarted under it is never due again in this run (replayed from history).
        if (desired.restartStartedBefore !== undefined) desired.restarted = [...(desired.restarted ?? []), action.node];
      } else {
        const { newPrimary, ...h } = await engine.handover(action, probed, round);
        st.handovers.push(h);
        if (newPrimary) st.primary = newPrimary;
      }
    }
    const fin = await engine.finish(st, stopIfAborted);
    st.primary = fin.primary;
    // Where it stands: the nodes the last step verified following the primary, else the last probe.
    standing = fin.verified ? standingAfterVerify(fin.primary, startPrimary, fin.verified, []) : last ? standingNow(last) : undefined;
    if (standing) rb.audit('standing', standingLine(standing));
    // Post-rolling-restart hooks (fail open, reported): only after a roll that changed something.
    if (firstPrimary !== undefined) hooks.push(...(await runPostHooks(rb, 'postRollingRestart', hookCount(hookCounts, 'postRollingRestart'), { cluster, oldPrimary: firstPrimary, newPrimary: st.primary })));
    rb.setPhase(hooks.some((h) => !h.ok) ? 'done-post-hook-failed' : 'done');
    return report(false, approval);
  }
}

/**
 * The primary handed over by the engine's switchover runbook as a child workflow (its own history, its own
 * undo), one step of the roll. Both engines' rolls use it; `workflowType` names the engine's switchover.
 */
export async function handoverByChildSwitchover(
  rb: Runbook,
  cluster: string,
  action: Handover,
  round: number,
  /** The engine's switchover type, or `switchover` (the router: a Dolt roll, whose switchover depends on the topology). */
  workflowType: 'redisSwitchover' | 'mysqlSwitchover' | 'switchover',
): Promise<RollingRestartReport['handovers'][number] & { newPrimary: string }> {
  const workflowId = `${operationWorkflowId(cluster)}-handover-${round}`;
  const report = await rb.step(
    `handover ${action.from}`,
    `switch over ${action.from} -> ${action.to} (child workflow)`,
    () =>
      executeChild(workflowType, {
        workflowId,
        args: [{ cluster, to: action.to, requestedBy: `rolling restart of ${cluster}` }],
        typedSearchAttributes: [
          { key: SA_CLUSTER, value: cluster },
          { key: SA_RUNBOOK, value: 'switchover' },
        ],
        staticSummary: `switchover of ${cluster} to ${action.to} (rolling restart)`,
      }) as Promise<{ oldPrimary: string; newPrimary: string; writePauseMs: number }>,
    (r) => `child ${workflowId}: ${r.oldPrimary} -> ${r.newPrimary}, write pause ${r.writePauseMs} ms`,
  );
  return { from: report.oldPrimary, to: report.newPrimary, writePauseMs: report.writePauseMs, workflowId, newPrimary: report.newPrimary };
}
