/** Probe the backup sources: every node's role, link and lag, engine-neutral, plus the cluster's backup settings. */
import { appliedPos, lagTransactions } from '../../core/mysql/decide';
import { ErrorType, HandoverError } from '../../core/errors';
import type { BackupContext } from './context';
import type { ProbeBackupResult } from './contracts';

export async function probeBackupSources(ctx: BackupContext, { cluster }: { cluster: string }): Promise<ProbeBackupResult> {
  const c = ctx.clusterOf(cluster);
  const storage = ctx.storageOf(c).location;
  const keep = c.backup?.keep ?? 7;
  // A Redis Cluster has one primary per shard: one backup would hold one shard's keys. Refused, plainly, until
  // per-shard backups exist (before, it was refused as "more than one primary … resolve the split").
  if (c.engine === 'redis' && c.topology === 'cluster')
    throw new HandoverError(ErrorType.PreconditionFailed, `${cluster} is a Redis Cluster: backups of every shard are not supported yet (one backup would hold one shard's keys); nothing was taken`);
  if (c.engine === 'redis') {
    const nodes = await ctx.redis.probeAll(c);
    const primary = nodes.find((n) => n.reachable && n.role === 'primary');
    return {
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
        lag: n.role === 'primary' ? 0 : primary?.offset !== undefined && n.offset !== undefined ? Math.max(0, primary.offset - n.offset) : undefined,
        version: n.version,
      })),
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
