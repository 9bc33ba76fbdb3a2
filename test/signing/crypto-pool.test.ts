import crypto from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { InlineCryptoEngine, WorkerCryptoEngine, type CryptoEngine } from '../../src/signing/crypto-pool.js';
import { makeCsr } from '../../bench/fixtures.js';

const workers = new WorkerCryptoEngine(2);
const inline = new InlineCryptoEngine();
afterAll(async () => {
  await workers.close();
  await inline.close();
});

const engines: Array<[string, CryptoEngine]> = [
  ['workers', workers],
  ['inline', inline],
];

describe.each(engines)('crypto engine (%s)', (_name, engine) => {
  it('verifyCsr/good CSR verifies and decodes', async () => {
    const v = await engine.verifyCsr(makeCsr('dev-1'));
    expect(v.signatureValid).toBe(true);
    expect(v.csr.subject).toEqual([{ type: 'CN', oid: '2.5.4.3', value: 'dev-1' }]);
    expect(Buffer.isBuffer(v.csr.spkiDer)).toBe(true);
  });

  it('verifyCsr/tampered signature is invalid, not an error', async () => {
    const der = makeCsr('dev-2');
    der[der.length - 3]! ^= 0x01;
    expect((await engine.verifyCsr(der)).signatureValid).toBe(false);
  });

  it('verifyCsr/garbage is badCsr', async () => {
    await expect(engine.verifyCsr(Buffer.from('not a csr'))).rejects.toMatchObject({ kind: 'badCsr' });
  });

  it('sign/signature verifies with the public key, many in parallel', async () => {
    const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const signer = await engine.addKey(`k-${_name}`, privateKey);
    expect(signer.algorithm).toBe('ecdsa-sha256');
    const data = Array.from({ length: 50 }, (_, i) => Buffer.from(`tbs ${i}`));
    const sigs = await Promise.all(data.map((d) => signer.sign(d)));
    sigs.forEach((sig, i) => expect(crypto.verify('sha256', data[i]!, publicKey, sig)).toBe(true));
  });
});

describe('RA key (SCEP): key transport and CertRep signatures on the engine', () => {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const encrypt = (m: Buffer) => crypto.publicEncrypt({ key: publicKey, padding: crypto.constants.RSA_PKCS1_PADDING }, m);

  it('workers and inline open the same ciphertexts to the same keys, good and bad padding alike (implicit rejection is per key, not per thread)', async () => {
    const [w, i] = await Promise.all([workers.addRaKey('ra-test', privateKey), inline.addRaKey('ra-test', privateKey)]);
    const cek = crypto.randomBytes(32);
    const good = encrypt(cek);
    const wrongLength = encrypt(crypto.randomBytes(16));
    const garbage = crypto.randomBytes(256);
    for (const c of [good, wrongLength, garbage]) {
      const [a, b, again] = await Promise.all([w.decryptKeyTransport(c, 32), i.decryptKeyTransport(c, 32), w.decryptKeyTransport(c, 32)]);
      expect(a).toHaveLength(32);
      expect(a.equals(b)).toBe(true);
      expect(a.equals(again)).toBe(true);
    }
    expect((await w.decryptKeyTransport(good, 32)).equals(cek)).toBe(true);
    expect((await w.decryptKeyTransport(wrongLength, 32)).equals(cek)).toBe(false);
  });

  it('sign/the digest is chosen per call; signatures verify with the RA public key', async () => {
    const w = await workers.addRaKey('ra-test-sign', privateKey);
    const data = crypto.randomBytes(300);
    for (const digest of ['sha256', 'sha512', 'sha1']) expect(crypto.verify(digest, data, publicKey, await w.sign(digest, data))).toBe(true);
  });
});

describe('worker crash', () => {
  it('a dead worker is replaced with its keys; later signatures succeed', async () => {
    const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const signer = await workers.addKey('crash-key', privateKey);
    await workers.crashWorkerForTest(0);
    await new Promise((r) => setTimeout(r, 50)); // the 'exit' event spawns the replacement
    const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => signer.sign(Buffer.from(`after ${i}`))));
    for (const [i, r] of results.entries()) {
      expect(r.status).toBe('fulfilled');
      if (r.status === 'fulfilled') expect(crypto.verify('sha256', Buffer.from(`after ${i}`), publicKey, r.value)).toBe(true);
    }
    // CSR verification works on the replacement too
    expect((await workers.verifyCsr(makeCsr('after-crash'))).signatureValid).toBe(true);
  });
});
