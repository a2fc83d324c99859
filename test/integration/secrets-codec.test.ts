/**
 * Secrets: a canary password in the inventory never reaches workflow history (`temporal workflow show -o json`,
 * every payload decoded), failure messages, the worker's logs or the CLI's output. And the optional AES-GCM
 * payload codec: with HANDOVER_CODEC_KEY on worker and client, every payload in history is `binary/encrypted`,
 * failure messages read "Encoded failure", the CLI still shows everything in clear, and the codec endpoint the
 * UI uses decodes what is in history.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { AesGcmCodec } from '../../codec/aes-gcm';
import { startCodecServer } from '../../codec/server';
import { runSwitchover } from '../../client/commands/switchover';
import { operationWorkflowId } from '../../core/ids';
import { spawnWorkerProcess, type WorkerProcess } from '../../bench/lab';
import { temporalBinary } from '../../sandbox/paths';
import { sleep } from '../../sandbox/ports';
import { startRedisFleet, type RedisFleet } from '../../sandbox/redis';
import { captureIO } from '../helpers';
import { decodeAll, findCanaries, listRuns } from '../secrets';

interface WorkerProc extends WorkerProcess {
  output: () => string;
}

/** The real worker process (worker/main.ts), everything it prints kept. */
function spawnWorker(env: Record<string, string>): WorkerProc {
  let out = '';
  const w = spawnWorkerProcess(env, (text) => (out += text));
  return { ...w, output: () => out };
}

async function waitForOutput(w: WorkerProc, re: RegExp, ms = 60_000): Promise<void> {
  const until = Date.now() + ms;
  while (!re.test(w.output())) {
    if (w.proc.exitCode !== null) throw new Error(`worker exited: ${w.output()}`);
    if (Date.now() > until) throw new Error(`worker did not print ${re}: ${w.output()}`);
    await sleep(100);
  }
}

/** How many runs of the cluster's workflow ID visibility lists now. */
function runCount(address: string, cluster: string): number {
  return listRuns(address, `WorkflowId="${operationWorkflowId(cluster)}"`).length;
}

/** The fleet's primary, then its replicas: each test switches over from whatever the fleet has now. */
async function replicasOf(fleet: RedisFleet): Promise<[string, string, string]> {
  const roles = await fleet.roles();
  const primary = Object.keys(roles).find((id) => roles[id] === 'master')!;
  const replicas = Object.keys(roles).filter((id) => roles[id] === 'slave').sort();
  expect(replicas).toHaveLength(2);
  return [primary, replicas[0], replicas[1]];
}

/** Every run of the cluster's workflow ID, each as `temporal workflow show -o json` prints it. */
async function histories(address: string, cluster: string, runs: number): Promise<string[]> {
  const t = temporalBinary();
  let list = '';
  let runIds: string[] = [];
  for (let i = 0; i < 50 && runIds.length !== runs; i++, await sleep(200)) {
    list = execFileSync(t, ['workflow', 'list', '--address', address, '--query', `WorkflowId="${operationWorkflowId(cluster)}"`, '-o', 'json'], { encoding: 'utf8' });
    runIds = (JSON.parse(list || '[]') as { execution: { runId: string } }[]).map((x) => x.execution.runId); // newest first
  }
  expect(runIds.length, list).toBe(runs);
  return runIds.map((r) => execFileSync(t, ['workflow', 'show', '--address', address, '-w', operationWorkflowId(cluster), '-r', r, '-o', 'json'], { encoding: 'utf8', maxBuffer: 64 << 20 }));
}

/** All payloads in a history JSON (objects with `metadata` and `data`), search attributes excluded. */
function payloads(historyJson: string): { metadata: Record<string, string>; data?: string }[] {
  const out: { metadata: Record<string, string>; data?: string }[] = [];
  const walk = (v: unknown, key: string) => {
    if (!v || typeof v !== 'object') return;
    if (key === 'searchAttributes') return; // indexed fields are never encoded (they are what the UI filters on)
    const o = v as Record<string, unknown>;
    // The SDK's own patch markers (patched(): {"id": "<patch name>", "deprecated": false}) are written by the core
    // without the payload codec; they carry the patch's name only, which is checked here.
    if (key === 'markerRecordedEventAttributes' && o.markerName === 'core_patch') {
      const data = JSON.stringify(o.details);
      const ids = [...data.matchAll(/"data":"([A-Za-z0-9+/=]+)"/g)].map((m) => JSON.parse(Buffer.from(m[1], 'base64').toString('utf8')) as { id?: string });
      for (const x of ids) if (!/^[a-z0-9-]+$/.test(x.id ?? '') || Object.keys(x).some((k) => k !== 'id' && k !== 'deprecated')) throw new Error(`unexpected patch marker payload ${JSON.stringify(x)}`);
      return;
    }
    if (o.metadata && typeof o.metadata === 'object' && 'encoding' in (o.metadata as object)) out.push(o as never);
    for (const [k, x] of Object.entries(o)) walk(x, k);
  };
  walk(JSON.parse(historyJson), '');
  return out;
}

const b64 = (s: string) => Buffer.from(s, 'base64').toString('utf8');

/** A history's text with every payload's data and metadata decoded from base64, so nothing hides in encoding. */
function decodedText(historyJson: string): string {
  return [historyJson, ...payloads(historyJson).flatMap((p) => [b64(p.data ?? ''), ...Object.values(p.metadata).map(b64)])].join('\n');
}

describe('secrets and payload encryption', () => {
  const address = inject('temporalAddress');
  let fleet: RedisFleet;
  let inventory: string;
  const canary = `canary-${randomUUID()}`;
  const wrongCanary = `canary-wrong-${randomUUID()}`;

  beforeAll(async () => {
    fleet = await startRedisFleet({ cluster: 'sec', password: canary });
    // A second cluster on the same nodes whose inventory names a wrong password: its runs must fail cleanly
    // without printing either password anywhere.
    process.env.HANDOVER_PW_SEC_WRONG = wrongCanary;
    const yaml = fleet.inventoryYaml();
    const second = yaml.replace(/^clusters:\n/, '').replace('name: sec', 'name: secwrong').replace(`env: ${fleet.passwordEnv}`, 'env: HANDOVER_PW_SEC_WRONG').replace(/id: sec-/g, 'id: secw-');
    inventory = path.join(fleet.baseDir, 'inventory.yaml');
    writeFileSync(inventory, yaml + second);
  });
  afterAll(async () => {
    delete process.env.HANDOVER_CODEC_KEY;
    await fleet?.stop();
  });

  it('a canary password appears in no history, failure message, worker log or CLI output', async () => {
    const taskQueue = `sec-${randomUUID()}`;
    const worker = spawnWorker({ HANDOVER_TEMPORAL_ADDRESS: address, HANDOVER_INVENTORY: inventory, HANDOVER_TASK_QUEUE: taskQueue });
    const cli: string[] = [];
    const [before, beforeWrong] = [runCount(address, 'sec'), runCount(address, 'secwrong')];
    const [, to1, to2] = await replicasOf(fleet);
    try {
      await waitForOutput(worker, /\[worker\] polling/);
      const base = { address, taskQueue, inventory, wait: true };
      const dry = captureIO();
      expect((await runSwitchover({ ...base, cluster: 'sec', dryRun: true }, dry)).exitCode, dry.text()).toBe(0);
      const ok = captureIO();
      expect((await runSwitchover({ ...base, cluster: 'sec', to: to1 }, ok)).exitCode, ok.text()).toBe(0);
      const okJson = captureIO();
      expect((await runSwitchover({ ...base, cluster: 'sec', to: to2, json: true }, okJson)).exitCode, okJson.text()).toBe(0);
      // Wrong password: refused (AuthenticationFailed) before anything changes, in text and JSON.
      const wrong = captureIO();
      expect((await runSwitchover({ ...base, cluster: 'secwrong' }, wrong)).exitCode).toBe(2);
      expect(wrong.text()).toMatch(/AuthenticationFailed/);
      const wrongJson = captureIO();
      expect((await runSwitchover({ ...base, cluster: 'secwrong', json: true }, wrongJson)).exitCode).toBe(2);
      expect(JSON.parse(wrongJson.lines.at(-1)!)).toMatchObject({ failed: true, type: 'AuthenticationFailed' });
      cli.push(dry.text(), ok.text(), okJson.text(), wrong.text(), wrongJson.text());
    } finally {
      await worker.stop();
    }

    const all = [...(await histories(address, 'sec', before + 3)).slice(0, 3), ...(await histories(address, 'secwrong', beforeWrong + 2)).slice(0, 2)].map(decodedText);
    // The decoding works: the histories' inputs and results are readable (cluster and node names are there) …
    expect(all[1]).toMatch(new RegExp(`"newPrimary":"${to1}"`));
    expect(all[3]).toMatch(/secw-1/);
    expect(all[3]).toMatch(/AuthenticationFailed/);
    // … and neither password is, nor in the CLI's output, nor in anything the worker process printed.
    for (const text of [...all, ...cli, worker.output()]) {
      expect(text).not.toContain(canary);
      expect(text).not.toContain(wrongCanary);
    }
    expect(worker.output()).toMatch(/polling/);
  });

  it('with HANDOVER_CODEC_KEY every payload and failure message in history is encrypted; the CLI and the codec endpoint read them', async () => {
    const key = randomBytes(32).toString('base64');
    const taskQueue = `sec-codec-${randomUUID()}`;
    const worker = spawnWorker({ HANDOVER_TEMPORAL_ADDRESS: address, HANDOVER_INVENTORY: inventory, HANDOVER_TASK_QUEUE: taskQueue, HANDOVER_CODEC_KEY: key });
    process.env.HANDOVER_CODEC_KEY = key; // the CLI's client
    const before = runCount(address, 'sec');
    const [from, to] = await replicasOf(fleet);
    let refusal;
    let ok;
    try {
      await waitForOutput(worker, /payloads=encrypted/);
      const base = { address, taskQueue, inventory, wait: true };
      ok = captureIO();
      const r = await runSwitchover({ ...base, cluster: 'sec', to }, ok);
      expect(r.exitCode, ok.text()).toBe(0);
      expect(r.report).toMatchObject({ oldPrimary: from, newPrimary: to }); // decoded for the client
      refusal = captureIO();
      expect((await runSwitchover({ ...base, cluster: 'sec', to }, refusal)).exitCode).toBe(2);
    } finally {
      delete process.env.HANDOVER_CODEC_KEY;
      await worker.stop();
    }
    // The CLI decoded the failure: its message is in clear for the operator.
    expect(refusal.text()).toMatch(new RegExp(`refused \\(PreconditionFailed\\): .*${to} is already the primary`));

    const [refusedRun, okRun] = (await histories(address, 'sec', before + 2)).slice(0, 2);
    for (const h of [okRun, refusedRun]) {
      const ps = payloads(h);
      expect(ps.length).toBeGreaterThan(5);
      for (const p of ps) expect(b64(p.metadata.encoding)).toBe('binary/encrypted');
      const text = decodedText(h);
      expect(text).not.toMatch(new RegExp(`"newPrimary"|${from}|already the primary`)); // no node name, result or message in clear
      expect(findCanaries(decodeAll(h), { password: canary, 'codec key': key }, 'history')).toEqual([]);
    }
    expect(refusedRun).toMatch(/Encoded failure/);
    // The key itself (a secret like the passwords) is in nothing the worker or the CLI printed.
    expect(findCanaries([worker.output(), ok!.text(), refusal.text()].join('\n'), { password: canary, 'codec key': key }, 'output')).toEqual([]);

    // The UI's codec endpoint decrypts what is in history; without the key's id it refuses.
    const codec = new AesGcmCodec(Buffer.from(key, 'base64'));
    const server = await startCodecServer(codec, { origins: ['http://127.0.0.1:8233'] });
    try {
      const pre = await fetch(`${server.url}/decode`, { method: 'OPTIONS', headers: { Origin: 'http://127.0.0.1:8233', 'Access-Control-Request-Method': 'POST' } });
      expect(pre.status).toBe(204);
      expect(pre.headers.get('access-control-allow-origin')).toBe('http://127.0.0.1:8233');
      const res = await fetch(`${server.url}/decode`, { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-Namespace': 'default' }, body: JSON.stringify({ payloads: payloads(okRun) }) });
      expect(res.status).toBe(200);
      const decoded = ((await res.json()) as { payloads: { data?: string }[] }).payloads.map((p) => b64(p.data ?? '')).join('\n');
      expect(decoded).toMatch(new RegExp(`"newPrimary":"${to}"`));
      expect(decoded).toMatch(/"cluster":"sec"/);
      expect(decoded).not.toContain(canary);
      const other = new AesGcmCodec(randomBytes(32));
      const bad = await startCodecServer(other);
      try {
        const r = await fetch(`${bad.url}/decode`, { method: 'POST', body: JSON.stringify({ payloads: payloads(okRun).slice(0, 1) }) });
        expect(r.status).toBe(400);
        expect(await r.text()).toMatch(/encrypted with key \w+, this process has key \w+/);
      } finally {
        await bad.close();
      }
    } finally {
      await server.close();
    }
  });
});
