/**
 * Handover against a Temporal reached like a production one: through nginx TLS fronts before the real dev
 * server (sandbox/tls-front.ts), configured only with Temporal's own variables (TEMPORAL_ADDRESS,
 * TEMPORAL_TLS_*, TEMPORAL_API_KEY) as every Temporal tool reads them.
 *  - mTLS: the real worker process and the CLI run a switchover of a real Redis fleet through the front.
 *  - API key: the front lets only `authorization: Bearer <key>` through; TEMPORAL_API_KEY gets the CLI in.
 *  - Refusals: no client certificate, a wrong CA, a wrong server name, a wrong API key: one line each, exit 4,
 *    and no workflow started.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Client, Connection } from '@temporalio/client';
import { startTlsFront, type TlsFront } from '../../sandbox/tls-front';
import { startRedisFleet, type RedisFleet } from '../../sandbox/redis';
import { sleep } from '../../sandbox/ports';
import { spawnWorkerProcess, type WorkerProcess } from '../../bench/lab';
import { runCli } from '../helpers';

let front: TlsFront;
let fleet: RedisFleet;
let inventory: string;
const taskQueue = `tls-${randomUUID()}`;

/** Run `fn` with these variables set in this process (undefined removes one), then put everything back. */
async function withEnv<T>(vars: Record<string, string | undefined>, fn: () => Promise<T>): Promise<T> {
  const saved: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(vars)) {
    saved[k] = process.env[k];
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

const mtlsEnv = () => ({
  TEMPORAL_ADDRESS: front.mtlsAddress,
  TEMPORAL_TLS_SERVER_CA_CERT_PATH: front.ca,
  TEMPORAL_TLS_CLIENT_CERT_PATH: front.clientCert,
  TEMPORAL_TLS_CLIENT_KEY_PATH: front.clientKey,
  HANDOVER_TEMPORAL_ADDRESS: undefined,
});

/** Runs of the cluster's workflow ID on the dev server itself (not through the front). */
async function runsOf(workflowId: string): Promise<number> {
  const connection = await Connection.connect({ address: inject('temporalAddress') });
  try {
    return (await new Client({ connection }).workflow.count(`WorkflowId = "${workflowId}"`)).count;
  } finally {
    await connection.close();
  }
}

beforeAll(async () => {
  front = await startTlsFront(inject('temporalAddress'));
  fleet = await startRedisFleet({ flavor: 'redis', cluster: 'tls-temporal' });
  inventory = fleet.writeInventory();
});
afterAll(async () => {
  await fleet?.stop();
  await front?.stop();
});

describe('Temporal through an mTLS front', () => {
  let worker: WorkerProcess | undefined;
  afterAll(async () => {
    await worker?.stop();
  });

  it('the worker process and the CLI run a switchover with TEMPORAL_* variables only', async () => {
    let out = '';
    worker = spawnWorkerProcess({ ...mtlsEnv(), HANDOVER_INVENTORY: inventory, HANDOVER_TASK_QUEUE: taskQueue, HANDOVER_NAMESPACE: undefined }, (t) => (out += t));
    for (let i = 0; i < 600 && !/\[worker\] polling/.test(out); i++) {
      if (worker.proc.exitCode !== null) throw new Error(`worker exited: ${out}`);
      await sleep(100);
    }
    expect(out).toContain(`[worker] polling ${front.mtlsAddress}, namespace default, mTLS`);

    const r = await withEnv(mtlsEnv(), () => runCli(['switchover', '--cluster', fleet.cluster, '--inventory', inventory, '--task-queue', taskQueue, '--wait']));
    expect(r.code, r.out + r.err).toBe(0);
    expect(r.out).toMatch(new RegExp(`switched over ${fleet.cluster}: ${fleet.nodes[0].id} -> `));
    const roles = await fleet.roles();
    expect(Object.values(roles).filter((x) => x === 'master')).toHaveLength(1);
    expect(roles[fleet.nodes[0].id]).toBe('slave');
  });
});

describe('Temporal through an API-key front', () => {
  it('TEMPORAL_API_KEY gets through (bearer authorization header over TLS)', async () => {
    const r = await withEnv({ TEMPORAL_ADDRESS: front.apiKeyAddress, TEMPORAL_TLS_SERVER_CA_CERT_PATH: front.ca, TEMPORAL_API_KEY: front.apiKey, HANDOVER_TEMPORAL_ADDRESS: undefined }, () =>
      runCli(['history', '--cluster', fleet.cluster, '--inventory', inventory]),
    );
    expect(r.code, r.out + r.err).toBe(0);
  });
});

describe('connection refusals: one line, exit 4, nothing started', () => {
  const cases: [string, () => Record<string, string | undefined>, RegExp][] = [
    ['no client certificate', () => ({ ...mtlsEnv(), TEMPORAL_TLS_CLIENT_CERT_PATH: undefined, TEMPORAL_TLS_CLIENT_KEY_PATH: undefined }), /the server requires a client certificate/],
    ['a wrong CA', () => ({ ...mtlsEnv(), TEMPORAL_TLS_SERVER_CA_CERT_PATH: front.otherCa }), /the server's certificate is not signed by the configured CA/],
    ['a wrong server name', () => ({ ...mtlsEnv(), TEMPORAL_TLS_SERVER_NAME: 'wrong.example' }), /the server's certificate does not name the host dialled/],
    [
      'a wrong API key',
      () => ({ TEMPORAL_ADDRESS: front.apiKeyAddress, TEMPORAL_TLS_SERVER_CA_CERT_PATH: front.ca, TEMPORAL_API_KEY: 'not-the-key', HANDOVER_TEMPORAL_ADDRESS: undefined }),
      /the server refused the credentials/,
    ],
  ];
  it.each(cases)('%s', async (_name, env, why) => {
    const before = await runsOf(`handover-${fleet.cluster}`);
    const r = await withEnv(env(), () => runCli(['switchover', '--cluster', fleet.cluster, '--inventory', inventory, '--task-queue', taskQueue]));
    expect(r.code, r.out + r.err).toBe(4);
    const lines = r.err.trim().split('\n');
    expect(lines, r.err).toHaveLength(1);
    expect(lines[0]).toMatch(/^cannot reach Temporal at 127\.0\.0\.1:\d+, namespace default, (mTLS|TLS)( \+ API key)?: /);
    expect(lines[0]).toMatch(why);
    expect(lines[0]).not.toContain(front.apiKey);
    expect(await runsOf(`handover-${fleet.cluster}`)).toBe(before);
  });
});
