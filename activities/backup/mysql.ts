/**
 * MariaDB backups: `mariadb-dump --single-transaction --master-data=2 --gtid` streamed through gzip, the GTID
 * position read from the dump's own header. The password reaches the tool through a 0600 option file
 * (--defaults-extra-file) in a private temporary directory, removed afterwards: never argv, never history.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type mysql from 'mysql2/promise';
import type { TableFingerprint } from '../../core/backup/decide';
import { openArtifact, type ArtifactSource } from './stream';
import { tool } from './tools';
import type { MysqlTarget } from '../mysql/conn';

export const SYSTEM_SCHEMAS = ['mysql', 'information_schema', 'performance_schema', 'sys'];

/** The grants mariadb-dump needs on top of the automation's (README: Backups). */
export const MARIADB_BACKUP_GRANTS = ['SELECT', 'SHOW VIEW', 'TRIGGER', 'EVENT', 'LOCK TABLES', 'BINLOG MONITOR', 'RELOAD'];

const q = (s: string) => '`' + s.replace(/`/g, '``') + '`';

export async function userSchemas(conn: mysql.Connection): Promise<string[]> {
  const [rows] = await conn.query(`SELECT SCHEMA_NAME AS s FROM information_schema.SCHEMATA WHERE SCHEMA_NAME NOT IN (${SYSTEM_SCHEMAS.map(() => '?').join(',')}) ORDER BY SCHEMA_NAME`, SYSTEM_SCHEMAS);
  return (rows as { s: string }[]).map((r) => r.s);
}

/** Row count and CHECKSUM TABLE of every base table in `schemas`. */
export async function mysqlFingerprint(conn: mysql.Connection, schemas: string[]): Promise<TableFingerprint[]> {
  if (!schemas.length) return [];
  const [rows] = await conn.query(
    `SELECT TABLE_SCHEMA AS s, TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA IN (${schemas.map(() => '?').join(',')}) ORDER BY TABLE_SCHEMA, TABLE_NAME`,
    schemas,
  );
  const out: TableFingerprint[] = [];
  for (const r of rows as { s: string; t: string }[]) {
    const name = `${q(r.s)}.${q(r.t)}`;
    const [[cnt]] = (await conn.query(`SELECT COUNT(*) AS n FROM ${name}`)) as unknown as [[{ n: number | string }]];
    const [[ck]] = (await conn.query(`CHECKSUM TABLE ${name}`)) as unknown as [[{ Checksum: number | string | null }]];
    out.push({ table: `${r.s}.${r.t}`, rows: Number(cnt.n), checksum: ck.Checksum === null ? null : String(ck.Checksum) });
  }
  return out;
}

/** A private option file with the password, for the mariadb client tools. Call cleanup() in finally. */
export function optionFile(t: { user?: string; password?: string }): { args: string[]; cleanup(): void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'handover-my-'));
  const file = path.join(dir, 'client.cnf');
  const esc = (s: string) => s.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
  writeFileSync(file, `[client]\n${t.user ? `user="${esc(t.user)}"\n` : ''}${t.password !== undefined ? `password="${esc(t.password)}"\n` : ''}`, { mode: 0o600 });
  return { args: [`--defaults-extra-file=${file}`], cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * The mariadb / mariadb-dump TLS flags for the node's inventory tls (files by path). The client checks the
 * certificate's name against the host it dials: a tls.serverName other than the host cannot be checked there.
 */
export function mysqlClientTlsArgs(t: Pick<MysqlTarget, 'tls'>): string[] {
  if (!t.tls) return [];
  const a = ['--ssl'];
  if (t.tls.ca) a.push(`--ssl-ca=${t.tls.ca}`);
  if (t.tls.cert && t.tls.key) a.push(`--ssl-cert=${t.tls.cert}`, `--ssl-key=${t.tls.key}`);
  a.push(t.tls.verify ? '--ssl-verify-server-cert' : '--skip-ssl-verify-server-cert');
  return a;
}

export function dumpArgs(t: MysqlTarget, schemas: string[]): string[] {
  return ['-h', t.host, '-P', String(t.port), '--protocol=TCP', ...mysqlClientTlsArgs(t), '--single-transaction', '--master-data=2', '--gtid', '--routines', '--events', '--triggers', '--hex-blob', '--databases', ...schemas];
}

/** The GTID position a dump records (`-- SET GLOBAL gtid_slave_pos='...'`, printed at its end by 10.11), or undefined. */
export function gtidFromDumpHead(head: string): string | undefined {
  return /gtid_slave_pos\s*=\s*'([^']*)'/.exec(head)?.[1];
}

/** Pipe a stored dump (decrypted, decompressed) into `mariadb` (socket or TCP); rejects with the client's stderr on failure. */
export async function loadDump(o: ArtifactSource & { connArgs: string[] }): Promise<void> {
  const child = spawn(tool('mariadb', o.env), [...o.connArgs, '--binary-mode'], { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  const exited = new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve(code ?? 1));
  });
  try {
    await pipeline(openArtifact(o), child.stdin!);
  } catch (e) {
    child.kill('SIGKILL');
    await exited.catch(() => undefined);
    throw new Error(`restore stream failed: ${(e as Error).message}${stderr ? `; mariadb: ${stderr.trim()}` : ''}`);
  }
  const code = await exited;
  if (code !== 0) throw new Error(`mariadb exited with ${code}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`);
}
