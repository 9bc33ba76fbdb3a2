import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createKeyTransportDecryptor } from '../../src/signing/rsa-kt.js';

const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 0x10001 });
const kt = createKeyTransportDecryptor(privateKey);
const k = 256;

const dir = mkdtempSync(path.join(os.tmpdir(), 'fleetca-rsa-kt-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** What a SCEP client does: RSAES-PKCS1-v1_5 encryption of the content-encryption key. */
const encrypt = (cek: Buffer) => crypto.publicEncrypt({ key: publicKey, padding: crypto.constants.RSA_PKCS1_PADDING }, cek);
/** The raw RSA public operation on a hand-made encoding, to produce ciphertexts with bad padding. */
const rawEncrypt = (em: Buffer) => crypto.publicEncrypt({ key: publicKey, padding: crypto.constants.RSA_NO_PADDING }, em);

/** 0x00 0x02 PS 0x00 M with PS of `psLength` nonzero octets and M filling the rest of k octets. */
function encoding(psLength: number, message: Buffer): Buffer {
  const em = Buffer.alloc(k);
  em[1] = 0x02;
  for (let i = 0; i < psLength; i++) em[2 + i] = 1 + (i % 255);
  message.copy(em, 3 + psLength);
  if (3 + psLength + message.length !== k) throw new Error('encoding does not fill k octets');
  return em;
}
const validEncoding = (cek: Buffer) => encoding(k - 3 - cek.length, cek);

describe('RSA key transport decryption', () => {
  it('returns the encrypted key for a valid PKCS#1 v1.5 ciphertext (16, 24 and 32 bytes)', () => {
    for (const len of [16, 24, 32]) {
      const cek = crypto.randomBytes(len);
      expect(kt.decrypt(encrypt(cek), len)).toEqual(cek);
    }
  });

  it('returns a key containing zero octets intact (only the first zero after the header separates)', () => {
    const cek = Buffer.from('00000102000000ff00000000000000000000000000000000000000000000aa00', 'hex');
    expect(kt.decrypt(encrypt(cek), 32)).toEqual(cek);
  });

  it('returns the key from a hand-made encoding, including the minimum padding string of 8 octets', () => {
    const cek = crypto.randomBytes(16);
    expect(kt.decrypt(rawEncrypt(validEncoding(cek)), 16)).toEqual(cek);
    const longest = crypto.randomBytes(k - 11);
    longest[0] = 0x01; // nonzero, so the separator stays where it belongs
    expect(kt.decrypt(rawEncrypt(encoding(8, longest)), k - 11)).toEqual(longest);
  });

  it('decrypts a ciphertext whose leading zero octets were dropped', () => {
    const cek = crypto.randomBytes(16);
    let ct = encrypt(cek);
    while (ct[0] !== 0) ct = encrypt(cek);
    expect(kt.decrypt(ct.subarray(1), 16)).toEqual(cek);
  });

  it('wrong expected length: a pseudo-random key of that length, not the real one, the same on every replay', () => {
    const cek = crypto.randomBytes(24);
    const ct = encrypt(cek);
    for (const len of [16, 32]) {
      const out = kt.decrypt(ct, len);
      expect(out).toHaveLength(len);
      expect(out.equals(cek.subarray(0, len))).toBe(false);
      expect(out.equals(cek.subarray(cek.length - len))).toBe(false);
      expect(kt.decrypt(ct, len)).toEqual(out);
    }
    // a different bad ciphertext gets a different synthetic key
    const other = encrypt(crypto.randomBytes(24));
    expect(kt.decrypt(other, 16).equals(kt.decrypt(ct, 16))).toBe(false);
  });

  it('synthetic keys are the same for another decryptor of the same key and differ for another secret', () => {
    const ct = encrypt(crypto.randomBytes(24));
    const again = createKeyTransportDecryptor(privateKey);
    expect(again.decrypt(ct, 16)).toEqual(kt.decrypt(ct, 16));
    const otherSecret = createKeyTransportDecryptor(privateKey, { rejectionSecret: crypto.randomBytes(32) });
    expect(otherSecret.decrypt(ct, 16).equals(kt.decrypt(ct, 16))).toBe(false);
    // the real key does not depend on the secret
    const cek = crypto.randomBytes(16);
    expect(otherSecret.decrypt(encrypt(cek), 16)).toEqual(cek);
  });

  describe('bad paddings yield a synthetic key of the expected length and never throw', () => {
    const cek = crypto.randomBytes(16);
    const cases: Array<[string, () => { em: Buffer; len: number }]> = [
      ['first octet not 0x00', () => { const em = validEncoding(cek); em[0] = 0x01; return { em, len: 16 }; }],
      ['second octet not 0x02 (0x01: signature padding)', () => { const em = validEncoding(cek); em[1] = 0x01; return { em, len: 16 }; }],
      ['second octet not 0x02 (0x00)', () => { const em = validEncoding(cek); em[1] = 0x00; return { em, len: 16 }; }],
      // a 7-octet PS with the separator exactly where the expected length puts it
      ['padding string shorter than 8 octets', () => ({ em: encoding(7, Buffer.alloc(k - 10, 0x33)), len: k - 10 })],
      ['padding string of 2 octets', () => ({ em: encoding(2, Buffer.alloc(k - 5, 0x44)), len: k - 5 })],
      ['no zero separator', () => { const em = validEncoding(cek); em[k - 17] = 0x55; em.fill(0x66, k - 16); return { em, len: 16 }; }],
      ['separator too early for the expected length (a 24-byte message)', () => ({ em: validEncoding(crypto.randomBytes(24)), len: 16 })],
      ['separator too late for the expected length (a 16-byte message)', () => ({ em: validEncoding(cek), len: 24 })],
      ['an extra zero inside the padding string, before the right separator', () => { const em = validEncoding(cek); em[50] = 0x00; return { em, len: 16 }; }],
      ['separator right after the header (empty padding string)', () => { const em = validEncoding(cek); em[2] = 0x00; return { em, len: 16 }; }],
      ['all zero plaintext', () => ({ em: Buffer.alloc(k), len: 16 })],
    ];
    it.each(cases)('%s', (_name, make) => {
      const { em, len } = make();
      const ct = rawEncrypt(em);
      let out: Buffer | undefined;
      expect(() => (out = kt.decrypt(ct, len))).not.toThrow();
      expect(out).toHaveLength(len);
      expect(out!.equals(em.subarray(k - len))).toBe(false);
      expect(kt.decrypt(ct, len)).toEqual(out);
    });
  });

  it('ciphertexts of the wrong size or not below the modulus are rejected implicitly, deterministically', () => {
    const tooLong = Buffer.concat([Buffer.from([1]), encrypt(crypto.randomBytes(16))]);
    const aboveModulus = Buffer.alloc(k, 0xff);
    const empty = Buffer.alloc(0);
    const outs = [tooLong, aboveModulus, empty].map((ct) => kt.decrypt(ct, 16));
    for (const out of outs) expect(out).toHaveLength(16);
    expect(kt.decrypt(aboveModulus, 16)).toEqual(outs[1]);
    expect(new Set(outs.map((o) => o.toString('hex'))).size).toBe(3);
  });

  it('rejects an expected length outside 1..k and keys that are not RSA private keys', () => {
    const ct = encrypt(crypto.randomBytes(16));
    for (const bad of [0, -1, 16.5, k + 1, Number.NaN]) expect(() => kt.decrypt(ct, bad)).toThrow(RangeError);
    expect(() => createKeyTransportDecryptor(publicKey)).toThrow(TypeError);
    expect(() => createKeyTransportDecryptor(crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey)).toThrow(TypeError);
    expect(() => createKeyTransportDecryptor(privateKey, { rejectionSecret: Buffer.alloc(16) })).toThrow(RangeError);
  });

  it('decrypts a key that openssl pkeyutl encrypted with PKCS#1 v1.5 padding', () => {
    writeFileSync(path.join(dir, 'pub.pem'), publicKey.export({ type: 'spki', format: 'pem' }));
    for (const len of [16, 32]) {
      const cek = crypto.randomBytes(len);
      writeFileSync(path.join(dir, 'cek.bin'), cek);
      execFileSync(
        'openssl',
        ['pkeyutl', '-encrypt', '-pubin', '-inkey', 'pub.pem', '-pkeyopt', 'rsa_padding_mode:pkcs1', '-in', 'cek.bin', '-out', 'ct.bin'],
        { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      const ct = readFileSync(path.join(dir, 'ct.bin'));
      expect(ct).toHaveLength(k);
      expect(kt.decrypt(ct, len)).toEqual(cek);
    }
  });

  it('works with other modulus sizes (RSA-3072)', () => {
    const pair = crypto.generateKeyPairSync('rsa', { modulusLength: 3072 });
    const d = createKeyTransportDecryptor(pair.privateKey);
    expect(d.modulusBytes).toBe(384);
    const cek = crypto.randomBytes(32);
    expect(d.decrypt(crypto.publicEncrypt({ key: pair.publicKey, padding: crypto.constants.RSA_PKCS1_PADDING }, cek), 32)).toEqual(cek);
    expect(d.decrypt(crypto.publicEncrypt({ key: pair.publicKey, padding: crypto.constants.RSA_PKCS1_PADDING }, cek), 16)).toHaveLength(16);
  });
});
