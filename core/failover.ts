/**
 * What every engine's unplanned failover shares. Pure.
 *  - A round's verdict on the primary (each engine's DeadMaster rule returns one), and confirmation: dead only
 *    after N consecutive dead rounds, so one lost probe is not a dead primary.
 *  - Anti-flapping: a second automatic failover within the block period is refused until acknowledged.
 */

export type Verdict = { dead: true; primary: string; reason: string } | { dead: false; reason: string };

/** Dead after `need` consecutive dead rounds (the rounds are oldest first). */
export function confirmedDead(rounds: Verdict[], need: number): boolean {
  if (rounds.length < need) return false;
  return rounds.slice(-need).every((r) => r.dead);
}

/** Why an automatic failover now would be flapping, or undefined. */
export function whyBlocked(lastFailoverAtMs: number | undefined, nowMs: number, blockPeriodMs: number, acknowledged: boolean): string | undefined {
  if (lastFailoverAtMs === undefined || acknowledged) return undefined;
  const since = nowMs - lastFailoverAtMs;
  return since < blockPeriodMs ? `anti-flapping: the last failover was ${Math.round(since / 1000)} s ago (block period ${Math.round(blockPeriodMs / 1000)} s); acknowledge it or use --force` : undefined;
}
