/**
 * OCSP codec (RFC 6960, with the RFC 5019 lightweight profile): decode an OCSPRequest, encode
 * the ResponseData to sign, wrap the signature into an OCSPResponse, and the unsigned error
 * responses. Pure: no clock, no keys; signing is the caller's.
 *
 * Why hand-written: this is the responder's hot path (tens of thousands of requests/s). Decoding
 * a request with pkijs took ~450 µs and with @peculiar/asn1-ocsp ~44 µs; the readers of
 * `der.ts` walk the bytes in place without building an object tree. Every Buffer handed back by
 * the decoder is a view on the caller's input, not a copy.
 */
import { createHash } from 'node:crypto';
import { CaError, badRequest } from '../core/errors.js';
import { algorithmIdentifierDerShared, type SignatureAlgorithm } from './algorithms.js';
import { REVOCATION_REASON_CODES, type RevocationReasonName } from './crl.js';
import {
  DerError,
  TAG,
  contextTag,
  decodeBitString,
  decodeBoolean,
  decodeInteger,
  decodeOid,
  encodeBitString,
  encodeExplicit,
  encodeGeneralizedTime,
  encodeNull,
  encodeOctetString,
  encodeOid,
  encodeSequence,
  encodeTlv,
  encodeUnsignedInteger,
  encodingOf,
  expectTag,
  readChildren,
  readTlv,
  readWhole,
  valueOf,
  type Tlv,
} from './der.js';
import { OID_HASH, OID_OCSP } from './oids.js';

// ------------------------------------------------------------------------------------ shared

/** The CertID hash algorithms a fleetca responder recognises. */
export type OcspHash = 'sha1' | 'sha256' | 'sha384' | 'sha512';

/** Every OcspHash, for tables and loops. */
export const OCSP_HASHES: readonly OcspHash[] = ['sha1', 'sha256', 'sha384', 'sha512'];

const HASH_BY_OID: ReadonlyMap<string, OcspHash> = new Map(OCSP_HASHES.map((h) => [OID_HASH[h], h]));
const HASH_LEN: Readonly<Record<OcspHash, number>> = { sha1: 20, sha256: 32, sha384: 48, sha512: 64 };

/** Cap on CertIDs per request: bounds the work one request can cause. */
export const MAX_OCSP_CERT_IDS = 64;

// ----------------------------------------------------------------------------------- request

/** One CertID of a request (RFC 6960 §4.1.1). */
export interface OcspCertId {
  /** null when hashAlgorithm is not one of OcspHash (its OID is in `hashOid`). */
  hash: OcspHash | null;
  hashOid: string;
  issuerNameHash: Buffer;
  issuerKeyHash: Buffer;
  /** serialNumber INTEGER content octets exactly as sent (possibly non-minimal or negative). */
  serial: Buffer;
  /**
   * Lower-case hex of the serial's magnitude without leading 00 octets, the same form as
   * `serialToHex` of a stored serial; null unless the value is positive.
   */
  serialHex: string | null;
  /** The exact CertID encoding, echoed byte-for-byte as the SingleResponse certID (RFC 6960 §4.2.1). */
  der: Buffer;
}

/** What a responder needs from an OCSPRequest. */
export interface OcspRequestInfo {
  /** At least one, at most MAX_OCSP_CERT_IDS, in request order. */
  certIds: OcspCertId[];
  /**
   * Content of the id-pkix-ocsp-nonce extnValue (normally itself an OCTET STRING, RFC 6960
   * §4.4.1), to be echoed unchanged; null when the request has no nonce.
   */
  nonce: Buffer | null;
  /** optionalSignature is present. It is neither required nor verified here. */
  signed: boolean;
}

/**
 * A request that is not a well-formed OCSPRequest (garbage, truncated, trailing bytes, wrong
 * structure, no or too many CertIDs). A `badRequest` CaError, which the OCSP adapter answers
 * with malformedRequest.
 */
export class OcspRequestError extends CaError {
  constructor(message: string, cause?: unknown) {
    super('badRequest', message, { cause });
    this.name = 'OcspRequestError';
  }
}

const NULL_PARAMS = 0x05;
const CTX0 = contextTag(0, true); // 0xa0
const CTX1 = contextTag(1, true); // 0xa1
const CTX2 = contextTag(2, true); // 0xa2

const malformed = (what: string) => new DerError('malformed', what);

/** The single element inside an EXPLICIT wrapper, which it must fill exactly. */
function explicitInner(buf: Buffer, wrapper: Tlv, what: string): Tlv {
  const inner = readTlv(buf, wrapper.valueStart, wrapper.end);
  if (inner.end !== wrapper.end) throw malformed(`${what} has extra content`);
  return inner;
}

function serialHexOf(serial: Buffer): string | null {
  if (serial.length === 0 || (serial[0]! & 0x80) !== 0) return null;
  let i = 0;
  while (i < serial.length && serial[i] === 0) i++;
  return i === serial.length ? null : serial.toString('hex', i);
}

// CertID ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier, issuerNameHash OCTET STRING,
//                       issuerKeyHash OCTET STRING, serialNumber CertificateSerialNumber }
function decodeCertId(buf: Buffer, t: Tlv): OcspCertId {
  expectTag(t, TAG.SEQUENCE, 'CertID');
  const alg = expectTag(readTlv(buf, t.valueStart, t.end), TAG.SEQUENCE, 'CertID hashAlgorithm');
  const nameHash = expectTag(readTlv(buf, alg.end, t.end), TAG.OCTET_STRING, 'issuerNameHash');
  const keyHash = expectTag(readTlv(buf, nameHash.end, t.end), TAG.OCTET_STRING, 'issuerKeyHash');
  const serial = expectTag(readTlv(buf, keyHash.end, t.end), TAG.INTEGER, 'serialNumber');
  if (serial.end !== t.end) throw malformed('CertID has extra fields');

  const oidT = readTlv(buf, alg.valueStart, alg.end);
  const hashOid = decodeOid(buf, oidT);
  if (oidT.end !== alg.end) {
    // parameters: absent or NULL for the SHA family (RFC 5754 §2); openssl sends NULL
    const params = readTlv(buf, oidT.end, alg.end);
    if (params.end !== alg.end || params.tag !== NULL_PARAMS || params.end !== params.valueStart) {
      throw malformed('CertID hashAlgorithm parameters must be absent or NULL');
    }
  }
  const hash = HASH_BY_OID.get(hashOid) ?? null;
  const issuerNameHash = valueOf(buf, nameHash);
  const issuerKeyHash = valueOf(buf, keyHash);
  if (hash !== null && (issuerNameHash.length !== HASH_LEN[hash] || issuerKeyHash.length !== HASH_LEN[hash])) {
    throw malformed(`CertID hash lengths do not match ${hash}`);
  }
  const serialBytes = valueOf(buf, serial);
  return {
    hash,
    hashOid,
    issuerNameHash,
    issuerKeyHash,
    serial: serialBytes,
    serialHex: serialHexOf(serialBytes),
    der: encodingOf(buf, t),
  };
}

// Extensions ::= SEQUENCE SIZE (1..MAX) OF Extension
// Extension ::= SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }
// Returns the nonce extnValue content, if any; other extensions are only shape-checked (unknown
// ones, critical or not, are left to the caller's policy: RFC 6960 §4.4 lets a responder ignore them).
function findNonce(buf: Buffer, wrapper: Tlv, what: string): Buffer | null {
  const seq = expectTag(explicitInner(buf, wrapper, what), TAG.SEQUENCE, `${what} Extensions`);
  let nonce: Buffer | null = null;
  let p = seq.valueStart;
  while (p < seq.end) {
    const ext = expectTag(readTlv(buf, p, seq.end), TAG.SEQUENCE, 'Extension');
    p = ext.end;
    const oidT = readTlv(buf, ext.valueStart, ext.end);
    const oid = decodeOid(buf, oidT);
    let v = readTlv(buf, oidT.end, ext.end);
    if (v.tag === TAG.BOOLEAN) {
      decodeBoolean(buf, v);
      v = readTlv(buf, v.end, ext.end);
    }
    expectTag(v, TAG.OCTET_STRING, 'extnValue');
    if (v.end !== ext.end) throw malformed('Extension has extra fields');
    if (oid === OID_OCSP.nonce) {
      // RFC 5280 §4.2: an extension appears at most once
      if (nonce !== null) throw malformed('duplicate nonce extension');
      nonce = valueOf(buf, v);
    }
  }
  return nonce;
}

function decodeRequestInner(buf: Buffer): OcspRequestInfo {
  // OCSPRequest ::= SEQUENCE { tbsRequest TBSRequest, optionalSignature [0] EXPLICIT Signature OPTIONAL }
  const top = expectTag(readWhole(buf, 'OCSPRequest'), TAG.SEQUENCE, 'OCSPRequest SEQUENCE');
  const tbs = expectTag(readTlv(buf, top.valueStart, top.end), TAG.SEQUENCE, 'TBSRequest');
  let signed = false;
  if (tbs.end < top.end) {
    const sig = expectTag(readTlv(buf, tbs.end, top.end), CTX0, 'optionalSignature [0]');
    expectTag(explicitInner(buf, sig, 'optionalSignature'), TAG.SEQUENCE, 'Signature');
    if (sig.end !== top.end) throw malformed('OCSPRequest has extra fields');
    signed = true;
  }

  // TBSRequest ::= SEQUENCE { version [0] EXPLICIT Version DEFAULT v1,
  //   requestorName [1] EXPLICIT GeneralName OPTIONAL, requestList SEQUENCE OF Request,
  //   requestExtensions [2] EXPLICIT Extensions OPTIONAL }          (RFC 6960 §4.1.1)
  let t = readTlv(buf, tbs.valueStart, tbs.end);
  if (t.tag === CTX0) {
    // DER omits the DEFAULT, but tolerate an explicit v1(0); nothing else is defined
    const v = explicitInner(buf, t, 'version');
    if (decodeInteger(buf, v) !== 0n) throw malformed('unsupported OCSPRequest version');
    t = readTlv(buf, t.end, tbs.end);
  }
  if (t.tag === CTX1) {
    explicitInner(buf, t, 'requestorName'); // not used (RFC 6960 §4.1.2)
    t = readTlv(buf, t.end, tbs.end);
  }
  const list = expectTag(t, TAG.SEQUENCE, 'requestList');
  let nonce: Buffer | null = null;
  if (list.end < tbs.end) {
    const exts = expectTag(readTlv(buf, list.end, tbs.end), CTX2, 'requestExtensions [2]');
    if (exts.end !== tbs.end) throw malformed('TBSRequest has extra fields');
    nonce = findNonce(buf, exts, 'requestExtensions');
  }

  // Request ::= SEQUENCE { reqCert CertID, singleRequestExtensions [0] EXPLICIT Extensions OPTIONAL }
  const certIds: OcspCertId[] = [];
  let p = list.valueStart;
  while (p < list.end) {
    if (certIds.length === MAX_OCSP_CERT_IDS) throw malformed(`more than ${MAX_OCSP_CERT_IDS} CertIDs in one request`);
    const req = expectTag(readTlv(buf, p, list.end), TAG.SEQUENCE, 'Request');
    p = req.end;
    const certId = readTlv(buf, req.valueStart, req.end);
    if (certId.end !== req.end) {
      // singleRequestExtensions: shape-checked, otherwise ignored (RFC 6960 §4.4 defines none we need)
      const ext = expectTag(readTlv(buf, certId.end, req.end), CTX0, 'singleRequestExtensions [0]');
      if (ext.end !== req.end) throw malformed('Request has extra fields');
      expectTag(explicitInner(buf, ext, 'singleRequestExtensions'), TAG.SEQUENCE, 'Extensions');
    }
    certIds.push(decodeCertId(buf, certId));
  }
  if (certIds.length === 0) throw malformed('requestList is empty');
  return { certIds, nonce, signed };
}

/**
 * Decodes a DER OCSPRequest (RFC 6960 §4.1.1). Throws OcspRequestError for anything that is
 * not one well-formed request with 1 … MAX_OCSP_CERT_IDS CertIDs. An unrecognised CertID hash
 * algorithm is not an error here (`hash: null`); the caller decides how to answer it.
 */
export function decodeOcspRequest(der: Uint8Array): OcspRequestInfo {
  const buf = Buffer.isBuffer(der) ? der : Buffer.from(der.buffer, der.byteOffset, der.byteLength);
  try {
    return decodeRequestInner(buf);
  } catch (e) {
    if (e instanceof DerError) throw new OcspRequestError(`OCSPRequest is malformed: ${e.message}`, e);
    throw e;
  }
}

// ---------------------------------------------------------------------------------- response

/** The status of one certificate (RFC 6960 §4.2.1 CertStatus). */
export type OcspCertStatus =
  | { type: 'good' }
  /** No `reason` (or 'unspecified') ⇒ no revocationReason; a hold is revoked + certificateHold. */
  | { type: 'revoked'; revokedAt: Date; reason?: RevocationReasonName }
  | { type: 'unknown' };

/** One SingleResponse to encode. */
export interface OcspSingle {
  /** The CertID exactly as the request carried it (`OcspCertId.der`). */
  certIdDer: Buffer;
  status: OcspCertStatus;
  thisUpdate: Date;
  /** Always sent: the RFC 5019 §2.2 profile wants nextUpdate in every response. */
  nextUpdate: Date;
}

/** Parameters of encodeResponseData. */
export interface OcspResponseDataParams {
  /** SHA-1 of the responder's subjectPublicKey (`keyHashOfSpki`), for ResponderID byKey. */
  responderKeyHash: Buffer;
  producedAt: Date;
  responses: OcspSingle[];
  /** The request's nonce (`OcspRequestInfo.nonce`); echoed only when given. */
  nonce?: Buffer | null;
}

const CERT_STATUS_GOOD = Buffer.from([0x80, 0x00]); // good [0] IMPLICIT NULL
const CERT_STATUS_UNKNOWN = Buffer.from([0x82, 0x00]); // unknown [2] IMPLICIT NULL
const CERT_STATUS_REVOKED = contextTag(1, true); // revoked [1] IMPLICIT RevokedInfo
const NONCE_OID = encodeOid(OID_OCSP.nonce);
const BASIC_OID = encodeOid(OID_OCSP.basic);
const STATUS_SUCCESSFUL = Buffer.from([TAG.ENUMERATED, 0x01, 0x00]);

function checkDate(d: Date, what: string): void {
  if (!(d instanceof Date) || Number.isNaN(d.getTime())) throw badRequest(`${what} is not a valid date`);
  const y = d.getUTCFullYear();
  if (y < 1950 || y > 9999) throw badRequest(`${what} is out of range`);
}

function encodeCertStatus(s: OcspCertStatus): Buffer {
  switch (s?.type) {
    case 'good':
      return CERT_STATUS_GOOD;
    case 'unknown':
      return CERT_STATUS_UNKNOWN;
    case 'revoked': {
      // RevokedInfo ::= SEQUENCE { revocationTime GeneralizedTime, revocationReason [0] EXPLICIT CRLReason OPTIONAL }
      checkDate(s.revokedAt, 'revokedAt');
      const time = encodeGeneralizedTime(s.revokedAt);
      if (s.reason === undefined || s.reason === 'unspecified') {
        // like the CRL entry (crl.ts), 'unspecified' is left out rather than encoded as 0
        return encodeTlv(CERT_STATUS_REVOKED, time);
      }
      const code = Object.hasOwn(REVOCATION_REASON_CODES, s.reason) ? REVOCATION_REASON_CODES[s.reason] : undefined;
      if (code === undefined) throw badRequest(`unknown revocation reason: ${String(s.reason)}`);
      // removeFromCRL only means something in a delta CRL; a released hold is answered 'good'
      if (s.reason === 'removeFromCRL') throw badRequest('removeFromCRL is not a status for OCSP');
      return encodeTlv(CERT_STATUS_REVOKED, time, encodeExplicit(0, Buffer.from([TAG.ENUMERATED, 0x01, code])));
    }
    default:
      throw badRequest(`unknown OCSP certificate status: ${String((s as { type?: unknown } | undefined)?.type)}`);
  }
}

// SingleResponse ::= SEQUENCE { certID CertID, certStatus CertStatus, thisUpdate GeneralizedTime,
//   nextUpdate [0] EXPLICIT GeneralizedTime OPTIONAL, singleExtensions [1] EXPLICIT Extensions OPTIONAL }
function encodeSingle(r: OcspSingle): Buffer {
  let certId: Tlv;
  try {
    certId = readWhole(r.certIdDer, 'CertID');
  } catch {
    throw badRequest('certIdDer is not one DER element');
  }
  if (certId.tag !== TAG.SEQUENCE) throw badRequest('certIdDer is not a CertID SEQUENCE');
  checkDate(r.thisUpdate, 'thisUpdate');
  checkDate(r.nextUpdate, 'nextUpdate');
  // compare whole seconds: that is what GeneralizedTime keeps
  if (Math.floor(r.nextUpdate.getTime() / 1000) < Math.floor(r.thisUpdate.getTime() / 1000)) {
    throw badRequest('nextUpdate is before thisUpdate');
  }
  return encodeSequence(
    r.certIdDer,
    encodeCertStatus(r.status),
    encodeGeneralizedTime(r.thisUpdate),
    encodeExplicit(0, encodeGeneralizedTime(r.nextUpdate)),
  );
}

/**
 * ResponseData, the bytes the responder signs (RFC 6960 §4.2.1): version omitted (v1 is the
 * DEFAULT), responderID byKey [2] (RFC 6960 §4.2.2.3, RFC 5019 §2.2), producedAt, the
 * SingleResponses in the given order, and responseExtensions [1] with the nonce extension only
 * when a nonce is given (RFC 6960 §4.4.1). Times are GeneralizedTime in whole seconds, Z (sub-seconds are dropped).
 * Throws badRequest for invalid input.
 */
export function encodeResponseData(p: OcspResponseDataParams): Buffer {
  if (!Buffer.isBuffer(p.responderKeyHash) || p.responderKeyHash.length !== 20) {
    throw badRequest('responderKeyHash must be a 20-octet SHA-1 (RFC 6960 §4.2.2.3)');
  }
  checkDate(p.producedAt, 'producedAt');
  if (!Array.isArray(p.responses) || p.responses.length === 0) throw badRequest('an OCSP response needs at least one SingleResponse');
  // ResponderID ::= CHOICE { byName [1] Name, byKey [2] KeyHash } (EXPLICIT tags); KeyHash ::= OCTET STRING
  const parts: Buffer[] = [
    encodeExplicit(2, encodeOctetString(p.responderKeyHash)),
    encodeGeneralizedTime(p.producedAt),
    encodeSequence(...p.responses.map(encodeSingle)),
  ];
  if (p.nonce !== undefined && p.nonce !== null) {
    if (!Buffer.isBuffer(p.nonce)) throw badRequest('nonce must be a Buffer');
    // the request's extnValue content, unchanged: what clients compare (openssl OCSP_check_nonce)
    parts.push(encodeExplicit(1, encodeSequence(encodeSequence(NONCE_OID, encodeOctetString(p.nonce)))));
  }
  return encodeSequence(...parts);
}

/**
 * OCSPResponse { successful, responseBytes { id-pkix-ocsp-basic, OCTET STRING(BasicOCSPResponse) } }
 * (RFC 6960 §4.2.1). BasicOCSPResponse ::= SEQUENCE { tbsResponseData, signatureAlgorithm,
 * signature BIT STRING, certs [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL }; `certs` is left
 * out when empty (e.g. when the CA signs itself). `signature` is what node's crypto.sign
 * returned over `tbsResponseData` (for ECDSA the DER Ecdsa-Sig-Value, RFC 5758 §3.2).
 */
export function assembleOcspResponse(tbsResponseData: Buffer, alg: SignatureAlgorithm, signature: Buffer, certs: Buffer[]): Buffer {
  const algDer = algorithmIdentifierDerShared(alg);
  const isSequence = (b: Buffer) => {
    try {
      return Buffer.isBuffer(b) && readWhole(b).tag === TAG.SEQUENCE;
    } catch {
      return false;
    }
  };
  if (!isSequence(tbsResponseData)) throw badRequest('tbsResponseData is not a DER SEQUENCE');
  if (!Buffer.isBuffer(signature) || signature.length === 0) throw badRequest('signature is empty');
  const basic: Buffer[] = [tbsResponseData, algDer, encodeBitString(signature, 0)];
  if (certs.length > 0) {
    if (!certs.every(isSequence)) throw badRequest('certs must each be a DER Certificate');
    basic.push(encodeExplicit(0, encodeSequence(...certs)));
  }
  return encodeSequence(
    STATUS_SUCCESSFUL,
    encodeExplicit(0, encodeSequence(BASIC_OID, encodeOctetString(encodeSequence(...basic)))),
  );
}

/** The OCSPResponseStatus values other than successful (RFC 6960 §4.2.1; 4 is not used). */
export type OcspErrorStatus = 'malformedRequest' | 'internalError' | 'tryLater' | 'sigRequired' | 'unauthorized';

/** Every OCSPResponseStatus. */
export type OcspResponseStatus = 'successful' | OcspErrorStatus;

const RESPONSE_STATUS_CODES: Readonly<Record<OcspResponseStatus, number>> = Object.freeze({
  successful: 0,
  malformedRequest: 1,
  internalError: 2,
  tryLater: 3,
  sigRequired: 5,
  unauthorized: 6,
});

// OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED } with no responseBytes
const ERROR_RESPONSES = new Map<OcspErrorStatus, Buffer>(
  (Object.keys(RESPONSE_STATUS_CODES) as OcspResponseStatus[])
    .filter((s): s is OcspErrorStatus => s !== 'successful')
    .map((s) => [s, Buffer.from([TAG.SEQUENCE, 0x03, TAG.ENUMERATED, 0x01, RESPONSE_STATUS_CODES[s]])]),
);

/**
 * An unsigned OCSPResponse carrying only an error responseStatus (RFC 6960 §4.2.1: no
 * responseBytes for anything but successful). Returns a fresh 5-octet copy.
 */
export function encodeOcspError(s: OcspErrorStatus): Buffer {
  const b = ERROR_RESPONSES.get(s);
  if (b === undefined) throw badRequest(`not an OCSP error status: ${String(s)}`);
  return Buffer.from(b);
}

// ----------------------------------------------------------------------------------- hashing

function checkHash(h: OcspHash): void {
  if (!Object.hasOwn(HASH_LEN, h)) throw badRequest(`unsupported OCSP hash: ${String(h)}`);
}

/**
 * Hash of the subjectPublicKey BIT STRING value, without tag, length and unused-bits octet, of
 * a DER SubjectPublicKeyInfo: ResponderID KeyHash with SHA-1 (RFC 6960 §4.2.2.3) and the CertID
 * issuerKeyHash (RFC 6960 §4.1.1). Throws badRequest for a malformed SPKI.
 */
export function keyHashOfSpki(spkiDer: Buffer, hash: OcspHash = 'sha1'): Buffer {
  checkHash(hash);
  let key: Buffer;
  try {
    const spki = expectTag(readWhole(spkiDer, 'SubjectPublicKeyInfo'), TAG.SEQUENCE, 'SubjectPublicKeyInfo');
    const [alg, bits, extra] = readChildren(spkiDer, spki);
    expectTag(alg, TAG.SEQUENCE, 'AlgorithmIdentifier');
    if (extra !== undefined) throw malformed('SubjectPublicKeyInfo has extra fields');
    const bs = decodeBitString(spkiDer, expectTag(bits, TAG.BIT_STRING, 'subjectPublicKey'));
    key = bs.bytes;
  } catch (e) {
    if (e instanceof DerError) throw badRequest(`SubjectPublicKeyInfo is malformed: ${e.message}`, e);
    throw e;
  }
  return createHash(hash).update(key).digest();
}

/**
 * For one issuer, the CertID issuerNameHash (over the DER of its subject Name) and
 * issuerKeyHash (`keyHashOfSpki`) in every supported hash (RFC 6960 §4.1.1), for matching
 * incoming CertIDs to issuers.
 */
export function issuerHashes(issuerSubjectDer: Buffer, issuerSpkiDer: Buffer): Record<OcspHash, { nameHash: Buffer; keyHash: Buffer }> {
  const out = {} as Record<OcspHash, { nameHash: Buffer; keyHash: Buffer }>;
  for (const h of OCSP_HASHES) {
    out[h] = { nameHash: createHash(h).update(issuerSubjectDer).digest(), keyHash: keyHashOfSpki(issuerSpkiDer, h) };
  }
  return out;
}

/**
 * CertID ::= SEQUENCE { hashAlgorithm (with NULL parameters, as openssl sends), issuerNameHash,
 * issuerKeyHash, serialNumber } (RFC 6960 §4.1.1): the CertID a pre-signed response answers, for
 * the requests that send exactly these bytes.
 */
export function encodeCertId(hash: OcspHash, nameHash: Buffer, keyHash: Buffer, serialMagnitude: Buffer): Buffer {
  checkHash(hash);
  return encodeSequence(
    encodeSequence(encodeOid(OID_HASH[hash]), encodeNull()),
    encodeOctetString(nameHash),
    encodeOctetString(keyHash),
    encodeUnsignedInteger(serialMagnitude),
  );
}

// ------------------------------------------------------------------------- response decoding

/** One SingleResponse as decoded. */
export interface DecodedOcspSingle {
  certIdDer: Buffer;
  status: OcspCertStatus;
  thisUpdate: Date;
  nextUpdate: Date | null;
}

/** A BasicOCSPResponse as decoded (views on the input). */
export interface DecodedBasicOcspResponse {
  /** tbsResponseData encoding: the signed bytes. */
  tbsDer: Buffer;
  responderId: { byKey: Buffer } | { byName: Buffer };
  producedAt: Date;
  responses: DecodedOcspSingle[];
  /** nonce extnValue content, or null. */
  nonce: Buffer | null;
  signatureAlgorithmOid: string;
  /** signature BIT STRING content after the unused-bits octet. */
  signature: Buffer;
  certs: Buffer[];
}

/** A decoded OCSPResponse: `basic` is set exactly when the status is successful. */
export interface DecodedOcspResponse {
  status: OcspResponseStatus;
  basic: DecodedBasicOcspResponse | null;
}

const STATUS_BY_CODE: ReadonlyMap<number, OcspResponseStatus> = new Map(
  (Object.entries(RESPONSE_STATUS_CODES) as Array<[OcspResponseStatus, number]>).map(([k, v]) => [v, k]),
);
const REASON_BY_CODE: ReadonlyMap<number, RevocationReasonName> = new Map(
  (Object.entries(REVOCATION_REASON_CODES) as Array<[RevocationReasonName, number]>).map(([k, v]) => [v, k]),
);

function decodeGeneralizedTime(buf: Buffer, t: Tlv | undefined, what: string): Date {
  expectTag(t, TAG.GENERALIZED_TIME, what);
  const m = /^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\.\d+)?Z$/.exec(valueOf(buf, t!).toString('latin1'));
  if (!m) throw malformed(`${what} is not GeneralizedTime YYYYMMDDHHMMSS[.f]Z`);
  const ms = m[7] ? Math.floor(Number(m[7]) * 1000) : 0;
  return new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]), ms));
}

function decodeEnumerated(buf: Buffer, t: Tlv | undefined, what: string): number {
  return Number(decodeInteger(buf, expectTag(t, TAG.ENUMERATED, what), TAG.ENUMERATED));
}

function decodeSingle(buf: Buffer, t: Tlv): DecodedOcspSingle {
  const [certId, st, thisU, ...rest] = readChildren(buf, expectTag(t, TAG.SEQUENCE, 'SingleResponse'));
  expectTag(certId, TAG.SEQUENCE, 'CertID');
  if (st === undefined) throw malformed('missing certStatus');
  let status: OcspCertStatus;
  if (st.tag === 0x80 && st.end === st.valueStart) status = { type: 'good' };
  else if (st.tag === 0x82 && st.end === st.valueStart) status = { type: 'unknown' };
  else if (st.tag === CERT_STATUS_REVOKED) {
    const [time, reasonW, extra] = readChildren(buf, st);
    if (extra !== undefined) throw malformed('RevokedInfo has extra fields');
    const revokedAt = decodeGeneralizedTime(buf, time, 'revocationTime');
    status = { type: 'revoked', revokedAt };
    if (reasonW !== undefined) {
      const code = decodeEnumerated(buf, explicitInner(buf, expectTag(reasonW, CTX0, 'revocationReason [0]'), 'revocationReason'), 'CRLReason');
      const reason = REASON_BY_CODE.get(code);
      if (reason === undefined) throw malformed(`unknown CRLReason ${code}`);
      status.reason = reason;
    }
  } else throw malformed('unknown certStatus');
  const thisUpdate = decodeGeneralizedTime(buf, thisU, 'thisUpdate');
  let nextUpdate: Date | null = null;
  let i = 0;
  if (rest[i]?.tag === CTX0) nextUpdate = decodeGeneralizedTime(buf, explicitInner(buf, rest[i++]!, 'nextUpdate'), 'nextUpdate');
  if (rest[i]?.tag === CTX1) i++; // singleExtensions
  if (i !== rest.length) throw malformed('SingleResponse has extra fields');
  return { certIdDer: encodingOf(buf, certId!), status, thisUpdate, nextUpdate };
}

function decodeBasic(buf: Buffer, basicT: Tlv): DecodedBasicOcspResponse {
  const [tbs, alg, sig, certsW, extra] = readChildren(buf, expectTag(basicT, TAG.SEQUENCE, 'BasicOCSPResponse'));
  if (extra !== undefined) throw malformed('BasicOCSPResponse has extra fields');
  expectTag(tbs, TAG.SEQUENCE, 'tbsResponseData');
  const signatureAlgorithmOid = decodeOid(buf, expectTag(readChildren(buf, expectTag(alg, TAG.SEQUENCE, 'signatureAlgorithm'))[0], TAG.OID, 'algorithm'));
  const bs = decodeBitString(buf, expectTag(sig, TAG.BIT_STRING, 'signature'));
  if (bs.unusedBits !== 0) throw malformed('signature has unused bits');
  const certs: Buffer[] = [];
  if (certsW !== undefined) {
    const seq = expectTag(explicitInner(buf, expectTag(certsW, CTX0, 'certs [0]'), 'certs'), TAG.SEQUENCE, 'certs SEQUENCE');
    for (const c of readChildren(buf, seq)) certs.push(encodingOf(buf, expectTag(c, TAG.SEQUENCE, 'Certificate')));
  }

  const f = readChildren(buf, tbs!);
  let i = 0;
  if (f[i]?.tag === CTX0) {
    if (decodeInteger(buf, explicitInner(buf, f[i++]!, 'version')) !== 0n) throw malformed('unsupported ResponseData version');
  }
  const rid = f[i++];
  let responderId: DecodedBasicOcspResponse['responderId'];
  if (rid?.tag === CTX1) responderId = { byName: encodingOf(buf, expectTag(explicitInner(buf, rid, 'byName'), TAG.SEQUENCE, 'Name')) };
  else if (rid?.tag === CTX2) responderId = { byKey: valueOf(buf, expectTag(explicitInner(buf, rid, 'byKey'), TAG.OCTET_STRING, 'KeyHash')) };
  else throw malformed('missing responderID');
  const producedAt = decodeGeneralizedTime(buf, f[i++], 'producedAt');
  const responses = readChildren(buf, expectTag(f[i++], TAG.SEQUENCE, 'responses')).map((r) => decodeSingle(buf, r));
  let nonce: Buffer | null = null;
  if (f[i]?.tag === CTX1) nonce = findNonce(buf, f[i++]!, 'responseExtensions');
  if (i !== f.length) throw malformed('ResponseData has extra fields');
  return { tbsDer: encodingOf(buf, tbs!), responderId, producedAt, responses, nonce, signatureAlgorithmOid, signature: bs.bytes, certs };
}

/**
 * Decodes a DER OCSPResponse (RFC 6960 §4.2.1) for tests and self-checks: status, and for a
 * successful basic response its fields. Does not verify the signature. Not tuned for speed.
 * Throws badRequest when malformed or when the response type is not id-pkix-ocsp-basic.
 */
export function decodeOcspResponse(der: Buffer): DecodedOcspResponse {
  try {
    const top = expectTag(readWhole(der, 'OCSPResponse'), TAG.SEQUENCE, 'OCSPResponse');
    const [st, bytesW, extra] = readChildren(der, top);
    if (extra !== undefined) throw malformed('OCSPResponse has extra fields');
    const code = decodeEnumerated(der, st, 'responseStatus');
    const status = STATUS_BY_CODE.get(code);
    if (status === undefined) throw malformed(`unknown responseStatus ${code}`);
    if (status !== 'successful') {
      if (bytesW !== undefined) throw malformed('an error response carries responseBytes');
      return { status, basic: null };
    }
    if (bytesW === undefined) throw malformed('successful response without responseBytes');
    const rb = expectTag(explicitInner(der, expectTag(bytesW, CTX0, 'responseBytes [0]'), 'responseBytes'), TAG.SEQUENCE, 'ResponseBytes');
    const [typeT, octets, extra2] = readChildren(der, rb);
    if (extra2 !== undefined) throw malformed('ResponseBytes has extra fields');
    const type = decodeOid(der, expectTag(typeT, TAG.OID, 'responseType'));
    if (type !== OID_OCSP.basic) throw malformed(`unsupported responseType ${type}`);
    const inner = valueOf(der, expectTag(octets, TAG.OCTET_STRING, 'response'));
    return { status, basic: decodeBasic(inner, readWhole(inner, 'BasicOCSPResponse')) };
  } catch (e) {
    if (e instanceof DerError) throw badRequest(`OCSPResponse is malformed: ${e.message}`, e);
    throw e;
  }
}
