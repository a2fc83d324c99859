/**
 * Connections to MySQL/MariaDB nodes, resolved from the worker's inventory. Passwords are looked up here,
 * inside the activity, and never leave this module except inside the mysql2 connection (and the CHANGE MASTER
 * statement sent to the server). Connections are short-lived: one per activity and node.
 */
import mysql from 'mysql2/promise';
import { ErrorType, HandoverError } from '../../core/errors';
import { findEngineCluster, findNode } from '../../inventory/load';
import type { ClusterSpec, Inventory } from '../../inventory/schema';
import { resolveSecret } from '../../inventory/secrets';
import net from 'node:net';
import tls from 'node:tls';
import { sameAddress } from '../activity';
import { classifyTlsError, nodeTls, tlsMaterial, type EffectiveTls } from '../tls';

export interface MysqlTarget {
  cluster: string;
  node: string;
  host: string;
  port: number;
  user?: string;
  password?: string;
  /** From the inventory's tls blocks; undefined: plaintext. */
  tls?: EffectiveTls;
}

/** mysql2's `ssl` option for a target (files read now), or undefined for plaintext. */
export function mysqlSslOptions(t: { cluster: string; node: string; tls?: EffectiveTls }) {
  if (!t.tls) return undefined;
  const m = tlsMaterial(t.tls, t);
  return { ca: m.ca, cert: m.cert, key: m.key, rejectUnauthorized: m.rejectUnauthorized };
}

/**
 * mysql2 checks the certificate's chain but its name only against a DNS host (never an IP, nor another name):
 * check it here against tls.serverName, else the host, as ioredis does, before the connection is used.
 */
function checkServerName(conn: mysql.Connection, t: MysqlTarget): void {
  if (!t.tls?.verify) return;
  const socket = (conn as unknown as { connection?: { stream?: tls.TLSSocket } }).connection?.stream;
  const cert = socket?.getPeerCertificate?.();
  if (!cert || !Object.keys(cert).length) throw new HandoverError(ErrorType.TlsFailed, `TLS to ${t.node} (cluster ${t.cluster}, ${t.host}:${t.port}) failed: the server presented no certificate; nothing was changed`);
  const bad = tls.checkServerIdentity(t.tls.serverName ?? t.host, cert);
  if (bad) throw new HandoverError(ErrorType.TlsFailed, `TLS to ${t.node} (cluster ${t.cluster}, ${t.host}:${t.port}) failed: ${bad.message}; nothing was changed`);
}

/**
 * Whether the server's greeting advertises TLS (CLIENT_SSL in its capability flags): the first packet, read
 * without logging in. False on any error.
 */
export function mysqlOffersTls(host: string, port: number, timeoutMs = 1_500): Promise<boolean> {
  return new Promise((resolve) => {
    let buf = Buffer.alloc(0);
    const s = net.connect({ host, port });
    const done = (v: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    s.on('error', () => done(false));
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length < 4 || buf.length < 4 + buf.readUIntLE(0, 3)) return;
      // header(4), protocol version(1), server version (NUL-terminated), thread id(4), scramble(8), filler(1), caps(2)
      const end = buf.indexOf(0, 5);
      const at = end + 1 + 4 + 8 + 1;
      done(end > 0 && buf.length >= at + 2 && (buf.readUInt16LE(at) & 0x0800) !== 0);
    });
  });
}

/** Opens a connection; injected so tests and benchmarks can wrap it. */
export type MysqlConnect = (target: MysqlTarget) => Promise<mysql.Connection>;

/** How long a connection may take to be answered (TCP connect and the server's greeting). */
export const MYSQL_CONNECT_TIMEOUT_MS = 2_000;

export const connectMysql: MysqlConnect = async (t) => {
  let conn: mysql.Connection;
  try {
    conn = await mysql.createConnection({ host: t.host, port: t.port, user: t.user, password: t.password, ssl: mysqlSslOptions(t), connectTimeout: MYSQL_CONNECT_TIMEOUT_MS, supportBigNumbers: true, dateStrings: true });
  } catch (e) {
    // mysql2 says "connect ETIMEDOUT" both for no TCP answer and for a server that accepted and never greeted
    // (frozen, or overloaded): say how long it waited, as the other probes' bounds do.
    if ((e as { code?: string }).code === 'ETIMEDOUT') throw new Error(`timeout after ${MYSQL_CONNECT_TIMEOUT_MS} ms connecting (no answer from the server)`);
    const typed = classifyTlsError(e, t) ?? classifyMysqlError(e, t);
    // MariaDB answers a plaintext login to a require_secure_transport server with a plain "Access denied":
    // say so when the node offers TLS and the inventory has none for it.
    if (!t.tls && typed instanceof HandoverError && typed.type === ErrorType.AuthenticationFailed && (await mysqlOffersTls(t.host, t.port)))
      throw new HandoverError(
        ErrorType.AuthenticationFailed,
        `${typed.message}; ${t.node} offers TLS and the inventory has no tls block for it: if it requires secure transport (require_secure_transport=ON), add tls (ca, cert, key); nothing was changed`,
      );
    throw typed;
  }
  try {
    checkServerName(conn, t);
  } catch (e) {
    conn.destroy();
    throw e;
  }
  return conn;
};

/** MySQL error numbers the activities branch on. */
export const ER = {
  ACCESS_DENIED: 1045,
  DBACCESS_DENIED: 1044,
  SPECIFIC_ACCESS_DENIED: 1227,
  TABLEACCESS_DENIED: 1142,
  LOCK_WAIT_TIMEOUT: 1205,
  OPTION_PREVENTS_STATEMENT: 1290,
  NO_SUCH_THREAD: 1094,
  /** "You are not owner of thread N": KILL of another user's session without CONNECTION ADMIN. */
  KILL_DENIED: 1095,
  /** MariaDB: "Connections using insecure transport are prohibited while --require_secure_transport=ON" */
  SECURE_TRANSPORT_REQUIRED: 4036,
} as const;

/** Turn a driver error into a typed one: bad credentials and missing grants are not retryable. */
export function classifyMysqlError(e: unknown, t: { cluster: string; node: string }): Error {
  const err = e as { errno?: number; message?: string };
  const msg = err?.message ?? String(e);
  if (err?.errno === ER.SECURE_TRANSPORT_REQUIRED || /insecure transport are prohibited/i.test(msg))
    return new HandoverError(ErrorType.TlsFailed, `${t.node} (cluster ${t.cluster}) accepts TLS connections only (require_secure_transport), and the inventory has no tls block for it: ${msg.split('\n')[0]}; nothing was changed`);
  if (err?.errno === ER.ACCESS_DENIED) return new HandoverError(ErrorType.AuthenticationFailed, `authentication to ${t.node} (cluster ${t.cluster}) failed: ${msg.split('\n')[0]}`);
  if (err?.errno === ER.SPECIFIC_ACCESS_DENIED || err?.errno === ER.TABLEACCESS_DENIED || err?.errno === ER.DBACCESS_DENIED)
    return new HandoverError(ErrorType.PreconditionFailed, `the automation user lacks a grant on ${t.node} (cluster ${t.cluster}): ${msg.split('\n')[0]}`);
  if (err?.errno === ER.KILL_DENIED)
    return new HandoverError(ErrorType.PreconditionFailed, `the automation user lacks CONNECTION ADMIN on ${t.node} (cluster ${t.cluster}), needed to end application sessions: ${msg.split('\n')[0]}`);
  return e instanceof Error ? e : new Error(msg);
}

export const mysqlClusterSpec = (inv: Inventory, cluster: string): ClusterSpec => findEngineCluster(inv, cluster, 'mysql');

export function mysqlTarget(cluster: ClusterSpec, nodeName: string, env: NodeJS.ProcessEnv): MysqlTarget {
  const node = findNode(cluster, nodeName);
  return {
    cluster: cluster.name,
    node: node.id,
    host: node.host,
    port: node.port,
    user: cluster.credentials.username,
    password: resolveSecret(cluster.credentials.password, `cluster ${cluster.name} password`, env),
    tls: nodeTls(cluster, node.id),
  };
}

/** The replication account replicas connect with (CHANGE MASTER ... MASTER_USER / MASTER_PASSWORD). */
export function replicationAccount(cluster: ClusterSpec, env: NodeJS.ProcessEnv): { user: string; password: string } {
  const r = cluster.replicationCredentials;
  if (!r) throw new HandoverError(ErrorType.InvalidInventory, `cluster ${cluster.name} has no replicationCredentials`);
  return { user: r.username, password: resolveSecret(r.password, `cluster ${cluster.name} replication password`, env) ?? '' };
}

/** Which inventory node listens on host:port. */
export function mysqlNodeAt(cluster: ClusterSpec, host: string, port: number): string | undefined {
  return cluster.nodes.find((n) => sameAddress(n.host, n.port, host, port))?.id;
}
