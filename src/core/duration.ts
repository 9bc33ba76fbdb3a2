/**
 * Durations in config and on the command line: "90d", "12h", "30m", "45s", "2w", "1y" (365 d),
 * or combinations like "1d12h". Returned in milliseconds.
 */
const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
  y: 365 * 86_400_000,
};

export function parseDuration(text: string): number {
  const s = text.trim();
  const re = /(\d+)(ms|s|m|h|d|w|y)/gy;
  let total = 0;
  let matched = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) {
    total += Number(m[1]) * (UNIT_MS[m[2]!] ?? 0);
    matched = re.lastIndex;
  }
  if (s.length === 0 || matched !== s.length) {
    throw new Error(`not a duration: "${text}" (use e.g. 90d, 12h, 30m, 1d12h)`);
  }
  return total;
}

/** Formats milliseconds compactly, largest units first ("1d12h"). */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  const parts: string[] = [];
  let rest = ms;
  for (const u of ['d', 'h', 'm', 's'] as const) {
    const size = UNIT_MS[u]!;
    const n = Math.floor(rest / size);
    if (n > 0) {
      parts.push(`${n}${u}`);
      rest -= n * size;
    }
  }
  if (rest > 0) parts.push(`${rest}ms`);
  return parts.join('');
}
