/**
 * The one strict checker of a chaos point. A point is completed only when every condition below holds; each
 * one that does not is named in `failures` (and fails the point, the chaos command's exit code and the
 * integration tests, which assert `failures` is empty):
 *
 *  - the worker died at its failpoint, and the run then ended as expected (it completed);
 *  - the settle step (e.g. restart and fence a killed primary) found nothing wrong; a returned old primary
 *    left out as flagged only for GTIDs the primary really lacks, and holding every lost acknowledged commit;
 *  - exactly one writable node at the end, and it is the expected one (the postcondition: the primary the run
 *    reported and, for a switchover or failover, not the one before);
 *  - every other node up, following that primary with its link up, and converged on it;
 *  - the writer acknowledged at least `minAcked` writes (a loss assertion over nothing proves nothing), and
 *    (it refuses to write when two nodes claim the primary role; such refusals are counted, not failures);
 *  - every acknowledged write present on every node; for a failover, writes the killed primary acknowledged
 *    may be missing, but only within the data-loss window the run reported, and only those;
 *  - no split-brain sample (two writable nodes in one sample), over a sampler that actually sampled, without stalls;
 *  - the scenario's own postconditions (every node on the new setting, one new good backup, Sentinel agrees).
 */
import type { ChaosSummary, GroupEvidence, PointEvidence, RunEvidence } from './types';

/** The fewest split-brain samples a point must have taken for "no split seen" to mean anything. */
export const MIN_SAMPLES = 20;
/** The longest a sampler may go between two samples: a split shorter than a stall would go unseen. */
export const MAX_SAMPLE_GAP_MS = 2000;

/**
 * Why a point's lost acknowledged writes are not bounded, or undefined when they are (or none was lost): without a
 * completed run there is no report to bound them; a scenario without a bound allows none; else the scenario's
 * bound decides (undefined: the loss lies inside the window the run reported).
 */
export function unboundedLoss(lost: number, runOk: boolean, bound: (() => string | undefined) | undefined): string | undefined {
  if (lost === 0) return undefined;
  if (!runOk) return 'no report to bound the loss';
  return bound ? bound() : 'the scenario has no loss bound';
}

/** The whole point over a fleet judged as one group: its run, then its nodes. */
export function checkPoint(e: PointEvidence): string[] {
  return [...checkRun(e), ...checkGroup(e)];
}

/** What belongs to the run, once per point: the kill, the run's ending, the settle step, the count of acknowledged writes, the scenario's postconditions. */
export function checkRun(e: RunEvidence): string[] {
  const f: string[] = [];
  if (!e.killed) f.push(`worker not killed at ${e.point}: ${e.killNote ?? 'unknown'}`);
  if (!e.run.ok) f.push(`run did not complete: ${e.run.error}`);
  for (const s of e.settle) f.push(`settle: ${s}`);
  const w = e.writes;
  if (w.acked < w.minAcked) f.push(`writer acknowledged ${w.acked} writes, fewer than ${w.minAcked}: no loss can be asserted`);
  for (const p of e.postconditions) f.push(`postcondition: ${p}`);
  return f;
}

/** What belongs to one group of nodes (every node, or one shard): its end state, expected primary, convergence, acknowledged writes and split-brain samples. */
export function checkGroup(e: GroupEvidence): string[] {
  const f: string[] = [];
  if (e.flagged) {
    // Left out of replication on purpose: only right when what it holds and the primary lacks is real (a commit
    // the killed primary wrote to its binlog but never shipped is errant whether or not its client saw the OK),
    // and, when acknowledged commits were lost, when it holds every one of them.
    if (e.flagged.errantGtids.length === 0) f.push(`settle: ${e.flagged.node} flagged without an errant GTID`);
    if (e.flagged.notErrant.length) f.push(`settle: ${e.flagged.node} flagged for ${e.flagged.notErrant.join(',')}, which the primary holds: not errant`);
    if (e.flagged.lostMissingOnIt) f.push(`settle: ${e.flagged.node} flagged, but lacks ${e.flagged.lostMissingOnIt} of the lost commits: they are not its errant transactions`);
  }

  const writable = Object.entries(e.end).filter(([, n]) => n.writable).map(([id]) => id);
  const primary = writable.length === 1 ? writable[0] : undefined;
  if (writable.length !== 1) f.push(`end state: ${writable.length} writable nodes (${writable.join(', ') || 'none'}), want exactly 1`);
  if ('failure' in e.expected) f.push(`postcondition: ${e.expected.failure}`);
  else if (primary && primary !== e.expected.primary) f.push(`postcondition: ${primary} is the primary, expected ${e.expected.primary} (${e.expected.why})`);
  if (primary) {
    for (const [id, n] of Object.entries(e.end)) {
      if (id === primary) continue;
      if (id === e.flagged?.node) {
        if (!n.up) f.push(`end state: flagged ${id} does not answer`);
        continue;
      }
      if (!n.up) f.push(`end state: ${id} does not answer`);
      else if (n.follows !== primary || !n.linkUp) f.push(`end state: ${id} not following ${primary} with its link up (${n.detail})`);
    }
    if (e.notConverged) f.push(`not converged on ${primary}: ${e.notConverged}`);
  }

  if (e.loss) {
    const l = e.loss;
    if (l.ackedByKilledBeforeKill === 0) f.push(`the killed primary ${l.killed} acknowledged no write before the kill: loss not measured`);
    else if (l.lastAckBeforeKillMs === undefined || l.lastAckBeforeKillMs > 1000)
      f.push(`the writer was not writing when ${l.killed} was killed (last acknowledgement ${l.lastAckBeforeKillMs ?? '?'} ms before): loss not measured under load`);
    if (l.lostElsewhere) f.push(`${l.lostElsewhere} lost write(s) were not acknowledged by ${l.killed} before the kill`);
    if (l.unbounded) f.push(`data-loss window: ${l.unbounded}`);
  } else if (e.writes.lostOnPrimary) f.push(`${e.writes.lostOnPrimary} acknowledged write(s) missing on the primary`);
  for (const [id, n] of Object.entries(e.writes.behindPrimary)) if (n && id !== e.flagged?.node) f.push(`${id} lacks ${n} acknowledged write(s) the primary has`);

  const s = e.samples;
  if (s.samples < MIN_SAMPLES) f.push(`split-brain sampler took only ${s.samples} samples (want ≥ ${MIN_SAMPLES})`);
  if (s.maxGapMs > MAX_SAMPLE_GAP_MS) f.push(`split-brain sampler stalled ${s.maxGapMs} ms between two samples (want ≤ ${MAX_SAMPLE_GAP_MS})`);
  if (s.split) f.push(`split brain: ${s.split} of ${s.samples} samples saw two writable nodes (${s.splitExamples.join('; ')})`);
  return f;
}

/** Every failure of every point of a summary, prefixed by its point (empty when all completed); for the tests. */
export function summaryFailures(s: ChaosSummary): string[] {
  const f = s.points.flatMap((p) => p.failures.map((x) => `${s.runbook} ${p.point}: ${x}`));
  for (const p of s.points) if (!p.completed && p.failures.length === 0) f.push(`${s.runbook} ${p.point}: not completed, no failure named`);
  return f;
}
