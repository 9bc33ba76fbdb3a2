/**
 * Degenerate "certs-only" CMS SignedData (RFC 5652 §5; PKCS#7, RFC 2315 §9): a SignedData with no
 * signers whose only purpose is to carry a list of certificates. EST returns it from /cacerts and
 * /simpleenroll (RFC 7030 §4.1.3, §4.2.3), SCEP from GetCACert and inside CertRep.
 *
 * Layout written and accepted here (tags in brackets):
 *   ContentInfo SEQUENCE {                               -- RFC 5652 §3
 *     contentType   OID id-signedData,
 *     content       [0] EXPLICIT SignedData SEQUENCE {   -- RFC 5652 §5.1
 *       version           INTEGER 1,
 *       digestAlgorithms  SET {} (empty),
 *       encapContentInfo  SEQUENCE { OID id-data },      -- no eContent
 *       certificates      [0] IMPLICIT SET OF Certificate,
 *       signerInfos       SET {} (empty) } }
 */
import { badRequest } from '../core/errors.js';
import {
  DerError,
  TAG,
  contextTag,
  decodeInteger,
  decodeOid,
  encodeExplicit,
  encodeInteger,
  encodeOid,
  encodeSequence,
  encodeTlv,
  expectTag,
  readChildren,
  readTlv,
  readWhole,
  type Tlv,
} from './der.js';
import { OID_CMS } from './oids.js';

const CTX0 = contextTag(0, true);
const CTX1 = contextTag(1, true);
const EMPTY_SET = Buffer.from([TAG.SET, 0]);

/** Turns a reader error into the badRequest callers see; anything else passes through. */
function asBadRequest(err: unknown, what: string): unknown {
  if (err instanceof DerError) {
    return badRequest(err.reason === 'truncated' ? `${what} DER is truncated` : `${what} DER is malformed: ${err.message}`, err);
  }
  return err;
}

/**
 * Checks that `buf[t]` has the outer shape of an X.509 Certificate (RFC 5280 §4.1):
 * SEQUENCE { tbsCertificate SEQUENCE, signatureAlgorithm SEQUENCE, signatureValue BIT STRING }.
 * The contents are not parsed further: this layer only carries certificates.
 */
function checkCertificateShape(buf: Uint8Array, t: Tlv, what: string): void {
  expectTag(t, TAG.SEQUENCE, `${what} SEQUENCE`);
  const [tbs, alg, sig, extra] = readChildren(buf, t);
  expectTag(tbs, TAG.SEQUENCE, `${what} tbsCertificate`);
  expectTag(alg, TAG.SEQUENCE, `${what} signatureAlgorithm`);
  expectTag(sig, TAG.BIT_STRING, `${what} signatureValue`);
  if (extra !== undefined) throw new DerError('malformed', `${what} has extra fields`);
}

/**
 * Encodes a certs-only SignedData ContentInfo carrying `certs` (each one DER Certificate), in the
 * given order. Throws badRequest for an empty list or an entry that is not exactly one
 * Certificate-shaped DER element.
 */
export function encodeCertsOnly(certs: Buffer[]): Buffer {
  if (certs.length === 0) throw badRequest('certs-only SignedData needs at least one certificate');
  certs.forEach((c, i) => {
    try {
      checkCertificateShape(c, readWhole(c, `certificate ${i}`), `certificate ${i}`);
    } catch (err) {
      throw asBadRequest(err, `certificate ${i}`);
    }
  });
  // RFC 5652 §5.1: CertificateSet ::= SET OF CertificateChoices. Canonical DER (X.690 §11.6) would
  // sort the elements by encoding; they are kept in the caller's order instead, so the leaf (or the
  // issuing CA) stays first. CMS content is BER, with DER required only for signed attributes
  // (RFC 5652 §5.3, §5.4), so an unsorted SET is still a valid encoding; OpenSSL and the real EST
  // and SCEP clients accept it and read the certificates in the order written. OpenSSL writes this
  // field unsorted too: `openssl crl2pkcs7 -nocrl` gives byte-identical output (see the tests).
  const certificates = encodeTlv(CTX0, ...certs);
  const signedData = encodeSequence(
    // RFC 5652 §5.1: version 1, as there are no attribute certificates, no "other" certificate or
    // CRL formats, no v3 SignerInfo, and the encapsulated content type is id-data
    encodeInteger(1),
    EMPTY_SET, // digestAlgorithms: no signer, so no digest algorithm
    // RFC 5652 §5.2: encapContentInfo with eContent omitted (a detached, here absent, content)
    encodeSequence(encodeOid(OID_CMS.data)),
    certificates,
    // crls [1] omitted
    EMPTY_SET, // signerInfos: none, which is what makes it "degenerate" (RFC 5652 §5)
  );
  // RFC 5652 §3: ContentInfo { contentType, content [0] EXPLICIT }
  return encodeSequence(encodeOid(OID_CMS.signedData), encodeExplicit(0, signedData));
}

/**
 * Decodes a certs-only SignedData ContentInfo (the layout in this file's header) and returns the
 * DER of each certificate, copied, in the order they appear. Strict: the buffer must be exactly one
 * DER ContentInfo of type id-signedData, version 1, with empty digestAlgorithms and signerInfos, an
 * id-data encapContentInfo without content, no CRLs, and at least one certificate, each of them
 * Certificate-shaped (other CertificateChoices such as attribute certificates are refused).
 * Throws badRequest otherwise.
 */
export function decodeCertsOnly(der: Buffer): Buffer[] {
  if (der.length === 0) throw badRequest('certs-only SignedData is empty');
  try {
    return decodeCertsOnlyUnchecked(der);
  } catch (err) {
    throw asBadRequest(err, 'certs-only SignedData');
  }
}

function decodeCertsOnlyUnchecked(der: Buffer): Buffer[] {
  const top = readWhole(der, 'ContentInfo');
  expectTag(top, TAG.SEQUENCE, 'ContentInfo SEQUENCE');
  // RFC 5652 §3: contentType, then content [0] EXPLICIT
  const [typeT, contentT, extraCi] = readChildren(der, top);
  const contentType = decodeOid(der, expectTag(typeT, TAG.OID, 'contentType'));
  if (contentType !== OID_CMS.signedData) {
    throw badRequest(`certs-only SignedData: ContentInfo type is ${contentType}, not id-signedData`);
  }
  expectTag(contentT, CTX0, 'ContentInfo content [0]');
  if (extraCi !== undefined) throw new DerError('malformed', 'ContentInfo has extra fields');
  const sd = readTlv(der, contentT!.valueStart, contentT!.end);
  if (sd.end !== contentT!.end) throw new DerError('malformed', 'trailing data in ContentInfo content');
  expectTag(sd, TAG.SEQUENCE, 'SignedData SEQUENCE');

  // RFC 5652 §5.1 field order: version, digestAlgorithms, encapContentInfo, [0] certificates,
  // [1] crls, signerInfos
  const parts = readChildren(der, sd);
  let i = 0;
  const version = expectTag(parts[i++], TAG.INTEGER, 'SignedData version');
  if (decodeInteger(der, version) !== 1n) throw new DerError('malformed', 'SignedData version of a certs-only message must be 1');
  const digestAlgs = expectTag(parts[i++], TAG.SET, 'digestAlgorithms SET');
  if (digestAlgs.end !== digestAlgs.valueStart) throw new DerError('malformed', 'digestAlgorithms of a certs-only message must be empty');

  const encap = expectTag(parts[i++], TAG.SEQUENCE, 'encapContentInfo SEQUENCE');
  const [eTypeT, eContent] = readChildren(der, encap);
  if (decodeOid(der, expectTag(eTypeT, TAG.OID, 'eContentType')) !== OID_CMS.data) {
    throw new DerError('malformed', 'encapContentInfo type of a certs-only message must be id-data');
  }
  if (eContent !== undefined) throw new DerError('malformed', 'encapContentInfo of a certs-only message must have no content');

  const certsT = parts[i];
  if (certsT?.tag !== CTX0) throw new DerError('malformed', 'certs-only message has no certificates');
  i++;
  const certs = readChildren(der, certsT);
  if (certs.length === 0) throw new DerError('malformed', 'certs-only message has no certificates');
  certs.forEach((c, n) => checkCertificateShape(der, c, `certificate ${n}`));

  if (parts[i]?.tag === CTX1) throw new DerError('malformed', 'certs-only message must not carry CRLs');
  const signerInfos = expectTag(parts[i++], TAG.SET, 'signerInfos SET');
  if (signerInfos.end !== signerInfos.valueStart) throw new DerError('malformed', 'signerInfos of a certs-only message must be empty');
  if (i !== parts.length) throw new DerError('malformed', 'SignedData has extra fields');

  return certs.map((c) => Buffer.from(der.subarray(c.start, c.end)));
}
