/**
 * handover doctor [--cluster NAME] [--direct] [--json]
 * Is this installation ready to run runbooks? One line per check, `ok`, `FAIL` (with what to do) or `skip`.
 *
 * From this machine (the CLI's own view, needed to run any command):
 *   temporal            reachable from this machine at the configured address (TLS mode, namespace), as client/temporal.ts resolves it
 *   namespace           registered
 *   search attributes   HandoverCluster, HandoverRunbook, HandoverPhase registered as Keyword (core/ids.ts)
 *   workers             at least one worker polls the task queue for workflow and for activity tasks (DescribeTaskQueue,
 *                       pollers seen in the last POLLER_FRESH_MS, or HANDOVER_POLLER_FRESH_MS: a worker stopped longer ago
 *                       no longer counts)
 *   codec               this CLI's payload key (HANDOVER_CODEC_KEY) and the workers' can read each other (client/keys.ts)
 * On the worker (the `doctor` workflow, activities/doctor.ts: the worker's inventory, secrets, network and host):
 *   inventory           the worker's inventory loads
 *   <cluster>/<node>    reachable, credentials work, privileges / ACL suffice for every runbook (and backups)
 *   <cluster>/sentinel  topology sentinel: each Sentinel answers
 *   binaries            what backups and their verification spawn, found on the worker's host
 * And, when this CLI holds an inventory file:
 *   inventory (this machine)  it defines the clusters as the worker's does (inventory/shape.ts): runbooks refuse otherwise
 *
 * The CLI opens no database connection and needs no database secret. With --direct, or when no worker can run
 * the checks (Temporal unreachable, no worker polling, codec keys that do not match, no answer in time), the CLI
 * runs them itself from its own inventory and credentials when it has an inventory file, saying why on stderr;
 * without one they are skipped. Exit 0 when every check passes, 4 when Temporal cannot be reached (the other
 * checks still run and print), 1 otherwise.
 */
import { existsSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { Connection } from '@temporalio/client';
import { z } from 'zod';
import { doctorWorkflowId, SEARCH_ATTRIBUTES } from '../../core/ids';
import { formatCheck, type Check, type CheckStatus } from '../../core/doctor';
import { findCluster, inventoryPath, loadInventory } from '../../inventory/load';
import { clusterShape } from '../../inventory/shape';
import { runDoctorChecks, type DoctorChecksResult } from '../../activities/doctor';
import { diagnoseTls, explainConnectError, resolveTemporal, tcpRefusal, tlsMode, type TemporalTarget } from '../temporal';
import { CliError, CommonOptions, EXIT, connect, type IO } from '../common';
import { keyMismatch } from '../keys';
import { inventoryMismatch, runOnWorker } from '../worker-read';

export const DoctorOptions = CommonOptions.extend({
  cluster: z.string().min(1).optional(),
  /** Run the database and host checks from this process (its inventory and credentials) instead of on the worker. */
  direct: z.boolean().optional(),
});
export type DoctorOptions = z.input<typeof DoctorOptions>;

export { formatCheck, type Check, type CheckStatus };

/**
 * Temporal API enum values (temporal.api.enums.v1; @temporalio/proto is not a direct dependency): stable wire
 * numbers.
 */
const INDEXED_VALUE_TYPE_KEYWORD = 2;
const TASK_QUEUE_KIND_NORMAL = 1;
const TASK_QUEUE_TYPE_WORKFLOW = 1;
const TASK_QUEUE_TYPE_ACTIVITY = 2;

/**
 * A poller last seen longer ago than this is a worker that went away: an idle worker re-polls at least every
 * ~60-70 s (long polls), so a live one is never older; a stopped one fails this check 60-90 s after it stopped.
 */
export const POLLER_FRESH_MS = 90_000;

/**
 * The window in force: HANDOVER_POLLER_FRESH_MS overrides it for a server whose long polls are shorter than the
 * default minute (matching.longPollExpirationInterval): keep it above that interval, or a live idle worker
 * looks gone.
 */
export function pollerFreshMs(env: NodeJS.ProcessEnv): number {
  const v = env.HANDOVER_POLLER_FRESH_MS;
  if (v === undefined || v === '') return POLLER_FRESH_MS;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1000) throw new CliError(EXIT.refused, `refused (InvalidOption): HANDOVER_POLLER_FRESH_MS=${v}: say a whole number of milliseconds, at least 1000`);
  return n;
}


/** How long the CLI waits for the worker's checks (nodes are checked one after another). */
export const DOCTOR_WORKER_TIMEOUT_MS = 60_000;
/** A worker seen polling that has not taken the checks after this long has gone (or is stuck): the CLI stops waiting. */
export const DOCTOR_PICKUP_MS = 5_000;

/** `pollers`: the identities of the workers polling for workflow tasks within the window (undefined: not looked). */
async function temporalChecks(o: z.infer<typeof DoctorOptions>, add: (c: Check) => void, freshMs: number): Promise<{ reachable: boolean; pollers?: string[] }> {
  let t: TemporalTarget;
  try {
    t = resolveTemporal(o);
  } catch (e) {
    add({ check: 'temporal', status: 'FAIL', detail: (e as Error).message, fix: 'fix the Temporal config file or the TEMPORAL_* variables' });
    return { reachable: false };
  }
  let connection: Connection;
  try {
    const refused = await tcpRefusal(t.address);
    if (refused !== undefined) throw new Error(refused);
    connection = await Connection.connect({ address: t.address, tls: t.tls, apiKey: t.apiKey, metadata: t.metadata, connectTimeout: 5000 });
  } catch (e) {
    add({
      check: 'temporal',
      status: 'FAIL',
      detail: explainConnectError(e, t, await diagnoseTls(t)),
      fix: 'start Temporal or point TEMPORAL_ADDRESS / --address (and TEMPORAL_TLS_* / TEMPORAL_API_KEY) at it',
    });
    for (const check of ['namespace', 'search attributes', 'workers']) add({ check, status: 'skip', detail: 'Temporal not reachable' });
    return { reachable: false };
  }
  try {
    const ws = connection.workflowService;
    add({ check: 'temporal', status: 'ok', detail: `reachable at ${t.address} (${tlsMode(t.tls)}${t.apiKey ? ' + API key' : ''}) from this machine` });
    try {
      await ws.describeNamespace({ namespace: t.namespace });
      add({ check: 'namespace', status: 'ok', detail: `${t.namespace} registered` });
    } catch (e) {
      add({ check: 'namespace', status: 'FAIL', detail: `${t.namespace}: ${(e as Error).message}`, fix: `create it (temporal operator namespace create --namespace ${t.namespace}) or set TEMPORAL_NAMESPACE / --namespace` });
      add({ check: 'search attributes', status: 'skip', detail: 'no namespace' });
      add({ check: 'workers', status: 'skip', detail: 'no namespace' });
      return { reachable: true };
    }
    try {
      const r = await connection.operatorService.listSearchAttributes({ namespace: t.namespace });
      const have = r.customAttributes ?? {};
      const missing = Object.keys(SEARCH_ATTRIBUTES).filter((n) => Number(have[n]) !== INDEXED_VALUE_TYPE_KEYWORD);
      if (missing.length)
        add({
          check: 'search attributes',
          status: 'FAIL',
          detail: `${missing.join(', ')} not registered as Keyword in ${t.namespace}`,
          fix: `temporal operator search-attribute create --namespace ${t.namespace} ${missing.map((n) => `--name ${n} --type Keyword`).join(' ')} (Temporal Cloud: tcld namespace search-attributes add)`,
        });
      else add({ check: 'search attributes', status: 'ok', detail: `${Object.keys(SEARCH_ATTRIBUTES).join(', ')} registered (Keyword)` });
    } catch (e) {
      add({ check: 'search attributes', status: 'FAIL', detail: `cannot list them: ${(e as Error).message}`, fix: 'the credentials need to read the namespace (ListSearchAttributes)' });
    }
    try {
      const now = Date.now();
      const fresh = async (taskQueueType: number) => {
        const r = await ws.describeTaskQueue({ namespace: t.namespace, taskQueue: { name: o.taskQueue, kind: TASK_QUEUE_KIND_NORMAL }, taskQueueType });
        return (r.pollers ?? []).filter((p) => {
          const s = p.lastAccessTime?.seconds;
          return s !== undefined && s !== null && now - Number(s) * 1000 < freshMs;
        });
      };
      const wf = await fresh(TASK_QUEUE_TYPE_WORKFLOW);
      const act = await fresh(TASK_QUEUE_TYPE_ACTIVITY);
      const ids = [...new Set([...wf, ...act].map((p) => p.identity ?? '?'))];
      if (wf.length && act.length) add({ check: 'workers', status: 'ok', detail: `${ids.length} polling task queue ${o.taskQueue}: ${ids.join(', ')}` });
      else
        add({
          check: 'workers',
          status: 'FAIL',
          detail: `no worker polls task queue ${o.taskQueue} in namespace ${t.namespace} for ${!wf.length && !act.length ? 'workflow or activity' : !wf.length ? 'workflow' : 'activity'} tasks (none seen in the last ${freshMs / 1000} s)`,
          fix: 'start one (bin/handover-worker, deploy/handover-worker.service) with the same namespace and HANDOVER_TASK_QUEUE',
        });
      return { reachable: true, pollers: act.length ? wf.map((p) => p.identity ?? '?') : [] };
    } catch (e) {
      add({ check: 'workers', status: 'FAIL', detail: `cannot describe task queue ${o.taskQueue}: ${(e as Error).message}` });
    }
    return { reachable: true };
  } finally {
    await connection.close();
  }
}


/** The codec line and the worker's checks; `why` when the worker did not run them. */
async function onWorker(o: z.infer<typeof DoctorOptions>, pollers: string[] | undefined, add: (c: Check) => void): Promise<{ result?: DoctorChecksResult; why: string }> {
  let conn: Awaited<ReturnType<typeof connect>>;
  try {
    conn = await connect(o);
  } catch (e) {
    if (!(e instanceof CliError)) throw e;
    if (e.message.includes('InvalidCodecKey')) add({ check: 'codec', status: 'FAIL', detail: e.message.replace(/^refused \(InvalidCodecKey\): /, ''), fix: 'set HANDOVER_CODEC_KEY / HANDOVER_CODEC_KEY_FILE on this machine to the workers\' key' });
    return { why: e.message };
  }
  try {
    const mine = conn.keyIds.length ? `this CLI encrypts with ${conn.keyIds[0]}${conn.keyIds.length > 1 ? ` (and reads ${conn.keyIds.slice(1).join(', ')})` : ''}` : 'this CLI sends clear text (no HANDOVER_CODEC_KEY)';
    if (pollers === undefined) {
      add({ check: 'codec', status: 'skip', detail: `${mine}; the workers could not be looked up` });
      return { why: 'the task queue could not be described' };
    }
    if (pollers.length === 0) {
      add({ check: 'codec', status: 'skip', detail: `${mine}; no worker to compare with` });
      return { why: `no worker polls task queue ${o.taskQueue}` };
    }
    const mismatch = keyMismatch(conn.keyIds, pollers);
    if (mismatch) {
      add({ check: 'codec', status: 'FAIL', detail: mismatch.replace(/; set HANDOVER_CODEC_KEY.*$/, ''), fix: 'set HANDOVER_CODEC_KEY to the worker\'s key(s) (several, comma-separated, newest first, during a rotation)' });
      return { why: 'the worker cannot read this CLI\'s payloads (codec keys)' };
    }
    add({ check: 'codec', status: 'ok', detail: `${mine}; the workers polling ${o.taskQueue} read it` });
    const r = await runOnWorker<DoctorChecksResult>(
      conn.client,
      o.taskQueue,
      { workflowType: 'doctor', workflowId: doctorWorkflowId(o.cluster, randomUUID().slice(0, 8)), args: [{ cluster: o.cluster }], summary: `doctor${o.cluster ? ` of ${o.cluster}` : ''} (read-only)` },
      DOCTOR_WORKER_TIMEOUT_MS,
      pollers,
      DOCTOR_PICKUP_MS,
    );
    if (r.ok) return { result: r.result, why: '' };
    add({ check: 'checks on the worker', status: 'FAIL', detail: r.why, fix: 'look at the worker\'s log (bin/handover-worker) and the doctor run in the Temporal UI' });
    return { why: r.why };
  } catch (e) {
    if (!(e instanceof CliError)) throw e;
    add({ check: 'checks on the worker', status: 'FAIL', detail: e.message });
    return { why: e.message };
  } finally {
    await conn.close();
  }
}

/** This CLI's inventory file, when it has one: does it define the clusters as the worker's does? */
function compareInventories(file: string, cluster: string | undefined, worker: DoctorChecksResult, add: (c: Check) => void): void {
  const check = 'inventory (this machine)';
  if (!existsSync(file)) {
    add({ check, status: 'skip', detail: `none at ${file}; not needed: the worker's is used` });
    return;
  }
  try {
    const inv = loadInventory(file);
    const names = cluster ? (inv.clusters.some((c) => c.name === cluster) ? [cluster] : []) : inv.clusters.map((c) => c.name);
    const diffs = names.map((n) => inventoryMismatch(n, file, clusterShape(findCluster(inv, n)), worker.shapes[n])).filter((d): d is string => !!d);
    if (diffs.length) add({ check, status: 'FAIL', detail: diffs.join('; '), fix: 'make the two files agree: runbooks refuse to start while they differ (InventoryMismatch)' });
    else add({ check, status: 'ok', detail: names.length ? `${file} agrees with the worker's on ${names.join(', ')}` : `${file} does not define ${cluster ?? 'any cluster'}` });
  } catch (e) {
    add({ check, status: 'FAIL', detail: `${file}: ${(e as Error).message}`, fix: 'fix the file, or remove it: the CLI needs no inventory' });
  }
}

export async function runDoctor(input: DoctorOptions, io: IO, env: NodeJS.ProcessEnv = process.env): Promise<{ exitCode: number; checks: Check[]; checkedBy: 'worker' | 'cli' | 'none' }> {
  const o = DoctorOptions.parse(input);
  const checks: Check[] = [];
  const add = (c: Check) => {
    checks.push(c);
    if (!o.json) io.out(formatCheck(c));
  };
  const { reachable, pollers } = await temporalChecks(o, add, pollerFreshMs(env));

  let worker: { result?: DoctorChecksResult; why: string } = { why: '--direct' };
  if (!o.direct) worker = reachable ? await onWorker(o, pollers, add) : { why: 'Temporal is not reachable from this machine' };
  const file = inventoryPath(o.inventory, env);
  let checkedBy: 'worker' | 'cli' | 'none';
  if (worker.result) {
    checkedBy = 'worker';
    for (const c of worker.result.checks) add(c);
    compareInventories(file, o.cluster, worker.result, add);
  } else if (o.direct || existsSync(file)) {
    checkedBy = 'cli';
    if (!o.direct) io.err(`doctor: the inventory, node and binary checks ran on this machine with its inventory and credentials: ${worker.why}`);
    const inventory = () => {
      if (!existsSync(file)) throw new Error('not found');
      return loadInventory(file);
    };
    const r = await runDoctorChecks({ inventory, inventoryFile: file, env }, { cluster: o.cluster }, { host: 'on this machine', from: 'from this machine' });
    for (const c of r.checks) add(c);
  } else {
    checkedBy = 'none';
    add({ check: 'inventory', status: 'skip', detail: `no worker ran the inventory, node and binary checks (${worker.why}) and this machine has no inventory (${file}) to run them from` });
  }
  const failed = checks.filter((c) => c.status === 'FAIL').length;
  const exitCode = !reachable ? EXIT.unavailable : failed ? EXIT.failed : EXIT.ok;
  if (o.json) io.out(JSON.stringify({ ok: exitCode === EXIT.ok, exitCode, checkedBy, checks }));
  else io.out(failed ? `${failed} check(s) failed` : 'all checks passed');
  return { exitCode, checks, checkedBy };
}
