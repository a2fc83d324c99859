/**
 * Crash-safety in CI for MariaDB: the real worker process is SIGKILLed between the fence and the promotion
 * (inside the MASTER_GTID_WAIT catch-up, and between STOP SLAVE and RESET SLAVE ALL), and inside a rolling
 * restart just before a node is restarted; a fresh worker must finish with exactly one writable node, every
 * replica converged on it, every acknowledged commit present, never two writable nodes.
 * An unplanned failover is killed between STOP SLAVE and RESET SLAVE ALL on the promoted node; the dead
 * primary, restarted, must be fenced back as a replica.
 * `npm run chaos -- switchover-mysql|rolling-restart-mysql|failover-mysql` run every kill point.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { BACKUP_MYSQL, FAILOVER_MYSQL, ROLLING_RESTART_MYSQL, SWITCHOVER_MYSQL, runMysqlChaos } from '../../bench/chaos';
import { startMysqlLab, type MysqlLab } from '../../bench/lab';

describe('MariaDB runbooks survive SIGKILL of the worker', () => {
  let lab: MysqlLab;
  beforeAll(async () => {
    lab = await startMysqlLab({ cluster: 'ci-chaos-maria', address: inject('temporalAddress'), inventory: { routingHook: 'true', controller: true }, log: () => undefined });
  });
  afterAll(async () => {
    await lab?.close();
  });

  it('switchover: one writable node, converged GTIDs, no lost commit at each kill point', async () => {
    const points = ['inside:ensureMysqlCaughtUp.loop', 'inside:ensureMysqlPrimary.stopped'];
    const lines: string[] = [];
    const s = await runMysqlChaos(lab, SWITCHOVER_MYSQL, points, (m) => lines.push(m));
    for (const p of s.points) expect(p, lines.join('\n')).toMatchObject({ killed: true, completed: true, lostAckedWrites: 0, multiplePrimaries: 0 });
    for (const p of s.points) expect(p.acked).toBeGreaterThan(0);
  }, 300_000);

  it('rolling restart: every node started exactly once on the new variable, no lost commit', async () => {
    const points = ['inside:ensureMysqlNodeRestarted.beforeRestart'];
    const lines: string[] = [];
    const s = await runMysqlChaos(lab, ROLLING_RESTART_MYSQL, points, (m) => lines.push(m));
    for (const p of s.points) expect(p, lines.join('\n')).toMatchObject({ killed: true, completed: true, lostAckedWrites: 0, multiplePrimaries: 0 });
  }, 300_000);

  it('unplanned failover: one writable node, the returned old primary a replica of it, no lost commit', async () => {
    const lines: string[] = [];
    const s = await runMysqlChaos(lab, FAILOVER_MYSQL, ['inside:ensureMysqlPrimary.stopped'], (m) => lines.push(m));
    for (const p of s.points) expect(p, lines.join('\n')).toMatchObject({ killed: true, completed: true, lostAckedWrites: 0, multiplePrimaries: 0 });
    for (const p of s.points) expect(p.acked).toBeGreaterThan(0);
  }, 300_000);

  it('backup: killed while streaming the dump from a replica; the retry finishes it good, the replica applies again', async () => {
    const lines: string[] = [];
    const s = await runMysqlChaos(lab, BACKUP_MYSQL, ['inside:takeBackup.streaming'], (m) => lines.push(m));
    for (const p of s.points) expect(p, lines.join('\n')).toMatchObject({ killed: true, completed: true, lostAckedWrites: 0, multiplePrimaries: 0 });
  }, 300_000);
});
