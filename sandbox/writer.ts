/**
 * A continuous writer that records every acknowledged write, for proving "zero acknowledged writes lost".
 * Each write is `SET <prefix>:<seq> <seq>` with a unique key; only writes the server answered OK count as
 * acknowledged. On READONLY or a connection error the writer asks every node for its ROLE and follows the
 * primary, like a Sentinel-aware client would. The largest gap between two acknowledgements is the write
 * pause a client saw.
 */
import { performance } from 'node:perf_hooks';
import Redis, { type Cluster } from 'ioredis';
import { sleep } from './ports';

export interface WriterNode {
  id: string;
  host: string;
  port: number;
  /** node:tls client options for a TLS-only node (sandbox fleets with `tls: true` carry them). */
  tls?: { ca: Buffer; cert?: Buffer; key?: Buffer };
}

export interface WriterStats {
  acked: number;
  errors: number;
  /** Largest gap between consecutive acknowledgements within the window (ms). */
  maxGapMs: number;
}

/** What every writer records: acknowledged keys and when, errors, and the largest gap between two acks. */
export abstract class AckLog {
  readonly ackedKeys: string[] = [];
  readonly ackTimes: number[] = [];
  /** The node that acknowledged each write ('' when the client does not know, e.g. a cluster client). */
  readonly ackedBy: string[] = [];
  /** Discovery rounds refused because several nodes claimed the primary role at once (an ambiguous topology). */
  ambiguous = 0;
  errors = 0;
  protected seq = 0;
  protected stopped = false;
  private loop?: Promise<void>;

  constructor(readonly prefix = `w${Date.now().toString(36)}`) {}

  protected abstract run(): Promise<void>;

  protected ack(key: string, node = ''): void {
    this.ackTimes.push(performance.now());
    this.ackedKeys.push(key);
    this.ackedBy.push(node);
  }

  start(): this {
    this.stopped = false;
    this.loop = this.run();
    return this;
  }

  async stop(): Promise<WriterStats> {
    this.stopped = true;
    await this.loop;
    return this.stats();
  }

  now(): number {
    return performance.now();
  }

  /** Largest gap between consecutive acks whose interval overlaps [from, to] (performance.now() times). */
  maxGapMs(from = -Infinity, to = Infinity): number {
    let max = 0;
    for (let i = 1; i < this.ackTimes.length; i++) {
      const a = this.ackTimes[i - 1];
      const b = this.ackTimes[i];
      if (b < from || a > to) continue;
      max = Math.max(max, b - a);
    }
    return max;
  }

  stats(from?: number, to?: number): WriterStats {
    return { acked: this.ackedKeys.length, errors: this.errors, maxGapMs: Math.round(this.maxGapMs(from, to) * 10) / 10 };
  }
}

export class AckedWriter extends AckLog {
  readonly primariesSeen: string[] = [];
  private clients = new Map<string, Redis>();
  private current?: string;

  /**
   * `waitReplicas`: a write counts as acknowledged only once WAIT says that many replicas have it (the
   * application's durability contract under asynchronous replication); 0 (default): the primary's OK.
   */
  constructor(
    private readonly nodes: WriterNode[],
    private readonly password: string | undefined,
    prefix?: string,
    private readonly waitReplicas = 0,
  ) {
    super(prefix);
    for (const n of nodes) {
      const c = new Redis({
        host: n.host,
        port: n.port,
        password,
        tls: n.tls,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        commandTimeout: 15_000,
        connectTimeout: 1000,
        retryStrategy: () => 50,
      });
      c.on('error', () => undefined);
      this.clients.set(n.id, c);
    }
  }

  async close(): Promise<void> {
    if (!this.stopped) await this.stop();
    for (const c of this.clients.values()) c.disconnect();
  }

  /**
   * The one node answering ROLE master, or undefined: none answers, or several do. With two masters the
   * writer refuses to choose (counted in `ambiguous`) rather than write to whichever answered first.
   */
  async discoverPrimary(): Promise<string | undefined> {
    const roles = await Promise.all(
      this.nodes.map(async (n) => {
        try {
          const r = (await this.clients.get(n.id)!.call('ROLE')) as unknown[];
          return r[0] === 'master' ? n.id : undefined;
        } catch {
          return undefined;
        }
      }),
    );
    const masters = roles.filter((x): x is string => !!x);
    if (masters.length > 1) this.ambiguous++;
    return masters.length === 1 ? masters[0] : undefined;
  }

  protected async run(): Promise<void> {
    while (!this.stopped) {
      if (!this.current) {
        this.current = await this.discoverPrimary();
        if (!this.current) {
          await sleep(2);
          continue;
        }
        if (this.primariesSeen[this.primariesSeen.length - 1] !== this.current) this.primariesSeen.push(this.current);
      }
      const key = `${this.prefix}:${this.seq++}`;
      try {
        const c = this.clients.get(this.current)!;
        const r = await c.set(key, String(this.seq));
        if (r === 'OK' && (this.waitReplicas === 0 || Number(await c.call('WAIT', String(this.waitReplicas), '2000')) >= this.waitReplicas)) this.ack(key, this.current);
      } catch {
        this.errors++;
        this.current = undefined;
      }
    }
  }

  /** Acknowledged keys missing on a node (reads with MGET in chunks). */
  async missingOn(host: string, port: number): Promise<string[]> {
    const tls = this.nodes.find((n) => n.host === host && n.port === port)?.tls;
    const c = new Redis({ host, port, password: this.password, tls, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    c.on('error', () => undefined);
    await c.connect();
    const missing: string[] = [];
    try {
      for (let i = 0; i < this.ackedKeys.length; i += 2000) {
        const chunk = this.ackedKeys.slice(i, i + 2000);
        const vals = await c.mget(...chunk);
        vals.forEach((v, j) => {
          if (v === null) missing.push(chunk[j]);
        });
      }
    } finally {
      c.disconnect();
    }
    return missing;
  }
}

/**
 * The same contract against a Redis Cluster, through a cluster-aware client that follows MOVED and failovers:
 * keys spread over every shard; only writes answered OK count.
 */
export class ClusterAckedWriter extends AckLog {
  constructor(
    private readonly client: Cluster,
    prefix?: string,
  ) {
    super(prefix);
  }

  protected async run(): Promise<void> {
    while (!this.stopped) {
      const key = `${this.prefix}:${this.seq++}`;
      try {
        if ((await this.client.set(key, String(this.seq))) === 'OK') this.ack(key);
      } catch {
        this.errors++;
        await sleep(2);
      }
    }
  }

  /** Acknowledged keys the cluster does not return. */
  async missing(): Promise<string[]> {
    const missing: string[] = [];
    for (let i = 0; i < this.ackedKeys.length; i += 500) {
      const chunk = this.ackedKeys.slice(i, i + 500);
      const vals = await Promise.all(chunk.map((k) => this.client.get(k)));
      vals.forEach((v, j) => {
        if (v === null) missing.push(chunk[j]);
      });
    }
    return missing;
  }
}

/**
 * The same contract through a client that discovers the primary ONLY through Sentinel (ioredis `sentinels:` +
 * `name`, role master), configured as a Sentinel client should be: on READONLY (its primary was demoted) it
 * reconnects, which asks Sentinel again; a node that no longer answers as master is refused by ioredis' role
 * check and Sentinel is asked again. Reconnects are retried every `retryMs`, so the gap it sees is set by when
 * Sentinel names the new primary, not by client back-off. `errorKinds` counts the errors it saw by message.
 */
export class SentinelAckedWriter extends AckLog {
  readonly client: Redis;
  readonly errorKinds = new Map<string, number>();

  constructor(
    sentinels: { host: string; port: number }[],
    name: string,
    private readonly password: string | undefined,
    prefix?: string,
    retryMs = 10,
  ) {
    super(prefix);
    this.client = new Redis({
      sentinels,
      name,
      role: 'master',
      password,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: 1000,
      commandTimeout: 15_000,
      retryStrategy: () => retryMs,
      sentinelRetryStrategy: () => retryMs,
      reconnectOnError: (e) => (/READONLY/.test(e.message) ? 1 : false),
    });
    this.client.on('error', () => undefined);
  }

  protected async run(): Promise<void> {
    while (!this.stopped) {
      const key = `${this.prefix}:${this.seq++}`;
      try {
        if ((await this.client.set(key, String(this.seq))) === 'OK') {
          const s = (this.client as unknown as { stream?: { remoteAddress?: string; remotePort?: number } }).stream;
          this.ack(key, s ? `${s.remoteAddress}:${s.remotePort}` : '');
        }
      } catch (e) {
        this.errors++;
        const kind = (e as Error).message.replace(/\d+/g, 'N').slice(0, 80);
        this.errorKinds.set(kind, (this.errorKinds.get(kind) ?? 0) + 1);
        await sleep(1);
      }
    }
  }

  async close(): Promise<void> {
    if (!this.stopped) await this.stop();
    this.client.disconnect();
  }

  /** Acknowledged keys missing on a node (reads with MGET in chunks). */
  async missingOn(host: string, port: number): Promise<string[]> {
    const c = new Redis({ host, port, password: this.password, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    c.on('error', () => undefined);
    await c.connect();
    const missing: string[] = [];
    try {
      for (let i = 0; i < this.ackedKeys.length; i += 2000) {
        const chunk = this.ackedKeys.slice(i, i + 2000);
        (await c.mget(...chunk)).forEach((v, j) => {
          if (v === null) missing.push(chunk[j]);
        });
      }
    } finally {
      c.disconnect();
    }
    return missing;
  }
}
