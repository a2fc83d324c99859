/**
 * Before a run starts: can the workers read what this CLI sends, and can this CLI read what they return? Each
 * worker publishes the codec key ids it holds in its identity (codec/aes-gcm.ts codecIdentity: "keys=a,b", the
 * encrypting key first, or "keys=none"), seen here through DescribeTaskQueue. A mismatch is refused before
 * anything starts, naming both sides' key ids (exit 2). Workers that publish nothing (an older build) are not
 * judged; with no worker polling, --wait says so (client/workers.ts).
 */
import type { Client } from '@temporalio/client';
import { keyIdsOfIdentity } from '../codec/aes-gcm';
import { CliError, EXIT } from './common';
import { workflowPollers } from './workers';

const show = (ids: string[]) => (ids.length ? ids.join(', ') : 'no key (clear text)');

/** Pure: why `cliKeyIds` (encrypting first) cannot work with the workers `identities`, or undefined when it can. */
export function keyMismatch(cliKeyIds: string[], identities: string[]): string | undefined {
  for (const identity of identities) {
    const keys = keyIdsOfIdentity(identity);
    if (keys === undefined) continue;
    const workerReadsUs = cliKeyIds.length ? keys.includes(cliKeyIds[0]) : true;
    const weReadWorker = keys.length ? cliKeyIds.includes(keys[0]) : true;
    if (workerReadsUs && weReadWorker) continue;
    const worker = identity.replace(/\s*keys=\S+/, '');
    const what = !workerReadsUs
      ? `worker ${worker} cannot read this CLI's payloads: it holds ${show(keys)}, this CLI encrypts with ${show(cliKeyIds.slice(0, 1))}`
      : `this CLI cannot read worker ${worker}'s results: it encrypts with ${show(keys.slice(0, 1))}, this CLI holds ${show(cliKeyIds)}`;
    return `${what}; set HANDOVER_CODEC_KEY to the worker's key(s) (several, comma-separated, newest first, during a rotation); nothing was started`;
  }
  return undefined;
}

/**
 * Refuse (exit 2, CodecKeyMismatch) when a worker polling `taskQueue` and this CLI's keys cannot read each other.
 * Returns the pollers it saw (undefined when it could not look), for the inventory check that follows.
 */
export async function refuseKeyMismatch(client: Client, taskQueue: string, cliKeyIds: string[]): Promise<string[] | undefined> {
  let identities: string[];
  try {
    identities = await workflowPollers(client, taskQueue);
  } catch {
    return undefined; // cannot look: the run's own start will say what is wrong
  }
  const why = keyMismatch(cliKeyIds, identities);
  if (why) throw new CliError(EXIT.refused, `refused (CodecKeyMismatch): ${why}`, 'CodecKeyMismatch');
  return identities;
}
