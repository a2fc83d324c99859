/**
 * The binlog archive's lease against real stores: a local directory (link(2): a generation exists once) and a
 * real S3 server (VersityGW: PUT If-None-Match: *). Six archivers racing for a free lease: exactly one holds it,
 * the others are refused in one line (ArchiveLeaseHeld) naming it. Renewals write new generations (old ones
 * removed); a holder that stops renewing is taken over once its lease expired, and its next renewal or check
 * finds it lost; a released lease is taken at once; `archive stop`'s release (by archiver name) frees it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArchiveLeaseHolder, readLease, releaseLeaseOf } from '../../activities/backup/lease';
import { LocalDirStorage, S3Storage, type BackupStorage } from '../../activities/backup/storage';
import { LEASE_ID, type LeaseOwner } from '../../core/backup/lease';
import { HandoverError } from '../../core/errors';
import { startS3Server, type S3Server } from '../../sandbox/s3';
import { until } from '../helpers';

const BUCKET = 'handover-lease';
const owner = (name: string): LeaseOwner => ({ archiver: name, namespace: 'ns-test', token: `token-${name}`, session: `session-${name}-${Math.random()}`, host: 'test-host', pid: 4242 });

async function refusal(p: Promise<unknown>): Promise<HandoverError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(HandoverError);
  expect((e as HandoverError).type).toBe('ArchiveLeaseHeld');
  expect((e as Error).message).not.toContain('\n');
  return e as HandoverError;
}

describe('binlog archive lease in the store', () => {
  let s3: S3Server;
  let dir: string;
  const stores: Record<string, () => BackupStorage> = {};

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'handover-lease-'));
    s3 = await startS3Server({ name: 'lease' });
    await s3.createBucket(BUCKET);
    stores.local = () => new LocalDirStorage(dir);
    stores.s3 = () => new S3Storage({ type: 's3', bucket: BUCKET, prefix: 'leases', endpoint: s3.endpoint, forcePathStyle: true, credentials: { accessKeyId: { env: s3.accessKeyEnv }, secretAccessKey: { env: s3.secretKeyEnv } } });
  }, 30_000);
  afterAll(async () => {
    await s3?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const kind of ['local', 's3']) {
    it(`${kind}: one of six racing archivers holds it; a silent holder is taken over after expiry and finds out; release frees it`, async () => {
      const storage = stores[kind]();
      const cluster = `lease-${kind}`;
      const ttlMs = 1500;
      // Six at once on a free lease: the store lets exactly one create generation 1.
      const racers = ['a', 'b', 'c', 'd', 'e', 'f'].map((n) => owner(`arch-${n}`));
      const results = await Promise.allSettled(racers.map((o) => ArchiveLeaseHolder.acquire({ storage, cluster, owner: o, ttlMs })));
      const won = results.filter((r): r is PromiseFulfilledResult<ArchiveLeaseHolder> => r.status === 'fulfilled').map((r) => r.value);
      expect(won.length).toBe(1);
      const a = won[0];
      expect(a.took.why).toBe('free');
      for (const r of results) {
        if (r.status === 'rejected') {
          expect((r.reason as HandoverError).type).toBe('ArchiveLeaseHeld');
          expect((r.reason as Error).message).toContain(`archiver ${a.owner.archiver} (namespace ns-test) on test-host:4242`);
        }
      }
      // Renewals are new generations; the old ones are removed (three kept).
      for (let i = 0; i < 5; i++) await a.renew();
      expect(a.lease.generation).toBe(6);
      const files = await storage.listFiles(cluster, LEASE_ID);
      expect(files.length).toBeLessThanOrEqual(4);
      expect((await readLease(storage, cluster)).lease).toMatchObject({ generation: 6, owner: { archiver: a.owner.archiver } });

      // A live holder: another archiver is refused, naming it.
      const b = owner('arch-other');
      const e = await refusal(ArchiveLeaseHolder.acquire({ storage, cluster, owner: b, ttlMs }));
      expect(e.message).toMatch(new RegExp(`^refused: the binlog archive of ${cluster} is written by another archiver ${a.owner.archiver} \\(namespace ns-test\\) on test-host:4242, renewed [0-9.]+ s ago, expires in [0-9.]+ s; one archiver per cluster`));

      // The holder stops renewing (its worker died): once expired, taken over.
      await until('the lease expires', async () => Date.now() > Date.parse(a.lease.expiresAt), 5000, 50);
      const bh = await ArchiveLeaseHolder.acquire({ storage, cluster, owner: b, ttlMs });
      expect(bh.took).toMatchObject({ take: true, why: 'expired', previous: { owner: { archiver: a.owner.archiver } } });
      expect(bh.lease.generation).toBe(7);
      // The old holder finds out at its next renewal or check, before storing anything more.
      expect((await refusal(a.renew())).message).toMatch(new RegExp(`is no longer this archiver's \\(taken over by archiver arch-other`));
      await refusal(a.ensure({ verify: true }));
      await a.release(); // not its own any more: nothing happens
      expect((await readLease(storage, cluster)).lease).toMatchObject({ generation: 7, owner: { archiver: 'arch-other' } });
      // Another attempt of the same archiver (same token, new session) takes its own lease at once; the older attempt is fenced.
      const b2 = await ArchiveLeaseHolder.acquire({ storage, cluster, owner: { ...b, session: 'session-b2' }, ttlMs });
      expect(b2.took.why).toBe('ours');
      await refusal(bh.renew());

      // Released: the next archiver takes it at once.
      await b2.release();
      const c = await ArchiveLeaseHolder.acquire({ storage, cluster, owner: owner('arch-c'), ttlMs: 60_000 });
      expect(c.took.why).toBe('released');
      // `archive stop`: released by archiver name, only by its holder's.
      expect(await releaseLeaseOf(storage, cluster, { archiver: 'arch-nobody', namespace: 'ns-test' })).toBeUndefined();
      expect(await releaseLeaseOf(storage, cluster, { archiver: 'arch-c', namespace: 'ns-test' })).toMatchObject({ owner: { archiver: 'arch-c' } });
      expect((await readLease(storage, cluster)).lease).toMatchObject({ released: true });
      expect((await ArchiveLeaseHolder.acquire({ storage, cluster, owner: owner('arch-d'), ttlMs })).took.why).toBe('released');
    }, 30_000);
  }
});
