/**
 * Key generation and encrypted key files, through node's native crypto (OpenSSL) only.
 * Private keys leave memory only as encrypted PKCS#8 (PBES2, AES-256-CBC).
 */
import crypto, { type KeyObject } from 'node:crypto';

/** Key types fleetca generates for its CAs, service certificates and server-side key generation. */
export type GeneratedKeyType = 'P-256' | 'P-384' | 'P-521' | 'ed25519' | 'rsa2048' | 'rsa3072' | 'rsa4096';

export interface KeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

/** Generates a key pair natively. */
export function generateKeyPair(type: GeneratedKeyType): KeyPair {
  switch (type) {
    case 'P-256':
    case 'P-384':
    case 'P-521':
      return crypto.generateKeyPairSync('ec', { namedCurve: type });
    case 'ed25519':
      return crypto.generateKeyPairSync('ed25519');
    case 'rsa2048':
    case 'rsa3072':
    case 'rsa4096':
      return crypto.generateKeyPairSync('rsa', { modulusLength: Number(type.slice(3)), publicExponent: 0x10001 });
  }
}

/** Like generateKeyPair, on libuv's thread pool (RSA generation takes tens to hundreds of ms). */
export function generateKeyPairAsync(type: GeneratedKeyType): Promise<KeyPair> {
  return new Promise((resolve, reject) => {
    const done = (err: Error | null, publicKey: KeyObject, privateKey: KeyObject) => (err ? reject(err) : resolve({ publicKey, privateKey }));
    switch (type) {
      case 'P-256':
      case 'P-384':
      case 'P-521':
        return crypto.generateKeyPair('ec', { namedCurve: type }, done);
      case 'ed25519':
        return crypto.generateKeyPair('ed25519', {}, done);
      case 'rsa2048':
      case 'rsa3072':
      case 'rsa4096':
        return crypto.generateKeyPair('rsa', { modulusLength: Number(type.slice(3)), publicExponent: 0x10001 }, done);
    }
  });
}

/** SubjectPublicKeyInfo DER of a public (or private) key. */
export function spkiOf(key: KeyObject): Buffer {
  const pub = key.type === 'private' ? crypto.createPublicKey(key) : key;
  return pub.export({ type: 'spki', format: 'der' });
}

/** Encrypted PKCS#8 PEM (PBES2 with PBKDF2-HMAC-SHA256 and AES-256-CBC, OpenSSL's defaults). */
export function exportEncryptedKey(key: KeyObject, passphrase: string): string {
  if (!passphrase) throw new Error('refusing to write a private key without a passphrase');
  return key.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase }) as string;
}

/** Reads an encrypted PKCS#8 PEM; a wrong passphrase is reported as such. */
export function importEncryptedKey(pem: string, passphrase: string): KeyObject {
  try {
    return crypto.createPrivateKey({ key: pem, format: 'pem', passphrase });
  } catch (e) {
    throw new Error('cannot decrypt the private key: wrong FLEETCA_KEY_PASSPHRASE or a damaged key file', { cause: e });
  }
}
