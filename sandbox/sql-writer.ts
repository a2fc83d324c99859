/**
 * A continuous transactional writer for MySQL/MariaDB that records every acknowledged commit, for proving
 * "zero acknowledged commits lost". Each transaction is BEGIN; INSERT <unique key>; COMMIT; only a COMMIT the
 * server answered OK counts as acknowledged. On a read-only refusal (ER_OPTION_PREVENTS_STATEMENT, 1290) or a
 * connection error the writer asks every node for @@read_only and follows the writable one, as a
 * topology-aware client or proxy would. The largest gap between two acknowledgements is the write pause the
 * application saw (AckLog, shared with the Redis writer).
 */
import mysql from 'mysql2/promise';
import { APP_SCHEMA } from './mariadb';
import { sleep } from './ports';
import { AckLog, type WriterNode } from './writer';

const ER_OPTION_PREVENTS_STATEMENT = 1290;

export class SqlWriter extends AckLog {
  /** The writable nodes the writer followed, in order. */
  readonly primariesSeen: string[] = [];
  /** Errors by code (ER_OPTION_PREVENTS_STATEMENT, PROTOCOL_CONNECTION_LOST, ...), for the report. */
  readonly errorCodes: Record<string, number> = {};
  private conns = new Map<string, mysql.Connection>();
  private current?: string;

  constructor(
    private readonly nodes: WriterNode[],
    private readonly user: string,
    private readonly password: string,
    prefix?: string,
  ) {
    super(prefix);
  }

  private async conn(id: string): Promise<mysql.Connection> {
    let c = this.conns.get(id);
    if (c) return c;
    const n = this.nodes.find((x) => x.id === id)!;
    c = await mysql.createConnection({ host: n.host, port: n.port, user: this.user, password: this.password, database: APP_SCHEMA, connectTimeout: 1000, ssl: n.tls });
    c.on('error', () => this.drop(id));
    this.conns.set(id, c);
    return c;
  }

  private drop(id: string): void {
    const c = this.conns.get(id);
    this.conns.delete(id);
    c?.destroy();
  }

  /**
   * The one node answering @@read_only = 0, or undefined: none does, or several do. With two writable nodes the
   * writer refuses to choose (counted in `ambiguous`) rather than commit to whichever answered first.
   */
  async discoverWritable(): Promise<string | undefined> {
    const answers = await Promise.all(
      this.nodes.map(async (n) => {
        try {
          const [r] = await (await this.conn(n.id)).query({ sql: 'SELECT @@global.read_only AS ro', timeout: 1000 });
          return Number((r as { ro: number }[])[0].ro) === 0 ? n.id : undefined;
        } catch {
          this.drop(n.id);
          return undefined;
        }
      }),
    );
    const writable = answers.filter((x): x is string => !!x);
    if (writable.length > 1) this.ambiguous++;
    return writable.length === 1 ? writable[0] : undefined;
  }

  protected async run(): Promise<void> {
    while (!this.stopped) {
      if (!this.current) {
        this.current = await this.discoverWritable();
        if (!this.current) {
          await sleep(2);
          continue;
        }
        if (this.primariesSeen[this.primariesSeen.length - 1] !== this.current) this.primariesSeen.push(this.current);
      }
      const id = this.current;
      const key = `${this.prefix}:${this.seq++}`;
      let c: mysql.Connection | undefined;
      try {
        c = await this.conn(id);
        await c.query({ sql: 'BEGIN', timeout: 15_000 });
        await c.query({ sql: 'INSERT INTO acks (k, v) VALUES (?, ?)', values: [key, this.seq], timeout: 15_000 });
        await c.query({ sql: 'COMMIT', timeout: 15_000 });
        this.ack(key, id);
      } catch (e) {
        this.errors++;
        const err = e as { errno?: number; code?: string; fatal?: boolean };
        const code = err.code ?? String(err.errno ?? 'unknown');
        this.errorCodes[code] = (this.errorCodes[code] ?? 0) + 1;
        if (err.errno === ER_OPTION_PREVENTS_STATEMENT) await c?.query('ROLLBACK').catch(() => this.drop(id));
        else this.drop(id); // connection lost, killed, timed out: start afresh
        this.current = undefined;
      }
    }
  }

  async close(): Promise<void> {
    if (!this.stopped) await this.stop();
    for (const id of [...this.conns.keys()]) this.drop(id);
  }

  /** Acknowledged keys missing on a node (SELECT ... WHERE k IN (...) in chunks). */
  async missingOn(node: WriterNode): Promise<string[]> {
    const c = await mysql.createConnection({ host: node.host, port: node.port, user: this.user, password: this.password, database: APP_SCHEMA, ssl: node.tls });
    const missing: string[] = [];
    try {
      for (let i = 0; i < this.ackedKeys.length; i += 1000) {
        const chunk = this.ackedKeys.slice(i, i + 1000);
        const [r] = await c.query('SELECT k FROM acks WHERE k IN (?)', [chunk]);
        const have = new Set((r as { k: string }[]).map((x) => x.k));
        for (const k of chunk) if (!have.has(k)) missing.push(k);
      }
    } finally {
      await c.end();
    }
    return missing;
  }
}
