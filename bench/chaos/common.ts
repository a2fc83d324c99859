/** Small pieces every scenario file uses. */
import { runRollingRestart } from '../../client/commands/rolling-restart';
import type { AckLog } from '../../sandbox/writer';
import type { AnyLab, Before, ChaosWriter, KillMark, Scenario } from './types';

export const quietIO = (log: (m: string) => void) => ({ out: () => undefined, err: log, isTTY: false });

/** Throws when a CLI start did not exit 0. */
export function started(r: { exitCode: number }): void {
  if (r.exitCode !== 0) throw new Error(`could not start: exit ${r.exitCode}`);
}

/** A switchover must move the primary from the one before the run to the one it reports. */
export function switchedOver(before: Before, report: unknown): { primary: string; why: string } | { failure: string } {
  const r = report as { oldPrimary?: string; newPrimary?: string } | undefined;
  if (!r?.newPrimary) return { failure: 'the report names no new primary' };
  if (before.primary && r.oldPrimary !== before.primary) return { failure: `the report says it switched from ${r.oldPrimary}, the primary before the run was ${before.primary}` };
  if (r.newPrimary === before.primary) return { failure: `the report's new primary ${r.newPrimary} is the old one` };
  return { primary: r.newPrimary, why: `the switchover reported ${r.oldPrimary} -> ${r.newPrimary}` };
}

/** A failover must promote another node than the one killed, and say which it replaced. */
export function failedOver(_before: Before, report: unknown, kill?: KillMark): { primary: string; why: string } | { failure: string } {
  const r = report as { oldPrimary?: string; newPrimary?: string } | undefined;
  if (!r?.newPrimary) return { failure: 'the report names no new primary' };
  if (!kill) return { failure: 'no primary was killed' };
  if (r.oldPrimary !== kill.node) return { failure: `the report says it replaced ${r.oldPrimary}, the killed primary was ${kill.node}` };
  if (r.newPrimary === kill.node) return { failure: `the report's new primary ${r.newPrimary} is the killed one` };
  return { primary: r.newPrimary, why: `the failover reported ${r.oldPrimary} -> ${r.newPrimary}` };
}

/** A rolling restart may hand the primary over; the end primary is the one it reports. */
export function rolled(_before: Before, report: unknown): { primary: string; why: string } | { failure: string } {
  const r = report as { primary?: string } | undefined;
  return r?.primary ? { primary: r.primary, why: 'the rolling restart reported it as the primary' } : { failure: 'the report names no primary' };
}

/** A backup must leave the primary where it was. */
export function unchanged(before: Before): { primary: string; why: string } | { failure: string } {
  return before.primary ? { primary: before.primary, why: 'a backup does not move the primary' } : { failure: 'no single primary before the run' };
}

/**
 * `rolling-restart --reason` (nothing changed), the same for every engine: the run, and its postconditions —
 * every node's server started exactly once (`starts`: each node's count of server starts, from its log) and
 * the reason in the report's restart token.
 */
export function reasonRoll<L extends AnyLab>(starts: (lab: L) => Record<string, number>): Pick<Scenario<L>, 'start' | 'before' | 'expectPrimary' | 'check'> {
  return {
    async start(lab, i, log) {
      started(await runRollingRestart({ cluster: lab.fleet.cluster, reason: `chaos OS patch ${i}`, address: lab.address, taskQueue: lab.taskQueue, requestedBy: `chaos run ${i}` }, quietIO(log)));
    },
    before: async (lab) => starts(lab),
    expectPrimary: rolled,
    async check(lab, i, before, report) {
      const problems: string[] = [];
      const now = starts(lab);
      for (const n of lab.fleet.nodes) {
        const extra = now[n.id] - (before.extra as Record<string, number>)[n.id];
        if (extra !== 1) problems.push(`${n.id} started ${extra} times (want exactly 1)`);
      }
      const token = (report as { restartToken?: string } | undefined)?.restartToken ?? '';
      if (!token.includes(`(chaos OS patch ${i})`)) problems.push(`the report's restart token is ${JSON.stringify(token)}, without the reason`);
      return problems;
    },
  };
}

/** A sandbox writer (AckLog) seen as a ChaosWriter, with a way to read what a node lacks. */
export function chaosWriter(w: AckLog, missingOn: (node: string) => Promise<string[]>): ChaosWriter {
  const cw: ChaosWriter = {
    get ackedKeys() {
      return w.ackedKeys;
    },
    get ackTimes() {
      return w.ackTimes;
    },
    get ackedBy() {
      return w.ackedBy;
    },
    get ambiguous() {
      return w.ambiguous;
    },
    get errors() {
      return w.errors;
    },
    start() {
      w.start();
      return cw;
    },
    stop: () => w.stop(),
    close: async () => {
      await (w as AckLog & { close?: () => Promise<void> }).close?.();
    },
    now: () => w.now(),
    missingOn,
  };
  return cw;
}

/**
 * The lost writes the report's window does not already hold by its time part: the window is "what the promoted
 * node lacks of the last sight" (the count) plus "whatever the old primary acknowledged after that sight, up to
 * the first probe that found it dead" (unobserved). A write acknowledged after `lastSeenAt` lies in the second
 * part whatever it was; only the ones acknowledged before the sight must fit the count.
 */
export function lostBeforeSight(report: unknown, lost: string[], ackedAt: (key: string) => number | undefined): string[] {
  const seenAt = (report as { dataLossWindow?: { lastSeenAt?: number } } | undefined)?.dataLossWindow?.lastSeenAt;
  if (seenAt === undefined) return lost;
  return lost.filter((k) => (ackedAt(k) ?? -Infinity) <= seenAt);
}
