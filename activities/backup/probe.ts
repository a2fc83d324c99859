/** Probe the backup sources: every node's role, link and lag, engine-neutral, plus the cluster's backup settings. */
import { appliedPos, lagTransactions } from '../../core/mysql/decide';
import type { BackupContext } from './context';
import type { ProbeBackupResult } from './contracts';

export async function probeBackupSources(ctx: BackupContext, { cluster }: { cluster: string }): Promise<ProbeBackupResult> {
  const c = ctx.clusterOf(cluster);
  const storage = ctx.storageOf(c).location;
  const keep = c.backup?.keep ?? 7;
  if (c.engine === 'redis') {
    const nodes = await ctx.redis.probeAll(c);
    // A Redis Cluster has one primary per shard: every shard is backed up, each from its own source; each
    // primary's slots from its own CLUSTER NODES line, each replica's lag from its own primary's offset.
    const cluster_ = c.topology === 'cluster';
    const slots: Record<string, string> = {};
    if (cluster_)
      for (const n of nodes.filter((x) => x.reachable && x.role === 'primary'))
        slots[n.node] = await ctx
          .withRedis(c, n.node, async (cl) => (((await cl.call('CLUSTER', 'NODES')) as string).split('\n').find((l) => l.split(' ')[2]?.includes('myself')) ?? '').split(' ').slice(8).filter((s) => !s.startsWith('[')).join(' '))
          .catch(() => '');
    const primaryOf = (n: (typeof nodes)[number]) => (cluster_ ? nodes.find((p) => p.node === n.primaryNode) : nodes.find((p) => p.reachable && p.role === 'primary'));
    return {
      ...(cluster_ ? { topology: 'cluster' as const } : {}),
      cluster,
      engine: 'redis',
      maxLag: c.policy.maxLagBytes,
      lagUnit: 'bytes',
      keep,
      storage,
      nodes: nodes.map((n) => ({
        node: n.node,
        reachable: n.reachable,
        error: n.error,
        role: n.role,
        replicaOf: n.primaryNode,
        replicating: n.linkUp,
        lag: n.role === 'primary' ? 0 : primaryOf(n)?.offset !== undefined && n.offset !== undefined ? Math.max(0, primaryOf(n)!.offset! - n.offset) : undefined,
        version: n.version,
        ...(slots[n.node] !== undefined ? { slots: slots[n.node] } : {}),
      })),
    };
  }
  if (c.engine === 'dolt') {
    // Standbys are the replicas; the lag is the primary's replication_lag_millis for them (the largest over databases).
    const nodes = await ctx.dolt.probeAll(c);
    const primary = nodes.find((n) => n.reachable && n.role === 'primary');
    const standbys = nodes.filter((n) => n !== primary);
    return {
      cluster,
      engine: 'dolt',
      maxLag: c.policy.maxLagSeconds * 1000,
      lagUnit: 'ms',
      keep,
      storage,
      nodes: nodes.map((n) => {
        const rows = (primary?.replication ?? []).filter((r) => r.remote === n.node || standbys.length === 1);
        const lags = rows.map((r) => r.lagMillis).filter((x): x is number => x !== null);
        const replica = n.reachable && n.role !== 'primary';
        return {
          node: n.node,
          reachable: n.reachable,
          error: n.error,
          role: n.reachable ? (n.role === 'primary' ? 'primary' : 'replica') : undefined,
          replicaOf: replica && primary && n.epoch === primary.epoch ? primary.node : undefined,
          replicating: replica && rows.length > 0 && rows.every((r) => r.error === null),
          lag: n.role === 'primary' ? 0 : replica && lags.length === rows.length && rows.length ? Math.max(...lags) : undefined,
          version: n.version,
        };
      }),
    };
  }
  const nodes = await ctx.mysql.probeAll(c);
  const primary = nodes.find((n) => n.reachable && n.role === 'primary');
  return {
    cluster,
    engine: 'mysql',
    maxLag: c.policy.maxLagTransactions,
    lagUnit: 'transactions',
    keep,
    storage,
    nodes: nodes.map((n) => ({
      node: n.node,
      reachable: n.reachable,
      error: n.error,
      role: n.role,
      replicaOf: n.sourceNode,
      replicating: n.ioRunning === 'Yes' && n.sqlRunning === true,
      lag: n.role === 'primary' ? 0 : primary ? lagTransactions(appliedPos(n), primary.gtidBinlogPos) : undefined,
      version: n.version,
    })),
  };
}
