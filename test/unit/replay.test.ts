/**
 * Replay: committed histories of real runs of every workflow type (bench/record-histories.ts records them against
 * real servers) must replay against the current workflow code, issuing the same commands with the same inputs
 * (test/replay/check.ts). A change that breaks running workflows fails here, before it is deployed.
 * Re-record with `npx tsx bench/record-histories.ts` only for intended, patched changes.
 */
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { describe, expect, it } from 'vitest';
import { KNOWN_UNPATCHED_INPUT_CHANGES, replayAndCompare } from '../replay/check';

const DIR = path.join(__dirname, '..', 'histories');
const ROOT = path.join(__dirname, '..', '..');

type HistoryJson = { events: Record<string, Record<string, unknown> & { input?: { payloads?: { data: string }[] } }>[] };
const readJson = (f: string): HistoryJson => JSON.parse(readFileSync(path.join(DIR, f), 'utf8')) as HistoryJson;

/** Every workflow type the worker registers: the names workflows/index.ts exports. */
function exportedWorkflowTypes(): string[] {
  const src = readFileSync(path.join(ROOT, 'workflows', 'index.ts'), 'utf8');
  return [...src.matchAll(/export\s*\{([^}]*)\}\s*from/g)].flatMap((m) => m[1].split(',').map((s) => s.trim()).filter(Boolean));
}

const workflowTypeOf = (h: HistoryJson): string => (h.events[0].workflowExecutionStartedEventAttributes as { workflowType: { name: string } }).workflowType.name;

/** The monitor's activity-path histories (each continued as new, or the failover child one of them started). */
const WATCH_HISTORIES = ['monitor-redis-watch-continued-as-new', 'monitor-redis-watch-failover', 'failover-redis-by-watch', 'monitor-mysql-watch-continued-as-new', 'monitor-mysql-watch-failover', 'failover-mysql-by-watch'];

describe('replay of committed histories', () => {
  const files = readdirSync(DIR).filter((f) => f.endsWith('.json'));

  it('has the histories it promises', () => {
    const required = [
      // switchover (router) on both engines: completed, crashed and resumed, refused, dry run, gated, undone
      'switchover-redis-completed', 'switchover-redis-crashed-resumed', 'switchover-redis-dry-run', 'switchover-redis-refused',
      'switchover-redis-approved', 'switchover-redis-aborted',
      'switchover-mysql-completed', 'switchover-mysql-crashed-resumed', 'switchover-mysql-dry-run', 'switchover-mysql-refused',
      'rolling-restart-redis-completed', 'rolling-restart-redis-crashed-resumed', 'rolling-restart-mysql-completed',
      'failover-redis-completed', 'backup-redis-completed', 'backup-redis-crashed-resumed',
      // approval rejected and timed out; a switchover undone after the handover began (failure after the fence)
      'switchover-redis-rejected', 'switchover-redis-approval-timeout', 'switchover-redis-undone',
      // the engine's roll started as its own workflow type, and its child switchover
      'rolling-restart-redis-direct', 'switchover-redis-child-of-roll',
      // backups: started by a Temporal Schedule (run, and skipped while the cluster is held), verified, restored
      'backup-redis-scheduled', 'backup-redis-scheduled-skipped', 'backup-redis-verify', 'restore-redis-scratch',
      // the monitor: routed, continued as new, a run that started a failover (and that failover)
      'monitor-redis', 'monitor-redis-continued-as-new', 'monitor-redis-failover', 'failover-redis-by-monitor',
      'restore-redis-node-refused', 'switchover-redis-sentinel', 'rolling-restart-redis-sentinel', 'rolling-restart-redis-cluster',
      // MariaDB: the same paths
      'switchover-mysql-undone', 'rolling-restart-mysql-direct', 'switchover-mysql-child-of-roll',
      'backup-mysql-completed', 'backup-mysql-scheduled', 'backup-mysql-scheduled-skipped', 'backup-mysql-verify', 'restore-mysql-scratch',
      'failover-mysql-completed', 'monitor-mysql', 'monitor-mysql-continued-as-new', 'monitor-mysql-failover', 'failover-mysql-by-monitor',
      // Dolt (sql-server cluster mode)
      'switchover-dolt-completed', 'switchover-dolt-crashed-resumed', 'switchover-dolt-dry-run', 'switchover-dolt-refused', 'failover-dolt-completed',
      'switchover-dolt-direct', 'failover-dolt-direct',
      // a replica provisioned from a physical backup, asked for a node that already replicates: refused
      'provision-replica-mysql-refused',
      'maintenance-redis',
      // the monitor's patched path ('monitor-detection-in-activity'): watchRedisCluster / watchMysqlCluster return a
      // verdict; routed, a quiet run continued as new, the next run starting the failover child and fencing
      // (rejoining) the returning old primary, and that child
      ...WATCH_HISTORIES,
      'monitor-redis-watch', 'monitor-mysql-watch',
      // Redis Cluster: switchover --shard and failover --shard (routed through switchover / failover)
      'switchover-redis-cluster-shard', 'failover-redis-cluster-shard',
      // failover --shard with its probes numbered (PATCH_NUMBERED_PROBES): a swap of two of them is caught
      'failover-redis-cluster-shard-numbered',
      // point-in-time recovery: the archiver's first run (continued as new), a restore to a GTID, one refused
      'binlog-archiver-mysql', 'pitr-restore-mysql-completed', 'pitr-restore-mysql-refused', 'pitr-restore-mysql-node', 'pitr-restore-mysql-node-refused',
    ];
    expect(files).toEqual(expect.arrayContaining(required.map((f) => `${f}.json`)));
  });

  it('has at least one history of every workflow type the worker registers', () => {
    const types = exportedWorkflowTypes();
    expect(types.length).toBeGreaterThan(10);
    const covered = new Set(files.map((f) => workflowTypeOf(readJson(f))));
    expect(types.filter((t) => !covered.has(t)), 'workflow types without a committed history').toEqual([]);
  });

  it('each history names its nodes apart: same-type activities on different nodes have different inputs', () => {
    let pairs = 0;
    for (const f of files) {
      const byType = new Map<string, string[]>();
      for (const e of readJson(f).events) {
        const a = e.activityTaskScheduledEventAttributes as { activityType: { name: string }; input?: { payloads?: { data: string }[] } } | undefined;
        if (!a) continue;
        const input = Buffer.from(a.input?.payloads?.[0]?.data ?? '', 'base64').toString();
        const node = (JSON.parse(input || '{}') as { node?: unknown }).node;
        if (typeof node !== 'string') continue;
        byType.set(a.activityType.name, [...(byType.get(a.activityType.name) ?? []), node]);
      }
      for (const [type, nodes] of byType) {
        if (nodes.length < 2) continue;
        pairs++;
        expect(new Set(nodes).size, `${f}: every ${type} targets ${nodes[0]}`).toBeGreaterThan(1);
      }
    }
    expect(pairs).toBeGreaterThan(0);
  });

  it('replays every history without non-determinism, issuing the recorded commands with the recorded inputs', async () => {
    const histories = files.map((f) => ({ workflowId: f, history: historyFromJSON(readJson(f)) }));
    const results = await replayAndCompare(histories);
    expect(results.map((r) => r.workflowId).sort()).toEqual([...files].sort());
    for (const r of results) {
      expect(r.error, `${r.workflowId}: ${String(r.error)}`).toBeUndefined();
      expect(r.mismatch, `${r.workflowId}: command ${r.mismatch?.index} differs:\n  history: ${r.mismatch?.history}\n  replay:  ${r.mismatch?.replay}`).toBeUndefined();
    }
    for (const k of KNOWN_UNPATCHED_INPUT_CHANGES) expect(results.find((r) => r.workflowId === k.history)?.tolerated, `${k.history}: the listed change is no longer seen; remove it`).not.toEqual([]);
    for (const r of results) if (!KNOWN_UNPATCHED_INPUT_CHANGES.some((k) => k.history === r.workflowId)) expect(r.tolerated).toEqual([]);
    expect(results.reduce((n, r) => n + r.compared, 0)).toBeGreaterThan(files.length);
  }, 240_000);

  it('fails when two activities of one type swap their inputs, which the SDK determinism check alone lets through', async () => {
    const name = 'switchover-redis-completed.json';
    const original = readJson(name);
    const mutated = JSON.parse(JSON.stringify(original)) as HistoryJson;
    const scheduled = mutated.events
      .map((e) => e.activityTaskScheduledEventAttributes as { activityType: { name: string }; input: { payloads: { data: string }[] } } | undefined)
      .filter((a) => a?.activityType.name === 'ensureRedisReplicaOf');
    expect(scheduled).toHaveLength(2);
    const [a, b] = scheduled as NonNullable<(typeof scheduled)[number]>[];
    expect(a.input.payloads[0].data, 'the two repoints differ in their input').not.toEqual(b.input.payloads[0].data);
    [a.input, b.input] = [b.input, a.input];

    const [orig, swapped] = await replayAndCompare([
      { workflowId: `original-${name}`, history: historyFromJSON(original) },
      { workflowId: `swapped-${name}`, history: historyFromJSON(mutated) },
    ]).then((rs) => [rs.find((r) => r.workflowId.startsWith('original'))!, rs.find((r) => r.workflowId.startsWith('swapped'))!]);
    expect(orig.error).toBeUndefined();
    expect(orig.mismatch).toBeUndefined();
    // The SDK replays the swapped history without complaint: it matches activity types, not inputs.
    expect(swapped.error).toBeUndefined();
    // The command check names the first swapped activity.
    expect(swapped.mismatch?.history).toMatch(/^activity ensureRedisReplicaOf /);
    expect(swapped.mismatch?.replay).toMatch(/^activity ensureRedisReplicaOf /);
    expect(swapped.mismatch?.history).not.toEqual(swapped.mismatch?.replay);
  }, 240_000);

  it('a listed, known input change tolerates exactly that difference: a further swap in the same history still fails', async () => {
    const name = 'switchover-mysql-completed.json';
    const mutated = readJson(name);
    const repoints = mutated.events
      .map((e) => e.activityTaskScheduledEventAttributes as { activityType: { name: string }; input: { payloads: { data: string }[] } } | undefined)
      .filter((a) => a?.activityType.name === 'ensureMysqlReplicaOf') as { input: { payloads: { data: string }[] } }[];
    expect(repoints).toHaveLength(2);
    expect(repoints[0].input.payloads[0].data).not.toEqual(repoints[1].input.payloads[0].data);
    [repoints[0].input, repoints[1].input] = [repoints[1].input, repoints[0].input];
    const [r] = await replayAndCompare([{ workflowId: name, history: historyFromJSON(mutated) }]);
    expect(r.error).toBeUndefined();
    expect(r.tolerated.map((m) => m.history)).toEqual([expect.stringMatching(/^activity ensureMysqlPrimary /)]);
    expect(r.mismatch?.history).toMatch(/^activity ensureMysqlReplicaOf /);
    expect(r.mismatch?.index).toBeGreaterThan(r.tolerated[0].index);
  }, 240_000);

  it('fails when a child workflow or a continue-as-new changes its input', async () => {
    const name = 'rolling-restart-redis-completed.json';
    const mutated = readJson(name);
    const child = mutated.events.map((e) => e.startChildWorkflowExecutionInitiatedEventAttributes).find(Boolean) as { input: { payloads: { data: string }[] } } | undefined;
    expect(child, `${name} starts a child switchover`).toBeDefined();
    const arg = JSON.parse(Buffer.from(child!.input.payloads[0].data, 'base64').toString()) as { to: string };
    child!.input.payloads[0].data = Buffer.from(JSON.stringify({ ...arg, to: `${arg.to}-other` })).toString('base64');

    const monitorName = 'monitor-redis-continued-as-new.json';
    const monitor = readJson(monitorName);
    const can = monitor.events.map((e) => e.workflowExecutionContinuedAsNewEventAttributes).find(Boolean) as { input: { payloads: { data: string }[] } } | undefined;
    expect(can, `${monitorName} continues as new`).toBeDefined();
    const state = JSON.parse(Buffer.from(can!.input.payloads[0].data, 'base64').toString()) as { roundsPerRun: number };
    can!.input.payloads[0].data = Buffer.from(JSON.stringify({ ...state, roundsPerRun: state.roundsPerRun + 1 })).toString('base64');

    const rs = await replayAndCompare([
      { workflowId: `child-${name}`, history: historyFromJSON(mutated) },
      { workflowId: `can-${monitorName}`, history: historyFromJSON(monitor) },
    ]);
    const r = rs.find((x) => x.workflowId.startsWith('child-'))!;
    expect(r.error).toBeUndefined();
    expect(r.mismatch?.history).toMatch(/^child redisSwitchover .*-other/);
    expect(r.mismatch?.replay).toMatch(/^child redisSwitchover /);
    const c = rs.find((x) => x.workflowId.startsWith('can-'))!;
    expect(c.error).toBeUndefined();
    expect(c.mismatch?.history).toMatch(/^continueAsNew redisMonitor .*"roundsPerRun":41/);
    expect(c.mismatch?.replay).toMatch(/^continueAsNew redisMonitor .*"roundsPerRun":40/);
  }, 240_000);

  it('fails when a command of a monitor activity-path or Redis Cluster shard history changes its input', async () => {
    // In each: the last activity or child workflow started, its input given one more field.
    const names = [...WATCH_HISTORIES, 'switchover-redis-cluster-shard', 'failover-redis-cluster-shard', 'failover-redis-cluster-shard-numbered'];
    const mutated = names.map((n) => {
      const h = readJson(`${n}.json`);
      const cmds = h.events
        .map((e) => (e.activityTaskScheduledEventAttributes ?? e.startChildWorkflowExecutionInitiatedEventAttributes) as { input: { payloads: { data: string }[] } } | undefined)
        .filter((x): x is { input: { payloads: { data: string }[] } } => !!x?.input?.payloads?.length);
      expect(cmds.length, `${n} issues commands`).toBeGreaterThan(0);
      const last = cmds[cmds.length - 1].input.payloads[0];
      last.data = Buffer.from(JSON.stringify({ ...(JSON.parse(Buffer.from(last.data, 'base64').toString()) as object), changed: true })).toString('base64');
      return { workflowId: `mutated-${n}`, history: historyFromJSON(h) };
    });
    const rs = await replayAndCompare(mutated);
    for (const n of names) {
      const r = rs.find((x) => x.workflowId === `mutated-${n}`)!;
      expect(r.error, n).toBeUndefined();
      expect(r.mismatch?.history, n).toMatch(/"changed":true/);
      expect(r.mismatch?.replay, n).not.toMatch(/"changed":true/);
    }
  }, 240_000);

  it("fails when failover --shard's probes swap places: numbered, their inputs differ (the history from before the patch replays unnumbered)", async () => {
    const name = 'failover-redis-cluster-shard-numbered.json';
    const mutated = readJson(name);
    const probes = mutated.events
      .map((e) => e.activityTaskScheduledEventAttributes as { activityType: { name: string }; input: { payloads: { data: string }[] } } | undefined)
      .filter((a) => a?.activityType.name === 'probeRedisSpecs') as { input: { payloads: { data: string }[] } }[];
    expect(probes.length).toBeGreaterThanOrEqual(3); // the probe and the confirmation rounds
    const inputs = probes.map((p) => Buffer.from(p.input.payloads[0].data, 'base64').toString());
    expect(new Set(inputs).size, inputs.join(' ')).toBe(probes.length);
    const before = readJson('failover-redis-cluster-shard.json').events.filter((e) => (e.activityTaskScheduledEventAttributes as { activityType?: { name: string } } | undefined)?.activityType?.name === 'probeRedisSpecs');
    expect(before.length).toBeGreaterThanOrEqual(3);
    [probes[1].input, probes[2].input] = [probes[2].input, probes[1].input];
    const [r] = await replayAndCompare([{ workflowId: name, history: historyFromJSON(mutated) }]);
    expect(r.error).toBeUndefined();
    expect(r.mismatch?.history).toMatch(/^activity probeRedisSpecs .*"probe":2/);
    expect(r.mismatch?.replay).toMatch(/^activity probeRedisSpecs .*"probe":1/);
  }, 240_000);
});
