/**
 * The inventory: which clusters exist, their nodes, and where their credentials live (references only).
 * Validated strictly: an unknown field is an error, so a typo never silently falls back to a default.
 */
import { z } from 'zod';

const name = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'must be 1-63 characters of a-z, 0-9, ".", "_" or "-", starting with a letter or digit');

/** A secret is never written in the inventory: it names an environment variable or a file holding it. */
export const SecretRefSchema = z.union([
  z.object({ env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name') }).strict(),
  z.object({ file: z.string().min(1) }).strict(),
]);
export type SecretRef = z.infer<typeof SecretRefSchema>;

/**
 * TLS to a database (or Sentinel): file paths only, never certificate or key material in the inventory. A
 * cluster's `tls:` applies to every node; a node's (or the sentinel block's) `tls:` overrides it field by field.
 * `verify` (default true) checks the server's certificate against `ca` and its name against `serverName` (else
 * the node's host). `replicationCa` (MariaDB/MySQL): the CA file as the *replica server* reads it, for
 * CHANGE MASTER ... MASTER_SSL_CA (default: `ca`, which must then be a path valid on the nodes too).
 */
const tlsFields = {
  /** The CA certificate file (PEM) the server certificate is checked against; default: the system's CAs. */
  ca: z.string().min(1).optional(),
  /** A client certificate and its key (PEM files), for servers that require one; both or neither. */
  cert: z.string().min(1).optional(),
  key: z.string().min(1).optional(),
  /** The name the server's certificate must carry; default: the node's host. */
  serverName: z.string().min(1).optional(),
  /** Check the server's certificate (chain and name). Default true; false only encrypts. */
  verify: z.boolean().optional(),
  /** engine: mysql — the CA path on the replica servers (MASTER_SSL_CA); default: ca. */
  replicationCa: z.string().min(1).optional(),
};
export const TlsSchema = z
  .object(tlsFields)
  .strict()
  .superRefine((t, ctx) => {
    if ((t.cert === undefined) !== (t.key === undefined))
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: [t.cert === undefined ? 'cert' : 'key'], message: 'a client certificate needs both cert and key (files)' });
  });
export type TlsSpec = z.infer<typeof TlsSchema>;

/**
 * A host name or address. "[::1]" (the URL form of an IPv6 address) is accepted and kept without its brackets,
 * since every client library takes the bare address; "host:port", stray brackets or spaces are refused at load,
 * naming the field, instead of leaving every node unreachable.
 */
export const HostSchema = z
  .string()
  .trim()
  .min(1)
  .transform((h) => /^\[([^\]]*)\]$/.exec(h)?.[1] ?? h)
  .superRefine((h, ctx) => {
    const bad = (message: string) => ctx.addIssue({ code: z.ZodIssueCode.custom, message });
    if (!h) bad('empty host');
    else if (/[\s[\]/]/.test(h)) bad(`${JSON.stringify(h)} is not a host name or address (an IPv6 address is written ::1 or [::1])`);
    else if (/^[^:]+:\d+$/.test(h)) bad(`${JSON.stringify(h)} carries a port: write the host alone and the port in port:`);
    else if (h.includes(':') && !/^[0-9A-Fa-f:.]+(%[\w.-]+)?$/.test(h)) bad(`${JSON.stringify(h)} is neither a host name nor an IPv6 address`);
  });

export const NodeSchema = z
  .object({
    id: name,
    host: HostSchema,
    port: z.number().int().min(1).max(65535),
    promotion: z.enum(['prefer', 'neutral', 'never']).default('neutral'),
    /** Overrides the cluster's tls field by field (e.g. another serverName). */
    tls: TlsSchema.optional(),
  })
  .strict();

/** Backups in a directory of the worker (or a filesystem mounted at the same path on every worker). */
export const LocalStorageSchema = z.object({ type: z.literal('local'), dir: z.string().min(1) }).strict();

/** Backups in an S3-compatible object store (activities/backup/storage/s3.ts); every worker reaches the same objects. */
export const S3StorageSchema = z
  .object({
    type: z.literal('s3'),
    bucket: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'an S3 bucket name: 3-63 characters of a-z, 0-9, "." or "-"'),
    /** Keys start with this (no leading or trailing "/"); default: the bucket's root. */
    prefix: z.string().regex(/^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/, 'path segments of A-Z, a-z, 0-9, ".", "_" or "-", separated by "/"').optional(),
    /** An S3-compatible endpoint (https://minio.example:9000); default: AWS S3 for the region. */
    endpoint: z.string().url().optional(),
    region: z.string().min(1).default('us-east-1'),
    /** Path-style URLs (endpoint/bucket/key) instead of bucket.endpoint: most S3-compatible servers need it. */
    forcePathStyle: z.boolean().default(false),
    /** Each a secret reference (env or file); default: the AWS SDK's own chain (AWS_ACCESS_KEY_ID, ~/.aws, roles). */
    credentials: z.object({ accessKeyId: SecretRefSchema, secretAccessKey: SecretRefSchema, sessionToken: SecretRefSchema.optional() }).strict().optional(),
    /** Multipart part size; the upload holds about 3 parts in memory. 5-512 MiB. */
    partSizeMiB: z.number().int().min(5).max(512).default(8),
  })
  .strict();
export type S3StorageSpec = z.input<typeof S3StorageSchema>;

export const PolicySchema = z
  .object({
    /** Largest replication lag (bytes) a switchover candidate may have when chosen. */
    maxLagBytes: z.number().int().min(0).default(1024 * 1024),
    /** How long the candidate may take to catch up before the write pause (ms). */
    catchUpTimeoutMs: z.number().int().min(100).default(30_000),
    /** Server-side bound of the write pause during the handover (FAILOVER TIMEOUT, ms). */
    pauseTimeoutMs: z.number().int().min(50).max(60_000).default(5_000),
    /** How long verification may wait for every replica to link and converge (ms). */
    verifyTimeoutMs: z.number().int().min(100).default(30_000),
    /** How long a restarted node may take to answer again, and then to be linked and caught up (ms each). */
    restartTimeoutMs: z.number().int().min(1000).default(120_000),
    /**
     * How the primary role moves: `pause-promote` (CLIENT PAUSE WRITE, wait for the candidate's offset, demote,
     * promote, unpause) or `failover` (the server's FAILOVER TO ... TIMEOUT ...). Both bound the pause server-side.
     */
    handoverMethod: z.enum(['pause-promote', 'failover']).default('pause-promote'),
    /** Unplanned failover: probe period, consecutive dead rounds that confirm a dead primary, anti-flap block. */
    probeIntervalMs: z.number().int().min(100).default(1_000),
    probesToConfirm: z.number().int().min(1).default(3),
    /**
     * The monitor: how long one node's probe may take inside a round before the node counts as unreachable for
     * that round (ms). Default: probeIntervalMs, at least 500, at most 5000 (core/monitor-round.ts probeDeadlineMs).
     */
    probeTimeoutMs: z.number().int().min(100).max(5_000).optional(),
    failoverBlockMs: z.number().int().min(0).default(3_600_000),
    /** MySQL/MariaDB: largest lag a switchover candidate may have, in transactions (GTID sequence numbers) ... */
    maxLagTransactions: z.number().int().min(0).default(1000),
    /** ... and in Seconds_Behind_Master. */
    maxLagSeconds: z.number().int().min(0).default(10),
    /** MySQL/MariaDB fence: how long application sessions may keep an open transaction before they are killed (ms). */
    fenceGraceMs: z.number().int().min(0).max(60_000).default(2_000),
    /**
     * MySQL/MariaDB: server-side bound of the fence (ms). Before read_only goes ON, a one-shot event on the old
     * primary is scheduled to turn it OFF again after this long; the promotion cancels it first. So a worker that
     * dies mid-handover cannot keep writes blocked longer than this. Needs event_scheduler=ON; 0 disables it.
     */
    fenceBoundMs: z.number().int().min(0).max(600_000).default(30_000),
    /**
     * Switchover (Redis/Valkey, MySQL/MariaDB): hand over even when another replica will not follow the new
     * primary (link down, auth failure, unreachable); it is left behind and reported (exit 5). Default false:
     * such a switchover is refused up front, nothing changed. `--allow-degraded` / `--no-allow-degraded` override it per run.
     */
    allowDegraded: z.boolean({ invalid_type_error: 'must be true or false (true: a switchover hands over even when a replica will not follow)' }).default(false),
  })
  .strict();
export type Policy = z.infer<typeof PolicySchema>;

/**
 * How nodes are restarted (rolling restart). `{node}` and `{version}` in templates are replaced by the node's
 * id and the requested version.
 *  - local:   processes on this machine (the sandbox, tests): a graceful SHUTDOWN, then `<binary> <configFile>`
 *             started detached. `binaries` maps a version to the server binary that provides it. engine: mysql:
 *             configFile is the node's option file (the requested variables are written to it), the server gets
 *             SIGTERM, then `<binary> --defaults-file=<configFile>` starts.
 *  - command: shell commands, e.g. `systemctl restart redis@{node}` or `kubectl delete pod {node}` ({set} is
 *             replaced by the requested `key=value` pairs, space-separated, for engine: mysql); readiness
 *             is checked by Handover itself (reachable, replicating, caught up).
 */
export const ControllerSchema = z.discriminatedUnion('type', [
  z
    .object({
      type: z.literal('local'),
      configFile: z.string().min(1),
      binary: z.string().min(1).default('redis-server'),
      binaries: z.record(z.string(), z.string()).default({}),
      autoRestart: z.boolean().default(false),
      /**
       * A command prefix the server (and each Sentinel) is started under, split on spaces, with {node} (the node's
       * or Sentinel's id) and {host} (its inventory address) substituted: e.g. `ip netns exec {node}`,
       * `sudo -u redis`, `numactl -N 0`, or a script that finds the node's network namespace. It must exec the
       * server (the server is found again by address and pid file, not as the prefix's child).
       */
      launcher: z.string().min(1).optional(),
      /** Sentinel topology: each Sentinel's config file ({node} is the Sentinel's id) and its binary. */
      sentinelConfigFile: z.string().min(1).optional(),
      sentinelBinary: z.string().min(1).default('redis-sentinel'),
    })
    .strict(),
  z
    .object({
      type: z.literal('command'),
      restart: z.string().min(1),
      /** Sentinel topology: how to restart one Sentinel ({node} is the Sentinel's id). */
      restartSentinel: z.string().min(1).optional(),
      /** The service manager restarts a crashed node by itself (systemd Restart=, Kubernetes). */
      autoRestart: z.boolean().default(true),
    })
    .strict(),
]);
export type ControllerSpec = z.infer<typeof ControllerSchema>;

/** Why `flavor: mysql8` is refused (one line, shown with the file and line of the field). */
export const MYSQL8_REFUSED =
  'flavor: mysql8 is not supported: Handover is tested against MariaDB 10.11 only (MySQL 8 GTID sets are not parsed and no MySQL 8 server is tested); use flavor: mariadb';

export const ClusterSchema = z
  .object({
    name,
    /**
     * dolt: `dolt sql-server` in cluster mode (its `cluster:` config: standby_remotes, bootstrap_role/epoch,
     * remotesapi): switchover and failover by dolt_assume_cluster_role at epochs (workflows/dolt/). MySQL protocol.
     */
    engine: z.enum(['redis', 'mysql', 'dolt']),
    /**
     * engine: mysql only — which SQL dialect the server speaks (activities/mysql/flavor.ts). Only `mariadb` is
     * accepted: `mysql8` is refused when the inventory loads until a MySQL 8 server can be tested (its GTID
     * sets are not MariaDB's domain-server-sequence lists, which the probes parse).
     */
    flavor: z.enum(['mariadb', 'mysql8']).optional(),
    /**
     * engine: dolt also takes `remote-replicas`: read replicas through a remote (the primary's
     * @@dolt_replicate_to_remote, the replicas' @@dolt_read_replica_remote, both naming `replicationRemote`).
     */
    topology: z.enum(['replication', 'sentinel', 'cluster', 'remote-replicas']).default('replication'),
    /**
     * engine: dolt, topology: remote-replicas only — the name of the remote every database on every node has
     * (`CALL dolt_remote('add', name, url)`), through which the primary pushes and the replicas pull.
     */
    replicationRemote: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/).optional(),
    credentials: z
      .object({
        username: z.string().min(1).optional(),
        password: SecretRefSchema.optional(),
      })
      .strict()
      .default({}),
    /** engine: mysql only — the account replicas connect to their source with (CHANGE MASTER ... MASTER_USER). */
    replicationCredentials: z.object({ username: z.string().min(1), password: SecretRefSchema }).strict().optional(),
    /**
     * engine: mysql only — a command run after promotion to move the writer endpoint (HAProxy runtime API, DNS,
     * a proxy's admin call). {cluster} {primary} {host} {port} {oldPrimary} are substituted. A failure is reported.
     */
    routingHook: z.string().min(1).optional(),
    /**
     * Operator hooks around every runbook (any engine): shell commands with {cluster} {oldPrimary} {newPrimary}
     * {host} {port}. Pre-hooks fail closed (non-zero exit: nothing is changed), post-hooks fail open (reported).
     * postPromotion runs right after a new primary is promoted (switchover, failover, a rolling restart's
     * handover, a Redis Cluster shard's failover): where a proxy's writer endpoint is moved. See activities/hooks.ts.
     */
    hooks: z
      .object({
        preFailover: z.array(z.string().min(1)).default([]),
        postFailover: z.array(z.string().min(1)).default([]),
        preSwitchover: z.array(z.string().min(1)).default([]),
        postSwitchover: z.array(z.string().min(1)).default([]),
        postPromotion: z.array(z.string().min(1)).default([]),
        preRollingRestart: z.array(z.string().min(1)).default([]),
        postRollingRestart: z.array(z.string().min(1)).default([]),
      })
      .strict()
      .optional(),
    /**
     * Worker environment variables passed to this cluster's hooks (failover hooks and the routing hook), by
     * name. Hooks get nothing else from the worker's environment but PATH, HOME, LANG/LC_ALL/TZ and their
     * HANDOVER_* placeholders: never a credential the inventory references, nor the codec key.
     */
    hookEnv: z.array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name')).default([]),
    policy: PolicySchema.default({}),
    controller: ControllerSchema.optional(),
    /**
     * Backups (handover backup): where artifacts are stored and how many verified ones to keep. Without this
     * block the worker's HANDOVER_BACKUP_DIR is used. engine: dolt names its backup remote (dolt_backup('sync', name)).
     */
    backup: z
      .object({
        storage: z.discriminatedUnion('type', [LocalStorageSchema, S3StorageSchema]).optional(),
        keep: z.number().int().min(1).max(1000).default(7),
        /**
         * gzip (in-process, level 1) or zstd (the zstd tool, level 1, all cores): faster on large dumps. Unset:
         * zstd when the worker finds the zstd binary, else gzip (decided per take; the manifest records it).
         */
        compression: z.enum(['gzip', 'zstd']).optional(),
        /**
         * engine: mysql only — logical (mariadb-dump over the network, default) or physical (mariadb-backup
         * --stream=mbstream: the worker must run on the database host, where the node's datadir is readable).
         */
        method: z.enum(['logical', 'physical']).default('logical'),
        /**
         * Encryption at rest of every artifact (AES-256-GCM in authenticated frames, activities/backup/crypto.ts):
         * keys by id, each a secret reference (env or file) to 32 bytes (64 hex characters or base64). New
         * backups use the last key listed; every listed key decrypts (rotation: append a key, keep the old ones).
         */
        encryption: z
          .object({
            keys: z
              .array(z.object({ id: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'a key id of A-Z, a-z, 0-9, ".", "_" or "-"'), key: SecretRefSchema }).strict())
              .min(1)
              .refine((ks) => new Set(ks.map((k) => k.id)).size === ks.length, 'key ids must be unique'),
          })
          .strict()
          .optional(),
        doltBackupName: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/).optional(),
      })
      .strict()
      .optional(),
    /** topology: sentinel — the Sentinels watching this cluster, and the name they know its primary by. */
    sentinel: z
      .object({
        masterName: z.string().min(1),
        password: SecretRefSchema.optional(),
        /** TLS to the Sentinels: overrides the cluster's tls field by field. */
        tls: TlsSchema.optional(),
        nodes: z.array(z.object({ id: name, host: HostSchema, port: z.number().int().min(1).max(65535) }).strict()).min(1),
      })
      .strict()
      .optional(),
    /** TLS to every node (and Sentinel) of the cluster; see TlsSchema. Without it, connections are plaintext. */
    tls: TlsSchema.optional(),
    nodes: z.array(NodeSchema).min(1),
  })
  .strict()
  .refine((c) => (c.topology === 'sentinel') === (c.sentinel !== undefined), {
    message: 'topology: sentinel needs a sentinel block (masterName, nodes), and only it may have one',
    path: ['sentinel'],
  })
  .superRefine((c, ctx) => {
    if (c.engine !== 'mysql' && c.backup?.method === 'physical')
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['backup', 'method'], message: `method: physical is mariadb-backup, for engine: mysql only (engine ${c.engine})` });
    if (c.engine !== 'mysql' && c.tls?.replicationCa !== undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['tls', 'replicationCa'], message: 'only engine: mysql clusters have tls.replicationCa (Redis/Valkey replicas use their own tls-ca-cert-file)' });
    const mysqlOnly = ['flavor', 'replicationCredentials', 'routingHook'] as const;
    if (c.engine !== 'mysql') {
      for (const f of mysqlOnly) if (c[f] !== undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, path: [f], message: `only engine: mysql clusters have ${f}` });
      if (c.engine === 'dolt') {
        if (c.topology !== 'replication' && c.topology !== 'remote-replicas')
          ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['topology'], message: 'engine: dolt supports topology: replication (a sql-server cluster: one primary, its standbys) or remote-replicas (read replicas through a remote)' });
        if (!c.credentials.username || !c.credentials.password)
          ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['credentials'], message: 'engine: dolt needs credentials.username and credentials.password (the automation user)' });
        if (c.controller?.type === 'local' && /redis/.test(c.controller.binary)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['controller', 'binary'], message: 'engine: dolt with a local controller needs binary: the dolt binary' });
        if (c.topology === 'remote-replicas') {
          if (!c.replicationRemote) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['replicationRemote'], message: 'topology: remote-replicas needs replicationRemote: the remote name the primary pushes to and the replicas pull from' });
          if (!c.controller) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['controller'], message: 'topology: remote-replicas needs a controller: Dolt reads the replication settings at server start, so a node changes its part by a restart' });
        } else {
          // cluster mode: a controller is optional (only the rolling restart uses it).
          if (c.replicationRemote) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['replicationRemote'], message: 'replicationRemote is for topology: remote-replicas' });
        }
      }
      if (c.engine === 'dolt') return;
    }
    if (c.replicationRemote) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['replicationRemote'], message: 'only engine: dolt clusters have replicationRemote' });
    if (c.topology === 'remote-replicas') ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['topology'], message: 'topology: remote-replicas is for engine: dolt' });
    if (c.engine !== 'mysql') return;
    if (!c.flavor) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['flavor'], message: 'engine: mysql needs flavor: mariadb' });
    if (c.flavor === 'mysql8') ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['flavor'], message: MYSQL8_REFUSED });
    if (c.topology !== 'replication') ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['topology'], message: 'engine: mysql supports topology: replication only' });
    if (!c.credentials.username || !c.credentials.password)
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['credentials'], message: 'engine: mysql needs credentials.username and credentials.password (the automation user)' });
    if (!c.replicationCredentials)
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['replicationCredentials'], message: 'engine: mysql needs replicationCredentials (username, password) for CHANGE MASTER' });
    if (c.controller?.type === 'local' && /redis/.test(c.controller.binary))
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['controller', 'binary'], message: 'engine: mysql with a local controller needs binary: the mariadbd/mysqld server binary' });
    if (c.controller?.type === 'local' && c.controller.sentinelConfigFile) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['controller', 'sentinelConfigFile'], message: 'engine: mysql has no Sentinels' });
    if (c.controller?.type === 'command' && c.controller.restartSentinel) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['controller', 'restartSentinel'], message: 'engine: mysql has no Sentinels' });
  });

export const InventorySchema = z
  .object({
    clusters: z.array(ClusterSchema).default([]),
  })
  .strict();

export type Inventory = z.infer<typeof InventorySchema>;
export type ClusterSpec = z.infer<typeof ClusterSchema>;
export type NodeSpec = z.infer<typeof NodeSchema>;
