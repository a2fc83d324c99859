/**
 * Network partitions under chaos:  npm run chaos -- partitions [--json]
 *
 * A Redis fleet on three lab hosts (sandbox/netns.ts: one network namespace each, on a bridge; needs root),
 * Temporal and a worker in the root namespace, the monitor running through every entry, a writer recording
 * every acknowledged write and the split-brain sampler asking every node at once. Each entry is one runbook or
 * one fault, judged by the same strict checker as the crash matrices (bench/chaos/checker.ts): exactly one
 * writable node and the expected one, every other node following it with its link up and converged, at least
 * `minAcked` acknowledged writes and every one on every node, no split-brain sample, and the entry's own
 * postconditions. On top, `unexpectedFailovers`: failovers the monitor made during an entry that must not
 * fail over (all of these).
 *
 *   switchover                  planned switchover across hosts
 *   rolling-restart             roll across hosts (the local controller starts nodes in their namespaces)
 *   worker-cut-from-primary     (a) the worker loses the primary both ways; replicas still linked: no failover
 *   oneway-primary-to-worker    one-way loss (nft): the primary's packets to the worker dropped: no failover
 *   oneway-primary-to-replicas  one-way loss (nft): the primary's packets to the replicas dropped: no failover
 *   replica-cut-in-switchover   (c) a replica's link cut while writes are paused: the run ends HandoverIncomplete
 *                               naming it (the expected outcome); after the heal the operator's follow-up
 *                               (REPLICAOF the new primary, as the message says) is done by the harness
 *   worker-cut-from-temporal    (d) two worker processes on two more hosts, one task queue: the one running a
 *                               rolling restart's node restart is cut off from Temporal (nft); the other finishes
 *
 * The checker's "worker killed at its point" condition reads here as "the fault was injected at its point".
 * Not here: (b), the primary cut from everyone: a failover is expected there and the isolated side's
 * acknowledged writes are lost by design; it is measured by test/integration/multihost-*.test.ts.
 */
import { sharedWorkflowBundle } from '../../sandbox/bundle';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import Redis from 'ioredis';
import { createActivities } from '../../activities';
import { runMonitor } from '../../client/commands/monitor';
import { runRollingRestart } from '../../client/commands/rolling-restart';
import { runSwitchover } from '../../client/commands/switchover';
import { operationWorkflowId } from '../../core/ids';
import { loadInventory } from '../../inventory/load';
import { createNetLab, netnsUnavailable, removeLeftovers, type NetHost, type NetLab } from '../../sandbox/netns';
import { sleep } from '../../sandbox/ports';
import { startRedisFleet, type RedisFleet } from '../../sandbox/redis';
import { startDevServer } from '../../sandbox/temporal';
import { createHandoverWorker } from '../../worker/worker';
import { spawnWorkerProcess, type WorkerProcess } from '../lab';
import { checkPoint } from './checker';
import { quietIO } from './common';
import { redisProbe } from './redis';
import { SplitBrainSampler } from './sampler';
import type { PointEvidence } from './types';

const POLICY = { probeIntervalMs: 300, probesToConfirm: 3, failoverBlockMs: 600_000 };
const CONFIG = ['repl-timeout 3', 'min-replicas-to-write 1', 'min-replicas-max-lag 2'];
const MIN_ACKED = 100;
/** How long each fault entry holds its fault: past repl-timeout and several probe rounds past probesToConfirm. */
const FAULT_MS = 10_000;

export interface PartitionEntry {
  name: string;
  /** The fault was injected (the checker's `killed`). */
  injected: boolean;
  completed: boolean;
  failures: string[];
  acked: number;
  lostAckedWrites: number;
  multiplePrimaries: number;
  samples: number;
  samplesWithDownNode: number;
  unexpectedFailovers: number;
  primary?: string;
  /** What the run or the monitor said (the outcome line, verdicts seen). */
  outcome: string;
  ms: number;
}

export interface PartitionsSummary {
  scenarios: number;
  completed: number;
  lostAckedWrites: number;
  multiplePrimaries: number;
  unexpectedFailovers: number;
  entries: PartitionEntry[];
}

interface EntryOutcome {
  injected: boolean;
  run: PointEvidence['run'];
  expected: PointEvidence['expected'];
  outcome: string;
  postconditions?: string[];
}

const errorText = (e: unknown) => (e instanceof WorkflowFailedError ? `${(e.cause as { type?: string })?.type ?? ''}: ${(e.cause as Error)?.message ?? e.message}` : (e as Error).message);

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

export const PARTITION_ENTRIES = ['switchover', 'rolling-restart', 'worker-cut-from-primary', 'oneway-primary-to-worker', 'oneway-primary-to-replicas', 'replica-cut-in-switchover', 'worker-cut-from-temporal'];

export async function runPartitions(o: { log: (m: string) => void; only?: string[] }): Promise<PartitionsSummary> {
  const log = o.log;
  const why = await netnsUnavailable();
  if (why) throw new Error(`partitions need network namespaces: ${why}`);
  await removeLeftovers();
  const lab: NetLab = await createNetLab({ lab: 'p', subnet: '10.77.13' });
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'handover-partitions-'));
  const cleanup: (() => Promise<unknown>)[] = [];
  try {
    // 0-2: the fleet; 3, 4: the two workers of (d).
    const hosts: NetHost[] = [];
    for (let i = 0; i < 5; i++) hosts.push(await lab.addHost());
    const server = await startDevServer();
    cleanup.push(() => server.stop());
    const fleet: RedisFleet = await startRedisFleet({ cluster: 'part', extraConfig: CONFIG, hosts: hosts.slice(0, 3) });
    cleanup.push(() => fleet.stop());
    const inventory = fleet.writeInventory(undefined, { policy: POLICY });
    log(`[partitions] temporal ${server.address}; fleet ${fleet.nodes.map((n) => `${n.id}@${n.host}:${n.port}`).join(' ')}`);
    const bundlePath = await sharedWorkflowBundle();

    // The worker in the root namespace, with one failpoint hook (the cut of (c)).
    let onPaused: (() => Promise<void>) | undefined;
    const taskQueue = 'partitions';
    const nc = await NativeConnection.connect({ address: server.address });
    const worker = await createHandoverWorker({
      connection: nc,
      taskQueue,
      workflowBundlePath: bundlePath,
      activities: createActivities({
        inventory: () => loadInventory(inventory),
        failpoint: async (name) => {
          if (name === 'ensureRedisHandedOver.paused' && onPaused) {
            const f = onPaused;
            onPaused = undefined;
            await f();
          }
        },
      }),
    });
    const running = worker.run();
    cleanup.push(async () => {
      worker.shutdown();
      await running;
      await nc.close();
    });
    const connection = await Connection.connect({ address: server.address });
    cleanup.push(() => connection.close());
    const client = new Client({ connection });
    const opts = { cluster: fleet.cluster, inventory, address: server.address, taskQueue };
    const monitorStatus = async () => (await runMonitor({ ...opts, status: true, json: true }, quietIO(() => undefined))).status!;
    if ((await runMonitor(opts, quietIO(log))).exitCode !== 0) throw new Error('the monitor did not start');
    cleanup.push(() => runMonitor({ ...opts, stop: true }, quietIO(() => undefined)));
    const primaryNow = async () => (await fleet.primary())?.id;
    await until('the monitor sees the primary', async () => (await monitorStatus()).lastKnown?.primary === (await primaryNow()));
    const hostOf = (id: string) => hosts[fleet.nodes.findIndex((n) => n.id === id)];

    const probe = redisProbe(fleet);
    const entries: PartitionEntry[] = [];
    const runEntry = async (name: string, i: number, body: (before: string) => Promise<EntryOutcome>) => {
      const t0 = Date.now();
      const reset = await probe.reset();
      const before = (await primaryNow()) ?? '';
      const failoversBefore = (await monitorStatus()).failovers.length;
      const writer = probe.writer(`p${i}x${Date.now().toString(36)}`).start();
      const sampler = new SplitBrainSampler(probe).start();
      await sleep(500);
      let r: EntryOutcome;
      try {
        r = await body(before);
      } catch (e) {
        r = { injected: false, run: { ok: false, error: (e as Error).message }, expected: { failure: 'the entry did not finish' }, outcome: (e as Error).message };
      } finally {
        for (const h of hosts) {
          await lab.heal(h);
          await lab.rejoinRoot(h);
          await lab.clearDrops(h);
        }
      }
      await sleep(500);
      const stats = await writer.stop();
      const samples = await sampler.stop();
      let end = await probe.endState();
      let writable = Object.entries(end).filter(([, n]) => n.writable).map(([id]) => id);
      let notConverged: string | undefined;
      if (writable.length === 1) {
        notConverged = await probe.converge(writable[0], 60_000, []);
        end = await probe.endState();
        writable = Object.entries(end).filter(([, n]) => n.writable).map(([id]) => id);
      }
      const primary = writable.length === 1 ? writable[0] : undefined;
      let lost: string[] = [];
      const behindPrimary: Record<string, number> = {};
      if (primary) {
        lost = await writer.missingOn(primary);
        const lostSet = new Set(lost);
        for (const n of probe.nodes) if (n !== primary && end[n]?.up) behindPrimary[n] = (await writer.missingOn(n)).filter((k) => !lostSet.has(k)).length;
      }
      const failovers = (await monitorStatus()).failovers.length - failoversBefore;
      const failures = checkPoint({
        point: name,
        killed: r.injected,
        killNote: r.injected ? undefined : 'the fault was not injected',
        run: r.run,
        settle: reset.map((x) => `before the entry: ${x}`),
        end,
        expected: r.expected,
        notConverged,
        writes: { acked: stats.acked, minAcked: MIN_ACKED, ambiguous: writer.ambiguous, lostOnPrimary: lost.length, behindPrimary },
        samples,
        postconditions: r.postconditions ?? [],
      });
      if (failovers) failures.push(`the monitor failed over ${failovers} time(s): no failover may happen here`);
      await writer.close();
      const e: PartitionEntry = {
        name,
        injected: r.injected,
        completed: failures.length === 0,
        failures,
        acked: stats.acked,
        lostAckedWrites: lost.length,
        multiplePrimaries: samples.split,
        samples: samples.samples,
        samplesWithDownNode: samples.withDownNode,
        unexpectedFailovers: failovers,
        primary,
        outcome: r.outcome,
        ms: Date.now() - t0,
      };
      log(`[partitions] ${name}: completed=${e.completed} acked=${e.acked} lost=${e.lostAckedWrites} split=${e.multiplePrimaries}/${e.samples} failovers=${failovers} ${e.ms} ms; ${e.outcome}${failures.length ? ` FAILURES: ${failures.join(' | ')}` : ''}`);
      entries.push(e);
      await until('the monitor follows the primary', async () => (await monitorStatus()).lastKnown?.primary === (await primaryNow()), 30_000).catch(() => undefined);
    };
    const stays = (before: string) => ({ primary: before, why: 'no failover may happen: the primary lives and the replicas still see it, or the fault is one-way' });
    const hold = async (what: () => Promise<void>) => {
      await what();
      const verdicts = new Set<string>();
      for (const end = Date.now() + FAULT_MS; Date.now() < end; await sleep(500)) {
        const s = await monitorStatus().catch(() => undefined);
        if (s?.lastVerdict) verdicts.add(s.lastVerdict);
      }
      return `monitor verdicts: ${[...verdicts].join(' | ')}`;
    };
    const want = (n: string) => !o.only || o.only.includes(n);

    let i = 0;
    if (want('switchover'))
      await runEntry('switchover', i++, async (before) => {
        const to = fleet.nodes.find((n) => n.id !== before)!.id;
        const r = await runSwitchover({ ...opts, to, wait: true }, quietIO(() => undefined));
        return { injected: true, run: r.exitCode === 0 ? { ok: true } : { ok: false, error: `exit ${r.exitCode}` }, expected: r.report ? { primary: to, why: `switchover to ${to}` } : { failure: 'no report' }, outcome: `exit ${r.exitCode}` };
      });
    if (want('rolling-restart'))
      await runEntry('rolling-restart', i++, async () => {
        const r = await runRollingRestart({ ...opts, set: [`hz=${20 + i}`], wait: true }, quietIO(() => undefined));
        const p = r.report?.primary;
        return { injected: true, run: r.exitCode === 0 ? { ok: true } : { ok: false, error: `exit ${r.exitCode}` }, expected: p ? { primary: p, why: 'the roll reported it' } : { failure: 'no report' }, outcome: `exit ${r.exitCode}, ${r.report?.restarts.length ?? 0} restarts` };
      });
    if (want('worker-cut-from-primary'))
      await runEntry('worker-cut-from-primary', i++, async (before) => ({ injected: true, run: { ok: true }, expected: stays(before), outcome: await hold(() => lab.isolateFromRoot(hostOf(before))) }));
    if (want('oneway-primary-to-worker'))
      await runEntry('oneway-primary-to-worker', i++, async (before) => ({ injected: true, run: { ok: true }, expected: stays(before), outcome: await hold(() => lab.dropOutput(hostOf(before), [lab.gateway])) }));
    if (want('oneway-primary-to-replicas'))
      await runEntry('oneway-primary-to-replicas', i++, async (before) => ({
        injected: true,
        run: { ok: true },
        expected: stays(before),
        outcome: await hold(() => lab.dropOutput(hostOf(before), fleet.nodes.filter((n) => n.id !== before).map((n) => n.host))),
      }));
    if (want('replica-cut-in-switchover'))
      await runEntry('replica-cut-in-switchover', i++, async (before) => {
        const [cand, other] = fleet.nodes.filter((n) => n.id !== before);
        let injected = false;
        onPaused = async () => {
          injected = true;
          await lab.cut(hostOf(other.id));
        };
        const r = await runSwitchover({ ...opts, to: cand.id, wait: true }, quietIO(() => undefined)).catch((e) => ({ exitCode: -1, error: e as Error }));
        const h = client.workflow.getHandle(operationWorkflowId(fleet.cluster));
        const err = await h.result().then(
          () => 'completed',
          (e) => errorText(e),
        );
        // The expected outcome: HandoverIncomplete naming the cut replica, the candidate the primary.
        const ok = r.exitCode === 1 && /HandoverIncomplete/.test(err) && err.includes(`NOT repointed: ${other.id}`) && err.includes(`${cand.id} is the primary`);
        await lab.heal(hostOf(other.id));
        // The follow-up the message asks for: point the node left behind at the new primary.
        const c = new Redis({ host: other.host, port: other.port, password: fleet.password, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
        c.on('error', () => undefined);
        await until('the cut replica answers', async () => (await c.connect().then(() => true)) || false, 30_000);
        await c.call('REPLICAOF', cand.host, String(cand.port));
        c.disconnect();
        return { injected, run: ok ? { ok: true } : { ok: false, error: `want exit 1 HandoverIncomplete naming ${other.id}; got exit ${r.exitCode}: ${err}` }, expected: { primary: cand.id, why: `the switchover made ${cand.id} primary before the cut replica failed` }, outcome: `exit ${r.exitCode}: ${err.slice(0, 200)}` };
      });
    if (want('worker-cut-from-temporal')) {
      const [th, tp] = server.address.split(':');
      const tfwd = await lab.forward({ host: th, port: Number(tp) });
      const queueD = 'partitions-d';
      const workers: WorkerProcess[] = [];
      const logs = ['', ''];
      for (const w of [0, 1]) {
        const wtmp = path.join(tmp, `w${w}`);
        workers.push(
          spawnWorkerProcess({ HANDOVER_TEMPORAL_ADDRESS: tfwd.address, HANDOVER_INVENTORY: inventory, HANDOVER_TASK_QUEUE: queueD, HANDOVER_WORKFLOW_BUNDLE: bundlePath, TMPDIR: wtmp }, (t) => (logs[w] += t), hosts[3 + w].wrap),
        );
      }
      cleanup.push(async () => {
        for (const w of workers) await w.stop();
      });
      await until('both workers poll', async () => logs.every((l) => /\[worker\] polling/.test(l)), 90_000);
      await runEntry('worker-cut-from-temporal', i++, async () => {
        const r = await runRollingRestart({ ...opts, taskQueue: queueD, set: [`hz=${30 + i}`] }, quietIO(() => undefined));
        if (r.exitCode !== 0) return { injected: false, run: { ok: false, error: `start: exit ${r.exitCode}` }, expected: { failure: 'not started' }, outcome: 'not started' };
        const h = client.workflow.getHandle(operationWorkflowId(fleet.cluster));
        const taker = await until('a node restart running on a worker', async () => {
          const d = await h.describe();
          const a = d.raw.pendingActivities?.find((x) => x.activityType?.name === 'ensureRedisNodeRestarted' && x.lastWorkerIdentity);
          const pid = Number(a?.lastWorkerIdentity?.split('@')[0]);
          return workers.findIndex((w) => w.proc.pid === pid) + 1;
        }, 60_000).then((x) => x - 1);
        const cutAt = Date.now();
        await lab.dropOutput(hosts[3 + taker], [lab.gateway], { tcpPort: tfwd.port });
        const report = await h.result().then(
          (x) => x as { primary?: string; restarts: string[] },
          (e) => new Error(errorText(e)),
        );
        const tookMs = Date.now() - cutAt;
        await workers[taker].stop();
        if (report instanceof Error) return { injected: true, run: { ok: false, error: report.message }, expected: { failure: 'no report' }, outcome: report.message };
        return {
          injected: true,
          run: { ok: true },
          expected: report.primary ? { primary: report.primary, why: 'the roll reported it' } : { failure: 'no report' },
          outcome: `worker ${taker} (${hosts[3 + taker].ns}) cut from Temporal mid-restart; the other finished the roll ${tookMs} ms later (${report.restarts.length} restarts)`,
        };
      });
    }
    return {
      scenarios: entries.length,
      completed: entries.filter((e) => e.completed).length,
      lostAckedWrites: entries.reduce((n, e) => n + e.lostAckedWrites, 0),
      multiplePrimaries: entries.reduce((n, e) => n + e.multiplePrimaries, 0),
      unexpectedFailovers: entries.reduce((n, e) => n + e.unexpectedFailovers, 0),
      entries,
    };
  } finally {
    for (const f of cleanup.reverse()) await f().catch(() => undefined);
    await lab.remove();
    rmSync(tmp, { recursive: true, force: true });
  }
}
