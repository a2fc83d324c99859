/**
 * The operator gate (--require-approval) and abort (workflow cancellation), shared by the runbooks.
 *
 * Approval: after probe and decide, the runbook publishes its plan and the plan's hash in the `progress`
 * query and waits for the `approve` Workflow Update. The update names the plan hash it approves, so an
 * approval can only ever apply to the plan the approver saw. Deterministic: the hash is computed here, in the
 * workflow, from the plan itself.
 *
 * Abort: `handover abort` cancels the workflow. Before the point of no return a runbook undoes in a
 * non-cancellable scope and ends with an `Aborted` failure ("nothing changed"); after it, the remaining
 * steps run in a non-cancellable scope and the run finishes forward, saying so in its audit and report.
 */
import { ApplicationFailure, CancellationScope, condition, defineUpdate, isCancellation } from '@temporalio/workflow';
import { ErrorType } from '../core/errors';
import type { ApprovalProgress } from '../core/types';
import type { Runbook } from './runbook';

export interface ApproveInput {
  /** Who approves (shown in the audit trail). Required. */
  approver: string;
  /** The hash of the plan being approved, as the progress query shows it. Required. */
  planHash: string;
  /** Reject the plan instead: the run ends with nothing changed. */
  reject?: boolean;
  reason?: string;
}
export interface ApproveResult {
  outcome: 'approved' | 'rejected';
  approver: string;
  planHash: string;
}

export const approveUpdate = defineUpdate<ApproveResult, [ApproveInput]>('approve');

/** Default --approval-timeout. */
export const DEFAULT_APPROVAL_TIMEOUT_MS = 30 * 60_000;

/** 64-bit FNV-1a over the plan's JSON, as 16 hex digits: the plan's identity (not a secret, not a MAC). */
export function planHash(plan: unknown): string {
  const text = JSON.stringify(plan);
  let h = 0xcbf29ce484222325n;
  const prime = 0x100000001b3n;
  const mask = 0xffffffffffffffffn;
  for (let i = 0; i < text.length; i++) {
    h ^= BigInt(text.charCodeAt(i));
    h = (h * prime) & mask;
  }
  return h.toString(16).padStart(16, '0');
}

/** Why an approve update is refused (the update validator), or undefined when it is acceptable. */
export function approvalProblem(a: ApproveInput | undefined, pending: ApprovalProgress | undefined): string | undefined {
  if (!pending) return 'this run has no approval gate (start it with --require-approval)';
  if (pending.status !== 'waiting') return `this run is not waiting for approval (approval ${pending.status}${pending.approver ? ` by ${pending.approver}` : ''})`;
  if (!a || typeof a.approver !== 'string' || !a.approver.trim()) return 'an approval must name its approver (--approver, default $USER)';
  if (typeof a.planHash !== 'string' || !a.planHash.trim()) return `an approval must name the plan hash it approves (the plan waiting is ${pending.planHash})`;
  if (a.planHash.trim() !== pending.planHash) return `plan hash ${a.planHash} does not match the plan waiting for approval (${pending.planHash}); re-read the plan`;
  return undefined;
}

function formatMs(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/**
 * Publish the plan and wait for `approve`. Returns the approval; throws ApprovalRejected or ApprovalTimedOut
 * (nothing was changed: the gate comes before the first mutating step), or the cancellation of an abort.
 */
export async function awaitApproval(rb: Runbook, gate: { summary: string; plan: string[]; hashOf: unknown; timeoutMs?: number }): Promise<ApproveInput> {
  const timeoutMs = gate.timeoutMs ?? DEFAULT_APPROVAL_TIMEOUT_MS;
  const hash = planHash(gate.hashOf);
  const approval: ApprovalProgress = { status: 'waiting', planHash: hash, summary: gate.summary, plan: gate.plan, timeoutMs, deadline: Date.now() + timeoutMs };
  let decided: ApproveInput | undefined;
  rb.openApproval(approval, (a) => (decided = a));
  const cluster = rb.progress.cluster;
  const summary = `wait for approval of plan ${hash} (handover approve; at most ${formatMs(timeoutMs)})`;
  // Listed where it happens: before the first step still to come.
  const next = rb.progress.steps.findIndex((s) => s.status === 'pending');
  rb.progress.steps.splice(next < 0 ? rb.progress.steps.length : next, 0, { name: 'approval', summary, status: 'pending' });
  return rb.step(
    'approval',
    summary,
    async () => {
      let ok: boolean;
      try {
        ok = await condition(() => decided !== undefined, timeoutMs);
      } catch (e) {
        if (isCancellation(e)) approval.status = 'aborted';
        throw e;
      }
      if (!ok) {
        approval.status = 'timed-out';
        throw ApplicationFailure.create({
          message: `no approval of plan ${hash} for ${cluster} within ${formatMs(timeoutMs)}; nothing was changed`,
          type: ErrorType.ApprovalTimedOut,
          nonRetryable: true,
        });
      }
      const d = decided!;
      if (d.reject)
        throw ApplicationFailure.create({
          message: `plan ${hash} for ${cluster} rejected by ${d.approver}${d.reason ? `: ${d.reason}` : ''}; nothing was changed`,
          type: ErrorType.ApprovalRejected,
          nonRetryable: true,
        });
      return d;
    },
    (d) => `approved by ${d.approver} (plan ${hash})${d.reason ? `: ${d.reason}` : ''}`,
  );
}

/**
 * The approval gate of a runbook (`--require-approval`), written once: nothing happens unless the input asks for
 * it; else the plan is published and the run waits (awaitApproval). A rejection or a timeout marks the remaining
 * steps skipped and the phase, and ends the run (nothing was changed). An abort while waiting: with `onAbort`,
 * the same marking and the failure it builds; without, the cancellation goes on to the runbook's own abort
 * handling around the gate. Returns what the report records of the approval.
 */
export async function approvalGate(
  rb: Runbook,
  input: { requireApproval?: boolean; approvalTimeoutMs?: number },
  gate: { summary: string; plan: string[]; hashOf: unknown },
  onAbort?: () => ApplicationFailure,
): Promise<{ approver: string; planHash: string } | undefined> {
  if (!input.requireApproval) return undefined;
  const a = await awaitApproval(rb, { ...gate, timeoutMs: input.approvalTimeoutMs }).catch((e) => {
    const aborted = isCancellation(e);
    if (aborted && !onAbort) throw e;
    rb.skipRemaining(aborted ? 'aborted' : 'not approved');
    rb.setPhase(aborted ? 'aborted' : (rb.progress.approval?.status ?? 'not-approved'));
    throw aborted ? onAbort!() : e;
  });
  return { approver: a.approver, planHash: rb.progress.approval!.planHash };
}

/** Whether an abort (cancellation of the run) was requested; readable from inside non-cancellable scopes. */
export function abortWatch(rb: Runbook): { requested(): boolean } {
  const root = CancellationScope.current();
  root.cancelRequested.catch(() => {
    rb.progress.abortRequested = true;
  });
  return { requested: () => root.consideredCancelled || !!rb.progress.abortRequested };
}

/** The failure a runbook ends with when an abort stopped it before the point of no return. */
export function abortedFailure(cluster: string, runbook: string, state: string): ApplicationFailure {
  return ApplicationFailure.create({ message: `${runbook} of ${cluster} aborted by the operator before the point of no return: nothing changed; ${state}`, type: ErrorType.Aborted, nonRetryable: true });
}

export { isCancellation };
