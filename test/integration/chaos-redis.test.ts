/**
 * Crash-safety in CI: the real worker process is SIGKILLed at the most delicate points of a switchover (while
 * writes are paused, between demoting the old primary and promoting the new one, and after the handover
 * acted but before Temporal heard of it); a fresh worker must finish the run with one primary and every
 * acknowledged write present. `npm run chaos -- switchover-redis` runs every kill point.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { BACKUP_REDIS, FAILOVER_REDIS, ROLLING_RESTART_REDIS_SENTINEL, SWITCHOVER_REDIS, runChaos, type Scenario } from '../../bench/chaos';
import { startLab, type Lab } from '../../bench/lab';

describe('switchover survives SIGKILL of the worker', () => {
  let lab: Lab;
  beforeAll(async () => {
    lab = await startLab({ cluster: 'ci-chaos', address: inject('temporalAddress'), log: () => undefined });
  });
  afterAll(async () => {
    await lab?.close();
  });

  it('completes with one primary and no lost acknowledged write at each kill point', async () => {
    const points = ['inside:ensureRedisHandedOver.paused', 'inside:ensureRedisHandedOver.demoted', 'after:ensureRedisHandedOver', 'before:ensureRedisReplicaOf#1'];
    const lines: string[] = [];
    const s = await runChaos(lab, SWITCHOVER_REDIS, points, (m) => lines.push(m));
    for (const p of s.points) expect(p, lines.join('\n')).toMatchObject({ killed: true, completed: true, lostAckedWrites: 0, multiplePrimaries: 0 });
    expect(s).toMatchObject({ killPoints: points.length, completed: points.length, lostAckedWrites: 0, multiplePrimaries: 0 });
    // Killed while writes were paused: the server-side pause bound (5 s) released them, not the dead worker.
    const paused = s.points.find((p) => p.point === 'inside:ensureRedisHandedOver.paused')!;
    expect(paused.writeBlockedMs).toBeLessThan(8_000);
  }, 300_000);

  it('with two workers, the survivor takes the run over without any restart', async () => {
    const points = ['inside:ensureRedisHandedOver.demoted', 'after:ensureRedisReplicaOf#1'];
    const lines: string[] = [];
    const s = await runChaos(lab, SWITCHOVER_REDIS, points, (m) => lines.push(m), 2);
    for (const p of s.points) expect(p, lines.join('\n')).toMatchObject({ killed: true, completed: true, lostAckedWrites: 0, multiplePrimaries: 0 });
  }, 300_000);
});

describe('rolling restart through Sentinel and failover survive SIGKILL of the worker', () => {
  async function chaos(scenario: Scenario, cluster: string, points: string[]) {
    const lab = await startLab({ cluster, address: inject('temporalAddress'), log: () => undefined, ...scenario.lab });
    try {
      const lines: string[] = [];
      const s = await runChaos(lab, scenario, points, (m) => lines.push(m));
      for (const p of s.points) expect(p, lines.join('\n')).toMatchObject({ killed: true, completed: true, lostAckedWrites: 0, multiplePrimaries: 0 });
      return s;
    } finally {
      await lab.close();
    }
  }

  it('Sentinel topology: killed between demote and promote inside the Sentinel handover, and after a Sentinel restart', async () => {
    await chaos(ROLLING_RESTART_REDIS_SENTINEL, 'ci-chaos-snt', ['inside:ensureRedisSentinelHandover.demoted', 'after:ensureRedisSentinelRestarted#2']);
  }, 300_000);

  it('failover: killed right after the promotion and before the first repoint; the dead node is fenced back', async () => {
    await chaos(FAILOVER_REDIS, 'ci-chaos-fo', ['after:ensureRedisPromoted', 'before:ensureRedisReplicaOf']);
  }, 300_000);

  it('backup: killed while streaming the RDB; the retried take finishes the same backup, listed good once', async () => {
    await chaos(BACKUP_REDIS, 'ci-chaos-bk', ['inside:takeBackup.streaming']);
  }, 300_000);
});
