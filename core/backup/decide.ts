/**
 * Backups: the pure decisions (which node to back up from, which artifacts retention may delete, the backup's
 * ID) and the shapes the activities, workflows and CLI share. No I/O: unit-tested without Temporal.
 */

export type BackupEngine = 'redis' | 'mysql' | 'dolt';

/** gzip (level 1, in-process zlib) or zstd (level 1, the zstd tool, multi-threaded). */
export type BackupCompression = 'gzip' | 'zstd';

/** MariaDB: logical (mariadb-dump) or physical (mariadb-backup --stream=mbstream). Redis backups are RDB files. */
export type BackupMethod = 'logical' | 'physical';

/** What a physical (mariadb-backup) backup records: its kind, LSNs and the tool's metadata files. */
export interface PhysicalRecord {
  kind: 'full' | 'incremental';
  fromLsn: string;
  toLsn: string;
  lastLsn: string;
  /** xtrabackup_checkpoints as the tool wrote it (an incremental on top passes it as --incremental-basedir). */
  checkpoints: string;
  /** xtrabackup_binlog_info and, from a replica, xtrabackup_slave_info (where the GTID comes from). */
  binlogInfo?: string;
  slaveInfo?: string;
}

/** The encryption of an artifact (activities/backup/crypto.ts): which key, and the frame size. */
export interface EncryptionRecord {
  alg: 'aes-256-gcm-framed';
  keyId: string;
  frameBytes: number;
}

/** One node as the backup probe saw it, engine-neutral. `lag` is bytes (Redis) or transactions (GTID). */
export interface BackupSourceView {
  node: string;
  reachable: boolean;
  error?: string;
  role?: 'primary' | 'replica';
  /** For a replica: the inventory node it replicates from. */
  replicaOf?: string;
  /** Replica link up and applying (Redis master_link_status up; MariaDB IO and SQL threads running). */
  replicating?: boolean;
  /** How far behind the primary (bytes for Redis, transactions for MariaDB); undefined when unknown. */
  lag?: number;
  version?: string;
  /** Redis Cluster: the slots a primary serves, as CLUSTER NODES prints them ("0-5460"). */
  slots?: string;
}

/** Redis Cluster: one shard's backup, inside the run's one manifest (slots, source, artifact, fingerprint). */
export interface ShardBackup {
  slots: string;
  node: string;
  role: 'primary' | 'replica';
  /** The shard's primary when taken. */
  primary: string;
  position: { offset?: number; replid?: string };
  artifact: { file: string; size: number; sha256: string; compression: BackupCompression; encryption?: EncryptionRecord };
  rawSize: number;
  content: { redis: RedisFingerprint };
}

export interface ShardSourceChoice {
  slots: string;
  primary: string;
  node: string;
  role: 'primary' | 'replica';
  reason: string;
}

/**
 * Redis Cluster: one source per shard (each reachable primary serving slots): a replica of it that is linked
 * and within maxLag bytes, else the primary itself (when allowed). Refused when a node is unreachable (a shard
 * might be missed or mid-failover) or no primary serves slots.
 */
export function chooseShardSources(nodes: BackupSourceView[], o: { maxLag: number; allowPrimary: boolean }): { shards: ShardSourceChoice[] } | BackupSourceRefusal {
  const down = nodes.filter((n) => !n.reachable);
  if (down.length) return { refusal: `${down.map((n) => n.node).join(', ')} unreachable: a Cluster backup takes every shard and cannot tell which shard those serve` };
  const primaries = nodes.filter((n) => n.role === 'primary' && (n.slots ?? '').trim() !== '');
  if (!primaries.length) return { refusal: 'no primary serves slots' };
  const shards: ShardSourceChoice[] = [];
  for (const p of primaries) {
    const r = nodes.find((n) => n.role === 'replica' && n.replicaOf === p.node && n.replicating && n.lag !== undefined && n.lag <= o.maxLag);
    if (r) shards.push({ slots: p.slots!.trim(), primary: p.node, node: r.node, role: 'replica', reason: `replica of ${p.node}, linked, ${r.lag} bytes behind` });
    else if (o.allowPrimary) shards.push({ slots: p.slots!.trim(), primary: p.node, node: p.node, role: 'primary', reason: 'no healthy in-sync replica: the primary' });
    else return { refusal: `shard ${p.slots} (${p.node}) has no healthy in-sync replica and --replica-only was given` };
  }
  return { shards };
}

export interface BackupSourceChoice {
  node: string;
  role: 'primary' | 'replica';
  /** True when no healthy in-sync replica existed and the backup is taken from the primary (reported). */
  fromPrimary: boolean;
  reason: string;
  rejected: { node: string; reason: string }[];
}

export interface BackupSourceRefusal {
  refusal: string;
}

/** Why `n` is not a healthy in-sync replica of `primary` to back up from, or undefined when it is. */
export function whyNotBackupSource(n: BackupSourceView, primary: string | undefined, maxLag: number): string | undefined {
  if (!n.reachable) return `unreachable (${n.error ?? 'no answer'})`;
  if (n.role !== 'replica') return 'is the primary';
  if (primary === undefined) return 'no primary to be in sync with';
  if (n.replicaOf !== primary) return `replicates from ${n.replicaOf ?? 'a node outside the inventory'}, not from the primary ${primary}`;
  if (!n.replicating) return 'replication link down or not applying';
  if (n.lag === undefined) return 'lag unknown';
  if (n.lag > maxLag) return `lags ${n.lag} behind ${primary} (limit ${maxLag})`;
  return undefined;
}

/**
 * The node to back up from: a healthy in-sync replica (least lag first, then name), so the primary is never
 * loaded; else, with `allowPrimary`, the primary itself, flagged `fromPrimary`. Refused when neither exists.
 */
export function chooseBackupSource(
  nodes: BackupSourceView[],
  opts: { maxLag: number; allowPrimary?: boolean; node?: string },
): BackupSourceChoice | BackupSourceRefusal {
  const primaries = nodes.filter((n) => n.reachable && n.role === 'primary');
  if (primaries.length > 1) return { refusal: `more than one primary (${primaries.map((p) => p.node).join(', ')}): resolve the split before backing up` };
  const primary = primaries[0]?.node;
  const rejected: { node: string; reason: string }[] = [];
  const ok: BackupSourceView[] = [];
  for (const n of nodes) {
    const why = whyNotBackupSource(n, primary, opts.maxLag);
    if (why) rejected.push({ node: n.node, reason: why });
    else ok.push(n);
  }
  if (opts.node !== undefined) {
    const want = nodes.find((n) => n.node === opts.node);
    if (!want) return { refusal: `unknown node ${opts.node}` };
    if (ok.includes(want)) return { node: want.node, role: 'replica', fromPrimary: false, reason: `${want.node} requested; in sync (lag ${want.lag})`, rejected: rejected };
    if (want.node === primary && opts.allowPrimary !== false)
      return { node: want.node, role: 'primary', fromPrimary: true, reason: `${want.node} requested: the primary`, rejected: rejected.filter((r) => r.node !== want.node) };
    return { refusal: `${want.node} cannot be backed up from: ${rejected.find((r) => r.node === want.node)?.reason ?? 'not eligible'}` };
  }
  ok.sort((a, b) => (a.lag ?? 0) - (b.lag ?? 0) || a.node.localeCompare(b.node));
  if (ok.length) {
    const best = ok[0];
    return { node: best.node, role: 'replica', fromPrimary: false, reason: `healthy in-sync replica of ${primary} (lag ${best.lag})`, rejected: [...rejected, ...ok.slice(1).map((n) => ({ node: n.node, reason: `in sync too, lag ${n.lag}` }))] };
  }
  if (primary !== undefined && opts.allowPrimary !== false)
    return { node: primary, role: 'primary', fromPrimary: true, reason: `no healthy in-sync replica (${rejected.filter((r) => r.node !== primary).map((r) => `${r.node}: ${r.reason}`).join('; ') || 'none'}): backing up the primary`, rejected: rejected.filter((r) => r.node !== primary) };
  return { refusal: `no node to back up from: ${rejected.map((r) => `${r.node}: ${r.reason}`).join('; ')}` };
}

/** Backup IDs sort by time: `<cluster>-<YYYYMMDDTHHMMSSmmmZ>`. Built from the workflow clock, so frozen. */
export function backupId(cluster: string, startedAtMs: number): string {
  const iso = new Date(startedAtMs).toISOString(); // 2026-11-23T08:53:42.123Z
  return `${cluster}-${iso.replace(/[-:]/g, '').replace('.', '')}`;
}

/** What `list` shows for one backup directory. Only `good` may be restored without --force or pruned-for. */
export type BackupState = 'good' | 'unverified' | 'failed' | 'incomplete';

export interface BackupListing {
  id: string;
  /** ISO time the backup started (from the manifest, else from the ID). */
  startedAt: string;
  state: BackupState;
  size?: number;
  node?: string;
  detail?: string;
  /** An incremental backup's base (the backup it applies on top of); retention keeps it while this is kept. */
  base?: string;
}

/** good: manifest written and verified; unverified: manifest written, no verification yet; failed: verification failed; incomplete: no manifest (a take that died or is running). */
export function backupState(x: { hasManifest: boolean; verification?: { ok: boolean } }): BackupState {
  if (!x.hasManifest) return 'incomplete';
  if (!x.verification) return 'unverified';
  return x.verification.ok ? 'good' : 'failed';
}

export interface RetentionPlan {
  keep: string[];
  delete: { id: string; reason: string }[];
}

/**
 * Retention: keep the newest `keep` good (verified) backups; delete older good ones, and failed, unverified or
 * incomplete ones, only when they are older than the newest good backup (so a backup still being taken or
 * verified, which is newer, is never touched). Nothing is deleted while there is no good backup, and the
 * `protect` ID (the backup this run just took) is never deleted.
 */
export function planRetention(backups: BackupListing[], keep: number, protect?: string): RetentionPlan {
  if (!Number.isInteger(keep) || keep < 1) throw new Error(`keep must be a positive integer, got ${keep}`);
  const sorted = [...backups].sort((a, b) => b.startedAt.localeCompare(a.startedAt) || b.id.localeCompare(a.id));
  const good = sorted.filter((b) => b.state === 'good');
  if (good.length === 0) return { keep: sorted.map((b) => b.id), delete: [] };
  const newestGood = good[0];
  const keptGood = new Set(good.slice(0, keep).map((b) => b.id));
  const kept = new Set<string>();
  for (const b of sorted) {
    const olderThanNewestGood = b.startedAt < newestGood.startedAt || (b.startedAt === newestGood.startedAt && b.id < newestGood.id);
    if (b.id === protect || keptGood.has(b.id) || !olderThanNewestGood) kept.add(b.id);
  }
  // Chains: a kept incremental keeps its base, and that base's base, down to the full.
  const byId = new Map(sorted.map((b) => [b.id, b]));
  for (const id of [...kept]) {
    let cur = byId.get(id);
    while (cur?.base && !kept.has(cur.base)) {
      kept.add(cur.base);
      cur = byId.get(cur.base);
    }
  }
  const out: RetentionPlan = { keep: [], delete: [] };
  for (const b of sorted) {
    if (kept.has(b.id)) out.keep.push(b.id);
    else if (b.state === 'good') out.delete.push({ id: b.id, reason: `older than the ${keep} newest good backups` });
    else out.delete.push({ id: b.id, reason: `${b.state}, and a newer good backup (${newestGood.id}) exists` });
  }
  return out;
}

/** MariaDB content fingerprint per table, taken at backup time and compared after a restore. */
export interface TableFingerprint {
  table: string; // schema.table
  rows: number;
  /** CHECKSUM TABLE result (null when the server cannot compute one). */
  checksum: string | null;
}

/** Redis content fingerprint: DBSIZE and a sample of keys with a digest of their value. */
export interface RedisFingerprint {
  dbsize: number;
  /** key -> sha256 of a type-aware rendering of its value (see activities/backup-redis.ts). */
  sample: Record<string, string>;
}

export interface BackupManifest {
  format: 1;
  id: string;
  cluster: string;
  engine: BackupEngine;
  node: string;
  /** The source's role when taken, and whether that was the primary because no healthy replica existed. */
  role: 'primary' | 'replica';
  fromPrimary: boolean;
  engineVersion: string;
  /** Redis: replication offset (and replid); MariaDB: GTID position of the dump's snapshot. */
  position: { offset?: number; replid?: string; gtid?: string };
  artifact: { file: string; size: number; sha256: string; compression: BackupCompression; encryption?: EncryptionRecord };
  /** MariaDB: how it was taken (absent: logical, as before the field existed). */
  method?: BackupMethod;
  /** method physical: the tool's LSNs and metadata. */
  physical?: PhysicalRecord;
  /** An incremental backup: the ID of the backup it applies on top of (a full, or another incremental). */
  base?: string;
  /** Uncompressed bytes the tool produced. */
  rawSize: number;
  /**
   * Redis Cluster: every shard, each with its slots, source, artifact and fingerprint (the top-level node,
   * artifact and content repeat the first shard's, so tools that read one artifact still find one).
   */
  shards?: ShardBackup[];
  startedAt: string;
  endedAt: string;
  tool: { name: string; args: string[]; exitStatus: number };
  content: {
    redis?: RedisFingerprint;
    /**
     * consistent: the fingerprint was read at the dump's own snapshot point (replica source: SQL thread stopped
     * for the dump). Otherwise (primary source under writes) tables that changed while the dump ran are listed
     * in `unstable` and verified by presence only.
     */
    mysql?: { tables: TableFingerprint[]; consistent: boolean; unstable?: string[] };
    /** Dolt: dolt_hashof_db() of each database, read on the source before and after its dolt_backup sync (equal). */
    dolt?: { databases: Record<string, string> };
  };
}

export interface VerificationRecord {
  id: string;
  ok: boolean;
  at: string;
  checks: string[];
  /** The first check that failed. */
  failure?: string;
  restoreMs: number;
}

/** Why a restored Dolt server's database hashes do not match the manifest's, or undefined when they match. */
export function compareDoltContent(want: Record<string, string>, got: Record<string, string>): string | undefined {
  for (const [db, h] of Object.entries(want)) {
    if (got[db] === undefined) return `database ${db} missing after restore`;
    if (got[db] !== h) return `database ${db}: dolt_hashof_db() ${got[db]} after restore, manifest says ${h}`;
  }
  const extra = Object.keys(got).filter((d) => want[d] === undefined);
  return extra.length ? `databases not in the manifest after restore: ${extra.join(', ')}` : undefined;
}

/** Why a restored server's content does not match the manifest, or undefined when it matches. */
export function compareRedisContent(want: RedisFingerprint, got: { dbsize: number; sample: Record<string, string | null> }): string | undefined {
  if (got.dbsize !== want.dbsize) return `DBSIZE ${got.dbsize} after restore, manifest says ${want.dbsize}`;
  for (const [k, digest] of Object.entries(want.sample)) {
    const g = got.sample[k];
    if (g === null || g === undefined) return `key ${JSON.stringify(k)} missing after restore`;
    if (g !== digest) return `key ${JSON.stringify(k)} differs after restore (${g.slice(0, 12)} != ${digest.slice(0, 12)})`;
  }
  return undefined;
}

export function compareMysqlContent(want: TableFingerprint[], got: TableFingerprint[], unstable: string[] = []): string | undefined {
  const byName = new Map(got.map((t) => [t.table, t]));
  for (const u of unstable) if (!byName.has(u)) return `table ${u} missing after restore`;
  for (const t of want) {
    const g = byName.get(t.table);
    if (!g) return `table ${t.table} missing after restore`;
    if (g.rows !== t.rows) return `table ${t.table}: ${g.rows} rows after restore, manifest says ${t.rows}`;
    if (t.checksum !== null && g.checksum !== t.checksum) return `table ${t.table}: CHECKSUM TABLE ${g.checksum} after restore, manifest says ${t.checksum}`;
  }
  const extra = got.filter((t) => !want.some((w) => w.table === t.table) && !unstable.includes(t.table));
  if (extra.length) return `tables not in the manifest after restore: ${extra.map((t) => t.table).join(', ')}`;
  return undefined;
}

/**
 * The base of a new incremental: the newest good physical backup (full or incremental) whose chain down to its
 * full is whole and good. Undefined (with the reason) when there is none: the take is then a full.
 */
export function chooseIncrementalBase(backups: (BackupListing & { method?: BackupMethod })[]): { base: string; chain: string[] } | { none: string } {
  const byId = new Map(backups.map((b) => [b.id, b]));
  const sorted = [...backups].sort((a, b) => b.startedAt.localeCompare(a.startedAt) || b.id.localeCompare(a.id));
  for (const b of sorted) {
    if (b.state !== 'good' || b.method !== 'physical') continue;
    const chain = backupChain(b.id, byId);
    if (typeof chain !== 'string') return { base: b.id, chain };
  }
  return { none: 'no good physical backup with a whole chain to build on' };
}

/** The chain a backup restores from, full first; a string says why it is broken. */
export function backupChain(id: string, byId: Map<string, BackupListing>): string[] | string {
  const chain: string[] = [];
  let cur = byId.get(id);
  while (cur) {
    if (chain.includes(cur.id)) return `chain of ${id} loops at ${cur.id}`;
    chain.unshift(cur.id);
    if (cur.state !== 'good' && cur.id !== id) return `${cur.id} in the chain of ${id} is ${cur.state}`;
    if (!cur.base) return chain;
    const next = byId.get(cur.base);
    if (!next) return `base ${cur.base} of ${cur.id} is missing`;
    cur = next;
  }
  return `no backup ${id}`;
}

/**
 * The backup a new replica is provisioned from: `id` when given (it must be good and physical), else the
 * newest good physical backup. Logical backups are refused: loading a dump writes the node's own binary log
 * (GTIDs the primary lacks), so the node could not replicate.
 */
export function chooseProvisionBackup(backups: { id: string; state: BackupState; startedAt: string; engine?: BackupEngine; method?: BackupMethod }[], id?: string): { id: string } | BackupSourceRefusal {
  if (id !== undefined) {
    const b = backups.find((x) => x.id === id);
    if (!b) return { refusal: `no backup ${id}` };
    if (b.state !== 'good') return { refusal: `backup ${id} is ${b.state}, not good` };
    if (b.engine !== 'mysql' || b.method !== 'physical') return { refusal: `backup ${id} is not a physical MariaDB backup (provisioning needs backup.method: physical)` };
    return { id };
  }
  const good = backups.filter((b) => b.state === 'good' && b.engine === 'mysql' && b.method === 'physical').sort((a, b) => b.startedAt.localeCompare(a.startedAt) || b.id.localeCompare(a.id));
  if (!good.length) return { refusal: 'no good physical backup to provision from (take one with backup.method: physical)' };
  return { id: good[0].id };
}

/** The schedule of a cluster's backups: one per cluster, so creating it twice is idempotent. */
export function backupScheduleId(cluster: string): string {
  return `handover-backup-${cluster}`;
}
