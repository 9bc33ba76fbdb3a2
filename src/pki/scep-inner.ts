/**
 * The inner (decrypted) content of SCEP CertPoll, GetCert and GetCRL requests (RFC 8894 §3.3.3,
 * §3.3.4, §3.3.5), and the CRLs-only reply of GetCRL.
 */
import { badRequest } from '../core/errors.js';
import { DerError, TAG, decodeInteger, encodeExplicit, encodeInteger, encodeOid, encodeSequence, encodeSetOf, encodingOf, expectTag, readChildren, readWhole } from './der.js';
import { OID_CMS } from './oids.js';

/** IssuerAndSubject ::= SEQUENCE { issuer Name, subject Name } (CertPoll). */
export function decodeIssuerAndSubject(der: Buffer): { issuerDer: Buffer; subjectDer: Buffer } {
  try {
    const seq = expectTag(readWhole(der, 'IssuerAndSubject'), TAG.SEQUENCE, 'IssuerAndSubject');
    const [issuer, subject, ...rest] = readChildren(der, seq);
    if (rest.length > 0) throw new DerError('malformed', 'IssuerAndSubject has extra elements');
    return {
      issuerDer: encodingOf(der, expectTag(issuer, TAG.SEQUENCE, 'issuer Name')),
      subjectDer: encodingOf(der, expectTag(subject, TAG.SEQUENCE, 'subject Name')),
    };
  } catch (e) {
    if (e instanceof DerError) throw badRequest(`IssuerAndSubject is malformed: ${e.message}`, e);
    throw e;
  }
}

/** IssuerAndSerialNumber ::= SEQUENCE { issuer Name, serialNumber INTEGER } (GetCert, GetCRL). */
export function decodeIssuerAndSerial(der: Buffer): { issuerDer: Buffer; serialHex: string } {
  try {
    const seq = expectTag(readWhole(der, 'IssuerAndSerialNumber'), TAG.SEQUENCE, 'IssuerAndSerialNumber');
    const [issuer, serial, ...rest] = readChildren(der, seq);
    if (rest.length > 0) throw new DerError('malformed', 'IssuerAndSerialNumber has extra elements');
    const n = decodeInteger(der, expectTag(serial, TAG.INTEGER, 'serialNumber'));
    if (n <= 0n) throw new DerError('malformed', 'serialNumber must be positive');
    // the store's form: whole octets (a serial whose first octet is below 0x10 keeps its leading 0)
    const hex = n.toString(16);
    return { issuerDer: encodingOf(der, expectTag(issuer, TAG.SEQUENCE, 'issuer Name')), serialHex: hex.length % 2 ? `0${hex}` : hex };
  } catch (e) {
    if (e instanceof DerError) throw badRequest(`IssuerAndSerialNumber is malformed: ${e.message}`, e);
    throw e;
  }
}

/**
 * A degenerate SignedData carrying only CRLs (RFC 8894 §3.3.5 GetCRL reply content):
 * version 1, no digest algorithms, id-data without content, crls [1] IMPLICIT, no signers.
 */
export function encodeCrlsOnly(crls: Buffer[]): Buffer {
  if (crls.length === 0) throw badRequest('a CRLs-only message needs at least one CRL');
  const sd = encodeSequence(
    encodeInteger(1),
    encodeSetOf([]),
    encodeSequence(encodeOid(OID_CMS.data)),
    // [1] IMPLICIT SET OF CertificateRevocationLists: the SET's tag replaced by context 1, constructed
    Buffer.concat([Buffer.from([0xa1]), encodeSetOf(crls).subarray(1)]),
    encodeSetOf([]),
  );
  return encodeSequence(encodeOid(OID_CMS.signedData), encodeExplicit(0, sd));
}
