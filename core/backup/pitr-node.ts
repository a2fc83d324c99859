/**
 * Point-in-time restore into a named node of the cluster (MariaDB), the pure parts: whether the node may be
 * restored into (refusals before anything changes) and the privileges the automation user needs there (where
 * a replay into it resumes: replayProgress in binlog.ts). No I/O, and nothing a workflow bundle cannot load
 * (binlog.ts needs Buffer): unit-tested without a server.
 *
 * What an operator can expect:
 *  - never the primary (the single writable node), never a writable node (applications may write to it), never
 *    a node that replicates (IO or SQL thread running: detach it first with STOP SLAVE), never a node another
 *    node replicates from (repoint that one first), never a node without a binary log (the replay could not be
 *    verified), never a node holding schemas unless `replace` is asked for;
 *  - the node ends standalone (no replication configured) and read-only unless `writable` is asked for, its
 *    gtid_binlog_pos exactly the target's position (and its gtid_slave_pos too, so it could later be attached
 *    as a replica and continue from there).
 */
import { parseGrants } from '../mysql/privileges';

/** One node as the check saw it (names and observations only). */
export interface PitrNodeView {
  node: string;
  reachable: boolean;
  error?: string;
  readOnly?: boolean;
  /** 'replica' when replication is configured on it (SHOW SLAVE STATUS has a row). */
  role?: 'primary' | 'replica';
  sourceNode?: string;
  sourceAddress?: string;
  ioRunning?: string;
  sqlRunning?: boolean;
}

/** What the check read on the target itself. */
export interface PitrTargetFacts {
  logBin: boolean;
  /** Non-system schemas it holds. */
  schemas: string[];
  /** Privileges the automation user lacks there for this restore ([] when none). */
  missingPrivileges: string[];
  user?: string;
  /** A physical base replaces the datadir: why it cannot here (no local controller, datadir not on this host). */
  physicalBlocked?: string;
}

export interface PitrTargetProbe {
  cluster: string;
  node: string;
  nodes: PitrNodeView[];
  /** Absent when the node is unknown or unreachable. */
  target?: PitrTargetFacts;
}

export type PitrTargetVerdict =
  | { ok: true; primary?: string; notes: string[] }
  | { ok: false; errorType: 'UnknownNode' | 'PreconditionFailed' | 'TargetNotEmpty'; refusal: string };

const running = (n: PitrNodeView) => n.ioRunning === 'Yes' || n.ioRunning === 'Connecting' || n.sqlRunning === true;

/**
 * Whether `probe.node` may be restored into. Refusals name the node, what was seen and what to do; the
 * workflow refuses with them before anything changes (and the detach step re-checks just before it acts).
 */
export function judgePitrTarget(probe: PitrTargetProbe, o: { replace: boolean; method: string }): PitrTargetVerdict {
  const { node, cluster } = probe;
  const t = probe.nodes.find((n) => n.node === node);
  const refuse = (refusal: string, errorType: 'PreconditionFailed' | 'TargetNotEmpty' = 'PreconditionFailed'): PitrTargetVerdict => ({ ok: false, errorType, refusal });
  if (!t) return { ok: false, errorType: 'UnknownNode', refusal: `unknown node ${node} in cluster ${cluster} (nodes: ${probe.nodes.map((n) => n.node).join(', ')})` };
  if (!t.reachable || !probe.target) return refuse(`${node} is unreachable (${t.error ?? 'no answer'}): a point-in-time restore needs it up`);
  const writable = probe.nodes.filter((n) => n.reachable && n.readOnly === false);
  const others = writable.filter((n) => n.node !== node);
  if (t.readOnly === false) {
    if (others.length === 0) return refuse(`${node} is the primary of ${cluster} (the one writable node): restore into a detached replica or a spare node, or --scratch`);
    return refuse(`${node} is writable (read_only OFF) besides ${others.map((n) => n.node).join(', ')}: applications may be writing to it; make it read-only first (SET GLOBAL read_only = ON)`);
  }
  if (t.role === 'replica' && running(t))
    return refuse(
      `${node} replicates from ${t.sourceNode ?? t.sourceAddress ?? '?'} (IO ${t.ioRunning ?? '?'}, SQL ${t.sqlRunning ? 'Yes' : 'No'}): it is part of live replication; detach it first (STOP SLAVE on ${node}), then restore`,
    );
  const followers = probe.nodes.filter((n) => n.node !== node && n.reachable && n.role === 'replica' && n.sourceNode === node);
  if (followers.length) return refuse(`${followers.map((n) => n.node).join(', ')} replicate${followers.length === 1 ? 's' : ''} from ${node}: repoint ${followers.length === 1 ? 'it' : 'them'} to the primary first`);
  const f = probe.target;
  if (!f.logBin) return refuse(`${node} has no binary log (log_bin OFF): the replay could not be verified there; restore --scratch, or enable log_bin on ${node}`);
  if (f.missingPrivileges.length) return refuse(describeMissingPitrPrivileges(node, f.user, f.missingPrivileges));
  if (o.method === 'physical' && f.physicalBlocked) return refuse(f.physicalBlocked);
  if (f.schemas.length && !o.replace)
    return refuse(`${node} holds schemas ${f.schemas.join(', ')}: a point-in-time restore replaces them; add --replace to drop them (or restore --scratch)`, 'TargetNotEmpty');
  const primary = writable.length === 1 ? writable[0].node : undefined;
  const notes = [
    t.role === 'replica' ? `${node}: replication from ${t.sourceNode ?? t.sourceAddress ?? '?'} stopped (IO ${t.ioRunning ?? '?'}, SQL No); it will be removed (RESET SLAVE ALL)` : `${node}: replicates from nobody`,
    f.schemas.length ? `${node} holds ${f.schemas.join(', ')}: replaced (--replace)` : `${node} holds no schema`,
    primary ? `the primary ${primary} is not touched` : `no single writable primary seen (${writable.map((n) => n.node).join(', ') || 'none'}); nothing else is touched`,
  ];
  return { ok: true, ...(primary ? { primary } : {}), notes };
}

/** What each privilege is for, in a point-in-time restore into a node (on top of the automation's grants). */
export const PITR_NODE_PRIVILEGES: Record<string, string> = {
  'BINLOG REPLAY': 'the archived row events (BINLOG statements) and their GTIDs',
  RELOAD: 'RESET MASTER before the replay',
  'REPLICATION MASTER ADMIN': 'SET GLOBAL gtid_binlog_state to the base position',
  'REPLICATION SLAVE ADMIN': 'RESET SLAVE ALL and gtid_slave_pos',
  'READ_ONLY ADMIN': 'writing into the read-only node, read_only at the end',
};
/** A logical base is loaded with the `mariadb` client: the rights to create and fill what the dump holds. */
export const PITR_LOGICAL_PRIVILEGES = ['CREATE', 'DROP', 'ALTER', 'INDEX', 'INSERT', 'SELECT', 'LOCK TABLES'];

/** The privileges the grant lines lack for a point-in-time restore into a node with a base of `method`. */
export function missingPitrNodePrivileges(grantLines: string[], method: string): string[] {
  const global = new Set<string>();
  for (const g of parseGrants(grantLines).filter((x) => x.on === '*.*')) for (const p of g.privileges) global.add(p);
  const all = global.has('ALL PRIVILEGES') || global.has('ALL');
  const need = [...Object.keys(PITR_NODE_PRIVILEGES), ...(method === 'physical' ? [] : PITR_LOGICAL_PRIVILEGES)];
  return all ? [] : need.filter((p) => !global.has(p));
}

export function describeMissingPitrPrivileges(node: string, user: string | undefined, missing: string[]): string {
  const why = missing.map((p) => (PITR_NODE_PRIVILEGES[p] ? `${p} (${PITR_NODE_PRIVILEGES[p]})` : p)).join(', ');
  return `the automation user lacks ${why} on ${node} for a point-in-time restore: GRANT ${missing.join(', ')} ON *.* TO '${user ?? '<automation user>'}'@'…'`;
}
