/**
 * The fast TBSCertificate builder (RFC 5280 §4.1).
 *
 * Everything that is the same for every certificate of a profile+issuer (issuer Name,
 * signature AlgorithmIdentifier, BasicConstraints, KeyUsage, EKU, AKI, CDP, AIA, policies,
 * ocsp-nocheck) is DER-encoded once by `compileCertTemplate`; `buildTbsCertificate` then only
 * encodes serial, validity, SKI and SAN and concatenates. A generic ASN.1 object model
 * (@peculiar/x509's generator) manages ~400 certificates/s; this path is bounded by the
 * signature itself.
 *
 * Extension order (fixed, documented so the lints and golden tests can rely on it):
 *   basicConstraints, keyUsage, extKeyUsage, subjectKeyIdentifier, authorityKeyIdentifier,
 *   subjectAltName, cRLDistributionPoints, authorityInfoAccess, certificatePolicies,
 *   ocspNoCheck.
 */
import { createHash } from 'node:crypto';
import { badRequest } from '../core/errors.js';
import { algorithmIdentifierDerShared, type SignatureAlgorithm } from './algorithms.js';
import {
  DerError,
  TAG,
  contextTag,
  encodeBitString,
  encodeNull,
  encodeOctetString,
  encodeOid,
  encodeSequence,
  encodeTime,
  encodeTlv,
  encodeUnsignedInteger,
  readChildren,
  readTlv,
  readWhole,
} from './der.js';
import {
  encodeBasicConstraintsValue,
  encodeExtKeyUsageValue,
  encodeExtension,
  encodeKeyUsageValue,
  type KeyUsageName,
} from './extensions.js';
import { decodeName, encodeGeneralName, encodeGeneralNames, type SanEntry } from './names.js';
import { OID_AD, OID_EXT } from './oids.js';
import { parseSpki } from './spki.js';

export type { KeyUsageName } from './extensions.js';

/** What a certificate profile + issuer fixes for every certificate built from the template. */
export interface CertTemplateSpec {
  /** Issuer's subject Name, copied byte-for-byte (RFC 5280 §4.1.2.4 name chaining). */
  issuerNameDer: Buffer;
  /** Issuer's SKI → AKI keyIdentifier (RFC 5280 §4.2.1.1). */
  authorityKeyId: Buffer;
  signatureAlgorithm: SignatureAlgorithm;
  /** Always critical. */
  basicConstraints: { ca: boolean; pathLen?: number };
  /** Critical; DER named-bit-list with trailing zero bits removed (X.690 §11.2.2). */
  keyUsage: KeyUsageName[];
  /** Names or dotted OIDs; non-critical; omitted when absent or empty. */
  extendedKeyUsage?: string[];
  /** One URI, as the fullName of one DistributionPoint. */
  crlDistributionPoint?: string;
  /** AIA id-ad-ocsp. */
  ocspUrl?: string;
  /** AIA id-ad-caIssuers. */
  caIssuersUrl?: string;
  /** id-pkix-ocsp-nocheck with a NULL value (RFC 6960 §4.2.2.2.1). */
  ocspNoCheck?: boolean;
  /** Policy OIDs, no qualifiers. */
  certificatePolicies?: string[];
}

/** A compiled template: pre-encoded pieces. Treat as opaque; `spec` is a frozen copy for lints. */
export interface CertTemplate {
  readonly spec: Readonly<CertTemplateSpec>;
  readonly signatureAlgorithm: SignatureAlgorithm;
}

interface TemplateParts {
  sigAlg: Buffer;
  issuer: Buffer;
  /** BC, KU, EKU extensions, concatenated. */
  head: Buffer;
  /** The AKI extension. */
  aki: Buffer;
  /** CDP, AIA, policies, ocspNoCheck extensions, concatenated. */
  tail: Buffer;
}

const PARTS = new WeakMap<CertTemplate, TemplateParts>();

const VERSION_V3 = Buffer.from([0xa0, 0x03, 0x02, 0x01, 0x02]); // [0] EXPLICIT INTEGER 2 (RFC 5280 §4.1.2.1)
const EMPTY_NAME = Buffer.from([0x30, 0x00]);

function uriGeneralName(url: string, what: string): Buffer {
  try {
    return encodeGeneralName({ type: 'uri', value: url });
  } catch {
    throw badRequest(`${what} is not a valid URI: ${url}`);
  }
}

/**
 * CRLDistributionPoints / FreshestCRL value with one DistributionPoint whose fullName is one URI
 * (RFC 5280 §4.2.1.13): SEQUENCE { SEQUENCE { [0] { [0] { [6] uri } } } }.
 * DistributionPointName is a CHOICE, so its [0] tag is explicit (constructed).
 */
export function encodeCrlDistributionPointsValue(url: string): Buffer {
  const fullName = encodeTlv(contextTag(0, true), uriGeneralName(url, 'CRL distribution point'));
  return encodeSequence(encodeSequence(encodeTlv(contextTag(0, true), fullName)));
}

/** Compiles a template; validates the spec (throws badRequest). */
export function compileCertTemplate(spec: CertTemplateSpec): CertTemplate {
  const sigAlg = algorithmIdentifierDerShared(spec.signatureAlgorithm);
  decodeName(spec.issuerNameDer); // throws badRequest unless exactly one well-formed Name
  if (spec.issuerNameDer.equals(EMPTY_NAME)) throw badRequest('issuer Name must not be empty (RFC 5280 §4.1.2.4)');
  if (!Buffer.isBuffer(spec.authorityKeyId) || spec.authorityKeyId.length === 0) {
    throw badRequest('authorityKeyId must not be empty');
  }
  const bc = spec.basicConstraints;
  // RFC 5280 §4.2.1.3: keyCertSign requires cA; §4.2.1.9: pathLenConstraint requires cA + keyCertSign
  if (spec.keyUsage.includes('keyCertSign') && !bc.ca) throw badRequest('keyUsage keyCertSign requires basicConstraints ca: true');
  if (bc.pathLen !== undefined && !spec.keyUsage.includes('keyCertSign')) {
    throw badRequest('basicConstraints pathLen requires keyUsage keyCertSign');
  }

  const head: Buffer[] = [
    // RFC 5280 §4.2.1.9: critical in CA certificates; we mark it critical always
    encodeExtension(OID_EXT.basicConstraints, true, encodeBasicConstraintsValue(bc)),
    // RFC 5280 §4.2.1.3: SHOULD be critical
    encodeExtension(OID_EXT.keyUsage, true, encodeKeyUsageValue(spec.keyUsage)),
  ];
  if (spec.extendedKeyUsage !== undefined && spec.extendedKeyUsage.length > 0) {
    head.push(encodeExtension(OID_EXT.extKeyUsage, false, encodeExtKeyUsageValue(spec.extendedKeyUsage)));
  }
  // RFC 5280 §4.2.1.1: AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT OCTET STRING }
  const aki = encodeExtension(
    OID_EXT.authorityKeyIdentifier,
    false,
    encodeSequence(encodeTlv(contextTag(0, false), spec.authorityKeyId)),
  );

  const tail: Buffer[] = [];
  if (spec.crlDistributionPoint !== undefined) {
    tail.push(encodeExtension(OID_EXT.crlDistributionPoints, false, encodeCrlDistributionPointsValue(spec.crlDistributionPoint)));
  }
  const access: Buffer[] = [];
  // RFC 5280 §4.2.2.1: AccessDescription ::= SEQUENCE { accessMethod OID, accessLocation GeneralName }
  if (spec.ocspUrl !== undefined) access.push(encodeSequence(encodeOid(OID_AD.ocsp), uriGeneralName(spec.ocspUrl, 'OCSP URL')));
  if (spec.caIssuersUrl !== undefined) {
    access.push(encodeSequence(encodeOid(OID_AD.caIssuers), uriGeneralName(spec.caIssuersUrl, 'caIssuers URL')));
  }
  if (access.length > 0) tail.push(encodeExtension(OID_EXT.authorityInfoAccess, false, encodeSequence(...access)));
  if (spec.certificatePolicies !== undefined && spec.certificatePolicies.length > 0) {
    // RFC 5280 §4.2.1.4: a policy OID MUST NOT appear more than once
    if (new Set(spec.certificatePolicies).size !== spec.certificatePolicies.length) {
      throw badRequest('certificatePolicies contains a duplicate policy');
    }
    const infos = spec.certificatePolicies.map((oid) => {
      try {
        return encodeSequence(encodeOid(oid)); // PolicyInformation without qualifiers
      } catch {
        throw badRequest(`certificate policy is not a dotted OID: ${oid}`);
      }
    });
    tail.push(encodeExtension(OID_EXT.certificatePolicies, false, encodeSequence(...infos)));
  }
  if (spec.ocspNoCheck === true) tail.push(encodeExtension(OID_EXT.ocspNoCheck, false, encodeNull()));

  const frozen: CertTemplateSpec = {
    ...spec,
    issuerNameDer: Buffer.from(spec.issuerNameDer),
    authorityKeyId: Buffer.from(spec.authorityKeyId),
    basicConstraints: Object.freeze({ ...bc }),
    keyUsage: Object.freeze([...spec.keyUsage]) as KeyUsageName[],
  };
  if (spec.extendedKeyUsage) frozen.extendedKeyUsage = Object.freeze([...spec.extendedKeyUsage]) as string[];
  if (spec.certificatePolicies) frozen.certificatePolicies = Object.freeze([...spec.certificatePolicies]) as string[];
  const t: CertTemplate = Object.freeze({ spec: Object.freeze(frozen), signatureAlgorithm: spec.signatureAlgorithm });
  PARTS.set(t, {
    sigAlg,
    issuer: Buffer.from(spec.issuerNameDer),
    head: Buffer.concat(head),
    aki,
    tail: Buffer.concat(tail),
  });
  return t;
}

/** Per-certificate fields. */
export interface TbsFields {
  /** Positive, minimal unsigned magnitude, as from generateSerial (≤ 20 octets once encoded). */
  serial: Buffer;
  /** UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 §4.1.2.5); whole seconds, Z. */
  notBefore: Date;
  notAfter: Date;
  /** A Name DER (from encodeName). */
  subjectDer: Buffer;
  /** Copied as-is from the CSR. */
  spkiDer: Buffer;
  /** Omitted when empty; critical iff the subject is the empty SEQUENCE (RFC 5280 §4.2.1.6). */
  san?: SanEntry[];
  /** Default: SHA-1 of the subjectPublicKey BIT STRING contents (RFC 5280 §4.2.1.2 method 1). */
  subjectKeyId?: Buffer;
}

/** RFC 5280 §4.1.2.2: positive, at most 20 octets, minimal; returns the INTEGER element. */
function encodeSerial(serial: Buffer): Buffer {
  if (!Buffer.isBuffer(serial) || serial.length === 0) throw badRequest('serial is empty');
  if (serial[0] === 0) {
    throw badRequest(serial.length === 1 ? 'serial must be positive (RFC 5280 §4.1.2.2)' : 'serial has a leading zero octet');
  }
  const enc = encodeUnsignedInteger(serial);
  if (enc.length - 2 > 20) throw badRequest('serial is longer than 20 octets (RFC 5280 §4.1.2.2)');
  return enc;
}

function timeOrThrow(d: Date, what: string): Buffer {
  if (!(d instanceof Date) || Number.isNaN(d.getTime())) throw badRequest(`${what} is not a valid date`);
  try {
    return encodeTime(d);
  } catch (err) {
    throw badRequest(`${what} cannot be encoded: ${(err as Error).message}`);
  }
}

/**
 * SHA-1 of the subjectPublicKey BIT STRING value, excluding tag, length and unused-bits octet
 * (RFC 5280 §4.2.1.2 method 1). Throws badRequest for a malformed SPKI.
 */
export function subjectKeyIdFromSpki(spkiDer: Buffer): Buffer {
  let pk: Buffer;
  try {
    pk = parseSpki(spkiDer).publicKey;
  } catch (err) {
    if (err instanceof DerError) throw badRequest(`SubjectPublicKeyInfo is malformed: ${err.message}`, err);
    throw err;
  }
  return createHash('sha1').update(pk).digest();
}

/**
 * Builds a v3 TBSCertificate DER from a compiled template and the per-certificate fields.
 * Validates: serial (RFC 5280 §4.1.2.2), notAfter ≥ notBefore, subject and SPKI well-formed
 * single elements, SAN present (and then critical) when the subject is empty (RFC 5280
 * §4.1.2.6 / §4.2.1.6). Throws badRequest.
 */
export function buildTbsCertificate(t: CertTemplate, f: TbsFields): Buffer {
  const parts = PARTS.get(t);
  if (parts === undefined) throw new TypeError('not a compiled CertTemplate');
  const serial = encodeSerial(f.serial);
  const nb = timeOrThrow(f.notBefore, 'notBefore');
  const na = timeOrThrow(f.notAfter, 'notAfter');
  // compare whole seconds, as encoded
  if (Math.floor(f.notAfter.getTime() / 1000) < Math.floor(f.notBefore.getTime() / 1000)) {
    throw badRequest('notAfter is before notBefore');
  }
  let subjectTag: number;
  try {
    subjectTag = readWhole(f.subjectDer, 'subject Name').tag;
  } catch {
    throw badRequest('subject Name DER is malformed');
  }
  if (subjectTag !== TAG.SEQUENCE) throw badRequest('subject Name DER is not a SEQUENCE');
  let skiValue = f.subjectKeyId;
  if (skiValue === undefined) {
    skiValue = subjectKeyIdFromSpki(f.spkiDer); // also validates the SPKI
  } else {
    if (skiValue.length === 0) throw badRequest('subjectKeyId must not be empty');
    try {
      parseSpki(f.spkiDer);
    } catch {
      throw badRequest('SubjectPublicKeyInfo is malformed');
    }
  }
  const emptySubject = f.subjectDer.length === 2;
  const exts: Buffer[] = [
    parts.head,
    encodeExtension(OID_EXT.subjectKeyIdentifier, false, encodeOctetString(skiValue)),
    parts.aki,
  ];
  if (f.san !== undefined && f.san.length > 0) {
    exts.push(encodeExtension(OID_EXT.subjectAltName, emptySubject, encodeGeneralNames(f.san)));
  } else if (emptySubject) {
    throw badRequest('a certificate with an empty subject must have a subjectAltName (RFC 5280 §4.1.2.6)');
  }
  exts.push(parts.tail);
  return encodeSequence(
    VERSION_V3,
    serial,
    parts.sigAlg,
    parts.issuer,
    encodeSequence(nb, na),
    f.subjectDer,
    f.spkiDer,
    encodeTlv(contextTag(3, true), encodeSequence(...exts)),
  );
}

/**
 * Returns the TBS's `signature` AlgorithmIdentifier bytes (field 3, or 2 for a v1 TBS without
 * the version element). Shared by certificates and CRLs (v2 TBSCertList starts with INTEGER 1).
 */
export function tbsSignatureAlgorithm(tbsDer: Buffer, kind: 'certificate' | 'crl'): Buffer {
  const top = readWhole(tbsDer, 'TBS');
  if (top.tag !== TAG.SEQUENCE) throw new DerError('malformed', 'TBS is not a SEQUENCE');
  const first = readTlv(tbsDer, top.valueStart, top.end);
  let idx: number;
  if (kind === 'certificate') idx = first.tag === contextTag(0, true) ? 2 : 1;
  else idx = first.tag === TAG.INTEGER ? 1 : 0;
  const alg = readChildren(tbsDer, top)[idx];
  if (alg === undefined || alg.tag !== TAG.SEQUENCE) throw new DerError('malformed', 'TBS has no signature AlgorithmIdentifier');
  return tbsDer.subarray(alg.start, alg.end);
}

/**
 * Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue BIT STRING }
 * (RFC 5280 §4.1.1). `signature` is what node's crypto.sign returned (ECDSA: the DER
 * Ecdsa-Sig-Value as-is, RFC 5758 §3.2), placed in a BIT STRING with 0 unused bits.
 * Throws badRequest if the TBS's signature field differs from `alg` (RFC 5280 §4.1.1.2).
 */
export function assembleCertificate(tbsDer: Buffer, alg: SignatureAlgorithm, signature: Buffer): Buffer {
  return assembleSigned(tbsDer, alg, signature, 'certificate');
}

/**
 * The SIGNED{} wrapper shared by certificates and CRLs: TBS, the AlgorithmIdentifier (which must
 * equal the TBS's own signature field), and the signature in a BIT STRING with 0 unused bits.
 */
export function assembleSigned(tbsDer: Buffer, alg: SignatureAlgorithm, signature: Buffer, kind: 'certificate' | 'crl'): Buffer {
  const algDer = algorithmIdentifierDerShared(alg);
  const what = kind === 'certificate' ? 'TBSCertificate' : 'TBSCertList';
  let inner: Buffer;
  try {
    inner = tbsSignatureAlgorithm(tbsDer, kind);
  } catch {
    throw badRequest(`${what} DER is malformed`);
  }
  const section = kind === 'certificate' ? '§4.1.1.2' : '§5.1.1.2';
  if (!inner.equals(algDer)) throw badRequest(`signature algorithm does not match the ${what} (RFC 5280 ${section})`);
  if (signature.length === 0) throw badRequest('signature is empty');
  return encodeSequence(tbsDer, algDer, encodeBitString(signature, 0));
}
