/**
 * Redis/Valkey backups: a consistent RDB taken over the network with `redis-cli --rdb -` (the replication
 * protocol: the node forks and streams a snapshot), never by reading a live node's files by path. The password
 * goes to redis-cli in the REDISCLI_AUTH environment variable, never in argv.
 */
import { createHash } from 'node:crypto';
import type Redis from 'ioredis';
import type { RedisFingerprint } from '../../core/backup/decide';
import type { RedisTarget } from '../redis/conn';

export const REDIS_SAMPLE_SIZE = 64;

/** sha256 of a type-aware rendering of the key's value (equal on any server that holds the same value). */
export async function redisKeyDigest(c: Redis, key: string): Promise<string | null> {
  const type = await c.type(key);
  const h = createHash('sha256').update(`${type}\0`);
  const add = (parts: (Buffer | string)[]) => {
    for (const p of parts) h.update(`${Buffer.byteLength(p)}:`).update(p);
  };
  const sortBuf = (xs: Buffer[]) => xs.sort(Buffer.compare);
  switch (type) {
    case 'none':
      return null;
    case 'string':
      add([(await c.getBuffer(key)) ?? Buffer.alloc(0)]);
      break;
    case 'list':
      add(await c.lrangeBuffer(key, 0, -1));
      break;
    case 'set':
      add(sortBuf(await c.smembersBuffer(key)));
      break;
    case 'zset':
      add((await c.call('ZRANGE', key, '0', '-1', 'WITHSCORES')) as string[]);
      break;
    case 'hash': {
      const flat = (await c.hgetallBuffer(key)) as unknown as Record<string, Buffer>;
      const keys = Object.keys(flat).sort();
      for (const k of keys) add([k, flat[k]]);
      break;
    }
    default:
      add([(await c.dumpBuffer(key)) ?? Buffer.alloc(0)]);
  }
  return h.digest('hex');
}

/** DBSIZE and up to `n` keys (the first by name among what SCAN returns) with their digests. */
export async function redisFingerprint(c: Redis, n = REDIS_SAMPLE_SIZE, keys?: string[]): Promise<{ dbsize: number; sample: Record<string, string | null> }> {
  let chosen = keys;
  if (!chosen) {
    const seen = new Set<string>();
    let cursor = '0';
    do {
      const [next, batch] = await c.scan(cursor, 'COUNT', 500);
      for (const k of batch) seen.add(k);
      cursor = next;
    } while (cursor !== '0' && seen.size < n * 4);
    chosen = [...seen].sort().slice(0, n);
  }
  const sample: Record<string, string | null> = {};
  for (const k of chosen) sample[k] = await redisKeyDigest(c, k);
  return { dbsize: await c.dbsize(), sample };
}

/**
 * The manifest's fingerprint from two reads around the transfer: keys whose digest did not change while the
 * RDB was taken are recorded (they must be in the RDB as read); DBSIZE is the RDB's own RESIZEDB hint for db 0
 * when the header has one, else the before/after value when it did not change.
 */
export function stableFingerprint(before: { dbsize: number; sample: Record<string, string | null> }, after: { dbsize: number; sample: Record<string, string | null> }, rdbDbsize: number | undefined): RedisFingerprint | string {
  const sample: Record<string, string> = {};
  for (const [k, d] of Object.entries(before.sample)) if (d !== null && after.sample[k] === d) sample[k] = d;
  const dbsize = rdbDbsize ?? (before.dbsize === after.dbsize ? before.dbsize : undefined);
  if (dbsize === undefined) return `DBSIZE changed during the backup (${before.dbsize} -> ${after.dbsize}) and the RDB header carries no key count`;
  return { dbsize, sample };
}

/** Aux fields (repl-id, repl-offset, redis-ver, ...) and db 0's RESIZEDB key count, read from an RDB's first bytes. */
export function parseRdbHeader(buf: Buffer): { aux: Record<string, string>; db0Keys?: number; complete: boolean } {
  const aux: Record<string, string> = {};
  let i = 9; // "REDIS0011" / "VALKEY080"
  const need = (n: number) => {
    if (i + n > buf.length) throw new RangeError('short');
  };
  const readLen = (): { len: number; special?: number } => {
    need(1);
    const b = buf[i++];
    const t = b >> 6;
    if (t === 0) return { len: b & 0x3f };
    if (t === 1) {
      need(1);
      return { len: ((b & 0x3f) << 8) | buf[i++] };
    }
    if (t === 2) {
      if (b === 0x80) {
        need(4);
        const v = buf.readUInt32BE(i);
        i += 4;
        return { len: v };
      }
      need(8);
      const v = Number(buf.readBigUInt64BE(i));
      i += 8;
      return { len: v };
    }
    return { len: 0, special: b & 0x3f };
  };
  const readString = (): string => {
    const l = readLen();
    if (l.special === undefined) {
      need(l.len);
      const s = buf.subarray(i, i + l.len).toString('latin1');
      i += l.len;
      return s;
    }
    if (l.special === 0) {
      need(1);
      return String(buf.readInt8(i++));
    }
    if (l.special === 1) {
      need(2);
      const v = buf.readInt16LE(i);
      i += 2;
      return String(v);
    }
    if (l.special === 2) {
      need(4);
      const v = buf.readInt32LE(i);
      i += 4;
      return String(v);
    }
    throw new Error('compressed string in header');
  };
  try {
    for (;;) {
      need(1);
      const op = buf[i++];
      if (op === 0xfa) {
        const k = readString();
        aux[k] = readString();
      } else if (op === 0xf5) {
        readString(); // FUNCTION2: a library's code
      } else if (op === 0xfe) {
        const db = readLen().len;
        need(1);
        if (buf[i] === 0xfb) {
          i++;
          const keys = readLen().len;
          readLen();
          return { aux, db0Keys: db === 0 ? keys : 0, complete: true };
        }
        return { aux, complete: true };
      } else if (op === 0xff) {
        return { aux, db0Keys: 0, complete: true }; // EOF: an empty dataset
      } else {
        return { aux, complete: false };
      }
    }
  } catch {
    return { aux, complete: false };
  }
}

export function redisCliArgs(t: RedisTarget): string[] {
  return ['-h', t.host, '-p', String(t.port), ...(t.username ? ['--user', t.username] : []), ...redisCliTlsArgs(t), '--no-auth-warning', '--rdb', '-'];
}

/** redis-cli's TLS flags for the node's inventory tls (files by path, as the inventory gives them). */
export function redisCliTlsArgs(t: Pick<RedisTarget, 'tls' | 'host'>): string[] {
  if (!t.tls) return [];
  const a = ['--tls'];
  if (t.tls.ca) a.push('--cacert', t.tls.ca);
  if (t.tls.cert && t.tls.key) a.push('--cert', t.tls.cert, '--key', t.tls.key);
  if (t.tls.serverName) a.push('--sni', t.tls.serverName);
  if (!t.tls.verify) a.push('--insecure');
  return a;
}

/** The password for redis-cli, in its environment (REDISCLI_AUTH), never on its command line. */
export function redisCliEnv(t: RedisTarget, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base };
  delete env.REDISCLI_AUTH;
  if (t.password !== undefined) env.REDISCLI_AUTH = t.password;
  return env;
}
