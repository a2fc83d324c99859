/** The approval gate's pure parts: the plan hash (deterministic, plan-sensitive) and the update validator's rules. */
import { describe, expect, it } from 'vitest';
import { approvalProblem, planHash } from '../../workflows/approval';
import type { ApprovalProgress } from '../../core/types';
import { parseDuration } from '../../client/duration';

const waiting: ApprovalProgress = { status: 'waiting', planHash: planHash({ a: 1 }), summary: 's', plan: ['p'], timeoutMs: 1000, deadline: 0 };

describe('approval', () => {
  it('hashes a plan to 16 hex digits, the same plan to the same hash, another plan to another', () => {
    const plan = { runbook: 'switchover', cluster: 'c', primary: 'c-1', candidate: 'c-2', plan: ['catch-up', 'veto', 'handover'] };
    expect(planHash(plan)).toMatch(/^[0-9a-f]{16}$/);
    expect(planHash(JSON.parse(JSON.stringify(plan)))).toBe(planHash(plan));
    expect(planHash({ ...plan, candidate: 'c-3' })).not.toBe(planHash(plan));
  });

  it('accepts an approval naming its approver and the waiting plan hash', () => {
    expect(approvalProblem({ approver: 'alice', planHash: waiting.planHash }, waiting)).toBeUndefined();
    expect(approvalProblem({ approver: 'alice', planHash: waiting.planHash, reject: true, reason: 'no' }, waiting)).toBeUndefined();
  });

  it('refuses a missing approver, a missing or wrong plan hash, and a run not waiting for approval', () => {
    expect(approvalProblem({ approver: ' ', planHash: waiting.planHash }, waiting)).toMatch(/must name its approver/);
    expect(approvalProblem({ approver: 'alice', planHash: '' }, waiting)).toMatch(/must name the plan hash/);
    expect(approvalProblem({ approver: 'alice', planHash: '0000000000000000' }, waiting)).toMatch(/does not match the plan waiting for approval/);
    expect(approvalProblem({ approver: 'alice', planHash: waiting.planHash }, undefined)).toMatch(/no approval gate/);
    expect(approvalProblem({ approver: 'alice', planHash: waiting.planHash }, { ...waiting, status: 'approved', approver: 'bob' })).toMatch(/not waiting for approval \(approval approved by bob\)/);
  });
});

describe('--approval-timeout durations', () => {
  it('reads ms, s, m, h; refuses a bare number (no unit) and anything else in one line naming the flag', () => {
    expect([parseDuration('1500ms'), parseDuration('90s'), parseDuration('30m'), parseDuration('2h')]).toEqual([1500, 90_000, 1_800_000, 7_200_000]);
    expect(() => parseDuration('5')).toThrow('--approval-timeout 5: a duration needs a unit; say 5s or 5m');
    expect(() => parseDuration('soon')).toThrow('--approval-timeout soon: not a duration; use e.g. 90s, 30m, 2h');
    expect(() => parseDuration('0s')).toThrow('--approval-timeout 0s: the duration must be positive');
  });
});
