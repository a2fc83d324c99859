/**
 * Codec key mismatch caught before anything starts (issue #21 item 6), with the real worker process
 * (worker/main.ts), the real dev server and a real Redis fleet:
 *  - the worker publishes the key ids it holds in its identity; a CLI with another key (or none) is refused
 *    before anything starts, naming both key ids (exit 2, CodecKeyMismatch), and the cluster stays free;
 *  - key rotation: the codec carries a key map (the first key encrypts, every key decrypts);
 *  - a run started past the check (a client with another key) fails at once with CodecKeyMismatch instead of
 *    holding the cluster's lock, and a run with the right key then goes ahead;
 *  - abort of a run whose worker cannot read it says the abort did not take effect (exit 1, AbortNotTaken);
 *  - history marks the runs it cannot decode.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Client, Connection, WorkflowNotFoundError } from '@temporalio/client';
import { dataConverterFromEnv, keyId } from '../../codec/aes-gcm';
import { keyMismatch } from '../../client/keys';
import { runSwitchover } from '../../client/commands/switchover';
import { runAbort } from '../../client/commands/abort';
import { runHistory } from '../../client/commands/history';
import { loadInventory } from '../../inventory/load';
import { SA_CLUSTER, operationWorkflowId } from '../../core/ids';
import { spawnWorkerProcess, type WorkerProcess } from '../../bench/lab';
import { startRedisFleet, type RedisFleet } from '../../sandbox/redis';
import { captureIO, startTestWorker, until, type TestWorker } from '../helpers';
import { workflowPollers } from '../../client/workers';

const keyA = randomBytes(32).toString('base64');
const keyB = randomBytes(32).toString('base64');
const idA = keyId(Buffer.from(keyA, 'base64'));
const idB = keyId(Buffer.from(keyB, 'base64'));

/** Run `fn` with HANDOVER_CODEC_KEY set to `key` (unset when undefined) for the CLI in this process. */
async function withKey<T>(key: string | undefined, fn: () => Promise<T>): Promise<T> {
  const saved = process.env.HANDOVER_CODEC_KEY;
  if (key === undefined) delete process.env.HANDOVER_CODEC_KEY;
  else process.env.HANDOVER_CODEC_KEY = key;
  try {
    return await fn();
  } finally {
    if (saved === undefined) delete process.env.HANDOVER_CODEC_KEY;
    else process.env.HANDOVER_CODEC_KEY = saved;
  }
}

describe('codec keys: a mismatch is refused before anything starts', () => {
  const address = inject('temporalAddress');
  let fleet: RedisFleet;
  let inventory: string;
  let worker: WorkerProcess;
  let out = '';
  const taskQueue = `keys-${randomUUID()}`;

  beforeAll(async () => {
    fleet = await startRedisFleet({ cluster: 'ck' });
    inventory = fleet.writeInventory();
    // The worker holds keyA (encrypting) and keyB's predecessor role is tested by the key map below.
    worker = spawnWorkerProcess({ HANDOVER_TEMPORAL_ADDRESS: address, HANDOVER_INVENTORY: inventory, HANDOVER_TASK_QUEUE: taskQueue, HANDOVER_CODEC_KEY: keyA }, (t) => (out += t));
    await until('the worker says it encrypts', async () => /payloads=encrypted/.test(out), 120_000, 100);
    // Its poller (with its identity) is visible to DescribeTaskQueue once it has polled.
    const conn = await Connection.connect({ address });
    try {
      const client = new Client({ connection: conn });
      await until('the worker polls, its key id in its identity', async () => (await workflowPollers(client, taskQueue)).some((p) => p.includes(`keys=${idA}`)), 30_000, 100);
    } finally {
      await conn.close();
    }
  }, 180_000);
  afterAll(async () => {
    await worker?.stop();
    await fleet?.stop();
  });

  const base = () => ({ address, taskQueue, inventory, cluster: 'ck', wait: true });

  it('pure: which side cannot read which, naming both key ids', () => {
    expect(keyMismatch([idA], [`1@h keys=${idA}`])).toBeUndefined();
    expect(keyMismatch([idB, idA], [`1@h keys=${idA},${idB}`])).toBeUndefined(); // rotation: both hold both
    expect(keyMismatch([idB], [`1@h keys=${idA}`])).toMatch(new RegExp(`worker 1@h cannot read this CLI's payloads: it holds ${idA}, this CLI encrypts with ${idB}`));
    expect(keyMismatch([], [`1@h keys=${idA}`])).toMatch(new RegExp(`this CLI cannot read worker 1@h's results: it encrypts with ${idA}, this CLI holds no key`));
    expect(keyMismatch([idA], ['1@h keys=none'])).toMatch(/cannot read this CLI's payloads: it holds no key/);
    expect(keyMismatch([idA], ['1@h'])).toBeUndefined(); // a worker that publishes nothing is not judged
  });

  it('a CLI with another key, or none, is refused before anything starts, naming both ids; the right key runs', async () => {
    // The cluster's workflow ID as it is before the refusals (another test may have run on it): no new run after them.
    const conn = await Connection.connect({ address });
    const lastRun = () =>
      new Client({ connection: conn }).workflow
        .getHandle(operationWorkflowId('ck'))
        .describe()
        .then((d) => d.runId, (e: unknown) => {
          if (e instanceof WorkflowNotFoundError) return 'none';
          throw e;
        });
    const before = await lastRun();
    for (const [key, re] of [
      [keyB, new RegExp(`^refused \\(CodecKeyMismatch\\): worker \\d+@\\S+ cannot read this CLI's payloads: it holds ${idA}, this CLI encrypts with ${idB};`)],
      [undefined, new RegExp(`^refused \\(CodecKeyMismatch\\): this CLI cannot read worker \\d+@\\S+'s results: it encrypts with ${idA}, this CLI holds no key`)],
    ] as const) {
      const io = captureIO();
      const r = await withKey(key, () => runSwitchover({ ...base(), dryRun: true }, io));
      expect(r.exitCode, io.text()).toBe(2);
      expect(io.errors).toEqual([expect.stringMatching(re)]);
    }
    // Nothing was started: the cluster's workflow ID has no new run.
    try {
      expect(await lastRun()).toBe(before);
    } finally {
      await conn.close();
    }
    const ok = captureIO();
    const r = await withKey(keyA, () => runSwitchover({ ...base(), dryRun: true }, ok));
    expect(r.exitCode, ok.text()).toBe(0);
    // Rotation on the CLI side: a new key first and the worker's among the rest still cannot be used to send
    // (the worker cannot read the new key), but reading with a key map works both ways.
    const rot = captureIO();
    expect((await withKey(`${keyB},${keyA}`, () => runSwitchover({ ...base(), dryRun: true }, rot))).exitCode).toBe(2);
    expect(rot.errors[0]).toMatch(new RegExp(`this CLI encrypts with ${idB}`));
  });

  it('a run started past the check fails at once (CodecKeyMismatch) instead of holding the cluster; history marks it', async () => {
    const conn = await Connection.connect({ address });
    let wrongRun = '';
    try {
      const wrong = new Client({ connection: conn, dataConverter: dataConverterFromEnv({ HANDOVER_CODEC_KEY: keyB }) });
      const h = await wrong.workflow.start('switchover', { workflowId: operationWorkflowId('ck'), taskQueue, args: [{ cluster: 'ck', dryRun: true }], staticSummary: 'switchover of ck (wrong key)', typedSearchAttributes: [{ key: SA_CLUSTER, value: 'ck' }] });
      wrongRun = h.firstExecutionRunId;
      const t0 = Date.now();
      const status = await until('the run ends', async () => {
        const name = (await h.describe()).status.name;
        return name !== 'RUNNING' && name;
      }, 30_000, 100);
      expect(status).toBe('FAILED');
      expect(Date.now() - t0).toBeLessThan(30_000);
      // The cluster is free: the right key's run goes ahead.
      const io = captureIO();
      expect((await withKey(keyA, () => runSwitchover({ ...base(), dryRun: true }, io))).exitCode, io.text()).toBe(0);
      // And its failure type, read with the worker's key (the failure is encrypted with it).
      const right = new Client({ connection: conn, dataConverter: dataConverterFromEnv({ HANDOVER_CODEC_KEY: keyA }) });
      const err = await right.workflow.getHandle(h.workflowId, h.firstExecutionRunId).result().catch((e: Error) => e);
      expect(JSON.stringify((err as { cause?: unknown }).cause, Object.getOwnPropertyNames((err as { cause?: object }).cause ?? {}))).toMatch(/CodecKeyMismatch/);
    } finally {
      await conn.close();
    }
    // history: with keyA every run reads; without a key the encrypted runs are marked, not blank.
    // (both runs started above in visibility, which lags a little behind the runs.)
    const marked = await until('both runs in history', async () => {
      const m = await withKey(undefined, () => runHistory({ address, cluster: 'ck', limit: 10 }, captureIO()));
      return (m.entries ?? []).length >= 2 && m.entries!.some((e) => e.runId === wrongRun) && m;
    }, 10_000, 100);
    for (const e of marked.entries!) {
      expect(e.undecodable).toBe(true);
      expect(e.summary).toMatch(/^\(cannot decode: /);
    }
    const read = await withKey(`${keyB},${keyA}`, () => runHistory({ address, cluster: 'ck', limit: 10 }, captureIO()));
    expect(read.entries!.every((e) => !e.undecodable && /switchover of ck/.test(e.summary ?? '')), JSON.stringify(read.entries)).toBe(true);
  });

  it('abort of a run no worker can read says it did not take effect (exit 1, AbortNotTaken)', async () => {
    // A worker without a key cannot decode an encrypted input: its workflow task fails and is retried.
    let tw: TestWorker | undefined;
    const conn = await Connection.connect({ address });
    try {
      tw = await startTestWorker({ inventory: () => loadInventory(inventory) });
      const enc = new Client({ connection: conn, dataConverter: dataConverterFromEnv({ HANDOVER_CODEC_KEY: keyA }) });
      const id = `handover-ck-stuck-${randomUUID()}`;
      const h = await enc.workflow.start('switchover', { workflowId: id, taskQueue: tw.taskQueue, args: [{ cluster: 'ck', dryRun: true }] });
      await until('its workflow task failed once', async () => ((await h.describe()).raw.pendingWorkflowTask?.attempt ?? 0) >= 2, 20_000, 100);
      const io = captureIO();
      const r = await withKey(keyA, () => runAbort({ address, workflowId: id }, io));
      expect(r.exitCode, io.text()).toBe(1);
      expect(io.errors).toEqual([expect.stringMatching(/^failed \(AbortNotTaken\): the abort of handover-ck-stuck-\S+ is recorded but cannot take effect: its workflow task has failed \d+ time\(s\)/)]);
      const j = captureIO();
      expect((await withKey(keyA, () => runAbort({ address, workflowId: id, json: true }, j))).exitCode).toBe(1);
      expect(JSON.parse(j.lines[0])).toMatchObject({ failed: true, type: 'AbortNotTaken' });
      await h.terminate('test done');
    } finally {
      await tw?.stop();
      await conn.close();
    }
  });
});
