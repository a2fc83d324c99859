/**
 * Where a workflow step's time goes, read from the run's history: each event's timestamp is set by the server
 * when it records the event, so the gaps between the events of one step split the step into segments.
 * A step (regular activity) is: WorkflowTaskCompleted (the command scheduling the activity) → ActivityTaskStarted
 * → ActivityTaskCompleted → WorkflowTaskScheduled → WorkflowTaskStarted → WorkflowTaskCompleted (the next command).
 */
import { temporal } from '@temporalio/proto';

export interface StepSegments {
  /** Steps measured (every activity of the run with a complete step around it). */
  steps: number;
  /** Mean ms per step of each segment (the means add up to the mean step) and their sum. */
  meanMs: Record<SegmentName, number> & { step: number };
  /** Median ms of each segment. */
  p50Ms: Record<SegmentName, number>;
}

export const SEGMENTS = {
  /** WorkflowTaskCompleted → ActivityTaskStarted: the activity task handed to a worker (eagerly, or through matching). */
  dispatch: ['WorkflowTaskCompleted', 'ActivityTaskStarted'],
  /** ActivityTaskStarted → ActivityTaskCompleted: the activity runs on the worker and its result reaches the server. */
  activity: ['ActivityTaskStarted', 'ActivityTaskCompleted'],
  /** ActivityTaskCompleted → WorkflowTaskScheduled: the server schedules the next workflow task. */
  wakeup: ['ActivityTaskCompleted', 'WorkflowTaskScheduled'],
  /** WorkflowTaskScheduled → WorkflowTaskStarted: matching hands the workflow task to the worker's (sticky) poll. */
  wftQueue: ['WorkflowTaskScheduled', 'WorkflowTaskStarted'],
  /** WorkflowTaskStarted → WorkflowTaskCompleted: the poll answer reaches the worker, the workflow runs its activation, the completion reaches the server. */
  wftWorker: ['WorkflowTaskStarted', 'WorkflowTaskCompleted'],
} as const;
export type SegmentName = keyof typeof SEGMENTS;

const ms = (t: { seconds?: unknown; nanos?: number | null } | null | undefined) => Number(t?.seconds ?? 0) * 1000 + (t?.nanos ?? 0) / 1e6;
const typeName = (t: temporal.api.enums.v1.EventType | null | undefined) =>
  (temporal.api.enums.v1.EventType[t ?? 0] ?? '')
    .replace(/^EVENT_TYPE_/, '')
    .toLowerCase()
    .replace(/(^|_)([a-z])/g, (_m, _u, c: string) => c.toUpperCase());

export interface TimedEvent {
  type: string;
  ms: number;
}

export function timedEvents(history: temporal.api.history.v1.IHistory): TimedEvent[] {
  return (history.events ?? []).map((e) => ({ type: typeName(e.eventType), ms: ms(e.eventTime) }));
}

const round1 = (x: number) => Math.round(x * 10) / 10;
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? round1(s[Math.floor((s.length - 1) / 2)]) : NaN;
}

/** The segments of every step of one run (or several runs' events lists), as means and medians. */
export function stepSegments(runs: TimedEvent[][]): StepSegments {
  const names = Object.keys(SEGMENTS) as SegmentName[];
  const per: Record<SegmentName, number[]> = Object.fromEntries(names.map((n) => [n, []])) as never;
  let steps = 0;
  const chain = ['WorkflowTaskCompleted', 'ActivityTaskScheduled', 'ActivityTaskStarted', 'ActivityTaskCompleted', 'WorkflowTaskScheduled', 'WorkflowTaskStarted', 'WorkflowTaskCompleted'];
  for (const events of runs) {
    for (let i = 0; i + chain.length <= events.length; i++) {
      if (!chain.every((t, k) => events[i + k].type === t)) continue;
      // The first WorkflowTaskCompleted opens the step, the last one closes it.
      const at = (t: string, end: boolean) => events[i + (end ? chain.lastIndexOf(t) : chain.indexOf(t))].ms;
      for (const n of names) per[n].push(at(SEGMENTS[n][1], true) - at(SEGMENTS[n][0], false));
      steps++;
    }
  }
  const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
  const meanMs = Object.fromEntries(names.map((n) => [n, round1(mean(per[n]))])) as StepSegments['meanMs'];
  meanMs.step = round1(names.reduce((a, n) => a + mean(per[n]), 0));
  return { steps, meanMs, p50Ms: Object.fromEntries(names.map((n) => [n, median(per[n])])) as StepSegments['p50Ms'] };
}
