/** Sentinel timing during a handover: what a restore sets back (core/redis/sentinel-timing.ts). */
import { describe, expect, it } from 'vitest';
import { DEFAULT_INFO_PERIOD_MS, FAILOVER_INFO_PERIOD_MS, FAILOVER_LEAD_MS, HANDOVER_INFO_PERIOD_MS, infoPeriodsToRestore } from '../../core/redis/sentinel-timing';

describe('infoPeriodsToRestore', () => {
  it('sets back the value each Sentinel had, and the default where it already had the handover period', () => {
    expect(infoPeriodsToRestore({ a: 10_000, b: 5000, c: HANDOVER_INFO_PERIOD_MS })).toEqual({ a: 10_000, b: 5000, c: DEFAULT_INFO_PERIOD_MS });
  });
  it('leaves out Sentinels that were not read (did not answer)', () => {
    expect(infoPeriodsToRestore({})).toEqual({});
  });
  it('keeps the handover period above the age at which the failover is asked for', () => {
    // The candidate's INFO age must pass 1000 - lead every period, so the period must exceed it.
    expect(HANDOVER_INFO_PERIOD_MS).toBeGreaterThan(FAILOVER_INFO_PERIOD_MS - FAILOVER_LEAD_MS);
  });
});
