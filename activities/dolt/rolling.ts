/**
 * Dolt rolling restart, both topologies (sql-server cluster mode; read replicas through a remote): the probe
 * the roll decides on (each node's part, whether it follows the primary, when its server started, the listed
 * system variables) and the restart of one node through the inventory's controller. Each mutating activity
 * reads first and is a no-op when its end state holds (a node already restarted since the roll saw it).
 */
import type mysql from 'mysql2/promise';
import type { DoltSpecProbe } from '../../core/dolt/rolling';
import { ErrorType, HandoverError } from '../../core/errors';
import type { HookCounts, Promotion } from '../../core/types';
import type { ClusterSpec } from '../../inventory/schema';
import { activity, heartbeatWhile } from '../activity';
import { sleep } from '../backup/scratch';
import { controllerFor } from '../controllers';
import { hookCounts } from '../hooks';
import { doltOps, doltRows, type DoltActivityDeps } from './node';
import { doltRemoteOps } from './remote';

const VARIABLE = /^[A-Za-z_][A-Za-z0-9_]*$/;

export interface DoltRollProbe {
  topology: 'replication' | 'remote-replicas';
  nodes: DoltSpecProbe[];
  policy: { verifyTimeoutMs: number; restartTimeoutMs: number; maxLagMillis: number };
  hasController: boolean;
  hooks?: HookCounts;
  audit: string;
}

/** When the server started (epoch seconds) and the listed system variables. */
async function readStartAndConfig(conn: mysql.Connection, keys: string[]): Promise<{ startedAt: number; config: Record<string, string | undefined> }> {
  const startedAt = Number((await doltRows(conn, 'SELECT UNIX_TIMESTAMP() - @@GLOBAL.uptime AS s'))[0].s);
  const config: Record<string, string | undefined> = {};
  for (const k of keys) {
    if (!VARIABLE.test(k)) throw new HandoverError(ErrorType.PreconditionFailed, `--set ${k}: not a system variable name`);
    config[k] = await doltRows(conn, `SELECT @@GLOBAL.${k} AS v`).then(
      (r) => (r[0].v === null || r[0].v === undefined ? '' : String(r[0].v)),
      () => undefined,
    );
  }
  return { startedAt, config };
}

export function createDoltRollingActivities(deps: DoltActivityDeps) {
  const ops = doltOps(deps);
  const remote = doltRemoteOps(deps);

  async function probeSpecs(c: ClusterSpec, keys: string[]): Promise<DoltSpecProbe[]> {
    const promotion = (id: string) => c.nodes.find((n) => n.id === id)?.promotion as Promotion | undefined;
    let nodes: DoltSpecProbe[];
    if (c.topology === 'remote-replicas') {
      const probes = await remote.probeAll(c as ClusterSpec & { replicationRemote: string });
      nodes = probes.map((p) => ({
        node: p.node,
        reachable: p.reachable,
        error: p.error,
        promotion: promotion(p.node),
        role: p.role === 'primary' ? 'primary' : p.role === 'replica' ? 'replica' : p.reachable ? 'other' : undefined,
        following: p.role === 'replica' && typeof p.behindCommits === 'number',
        followDetail: p.role !== 'replica' ? `${p.role ?? 'unreachable'}` : p.behindCommits === null ? `diverged: ${p.behindDetail ?? ''}` : `${p.behindCommits ?? '?'} commit(s) behind`,
      }));
    } else {
      const probes = await ops.probeAll(c);
      const primaries = probes.filter((p) => p.reachable && p.role === 'primary');
      const primary = primaries.length === 1 ? primaries[0] : undefined;
      const standbys = probes.filter((p) => p !== primary);
      const maxLag = c.policy.maxLagSeconds * 1000;
      nodes = probes.map((p) => {
        const base = { node: p.node, reachable: p.reachable, error: p.error, promotion: promotion(p.node), epoch: p.epoch };
        if (!p.reachable) return base;
        if (p === primary) return { ...base, role: 'primary' as const };
        if (p.role !== 'standby') return { ...base, role: 'other' as const, followDetail: String(p.role) };
        if (!primary) return { ...base, role: 'replica' as const, following: false, followDetail: 'no primary' };
        const rows = (primary.replication ?? []).filter((r) => r.remote === p.node || standbys.length === 1);
        const bad = rows.filter((r) => r.error || r.lagMillis === null || r.lagMillis > maxLag);
        const following = p.epoch === primary.epoch && rows.length > 0 && bad.length === 0;
        return {
          ...base,
          role: 'replica' as const,
          following,
          followDetail: p.epoch !== primary.epoch ? `standby at epoch ${p.epoch}, primary at ${primary.epoch}` : !rows.length ? `${primary.node} reports no push to it` : bad.length ? bad.map((r) => `${r.database}: ${r.error ?? `lag ${r.lagMillis ?? '?'} ms`}`).join(', ') : 'caught up',
        };
      });
    }
    await Promise.all(
      nodes.map(async (n) => {
        if (!n.reachable) return;
        const r = await ops.withNode(c, n.node, (conn) => readStartAndConfig(conn, keys)).catch((e) => {
          if (e instanceof HandoverError && e.type === ErrorType.PreconditionFailed) throw e;
          return undefined;
        });
        if (r) Object.assign(n, r);
        else Object.assign(n, { reachable: false, error: 'did not answer the second read' });
      }),
    );
    return nodes;
  }

  const policyOf = (c: ClusterSpec) => ({ verifyTimeoutMs: c.policy.verifyTimeoutMs, restartTimeoutMs: c.policy.restartTimeoutMs, maxLagMillis: c.policy.maxLagSeconds * 1000 });
  const describe = (nodes: DoltSpecProbe[]) => nodes.map((n) => (!n.reachable ? `${n.node} unreachable` : `${n.node}=${n.role}${n.role === 'replica' ? `(${n.following ? 'following' : n.followDetail})` : ''}`)).join(' ');

  return {
    /** Probe every node for the roll: part, following, start time, the listed system variables. Read-only. */
    probeDoltSpecs: activity(async ({ cluster, keys }: { cluster: string; keys: string[] }): Promise<DoltRollProbe> => {
      const c = ops.spec(cluster);
      const nodes = await probeSpecs(c, keys);
      return { topology: c.topology === 'remote-replicas' ? 'remote-replicas' : 'replication', nodes, policy: policyOf(c), hasController: !!c.controller, hooks: hookCounts(c), audit: `saw ${describe(nodes)}` };
    }),

    /**
     * Ensure `node` runs a server started more than 1 s after `sinceStartedAt` (epoch seconds, the start the roll saw), with
     * `set` written into its sql-server config: a no-op when it already does (a retried or resumed step);
     * else the controller restarts it, and the activity waits until a new server answers (see below).
     */
    ensureDoltNodeRestarted: activity(async (i: { cluster: string; node: string; sinceStartedAt: number; set: Record<string, string>; timeoutMs: number }): Promise<{ changed: boolean; audit: string }> => {
      const c = ops.spec(i.cluster);
      const started = () => ops.withNode(c, i.node, (conn) => readStartAndConfig(conn, [])).then((r) => r.startedAt, () => undefined);
      // UNIX_TIMESTAMP() and @@uptime are whole seconds read at slightly different moments: the same server's
      // start reads ±1 s apart, so only a start more than 1 s later is a new server.
      const restartedSince = (t: number | undefined) => t !== undefined && t > i.sinceStartedAt + 1;
      const before = await started();
      if (restartedSince(before)) return { changed: false, audit: `${i.node} already restarted (started at ${new Date(before! * 1000).toISOString()})` };
      const n = c.nodes.find((x) => x.id === i.node);
      if (!n) throw new HandoverError(ErrorType.UnknownNode, `cluster ${c.name} has no node ${i.node}`);
      await deps.failpoint?.('ensureDoltNodeRestarted.restart');
      const t0 = Date.now();
      const did = await heartbeatWhile(() => controllerFor(c.controller, c.name, 'dolt').restart({ node: n, set: i.set, onStopped: () => deps.failpoint?.('ensureDoltNodeRestarted.stopped') }));
      const deadline = Date.now() + i.timeoutMs;
      // A start within the same second or two as the one the roll saw (a node the handover just restarted) cannot
      // tell the servers apart. The local controller returns once the old process has exited, so whatever answers
      // after it is the new server; with another controller, a node seen down since the restart and answering again.
      const oldIsGone = c.controller?.type === 'local';
      let sawDown = false;
      await heartbeatWhile(async () => {
        for (;;) {
          const t = await started();
          if (t === undefined) sawDown = true;
          else if (restartedSince(t) || oldIsGone || sawDown) return;
          if (Date.now() > deadline) throw new HandoverError(ErrorType.VerificationFailed, `${i.node} does not answer with a new server within ${i.timeoutMs} ms of its restart`);
          await sleep(200);
        }
      });
      return { changed: true, audit: `${i.node} restarted (${did}; ${Date.now() - t0} ms)` };
    }),

    /** Wait until `node` is a replica following `primary` and caught up (as the roll's probe judges it). Read-only. */
    waitForDoltNodeReady: activity(async (i: { cluster: string; node: string; primary: string; timeoutMs: number }): Promise<{ audit: string }> => {
      const c = ops.spec(i.cluster);
      const deadline = Date.now() + i.timeoutMs;
      let why = '';
      return heartbeatWhile(async () => {
        for (;;) {
          const nodes = await probeSpecs(c, []).catch((e: Error) => {
            why = e.message;
            return [] as DoltSpecProbe[];
          });
          const p = nodes.find((x) => x.node === i.primary);
          const n = nodes.find((x) => x.node === i.node);
          if (p?.role === 'primary' && n?.role === 'replica' && n.following) return { audit: `${i.node} follows ${i.primary}: ${n.followDetail ?? 'caught up'}` };
          if (nodes.length) why = describe(nodes);
          if (Date.now() > deadline) throw new HandoverError(ErrorType.VerificationFailed, `${i.node} does not follow ${i.primary} within ${i.timeoutMs} ms of its restart: ${why}`);
          await sleep(300);
        }
      });
    }),

    /** Wait until `primary` is the one primary and every other node a replica following it. Read-only. */
    verifyDoltRolled: activity(async (i: { cluster: string; primary: string; timeoutMs: number }): Promise<{ primary: string; nodes: string[]; audit: string }> => {
      const c = ops.spec(i.cluster);
      const deadline = Date.now() + i.timeoutMs;
      return heartbeatWhile(async () => {
        for (;;) {
          const nodes = await probeSpecs(c, []).catch(() => [] as DoltSpecProbe[]);
          const ok = nodes.length > 0 && nodes.every((n) => n.reachable && (n.node === i.primary ? n.role === 'primary' : n.role === 'replica' && n.following));
          if (ok) return { primary: i.primary, nodes: nodes.filter((n) => n.node !== i.primary).map((n) => n.node), audit: describe(nodes) };
          if (Date.now() > deadline) throw new HandoverError(ErrorType.VerificationFailed, `verification of ${i.cluster} failed within ${i.timeoutMs} ms: want ${i.primary} the primary, every other node following it; saw ${describe(nodes)}`);
          await sleep(300);
        }
      });
    }),
  };
}
