/**
 * Where backup artifacts live, behind one interface, and what every store shares: the layout, and how a
 * backup's state is read from its manifest and verification record.
 *
 *   <root>/<cluster>/<backup-id>/<artifact>            e.g. dump.rdb.gz, dump.sql.gz, dump.sql.zst
 *   <root>/<cluster>/<backup-id>/manifest.json         written last: without it the backup is "incomplete"
 *   <root>/<cluster>/<backup-id>/verification.json     written by verification: ok -> "good", else "failed"
 *
 * A store shows a file whole or not at all (local: temp + fsync + rename; S3: an object exists only once its
 * PUT or multipart upload completed), so a reader never sees half an artifact under its name.
 */
import type { Readable } from 'node:stream';
import { backupState, type BackupListing, type BackupManifest, type VerificationRecord } from '../../../core/backup/decide';
import { parseManifest, parseVerification } from '../../../core/backup/manifest';

export interface StoredBackup extends BackupListing {
  manifest?: BackupManifest;
  verification?: VerificationRecord;
  /** Why the manifest did not validate (then the backup is "failed"). */
  problems?: string[];
}

export interface PutOptions {
  /** Called as bytes become durable in the store (local: per chunk written; S3: per part uploaded). */
  onStored?(bytes: number): void;
}

export interface BackupStorage {
  /** Human-readable location, for audit lines (no secrets). */
  readonly location: string;
  list(cluster: string): Promise<StoredBackup[]>;
  get(cluster: string, id: string): Promise<StoredBackup | undefined>;
  /** Write `file` of backup `id` from `source`, streaming; it appears whole or not at all. */
  putStream(cluster: string, id: string, file: string, source: Readable, o?: PutOptions): Promise<void>;
  /**
   * Write `file` from chunks that `produce` hands to `write` one at a time; a chunk's memory may be reused once
   * its `write` resolves (the caller reads into one buffer). Whole or not at all, as putStream: a `produce` that
   * throws leaves nothing. Optional: a store without it is written through putStream.
   */
  putChunks?(cluster: string, id: string, file: string, produce: (write: (chunk: Buffer) => Promise<void>) => Promise<void>, o?: PutOptions): Promise<void>;
  putJson(cluster: string, id: string, file: string, value: unknown): Promise<void>;
  /**
   * Create `file` only if no file of that name exists, atomically (local: a hard link of a synced temp file,
   * which fails when the name exists; S3: PUT with If-None-Match: *). False when it existed: of two writers
   * exactly one gets true (on a store that ignores If-None-Match the caller reads back what it wrote).
   */
  putJsonIfAbsent(cluster: string, id: string, file: string, value: unknown): Promise<boolean>;
  /** A stored file's size without reading it (local stat, S3 HEAD); undefined when it is not there. */
  stat(cluster: string, id: string, file: string): Promise<{ size: number } | undefined>;
  /** A stream of a stored file (an error is emitted on the stream when it cannot be read). */
  readStream(cluster: string, id: string, file: string): Readable;
  /** Remove what an interrupted write left in one backup (local `*.tmp-*` files; S3 multipart uploads). */
  clearPartial(cluster: string, id: string): Promise<number>;
  remove(cluster: string, id: string): Promise<void>;
  /** The plain file names stored under one backup ID (the binlog archive lists its segments with it). */
  listFiles(cluster: string, id: string): Promise<string[]>;
  /** Remove one stored file (absent: nothing to do). */
  removeFile(cluster: string, id: string, file: string): Promise<void>;
  /** A small stored file's text, or undefined when it is not there. */
  readText(cluster: string, id: string, file: string): Promise<string | undefined>;
}

const ID_RE = /^[a-z0-9][a-z0-9._-]{0,62}-(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})Z$/;

export function startedAtFromId(id: string): string | undefined {
  const m = ID_RE.exec(id);
  return m ? `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}.${m[7]}Z` : undefined;
}

/** Names that may appear in a path or key: the inventory's cluster names and backup IDs, plain file names. */
export function checkNames(cluster: string, id?: string, file?: string): void {
  if (!/^[a-z0-9][a-z0-9._-]*$/.test(cluster) || (id !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(id)) || (file !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(file)))
    throw new Error(`bad backup path ${cluster}/${id ?? ''}/${file ?? ''}`);
}

/**
 * A backup's listing from what its directory or prefix holds: the manifest's and verification's text
 * (undefined when absent) and whether anything else is there.
 */
export function describeBackup(id: string, mText: string | undefined, vText: string | undefined, anythingStored: boolean): StoredBackup | undefined {
  const startedFromId = startedAtFromId(id);
  if (!startedFromId) return undefined; // not a backup
  if (mText === undefined && vText === undefined && !anythingStored) return undefined;
  const verification = vText === undefined ? undefined : parseVerification(vText);
  if (mText === undefined) return { id, startedAt: startedFromId, state: 'incomplete', detail: 'no manifest: the take did not finish (or is running)' };
  const parsed = parseManifest(mText);
  if ('problems' in parsed) return { id, startedAt: startedFromId, state: 'failed', problems: parsed.problems, detail: `manifest invalid: ${parsed.problems.join('; ')}` };
  const m = parsed.manifest;
  if (m.id !== id) return { id, startedAt: startedFromId, state: 'failed', detail: `manifest names ${m.id}` };
  const state = backupState({ hasManifest: true, verification });
  return {
    id,
    startedAt: m.startedAt,
    state,
    size: m.artifact.size,
    node: m.node,
    ...(m.base ? { base: m.base } : {}),
    manifest: m,
    verification,
    detail: state === 'failed' ? verification?.failure : state === 'unverified' ? 'not verified yet' : undefined,
  };
}

export const newestFirst = (a: StoredBackup, b: StoredBackup) => b.startedAt.localeCompare(a.startedAt) || b.id.localeCompare(a.id);
