/**
 * A real S3-compatible server for the object-storage backup tests: VersityGW (Apache-2.0) with its POSIX
 * backend (a bucket is a folder under its data directory) on a free loopback port, built into .tools/bin by
 * scripts/bootstrap.sh. Root credentials are random per server and exported in environment variables that
 * the inventory's `credentials` name, as an operator's would be.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CreateBucketCommand, ListMultipartUploadsCommand, S3Client } from '@aws-sdk/client-s3';
import { startOnFreePort, sleep } from '../activities/backup/scratch';
import { versitygwBinary } from './paths';

export interface S3Server {
  endpoint: string;
  accessKeyEnv: string;
  secretKeyEnv: string;
  dataDir: string;
  client(): S3Client;
  createBucket(name: string): Promise<void>;
  /** The inventory's storage block (YAML flow mapping) for `bucket` under `prefix`. */
  storageBlock(bucket: string, prefix?: string, extra?: string): string;
  /** Multipart uploads in progress in `bucket` (orphans when nothing is uploading). */
  uploadsInProgress(bucket: string): Promise<string[]>;
  stop(): Promise<void>;
}

const rand = () => Math.random().toString(36).slice(2, 12);

export async function startS3Server(o: { name?: string } = {}): Promise<S3Server> {
  const name = (o.name ?? `s3${rand().slice(0, 4)}`).replace(/[^A-Za-z0-9]/g, '_').toUpperCase();
  const accessKeyEnv = `HANDOVER_${name}_ACCESS_KEY`;
  const secretKeyEnv = `HANDOVER_${name}_SECRET_KEY`;
  const accessKey = `ak${rand()}`;
  const secretKey = `sk${rand()}${rand()}`;
  process.env[accessKeyEnv] = accessKey;
  process.env[secretKeyEnv] = secretKey;
  const base = mkdtempSync(path.join(os.tmpdir(), 'handover-s3-'));
  const dataDir = path.join(base, 'data');
  mkdirSync(dataDir, { recursive: true });
  const binary = versitygwBinary();
  const { proc, port } = await startOnFreePort(async (port) => {
    const p = spawn(binary, ['--port', `127.0.0.1:${port}`, 'posix', dataDir], { env: { ...process.env, ROOT_ACCESS_KEY: accessKey, ROOT_SECRET_KEY: secretKey }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    p.stderr!.on('data', (b: Buffer) => (out += b.toString()));
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (p.exitCode !== null) throw new Error(`versitygw exited with ${p.exitCode}: ${out.slice(-2000)}`);
      try {
        const r = await fetch(`http://127.0.0.1:${port}/`);
        await r.arrayBuffer();
        return { proc: p, port }; // any HTTP answer (403 without a signature) means it is serving
      } catch {
        /* not yet */
      }
      if (Date.now() > deadline) {
        p.kill('SIGKILL');
        throw new Error(`versitygw did not answer on 127.0.0.1:${port} within 20 s: ${out.slice(-2000)}`);
      }
      await sleep(100);
    }
  });
  const endpoint = `http://127.0.0.1:${port}`;
  const client = () => new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: accessKey, secretAccessKey: secretKey } });
  return {
    endpoint,
    accessKeyEnv,
    secretKeyEnv,
    dataDir,
    client,
    async createBucket(bucket) {
      const c = client();
      try {
        await c.send(new CreateBucketCommand({ Bucket: bucket }));
      } finally {
        c.destroy();
      }
    },
    storageBlock(bucket, prefix, extra) {
      return `{ type: s3, endpoint: "${endpoint}", bucket: ${bucket}${prefix ? `, prefix: ${prefix}` : ''}, region: us-east-1, forcePathStyle: true, credentials: { accessKeyId: { env: ${accessKeyEnv} }, secretAccessKey: { env: ${secretKeyEnv} } }${extra ? `, ${extra}` : ''} }`;
    },
    async uploadsInProgress(bucket) {
      const c = client();
      try {
        const r = await c.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
        return (r.Uploads ?? []).map((u) => `${u.Key} ${u.UploadId}`);
      } finally {
        c.destroy();
      }
    },
    async stop() {
      if (proc.exitCode === null) {
        proc.kill('SIGTERM');
        await Promise.race([new Promise((r) => proc.once('exit', r)), sleep(5000)]);
        if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      }
      if (!process.env.HANDOVER_KEEP_SANDBOX) rmSync(base, { recursive: true, force: true });
    },
  };
}
