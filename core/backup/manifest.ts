/**
 * Validation of a backup manifest read back from storage: a manifest that does not parse, or whose fields do
 * not fit, makes the backup `failed`, never `good`. Pure (zod only); kept apart from core/backup.ts so the
 * workflow bundle does not carry zod.
 */
import { z } from 'zod';
import type { BackupManifest, VerificationRecord } from './decide';

const iso = z.string().refine((s) => !Number.isNaN(Date.parse(s)), 'must be an ISO time');

export const ManifestSchema = z
  .object({
    format: z.literal(1),
    id: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}-\d{8}T\d{9}Z$/, 'must be <cluster>-<YYYYMMDDTHHMMSSmmmZ>'),
    cluster: z.string().min(1),
    engine: z.enum(['redis', 'mysql', 'dolt']),
    node: z.string().min(1),
    role: z.enum(['primary', 'replica']),
    fromPrimary: z.boolean(),
    engineVersion: z.string().min(1),
    position: z.object({ offset: z.number().int().min(0).optional(), replid: z.string().optional(), gtid: z.string().optional() }).strict(),
    artifact: z
      .object({
        file: z.string().regex(/^[A-Za-z0-9._-]+$/, 'a plain file name'),
        size: z.number().int().min(1),
        sha256: z.string().regex(/^[0-9a-f]{64}$/),
        compression: z.enum(['gzip', 'zstd']),
        encryption: z.object({ alg: z.literal('aes-256-gcm-framed'), keyId: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/), frameBytes: z.number().int().min(1024).max(16 * 1024 * 1024) }).strict().optional(),
      })
      .strict(),
    method: z.enum(['logical', 'physical']).optional(),
    physical: z
      .object({
        kind: z.enum(['full', 'incremental']),
        fromLsn: z.string().regex(/^\d+$/),
        toLsn: z.string().regex(/^\d+$/),
        lastLsn: z.string().regex(/^\d+$/),
        checkpoints: z.string().min(1),
        binlogInfo: z.string().optional(),
        slaveInfo: z.string().optional(),
      })
      .strict()
      .optional(),
    base: z.string().min(1).optional(),
    rawSize: z.number().int().min(0),
    shards: z
      .array(
        z
          .object({
            slots: z.string().min(1),
            node: z.string().min(1),
            role: z.enum(['primary', 'replica']),
            primary: z.string().min(1),
            position: z.object({ offset: z.number().int().min(0).optional(), replid: z.string().optional() }).strict(),
            artifact: z
              .object({
                file: z.string().regex(/^[A-Za-z0-9._-]+$/, 'a plain file name'),
                size: z.number().int().min(1),
                sha256: z.string().regex(/^[0-9a-f]{64}$/),
                compression: z.enum(['gzip', 'zstd']),
                encryption: z.object({ alg: z.literal('aes-256-gcm-framed'), keyId: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/), frameBytes: z.number().int().min(1024).max(16 * 1024 * 1024) }).strict().optional(),
              })
              .strict(),
            rawSize: z.number().int().min(0),
            content: z.object({ redis: z.object({ dbsize: z.number().int().min(0), sample: z.record(z.string(), z.string().regex(/^[0-9a-f]{64}$/)) }).strict() }).strict(),
          })
          .strict(),
      )
      .min(1)
      .optional(),
    startedAt: iso,
    endedAt: iso,
    tool: z.object({ name: z.string().min(1), args: z.array(z.string()), exitStatus: z.number().int() }).strict(),
    content: z
      .object({
        redis: z.object({ dbsize: z.number().int().min(0), sample: z.record(z.string(), z.string().regex(/^[0-9a-f]{64}$/)) }).strict().optional(),
        mysql: z
          .object({
            tables: z.array(z.object({ table: z.string().min(1), rows: z.number().int().min(0), checksum: z.string().nullable() }).strict()),
            consistent: z.boolean(),
            unstable: z.array(z.string()).optional(),
          })
          .strict()
          .optional(),
        dolt: z.object({ databases: z.record(z.string(), z.string().regex(/^[0-9a-v]{32}$/, 'a dolt hash')) }).strict().optional(),
      })
      .strict(),
  })
  .strict()
  .superRefine((m, ctx) => {
    if (m.tool.exitStatus !== 0) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['tool', 'exitStatus'], message: `the tool exited with ${m.tool.exitStatus}` });
    if (!m.id.startsWith(`${m.cluster}-`)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['id'], message: `does not belong to cluster ${m.cluster}` });
    if (Date.parse(m.endedAt) < Date.parse(m.startedAt)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['endedAt'], message: 'before startedAt' });
    if (m.engine === 'redis' && !m.content.redis) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['content', 'redis'], message: 'a redis backup records DBSIZE and a key sample' });
    if (m.engine === 'dolt' && !m.content.dolt) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['content', 'dolt'], message: 'a dolt backup records each database hash' });
    if (m.engine === 'mysql' && !m.content.mysql) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['content', 'mysql'], message: 'a mysql backup records row counts and checksums' });
    if (m.method === 'physical' && !m.physical) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['physical'], message: 'a physical backup records its LSNs' });
    if ((m.physical?.kind === 'incremental') !== (m.base !== undefined)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['base'], message: 'an incremental backup (and only one) names its base' });
    if (m.engine === 'mysql' && !m.position.gtid && m.position.gtid !== '') ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['position', 'gtid'], message: 'a mysql backup records its GTID position' });
  });

export const VerificationSchema = z
  .object({ id: z.string().min(1), ok: z.boolean(), at: iso, checks: z.array(z.string()), failure: z.string().optional(), restoreMs: z.number().min(0) })
  .strict();

/** Parse a manifest's JSON text: the manifest, or the problems (path: message). */
export function parseManifest(text: string): { manifest: BackupManifest } | { problems: string[] } {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    return { problems: [`not JSON: ${(e as Error).message}`] };
  }
  const r = ManifestSchema.safeParse(raw);
  if (!r.success) return { problems: r.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`) };
  return { manifest: r.data as BackupManifest };
}

export function parseVerification(text: string): VerificationRecord | undefined {
  try {
    const r = VerificationSchema.safeParse(JSON.parse(text));
    return r.success ? r.data : undefined;
  } catch {
    return undefined;
  }
}
