/**
 * Secret canaries: what the secret tests scan and how. A canary is a password or key made unique for one test
 * run; it must appear in no workflow history (every event, every payload decoded, failures, memos, search
 * attributes), no `describe` of a run (pending activities' heartbeat details and last failures), nothing the
 * worker printed and nothing the CLI printed, in clear nor in base64 (at any of its three byte alignments,
 * standard or URL-safe alphabet) nor in hex.
 */
import { execFileSync } from 'node:child_process';
import { temporalBinary } from '../sandbox/paths';
import { sleep } from '../sandbox/ports';

/** Every form under which `secret` is looked for. */
export function canaryForms(secret: string): string[] {
  const b = Buffer.from(secret, 'utf8');
  const forms = new Set<string>([secret, b.toString('hex'), JSON.stringify(secret).slice(1, -1)]);
  // Inside a longer base64 text the secret starts at byte offset 0, 1 or 2 of a 3-byte group: the characters
  // that encode only the secret's bits are the same whatever surrounds it.
  for (let k = 0; k < 3; k++) {
    const enc = Buffer.concat([Buffer.alloc(k), b]).toString('base64');
    const core = enc.slice(Math.ceil((k * 8) / 6), Math.floor(((k + b.length) * 8) / 6));
    forms.add(core);
    forms.add(core.replace(/\+/g, '-').replace(/\//g, '_'));
  }
  return [...forms];
}

/** "where: canary form" for each canary (any of its forms) found in `text`. */
export function findCanaries(text: string, canaries: Record<string, string>, where: string): string[] {
  const out: string[] = [];
  for (const [name, secret] of Object.entries(canaries)) {
    for (const f of canaryForms(secret)) if (text.includes(f)) out.push(`${where}: ${name} (as ${f === secret ? 'clear text' : f})`);
  }
  return out;
}

const b64 = (s: string) => Buffer.from(s, 'base64').toString('utf8');

/**
 * The JSON text with every payload (an object with `metadata` and base64 `data`: inputs, results, failures'
 * encoded attributes, heartbeat details, memos, search attributes, markers, headers) decoded and appended,
 * recursively (a decoded payload may hold payloads itself).
 */
export function decodeAll(json: string, depth = 0): string {
  const parts = [json];
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    return json;
  }
  const walk = (v: unknown) => {
    if (!v || typeof v !== 'object') return;
    const o = v as Record<string, unknown>;
    if (typeof o.data === 'string' && o.metadata && typeof o.metadata === 'object') {
      const d = b64(o.data);
      parts.push(depth < 3 ? decodeAll(d, depth + 1) : d);
      for (const m of Object.values(o.metadata as Record<string, unknown>)) if (typeof m === 'string') parts.push(b64(m));
    }
    for (const x of Object.values(o)) walk(x);
  };
  walk(parsed);
  return parts.join('\n');
}

export interface RunRef {
  workflowId: string;
  runId: string;
  type: string;
}

function temporal(args: string[]): string {
  return execFileSync(temporalBinary(), args, { encoding: 'utf8', maxBuffer: 256 << 20 });
}

/** Every run (closed, running, continued-as-new, children) that visibility lists for `query`, newest first. */
export function listRuns(address: string, query: string): RunRef[] {
  const text = temporal(['workflow', 'list', '--address', address, '--query', query, '-o', 'json']);
  return (JSON.parse(text || '[]') as { execution: { workflowId: string; runId: string }; type: { name: string } }[]).map((x) => ({ workflowId: x.execution.workflowId, runId: x.execution.runId, type: x.type.name }));
}

/** listRuns, polled until `done(runs)` holds (visibility is eventually consistent). */
export async function waitForRuns(address: string, query: string, done: (runs: RunRef[]) => boolean, timeoutMs = 20_000): Promise<RunRef[]> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const runs = listRuns(address, query);
    if (done(runs) || Date.now() > until) return runs;
    await sleep(250);
  }
}

/** One run's full history (`temporal workflow show -o json`) and its description (`describe -o json`). */
export function runTexts(address: string, r: RunRef): { history: string; describe: string } {
  return {
    history: temporal(['workflow', 'show', '--address', address, '-w', r.workflowId, '-r', r.runId, '-o', 'json']),
    describe: temporal(['workflow', 'describe', '--address', address, '-w', r.workflowId, '-r', r.runId, '-o', 'json']),
  };
}
