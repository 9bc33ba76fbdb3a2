/**
 * Encoders/decoders for the extension values shared by certificates, CSRs and CRLs
 * (RFC 5280 §4.2). Each encoder returns the extnValue content (what goes inside the OCTET STRING);
 * `encodeExtension` wraps it.
 */
import { badRequest } from '../core/errors.js';
import {
  DerError,
  TAG,
  decodeBitString,
  decodeBoolean,
  decodeInteger,
  decodeOid,
  encodeBitString,
  encodeBoolean,
  encodeInteger,
  encodeOctetString,
  encodeOid,
  encodeSequence,
  expectTag,
  readChildren,
  type Tlv,
} from './der.js';
import { ekuName, ekuOid } from './oids.js';

/** KeyUsage named bits in bit order (RFC 5280 §4.2.1.3). */
export const KEY_USAGE_NAMES = [
  'digitalSignature',
  'nonRepudiation', // a.k.a. contentCommitment
  'keyEncipherment',
  'dataEncipherment',
  'keyAgreement',
  'keyCertSign',
  'cRLSign',
  'encipherOnly',
  'decipherOnly',
] as const;

/** One KeyUsage bit name. */
export type KeyUsageName = (typeof KEY_USAGE_NAMES)[number];

/** True if `s` is a KeyUsage bit name. */
export function isKeyUsageName(s: string): s is KeyUsageName {
  return (KEY_USAGE_NAMES as readonly string[]).includes(s);
}

/**
 * One Extension: SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }.
 * `critical` is omitted when false (DER: DEFAULT values are not encoded, X.690 §11.5).
 */
export function encodeExtension(oid: string, critical: boolean, value: Uint8Array): Buffer {
  return critical
    ? encodeSequence(encodeOid(oid), encodeBoolean(true), encodeOctetString(value))
    : encodeSequence(encodeOid(oid), encodeOctetString(value));
}

/**
 * KeyUsage BIT STRING as a DER named bit list: trailing zero bits removed (X.690 §11.2.2).
 * Throws badRequest for an unknown name or an empty list (RFC 5280 §4.2.1.3: at least one bit).
 */
export function encodeKeyUsageValue(names: readonly string[]): Buffer {
  let bits = 0;
  for (const n of names) {
    const i = (KEY_USAGE_NAMES as readonly string[]).indexOf(n);
    if (i < 0) throw badRequest(`unknown keyUsage: ${n}`);
    bits |= 1 << i;
  }
  if (bits === 0) throw badRequest('keyUsage must assert at least one bit');
  const highest = 31 - Math.clz32(bits); // index of the last named bit set
  const nBytes = (highest >> 3) + 1;
  const bytes = Buffer.alloc(nBytes);
  for (let i = 0; i <= highest; i++) if (bits & (1 << i)) bytes[i >> 3]! |= 0x80 >> (i & 7);
  return encodeBitString(bytes, nBytes * 8 - (highest + 1));
}

/** KeyUsage names from a BIT STRING element (unknown bits beyond decipherOnly are ignored). */
export function decodeKeyUsageAt(buf: Buffer, t: Tlv): KeyUsageName[] {
  const { unusedBits, bytes } = decodeBitString(buf, t);
  const out: KeyUsageName[] = [];
  const total = bytes.length * 8 - unusedBits;
  for (let i = 0; i < Math.min(total, KEY_USAGE_NAMES.length); i++) {
    if (bytes[i >> 3]! & (0x80 >> (i & 7))) out.push(KEY_USAGE_NAMES[i]!);
  }
  return out;
}

/**
 * ExtKeyUsageSyntax ::= SEQUENCE SIZE (1..MAX) OF KeyPurposeId (RFC 5280 §4.2.1.12).
 * Accepts names from OID_EKU or dotted OIDs; throws badRequest otherwise.
 */
export function encodeExtKeyUsageValue(purposes: readonly string[]): Buffer {
  if (purposes.length === 0) throw badRequest('extendedKeyUsage must not be empty');
  return encodeSequence(
    ...purposes.map((p) => {
      const oid = ekuOid(p);
      if (oid === undefined) throw badRequest(`unknown extendedKeyUsage: ${p}`);
      return encodeOid(oid);
    }),
  );
}

/** EKU names (or dotted OIDs for purposes without a name) from an ExtKeyUsageSyntax element. */
export function decodeExtKeyUsageAt(buf: Buffer, t: Tlv): string[] {
  expectTag(t, TAG.SEQUENCE, 'ExtKeyUsageSyntax SEQUENCE');
  const items = readChildren(buf, t);
  if (items.length === 0) throw new DerError('malformed', 'ExtKeyUsageSyntax is empty');
  return items.map((i) => ekuName(decodeOid(buf, i)));
}

/**
 * BasicConstraints ::= SEQUENCE { cA BOOLEAN DEFAULT FALSE, pathLenConstraint INTEGER OPTIONAL }
 * (RFC 5280 §4.2.1.9). cA FALSE is the DEFAULT and therefore omitted (X.690 §11.5).
 */
export function encodeBasicConstraintsValue(bc: { ca: boolean; pathLen?: number }): Buffer {
  if (bc.pathLen !== undefined) {
    // RFC 5280 §4.2.1.9: pathLenConstraint only when cA is asserted
    if (!bc.ca) throw badRequest('basicConstraints pathLen requires ca: true');
    if (!Number.isSafeInteger(bc.pathLen) || bc.pathLen < 0) throw badRequest('basicConstraints pathLen must be ≥ 0');
  }
  const parts: Buffer[] = [];
  if (bc.ca) parts.push(encodeBoolean(true));
  if (bc.pathLen !== undefined) parts.push(encodeInteger(bc.pathLen));
  return encodeSequence(...parts);
}

/** Decodes a BasicConstraints element. */
export function decodeBasicConstraintsAt(buf: Buffer, t: Tlv): { ca: boolean; pathLen?: number } {
  expectTag(t, TAG.SEQUENCE, 'BasicConstraints SEQUENCE');
  const items = readChildren(buf, t);
  let ca = false;
  let pathLen: number | undefined;
  let i = 0;
  if (items[i]?.tag === TAG.BOOLEAN) {
    ca = decodeBoolean(buf, items[i]!);
    // DER forbids encoding the DEFAULT; openssl tolerates it, and so do we when reading
    i++;
  }
  if (items[i]?.tag === TAG.INTEGER) {
    const v = decodeInteger(buf, items[i]!);
    if (v < 0n || v > BigInt(Number.MAX_SAFE_INTEGER)) throw new DerError('malformed', 'pathLenConstraint out of range');
    pathLen = Number(v);
    i++;
  }
  if (i !== items.length) throw new DerError('malformed', 'BasicConstraints has unexpected fields');
  return pathLen === undefined ? { ca } : { ca, pathLen };
}
