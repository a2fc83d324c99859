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
import { freePort } from '../../sandbox/ports';

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
    const metrics = `127.0.0.1:${await freePort()}`;
    const health = `127.0.0.1:${await freePort()}`;
    metricsUrl = `http://${metrics}/metrics`;
    healthUrl = `http://${health}/healthz`;
    env = { ...process.env, HANDOVER_TEMPORAL_ADDRESS: address, HANDOVER_TASK_QUEUE: taskQueue, HANDOVER_INVENTORY: inventory };
    worker = startBuilt(['dist/worker/main.js'], {
      ...env,
      HANDOVER_METRICS_ADDRESS: metrics,
      HANDOVER_HEALTH_ADDRESS: health,
      HANDOVER_LOG_FORMAT: 'json',
      // DEBUG: the SDK's own "Workflow completed" lines too (they get cluster and runbook from the interceptor).
      HANDOVER_LOG_LEVEL: 'DEBUG',
      HANDOVER_SHUTDOWN_GRACE: '2s',
    });
    await until('the health check to answer 200', async () => ((await get(healthUrl)).status === 200 ? true : undefined));
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

  it('a switchover through the built CLI moves the runs counter and the write-pause histogram by one', async () => {
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
  });

  it('every log line is one JSON object; the run\'s lines carry cluster, runbook and workflow ID', async () => {
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
    worker.child.kill('SIGTERM');
    expect(await worker.exited).toBe(0);
  });

  it('Temporal unreachable: one JSON line per retry naming address and TLS mode, /healthz 503, then exit 1', async () => {
    const health = `127.0.0.1:${await freePort()}`;
    const w = startBuilt(['dist/worker/main.js'], {
      ...env,
      HANDOVER_TEMPORAL_ADDRESS: '127.0.0.1:1',
      HANDOVER_HEALTH_ADDRESS: health,
      HANDOVER_LOG_FORMAT: 'json',
      HANDOVER_TEMPORAL_CONNECT_TIMEOUT_S: '5',
    });
    const h = await until('the health check to answer', async () => {
      const r = await get(`http://${health}/healthz`);
      return r.status ? r : undefined;
    });
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
