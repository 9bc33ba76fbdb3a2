/**
 * Firmware version ranges for advisories: semver-style comparators over plain dotted numeric
 * versions ("2.4", "2.4.1", "10.0.3.7"; a missing part counts as 0, so 2.4 = 2.4.0).
 *   range      := set ( "||" set )*
 *   set        := comparator ( " " comparator )*        (all must hold)
 *   comparator := ( "<" | "<=" | ">" | ">=" | "=" )? version    (no operator: "=")
 * Vendors' suffixes ("2.4.1-beta", "v2.4") are not versions here: a device whose firmware does not
 * parse is never selected, and a range that does not parse is refused.
 */
import { badRequest } from './errors.js';

const VERSION = /^\d{1,9}(\.\d{1,9}){0,7}$/;

type Op = '<' | '<=' | '>' | '>=' | '=';

export interface VersionRange {
  readonly text: string;
  readonly sets: ReadonlyArray<ReadonlyArray<{ op: Op; version: number[] }>>;
}

export function parseVersion(v: string): number[] | null {
  const t = v.trim();
  return VERSION.test(t) ? t.split('.').map(Number) : null;
}

export function compareVersions(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}

/** Parses a range; throws badRequest naming what is wrong. */
export function parseVersionRange(text: string): VersionRange {
  if (text.length > 200) throw badRequest('the version range is longer than 200 characters');
  const sets = text.split('||').map((part) => {
    const comps = part.trim().split(/\s+/).filter((c) => c.length > 0);
    if (comps.length === 0) throw badRequest(`version range "${text}": an empty alternative`);
    return comps.map((c) => {
      const m = /^(<=|>=|<|>|=)?(.*)$/.exec(c)!;
      const version = parseVersion(m[2]!);
      if (!version) throw badRequest(`version range "${text}": "${c}" is not a comparator of a dotted numeric version (e.g. <2.4.1)`);
      return { op: (m[1] ?? '=') as Op, version };
    });
  });
  return { text, sets };
}

/** Whether a firmware version is in the range (unparsable versions never are). */
export function versionInRange(version: string | null, range: VersionRange): boolean {
  const v = version === null ? null : parseVersion(version);
  if (!v) return false;
  return range.sets.some((set) =>
    set.every(({ op, version: w }) => {
      const c = compareVersions(v, w);
      switch (op) {
        case '<':
          return c < 0;
        case '<=':
          return c <= 0;
        case '>':
          return c > 0;
        case '>=':
          return c >= 0;
        case '=':
          return c === 0;
      }
    }),
  );
}
