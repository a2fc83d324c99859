/**
 * Which privileges the automation user needs on a MySQL/MariaDB node, and which of them `SHOW GRANTS` says it
 * lacks. Pure: the probe reads the grant lines, this decides. Every runbook refuses before it changes anything
 * when a node lacks one (orchestrator checks its own grants the same way), so a missing grant can never stop a
 * handover half-way (a fenced primary and nobody promoted).
 *
 * Only privilege names are read from the grant lines; the rest (`IDENTIFIED BY PASSWORD '…'`) is never kept.
 */

/** What each privilege is for: named in the refusal so the operator knows why it is needed. */
export const MARIADB_REQUIRED_PRIVILEGES: Record<string, string> = {
  'REPLICATION SLAVE ADMIN': 'STOP/START/RESET SLAVE and CHANGE MASTER (promote, repoint)',
  'SLAVE MONITOR': 'SHOW SLAVE STATUS (probe)',
  'READ_ONLY ADMIN': 'SET GLOBAL read_only (fence, promote, undo)',
  'CONNECTION ADMIN': 'KILL of application sessions on the fenced primary',
  PROCESS: 'information_schema.PROCESSLIST / INNODB_TRX (fence)',
  RELOAD: 'RESET SLAVE ALL',
  'BINLOG ADMIN': 'SET SESSION sql_log_bin = 0 for the fence bound event',
};
/** Needed only with a fence bound (policy fenceBoundMs > 0): the one-shot event lives in the mysql schema. */
export const MARIADB_FENCE_BOUND_PRIVILEGE = 'EVENT ON mysql.*';

/** Other spellings SHOW GRANTS may print for the same privilege (MariaDB aliases). */
const ALIASES: Record<string, string> = {
  'REPLICA MONITOR': 'SLAVE MONITOR',
  'READ ONLY ADMIN': 'READ_ONLY ADMIN',
  'REPLICATION CLIENT': 'BINLOG MONITOR',
};

interface Grant {
  privileges: Set<string>;
  /** `*.*`, or a schema name for `` `db`.* `` (table-level grants are ignored). */
  on: string;
}

/** Parse `GRANT <privs> ON <what> TO …` lines. Role grants (`GRANT role TO user`) have no ON and are skipped. */
export function parseGrants(lines: string[]): Grant[] {
  const out: Grant[] = [];
  for (const line of lines) {
    const m = /^GRANT\s+(.+?)\s+ON\s+(\S+)\s+TO\s/i.exec(line.trim());
    if (!m) continue;
    const on = m[2].replace(/`/g, '');
    const privileges = new Set(
      m[1]
        .split(',')
        .map((p) => p.trim().toUpperCase().replace(/\s*\(.*\)$/, ''))
        .map((p) => ALIASES[p] ?? p),
    );
    if (on === '*.*') out.push({ privileges, on });
    else {
      const db = /^([^.]+)\.\*$/.exec(on);
      if (db) out.push({ privileges, on: db[1] });
    }
  }
  return out;
}

/**
 * The privileges the grant lines lack, each with what it is for; [] when nothing is missing. `fenceBound`:
 * whether the cluster's policy arms a server-side fence bound (then EVENT on the mysql schema is needed too).
 */
export function missingMysqlPrivileges(grantLines: string[], opts: { fenceBound: boolean }): string[] {
  const grants = parseGrants(grantLines);
  const global = new Set<string>();
  for (const g of grants.filter((x) => x.on === '*.*')) for (const p of g.privileges) global.add(p);
  const all = global.has('ALL PRIVILEGES') || global.has('ALL');
  // SUPER is not counted for any of them: MariaDB split these out of it (10.5.2; READ_ONLY ADMIN in 10.11.0), and
  // refusing an account that holds only SUPER is safe (the GRANT to add is named), where guessing is not.
  const has = (p: string) => all || global.has(p);
  const missing = Object.keys(MARIADB_REQUIRED_PRIVILEGES).filter((p) => !has(p));
  if (opts.fenceBound) {
    const onMysql = grants.some((g) => g.on === 'mysql' && (g.privileges.has('EVENT') || g.privileges.has('ALL PRIVILEGES') || g.privileges.has('ALL')));
    if (!has('EVENT') && !onMysql) missing.push(MARIADB_FENCE_BOUND_PRIVILEGE);
  }
  return missing;
}

/** One line for a node's missing privileges, with the GRANT that fixes it. */
export function describeMissingPrivileges(node: string, user: string | undefined, missing: string[]): string {
  const global = missing.filter((p) => p !== MARIADB_FENCE_BOUND_PRIVILEGE);
  const fixes = [
    ...(global.length ? [`GRANT ${global.join(', ')} ON *.* TO '${user ?? '<automation user>'}'@'…'`] : []),
    ...(missing.includes(MARIADB_FENCE_BOUND_PRIVILEGE) ? [`GRANT EVENT ON mysql.* TO '${user ?? '<automation user>'}'@'…'`] : []),
  ];
  const why = missing.map((p) => `${p} (${MARIADB_REQUIRED_PRIVILEGES[p] ?? 'the fence bound event'})`).join(', ');
  return `the automation user lacks ${why} on ${node}: ${fixes.join('; ')}`;
}
