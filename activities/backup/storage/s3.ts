/**
 * Backups in an S3-compatible object store (AWS S3, VersityGW, MinIO, Ceph RGW, ...), so that every worker, on
 * any host, lists, verifies and restores what any other took: nothing is read from a worker's own disk.
 *
 *   s3://<bucket>/<prefix>/<cluster>/<backup-id>/<artifact> | manifest.json | verification.json
 *
 * The artifact is streamed with a multipart upload (@aws-sdk/lib-storage; parts of `partSizeMiB`, two in
 * flight): memory holds at most a few parts, the local disk nothing. An object exists only once its upload
 * completed, so a half-uploaded artifact is never visible under its name; a failed upload is aborted by the
 * uploader, and one whose worker died (SIGKILL, host lost) is aborted by the retried take (clearPartial lists
 * the multipart uploads under the backup's prefix and aborts each). A backup with only an upload in progress
 * is listed `incomplete`, so retention aborts one whose take was never retried. The manifest is written last.
 *
 * Credentials: the inventory names environment variables or files (accessKeyId, secretAccessKey, optional
 * sessionToken), read on the worker; without them the AWS SDK's default chain applies (AWS_ACCESS_KEY_ID /
 * AWS_SECRET_ACCESS_KEY, ~/.aws, instance or pod roles).
 */
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  NoSuchKey,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { resolveSecret } from '../../../inventory/secrets';
import type { S3StorageSpec } from '../../../inventory/schema';
import { checkNames, describeBackup, newestFirst, startedAtFromId, type BackupStorage, type PutOptions, type StoredBackup } from './common';

const clients = new Map<string, S3Client>();

function isMissing(e: unknown): boolean {
  return e instanceof NoSuchKey || (e instanceof S3ServiceException && (e.name === 'NoSuchKey' || e.name === 'NotFound' || e.$metadata?.httpStatusCode === 404));
}

export class S3Storage implements BackupStorage {
  readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly partSize: number;

  constructor(
    readonly spec: S3StorageSpec,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    this.bucket = spec.bucket;
    this.prefix = (spec.prefix ?? '').replace(/^\/+|\/+$/g, '');
    this.partSize = (spec.partSizeMiB ?? 8) * 1024 * 1024;
    const c = spec.credentials;
    const credentials = c
      ? {
          accessKeyId: resolveSecret(c.accessKeyId, 'backup.storage.credentials.accessKeyId', env)!,
          secretAccessKey: resolveSecret(c.secretAccessKey, 'backup.storage.credentials.secretAccessKey', env)!,
          ...(c.sessionToken ? { sessionToken: resolveSecret(c.sessionToken, 'backup.storage.credentials.sessionToken', env) } : {}),
        }
      : undefined;
    // One client (and its connection pool) per endpoint and credentials, shared by every activity of the worker.
    const key = createHash('sha256')
      .update(JSON.stringify([spec.endpoint, spec.region, spec.forcePathStyle, credentials]))
      .digest('hex');
    let client = clients.get(key);
    if (!client) {
      client = new S3Client({
        region: spec.region ?? 'us-east-1',
        ...(spec.endpoint ? { endpoint: spec.endpoint } : {}),
        forcePathStyle: spec.forcePathStyle ?? false,
        ...(credentials ? { credentials } : {}),
        maxAttempts: 4,
      });
      clients.set(key, client);
    }
    this.client = client;
  }

  get location(): string {
    return `s3://${this.bucket}/${this.prefix ? `${this.prefix}/` : ''}${this.spec.endpoint ? ` at ${this.spec.endpoint}` : ''}`;
  }

  private base(cluster: string, id?: string): string {
    checkNames(cluster, id);
    return [this.prefix, cluster, id].filter(Boolean).join('/') + '/';
  }

  private key(cluster: string, id: string, file: string): string {
    checkNames(cluster, id, file);
    return this.base(cluster, id) + file;
  }

  /** Every key under a prefix (paginated). */
  private async keys(prefix: string): Promise<string[]> {
    const out: string[] = [];
    let token: string | undefined;
    do {
      const r = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }));
      for (const o of r.Contents ?? []) if (o.Key) out.push(o.Key);
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
    return out;
  }

  private async text(key: string): Promise<string | undefined> {
    try {
      const r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      return await r.Body!.transformToString('utf8');
    } catch (e) {
      if (isMissing(e)) return undefined;
      throw e;
    }
  }

  async list(cluster: string): Promise<StoredBackup[]> {
    const base = this.base(cluster);
    const ids = new Set<string>();
    let token: string | undefined;
    do {
      const r = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: base, Delimiter: '/', ContinuationToken: token }));
      for (const p of r.CommonPrefixes ?? []) {
        const id = p.Prefix?.slice(base.length).replace(/\/$/, '');
        if (id && startedAtFromId(id)) ids.add(id);
      }
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
    // A take whose upload has not completed (running, or its worker died) has no object yet: listed
    // `incomplete` from its multipart upload, so retention can abort an abandoned one.
    for (const u of await this.uploadsInProgress(base)) {
      const id = u.key.slice(base.length).split('/')[0];
      if (id && startedAtFromId(id)) ids.add(id);
    }
    const out: StoredBackup[] = [];
    for (const id of ids) {
      const b = await this.get(cluster, id);
      if (b) out.push(b);
    }
    return out.sort(newestFirst);
  }

  async get(cluster: string, id: string): Promise<StoredBackup | undefined> {
    if (!startedAtFromId(id)) return undefined;
    const [mText, vText] = await Promise.all([this.text(this.key(cluster, id, 'manifest.json')), this.text(this.key(cluster, id, 'verification.json'))]);
    let anything = mText !== undefined || vText !== undefined;
    if (!anything) {
      const r = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.base(cluster, id), MaxKeys: 1 }));
      anything = (r.KeyCount ?? r.Contents?.length ?? 0) > 0 || (await this.uploadsInProgress(this.base(cluster, id))).length > 0;
    }
    return describeBackup(id, mText, vText, anything);
  }

  async putStream(cluster: string, id: string, file: string, source: Readable, o: PutOptions = {}): Promise<void> {
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key: this.key(cluster, id, file), Body: source, ContentType: 'application/octet-stream' },
      partSize: this.partSize,
      queueSize: 2,
      leavePartsOnError: false, // a failed upload is aborted here; one whose worker died, by the retry's clearPartial
    });
    upload.on('httpUploadProgress', (p) => {
      if (p.loaded !== undefined) o.onStored?.(p.loaded);
    });
    // A source that fails (the tool exited non-zero) must fail the upload even when the uploader is between reads.
    const failed = new Promise<never>((_, reject) => source.once('error', reject));
    failed.catch(() => undefined);
    try {
      await Promise.race([upload.done(), failed]);
    } catch (e) {
      await upload.abort().catch(() => undefined);
      await this.clearPartialKey(this.key(cluster, id, file)).catch(() => undefined);
      throw e;
    }
  }

  async putJson(cluster: string, id: string, file: string, value: unknown): Promise<void> {
    await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.key(cluster, id, file), Body: JSON.stringify(value, null, 2) + '\n', ContentType: 'application/json' }));
  }

  async putJsonIfAbsent(cluster: string, id: string, file: string, value: unknown): Promise<boolean> {
    try {
      await this.client.send(
        new PutObjectCommand({ Bucket: this.bucket, Key: this.key(cluster, id, file), Body: JSON.stringify(value, null, 2) + '\n', ContentType: 'application/json', IfNoneMatch: '*' }),
      );
      return true;
    } catch (e) {
      // 412: the object exists; 409: a concurrent conditional write of the same key won (AWS S3).
      const code = e instanceof S3ServiceException ? e.$metadata?.httpStatusCode : undefined;
      if (code === 412 || code === 409 || (e as Error).name === 'PreconditionFailed' || (e as Error).name === 'ConditionalRequestConflict') return false;
      throw e;
    }
  }

  async listFiles(cluster: string, id: string): Promise<string[]> {
    const base = this.base(cluster, id);
    return (await this.keys(base)).map((k) => k.slice(base.length)).filter((n) => n && !n.includes('/')).sort();
  }

  async removeFile(cluster: string, id: string, file: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.key(cluster, id, file) }));
  }

  readText(cluster: string, id: string, file: string): Promise<string | undefined> {
    return this.text(this.key(cluster, id, file));
  }

  async stat(cluster: string, id: string, file: string): Promise<{ size: number } | undefined> {
    try {
      const r = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.key(cluster, id, file) }));
      return { size: Number(r.ContentLength ?? 0) };
    } catch (e) {
      if (isMissing(e)) return undefined;
      throw e;
    }
  }

  readStream(cluster: string, id: string, file: string): Readable {
    const client = this.client;
    const params = { Bucket: this.bucket, Key: this.key(cluster, id, file) };
    async function* body() {
      const r = await client.send(new GetObjectCommand(params));
      for await (const chunk of r.Body as Readable) yield chunk as Buffer;
    }
    return Readable.from(body(), { objectMode: false });
  }

  /** The multipart uploads in progress under `prefix`: [key, uploadId]. */
  async uploadsInProgress(prefix: string): Promise<{ key: string; uploadId: string }[]> {
    const out: { key: string; uploadId: string }[] = [];
    let keyMarker: string | undefined;
    let idMarker: string | undefined;
    for (;;) {
      const r = await this.client.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: prefix, KeyMarker: keyMarker, UploadIdMarker: idMarker }));
      for (const u of r.Uploads ?? []) if (u.Key && u.UploadId && u.Key.startsWith(prefix)) out.push({ key: u.Key, uploadId: u.UploadId });
      if (!r.IsTruncated) return out;
      keyMarker = r.NextKeyMarker;
      idMarker = r.NextUploadIdMarker;
    }
  }

  private async clearPartialKey(prefix: string): Promise<number> {
    const ups = await this.uploadsInProgress(prefix);
    for (const u of ups) await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: u.key, UploadId: u.uploadId }));
    return ups.length;
  }

  /** Abort every multipart upload under the backup's prefix (left by a worker that died mid-upload). */
  clearPartial(cluster: string, id: string): Promise<number> {
    return this.clearPartialKey(this.base(cluster, id));
  }

  async remove(cluster: string, id: string): Promise<void> {
    // The verification and the manifest go first: an interrupted removal leaves an "incomplete" backup, never a "good" one.
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.key(cluster, id, 'verification.json') }));
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.key(cluster, id, 'manifest.json') }));
    for (const k of await this.keys(this.base(cluster, id))) await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: k }));
    await this.clearPartial(cluster, id);
  }
}
