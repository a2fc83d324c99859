/**
 * `handover doctor`'s lines: one per check, `ok`, `FAIL` (with what to do) or `skip`. The CLI makes the
 * Temporal and codec lines itself; the inventory, node and binary lines come from the worker
 * (activities/doctor.ts, the `doctor` workflow), or from the CLI's own machine when it reads directly.
 */
export type CheckStatus = 'ok' | 'FAIL' | 'skip';
export interface Check {
  check: string;
  status: CheckStatus;
  detail: string;
  /** What to do about a FAIL. */
  fix?: string;
}

export function formatCheck(c: Check): string {
  return `${c.status.padEnd(4)}  ${c.check}: ${c.detail}${c.fix ? ` -> ${c.fix}` : ''}`;
}
