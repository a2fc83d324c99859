/**
 * Maintenance windows (issue 21 item 9) through the real CLI, a real worker and a real Redis fleet:
 *  - `handover maintenance --node N --until T` opens a window held by the cluster's maintenance workflow;
 *    `status` shows it in the node's MAINTENANCE column (and --json); `--clear` ends it;
 *  - a rolling restart (default `--maintenance skip`) leaves the node in maintenance as it was and ends done
 *    with warnings (exit 5) naming it;
 *  - `rolling-restart --maintenance wait` waits for a node's window to end, then restarts it (exit 0, where the
 *    cluster stands);
 *  - a failover does not promote a node in maintenance;
 *  - the monitor never fails over to a node in maintenance: with every replica in one, a dead primary is not
 *    replaced (its failover is refused, nothing promoted).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadInventory } from '../../inventory/load';
import { startRedisFleet, waitForReplication, type RedisFleet } from '../../sandbox/redis';
import { runCli, startTestWorker, until, type TestWorker } from '../helpers';

describe('maintenance windows', () => {
  let fleet: RedisFleet;
  let tw: TestWorker;
  let inventory: string;
  beforeAll(async () => {
    fleet = await startRedisFleet({ cluster: 'mt' });
    inventory = fleet.writeInventory();
    tw = await startTestWorker({ inventory: () => loadInventory(inventory) });
  });
  afterAll(async () => {
    await tw?.stop();
    await fleet?.stop();
  });
  const conn = () => ['--address', tw.address, '--task-queue', tw.taskQueue, '--inventory', inventory];
  const replicas = async () => {
    const roles = await fleet.roles();
    return fleet.nodes.filter((n) => roles[n.id] === 'slave');
  };
  const clear = (node: string) => runCli(['maintenance', '--cluster', 'mt', '--node', node, '--clear', ...conn()]);
  const configOf = async (id: string, key: string, value?: string) => {
    const c = fleet.nodes.find((n) => n.id === id)!.client();
    try {
      if (value !== undefined) await c.config('SET', key, value);
      return ((await c.config('GET', key)) as string[])[1];
    } finally {
      c.disconnect();
    }
  };

  it('set, shown by status (text and --json), cleared; bad input refused', async () => {
    const [r] = await replicas();
    const set = await runCli(['maintenance', '--cluster', 'mt', '--node', r.id, '--until', '1h', '--reason', 'kernel patch', ...conn()]);
    expect(set.code, set.err).toBe(0);
    expect(set.out.trim()).toMatch(new RegExp(`^${r.id} is in maintenance until \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z \\(kernel patch(, by [^)]*)?\\)$`));
    try {
      const st = await runCli(['status', '--cluster', 'mt', ...conn()]);
      expect(st.code, st.err).toBe(0);
      expect(st.out).toMatch(/^ {2}NODE +ADDRESS +ROLE +LAG +VERSION +PENDING RESTART +MAINTENANCE +LINK$/m);
      expect(st.out).toMatch(new RegExp(`^ {2}${r.id} +\\S+ +replica of \\S+ +\\d+ B +(redis|valkey) \\S+ +no +until \\S+Z \\(kernel patch(, by [^)]*)?\\) +up$`, 'm'));
      const js = JSON.parse((await runCli(['status', '--cluster', 'mt', '--json', ...conn()])).out) as { clusters: { nodes: { node: string; maintenance?: { reason?: string } }[] }[] };
      expect(js.clusters[0].nodes.find((n) => n.node === r.id)!.maintenance).toMatchObject({ node: r.id, reason: 'kernel patch' });
      expect(js.clusters[0].nodes.filter((n) => n.maintenance)).toHaveLength(1);
    } finally {
      const c = await clear(r.id);
      expect(c.code, c.err).toBe(0);
      expect(c.out.trim()).toBe('no maintenance on mt');
    }
    const st = await runCli(['status', '--cluster', 'mt', '--json', ...conn()]);
    expect((JSON.parse(st.out) as { clusters: { nodes: { maintenance?: unknown }[] }[] }).clusters[0].nodes.filter((n) => n.maintenance)).toEqual([]);
    for (const [args, msg] of [
      [['--node', r.id], /--node needs --until T/],
      [['--node', r.id, '--until', '5'], /--until 5: a duration needs a unit; say 5s or 5m/],
      [['--node', r.id, '--until', '2001-01-01T00:00Z'], /that time has passed/],
      [['--node', 'nope', '--until', '1h'], /refused \(UnknownNode\)/],
      [['--node', r.id, '--clear'], /refused \(NotFound\): no maintenance on mt/],
    ] as [string[], RegExp][]) {
      const x = await runCli(['maintenance', '--cluster', 'mt', ...args, ...conn()]);
      expect(x.code, `${args.join(' ')}: ${x.err}`).toBe(2);
      expect(x.err).toMatch(msg);
    }
  });

  it('rolling restart --maintenance skip (the default) leaves a node in maintenance as it was: exit 5 naming it', async () => {
    const [away] = await replicas();
    const hzOf = async (id: string) => {
      const c = fleet.nodes.find((n) => n.id === id)!.client();
      try {
        return ((await c.config('GET', 'hz')) as string[])[1];
      } finally {
        c.disconnect();
      }
    };
    const before = await hzOf(away.id);
    const hz = String(Number(before) + 7);
    expect((await runCli(['maintenance', '--cluster', 'mt', '--node', away.id, '--until', '10m', ...conn()])).code).toBe(0);
    // Another node drifted at runtime (appendonly yes, its file says no): the roll persists hz and the role only.
    const drifted = fleet.nodes.find((n) => n.id !== away.id)!;
    const dc = drifted.client();
    await dc.config('SET', 'appendonly', 'yes');
    dc.disconnect();
    try {
      const r = await runCli(['rolling-restart', '--cluster', 'mt', '--set', `hz=${hz}`, '--wait', ...conn()]);
      const conf = readFileSync(path.join(fleet.baseDir, drifted.id, 'redis.conf'), 'utf8');
      expect(conf).toMatch(new RegExp(`^hz ${hz}$`, 'm'));
      expect(conf).toMatch(/^appendonly no$/m);
      expect(conf).not.toMatch(/^appendonly yes$/m);
      expect(r.out).toMatch(new RegExp(`persist ${drifted.id}: .*persisted only the role in \\S+ \\(not CONFIG REWRITE\\): runtime differs from the file in appendonly, left unpersisted`));
      expect(r.code, `${r.out}\n${r.err}`).toBe(5);
      expect(r.out).toMatch(new RegExp(`NOT restarted ${away.id}: ${away.id} is in maintenance until \\S+( \\(by [^)]*\\))? \\(--maintenance skip\\)`));
      expect(r.err).toMatch(new RegExp(`^done with warnings: ${away.id} not restarted: ${away.id} is in maintenance`, 'm'));
      expect(await hzOf(away.id)).toBe(before);
      for (const n of fleet.nodes.filter((x) => x.id !== away.id)) expect(await hzOf(n.id)).toBe(hz);
    } finally {
      await clear(away.id);
    }
  });

  it('rolling restart --maintenance wait: waits for the window to end, then restarts that node (exit 0)', async () => {
    // The first replica by name is the roll's first node; every other node already runs the new hz (set at
    // runtime), so the roll has that one node to restart and must wait for its window first.
    const [away] = (await replicas()).sort((a, b) => (a.id < b.id ? -1 : 1));
    const hz = String(Math.max(...(await Promise.all(fleet.nodes.map((n) => configOf(n.id, 'hz')))).map(Number)) + 3);
    for (const n of fleet.nodes.filter((x) => x.id !== away.id)) await configOf(n.id, 'hz', hz);
    const set = await runCli(['maintenance', '--cluster', 'mt', '--node', away.id, '--until', '6s', ...conn()]);
    expect(set.code, set.err).toBe(0);
    const untilMs = Date.parse(/until (\S+Z)/.exec(set.out)![1]);
    const r = await runCli(['rolling-restart', '--cluster', 'mt', '--set', `hz=${hz}`, '--maintenance', 'wait', '--wait', ...conn()]);
    expect(r.code, `${r.out}\n${r.err}`).toBe(0);
    expect(Date.now()).toBeGreaterThanOrEqual(untilMs);
    expect(r.out).toMatch(new RegExp(`wait for the maintenance of ${away.id} to end`));
    expect(r.out).toMatch(new RegExp(`restarted ${away.id} \\(replica\\)`));
    expect(r.out).toMatch(/^ {2}where it stands: primary \S+$/m);
    expect(r.out).not.toMatch(/NOT following/);
    for (const n of fleet.nodes) expect(await configOf(n.id, 'hz')).toBe(hz);
  });

  it('a failover does not promote a node in maintenance', async () => {
    const primary = (await fleet.primary())!;
    await waitForReplication(fleet, primary.id);
    const [away, other] = (await replicas()).sort((a, b) => (a.id < b.id ? -1 : 1));
    expect((await runCli(['maintenance', '--cluster', 'mt', '--node', away.id, '--until', '10m', ...conn()])).code).toBe(0);
    try {
      await primary.stop('SIGKILL');
      const r = await runCli(['failover', '--cluster', 'mt', '--force', '--wait', '--json', ...conn()]);
      expect([0, 5], r.err).toContain(r.code);
      const report = JSON.parse(r.out.trim().split('\n').pop()!) as { newPrimary: string; audit: string[]; standing: unknown };
      expect(report.newPrimary).toBe(other.id);
      // Where it stands: the node in maintenance follows the new primary; the dead one does not, and why.
      expect(report.standing).toEqual({
        primary: other.id,
        previousPrimary: primary.id,
        changed: true,
        following: [away.id],
        notFollowing: [{ node: primary.id, reason: expect.stringMatching(/^the old primary is down: the monitor \(or a re-run\) makes it a replica when it returns$/) }],
      });
      expect(report.audit).toContainEqual(expect.stringMatching(new RegExp(`^maintenance: not candidates: ${away.id} is in maintenance until`)));
      expect((await fleet.roles())[other.id]).toBe('master');
    } finally {
      await clear(away.id);
    }
  });

  it('the monitor never fails over to a node in maintenance: every replica in one, the dead primary is not replaced', async () => {
    // A whole fleet whatever ran before: every node up and replicating from the primary.
    const primary = (await fleet.primary())!;
    for (const n of fleet.nodes.filter((x) => x !== primary)) {
      if (!n.pid()) await n.start();
      const c = n.client();
      await c.call('REPLICAOF', primary.host, String(primary.port));
      c.disconnect();
    }
    await waitForReplication(fleet, primary.id);
    const reps = fleet.nodes.filter((n) => n !== primary);
    for (const r of reps) expect((await runCli(['maintenance', '--cluster', 'mt', '--node', r.id, '--until', '10m', ...conn()])).code).toBe(0);
    const status = async () => JSON.parse((await runCli(['monitor', '--cluster', 'mt', '--status', '--json', ...conn()])).out.trim()) as { lastKnown?: { primary: string }; lastVerdict?: string; failovers: unknown[] };
    const started = await runCli(['monitor', '--cluster', 'mt', ...conn()]);
    expect(started.code, started.err).toBe(0);
    try {
      await until('the monitor knows the primary', async () => (await status()).lastKnown?.primary === primary.id, 20_000, 250);
      await primary.stop('SIGKILL');
      // Either the monitor tries and its failover is refused, or it keeps watching without trying: in both, ten
      // rounds after it first calls the primary dead it must not have failed over.
      let deadAtRound: number | undefined;
      const seen = await until('the monitor tried and did not fail over, or watched 10 rounds past the dead verdict', async () => {
        const s = (await status()) as Awaited<ReturnType<typeof status>> & { rounds: number };
        if (/failover did not run or failed/.test(s.lastVerdict ?? '')) return s;
        if (deadAtRound === undefined && /unreachable/.test(s.lastVerdict ?? '')) deadAtRound = s.rounds;
        return deadAtRound !== undefined && s.rounds >= deadAtRound + 10 ? s : undefined;
      }, 45_000, 250).catch(async (e: Error) => {
        throw new Error(`${e.message}; the monitor says ${JSON.stringify(await status())}`);
      });
      expect(seen.failovers).toEqual([]);
      const after = await fleet.roles();
      for (const r of reps) expect(after[r.id]).toBe('slave');
    } finally {
      await runCli(['monitor', '--cluster', 'mt', '--stop', ...conn()]);
      for (const r of reps) await clear(r.id);
    }
  });
});
