/**
 * Remote codec endpoint for the Temporal UI and CLI (`temporal server start-dev --ui-codec-endpoint URL`, or the
 * UI's "Codec Server" setting): POST /decode and /encode with `{"payloads":[{metadata:{k:base64},data:base64}]}`
 * as Temporal's codec server protocol defines, answered with the same shape. The browser calls it directly, so
 * it answers CORS preflights for the allowed origins (the UI's address). Bind it to loopback: anyone who can
 * reach it can decrypt.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Payload, PayloadCodec } from '@temporalio/common';

interface JsonPayload {
  metadata?: Record<string, string>;
  data?: string;
}

function fromJson(p: JsonPayload): Payload {
  const metadata: Record<string, Uint8Array> = {};
  for (const [k, v] of Object.entries(p.metadata ?? {})) metadata[k] = new Uint8Array(Buffer.from(v, 'base64'));
  return { metadata, ...(p.data !== undefined ? { data: new Uint8Array(Buffer.from(p.data, 'base64')) } : {}) };
}

function toJson(p: Payload): JsonPayload {
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(p.metadata ?? {})) metadata[k] = Buffer.from(v).toString('base64');
  return { metadata, ...(p.data ? { data: Buffer.from(p.data).toString('base64') } : {}) };
}

async function body(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > 64 * 1024 * 1024) throw new Error('request too large');
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export interface CodecServer {
  url: string;
  server: Server;
  close(): Promise<void>;
}

export async function startCodecServer(codec: PayloadCodec, opts: { port?: number; host?: string; origins?: string[] } = {}): Promise<CodecServer> {
  const origins = new Set(opts.origins ?? []);
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const origin = req.headers.origin;
    if (origin && (origins.has(origin) || origins.has('*'))) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Access-Control-Allow-Credentials', 'true');
      res.setHeader('Access-Control-Allow-Methods', 'POST, OPTIONS');
      res.setHeader('Access-Control-Allow-Headers', 'Content-Type, X-Namespace, Authorization');
      res.setHeader('Vary', 'Origin');
    }
    if (req.method === 'OPTIONS') {
      res.writeHead(204).end();
      return;
    }
    const route = (req.url ?? '').split('?')[0].replace(/\/+$/, '');
    if (req.method !== 'POST' || (route !== '/decode' && route !== '/encode')) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('POST /decode or /encode\n');
      return;
    }
    body(req)
      .then(async (text) => {
        const { payloads } = JSON.parse(text) as { payloads?: JsonPayload[] };
        if (!Array.isArray(payloads)) throw new Error('body must be {"payloads":[...]}');
        const input = payloads.map(fromJson);
        const out = route === '/decode' ? await codec.decode(input) : await codec.encode(input);
        res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ payloads: out.map(toJson) }));
      })
      .catch((e: Error) => {
        res.writeHead(400, { 'Content-Type': 'text/plain' }).end(`${e.name}: ${e.message}\n`);
      });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
  });
  const a = server.address() as AddressInfo;
  return {
    url: `http://${a.address}:${a.port}`,
    server,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
