/**
 * Redis runbooks with each node in its own network namespace (sandbox/netns.ts: 10.77.11.0/24 on bridge
 * hnd-brr, the worker and Temporal in the root namespace) and real network faults:
 *  - switchover under a writer: no acknowledged write lost;
 *  - (a) the primary cut off from the worker only (replicas still linked): the monitor does not fail over;
 *  - (b) the primary's link cut (off from everyone): failover; on heal the old primary is fenced; the writes a
 *    client on the isolated side had acknowledged are counted, with and without min-replicas-to-write;
 *  - (c) a replica's link cut in the middle of a switchover: what the runbook does, and nothing acked is lost;
 *  - (c) a replica's link cut during a rolling restart: the roll stops safely, names it, nothing acked is lost;
 *  - rolling restart: the local controller starts each node again inside its own namespace (its launcher);
 *  - Sentinel topology with the Sentinels on the nodes' hosts: switchover and a roll with --include-sentinels;
 *  - one-way loss (nftables): the primary's packets to the worker dropped (the worker's still arrive): no
 *    failover; the primary's packets to its replicas dropped (theirs still arrive): no failover, the guard makes
 *    the primary refuse writes, and after the heal every acknowledged write is on every node;
 *  - (d) two worker processes on two other hosts polling one task queue, backups in S3 (VersityGW, reached
 *    through a forwarder on the bridge, like Temporal): the worker running the take is cut off from Temporal
 *    (nft), the other finishes the run; the backup is listed good by the CLI, verified and restored by the other
 *    worker into an empty node on a sixth host (REPLICAOF to a scratch server on that worker's lab address).
 * Needs root (ip netns); skipped otherwise. Leftover namespaces of a dead run (hnd-*) are removed first.
 */
import { sharedWorkflowBundle } from '../../sandbox/bundle';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { redisKeyDigest } from '../../activities/backup/redis';
import { spawnWorkerProcess, type WorkerProcess } from '../../bench/lab';
import { runBackupList, runBackupRestore, runBackupRun, runBackupVerify } from '../../client/commands/backup';
import { runMonitor } from '../../client/commands/monitor';
import { runRollingRestart } from '../../client/commands/rolling-restart';
import { operationWorkflowId } from '../../core/ids';
import { withBackupBlock } from '../../sandbox/backup';
import { startS3Server } from '../../sandbox/s3';
import { startSentinels, type SentinelSet } from '../../sandbox/sentinel';
import { runSwitchover } from '../../client/commands/switchover';
import { loadInventory } from '../../inventory/load';
import { createNetLab, namespaceOf, removeLeftovers, type NetHost, type NetLab } from '../../sandbox/netns';
import { runNsWriter } from '../../sandbox/ns-writer';
import { sleep } from '../../sandbox/ports';
import { baseRedisConf, startNodeProcess, startRedisFleet, waitForReplication, type RedisFleet } from '../../sandbox/redis';
import { freePort } from '../../sandbox/ports';
import { AckedWriter } from '../../sandbox/writer';
import type { MonitorStatus } from '../../workflows/monitor';
import { captureIO, startTestWorker, type TestWorker } from '../helpers';

const POLICY = { probeIntervalMs: 300, probesToConfirm: 3, failoverBlockMs: 600_000 };
// repl-timeout 3: replicas report the link down 3 s after the primary's last word (the DeadMaster rule needs it).
const BASE_CONFIG = ['repl-timeout 3'];
const GUARD = ['min-replicas-to-write 1', 'min-replicas-max-lag 2'];

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

describe.skipIf(process.getuid?.() !== 0)('multi-host redis (network namespaces)', () => {
  let lab: NetLab;
  let hosts: NetHost[];
  let tw: TestWorker;
  let inventory = '';
  let fleet: RedisFleet | undefined;
  let sentinels: SentinelSet | undefined;
  let onPaused: (() => Promise<void>) | undefined;
  let onRestart: (() => Promise<void>) | undefined;
  const opts = (f: RedisFleet) => ({ cluster: f.cluster, inventory, address: tw.address, taskQueue: tw.taskQueue });
  const status = async (f: RedisFleet) => (await runMonitor({ ...opts(f), status: true, json: true }, captureIO())).status!;

  beforeAll(async () => {
    await removeLeftovers();
    lab = await createNetLab({ lab: 'r', subnet: '10.77.11' });
    // 0-2: the fleet (and Sentinels); 3, 4: two workers; 5: an empty node to restore into.
    hosts = [];
    for (let i = 0; i < 6; i++) hosts.push(await lab.addHost());
    tw = await startTestWorker({
      inventory: () => loadInventory(inventory),
      failpoint: async (name) => {
        if (name === 'ensureRedisHandedOver.paused' && onPaused) {
          const f = onPaused;
          onPaused = undefined;
          await f();
        }
        if (name === 'ensureRedisNodeRestarted.beforeRestart' && onRestart) {
          const f = onRestart;
          onRestart = undefined;
          await f();
        }
      },
    });
  });
  afterEach(async () => {
    onPaused = undefined;
    onRestart = undefined;
    for (const h of hosts ?? []) {
      await lab.heal(h);
      await lab.rejoinRoot(h);
      await lab.clearDrops(h);
    }
    if (fleet) await runMonitor({ ...opts(fleet), stop: true }, captureIO()).catch(() => undefined);
    await sentinels?.stop();
    sentinels = undefined;
    await fleet?.stop();
    fleet = undefined;
  });
  afterAll(async () => {
    await tw?.stop();
    await lab?.remove();
    await removeLeftovers();
  });

  async function newFleet(cluster: string, extraConfig: string[] = BASE_CONFIG): Promise<RedisFleet> {
    fleet = await startRedisFleet({ cluster, extraConfig, hosts: hosts.slice(0, 3) });
    inventory = fleet.writeInventory(undefined, { policy: POLICY });
    expect(fleet.nodes.map((n) => n.host)).toEqual(hosts.slice(0, 3).map((h) => h.address));
    return fleet;
  }
  const runIds = async (f: RedisFleet) => {
    const out: Record<string, string> = {};
    for (const n of f.nodes) {
      const c = n.client();
      out[n.id] = /run_id:(\w+)/.exec(await c.info('server'))![1];
      c.disconnect();
    }
    return out;
  };

  it('switchover under a writer across hosts: no acknowledged write lost', async () => {
    const f = await newFleet('mhr-sw');
    const writer = new AckedWriter(f.nodes, f.password).start();
    await sleep(500);
    const io = captureIO();
    const r = await runSwitchover({ ...opts(f), wait: true, to: f.nodes[1].id }, io);
    expect(r.exitCode, io.text()).toBe(0);
    await sleep(300);
    const stats = await writer.stop();
    await writer.close();
    expect(await f.roles()).toEqual({ [f.nodes[0].id]: 'slave', [f.nodes[1].id]: 'master', [f.nodes[2].id]: 'slave' });
    const missing = await writer.missingOn(f.nodes[1].host, f.nodes[1].port);
    console.log(`[multihost-redis] switchover: acked ${stats.acked}, missing ${missing.length}, writer max gap ${stats.maxGapMs} ms`);
    expect(stats.acked).toBeGreaterThan(50);
    expect(missing).toEqual([]);
  });

  it('(a) primary cut off from the worker only, replicas still linked: the monitor does not fail over', async () => {
    const f = await newFleet('mhr-a', [...BASE_CONFIG, ...GUARD]);
    const [p] = f.nodes;
    expect((await runMonitor(opts(f), captureIO())).exitCode).toBe(0);
    await until('monitor sees the primary', async () => (await status(f)).lastKnown?.primary === p.id);
    await lab.isolateFromRoot(hosts[0]);
    // The root namespace no longer reaches the primary; the replicas do (and stay linked).
    expect((await f.roles())[p.id]).toBe('down');
    const verdicts = new Set<string>();
    const end = Date.now() + 10_000; // > 10 probe rounds, well past probesToConfirm and repl-timeout
    while (Date.now() < end) {
      const s = await status(f);
      if (s.lastVerdict) verdicts.add(s.lastVerdict);
      expect(s.failovers).toEqual([]);
      await sleep(500);
    }
    console.log(`[multihost-redis] (a) verdicts while isolated from the worker: ${[...verdicts].join(' | ')}`);
    expect([...verdicts].some((v) => /still linked/.test(v))).toBe(true);
    await lab.rejoinRoot(hosts[0]);
    await until('primary answers again', async () => (await f.roles())[p.id] === 'master');
    expect(await f.roles()).toEqual({ [p.id]: 'master', [f.nodes[1].id]: 'slave', [f.nodes[2].id]: 'slave' });
    expect((await status(f)).failovers).toEqual([]);
  });

  describe.each([
    ['with min-replicas-to-write 1 / max-lag 2', true],
    ['without a guard', false],
  ])('(b) primary link cut (off from everyone), %s', (label, guard) => {
    it('fails over, fences the old primary on heal, and counts the isolated side acknowledged writes', { timeout: 180_000 }, async () => {
      const f = await newFleet(guard ? 'mhr-bg' : 'mhr-bn', guard ? [...BASE_CONFIG, ...GUARD] : BASE_CONFIG);
      const [p] = f.nodes;
      expect((await runMonitor(opts(f), captureIO())).exitCode).toBe(0);
      await until('monitor sees the primary', async () => (await status(f)).lastKnown?.primary === p.id);
      // A client inside the primary's namespace: it keeps reaching the primary when the link is cut.
      const isolatedClient = runNsWriter({ wrap: hosts[0].wrap, engine: 'redis', host: p.host, port: p.port, password: f.password, prefix: 'iso', durationMs: 30_000, intervalMs: 5 });
      await sleep(1500);
      const cutAt = Date.now();
      await lab.cut(hosts[0]);
      const s = await until<MonitorStatus>('a failover', async () => {
        const x = await status(f);
        return x.failovers.length === 1 && x;
      }, 60_000);
      const fo = s.failovers[0];
      const failoverSeenAt = Date.now();
      await sleep(Math.max(0, cutAt + 15_000 - Date.now())); // the partition lasts 15 s
      const healAt = Date.now();
      await lab.heal(hosts[0]);
      await until('old primary fenced', async () => (await f.roles())[p.id] === 'slave', 30_000);
      const fencedAt = Date.now();
      const iso = await isolatedClient;
      await waitForReplication(f, fo.to, 30_000);
      const roles = await f.roles();
      expect(Object.values(roles).filter((r) => r === 'master')).toHaveLength(1);
      expect(roles[fo.to]).toBe('master');

      // Which of the isolated client's acknowledged writes survived on the new primary.
      const c = f.nodes.find((n) => n.id === fo.to)!.client();
      const present = new Set<string>();
      for (let i = 0; i < iso.acks.length; i += 2000) {
        const chunk = iso.acks.slice(i, i + 2000).map((a) => a.key);
        if (!chunk.length) break;
        (await c.mget(...chunk)).forEach((v, j) => v !== null && present.add(chunk[j]));
      }
      c.disconnect();
      const phase = (a: { at: number }) => (a.at < cutAt ? 'beforeCut' : a.at < healAt ? 'partition' : a.at < fencedAt ? 'healToFence' : 'afterFence');
      const count: Record<string, { acked: number; lost: number }> = {};
      for (const a of iso.acks) {
        const k = phase(a);
        count[k] ??= { acked: 0, lost: 0 };
        count[k].acked++;
        if (!present.has(a.key)) count[k].lost++;
      }
      const lost = iso.acks.filter((a) => !present.has(a.key));
      const lastAckOnOld = iso.acks.filter((a) => a.at >= cutAt).at(-1)?.at;
      console.log(
        `[multihost-redis] (b) ${label}: failover ${fo.from} -> ${fo.to} detectMs=${fo.detectMs} seen ${failoverSeenAt - cutAt} ms after the cut; ` +
          `heal at +${healAt - cutAt} ms, fenced ${fencedAt - healAt} ms after heal; isolated client acked ${iso.acks.length}, lost ${lost.length} ` +
          `(by phase ${JSON.stringify(count)}); last ack on the old primary ${lastAckOnOld ? lastAckOnOld - cutAt : '-'} ms after the cut; ` +
          `report: lostBytes=${fo.lostBytes} unobservedMs=${fo.unobservedMs} loss="${fo.loss}"; client errors ${JSON.stringify(iso.errors)}`,
      );
      expect(iso.acks.length).toBeGreaterThan(50);
      expect(count.afterFence?.acked ?? 0).toBe(0); // fenced: a replica (READONLY) takes no writes
      if (guard) {
        // The guard bounds the isolated primary's acknowledged writes to about min-replicas-max-lag after the
        // cut, and the returning old primary has no replica left: it refuses writes until it is fenced.
        expect(lastAckOnOld! - cutAt).toBeLessThan(4000);
        expect(count.healToFence?.acked ?? 0).toBe(0);
      }
    });
  });

  it('(c) a replica cut off in the middle of a switchover: the runbook says what it did; nothing acked is lost', { timeout: 180_000 }, async () => {
    const f = await newFleet('mhr-c');
    const [p, cand, other] = f.nodes;
    // The writer knows the two nodes that matter (a cut node would stall its primary discovery).
    const writer = new AckedWriter([p, cand], f.password).start();
    await sleep(500);
    // Every replica in sync first: a candidate still on its first sync is refused (empty), and (c) is about a cut.
    await waitForReplication(f, p.id);
    let cutAt = 0;
    onPaused = async () => {
      cutAt = Date.now();
      await lab.cut(hosts[2]);
    };
    const io = captureIO();
    const t0 = Date.now();
    const r = await runSwitchover({ ...opts(f), wait: true, to: cand.id }, io);
    const tookMs = Date.now() - t0;
    await sleep(300);
    const stats = await writer.stop();
    await writer.close();
    const roles = await f.roles();
    const master = Object.entries(roles).filter(([, x]) => x === 'master').map(([id]) => id);
    expect(master).toHaveLength(1);
    const m = f.nodes.find((n) => n.id === master[0])!;
    const missing = await writer.missingOn(m.host, m.port);
    console.log(`[multihost-redis] (c) exit ${r.exitCode} after ${tookMs} ms (cut ${cutAt ? cutAt - t0 : '-'} ms in); roles ${JSON.stringify(roles)}; acked ${stats.acked}, missing ${missing.length}; output:\n${io.text()}`);
    expect(cutAt).toBeGreaterThan(0);
    expect(missing).toEqual([]);
    // The handover stands: the candidate is primary, the old primary repointed; the cut node's repoint failed
    // without stopping the rest, verification covered the others, and the run names where the cluster stands.
    expect(r.exitCode, io.text()).toBe(1);
    expect(io.text()).toMatch(new RegExp(`failed +repoint ${other.id}`));
    expect(io.text()).toMatch(new RegExp(`failed \\(HandoverIncomplete\\): switchover of ${f.cluster} incomplete: ${cand.id} is the primary and takes writes; NOT repointed: ${other.id}: `));
    expect(master).toEqual([cand.id]);
    expect(roles[p.id]).toBe('slave');
    expect(roles[other.id]).toBe('down');
    await lab.heal(hosts[2]);
    // After the heal the cut replica follows whichever node is primary (a re-run or the switchover's repoint).
    const after = await until('the cut replica answers', async () => {
      const x = await f.roles();
      return x[other.id] !== 'down' && x;
    });
    console.log(`[multihost-redis] (c) after heal: ${JSON.stringify(after)}`);
  });

  it('(c) a replica cut off during a rolling restart: the roll stops safely naming it and the primary; nothing acked is lost', { timeout: 180_000 }, async () => {
    const f = await newFleet('mhr-rc');
    const [p, r1, r2] = f.nodes;
    const writer = new AckedWriter([p], f.password).start();
    await sleep(500);
    // Replicas roll first, in name order: while r1 is being restarted, r2's host is cut off.
    let cutAt = 0;
    onRestart = async () => {
      cutAt = Date.now();
      await lab.cut(hosts[2]);
    };
    const io = captureIO();
    const t0 = Date.now();
    const r = await runRollingRestart({ ...opts(f), set: ['hz=17'], wait: true }, io);
    const tookMs = Date.now() - t0;
    await sleep(300);
    const stats = await writer.stop();
    await writer.close();
    const roles = await f.roles();
    const missing = await writer.missingOn(p.host, p.port);
    console.log(`[multihost-redis] (c) roll: exit ${r.exitCode} after ${tookMs} ms (cut ${cutAt ? cutAt - t0 : '-'} ms in); roles ${JSON.stringify(roles)}; acked ${stats.acked}, missing ${missing.length}; ${io.text().split('\n').filter((l) => /failed/.test(l)).join(' | ')}`);
    expect(cutAt).toBeGreaterThan(0);
    expect(r.exitCode, io.text()).toBe(1);
    expect(io.text()).toMatch(new RegExp(`failed \\(HandoverIncomplete\\): stopped safely: ${r2.id} unreachable; .*1 node\\(s\\) already rolled \\(${r1.id}\\), 0 handover\\(s\\); the primary is ${p.id}`));
    expect(roles).toEqual({ [p.id]: 'master', [r1.id]: 'slave', [r2.id]: 'down' });
    expect(stats.acked).toBeGreaterThan(50);
    expect(missing).toEqual([]);
  });

  it('rolling restart across hosts: the local controller starts each node again inside its own namespace; nothing acked is lost', { timeout: 180_000 }, async () => {
    const f = await newFleet('mhr-roll');
    const before = await runIds(f);
    const writer = new AckedWriter(f.nodes, f.password).start();
    await sleep(500);
    const io = captureIO();
    const r = await runRollingRestart({ ...opts(f), set: ['hz=23'], wait: true }, io);
    expect(r.exitCode, io.text()).toBe(0);
    await sleep(300);
    const stats = await writer.stop();
    await writer.close();
    expect(r.report!.restarts).toHaveLength(3);
    expect(r.report!.handovers).toHaveLength(1);
    const primary = (await f.primary())!;
    await waitForReplication(f, primary.id);
    const missing = await writer.missingOn(primary.host, primary.port);
    const after = await runIds(f);
    const where = await Promise.all(f.nodes.map((n) => namespaceOf(n.pid()!)));
    console.log(`[multihost-redis] rolling restart: acked ${stats.acked}, missing ${missing.length}, writer max gap ${stats.maxGapMs} ms; nodes run in ${where.join(', ')}; ${r.report!.audit.filter((a) => /started/.test(a)).join(' | ')}`);
    expect(stats.acked).toBeGreaterThan(50);
    expect(missing).toEqual([]);
    for (const n of f.nodes) expect(after[n.id]).not.toBe(before[n.id]);
    expect(where).toEqual(hosts.slice(0, 3).map((h) => h.ns));
    expect(io.text()).toContain('netns-exec.sh');
  });

  it('Sentinel topology across hosts (a Sentinel beside each node): switchover through Sentinel, then a roll with --include-sentinels', { timeout: 240_000 }, async () => {
    const f = await newFleet('mhr-snt');
    sentinels = await startSentinels(f, { hosts: hosts.slice(0, 3) });
    inventory = f.writeInventory(undefined, { policy: POLICY, sentinelBlock: sentinels.inventoryBlock() });
    const s = sentinels;
    const sentinelPid = (i: number) => Number(readFileSync(path.join(s.sentinels[i].dir, 'redis.pid'), 'utf8').trim());
    const writer = new AckedWriter(f.nodes, f.password).start();
    await sleep(500);
    const io = captureIO();
    const r = await runSwitchover({ ...opts(f), wait: true, to: f.nodes[2].id }, io);
    expect(r.exitCode, io.text()).toBe(0);
    expect(io.text()).toMatch(new RegExp(`SENTINEL FAILOVER ${f.cluster} on ${f.cluster}-sentinel-\\d: OK`));
    expect(await until('Sentinels agree on the new primary', () => s.agreedMaster())).toBe(`${f.nodes[2].host}:${f.nodes[2].port}`);

    const sBefore = [0, 1, 2].map(sentinelPid);
    const rio = captureIO();
    const roll = await runRollingRestart({ ...opts(f), set: ['hz=23'], includeSentinels: true, wait: true }, rio);
    expect(roll.exitCode, rio.text()).toBe(0);
    await sleep(300);
    const stats = await writer.stop();
    await writer.close();
    expect(roll.report!.restarts).toHaveLength(3);
    expect(roll.report!.sentinelRestarts).toEqual(s.sentinels.map((x) => x.id));
    const primary = (await f.primary())!;
    expect(await until('Sentinels agree after the roll', () => s.agreedMaster())).toBe(`${primary.host}:${primary.port}`);
    await waitForReplication(f, primary.id);
    const missing = await writer.missingOn(primary.host, primary.port);
    const sAfter = [0, 1, 2].map(sentinelPid);
    const where = await Promise.all([...f.nodes.map((n) => namespaceOf(n.pid()!)), ...sAfter.map((p) => namespaceOf(p))]);
    console.log(`[multihost-redis] sentinel: acked ${stats.acked}, missing ${missing.length}, writer max gap ${stats.maxGapMs} ms; nodes and Sentinels run in ${where.join(', ')}`);
    expect(stats.acked).toBeGreaterThan(50);
    expect(missing).toEqual([]);
    for (let i = 0; i < 3; i++) expect(sAfter[i]).not.toBe(sBefore[i]);
    expect(where).toEqual([...hosts.slice(0, 3), ...hosts.slice(0, 3)].map((h) => h.ns));
  });

  it('one-way loss: the primary\'s packets to the worker dropped (the worker\'s still arrive): the monitor does not fail over', { timeout: 120_000 }, async () => {
    const f = await newFleet('mhr-ow1', [...BASE_CONFIG, ...GUARD]);
    const [p] = f.nodes;
    expect((await runMonitor(opts(f), captureIO())).exitCode).toBe(0);
    await until('monitor sees the primary', async () => (await status(f)).lastKnown?.primary === p.id);
    await lab.dropOutput(hosts[0], [lab.gateway]);
    expect((await f.roles())[p.id]).toBe('down'); // the worker's side: no answer
    const verdicts = new Set<string>();
    const end = Date.now() + 10_000;
    while (Date.now() < end) {
      const s = await status(f);
      if (s.lastVerdict) verdicts.add(s.lastVerdict);
      expect(s.failovers).toEqual([]);
      await sleep(500);
    }
    console.log(`[multihost-redis] one-way primary->worker: verdicts ${[...verdicts].join(' | ')}`);
    expect([...verdicts].some((v) => /still linked/.test(v))).toBe(true);
    await lab.clearDrops(hosts[0]);
    await until('primary answers again', async () => (await f.roles())[p.id] === 'master');
    expect(await f.roles()).toEqual({ [p.id]: 'master', [f.nodes[1].id]: 'slave', [f.nodes[2].id]: 'slave' });
    expect((await status(f)).failovers).toEqual([]);
  });

  it('one-way loss: the primary\'s packets to its replicas dropped (theirs still arrive): no failover, the guard refuses writes, nothing acknowledged is lost after the heal', { timeout: 120_000 }, async () => {
    const f = await newFleet('mhr-ow2', [...BASE_CONFIG, ...GUARD]);
    const [p, r1, r2] = f.nodes;
    expect((await runMonitor(opts(f), captureIO())).exitCode).toBe(0);
    await until('monitor sees the primary', async () => (await status(f)).lastKnown?.primary === p.id);
    const writer = new AckedWriter(f.nodes, f.password).start();
    await sleep(1000);
    const cutAt = Date.now();
    const cutPerf = performance.now();
    await lab.dropOutput(hosts[0], [r1.host, r2.host]);
    // The replicas stop hearing from the primary (repl-timeout 3 s); the worker still reaches all three.
    await until('replicas report the link down', async () => {
      const infos = await Promise.all([r1, r2].map(async (n) => {
        const c = n.client();
        try {
          return await c.info('replication');
        } finally {
          c.disconnect();
        }
      }));
      return infos.every((i) => i.includes('master_link_status:down'));
    }, 20_000);
    const linkDownMs = Date.now() - cutAt;
    const verdicts = new Set<string>();
    const end = Date.now() + 8_000;
    while (Date.now() < end) {
      const s = await status(f);
      if (s.lastVerdict) verdicts.add(s.lastVerdict);
      expect(s.failovers).toEqual([]);
      await sleep(500);
    }
    const healPerf = performance.now();
    const during = writer.ackTimes.filter((t) => t >= cutPerf);
    const ackedDuring = during.length;
    const lastAckMs = during.length ? Math.round(during[during.length - 1] - cutPerf) : undefined;
    await lab.clearDrops(hosts[0]);
    await waitForReplication(f, p.id, 30_000);
    await sleep(300);
    const stats = await writer.stop();
    await writer.close();
    // The last writes before the writer stopped: every replica has them too before it is read.
    await waitForReplication(f, p.id, 30_000);
    const missing: Record<string, number> = {};
    for (const n of f.nodes) missing[n.id] = (await writer.missingOn(n.host, n.port)).length;
    console.log(`[multihost-redis] one-way primary->replicas: replicas' links down ${linkDownMs} ms after the cut; acked ${ackedDuring} during the cut, last ${lastAckMs ?? '-'} ms after it; verdicts ${[...verdicts].join(' | ')}; total acked ${stats.acked}, missing per node ${JSON.stringify(missing)}; writer errors ${stats.errors}`);
    // The guard: with its replicas gone the primary refuses writes (min-replicas-to-write 1), well before the heal.
    expect(lastAckMs ?? 0).toBeLessThan(healPerf - cutPerf - 2000);
    expect(stats.acked).toBeGreaterThan(50);
    expect(Object.values(missing)).toEqual([0, 0, 0]);
    expect(await f.roles()).toEqual({ [p.id]: 'master', [r1.id]: 'slave', [r2.id]: 'slave' });
    expect((await status(f)).failovers).toEqual([]);
  });

  it('(d) two workers on two hosts, backups in S3: the one taking is cut off from Temporal, the other finishes; listed good, verified and restored by the other into a node on another host', { timeout: 300_000 }, async () => {
    const f = await newFleet('mhr-bk');
    const s3 = await startS3Server({ name: 'mhs3' });
    const workers: WorkerProcess[] = [];
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'handover-mh-d-'));
    let fresh: ReturnType<typeof startNodeProcess> | undefined;
    try {
      await s3.createBucket('mh-backups');
      // Temporal and the S3 server listen on loopback: the workers on lab hosts reach them through the bridge.
      const s3fwd = await lab.forward({ host: '127.0.0.1', port: Number(new URL(s3.endpoint).port) });
      const [th, tp] = tw.address.split(':');
      const tfwd = await lab.forward({ host: th, port: Number(tp) });
      const block = s3.storageBlock('mh-backups', 'lab').replace(s3.endpoint, `http://${s3fwd.address}`);
      inventory = path.join(f.baseDir, 'inventory-s3.yaml');
      writeFileSync(inventory, withBackupBlock(f.inventoryYaml({ policy: POLICY }), { s3: block }, 3));
      // Data to back up: small keys and ~24 MiB that does not compress (the take lasts a few seconds).
      const pc = f.nodes[0].client();
      const pipe = pc.pipeline();
      for (let i = 0; i < 3000; i++) pipe.set(`k:${i}`, `v-${i}`);
      for (let i = 0; i < 8; i++) pipe.set(`blob:${i}`, randomBytes(3 * 1024 * 1024));
      await pipe.exec();
      await pc.call('WAIT', '2', '10000');
      pc.disconnect();

      const bundlePath = await sharedWorkflowBundle();
      const taskQueue = `mh-d-${randomUUID()}`;
      const logs: string[] = ['', ''];
      for (const i of [0, 1]) {
        const wtmp = path.join(tmp, `w${i}`);
        mkdirSync(wtmp);
        const env = { HANDOVER_TEMPORAL_ADDRESS: tfwd.address, HANDOVER_INVENTORY: inventory, HANDOVER_TASK_QUEUE: taskQueue, HANDOVER_WORKFLOW_BUNDLE: bundlePath, TMPDIR: wtmp, HANDOVER_BACKUP_DIR: undefined, HANDOVER_SCRATCH_HOST: undefined };
        workers.push(spawnWorkerProcess(env, (t) => (logs[i] += t), hosts[3 + i].wrap));
      }
      await until('both workers poll', async () => logs.every((l) => /\[worker\] polling/.test(l)), 60_000);
      expect(await Promise.all(workers.map((w) => namespaceOf(w.proc.pid!)))).toEqual([hosts[3].ns, hosts[4].ns]);

      const o = { address: tw.address, taskQueue, inventory, cluster: f.cluster };
      const started = await runBackupRun({ ...o, json: true }, captureIO());
      expect(started.exitCode).toBe(0);
      const connection = await Connection.connect({ address: tw.address });
      const client = new Client({ connection });
      const handle = client.workflow.getHandle(operationWorkflowId(f.cluster));
      try {
        // Which worker runs the take: the pending activity's last worker identity is `<pid>@<hostname>`.
        const taker = await until('the take started on a worker', async () => {
          const d = await handle.describe();
          const a = d.raw.pendingActivities?.find((x) => x.activityType?.name === 'takeBackup' && x.lastWorkerIdentity);
          const pid = Number(a?.lastWorkerIdentity?.split('@')[0]);
          return workers.findIndex((w) => w.proc.pid === pid) + 1;
        }, 60_000) - 1;
        const other = 1 - taker;
        // Cut the taker from Temporal only (its packets to the forwarder dropped); it still reaches S3 and the nodes.
        const cutAt = Date.now();
        await lab.dropOutput(hosts[3 + taker], [lab.gateway], { tcpPort: tfwd.port });
        const report = (await handle.result()) as { id: string; verification: { ok: boolean }; audit: string[] };
        const doneMs = Date.now() - cutAt;
        const hist = await handle.fetchHistory();
        const attempts = hist.events!.filter((e) => e.activityTaskStartedEventAttributes && e.activityTaskStartedEventAttributes.identity).map((e) => e.activityTaskStartedEventAttributes!.identity!);
        // What happened after the cut, event by event (ms after the cut, type, worker).
        const timeline = hist.events!
          .map((e) => ({ at: Number(e.eventTime!.seconds) * 1000 + Math.round((e.eventTime!.nanos ?? 0) / 1e6) - cutAt, e }))
          .filter((x) => x.at >= 0)
          .map(({ at, e }) => {
            const attrs = Object.entries(e).find(([k, v]) => k.endsWith('EventAttributes') && v) as [string, { identity?: string; activityType?: { name?: string } }] | undefined;
            return `+${at} ${attrs?.[0].replace('EventAttributes', '')}${attrs?.[1].activityType?.name ? `(${attrs[1].activityType.name})` : ''}${attrs?.[1].identity ? `@${attrs[1].identity.split('@')[0]}` : ''}`;
          });
        console.log(`[multihost-redis] (d) history after the cut: ${timeline.join(' ')}`);
        console.log(`[multihost-redis] (d) take started on worker ${taker} (${hosts[3 + taker].ns}), cut from Temporal; the run completed ${doneMs} ms later; backup ${report.id} verification ok=${report.verification.ok}; started-event identities ${attempts.join(', ')}; audit: ${report.audit.join(' | ')}`);
        expect(report.verification.ok).toBe(true);
        const finishedBy = workers[other].proc.pid!;
        expect(attempts.at(-1)?.startsWith(`${finishedBy}@`)).toBe(true);
        // Stop the cut worker before it is healed (its activity may still be running; it must not touch the store later).
        await workers[taker].stop();
        expect(await s3.uploadsInProgress('mh-backups')).toEqual([]);

        const list = await runBackupList({ cluster: f.cluster, inventory, json: true }, captureIO());
        expect(list.backups).toEqual([expect.objectContaining({ id: report.id, state: 'good' })]);
        // Verify and restore on the task queue where only the other worker is left.
        const vio = captureIO();
        expect((await runBackupVerify({ ...o, id: report.id }, vio)).exitCode, vio.text()).toBe(0);

        // An empty node on a sixth host, added to the inventory; the restore runs on the other worker's host.
        const port = await freePort();
        const ndir = path.join(f.baseDir, 'fresh');
        mkdirSync(ndir, { recursive: true });
        writeFileSync(path.join(ndir, 'redis.conf'), baseRedisConf({ port, dir: ndir, password: f.password, bind: hosts[5].address }).join('\n') + '\n');
        fresh = startNodeProcess({ id: `${f.cluster}-fresh`, port, dir: ndir, binary: 'redis-server', password: f.password, host: hosts[5].address, wrap: hosts[5].wrap });
        await fresh.start();
        writeFileSync(inventory, readFileSync(inventory, 'utf8') + `      - id: ${f.cluster}-fresh\n        host: ${hosts[5].address}\n        port: ${port}\n`);
        const rio = captureIO();
        const restored = await runBackupRestore({ ...o, id: report.id, to: `${f.cluster}-fresh`, json: true }, rio);
        expect(restored.exitCode, rio.text()).toBe(0);
        const fc = fresh.client();
        const pc2 = f.nodes[0].client();
        try {
          const digest = async (c: typeof fc) => {
            const out = new Map<string, string | null>();
            let cursor = '0';
            do {
              const [next, keys] = await c.scan(cursor, 'COUNT', 1000);
              for (const k of keys) out.set(k, await redisKeyDigest(c, k));
              cursor = next;
            } while (cursor !== '0');
            return out;
          };
          const [want, got] = await Promise.all([digest(pc2), digest(fc)]);
          const info = await fc.info('replication');
          console.log(`[multihost-redis] (d) restored ${got.size} keys into ${f.cluster}-fresh at ${hosts[5].address} (${hosts[5].ns}) by worker ${other}: ${rio.text().split('\n').filter((l) => /restored/.test(l)).join(' ')}`);
          expect(got.size).toBe(3008);
          expect(got).toEqual(want);
          expect(info).toContain('role:master');
        } finally {
          fc.disconnect();
          pc2.disconnect();
        }
      } finally {
        await connection.close();
      }
    } finally {
      for (const w of workers) await w.stop();
      await fresh?.stop('SIGKILL');
      await s3.stop();
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
