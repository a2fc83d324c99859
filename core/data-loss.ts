/**
 * The data-loss window of an unplanned failover, said honestly. Pure: positions and times in, a window out.
 *
 * What is known: the position the promoted node had, and the last position the dead primary was SEEN at (by
 * the monitor, refreshed every probe) and when. What the primary had beyond that sight and the promoted node
 * lacks is certainly lost (a lower bound). What it committed after the sight is not known to anyone: the death
 * happened between the last sight and the first probe that found it dead, and commits in that interval that
 * no replica received are lost too. So the window never reads "0 lost": at best "none known lost, plus up to
 * N ms unobserved". That bound holds for a death; a primary cut off by a partition is alive on its side and may
 * acknowledge writes until its guard stops it (Redis min-replicas-to-write, MariaDB semi-sync without fallback)
 * or it is fenced, and the window says so. Without a monitor nothing was seen, and the window is unknown.
 */
import { lagTransactions } from './mysql/decide';

export interface LastSight {
  /** Redis replication offset (bytes) or MariaDB gtid_binlog_pos. */
  position: number | string;
  /** Epoch ms of the probe that saw it. */
  at?: number;
}

export interface LossWindow {
  unit: 'bytes' | 'transactions';
  /** Certainly lost: the primary was seen with them and the promoted node lacks them. Undefined: never seen. */
  knownLost?: number;
  /** Epoch ms of the last sight of the old primary alive. */
  lastSeenAt?: number;
  /** Last sight to the next probe, which no longer found it: its death is in here, and so is the unknown part. */
  unobservedMs?: number;
  /** Last sight to the moment the failover was confirmed (started). */
  seenBeforeConfirmMs?: number;
  /** One line for people: what is known, then what is not. Never "0 lost". */
  summary: string;
}

export interface LossInput {
  lastSight?: LastSight;
  /** Epoch ms of the monitor's first probe round, after the last sight, that did not find the primary alive. */
  deadSince?: number;
  /** Epoch ms at which the failover was confirmed (the failover run's start). */
  confirmedAt: number;
}

function window(unit: LossWindow['unit'], lost: number | undefined, old: string, seenAt: string, promotedAt: string, i: LossInput, unknownWithoutMonitor: string, cutOffUntil: string): LossWindow {
  if (lost === undefined || !i.lastSight) return { unit, summary: `unknown: ${old} was not observed before it died (no monitor); ${unknownWithoutMonitor}` };
  const at = i.lastSight.at;
  const unobservedMs = at !== undefined && i.deadSince !== undefined ? Math.max(0, i.deadSince - at) : undefined;
  const seenBeforeConfirmMs = at !== undefined ? Math.max(0, i.confirmedAt - at) : undefined;
  const when =
    unobservedMs !== undefined ? `${unobservedMs} ms before the first probe that did not find it` : seenBeforeConfirmMs !== undefined ? `${seenBeforeConfirmMs} ms before the failover was confirmed` : 'at an unrecorded time';
  const known = lost > 0 ? `at least ${lost} ${unit} lost: ${old} was seen at ${seenAt} (${when}), the promoted node had ${promotedAt}` : `no loss known: the promoted node had ${promotedAt}, everything ${old} was seen with (${seenAt}, ${when})`;
  const gap = unobservedMs ?? seenBeforeConfirmMs;
  // The gap bounds a death; a primary cut off by a partition is not dead and may go on acknowledging its side's writes.
  const unknown = `NOT known: whatever ${old} committed after that sight${gap !== undefined ? ` (up to ${gap} ms of writes)` : ''} that no replica received; if ${old} was cut off (a partition) rather than dead, also what it acknowledged until ${cutOffUntil}`;
  return { unit, knownLost: lost, lastSeenAt: at, unobservedMs, seenBeforeConfirmMs, summary: `${known}; ${unknown}` };
}

/** Redis/Valkey: replication bytes. */
export function redisLossWindow(oldPrimary: string, promotedOffset: number, i: LossInput): LossWindow {
  const last = i.lastSight === undefined ? undefined : Number(i.lastSight.position);
  return window('bytes', last === undefined ? undefined : Math.max(0, last - promotedOffset), oldPrimary, `offset ${last}`, `offset ${promotedOffset}`, i, 'min-replicas-to-write bounds it', 'min-replicas-to-write stopped it (about min-replicas-max-lag + 1 s after its replicas lost it) or, without that guard, until it was fenced');
}

/** MariaDB: GTID transactions (per domain, what the sight has beyond the promoted position). */
export function mysqlLossWindow(oldPrimary: string, promotedGtid: string, i: LossInput): LossWindow {
  const last = i.lastSight === undefined ? undefined : String(i.lastSight.position);
  return window('transactions', last === undefined ? undefined : lagTransactions(promotedGtid, last), oldPrimary, last || 'empty', promotedGtid || 'empty', i, 'semi-synchronous replication bounds it', 'it was fenced, unless semi-synchronous replication without fallback (rpl_semi_sync_master_timeout longer than the partition) kept it from acknowledging what its replicas lacked');
}

/** The window's fields a failover report carries beside its engine's own (bytes / transactions). */
export type LossReportFields = Omit<LossWindow, 'knownLost' | 'unit'>;
export const lossReportFields = (w: LossWindow): LossReportFields => ({ lastSeenAt: w.lastSeenAt, unobservedMs: w.unobservedMs, seenBeforeConfirmMs: w.seenBeforeConfirmMs, summary: w.summary });
