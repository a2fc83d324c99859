/**
 * The build as deploy/ runs it: `npm run build`, then `node dist/worker/main.js` (the command of
 * deploy/handover-worker.service and deploy/Containerfile) against the real dev server and a real Redis fleet,
 * with the Prometheus endpoint, the health check and JSON logs on; the CLI from dist/client/cli.js. A scrape
 * before and after a real switchover shows Handover's series moved; the health check answers 200 while the
 * worker polls and 503 while it cannot reach Temporal.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startRedisFleet, type RedisFleet } from '../../sandbox/redis';
import { startOnFreePort } from '../../sandbox/ports';

const execFileP = promisify(execFile);
const ROOT = path.resolve(__dirname, '..', '..');

/** Sum of a series' samples whose labels include `labels` (Prometheus text format). */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? ([^ ]+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[3]);
  }
  return sum;
}

interface Proc {
  child: ChildProcess;
  lines: string[];
  exited: Promise<number | null>;
}

function startBuilt(args: string[], env: NodeJS.ProcessEnv): Proc {
  const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let buf = '';
  const take = (b: Buffer) => {
    buf += b.toString();
    const parts = buf.split('\n');
    buf = parts.pop()!;
    lines.push(...parts.filter(Boolean));
  };
  child.stdout!.on('data', take);
  child.stderr!.on('data', take);
  return { child, lines, exited: new Promise((r) => child.once('exit', (code) => r(code))) };
}

async function get(url: string): Promise<{ status: number; text: string }> {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(5000) });
    return { status: r.status, text: await r.text() };
  } catch (e) {
    return { status: 0, text: (e as Error).message };
  }
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * The built worker with its health check (and, when `metrics`, its Prometheus endpoint) on ports the kernel
 * called free, started again on new ones when another process bound one first (startOnFreePort): returns once
 * /healthz answers (`ready`: with that status), or throws with the worker's output when it exits before.
 */
async function startBuiltWorker(env: NodeJS.ProcessEnv, o: { metrics?: boolean; ready: number }): Promise<{ proc: Proc; health: string; metrics?: string; answer: { status: number; text: string } }> {
  const one = async (healthPort: number, metricsPort?: number) => {
    const health = `127.0.0.1:${healthPort}`;
    const metrics = metricsPort ? `127.0.0.1:${metricsPort}` : undefined;
    const proc = startBuilt(['dist/worker/main.js'], { ...env, HANDOVER_HEALTH_ADDRESS: health, ...(metrics ? { HANDOVER_METRICS_ADDRESS: metrics } : {}) });
    let exited: number | null | undefined;
    void proc.exited.then((c) => (exited = c));
    const deadline = Date.now() + 60_000;
    for (;;) {
      const r = await get(`http://${health}/healthz`);
      if (r.status === o.ready) return { proc, health, metrics, answer: r };
      if (exited !== undefined) throw new Error(`the worker exited ${exited} before /healthz answered: ${proc.lines.join('\n')}`);
      if (Date.now() > deadline) {
        proc.child.kill('SIGKILL');
        throw new Error(`timed out waiting for /healthz ${o.ready}: ${proc.lines.join('\n')}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  return startOnFreePort((h) => (o.metrics ? startOnFreePort((m) => one(h, m)) : one(h)));
}

describe('the build: worker and CLI from dist/, metrics, health, JSON logs', () => {
  let fleet: RedisFleet;
  let inventory: string;
  let worker: Proc;
  let metricsUrl: string;
  let healthUrl: string;
  const taskQueue = `deploy-${randomUUID()}`;
  const address = inject('temporalAddress');
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    await execFileP('npm', ['run', 'build'], { cwd: ROOT, timeout: 300_000 });
    fleet = await startRedisFleet({ cluster: 'deploy' });
    inventory = fleet.writeInventory();
    env = { ...process.env, HANDOVER_TEMPORAL_ADDRESS: address, HANDOVER_TASK_QUEUE: taskQueue, HANDOVER_INVENTORY: inventory };
    const w = await startBuiltWorker(
      {
        ...env,
        HANDOVER_LOG_FORMAT: 'json',
        // DEBUG: the SDK's own "Workflow completed" lines too (they get cluster and runbook from the interceptor).
        HANDOVER_LOG_LEVEL: 'DEBUG',
        HANDOVER_SHUTDOWN_GRACE: '2s',
      },
      { metrics: true, ready: 200 },
    );
    worker = w.proc;
    metricsUrl = `http://${w.metrics}/metrics`;
    healthUrl = `http://${w.health}/healthz`;
  }, 400_000);

  afterAll(async () => {
    if (worker && worker.child.exitCode === null) {
      worker.child.kill('SIGTERM');
      await worker.exited;
    }
    await fleet?.stop();
  });

  it('npm run build made the JavaScript and both workflow bundles', () => {
    for (const f of ['dist/worker/main.js', 'dist/client/cli.js', 'dist/workflow-bundle.js', 'dist/workflow-bundle-codec.js']) expect(existsSync(path.join(ROOT, f)), f).toBe(true);
  });

  it('the built worker loads the prebuilt bundle, polls, and says so in JSON; /healthz answers 200', async () => {
    const h = await get(healthUrl);
    expect(h.status).toBe(200);
    expect(h.text).toMatch(new RegExp(`^ok: polling ${address.replace(/\./g, '\\.')}, namespace default, plaintext, task queue ${taskQueue}`));
    const polling = worker.lines.map((l) => JSON.parse(l)).find((o) => /^polling /.test(o.msg));
    expect(polling).toMatchObject({ level: 'INFO', sdkComponent: 'handover-worker' });
    expect(polling.msg).toContain(`bundle=${path.join(ROOT, 'dist', 'workflow-bundle.js')}`);
  });

  it('deploy/ runs exactly what this test runs: node dist/worker/main.js from npm run build', () => {
    const unit = readFileSync(path.join(ROOT, 'deploy', 'handover-worker.service'), 'utf8');
    expect(unit).toMatch(/^ExecStart=\/usr\/bin\/node \/opt\/handover\/dist\/worker\/main\.js$/m);
    const cf = readFileSync(path.join(ROOT, 'deploy', 'Containerfile'), 'utf8');
    expect(cf).toMatch(/^RUN npm run build /m);
    expect(cf).toMatch(/^CMD \["node", "dist\/worker\/main\.js"\]$/m);
  });

  it('node dist/client/cli.js --help lists the commands', async () => {
    const { stdout } = await execFileP(process.execPath, ['dist/client/cli.js', '--help'], { cwd: ROOT });
    for (const c of ['switchover', 'failover', 'monitor', 'backup', 'doctor', 'status']) expect(stdout).toContain(c);
  });

  it('a switchover through the built CLI moves the runs counter and the write-pause histogram by one; its log lines are JSON with cluster, runbook and workflow ID', async () => {
    const before = (await get(metricsUrl)).text;
    // The SDK runtime's own series are on the same endpoint.
    expect(before).toMatch(/^temporal_\w+/m);
    const runs = (t: string) => sample(t, 'handover_runs_total', { runbook: 'switchover', cluster: 'deploy', outcome: 'completed' });
    const pauses = (t: string) => sample(t, 'handover_write_pause_seconds_count', { cluster: 'deploy', engine: 'redis' });
    const { stdout } = await execFileP(process.execPath, ['dist/client/cli.js', 'switchover', '--cluster', 'deploy', '--wait', '--json'], { cwd: ROOT, env, timeout: 120_000 });
    const report = JSON.parse(stdout.trim().split('\n').pop()!);
    expect(report).toMatchObject({ runbook: 'switchover', cluster: 'deploy', dryRun: false });
    const after = await until('the metrics to show the run', async () => {
      const t = (await get(metricsUrl)).text;
      return runs(t) === runs(before) + 1 ? t : undefined;
    });
    expect(runs(after)).toBe(runs(before) + 1);
    expect(pauses(after)).toBe(pauses(before) + 1);
    expect(sample(after, 'handover_write_pause_seconds_sum', { cluster: 'deploy' }) - sample(before, 'handover_write_pause_seconds_sum', { cluster: 'deploy' })).toBeCloseTo(report.writePauseMs / 1000, 3);
    console.log(after.split('\n').filter((l) => l.startsWith('handover_')).join('\n'));

    // Every log line is one JSON object; the run's lines carry cluster, runbook and workflow ID.
    // The SDK hands workflow log lines over after the activation: the last one may follow the CLI's exit.
    await until('the "Workflow completed" line', async () => (worker.lines.some((l) => l.includes('"Workflow completed"') && l.includes('handover-deploy')) ? true : undefined), 10_000);
    const objs = worker.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    for (const o of objs) expect(Object.keys(o).slice(0, 3)).toEqual(['time', 'level', 'msg']);
    const run = objs.filter((o) => o.workflowId === 'handover-deploy');
    expect(run.length).toBeGreaterThan(3);
    // The runbook's audit lines (workflows/runbook.ts), one per step.
    const audit = run.filter((o) => /^probe: saw /.test(String(o.msg)));
    expect(audit[0]).toMatchObject({ cluster: 'deploy', runbook: 'switchover', workflowId: 'handover-deploy', workflowType: 'switchover', taskQueue });
    // The SDK's own workflow lines get cluster and runbook from the interceptor (workflows/metrics.ts).
    expect(run.find((o) => o.msg === 'Workflow completed')).toMatchObject({ cluster: 'deploy', runbook: 'switchover' });
  });

  it('SIGTERM: the worker drains and exits 0', async () => {
    // A worker of its own (the shared one serves the other tests), polling before it is told to stop.
    const { proc } = await startBuiltWorker({ ...env, HANDOVER_TASK_QUEUE: `deploy-term-${randomUUID()}`, HANDOVER_LOG_FORMAT: 'json', HANDOVER_SHUTDOWN_GRACE: '2s' }, { ready: 200 });
    proc.child.kill('SIGTERM');
    expect(await proc.exited).toBe(0);
  });

  it('Temporal unreachable: one JSON line per retry naming address and TLS mode, /healthz 503, then exit 1', async () => {
    const started = await startBuiltWorker({ ...env, HANDOVER_TEMPORAL_ADDRESS: '127.0.0.1:1', HANDOVER_LOG_FORMAT: 'json', HANDOVER_TEMPORAL_CONNECT_TIMEOUT_S: '5' }, { ready: 503 });
    const w = started.proc;
    const h = started.answer;
    expect(h.status).toBe(503);
    expect(h.text).toMatch(/^unhealthy: connecting to Temporal at 127\.0\.0\.1:1, namespace default, plaintext/);
    expect(await w.exited).toBe(1);
    const objs = w.lines.map((l) => JSON.parse(l) as { level: string; msg: string });
    const retries = objs.filter((o) => /retrying in 2 s/.test(o.msg));
    expect(retries.length).toBeGreaterThanOrEqual(1);
    expect(retries[0]).toMatchObject({ level: 'WARN' });
    expect(retries[0].msg).toMatch(/cannot reach Temporal at 127\.0\.0\.1:1, namespace default, plaintext: nothing answers there/);
    expect(objs[objs.length - 1]).toMatchObject({ level: 'ERROR' });
    expect(objs[objs.length - 1].msg).toMatch(/gave up after \d+ attempt/);
  }, 60_000);
});
