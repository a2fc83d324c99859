/**
 * Certificates for TLS-enabled database fleets (sandbox/redis.ts, sandbox/mariadb.ts with `tls: true`), made
 * at start with openssl (v3 extensions, as sandbox/tls-front.ts): one CA; a server certificate for 127.0.0.1 /
 * localhost that every node presents, usable as a client certificate too (a Redis replica presents it to its
 * primary); a client certificate for Handover and the writers; and an unrelated CA for the wrong-CA refusals.
 */
import { readFileSync } from 'node:fs';
import { makeCa, makeLeaf } from './tls-front';

export interface DbTls {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A CA that signed nothing the fleet presents. */
  otherCa: string;
  /** The client side as node:tls options (files read), for sandbox clients and writers. */
  client: { ca: Buffer; cert: Buffer; key: Buffer };
}

export function makeDbTls(dir: string): DbTls {
  const ca = makeCa(dir, 'db-ca');
  const server = makeLeaf(dir, 'db-server', ca, 'serverAuth,clientAuth', 'DNS:localhost,IP:127.0.0.1');
  const client = makeLeaf(dir, 'db-client', ca, 'clientAuth');
  const other = makeCa(dir, 'db-other-ca');
  return {
    dir,
    ca: ca.cert,
    serverCert: server.cert,
    serverKey: server.key,
    clientCert: client.cert,
    clientKey: client.key,
    otherCa: other.cert,
    client: { ca: readFileSync(ca.cert), cert: readFileSync(client.cert), key: readFileSync(client.key) },
  };
}

/** The inventory's tls block (YAML lines at `indent`) for a fleet's certificates, or an override of it. */
export function tlsInventoryLines(indent: string, t: { ca?: string; cert?: string; key?: string; serverName?: string; verify?: boolean; replicationCa?: string }): string[] {
  const out = [`${indent}tls:`];
  for (const [k, v] of Object.entries(t)) if (v !== undefined) out.push(`${indent}  ${k}: ${typeof v === 'string' ? JSON.stringify(v) : v}`);
  return out;
}
