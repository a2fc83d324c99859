/**
 * Sentinel timing during a handover (pure constants, shared by the workflow and the activities).
 *
 * `SENTINEL DEBUG info-period` while a handover runs: Sentinel re-reads every node's INFO (replica-priority,
 * offsets, links) this often instead of every 10 s, so a pin is seen within about a second. Kept above
 * 1000 - FAILOVER_LEAD_MS so that the candidate's INFO age passes, every period, through the moment at which
 * the handover asks for SENTINEL FAILOVER (activities/redis/sentinel.ts, alignWithSentinelInfo).
 */
export const HANDOVER_INFO_PERIOD_MS = 800;
/** Redis' default `info-period` (SENTINEL_INFO_PERIOD): what a restore sets when the value before is not known. */
export const DEFAULT_INFO_PERIOD_MS = 10_000;
/** Sentinel's INFO period for the replicas of a master it is failing over (hard-coded in sentinel.c, Redis 2.8 to 8). */
export const FAILOVER_INFO_PERIOD_MS = 1000;
/**
 * From SENTINEL FAILOVER to its SLAVEOF NO ONE: three timer ticks (WAIT_START -> SELECT_SLAVE ->
 * SEND_SLAVEOF_NOONE), each 1/hz with hz drawn from 10..19, so at most about 300 ms; plus a margin.
 */
export const FAILOVER_LEAD_MS = 330;

/**
 * What a restore sets on each Sentinel: the period it had before the handover lowered it; Redis' default for one
 * that already had the handover's period (lowered by an earlier attempt that did not get to restore it).
 */
export function infoPeriodsToRestore(before: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(before).map(([id, v]) => [id, v === HANDOVER_INFO_PERIOD_MS ? DEFAULT_INFO_PERIOD_MS : v]));
}
