/**
 * handover status [--cluster NAME] [--json]
 * Each cluster of the inventory: topology, engine, primary, each replica's link and lag, and the runbook
 * running on it, if any.
 *
 * The databases are read directly from this process with the inventory's credentials (the same read-only
 * probes the runbooks' first step uses, activities/redis.ts and activities/mysql.ts, called outside Temporal),
 * not through an activity: status must work when it is needed most, with the worker or Temporal down, and a
 * read-only look should leave no workflow behind. Credentials are resolved from the environment or files the
 * inventory names; nothing printed carries a secret (errors name the reference). The running operations come
 * from Temporal visibility (open workflows with the HandoverCluster search attribute); without Temporal they
 * are shown as unknown.
 */
import { existsSync } from 'node:fs';
import { z } from 'zod';
import { HandoverError } from '../../core/errors';
import { SA_CLUSTER, SA_PHASE, SA_RUNBOOK, maintenanceWorkflowId, monitorWorkflowId } from '../../core/ids';
import type { MaintenanceWindow } from '../../core/maintenance';
import { readWindows } from './maintenance';
import { nodesNotFollowing } from '../../core/standing';
import { doltClusterStatus, formatClusterStatus, mysqlClusterStatus, redisClusterStatus, type ClusterStatus, type MonitorSummary, type OperationStatus } from '../../core/status';
import type { MonitorStatus } from '../../workflows/monitor';
import { inventoryPath, loadInventory, findCluster } from '../../inventory/load';
import type { ClusterSpec, Inventory } from '../../inventory/schema';
import { redisOps } from '../../activities/redis/node';
import { connectRedis } from '../../activities/redis/conn';
import { mysqlOps } from '../../activities/mysql/node';
import { doltOps } from '../../activities/dolt/node';
import { CliError, CommonOptions, EXIT, connect, sayFailure, type IO } from '../common';

export const StatusOptions = CommonOptions.extend({
  cluster: z.string().min(1).optional(),
});
export type StatusOptions = z.input<typeof StatusOptions>;

export /** Every node is probed in parallel; one that has not answered within this is shown as a timeout. */
const STATUS_PROBE_TIMEOUT_MS = 2_500;

async function probeCluster(inv: Inventory, c: ClusterSpec): Promise<ClusterStatus> {
  try {
    if (c.engine === 'dolt') return doltClusterStatus(c.name, await doltOps({ inventory: () => inv, probeTimeoutMs: STATUS_PROBE_TIMEOUT_MS }).probeAll(c));
    if (c.engine === 'mysql') return mysqlClusterStatus(c.name, await mysqlOps({ inventory: () => inv, probeTimeoutMs: STATUS_PROBE_TIMEOUT_MS }).probeAll(c));
    return redisClusterStatus(c.name, c.topology, await redisOps({ inventory: () => inv, connectRedis, probeTimeoutMs: STATUS_PROBE_TIMEOUT_MS }).probeAllWithPermissions(c));
  } catch (e) {
    // A missing secret or a refused login: say which reference, move on to the next cluster.
    return { cluster: c.name, engine: c.engine, topology: c.topology, primaries: [], nodes: [], problems: [], error: e instanceof HandoverError ? `${e.type}: ${e.message}` : (e as Error).message };
  }
}

/** Open workflows per cluster, from visibility (one query for all clusters asked about), and what each running monitor says. */
async function openOperations(o: CommonOptions, clusters: string[]): Promise<{ ops: Map<string, OperationStatus[]>; monitors: Map<string, MonitorSummary>; maintenance: Map<string, MaintenanceWindow[]> } | undefined> {
  let conn;
  try {
    conn = await connect(o);
  } catch (e) {
    if (e instanceof CliError && e.exitCode === EXIT.unavailable) return undefined;
    throw e;
  }
  try {
    const out = new Map<string, OperationStatus[]>(clusters.map((c) => [c, []]));
    const which = clusters.map((c) => `"${c.replace(/"/g, '')}"`).join(', ');
    for await (const w of conn.client.workflow.list({ query: `ExecutionStatus = "Running" AND HandoverCluster IN (${which})` })) {
      const cluster = w.typedSearchAttributes.get(SA_CLUSTER);
      if (!cluster || !out.has(cluster)) continue;
      out.get(cluster)!.push({
        workflowId: w.workflowId,
        runId: w.runId,
        workflowType: w.type,
        runbook: w.typedSearchAttributes.get(SA_RUNBOOK),
        phase: w.typedSearchAttributes.get(SA_PHASE),
        startTime: w.startTime.toISOString(),
      });
    }
    const monitors = new Map<string, MonitorSummary>();
    for (const [cluster, list] of out) {
      const id = monitorWorkflowId(cluster);
      if (!list.some((w) => w.workflowId === id)) continue;
      try {
        const m = await conn.client.workflow.getHandle(id).query<MonitorStatus & { flagged?: Record<string, string[]> }>('status');
        monitors.set(cluster, { workflowId: id, primary: m.lastKnown?.primary, flagged: m.flagged ?? {}, blind: m.blind, blocked: m.blocked });
      } catch (e) {
        monitors.set(cluster, { workflowId: id, flagged: {}, error: (e as Error).message });
      }
    }
    // Maintenance windows (handover maintenance): each cluster's maintenance workflow, when one runs.
    const maintenance = new Map<string, MaintenanceWindow[]>();
    await Promise.all(
      clusters.map(async (c) => {
        const w = await readWindows(conn.client.workflow.getHandle(maintenanceWorkflowId(c))).catch(() => []);
        if (w.length) maintenance.set(c, w);
      }),
    );
    return { ops: out, monitors, maintenance };
  } finally {
    await conn.close();
  }
}

export async function runStatus(raw: StatusOptions, io: IO): Promise<{ exitCode: number; clusters?: ClusterStatus[] }> {
  const o = StatusOptions.parse(raw);
  try {
    const file = inventoryPath(o.inventory);
    if (!existsSync(file)) throw new CliError(EXIT.refused, `refused (InvalidInventory): no inventory at ${file}; pass --inventory FILE or set HANDOVER_INVENTORY`);
    let inv: Inventory;
    let specs: ClusterSpec[];
    try {
      inv = loadInventory(file);
      specs = o.cluster ? [findCluster(inv, o.cluster)] : inv.clusters;
    } catch (e) {
      if (e instanceof HandoverError) throw new CliError(EXIT.refused, `refused (${e.type}): ${e.message}`);
      throw e;
    }
    const [clusters, ops] = await Promise.all([Promise.all(specs.map((c) => probeCluster(inv, c))), openOperations(o, specs.map((c) => c.name))]);
    for (const c of clusters) {
      c.operations = ops?.ops.get(c.cluster);
      const m = ops?.monitors.get(c.cluster);
      if (m) c.monitor = m;
      for (const w of ops?.maintenance.get(c.cluster) ?? []) {
        const n = c.nodes.find((x) => x.node === w.node);
        if (n) n.maintenance = w;
      }
    }
    if (o.json) io.out(JSON.stringify({ clusters }));
    else io.out(clusters.map((c) => formatClusterStatus(c).join('\n')).join('\n\n'));
    // Exit 4 when no node of any cluster asked about answered: the cluster (or the route to it) is down.
    const noneAnswered = clusters.length > 0 && clusters.every((c) => c.nodes.length > 0 && c.nodes.every((n) => !n.reachable));
    return { exitCode: noneAnswered ? EXIT.unavailable : EXIT.ok, clusters };
  } catch (e) {
    if (!(e instanceof CliError)) throw e;
    sayFailure(o, io, e);
    return { exitCode: e.exitCode };
  }
}

/**
 * The restart-risk lines of one cluster (core/restart-risk.ts), probed directly as `status` does; [] when the
 * inventory or the cluster cannot be read (the runbook's own output says why).
 */
export async function restartRiskLines(inventory: string | undefined, cluster: string): Promise<string[]> {
  return (await planWarnings(inventory, cluster)).restartRisks;
}

/**
 * Pure: the nodes that will not follow a new primary, each with why (unreachable, replication link down — a
 * wrong masterauth or replication password shows as that —, replication threads stopped), the primary and the
 * chosen candidate excepted (the plan judges those itself).
 */
export function notFollowing(c: ClusterStatus, except: string[] = []): { node: string; reason: string }[] {
  return nodesNotFollowing(c, except);
}

/** What `plan` says beside every plan: restart risks, and the nodes that will not follow the new primary. */
export async function planWarnings(inventory: string | undefined, cluster: string, candidate?: string): Promise<{ restartRisks: string[]; notFollowing: { node: string; reason: string }[] }> {
  try {
    const inv = loadInventory(inventoryPath(inventory));
    const st = await probeCluster(inv, findCluster(inv, cluster));
    return { restartRisks: st.restartRisks ?? [], notFollowing: notFollowing(st, candidate ? [candidate] : []) };
  } catch {
    return { restartRisks: [], notFollowing: [] };
  }
}
