import { describe, expect, it } from 'vitest';
import {
  DerError,
  decodeBoolean,
  decodeInteger,
  decodeOid,
  encodeBitString,
  encodeInteger,
  encodeLength,
  encodeOid,
  encodeSetOf,
  encodeTime,
  encodeTlv,
  encodeUnsignedInteger,
  isDottedOid,
  readChildren,
  readTlv,
  readWhole,
} from '../../src/pki/der.js';
import { opensslOk } from './helpers.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function derError(fn: () => unknown): DerError {
  try {
    fn();
  } catch (err) {
    if (err instanceof DerError) return err;
    throw err;
  }
  throw new Error('expected a DerError');
}

describe('der writer', () => {
  it.each([
    [0, '00'],
    [127, '7f'],
    [128, '8180'],
    [255, '81ff'],
    [256, '820100'],
    [65535, '82ffff'],
    [65536, '83010000'],
    [16777216, '8401000000'],
  ])('encodeLength(%i) is minimal: %s', (n, want) => {
    expect(encodeLength(n).toString('hex')).toBe(want);
  });

  it('encodeTlv uses long-form length exactly from 128 content octets', () => {
    expect(encodeTlv(0x04, Buffer.alloc(127)).subarray(0, 2).toString('hex')).toBe('047f');
    expect(encodeTlv(0x04, Buffer.alloc(128)).subarray(0, 3).toString('hex')).toBe('048180');
    expect(encodeTlv(0x04, Buffer.alloc(300)).subarray(0, 4).toString('hex')).toBe('0482012c');
    expect(encodeTlv(0x30, Buffer.from([1]), Buffer.from([2, 3])).toString('hex')).toBe('3003010203');
  });

  it.each([
    ['1.2.840.10045.4.3.2', '06082a8648ce3d040302'],
    ['2.5.29.17', '0603551d11'],
    ['1.3.6.1.5.5.7.48.1.5', '06092b06010505073001 05'.replace(' ', '')],
    ['2.999.3', '0603883703'],
    ['0.9.2342.19200300.100.1.25', '060a0992268993f22c640119'],
  ])('encodeOid(%s) matches the X.690 encoding and decodes back', (oid, want) => {
    const enc = encodeOid(oid);
    expect(enc.toString('hex')).toBe(want);
    expect(decodeOid(enc, readWhole(enc))).toBe(oid);
  });

  it('OIDs with arcs beyond 2^53 (2.25 UUID OIDs) round-trip exactly', () => {
    const oid = '2.25.329800735698586629295641978511506172918';
    const enc = encodeOid(oid);
    expect(decodeOid(enc, readWhole(enc))).toBe(oid);
    // oracle: openssl's own OID decoder
    expect(opensslOk(['asn1parse', '-inform', 'DER'], enc).toString()).toContain(oid);
  });

  it('isDottedOid rejects malformed OIDs', () => {
    for (const bad of ['', '1', '3.1', '1.40', '1.2.', '1..2', '01.2', '1.02', 'a.b']) expect(isDottedOid(bad)).toBe(false);
    for (const good of ['0.0', '1.39', '2.999', '2.5.4.3']) expect(isDottedOid(good)).toBe(true);
    expect(() => encodeOid('1.40')).toThrow(RangeError);
  });

  it.each([
    [0n, '020100'],
    [1n, '020101'],
    [127n, '02017f'],
    [128n, '02020080'],
    [255n, '020200ff'],
    [256n, '02020100'],
    [-1n, '0201ff'],
    [-128n, '020180'],
    [-129n, '0202ff7f'],
    [2n ** 64n, '0209010000000000000000'],
  ])('encodeInteger(%s) is minimal two’s complement', (n, want) => {
    const enc = encodeInteger(n);
    expect(enc.toString('hex')).toBe(want);
    expect(decodeInteger(enc, readWhole(enc))).toBe(n);
  });

  it('encodeUnsignedInteger pads a set high bit with 0x00 and keeps other magnitudes as-is', () => {
    expect(encodeUnsignedInteger(hex('80ff')).toString('hex')).toBe('02030080ff');
    expect(encodeUnsignedInteger(hex('7fff')).toString('hex')).toBe('02027fff');
  });

  it('encodeSetOf sorts elements by their encodings (X.690 §11.6)', () => {
    expect(encodeSetOf([hex('0201ff'), hex('020101'), hex('0101ff')]).toString('hex')).toBe('310901 01ff020101 0201ff'.replace(/ /g, ''));
  });

  it('encodeBitString writes the unused-bits octet', () => {
    expect(encodeBitString(hex('a0'), 5).toString('hex')).toBe('030205a0');
    expect(() => encodeBitString(Buffer.alloc(0), 1)).toThrow(RangeError);
  });

  it.each([
    ['1950-01-01T00:00:00Z', '170d3530303130313030303030305a'],
    ['2049-12-31T23:59:59Z', '170d3439313233313233353935395a'],
    ['2050-01-01T00:00:00Z', '180f32303530303130313030303030305a'],
    ['1949-12-31T23:59:59Z', '180f31393439313233313233353935395a'],
    ['9999-12-31T23:59:59Z', '180f39393939313233313233353935395a'],
  ])('encodeTime(%s) picks UTCTime through 2049, GeneralizedTime otherwise', (iso, want) => {
    expect(encodeTime(new Date(iso)).toString('hex')).toBe(want);
  });

  it('encodeTime drops milliseconds (whole seconds, RFC 5280 §4.1.2.5.2)', () => {
    expect(encodeTime(new Date('2030-06-01T12:00:00.999Z')).toString('latin1').slice(2)).toBe('300601120000Z');
    expect(() => encodeTime(new Date(NaN))).toThrow(RangeError);
  });
});

describe('der reader', () => {
  it('readTlv returns offsets into the source buffer', () => {
    const b = hex('3006 0201 05 0401 aa');
    const t = readWhole(b);
    expect(t).toEqual({ tag: 0x30, start: 0, valueStart: 2, end: 8 });
    expect(readChildren(b, t).map((c) => c.tag)).toEqual([0x02, 0x04]);
  });

  it('malformed/indefinite length is refused (DER only)', () => {
    const e = derError(() => readTlv(hex('3080 0000'), 0, 4));
    expect(e.reason).toBe('malformed');
    expect(e.message).toMatch(/indefinite/);
  });

  it.each([
    ['81 with a short length', '04 8105 0102030405'],
    ['82 with a leading zero', '04 820005 0102030405'],
  ])('malformed/non-minimal length: %s', (_name, h) => {
    const b = hex(h);
    expect(derError(() => readTlv(b, 0, b.length)).message).toMatch(/non-minimal length/);
  });

  it('truncated/length beyond the container', () => {
    const b = hex('3005 0201 05');
    const e = derError(() => readTlv(b, 0, b.length));
    expect(e.reason).toBe('truncated');
  });

  it('truncated/child overruns its parent', () => {
    const b = hex('3003 0203 050505');
    const parent = readTlv(b, 0, b.length);
    expect(derError(() => readChildren(b, parent)).reason).toBe('truncated');
  });

  it('truncated/empty input', () => {
    expect(derError(() => readTlv(Buffer.alloc(0), 0, 0)).reason).toBe('truncated');
  });

  it('malformed/trailing data after the whole element', () => {
    expect(derError(() => readWhole(hex('050000'))).message).toMatch(/trailing/);
  });

  it('high-tag-number form is parsed and must be minimal', () => {
    const b = hex('9f1f 01 00');
    expect(readWhole(b).valueStart).toBe(3);
    expect(derError(() => readWhole(hex('9f05 00'))).message).toMatch(/non-minimal tag/);
    expect(derError(() => readWhole(hex('9f801f 00'))).message).toMatch(/non-minimal tag/);
  });

  it('BOOLEAN must be 0x00 or 0xff', () => {
    expect(decodeBoolean(hex('0101ff'), readWhole(hex('0101ff')))).toBe(true);
    expect(decodeBoolean(hex('010100'), readWhole(hex('010100')))).toBe(false);
    expect(() => decodeBoolean(hex('010101'), readWhole(hex('010101')))).toThrow(/not DER/);
  });

  it('INTEGER must be minimal', () => {
    for (const h of ['02020001', '0202ff80', '0200']) {
      const b = hex(h);
      expect(() => decodeInteger(b, readWhole(b))).toThrow(DerError);
    }
  });

  it('OID content must be minimal and complete', () => {
    for (const h of ['0600', '0602 8001', '0602 2a86']) {
      const b = hex(h);
      expect(() => decodeOid(b, readWhole(b))).toThrow(DerError);
    }
  });
});
