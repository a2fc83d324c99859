import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { compressionOf } from '../../activities/backup/context';
import { openStorage } from '../../activities/backup/storage';
import { findTool, redisServerFor, tool } from '../../activities/backup/tools';
import { backupId, backupScheduleId, backupState, chooseBackupSource, compareMysqlContent, compareRedisContent, planRetention, type BackupListing, type BackupSourceView } from '../../core/backup/decide';
import { parseManifest } from '../../core/backup/manifest';
import { doltBackupSync, doltBackupSyncUrl, doltPromotion, DOLT_CLUSTER_ROLE_QUERY } from '../../core/dolt/sql';
import { parseInventory } from '../../inventory/load';

const primary: BackupSourceView = { node: 'p', reachable: true, role: 'primary', lag: 0 };
const rep = (node: string, lag: number, more: Partial<BackupSourceView> = {}): BackupSourceView => ({ node, reachable: true, role: 'replica', replicaOf: 'p', replicating: true, lag, ...more });

describe('chooseBackupSource', () => {
  it('picks the in-sync replica with the least lag, never the primary', () => {
    const c = chooseBackupSource([primary, rep('b', 50), rep('a', 10)], { maxLag: 100 });
    expect(c).toMatchObject({ node: 'a', role: 'replica', fromPrimary: false });
  });
  it('ties broken by name', () => {
    expect(chooseBackupSource([primary, rep('b', 0), rep('a', 0)], { maxLag: 100 })).toMatchObject({ node: 'a' });
  });
  it('rejects lagging, unlinked, unreachable and foreign replicas with reasons, then falls back to the primary flagged', () => {
    const c = chooseBackupSource(
      [primary, rep('lag', 500), rep('down', 0, { replicating: false }), { node: 'gone', reachable: false, error: 'ECONNREFUSED' }, rep('other', 0, { replicaOf: 'x' })],
      { maxLag: 100 },
    );
    expect(c).toMatchObject({ node: 'p', role: 'primary', fromPrimary: true });
    if (!('node' in c)) throw new Error('refused');
    const reasons = Object.fromEntries(c.rejected.map((r) => [r.node, r.reason]));
    expect(reasons.lag).toMatch(/lags 500/);
    expect(reasons.down).toMatch(/link down/);
    expect(reasons.gone).toMatch(/unreachable/);
    expect(reasons.other).toMatch(/not from the primary/);
    expect(c.reason).toMatch(/no healthy in-sync replica/);
  });
  it('refuses without a primary fallback, or with two primaries', () => {
    expect(chooseBackupSource([primary, rep('a', 500)], { maxLag: 10, allowPrimary: false })).toHaveProperty('refusal');
    expect(chooseBackupSource([primary, { ...primary, node: 'q' }], { maxLag: 10 })).toHaveProperty('refusal');
    expect(chooseBackupSource([{ node: 'x', reachable: false }], { maxLag: 10 })).toHaveProperty('refusal');
  });
  it('honours a requested node when it qualifies', () => {
    expect(chooseBackupSource([primary, rep('a', 0), rep('b', 5)], { maxLag: 10, node: 'b' })).toMatchObject({ node: 'b', fromPrimary: false });
    expect(chooseBackupSource([primary, rep('a', 0)], { maxLag: 10, node: 'p' })).toMatchObject({ node: 'p', fromPrimary: true });
    expect(chooseBackupSource([primary, rep('a', 99)], { maxLag: 10, node: 'a' })).toHaveProperty('refusal');
  });
});

describe('retention', () => {
  const b = (id: string, state: BackupListing['state']): BackupListing => ({ id, startedAt: `2026-01-${id}T00:00:00.000Z`, state });
  it('keeps the N newest good, deletes older ones and older failed/incomplete ones', () => {
    const plan = planRetention([b('01', 'good'), b('02', 'failed'), b('03', 'good'), b('04', 'incomplete'), b('05', 'good'), b('06', 'good')], 2);
    expect(plan.keep.sort()).toEqual(['05', '06']);
    expect(plan.delete.map((d) => d.id).sort()).toEqual(['01', '02', '03', '04']);
  });
  it('never deletes anything newer than the newest good backup (it may be in progress)', () => {
    const plan = planRetention([b('01', 'good'), b('02', 'good'), b('03', 'incomplete'), b('04', 'unverified')], 1);
    expect(plan.keep.sort()).toEqual(['02', '03', '04']);
    expect(plan.delete.map((d) => d.id)).toEqual(['01']);
  });
  it('deletes nothing while no backup is verified', () => {
    expect(planRetention([b('01', 'unverified'), b('02', 'failed'), b('03', 'incomplete')], 1).delete).toEqual([]);
  });
  it('never deletes the protected ID and rejects keep < 1', () => {
    expect(planRetention([b('01', 'good'), b('02', 'good')], 1, '01').delete).toEqual([]);
    expect(() => planRetention([], 0)).toThrow(/keep/);
  });
  it('state from manifest and verification', () => {
    expect(backupState({ hasManifest: false })).toBe('incomplete');
    expect(backupState({ hasManifest: false, verification: { ok: true } })).toBe('incomplete');
    expect(backupState({ hasManifest: true })).toBe('unverified');
    expect(backupState({ hasManifest: true, verification: { ok: false } })).toBe('failed');
    expect(backupState({ hasManifest: true, verification: { ok: true } })).toBe('good');
  });
});

describe('ids', () => {
  it('backup IDs sort by time and schedule IDs derive from the cluster', () => {
    const a = backupId('cache-a', Date.UTC(2026, 10, 23, 8, 5, 3, 7));
    expect(a).toBe('cache-a-20261123T080503007Z');
    expect(backupId('cache-a', Date.UTC(2026, 10, 23, 8, 5, 3, 8)) > a).toBe(true);
    expect(backupScheduleId('cache-a')).toBe('handover-backup-cache-a');
  });
});

const goodManifest = () => ({
  format: 1,
  id: 'db-1-20261123T080503007Z',
  cluster: 'db-1',
  engine: 'mysql',
  node: 'db-1-2',
  role: 'replica',
  fromPrimary: false,
  engineVersion: '10.11.19-MariaDB',
  position: { gtid: '0-1-42' },
  artifact: { file: 'dump.sql.gz', size: 100, sha256: 'a'.repeat(64), compression: 'gzip' },
  rawSize: 1000,
  startedAt: '2026-11-23T08:05:03.007Z',
  endedAt: '2026-11-23T08:05:04.000Z',
  tool: { name: 'mariadb-dump', args: ['--single-transaction'], exitStatus: 0 },
  content: { mysql: { tables: [{ table: 's.t', rows: 3, checksum: '123' }], consistent: true } },
});

describe('manifest validation', () => {
  it('accepts a well-formed manifest', () => {
    expect(parseManifest(JSON.stringify(goodManifest()))).toHaveProperty('manifest');
  });
  it('rejects a non-zero exit status, a bad checksum, a foreign id, missing content, unknown fields and broken JSON', () => {
    const bad = (f: (m: ReturnType<typeof goodManifest>) => void) => {
      const m = goodManifest();
      f(m);
      const r = parseManifest(JSON.stringify(m));
      expect(r).toHaveProperty('problems');
      return (r as { problems: string[] }).problems.join('; ');
    };
    expect(bad((m) => (m.tool.exitStatus = 2))).toMatch(/exited with 2/);
    expect(bad((m) => (m.artifact.sha256 = 'xyz'))).toMatch(/sha256/);
    expect(bad((m) => (m.id = 'other-20261123T080503007Z'))).toMatch(/cluster db-1/);
    expect(bad((m) => delete (m.content as { mysql?: unknown }).mysql)).toMatch(/row counts/);
    expect(bad((m) => Object.assign(m, { extra: 1 }))).toMatch(/extra|Unrecognized/);
    expect(parseManifest('{"format":1')).toHaveProperty('problems');
  });
});

describe('content comparison', () => {
  it('redis: DBSIZE then every sampled key', () => {
    const want = { dbsize: 2, sample: { a: 'x'.repeat(64), b: 'y'.repeat(64) } };
    expect(compareRedisContent(want, { dbsize: 2, sample: { a: 'x'.repeat(64), b: 'y'.repeat(64) } })).toBeUndefined();
    expect(compareRedisContent(want, { dbsize: 3, sample: {} })).toMatch(/DBSIZE 3/);
    expect(compareRedisContent(want, { dbsize: 2, sample: { a: 'x'.repeat(64), b: null } })).toMatch(/"b" missing/);
    expect(compareRedisContent(want, { dbsize: 2, sample: { a: 'z'.repeat(64), b: 'y'.repeat(64) } })).toMatch(/"a" differs/);
  });
  it('mysql: rows and CHECKSUM TABLE per table, no extra tables', () => {
    const want = [{ table: 's.t', rows: 3, checksum: '9' }];
    expect(compareMysqlContent(want, [{ table: 's.t', rows: 3, checksum: '9' }])).toBeUndefined();
    expect(compareMysqlContent(want, [{ table: 's.t', rows: 2, checksum: '9' }])).toMatch(/2 rows/);
    expect(compareMysqlContent(want, [{ table: 's.t', rows: 3, checksum: '8' }])).toMatch(/CHECKSUM TABLE 8/);
    expect(compareMysqlContent(want, [])).toMatch(/missing/);
    expect(compareMysqlContent(want, [...want, { table: 's.u', rows: 0, checksum: '0' }])).toMatch(/s\.u/);
  });
});

describe('dolt SQL builders (core/dolt/sql.ts)', () => {
  it('backup sync sends CALL dolt_backup with bound parameters', () => {
    expect(doltBackupSync('nightly')).toEqual({ sql: 'CALL dolt_backup(?, ?)', params: ['sync', 'nightly'] });
    expect(doltBackupSyncUrl('file:///var/backups/db')).toEqual({ sql: 'CALL dolt_backup(?, ?)', params: ['sync-url', 'file:///var/backups/db'] });
    expect(() => doltBackupSync("x'); DROP DATABASE y; --")).toThrow(/backup name/);
    expect(() => doltBackupSyncUrl('/tmp/x')).toThrow(/url/);
  });
  it('promotion uses an epoch above every epoch seen, and demotes the others at that epoch', () => {
    const p = doltPromotion({ seenEpochs: [3, 7, 5], standbys: ['b', 'c'] });
    expect(p.epoch).toBe(8);
    expect(p.promote).toEqual({ sql: 'CALL dolt_assume_cluster_role(?, ?)', params: ['primary', 8] });
    expect(p.demote).toEqual([
      { node: 'b', statement: { sql: 'CALL dolt_assume_cluster_role(?, ?)', params: ['standby', 8] } },
      { node: 'c', statement: { sql: 'CALL dolt_assume_cluster_role(?, ?)', params: ['standby', 8] } },
    ]);
    expect(doltPromotion({ seenEpochs: [], standbys: [] }).epoch).toBe(1);
    expect(() => doltPromotion({ seenEpochs: [-1], standbys: [] })).toThrow(/epoch/);
    expect(DOLT_CLUSTER_ROLE_QUERY).toMatch(/dolt_cluster_role_epoch/);
  });
  it('inventory accepts engine: dolt with a backup block, and needs the automation credentials', () => {
    const lines = ['clusters:', '  - name: dolt-a', '    engine: dolt', '    backup: { keep: 3, doltBackupName: nightly }', '    nodes:', '      - { id: d1, host: 127.0.0.1, port: 3306 }'];
    const inv = parseInventory([...lines, '    credentials: { username: handover, password: { env: DOLT_PW } }'].join('\n'));
    expect(inv.clusters[0]).toMatchObject({ engine: 'dolt', backup: { keep: 3, doltBackupName: 'nightly' } });
    expect(() => parseInventory(lines.join('\n'))).toThrow(/engine: dolt needs credentials/);
    expect(() => parseInventory([...lines, '    topology: sentinel', '    credentials: { username: h, password: { env: P } }'].join('\n'))).toThrow(/topology/);
  });
});

describe('backup storage in the inventory', () => {
  const inv = (storage: string) => ['clusters:', '  - name: c', '    engine: redis', `    backup: { storage: ${storage} }`, '    nodes:', '      - { id: n1, host: 127.0.0.1, port: 6379 }'].join('\n');

  it('s3: defaults (region us-east-1, virtual-hosted style, 8 MiB parts), credentials as secret references', () => {
    const c = parseInventory(inv('{ type: s3, bucket: db-backups, prefix: prod/handover, endpoint: "https://s3.internal:9000", credentials: { accessKeyId: { env: AK }, secretAccessKey: { file: /etc/sk } } }')).clusters[0];
    expect(c.backup?.storage).toEqual({
      type: 's3',
      bucket: 'db-backups',
      prefix: 'prod/handover',
      endpoint: 'https://s3.internal:9000',
      region: 'us-east-1',
      forcePathStyle: false,
      partSizeMiB: 8,
      credentials: { accessKeyId: { env: 'AK' }, secretAccessKey: { file: '/etc/sk' } },
    });
    // Credentials are read when the store is opened, on the worker: a missing one is refused there, by name.
    expect(() => openStorage(c, {})).toThrow(/MissingCredential|accessKeyId: environment variable AK is not set/);
    const sk = path.join(mkdtempSync(path.join(os.tmpdir(), 'handover-sk-')), 'sk');
    writeFileSync(sk, 'secret\n', { mode: 0o600 });
    const withFile = parseInventory(inv(`{ type: s3, bucket: db-backups, prefix: prod/handover, endpoint: "https://s3.internal:9000", credentials: { accessKeyId: { env: AK }, secretAccessKey: { file: ${sk} } } }`)).clusters[0];
    expect(openStorage(withFile, { AK: 'ak' }).location).toBe('s3://db-backups/prod/handover/ at https://s3.internal:9000');
    rmSync(path.dirname(sk), { recursive: true, force: true });
  });

  it('s3: refused with the field named: bad bucket, prefix with a leading slash, a key written in the inventory, parts under 5 MiB, unknown fields', () => {
    expect(() => parseInventory(inv('{ type: s3, bucket: Bad_Bucket }'))).toThrow(/bucket/);
    expect(() => parseInventory(inv('{ type: s3, bucket: ok-bucket, prefix: /abs }'))).toThrow(/prefix/);
    expect(() => parseInventory(inv('{ type: s3, bucket: ok-bucket, credentials: { accessKeyId: AKIA123, secretAccessKey: { env: SK } } }'))).toThrow(/accessKeyId/);
    expect(() => parseInventory(inv('{ type: s3, bucket: ok-bucket, partSizeMiB: 1 }'))).toThrow(/partSizeMiB/);
    expect(() => parseInventory(inv('{ type: s3, bucket: ok-bucket, dir: /x }'))).toThrow(/dir/);
    expect(() => parseInventory(inv('{ type: gcs, bucket: ok-bucket }'))).toThrow(/type/);
  });

  it('local: the directory; none: HANDOVER_BACKUP_DIR, else refused', () => {
    const local = parseInventory(inv('{ type: local, dir: /srv/b }')).clusters[0];
    expect(openStorage(local).location).toBe('local:/srv/b');
    expect(openStorage({ name: 'c', backup: undefined }, { HANDOVER_BACKUP_DIR: '/var/b' }).location).toBe('local:/var/b');
    expect(() => openStorage({ name: 'c', backup: undefined }, {})).toThrow(/no backup storage/);
  });
});

describe('where backup tools are found', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'handover-tools-'));
  const exe = (name: string) => {
    const p = path.join(dir, name);
    writeFileSync(p, '#!/bin/sh\n', { mode: 0o755 });
    return p;
  };
  it('its HANDOVER_* variable first, then PATH, then HANDOVER_TOOLS_DIR; missing: an error naming the variable', () => {
    const onPath = exe('zstd');
    expect(findTool('zstd', { HANDOVER_ZSTD: '/opt/zstd', PATH: dir })).toBe('/opt/zstd');
    expect(findTool('zstd', { PATH: dir })).toBe(onPath);
    const toolsDir = mkdtempSync(path.join(os.tmpdir(), 'handover-tools-dir-'));
    writeFileSync(path.join(toolsDir, 'valkey-server'), '#!/bin/sh\n', { mode: 0o755 });
    expect(findTool('valkey-server', { PATH: dir, HANDOVER_TOOLS_DIR: toolsDir })).toBe(path.join(toolsDir, 'valkey-server'));
    expect(() => tool('valkey-server', { PATH: dir, HANDOVER_TOOLS_DIR: dir })).toThrow(/HANDOVER_VALKEY_SERVER/);
    expect(redisServerFor('valkey 9.1.2', { PATH: dir, HANDOVER_VALKEY_SERVER: '/x/valkey-server' })).toBe('/x/valkey-server');
    rmSync(toolsDir, { recursive: true, force: true });
  });
  it('compression: the inventory choice, else zstd when the zstd binary is found, else gzip', () => {
    const withZstd = mkdtempSync(path.join(os.tmpdir(), 'handover-tools-z-'));
    writeFileSync(path.join(withZstd, 'zstd'), '#!/bin/sh\n', { mode: 0o755 });
    const none = mkdtempSync(path.join(os.tmpdir(), 'handover-tools-none-'));
    expect(compressionOf({ backup: undefined }, { PATH: withZstd })).toBe('zstd');
    expect(compressionOf({ backup: undefined }, { PATH: none, HANDOVER_TOOLS_DIR: none })).toBe('gzip');
    expect(compressionOf({ backup: { keep: 3, method: 'logical', compression: 'gzip' } }, { PATH: withZstd })).toBe('gzip');
    expect(compressionOf({ backup: { keep: 3, method: 'logical', compression: 'zstd' } }, { PATH: none, HANDOVER_TOOLS_DIR: none })).toBe('zstd');
    rmSync(withZstd, { recursive: true, force: true });
    rmSync(none, { recursive: true, force: true });
  });
});
