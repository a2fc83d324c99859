/**
 * A TLS front for the Temporal dev server, as a production Temporal is reached: nginx (Debian's nginx-light,
 * gRPC proxy built in) with certificates made here by openssl. Two fronts on loopback:
 *   - mtls:   TLS with a server certificate for "localhost" / 127.0.0.1, and a client certificate required
 *             (ssl_verify_client on) signed by the test CA;
 *   - apiKey: TLS (server certificate only) that lets through only `authorization: Bearer <key>` (Temporal Cloud's
 *             API-key scheme), answering anything else 401.
 * Also made: a second, unrelated CA and a client certificate it signed, for the refusal tests.
 * Every certificate has v3 extensions: rustls (the worker's Rust core) rejects v1 certificates.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sleep, startOnFreePort } from './ports';

export interface TlsFront {
  dir: string;
  mtlsAddress: string;
  apiKeyAddress: string;
  apiKey: string;
  /** The CA that signed the server and client certificates. */
  ca: string;
  clientCert: string;
  clientKey: string;
  /** A CA that signed nothing the fronts trust or present, and a client pair it signed. */
  otherCa: string;
  otherClientCert: string;
  otherClientKey: string;
  stop(): Promise<void>;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'pipe' });
}

export function makeCa(dir: string, name: string): { cert: string; key: string } {
  const key = path.join(dir, `${name}.key`);
  const cert = path.join(dir, `${name}.pem`);
  const ext = path.join(dir, `${name}.ext`);
  writeFileSync(ext, 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n');
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${name}`, '-extensions', 'v3_ca', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  return { cert, key };
}

export function makeLeaf(dir: string, name: string, ca: { cert: string; key: string }, usage: 'serverAuth' | 'clientAuth' | 'serverAuth,clientAuth', san?: string): { cert: string; key: string } {
  const key = path.join(dir, `${name}.key`);
  const csr = path.join(dir, `${name}.csr`);
  const cert = path.join(dir, `${name}.pem`);
  const ext = path.join(dir, `${name}.ext`);
  writeFileSync(ext, `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=${usage}\n${san ? `subjectAltName=${san}\n` : ''}`);
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${name}`], dir);
  openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-out', cert, '-days', '2', '-extfile', ext], dir);
  return { cert, key };
}

/** Start both fronts before the dev server at `upstream` (host:port). */
export async function startTlsFront(upstream: string): Promise<TlsFront> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'handover-tls-'));
  const ca = makeCa(dir, 'ca');
  const server = makeLeaf(dir, 'server', ca, 'serverAuth', 'DNS:localhost,IP:127.0.0.1');
  const client = makeLeaf(dir, 'client', ca, 'clientAuth');
  const other = makeCa(dir, 'other-ca');
  const otherClient = makeLeaf(dir, 'other-client', other, 'clientAuth');
  const apiKey = `key-${Math.random().toString(36).slice(2)}`;
  // Both ports from the kernel; nginx started again on new ones when another process bound one first (it exits
  // saying "Address already in use" in its error log).
  const errorLog = path.join(dir, 'error.log');
  const readLog = () => {
    try {
      return readFileSync(errorLog, 'utf8').trim();
    } catch {
      return `(no ${errorLog})`;
    }
  };
  const launch = async (mtlsPort: number, apiPort: number) => {
    rmSync(errorLog, { force: true });
    mkdirSync(path.join(dir, 'tmp'), { recursive: true });
    const conf = path.join(dir, 'nginx.conf');
    writeFileSync(
      conf,
      `daemon off;
  worker_processes 1;
  pid ${dir}/nginx.pid;
  error_log ${dir}/error.log warn;
  events { worker_connections 256; }
  http {
    access_log off;
    client_body_temp_path ${dir}/tmp/body;
    proxy_temp_path ${dir}/tmp/proxy;
    fastcgi_temp_path ${dir}/tmp/fastcgi;
    uwsgi_temp_path ${dir}/tmp/uwsgi;
    scgi_temp_path ${dir}/tmp/scgi;
    grpc_read_timeout 300s;
    grpc_send_timeout 300s;
    client_body_timeout 300s;
    server {
      listen 127.0.0.1:${mtlsPort} ssl http2;
      ssl_certificate ${server.cert};
      ssl_certificate_key ${server.key};
      ssl_client_certificate ${ca.cert};
      ssl_verify_client on;
      location / { grpc_pass grpc://${upstream}; }
    }
    server {
      listen 127.0.0.1:${apiPort} ssl http2;
      ssl_certificate ${server.cert};
      ssl_certificate_key ${server.key};
      location / {
        if ($http_authorization != "Bearer ${apiKey}") { return 401; }
        grpc_pass grpc://${upstream};
      }
    }
  }
  `,
    );
    const nginx = process.env.HANDOVER_NGINX ?? (existsOnPath('nginx') ? 'nginx' : '/usr/sbin/nginx');
    const proc: ChildProcess = spawn(nginx, ['-c', conf, '-e', `${dir}/error.log`], { stdio: 'ignore' });
    let exited = false;
    proc.once('exit', () => (exited = true));
    // Wait (bounded) until both ports accept connections.
    const { createConnection } = await import('node:net');
    const up = (port: number) =>
      new Promise<boolean>((resolve) => {
        const s = createConnection({ host: '127.0.0.1', port }, () => (s.destroy(), resolve(true)));
        s.once('error', () => resolve(false));
      });
    for (let i = 0; i < 100 && !((await up(mtlsPort)) && (await up(apiPort))); i++) {
      if (exited) throw new Error(`nginx exited at start: ${readLog()}`);
      await sleep(50);
    }
    await sleep(100); // a bind failure ends nginx at once: make sure it is still running
    if (exited) throw new Error(`nginx exited at start: ${readLog()}`);
    if (!((await up(mtlsPort)) && (await up(apiPort)))) {
      proc.kill('SIGKILL');
      throw new Error(`nginx did not listen within 5 s (see ${dir}/error.log)`);
    }
    return { mtlsPort, apiPort, proc, isExited: () => exited };
  };
  const { mtlsPort, apiPort, proc, isExited } = await startOnFreePort((m) => startOnFreePort((a) => launch(m, a)));
  return {
    dir,
    mtlsAddress: `127.0.0.1:${mtlsPort}`,
    apiKeyAddress: `127.0.0.1:${apiPort}`,
    apiKey,
    ca: ca.cert,
    clientCert: client.cert,
    clientKey: client.key,
    otherCa: other.cert,
    otherClientCert: otherClient.cert,
    otherClientKey: otherClient.key,
    async stop() {
      if (!isExited()) {
        proc.kill('SIGTERM');
        for (let i = 0; i < 50 && !isExited(); i++) await sleep(50);
        if (!isExited()) proc.kill('SIGKILL');
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function existsOnPath(bin: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${bin}`], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}
