/**
 * Dolt activities (engine: dolt, sql-server cluster mode): every side effect of the switchover and the failover.
 * Each is named for the end state it ensures, reads before it acts, acts only when needed, re-reads on a fresh
 * connection (a role change ends every connection of the server) and returns an audit line. Inputs carry
 * cluster and node names and epochs only.
 */
import { ErrorType, HandoverError } from '../../core/errors';
import { describeRow, hashMismatches, laggingRows, type DoltNodeProbe, type DoltPolicy } from '../../core/dolt/decide';
import { activity, heartbeatWhile } from '../activity';
import { sleep } from '../backup/scratch';
import { describeDoltNode, doltOps, doltPolicy, readDoltHashes, readDoltReplication, readDoltRole, type DoltActivityDeps } from './node';
import type { HookCounts } from '../../core/types';
import { hookCounts } from '../hooks';

export interface DoltClusterProbe {
  nodes: DoltNodeProbe[];
  policy: DoltPolicy;
  /** How many operator hooks the inventory lists, by kind (the commands stay on the worker). */
  hooks?: HookCounts;
  audit: string;
}

export interface EnsureDoltRoleInput {
  cluster: string;
  node: string;
  role: 'primary' | 'standby';
  epoch: number;
}
export interface EnsureDoltRoleResult {
  changed: boolean;
  /** Epoch ms when the role took effect (or when it was first seen in place). */
  at: number;
  audit: string;
}

export interface DoltWaitInput {
  cluster: string;
  primary: string;
  timeoutMs: number;
  /** Every standby within this many ms of the primary (replication_lag_millis), with no error. */
  nearMillis: number;
}

export interface DoltSameDataInput {
  cluster: string;
  nodes: string[];
}

export interface VerifyDoltInput {
  cluster: string;
  primary: string;
  epoch: number;
  timeoutMs: number;
  /** The primary's pushes to every standby without error and within this lag (ms). */
  nearMillis: number;
  /** Nodes not waited for (unreachable at decision time: a failover's dead primary). */
  skip?: string[];
}

export function createDoltActivities(deps: DoltActivityDeps) {
  const ops = doltOps(deps);

  /** Poll `check` every 200 ms until it returns undefined (done) or the deadline passes (its last answer is the error). */
  async function until(timeoutMs: number, check: () => Promise<string | undefined>, onTimeout: (why: string) => HandoverError): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let why: string | undefined = 'not checked';
    await heartbeatWhile(
      async () => {
        for (;;) {
          try {
            why = await check();
          } catch (e) {
            if (e instanceof HandoverError) throw e;
            why = (e as Error).message.split('\n')[0];
          }
          if (why === undefined) return;
          if (Date.now() > deadline) throw onTimeout(why);
          await sleep(200);
        }
      },
      () => ({ waitingFor: why }),
    );
  }

  return {
    /** Probe every node: role, epoch, replication status rows, database hashes. Read-only. */
    probeDoltCluster: activity(async ({ cluster }: { cluster: string }): Promise<DoltClusterProbe> => {
      const c = ops.spec(cluster);
      const nodes = await ops.probeAll(c);
      return { nodes, policy: doltPolicy(c), hooks: hookCounts(c), audit: `saw ${nodes.map(describeDoltNode).join(' ')}` };
    }),

    /**
     * Wait until the primary reports every standby near (replication_lag_millis at most nearMillis, no
     * current_error, for every database): the demotion that follows waits for the rest with writes blocked.
     * Read-only: safe to retry. CatchUpTimeout (nothing changed) after timeoutMs.
     */
    ensureDoltStandbysCaughtUp: activity(async (i: DoltWaitInput): Promise<{ audit: string }> => {
      const c = ops.spec(i.cluster);
      let seen = '';
      await until(
        i.timeoutMs,
        () =>
          ops.withNode(c, i.primary, async (conn) => {
            const r = await readDoltRole(conn);
            if (r.role !== 'primary') throw new HandoverError(ErrorType.UnexpectedTopology, `${i.primary} is ${r.role} at epoch ${r.epoch}, no longer the primary; nothing was changed`);
            const rows = await readDoltReplication(conn);
            seen = rows.map(describeRow).join('; ');
            const behind = laggingRows({ node: i.primary, address: '', reachable: true, replication: rows }, i.nearMillis);
            return behind.length ? behind.map(describeRow).join('; ') : undefined;
          }),
        (why) => new HandoverError(ErrorType.CatchUpTimeout, `${i.primary}'s standbys not caught up within ${i.timeoutMs} ms (${why}); nothing was changed`),
      );
      return { audit: `${i.primary} reports every standby within ${i.nearMillis} ms: ${seen || 'no databases'}` };
    }),

    /**
     * Ensure `node` has `role` at `epoch` (CALL dolt_assume_cluster_role). A no-op when it already has that role
     * at that epoch. A node already at a higher epoch is refused (UnexpectedTopology: someone else moved the
     * cluster on). Demoting a primary is Dolt's graceful transition: the server blocks writes and waits until
     * every standby has everything, and fails (staying primary) when it cannot. Safe to retry: the second call
     * finds the role in place.
     */
    ensureDoltRole: activity(async (i: EnsureDoltRoleInput): Promise<EnsureDoltRoleResult> => {
      const c = ops.spec(i.cluster);
      const before = await ops.withNode(c, i.node, readDoltRole);
      if (before.role === i.role && before.epoch === i.epoch) return { changed: false, at: Date.now(), audit: `${i.node} already ${i.role} at epoch ${i.epoch}` };
      if (before.epoch > i.epoch)
        throw new HandoverError(ErrorType.UnexpectedTopology, `${i.node} is ${before.role} at epoch ${before.epoch}, beyond the run's epoch ${i.epoch}: the cluster was moved on by someone else; ${i.node} was not changed`);
      await deps.failpoint?.(`ensureDoltRole.${i.role}`);
      const t0 = Date.now();
      await heartbeatWhile(() =>
        ops.withNode(c, i.node, async (conn) => {
          await conn.query({ sql: 'CALL dolt_assume_cluster_role(?, ?)', values: [i.role, i.epoch], timeout: 25_000 });
        }),
      );
      const after = await ops.withNode(c, i.node, readDoltRole);
      if (after.role !== i.role || after.epoch !== i.epoch) throw new Error(`${i.node} is ${after.role} at epoch ${after.epoch} after dolt_assume_cluster_role('${i.role}', ${i.epoch})`);
      return { changed: true, at: Date.now(), audit: `${i.node}: ${before.role}@${before.epoch} -> ${i.role}@${i.epoch} (${Date.now() - t0} ms)` };
    }),

    /**
     * The undo of a switchover that could not promote its candidate: unless the candidate is already primary at
     * the run's epoch (then the run goes forward), make sure `node` (the old primary) is primary again: a no-op
     * when it still is (Dolt's failed graceful demotion leaves it primary), else it assumes the primary role at
     * the next epoch, and the candidate, still a standby, follows it. Safe to retry: it reads first.
     */
    ensureDoltPrimaryRestored: activity(async (i: { cluster: string; node: string; candidate: string; epoch: number }): Promise<{ outcome: 'candidate-is-primary' | 'still-primary' | 'restored'; at: number; standing: string; audit: string }> => {
      const c = ops.spec(i.cluster);
      const cand = await ops.withNode(c, i.candidate, readDoltRole).catch(() => undefined);
      if (cand?.role === 'primary' && cand.epoch === i.epoch)
        return { outcome: 'candidate-is-primary', at: Date.now(), standing: `${i.candidate} is the primary at epoch ${i.epoch}`, audit: `${i.candidate} already primary at epoch ${i.epoch}: going forward` };
      const cur = await ops.withNode(c, i.node, readDoltRole);
      if (cur.role === 'primary') return { outcome: 'still-primary', at: Date.now(), standing: `${i.node} is still the primary at epoch ${cur.epoch}`, audit: `${i.node} still primary at epoch ${cur.epoch}` };
      const e = Math.max(cur.epoch, i.epoch, cand?.epoch ?? 0) + 1;
      await ops.withNode(c, i.node, (conn) => conn.query({ sql: 'CALL dolt_assume_cluster_role(?, ?)', values: ['primary', e], timeout: 25_000 }));
      const after = await ops.withNode(c, i.node, readDoltRole);
      if (after.role !== 'primary') throw new Error(`${i.node} is ${after.role} at epoch ${after.epoch} after dolt_assume_cluster_role('primary', ${e})`);
      return { outcome: 'restored', at: Date.now(), standing: `${i.node} is the primary again at epoch ${e}`, audit: `${i.node}: ${cur.role}@${cur.epoch} -> primary@${e}` };
    }),

    /**
     * A failover's old primary: when it answers, make it a standby at the run's epoch (a no-op when it already
     * stepped down by itself, hearing of the new primary); when it does not answer, say so and change nothing
     * (it steps down when it returns). Safe to retry.
     */
    ensureDoltStandbyIfReachable: activity(async (i: { cluster: string; node: string; epoch: number }): Promise<{ reachable: boolean; audit: string }> => {
      const c = ops.spec(i.cluster);
      const cur = await ops.withNode(c, i.node, readDoltRole).catch((e) => {
        if (e instanceof HandoverError) throw e;
        return undefined;
      });
      if (!cur) return { reachable: false, audit: `${i.node} does not answer: it steps down when it returns (the primary is at epoch ${i.epoch})` };
      if (cur.role === 'standby' && cur.epoch >= i.epoch) return { reachable: true, audit: `${i.node} already standby at epoch ${cur.epoch}` };
      await ops
        .withNode(c, i.node, (conn) => conn.query({ sql: 'CALL dolt_assume_cluster_role(?, ?)', values: ['standby', i.epoch], timeout: 25_000 }))
        .catch(() => undefined); // a primary at a lower epoch may fail its graceful demotion: it steps down when it hears of the new primary
      const deadline = Date.now() + 20_000;
      for (;;) {
        const now = await ops.withNode(c, i.node, readDoltRole);
        if (now.role === 'standby' && now.epoch >= i.epoch) return { reachable: true, audit: `${i.node}: ${cur.role}@${cur.epoch} -> standby@${now.epoch}` };
        if (Date.now() > deadline) throw new Error(`${i.node} is still ${now.role} at epoch ${now.epoch}`);
        await sleep(200);
      }
    }),

    /** Every named node has the same dolt_hashof_db() for every database (read-only; VerificationFailed if not). */
    verifyDoltSameData: activity(async (i: DoltSameDataInput): Promise<{ hashes: Record<string, string>; audit: string }> => {
      const c = ops.spec(i.cluster);
      const all = await Promise.all(i.nodes.map((n) => ops.withNode(c, n, readDoltHashes)));
      for (let k = 1; k < all.length; k++) {
        const bad = hashMismatches(all[0], all[k]);
        if (bad.length)
          throw new HandoverError(ErrorType.VerificationFailed, `${i.nodes[0]} and ${i.nodes[k]} differ in ${bad.map((d) => `${d} (${all[0][d] ?? 'absent'} vs ${all[k][d] ?? 'absent'})`).join(', ')}`);
      }
      return { hashes: all[0], audit: `${i.nodes.join(' = ')}: ${Object.entries(all[0]).map(([d, h]) => `${d} ${h.slice(0, 8)}`).join(', ') || 'no databases'}` };
    }),

    /**
     * Wait until `primary` is primary at `epoch`, every other node (but `skip`) standby at `epoch`, and the
     * primary reports every standby caught up. Read-only. VerificationFailed after timeoutMs.
     */
    verifyDoltTopology: activity(async (i: VerifyDoltInput): Promise<{ audit: string }> => {
      const c = ops.spec(i.cluster);
      const skip = new Set(i.skip ?? []);
      let last = '';
      await until(
        i.timeoutMs,
        async () => {
          const probes = await Promise.all(c.nodes.filter((n) => !skip.has(n.id)).map((n) => ops.probeOne(c, n.id)));
          last = probes.map(describeDoltNode).join(' ');
          const wrong = probes.filter((p) => !p.reachable || p.epoch !== i.epoch || p.role !== (p.node === i.primary ? 'primary' : 'standby'));
          if (wrong.length) return `want ${i.primary}=primary@${i.epoch}, others standby@${i.epoch}; saw ${last}`;
          const p = probes.find((x) => x.node === i.primary)!;
          // Rows to a skipped (unreachable) node fail or were never reached: with `skip`, only the others count.
          const rows = (p.replication ?? []).filter((r) => !(skip.size && (r.error !== null || r.lagMillis === null)));
          const behind = laggingRows({ ...p, replication: rows }, i.nearMillis);
          return behind.length ? `${i.primary}: ${behind.map(describeRow).join('; ')}` : undefined;
        },
        (why) => new HandoverError(ErrorType.VerificationFailed, `verification of ${i.cluster} failed within ${i.timeoutMs} ms: ${why}`),
      );
      return { audit: `${last}; every standby within ${i.nearMillis} ms` };
    }),
  };
}
