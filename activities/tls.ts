/**
 * TLS to the databases, shared by every engine: the inventory's `tls:` blocks merged (cluster, then node or
 * Sentinel, field by field), their files read at connection time (paths only in the inventory), and a driver's
 * TLS failure turned into one typed line naming the node (TlsFailed, a refusal: nothing was changed).
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { ErrorType, HandoverError } from '../core/errors';
import type { ClusterSpec, TlsSpec } from '../inventory/schema';

/** The TLS settings that apply to one connection, defaults applied. */
export interface EffectiveTls {
  ca?: string;
  cert?: string;
  key?: string;
  serverName?: string;
  verify: boolean;
  replicationCa?: string;
}

/** Field-by-field merge of the cluster's tls and an override (a node's or the sentinel block's); undefined: plaintext. */
export function mergeTls(base: TlsSpec | undefined, override: TlsSpec | undefined): EffectiveTls | undefined {
  if (!base && !override) return undefined;
  const m = { ...(base ?? {}), ...Object.fromEntries(Object.entries(override ?? {}).filter(([, v]) => v !== undefined)) } as TlsSpec;
  return { ca: m.ca, cert: m.cert, key: m.key, serverName: m.serverName, verify: m.verify ?? true, replicationCa: m.replicationCa };
}

/** The TLS of one node of a cluster (undefined: plaintext). */
export function nodeTls(cluster: ClusterSpec, nodeId: string): EffectiveTls | undefined {
  return mergeTls(cluster.tls, cluster.nodes.find((n) => n.id === nodeId)?.tls);
}

/** The TLS of the cluster's Sentinels (undefined: plaintext). */
export function sentinelTls(cluster: ClusterSpec): EffectiveTls | undefined {
  return mergeTls(cluster.tls, cluster.sentinel?.tls);
}

/** The files' contents, read now (so a rotated certificate is picked up by the next connection). */
export interface TlsMaterial {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  servername?: string;
  rejectUnauthorized: boolean;
}

/** Read the files a connection needs; an unreadable one is an InvalidInventory naming the field and the node. */
export function tlsMaterial(t: EffectiveTls, where: { cluster: string; node: string }): TlsMaterial {
  const read = (field: 'ca' | 'cert' | 'key', file: string | undefined) => {
    if (file === undefined) return undefined;
    try {
      return readFileSync(file);
    } catch (e) {
      throw new HandoverError(ErrorType.InvalidInventory, `tls.${field} of ${where.node} (cluster ${where.cluster}): cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  };
  return { ca: read('ca', t.ca), cert: read('cert', t.cert), key: read('key', t.key), servername: t.serverName, rejectUnauthorized: t.verify };
}

/** Node's TLS error codes and OpenSSL messages that mean "the TLS handshake or the certificate check failed". */
const TLS_FAILURE =
  /CERT_|UNABLE_TO_|SELF_SIGNED|DEPTH_ZERO|ERR_TLS_|ERR_SSL_|certificate|altnames|SSL routines|alert|handshake|wrong version number|packet length too long/i;

/** A TLS failure as one typed line naming the node, or undefined when `e` is something else. */
export function classifyTlsError(e: unknown, t: { cluster: string; node: string; host?: string; port?: number }): HandoverError | undefined {
  const err = e as { code?: string; message?: string } | undefined;
  const text = `${err?.code ?? ''} ${err?.message ?? String(e)}`;
  if (!TLS_FAILURE.test(text)) return undefined;
  const line = (err?.message ?? String(e)).split('\n')[0];
  return new HandoverError(ErrorType.TlsFailed, `TLS to ${t.node} (cluster ${t.cluster}${t.host ? `, ${t.host}:${t.port}` : ''}) failed: ${err?.code && !line.includes(err.code) ? `${err.code}: ` : ''}${line}; nothing was changed`);
}

/**
 * Does host:port complete a TLS handshake (certificate not checked)? Asked after a plaintext connection was cut
 * without an answer, to tell "this node speaks TLS only and the inventory has no tls for it" from a dead node.
 */
export function speaksTls(host: string, port: number, timeoutMs = 1_500): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tls.connect({ host, port, rejectUnauthorized: false, servername: net.isIP(host) ? undefined : host });
    const done = (v: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    s.once('secureConnect', () => done(true));
    // A server that requires a client certificate may end the handshake with an alert: it still speaks TLS.
    s.once('error', (e) => done(/alert|certificate required/i.test(e.message)));
  });
}

/** The refusal when a plaintext connection meets a TLS-only node. */
export function plaintextToTlsNode(t: { cluster: string; node: string; host: string; port: number }): HandoverError {
  return new HandoverError(
    ErrorType.TlsFailed,
    `${t.node} (cluster ${t.cluster}, ${t.host}:${t.port}) speaks TLS only, and the inventory has no tls block for it (cluster or node tls: ca, cert, key); nothing was changed`,
  );
}
