/**
 * The replay check (test/unit/replay.test.ts): every committed history replays against the current workflow
 * code, and the commands the code issues while it replays are the history's, input for input.
 *
 * Two checks per history:
 *  1. the SDK's determinism check (Worker.runReplayHistories): command kinds, activity types, timers, markers;
 *  2. ours: the workflow interceptor module test/replay/commands-interceptor.ts, bundled beside the workflows
 *     (and the production interceptor module workflows/metrics.ts), reports every scheduled activity, started
 *     child workflow and continue-as-new with its type and input through a sink that runs during replay; that
 *     sequence must equal, in order, the history's ActivityTaskScheduled (type, input),
 *     StartChildWorkflowExecutionInitiated (type, workflow ID, input) and WorkflowExecutionContinuedAsNew
 *     (type, input) events. This catches what (1) does not: two activities of one type whose inputs were
 *     swapped or changed (repoint n3 before n2, a different node, a changed option).
 *
 * Inputs are compared as JSON with sorted keys (the history's payloads decoded by the default payload converter;
 * the replay's arguments serialised by JSON.stringify, as that converter does).
 */
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import type { temporal } from '@temporalio/proto';
import { Worker, bundleWorkflowCode, type InjectedSinks } from '@temporalio/worker';
import path from 'node:path';
import { WORKFLOWS_PATH, WORKFLOW_INTERCEPTOR_MODULES } from '../../worker/worker';
import type { RecordedCommand, ReplayCommandSinks } from './commands-interceptor';

type History = temporal.api.history.v1.IHistory;

export interface CommandMismatch {
  /** Index in the sequence of compared commands. */
  index: number;
  /** What the history holds there (undefined: the replay issued more commands than the history has). */
  history?: string;
  /** What the replay issued there (undefined: the history has more commands than the replay issued). */
  replay?: string;
}

export interface ReplayCheckResult {
  workflowId: string;
  /** The SDK's non-determinism or replay error. */
  error?: unknown;
  /** The first command that differs, if any (past the tolerated ones). */
  mismatch?: CommandMismatch;
  /** Differences accepted because KNOWN_UNPATCHED_INPUT_CHANGES lists them. */
  tolerated: CommandMismatch[];
  /** How many commands (activities, children, continue-as-new) were compared. */
  compared: number;
  /** The commands the history holds, in order. */
  history: RecordedCommand[];
}

const INTERCEPTOR = path.join(__dirname, `commands-interceptor${path.extname(__filename)}`);

let bundle: Promise<{ code: string }> | undefined;
/** The workflows with the production interceptor module and the recorder, bundled once per process. */
function replayBundle(): Promise<{ code: string }> {
  bundle ??= bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, workflowInterceptorModules: [...WORKFLOW_INTERCEPTOR_MODULES, INTERCEPTOR], logger: undefined });
  return bundle;
}

/** Sorted-key JSON, undefined as null: two inputs are the same command input when these strings are equal. */
export function canonical(v: unknown): string {
  const norm = (x: unknown): unknown => {
    if (x === undefined || x === null) return null;
    if (Array.isArray(x)) return x.map(norm);
    if (typeof x === 'object') {
      const o = x as Record<string, unknown>;
      return Object.fromEntries(
        Object.keys(o)
          .filter((k) => o[k] !== undefined)
          .sort()
          .map((k) => [k, norm(o[k])]),
      );
    }
    return x;
  };
  return JSON.stringify(norm(v));
}

const decode = (payloads: Payload[] | null | undefined): unknown[] => (payloads ?? []).map((p) => defaultPayloadConverter.fromPayload(p));

/** The commands a history holds, in order: scheduled activities, initiated child workflows, continue-as-new. */
export function historyCommands(history: History): RecordedCommand[] {
  const out: RecordedCommand[] = [];
  for (const e of history.events ?? []) {
    const a = e.activityTaskScheduledEventAttributes;
    if (a) out.push({ kind: 'activity', type: a.activityType?.name ?? '', input: canonical(decode(a.input?.payloads as Payload[])) });
    const c = e.startChildWorkflowExecutionInitiatedEventAttributes;
    if (c) out.push({ kind: 'child', type: c.workflowType?.name ?? '', input: canonical(decode(c.input?.payloads as Payload[])), workflowId: c.workflowId ?? undefined });
    const n = e.workflowExecutionContinuedAsNewEventAttributes;
    if (n) out.push({ kind: 'continueAsNew', type: n.workflowType?.name ?? '', input: canonical(decode(n.input?.payloads as Payload[])) });
  }
  return out;
}

const show = (c: RecordedCommand) => `${c.kind} ${c.type}${c.workflowId ? ` (${c.workflowId})` : ''} ${c.input}`;

/**
 * The first difference between what the history holds and what the replay issued, past the differences
 * `tolerate` accepts (each one returned in `tolerated`).
 */
export function compareCommands(
  history: RecordedCommand[],
  replay: RecordedCommand[],
  tolerate: (m: CommandMismatch) => boolean = () => false,
): { mismatch?: CommandMismatch; tolerated: CommandMismatch[] } {
  const tolerated: CommandMismatch[] = [];
  for (let i = 0; i < Math.max(history.length, replay.length); i++) {
    const h = history[i] ? show(history[i]) : undefined;
    const r = replay[i] ? show({ ...replay[i], input: canonical(JSON.parse(replay[i].input)) }) : undefined;
    if (h === r) continue;
    const m = { index: i, history: h, replay: r };
    if (!tolerate(m)) return { mismatch: m, tolerated };
    tolerated.push(m);
  }
  return { tolerated };
}

/** The workflow ID the run had (its started event names it); the replay runs under it, as the code may read it. */
function recordedWorkflowId(history: History, fallback: string): string {
  return history.events?.[0]?.workflowExecutionStartedEventAttributes?.workflowId || fallback;
}

/**
 * Replay each history and compare its commands with what the code issues. `workflowId` names the history in the
 * results (a file name); each one replays under the workflow ID it was recorded with (workflow code may use it:
 * the scheduled backup passes it to its child, the monitor to its failover), in as many batches as needed for the
 * IDs in one batch to be unique.
 */
export async function replayAndCompare(histories: { workflowId: string; history: History }[]): Promise<ReplayCheckResult[]> {
  const batches: { name: string; id: string; history: History }[][] = [];
  for (const h of histories) {
    const id = recordedWorkflowId(h.history, h.workflowId);
    const batch = batches.find((b) => !b.some((x) => x.id === id));
    if (batch) batch.push({ name: h.workflowId, id, history: h.history });
    else batches.push([{ name: h.workflowId, id, history: h.history }]);
  }
  const workflowBundle = await replayBundle();
  const results: ReplayCheckResult[] = [];
  for (const batch of batches) {
    const issued = new Map<string, RecordedCommand[]>();
    const sinks: InjectedSinks<ReplayCommandSinks> = {
      replayCommands: {
        record: {
          fn: (info, c) => {
            const list = issued.get(info.workflowId) ?? [];
            list.push(c);
            issued.set(info.workflowId, list);
          },
          callDuringReplay: true,
        },
      },
    };
    const replayed = Worker.runReplayHistories({ workflowBundle, sinks, replayName: 'handover-replay-check' }, batch.map((b) => ({ workflowId: b.id, history: b.history })));
    for await (const r of replayed) {
      const h = batch.find((x) => x.id === r.workflowId)!;
      const fromHistory = historyCommands(h.history);
      const fromReplay = issued.get(r.workflowId) ?? [];
      const cmp = r.error ? { tolerated: [] } : compareCommands(fromHistory, fromReplay, (m) => knownChange(h.name, m));
      results.push({ workflowId: h.name, error: r.error, ...cmp, compared: fromHistory.length, history: fromHistory });
    }
  }
  return results;
}

/**
 * Inputs that changed without a patch after a history was recorded, each allowed exactly and only where it
 * is seen. An entry names the history, the activity and the fields the current code adds; the difference must
 * be exactly those fields (anything else, in that command or any other, still fails), and an entry that no
 * longer matches a difference fails the replay test, so the list cannot outlive its reason.
 *
 * - ensureMysqlPrimary gained `fencedPrimary` (f706205, the server-side fence bound: the promotion cancels the
 *   bound's event on the fenced old primary first). The two MariaDB switchover histories below were recorded
 *   before it. A run in flight across that deploy keeps its recorded input (no `fencedPrimary`: nothing is
 *   cancelled) and its fence, taken by the old code, has no event to cancel. Histories of the current code:
 *   switchover-mysql-undone, switchover-mysql-child-of-roll.
 */
export const KNOWN_UNPATCHED_INPUT_CHANGES: { history: string; activity: string; addedFields: string[] }[] = [
  { history: 'switchover-mysql-completed.json', activity: 'ensureMysqlPrimary', addedFields: ['fencedPrimary'] },
  { history: 'switchover-mysql-crashed-resumed.json', activity: 'ensureMysqlPrimary', addedFields: ['fencedPrimary'] },
];

/** Whether one differing command of a history is exactly a known, listed input change. */
export function knownChange(historyName: string, m: CommandMismatch): boolean {
  const k = KNOWN_UNPATCHED_INPUT_CHANGES.find((x) => x.history === historyName);
  if (!m.history || !m.replay || !k) return false;
  const parse = (s: string) => /^activity (\S+) (.*)$/.exec(s);
  const [h, p] = [parse(m.history), parse(m.replay)];
  if (!h || !p || h[1] !== k.activity || p[1] !== k.activity) return false;
  const replayArgs = JSON.parse(p[2]) as Record<string, unknown>[];
  const stripped = replayArgs.map((a) => Object.fromEntries(Object.entries(a).filter(([key]) => !k.addedFields.includes(key))));
  return canonical(stripped) === h[2] && k.addedFields.every((f) => f in replayArgs[0]);
}
