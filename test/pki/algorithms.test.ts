import * as crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CaError } from '../../src/core/errors.js';
import {
  SIGNATURE_ALGORITHMS,
  algorithmIdentifierDer,
  nodeDigestFor,
  signatureAlgorithmFor,
  signatureAlgorithmOid,
  type SignatureAlgorithm,
} from '../../src/pki/algorithms.js';
import { parseSpki } from '../../src/pki/spki.js';

describe('algorithmIdentifierDer', () => {
  it.each<[SignatureAlgorithm, string]>([
    // RFC 5758 §3.2: ECDSA parameters absent
    ['ecdsa-sha256', '300a06082a8648ce3d040302'],
    ['ecdsa-sha384', '300a06082a8648ce3d040303'],
    ['ecdsa-sha512', '300a06082a8648ce3d040304'],
    // RFC 4055 §5: PKCS#1 v1.5 parameters NULL
    ['rsa-sha256', '300d06092a864886f70d01010b0500'],
    ['rsa-sha384', '300d06092a864886f70d01010c0500'],
    ['rsa-sha512', '300d06092a864886f70d01010d0500'],
    // RFC 8410 §3: parameters absent
    ['ed25519', '300506032b6570'],
  ])('%s → %s', (alg, hex) => {
    expect(algorithmIdentifierDer(alg).toString('hex')).toBe(hex);
  });

  it('returns a copy each time (the cached encoding cannot be corrupted)', () => {
    const a = algorithmIdentifierDer('ecdsa-sha256');
    a.fill(0);
    expect(algorithmIdentifierDer('ecdsa-sha256').toString('hex')).toBe('300a06082a8648ce3d040302');
  });

  it('badRequest/unknown algorithm', () => {
    expect(() => algorithmIdentifierDer('rsa-sha1' as SignatureAlgorithm)).toThrow(CaError);
  });

  it('covers every algorithm in SIGNATURE_ALGORITHMS with an OID', () => {
    for (const a of SIGNATURE_ALGORITHMS) expect(signatureAlgorithmOid(a)).toMatch(/^[0-9.]+$/);
  });
});

describe('nodeDigestFor', () => {
  it.each<[SignatureAlgorithm, string | null]>([
    ['ecdsa-sha256', 'sha256'],
    ['ecdsa-sha384', 'sha384'],
    ['ecdsa-sha512', 'sha512'],
    ['rsa-sha256', 'sha256'],
    ['rsa-sha384', 'sha384'],
    ['rsa-sha512', 'sha512'],
    ['ed25519', null],
  ])('%s → %s, and node signs/verifies with it', (alg, digest) => {
    expect(nodeDigestFor(alg)).toBe(digest);
    const kp = alg.startsWith('ecdsa')
      ? crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : alg.startsWith('rsa')
        ? crypto.generateKeyPairSync('rsa', { modulusLength: 1024 })
        : crypto.generateKeyPairSync('ed25519');
    const sig = crypto.sign(digest, Buffer.from('tbs'), kp.privateKey);
    expect(crypto.verify(digest, Buffer.from('tbs'), kp.publicKey, sig)).toBe(true);
  });
});

describe('signatureAlgorithmFor', () => {
  const spki = (kp: crypto.KeyPairKeyObjectResult) => kp.publicKey.export({ format: 'der', type: 'spki' });

  it.each<[string, () => crypto.KeyPairKeyObjectResult, SignatureAlgorithm]>([
    ['P-256', () => crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }), 'ecdsa-sha256'],
    ['P-384', () => crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' }), 'ecdsa-sha384'],
    ['P-521', () => crypto.generateKeyPairSync('ec', { namedCurve: 'P-521' }), 'ecdsa-sha512'],
    ['RSA', () => crypto.generateKeyPairSync('rsa', { modulusLength: 1024 }), 'rsa-sha256'],
    ['Ed25519', () => crypto.generateKeyPairSync('ed25519'), 'ed25519'],
  ])('%s issuer → %s (from SPKI DER and from KeyInfo)', (_n, gen, want) => {
    const der = spki(gen());
    expect(signatureAlgorithmFor(der)).toBe(want);
    expect(signatureAlgorithmFor(parseSpki(der).key)).toBe(want);
  });

  it.each<[string, () => crypto.KeyPairKeyObjectResult]>([
    ['secp256k1', () => crypto.generateKeyPairSync('ec', { namedCurve: 'secp256k1' })],
    ['Ed448', () => crypto.generateKeyPairSync('ed448')],
    ['X25519', () => crypto.generateKeyPairSync('x25519')],
  ])('badRequest/%s issuer has no fleetca signature algorithm', (_n, gen) => {
    const err = (() => {
      try {
        signatureAlgorithmFor(spki(gen()));
      } catch (e) {
        return e as CaError;
      }
      return null;
    })();
    expect(err).toBeInstanceOf(CaError);
    expect(err!.kind).toBe('badRequest');
  });

  it('badRequest/malformed SPKI', () => {
    expect(() => signatureAlgorithmFor(Buffer.from('3000', 'hex'))).toThrow(/malformed/);
  });
});
