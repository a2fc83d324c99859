/**
 * Where Temporal is and how to reach it, resolved the way every Temporal tool does (CONVENTIONS 19), for the
 * CLI and the worker alike:
 *
 *   1. Temporal's environment configuration (@temporalio/envconfig): the profile file (TEMPORAL_CONFIG_FILE,
 *      else ~/.config/temporalio/temporal.toml; profile TEMPORAL_PROFILE, else "default") and the TEMPORAL_*
 *      variables: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS,
 *      TEMPORAL_TLS_CLIENT_CERT_PATH / _KEY_PATH, TEMPORAL_TLS_SERVER_CA_CERT_PATH, TEMPORAL_TLS_SERVER_NAME,
 *      TEMPORAL_GRPC_META_*.
 *   2. Handover's own variables override it: HANDOVER_TEMPORAL_ADDRESS, HANDOVER_NAMESPACE.
 *   3. Flags override both: --address, --namespace, --profile.
 *   4. Nothing set: the local dev server, 127.0.0.1:7233, namespace "default", plaintext.
 *
 * Secrets (the API key, the client key) stay in the connection options; `describe` names only the address,
 * the namespace and the TLS mode, and is what every message about the connection prints.
 */
import { loadClientConnectConfig } from '@temporalio/envconfig';
import type { TLSConfig } from '@temporalio/common/lib/internal-non-workflow';
import { DEFAULT_NAMESPACE } from '../core/ids';

export const DEFAULT_TEMPORAL_ADDRESS = '127.0.0.1:7233';

export interface TemporalTarget {
  address: string;
  namespace: string;
  tls?: TLSConfig | boolean;
  apiKey?: string;
  metadata?: Record<string, string>;
  /** "host:port, namespace ns, mTLS + API key": no secret. */
  describe: string;
}

export interface TemporalOverrides {
  address?: string;
  namespace?: string;
  profile?: string;
}

/** The TLS mode in words: plaintext, TLS (server verified) or mTLS (with a client certificate). */
export function tlsMode(tls: TLSConfig | boolean | undefined): string {
  if (!tls) return 'plaintext';
  if (tls === true) return 'TLS';
  return tls.clientCertPair ? 'mTLS' : 'TLS';
}

export class TemporalConfigError extends Error {}

export function resolveTemporal(o: TemporalOverrides = {}, env: NodeJS.ProcessEnv = process.env): TemporalTarget {
  let loaded: ReturnType<typeof loadClientConnectConfig>;
  try {
    loaded = loadClientConnectConfig({ profile: o.profile, overrideEnvVars: env as Record<string, string> });
  } catch (e) {
    throw new TemporalConfigError(`Temporal configuration: ${(e as Error).message}`);
  }
  const c = loaded.connectionOptions;
  const address = o.address ?? env.HANDOVER_TEMPORAL_ADDRESS ?? c.address ?? DEFAULT_TEMPORAL_ADDRESS;
  const namespace = o.namespace ?? env.HANDOVER_NAMESPACE ?? loaded.namespace ?? DEFAULT_NAMESPACE;
  const tls = c.tls as TLSConfig | boolean | undefined;
  const apiKey = typeof c.apiKey === 'string' && c.apiKey ? c.apiKey : undefined;
  const metadata = c.metadata && Object.keys(c.metadata).length ? (c.metadata as Record<string, string>) : undefined;
  return {
    address,
    namespace,
    tls,
    apiKey,
    metadata,
    describe: `${address}, namespace ${namespace}, ${tlsMode(tls)}${apiKey ? ' + API key' : ''}`,
  };
}

const buf = (b: Uint8Array | undefined) => (b ? Buffer.from(b) : undefined);

/** Every message in an error's cause chain, joined (gRPC wraps the telling one in a generic one). */
function messageChain(e: unknown): string {
  const out: string[] = [];
  for (let c = e as { message?: string; cause?: unknown } | undefined, i = 0; c && i < 8; c = c.cause as typeof c, i++) if (c.message) out.push(c.message);
  return out.join(': ').replace(/\s+/g, ' ');
}

/**
 * A TLS handshake of our own with the configured CA, client pair and server name: grpc-js reports a refused
 * certificate only as "Failed to connect before the deadline", node:tls says which check failed.
 */
export async function diagnoseTls(t: TemporalTarget, timeoutMs = 3000): Promise<string | undefined> {
  if (!t.tls) return undefined;
  const { connect } = await import('node:tls');
  const cfg = t.tls === true ? {} : t.tls;
  const i = t.address.lastIndexOf(':');
  const host = t.address.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(t.address.slice(i + 1));
  return new Promise((resolve) => {
    const sock = connect({
      host,
      port,
      ca: buf(cfg.serverRootCACertificate),
      cert: buf(cfg.clientCertPair?.crt),
      key: buf(cfg.clientCertPair?.key),
      servername: cfg.serverNameOverride ?? (/^[\d.]+$|:/.test(host) ? undefined : host),
      ALPNProtocols: ['h2'],
      timeout: timeoutMs,
    });
    const done = (r: string | undefined) => {
      sock.destroy();
      resolve(r);
    };
    sock.once('secureConnect', () => done(undefined));
    sock.once('error', (e) => done((e as Error).message));
    sock.once('timeout', () => done('TLS handshake timed out'));
  });
}

/**
 * A plain TCP connect to the Temporal address, before gRPC: gRPC retries a refused connection until its deadline
 * (5 s), so "nothing listens there" would take as long as a silent host. Resolves undefined when the connect
 * succeeds or merely times out (gRPC then tells the rest), or the error that settles it at once: refused, no such
 * host, no route.
 */
export async function tcpRefusal(address: string, timeoutMs = 3000): Promise<string | undefined> {
  const { connect } = await import('node:net');
  const i = address.lastIndexOf(':');
  const host = address.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(address.slice(i + 1));
  if (!host || !Number.isInteger(port) || port <= 0 || port > 65535) return undefined;
  return new Promise((resolve) => {
    const sock = connect({ host, port, timeout: timeoutMs });
    const done = (r: string | undefined) => {
      sock.destroy();
      resolve(r);
    };
    sock.once('connect', () => done(undefined));
    sock.once('timeout', () => done(undefined));
    sock.once('error', (e: NodeJS.ErrnoException) => done(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH'].includes(e.code ?? '') ? e.message : undefined));
  });
}

/**
 * One line saying why a connection failed, for the errors gRPC and TLS libraries report in their own words
 * (an nginx-style front answers a missing client certificate with HTTP 400, a refused API key with 401).
 * `detail`: what diagnoseTls found, when the error itself says nothing.
 */
export function explainConnectError(e: unknown, t: TemporalTarget, detail?: string): string {
  const raw = [messageChain(e), detail].filter(Boolean).join('; ');
  const why =
    /status code 400|status: 400|400 Bad Request|No required SSL certificate|certificate required|CertificateRequired/i.test(raw)
      ? 'the server requires a client certificate (set TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH)'
      : /status code 40[13]|status: 40[13]|401 Unauthorized|403 Forbidden|UNAUTHENTICATED|PERMISSION_DENIED/i.test(raw)
        ? 'the server refused the credentials (check TEMPORAL_API_KEY or the client certificate)'
        : /altname|does not match|NotValidForName|hostname/i.test(raw)
          ? "the server's certificate does not name the host dialled (set TEMPORAL_TLS_SERVER_NAME to a name it carries)"
          : /self.signed|unable to (get|verify)|UnknownIssuer|unknown ca|certificate verify failed|BadSignature|InvalidCertificate/i.test(raw)
            ? "the server's certificate is not signed by the configured CA (TEMPORAL_TLS_SERVER_CA_CERT_PATH)"
            : !t.tls && /FRAME_SIZE_ERROR|http2 error|wrong version number|deadline/i.test(raw)
              ? 'no answer in plaintext: if the server speaks TLS, set TEMPORAL_TLS=true or a CA (TEMPORAL_TLS_SERVER_CA_CERT_PATH)'
              : /ECONNREFUSED|Connection refused|tcp connect/i.test(raw)
                ? 'nothing answers there'
                : /ENOTFOUND|EAI_AGAIN/.test(raw)
                  ? 'the host name does not resolve'
                  : undefined;
  return `cannot reach Temporal at ${t.describe}: ${why ?? raw}${why ? ` (${raw.slice(0, 160)})` : ''}`;
}
