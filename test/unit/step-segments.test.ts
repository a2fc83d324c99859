import { describe, expect, it } from 'vitest';
import { stepSegments, type TimedEvent } from '../../bench/step-overhead/segments';

/** A run's events with the gaps (ms) before each one. */
function run(spec: [string, number][]): TimedEvent[] {
  let t = 1_000;
  return spec.map(([type, gap]) => ({ type, ms: (t += gap) }));
}

describe('step-overhead segments from history timestamps', () => {
  it('splits each activity step into dispatch, activity, wakeup, workflow-task queue and worker', () => {
    const step = (act: number, queue: number, worker: number): [string, number][] => [
      ['ActivityTaskScheduled', 0.1],
      ['ActivityTaskStarted', 0.2],
      ['ActivityTaskCompleted', act],
      ['WorkflowTaskScheduled', 0],
      ['WorkflowTaskStarted', queue],
      ['WorkflowTaskCompleted', worker],
    ];
    const events = run([
      ['WorkflowExecutionStarted', 0],
      ['WorkflowTaskScheduled', 0],
      ['WorkflowTaskStarted', 5],
      ['WorkflowTaskCompleted', 20],
      ...step(6, 4, 10),
      ...step(8, 2, 30),
      ['WorkflowExecutionCompleted', 0.1],
    ]);
    const s = stepSegments([events]);
    expect(s.steps).toBe(2);
    expect(s.meanMs.activity).toBe(7);
    expect(s.meanMs.wftQueue).toBe(3);
    expect(s.meanMs.wftWorker).toBe(20);
    expect(s.meanMs.dispatch).toBeCloseTo(0.3, 5);
    // The segments add up to the step: from one WorkflowTaskCompleted to the next.
    expect(s.meanMs.step).toBeCloseTo((0.3 + 6 + 4 + 10 + 0.3 + 8 + 2 + 30) / 2, 1);
  });

  it('ignores runs without a complete step (local activities)', () => {
    const events = run([
      ['WorkflowExecutionStarted', 0],
      ['WorkflowTaskScheduled', 0],
      ['WorkflowTaskStarted', 5],
      ['WorkflowTaskCompleted', 20],
      ['MarkerRecorded', 0],
      ['WorkflowExecutionCompleted', 0],
    ]);
    expect(stepSegments([events]).steps).toBe(0);
  });
});
