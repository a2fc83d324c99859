/**
 * What every engine's monitor shares (workflows/<engine>/monitor.ts): the state it carries across
 * continue-as-new, the `status` query and the `acknowledge` signal, so `handover monitor` works for any engine.
 */
import { defineQuery, defineSignal } from '@temporalio/workflow';

/** One failover the monitor ran. Loss fields are certainly lost (a lower bound); unobservedMs how long before the death nothing was seen; loss both in words. */
export interface MonitorFailover {
  at: number;
  from: string;
  to: string;
  detectMs: number;
  /** Redis: bytes the old primary was seen with beyond the promoted offset. */
  lostBytes?: number;
  /** MySQL/MariaDB: transactions the old primary was seen with that the promoted node lacks. */
  lostTransactions?: number;
  unobservedMs?: number;
  loss?: string;
  /** MySQL/MariaDB: the promoted node's position at promotion (a returning node's errant GTIDs are measured from it). */
  promotedGtid?: string;
  fenced?: string;
}

export interface MonitorState {
  cluster: string;
  /** The primary as last seen alive, with its offset (Redis) or gtid_binlog_pos (MySQL) and when it was seen, epoch ms. */
  lastKnown?: { primary: string; offset: number; gtid?: string; seenAt?: number };
  lastFailoverAtMs?: number;
  acknowledged?: boolean;
  failovers: MonitorFailover[];
  blocked?: string;
  /** MySQL/MariaDB: nodes left read-only and not rejoined because of errant GTIDs: node -> the GTIDs. */
  flagged?: Record<string, string[]>;
  roundsPerRun?: number;
}

export interface MonitorStatus extends MonitorState {
  rounds: number;
  lastVerdict?: string;
  fenced: string[];
  /** Why the monitor cannot confirm a death of its primary now (no primary known, ambiguous fleet): shown as a `!` line. */
  blind?: string;
  /** The last time the primary was taken from the fleet instead of memory, and why. */
  adopted?: string;
  /** Nodes whose own configuration lets them take writes when they restart (core/restart-risk.ts), as `!`/`?` lines. */
  restartRisks?: string[];
  flagged: Record<string, string[]>;
}

export const monitorStatusQuery = defineQuery<MonitorStatus>('status');
/** Clear the anti-flapping block: the next confirmed death fails over again. */
export const acknowledgeSignal = defineSignal('acknowledge');
