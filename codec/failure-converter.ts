/**
 * Loaded by path (client, worker and the workflow bundle) when payload encryption is on: failure messages and
 * stack traces travel as an encoded payload, so the codec encrypts them too. History then shows
 * "Encoded failure" where the message was.
 */
import { DefaultFailureConverter } from '@temporalio/common';

export const failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
