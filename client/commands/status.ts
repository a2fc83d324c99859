/**
 * handover status [--cluster NAME] [--direct] [--json]
 * Each cluster: topology, engine, primary, each replica's link and lag, and the runbook running on it, if any.
 *
 * The databases are read on the worker (the clusterStatus workflow, workflows/status.ts: the worker's inventory
 * and secrets; the CLI needs Temporal alone). When this CLI holds an inventory that defines the cluster
 * differently, it says so (done with warnings, exit 5). The CLI reads the databases itself, from its own
 * inventory and with its own credentials (the same read-only probes, activities/status.ts), with --direct, or
 * when the worker cannot (Temporal unreachable, no worker polling, no answer in time), saying why on stderr:
 * status must work when it is needed most. A read-only look starts no operation and takes no lock. Nothing
 * printed carries a secret (errors name the reference). The running operations come from Temporal visibility
 * (open workflows with the HandoverCluster search attribute); without Temporal they are shown as unknown.
 */
import { existsSync } from 'node:fs';
import { z } from 'zod';
import { HandoverError } from '../../core/errors';
import { SA_CLUSTER, SA_PHASE, SA_RUNBOOK, monitorWorkflowId } from '../../core/ids';
import { formatClusterStatus, type ClusterStatus, type MonitorSummary, type OperationStatus } from '../../core/status';
import type { MonitorStatus } from '../../workflows/monitor';
import { inventoryPath, loadInventory, findCluster } from '../../inventory/load';
import type { ClusterSpec, Inventory } from '../../inventory/schema';
import { probeClusterStatus } from '../../activities/status';
import type { Client } from '@temporalio/client';
import { CliError, CommonOptions, EXIT, connect, sayFailure, type IO } from '../common';
import { inventoryMismatch, localShape, readOnWorker } from '../worker-read';

export const StatusOptions = CommonOptions.extend({
  cluster: z.string().min(1).optional(),
  /** Read the databases from this process (its inventory and credentials) instead of on the worker. */
  direct: z.boolean().optional(),
});
export type StatusOptions = z.input<typeof StatusOptions>;

export { STATUS_PROBE_TIMEOUT_MS } from '../../activities/status';

const probeCluster = (inv: Inventory, c: ClusterSpec) => probeClusterStatus({ inventory: () => inv }, c);

/** Open workflows per cluster, from visibility (one query for all clusters asked about), and what each running monitor says. */
async function openOperations(client: Client, clusters: string[]): Promise<{ ops: Map<string, OperationStatus[]>; monitors: Map<string, MonitorSummary> }> {
  const out = new Map<string, OperationStatus[]>(clusters.map((c) => [c, []]));
  const which = clusters.map((c) => `"${c.replace(/"/g, '')}"`).join(', ');
  for await (const w of client.workflow.list({ query: `ExecutionStatus = "Running" AND HandoverCluster IN (${which})` })) {
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
      const m = await client.workflow.getHandle(id).query<MonitorStatus & { flagged?: Record<string, string[]> }>('status');
      const emptyReturns = (m.emptyReturns ?? []).map((e) => `${new Date(e.at).toISOString()}: ${e.text}`);
      monitors.set(cluster, { workflowId: id, primary: m.lastKnown?.primary, flagged: m.flagged ?? {}, blind: m.blind, blocked: m.blocked, ...(emptyReturns.length ? { emptyReturns } : {}) });
    } catch (e) {
      monitors.set(cluster, { workflowId: id, flagged: {}, error: (e as Error).message });
    }
  }
  return { ops: out, monitors };
}

/** The clusters read from this process: its inventory, its credentials. */
function readDirect(o: z.infer<typeof StatusOptions>): { specs: ClusterSpec[]; probe: () => Promise<ClusterStatus[]> } {
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
  return { specs, probe: () => Promise.all(specs.map((c) => probeCluster(inv, c))) };
}

export async function runStatus(raw: StatusOptions, io: IO): Promise<{ exitCode: number; clusters?: ClusterStatus[]; readBy?: 'worker' | 'cli' }> {
  const o = StatusOptions.parse(raw);
  try {
    // Temporal: the worker's read and the open operations. Unreachable: the databases are read from here.
    let conn: Awaited<ReturnType<typeof connect>> | undefined;
    let why: string | undefined;
    try {
      conn = await connect(o);
    } catch (e) {
      if (!(e instanceof CliError) || e.exitCode !== EXIT.unavailable) throw e;
      why = e.message;
    }
    try {
      let clusters: ClusterStatus[] | undefined;
      const warnings: string[] = [];
      if (conn && !o.direct) {
        const r = await readOnWorker(conn.client, o.taskQueue, { cluster: o.cluster });
        if (r.ok) {
          clusters = r.result.clusters;
          // This CLI's inventory, where it defines a cluster too, must agree with the worker's.
          for (const c of clusters) {
            const mine = localShape(o, c.cluster);
            const w = mine && inventoryMismatch(c.cluster, mine.file, mine.shape, r.result.shapes[c.cluster]);
            if (w) warnings.push(`InventoryMismatch: ${w} (shown: the worker's view)`);
          }
        } else why = r.why;
      }
      const readBy = clusters ? 'worker' : 'cli';
      if (!clusters) {
        const d = readDirect(o);
        if (!o.direct) io.err(`status read from this machine with its inventory and credentials: ${why}`);
        clusters = await d.probe();
      }
      const ops = conn ? await openOperations(conn.client, clusters.map((c) => c.cluster)) : undefined;
      for (const c of clusters) {
        c.operations = ops?.ops.get(c.cluster);
        const m = ops?.monitors.get(c.cluster);
        if (m) c.monitor = m;
      }
      if (o.json) io.out(JSON.stringify({ readBy, clusters, ...(warnings.length ? { warnings } : {}) }));
      else io.out(clusters.map((c) => formatClusterStatus(c).join('\n')).join('\n\n'));
      for (const w of warnings) if (!o.json) io.err(`warning: ${w}`);
      // Exit 4 when no node of any cluster asked about answered: the cluster (or the route to it) is down.
      const noneAnswered = clusters.length > 0 && clusters.every((c) => c.nodes.length > 0 && c.nodes.every((n) => !n.reachable));
      return { exitCode: noneAnswered ? EXIT.unavailable : warnings.length ? EXIT.warnings : EXIT.ok, clusters, readBy };
    } finally {
      await conn?.close();
    }
  } catch (e) {
    if (!(e instanceof CliError)) throw e;
    sayFailure(o, io, e);
    return { exitCode: e.exitCode };
  }
}

/**
 * Pure: the nodes that will not follow a new primary, each with why (unreachable, replication link down — a
 * wrong masterauth or replication password shows as that —, replication threads stopped), the primary and the
 * chosen candidate excepted (the plan judges those itself).
 */
export function notFollowing(c: ClusterStatus, except: string[] = []): { node: string; reason: string }[] {
  const out: { node: string; reason: string }[] = [];
  for (const n of c.nodes) {
    if (except.includes(n.node) || c.primaries.includes(n.node)) continue;
    if (!n.reachable) out.push({ node: n.node, reason: `unreachable${n.error ? ` (${n.error})` : ''}` });
    else if (n.role === 'replica' && n.linkUp === false) out.push({ node: n.node, reason: `its replication link to ${n.replicaOf ?? '?'} is down (${n.link}; wrong replication credentials, or the network)` });
  }
  return out;
}

/**
 * What `plan` says beside every plan: restart risks, and the nodes that will not follow the new primary. Read on
 * the worker like status (from this machine when the worker cannot); nothing when neither can read the cluster
 * (the plan's own output says why).
 */
export async function planWarnings(o: CommonOptions, cluster: string, candidate?: string): Promise<{ restartRisks: string[]; notFollowing: { node: string; reason: string }[] }> {
  try {
    let st: ClusterStatus | undefined;
    let conn: Awaited<ReturnType<typeof connect>> | undefined;
    try {
      conn = await connect(o);
      const r = await readOnWorker(conn.client, o.taskQueue, { cluster });
      if (r.ok) st = r.result.clusters[0];
    } catch {
      /* Temporal unreachable: read from here */
    } finally {
      await conn?.close();
    }
    if (!st) {
      const inv = loadInventory(inventoryPath(o.inventory));
      st = await probeCluster(inv, findCluster(inv, cluster));
    }
    return { restartRisks: st.restartRisks ?? [], notFollowing: notFollowing(st, candidate ? [candidate] : []) };
  } catch {
    return { restartRisks: [], notFollowing: [] };
  }
}
