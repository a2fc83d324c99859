/** What every CLI command shares: connection flags, output, exit codes, failure rendering. */
import { existsSync } from 'node:fs';
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { z } from 'zod';
import { ErrorType, HandoverError } from '../core/errors';
import { TASK_QUEUE } from '../core/ids';
import { diagnoseTls, explainConnectError, resolveTemporal, TemporalConfigError, type TemporalTarget } from './temporal';
import { findCluster, findNode, inventoryPath, loadInventory } from '../inventory/load';
import { CodecKeyError, dataConverterFromEnv } from '../codec/aes-gcm';

/** Exit codes (README: CLI reference). */
export const EXIT = {
  ok: 0,
  /** The runbook ran and failed (undone before the point of no return, or failed after it: see the message). */
  failed: 1,
  /** Refused or ended before anything changed: bad input, unknown names, precondition, credentials, approval rejected or timed out. */
  refused: 2,
  /** Another operation holds this cluster. */
  alreadyRunning: 3,
  /** Temporal could not be reached. */
  unavailable: 4,
} as const;

/** Failure types that mean "refused, nothing was changed". */
export const REFUSAL_TYPES = new Set<string>([
  ErrorType.InvalidInventory,
  ErrorType.UnknownCluster,
  ErrorType.UnknownNode,
  ErrorType.WrongEngine,
  ErrorType.MissingCredential,
  ErrorType.AuthenticationFailed,
  ErrorType.TlsFailed,
  ErrorType.PreconditionFailed,
  ErrorType.CatchUpTimeout,
  ErrorType.PreHookFailed,
  ErrorType.FenceBoundUnavailable,
  ErrorType.TargetNotEmpty,
  ErrorType.ApprovalRejected,
  ErrorType.ApprovalTimedOut,
]);

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

export async function connect(o: CommonOptions): Promise<{ client: Client; close: () => Promise<void> }> {
  let target: TemporalTarget;
  try {
    target = resolveTemporal(o);
  } catch (e) {
    if (e instanceof TemporalConfigError) throw new CliError(EXIT.refused, `refused (InvalidTemporalConfig): ${e.message}`);
    throw e;
  }
  let connection: Connection;
  try {
    connection = await Connection.connect({ address: target.address, tls: target.tls, apiKey: target.apiKey, metadata: target.metadata, connectTimeout: 5000 });
  } catch (e) {
    throw new CliError(EXIT.unavailable, `${explainConnectError(e, target, await diagnoseTls(target))}. Start it (npm start runs a local one), or point TEMPORAL_ADDRESS / --address at it.`);
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
  return { client: new Client({ connection, namespace: target.namespace, dataConverter }), close: () => connection.close() };
}

export class CliError extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
  }
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
