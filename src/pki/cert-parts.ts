/**
 * Raw parts of a Certificate (RFC 5280 §4.1) without a full parse: the exact TBSCertificate
 * bytes (to compare what was signed with what was linted), and the issuer, subject and SPKI
 * encodings (copied byte-for-byte into what an issuer signs, RFC 5280 §4.1.2.4).
 */
import { TAG, contextTag, encodingOf, expectTag, readChildren, readWhole } from './der.js';

/** The TBSCertificate encoding inside a Certificate DER (a view). */
export function extractTbs(certDer: Buffer): Buffer {
  const cert = expectTag(readWhole(certDer, 'Certificate'), TAG.SEQUENCE, 'Certificate SEQUENCE');
  const [tbs] = readChildren(certDer, cert);
  return encodingOf(certDer, expectTag(tbs, TAG.SEQUENCE, 'TBSCertificate'));
}

export interface CertificateParts {
  tbsDer: Buffer;
  serial: Buffer;
  issuerDer: Buffer;
  subjectDer: Buffer;
  spkiDer: Buffer;
}

/** TBSCertificate fields by position: [0] version?, serial, signature, issuer, validity, subject, spki. */
export function certificateParts(certDer: Buffer): CertificateParts {
  const tbsDer = extractTbs(certDer);
  const tbs = readWhole(tbsDer, 'TBSCertificate');
  const kids = readChildren(tbsDer, tbs);
  const off = kids[0]?.tag === contextTag(0, true) ? 1 : 0;
  const serial = expectTag(kids[off], TAG.INTEGER, 'serialNumber');
  return {
    tbsDer,
    serial: tbsDer.subarray(serial.valueStart, serial.end),
    issuerDer: encodingOf(tbsDer, expectTag(kids[off + 2], TAG.SEQUENCE, 'issuer')),
    subjectDer: encodingOf(tbsDer, expectTag(kids[off + 4], TAG.SEQUENCE, 'subject')),
    spkiDer: encodingOf(tbsDer, expectTag(kids[off + 5], TAG.SEQUENCE, 'subjectPublicKeyInfo')),
  };
}
