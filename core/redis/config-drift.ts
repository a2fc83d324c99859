/**
 * Persist only what Handover changed (issue 21 item 3). `CONFIG REWRITE` writes every runtime setting into a
 * node's config file, so a setting someone changed at runtime only (a wrong `masterauth` injected with CONFIG
 * SET, a test value) would be made permanent by a runbook that only meant to persist the node's role. Pure:
 * the config file's text and the runtime values in, the drifted settings and the edited file text out.
 */

/** Settings compared between runtime and file. Secrets compared, never shown. */
export const DRIFT_KEYS = ['masterauth', 'masteruser', 'requirepass', 'min-replicas-to-write', 'min-replicas-max-lag', 'replica-priority', 'replica-read-only', 'maxmemory-policy', 'appendonly'] as const;
/** Settings whose default is empty: absent from the file means "" (any runtime value then is drift). */
const EMPTY_DEFAULT = new Set(['masterauth', 'masteruser', 'requirepass']);

function unquote(v: string): string {
  const t = v.trim();
  return (t.startsWith('"') && t.endsWith('"')) || (t.startsWith("'") && t.endsWith("'")) ? t.slice(1, -1) : t;
}

/** The last value of each key in a redis.conf text (keys lower-cased; comments and blank lines skipped). */
export function parseRedisConf(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^(\S+)\s*(.*)$/.exec(line);
    if (m) out.set(m[1].toLowerCase(), unquote(m[2]));
  }
  return out;
}

/** The settings whose runtime value differs from the file (names only): what a CONFIG REWRITE would persist unasked. */
export function configDrift(fileText: string, runtime: Record<string, string>, handoverSet: string[] = []): string[] {
  const file = parseRedisConf(fileText);
  const drift: string[] = [];
  for (const k of DRIFT_KEYS) {
    if (handoverSet.includes(k) || runtime[k] === undefined) continue;
    const inFile = file.get(k) ?? (EMPTY_DEFAULT.has(k) ? '' : undefined);
    if (inFile === undefined) continue;
    if (inFile !== runtime[k]) drift.push(k);
  }
  return drift;
}

/**
 * The file with only what Handover changed: every replicaof/slaveof line replaced by `replicaof HOST PORT` (or
 * removed for a primary), and each setting in `set` written as `key value` (its old lines removed).
 */
export function withRole(fileText: string, replicaOf: { host: string; port: number } | undefined, set: Record<string, string> = {}): string {
  const keys = new Set(['replicaof', 'slaveof', ...Object.keys(set).map((k) => k.toLowerCase())]);
  const lines = fileText.split('\n').filter((l) => !keys.has(/^\s*(\S+)/.exec(l)?.[1]?.toLowerCase() ?? ''));
  while (lines.length && lines[lines.length - 1] === '') lines.pop();
  for (const [k, v] of Object.entries(set)) lines.push(`${k} ${v}`);
  if (replicaOf) lines.push(`replicaof ${replicaOf.host} ${replicaOf.port}`);
  return lines.join('\n') + '\n';
}
