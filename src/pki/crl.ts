/**
 * v2 CRL building (RFC 5280 §5): TBSCertList from parts, then the signed CertificateList.
 */
import { badRequest } from '../core/errors.js';
import { algorithmIdentifierDerShared, type SignatureAlgorithm } from './algorithms.js';
import { assembleSigned, encodeCrlDistributionPointsValue } from './cert-template.js';
import {
  TAG,
  contextTag,
  encodeBoolean,
  encodeExplicit,
  encodeGeneralizedTime,
  encodeInteger,
  encodeLength,
  encodeSequence,
  encodeTime,
  encodeTlv,
  encodeUnsignedInteger,
  integerValue,
} from './der.js';
import { encodeExtension } from './extensions.js';
import { decodeName, encodeGeneralName } from './names.js';
import { OID_EXT } from './oids.js';

/** CRLReason names (RFC 5280 §5.3.1); value 7 is not used. */
export type RevocationReasonName =
  | 'unspecified'
  | 'keyCompromise'
  | 'cACompromise'
  | 'affiliationChanged'
  | 'superseded'
  | 'cessationOfOperation'
  | 'certificateHold'
  | 'removeFromCRL'
  | 'privilegeWithdrawn'
  | 'aACompromise';

/** CRLReason ENUMERATED values (RFC 5280 §5.3.1). */
export const REVOCATION_REASON_CODES: Readonly<Record<RevocationReasonName, number>> = Object.freeze({
  unspecified: 0,
  keyCompromise: 1,
  cACompromise: 2,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
  certificateHold: 6,
  removeFromCRL: 8,
  privilegeWithdrawn: 9,
  aACompromise: 10,
});

/** One revoked certificate. */
export interface CrlEntry {
  /** Serial magnitude octets as stored (positive, minimal). */
  serial: Buffer;
  revocationDate: Date;
  /** Omitted from the entry when 'unspecified' or absent (RFC 5280 §5.3.1). */
  reason?: RevocationReasonName;
  /** invalidityDate entry extension, always GeneralizedTime (RFC 5280 §5.3.2). */
  invalidityDate?: Date;
}

/** Everything a TBSCertList needs. */
export interface TbsCertListParams {
  /** Issuer's subject Name, byte-for-byte (RFC 5280 §5.1.2.3). */
  issuerNameDer: Buffer;
  /** Issuer's SKI (RFC 5280 §5.2.1: conforming CRL issuers MUST include AKI). */
  authorityKeyId: Buffer;
  signatureAlgorithm: SignatureAlgorithm;
  thisUpdate: Date;
  /** RFC 5280 §5.1.2.5: conforming CRL issuers MUST include nextUpdate. */
  nextUpdate: Date;
  /** 0 ≤ n < 2^159 (RFC 5280 §5.2.3: at most 20 octets), monotonic per issuer and scope. */
  crlNumber: bigint;
  entries: CrlEntry[];
  /**
   * Entries already encoded (each an encodeCrlEntry result), concatenated in chunks: how large CRLs
   * are built from stored bytes without one object per entry. Listed after `entries`; the caller
   * guarantees distinct serials.
   */
  encodedEntries?: Buffer[];
  /** Makes this a delta CRL against that base CRL number (critical, RFC 5280 §5.2.4). */
  deltaCrlIndicator?: bigint;
  /** Freshest CRL (delta CRL location) of a complete CRL (RFC 5280 §5.2.6). */
  freshestCrlUrl?: string;
  /**
   * Issuing Distribution Point (critical, RFC 5280 §5.2.5) for partitioned (sharded) CRLs:
   * the URL this CRL is published at, and its scope. (Addition to the original brief.)
   */
  issuingDistributionPoint?: { url: string; onlyContainsUserCerts?: boolean; onlyContainsCACerts?: boolean };
}

const MAX_CRL_NUMBER = 1n << 159n; // 20 octets of positive two's complement

function checkDate(d: Date, what: string): void {
  if (!(d instanceof Date) || Number.isNaN(d.getTime())) throw badRequest(`${what} is not a valid date`);
  const y = d.getUTCFullYear();
  if (y < 1950 || y > 9999) throw badRequest(`${what} is out of range`);
}

/**
 * One revokedCertificates element (RFC 5280 §5.1.2.6): serial, revocationDate, and the reasonCode
 * (omitted for unspecified, §5.3.1) and invalidityDate (§5.3.2) entry extensions.
 */
export function encodeCrlEntry(e: CrlEntry, isDelta: boolean): Buffer {
  if (!Buffer.isBuffer(e.serial) || e.serial.length === 0 || e.serial[0] === 0) {
    throw badRequest('CRL entry serial must be positive and minimal (RFC 5280 §4.1.2.2)');
  }
  if (e.serial.length > 20) throw badRequest('CRL entry serial is longer than 20 octets');
  checkDate(e.revocationDate, 'revocationDate');
  const exts: Buffer[] = [];
  if (e.reason !== undefined && e.reason !== 'unspecified') {
    const code = Object.hasOwn(REVOCATION_REASON_CODES, e.reason) ? REVOCATION_REASON_CODES[e.reason] : undefined;
    if (code === undefined) throw badRequest(`unknown revocation reason: ${String(e.reason)}`);
    // RFC 5280 §5.3.1: removeFromCRL only appears in delta CRLs
    if (e.reason === 'removeFromCRL' && !isDelta) throw badRequest('removeFromCRL is only allowed in a delta CRL');
    exts.push(encodeExtension(OID_EXT.reasonCode, false, encodeTlv(TAG.ENUMERATED, integerValue(BigInt(code)))));
  }
  if (e.invalidityDate !== undefined) {
    checkDate(e.invalidityDate, 'invalidityDate');
    exts.push(encodeExtension(OID_EXT.invalidityDate, false, encodeGeneralizedTime(e.invalidityDate)));
  }
  const parts = [encodeUnsignedInteger(e.serial), encodeTime(e.revocationDate)];
  if (exts.length > 0) parts.push(encodeSequence(...exts));
  return encodeSequence(...parts);
}

function checkCrlNumber(n: bigint, what: string): void {
  if (typeof n !== 'bigint' || n < 0n || n >= MAX_CRL_NUMBER) throw badRequest(`${what} must be in 0 … 2^159−1 (RFC 5280 §5.2.3)`);
}

/**
 * Builds a v2 TBSCertList (RFC 5280 §5.1.2). revokedCertificates is omitted when there are no
 * entries (§5.1.2.6). CRL extensions in order: authorityKeyIdentifier, cRLNumber,
 * deltaCRLIndicator (critical), issuingDistributionPoint (critical), freshestCRL.
 * Throws badRequest for invalid input (duplicate serials, nextUpdate before thisUpdate, …).
 */
export function buildTbsCertList(p: TbsCertListParams): Buffer {
  const sigAlg = algorithmIdentifierDerShared(p.signatureAlgorithm);
  decodeName(p.issuerNameDer); // throws badRequest unless one well-formed Name
  if (p.issuerNameDer.length <= 2) throw badRequest('CRL issuer Name must not be empty (RFC 5280 §5.1.2.3)');
  if (!Buffer.isBuffer(p.authorityKeyId) || p.authorityKeyId.length === 0) throw badRequest('authorityKeyId must not be empty');
  checkDate(p.thisUpdate, 'thisUpdate');
  checkDate(p.nextUpdate, 'nextUpdate');
  if (Math.floor(p.nextUpdate.getTime() / 1000) < Math.floor(p.thisUpdate.getTime() / 1000)) {
    throw badRequest('nextUpdate is before thisUpdate');
  }
  checkCrlNumber(p.crlNumber, 'crlNumber');
  const isDelta = p.deltaCrlIndicator !== undefined;
  if (isDelta) {
    checkCrlNumber(p.deltaCrlIndicator!, 'deltaCrlIndicator');
    if (p.deltaCrlIndicator! >= p.crlNumber) throw badRequest('deltaCrlIndicator must be below the delta CRL number');
    // RFC 5280 §5.2.6: freshestCRL MUST NOT appear in delta CRLs
    if (p.freshestCrlUrl !== undefined) throw badRequest('a delta CRL must not carry freshestCRL');
  }

  const seen = new Set<string>();
  const entries = p.entries.map((e) => {
    const key = Buffer.isBuffer(e.serial) ? e.serial.toString('hex') : '';
    if (seen.has(key)) throw badRequest(`serial ${key} is listed twice`);
    seen.add(key);
    return encodeCrlEntry(e, isDelta);
  });

  // RFC 5280 §5.2.1 AKI keyIdentifier [0]; §5.2.3 cRLNumber
  const exts: Buffer[] = [
    encodeExtension(OID_EXT.authorityKeyIdentifier, false, encodeSequence(encodeTlv(contextTag(0, false), p.authorityKeyId))),
    encodeExtension(OID_EXT.crlNumber, false, encodeInteger(p.crlNumber)),
  ];
  if (isDelta) exts.push(encodeExtension(OID_EXT.deltaCrlIndicator, true, encodeInteger(p.deltaCrlIndicator!)));
  if (p.issuingDistributionPoint !== undefined) {
    const idp = p.issuingDistributionPoint;
    if (idp.onlyContainsUserCerts && idp.onlyContainsCACerts) {
      throw badRequest('issuingDistributionPoint cannot be both onlyContainsUserCerts and onlyContainsCACerts');
    }
    let uri: Buffer;
    try {
      uri = encodeGeneralName({ type: 'uri', value: idp.url });
    } catch {
      throw badRequest(`issuingDistributionPoint is not a valid URI: ${idp.url}`);
    }
    // IssuingDistributionPoint ::= SEQUENCE { distributionPoint [0] DistributionPointName, onlyContainsUserCerts [1] BOOLEAN DEFAULT FALSE, onlyContainsCACerts [2] ... }
    const fields = [encodeExplicit(0, encodeTlv(contextTag(0, true), uri))];
    if (idp.onlyContainsUserCerts) fields.push(encodeTlv(contextTag(1, false), encodeBoolean(true).subarray(2)));
    if (idp.onlyContainsCACerts) fields.push(encodeTlv(contextTag(2, false), encodeBoolean(true).subarray(2)));
    exts.push(encodeExtension(OID_EXT.issuingDistributionPoint, true, encodeSequence(...fields)));
  }
  if (p.freshestCrlUrl !== undefined) {
    exts.push(encodeExtension(OID_EXT.freshestCrl, false, encodeCrlDistributionPointsValue(p.freshestCrlUrl)));
  }

  const parts: Buffer[] = [
    encodeInteger(1), // version v2 (RFC 5280 §5.1.2.1)
    sigAlg,
    p.issuerNameDer,
    encodeTime(p.thisUpdate), // RFC 5280 §5.1.2.4: UTCTime through 2049
    encodeTime(p.nextUpdate),
  ];
  const encoded = p.encodedEntries?.filter((b) => b.length > 0) ?? [];
  if (entries.length > 0 || encoded.length > 0) {
    // revokedCertificates: header, then the entries as they are, so that a large list is copied
    // once (into the TBS) rather than twice
    let total = 0;
    for (const e of entries) total += e.length;
    for (const e of encoded) total += e.length;
    parts.push(Buffer.concat([Buffer.from([TAG.SEQUENCE]), encodeLength(total)]), ...entries, ...encoded);
  }
  parts.push(encodeExplicit(0, encodeSequence(...exts)));
  return encodeSequence(...parts);
}

/**
 * CertificateList ::= SEQUENCE { tbsCertList, signatureAlgorithm, signatureValue BIT STRING }
 * (RFC 5280 §5.1.1). Throws badRequest if the TBS's signature field differs from `alg`
 * (§5.1.1.2).
 */
export function assembleCrl(tbsDer: Buffer, alg: SignatureAlgorithm, signature: Buffer): Buffer {
  return assembleSigned(tbsDer, alg, signature, 'crl');
}
