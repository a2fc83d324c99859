/**
 * handover history [--cluster NAME] [--limit N] [--json]
 * Past (and running) runbook runs from Temporal visibility, newest first: workflow ID, runbook, cluster,
 * status, start and close time, the last phase the run reached (HandoverPhase search attribute: "done",
 * "undone", "planned", or the step it stopped in) and the run's static summary.
 */
import { z } from 'zod';
import { SA_CLUSTER, SA_PHASE, SA_RUNBOOK } from '../../core/ids';
import { CliError, CommonOptions, EXIT, connect, sayFailure, type IO } from '../common';

export const HistoryOptions = CommonOptions.extend({
  cluster: z.string().min(1).optional(),
  limit: z.coerce.number().int().positive().max(1000).default(20),
});
export type HistoryOptions = z.input<typeof HistoryOptions>;

export interface HistoryEntry {
  workflowId: string;
  runId: string;
  workflowType: string;
  runbook?: string;
  cluster?: string;
  status: string;
  phase?: string;
  startTime: string;
  closeTime?: string;
  durationMs?: number;
  summary?: string;
  /** This CLI cannot decode the run's payloads (another codec key, or none): its summary says so. */
  undecodable?: boolean;
  /** A child run (the switchover inside a rolling restart): its parent's workflow ID. */
  parent?: string;
}

/** The visibility query: every run that carries a HandoverCluster (optionally one cluster's). */
export function historyQuery(cluster?: string): string {
  return cluster ? `HandoverCluster = "${cluster.replace(/"/g, '')}"` : 'HandoverCluster IS NOT NULL';
}

export function formatHistory(entries: HistoryEntry[]): string {
  if (!entries.length) return 'no runs found';
  const rows = entries.map((e) => [
    e.startTime.replace(/\.\d+Z$/, 'Z'),
    e.status,
    e.runbook ?? e.workflowType,
    e.cluster ?? '',
    e.phase ?? '',
    e.durationMs === undefined ? '' : `${(e.durationMs / 1000).toFixed(1)} s`,
    e.workflowId,
    e.summary ?? '',
  ]);
  const head = ['STARTED', 'STATUS', 'RUNBOOK', 'CLUSTER', 'PHASE', 'TOOK', 'WORKFLOW ID', 'SUMMARY'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  return [head, ...rows].map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ').trimEnd()).join('\n');
}

export async function runHistory(raw: HistoryOptions, io: IO): Promise<{ exitCode: number; entries?: HistoryEntry[] }> {
  const o = HistoryOptions.parse(raw);
  try {
    const { client, close } = await connect(o);
    try {
      const entries: HistoryEntry[] = [];
      for await (const w of client.workflow.list({ query: historyQuery(o.cluster), pageSize: Math.min(o.limit, 100) })) {
        const closeTime = w.closeTime?.toISOString();
        // The static summary is not in list results: one describe per row (--limit bounds them).
        let undecodable: string | undefined;
        const summary = await client.workflow
          .getHandle(w.workflowId, w.runId)
          .describe()
          .then((d) => d.staticSummary())
          .catch((e: Error) => {
            // A run written under a codec key this CLI does not hold (or encrypted while this CLI has no key).
            if (/encrypted with key|binary\/encrypted|Unknown encoding/i.test(e.message)) undecodable = e.message.replace(/^.*?(payload encrypted with key)/, '$1');
            return undefined;
          });
        entries.push({
          workflowId: w.workflowId,
          runId: w.runId,
          workflowType: w.type,
          runbook: w.typedSearchAttributes.get(SA_RUNBOOK),
          cluster: w.typedSearchAttributes.get(SA_CLUSTER),
          status: w.status.name,
          phase: w.typedSearchAttributes.get(SA_PHASE),
          startTime: w.startTime.toISOString(),
          closeTime,
          durationMs: w.closeTime ? w.closeTime.getTime() - w.startTime.getTime() : undefined,
          summary: undecodable ? `(cannot decode: ${undecodable})` : summary,
          ...(undecodable ? { undecodable: true } : {}),
          parent: w.parentExecution?.workflowId ?? undefined,
        });
        if (entries.length >= o.limit) break;
      }
      io.out(o.json ? JSON.stringify({ runs: entries }) : formatHistory(entries));
      return { exitCode: EXIT.ok, entries };
    } finally {
      await close();
    }
  } catch (e) {
    if (!(e instanceof CliError)) throw e;
    sayFailure(o, io, e);
    return { exitCode: e.exitCode };
  }
}
