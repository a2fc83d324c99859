/**
 * "30m", "90s", "1h", "1500ms" -> milliseconds (--approval-timeout and every other duration flag). A unit is
 * required: a bare "5" could mean seconds or minutes, so it is refused with "say 5s or 5m".
 */
export function parseDuration(text: string, flag = '--approval-timeout'): number {
  const bare = /^\s*(\d+(?:\.\d+)?)\s*$/.exec(text);
  if (bare) throw new Error(`${flag} ${text}: a duration needs a unit; say ${bare[1]}s or ${bare[1]}m`);
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$/.exec(text);
  if (!m) throw new Error(`${flag} ${text}: not a duration; use e.g. 90s, 30m, 2h`);
  const n = Number(m[1]);
  const ms = Math.round(n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h']);
  if (ms <= 0) throw new Error(`${flag} ${text}: the duration must be positive`);
  return ms;
}

/** `--until` / `--at`: a duration from `nowMs` (2h, 30m) or an absolute ISO 8601 time in the future; epoch ms. */
export function parseTimeOrDuration(text: string, nowMs: number, flag: string): number {
  if (/^\s*\d+(?:\.\d+)?\s*(ms|s|m|h)?\s*$/.test(text)) return nowMs + parseDuration(text, flag);
  const t = /\d{4}-\d{2}-\d{2}/.test(text) ? Date.parse(text) : NaN;
  if (Number.isNaN(t)) throw new Error(`${flag} ${text}: neither a duration (2h, 30m) nor an ISO 8601 time (2026-12-01T10:00Z)`);
  if (t <= nowMs) throw new Error(`${flag} ${text}: that time has passed`);
  return t;
}
