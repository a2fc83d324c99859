import { describe, expect, it } from 'vitest';
import { mbstreamTap, parseCheckpoints, physicalGtid } from '../../activities/backup/mbstream';
import { backupChain, chooseIncrementalBase, chooseProvisionBackup, planRetention, type BackupListing } from '../../core/backup/decide';
import { parseManifest } from '../../core/backup/manifest';
import { parseInventory } from '../../inventory/load';

const b = (id: string, state: BackupListing['state'], base?: string): BackupListing & { method: 'physical' } => ({ id, startedAt: `2026-01-${id}T00:00:00.000Z`, state, method: 'physical', ...(base ? { base } : {}) });

describe('chain-aware retention', () => {
  it('a kept incremental keeps its base and the base of that, down to the full; unrelated old fulls go', () => {
    const plan = planRetention([b('01', 'good'), b('02', 'good'), b('03', 'good', '02'), b('04', 'good', '03')], 1);
    expect(plan.keep.sort()).toEqual(['02', '03', '04']);
    expect(plan.delete.map((d) => d.id)).toEqual(['01']);
  });
  it('an incremental still being taken (newer than the newest good) keeps its base', () => {
    const plan = planRetention([b('01', 'good'), b('02', 'good'), b('03', 'incomplete', '01')], 1);
    expect(plan.keep.sort()).toEqual(['01', '02', '03']);
  });
  it('once no kept backup depends on a full, it is deleted like any other', () => {
    const plan = planRetention([b('01', 'good'), b('02', 'good', '01'), b('03', 'good'), b('04', 'good')], 2);
    expect(plan.keep.sort()).toEqual(['03', '04']);
    expect(plan.delete.map((d) => d.id).sort()).toEqual(['01', '02']);
  });
});

describe('incremental base and chains', () => {
  it('the newest good physical backup with a whole chain; none: a full', () => {
    expect(chooseIncrementalBase([b('01', 'good'), b('02', 'good', '01'), b('03', 'failed', '02')])).toEqual({ base: '02', chain: ['01', '02'] });
    expect(chooseIncrementalBase([b('01', 'failed'), b('02', 'good', '01')])).toHaveProperty('none');
    expect(chooseIncrementalBase([{ ...b('01', 'good'), method: 'logical' } as never])).toHaveProperty('none');
    expect(chooseIncrementalBase([])).toHaveProperty('none');
  });
  it('a chain names a missing or bad base', () => {
    const byId = (xs: BackupListing[]) => new Map(xs.map((x) => [x.id, x]));
    expect(backupChain('03', byId([b('01', 'good'), b('02', 'good', '01'), b('03', 'unverified', '02')]))).toEqual(['01', '02', '03']);
    expect(backupChain('02', byId([b('02', 'good', '01')]))).toMatch(/base 01 of 02 is missing/);
    expect(backupChain('02', byId([b('01', 'failed'), b('02', 'good', '01')]))).toMatch(/01 in the chain of 02 is failed/);
  });
  it('provisioning: the newest good physical MariaDB backup, or the one asked for; logical refused', () => {
    const xs = [
      { id: 'a', state: 'good' as const, startedAt: '2026-01-01', engine: 'mysql' as const, method: 'physical' as const },
      { id: 'b', state: 'good' as const, startedAt: '2026-01-02', engine: 'mysql' as const, method: 'logical' as const },
      { id: 'c', state: 'failed' as const, startedAt: '2026-01-03', engine: 'mysql' as const, method: 'physical' as const },
    ];
    expect(chooseProvisionBackup(xs)).toEqual({ id: 'a' });
    expect(chooseProvisionBackup(xs, 'b')).toMatchObject({ refusal: expect.stringMatching(/not a physical/) });
    expect(chooseProvisionBackup(xs, 'c')).toMatchObject({ refusal: expect.stringMatching(/failed/) });
    expect(chooseProvisionBackup(xs, 'zz')).toMatchObject({ refusal: 'no backup zz' });
    expect(chooseProvisionBackup([xs[1]])).toHaveProperty('refusal');
  });
});

function chunk(path: string, payload: Buffer | undefined): Buffer {
  const p = Buffer.from(path);
  const head = Buffer.alloc(14);
  head.write('XBSTCK01', 0, 'latin1');
  head[8] = 0;
  head[9] = (payload ? 'P' : 'E').charCodeAt(0);
  head.writeUInt32LE(p.length, 10);
  if (!payload) return Buffer.concat([head, p]);
  const meta = Buffer.alloc(20);
  meta.writeBigUInt64LE(BigInt(payload.length), 0);
  return Buffer.concat([head, p, meta, payload]);
}

describe('mbstream metadata while it streams', () => {
  const stream = Buffer.concat([
    chunk('ibdata1', Buffer.alloc(100_000, 7)),
    chunk('ibdata1', undefined),
    chunk('xtrabackup_binlog_info', Buffer.from('binlog.000001\t2565\t0-1-12\n')),
    chunk('xtrabackup_slave_info', Buffer.from("SET GLOBAL gtid_slave_pos = '0-1-12';\nCHANGE MASTER TO master_use_gtid = slave_pos;\n")),
    chunk('xtrabackup_checkpoints', Buffer.from('backup_type = full-backuped\nfrom_lsn = 0\nto_lsn = 44420\nlast_lsn = 55002\n')),
  ]);
  it('reads the metadata files whatever the chunking, skipping data payloads', () => {
    for (const step of [1, 7, 4096, stream.length]) {
      const t = mbstreamTap();
      for (let i = 0; i < stream.length; i += step) t.push(stream.subarray(i, i + step));
      expect(t.meta.error).toBeUndefined();
      expect(t.meta.chunks).toBe(5);
      expect(Object.keys(t.meta.files).sort()).toEqual(['xtrabackup_binlog_info', 'xtrabackup_checkpoints', 'xtrabackup_slave_info']);
      expect(physicalGtid(t.meta.files)).toBe('0-1-12');
      expect(parseCheckpoints(t.meta.files.xtrabackup_checkpoints)).toEqual({ type: 'full-backuped', fromLsn: '0', toLsn: '44420', lastLsn: '55002' });
    }
  });
  it('keeps copies: chunks pushed from one reused buffer (as the take reads the tool) give the same files', () => {
    for (const step of [13, 4096, 65536]) {
      const t = mbstreamTap();
      const reused = Buffer.alloc(step);
      for (let i = 0; i < stream.length; i += step) {
        const n = stream.copy(reused, 0, i, Math.min(stream.length, i + step));
        t.push(reused.subarray(0, n));
        reused.fill(0xff); // the next read overwrites it
      }
      expect(t.meta.error).toBeUndefined();
      expect(t.meta.chunks).toBe(5);
      expect(physicalGtid(t.meta.files)).toBe('0-1-12');
      expect(parseCheckpoints(t.meta.files.xtrabackup_checkpoints)?.lastLsn).toBe('55002');
    }
  });
  it('the GTID from the binlog info when there is no slave info (a primary source); garbage is an error', () => {
    expect(physicalGtid({ xtrabackup_binlog_info: 'binlog.000003\t400\t0-1-7,1-2-9\n' })).toBe('0-1-7,1-2-9');
    const t = mbstreamTap();
    t.push(Buffer.from('-- MariaDB dump 10.19\n'.repeat(3)));
    expect(t.meta.error).toMatch(/not an mbstream/);
  });
});

describe('physical manifests and inventory', () => {
  const m = {
    format: 1,
    id: 'db-1-20261123T080503007Z',
    cluster: 'db-1',
    engine: 'mysql',
    node: 'db-1-2',
    role: 'replica',
    fromPrimary: false,
    engineVersion: '10.11.19-MariaDB',
    position: { gtid: '0-1-42' },
    artifact: { file: 'backup.mbstream.zst', size: 100, sha256: 'a'.repeat(64), compression: 'zstd' },
    rawSize: 1000,
    startedAt: '2026-11-23T08:05:03.007Z',
    endedAt: '2026-11-23T08:05:04.000Z',
    tool: { name: 'mariadb-backup', args: ['--backup'], exitStatus: 0 },
    method: 'physical',
    physical: { kind: 'full', fromLsn: '0', toLsn: '10', lastLsn: '12', checkpoints: 'to_lsn = 10' },
    content: { mysql: { tables: [], consistent: true } },
  };
  it('a full validates; an incremental must name its base, and only an incremental may', () => {
    expect(parseManifest(JSON.stringify(m))).toHaveProperty('manifest');
    expect(parseManifest(JSON.stringify({ ...m, physical: { ...m.physical, kind: 'incremental' } }))).toHaveProperty('problems');
    expect(parseManifest(JSON.stringify({ ...m, physical: { ...m.physical, kind: 'incremental' }, base: 'db-1-20261122T080503007Z' }))).toHaveProperty('manifest');
    expect(parseManifest(JSON.stringify({ ...m, base: 'db-1-20261122T080503007Z' }))).toHaveProperty('problems');
    expect(parseManifest(JSON.stringify({ ...m, physical: undefined }))).toHaveProperty('problems');
  });
  it('backup.method: logical by default; physical only for engine: mysql', () => {
    const inv = (engine: string, method?: string) =>
      `clusters:\n  - name: c\n    engine: ${engine}\n${engine === 'mysql' ? '    flavor: mariadb\n    credentials: { username: h, password: { env: P } }\n    replicationCredentials: { username: r, password: { env: P } }\n' : ''}    backup: { keep: 2${method ? `, method: ${method}` : ''} }\n    nodes: [ { id: n1, host: 127.0.0.1, port: 1 } ]\n`;
    expect(parseInventory(inv('mysql')).clusters[0].backup?.method).toBe('logical');
    expect(parseInventory(inv('mysql', 'physical')).clusters[0].backup?.method).toBe('physical');
    expect(() => parseInventory(inv('redis', 'physical'))).toThrow(/method: physical is mariadb-backup/);
  });
});
