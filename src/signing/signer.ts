/**
 * The Signer port and its software implementation. Only the CA core calls `sign`; everything
 * it signs (certificates, CRLs, OCSP responses) goes through this one interface so an HSM
 * (PKCS#11) signer can replace the software one without touching the core.
 */
import crypto, { type KeyObject } from 'node:crypto';
import { nodeDigestFor, type SignatureAlgorithm } from '../pki/algorithms.js';
import { spkiOf } from './keys.js';

export interface Signer {
  /** The algorithm the signatures are made with (fixes the AlgorithmIdentifier in what is signed). */
  readonly algorithm: SignatureAlgorithm;
  /** The signer's SubjectPublicKeyInfo, to check that the key matches the issuer certificate. */
  readonly spkiDer: Buffer;
  sign(data: Buffer): Promise<Buffer>;
}

/** Picks the signature algorithm for a CA key: ECDSA with the curve's hash, RSA PKCS#1 v1.5 SHA-256, Ed25519. */
export function algorithmForKey(key: KeyObject): SignatureAlgorithm {
  switch (key.asymmetricKeyType) {
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      if (curve === 'secp384r1' || curve === 'P-384') return 'ecdsa-sha384';
      if (curve === 'secp521r1' || curve === 'P-521') return 'ecdsa-sha512';
      return 'ecdsa-sha256';
    }
    case 'rsa':
      return 'rsa-sha256';
    case 'ed25519':
      return 'ed25519';
    default:
      throw new Error(`unsupported CA key type ${key.asymmetricKeyType}`);
  }
}

/** Signs in this thread with a cached KeyObject (node's crypto.sign: ~40k P-256 signatures/s per core). */
export class SoftwareSigner implements Signer {
  readonly algorithm: SignatureAlgorithm;
  readonly spkiDer: Buffer;
  private readonly digest: string | null;

  constructor(private readonly key: KeyObject) {
    this.algorithm = algorithmForKey(key);
    this.digest = nodeDigestFor(this.algorithm);
    this.spkiDer = spkiOf(key);
  }

  sign(data: Buffer): Promise<Buffer> {
    return Promise.resolve(this.signSync(data));
  }

  signSync(data: Buffer): Buffer {
    return crypto.sign(this.digest, data, this.key);
  }
}
