/**
 * Real MariaDB 10.11 processes (Debian's /usr/sbin/mariadbd) on free loopback ports, wired as 1 primary + N
 * replicas with GTID replication (MASTER_USE_GTID=slave_pos), for tests, the demo and benchmarks.
 *
 * Fast start: one datadir is initialised with mariadb-install-db (about half a second) and copied per node.
 * Every node starts with read_only=ON (a restarted node never comes back writable by itself); the sandbox turns
 * it OFF on the first primary only. Users (created on the primary, replicated to every replica):
 *  - repl:     REPLICATION SLAVE (what replicas connect with)
 *  - handover: the automation, least privilege (MARIADB_HANDOVER_GRANTS)
 *  - app:      the writer's application user (SELECT, INSERT on the app schema)
 * root is reachable over each node's unix socket only (the TCP root accounts are dropped).
 */
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { mariaNode, mariadbdBinary, templateDir, type MariaNodeProcess } from '../activities/backup/scratch-mysql';
import { errantOf } from '../core/mysql/decide';
import { makeDbTls, tlsInventoryLines, type DbTls } from './db-tls';
import { sleep, startOnFreePort } from './ports';
import { NETNS_LAUNCHER } from './paths';

// The server process and the template datadir are production code (backup verification starts scratch servers).
export { mariaNode, templateDir, type MariaNodeProcess };

/** Exactly the grants the automation needs on MariaDB 10.11 (each one checked against the server, see README). */
export const MARIADB_HANDOVER_GRANTS = ['REPLICATION SLAVE ADMIN', 'SLAVE MONITOR', 'READ_ONLY ADMIN', 'CONNECTION ADMIN', 'PROCESS', 'RELOAD', 'BINLOG ADMIN'];
/** The fence's bound is an event in the `mysql` schema (created and dropped without binary logging: BINLOG ADMIN). */
export const MARIADB_HANDOVER_SCHEMA_GRANT = 'EVENT ON mysql.*';

export const APP_SCHEMA = 'handover_app';

export interface MariaFleet {
  cluster: string;
  nodes: MariaNodeProcess[];
  baseDir: string;
  /** Environment variable names the inventory points at (values are set in process.env). */
  passwordEnv: string;
  replPasswordEnv: string;
  handoverUser: string;
  handoverPassword: string;
  replUser: string;
  replPassword: string;
  appUser: string;
  appPassword: string;
  /** With `tls: true`: the certificates (every node has require_secure_transport=ON, replicas MASTER_SSL=1). */
  tls?: DbTls;
  inventoryYaml(extra?: MariaInventoryExtra): string;
  writeInventory(file?: string, extra?: MariaInventoryExtra): string;
  /** Per node: read_only and what it replicates from ('down' when unreachable). */
  state(): Promise<Record<string, NodeState>>;
  /** Run SQL as root on one node (over its socket). */
  sql<T = unknown>(node: string | number, query: string, params?: unknown[]): Promise<T>;
  /** Wait until every node other than `primary` replicates from it with both threads running and has its GTID position. */
  waitForReplication(primary: string | number, timeoutMs?: number): Promise<void>;
  /**
   * Test setup: every node up (a stopped or frozen one started or resumed), `primary` (default: the one
   * writable node, else the first) writable and replicating from nobody, every other node read-only and
   * replicating from it (repointed only where it is not already, from its own GTID position), then
   * waitForReplication. A node holding transactions the primary lacks (an old primary left flagged with errant
   * GTIDs) is re-based on the primary: its binary log reset to the primary's GTID state and replicating from the
   * primary's position on, its errant rows left in place and whatever it lacked not copied (tests compare only the
   * rows their own writer acknowledged; a re-clone would take seconds). Returns the primary's id.
   */
  setPrimary(primary?: string | number, timeoutMs?: number): Promise<string>;
  stop(): Promise<void>;
}

export interface NodeState {
  up: boolean;
  readOnly?: boolean;
  /** 'host:port' of the source, when replication is configured. */
  source?: string;
  io?: string;
  sql?: string;
  gtidBinlogPos?: string;
  gtidSlavePos?: string;
}

export interface MariaInventoryExtra {
  promotion?: Record<string, 'prefer' | 'neutral' | 'never'>;
  policy?: Record<string, number | string>;
  routingHook?: string;
  /** Operator hooks (inventory `hooks:`), by kind (preFailover, postPromotion, preSwitchover, ...). */
  hooks?: Partial<Record<string, string[]>>;
  /** A `local` node controller (mariadbd restarted from each node's my.cnf), for the rolling restart. */
  controller?: boolean;
  /** The cluster's tls block (default: the fleet's CA and client certificate when it has TLS); false: none. */
  tls?: false | { ca?: string; cert?: string; key?: string; serverName?: string; verify?: boolean; replicationCa?: string };
}

export interface MariaFleetOptions {
  cluster?: string;
  replicas?: number;
  baseDir?: string;
  /**
   * One host per node (sandbox/netns.ts): node i binds hosts[i].address and runs under hosts[i].wrap
   * (`ip netns exec <ns>`); the accounts are created for `userHost` (e.g. the lab's `10.77.1.%`), since the
   * worker and the replicas then connect from the lab's addresses. Default: loopback, accounts @127.0.0.1.
   */
  hosts?: { address: string; wrap: string[] }[];
  userHost?: string;
  /**
   * TLS required: certificates made by openssl, every node with ssl-ca/ssl-cert/ssl-key and
   * require_secure_transport=ON (root still over the unix socket), replicas wired with MASTER_SSL=1 and a
   * verified server certificate.
   */
  tls?: boolean;
  /** The accounts' passwords (default: random); the secret tests give unique canary strings. */
  passwords?: { handover?: string; repl?: string; app?: string };
}

const rand = () => Math.random().toString(36).slice(2, 12);

export async function startMariaFleet(opts: MariaFleetOptions = {}): Promise<MariaFleet> {
  const cluster = opts.cluster ?? `db-${rand().slice(0, 6)}`;
  const envBase = `HANDOVER_${cluster.replace(/[^A-Za-z0-9]/g, '_').toUpperCase()}`;
  const passwordEnv = `${envBase}_PW`;
  const replPasswordEnv = `${envBase}_REPL_PW`;
  const handoverPassword = opts.passwords?.handover ?? `h-${rand()}`;
  const replPassword = opts.passwords?.repl ?? `r-${rand()}`;
  const appPassword = opts.passwords?.app ?? `a-${rand()}`;
  process.env[passwordEnv] = handoverPassword;
  process.env[replPasswordEnv] = replPassword;
  const baseDir = opts.baseDir ?? mkdtempSync(path.join(os.tmpdir(), `handover-${cluster}-`));
  const template = await templateDir();
  const count = 1 + (opts.replicas ?? 2);
  if (opts.hosts && opts.hosts.length < count) throw new Error(`${count} nodes need ${count} hosts, got ${opts.hosts.length}`);
  const tls = opts.tls ? makeDbTls(baseDir) : undefined;
  const tlsArgs = tls ? [`--ssl-ca=${tls.ca}`, `--ssl-cert=${tls.serverCert}`, `--ssl-key=${tls.serverKey}`, '--require-secure-transport=ON'] : [];
  // Each node on a port the kernel called free, started again on a new one should another process bind it
  // first (the probe closes its socket before mariadbd binds).
  const started = await Promise.allSettled(
    Array.from({ length: count }, (_, i) =>
      startOnFreePort(async (port) => {
        const id = `${cluster}-${i + 1}`;
        const dir = path.join(baseDir, id);
        rmSync(dir, { recursive: true, force: true });
        mkdirSync(dir, { recursive: true });
        cpSync(template, path.join(dir, 'data'), { recursive: true });
        const node = mariaNode({ id, port, serverId: i + 1, dir, host: opts.hosts?.[i]?.address, wrap: opts.hosts?.[i]?.wrap, args: tlsArgs });
        if (tls) node.tls = tls.client;
        try {
          await node.start();
        } catch (e) {
          await node.stop('SIGKILL').catch(() => undefined);
          throw e;
        }
        return node;
      }),
    ),
  );
  const failed = started.find((r) => r.status === 'rejected');
  if (failed) {
    await Promise.all(started.flatMap((r) => (r.status === 'fulfilled' ? [r.value.stop('SIGKILL')] : [])));
    throw (failed as PromiseRejectedResult).reason;
  }
  const nodes: MariaNodeProcess[] = started.map((r) => (r as PromiseFulfilledResult<MariaNodeProcess>).value);

  const byRef = (n: string | number) => (typeof n === 'number' ? nodes[n] : nodes.find((x) => x.id === n)!);
  async function sql<T>(n: string | number, query: string, params?: unknown[]): Promise<T> {
    const c = await byRef(n).root();
    try {
      const [rows] = await c.query(query, params);
      return rows as T;
    } finally {
      await c.end();
    }
  }

  try {
    await wire();
  } catch (e) {
    await Promise.all(nodes.map((n) => n.stop('SIGKILL')));
    throw e;
  }
  async function wire() {
    // Every node: no root over TCP (only the socket), not binlogged (these accounts were never replicated).
    for (const n of nodes) {
      const c = await n.root();
      await c.query('SET SESSION sql_log_bin = 0');
      const [rows] = await c.query("SELECT User AS user, Host AS host FROM mysql.user WHERE User = 'root' AND Host <> 'localhost'");
      for (const r of rows as { user: string; host: string }[]) await c.query('DROP USER ?@?', [r.user, r.host]);
      await c.end();
    }

    // On the primary (binlogged, so replicated): the accounts and the writer's schema.
    const hostPat = opts.userHost ?? '127.0.0.1';
    const primarySql = primaryInitSql({ hostPat, replPassword, handoverPassword, appPassword });
    for (const q of primarySql) await sql(0, q);
    for (const n of nodes.slice(1)) {
      await sql(
        n.id,
        `CHANGE MASTER TO MASTER_HOST='${nodes[0].host}', MASTER_PORT=${nodes[0].port}, MASTER_USER='repl', MASTER_PASSWORD='${replPassword}', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=1${tls ? `, MASTER_SSL=1, MASTER_SSL_CA='${tls.ca}', MASTER_SSL_VERIFY_SERVER_CERT=1` : ''}`,
      );
      await sql(n.id, 'START SLAVE');
    }
  }

  const fleet: MariaFleet = {
    cluster,
    nodes,
    baseDir,
    passwordEnv,
    replPasswordEnv,
    handoverUser: 'handover',
    handoverPassword,
    replUser: 'repl',
    replPassword,
    appUser: 'app',
    appPassword,
    tls,
    sql,
    inventoryYaml(extra = {}) {
      const out = [
        'clusters:',
        `  - name: ${cluster}`,
        '    engine: mysql',
        '    flavor: mariadb',
        '    credentials:',
        '      username: handover',
        `      password: { env: ${passwordEnv} }`,
        '    replicationCredentials:',
        '      username: repl',
        `      password: { env: ${replPasswordEnv} }`,
      ];
      const tlsBlock = extra.tls === false ? undefined : (extra.tls ?? (tls && { ca: tls.ca, cert: tls.clientCert, key: tls.clientKey }));
      if (tlsBlock) out.push(...tlsInventoryLines('    ', tlsBlock));
      if (extra.routingHook) out.push(`    routingHook: ${JSON.stringify(extra.routingHook)}`);
      if (extra.hooks) out.push('    hooks:', ...Object.entries(extra.hooks).map(([k, v]) => `      ${k}: ${JSON.stringify(v ?? [])}`));
      if (extra.controller) {
        out.push('    controller:', '      type: local', `      binary: ${mariadbdBinary()}`, `      configFile: ${path.join(baseDir, '{node}', 'my.cnf')}`);
        // Nodes on lab hosts are started again inside their own network namespace.
        if (opts.hosts) out.push(`      launcher: ${NETNS_LAUNCHER}`);
      }
      if (extra.policy && Object.keys(extra.policy).length) {
        out.push('    policy:');
        for (const [k, v] of Object.entries(extra.policy)) out.push(`      ${k}: ${v}`);
      }
      out.push('    nodes:');
      for (const n of nodes) {
        out.push(`      - id: ${n.id}`, `        host: ${n.host}`, `        port: ${n.port}`);
        const p = extra.promotion?.[n.id];
        if (p) out.push(`        promotion: ${p}`);
      }
      return out.join('\n') + '\n';
    },
    writeInventory(file = path.join(baseDir, 'inventory.yaml'), extra) {
      writeFileSync(file, fleet.inventoryYaml(extra));
      return file;
    },
    async state() {
      const out: Record<string, NodeState> = {};
      await Promise.all(
        nodes.map(async (n) => {
          try {
            const c = await n.root();
            try {
              const [[v]] = (await c.query('SELECT @@read_only AS ro, @@gtid_binlog_pos AS b, @@gtid_slave_pos AS s')) as unknown as [[{ ro: number; b: string; s: string }]];
              const [ss] = (await c.query('SHOW SLAVE STATUS')) as unknown as [Record<string, unknown>[]];
              const s = ss[0];
              out[n.id] = {
                up: true,
                readOnly: v.ro === 1,
                gtidBinlogPos: v.b,
                gtidSlavePos: v.s,
                ...(s ? { source: `${s.Master_Host}:${s.Master_Port}`, io: String(s.Slave_IO_Running), sql: String(s.Slave_SQL_Running) } : {}),
              };
            } finally {
              await c.end();
            }
          } catch {
            out[n.id] = { up: false };
          }
        }),
      );
      return out;
    },
    async waitForReplication(primary, timeoutMs = 20_000) {
      const p = byRef(primary);
      const deadline = Date.now() + timeoutMs;
      let last = '';
      for (;;) {
        const st = await fleet.state();
        const goal = st[p.id]?.gtidBinlogPos;
        const bad = nodes
          .filter((n) => n.id !== p.id)
          .filter((n) => {
            const s = st[n.id];
            return !(s?.up && s.source === `${p.host}:${p.port}` && s.io === 'Yes' && s.sql === 'Yes' && s.gtidBinlogPos === goal);
          });
        if (st[p.id]?.up && bad.length === 0) return;
        last = JSON.stringify(st);
        if (Date.now() > deadline) throw new Error(`replication to ${p.id} not converged within ${timeoutMs} ms: ${last}`);
        await sleep(50);
      }
    },
    async setPrimary(primary, timeoutMs = 20_000) {
      for (const n of nodes) {
        await n.stop('SIGCONT').catch(() => undefined);
        if (n.pid() === undefined) await n.start();
      }
      const st = await fleet.state();
      const writable = nodes.filter((n) => st[n.id].readOnly === false);
      const p = primary !== undefined ? byRef(primary) : (writable[0] ?? nodes[0]);
      if (st[p.id].source) {
        await sql(p.id, 'STOP SLAVE');
        await sql(p.id, 'RESET SLAVE ALL');
      }
      if (st[p.id].readOnly !== false) await sql(p.id, 'SET GLOBAL read_only = OFF');
      const binlogState = async (id: string) => (await sql<{ s: string }[]>(id, 'SELECT @@global.gtid_binlog_state AS s'))[0].s;
      for (const n of nodes.filter((x) => x.id !== p.id)) {
        if (st[n.id].readOnly !== true) await sql(n.id, 'SET GLOBAL read_only = ON');
        const s = st[n.id];
        if (s.source === `${p.host}:${p.port}` && s.io === 'Yes' && s.sql === 'Yes') continue;
        await sql(n.id, 'STOP SLAVE');
        const pState = await binlogState(p.id);
        const errant = errantOf(
          { gtidBinlogPos: s.gtidBinlogPos ?? '', gtidBinlogState: await binlogState(n.id), gtidSlavePos: s.gtidSlavePos ?? '' },
          { gtidBinlogPos: st[p.id].gtidBinlogPos ?? '', gtidBinlogState: pState },
        );
        if (errant.length) {
          // Re-based: from here on it holds the primary's GTID history and replicates from its position.
          await sql(n.id, 'RESET MASTER');
          await sql(n.id, 'SET GLOBAL gtid_binlog_state = ?', [pState]);
          await sql(n.id, 'SET GLOBAL gtid_slave_pos = ?', [st[p.id].gtidBinlogPos ?? '']);
        } else {
          await sql(n.id, 'SET GLOBAL gtid_slave_pos = @@gtid_binlog_pos');
        }
        await sql(
          n.id,
          `CHANGE MASTER TO MASTER_HOST='${p.host}', MASTER_PORT=${p.port}, MASTER_USER='repl', MASTER_PASSWORD='${replPassword}', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=1${tls ? `, MASTER_SSL=1, MASTER_SSL_CA='${tls.ca}', MASTER_SSL_VERIFY_SERVER_CERT=1` : ''}`,
        );
        await sql(n.id, 'START SLAVE');
      }
      await fleet.waitForReplication(p.id, timeoutMs);
      return p.id;
    },
    async stop() {
      await Promise.all(nodes.map((n) => n.stop('SIGKILL')));
      if (!opts.baseDir && !process.env.HANDOVER_KEEP_SANDBOX) rmSync(baseDir, { recursive: true, force: true });
    },
  };
  try {
    await fleet.waitForReplication(0);
  } catch (e) {
    await fleet.stop();
    throw e;
  }
  return fleet;
}

/**
 * A primary's init, as the fleet runs it on its first primary (binlogged, so replicated): the replication, automation
 * and application accounts (`hostPat` their host pattern), the writer's schema, and writable.
 */
export function primaryInitSql(o: { hostPat: string; replPassword: string; handoverPassword: string; appPassword: string }): string[] {
  const { hostPat } = o;
  return [
    `CREATE USER 'repl'@'${hostPat}' IDENTIFIED BY '${o.replPassword}'`,
    `GRANT REPLICATION SLAVE ON *.* TO 'repl'@'${hostPat}'`,
    `CREATE USER 'handover'@'${hostPat}' IDENTIFIED BY '${o.handoverPassword}'`,
    `GRANT ${MARIADB_HANDOVER_GRANTS.join(', ')} ON *.* TO 'handover'@'${hostPat}'`,
    `GRANT ${MARIADB_HANDOVER_SCHEMA_GRANT} TO 'handover'@'${hostPat}'`,
    `CREATE DATABASE ${APP_SCHEMA}`,
    `CREATE TABLE ${APP_SCHEMA}.acks (k VARCHAR(64) NOT NULL PRIMARY KEY, v BIGINT NOT NULL, at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB`,
    `CREATE USER 'app'@'${hostPat}' IDENTIFIED BY '${o.appPassword}'`,
    `GRANT SELECT, INSERT, UPDATE, DELETE ON ${APP_SCHEMA}.* TO 'app'@'${hostPat}'`,
    'SET GLOBAL read_only = OFF',
  ];
}
