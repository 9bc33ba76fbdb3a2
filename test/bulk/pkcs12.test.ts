/**
 * Encrypted PKCS#8 and PKCS#12 from src/pki/pkcs12.ts, read back by node and by OpenSSL 3:
 * PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) key encryption, the RFC 7292 App. B MAC key, bundles.
 */
import crypto, { X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { buildPfx, encryptPrivateKeyInfo, pkcs12Kdf } from '../../src/pki/pkcs12.js';
import { InlineCryptoEngine, WorkerCryptoEngine } from '../../src/signing/crypto-pool.js';
import { pemEncode } from '../../src/pki/pem.js';
import { openssl, opensslOk, useTmpDir, writeTmp } from '../pki/helpers.js';

const tmp = useTmpDir('fleetca-p12-');

/** A throwaway self-signed certificate for `key`, made by openssl. */
function selfSigned(key: crypto.KeyObject, cn: string): Buffer {
  const keyFile = writeTmp(tmp(), `${cn}.key`, key.export({ type: 'pkcs8', format: 'pem' }) as string);
  return opensslOk(['req', '-x509', '-new', '-key', keyFile, '-subj', `/CN=${cn}`, '-days', '1', '-outform', 'DER']);
}

const params = (iterations = 2048) => ({ salt: crypto.randomBytes(16), iv: crypto.randomBytes(16), iterations });

describe('encrypted PKCS#8', () => {
  for (const password of ['correct horse battery staple', 'pässwörd-ünïcode']) {
    it(`PBES2/node and openssl decrypt it with "${password}" and nothing else`, async () => {
      const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const der = await encryptPrivateKeyInfo(privateKey.export({ type: 'pkcs8', format: 'der' }), password, params(3000));
      const pem = pemEncode('ENCRYPTED PRIVATE KEY', der);
      const back = crypto.createPrivateKey({ key: pem, format: 'pem', passphrase: password });
      expect(back.export({ type: 'pkcs8', format: 'der' }).equals(privateKey.export({ type: 'pkcs8', format: 'der' }))).toBe(true);
      const file = writeTmp(tmp(), `k-${crypto.randomUUID()}.pem`, pem);
      const pwFile = writeTmp(tmp(), `pw-${crypto.randomUUID()}`, password);
      expect(opensslOk(['pkey', '-in', file, '-passin', `file:${pwFile}`, '-noout', '-text']).toString()).toContain('Private-Key: (256 bit)');
      const asn1 = opensslOk(['asn1parse', '-in', file]).toString();
      expect(asn1).toMatch(/PBES2[\s\S]*PBKDF2[\s\S]*INTEGER\s+:0BB8[\s\S]*hmacWithSHA256[\s\S]*aes-256-cbc/);
      expect(() => crypto.createPrivateKey({ key: pem, format: 'pem', passphrase: password + 'x' })).toThrow();
    });
  }

  it('refuses/an empty password, a short salt, too few iterations', async () => {
    const pk = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'der' });
    await expect(encryptPrivateKeyInfo(pk, '', params())).rejects.toThrow(/empty password/);
    await expect(encryptPrivateKeyInfo(pk, 'pw', { ...params(), salt: Buffer.alloc(4) })).rejects.toThrow(/salt/);
    await expect(encryptPrivateKeyInfo(pk, 'pw', params(10))).rejects.toThrow(/iteration/);
  });
});

describe('PKCS#12', () => {
  it('App. B KDF/deterministic, depends on every input, longer outputs extend the first block', () => {
    const salt = Buffer.alloc(16, 7);
    const a = pkcs12Kdf('pw', salt, 3, 2048, 32);
    expect(pkcs12Kdf('pw', salt, 3, 2048, 32)).toEqual(a);
    expect(pkcs12Kdf('pw2', salt, 3, 2048, 32)).not.toEqual(a);
    expect(pkcs12Kdf('pw', salt, 1, 2048, 32)).not.toEqual(a);
    expect(pkcs12Kdf('pw', salt, 3, 2049, 32)).not.toEqual(a);
    expect(pkcs12Kdf('pw', salt, 3, 2048, 48).subarray(0, 32)).toEqual(a);
  });

  it('MAC key on the crypto engines/a worker thread and the inline engine derive the same key', async () => {
    const salt = crypto.randomBytes(16);
    const expected = pkcs12Kdf('pässword', salt, 3, 3000, 32);
    const workers = new WorkerCryptoEngine(1);
    try {
      expect(await workers.pkcs12MacKey('pässword', salt, 3000)).toEqual(expected);
    } finally {
      await workers.close();
    }
    expect(await new InlineCryptoEngine().pkcs12MacKey('pässword', salt, 3000)).toEqual(expected);
  });

  it('bundle/openssl pkcs12 verifies the MAC, decrypts the key, lists leaf + chain with friendlyName and localKeyId', async () => {
    const password = 'bundle password 123';
    const ca = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const leaf = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const leafDer = selfSigned(leaf.privateKey, 'dev-1');
    const caDer = selfSigned(ca.privateKey, 'Some CA');
    const encryptedKey = await encryptPrivateKeyInfo(leaf.privateKey.export({ type: 'pkcs8', format: 'der' }), password, params(5000));
    const pfx = buildPfx({ encryptedKey, certs: [leafDer, caDer], friendlyName: 'dev-1', password, macSalt: crypto.randomBytes(16), macIterations: 5000 });
    const file = writeTmp(tmp(), 'b.p12', pfx);
    const info = openssl(['pkcs12', '-info', '-in', file, '-passin', `pass:${password}`, '-noenc']);
    expect(info.status, info.stderr).toBe(0);
    expect(info.stderr).toMatch(/MAC: sha256, Iteration 5000/);
    expect(info.stderr).toMatch(/Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC, Iteration 5000, PRF hmacWithSHA256/);
    const out = info.stdout.toString();
    expect([...out.matchAll(/^subject=(.*)$/gm)].map((m) => m[1]!.replace(/ /g, ''))).toEqual(['CN=dev-1', 'CN=SomeCA']);
    expect(out.match(/friendlyName: dev-1/g)).toHaveLength(2);
    expect(out.match(/localKeyID: /g)).toHaveLength(2);
    const keyPem = opensslOk(['pkcs12', '-in', file, '-passin', `pass:${password}`, '-nocerts', '-noenc']).toString();
    expect(new X509Certificate(leafDer).checkPrivateKey(crypto.createPrivateKey(keyPem))).toBe(true);
    // a wrong password fails the MAC; a flipped byte too
    expect(openssl(['pkcs12', '-info', '-in', file, '-passin', 'pass:nope', '-noout']).status).not.toBe(0);
    const bad = Buffer.from(pfx);
    bad[Math.floor(bad.length / 2)]! ^= 1;
    expect(openssl(['pkcs12', '-info', '-in', writeTmp(tmp(), 'bad.p12', bad), '-passin', `pass:${password}`, '-noout']).status).not.toBe(0);
  });
});
