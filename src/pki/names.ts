/**
 * X.501 Names and X.509 GeneralNames: DER encode/decode and display (RFC 5280 §4.1.2.4,
 * §4.2.1.6, Appendix A).
 */
import { badRequest } from '../core/errors.js';
import {
  DerError,
  TAG,
  contextTag,
  decodeOid,
  encodeIa5String,
  encodeOid,
  encodePrintableString,
  encodeSequence,
  encodeTlv,
  encodeUtf8String,
  expectTag,
  isDottedOid,
  isIa5String,
  isPrintableString,
  readChildren,
  readTlv,
  readWhole,
  type Tlv,
} from './der.js';
import { OID_DN, dnShortName } from './oids.js';

/**
 * One subjectAltName entry.
 *  - dns: a hostname (a leading `*.` is accepted as a plain string; wildcard policy is elsewhere)
 *  - ip: dotted IPv4 or RFC 5952 IPv6 text
 *  - email: an RFC 822 mailbox `local@domain`
 *  - uri: an absolute URI
 *  - otherName: `<type-id OID>;<hex of the DER of the value>` (the element inside [0] EXPLICIT)
 */
export interface SanEntry {
  type: 'dns' | 'ip' | 'email' | 'uri' | 'otherName';
  value: string;
}

/** One Name attribute. */
export interface RdnAttribute {
  /** Short name like 'CN', 'O', 'OU', 'C', 'serialNumber', or the dotted OID if unknown. */
  type: string;
  oid: string;
  /** The string value; for a non-string value read from DER: '#' + hex of its DER (RFC 4514 §2.4). */
  value: string;
}

// ------------------------------------------------------------------------------------ Name

/** How each known attribute is encoded, with its RFC 5280 Appendix A upper bound (characters). */
const ATTR_RULES: ReadonlyMap<string, { kind: 'utf8' | 'printable' | 'ia5'; min: number; max: number }> = new Map([
  [OID_DN.CN, { kind: 'utf8', min: 1, max: 64 }], // ub-common-name
  [OID_DN.O, { kind: 'utf8', min: 1, max: 64 }], // ub-organization-name
  [OID_DN.OU, { kind: 'utf8', min: 1, max: 64 }], // ub-organizational-unit-name
  [OID_DN.L, { kind: 'utf8', min: 1, max: 128 }], // ub-locality-name
  [OID_DN.ST, { kind: 'utf8', min: 1, max: 128 }], // ub-state-name
  [OID_DN.C, { kind: 'printable', min: 2, max: 2 }], // X520countryName PrintableString (SIZE (2))
  [OID_DN.serialNumber, { kind: 'printable', min: 1, max: 64 }], // X520SerialNumber PrintableString
  [OID_DN.emailAddress, { kind: 'ia5', min: 1, max: 255 }], // EmailAddress IA5String
  [OID_DN.DC, { kind: 'ia5', min: 1, max: Infinity }], // DomainComponent IA5String
]);

const LONE_SURROGATE_RE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function attrOid(a: RdnAttribute): string {
  if (isDottedOid(a.oid)) return a.oid;
  if (Object.hasOwn(OID_DN, a.type)) return OID_DN[a.type as keyof typeof OID_DN];
  if (isDottedOid(a.type)) return a.type;
  throw badRequest(`unknown Name attribute type: ${a.type || a.oid}`);
}

function encodeAttrValue(oid: string, label: string, value: string): Buffer {
  if (typeof value !== 'string' || value.length === 0) throw badRequest(`Name attribute ${label} is empty`);
  if (LONE_SURROGATE_RE.test(value)) throw badRequest(`Name attribute ${label} is not valid Unicode`);
  const rule = ATTR_RULES.get(oid) ?? { kind: 'utf8' as const, min: 1, max: Infinity };
  const chars = [...value].length;
  if (chars < rule.min || chars > rule.max) {
    throw badRequest(
      rule.min === rule.max
        ? `Name attribute ${label} must be exactly ${rule.min} characters`
        : `Name attribute ${label} must be ${rule.min}–${rule.max} characters`,
    );
  }
  switch (rule.kind) {
    case 'printable':
      if (!isPrintableString(value)) throw badRequest(`Name attribute ${label} is not a valid PrintableString`);
      return encodePrintableString(value);
    case 'ia5':
      if (!isIa5String(value)) throw badRequest(`Name attribute ${label} is not a valid IA5String`);
      return encodeIa5String(value);
    case 'utf8':
      return encodeUtf8String(value);
  }
}

/**
 * DER Name, one attribute per RDN, in the given order (the first is the most significant, as
 * stored). UTF8String for DirectoryString attributes (RFC 5280 §4.1.2.4); PrintableString for
 * C and serialNumber, IA5String for emailAddress and DC, as RFC 5280 Appendix A defines them.
 * Throws badRequest for an unknown type, an empty or over-long value, or a value not encodable
 * in its string type. An empty list gives the empty Name (30 00).
 */
export function encodeName(attrs: RdnAttribute[]): Buffer {
  const rdns = attrs.map((a) => {
    const oid = attrOid(a);
    const atv = encodeSequence(encodeOid(oid), encodeAttrValue(oid, a.type || oid, a.value));
    return encodeTlv(TAG.SET, atv);
  });
  return encodeSequence(...rdns);
}

const utf8Strict = new TextDecoder('utf-8', { fatal: true });

/** A DirectoryString-like value as text, or null if `t` is not a string type. */
export function decodeStringValue(buf: Buffer, t: Tlv): string | null {
  const v = buf.subarray(t.valueStart, t.end);
  switch (t.tag) {
    case TAG.UTF8_STRING:
      try {
        return utf8Strict.decode(v);
      } catch {
        throw new DerError('malformed', 'UTF8String is not valid UTF-8');
      }
    case TAG.PRINTABLE_STRING:
    case TAG.IA5_STRING:
    case TAG.VISIBLE_STRING:
    case TAG.NUMERIC_STRING:
    case TAG.TELETEX_STRING: // T.61; in practice latin-1
      return v.toString('latin1');
    case TAG.BMP_STRING: {
      if (v.length % 2) throw new DerError('malformed', 'BMPString has odd length');
      const sw = Buffer.from(v).swap16();
      return sw.toString('utf16le');
    }
    case TAG.UNIVERSAL_STRING: {
      if (v.length % 4) throw new DerError('malformed', 'UniversalString length is not a multiple of 4');
      let s = '';
      for (let i = 0; i < v.length; i += 4) {
        const cp = v.readUInt32BE(i);
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) throw new DerError('malformed', 'invalid UniversalString');
        s += String.fromCodePoint(cp);
      }
      return s;
    }
    default:
      return null;
  }
}

/** Decodes a Name element inside `buf` (internal form used by csr.ts). */
export function decodeNameAt(buf: Buffer, name: Tlv): RdnAttribute[] {
  expectTag(name, TAG.SEQUENCE, 'Name SEQUENCE');
  const out: RdnAttribute[] = [];
  for (const rdn of readChildren(buf, name)) {
    expectTag(rdn, TAG.SET, 'RelativeDistinguishedName SET');
    const atvs = readChildren(buf, rdn);
    if (atvs.length === 0) throw new DerError('malformed', 'empty RelativeDistinguishedName');
    for (const atv of atvs) {
      expectTag(atv, TAG.SEQUENCE, 'AttributeTypeAndValue SEQUENCE');
      const [type, value, extra] = readChildren(buf, atv);
      if (type === undefined || value === undefined || extra !== undefined) {
        throw new DerError('malformed', 'AttributeTypeAndValue must have exactly a type and a value');
      }
      const oid = decodeOid(buf, type);
      const s = decodeStringValue(buf, value);
      out.push({
        type: dnShortName(oid) ?? oid,
        oid,
        value: s ?? '#' + buf.subarray(value.start, value.end).toString('hex'),
      });
    }
  }
  return out;
}

/**
 * Decodes a DER Name into its attributes in stored order. Multi-valued RDNs are flattened.
 * Throws badRequest if `der` is not exactly one well-formed Name.
 */
export function decodeName(der: Buffer): RdnAttribute[] {
  try {
    return decodeNameAt(der, readWhole(der, 'Name'));
  } catch (err) {
    throw asBadRequest(err, 'Name');
  }
}

function escapeRdnValue(v: string): string {
  if (/^#([0-9a-f]{2})+$/.test(v)) return v; // hex form of a non-string value (RFC 4514 §2.4)
  let s = v.replace(/[\\",+;<>]/g, (c) => '\\' + c).replace(/\0/g, '\\00');
  if (s.startsWith('#') || s.startsWith(' ')) s = '\\' + s;
  if (s.endsWith(' ') && !s.endsWith('\\ ')) s = s.slice(0, -1) + '\\ ';
  return s;
}

/**
 * Display form `CN=x, O=y` in stored order (openssl's default order, not RFC 4514's reversed
 * one); special characters escaped as in RFC 4514 §2.4.
 */
export function formatName(attrs: RdnAttribute[]): string {
  return attrs.map((a) => `${a.type || a.oid}=${escapeRdnValue(a.value)}`).join(', ');
}

// ---------------------------------------------------------------------------- GeneralNames

const LABEL_RE = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/**
 * True for a preferred-name-syntax hostname (RFC 5280 §4.2.1.6, RFC 1034 §3.5 as relaxed by
 * RFC 1123 §2.1): LDH labels of 1–63 octets, at most 253 octets. A leading `*.` is accepted as
 * a plain label; whether a wildcard may be issued is policy, not syntax.
 */
export function isValidDnsName(name: string): boolean {
  if (name.length === 0 || name.length > 253) return false;
  const labels = name.split('.');
  return labels.every((l, i) => (i === 0 && l === '*' && labels.length > 1) || LABEL_RE.test(l));
}

const IPV4_RE = /^(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}$/;

function parseIpv4(s: string): Buffer | null {
  if (!IPV4_RE.test(s)) return null;
  return Buffer.from(s.split('.').map(Number));
}

function parseIpv6(s: string): Buffer | null {
  if (!/^[0-9A-Fa-f:.]+$/.test(s)) return null;
  let tail: Buffer | null = null;
  let text = s;
  const lastColon = s.lastIndexOf(':');
  if (s.includes('.')) {
    tail = parseIpv4(s.slice(lastColon + 1));
    if (tail === null) return null;
    text = s.slice(0, lastColon + 1) + '0:0'; // stand-in for the 32 IPv4 bits
  }
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const parseGroups = (h: string): number[] | null => {
    if (h === '') return [];
    const out: number[] = [];
    for (const g of h.split(':')) {
      if (!/^[0-9A-Fa-f]{1,4}$/.test(g)) return null;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const head = parseGroups(halves[0]!);
  const rest = halves.length === 2 ? parseGroups(halves[1]!) : [];
  if (head === null || rest === null) return null;
  let groups: number[];
  if (halves.length === 2) {
    const missing = 8 - head.length - rest.length;
    if (missing < 1) return null; // '::' stands for at least one group (RFC 4291 §2.2)
    groups = [...head, ...new Array<number>(missing).fill(0), ...rest];
  } else {
    groups = head;
  }
  if (groups.length !== 8) return null;
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(g, i * 2));
  if (tail) tail.copy(out, 12);
  return out;
}

/**
 * IP address text → 4 or 16 octets for iPAddress (RFC 5280 §4.2.1.6: network byte order,
 * RFC 791 / RFC 2460). Dotted-quad IPv4 without leading zeros, or RFC 4291 §2.2 IPv6 text
 * (no zone id, no prefix). Returns null if `s` is neither.
 */
export function parseIpAddress(s: string): Buffer | null {
  return parseIpv4(s) ?? (s.includes(':') ? parseIpv6(s) : null);
}

/** 4 or 16 octets → dotted IPv4 or RFC 5952 §4 canonical IPv6 text; null for other lengths. */
export function formatIpAddress(b: Uint8Array): string | null {
  if (b.length === 4) return Array.from(b).join('.');
  if (b.length !== 16) return null;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((b[i]! << 8) | b[i + 1]!);
  // RFC 5952 §5: IPv4-mapped addresses keep the dotted quad
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  }
  // RFC 5952 §4.2: compress the longest run (≥ 2) of zero groups, the first one on a tie
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16)); // §4.3 lowercase, §4.1 no leading zeros
  if (bestStart < 0) return hex.join(':');
  return hex.slice(0, bestStart).join(':') + '::' + hex.slice(bestStart + bestLen).join(':');
}

const URI_RE = /^[A-Za-z][A-Za-z0-9+.-]*:[\x21-\x7e]+$/;

/**
 * One DER GeneralName for a SAN entry (RFC 5280 §4.2.1.6). Validates as described on SanEntry;
 * throws badRequest for an invalid value. Also used for CDP and AIA URIs.
 */
export function encodeGeneralName(e: SanEntry): Buffer {
  const v = e.value;
  if (typeof v !== 'string' || v.length === 0) throw badRequest(`SAN ${e.type} value is empty`);
  switch (e.type) {
    case 'dns':
      // RFC 5280 §4.2.1.6: dNSName is IA5String in the preferred name syntax
      if (!isIa5String(v) || !isValidDnsName(v)) throw badRequest(`SAN dNSName is not a valid hostname: ${v}`);
      return encodeTlv(contextTag(2, false), Buffer.from(v, 'latin1'));
    case 'email': {
      // RFC 5280 §4.2.1.6: rfc822Name is an IA5String Mailbox (RFC 5321 §4.1.2), local@domain
      const at = v.lastIndexOf('@');
      // printable ASCII without spaces or controls (so also IA5)
      if (!/^[\x21-\x7e]+$/.test(v) || at <= 0 || !isValidDnsName(v.slice(at + 1))) {
        throw badRequest(`SAN rfc822Name is not a valid mailbox: ${v}`);
      }
      return encodeTlv(contextTag(1, false), Buffer.from(v, 'latin1'));
    }
    case 'uri':
      // RFC 5280 §4.2.1.6: uniformResourceIdentifier is an IA5String absolute URI (RFC 3986 §4.3)
      if (!URI_RE.test(v)) throw badRequest(`SAN uniformResourceIdentifier is not a valid absolute URI: ${v}`);
      return encodeTlv(contextTag(6, false), Buffer.from(v, 'latin1'));
    case 'ip': {
      const octets = parseIpAddress(v);
      if (octets === null) throw badRequest(`SAN iPAddress is not an IPv4 or IPv6 address: ${v}`);
      return encodeTlv(contextTag(7, false), octets);
    }
    case 'otherName': {
      const semi = v.indexOf(';');
      const oid = v.slice(0, semi);
      const hex = v.slice(semi + 1);
      if (semi < 0 || !isDottedOid(oid) || !/^([0-9a-fA-F]{2})+$/.test(hex)) {
        throw badRequest(`SAN otherName must be '<oid>;<hex DER>': ${v}`);
      }
      const inner = Buffer.from(hex, 'hex');
      try {
        readWhole(inner, 'otherName value');
      } catch {
        throw badRequest(`SAN otherName value is not one DER element: ${v}`);
      }
      // OtherName ::= SEQUENCE { type-id OID, value [0] EXPLICIT ANY } — [0] IMPLICIT in GeneralName
      return encodeTlv(contextTag(0, true), encodeOid(oid), encodeTlv(contextTag(0, true), inner));
    }
    default:
      throw badRequest(`unsupported SAN type: ${String((e as { type: unknown }).type)}`);
  }
}

/**
 * DER GeneralNames (the subjectAltName extension value), entries in the given order.
 * Throws badRequest for an empty list (SIZE (1..MAX), RFC 5280 §4.2.1.6) or an invalid entry.
 */
export function encodeGeneralNames(sans: SanEntry[]): Buffer {
  if (sans.length === 0) throw badRequest('GeneralNames must not be empty');
  return encodeSequence(...sans.map(encodeGeneralName));
}

const GENERAL_NAME_LABELS: Record<number, string> = {
  3: 'x400Address',
  4: 'directoryName',
  5: 'ediPartyName',
  8: 'registeredID',
};

function requireIa5(buf: Buffer, t: Tlv, what: string): string {
  const v = buf.subarray(t.valueStart, t.end);
  for (const b of v) if (b > 0x7f) throw new DerError('malformed', `${what} is not an IA5String`);
  if (v.length === 0) throw new DerError('malformed', `${what} is empty`);
  return v.toString('latin1');
}

/** Decodes a GeneralNames element inside `buf` (internal form used by csr.ts). */
export function decodeGeneralNamesAt(buf: Buffer, seq: Tlv): SanEntry[] {
  expectTag(seq, TAG.SEQUENCE, 'GeneralNames SEQUENCE');
  const out: SanEntry[] = [];
  const names = readChildren(buf, seq);
  if (names.length === 0) throw new DerError('malformed', 'GeneralNames is empty');
  for (const t of names) {
    switch (t.tag) {
      case 0x82:
        out.push({ type: 'dns', value: requireIa5(buf, t, 'dNSName') });
        break;
      case 0x81:
        out.push({ type: 'email', value: requireIa5(buf, t, 'rfc822Name') });
        break;
      case 0x86:
        out.push({ type: 'uri', value: requireIa5(buf, t, 'uniformResourceIdentifier') });
        break;
      case 0x87: {
        const ip = formatIpAddress(buf.subarray(t.valueStart, t.end));
        if (ip === null) throw new DerError('malformed', 'iPAddress must be 4 or 16 octets');
        out.push({ type: 'ip', value: ip });
        break;
      }
      case 0xa0: {
        const [type, value, extra] = readChildren(buf, t);
        if (type === undefined || value === undefined || extra !== undefined) {
          throw new DerError('malformed', 'otherName must have a type-id and a value');
        }
        const oid = decodeOid(buf, type);
        expectTag(value, contextTag(0, true), 'otherName value [0]');
        const inner = readTlv(buf, value.valueStart, value.end);
        if (inner.end !== value.end) throw new DerError('malformed', 'otherName value has trailing data');
        out.push({ type: 'otherName', value: `${oid};${buf.subarray(inner.start, inner.end).toString('hex')}` });
        break;
      }
      default: {
        const n = t.tag & 0x1f;
        throw new DerError('malformed', `unsupported GeneralName type [${n}] ${GENERAL_NAME_LABELS[n] ?? ''}`.trimEnd());
      }
    }
  }
  return out;
}

/**
 * Decodes DER GeneralNames into SAN entries. dns/email/uri are checked to be non-empty
 * IA5String only (hostname syntax is checked when encoding, so policy can report it); iPAddress
 * must be 4 or 16 octets. directoryName, registeredID, x400Address and ediPartyName are refused
 * (badRequest) rather than silently dropped.
 */
export function decodeGeneralNames(der: Buffer): SanEntry[] {
  try {
    return decodeGeneralNamesAt(der, readWhole(der, 'GeneralNames'));
  } catch (err) {
    throw asBadRequest(err, 'GeneralNames');
  }
}

function asBadRequest(err: unknown, what: string): unknown {
  if (err instanceof DerError) {
    return badRequest(err.reason === 'truncated' ? `${what} DER is truncated` : `${what} DER is malformed: ${err.message}`, err);
  }
  return err;
}
