/**
 * switchover-redis-sentinel (called from bench/run.ts): a 3-node Redis 7.0 fleet watched by 3 redis-sentinel
 * processes (quorum 2), under one writer that discovers the primary ONLY through Sentinel (ioredis `sentinels:`
 * + `name`, sandbox/writer.ts SentinelAckedWriter). Per run: Handover's switchover, then, in the same run on
 * the same fleet, a plain `SENTINEL FAILOVER <name>` as the baseline. The client gap of each is what the
 * writer saw: the longest interval between two acknowledged writes from the start of the switchover until the
 * writer's first acknowledgement on the new primary after it settled (for the baseline: after Sentinel has
 * also turned the old primary into a replica, which is when its clients are disconnected). Every acknowledged
 * write is checked on the final primary; a missing one counts against the switchover whose window its ack
 * falls in. The Sentinel events (+try-failover, +promoted-slave, +switch-master, ...) are timed per run, on
 * stderr, so the gap can be read against them.
 */
import { performance } from 'node:perf_hooks';
import Redis from 'ioredis';
import { runSwitchover } from '../client/commands/switchover';
import { sleep } from '../sandbox/ports';
import { waitForReplication } from '../sandbox/redis';
import type { SentinelSet } from '../sandbox/sentinel';
import { SentinelAckedWriter } from '../sandbox/writer';
import { percentile, startLab, startLabWorker } from './lab';

const log = (m: string) => process.stderr.write(m + '\n');

/** Every Sentinel's pub/sub events with the time they arrived (performance.now()). */
function recordEvents(sentinels: SentinelSet) {
  const events: { t: number; sentinel: string; channel: string; message: string }[] = [];
  const subs = sentinels.sentinels.map((s) => {
    const c = new Redis({ host: s.host, port: s.port, retryStrategy: () => 100 });
    c.on('error', () => undefined);
    c.on('pmessage', (_p: string, channel: string, message: string) => {
      if (!channel.startsWith('__sentinel__')) events.push({ t: performance.now(), sentinel: s.id.replace(/.*-/, 's'), channel, message });
    });
    void c.psubscribe('*');
    return c;
  });
  return {
    /** Events after `from`, as "+event@ms-after-from(sentinel)". */
    since(from: number, to = Infinity): string {
      return events
        .filter((e) => e.t >= from && e.t <= to && /try-failover|elected-leader|selected-slave|promoted-slave|slave-reconf-done|failover-end|switch-master|convert-to-slave|config-update-from/.test(e.channel))
        .map((e) => `${e.channel}@${Math.round(e.t - from)}(${e.sentinel})`)
        .join(' ');
    },
    close: () => subs.forEach((c) => c.disconnect()),
  };
}

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

export async function switchoverRedisSentinelBench(runs: number) {
  const lab = await startLab({ cluster: 'sntbench', sentinels: true });
  const { fleet } = lab;
  const sentinels = lab.sentinels!;
  const worker = await startLabWorker(lab);
  const events = recordEvents(sentinels);
  const writer = new SentinelAckedWriter(
    sentinels.sentinels.map((s) => ({ host: s.host, port: s.port })),
    sentinels.masterName,
    fleet.password,
  ).start();
  const windows: { kind: 'handover' | 'baseline'; from: number; to: number }[] = [];
  const ours: number[] = [];
  const stepMs: number[] = [];
  const base: number[] = [];
  const sentinelAsk = async <T>(fn: (c: Redis) => Promise<T>): Promise<T> => {
    const s = sentinels.sentinels[0];
    const c = new Redis({ host: s.host, port: s.port, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    c.on('error', () => undefined);
    try {
      await c.connect();
      return await fn(c);
    } finally {
      c.disconnect();
    }
  };
  /** Settled: every Sentinel names one primary, it has both replicas linked, no Sentinel is failing over. */
  const settled = async () =>
    until('the fleet and its Sentinels to settle', async () => {
      const agreed = await sentinels.agreedMaster();
      const primary = await fleet.primary();
      if (!agreed || !primary || agreed !== `${primary.host}:${primary.port}`) return undefined;
      const roles = await fleet.roles();
      if (Object.values(roles).filter((r) => r === 'master').length !== 1) return undefined;
      await waitForReplication(fleet, primary.id, 5000);
      const busy = await sentinelAsk(async (c) => ((await c.call('SENTINEL', 'MASTER', sentinels.masterName)) as string[]).join(' ').includes('failover_in_progress'));
      return busy ? undefined : primary;
    });
  /** The time of the writer's first ack from the node at `addr` (host:port) after `after`. */
  const ackOn = (addr: string, after: number) =>
    until(`the writer's first ack on ${addr}`, async () => {
      const port = `:${addr.split(':').pop()}`;
      let first: number | undefined;
      for (let i = writer.ackTimes.length - 1; i >= 0 && writer.ackTimes[i] > after; i--) if (writer.ackedBy[i].endsWith(port)) first = writer.ackTimes[i];
      return first;
    });
  try {
    await sleep(500);
    for (let i = 0; i < runs; i++) {
      // Handover's switchover.
      const before = await settled();
      const t0 = performance.now();
      const r = await runSwitchover({ cluster: fleet.cluster, wait: true, address: lab.address, taskQueue: lab.taskQueue }, { out: () => undefined, err: log, isTTY: false });
      if (r.exitCode !== 0 || !r.report) throw new Error(`switchover ${i} failed with exit ${r.exitCode}`);
      const to = fleet.nodes.find((n) => n.id === r.report!.newPrimary)!;
      const t1 = await ackOn(`${to.host}:${to.port}`, t0);
      windows.push({ kind: 'handover', from: t0, to: t1 });
      ours.push(Math.round(writer.maxGapMs(t0, t1)));
      stepMs.push(r.report.writePauseMs);
      const steps = r.report.steps.map((s) => `${s.step}=${s.ms}`).join(' ');
      log(`[bench] run ${i + 1}/${runs} handover ${before.id}->${to.id}: client gap ${ours[i]} ms (handover step's pause ${r.report.writePauseMs} ms) | ${events.since(t0, t1 + 50)} | steps ${steps}`);
      log(`[bench]   ${r.report.audit.filter((a) => /^(handover|sentinel timing|restore sentinel timing):/.test(a)).join(' | ')}`);

      // Baseline: a plain SENTINEL FAILOVER.
      const old = await settled();
      // Right after a switchover Sentinel may still hold the replica priorities of the pin (it re-reads them
      // every 10 s) and answer NOGOODSLAVE: asked again until it accepts; the clock starts when it does.
      await until('SENTINEL FAILOVER to be accepted', () => sentinelAsk((c) => c.call('SENTINEL', 'FAILOVER', sentinels.masterName)).then((r) => r === 'OK'), 30_000);
      const b0 = performance.now();
      const next = await until('Sentinel to name a new primary', async () => {
        const a = await sentinels.agreedMaster();
        return a && a !== `${old.host}:${old.port}` ? a : undefined;
      });
      // Settled only once Sentinel has turned the old primary into a replica (it keeps taking writes until then).
      await until(`${old.id} to be a replica`, async () => (await fleet.roles())[old.id] === 'slave');
      const b1 = await ackOn(next, performance.now());
      windows.push({ kind: 'baseline', from: b0, to: b1 });
      base.push(Math.round(writer.maxGapMs(b0, b1)));
      log(`[bench] run ${i + 1}/${runs} SENTINEL FAILOVER ${old.id}->${next}: client gap ${base[i]} ms (${Math.round(b1 - b0)} ms until settled) | ${events.since(b0, b1)}`);
    }
  } finally {
    await writer.stop();
    events.close();
    await worker.stop();
  }
  const primary = await settled();
  const missing = new Set(await writer.missingOn(primary.host, primary.port));
  const lost = { handover: 0, baseline: 0 };
  writer.ackedKeys.forEach((k, i) => {
    if (!missing.has(k)) return;
    const w = windows.find((x) => writer.ackTimes[i] >= x.from - 1 && writer.ackTimes[i] <= x.to);
    lost[w?.kind ?? 'handover']++; // a loss outside every window is counted against Handover
  });
  // The gap counted over the acknowledgements that held: an acknowledged write that was then lost told the
  // client something false, so it does not end a gap. Equal to the raw gap when nothing was lost.
  const held = writer.ackTimes.filter((_, i) => !missing.has(writer.ackedKeys[i]));
  const heldGap = (from: number, to: number) => {
    let max = 0;
    for (let j = 1; j < held.length; j++) if (held[j] >= from && held[j - 1] <= to) max = Math.max(max, held[j] - held[j - 1]);
    return Math.round(max);
  };
  const gaps = (kind: 'handover' | 'baseline') => windows.filter((w) => w.kind === kind).map((w) => heldGap(w.from, w.to));
  const [oursHeld, baseHeld] = [gaps('handover'), gaps('baseline')];
  log(`[bench] client gaps over the acknowledgements that held: handover ${oursHeld.join(' ')} ms; SENTINEL FAILOVER ${baseHeld.join(' ')} ms`);
  const result = {
    name: 'switchover-redis-sentinel',
    runs,
    ackedWrites: writer.ackedKeys.length,
    writerErrors: Object.fromEntries(writer.errorKinds),
    handover: {
      clientGapMs: { p50: percentile(oursHeld, 50), max: percentile(oursHeld, 100) },
      rawAckGapMs: { p50: percentile(ours, 50), max: percentile(ours, 100) },
      handoverStepPauseMs: { p50: percentile(stepMs, 50), max: percentile(stepMs, 100) },
      lostAckedWrites: lost.handover,
    },
    baseline: {
      name: 'SENTINEL FAILOVER',
      clientGapMs: { p50: percentile(baseHeld, 50), max: percentile(baseHeld, 100) },
      rawAckGapMs: { p50: percentile(base, 50), max: percentile(base, 100) },
      lostAckedWrites: lost.baseline,
    },
    ratioP50: Math.round((percentile(oursHeld, 50) / percentile(baseHeld, 50)) * 1000) / 1000,
  };
  await writer.close();
  await lab.close();
  return result;
}
