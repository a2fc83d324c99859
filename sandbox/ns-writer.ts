/**
 * A client on a node's side of a partition: a child Node process started inside the node's network namespace
 * (`ip netns exec <ns> node -e …`) that writes to that node's address for a bounded time and records every
 * acknowledged write with its wall-clock time. When the node's link is cut, this is the application that
 * still reaches the isolated old primary; its acknowledged writes are what a partition can lose.
 *
 * Redis: `SET <prefix>:<seq> <seq>` (only "OK" counts). MariaDB: INSERT into handover_app.acks with autocommit
 * (only an OK counts). One write at a time, a pause of `intervalMs` between writes, stops after `durationMs`.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { ROOT } from './paths';

export interface NsAck {
  key: string;
  /** Epoch ms when the acknowledgement arrived. */
  at: number;
}

export interface NsWriterResult {
  acks: NsAck[];
  errors: Record<string, number>;
}

export interface NsWriterOptions {
  wrap: string[];
  engine: 'redis' | 'mysql';
  host: string;
  port: number;
  user?: string;
  password: string;
  prefix: string;
  durationMs: number;
  intervalMs?: number;
}

const SCRIPT = `
const o = JSON.parse(process.env.NS_WRITER);
const acks = [], errors = {};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const err = (e) => { const k = String((e && (e.code || e.message)) || e).split(' ')[0].slice(0, 40); errors[k] = (errors[k] || 0) + 1; };
(async () => {
  const end = Date.now() + o.durationMs;
  let write, close;
  if (o.engine === 'redis') {
    const Redis = require('ioredis');
    const c = new Redis({ host: o.host, port: o.port, password: o.password, maxRetriesPerRequest: 0, enableOfflineQueue: false, connectTimeout: 500, commandTimeout: 1000, retryStrategy: () => 100 });
    c.on('error', () => undefined);
    write = async (k, v) => (await c.set(k, v)) === 'OK';
    close = () => c.disconnect();
  } else {
    const mysql = require('mysql2/promise');
    let conn;
    write = async (k, v) => {
      if (!conn) { conn = await mysql.createConnection({ host: o.host, port: o.port, user: o.user, password: o.password, database: 'handover_app', connectTimeout: 1000 }); conn.on('error', () => { conn = undefined; }); }
      try { await conn.query({ sql: 'INSERT INTO acks (k, v) VALUES (?, ?)', timeout: 1000 }, [k, v]); return true; }
      catch (e) { if (!e.sqlState || e.code === 'PROTOCOL_SEQUENCE_TIMEOUT') { try { conn.destroy(); } catch {} conn = undefined; } throw e; }
    };
    close = () => { try { conn && conn.destroy(); } catch {} };
  }
  for (let seq = 0; Date.now() < end && seq < 1000000; seq++) {
    const k = o.prefix + ':' + seq;
    try { if (await write(k, seq)) acks.push({ key: k, at: Date.now() }); } catch (e) { err(e); await sleep(50); }
    if (o.intervalMs) await sleep(o.intervalMs);
  }
  close();
  process.stdout.write(JSON.stringify({ acks, errors }));
  process.exit(0);
})().catch((e) => { process.stderr.write(String(e && e.stack || e)); process.exit(1); });
`;

/** Starts the writer; the promise settles when it has run `durationMs` (killed after durationMs + 15 s). */
export function runNsWriter(o: NsWriterOptions): Promise<NsWriterResult> {
  const argv = [...o.wrap, process.execPath, '-e', SCRIPT];
  const child = spawn(argv[0], argv.slice(1), {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NS_WRITER: JSON.stringify(o), NODE_PATH: path.join(ROOT, 'node_modules') },
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (b) => (out += b.toString()));
  child.stderr.on('data', (b) => (err += b.toString()));
  const killer = setTimeout(() => child.kill('SIGKILL'), o.durationMs + 15_000);
  return new Promise((resolve, reject) => {
    child.on('close', (code) => {
      clearTimeout(killer);
      if (code === 0) resolve(JSON.parse(out) as NsWriterResult);
      else reject(new Error(`namespace writer exited ${code}: ${err.slice(-500)}`));
    });
  });
}
