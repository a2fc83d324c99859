/** Shared integration-test plumbing: a real worker on its own task queue, talking to the real dev server. */
import { randomUUID } from 'node:crypto';
import { inject, vi } from 'vitest';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { createActivities, type ActivityDeps } from '../activities';
import { createHandoverWorker } from '../worker/worker';
import type { IO } from '../client/common';
import { runMain } from '../client/cli';
import Redis from 'ioredis';
import type { RedisFleet } from '../sandbox/redis';
import { sharedWorkflowBundle } from '../sandbox/bundle';

export interface TestWorker {
  env: TestWorkflowEnvironment;
  worker: Worker;
  taskQueue: string;
  address: string;
  stop(): Promise<void>;
}

export async function startTestWorker(deps: ActivityDeps): Promise<TestWorker> {
  const address = inject('temporalAddress');
  const env = await TestWorkflowEnvironment.createFromExistingServer({ address });
  const taskQueue = `test-${randomUUID()}`;
  const worker = await createHandoverWorker({ connection: env.nativeConnection, activities: createActivities(deps), taskQueue, workflowBundlePath: await sharedWorkflowBundle() });
  const running = worker.run();
  return {
    env,
    worker,
    taskQueue,
    address,
    async stop() {
      worker.shutdown();
      await running;
      await env.teardown();
    },
  };
}

/** An IO that records what a command printed. */
export function captureIO(): IO & { lines: string[]; errors: string[]; text(): string } {
  const lines: string[] = [];
  const errors: string[] = [];
  return { lines, errors, isTTY: false, out: (l) => lines.push(l), err: (l) => errors.push(l), text: () => [...lines, ...errors].join('\n') };
}

/**
 * Per node: its role and run_id, and how many times each of `commands` was called (INFO commandstats),
 * so a test can prove that nothing mutating reached a server.
 */
export async function commandCalls(fleet: RedisFleet, commands: string[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const n of fleet.nodes) {
    const c = new Redis({ host: n.host, port: n.port, password: fleet.password, tls: n.tls, lazyConnect: true, retryStrategy: () => null });
    await c.connect();
    const stats = await c.info('commandstats');
    const role = ((await c.call('ROLE')) as unknown[])[0];
    const runId = /run_id:(\w+)/.exec(await c.info('server'))![1];
    c.disconnect();
    out[n.id] = `${role} ${runId} ` + commands.map((cmd) => `${cmd}=${new RegExp(`cmdstat_${cmd.replace('|', '\\|')}:calls=(\\d+)`).exec(stats)?.[1] ?? 0}`).join(' ');
  }
  return out;
}

/** Run the real CLI (runMain: commander's parseAsync on buildProgram, with its error handling) and capture its exit code, stdout and stderr. */
export async function runCli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s) => (out.push(String(s)), true));
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((s) => (err.push(String(s)), true));
  let code = -1;
  try {
    await runMain(args, (c) => (code = c));
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
  return { code, out: out.join(''), err: err.join('') };
}

/** Poll `fn` (errors count as "not yet") until it returns something truthy; fail naming `what` after `timeoutMs`. */
export async function until<T>(what: string, fn: () => Promise<T | undefined | false | null | 0>, timeoutMs = 30_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Wait until a writer has acknowledged `more` writes beyond what it had when called. */
export async function moreAcks(writer: { ackedKeys: string[] }, more = 50, timeoutMs = 30_000): Promise<void> {
  const from = writer.ackedKeys.length;
  await until(`${more} more acknowledged writes`, async () => writer.ackedKeys.length >= from + more, timeoutMs, 10);
}

/**
 * Wait until every Redis node has been up `seconds`: a roll that restarts every node (--restart-all, --reason)
 * counts a node started within START_SLACK_MS of the roll's start as started after it (core/rolling.ts; start
 * times have whole-second resolution), so a test that rolls a fleet it has just started waits for this first.
 */
export async function nodesUpFor(nodes: { client(): Redis }[], seconds = 3, timeoutMs = 20_000): Promise<void> {
  await until(
    `every node up ${seconds} s`,
    async () => {
      for (const n of nodes) {
        const c = n.client();
        const up = Number(/uptime_in_seconds:(\d+)/.exec(await c.info('server').finally(() => c.disconnect()))?.[1] ?? 0);
        if (up < seconds) return false;
      }
      return true;
    },
    timeoutMs,
    250,
  );
}
