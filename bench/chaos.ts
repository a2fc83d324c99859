/**
 * Crash-safety harness:  npm run chaos -- <scenario>|partitions|pitr|all [--json] [--points p1,p2] [--workers 1|2] [--flavor valkey]
 *
 * For each kill point, the real worker process (worker/main.ts) runs with a failpoint armed and SIGKILLs itself
 * exactly there; a fresh worker is started, the run must complete, and the strict checker (bench/chaos/checker.ts)
 * judges the end state: one writable primary, the expected one; every node following it and converged; every
 * acknowledged write on every node (a failover: lost writes only within the window the run reported); no
 * sample with two writable nodes. The harness, the engine probes and the scenarios live in bench/chaos/.
 * Last stdout line: one JSON object; every point names its `failures`. Exit code 1 when any point failed.
 *
 * `partitions` (bench/chaos/partitions.ts, needs root for network namespaces): runbooks and network faults on a
 * fleet across lab hosts, judged by the same checker; its JSON is
 * {"scenarios","completed","lostAckedWrites","multiplePrimaries","unexpectedFailovers","entries":[…]}.
 * `pitr` (bench/chaos/pitr.ts): point-in-time restores over a run with a switchover, a failover and the binlog
 * archiver's worker killed twice; its JSON is {"targets","exact","lostTransactions","extraTransactions",…}.
 * `all` runs every crash matrix, then the partitions (reported as skipped, with the reason, without root; a
 * crash of the partitions lab is reported as its error and fails the run, with the matrices' results kept).
 */
import { DOLT_NOT_FOUND, doltBinary } from '../sandbox/dolt';
import { parseArgs } from './lab';
import { SCENARIOS, runScenario, type ChaosSummary, type PointResult } from './chaos/index';
import { PARTITION_ENTRIES, runPartitions, type PartitionsSummary } from './chaos/partitions';
import { runPitrChaos } from './chaos/pitr';
import { netnsUnavailable } from '../sandbox/netns';

const brief = (s: ChaosSummary) => {
  const { points, ...head } = s;
  return {
    ...head,
    points: points.map((p: PointResult) => ({
      point: p.point,
      killed: p.killed,
      completed: p.completed,
      failures: p.failures,
      acked: p.acked,
      lost: p.lostAckedWrites,
      split: p.multiplePrimaries,
      samples: p.samples,
      samplesWithDownNode: p.samplesWithDownNode,
      sampleMaxGapMs: p.sampleMaxGapMs,
      newPrimary: p.newPrimary,
      ...(p.loss ? { loss: p.loss } : {}),
      ...(p.flagged ? { flagged: p.flagged } : {}),
      writerAmbiguous: p.writerAmbiguous,
      writeBlockedMs: p.writeBlockedMs,
      ms: p.ms,
    })),
  };
};

async function main() {
  const { name, json, opts } = parseArgs(process.argv.slice(2));
  const all = Object.keys(SCENARIOS);
  const log = (m: string) => process.stderr.write(m + '\n');
  if (name === 'pitr') {
    const s = await runPitrChaos(log);
    if (!json) process.stdout.write(`pitr targets=${s.targets} exact=${s.exact} lost=${s.lostTransactions} extra=${s.extraTransactions} acked=${s.acked} segments=${s.segments} chainBreaks=${s.chainBreaks} archiverKills=${s.archiverKills}${s.failures.length ? `\n    ${s.failures.join('\n    ')}` : ''}\n`);
    process.stdout.write(JSON.stringify(s) + '\n');
    process.exitCode = s.failures.length === 0 && s.exact === s.targets && s.targets > 0 && s.acked > 0 ? 0 : 1;
    return;
  }
  if (name === 'partitions') {
    const p = await runPartitions({ log, only: opts.points ? opts.points.split(',') : undefined });
    if (!json) for (const e of p.entries) process.stdout.write(`partitions ${e.name.padEnd(28)} completed=${e.completed} acked=${e.acked} lost=${e.lostAckedWrites} split=${e.multiplePrimaries}/${e.samples} failovers=${e.unexpectedFailovers}${e.failures.length ? `\n    ${e.failures.join('\n    ')}` : ''}\n`);
    process.stdout.write(JSON.stringify(p) + '\n');
    process.exitCode = p.completed === p.scenarios && p.scenarios === (opts.points ? opts.points.split(',').length : PARTITION_ENTRIES.length) ? 0 : 1;
    return;
  }
  // `all` runs the Dolt scenarios when a dolt binary is found, and says plainly when it skips them.
  const noDolt = (n: string) => SCENARIOS[n].engine === 'dolt' && !doltBinary();
  for (const n of name === 'all' ? all.filter(noDolt) : []) process.stderr.write(`chaos: SKIPPED ${n}: ${DOLT_NOT_FOUND}\n`);
  const names = name === 'all' ? all.filter((n) => !noDolt(n)) : name && SCENARIOS[name] ? [name] : [];
  if (names.length === 0) {
    process.stderr.write(`usage: npm run chaos -- ${all.join('|')}|partitions|all [--json] [--points p1,p2] [--workers 1|2] [--flavor redis|valkey]\n`);
    process.exit(2);
  }
  const summaries: ChaosSummary[] = [];
  for (const n of names)
    summaries.push(await runScenario(n, { points: opts.points ? opts.points.split(',') : undefined, workers: Number(opts.workers ?? 1), flavor: opts.flavor as 'redis' | 'valkey' | undefined, log }));
  if (!json)
    for (const s of summaries)
      for (const p of s.points) process.stdout.write(`${s.runbook} ${p.point.padEnd(44)} completed=${p.completed} acked=${p.acked} lost=${p.lostAckedWrites} split=${p.multiplePrimaries}/${p.samples}${p.failures.length ? `\n    ${p.failures.join('\n    ')}` : ''}\n`);
  const total = {
    killPoints: summaries.reduce((n, s) => n + s.killPoints, 0),
    completed: summaries.reduce((n, s) => n + s.completed, 0),
    failed: summaries.reduce((n, s) => n + s.failed, 0),
    lostAckedWrites: summaries.reduce((n, s) => n + s.lostAckedWrites, 0),
    multiplePrimaries: summaries.reduce((n, s) => n + s.multiplePrimaries, 0),
  };
  // `all`: the partitions after the crash matrices (they need network namespaces: root).
  let partitions: PartitionsSummary | { skipped: string } | { error: string } | undefined;
  if (name === 'all') {
    const why = await netnsUnavailable();
    // A crash of the partitions lab (a namespace removed under it, say) fails the run, but never loses the
    // crash matrices' results: they are printed with the error.
    partitions = why ? { skipped: why } : await runPartitions({ log }).catch((e: Error) => ({ error: e.message.split('\n')[0] }));
    if ('skipped' in partitions) log(`[chaos] partitions skipped: ${partitions.skipped}`);
    else if ('error' in partitions) {
      log(`[chaos] partitions failed: ${partitions.error}`);
      total.failed += 1;
    } else total.failed += partitions.scenarios - partitions.completed;
  }
  const out = name === 'all' ? { ...total, runbooks: Object.fromEntries(summaries.map((s) => [s.runbook, brief(s)])), partitions } : brief(summaries[0]);
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exitCode = total.failed === 0 ? 0 : 1;
}

if (require.main === module) {
  main().catch((e) => {
    process.stderr.write(`chaos: ${(e as Error).stack}\n`);
    process.exit(1);
  });
}
