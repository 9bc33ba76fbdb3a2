import { describe, expect, it } from 'vitest';
import { compareVersions, parseVersion, parseVersionRange, versionInRange } from '../../src/core/versions.js';

describe('firmware version ranges', () => {
  it.each([
    ['<2.4.1', '2.4.0', true],
    ['<2.4.1', '2.4.1', false],
    ['<2.4.1', '2.4', true],
    ['<2.4.1', '2.10', false],
    ['<=2.4', '2.4.0', true],
    ['>=1.0 <2.4.1', '0.9.9', false],
    ['>=1.0 <2.4.1', '1.0', true],
    ['>=1.0 <2.4.1', '2.4.0.9', true],
    ['<1.0 || >=3.0', '2.0', false],
    ['<1.0 || >=3.0', '3.0.0.1', true],
    ['2.3.0', '2.3', true],
    ['=2.3.1', '2.3', false],
    ['<2.4.1', 'v2.4.0', false],
    ['<2.4.1', '2.4.0-beta', false],
    ['<2.4.1', '', false],
  ])('%s contains %s: %s', (range, version, expected) => {
    expect(versionInRange(version, parseVersionRange(range))).toBe(expected);
  });

  it('a device without a firmware version is never selected', () => {
    expect(versionInRange(null, parseVersionRange('>=0'))).toBe(false);
  });

  it.each(['', '<', '<2.x', '~1.2', '^1.2.0', '>=1.0 ||', '1..2', "2.4'; DROP TABLE devices; --", 'x'.repeat(201)])('malformed range %j → badRequest', (r) => {
    expect(() => parseVersionRange(r)).toThrow(expect.objectContaining({ kind: 'badRequest' }));
  });

  it('compares numerically, part by part; missing parts are 0', () => {
    expect(compareVersions(parseVersion('2.10')!, parseVersion('2.9')!)).toBe(1);
    expect(compareVersions(parseVersion('2.4')!, parseVersion('2.4.0.0')!)).toBe(0);
    expect(parseVersion('01.2')).toEqual([1, 2]);
  });
});
