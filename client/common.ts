/** What every CLI command shares: connection flags, output, exit codes, failure rendering. */
import { existsSync } from 'node:fs';
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { z } from 'zod';
import { HandoverError, REFUSAL_TYPES } from '../core/errors';
import { TASK_QUEUE } from '../core/ids';
import { diagnoseTls, explainConnectError, tcpRefusal, resolveTemporal, TemporalConfigError, type TemporalTarget } from './temporal';
import { findCluster, findNode, inventoryPath, loadInventory } from '../inventory/load';
import { CodecKeyError, codecKeyIds, dataConverterFromEnv } from '../codec/aes-gcm';

/** Exit codes: the one table is in docs/cli.md#exit-codes (and `handover --help`). */
export const EXIT = {
  /** Done as asked. */
  ok: 0,
  /** The run failed after changing something; the message says what changed and where the cluster stands. */
  failed: 1,
  /** Refused or bad input: nothing was changed (unknown names, bad flags, a failed precondition, approval rejected or timed out, undone before the point of no return). */
  refused: 2,
  /** Busy: another operation holds this cluster. */
  alreadyRunning: 3,
  /** Temporal, or every node of the cluster asked about, could not be reached. */
  unavailable: 4,
  /** Done, with warnings: the run completed, but not everything is as asked (a hook or the routing failed, a replica left unlinked, a node flagged, an abort that came after the point of no return). */
  warnings: 5,
} as const;

/** The exit-code table, as `handover --help` prints it (docs/cli.md has the same rows). */
export const EXIT_TABLE: [number, string][] = [
  [EXIT.ok, 'done'],
  [EXIT.failed, 'failed after changing something (the message says what changed)'],
  [EXIT.refused, 'refused or bad input: nothing was changed'],
  [EXIT.alreadyRunning, 'busy: another operation holds the cluster'],
  [EXIT.unavailable, 'Temporal or the cluster unreachable'],
  [EXIT.warnings, 'done with warnings (e.g. a replica left unlinked, a hook failed, an abort after the point of no return)'],
];

/** Failure types that mean "refused, nothing was changed" (core/errors.ts: the worker's run metrics use them too). */
export { REFUSAL_TYPES };

export const CommonOptions = z.object({
  /** Temporal: flags override HANDOVER_* and then Temporal's own env config (client/temporal.ts). */
  address: z.string().min(1).optional(),
  namespace: z.string().min(1).optional(),
  /** A profile of Temporal's config file (TEMPORAL_PROFILE otherwise). */
  profile: z.string().min(1).optional(),
  inventory: z.string().optional(),
  json: z.boolean().default(false),
  /** Task queue the workers poll (env HANDOVER_TASK_QUEUE); tests give each worker its own. */
  taskQueue: z.string().default(process.env.HANDOVER_TASK_QUEUE ?? TASK_QUEUE),
});
export type CommonOptions = z.infer<typeof CommonOptions>;

export interface IO {
  out(line: string): void;
  err(line: string): void;
  isTTY: boolean;
}

export const processIO: IO = {
  out: (l) => process.stdout.write(l + '\n'),
  err: (l) => process.stderr.write(l + '\n'),
  isTTY: !!process.stdout.isTTY,
};

export async function connect(o: CommonOptions): Promise<{ client: Client; close: () => Promise<void>; keyIds: string[] }> {
  let target: TemporalTarget;
  try {
    target = resolveTemporal(o);
  } catch (e) {
    if (e instanceof TemporalConfigError) throw new CliError(EXIT.refused, `refused (InvalidTemporalConfig): ${e.message}`);
    throw e;
  }
  let connection: Connection;
  const refused = await tcpRefusal(target.address);
  if (refused !== undefined) {
    throw new CliError(EXIT.unavailable, `${explainConnectError(new Error(refused), target)}. Start it (npm start runs a local one), or point TEMPORAL_ADDRESS / --address at it.`, 'TemporalUnreachable');
  }
  try {
    connection = await Connection.connect({ address: target.address, tls: target.tls, apiKey: target.apiKey, metadata: target.metadata, connectTimeout: 5000 });
  } catch (e) {
    throw new CliError(EXIT.unavailable, `${explainConnectError(e, target, await diagnoseTls(target))}. Start it (npm start runs a local one), or point TEMPORAL_ADDRESS / --address at it.`, 'TemporalUnreachable');
  }
  let dataConverter;
  try {
    // Payload encryption (HANDOVER_CODEC_KEY / HANDOVER_CODEC_KEY_FILE): the same key as the workers'.
    dataConverter = dataConverterFromEnv(process.env);
  } catch (e) {
    await connection.close();
    if (e instanceof CodecKeyError) throw new CliError(EXIT.refused, `refused (InvalidCodecKey): ${e.message}`);
    throw e;
  }
  return { client: new Client({ connection, namespace: target.namespace, dataConverter }), close: () => connection.close(), keyIds: codecKeyIds(dataConverter) };
}

/** The type an exit code implies when a message names none. */
const DEFAULT_TYPE: Record<number, string> = { 1: 'Failed', 2: 'Refused', 3: 'AlreadyRunning', 4: 'Unavailable', 5: 'Warnings' };

/** A CLI-side ending: exit code, failure type (`refused (Type): …` in the text) and the one-line message. */
export class CliError extends Error {
  readonly type: string;
  constructor(
    readonly exitCode: number,
    message: string,
    type?: string,
  ) {
    super(message);
    this.type = type ?? /^\w+ \((\w+)\):/.exec(message)?.[1] ?? DEFAULT_TYPE[exitCode] ?? 'Error';
  }
}

/**
 * Print an ending the way every command does: one line on stderr, or with --json one object on stdout
 * carrying `type` and `message` (plus what the command adds, e.g. its workflowId).
 */
export function sayFailure(o: { json?: boolean }, io: IO, e: { type?: string; message: string }, extra: Record<string, unknown> = {}): void {
  const message = oneLine(e.message);
  if (o.json) io.out(JSON.stringify({ ...extra, failed: true, type: e.type ?? 'Error', message }));
  else io.err(message);
}

/** A message on one line: a multi-line one (an inventory's list of problems) is joined with "; ". */
export function oneLine(message: string): string {
  const [head, ...rest] = message.split('\n').map((l) => l.trim()).filter(Boolean);
  if (!rest.length) return head ?? '';
  return `${head}${head.endsWith(':') ? ' ' : '; '}${rest.join('; ')}`;
}

/**
 * Check names against the inventory the CLI can see, before starting anything: fast, typed errors. The worker
 * checks again against its own copy (the source of truth), so skipping this when no file is found is safe.
 */
export function precheckNames(o: CommonOptions, cluster: string, nodes: (string | undefined)[]): void {
  const file = inventoryPath(o.inventory);
  if (!o.inventory && !process.env.HANDOVER_INVENTORY && !existsSync(file)) return;
  try {
    const inv = loadInventory(file);
    const c = findCluster(inv, cluster);
    for (const n of nodes) if (n !== undefined) findNode(c, n);
  } catch (e) {
    if (e instanceof HandoverError) throw new CliError(EXIT.refused, `refused (${e.type}): ${e.message}`);
    throw e;
  }
}

/** The innermost failure: type and message, for one-line errors. */
export function rootFailure(e: unknown): { type?: string; message: string } {
  let cur = e as { type?: string; message?: string; cause?: unknown } | undefined;
  let type: string | undefined;
  let message = (e as Error)?.message ?? String(e);
  while (cur) {
    if (typeof cur.type === 'string') type = cur.type;
    if (cur.message) message = cur.message;
    cur = cur.cause as typeof cur;
  }
  return { type, message };
}

export function exitCodeForFailure(e: unknown): number {
  if (!(e instanceof WorkflowFailedError)) return EXIT.failed;
  const { type } = rootFailure(e);
  return type && REFUSAL_TYPES.has(type) ? EXIT.refused : EXIT.failed;
}

/** `--wait` rendering lives in client/progress.ts (pure renderers, unit-tested). */
export { follow } from './progress';
