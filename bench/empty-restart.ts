/**
 * failover-redis-empty-restart (called from bench/run.ts): the empty-primary race, Handover against
 * redis-sentinel in the same run.
 *
 * Each case: a fresh 3-node Redis 7 replication fleet, persistence OFF (save "", appendonly no), the same
 * min-replicas fence both sides run with (FENCE_CONFIG), one acked writer that follows the one node answering
 * ROLE master. The primary is SIGKILLed and started again (empty: nothing on disk) `restartAfterMs` later, at 2x
 * and at 0.5x the detection window (probeIntervalMs x probesToConfirm for Handover's monitor, Sentinel's
 * down-after-milliseconds the same). Once the fleet settled (one primary, every other node its replica, linked),
 * the writer stops and every acknowledged write is looked up on the final primary: lostAckedWrites counts the
 * missing ones. Each case runs `runs` times on each side; every run is reported as measured.
 */
import { sleep } from '../sandbox/ports';
import { runMonitor } from '../client/commands/monitor';
import { startRedisFleet, waitForReplication, type RedisFleet } from '../sandbox/redis';
import { startSentinels } from '../sandbox/sentinel';
import { AckedWriter } from '../sandbox/writer';
import type { MonitorStatus } from '../workflows/monitor';
import { FAILOVER_POLICY, startBench } from './failover';

const log = (m: string) => process.stderr.write(m + '\n');
const quiet = { out: () => undefined, err: log, isTTY: false };
const WINDOW_MS = FAILOVER_POLICY.probeIntervalMs * FAILOVER_POLICY.probesToConfirm;
const FENCE_CONFIG = ['min-replicas-to-write 1', 'min-replicas-max-lag 2', 'repl-timeout 3'];

interface Side {
  lostAckedWrites: number;
  acked: number;
  /** The primary after the fleet settled. */
  finalPrimary?: string;
  /** Its key count then. */
  finalKeys?: number;
  note: string;
}

/** One primary, every other node its replica with the link up: the fleet settled (or undefined). */
async function settled(fleet: RedisFleet): Promise<string | undefined> {
  const roles = await fleet.roles();
  const masters = fleet.nodes.filter((n) => roles[n.id] === 'master');
  if (masters.length !== 1) return undefined;
  const m = masters[0];
  for (const n of fleet.nodes) {
    if (n.id === m.id) continue;
    const c = n.client();
    try {
      const info = await c.info('replication');
      if (!info.includes(`master_port:${m.port}`) || !info.includes('master_link_status:up')) return undefined;
    } catch {
      return undefined;
    } finally {
      c.disconnect();
    }
  }
  return m.id;
}

/** Kill the primary, start it again empty after `restartAfterMs`, wait for the fleet to settle, count what is lost. */
async function killRestartCount(fleet: RedisFleet, restartAfterMs: number, settleAtLeastMs: number, extra?: () => Promise<boolean>): Promise<Side> {
  const primary = (await fleet.primary())!;
  const writer = new AckedWriter(fleet.nodes, fleet.password).start();
  // A dataset worth losing: at least 1 s of writes and 1000 acknowledged keys before the kill.
  const warm = Date.now();
  while (Date.now() - warm < 1000 || (writer.ackedKeys.length < 1000 && Date.now() - warm < 20_000)) await sleep(50);
  const before = writer.ackedKeys.length;
  await primary.stop('SIGKILL');
  const killedAt = Date.now();
  await sleep(Math.max(0, restartAfterMs - (Date.now() - killedAt)));
  await primary.start();
  const restartedAt = Date.now();
  let finalPrimary: string | undefined;
  const deadline = restartedAt + 30_000;
  for (;;) {
    finalPrimary = Date.now() - restartedAt >= settleAtLeastMs ? await settled(fleet).catch(() => undefined) : undefined;
    if (finalPrimary && (!extra || (await extra()))) break;
    if (Date.now() > deadline) break;
    await sleep(100);
  }
  await sleep(500);
  await writer.stop();
  const m = fleet.nodes.find((n) => n.id === finalPrimary);
  const missing = m ? await writer.missingOn(m.host, m.port) : writer.ackedKeys;
  let finalKeys: number | undefined;
  if (m) {
    const c = m.client();
    finalKeys = await c.dbsize().catch(() => undefined);
    c.disconnect();
  }
  await writer.close();
  return {
    lostAckedWrites: missing.length,
    acked: writer.ackedKeys.length,
    finalPrimary,
    finalKeys,
    note: `${before} acked before the kill; ${finalPrimary ? `settled on ${finalPrimary}` : 'did not settle within 30 s'}`,
  };
}

export async function failoverRedisEmptyRestartBench(runs: number) {
  const b = await startBench();
  const cases: { restartAfterMs: number; run: number; handover: Side & { failovers: number; emptyPrimary: string[] }; baseline: Side & { name: 'redis-sentinel' } }[] = [];
  try {
    for (const restartAfterMs of [2 * WINDOW_MS, WINDOW_MS / 2]) {
      for (let i = 0; i < runs; i++) {
        const tag = `${restartAfterMs}-${i}`;
        // Handover's monitor.
        let handover: (typeof cases)[number]['handover'];
        {
          const fleet = await startRedisFleet({ cluster: `erbench-${tag}`, extraConfig: FENCE_CONFIG });
          const opts = { cluster: fleet.cluster, address: b.address, taskQueue: b.taskQueue };
          const status = async () => (await runMonitor({ ...opts, status: true, json: true }, quiet)).status as MonitorStatus;
          try {
            b.inventory.path = fleet.writeInventory(undefined, { policy: FAILOVER_POLICY });
            if ((await runMonitor(opts, quiet)).exitCode !== 0) throw new Error('monitor did not start');
            const deadline = Date.now() + 60_000;
            while ((await status().catch(() => undefined))?.lastKnown?.primary !== fleet.nodes[0].id) {
              if (Date.now() > deadline) throw new Error('monitor did not see the primary');
              await sleep(50);
            }
            // Settled means the monitor is done too: its failover recorded, or its rounds back to "alive".
            const side = await killRestartCount(fleet, restartAfterMs, 3000, async () => {
              const s = await status().catch(() => undefined);
              return !!s && (s.failovers.length > 0 || /answers as primary/.test(s.lastVerdict ?? ''));
            });
            const s = await status();
            handover = { ...side, failovers: s.failovers.length, emptyPrimary: (s.emptyReturns ?? []).map((e) => e.text) };
            await runMonitor({ ...opts, stop: true }, quiet);
          } finally {
            await fleet.stop();
          }
        }
        // Baseline: redis-sentinel, down-after-milliseconds = the same window, the same fleet configuration.
        let baseline: (typeof cases)[number]['baseline'];
        {
          const fleet = await startRedisFleet({ cluster: `erbsn-${tag}`, extraConfig: FENCE_CONFIG });
          const sentinels = await startSentinels(fleet, { downAfterMs: WINDOW_MS });
          try {
            await waitForReplication(fleet, fleet.nodes[0].id, 30_000);
            baseline = { name: 'redis-sentinel', ...(await killRestartCount(fleet, restartAfterMs, 3000)) };
          } finally {
            await sentinels.stop();
            await fleet.stop();
          }
        }
        const c = { restartAfterMs, run: i + 1, handover, baseline };
        cases.push(c);
        log(`[bench] ${JSON.stringify(c)}`);
      }
    }
  } finally {
    await b.close();
  }
  return {
    cases,
    name: 'failover-redis-empty-restart',
    runs,
    detectionWindowMs: WINDOW_MS,
    policy: FAILOVER_POLICY,
    fleet: `3 x redis-server 7, persistence off (save "", appendonly no), ${FENCE_CONFIG.join(', ')}; Sentinel: 3 sentinels, quorum 2, down-after-milliseconds ${WINDOW_MS}`,
    measure: 'one acked writer; SIGKILL the primary, start it again empty restartAfterMs later; once one primary has every other node linked: acknowledged writes missing on it',
  };
}
