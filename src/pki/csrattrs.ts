/**
 * EST CSR Attributes (RFC 7030 §4.5.2, ASN.1 as corrected by RFC 8951 §4): what the server asks
 * an enrolling client to put into its PKCS#10 request.
 *
 *   CsrAttrs  ::= SEQUENCE SIZE (0..MAX) OF AttrOrOID
 *   AttrOrOID ::= CHOICE { oid OBJECT IDENTIFIER, attribute Attribute }
 *   Attribute ::= SEQUENCE { type OBJECT IDENTIFIER, values SET SIZE (1..MAX) OF ANY }
 */
import { badRequest } from '../core/errors.js';
import {
  DerError,
  TAG,
  decodeOid,
  encodeInteger,
  encodeOid,
  encodeSequence,
  encodeSetOf,
  expectTag,
  isDottedOid,
  readChildren,
  readWhole,
} from './der.js';
import { OID_ATTR, OID_CURVE, OID_EXT, OID_KEY, OID_SIG } from './oids.js';

/**
 * One AttrOrOID: a bare OID (an attribute type or algorithm the server wants used), or an
 * attribute with values, each value being one complete DER element.
 */
export type CsrAttr = { oid: string } | { attribute: string; values: Buffer[] };

/** Key types a profile can allow, as named in profile configuration. */
export type CsrAttrKeyType = 'P-256' | 'P-384' | 'P-521' | 'ed25519' | 'rsa';

/** The parts of an enrollment profile that the CSR attributes response expresses. */
export interface CsrAttrsProfile {
  keyTypes: readonly CsrAttrKeyType[];
  /** Smallest RSA modulus accepted, in bits (used only when 'rsa' is allowed). */
  rsaMinBits: number;
  /** The client must send a challengePassword (carrying the TLS channel binding, RFC 7030 §3.5). */
  challengePassword: boolean;
  /** The client may request subjectAltName. */
  sanAllowed: boolean;
}

function checkOid(oid: string, what: string): void {
  if (typeof oid !== 'string' || !isDottedOid(oid)) throw badRequest(`CSR attributes: ${what} is not a valid OID: ${String(oid)}`);
}

/**
 * Encodes CsrAttrs. Attribute values are written as a DER SET OF, i.e. sorted by encoding
 * (X.690 §11.6), so decoding gives them back in that order. Throws badRequest for an invalid OID,
 * an attribute without values (SIZE (1..MAX)), or a value that is not exactly one DER element.
 * An empty list encodes as an empty SEQUENCE (30 00).
 */
export function encodeCsrAttrs(items: CsrAttr[]): Buffer {
  const parts = items.map((item, i) => {
    if ('oid' in item) {
      checkOid(item.oid, `item ${i}`);
      return encodeOid(item.oid);
    }
    checkOid(item.attribute, `attribute ${i} type`);
    if (item.values.length === 0) throw badRequest(`CSR attributes: attribute ${item.attribute} has no values`);
    for (const v of item.values) {
      try {
        readWhole(v, 'attribute value');
      } catch (err) {
        throw badRequest(`CSR attributes: a value of attribute ${item.attribute} is not one DER element`, err);
      }
    }
    return encodeSequence(encodeOid(item.attribute), encodeSetOf(item.values));
  });
  return encodeSequence(...parts);
}

/**
 * Decodes CsrAttrs strictly: the buffer must be exactly one DER SEQUENCE whose elements are each
 * an OID or an Attribute SEQUENCE { OID, non-empty SET }. Values are returned as copies of their
 * full DER encodings, in encoded order. Throws badRequest otherwise.
 */
export function decodeCsrAttrs(der: Buffer): CsrAttr[] {
  try {
    const top = expectTag(readWhole(der, 'CsrAttrs'), TAG.SEQUENCE, 'CsrAttrs SEQUENCE');
    return readChildren(der, top).map((t): CsrAttr => {
      if (t.tag === TAG.OID) return { oid: decodeOid(der, t) };
      expectTag(t, TAG.SEQUENCE, 'AttrOrOID (OID or Attribute SEQUENCE)');
      const [typeT, valuesT, extra] = readChildren(der, t);
      const attribute = decodeOid(der, expectTag(typeT, TAG.OID, 'Attribute type'));
      const values = readChildren(der, expectTag(valuesT, TAG.SET, 'Attribute values SET'));
      if (extra !== undefined) throw new DerError('malformed', 'Attribute has extra fields');
      if (values.length === 0) throw new DerError('malformed', `attribute ${attribute} has no values`);
      return { attribute, values: values.map((v) => Buffer.from(der.subarray(v.start, v.end))) };
    });
  } catch (err) {
    if (err instanceof DerError) {
      throw badRequest(err.reason === 'truncated' ? 'CSR attributes DER is truncated' : `CSR attributes DER is malformed: ${err.message}`, err);
    }
    throw err;
  }
}

/** An OID as an attribute value: a private copy, as encodeOid's cached buffers must not be mutated. */
function oidValue(oid: string): Buffer {
  return Buffer.from(encodeOid(oid));
}

/** Values of a SET OF in DER order, so a decode of the encoding gives back the same list. */
function derOrdered(values: Buffer[]): Buffer[] {
  return [...values].sort((a, b) => Buffer.compare(a, b));
}

/**
 * The CSR attributes that describe a profile, in the style of the RFC 7030 §4.5.2 example as
 * clarified by draft-ietf-lamps-rfc7030-csrattrs (published as RFC 9908):
 *  - challengePassword OID when the profile wants one (EST channel binding, RFC 7030 §3.5);
 *  - EC keys: an ecPublicKey attribute whose values are the allowed named-curve OIDs, then the
 *    ecdsa-with-SHA256 OID, plus ecdsa-with-SHA384 when P-384 or P-521 is allowed;
 *  - Ed25519: its OID (RFC 8410 §3: the same OID names the key and the signature algorithm);
 *  - RSA: an rsaEncryption attribute with one INTEGER value, the minimum modulus size in bits (the
 *    draft's way of asking for a key size), then the sha256WithRSAEncryption OID;
 *  - subjectAltName allowed: an extensionRequest attribute whose value is the subjectAltName OID.
 * Throws badRequest when 'rsa' is allowed with a non-positive or non-integer rsaMinBits.
 */
export function csrAttrsForProfile(p: CsrAttrsProfile): CsrAttr[] {
  const kinds = new Set(p.keyTypes);
  const out: CsrAttr[] = [];
  if (p.challengePassword) out.push({ oid: OID_ATTR.challengePassword });

  const curves = (['P-256', 'P-384', 'P-521'] as const).filter((c) => kinds.has(c));
  if (curves.length > 0) {
    // RFC 5480 §2.1.1.1: the curve is named by its OID, the parameter of id-ecPublicKey
    out.push({ attribute: OID_KEY.ecPublicKey, values: derOrdered(curves.map((c) => oidValue(OID_CURVE[c]))) });
    out.push({ oid: OID_SIG.ecdsaWithSha256 });
    if (kinds.has('P-384') || kinds.has('P-521')) out.push({ oid: OID_SIG.ecdsaWithSha384 });
  }

  if (kinds.has('ed25519')) out.push({ oid: OID_KEY.ed25519 });

  if (kinds.has('rsa')) {
    if (!Number.isSafeInteger(p.rsaMinBits) || p.rsaMinBits <= 0) {
      throw badRequest(`CSR attributes: rsaMinBits must be a positive integer, got ${p.rsaMinBits}`);
    }
    out.push({ attribute: OID_KEY.rsaEncryption, values: [encodeInteger(p.rsaMinBits)] });
    out.push({ oid: OID_SIG.sha256WithRsa });
  }

  if (p.sanAllowed) {
    // The RFC 7030 §4.5.2 example names a wanted extension by giving the extension's OID as the
    // value of an extensionRequest attribute (that is how it asks for macAddress). Such a value is
    // not the Extensions structure that RFC 2985 §5.4.2 defines for extensionRequest; this is the
    // ambiguity RFC 9908 (draft-ietf-lamps-rfc7030-csrattrs) sets out to clarify, adding forms that
    // carry real extension values or a whole CSR template. The original example's form is used
    // here because it is the one existing EST clients know.
    out.push({ attribute: OID_ATTR.extensionRequest, values: [oidValue(OID_EXT.subjectAltName)] });
  }
  return out;
}
