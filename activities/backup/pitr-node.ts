/**
 * Point-in-time restore into a named node (MariaDB), the side effects around the base restore and the replay
 * (core/backup/pitr-node.ts decides):
 *  - probePitrTarget: every node's role, read_only and replication threads; on the target its log_bin, its
 *    schemas, what the automation user lacks there, and (physical base) whether its datadir can be replaced
 *    from this worker. Read-only.
 *  - ensurePitrTargetDetached: re-checks (the same judge, a fresh probe) just before it acts, then leaves the
 *    node read-only with no replication configured (STOP SLAVE; RESET SLAVE ALL), so nothing restarts its
 *    replication while it is restored (a physical base restarts the node). A no-op when it already is.
 *  - ensurePitrNodeFinished: read_only as asked (ON unless `writable`), gtid_slave_pos the replayed position,
 *    no replication configured; reports what it left.
 */
import path from 'node:path';
import type mysql from 'mysql2/promise';
import { judgePitrTarget, missingPitrNodePrivileges, type PitrNodeView, type PitrTargetProbe } from '../../core/backup/pitr-node';
import { ErrorType, HandoverError } from '../../core/errors';
import { checkDatadirReachable } from './physical';
import type { BackupContext } from './context';
import { userSchemas } from './mysql';

export interface PitrTargetInput {
  cluster: string;
  node: string;
  /** The base's method (a physical base replaces the datadir). */
  method: string;
}

type Conn = mysql.Connection;

async function slaveStatus(conn: Conn): Promise<Record<string, unknown> | undefined> {
  const [rows] = (await conn.query('SHOW SLAVE STATUS')) as unknown as [Record<string, unknown>[]];
  return rows[0];
}

export async function probePitrTarget(ctx: BackupContext, input: PitrTargetInput): Promise<PitrTargetProbe> {
  const c = ctx.clusterOf(input.cluster);
  if (c.engine !== 'mysql') throw new HandoverError(ErrorType.WrongEngine, `refused: cluster ${c.name} is engine ${c.engine}; point-in-time restore is MariaDB only (nothing was changed)`);
  const probes = await ctx.mysql.probeAll(c);
  const nodes: PitrNodeView[] = probes.map((p) => ({
    node: p.node,
    reachable: p.reachable,
    ...(p.error ? { error: p.error } : {}),
    readOnly: p.readOnly,
    role: p.role,
    sourceNode: p.sourceNode,
    sourceAddress: p.sourceAddress,
    ioRunning: p.ioRunning,
    sqlRunning: p.sqlRunning,
  }));
  const out: PitrTargetProbe = { cluster: c.name, node: input.node, nodes };
  const t = nodes.find((n) => n.node === input.node);
  if (!t?.reachable) return out;
  out.target = await ctx.withMysql(c, input.node, async (conn) => {
    const [[v]] = (await conn.query('SELECT @@log_bin AS lb, @@datadir AS d, CURRENT_USER() AS u')) as unknown as [[{ lb: number; d: string; u: string }]];
    const [grantRows] = (await conn.query('SHOW GRANTS')) as unknown as [Record<string, unknown>[]];
    // Only privilege names are read from the grant lines (missingPitrNodePrivileges); the lines are not kept.
    const missing = missingPitrNodePrivileges(
      grantRows.map((r) => String(Object.values(r)[0] ?? '')),
      input.method,
    );
    let physicalBlocked: string | undefined;
    if (input.method === 'physical') {
      if (c.controller?.type !== 'local')
        physicalBlocked = `a physical base replaces ${input.node}'s datadir, which needs a local controller on the node's host (cluster ${c.name} has ${c.controller ? `a ${c.controller.type} controller` : 'none'}); restore --scratch instead`;
      else {
        try {
          checkDatadirReachable(input.node, path.resolve(v.d));
        } catch (e) {
          physicalBlocked = (e as Error).message.replace(/^refused: /, '').replace(/ \(nothing was taken\)$/, '');
        }
      }
    }
    return { logBin: Number(v.lb) === 1, schemas: await userSchemas(conn), missingPrivileges: missing, user: String(v.u).split('@')[0], ...(physicalBlocked ? { physicalBlocked } : {}) };
  });
  return out;
}

export interface PitrDetachInput extends PitrTargetInput {
  replace: boolean;
}

export async function ensurePitrTargetDetached(ctx: BackupContext, input: PitrDetachInput): Promise<{ changed: boolean; audit: string }> {
  const c = ctx.clusterOf(input.cluster);
  // The veto: the same judge on a fresh look, just before the first change.
  const verdict = judgePitrTarget(await probePitrTarget(ctx, input), { replace: input.replace, method: input.method });
  if (!verdict.ok) throw new HandoverError(verdict.errorType === 'UnknownNode' ? ErrorType.UnknownNode : verdict.errorType === 'TargetNotEmpty' ? ErrorType.TargetNotEmpty : ErrorType.PreconditionFailed, `refused: ${verdict.refusal} (nothing was changed)`);
  return ctx.withMysql(c, input.node, async (conn) => {
    const did: string[] = [];
    const [[v]] = (await conn.query('SELECT @@read_only AS ro')) as unknown as [[{ ro: number }]];
    if (Number(v.ro) === 0) {
      await conn.query('SET GLOBAL read_only = ON');
      did.push('read_only ON');
    }
    const st = await slaveStatus(conn);
    if (st) {
      await conn.query('STOP SLAVE');
      await conn.query('RESET SLAVE ALL');
      did.push(`removed its stopped replication from ${String(st.Master_Host)}:${String(st.Master_Port)} (STOP SLAVE; RESET SLAVE ALL)`);
    }
    if (await slaveStatus(conn)) throw new Error(`${input.node} still has replication configured after RESET SLAVE ALL`);
    return { changed: did.length > 0, audit: did.length ? `${input.node}: ${did.join('; ')}` : `${input.node} already read-only with no replication configured; changed nothing` };
  });
}

export interface PitrFinishInput {
  cluster: string;
  node: string;
  /** The position the replay ended at (verified). */
  endPos: string;
  /** Leave the node writable (read_only OFF); default read-only. */
  writable?: boolean;
}
export interface PitrFinishResult {
  node: string;
  readOnly: boolean;
  gtidBinlogPos: string;
  gtidSlavePos: string;
  replicating: boolean;
  changed: boolean;
  audit: string;
}

export async function ensurePitrNodeFinished(ctx: BackupContext, input: PitrFinishInput): Promise<PitrFinishResult> {
  const c = ctx.clusterOf(input.cluster);
  return ctx.withMysql(c, input.node, async (conn) => {
    const did: string[] = [];
    if (await slaveStatus(conn)) {
      await conn.query('STOP SLAVE');
      await conn.query('RESET SLAVE ALL');
      did.push('RESET SLAVE ALL');
    }
    const [[v]] = (await conn.query('SELECT @@read_only AS ro, @@gtid_slave_pos AS s')) as unknown as [[{ ro: number; s: string }]];
    if (v.s !== input.endPos) {
      await conn.query('SET GLOBAL gtid_slave_pos = ?', [input.endPos]);
      did.push(`gtid_slave_pos ${v.s || '(empty)'} -> ${input.endPos}`);
    }
    const wantRo = !input.writable;
    if ((Number(v.ro) !== 0) !== wantRo) {
      await conn.query(`SET GLOBAL read_only = ${wantRo ? 'ON' : 'OFF'}`);
      did.push(`read_only ${wantRo ? 'ON' : 'OFF'}`);
    }
    const [[a]] = (await conn.query('SELECT @@read_only AS ro, @@gtid_binlog_pos AS b, @@gtid_slave_pos AS s')) as unknown as [[{ ro: number; b: string; s: string }]];
    const replicating = !!(await slaveStatus(conn));
    const readOnly = Number(a.ro) !== 0;
    if (readOnly !== wantRo || replicating) throw new Error(`${input.node} is ${readOnly ? 'read-only' : 'writable'}${replicating ? ' with replication configured' : ''} after the finish step`);
    return {
      node: input.node,
      readOnly,
      gtidBinlogPos: a.b,
      gtidSlavePos: a.s,
      replicating,
      changed: did.length > 0,
      audit: `${input.node}: ${did.length ? did.join('; ') : 'changed nothing'}; standalone, ${readOnly ? 'read-only' : 'WRITABLE'}, gtid_binlog_pos ${a.b || '(empty)'}`,
    };
  });
}
