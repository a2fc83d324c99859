/**
 * A reader of mariadb-backup's mbstream (xbstream v1) format while it streams by, keeping only the small
 * metadata files the manifest needs (xtrabackup_binlog_info / mariadb_backup_binlog_info, *_slave_info,
 * *_checkpoints, *_info). The data files' payloads pass through uncopied.
 *
 * A chunk: "XBSTCK01", flags (1 byte), type (1 byte: 'P' payload, 'E' end of file), path length (uint32 LE),
 * path; for 'P' then payload length (uint64 LE), payload offset (uint64 LE), CRC32 (uint32 LE), payload.
 */
const MAGIC = Buffer.from('XBSTCK01', 'latin1');
const WANTED = /^(xtrabackup|mariadb_backup)_(binlog_info|slave_info|checkpoints|info)$/;

export interface MbstreamMeta {
  /** File name -> its text, for the wanted metadata files seen so far. */
  files: Record<string, string>;
  /** Chunks seen; 0 means the tool wrote nothing that looks like an mbstream. */
  chunks: number;
  /** Set when the bytes stop looking like an mbstream (the take then fails). */
  error?: string;
}

export function mbstreamTap(): { push(chunk: Buffer): void; meta: MbstreamMeta } {
  const meta: MbstreamMeta = { files: {}, chunks: 0 };
  let buf = Buffer.alloc(0);
  let skip = 0; // payload bytes still to pass
  let capture: { name: string; parts: Buffer[] } | undefined;
  const acc: Record<string, Buffer[]> = {};
  function finish(c: { name: string; parts: Buffer[] }) {
    (acc[c.name] ??= []).push(...c.parts);
    meta.files[c.name] = Buffer.concat(acc[c.name]).toString('utf8');
    capture = undefined;
  }

  function push(chunk: Buffer) {
    if (meta.error) return;
    let data = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    buf = Buffer.alloc(0);
    for (;;) {
      if (skip > 0) {
        const n = Math.min(skip, data.length);
        if (capture) capture.parts.push(Buffer.from(data.subarray(0, n)));
        skip -= n;
        data = data.subarray(n);
        if (skip > 0) return;
        if (capture) finish(capture);
      }
      if (data.length < 14) break;
      if (!data.subarray(0, 8).equals(MAGIC)) {
        meta.error = `not an mbstream: bad chunk magic after ${meta.chunks} chunks`;
        return;
      }
      const type = String.fromCharCode(data[9]);
      const pathLen = data.readUInt32LE(10);
      if (pathLen > 4096) {
        meta.error = `not an mbstream: path length ${pathLen}`;
        return;
      }
      if (type === 'E') {
        if (data.length < 14 + pathLen) break;
        meta.chunks++;
        data = data.subarray(14 + pathLen);
        continue;
      }
      if (type !== 'P') {
        meta.error = `not an mbstream: chunk type ${JSON.stringify(type)}`;
        return;
      }
      const head = 14 + pathLen + 20;
      if (data.length < head) break;
      const name = data.subarray(14, 14 + pathLen).toString('utf8');
      const len = Number(data.readBigUInt64LE(14 + pathLen));
      meta.chunks++;
      skip = len;
      if (WANTED.test(name)) capture = { name, parts: [] };
      data = data.subarray(head);
      if (len === 0 && capture) finish(capture);
    }
    buf = Buffer.from(data);
  }
  return { push, meta };
}

/** The GTID position of a physical backup: the slave info's gtid_slave_pos (replica source), else the binlog info's GTID. */
export function physicalGtid(files: Record<string, string>): string | undefined {
  const slave = files.xtrabackup_slave_info ?? files.mariadb_backup_slave_info;
  const fromSlave = slave && /gtid_slave_pos\s*=\s*'([^']*)'/.exec(slave)?.[1];
  if (fromSlave !== undefined && fromSlave !== '') return fromSlave;
  const binlog = files.xtrabackup_binlog_info ?? files.mariadb_backup_binlog_info;
  if (binlog !== undefined) {
    const cols = binlog.trim().split(/\s+/);
    if (cols.length >= 3) return cols[2];
  }
  const info = files.xtrabackup_info ?? files.mariadb_backup_info;
  const g = info && /GTID of the last change '([^']*)'/.exec(info)?.[1];
  return g || (fromSlave ?? undefined);
}

/** from_lsn / to_lsn / last_lsn and backup_type of an xtrabackup_checkpoints text. */
export function parseCheckpoints(text: string | undefined): { type: string; fromLsn: string; toLsn: string; lastLsn: string } | undefined {
  if (!text) return undefined;
  const kv = Object.fromEntries(text.split('\n').map((l) => l.split('=').map((s) => s.trim())).filter((p) => p.length === 2));
  if (!kv.to_lsn) return undefined;
  return { type: kv.backup_type ?? '', fromLsn: kv.from_lsn ?? '0', toLsn: kv.to_lsn, lastLsn: kv.last_lsn ?? kv.to_lsn };
}
