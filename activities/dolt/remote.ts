/**
 * Dolt read replicas through a remote (engine: dolt, topology: remote-replicas): probing the nodes (their part,
 * heads and lag as a commit distance) and every side effect of the switchover through the remote. Each
 * mutating activity is named for the end state it ensures, reads first, acts only when needed and re-reads.
 * A node changes its part by a restart with new settings (Dolt reads the replication variables when it loads
 * its databases), through the inventory's controller (activities/controllers.ts, engine dolt).
 */
import type mysql from 'mysql2/promise';
import { ErrorType, HandoverError } from '../../core/errors';
import { describeRemoteNode, headMismatches, remoteRoleOf, settingsFor, type DoltHeads, type DoltRemoteNodeProbe, type DoltRemoteSettings } from '../../core/dolt/remote';
import type { Promotion } from '../../core/types';
import type { ClusterSpec } from '../../inventory/schema';
import { activity, heartbeatWhile, withDeadline } from '../activity';
import { sleep } from '../backup/scratch';
import { controllerFor } from '../controllers';
import { hookCounts } from '../hooks';
import type { HookCounts } from '../../core/types';
import { DOLT_SYSTEM_SCHEMAS, doltOps, doltPolicy, doltRows, type DoltActivityDeps } from './node';

const ident = (name: string) => `\`${name.replace(/`/g, '``')}\``;

export interface DoltRemoteClusterProbe {
  nodes: DoltRemoteNodeProbe[];
  remote: string;
  policy: ReturnType<typeof doltPolicy>;
  /** How many operator hooks the inventory lists, by kind (the commands stay on the worker). */
  hooks?: HookCounts;
  audit: string;
}

/** read_only and the two replication variables of a running server. */
export async function readDoltRemoteSettings(conn: mysql.Connection): Promise<DoltRemoteSettings> {
  const r = (await doltRows(conn, 'SELECT @@GLOBAL.read_only AS ro, @@GLOBAL.dolt_replicate_to_remote AS push, @@GLOBAL.dolt_read_replica_remote AS pull'))[0];
  return { readOnly: Number(r.ro) === 1, replicateTo: String(r.push ?? ''), readReplicaRemote: String(r.pull ?? '') };
}

/**
 * Every user database's branches and their head commits (`USE db` first: on a read replica a transaction's
 * start pulls from the remote, so the heads read are those a reader of the replica sees), and the databases
 * without a remote named `remote`.
 */
export async function readDoltHeads(conn: mysql.Connection, remote: string): Promise<{ heads: DoltHeads; missingRemote: string[] }> {
  const dbs = (await doltRows(conn, 'SHOW DATABASES')).map((r) => String(Object.values(r)[0])).filter((d) => !DOLT_SYSTEM_SCHEMAS.has(d.toLowerCase()));
  const heads: DoltHeads = {};
  const missingRemote: string[] = [];
  for (const d of dbs.sort()) {
    await conn.query(`USE ${ident(d)}`);
    heads[d] = Object.fromEntries((await doltRows(conn, 'SELECT name, hash FROM dolt_branches ORDER BY name')).map((r) => [String(r.name), String(r.hash)]));
    if (!(await doltRows(conn, 'SELECT name FROM dolt_remotes WHERE name = ?', [remote])).length) missingRemote.push(d);
  }
  return { heads, missingRemote };
}

/**
 * Commits `primary` has that a replica with `heads` lacks, per database and branch, counted on the primary
 * with dolt_log('<replica head>..<branch>'); null when a replica head is not in the primary's history.
 */
export async function commitDistance(conn: mysql.Connection, primary: DoltHeads, replica: DoltHeads): Promise<{ behind: number | null; detail: string }> {
  let total = 0;
  const parts: string[] = [];
  for (const [db, branches] of Object.entries(primary)) {
    await conn.query(`USE ${ident(db)}`);
    for (const [br, hash] of Object.entries(branches)) {
      const theirs = replica[db]?.[br];
      if (theirs === hash) continue;
      try {
        const n = Number((await doltRows(conn, 'SELECT COUNT(*) AS n FROM dolt_log(?)', [theirs ? `${theirs}..${br}` : br]))[0].n);
        total += n;
        parts.push(`${db}/${br} ${n} behind`);
      } catch {
        return { behind: null, detail: `${db}/${br}: head ${theirs} is not in the primary's history` };
      }
    }
  }
  return { behind: total, detail: parts.join(', ') || 'same heads' };
}

/**
 * Commits of `primary`'s heads (hashes) that a replica with `replica` heads lacks, counted on the primary with
 * dolt_log('<replica head>..<primary hash>'); null when a replica head is not in the primary's history.
 */
export async function commitsLacking(conn: mysql.Connection, primary: DoltHeads, replica: DoltHeads): Promise<number | null> {
  let total = 0;
  for (const [db, branches] of Object.entries(primary)) {
    await conn.query(`USE ${ident(db)}`);
    for (const [br, hash] of Object.entries(branches)) {
      const theirs = replica[db]?.[br];
      if (theirs === hash) continue;
      if (!theirs) return null;
      try {
        total += Number((await doltRows(conn, 'SELECT COUNT(*) AS n FROM dolt_log(?)', [`${theirs}..${hash}`]))[0].n);
      } catch {
        return null;
      }
    }
  }
  return total;
}

/** The probe of a remote-replicas cluster (for the activities and for `handover status`/`doctor`). Reads only. */
export function doltRemoteOps(deps: DoltActivityDeps) {
  const ops = doltOps(deps);
  const spec = (cluster: string): ClusterSpec & { replicationRemote: string } => {
    const c = ops.spec(cluster);
    if (c.topology !== 'remote-replicas' || !c.replicationRemote)
      throw new HandoverError(ErrorType.WrongEngine, `${cluster} has topology ${c.topology}: these steps are for topology: remote-replicas`);
    return c as ClusterSpec & { replicationRemote: string };
  };

  async function probeNode(c: ClusterSpec & { replicationRemote: string }, node: string): Promise<DoltRemoteNodeProbe> {
    const n = c.nodes.find((x) => x.id === node);
    if (!n) throw new HandoverError(ErrorType.UnknownNode, `cluster ${c.name} has no node ${node}`);
    const base = { node: n.id, address: `${n.host}:${n.port}`, promotion: n.promotion as Promotion };
    try {
      return await withDeadline(
        ops.withNode(c, node, async (conn) => {
          const s = await readDoltRemoteSettings(conn);
          const version = String((await doltRows(conn, 'SELECT dolt_version() AS v'))[0].v);
          const { heads, missingRemote } = await readDoltHeads(conn, c.replicationRemote);
          return { ...base, reachable: true, version, ...s, role: remoteRoleOf(s, c.replicationRemote), heads, missingRemote } satisfies DoltRemoteNodeProbe;
        }),
        deps.probeTimeoutMs ?? 8_000,
      );
    } catch (e) {
      if (e instanceof HandoverError) throw e;
      return { ...base, reachable: false, error: (e as Error).message.split('\n')[0] };
    }
  }

  /** Probe every node; with one reachable primary, each replica's commit distance from it. Read-only (replicas pull). */
  async function probeAll(c: ClusterSpec & { replicationRemote: string }): Promise<DoltRemoteNodeProbe[]> {
    const probes = await Promise.all(c.nodes.map((n) => probeNode(c, n.id)));
    const primaries = probes.filter((p) => p.reachable && p.role === 'primary');
    if (primaries.length === 1) {
      const p = primaries[0];
      for (const r of probes)
        if (r !== p && r.reachable) {
          const d = await ops.withNode(c, p.node, (conn) => commitDistance(conn, p.heads ?? {}, r.heads ?? {})).catch((e: Error) => ({ behind: null, detail: `${p.node} could not count: ${e.message}` }));
          r.behindCommits = d.behind;
          r.behindDetail = d.detail;
        }
    }
    return probes;
  }

  return { ops, spec, probeNode, probeAll };
}

export function createDoltRemoteActivities(deps: DoltActivityDeps) {
  const { ops, spec, probeAll } = doltRemoteOps(deps);
  return {
    probeDoltRemoteCluster: activity(async ({ cluster }: { cluster: string }): Promise<DoltRemoteClusterProbe> => {
      const c = spec(cluster);
      const nodes = await probeAll(c);
      return { nodes, remote: c.replicationRemote, policy: doltPolicy(c), hooks: hookCounts(c), audit: `saw ${nodes.map(describeRemoteNode).join(' ')}` };
    }),

    /**
     * Push every branch of every database of `node` to the cluster's remote (CALL dolt_push per branch). Pushing
     * a branch the remote already has is a no-op, so a retry is safe. The node must still take writes.
     */
    ensureDoltPushed: activity(async (i: { cluster: string; node: string }): Promise<{ heads: DoltHeads; audit: string }> => {
      const c = spec(i.cluster);
      return ops.withNode(c, i.node, async (conn) => {
        const { heads } = await readDoltHeads(conn, c.replicationRemote);
        const pushed: string[] = [];
        for (const [db, branches] of Object.entries(heads)) {
          await conn.query(`USE ${ident(db)}`);
          for (const br of Object.keys(branches)) {
            await conn.query({ sql: 'CALL dolt_push(?, ?)', values: [c.replicationRemote, br], timeout: 60_000 });
            pushed.push(`${db}/${br} ${branches[br].slice(0, 8)}`);
          }
        }
        return { heads, audit: `${i.node} pushed to ${c.replicationRemote}: ${pushed.join(', ') || 'no databases'}` };
      });
    }),

    /**
     * Ensure `node` plays `role`: primary (writable, pushing to the remote), fenced (primary settings, started
     * read-only: takes no writes, pulls nothing; between its stop and its start every branch is pushed with the
     * dolt CLI, a `local` controller only) or replica (read-only, pulling from the remote). A no-op when the
     * running server already has those settings; else the controller writes them into the node's config and
     * restarts it, and the activity waits until it answers with them. Safe to retry: it reads first.
     */
    ensureDoltRemoteRole: activity(async (i: { cluster: string; node: string; role: 'primary' | 'fenced' | 'replica' }): Promise<{ changed: boolean; at: number; audit: string }> => {
      const c = spec(i.cluster);
      const want = settingsFor(i.role, c.replicationRemote);
      const same = (s?: DoltRemoteSettings) => !!s && s.readOnly === want.readOnly && s.replicateTo === want.replicateTo && s.readReplicaRemote === want.readReplicaRemote;
      const before = await ops.withNode(c, i.node, readDoltRemoteSettings).catch((e) => {
        if (e instanceof HandoverError) throw e;
        return undefined;
      });
      if (same(before)) return { changed: false, at: Date.now(), audit: `${i.node} already ${i.role}` };
      await deps.failpoint?.(`ensureDoltRemoteRole.${i.role}`);
      const n = c.nodes.find((x) => x.id === i.node)!;
      const set = { read_only: String(want.readOnly), dolt_replicate_to_remote: want.replicateTo, dolt_read_replica_remote: want.readReplicaRemote, dolt_replicate_all_heads: '1' };
      const t0 = Date.now();
      // Fencing: what the server committed while it shut down (its replication push died with it) is pushed
      // with the server stopped, before it starts read-only (a read-only server refuses dolt_push).
      const did = await heartbeatWhile(() => controllerFor(c.controller, c.name, 'dolt').restart({ node: n, set, ...(i.role === 'fenced' ? { pushTo: c.replicationRemote } : {}), onStopped: () => deps.failpoint?.(`ensureDoltRemoteRole.${i.role}.stopped`) }));
      let seen: DoltRemoteSettings | undefined;
      const deadline = Date.now() + 60_000;
      await heartbeatWhile(async () => {
        for (;;) {
          seen = await ops.withNode(c, i.node, readDoltRemoteSettings).catch(() => undefined);
          if (same(seen)) return;
          if (Date.now() > deadline) throw new Error(`${i.node} does not answer as ${i.role} within 60 s of its restart (${seen ? JSON.stringify(seen) : 'not answering'})`);
          await sleep(100);
        }
      });
      return { changed: true, at: Date.now(), audit: `${i.node} -> ${i.role} (${did}; ${Date.now() - t0} ms)` };
    }),

    /**
     * Wait until `target` (a read replica: it pulls when a transaction starts) holds exactly the heads of `source`
     * (every database, every branch). Read-only. CatchUpTimeout after timeoutMs.
     */
    waitDoltSameHeads: activity(async (i: { cluster: string; source: string; target: string; timeoutMs: number }): Promise<{ heads: DoltHeads; audit: string }> => {
      const c = spec(i.cluster);
      const deadline = Date.now() + i.timeoutMs;
      let why = '';
      return heartbeatWhile(async () => {
        for (;;) {
          const [a, b] = await Promise.all([ops.withNode(c, i.source, (x) => readDoltHeads(x, c.replicationRemote)), ops.withNode(c, i.target, (x) => readDoltHeads(x, c.replicationRemote))]);
          const diff = headMismatches(a.heads, b.heads);
          if (!diff.length) return { heads: a.heads, audit: `${i.target} holds ${i.source}'s heads: ${Object.entries(a.heads).map(([d, bs]) => Object.entries(bs).map(([br, h]) => `${d}/${br} ${h.slice(0, 8)}`).join(', ')).join(', ') || 'no databases'}` };
          why = diff.map((k) => `${k} ${a.heads[k.split('/')[0]]?.[k.split('/').slice(1).join('/')]?.slice(0, 8) ?? 'absent'} vs ${b.heads[k.split('/')[0]]?.[k.split('/').slice(1).join('/')]?.slice(0, 8) ?? 'absent'}`).join('; ');
          if (Date.now() > deadline) throw new HandoverError(ErrorType.CatchUpTimeout, `${i.target} does not hold ${i.source}'s heads within ${i.timeoutMs} ms: ${why}`);
          await sleep(200);
        }
      });
    }),

    /**
     * Wait until `primary` is the one writable node pushing to the remote and every other node is a read-only
     * replica holding at least the heads the primary had just before the replicas were read (under a steady
     * writer the primary moves on while a replica pulls, so "distance 0 to its latest heads" may never be seen;
     * every commit of the earlier heads in the replica's history is). Read-only. VerificationFailed after timeoutMs.
     */
    verifyDoltRemoteTopology: activity(async (i: { cluster: string; primary: string; timeoutMs: number }): Promise<{ audit: string }> => {
      const c = spec(i.cluster);
      const deadline = Date.now() + i.timeoutMs;
      return heartbeatWhile(async () => {
        for (;;) {
          const before = await ops.withNode(c, i.primary, (x) => readDoltHeads(x, c.replicationRemote)).catch(() => undefined);
          const probes = await probeAll(c);
          const lacking = new Map<string, number | null>();
          if (before)
            for (const p of probes)
              if (p.node !== i.primary && p.reachable && p.role === 'replica')
                lacking.set(p.node, await ops.withNode(c, i.primary, (x) => commitsLacking(x, before.heads, p.heads ?? {})).catch(() => null));
          const wrong = probes.filter((p) => !p.reachable || p.role !== (p.node === i.primary ? 'primary' : 'replica') || (p.node !== i.primary && lacking.get(p.node) !== 0));
          const line = probes.map(describeRemoteNode).join(' ');
          if (!wrong.length) return { audit: line };
          if (Date.now() > deadline) throw new HandoverError(ErrorType.VerificationFailed, `verification of ${i.cluster} failed within ${i.timeoutMs} ms: want ${i.primary}=primary, others replicas with its heads; saw ${line}`);
          await sleep(200);
        }
      });
    }),
  };
}
