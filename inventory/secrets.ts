/**
 * Secrets are resolved here, inside activities, from the worker's environment or files: never in a workflow
 * input, result or failure message. Errors name the reference (variable or file), never a value.
 */
import { readFileSync } from 'node:fs';
import { ErrorType, HandoverError } from '../core/errors';
import type { SecretRef } from './schema';

export function resolveSecret(ref: SecretRef | undefined, what: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (!ref) return undefined;
  if ('env' in ref) {
    const v = env[ref.env];
    if (v === undefined || v === '')
      throw new HandoverError(ErrorType.MissingCredential, `${what}: environment variable ${ref.env} is not set on the worker`);
    return v;
  }
  try {
    return readFileSync(ref.file, 'utf8').replace(/\r?\n$/, '');
  } catch (e) {
    throw new HandoverError(ErrorType.MissingCredential, `${what}: cannot read secret file ${ref.file} on the worker (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}
