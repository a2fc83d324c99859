/**
 * The chaos harness, engine-neutral. One point: start from a converged fleet, arm the real worker process
 * (worker/main.ts) with HANDOVER_FAILPOINT so it SIGKILLs itself exactly there, start the writer and the
 * split-brain sampler, start the run, wait for the kill, start a fresh worker, wait for the run, settle (with
 * the writer and the sampler still running), then read the end state and hand everything to the checker.
 */
import { WorkflowFailedError } from '@temporalio/client';
import path from 'node:path';
import { operationWorkflowId } from '../../core/ids';
import { sleep } from '../../sandbox/ports';
import { spawnWorker } from '../lab';
import { checkGroup, checkPoint, checkRun, unboundedLoss } from './checker';
import { SplitBrainSampler } from './sampler';
import type { AnyLab, Before, ChaosSummary, EndNode, KillMark, PointEvidence, PointResult, Scenario, SettleResult, ShardProbe } from './types';

/** A timer that does not keep the process alive once everything else is done (the chaos run exits at once). */
const unrefSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

const errorText = (e: unknown) => (e instanceof WorkflowFailedError ? `workflow failed: ${(e.cause as Error)?.message ?? e.message}` : (e as Error).message);

/**
 * One kill point. With `workers: 2`, two workers run armed with the same failpoint and a once-token: the
 * first to reach it dies, and the other must take the run over without any restart.
 */
/** When the writer had each key acknowledged, as epoch ms (its clock is performance.now(), this process's). */
const ackedAtEpochMs = (writer: { ackedKeys: string[]; ackTimes: number[] }) => {
  const index = new Map(writer.ackedKeys.map((k, j) => [k, j]));
  return (key: string) => {
    const j = index.get(key);
    return j === undefined ? undefined : performance.timeOrigin + writer.ackTimes[j];
  };
};

export async function runChaosPoint<L extends AnyLab>(lab: L, scenario: Scenario<L>, point: string, i: number, log: (m: string) => void, workers = 1): Promise<PointResult> {
  const t0 = Date.now();
  const probe = scenario.probe(lab);
  const cluster = lab.fleet.cluster;
  const resetProblems = await probe.reset();
  // A sharded engine is judged shard by shard; any other fleet is one group of every node.
  const shards = probe.shards ? await probe.shards().catch((e: Error) => (resetProblems.push(`shards: ${e.message}`), [] as ShardProbe[])) : undefined;
  const groups: ShardProbe[] = shards ?? [
    { name: '', nodes: probe.nodes, views: () => probe.views(), closeViews: () => probe.closeViews(), endState: () => probe.endState(), converge: (p, t, x) => probe.converge(p, t, x) },
  ];
  const writableOf = (end: Record<string, EndNode>) => Object.entries(end).filter(([, n]) => n.writable).map(([id]) => id);
  const startWritable = writableOf(await probe.endState());
  const primaries: Record<string, string> = {};
  for (const g of shards ?? []) {
    const w = writableOf(await g.endState());
    if (w.length === 1) primaries[g.name] = w[0];
    else resetProblems.push(`shard ${g.name}: ${w.length} writable nodes before the run`);
  }
  const before: Before = { primary: !shards && startWritable.length === 1 ? startWritable[0] : undefined, ...(shards ? { primaries } : {}), extra: await scenario.before?.(lab) };

  const token = workers > 1 ? path.join(lab.fleet.baseDir, `failpoint-${i}-${Date.now()}`) : undefined;
  const armed = Array.from({ length: workers }, () => spawnWorker(lab, point, log, token));
  const writer = probe.writer(`c${i}x${Date.now().toString(36)}`).start();
  const samplers = groups.map((g) => new SplitBrainSampler(g).start());
  let restarted: ReturnType<typeof spawnWorker> | undefined;
  let kill: KillMark | undefined;
  let killed = false;
  let killNote: string | undefined;
  let run: PointEvidence['run'] = { ok: false, error: 'not started' };
  let report: unknown;
  try {
    await sleep(300);
    // The writer acknowledging right now (a worker starting up can starve it for a second on two cores).
    const writing = async () => {
      for (const deadline = Date.now() + 15_000; Date.now() < deadline; await sleep(2)) {
        const n = writer.ackTimes.length;
        if (n >= 10 && writer.now() - writer.ackTimes[n - 1] < 50) return;
      }
    };
    const since = new Date();
    await scenario.start(lab, i, log, (m) => (kill = m), writing);
    const latest = lab.client.workflow.getHandle(operationWorkflowId(cluster));
    const handle = scenario.result ? { result: () => scenario.result!(lab, since) } : latest;
    const outcome = await Promise.race([
      Promise.race(armed.map((w) => w.exited)).then((e) => (e.signal === 'SIGKILL' ? 'killed' : `worker exited ${e.code ?? e.signal}`)),
      handle.result().then(
        () => 'the run finished before the kill point',
        (e) => `the run failed before the kill point: ${errorText(e)}`,
      ),
      unrefSleep(90_000).then(() => 'kill point not reached in 90 s'),
    ]);
    killed = outcome === 'killed';
    if (!killed) killNote = outcome;
    if (workers === 1) restarted = spawnWorker(lab, undefined, log);
    report = await Promise.race([handle.result(), unrefSleep(180_000).then(() => Promise.reject(new Error('run did not finish within 180 s after the restart')))]);
    run = { ok: true };
  } catch (e) {
    run = { ok: false, error: errorText(e) };
  }
  // Settle with the writer and the sampler still running: a killed primary comes back and is fenced under them.
  const settled: SettleResult = (await scenario.settle?.(lab, report, kill).catch((e): SettleResult => ({ problems: [`settle failed: ${(e as Error).message}`] }))) ?? { problems: [] };
  const settle = [...resetProblems.map((p) => `before the run: ${p}`), ...settled.problems];
  const flaggedNode = settled.flagged?.node;
  await sleep(300);
  const stats = await writer.stop();
  const groupSamples = await Promise.all(samplers.map((x) => x.stop()));

  const noReport = { failure: 'no report: the run did not complete' };
  const expectedOf = (g: ShardProbe) => {
    if (!run.ok) return noReport;
    if (!shards) return scenario.expectPrimary?.(before, report, kill) ?? { failure: 'the scenario names no expected primary' };
    return scenario.expectPrimaries?.(before, report)[g.name] ?? { failure: `the scenario names no expected primary for shard ${g.name}` };
  };
  // Per group (every node, or one shard): its end state, converged on its single writable node, and what of the
  // acknowledged writes its nodes lack.
  const judged: { g: ShardProbe; end: Record<string, EndNode>; primary?: string; notConverged?: string; lostKeys: string[]; behindPrimary: Record<string, number> }[] = [];
  for (const g of groups) {
    let end = await g.endState();
    let writable = writableOf(end);
    let notConverged: string | undefined;
    const behindPrimary: Record<string, number> = {};
    let lostKeys: string[] = [];
    if (writable.length === 1) {
      notConverged = await g.converge(writable[0], 60_000, flaggedNode ? [flaggedNode] : []);
      end = await g.endState(); // re-read: links that were coming up when first read
      writable = writableOf(end);
    }
    const primary = writable.length === 1 ? writable[0] : undefined;
    if (primary) {
      lostKeys = await writer.missingOn(primary);
      const lost = new Set(lostKeys);
      for (const n of g.nodes) {
        if (n === primary || n === flaggedNode || !end[n]?.up) continue;
        behindPrimary[n] = (await writer.missingOn(n).catch(() => writer.ackedKeys)).filter((k) => !lost.has(k)).length;
      }
    }
    judged.push({ g, end, primary, notConverged, lostKeys, behindPrimary });
  }
  const lostKeys = judged.flatMap((j) => j.lostKeys);
  const samples = {
    samples: Math.min(...groupSamples.map((x) => x.samples)),
    withDownNode: groupSamples.reduce((n, x) => n + x.withDownNode, 0),
    split: groupSamples.reduce((n, x) => n + x.split, 0),
    splitExamples: groupSamples.flatMap((x) => x.splitExamples),
    maxGapMs: Math.max(...groupSamples.map((x) => x.maxGapMs)),
  };
  const primary = shards ? judged.map((j) => `${j.g.name}=${j.primary ?? '?'}`).join(' ') : judged[0].primary;
  const postconditions = (await scenario.check?.(lab, i, before, report).catch((e) => [`check failed: ${(e as Error).message}`])) ?? [];

  let loss: PointEvidence['loss'];
  if (scenario.loss === 'reported-window') {
    const k = kill as KillMark | undefined;
    const byKilled = k ? writer.ackedBy.flatMap((n, j) => (n === k.node && writer.ackTimes[j] <= k.goneAt ? [j] : [])) : [];
    const allowed = new Set(byKilled.map((j) => writer.ackedKeys[j]));
    const last = byKilled.length ? writer.ackTimes[byKilled[byKilled.length - 1]] : undefined;
    loss = {
      killed: k?.node ?? '(none)',
      ackedByKilledBeforeKill: byKilled.length,
      lastAckBeforeKillMs: k && last !== undefined ? Math.max(0, Math.round(k.at - last)) : undefined,
      lostElsewhere: lostKeys.filter((x) => !allowed.has(x)).length,
      unbounded: unboundedLoss(lostKeys.length, run.ok, scenario.lossBound && (() => scenario.lossBound!(report, lostKeys, ackedAtEpochMs(writer)))),
    };
    if (!k) settle.push('the scenario did not say which primary it killed');
  }

  const flagged = settled.flagged && {
    ...settled.flagged,
    lostMissingOnIt: lostKeys.length ? (await writer.missingOn(settled.flagged.node).catch(() => lostKeys)).filter((k) => lostKeys.includes(k)).length : 0,
  };
  const writes = { acked: stats.acked, minAcked: scenario.minAcked, ambiguous: writer.ambiguous };
  let failures: string[];
  if (!shards) {
    const [j] = judged;
    failures = checkPoint({
      point,
      killed,
      killNote,
      run,
      settle,
      flagged,
      end: j.end,
      expected: expectedOf(j.g),
      notConverged: j.notConverged,
      writes: { ...writes, lostOnPrimary: j.lostKeys.length, behindPrimary: j.behindPrimary },
      loss,
      samples: groupSamples[0],
      postconditions,
    });
  } else {
    // The same checker, split: what belongs to the run once, then each shard's own end state, expected primary,
    // convergence, writes and samples, each failure prefixed by its shard.
    failures = checkRun({ point, killed, killNote, run, settle, writes, postconditions });
    if (shards.length === 0) failures.push('no shard to judge');
    for (const [k, j] of judged.entries())
      for (const f of checkGroup({
        end: j.end,
        expected: expectedOf(j.g),
        notConverged: j.notConverged,
        writes: { lostOnPrimary: j.lostKeys.length, behindPrimary: j.behindPrimary },
        samples: groupSamples[k],
      }))
        // (A run without a report is named once, at the point.)
        if (run.ok || f !== `postcondition: ${noReport.failure}`) failures.push(`shard ${j.g.name}: ${f}`);
  }
  await writer.close();
  for (const w of armed) await w.stop();
  await restarted?.stop();
  return {
    point,
    killed,
    completed: failures.length === 0,
    failures,
    lostAckedWrites: lostKeys.length,
    multiplePrimaries: samples.split,
    samples: samples.samples,
    samplesWithDownNode: samples.withDownNode,
    sampleMaxGapMs: samples.maxGapMs,
    newPrimary: primary,
    acked: stats.acked,
    writerAmbiguous: writer.ambiguous,
    ...(loss ? { loss } : {}),
    ...(flagged ? { flagged: flagged.node } : {}),
    writeBlockedMs: Math.round(stats.maxGapMs),
    ms: Date.now() - t0,
    ...(failures.length ? { error: failures.join('; ') } : {}),
  };
}

export async function runChaos<L extends AnyLab>(lab: L, scenario: Scenario<L>, points: string[], log: (m: string) => void, workers = 1): Promise<ChaosSummary> {
  await scenario.prepare?.(lab);
  const results: PointResult[] = [];
  for (const [i, p] of points.entries()) {
    const r = await runChaosPoint(lab, scenario, p, i, log, workers);
    log(
      `[chaos] ${scenario.name} ${p}: killed=${r.killed} completed=${r.completed} acked=${r.acked} lost=${r.lostAckedWrites} split=${r.multiplePrimaries}/${r.samples} down=${r.samplesWithDownNode} blocked=${r.writeBlockedMs}ms ${r.ms}ms${r.failures.length ? ` FAILURES: ${r.failures.join(' | ')}` : ''}`,
    );
    results.push(r);
  }
  return summarize(scenario.name, results);
}

export function summarize(runbook: string, results: PointResult[]): ChaosSummary {
  return {
    killPoints: results.filter((r) => r.killed).length,
    completed: results.filter((r) => r.completed).length,
    lostAckedWrites: results.reduce((n, r) => n + r.lostAckedWrites, 0),
    multiplePrimaries: results.reduce((n, r) => n + r.multiplePrimaries, 0),
    failed: results.filter((r) => !r.completed).length,
    runbook,
    points: results,
  };
}
