/**
 * Step bookkeeping shared by every runbook workflow: the `progress` query, the phase search attribute and the
 * UI's current details, and one audit line per step (what it saw, what it did). Deterministic: uses only the
 * workflow clock and workflow APIs.
 */
import { ApplicationFailure, defineQuery, log, setCurrentDetails, setHandler, upsertSearchAttributes } from '@temporalio/workflow';
import { ErrorType } from '../core/errors';
import { SA_PHASE } from '../core/ids';
import type { ApprovalProgress, RunbookProgress, StepProgress } from '../core/types';
import { approvalProblem, approveUpdate, type ApproveInput } from './approval';

export const progressQuery = defineQuery<RunbookProgress>('progress');

export class Runbook {
  readonly progress: RunbookProgress;

  constructor(runbook: string, cluster: string) {
    this.progress = { runbook, cluster, phase: 'starting', pointOfNoReturnPassed: false, steps: [], audit: [] };
    setHandler(progressQuery, () => this.progress);
    // The approve update is accepted only while an approval gate is open (awaitApproval) and only for the
    // plan hash it published; otherwise the validator refuses it (nothing recorded in history).
    setHandler(
      approveUpdate,
      (a) => {
        const g = this.progress.approval!;
        g.status = a.reject ? 'rejected' : 'approved';
        g.approver = a.approver.trim();
        g.reason = a.reason;
        this.onApproval?.({ ...a, approver: a.approver.trim() });
        return { outcome: a.reject ? 'rejected' : 'approved', approver: a.approver.trim(), planHash: g.planHash };
      },
      {
        validator: (a) => {
          const why = approvalProblem(a, this.progress.approval);
          if (why) throw ApplicationFailure.create({ message: why, type: ErrorType.InvalidApproval, nonRetryable: true });
        },
        description: 'approve (or reject) the plan published in the progress query: {approver, planHash, reject?, reason?}',
      },
    );
  }

  private onApproval?: (a: ApproveInput) => void;

  /** Open the approval gate: publish the plan in the progress query; `decided` gets the accepted update. */
  openApproval(gate: ApprovalProgress, decided: (a: ApproveInput) => void): void {
    this.progress.approval = gate;
    this.onApproval = decided;
  }

  /** Declare steps up front so the query shows what is still to come. */
  plan(steps: { name: string; summary: string }[]): void {
    for (const s of steps) if (!this.find(s.name)) this.progress.steps.push({ ...s, status: 'pending' });
  }

  private find(name: string): StepProgress | undefined {
    return this.progress.steps.find((s) => s.name === name);
  }

  setPhase(phase: string): void {
    this.progress.phase = phase;
    upsertSearchAttributes([{ key: SA_PHASE, value: phase }]);
    setCurrentDetails(`**${this.progress.runbook}** on \`${this.progress.cluster}\`: ${phase}`);
  }

  passPointOfNoReturn(): void {
    this.progress.pointOfNoReturnPassed = true;
  }

  audit(step: string, line: string): void {
    const entry = `${step}: ${line}`;
    this.progress.audit.push(entry);
    log.info(entry, { cluster: this.progress.cluster, runbook: this.progress.runbook });
  }

  /** Run one step: status and timings in the progress query, the step's audit line in the log. */
  async step<T>(name: string, summary: string, fn: () => Promise<T>, auditOf?: (r: T) => string | undefined): Promise<T> {
    let s = this.find(name);
    if (!s) {
      s = { name, summary, status: 'pending' };
      this.progress.steps.push(s);
    }
    s.summary = summary;
    s.status = 'running';
    s.startedAt = Date.now();
    this.setPhase(name);
    try {
      const r = await fn();
      s.status = 'done';
      s.endedAt = Date.now();
      const line = auditOf ? auditOf(r) : (r as { audit?: string } | undefined)?.audit;
      s.detail = line;
      if (line) this.audit(name, line);
      return r;
    } catch (e) {
      s.status = 'failed';
      s.endedAt = Date.now();
      s.detail = messageOf(e);
      this.audit(name, `failed: ${s.detail}`);
      throw e;
    }
  }

  skipRemaining(reason: string): void {
    for (const s of this.progress.steps) if (s.status === 'pending') {
      s.status = 'skipped';
      s.detail = reason;
    }
  }

  timings(): { step: string; ms: number }[] {
    return this.progress.steps.filter((s) => s.startedAt !== undefined && s.endedAt !== undefined).map((s) => ({ step: s.name, ms: s.endedAt! - s.startedAt! }));
  }
}

/** The innermost message of a Temporal failure chain (ActivityFailure wraps the ApplicationFailure). */
export function messageOf(e: unknown): string {
  let cur = e as { message?: string; cause?: unknown } | undefined;
  let msg = cur?.message ?? String(e);
  while (cur?.cause) {
    cur = cur.cause as { message?: string; cause?: unknown };
    if (cur.message) msg = cur.message;
  }
  return msg;
}

/** The ApplicationFailure type at the root of a failure chain, if any. */
export function failureTypeOf(e: unknown): string | undefined {
  let cur = e as { type?: string; cause?: unknown } | undefined;
  let type: string | undefined;
  while (cur) {
    if (typeof cur.type === 'string') type = cur.type;
    cur = cur.cause as { type?: string; cause?: unknown } | undefined;
  }
  return type;
}
