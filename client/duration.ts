/** "30m", "90s", "1h", "1500ms", or a bare number of seconds -> milliseconds (for --approval-timeout). */
export function parseDuration(text: string, flag = '--approval-timeout'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(text);
  if (!m) throw new Error(`${flag} ${text}: not a duration; use e.g. 90s, 30m, 2h`);
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  const ms = Math.round(n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit]!);
  if (ms <= 0) throw new Error(`${flag} ${text}: the duration must be positive`);
  return ms;
}
