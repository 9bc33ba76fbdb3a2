/**
 * The CMS layer of SCEP (RFC 8894 §3 on top of RFC 5652): the signed pkiMessage, its
 * pkcsPKIEnvelope (EnvelopedData) and the CertRep reply. Pure: no I/O and no private-key
 * operation. The caller verifies and makes signatures, and unwraps and encrypts the content keys
 * with node's crypto; this file only hashes (messageDigest).
 *
 * pkiMessage (RFC 8894 §3.2; RFC 5652 §3, §5):
 *   ContentInfo SEQUENCE { OID id-signedData, [0] EXPLICIT SignedData SEQUENCE {
 *     version           INTEGER 1 (3 with a subjectKeyIdentifier signer),
 *     digestAlgorithms  SET OF AlgorithmIdentifier,
 *     encapContentInfo  SEQUENCE { OID id-data, [0] EXPLICIT OCTET STRING pkcsPKIEnvelope OPTIONAL },
 *     certificates      [0] IMPLICIT SET OF Certificate,      -- holds the signer's certificate
 *     crls              [1] IMPLICIT ... OPTIONAL,             -- ignored
 *     signerInfos       SET { SignerInfo SEQUENCE {            -- exactly one
 *       version INTEGER 1 | 3, sid issuerAndSerialNumber SEQUENCE | [0] IMPLICIT SKI,
 *       digestAlgorithm, signedAttrs [0] IMPLICIT SET OF Attribute,
 *       signatureAlgorithm, signature OCTET STRING, unsignedAttrs [1] OPTIONAL } } } }
 *
 * pkcsPKIEnvelope (RFC 8894 §3.2.2; RFC 5652 §6):
 *   ContentInfo SEQUENCE { OID id-envelopedData, [0] EXPLICIT EnvelopedData SEQUENCE {
 *     version INTEGER 0 | 2, originatorInfo [0] OPTIONAL (ignored),
 *     recipientInfos SET { KeyTransRecipientInfo SEQUENCE {         -- exactly one
 *       version INTEGER 0 | 2, rid issuerAndSerialNumber | [0] IMPLICIT SKI,
 *       keyEncryptionAlgorithm rsaEncryption, encryptedKey OCTET STRING } },
 *     encryptedContentInfo SEQUENCE { OID id-data, AlgorithmIdentifier { cipher OID, OCTET STRING iv },
 *       encryptedContent [0] IMPLICIT OCTET STRING },
 *     unprotectedAttrs [1] OPTIONAL (ignored) } }
 *
 * Reading is strict DER (see der.ts): BER indefinite lengths are refused. Two BER forms real
 * encoders emit with definite lengths are accepted: a constructed OCTET STRING for the
 * encapsulated content and a constructed [0] with OCTET STRING chunks for encryptedContent.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { badRequest } from '../core/errors.js';
import { certificateParts } from './cert-parts.js';
import {
  DerError,
  TAG,
  contextTag,
  decodeInteger,
  decodeOid,
  encodeExplicit,
  encodeInteger,
  encodeNull,
  encodeOctetString,
  encodeOid,
  encodePrintableString,
  encodeSequence,
  encodeSetOf,
  encodeTlv,
  encodeUnsignedInteger,
  encodeUtcTime,
  encodeGeneralizedTime,
  encodeUtf8String,
  encodingOf,
  expectTag,
  isPrintableString,
  readChildren,
  readTlv,
  readWhole,
  valueOf,
  type Tlv,
} from './der.js';
import { OID_CIPHER, OID_CMS, OID_CMS_ATTR, OID_EXT, OID_HASH, OID_KEY, OID_SCEP, OID_SIG } from './oids.js';
import { parseSpki } from './spki.js';

// ------------------------------------------------------------------------------- constants

/** messageType values (RFC 8894 §3.2.1.2). */
export const SCEP_MESSAGE_TYPE = {
  CertRep: '3',
  RenewalReq: '17',
  PKCSReq: '19',
  CertPoll: '20',
  GetCert: '21',
  GetCRL: '22',
} as const;

/** pkiStatus values (RFC 8894 §3.2.1.3). */
export const SCEP_PKI_STATUS = { SUCCESS: '0', FAILURE: '2', PENDING: '3' } as const;
export type ScepPkiStatus = keyof typeof SCEP_PKI_STATUS;

/** failInfo values (RFC 8894 §3.2.1.4). */
export const SCEP_FAIL_INFO = { badAlg: '0', badMessageCheck: '1', badRequest: '2', badTime: '3', badCertId: '4' } as const;
export type ScepFailInfo = keyof typeof SCEP_FAIL_INFO;

/** The digests a CertRep can be signed with. */
export type ScepDigest = 'sha1' | 'sha256' | 'sha384' | 'sha512';

/** A CBC content cipher of the pkcsPKIEnvelope, with node's cipher name. */
export interface ContentCipher {
  oid: string;
  /** node crypto name: 'aes-128-cbc', 'aes-192-cbc', 'aes-256-cbc', 'des-ede3-cbc'. */
  name: string;
  keyLength: number;
  /** IV length = block size. */
  ivLength: number;
}

const CIPHERS: ReadonlyMap<string, ContentCipher> = new Map(
  [
    { oid: OID_CIPHER.aes128Cbc, name: 'aes-128-cbc', keyLength: 16, ivLength: 16 },
    { oid: OID_CIPHER.aes192Cbc, name: 'aes-192-cbc', keyLength: 24, ivLength: 16 },
    { oid: OID_CIPHER.aes256Cbc, name: 'aes-256-cbc', keyLength: 32, ivLength: 16 },
    // RFC 3370 §5.1: Triple-DES CBC, CBCParameter IV ::= OCTET STRING (SIZE(8))
    { oid: OID_CIPHER.desEde3Cbc, name: 'des-ede3-cbc', keyLength: 24, ivLength: 8 },
  ].map((c) => [c.oid, c]),
);

/** The content cipher for an OID, or undefined when SCEP here does not support it (DES, RC2, …). */
export function contentCipherFor(oid: string): ContentCipher | undefined {
  return CIPHERS.get(oid);
}

const DIGEST_NAMES: ReadonlyMap<string, string> = new Map([
  [OID_HASH.sha1, 'sha1'],
  [OID_HASH.sha224, 'sha224'],
  [OID_HASH.sha256, 'sha256'],
  [OID_HASH.sha384, 'sha384'],
  [OID_HASH.sha512, 'sha512'],
]);

/** node's hash name ('sha256', …) for a digest algorithm OID, or undefined. */
export function digestNameForOid(oid: string): string | undefined {
  return DIGEST_NAMES.get(oid);
}

/** The hash a hash-specific signature algorithm OID implies (sha256WithRSA → sha256, …). */
const SIGNATURE_HASH: ReadonlyMap<string, string> = new Map([
  [OID_SIG.sha1WithRsa, 'sha1'],
  [OID_SIG.sha224WithRsa, 'sha224'],
  [OID_SIG.sha256WithRsa, 'sha256'],
  [OID_SIG.sha384WithRsa, 'sha384'],
  [OID_SIG.sha512WithRsa, 'sha512'],
  [OID_SIG.ecdsaWithSha1, 'sha1'],
  [OID_SIG.ecdsaWithSha224, 'sha224'],
  [OID_SIG.ecdsaWithSha256, 'sha256'],
  [OID_SIG.ecdsaWithSha384, 'sha384'],
  [OID_SIG.ecdsaWithSha512, 'sha512'],
]);

const CTX0_C = contextTag(0, true); // 0xa0
const CTX1_C = contextTag(1, true); // 0xa1
const CTX0_P = contextTag(0, false); // 0x80
const CONSTRUCTED_OCTET_STRING = TAG.OCTET_STRING | 0x20; // 0x24, BER only
const EMPTY = Buffer.alloc(0);
/** Upper bound on a transactionID: hex SHA-512 is 128 characters; leave room for other forms. */
const MAX_TRANSACTION_ID = 256;
/** Upper bound on a nonce; RFC 8894 §3.2.1.5 specifies 16 octets. */
const MAX_NONCE = 64;

// ----------------------------------------------------------------------------------- helpers

/** Turns a reader error into the badRequest callers see; anything else passes through. */
function asBadRequest(err: unknown, what: string): unknown {
  if (err instanceof DerError) {
    return badRequest(err.reason === 'truncated' ? `${what} DER is truncated` : `${what} DER is malformed: ${err.message}`, err);
  }
  return err;
}

/** Reads `[0] EXPLICIT content` of a ContentInfo of the expected type; returns the inner element. */
function readContentInfo(der: Buffer, expectedType: string, what: string): Tlv {
  const top = expectTag(readWhole(der, 'ContentInfo'), TAG.SEQUENCE, 'ContentInfo SEQUENCE');
  const [typeT, contentT, extra] = readChildren(der, top);
  const type = decodeOid(der, expectTag(typeT, TAG.OID, 'ContentInfo contentType'));
  if (type !== expectedType) throw badRequest(`${what}: ContentInfo type is ${type}, expected ${expectedType}`);
  expectTag(contentT, CTX0_C, 'ContentInfo content [0]');
  if (extra !== undefined) throw new DerError('malformed', 'ContentInfo has extra fields');
  const inner = readTlv(der, contentT!.valueStart, contentT!.end);
  if (inner.end !== contentT!.end) throw new DerError('malformed', 'trailing data in ContentInfo content');
  return inner;
}

/**
 * The octets of an OCTET STRING in primitive form (`primitiveTag`) or, BER, in constructed form
 * (`constructedTag`) whose children are primitive OCTET STRINGs with definite lengths.
 */
function octetsOf(buf: Buffer, t: Tlv, primitiveTag: number, constructedTag: number, what: string): Buffer {
  if (t.tag === primitiveTag) return Buffer.from(valueOf(buf, t));
  if (t.tag !== constructedTag) throw new DerError('malformed', `expected ${what}`);
  const chunks = readChildren(buf, t).map((c) => {
    if (c.tag !== TAG.OCTET_STRING) throw new DerError('malformed', `${what}: constructed form must hold primitive OCTET STRINGs`);
    return valueOf(buf, c);
  });
  return Buffer.concat(chunks);
}

/** AlgorithmIdentifier → OID and the parameters' full encoding (undefined when absent). */
function readAlgorithm(buf: Buffer, t: Tlv | undefined, what: string): { oid: string; params?: Tlv } {
  expectTag(t, TAG.SEQUENCE, `${what} AlgorithmIdentifier`);
  const [oidT, params, extra] = readChildren(buf, t!);
  if (extra !== undefined) throw new DerError('malformed', `${what} AlgorithmIdentifier has extra fields`);
  const oid = decodeOid(buf, expectTag(oidT, TAG.OID, `${what} algorithm OID`));
  return params === undefined ? { oid } : { oid, params };
}

const isNull = (t: Tlv | undefined): boolean => t !== undefined && t.tag === TAG.NULL && t.end === t.valueStart;

/** IssuerAndSerialNumber ::= SEQUENCE { issuer Name, serialNumber INTEGER } (RFC 5652 §10.2.4). */
function readIssuerAndSerial(buf: Buffer, t: Tlv, what: string): { issuerDer: Buffer; serial: Buffer } {
  const [issuer, serial, extra] = readChildren(buf, t);
  expectTag(issuer, TAG.SEQUENCE, `${what} issuer Name`);
  expectTag(serial, TAG.INTEGER, `${what} serialNumber`);
  decodeInteger(buf, serial!); // minimal-encoding check
  if (extra !== undefined) throw new DerError('malformed', `${what} issuerAndSerialNumber has extra fields`);
  return { issuerDer: Buffer.from(encodingOf(buf, issuer!)), serial: Buffer.from(valueOf(buf, serial!)) };
}

/** UTCTime / GeneralizedTime (DER form, RFC 5652 §11.3) → Date. */
function decodeTime(buf: Buffer, t: Tlv): Date {
  const s = valueOf(buf, t).toString('latin1');
  const m =
    t.tag === TAG.UTC_TIME
      ? /^(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(s)
      : t.tag === TAG.GENERALIZED_TIME
        ? /^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(s)
        : null;
  if (!m) throw new DerError('malformed', 'signingTime is not a DER UTCTime or GeneralizedTime');
  let year = Number(m[1]);
  if (t.tag === TAG.UTC_TIME) year += year >= 50 ? 1900 : 2000;
  const [mo, d, h, mi, se] = [m[2], m[3], m[4], m[5], m[6]].map(Number) as [number, number, number, number, number];
  const date = new Date(Date.UTC(year, mo - 1, d, h, mi, se));
  if (date.getUTCMonth() !== mo - 1 || date.getUTCDate() !== d || h > 23 || mi > 59 || se > 59) {
    throw new DerError('malformed', 'signingTime is not a valid date');
  }
  return date;
}

/** The subjectKeyIdentifier extension value of a certificate (RFC 5280 §4.2.1.2), if any. */
function subjectKeyIdentifierOf(certDer: Buffer): Buffer | undefined {
  const { tbsDer } = certificateParts(certDer);
  const tbs = readWhole(tbsDer, 'TBSCertificate');
  const exts = readChildren(tbsDer, tbs).find((k) => k.tag === contextTag(3, true));
  if (exts === undefined) return undefined;
  const [list] = readChildren(tbsDer, exts);
  for (const ext of readChildren(tbsDer, expectTag(list, TAG.SEQUENCE, 'Extensions SEQUENCE'))) {
    const parts = readChildren(tbsDer, expectTag(ext, TAG.SEQUENCE, 'Extension SEQUENCE'));
    if (decodeOid(tbsDer, expectTag(parts[0], TAG.OID, 'extnID')) !== OID_EXT.subjectKeyIdentifier) continue;
    const value = expectTag(parts[parts.length - 1], TAG.OCTET_STRING, 'extnValue');
    const inner = readTlv(tbsDer, value.valueStart, value.end);
    if (inner.end !== value.end) throw new DerError('malformed', 'trailing data in subjectKeyIdentifier');
    return Buffer.from(valueOf(tbsDer, expectTag(inner, TAG.OCTET_STRING, 'KeyIdentifier OCTET STRING')));
  }
  return undefined;
}

/** Strips leading zero octets (keeps one for zero): INTEGER content octets → magnitude. */
function magnitudeOf(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return b.subarray(i);
}

// ------------------------------------------------------------------------ pkiMessage decode

/** How a SignerInfo or KeyTransRecipientInfo names its certificate (RFC 5652 §5.3, §6.2.1). */
export type CertificateId =
  /** `serialHex`: lowercase hex of the serialNumber INTEGER content octets (as certificateParts). */
  | { kind: 'issuerAndSerialNumber'; issuerDer: Buffer; serialHex: string }
  | { kind: 'subjectKeyIdentifier'; ski: Buffer };

/** A decoded SCEP pkiMessage (request or CertRep). Buffers are copies of the input. */
export interface PkiMessage {
  /** DER of the signer's certificate, found among `certificates` by the SignerInfo's sid. */
  signerCertDer: Buffer;
  /** Every Certificate in the SignedData `certificates` field, in order. */
  certificates: Buffer[];
  signerId: CertificateId;
  /** SignerInfo digestAlgorithm OID, and its node hash name when known. */
  digestAlgorithmOid: string;
  digestName: string | undefined;
  /** SignerInfo signatureAlgorithm (rsaEncryption, sha256WithRSAEncryption, rsassaPss, …). */
  signatureAlgorithmOid: string;
  /** The signatureAlgorithm parameters' DER when present and not NULL (RSASSA-PSS-params). */
  signatureAlgorithmParamsDer?: Buffer;
  signature: Buffer;
  /** What the signature covers: the signedAttrs re-tagged as SET OF 0x31 (RFC 5652 §5.4). */
  signedAttrsDer: Buffer;
  /** encapContentInfo eContentType (always id-data here). */
  eContentType: string;
  /** The encapsulated content (the pkcsPKIEnvelope DER); absent in CertRep FAILURE/PENDING. */
  content?: Buffer;
  // signed attributes
  contentType: string;
  messageDigest: Buffer;
  signingTime?: Date;
  messageType: string;
  transactionId: string;
  senderNonce: Buffer;
  recipientNonce?: Buffer;
  pkiStatus?: string;
  failInfo?: string;
  failInfoText?: string;
}

/**
 * Decodes a SCEP pkiMessage (RFC 8894 §3.2): a ContentInfo/SignedData with exactly one
 * SignerInfo whose certificate is among the SignedData certificates, signed attributes with at
 * least contentType (= eContentType = id-data), messageDigest, messageType, transactionID and
 * senderNonce. Does not verify the signature or the digest: see `signedAttrsDer`,
 * `checkMessageDigest`. Throws badRequest for anything malformed or missing.
 */
export function decodePkiMessage(der: Buffer): PkiMessage {
  if (der.length === 0) throw badRequest('SCEP pkiMessage is empty');
  try {
    return decodePkiMessageUnchecked(der);
  } catch (err) {
    throw asBadRequest(err, 'SCEP pkiMessage');
  }
}

function decodePkiMessageUnchecked(der: Buffer): PkiMessage {
  const sd = expectTag(readContentInfo(der, OID_CMS.signedData, 'SCEP pkiMessage'), TAG.SEQUENCE, 'SignedData SEQUENCE');
  // RFC 5652 §5.1: version, digestAlgorithms, encapContentInfo, [0] certificates, [1] crls, signerInfos
  const parts = readChildren(der, sd);
  let i = 0;
  const version = decodeInteger(der, expectTag(parts[i++], TAG.INTEGER, 'SignedData version'));
  if (version !== 1n && version !== 3n) throw badRequest(`SCEP pkiMessage: SignedData version ${version} is not 1 or 3`);
  const digestAlgs = expectTag(parts[i++], TAG.SET, 'digestAlgorithms SET');
  readChildren(der, digestAlgs).forEach((a) => readAlgorithm(der, a, 'digestAlgorithms'));

  const encap = expectTag(parts[i++], TAG.SEQUENCE, 'encapContentInfo SEQUENCE');
  const [eTypeT, eContentT, encapExtra] = readChildren(der, encap);
  const eContentType = decodeOid(der, expectTag(eTypeT, TAG.OID, 'eContentType'));
  if (eContentType !== OID_CMS.data) throw badRequest(`SCEP pkiMessage: eContentType is ${eContentType}, not id-data`);
  if (encapExtra !== undefined) throw new DerError('malformed', 'encapContentInfo has extra fields');
  let content: Buffer | undefined;
  if (eContentT !== undefined) {
    expectTag(eContentT, CTX0_C, 'eContent [0]');
    const [octets, extra] = readChildren(der, eContentT);
    if (octets === undefined || extra !== undefined) throw new DerError('malformed', 'eContent [0] must hold one OCTET STRING');
    content = octetsOf(der, octets, TAG.OCTET_STRING, CONSTRUCTED_OCTET_STRING, 'eContent OCTET STRING');
  }

  const certificates: Buffer[] = [];
  if (parts[i]?.tag === CTX0_C) {
    // CertificateChoices: only plain Certificates (SEQUENCE) can be the signer; others are skipped
    for (const c of readChildren(der, parts[i++]!)) {
      if (c.tag === TAG.SEQUENCE) certificates.push(Buffer.from(encodingOf(der, c)));
    }
  }
  if (parts[i]?.tag === CTX1_C) i++; // crls: not used by SCEP requests
  const signerInfos = readChildren(der, expectTag(parts[i++], TAG.SET, 'signerInfos SET'));
  if (i !== parts.length) throw new DerError('malformed', 'SignedData has extra fields');
  if (signerInfos.length !== 1) {
    throw badRequest(`SCEP pkiMessage must have exactly one SignerInfo, found ${signerInfos.length}`);
  }

  const si = decodeSignerInfo(der, signerInfos[0]!);
  const signerCertDer = findCertificate(certificates, si.signerId);
  if (signerCertDer === undefined) throw badRequest('SCEP pkiMessage: the signer certificate is not in the SignedData certificates');

  const attrs = decodeSignedAttributes(der, si.signedAttrs);
  if (attrs.contentType !== eContentType) {
    throw badRequest(`SCEP pkiMessage: contentType attribute ${attrs.contentType} does not match eContentType ${eContentType}`);
  }
  const digestName = digestNameForOid(si.digestAlgorithmOid);
  const sigHash = SIGNATURE_HASH.get(si.signatureAlgorithmOid);
  if (sigHash !== undefined && sigHash !== digestName) {
    throw badRequest(`SCEP pkiMessage: signatureAlgorithm ${si.signatureAlgorithmOid} does not match digestAlgorithm ${si.digestAlgorithmOid}`);
  }

  const out: PkiMessage = {
    signerCertDer,
    certificates,
    signerId: si.signerId,
    digestAlgorithmOid: si.digestAlgorithmOid,
    digestName,
    signatureAlgorithmOid: si.signatureAlgorithmOid,
    signature: si.signature,
    signedAttrsDer: si.signedAttrsDer,
    eContentType,
    ...attrs,
  };
  if (si.signatureAlgorithmParamsDer !== undefined) out.signatureAlgorithmParamsDer = si.signatureAlgorithmParamsDer;
  if (content !== undefined) out.content = content;
  return out;
}

interface DecodedSignerInfo {
  signerId: CertificateId;
  digestAlgorithmOid: string;
  signedAttrs: Tlv;
  signedAttrsDer: Buffer;
  signatureAlgorithmOid: string;
  signatureAlgorithmParamsDer?: Buffer;
  signature: Buffer;
}

/** SignerInfo (RFC 5652 §5.3). */
function decodeSignerInfo(der: Buffer, t: Tlv): DecodedSignerInfo {
  const f = readChildren(der, expectTag(t, TAG.SEQUENCE, 'SignerInfo SEQUENCE'));
  let i = 0;
  const version = decodeInteger(der, expectTag(f[i++], TAG.INTEGER, 'SignerInfo version'));
  const sid = f[i++];
  let signerId: CertificateId;
  if (version === 1n) {
    // v1: sid is issuerAndSerialNumber
    const { issuerDer, serial } = readIssuerAndSerial(der, expectTag(sid, TAG.SEQUENCE, 'SignerInfo sid issuerAndSerialNumber'), 'SignerInfo');
    signerId = { kind: 'issuerAndSerialNumber', issuerDer, serialHex: serial.toString('hex') };
  } else if (version === 3n) {
    // v3: sid is subjectKeyIdentifier [0] IMPLICIT OCTET STRING
    signerId = { kind: 'subjectKeyIdentifier', ski: Buffer.from(valueOf(der, expectTag(sid, CTX0_P, 'SignerInfo sid subjectKeyIdentifier [0]'))) };
  } else {
    throw badRequest(`SCEP pkiMessage: SignerInfo version ${version} is not 1 or 3`);
  }
  const digestAlgorithmOid = readAlgorithm(der, f[i++], 'SignerInfo digestAlgorithm').oid;
  const signedAttrs = f[i];
  if (signedAttrs?.tag !== CTX0_C) throw badRequest('SCEP pkiMessage: SignerInfo has no signed attributes');
  i++;
  // RFC 5652 §5.4: the signature covers the DER of the SET OF, i.e. the same octets with the
  // universal SET tag instead of [0] IMPLICIT (the length octets do not depend on the tag)
  const signedAttrsDer = Buffer.from(encodingOf(der, signedAttrs));
  signedAttrsDer[0] = TAG.SET;
  const sigAlg = readAlgorithm(der, f[i++], 'SignerInfo signatureAlgorithm');
  const signature = Buffer.from(valueOf(der, expectTag(f[i++], TAG.OCTET_STRING, 'SignerInfo signature OCTET STRING')));
  if (f[i]?.tag === CTX1_C) i++; // unsignedAttrs: ignored
  if (i !== f.length) throw new DerError('malformed', 'SignerInfo has extra fields');
  const out: DecodedSignerInfo = { signerId, digestAlgorithmOid, signedAttrs, signedAttrsDer, signatureAlgorithmOid: sigAlg.oid, signature };
  if (sigAlg.params !== undefined && !isNull(sigAlg.params)) out.signatureAlgorithmParamsDer = Buffer.from(encodingOf(der, sigAlg.params));
  return out;
}

/** The certificate `id` names, or undefined. */
function findCertificate(certs: Buffer[], id: CertificateId): Buffer | undefined {
  for (const c of certs) {
    if (id.kind === 'issuerAndSerialNumber') {
      const p = certificateParts(c);
      if (p.serial.toString('hex') === id.serialHex && p.issuerDer.equals(id.issuerDer)) return c;
    } else {
      const ski = subjectKeyIdentifierOf(c);
      if (ski !== undefined && ski.equals(id.ski)) return c;
    }
  }
  return undefined;
}

type SignedAttributes = Pick<
  PkiMessage,
  | 'contentType'
  | 'messageDigest'
  | 'signingTime'
  | 'messageType'
  | 'transactionId'
  | 'senderNonce'
  | 'recipientNonce'
  | 'pkiStatus'
  | 'failInfo'
  | 'failInfoText'
>;

/** The attributes this layer reads; each must appear once with exactly one value. */
const KNOWN_ATTRS: ReadonlyMap<string, string> = new Map([
  [OID_CMS_ATTR.contentType, 'contentType'],
  [OID_CMS_ATTR.messageDigest, 'messageDigest'],
  [OID_CMS_ATTR.signingTime, 'signingTime'],
  [OID_SCEP.messageType, 'messageType'],
  [OID_SCEP.pkiStatus, 'pkiStatus'],
  [OID_SCEP.failInfo, 'failInfo'],
  [OID_SCEP.senderNonce, 'senderNonce'],
  [OID_SCEP.recipientNonce, 'recipientNonce'],
  [OID_SCEP.transactionID, 'transactionID'],
  [OID_SCEP.failInfoText, 'failInfoText'],
]);

const utf8Strict = new TextDecoder('utf-8', { fatal: true });

/** SignedAttributes ::= SET SIZE (1..MAX) OF Attribute { attrType OID, attrValues SET OF ANY }. */
function decodeSignedAttributes(der: Buffer, set: Tlv): SignedAttributes {
  const values = new Map<string, Tlv>();
  const list = readChildren(der, set);
  if (list.length === 0) throw badRequest('SCEP pkiMessage: signed attributes are empty');
  for (const a of list) {
    const [typeT, valuesT, extra] = readChildren(der, expectTag(a, TAG.SEQUENCE, 'Attribute SEQUENCE'));
    const oid = decodeOid(der, expectTag(typeT, TAG.OID, 'Attribute type'));
    expectTag(valuesT, TAG.SET, 'Attribute values SET');
    if (extra !== undefined) throw new DerError('malformed', 'Attribute has extra fields');
    const name = KNOWN_ATTRS.get(oid);
    if (name === undefined) continue; // e.g. smimeCapabilities: not ours to judge
    // RFC 5652 §11: contentType, messageDigest and signingTime are single-instance, single-valued;
    // RFC 8894 §3.2.1 defines each SCEP attribute with one value as well
    if (values.has(oid)) throw badRequest(`SCEP pkiMessage: signed attribute ${name} appears more than once`);
    const vs = readChildren(der, valuesT!);
    if (vs.length !== 1) throw badRequest(`SCEP pkiMessage: signed attribute ${name} must have exactly one value`);
    values.set(oid, vs[0]!);
  }

  const need = (oid: string, name: string): Tlv => {
    const v = values.get(oid);
    if (v === undefined) throw badRequest(`SCEP pkiMessage: missing signed attribute ${name}`);
    return v;
  };
  const printable = (t: Tlv, name: string): string => {
    if (t.tag !== TAG.PRINTABLE_STRING) throw badRequest(`SCEP pkiMessage: ${name} must be a PrintableString`);
    const s = valueOf(der, t).toString('latin1');
    if (!isPrintableString(s)) throw badRequest(`SCEP pkiMessage: ${name} has characters outside PrintableString`);
    return s;
  };
  const digits = (t: Tlv, name: string): string => {
    const s = printable(t, name);
    if (!/^[0-9]{1,3}$/.test(s)) throw badRequest(`SCEP pkiMessage: ${name} "${s}" is not a small decimal number`);
    return s;
  };
  const nonce = (t: Tlv, name: string): Buffer => {
    if (t.tag !== TAG.OCTET_STRING) throw badRequest(`SCEP pkiMessage: ${name} must be an OCTET STRING`);
    const n = Buffer.from(valueOf(der, t));
    if (n.length === 0 || n.length > MAX_NONCE) throw badRequest(`SCEP pkiMessage: ${name} has ${n.length} octets (16 expected)`);
    return n;
  };

  // RFC 5652 §5.3: contentType and messageDigest are mandatory when signedAttrs are present
  const contentType = decodeOid(der, expectTag(need(OID_CMS_ATTR.contentType, 'contentType'), TAG.OID, 'contentType attribute OID'));
  const mdT = need(OID_CMS_ATTR.messageDigest, 'messageDigest');
  if (mdT.tag !== TAG.OCTET_STRING) throw badRequest('SCEP pkiMessage: messageDigest must be an OCTET STRING');
  const messageDigest = Buffer.from(valueOf(der, mdT));
  const messageType = digits(need(OID_SCEP.messageType, 'messageType'), 'messageType');
  const transactionId = printable(need(OID_SCEP.transactionID, 'transactionID'), 'transactionID');
  if (transactionId.length === 0 || transactionId.length > MAX_TRANSACTION_ID) {
    throw badRequest(`SCEP pkiMessage: transactionID must have 1 to ${MAX_TRANSACTION_ID} characters`);
  }
  const senderNonce = nonce(need(OID_SCEP.senderNonce, 'senderNonce'), 'senderNonce');

  const out: SignedAttributes = { contentType, messageDigest, messageType, transactionId, senderNonce };
  const st = values.get(OID_CMS_ATTR.signingTime);
  if (st !== undefined) out.signingTime = decodeTime(der, st);
  const rn = values.get(OID_SCEP.recipientNonce);
  if (rn !== undefined) out.recipientNonce = nonce(rn, 'recipientNonce');
  const ps = values.get(OID_SCEP.pkiStatus);
  if (ps !== undefined) out.pkiStatus = digits(ps, 'pkiStatus');
  const fi = values.get(OID_SCEP.failInfo);
  if (fi !== undefined) out.failInfo = digits(fi, 'failInfo');
  const ft = values.get(OID_SCEP.failInfoText);
  if (ft !== undefined) {
    if (ft.tag !== TAG.UTF8_STRING) throw badRequest('SCEP pkiMessage: failInfoText must be a UTF8String');
    try {
      out.failInfoText = utf8Strict.decode(valueOf(der, ft));
    } catch {
      throw badRequest('SCEP pkiMessage: failInfoText is not valid UTF-8');
    }
  }
  return out;
}

/**
 * True when `hashName` (node's name, normally `msg.digestName`) of the encapsulated content (the
 * empty string when there is none, RFC 5652 §5.4) equals the messageDigest attribute. The
 * comparison is constant-time.
 */
export function checkMessageDigest(msg: Pick<PkiMessage, 'content' | 'messageDigest'>, hashName: string): boolean {
  const d = createHash(hashName).update(msg.content ?? EMPTY).digest();
  return d.length === msg.messageDigest.length && timingSafeEqual(d, msg.messageDigest);
}

// ---------------------------------------------------------------------- EnvelopedData decode

/** The parts of a pkcsPKIEnvelope (RFC 5652 §6) with one RSA KeyTransRecipientInfo. Copies. */
export interface EnvelopedDataParts {
  recipientId: CertificateId;
  /** Set when the recipient is named by issuerAndSerialNumber. */
  recipientIssuerDer?: Buffer;
  /** Lowercase hex of the serialNumber INTEGER content octets (as `certificateParts(cert).serial`). */
  recipientSerial?: string;
  /** Set when the recipient is named by subjectKeyIdentifier. */
  recipientSki?: Buffer;
  /** Always rsaEncryption (RSAES-PKCS1-v1_5 key transport, RFC 3370 §4.2.1). */
  keyEncryptionOid: string;
  encryptedKey: Buffer;
  contentEncryptionOid: string;
  cipher: ContentCipher;
  iv: Buffer;
  encryptedContent: Buffer;
}

/**
 * Decodes a pkcsPKIEnvelope ContentInfo (id-envelopedData) with exactly one KeyTransRecipientInfo
 * using rsaEncryption and an id-data content encrypted with AES-128/192/256-CBC or DES-EDE3-CBC.
 * Throws badRequest otherwise (other recipient kinds, RSA-OAEP, other ciphers, wrong IV size,
 * missing content).
 */
export function decodeEnvelopedData(der: Buffer): EnvelopedDataParts {
  if (der.length === 0) throw badRequest('SCEP pkcsPKIEnvelope is empty');
  try {
    return decodeEnvelopedDataUnchecked(der);
  } catch (err) {
    throw asBadRequest(err, 'SCEP pkcsPKIEnvelope');
  }
}

function decodeEnvelopedDataUnchecked(der: Buffer): EnvelopedDataParts {
  const ed = expectTag(readContentInfo(der, OID_CMS.envelopedData, 'SCEP pkcsPKIEnvelope'), TAG.SEQUENCE, 'EnvelopedData SEQUENCE');
  const parts = readChildren(der, ed);
  let i = 0;
  const version = decodeInteger(der, expectTag(parts[i++], TAG.INTEGER, 'EnvelopedData version'));
  // RFC 5652 §6.1: 0 with only v0 KTRIs; 2 with an SKI recipient; 3/4 need other recipient kinds
  if (version !== 0n && version !== 2n) throw badRequest(`SCEP pkcsPKIEnvelope: EnvelopedData version ${version} is not 0 or 2`);
  if (parts[i]?.tag === CTX0_C) i++; // originatorInfo: certificates/CRLs we do not need
  const ris = readChildren(der, expectTag(parts[i++], TAG.SET, 'recipientInfos SET'));
  if (ris.length !== 1) throw badRequest(`SCEP pkcsPKIEnvelope must have exactly one RecipientInfo, found ${ris.length}`);
  const ri = ris[0]!;
  if (ri.tag !== TAG.SEQUENCE) {
    throw badRequest('SCEP pkcsPKIEnvelope: the RecipientInfo is not a KeyTransRecipientInfo (only RSA key transport is supported)');
  }
  const eci = expectTag(parts[i++], TAG.SEQUENCE, 'EncryptedContentInfo SEQUENCE');
  if (parts[i]?.tag === CTX1_C) i++; // unprotectedAttrs: ignored
  if (i !== parts.length) throw new DerError('malformed', 'EnvelopedData has extra fields');

  // KeyTransRecipientInfo (RFC 5652 §6.2.1)
  const k = readChildren(der, ri);
  const kv = decodeInteger(der, expectTag(k[0], TAG.INTEGER, 'KeyTransRecipientInfo version'));
  const out: Partial<EnvelopedDataParts> = {};
  if (kv === 0n) {
    const { issuerDer, serial } = readIssuerAndSerial(der, expectTag(k[1], TAG.SEQUENCE, 'rid issuerAndSerialNumber'), 'KeyTransRecipientInfo');
    out.recipientId = { kind: 'issuerAndSerialNumber', issuerDer, serialHex: serial.toString('hex') };
    out.recipientIssuerDer = issuerDer;
    out.recipientSerial = serial.toString('hex');
  } else if (kv === 2n) {
    const ski = Buffer.from(valueOf(der, expectTag(k[1], CTX0_P, 'rid subjectKeyIdentifier [0]')));
    out.recipientId = { kind: 'subjectKeyIdentifier', ski };
    out.recipientSki = ski;
  } else {
    throw badRequest(`SCEP pkcsPKIEnvelope: KeyTransRecipientInfo version ${kv} is not 0 or 2`);
  }
  const kea = readAlgorithm(der, k[2], 'keyEncryptionAlgorithm');
  if (kea.oid !== OID_KEY.rsaEncryption) {
    throw badRequest(`SCEP pkcsPKIEnvelope: key encryption algorithm ${kea.oid} is not supported (rsaEncryption only)`);
  }
  // RFC 3370 §4.2.1: parameters NULL; absent is tolerated like everywhere else for rsaEncryption
  if (kea.params !== undefined && !isNull(kea.params)) throw new DerError('malformed', 'rsaEncryption parameters must be NULL');
  const encryptedKey = Buffer.from(valueOf(der, expectTag(k[3], TAG.OCTET_STRING, 'encryptedKey OCTET STRING')));
  if (k.length !== 4) throw new DerError('malformed', 'KeyTransRecipientInfo has extra fields');
  if (encryptedKey.length === 0) throw badRequest('SCEP pkcsPKIEnvelope: encryptedKey is empty');

  // EncryptedContentInfo (RFC 5652 §6.1)
  const [ctT, algT, contentT, extra] = readChildren(der, eci);
  const contentType = decodeOid(der, expectTag(ctT, TAG.OID, 'EncryptedContentInfo contentType'));
  if (contentType !== OID_CMS.data) throw badRequest(`SCEP pkcsPKIEnvelope: content type is ${contentType}, not id-data`);
  const cea = readAlgorithm(der, algT, 'contentEncryptionAlgorithm');
  const cipher = contentCipherFor(cea.oid);
  if (cipher === undefined) throw badRequest(`SCEP pkcsPKIEnvelope: content encryption algorithm ${cea.oid} is not supported`);
  if (cea.params?.tag !== TAG.OCTET_STRING) throw badRequest(`SCEP pkcsPKIEnvelope: ${cipher.name} parameters must be the IV OCTET STRING`);
  const iv = Buffer.from(valueOf(der, cea.params));
  if (iv.length !== cipher.ivLength) throw badRequest(`SCEP pkcsPKIEnvelope: ${cipher.name} IV must be ${cipher.ivLength} octets, not ${iv.length}`);
  if (contentT === undefined) throw badRequest('SCEP pkcsPKIEnvelope: encryptedContent is absent');
  if (extra !== undefined) throw new DerError('malformed', 'EncryptedContentInfo has extra fields');
  // [0] IMPLICIT OCTET STRING: primitive 0x80, or constructed 0xa0 holding OCTET STRING chunks
  const encryptedContent = octetsOf(der, contentT, CTX0_P, CTX0_C, 'encryptedContent [0]');
  if (encryptedContent.length === 0 || encryptedContent.length % cipher.ivLength !== 0) {
    throw badRequest(`SCEP pkcsPKIEnvelope: encryptedContent length ${encryptedContent.length} is not a positive multiple of the ${cipher.name} block size`);
  }
  return {
    ...out,
    recipientId: out.recipientId!,
    keyEncryptionOid: kea.oid,
    encryptedKey,
    contentEncryptionOid: cea.oid,
    cipher,
    iv,
    encryptedContent,
  };
}

// ---------------------------------------------------------------------- EnvelopedData encode

/** Input of `encodeEnvelopedData`: the already encrypted key and content. */
export interface EnvelopedDataInput {
  /** The recipient certificate's issuer Name DER. */
  recipientIssuerDer: Buffer;
  /** The recipient certificate's serial: magnitude octets (a leading 0x00 pad is tolerated). */
  recipientSerial: Buffer;
  /** The content-encryption key, encrypted with RSAES-PKCS1-v1_5 to the recipient's key. */
  encryptedKey: Buffer;
  contentEncryptionOid: string;
  iv: Buffer;
  /** The CBC ciphertext (PKCS#7 padded, RFC 5652 §6.3). */
  encryptedContent: Buffer;
}

/**
 * Encodes a pkcsPKIEnvelope ContentInfo (RFC 5652 §6): EnvelopedData v0 with one v0
 * KeyTransRecipientInfo (issuerAndSerialNumber, rsaEncryption) and an id-data
 * EncryptedContentInfo with the primitive [0] IMPLICIT encryptedContent. Throws badRequest for an
 * unsupported cipher or inconsistent sizes.
 */
export function encodeEnvelopedData(p: EnvelopedDataInput): Buffer {
  const cipher = contentCipherFor(p.contentEncryptionOid);
  if (cipher === undefined) throw badRequest(`unsupported content encryption algorithm ${p.contentEncryptionOid}`);
  if (p.iv.length !== cipher.ivLength) throw badRequest(`${cipher.name} IV must be ${cipher.ivLength} octets`);
  if (p.encryptedContent.length === 0 || p.encryptedContent.length % cipher.ivLength !== 0) {
    throw badRequest(`${cipher.name} ciphertext must be a positive multiple of ${cipher.ivLength} octets`);
  }
  if (p.encryptedKey.length === 0) throw badRequest('encryptedKey is empty');
  if (p.recipientSerial.length === 0) throw badRequest('recipient serial is empty');
  try {
    expectTag(readWhole(p.recipientIssuerDer, 'issuer Name'), TAG.SEQUENCE, 'issuer Name SEQUENCE');
  } catch (err) {
    throw asBadRequest(err, 'recipient issuer Name');
  }
  const ktri = encodeSequence(
    encodeInteger(0), // RFC 5652 §6.2.1: version 0 with issuerAndSerialNumber
    encodeSequence(p.recipientIssuerDer, encodeUnsignedInteger(magnitudeOf(p.recipientSerial))),
    encodeSequence(encodeOid(OID_KEY.rsaEncryption), encodeNull()),
    encodeOctetString(p.encryptedKey),
  );
  const eci = encodeSequence(
    encodeOid(OID_CMS.data),
    encodeSequence(encodeOid(cipher.oid), encodeOctetString(p.iv)),
    encodeTlv(CTX0_P, p.encryptedContent),
  );
  // RFC 5652 §6.1: version 0 (no originatorInfo, no unprotectedAttrs, only v0 RecipientInfos)
  const ed = encodeSequence(encodeInteger(0), encodeSetOf([ktri]), eci);
  return encodeSequence(encodeOid(OID_CMS.envelopedData), encodeExplicit(0, ed));
}

// ------------------------------------------------------------------------------ CertRep encode

/** Input of `encodeCertRep` (RFC 8894 §3.3.2). */
export interface CertRepInput {
  /** The RA (or CA) certificate whose key signs the reply; RSA or EC. */
  signerCertDer: Buffer;
  /** More certificates to carry after the signer's (e.g. the issuing CA). */
  extraCerts?: Buffer[];
  digest: ScepDigest;
  status: ScepPkiStatus;
  /** Required for FAILURE, refused otherwise. */
  failInfo?: ScepFailInfo;
  /** Optional human-readable failure text (RFC 8894 §3.2.1.4, UTF8String); FAILURE only. */
  failInfoText?: string;
  /** The request's transactionID, echoed. */
  transactionId: string;
  /** The request's senderNonce. */
  recipientNonce: Buffer;
  /** 16 fresh random octets. */
  senderNonce: Buffer;
  signingTime: Date;
  /** The pkcsPKIEnvelope (EnvelopedData DER, see encodeEnvelopedData): required iff SUCCESS. */
  envelopedData?: Buffer;
}

/** A CertRep waiting for its signature. */
export interface CertRepToSign {
  /** DER SET OF the signed attributes: sign this with `crypto.sign(digest, signedAttrsDer, key)`. */
  signedAttrsDer: Buffer;
  /** The node hash name to sign with (= input digest). */
  digest: ScepDigest;
  /** The full CertRep ContentInfo with `signature` in its SignerInfo. */
  assemble(signature: Buffer): Buffer;
}

const DIGEST_OIDS: Record<ScepDigest, { hash: string; ecdsa: string }> = {
  sha1: { hash: OID_HASH.sha1, ecdsa: OID_SIG.ecdsaWithSha1 },
  sha256: { hash: OID_HASH.sha256, ecdsa: OID_SIG.ecdsaWithSha256 },
  sha384: { hash: OID_HASH.sha384, ecdsa: OID_SIG.ecdsaWithSha384 },
  sha512: { hash: OID_HASH.sha512, ecdsa: OID_SIG.ecdsaWithSha512 },
};

/**
 * The parts of a SignedData signer's certificate and its SignerInfo signatureAlgorithm.
 * RSA: rsaEncryption with NULL parameters (RFC 3370 §3.2, RFC 5754 §3.2: the digest comes from
 * digestAlgorithm), which every CMS implementation must accept. Not sha256WithRSAEncryption:
 * strongSwan pki 5.9.8 refuses any other OID there ("only RSA digest encryption supported",
 * proved in the tests), although it writes sha256WithRSAEncryption in its own requests.
 * ECDSA: ecdsa-with-SHA* with absent parameters (RFC 5758 §3.2).
 */
function signerOf(certDer: Buffer, digest: ScepDigest, what: string): { parts: ReturnType<typeof certificateParts>; sigAlgDer: Buffer } {
  const parts = certificateParts(certDer);
  const keyOid = parseSpki(parts.spkiDer).algorithmOid;
  if (keyOid === OID_KEY.rsaEncryption) return { parts, sigAlgDer: encodeSequence(encodeOid(OID_KEY.rsaEncryption), encodeNull()) };
  if (keyOid === OID_KEY.ecPublicKey) return { parts, sigAlgDer: encodeSequence(encodeOid(DIGEST_OIDS[digest].ecdsa)) };
  throw badRequest(`the ${what} signer key (${keyOid}) is neither RSA nor EC`);
}

/** One Attribute { attrType, attrValues SET { value } }. */
function attribute(oid: string, value: Buffer): Buffer {
  return encodeSequence(encodeOid(oid), encodeSetOf([value]));
}

/**
 * Builds a CertRep pkiMessage (RFC 8894 §3.3.2): SignedData v1 carrying the pkcsPKIEnvelope as
 * id-data eContent when SUCCESS and no eContent otherwise, the signer's certificate (+ extras),
 * and one v1 SignerInfo (issuerAndSerialNumber of the signer) with the signed attributes
 * contentType, messageDigest (of the content, or of the empty string), signingTime, messageType 3,
 * pkiStatus, failInfo (FAILURE only), transactionID, recipientNonce, senderNonce.
 * signatureAlgorithm is rsaEncryption for an RSA signer (PKCS#1 v1.5 with `digest`; the only form
 * strongSwan 5.9.8 accepts) or ecdsa-with-SHA* matching `digest` for EC. The caller signs `signedAttrsDer` and passes the signature to `assemble`. Throws
 * badRequest for inconsistent input.
 */
export function encodeCertRep(p: CertRepInput): CertRepToSign {
  const alg = Object.hasOwn(DIGEST_OIDS, p.digest) ? DIGEST_OIDS[p.digest] : undefined;
  if (alg === undefined) throw badRequest(`unsupported CertRep digest ${String(p.digest)}`);
  if (!Object.hasOwn(SCEP_PKI_STATUS, p.status)) throw badRequest(`unknown pkiStatus ${String(p.status)}`);
  if (p.status === 'FAILURE') {
    if (p.failInfo === undefined || !Object.hasOwn(SCEP_FAIL_INFO, p.failInfo)) throw badRequest('a FAILURE CertRep needs a failInfo');
  } else if (p.failInfo !== undefined || p.failInfoText !== undefined) {
    throw badRequest('failInfo is only for a FAILURE CertRep');
  }
  if (p.status === 'SUCCESS' && p.envelopedData === undefined) throw badRequest('a SUCCESS CertRep needs the pkcsPKIEnvelope');
  if (p.status !== 'SUCCESS' && p.envelopedData !== undefined) throw badRequest('only a SUCCESS CertRep carries a pkcsPKIEnvelope');
  if (p.transactionId.length === 0 || p.transactionId.length > MAX_TRANSACTION_ID || !isPrintableString(p.transactionId)) {
    throw badRequest('transactionID must be a non-empty PrintableString');
  }
  for (const [name, n] of [['recipientNonce', p.recipientNonce], ['senderNonce', p.senderNonce]] as const) {
    if (n.length === 0 || n.length > MAX_NONCE) throw badRequest(`${name} must have 1 to ${MAX_NONCE} octets`);
  }
  if (Number.isNaN(p.signingTime.getTime())) throw badRequest('signingTime is not a valid date');

  let parts: ReturnType<typeof certificateParts>;
  let sigAlgDer: Buffer;
  try {
    ({ parts, sigAlgDer } = signerOf(p.signerCertDer, p.digest, 'CertRep'));
    for (const c of p.extraCerts ?? []) expectTag(readWhole(c, 'certificate'), TAG.SEQUENCE, 'Certificate SEQUENCE');
  } catch (err) {
    throw asBadRequest(err, 'CertRep signer certificate');
  }

  const content = p.envelopedData;
  const messageDigest = createHash(p.digest).update(content ?? EMPTY).digest();
  const y = p.signingTime.getUTCFullYear();
  const attrs = [
    attribute(OID_CMS_ATTR.contentType, encodeOid(OID_CMS.data)),
    attribute(OID_CMS_ATTR.messageDigest, encodeOctetString(messageDigest)),
    // RFC 5652 §11.3: UTCTime for 1950–2049, GeneralizedTime otherwise
    attribute(OID_CMS_ATTR.signingTime, y >= 1950 && y <= 2049 ? encodeUtcTime(p.signingTime) : encodeGeneralizedTime(p.signingTime)),
    attribute(OID_SCEP.messageType, encodePrintableString(SCEP_MESSAGE_TYPE.CertRep)),
    attribute(OID_SCEP.pkiStatus, encodePrintableString(SCEP_PKI_STATUS[p.status])),
    attribute(OID_SCEP.transactionID, encodePrintableString(p.transactionId)),
    attribute(OID_SCEP.recipientNonce, encodeOctetString(p.recipientNonce)),
    attribute(OID_SCEP.senderNonce, encodeOctetString(p.senderNonce)),
  ];
  if (p.failInfo !== undefined) attrs.push(attribute(OID_SCEP.failInfo, encodePrintableString(SCEP_FAIL_INFO[p.failInfo])));
  if (p.failInfoText !== undefined) attrs.push(attribute(OID_SCEP.failInfoText, encodeUtf8String(p.failInfoText)));
  // RFC 5652 §5.3: signedAttrs MUST be DER, so the SET OF is sorted (encodeSetOf)
  const signedAttrsDer = encodeSetOf(attrs);

  const digestAlgDer = encodeSequence(encodeOid(alg.hash)); // RFC 5754 §2: parameters absent
  const sid = encodeSequence(parts.issuerDer, encodeTlv(TAG.INTEGER, parts.serial));
  const certs = [p.signerCertDer, ...(p.extraCerts ?? [])];
  const encap =
    content === undefined
      ? encodeSequence(encodeOid(OID_CMS.data)) // RFC 8894 §3.3.2: FAILURE/PENDING carry no content
      : encodeSequence(encodeOid(OID_CMS.data), encodeExplicit(0, encodeOctetString(content)));

  return {
    signedAttrsDer,
    digest: p.digest,
    assemble(signature: Buffer): Buffer {
      if (signature.length === 0) throw badRequest('CertRep signature is empty');
      const implicitAttrs = Buffer.from(signedAttrsDer);
      implicitAttrs[0] = CTX0_C; // RFC 5652 §5.3: signedAttrs [0] IMPLICIT
      const signerInfo = encodeSequence(
        encodeInteger(1), // RFC 5652 §5.3: v1 with issuerAndSerialNumber
        sid,
        digestAlgDer,
        implicitAttrs,
        sigAlgDer,
        encodeOctetString(signature),
      );
      const signedData = encodeSequence(
        encodeInteger(1), // RFC 5652 §5.1: id-data content, v1 SignerInfo, plain certificates
        encodeSetOf([digestAlgDer]),
        encap,
        // kept in the caller's order (signer first), like pkcs7.ts encodeCertsOnly
        encodeTlv(CTX0_C, ...certs),
        encodeSetOf([signerInfo]),
      );
      return encodeSequence(encodeOid(OID_CMS.signedData), encodeExplicit(0, signedData));
    },
  };
}

/** A GetNextCACert response waiting for the current CA's signature. */
export interface NextCaCertToSign {
  /** DER SET OF the signed attributes: the CA signs exactly these bytes. */
  signedAttrsDer: Buffer;
  assemble(signature: Buffer): Buffer;
}

/**
 * The GetNextCACert response (RFC 8894 §4.7.1, media type application/x-x509-next-ca-cert): a
 * SignedData whose id-data eContent is a certs-only SignedData (`certsOnlyDer`) carrying the next
 * CA certificate(s), signed by the current CA. One v1 SignerInfo (issuerAndSerialNumber of
 * `signerCertDer`) with the signed attributes contentType, messageDigest and signingTime;
 * `digest` must be the signer's own hash (ECDSA: ecdsa-with-SHA*; RSA: rsaEncryption, as in
 * CertRep).
 */
export function encodeNextCaCert(p: { signerCertDer: Buffer; certsOnlyDer: Buffer; digest: Exclude<ScepDigest, 'sha1'>; signingTime: Date }): NextCaCertToSign {
  const alg = DIGEST_OIDS[p.digest];
  let parts: ReturnType<typeof certificateParts>;
  let sigAlgDer: Buffer;
  try {
    ({ parts, sigAlgDer } = signerOf(p.signerCertDer, p.digest, 'GetNextCACert'));
    expectTag(readWhole(p.certsOnlyDer, 'certs-only SignedData'), TAG.SEQUENCE, 'certs-only SignedData');
  } catch (err) {
    throw asBadRequest(err, 'GetNextCACert signer certificate');
  }
  const y = p.signingTime.getUTCFullYear();
  const signedAttrsDer = encodeSetOf([
    attribute(OID_CMS_ATTR.contentType, encodeOid(OID_CMS.data)),
    attribute(OID_CMS_ATTR.messageDigest, encodeOctetString(createHash(p.digest).update(p.certsOnlyDer).digest())),
    attribute(OID_CMS_ATTR.signingTime, y >= 1950 && y <= 2049 ? encodeUtcTime(p.signingTime) : encodeGeneralizedTime(p.signingTime)),
  ]);
  const digestAlgDer = encodeSequence(encodeOid(alg.hash));
  const sid = encodeSequence(parts.issuerDer, encodeTlv(TAG.INTEGER, parts.serial));
  return {
    signedAttrsDer,
    assemble(signature: Buffer): Buffer {
      if (signature.length === 0) throw badRequest('GetNextCACert signature is empty');
      const implicitAttrs = Buffer.from(signedAttrsDer);
      implicitAttrs[0] = CTX0_C;
      const signerInfo = encodeSequence(encodeInteger(1), sid, digestAlgDer, implicitAttrs, sigAlgDer, encodeOctetString(signature));
      const signedData = encodeSequence(
        encodeInteger(1),
        encodeSetOf([digestAlgDer]),
        encodeSequence(encodeOid(OID_CMS.data), encodeExplicit(0, encodeOctetString(p.certsOnlyDer))),
        encodeTlv(CTX0_C, p.signerCertDer),
        encodeSetOf([signerInfo]),
      );
      return encodeSequence(encodeOid(OID_CMS.signedData), encodeExplicit(0, signedData));
    },
  };
}
