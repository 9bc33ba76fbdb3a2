/**
 * Signature algorithms the CA signs with, their AlgorithmIdentifier encodings and node digests.
 */
import { badRequest } from '../core/errors.js';
import { DerError, encodeNull, encodeOid, encodeSequence } from './der.js';
import { OID_SIG } from './oids.js';
import { parseSpki, type KeyInfo } from './spki.js';

/** The algorithms a fleetca issuer signs with. */
export type SignatureAlgorithm =
  | 'ecdsa-sha256'
  | 'ecdsa-sha384'
  | 'ecdsa-sha512'
  | 'rsa-sha256'
  | 'rsa-sha384'
  | 'rsa-sha512'
  | 'ed25519';

/** Every SignatureAlgorithm, for tables and config validation. */
export const SIGNATURE_ALGORITHMS: readonly SignatureAlgorithm[] = [
  'ecdsa-sha256',
  'ecdsa-sha384',
  'ecdsa-sha512',
  'rsa-sha256',
  'rsa-sha384',
  'rsa-sha512',
  'ed25519',
];

const ALG: Record<SignatureAlgorithm, { oid: string; digest: string | null; nullParams: boolean }> = {
  // RFC 5758 §3.2: ECDSA — parameters field MUST be absent
  'ecdsa-sha256': { oid: OID_SIG.ecdsaWithSha256, digest: 'sha256', nullParams: false },
  'ecdsa-sha384': { oid: OID_SIG.ecdsaWithSha384, digest: 'sha384', nullParams: false },
  'ecdsa-sha512': { oid: OID_SIG.ecdsaWithSha512, digest: 'sha512', nullParams: false },
  // RFC 4055 §5: PKCS#1 v1.5 — parameters MUST be NULL
  'rsa-sha256': { oid: OID_SIG.sha256WithRsa, digest: 'sha256', nullParams: true },
  'rsa-sha384': { oid: OID_SIG.sha384WithRsa, digest: 'sha384', nullParams: true },
  'rsa-sha512': { oid: OID_SIG.sha512WithRsa, digest: 'sha512', nullParams: true },
  // RFC 8410 §3: Ed25519 — parameters MUST be absent; no separate digest
  ed25519: { oid: OID_SIG.ed25519, digest: null, nullParams: false },
};

const ALG_DER = new Map<SignatureAlgorithm, Buffer>(
  (Object.keys(ALG) as SignatureAlgorithm[]).map((a) => {
    const { oid, nullParams } = ALG[a];
    return [a, nullParams ? encodeSequence(encodeOid(oid), encodeNull()) : encodeSequence(encodeOid(oid))];
  }),
);

function entry(alg: SignatureAlgorithm): (typeof ALG)[SignatureAlgorithm] {
  const e = Object.hasOwn(ALG, alg) ? ALG[alg] : undefined;
  if (e === undefined) throw badRequest(`unsupported signature algorithm: ${String(alg)}`);
  return e;
}

/** The shared, cached AlgorithmIdentifier DER (internal: callers must not mutate it). */
export function algorithmIdentifierDerShared(alg: SignatureAlgorithm): Buffer {
  entry(alg);
  return ALG_DER.get(alg)!;
}

/**
 * DER AlgorithmIdentifier for `alg`: PKCS#1 v1.5 RSA with NULL parameters (RFC 4055 §5),
 * ECDSA and Ed25519 with absent parameters (RFC 5758 §3.2, RFC 8410 §3). Returns a copy.
 */
export function algorithmIdentifierDer(alg: SignatureAlgorithm): Buffer {
  return Buffer.from(algorithmIdentifierDerShared(alg));
}

/** The dotted signature algorithm OID. */
export function signatureAlgorithmOid(alg: SignatureAlgorithm): string {
  return entry(alg).oid;
}

/** The digest name for node's crypto.sign/verify ('sha256', …), or null for Ed25519. */
export function nodeDigestFor(alg: SignatureAlgorithm): string | null {
  return entry(alg).digest;
}

/**
 * The algorithm an issuer with this key signs with: P-256 → ecdsa-sha256, P-384 → ecdsa-sha384,
 * P-521 → ecdsa-sha512 (hash strength matched to the curve), RSA → rsa-sha256, Ed25519 →
 * ed25519. Accepts a DER SubjectPublicKeyInfo or a KeyInfo. Throws badRequest for any other key.
 */
export function signatureAlgorithmFor(key: Buffer | KeyInfo): SignatureAlgorithm {
  let info: KeyInfo;
  if (Buffer.isBuffer(key)) {
    try {
      info = parseSpki(key).key;
    } catch (err) {
      if (err instanceof DerError) throw badRequest(`issuer public key is malformed: ${err.message}`, err);
      throw err;
    }
  } else {
    info = key;
  }
  switch (info.type) {
    case 'ec':
      if (info.curve === 'P-256') return 'ecdsa-sha256';
      if (info.curve === 'P-384') return 'ecdsa-sha384';
      if (info.curve === 'P-521') return 'ecdsa-sha512';
      throw badRequest(`no signature algorithm for issuer curve ${info.curve}`);
    case 'rsa':
      return 'rsa-sha256';
    case 'ed25519':
      return 'ed25519';
    default:
      throw badRequest(`no signature algorithm for issuer key type ${info.type}`);
  }
}
