/**
 * Named OBJECT IDENTIFIERs used across `pki/`. Dotted strings, so they compare with `===` and
 * print readably; `der.ts` caches their encodings.
 */
import { isDottedOid } from './der.js';

/** Public key algorithms (RFC 3279 §2.3, RFC 5480 §2.1.1, RFC 8410 §3, RFC 4055 §1.2). */
export const OID_KEY = {
  ecPublicKey: '1.2.840.10045.2.1',
  rsaEncryption: '1.2.840.113549.1.1.1',
  rsassaPss: '1.2.840.113549.1.1.10',
  ed25519: '1.3.101.112',
  ed448: '1.3.101.113',
  x25519: '1.3.101.110',
  x448: '1.3.101.111',
} as const;

/** Named curves (RFC 5480 §2.1.1.1, SEC 2). */
export const OID_CURVE = {
  'P-192': '1.2.840.10045.3.1.1', // prime192v1 / secp192r1
  'P-256': '1.2.840.10045.3.1.7', // prime256v1 / secp256r1
  'P-384': '1.3.132.0.34', // secp384r1
  'P-521': '1.3.132.0.35', // secp521r1
  secp256k1: '1.3.132.0.10',
} as const;

/** Signature algorithms (RFC 5758 §3.2, RFC 4055 §5, RFC 3279 §2.2.1, RFC 8410 §3). */
export const OID_SIG = {
  ecdsaWithSha1: '1.2.840.10045.4.1',
  ecdsaWithSha224: '1.2.840.10045.4.3.1',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  ecdsaWithSha384: '1.2.840.10045.4.3.3',
  ecdsaWithSha512: '1.2.840.10045.4.3.4',
  md2WithRsa: '1.2.840.113549.1.1.2',
  md5WithRsa: '1.2.840.113549.1.1.4',
  sha1WithRsa: '1.2.840.113549.1.1.5',
  sha256WithRsa: '1.2.840.113549.1.1.11',
  sha384WithRsa: '1.2.840.113549.1.1.12',
  sha512WithRsa: '1.2.840.113549.1.1.13',
  sha224WithRsa: '1.2.840.113549.1.1.14',
  rsassaPss: '1.2.840.113549.1.1.10',
  ed25519: '1.3.101.112',
  ed448: '1.3.101.113',
} as const;

/** Hash algorithms and MGF1 (RFC 4055 §2.1, §6). */
export const OID_HASH = {
  sha1: '1.3.14.3.2.26',
  sha224: '2.16.840.1.101.3.4.2.4',
  sha256: '2.16.840.1.101.3.4.2.1',
  sha384: '2.16.840.1.101.3.4.2.2',
  sha512: '2.16.840.1.101.3.4.2.3',
  mgf1: '1.2.840.113549.1.1.8',
} as const;

/** Certificate and CRL extensions (RFC 5280 §4.2, §5.2, §5.3; RFC 6960 §4.2.2.2.1). */
export const OID_EXT = {
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  issuerAltName: '2.5.29.18',
  basicConstraints: '2.5.29.19',
  crlNumber: '2.5.29.20',
  reasonCode: '2.5.29.21',
  invalidityDate: '2.5.29.24',
  deltaCrlIndicator: '2.5.29.27',
  issuingDistributionPoint: '2.5.29.28',
  nameConstraints: '2.5.29.30',
  crlDistributionPoints: '2.5.29.31',
  certificatePolicies: '2.5.29.32',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  freshestCrl: '2.5.29.46',
  authorityInfoAccess: '1.3.6.1.5.5.7.1.1',
  ocspNoCheck: '1.3.6.1.5.5.7.48.1.5',
} as const;

/** OCSP (RFC 6960 §4.2.1 id-pkix-ocsp-basic, §4.4.1 id-pkix-ocsp-nonce; arc id-ad-ocsp). */
export const OID_OCSP = {
  basic: '1.3.6.1.5.5.7.48.1.1',
  nonce: '1.3.6.1.5.5.7.48.1.2',
} as const;

/** PKCS#9 attributes used in PKCS#10 requests (RFC 2985 §5.4, RFC 2986 §4.1). */
export const OID_ATTR = {
  challengePassword: '1.2.840.113549.1.9.7',
  extensionRequest: '1.2.840.113549.1.9.14',
} as const;

/**
 * CMS content types (RFC 5652 §4, §5.1, §6.1; the same arcs as PKCS#7, RFC 2315 §14). Used for
 * the certs-only SignedData of EST /cacerts and SCEP GetCACert, and SCEP's EnvelopedData.
 */
export const OID_CMS = {
  data: '1.2.840.113549.1.7.1',
  signedData: '1.2.840.113549.1.7.2',
  envelopedData: '1.2.840.113549.1.7.3',
} as const;

/** Extended key usage purposes (RFC 5280 §4.2.1.12). */
export const OID_EKU = {
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  codeSigning: '1.3.6.1.5.5.7.3.3',
  emailProtection: '1.3.6.1.5.5.7.3.4',
  timeStamping: '1.3.6.1.5.5.7.3.8',
  OCSPSigning: '1.3.6.1.5.5.7.3.9',
  anyExtendedKeyUsage: '2.5.29.37.0',
} as const;

/** Access methods of Authority Information Access (RFC 5280 §4.2.2.1). */
export const OID_AD = {
  ocsp: '1.3.6.1.5.5.7.48.1',
  caIssuers: '1.3.6.1.5.5.7.48.2',
} as const;

/** Name attribute types (RFC 5280 §4.1.2.4 / Appendix A, RFC 4519, PKCS#9). */
export const OID_DN = {
  CN: '2.5.4.3',
  serialNumber: '2.5.4.5',
  C: '2.5.4.6',
  L: '2.5.4.7',
  ST: '2.5.4.8',
  O: '2.5.4.10',
  OU: '2.5.4.11',
  emailAddress: '1.2.840.113549.1.9.1',
  DC: '0.9.2342.19200300.100.1.25',
  UID: '0.9.2342.19200300.100.1.1',
} as const;

/** Short name → OID for Name attributes. */
export type DnShortName = keyof typeof OID_DN;

const DN_BY_OID: ReadonlyMap<string, DnShortName> = new Map(
  Object.entries(OID_DN).map(([k, v]) => [v, k as DnShortName]),
);

/** The short name for a Name attribute OID (`CN`, `O`, …) or undefined if not a known one. */
export function dnShortName(oid: string): DnShortName | undefined {
  return DN_BY_OID.get(oid);
}

const EKU_BY_OID: ReadonlyMap<string, string> = new Map(Object.entries(OID_EKU).map(([k, v]) => [v, k]));

/** EKU name (`clientAuth`, …) for an OID, or the dotted OID itself if it has no name here. */
export function ekuName(oid: string): string {
  return EKU_BY_OID.get(oid) ?? oid;
}

/** EKU OID for a name from OID_EKU, or the input when it is already a dotted OID; else undefined. */
export function ekuOid(nameOrOid: string): string | undefined {
  if (Object.hasOwn(OID_EKU, nameOrOid)) return OID_EKU[nameOrOid as keyof typeof OID_EKU];
  return isDottedOid(nameOrOid) ? nameOrOid : undefined;
}

/**
 * SCEP transaction attributes, carried as CMS signed attributes (RFC 8894 §3.2.1). The VeriSign
 * arc 2.16.840.1.113733.1.9 predates the RFC; failInfoText is RFC 8894's own id-scep arc
 * (id-pkix 24).
 */
export const OID_SCEP = {
  messageType: '2.16.840.1.113733.1.9.2',
  pkiStatus: '2.16.840.1.113733.1.9.3',
  failInfo: '2.16.840.1.113733.1.9.4',
  senderNonce: '2.16.840.1.113733.1.9.5',
  recipientNonce: '2.16.840.1.113733.1.9.6',
  transactionID: '2.16.840.1.113733.1.9.7',
  failInfoText: '1.3.6.1.5.5.7.24.1',
} as const;

/** CMS signed attributes (RFC 5652 §11.1–§11.3; PKCS#9, RFC 2985 §5.3). */
export const OID_CMS_ATTR = {
  contentType: '1.2.840.113549.1.9.3',
  messageDigest: '1.2.840.113549.1.9.4',
  signingTime: '1.2.840.113549.1.9.5',
} as const;

/** CBC content-encryption algorithms of CMS EnvelopedData (RFC 3565 §4.1, RFC 3370 §5.1). */
export const OID_CIPHER = {
  aes128Cbc: '2.16.840.1.101.3.4.1.2',
  aes192Cbc: '2.16.840.1.101.3.4.1.22',
  aes256Cbc: '2.16.840.1.101.3.4.1.42',
  desEde3Cbc: '1.2.840.113549.3.7',
} as const;
