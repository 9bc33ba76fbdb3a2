import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { importSpki, parseSpki } from '../../src/pki/spki.js';

const spkiOf = (k: crypto.KeyObject) => k.export({ type: 'spki', format: 'der' });

describe('importSpki', () => {
  const cases: Array<[string, () => crypto.KeyPairKeyObjectResult]> = [
    ['RSA-2048', () => crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })],
    ['RSA-3072, e = 3', () => crypto.generateKeyPairSync('rsa', { modulusLength: 3072, publicExponent: 3 })],
    ['P-256', () => crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })],
    ['P-384', () => crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' })],
    ['P-521', () => crypto.generateKeyPairSync('ec', { namedCurve: 'P-521' })],
    ['Ed25519 (DER path)', () => crypto.generateKeyPairSync('ed25519')],
    ['RSASSA-PSS key (DER path)', () => crypto.generateKeyPairSync('rsa-pss', { modulusLength: 2048 })],
  ];
  it.each(cases)('%s → the same public key, which verifies the private key’s signature', (_name, make) => {
    const { publicKey, privateKey } = make();
    const der = spkiOf(publicKey);
    const k = importSpki(der);
    expect(spkiOf(k).equals(der)).toBe(true);
    expect(k.asymmetricKeyType).toBe(publicKey.asymmetricKeyType);
    const data = Buffer.from('proof of possession');
    const digest = publicKey.asymmetricKeyType === 'ed25519' ? null : 'sha256';
    expect(crypto.verify(digest, data, k, crypto.sign(digest, data, privateKey))).toBe(true);
  });

  it('a P-256 point that is not on the curve is refused, as from DER', () => {
    const der = Buffer.from(spkiOf(crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey));
    der[der.length - 1] = der[der.length - 1]! ^ 0x01; // last byte of Y
    expect(() => crypto.createPublicKey({ key: der, format: 'der', type: 'spki' })).toThrow();
    expect(() => importSpki(der)).toThrow();
  });

  it('a compressed P-256 point goes through the DER path', () => {
    const { publicKey, privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwk = publicKey.export({ format: 'jwk' });
    const y = Buffer.from(jwk.y!, 'base64url');
    const x = Buffer.from(jwk.x!, 'base64url');
    const uncompressed = spkiOf(publicKey);
    // same AlgorithmIdentifier, BIT STRING of 33 bytes: 02/03 || X
    const head = uncompressed.subarray(0, uncompressed.length - 65 - 3);
    const bits = Buffer.concat([Buffer.from([0x03, 34, 0x00, 0x02 | (y[31]! & 1)]), x]);
    const der = Buffer.concat([Buffer.from([0x30, head.length - 2 + bits.length]), head.subarray(2), bits]);
    expect(parseSpki(der).publicKey.length).toBe(33);
    const k = importSpki(der);
    expect(spkiOf(k).equals(der)).toBe(true);
    expect(crypto.verify('sha256', Buffer.from('x'), k, crypto.sign('sha256', Buffer.from('x'), privateKey))).toBe(true);
  });
});
