/**
 * Dolt read replicas through a remote (topology: remote-replicas) under chaos: the engine probe (a split-brain
 * sampler over read_only, the transactional SqlWriter following the writable node, an end-state reader over
 * each node's part and heads) and the kill points of the remote switchover (push, fence, same heads, promote,
 * re-point, verify). "Writable" is read_only 0: what the application user can commit on. A replica "follows"
 * the one writable node when it is read-only and pulls from the remote; it has "converged" when it holds the
 * primary's head of the app database (a read replica pulls when a transaction starts).
 */
import { runSwitchover } from '../../client/commands/switchover';
import { DOLT_REMOTE_APP_DB, DOLT_REMOTE_NAME, type DoltRemoteFleet } from '../../sandbox/dolt-remote';
import { sleep } from '../../sandbox/ports';
import { SqlWriter } from '../../sandbox/sql-writer';
import type { DoltRemoteLab } from '../lab';
import { chaosWriter, quietIO, started, switchedOver } from './common';
import type { EndNode, EngineProbe, NodeView, Scenario } from './types';
import { convergeOnTheWritable } from './types';
import { rootSessions } from './dolt';

interface PartRow {
  ro: number;
  push: string;
  pull: string;
}

export function doltRemoteProbe(fleet: DoltRemoteFleet): EngineProbe {
  const sessions = rootSessions(fleet.nodes);
  const part = (id: string) => sessions.row<PartRow>(id, 'SELECT @@GLOBAL.read_only AS ro, @@GLOBAL.dolt_replicate_to_remote AS push, @@GLOBAL.dolt_read_replica_remote AS pull');
  /** The app database's main head on a node (a fresh session: on a replica its transaction pulls first). */
  const head = async (id: string) => (await fleet.sql<{ h: string }[]>(id, "SELECT hash AS h FROM dolt_branches WHERE name = 'main'", [], DOLT_REMOTE_APP_DB))[0]?.h;
  const probe: EngineProbe = {
    engine: 'dolt',
    nodes: fleet.nodes.map((n) => n.id),
    async views() {
      const out: Record<string, NodeView> = {};
      await Promise.all(
        fleet.nodes.map(async (n) => {
          try {
            out[n.id] = Number((await part(n.id)).ro) === 0 ? 'writable' : 'read-only';
          } catch {
            sessions.drop(n.id);
            out[n.id] = 'down';
          }
        }),
      );
      return out;
    },
    closeViews() {
      sessions.close();
    },
    writer(prefix) {
      const w = new SqlWriter(fleet.nodes, fleet.appUser, fleet.appPassword, prefix);
      return chaosWriter(w, (node) => w.missingOn(fleet.nodes.find((n) => n.id === node)!));
    },
    async endState() {
      const st = await fleet.state();
      const writable = Object.entries(st).filter(([, s]) => s && !s.readOnly).map(([id]) => id);
      const primary = writable.length === 1 && st[writable[0]]!.push === DOLT_REMOTE_NAME ? writable[0] : undefined;
      return Object.fromEntries(
        fleet.nodes.map((n): [string, EndNode] => {
          const s = st[n.id];
          if (!s) return [n.id, { up: false, writable: false, detail: 'no answer' }];
          const replica = s.readOnly && s.pull === DOLT_REMOTE_NAME && s.push === '';
          return [n.id, { up: true, writable: !s.readOnly, follows: replica ? primary : undefined, linkUp: replica ? true : undefined, detail: `read_only=${s.readOnly ? 1 : 0} push='${s.push}' pull='${s.pull}'` }];
        }),
      );
    },
    /** Every other node (but `exclude`) a read-only replica of the remote holding the primary's head of the app database. */
    async converge(primary, timeoutMs, exclude) {
      const deadline = Date.now() + timeoutMs;
      let why = '';
      for (;;) {
        try {
          const st = await fleet.state();
          const want = await head(primary);
          const others = fleet.nodes.filter((n) => n.id !== primary && !exclude.includes(n.id));
          const wrong: string[] = [];
          for (const n of others) {
            const s = st[n.id];
            if (!s || !s.readOnly || s.pull !== DOLT_REMOTE_NAME || s.push !== '') wrong.push(`${n.id} ${JSON.stringify(s)}`);
            else {
              const h = await head(n.id);
              if (h !== want) wrong.push(`${n.id} at ${h}, primary at ${want}`);
            }
          }
          const p = st[primary];
          if (p && !p.readOnly && p.push === DOLT_REMOTE_NAME && !wrong.length) return undefined;
          why = `${primary} ${JSON.stringify(p)}; ${wrong.join('; ')}`;
        } catch (e) {
          why = (e as Error).message;
        }
        if (Date.now() > deadline) return `within ${timeoutMs} ms: ${why}`;
        await sleep(200);
      }
    },
    reset: () => convergeOnTheWritable(probe),
  };
  return probe;
}

/**
 * Every activity boundary of a remote switchover of three nodes (describe, probe, veto's probe, push, fence,
 * same heads, promote, re-point, follow, verify), and inside each role change: before the restart, and with
 * the node stopped (the worker dies with the node down; the fence's offline push not yet done).
 */
export const SWITCHOVER_DOLT_REMOTE_POINTS = [
  ...[
    'describeCluster',
    'probeDoltRemoteCluster',
    'probeDoltRemoteCluster#2',
    'ensureDoltPushed',
    'ensureDoltRemoteRole',
    'waitDoltSameHeads',
    'ensureDoltRemoteRole#2',
    'ensureDoltRemoteRole#3',
    'ensureDoltRemoteRole#4',
    'verifyDoltRemoteTopology',
  ].flatMap((a) => [`before:${a}`, `after:${a}`]),
  ...['fenced', 'primary', 'replica'].flatMap((r) => [`inside:ensureDoltRemoteRole.${r}`, `inside:ensureDoltRemoteRole.${r}.stopped`]),
];

export const SWITCHOVER_DOLT_REMOTE: Scenario<DoltRemoteLab> = {
  name: 'switchover-dolt-remote',
  engine: 'dolt',
  lab: { doltTopology: 'remote-replicas' },
  minAcked: 30,
  loss: 'none',
  probe: (lab) => doltRemoteProbe(lab.fleet),
  points: SWITCHOVER_DOLT_REMOTE_POINTS,
  async start(lab, i, log) {
    started(await runSwitchover({ cluster: lab.fleet.cluster, address: lab.address, taskQueue: lab.taskQueue, requestedBy: `chaos run ${i}` }, quietIO(log)));
  },
  expectPrimary: switchedOver,
};

export const DOLT_REMOTE_SCENARIOS = [SWITCHOVER_DOLT_REMOTE];
