/**
 * Reads a CRL (RFC 5280 §5.1) far enough to check an external manufacturer's revocations: the
 * signed bytes, the signature, the issuer, the update times and the revoked serial numbers.
 * Signature verification itself is the caller's (node crypto); this file is pure.
 */
import { badRequest } from '../core/errors.js';
import { DerError, TAG, contextTag, decodeInteger, decodeOid, encodingOf, expectTag, readChildren, readWhole, valueOf, type Tlv } from './der.js';
import { OID_SIG } from './oids.js';

/** The parts of a CertificateList an IDevID check needs. */
export interface DecodedCrl {
  /** The DER of tbsCertList: the signed bytes. */
  tbsDer: Buffer;
  signatureAlgorithmOid: string;
  /** The signature value (BIT STRING content). */
  signature: Buffer;
  /** DER of the issuer Name. */
  issuerDer: Buffer;
  thisUpdate: Date;
  nextUpdate: Date | null;
  /** Revoked serial numbers, lowercase hex without leading zeros. */
  revokedSerials: Set<string>;
}

function decodeTime(buf: Buffer, t: Tlv): Date {
  const s = valueOf(buf, t).toString('latin1');
  // RFC 5280 §4.1.2.5.1/2: UTCTime YYMMDDHHMMSSZ, GeneralizedTime YYYYMMDDHHMMSSZ
  const m = t.tag === TAG.UTC_TIME ? /^(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(s) : t.tag === TAG.GENERALIZED_TIME ? /^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(s) : null;
  if (!m) throw new DerError('malformed', 'CRL time is not UTCTime or GeneralizedTime in Z form');
  let year = Number(m[1]);
  if (t.tag === TAG.UTC_TIME) year += year >= 50 ? 1900 : 2000;
  return new Date(Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
}

const isTime = (t: Tlv | undefined) => t !== undefined && (t.tag === TAG.UTC_TIME || t.tag === TAG.GENERALIZED_TIME);

/** Decodes a DER CRL; throws badRequest with a one-line reason on anything malformed. */
export function decodeCrl(der: Buffer): DecodedCrl {
  try {
    const outer = expectTag(readWhole(der, 'CertificateList'), TAG.SEQUENCE, 'CertificateList');
    const [tbs, alg, sig, ...rest] = readChildren(der, outer);
    if (rest.length > 0) throw new DerError('malformed', 'CertificateList has extra elements');
    expectTag(tbs, TAG.SEQUENCE, 'tbsCertList');
    expectTag(alg, TAG.SEQUENCE, 'signatureAlgorithm');
    expectTag(sig, TAG.BIT_STRING, 'signatureValue');
    const algOid = decodeOid(der, expectTag(readChildren(der, alg!)[0], TAG.OID, 'algorithm'));
    const sigValue = valueOf(der, sig!);
    if (sigValue[0] !== 0) throw new DerError('malformed', 'signature BIT STRING has unused bits');

    const fields = readChildren(der, tbs!);
    let i = 0;
    if (fields[i]?.tag === TAG.INTEGER) i++; // version v2
    expectTag(fields[i++], TAG.SEQUENCE, 'tbsCertList signature');
    const issuer = expectTag(fields[i++], TAG.SEQUENCE, 'issuer');
    if (!isTime(fields[i])) throw new DerError('malformed', 'thisUpdate missing');
    const thisUpdate = decodeTime(der, fields[i++]!);
    let nextUpdate: Date | null = null;
    if (isTime(fields[i])) nextUpdate = decodeTime(der, fields[i++]!);
    const revokedSerials = new Set<string>();
    if (fields[i]?.tag === TAG.SEQUENCE) {
      for (const entry of readChildren(der, fields[i++]!)) {
        const serial = expectTag(readChildren(der, expectTag(entry, TAG.SEQUENCE, 'revoked entry'))[0], TAG.INTEGER, 'userCertificate');
        revokedSerials.add(decodeInteger(der, serial).toString(16));
      }
    }
    if (fields[i]?.tag === contextTag(0, true)) i++; // crlExtensions
    if (i !== fields.length) throw new DerError('malformed', 'tbsCertList has unexpected elements');
    return {
      tbsDer: encodingOf(der, tbs!),
      signatureAlgorithmOid: algOid,
      signature: sigValue.subarray(1),
      issuerDer: encodingOf(der, issuer),
      thisUpdate,
      nextUpdate,
      revokedSerials,
    };
  } catch (e) {
    if (e instanceof DerError) throw badRequest(`CRL is malformed: ${e.message}`, e);
    throw e;
  }
}

/** node's digest name for a CRL or certificate signature algorithm OID (null: Ed25519/Ed448 or unknown). */
export function digestForSignatureOid(oid: string): { digest: string | null; known: boolean } {
  switch (oid) {
    case OID_SIG.ecdsaWithSha256:
    case OID_SIG.sha256WithRsa:
      return { digest: 'sha256', known: true };
    case OID_SIG.ecdsaWithSha384:
    case OID_SIG.sha384WithRsa:
      return { digest: 'sha384', known: true };
    case OID_SIG.ecdsaWithSha512:
    case OID_SIG.sha512WithRsa:
      return { digest: 'sha512', known: true };
    case OID_SIG.ed25519:
    case OID_SIG.ed448:
      return { digest: null, known: true };
    default:
      return { digest: null, known: false };
  }
}
