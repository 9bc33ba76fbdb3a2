/**
 * Minimal, strict DER (X.690) reader and writer.
 *
 * Why hand-written: the hot paths of the CA (CSR decode on every enrollment, TBSCertificate
 * building for every certificate) are dominated by the generic ASN.1 libraries' object trees:
 * asn1js / @peculiar/asn1-schema / pkijs spend 135–345 µs per CSR, about as much as the native
 * ECDSA verification (~200 µs); this reader takes ~3 µs. See the measurement notes at the top of
 * `csr.ts`. The libraries remain the independent oracle in the tests.
 *
 * Reader rules (X.690 §10 DER): definite lengths only, minimal length octets, minimal
 * high-tag-number form, every element must fit inside its parent. Values are not copied: every
 * `Tlv` is a window (offsets) on the caller's buffer.
 */

/** Thrown by the reader. `truncated` = the data ends early; `malformed` = anything else. */
export class DerError extends Error {
  readonly reason: 'truncated' | 'malformed';

  constructor(reason: 'truncated' | 'malformed', message: string) {
    super(message);
    this.name = 'DerError';
    this.reason = reason;
  }
}

/** Universal and common context tags (first identifier octet). */
export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  ENUMERATED: 0x0a,
  UTF8_STRING: 0x0c,
  NUMERIC_STRING: 0x12,
  PRINTABLE_STRING: 0x13,
  TELETEX_STRING: 0x14,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  VISIBLE_STRING: 0x1a,
  UNIVERSAL_STRING: 0x1c,
  BMP_STRING: 0x1e,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** One decoded element: `tag` is the first identifier octet; offsets index the source buffer. */
export interface Tlv {
  tag: number;
  /** Offset of the identifier octet. */
  start: number;
  /** Offset of the first content octet. */
  valueStart: number;
  /** Offset just past the last content octet. */
  end: number;
}

/**
 * Reads one TLV at `offset`; it must end at or before `limit`.
 * Throws DerError('truncated') when the data ends early, DerError('malformed') for BER-only or
 * invalid encodings (X.690 §10.1: definite, minimal lengths).
 */
export function readTlv(buf: Uint8Array, offset: number, limit: number): Tlv {
  if (offset >= limit) throw new DerError('truncated', 'unexpected end of data');
  const tag = buf[offset]!;
  let p = offset + 1;
  if ((tag & 0x1f) === 0x1f) {
    // high-tag-number form (X.690 §8.1.2.4): base-128, no leading 0x80, number ≥ 31
    let n = 0;
    let first = true;
    for (;;) {
      if (p >= limit) throw new DerError('truncated', 'unexpected end of data in tag');
      const b = buf[p++]!;
      if (first && b === 0x80) throw new DerError('malformed', 'non-minimal tag number');
      first = false;
      n = n * 128 + (b & 0x7f);
      if (n > 0x1fffff) throw new DerError('malformed', 'tag number too large');
      if ((b & 0x80) === 0) break;
    }
    if (n < 31) throw new DerError('malformed', 'non-minimal tag number');
  }
  if (p >= limit) throw new DerError('truncated', 'unexpected end of data in length');
  let len = buf[p++]!;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0) throw new DerError('malformed', 'indefinite length is not DER');
    if (n > 4) throw new DerError('malformed', 'length too large');
    if (p + n > limit) throw new DerError('truncated', 'unexpected end of data in length');
    if (buf[p] === 0) throw new DerError('malformed', 'non-minimal length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[p++]!;
    if (len < 0x80) throw new DerError('malformed', 'non-minimal length');
  }
  const end = p + len;
  if (end > limit) throw new DerError('truncated', 'element extends past the end of its container');
  return { tag, start: offset, valueStart: p, end };
}

/** Reads the TLV that must span exactly `buf` (no trailing bytes). */
export function readWhole(buf: Uint8Array, what = 'value'): Tlv {
  const t = readTlv(buf, 0, buf.length);
  if (t.end !== buf.length) throw new DerError('malformed', `trailing data after ${what}`);
  return t;
}

/** All direct children of a constructed element, in order. */
export function readChildren(buf: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  let p = parent.valueStart;
  while (p < parent.end) {
    const t = readTlv(buf, p, parent.end);
    out.push(t);
    p = t.end;
  }
  return out;
}

/** Throws DerError('malformed') unless `t` has the expected tag. Returns `t` for chaining. */
export function expectTag(t: Tlv | undefined, tag: number, what: string): Tlv {
  if (t === undefined) throw new DerError('malformed', `missing ${what}`);
  if (t.tag !== tag) throw new DerError('malformed', `expected ${what}`);
  return t;
}

/** The content octets of `t` (a view, not a copy). */
export function valueOf(buf: Buffer, t: Tlv): Buffer {
  return buf.subarray(t.valueStart, t.end);
}

/** The full encoding of `t` (a view, not a copy). */
export function encodingOf(buf: Buffer, t: Tlv): Buffer {
  return buf.subarray(t.start, t.end);
}

const oidDecodeCache = new Map<string, string>();

/** Decodes OBJECT IDENTIFIER content octets to dotted form (X.690 §8.19). */
export function decodeOidValue(buf: Uint8Array, start: number, end: number): string {
  if (end <= start) throw new DerError('malformed', 'empty OBJECT IDENTIFIER');
  if (end - start <= 32) {
    // small OIDs repeat endlessly (attribute types, algorithms): cache by content hex
    const key = Buffer.from(buf.buffer, buf.byteOffset + start, end - start).toString('latin1');
    const hit = oidDecodeCache.get(key);
    if (hit !== undefined) return hit;
    const s = decodeOidUncached(buf, start, end);
    if (oidDecodeCache.size < 4096) oidDecodeCache.set(key, s);
    return s;
  }
  return decodeOidUncached(buf, start, end);
}

function decodeOidUncached(buf: Uint8Array, start: number, end: number): string {
  if ((buf[end - 1]! & 0x80) !== 0) throw new DerError('malformed', 'truncated OBJECT IDENTIFIER');
  const arcs: string[] = [];
  let p = start;
  let firstArc = true;
  while (p < end) {
    if (buf[p] === 0x80) throw new DerError('malformed', 'non-minimal OBJECT IDENTIFIER arc');
    let n = 0;
    let big: bigint | null = null;
    for (;;) {
      const b = buf[p++]!;
      if (big === null && n > 2 ** 45) big = BigInt(n);
      if (big !== null) big = big * 128n + BigInt(b & 0x7f);
      else n = n * 128 + (b & 0x7f);
      if ((b & 0x80) === 0) break;
    }
    if (firstArc) {
      firstArc = false;
      if (big !== null) {
        arcs.push('2', (big - 80n).toString());
      } else if (n < 40) {
        arcs.push('0', String(n));
      } else if (n < 80) {
        arcs.push('1', String(n - 40));
      } else {
        arcs.push('2', String(n - 80));
      }
    } else {
      arcs.push(big !== null ? big.toString() : String(n));
    }
  }
  return arcs.join('.');
}

/** Decodes an OBJECT IDENTIFIER element. */
export function decodeOid(buf: Uint8Array, t: Tlv): string {
  if (t.tag !== TAG.OID) throw new DerError('malformed', 'expected OBJECT IDENTIFIER');
  return decodeOidValue(buf, t.valueStart, t.end);
}

/** Decodes a DER BOOLEAN (X.690 §11.1: TRUE is 0xff). */
export function decodeBoolean(buf: Uint8Array, t: Tlv): boolean {
  if (t.tag !== TAG.BOOLEAN || t.end - t.valueStart !== 1) throw new DerError('malformed', 'expected BOOLEAN');
  const v = buf[t.valueStart]!;
  if (v === 0) return false;
  if (v === 0xff) return true;
  throw new DerError('malformed', 'BOOLEAN is not DER (must be 0x00 or 0xff)');
}

/** Decodes an INTEGER (any sign) to bigint; requires minimal encoding (X.690 §8.3.2). */
export function decodeInteger(buf: Uint8Array, t: Tlv, tag: number = TAG.INTEGER): bigint {
  if (t.tag !== tag) throw new DerError('malformed', 'expected INTEGER');
  const len = t.end - t.valueStart;
  if (len === 0) throw new DerError('malformed', 'empty INTEGER');
  const b0 = buf[t.valueStart]!;
  if (len > 1) {
    const b1 = buf[t.valueStart + 1]!;
    if ((b0 === 0x00 && (b1 & 0x80) === 0) || (b0 === 0xff && (b1 & 0x80) !== 0)) {
      throw new DerError('malformed', 'non-minimal INTEGER');
    }
  }
  if (len <= 6) {
    let n = (b0 & 0x80) !== 0 ? -1 : 0;
    for (let i = t.valueStart; i < t.end; i++) n = n * 256 + buf[i]!;
    return BigInt(n);
  }
  let v = BigInt('0x' + Buffer.from(buf.buffer, buf.byteOffset + t.valueStart, len).toString('hex'));
  if ((b0 & 0x80) !== 0) v -= 1n << BigInt(len * 8);
  return v;
}

/** Decodes a BIT STRING: unused-bit count and the content octets after it (a view). */
export function decodeBitString(buf: Buffer, t: Tlv): { unusedBits: number; bytes: Buffer } {
  if (t.tag !== TAG.BIT_STRING || t.end <= t.valueStart) throw new DerError('malformed', 'expected BIT STRING');
  const unusedBits = buf[t.valueStart]!;
  if (unusedBits > 7 || (unusedBits > 0 && t.end - t.valueStart === 1)) {
    throw new DerError('malformed', 'invalid BIT STRING unused-bits octet');
  }
  return { unusedBits, bytes: buf.subarray(t.valueStart + 1, t.end) };
}

// ------------------------------------------------------------------------------------- writer

/** DER length octets (X.690 §8.1.3, minimal form §10.1). */
export function encodeLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  if (n < 0x100) return Buffer.from([0x81, n]);
  if (n < 0x10000) return Buffer.from([0x82, n >> 8, n & 0xff]);
  if (n < 0x1000000) return Buffer.from([0x83, n >> 16, (n >> 8) & 0xff, n & 0xff]);
  return Buffer.from([0x84, (n >>> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]);
}

/**
 * One TLV with a single-octet tag whose content is the concatenation of `parts`, written into a
 * single allocation (this is the hot path of certificate building).
 */
export function encodeTlv(tag: number, ...parts: Uint8Array[]): Buffer {
  let len = 0;
  for (const p of parts) len += p.length;
  const hdr = len < 0x80 ? 2 : len < 0x100 ? 3 : len < 0x10000 ? 4 : len < 0x1000000 ? 5 : 6;
  const out = Buffer.allocUnsafe(hdr + len);
  out[0] = tag;
  if (hdr === 2) {
    out[1] = len;
  } else {
    const n = hdr - 2;
    out[1] = 0x80 | n;
    for (let i = 0; i < n; i++) out[2 + i] = (len >>> (8 * (n - 1 - i))) & 0xff;
  }
  let p = hdr;
  for (const part of parts) {
    out.set(part, p);
    p += part.length;
  }
  return out;
}

/** SEQUENCE of the already-encoded `parts`. */
export function encodeSequence(...parts: Uint8Array[]): Buffer {
  return encodeTlv(TAG.SEQUENCE, ...parts);
}

/** SET of the already-encoded `parts`; sorted by encoding for SET OF (X.690 §11.6). */
export function encodeSetOf(parts: Buffer[]): Buffer {
  const sorted = [...parts].sort((a, b) => Buffer.compare(a, b));
  return encodeTlv(TAG.SET, ...sorted);
}

/** Context-specific tag octet: [n], primitive or constructed. */
export function contextTag(n: number, constructed: boolean): number {
  if (n < 0 || n > 30) throw new RangeError('context tag number out of range');
  return 0x80 | (constructed ? 0x20 : 0) | n;
}

/** [n] EXPLICIT wrapper around one encoded element. */
export function encodeExplicit(n: number, inner: Uint8Array): Buffer {
  return encodeTlv(contextTag(n, true), inner);
}

const oidEncodeCache = new Map<string, Buffer>();
const OID_RE = /^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+$/;

/** True if `s` is a syntactically valid dotted OID (X.660 arc rules for the first two arcs). */
export function isDottedOid(s: string): boolean {
  if (!OID_RE.test(s)) return false;
  const [a, b] = s.split('.');
  const first = Number(a);
  if (first > 2) return false;
  if (first < 2 && Number(b) > 39) return false;
  return true;
}

/** Content octets of an OBJECT IDENTIFIER (X.690 §8.19). Throws RangeError for a bad OID. */
export function encodeOidValue(dotted: string): Buffer {
  if (!isDottedOid(dotted)) throw new RangeError(`invalid OBJECT IDENTIFIER: ${dotted}`);
  const arcs = dotted.split('.').map((a) => BigInt(a));
  const first = arcs[0]! * 40n + arcs[1]!;
  const out: number[] = [];
  for (const arc of [first, ...arcs.slice(2)]) {
    const bytes: number[] = [Number(arc & 0x7fn)];
    let v = arc >> 7n;
    while (v > 0n) {
      bytes.unshift(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    out.push(...bytes);
  }
  return Buffer.from(out);
}

/** An OBJECT IDENTIFIER element. Encodings are cached; the returned buffer must not be mutated. */
export function encodeOid(dotted: string): Buffer {
  let hit = oidEncodeCache.get(dotted);
  if (hit === undefined) {
    hit = encodeTlv(TAG.OID, encodeOidValue(dotted));
    if (oidEncodeCache.size < 4096) oidEncodeCache.set(dotted, hit);
  }
  return hit;
}

/** Minimal two's-complement content octets of an integer (X.690 §8.3). */
export function integerValue(n: bigint): Buffer {
  if (n === 0n) return Buffer.from([0]);
  if (n > 0n) {
    let hex = n.toString(16);
    if (hex.length % 2) hex = '0' + hex;
    const b = Buffer.from(hex, 'hex');
    return (b[0]! & 0x80) !== 0 ? Buffer.concat([Buffer.from([0]), b]) : b;
  }
  // negative: smallest byte count whose two's complement range holds n
  let bytes = 1;
  while (n < -(1n << BigInt(bytes * 8 - 1))) bytes++;
  const v = (1n << BigInt(bytes * 8)) + n;
  return Buffer.from(v.toString(16).padStart(bytes * 2, '0'), 'hex');
}

/** An INTEGER element from a bigint or safe integer number. */
export function encodeInteger(n: bigint | number): Buffer {
  return encodeTlv(TAG.INTEGER, integerValue(typeof n === 'number' ? BigInt(n) : n));
}

/**
 * An INTEGER element from unsigned big-endian magnitude octets, which must be minimal (no
 * leading 0x00); a 0x00 is prepended when the high bit is set so the value stays positive.
 */
export function encodeUnsignedInteger(magnitude: Uint8Array): Buffer {
  if (magnitude.length === 0) throw new RangeError('empty integer');
  if ((magnitude[0]! & 0x80) !== 0) return encodeTlv(TAG.INTEGER, ZERO_OCTET, magnitude);
  return encodeTlv(TAG.INTEGER, magnitude);
}

const ZERO_OCTET = Buffer.from([0]);

/** A BOOLEAN element (TRUE = 0xff, X.690 §11.1). */
export function encodeBoolean(v: boolean): Buffer {
  return Buffer.from([TAG.BOOLEAN, 1, v ? 0xff : 0x00]);
}

/** The NULL element. */
export function encodeNull(): Buffer {
  return Buffer.from([TAG.NULL, 0]);
}

/** An OCTET STRING element. */
export function encodeOctetString(v: Uint8Array): Buffer {
  return encodeTlv(TAG.OCTET_STRING, v);
}

/** A BIT STRING element with `unusedBits` unused bits in the last octet. */
export function encodeBitString(bytes: Uint8Array, unusedBits = 0): Buffer {
  if (unusedBits < 0 || unusedBits > 7 || (unusedBits > 0 && bytes.length === 0)) {
    throw new RangeError('invalid unused-bits count');
  }
  return encodeTlv(TAG.BIT_STRING, Buffer.from([unusedBits]), bytes);
}

/** UTF8String element. */
export function encodeUtf8String(s: string): Buffer {
  return encodeTlv(TAG.UTF8_STRING, Buffer.from(s, 'utf8'));
}

/** PrintableString element; the caller validates the charset (see `isPrintableString`). */
export function encodePrintableString(s: string): Buffer {
  return encodeTlv(TAG.PRINTABLE_STRING, Buffer.from(s, 'latin1'));
}

/** IA5String element; the caller validates the charset (see `isIa5String`). */
export function encodeIa5String(s: string): Buffer {
  return encodeTlv(TAG.IA5_STRING, Buffer.from(s, 'latin1'));
}

/** X.680 §41.4 PrintableString: A–Z a–z 0–9 space ' ( ) + , - . / : = ? */
export function isPrintableString(s: string): boolean {
  return /^[A-Za-z0-9 '()+,\-./:=?]*$/.test(s);
}

/** IA5String: International Alphabet No. 5 = 7-bit ASCII. */
export function isIa5String(s: string): boolean {
  // eslint-disable-next-line no-control-regex
  return /^[\x00-\x7f]*$/.test(s);
}

function pad2(n: number): string {
  return n < 10 ? '0' + n : String(n);
}

/** MMDDHHMMSSZ of a UTC date: the part UTCTime and GeneralizedTime share (seconds, no fraction). */
function monthToSecondsZ(d: Date): string {
  return pad2(d.getUTCMonth() + 1) + pad2(d.getUTCDate()) + pad2(d.getUTCHours()) + pad2(d.getUTCMinutes()) + pad2(d.getUTCSeconds()) + 'Z';
}

/** UTCTime YYMMDDHHMMSSZ (RFC 5280 §4.1.2.5.1); years 1950–2049 only. Sub-seconds are dropped. */
export function encodeUtcTime(d: Date): Buffer {
  const y = d.getUTCFullYear();
  if (y < 1950 || y > 2049) throw new RangeError('UTCTime covers 1950–2049 only');
  return encodeTlv(TAG.UTC_TIME, Buffer.from(pad2(y % 100) + monthToSecondsZ(d), 'latin1'));
}

/** GeneralizedTime YYYYMMDDHHMMSSZ, no fractional seconds (RFC 5280 §4.1.2.5.2). */
export function encodeGeneralizedTime(d: Date): Buffer {
  const y = d.getUTCFullYear();
  if (y < 0 || y > 9999) throw new RangeError('GeneralizedTime year out of range');
  return encodeTlv(TAG.GENERALIZED_TIME, Buffer.from(String(y).padStart(4, '0') + monthToSecondsZ(d), 'latin1'));
}

/**
 * RFC 5280 Time: UTCTime for dates through 2049, GeneralizedTime from 2050 on
 * (RFC 5280 §4.1.2.5 for certificates, §5.1.2.4 for CRLs).
 */
export function encodeTime(d: Date): Buffer {
  if (Number.isNaN(d.getTime())) throw new RangeError('invalid date');
  const y = d.getUTCFullYear();
  return y >= 1950 && y <= 2049 ? encodeUtcTime(d) : encodeGeneralizedTime(d);
}
