/**
 * Dolt (sql-server cluster mode) under chaos: the engine probe (a split-brain sampler over the cluster role and
 * read_only, the transactional SqlWriter, an end-state reader over role, epoch and the primary's
 * dolt_cluster_status) and the kill points of the Dolt switchover. "Writable" is role primary and read_only 0:
 * what the application user can commit on.
 */
import mysql from 'mysql2/promise';
import { runSwitchover } from '../../client/commands/switchover';
import { DOLT_APP_DB, type DoltFleet } from '../../sandbox/dolt';
import { sleep } from '../../sandbox/ports';
import { SqlWriter } from '../../sandbox/sql-writer';
import type { DoltLab } from '../lab';
import { chaosWriter, quietIO, started, switchedOver } from './common';
import type { EndNode, EngineProbe, NodeView, Scenario } from './types';
import { convergeOnTheWritable } from './types';

interface RoleRow {
  role: string;
  epoch: number;
  ro: number;
}

/**
 * One root session per node for a sampler, reopened after a failure (a restart or a role change ends every
 * session of the server): `row` reads the first row of `sql` with a 1 s bound; `drop` forgets a node's session;
 * `close` every one.
 */
export function rootSessions(nodes: { id: string; host: string; port: number }[]) {
  const conns = new Map<string, mysql.Connection>();
  const drop = (id: string) => {
    conns.get(id)?.destroy();
    conns.delete(id);
  };
  return {
    drop,
    close: () => {
      for (const id of [...conns.keys()]) drop(id);
    },
    async row<T>(id: string, sql: string): Promise<T> {
      let c = conns.get(id);
      if (!c) {
        const n = nodes.find((x) => x.id === id)!;
        c = await mysql.createConnection({ host: n.host, port: n.port, user: 'root', connectTimeout: 1000 });
        c.on('error', () => drop(id));
        conns.set(id, c);
      }
      const [r] = await c.query({ sql, timeout: 1000 });
      return (r as T[])[0];
    },
  };
}

export function doltProbe(fleet: DoltFleet): EngineProbe {
  const sessions = rootSessions(fleet.nodes);
  const role = (id: string) => sessions.row<RoleRow>(id, 'SELECT @@GLOBAL.dolt_cluster_role AS role, @@GLOBAL.dolt_cluster_role_epoch AS epoch, @@GLOBAL.read_only AS ro');
  const hash = async (id: string) => (await fleet.sql<{ h: string }[]>(id, 'SELECT dolt_hashof_db() AS h', [], DOLT_APP_DB))[0].h;
  const probe: EngineProbe = {
    engine: 'dolt',
    nodes: fleet.nodes.map((n) => n.id),
    async views() {
      const out: Record<string, NodeView> = {};
      await Promise.all(
        fleet.nodes.map(async (n) => {
          try {
            const r = await role(n.id);
            out[n.id] = r.role === 'primary' && Number(r.ro) === 0 ? 'writable' : 'read-only';
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
      const primary = Object.entries(st).find(([, s]) => s.up && s.role === 'primary');
      let rows: { err: string | null }[] = [];
      if (primary) rows = await fleet.sql<{ err: string | null }[]>(primary[0], 'SELECT current_error AS err FROM dolt_cluster.dolt_cluster_status').catch(() => []);
      return Object.fromEntries(
        fleet.nodes.map((n): [string, EndNode] => {
          const s = st[n.id];
          if (!s?.up) return [n.id, { up: false, writable: false, detail: 'no answer' }];
          const standby = s.role === 'standby' && primary && st[primary[0]].epoch === s.epoch;
          return [
            n.id,
            {
              up: true,
              writable: s.role === 'primary' && s.readOnly === false,
              follows: standby ? primary![0] : undefined,
              linkUp: standby ? rows.length > 0 && rows.every((r) => !r.err) : undefined,
              detail: `${s.role}@${s.epoch} read_only=${s.readOnly ? 1 : 0}`,
            },
          ];
        }),
      );
    },
    /** Every other node (but `exclude`) a standby at the primary's epoch, the primary's pushes caught up, the same app database hash. */
    async converge(primary, timeoutMs, exclude) {
      const deadline = Date.now() + timeoutMs;
      let why = '';
      for (;;) {
        try {
          const st = await fleet.state();
          const rows = await fleet.sql<{ lag_ms: number | null; err: string | null }[]>(primary, 'SELECT replication_lag_millis AS lag_ms, current_error AS err FROM dolt_cluster.dolt_cluster_status');
          const others = fleet.nodes.filter((n) => n.id !== primary && !exclude.includes(n.id));
          const bad = others.filter((n) => !(st[n.id]?.up && st[n.id].role === 'standby' && st[n.id].epoch === st[primary].epoch));
          const behind = rows.filter((r) => r.err || r.lag_ms === null || Number(r.lag_ms) !== 0);
          const h = await hash(primary);
          const differ = bad.length || behind.length ? [] : (await Promise.all(others.map(async (n) => ((await hash(n.id)) === h ? undefined : n.id)))).filter(Boolean);
          if (st[primary]?.role === 'primary' && !bad.length && !behind.length && !differ.length) return undefined;
          why = `${JSON.stringify(st)} rows ${JSON.stringify(rows)}${differ.length ? ` hash differs on ${differ.join(',')}` : ''}`;
        } catch (e) {
          why = (e as Error).message;
        }
        if (Date.now() > deadline) return `within ${timeoutMs} ms: ${why}`;
        await sleep(100);
      }
    },
    reset: () => convergeOnTheWritable(probe),
  };
  return probe;
}

/** Every activity boundary of a Dolt switchover of a pair, plus the points inside its role changes. */
export const SWITCHOVER_DOLT_POINTS = [
  ...['describeCluster', 'probeDoltCluster', 'probeDoltCluster#2', 'ensureDoltStandbysCaughtUp', 'ensureDoltRole', 'verifyDoltSameData', 'ensureDoltRole#2', 'verifyDoltTopology'].flatMap((a) => [
    `before:${a}`,
    `after:${a}`,
  ]),
  'inside:ensureDoltRole.standby',
  'inside:ensureDoltRole.primary',
];

export const SWITCHOVER_DOLT: Scenario<DoltLab> = {
  name: 'switchover-dolt',
  engine: 'dolt',
  minAcked: 30,
  loss: 'none',
  probe: (lab) => doltProbe(lab.fleet),
  points: SWITCHOVER_DOLT_POINTS,
  async start(lab, i, log) {
    started(await runSwitchover({ cluster: lab.fleet.cluster, address: lab.address, taskQueue: lab.taskQueue, requestedBy: `chaos run ${i}` }, quietIO(log)));
  },
  expectPrimary: switchedOver,
};

export const DOLT_SCENARIOS = [SWITCHOVER_DOLT];
