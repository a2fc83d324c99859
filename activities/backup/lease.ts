/**
 * The binlog archive's lease in the archive store (core/backup/lease.ts says why and how): taken when an
 * archiving call starts, renewed while it runs (at least every quarter of its lifetime, and before every
 * segment manifest is stored when the last renewal is older than that), released on `archive stop`.
 *
 * Atomicity per store: a local directory creates each generation with link(2) (EEXIST when it exists: only one
 * writer wins); S3 with PUT If-None-Match: * (AWS S3, VersityGW, MinIO). On an S3-compatible store that
 * ignores If-None-Match, two PUTs of one generation both "succeed" and the later one wins: each writer reads
 * its generation back and only the one whose record is there holds the lease (best effort: a read-back between
 * the two PUTs can let both believe it for one renewal interval; the next renewal fences the loser).
 */
import os from 'node:os';
import { randomUUID } from 'node:crypto';
import {
  LEASE_ID,
  describeHolder,
  judgeLease,
  leaseFile,
  leaseGenerationOf,
  nextLease,
  validateLease,
  type ArchiveLease,
  type LeaseOwner,
  type LeaseVerdict,
} from '../../core/backup/lease';
import { ErrorType, HandoverError } from '../../core/errors';
import type { BackupStorage } from './storage';

/** How many generations behind the current one stay in the store (older ones are removed by the writer). */
const KEEP = 3;

/** The current lease (highest generation) and the generations listed. */
export async function readLease(storage: BackupStorage, cluster: string): Promise<{ lease?: ArchiveLease; generations: number[] }> {
  for (let i = 0; i < 5; i++) {
    const gens = (await storage.listFiles(cluster, LEASE_ID))
      .map(leaseGenerationOf)
      .filter((g): g is number => g !== undefined)
      .sort((a, b) => a - b);
    if (!gens.length) return { generations: [] };
    const text = await storage.readText(cluster, LEASE_ID, leaseFile(gens[gens.length - 1]));
    if (text === undefined) continue; // removed between the listing and the read: list again
    const l = validateLease(JSON.parse(text));
    if (typeof l === 'string') throw new HandoverError(ErrorType.VerificationFailed, `the binlog archive lease ${leaseFile(gens[gens.length - 1])} of ${cluster} is invalid: ${l}`);
    return { lease: l, generations: gens };
  }
  throw new Error(`the binlog archive lease of ${cluster} kept changing while it was read`);
}

/** An owner for a call outside a workflow (tests, tools): its own token, so it is never "ours" to anyone else. */
export function localOwner(): LeaseOwner {
  return { archiver: 'local', namespace: 'none', token: randomUUID(), session: randomUUID(), host: os.hostname(), pid: process.pid };
}

export class ArchiveLeaseHolder {
  private constructor(
    private readonly storage: BackupStorage,
    readonly cluster: string,
    readonly owner: LeaseOwner,
    readonly ttlMs: number,
    private current: ArchiveLease,
    /** How it was taken (free, released, expired: taken over, ours: an earlier attempt of this archiver). */
    readonly took: LeaseVerdict & { take: true },
    private readonly now: () => number,
  ) {}

  get lease(): ArchiveLease {
    return this.current;
  }

  /** Take the lease, or throw ArchiveLeaseHeld naming its live holder. */
  static async acquire(o: { storage: BackupStorage; cluster: string; owner: LeaseOwner; ttlMs: number; now?: () => number }): Promise<ArchiveLeaseHolder> {
    const now = o.now ?? Date.now;
    for (let i = 0; i < 5; i++) {
      const { lease: cur, generations } = await readLease(o.storage, o.cluster);
      const v = judgeLease(o.cluster, cur, o.owner, now());
      if (!v.take) throw new HandoverError(ErrorType.ArchiveLeaseHeld, v.refusal);
      const next = nextLease({ cluster: o.cluster, cur, owner: o.owner, ttlMs: o.ttlMs, now: now() });
      if (await writeGeneration(o.storage, o.cluster, next, generations)) return new ArchiveLeaseHolder(o.storage, o.cluster, o.owner, o.ttlMs, next, v, now);
      // Another archiver wrote that generation first: judge again what it wrote.
    }
    const { lease } = await readLease(o.storage, o.cluster);
    throw new HandoverError(ErrorType.ArchiveLeaseHeld, `refused: the binlog archive lease of ${o.cluster} changed five times while it was being taken${lease ? `; now held by ${describeHolder(lease, now())}` : ''}`);
  }

  /** Write the next generation; throws ArchiveLeaseHeld when another archiver took the lease over (this one must stop). */
  async renew(o: { release?: boolean } = {}): Promise<void> {
    const { lease: cur, generations } = await readLease(this.storage, this.cluster);
    if (!cur || cur.generation !== this.current.generation || cur.owner.session !== this.owner.session) throw this.lost(cur);
    const next = nextLease({ cluster: this.cluster, cur, owner: this.owner, ttlMs: this.ttlMs, now: this.now(), release: o.release });
    if (!(await writeGeneration(this.storage, this.cluster, next, generations))) throw this.lost((await readLease(this.storage, this.cluster)).lease);
    this.current = next;
  }

  /**
   * Renew when the last renewal is a quarter of the lifetime old (a paused process finds out here that it lost
   * the lease); with `verify`, otherwise read the current generation and check it is still this one's (before a
   * segment manifest: a lease released by `archive stop` or taken over is seen before anything more is stored).
   */
  async ensure(o: { verify?: boolean } = {}): Promise<void> {
    if (this.now() - Date.parse(this.current.renewedAt) >= this.ttlMs / 4) return this.renew();
    if (!o.verify) return;
    const { lease: cur } = await readLease(this.storage, this.cluster);
    if (!cur || cur.generation !== this.current.generation || cur.owner.session !== this.owner.session) throw this.lost(cur);
  }

  /** Give the lease up (the next archiver takes it at once); nothing when it is no longer this one's. */
  async release(): Promise<void> {
    await this.renew({ release: true }).catch(() => undefined);
  }

  private lost(cur: ArchiveLease | undefined): HandoverError {
    const since = Math.round((this.now() - Date.parse(this.current.renewedAt)) / 100) / 10;
    return new HandoverError(
      ErrorType.ArchiveLeaseHeld,
      `the binlog archive lease of ${this.cluster} is no longer this archiver's (${cur ? `taken over by ${describeHolder(cur, this.now())}` : 'removed'}; last renewed here ${since} s ago): it stopped before storing anything more`,
    );
  }
}

/** Create one generation (only if absent), read it back, and remove generations more than KEEP behind. */
async function writeGeneration(storage: BackupStorage, cluster: string, l: ArchiveLease, listed: number[]): Promise<boolean> {
  if (!(await storage.putJsonIfAbsent(cluster, LEASE_ID, leaseFile(l.generation), l))) return false;
  // A store that ignored If-None-Match: whichever record is there holds the generation.
  const back = await storage.readText(cluster, LEASE_ID, leaseFile(l.generation));
  const got = back === undefined ? undefined : validateLease(JSON.parse(back));
  if (!got || typeof got === 'string' || got.owner.session !== l.owner.session) return false;
  await Promise.all(listed.filter((g) => g <= l.generation - KEEP).map((g) => storage.removeFile(cluster, LEASE_ID, leaseFile(g)).catch(() => undefined)));
  return true;
}

/**
 * Release the lease when `archiver` in `namespace` holds it (the CLI after `archive stop` terminated that
 * workflow, or before starting it again when an earlier run was ended without a stop): the next archiver takes
 * it at once. Returns the lease released, or undefined when another one (or nobody) holds it.
 */
export async function releaseLeaseOf(storage: BackupStorage, cluster: string, who: { archiver: string; namespace: string }, now = Date.now()): Promise<ArchiveLease | undefined> {
  const { lease: cur, generations } = await readLease(storage, cluster);
  if (!cur || cur.released || cur.owner.archiver !== who.archiver || cur.owner.namespace !== who.namespace) return undefined;
  const next = nextLease({ cluster, cur, owner: cur.owner, ttlMs: cur.ttlMs, now, release: true });
  return (await writeGeneration(storage, cluster, next, generations)) ? cur : undefined;
}
