/**
 * The binlog archive's lease, the pure parts: one archiver at a time writes a cluster's archive (WAL-G /
 * pgBackRest style: a lock object in the archive store, with an owner and an expiry, renewed while it runs).
 *
 *   <store>/<cluster>/binlog-archive-lease/lease-NNNNNNNN.json      one file per generation
 *
 * Every change (take, renew, take over, release) writes the NEXT generation, created only if absent (local
 * directory: a hard link, which fails when the name exists; S3: PUT with If-None-Match: *). Of two archivers
 * writing the same generation exactly one succeeds, so the store itself serializes them: a holder whose renewal
 * finds its next generation already written has lost the lease (it was taken over after it expired) and stops
 * before storing anything more. The current lease is the highest generation. No I/O here: unit-tested.
 */

export const LEASE_ID = 'binlog-archive-lease';
/** Default lease lifetime: an archiver that stops renewing for this long is presumed dead and may be taken over. */
export const LEASE_TTL_MS = 60_000;

export interface LeaseOwner {
  /** The archiver's workflow ID and Temporal namespace ("local" outside a workflow). */
  archiver: string;
  namespace: string;
  /** Fixed for the archiver's life (carried across continue-as-new): its attempts, on any worker, are the same owner. */
  token: string;
  /** One activity attempt: a renewal is valid only from the attempt that wrote the current generation. */
  session: string;
  host: string;
  pid: number;
}

export interface ArchiveLease {
  format: 1;
  cluster: string;
  generation: number;
  owner: LeaseOwner;
  takenAt: string;
  renewedAt: string;
  expiresAt: string;
  ttlMs: number;
  /** Released by its holder (archive stop): free at once. */
  released?: boolean;
}

export const leaseFile = (generation: number) => `lease-${String(generation).padStart(8, '0')}.json`;

export function leaseGenerationOf(file: string): number | undefined {
  const m = /^lease-(\d{8})\.json$/.exec(file);
  return m ? Number(m[1]) : undefined;
}

export function validateLease(v: unknown): ArchiveLease | string {
  const l = v as Partial<ArchiveLease> | null;
  if (!l || typeof l !== 'object') return 'not an object';
  if (l.format !== 1) return `format ${String(l.format)}`;
  if (typeof l.generation !== 'number' || l.generation < 1) return 'no generation';
  const o = l.owner as Partial<LeaseOwner> | undefined;
  if (!o || typeof o.archiver !== 'string' || typeof o.token !== 'string' || typeof o.session !== 'string') return 'no owner';
  if (typeof l.expiresAt !== 'string' || Number.isNaN(Date.parse(l.expiresAt))) return 'no expiry';
  return l as ArchiveLease;
}

export type LeaseVerdict =
  | { take: true; why: 'free' | 'released' | 'expired' | 'ours'; previous?: ArchiveLease }
  | { take: false; holder: ArchiveLease; refusal: string };

/** "archiver handover-binlog-archive-x (namespace default) on host:pid, renewed 2 s ago, expires in 58 s". */
export function describeHolder(l: ArchiveLease, now: number): string {
  const s = (ms: number) => `${Math.round(ms / 100) / 10} s`;
  const exp = Date.parse(l.expiresAt) - now;
  return `archiver ${l.owner.archiver} (namespace ${l.owner.namespace}) on ${l.owner.host}:${l.owner.pid}, renewed ${s(now - Date.parse(l.renewedAt))} ago, ${exp > 0 ? `expires in ${s(exp)}` : `expired ${s(-exp)} ago`}`;
}

/**
 * May `me` take the archive's lease, whose current generation is `cur`? Free, released, expired, or already
 * this archiver's (another attempt of the same archiver: the store's generations fence the older attempt).
 * Otherwise the refusal names the holder.
 */
export function judgeLease(cluster: string, cur: ArchiveLease | undefined, me: Pick<LeaseOwner, 'token'>, now: number): LeaseVerdict {
  if (!cur) return { take: true, why: 'free' };
  if (cur.released) return { take: true, why: 'released', previous: cur };
  if (cur.owner.token === me.token) return { take: true, why: 'ours', previous: cur };
  if (Date.parse(cur.expiresAt) <= now) return { take: true, why: 'expired', previous: cur };
  return {
    take: false,
    holder: cur,
    refusal: `refused: the binlog archive of ${cluster} is written by another ${describeHolder(cur, now)}; one archiver per cluster (stop that one, or wait for its lease to expire)`,
  };
}

/** The next generation's record. */
export function nextLease(o: { cluster: string; cur?: ArchiveLease; owner: LeaseOwner; ttlMs: number; now: number; release?: boolean }): ArchiveLease {
  const sameHolder = o.cur && !o.cur.released && o.cur.owner.session === o.owner.session;
  const at = new Date(o.now).toISOString();
  return {
    format: 1,
    cluster: o.cluster,
    generation: (o.cur?.generation ?? 0) + 1,
    owner: o.owner,
    takenAt: sameHolder ? o.cur!.takenAt : at,
    renewedAt: at,
    expiresAt: new Date(o.release ? o.now : o.now + o.ttlMs).toISOString(),
    ttlMs: o.ttlMs,
    ...(o.release ? { released: true } : {}),
  };
}
