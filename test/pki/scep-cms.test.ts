/**
 * The SCEP CMS layer (src/pki/scep-cms.ts) against real openssl-made messages: EnvelopedData from
 * `openssl cms -encrypt`, SCEP requests from the golden-vector helper (checked with
 * `openssl cms -verify` first), and CertReps checked with `openssl cms -verify/-decrypt/-print`.
 */
import { execFile, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { certificateParts } from '../../src/pki/cert-parts.js';
import { encodeOctetString, encodeOid, encodePrintableString, encodeSequence, encodeTlv, readChildren, readTlv, readWhole } from '../../src/pki/der.js';
import { OID_CIPHER, OID_CMS, OID_KEY, OID_SCEP, OID_SIG } from '../../src/pki/oids.js';
import { decodeCertsOnly, encodeCertsOnly } from '../../src/pki/pkcs7.js';
import {
  SCEP_FAIL_INFO,
  checkMessageDigest,
  decodeEnvelopedData,
  decodePkiMessage,
  encodeCertRep,
  encodeEnvelopedData,
  type CertRepInput,
  type EnvelopedDataParts,
} from '../../src/pki/scep-cms.js';
import {
  envelope,
  makePkcsReq,
  nodeCipherName,
  rsaPkcs1Decrypt,
  scepAttribute,
  signedPkiMessage,
  strongswanTransactionId,
  subjectKeyIdentifier,
  type VectorCipher,
  type VectorDigest,
} from '../helpers/scep-vectors.js';
import { caError, openssl, opensslOk, useTmpDir, writeTmp } from './helpers.js';

const tmp = useTmpDir('fleetca-scep-cms-');

interface Party {
  certFile: string;
  keyFile: string;
  certDer: Buffer;
  key: crypto.KeyObject;
}

/** An RSA-2048 self-signed certificate and key made by openssl. */
function makeParty(name: string, subj: string): Party {
  const dir = tmp();
  const certFile = path.join(dir, `${name}.pem`);
  const keyFile = path.join(dir, `${name}.key`);
  opensslOk(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-subj', subj, '-days', '30']);
  const certDer = opensslOk(['x509', '-in', certFile, '-outform', 'DER']);
  return { certFile, keyFile, certDer, key: crypto.createPrivateKey(readFileSync(keyFile)) };
}

/** Decrypts a pkcsPKIEnvelope with node: RSA PKCS#1 v1.5 key unwrap by hand, then CBC. */
function decryptEnvelope(parts: EnvelopedDataParts, key: crypto.KeyObject): Buffer {
  const cek = rsaPkcs1Decrypt(key, parts.encryptedKey);
  expect(cek.length).toBe(parts.cipher.keyLength);
  const d = crypto.createDecipheriv(parts.cipher.name, cek, parts.iv);
  return Buffer.concat([d.update(parts.encryptedContent), d.final()]);
}

/** Replaces the first occurrence of `from` in `buf` by `to` (same length). */
function patch(buf: Buffer, from: Buffer, to: Buffer, last = false): Buffer {
  const at = last ? buf.lastIndexOf(from) : buf.indexOf(from);
  expect(at).toBeGreaterThanOrEqual(0);
  const out = Buffer.from(buf);
  to.copy(out, at);
  return out;
}

let ra: Party;
let req: Party;
let csrDer: Buffer;

beforeAll(() => {
  ra = makeParty('ra', '/O=Fleet Test/CN=Fleet SCEP RA');
  req = makeParty('req', '/CN=device-0001');
  csrDer = opensslOk(['req', '-new', '-key', req.keyFile, '-subj', '/CN=device-0001', '-outform', 'DER']);
});

// ------------------------------------------------------------------------------- EnvelopedData

/** openssl cms -encrypt of the CSR to the RA certificate with extra options. */
function opensslEnvelope(extra: string[], afterRecip: string[] = []): Buffer {
  // -keyopt applies to the -recip before it, so it must follow it
  return opensslOk(['cms', '-encrypt', ...extra, '-recip', ra.certFile, ...afterRecip, '-binary', '-outform', 'DER'], csrDer);
}

/** Re-encodes an EnvelopedData ContentInfo with its encryptedContent as constructed [0] chunks. */
function withChunkedContent(der: Buffer, chunk: number): Buffer {
  const top = readWhole(der);
  const [oidT, ctx] = readChildren(der, top);
  const ed = readTlv(der, ctx!.valueStart, ctx!.end);
  const edKids = readChildren(der, ed);
  const eci = edKids[edKids.length - 1]!;
  const [ctT, algT, contentT] = readChildren(der, eci);
  const ct = der.subarray(contentT!.valueStart, contentT!.end);
  const chunks: Buffer[] = [];
  for (let i = 0; i < ct.length; i += chunk) chunks.push(encodeOctetString(ct.subarray(i, i + chunk)));
  const newEci = encodeSequence(der.subarray(ctT!.start, ctT!.end), der.subarray(algT!.start, algT!.end), encodeTlv(0xa0, ...chunks));
  const newEd = encodeSequence(...edKids.slice(0, -1).map((k) => der.subarray(k.start, k.end)), newEci);
  return encodeSequence(der.subarray(oidT!.start, oidT!.end), encodeTlv(0xa0, newEd));
}

describe('decodeEnvelopedData', () => {
  it('reads an openssl cms -encrypt -aes128 envelope: RA issuer and serial, rsaEncryption, 16-octet IV; node decrypts it to the CSR', () => {
    const p = decodeEnvelopedData(opensslEnvelope(['-aes128']));
    const raParts = certificateParts(ra.certDer);
    expect(p.recipientId.kind).toBe('issuerAndSerialNumber');
    expect(p.recipientIssuerDer).toEqual(raParts.issuerDer);
    expect(p.recipientSerial).toBe(raParts.serial.toString('hex'));
    expect(p.recipientSki).toBeUndefined();
    expect(p.keyEncryptionOid).toBe(OID_KEY.rsaEncryption);
    expect(p.contentEncryptionOid).toBe(OID_CIPHER.aes128Cbc);
    expect(p.cipher.name).toBe('aes-128-cbc');
    expect(p.iv.length).toBe(16);
    expect(p.encryptedKey.length).toBe(256);
    expect(decryptEnvelope(p, ra.key)).toEqual(csrDer);
  });

  it('reads openssl -aes192, -aes256 and -des3 envelopes with their OIDs and IV sizes and decrypts them', () => {
    for (const [flag, oid, ivLen] of [
      ['-aes192', OID_CIPHER.aes192Cbc, 16],
      ['-aes256', OID_CIPHER.aes256Cbc, 16],
      ['-des3', OID_CIPHER.desEde3Cbc, 8],
    ] as const) {
      const p = decodeEnvelopedData(opensslEnvelope([flag]));
      expect(p.contentEncryptionOid).toBe(oid);
      expect(p.iv.length).toBe(ivLen);
      expect(decryptEnvelope(p, ra.key)).toEqual(csrDer);
    }
  });

  it('reads an openssl -keyid envelope: the recipient is the RA certificate subjectKeyIdentifier', () => {
    const p = decodeEnvelopedData(opensslEnvelope(['-aes128', '-keyid']));
    expect(p.recipientId).toEqual({ kind: 'subjectKeyIdentifier', ski: subjectKeyIdentifier(ra.certDer) });
    expect(p.recipientSki).toEqual(subjectKeyIdentifier(ra.certDer));
    expect(p.recipientIssuerDer).toBeUndefined();
    expect(decryptEnvelope(p, ra.key)).toEqual(csrDer);
  });

  it('joins a constructed [0] encryptedContent made of OCTET STRING chunks (BER with definite lengths)', () => {
    const der = opensslEnvelope(['-aes128']);
    const chunked = withChunkedContent(der, 100);
    expect(chunked.length).toBeGreaterThan(der.length);
    const p = decodeEnvelopedData(chunked);
    expect(p.encryptedContent).toEqual(decodeEnvelopedData(der).encryptedContent);
    expect(decryptEnvelope(p, ra.key)).toEqual(csrDer);
  });

  it('rejects the indefinite-length BER of openssl cms -encrypt -stream with badRequest', () => {
    const e = caError(() => decodeEnvelopedData(opensslEnvelope(['-aes128', '-stream'])));
    expect(e.kind).toBe('badRequest');
    expect(e.message).toMatch(/indefinite length/);
  });

  it('rejects RSA-OAEP key transport and a Camellia content cipher with badRequest naming the algorithm', () => {
    const oaep = caError(() => decodeEnvelopedData(opensslEnvelope(['-aes128'], ['-keyopt', 'rsa_padding_mode:oaep'])));
    expect(oaep.kind).toBe('badRequest');
    expect(oaep.message).toMatch(/key encryption algorithm 1\.2\.840\.113549\.1\.1\.7 is not supported/);
    const camellia = caError(() => decodeEnvelopedData(opensslEnvelope(['-camellia-128-cbc'])));
    expect(camellia.kind).toBe('badRequest');
    expect(camellia.message).toMatch(/content encryption algorithm 1\.2\.392\.200011\.61\.1\.1\.1\.2 is not supported/);
  });

  it('rejects an empty, truncated or trailing-bytes envelope and a SignedData ContentInfo with badRequest', () => {
    const der = opensslEnvelope(['-aes128']);
    for (const bad of [Buffer.alloc(0), der.subarray(0, der.length - 1), Buffer.concat([der, Buffer.from([0])])]) {
      expect(caError(() => decodeEnvelopedData(bad)).kind).toBe('badRequest');
    }
    const signed = opensslOk(['cms', '-sign', '-signer', req.certFile, '-inkey', req.keyFile, '-binary', '-nodetach', '-outform', 'DER'], csrDer);
    expect(caError(() => decodeEnvelopedData(signed)).message).toMatch(/ContentInfo type is 1\.2\.840\.113549\.1\.7\.2/);
  });
});

describe('encodeEnvelopedData', () => {
  it('openssl cms -decrypt with the recipient key recovers the content of node-made aes128, aes192, aes256 and des3 envelopes', () => {
    for (const c of ['aes128', 'aes192', 'aes256', 'des3'] as VectorCipher[]) {
      const env = envelope(csrDer, ra.certDer, c);
      const out = opensslOk(['cms', '-decrypt', '-inform', 'DER', '-recip', ra.certFile, '-inkey', ra.keyFile, '-binary'], env.der);
      expect(out).toEqual(csrDer);
    }
  });

  it('round-trips through decodeEnvelopedData field by field', () => {
    const env = envelope(csrDer, ra.certDer, 'des3');
    const p = decodeEnvelopedData(env.der);
    const again = encodeEnvelopedData({
      recipientIssuerDer: p.recipientIssuerDer!,
      recipientSerial: Buffer.from(p.recipientSerial!, 'hex'),
      encryptedKey: p.encryptedKey,
      contentEncryptionOid: p.contentEncryptionOid,
      iv: p.iv,
      encryptedContent: p.encryptedContent,
    });
    expect(again).toEqual(env.der);
    expect(p.iv).toEqual(env.iv);
    expect(rsaPkcs1Decrypt(ra.key, p.encryptedKey)).toEqual(env.cek);
  });

  it('writes the same DER as openssl for the same fields (version 0, NULL rsaEncryption parameters, primitive [0] content)', () => {
    const der = opensslEnvelope(['-aes128']);
    const p = decodeEnvelopedData(der);
    const mine = encodeEnvelopedData({
      recipientIssuerDer: p.recipientIssuerDer!,
      recipientSerial: Buffer.from(p.recipientSerial!, 'hex'),
      encryptedKey: p.encryptedKey,
      contentEncryptionOid: p.contentEncryptionOid,
      iv: p.iv,
      encryptedContent: p.encryptedContent,
    });
    expect(mine).toEqual(der);
  });

  it('rejects an IV of the wrong size, an unknown cipher OID and a ciphertext that is not whole blocks', () => {
    const p = decodeEnvelopedData(envelope(csrDer, ra.certDer, 'aes128').der);
    const base = {
      recipientIssuerDer: p.recipientIssuerDer!,
      recipientSerial: Buffer.from(p.recipientSerial!, 'hex'),
      encryptedKey: p.encryptedKey,
      contentEncryptionOid: p.contentEncryptionOid,
      iv: p.iv,
      encryptedContent: p.encryptedContent,
    };
    expect(caError(() => encodeEnvelopedData({ ...base, iv: Buffer.alloc(8) })).message).toMatch(/IV must be 16 octets/);
    expect(caError(() => encodeEnvelopedData({ ...base, contentEncryptionOid: '1.3.14.3.2.7' })).message).toMatch(/unsupported content encryption/);
    expect(caError(() => encodeEnvelopedData({ ...base, encryptedContent: Buffer.alloc(17) })).message).toMatch(/multiple of 16/);
  });
});

// ----------------------------------------------------------------------------- request vectors

const COMBOS: { cipher: VectorCipher; digest: VectorDigest; signatureAlgorithm: 'withHash' | 'rsaEncryption'; sid: 'issuerAndSerial' | 'ski' }[] = [
  { cipher: 'aes128', digest: 'sha256', signatureAlgorithm: 'withHash', sid: 'issuerAndSerial' }, // strongSwan 5.9.8 default
  { cipher: 'aes256', digest: 'sha1', signatureAlgorithm: 'rsaEncryption', sid: 'issuerAndSerial' },
  { cipher: 'des3', digest: 'sha512', signatureAlgorithm: 'withHash', sid: 'issuerAndSerial' },
  { cipher: 'aes128', digest: 'sha256', signatureAlgorithm: 'rsaEncryption', sid: 'ski' },
];

describe('SCEP request golden vectors (test/helpers/scep-vectors.ts)', () => {
  it('openssl cms -verify -noverify accepts every helper PKCSReq shape and outputs the envelope', () => {
    for (const combo of COMBOS) {
      const r = makePkcsReq({ csrDer, requesterCertDer: req.certDer, requesterKey: req.key, raCertDer: ra.certDer, ...combo });
      const content = opensslOk(['cms', '-verify', '-noverify', '-inform', 'DER', '-binary'], r.der);
      expect(content).toEqual(r.envelope.der);
    }
  });

  it('openssl cms -verify rejects a helper PKCSReq whose envelope was altered (the messageDigest check is live)', () => {
    const r = makePkcsReq({ csrDer, requesterCertDer: req.certDer, requesterKey: req.key, raCertDer: ra.certDer, cipher: 'aes128', digest: 'sha256' });
    const tail = r.envelope.der.subarray(r.envelope.der.length - 8);
    const bad = patch(r.der, tail, Buffer.from(tail.map((b) => b ^ 0xff)));
    const res = openssl(['cms', '-verify', '-noverify', '-inform', 'DER', '-binary'], bad);
    expect(res.status).not.toBe(0);
    expect(res.stderr).toMatch(/CMS_SignerInfo_verify_content:verification failure/);
  });

  it('openssl cms -cmsout -print shows messageType 19, the transactionID, the 16-octet senderNonce and the signing time', () => {
    const senderNonce = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
    const r = makePkcsReq({
      csrDer, requesterCertDer: req.certDer, requesterKey: req.key, raCertDer: ra.certDer, cipher: 'aes128', digest: 'sha256',
      senderNonce, signingTime: new Date('2026-03-01T12:00:00Z'),
    });
    const text = opensslOk(['cms', '-cmsout', '-print', '-inform', 'DER'], r.der).toString();
    expect(text).toMatch(/2\.16\.840\.1\.113733\.1\.9\.2[\s\S]*?PRINTABLESTRING:19/);
    expect(text).toMatch(new RegExp(`2\\.16\\.840\\.1\\.113733\\.1\\.9\\.7[\\s\\S]*?PRINTABLESTRING:${r.transactionId}`));
    expect(text).toMatch(/2\.16\.840\.1\.113733\.1\.9\.5[\s\S]*?OCTET STRING:\s*0000 - 00 11 22 33 44 55 66 77-88 99 aa bb cc .*\n\s*000d - dd ee ff /);
    expect(text).toMatch(/signingTime[\s\S]*?UTCTIME:Mar {1,2}1 12:00:00 2026 GMT/);
    expect(text).toMatch(/signatureAlgorithm:\s*algorithm: sha256WithRSAEncryption/);
  });

  it('the helper envelope decrypts with openssl cms -decrypt to the CSR and the transactionID is strongSwan’s SPKI SHA-1 in hex', () => {
    const r = makePkcsReq({ csrDer, requesterCertDer: req.certDer, requesterKey: req.key, raCertDer: ra.certDer, cipher: 'aes128', digest: 'sha256' });
    const out = opensslOk(['cms', '-decrypt', '-inform', 'DER', '-recip', ra.certFile, '-inkey', ra.keyFile, '-binary'], r.envelope.der);
    expect(out).toEqual(csrDer);
    expect(r.transactionId).toMatch(/^[0-9A-F]{40}$/);
    expect(r.transactionId).toBe(strongswanTransactionId(req.certDer));
  });
});

// ---------------------------------------------------------------------------- decodePkiMessage

function pkcsReq(extra: Partial<Parameters<typeof makePkcsReq>[0]> = {}): ReturnType<typeof makePkcsReq> {
  return makePkcsReq({ csrDer, requesterCertDer: req.certDer, requesterKey: req.key, raCertDer: ra.certDer, cipher: 'aes128', digest: 'sha256', ...extra });
}

describe('decodePkiMessage', () => {
  it('decodes a strongSwan-shaped PKCSReq: attributes, signer certificate, signature over signedAttrsDer, messageDigest', () => {
    const signingTime = new Date('2026-03-01T12:34:56Z');
    const r = pkcsReq({ signingTime });
    const m = decodePkiMessage(r.der);
    expect(m.messageType).toBe('19');
    expect(m.transactionId).toBe(r.transactionId);
    expect(m.senderNonce).toEqual(r.senderNonce);
    expect(m.senderNonce.length).toBe(16);
    expect(m.recipientNonce).toBeUndefined();
    expect(m.pkiStatus).toBeUndefined();
    expect(m.contentType).toBe(OID_CMS.data);
    expect(m.eContentType).toBe(OID_CMS.data);
    expect(m.signingTime).toEqual(signingTime);
    expect(m.signerCertDer).toEqual(req.certDer);
    expect(m.certificates).toEqual([req.certDer]);
    expect(m.signerId).toEqual({
      kind: 'issuerAndSerialNumber',
      issuerDer: certificateParts(req.certDer).issuerDer,
      serialHex: certificateParts(req.certDer).serial.toString('hex'),
    });
    expect(m.digestAlgorithmOid).toBe('2.16.840.1.101.3.4.2.1');
    expect(m.digestName).toBe('sha256');
    expect(m.signatureAlgorithmOid).toBe(OID_SIG.sha256WithRsa);
    expect(m.signatureAlgorithmParamsDer).toBeUndefined();
    expect(m.signedAttrsDer).toEqual(r.signedAttrsDer);
    expect(m.signedAttrsDer[0]).toBe(0x31);
    expect(m.signature).toEqual(r.signature);
    expect(m.content).toEqual(r.envelope.der);
    expect(crypto.verify('sha256', m.signedAttrsDer, new crypto.X509Certificate(m.signerCertDer).publicKey, m.signature)).toBe(true);
    expect(checkMessageDigest(m, m.digestName!)).toBe(true);
  });

  it('decodes every cipher, digest and signatureAlgorithm combination, and the inner envelope decrypts to the CSR', () => {
    for (const combo of COMBOS) {
      const r = pkcsReq(combo);
      const m = decodePkiMessage(r.der);
      expect(m.digestName).toBe(combo.digest);
      expect(m.signatureAlgorithmOid).toBe(
        combo.signatureAlgorithm === 'rsaEncryption' ? OID_KEY.rsaEncryption : { sha1: OID_SIG.sha1WithRsa, sha256: OID_SIG.sha256WithRsa, sha384: OID_SIG.sha384WithRsa, sha512: OID_SIG.sha512WithRsa }[combo.digest],
      );
      expect(crypto.verify(m.digestName!, m.signedAttrsDer, new crypto.X509Certificate(m.signerCertDer).publicKey, m.signature)).toBe(true);
      expect(checkMessageDigest(m, m.digestName!)).toBe(true);
      const env = decodeEnvelopedData(m.content!);
      expect(env.cipher.name).toBe(nodeCipherName(combo.cipher));
      expect(decryptEnvelope(env, ra.key)).toEqual(csrDer);
    }
  });

  it('finds a subjectKeyIdentifier signer (SignerInfo v3) among several certificates', () => {
    const env = envelope(csrDer, ra.certDer, 'aes128');
    const attrs = [
      scepAttribute(OID_SCEP.messageType, encodePrintableString('19')),
      scepAttribute(OID_SCEP.transactionID, encodePrintableString('ABC')),
      scepAttribute(OID_SCEP.senderNonce, encodeOctetString(crypto.randomBytes(16))),
    ];
    const s = signedPkiMessage({ content: env.der, signerCertDer: req.certDer, signerKey: req.key, digest: 'sha256', attributes: attrs, sid: 'ski', certificates: [ra.certDer, req.certDer] });
    expect(opensslOk(['cms', '-verify', '-noverify', '-inform', 'DER', '-binary'], s.der)).toEqual(env.der);
    const m = decodePkiMessage(s.der);
    expect(m.signerId).toEqual({ kind: 'subjectKeyIdentifier', ski: subjectKeyIdentifier(req.certDer) });
    expect(m.signerCertDer).toEqual(req.certDer);
    expect(m.certificates).toEqual([ra.certDer, req.certDer]);
    expect(m.transactionId).toBe('ABC');
  });

  it('checkMessageDigest is false once a content octet is flipped, while the signature over the attributes still verifies', () => {
    const r = pkcsReq();
    const tail = r.envelope.der.subarray(r.envelope.der.length - 4);
    const m = decodePkiMessage(patch(r.der, tail, Buffer.from(tail.map((b) => b ^ 0x01))));
    expect(checkMessageDigest(m, 'sha256')).toBe(false);
    expect(crypto.verify('sha256', m.signedAttrsDer, new crypto.X509Certificate(m.signerCertDer).publicKey, m.signature)).toBe(true);
    expect(checkMessageDigest({ content: m.content, messageDigest: m.messageDigest.subarray(1) }, 'sha256')).toBe(false);
  });

  it('the signature no longer verifies over signedAttrsDer once a signed attribute octet is changed', () => {
    const r = pkcsReq({ transactionId: 'TXID-0001' });
    const m = decodePkiMessage(patch(r.der, Buffer.from('TXID-0001'), Buffer.from('TXID-0002')));
    expect(m.transactionId).toBe('TXID-0002');
    expect(crypto.verify('sha256', m.signedAttrsDer, new crypto.X509Certificate(m.signerCertDer).publicKey, m.signature)).toBe(false);
    expect(checkMessageDigest(m, 'sha256')).toBe(true);
  });

  it('rejects a truncated message and one with trailing bytes with badRequest', () => {
    const { der } = pkcsReq();
    const t = caError(() => decodePkiMessage(der.subarray(0, der.length - 10)));
    expect(t.kind).toBe('badRequest');
    expect(t.message).toMatch(/truncated/);
    const tr = caError(() => decodePkiMessage(Buffer.concat([der, Buffer.from([0x00, 0x00])])));
    expect(tr.kind).toBe('badRequest');
    expect(tr.message).toMatch(/trailing data/);
    expect(caError(() => decodePkiMessage(Buffer.alloc(0))).message).toMatch(/empty/);
  });

  it('rejects two SignerInfos with badRequest', () => {
    const e = caError(() => decodePkiMessage(pkcsReq({ signerInfoCopies: 2 }).der));
    expect(e.kind).toBe('badRequest');
    expect(e.message).toMatch(/exactly one SignerInfo, found 2/);
  });

  it('rejects a message missing transactionID, senderNonce or messageType with badRequest naming it', () => {
    for (const [omit, name] of [['transactionID', 'transactionID'], ['senderNonce', 'senderNonce'], ['messageType', 'messageType']] as const) {
      const e = caError(() => decodePkiMessage(pkcsReq({ omit: [omit] }).der));
      expect(e.kind).toBe('badRequest');
      expect(e.message).toBe(`SCEP pkiMessage: missing signed attribute ${name}`);
    }
  });

  it('rejects BER indefinite lengths (openssl cms -sign -stream) with badRequest', () => {
    const ber = opensslOk(['cms', '-sign', '-signer', req.certFile, '-inkey', req.keyFile, '-binary', '-nodetach', '-stream', '-outform', 'DER'], csrDer);
    expect(ber.subarray(0, 2)).toEqual(Buffer.from([0x30, 0x80]));
    const e = caError(() => decodePkiMessage(ber));
    expect(e.kind).toBe('badRequest');
    expect(e.message).toMatch(/indefinite length is not DER/);
  });

  it('rejects a plain openssl cms -sign message: valid CMS, but no SCEP messageType', () => {
    const der = opensslOk(['cms', '-sign', '-signer', req.certFile, '-inkey', req.keyFile, '-binary', '-nodetach', '-outform', 'DER', '-md', 'sha256'], csrDer);
    expect(caError(() => decodePkiMessage(der)).message).toBe('SCEP pkiMessage: missing signed attribute messageType');
  });

  it('rejects a message whose signer certificate is not included, or whose attributes are duplicated or of the wrong type', () => {
    const env = envelope(csrDer, ra.certDer, 'aes128');
    const base = [
      scepAttribute(OID_SCEP.messageType, encodePrintableString('19')),
      scepAttribute(OID_SCEP.senderNonce, encodeOctetString(crypto.randomBytes(16))),
    ];
    const txid = scepAttribute(OID_SCEP.transactionID, encodePrintableString('ABC'));
    const sign = (attributes: Buffer[], certificates?: Buffer[]) =>
      signedPkiMessage({ content: env.der, signerCertDer: req.certDer, signerKey: req.key, digest: 'sha256', attributes, ...(certificates ? { certificates } : {}) }).der;

    expect(caError(() => decodePkiMessage(sign([...base, txid], [ra.certDer]))).message).toMatch(/signer certificate is not in the SignedData certificates/);
    const twice = scepAttribute(OID_SCEP.transactionID, encodePrintableString('ABD'));
    expect(caError(() => decodePkiMessage(sign([...base, txid, twice]))).message).toMatch(/transactionID appears more than once/);
    const utf8Txid = scepAttribute(OID_SCEP.transactionID, encodeTlv(0x0c, Buffer.from('ABC')));
    expect(caError(() => decodePkiMessage(sign([...base, utf8Txid]))).message).toMatch(/transactionID must be a PrintableString/);
    const twoValues = encodeSequence(encodeOid(OID_SCEP.transactionID), encodeTlv(0x31, encodePrintableString('A'), encodePrintableString('B')));
    expect(caError(() => decodePkiMessage(sign([...base, twoValues]))).message).toMatch(/transactionID must have exactly one value/);
    const badType = scepAttribute(OID_SCEP.messageType, encodePrintableString('PKCSReq'));
    expect(caError(() => decodePkiMessage(sign([badType, base[1]!, txid]))).message).toMatch(/messageType "PKCSReq" is not a small decimal number/);
  });

  it('rejects a signatureAlgorithm whose hash differs from the digestAlgorithm', () => {
    const { der } = pkcsReq({ digest: 'sha256' });
    // sha256WithRSAEncryption → sha512WithRSAEncryption (…1.1.11 → …1.1.13) in the SignerInfo,
    // which comes after the certificates (whose own signature algorithm is the same OID)
    const bad = patch(der, encodeOid(OID_SIG.sha256WithRsa), encodeOid(OID_SIG.sha512WithRsa), true);
    expect(caError(() => decodePkiMessage(bad)).message).toMatch(/does not match digestAlgorithm/);
  });
});

// ------------------------------------------------------------------------------ encodeCertRep

/** Builds and signs a CertRep with the RA key. */
function certRep(p: Partial<CertRepInput> & Pick<CertRepInput, 'status'>, key: crypto.KeyObject = ra.key, certDer: Buffer = ra.certDer): Buffer {
  const toSign = encodeCertRep({
    signerCertDer: certDer,
    digest: 'sha256',
    transactionId: strongswanTransactionId(req.certDer),
    recipientNonce: Buffer.alloc(16, 0xaa),
    senderNonce: Buffer.alloc(16, 0xbb),
    signingTime: new Date('2026-03-01T12:00:00Z'),
    ...p,
  });
  return toSign.assemble(crypto.sign(toSign.digest, toSign.signedAttrsDer, key));
}

describe('encodeCertRep', () => {
  it('SUCCESS verifies with openssl cms -verify -noverify, and the content decrypts with the requester key to the certs-only PKCS#7', () => {
    const certsOnly = encodeCertsOnly([req.certDer, ra.certDer]);
    const env = envelope(certsOnly, req.certDer, 'aes128');
    const der = certRep({ status: 'SUCCESS', envelopedData: env.der });
    const content = opensslOk(['cms', '-verify', '-noverify', '-inform', 'DER', '-binary'], der);
    expect(content).toEqual(env.der);
    const plain = opensslOk(['cms', '-decrypt', '-inform', 'DER', '-recip', req.certFile, '-inkey', req.keyFile, '-binary'], content);
    expect(plain).toEqual(certsOnly);
    expect(decodeCertsOnly(plain)).toEqual([req.certDer, ra.certDer]);
  });

  it('SUCCESS decodes back with decodePkiMessage: messageType 3, pkiStatus 0, echoed transactionID, recipientNonce, new senderNonce', () => {
    const env = envelope(encodeCertsOnly([req.certDer]), req.certDer, 'aes256');
    const der = certRep({ status: 'SUCCESS', envelopedData: env.der, transactionId: 'TX-42', recipientNonce: Buffer.alloc(16, 1), senderNonce: Buffer.alloc(16, 2) });
    const m = decodePkiMessage(der);
    expect(m.messageType).toBe('3');
    expect(m.pkiStatus).toBe('0');
    expect(m.failInfo).toBeUndefined();
    expect(m.transactionId).toBe('TX-42');
    expect(m.recipientNonce).toEqual(Buffer.alloc(16, 1));
    expect(m.senderNonce).toEqual(Buffer.alloc(16, 2));
    expect(m.signingTime).toEqual(new Date('2026-03-01T12:00:00Z'));
    expect(m.signerCertDer).toEqual(ra.certDer);
    expect(m.content).toEqual(env.der);
    expect(m.signatureAlgorithmOid).toBe(OID_KEY.rsaEncryption);
    expect(checkMessageDigest(m, 'sha256')).toBe(true);
    expect(crypto.verify('sha256', m.signedAttrsDer, new crypto.X509Certificate(ra.certDer).publicKey, m.signature)).toBe(true);
  });

  it('FAILURE has no eContent, verifies with openssl against empty detached content, and -cmsout -print shows pkiStatus 2 and failInfo 2', () => {
    const der = certRep({ status: 'FAILURE', failInfo: 'badRequest' });
    const dir = tmp();
    const empty = writeTmp(dir, 'empty.bin', Buffer.alloc(0));
    // openssl treats a SignedData without eContent as detached: it wants -content (here empty)
    const noContent = openssl(['cms', '-verify', '-noverify', '-inform', 'DER', '-binary'], der);
    expect(noContent.status).not.toBe(0);
    expect(noContent.stderr).toMatch(/no content/i);
    const out = opensslOk(['cms', '-verify', '-noverify', '-inform', 'DER', '-binary', '-content', empty], der);
    expect(out.length).toBe(0);
    const text = opensslOk(['cms', '-cmsout', '-print', '-inform', 'DER'], der).toString();
    expect(text).toMatch(/eContent: <ABSENT>/);
    expect(text).toMatch(/2\.16\.840\.1\.113733\.1\.9\.3[\s\S]*?PRINTABLESTRING:2/);
    expect(text).toMatch(/2\.16\.840\.1\.113733\.1\.9\.4[\s\S]*?PRINTABLESTRING:2/);
    expect(text).toMatch(/2\.16\.840\.1\.113733\.1\.9\.2[\s\S]*?PRINTABLESTRING:3/);
    const m = decodePkiMessage(der);
    expect(m.pkiStatus).toBe('2');
    expect(m.failInfo).toBe(SCEP_FAIL_INFO.badRequest);
    expect(m.content).toBeUndefined();
    expect(checkMessageDigest(m, 'sha256')).toBe(true);
    expect(m.messageDigest).toEqual(crypto.createHash('sha256').update(Buffer.alloc(0)).digest());
  });

  it('FAILURE carries every failInfo code and an optional failInfoText; PENDING carries neither', () => {
    for (const [name, code] of Object.entries(SCEP_FAIL_INFO)) {
      const m = decodePkiMessage(certRep({ status: 'FAILURE', failInfo: name as keyof typeof SCEP_FAIL_INFO, failInfoText: `no: ${name} – ü` }));
      expect(m.failInfo).toBe(code);
      expect(m.failInfoText).toBe(`no: ${name} – ü`);
    }
    const pending = decodePkiMessage(certRep({ status: 'PENDING' }));
    expect(pending.pkiStatus).toBe('3');
    expect(pending.failInfo).toBeUndefined();
    expect(pending.content).toBeUndefined();
  });

  it('signs with sha1, sha256, sha384 and sha512 (signatureAlgorithm rsaEncryption, digestAlgorithm as asked), accepted by openssl', () => {
    const env = envelope(encodeCertsOnly([req.certDer]), req.certDer, 'aes128');
    for (const [digest, oid] of [['sha1', '1.3.14.3.2.26'], ['sha256', '2.16.840.1.101.3.4.2.1'], ['sha384', '2.16.840.1.101.3.4.2.2'], ['sha512', '2.16.840.1.101.3.4.2.3']] as const) {
      const der = certRep({ status: 'SUCCESS', envelopedData: env.der, digest });
      expect(opensslOk(['cms', '-verify', '-noverify', '-inform', 'DER', '-binary'], der)).toEqual(env.der);
      const m = decodePkiMessage(der);
      expect(m.digestName).toBe(digest);
      expect(m.digestAlgorithmOid).toBe(oid);
      expect(m.signatureAlgorithmOid).toBe(OID_KEY.rsaEncryption);
    }
  });

  it('an EC RA key signs with ecdsa-with-SHA256, accepted by openssl', () => {
    const dir = tmp();
    const certFile = path.join(dir, 'ec-ra.pem');
    const keyFile = path.join(dir, 'ec-ra.key');
    opensslOk(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', certFile, '-subj', '/CN=EC RA', '-days', '30']);
    const certDer = opensslOk(['x509', '-in', certFile, '-outform', 'DER']);
    const der = certRep({ status: 'PENDING' }, crypto.createPrivateKey(readFileSync(keyFile)), certDer);
    const empty = writeTmp(dir, 'empty2.bin', Buffer.alloc(0));
    opensslOk(['cms', '-verify', '-noverify', '-inform', 'DER', '-binary', '-content', empty], der);
    expect(decodePkiMessage(der).signatureAlgorithmOid).toBe(OID_SIG.ecdsaWithSha256);
  });

  it('writes DER signed attributes (sorted SET OF), the RA certificate first, and the extra certificates after it', () => {
    const toSign = encodeCertRep({
      signerCertDer: ra.certDer, extraCerts: [req.certDer], digest: 'sha256', status: 'PENDING', transactionId: 'T',
      recipientNonce: Buffer.alloc(16), senderNonce: Buffer.alloc(16, 1), signingTime: new Date('2026-03-01T00:00:00Z'),
    });
    const set = readWhole(toSign.signedAttrsDer);
    expect(set.tag).toBe(0x31);
    const attrs = readChildren(toSign.signedAttrsDer, set).map((t) => toSign.signedAttrsDer.subarray(t.start, t.end));
    expect(attrs.length).toBe(8);
    expect([...attrs].sort(Buffer.compare)).toEqual(attrs);
    const m = decodePkiMessage(toSign.assemble(crypto.sign('sha256', toSign.signedAttrsDer, ra.key)));
    expect(m.certificates).toEqual([ra.certDer, req.certDer]);
    expect(m.signedAttrsDer).toEqual(toSign.signedAttrsDer);
  });

  it('rejects inconsistent input with badRequest', () => {
    const env = envelope(encodeCertsOnly([req.certDer]), req.certDer, 'aes128').der;
    const base: CertRepInput = {
      signerCertDer: ra.certDer, digest: 'sha256', status: 'SUCCESS', envelopedData: env, transactionId: 'T',
      recipientNonce: Buffer.alloc(16), senderNonce: Buffer.alloc(16), signingTime: new Date(),
    };
    const cases: [Partial<CertRepInput>, RegExp][] = [
      [{ status: 'FAILURE', envelopedData: undefined }, /needs a failInfo/],
      [{ failInfo: 'badAlg' }, /only for a FAILURE/],
      [{ envelopedData: undefined }, /needs the pkcsPKIEnvelope/],
      [{ status: 'PENDING' }, /only a SUCCESS CertRep carries/],
      [{ transactionId: 'a_b' }, /PrintableString/],
      [{ recipientNonce: Buffer.alloc(0) }, /recipientNonce/],
      [{ digest: 'md5' as never }, /unsupported CertRep digest/],
      [{ signerCertDer: Buffer.from([0x30, 0x00]) }, /signer certificate/],
    ];
    for (const [change, msg] of cases) {
      const e = caError(() => encodeCertRep({ ...base, ...change }));
      expect(e.kind).toBe('badRequest');
      expect(e.message).toMatch(msg);
    }
  });
});

// ------------------------------------------------------------------- strongSwan pki interop

const HAS_PKI = spawnSync('pki', ['--help']).error === undefined;

/** Runs strongSwan pki asynchronously (the SCEP server answers from this process). */
function runPki(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('pki', args, { timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      resolve({ code, stdout, stderr: stderr.split('\n').filter((l) => !/tpm/i.test(l)).join('\n') });
    });
  });
}

describe.skipIf(!HAS_PKI)('strongSwan pki --scep against these decoders and encoders', () => {
  let server: http.Server;
  let url: string;
  /** PENDING_THEN_SUCCESS: PENDING for the PKCSReq, then SUCCESS for the CertPoll that follows. */
  let reply: 'SUCCESS' | 'FAILURE' | 'PENDING_THEN_SUCCESS' = 'SUCCESS';
  /** Every request: its DER and decrypted content (the CSR, or IssuerAndSubject for CertPoll). */
  const seen: { der: Buffer; csr: Buffer; cipher: string }[] = [];
  const csrByTransaction = new Map<string, Buffer>();
  /** The last certificate issued, and the key file it was requested with. */
  let lastIssued: { certFile: string; keyFile: string } | undefined;
  let currentKeyFile = '';
  const problems: string[] = [];

  /** A minimal SCEP responder built only from the functions under test (+ openssl to issue). */
  function pkiOperation(body: Buffer): Buffer {
    const m = decodePkiMessage(body);
    const signer = new crypto.X509Certificate(m.signerCertDer).publicKey;
    if (!crypto.verify(m.digestName!, m.signedAttrsDer, signer, m.signature)) problems.push('request signature does not verify');
    if (!checkMessageDigest(m, m.digestName!)) problems.push('request messageDigest does not match');
    const env = decodeEnvelopedData(m.content!);
    const csr = decryptEnvelope(env, ra.key);
    seen.push({ der: body, csr, cipher: env.cipher.name });
    const common = {
      signerCertDer: ra.certDer,
      digest: m.digestName as 'sha256',
      transactionId: m.transactionId,
      recipientNonce: m.senderNonce,
      senderNonce: crypto.randomBytes(16),
      signingTime: new Date(),
    };
    if (m.messageType !== '20') csrByTransaction.set(m.transactionId, csr);
    let toSign;
    if (reply === 'FAILURE') {
      toSign = encodeCertRep({ ...common, status: 'FAILURE', failInfo: 'badRequest' });
    } else if (reply === 'PENDING_THEN_SUCCESS' && m.messageType !== '20') {
      toSign = encodeCertRep({ ...common, status: 'PENDING' });
    } else {
      const dir = tmp();
      const csrFile = writeTmp(dir, `sw-${seen.length}.csr`, csrByTransaction.get(m.transactionId)!);
      const issued = opensslOk(['x509', '-req', '-inform', 'DER', '-in', csrFile, '-CA', ra.certFile, '-CAkey', ra.keyFile, '-days', '1', '-outform', 'DER']);
      lastIssued = { certFile: writeTmp(dir, `sw-${seen.length}.crt`, issued), keyFile: currentKeyFile };
      const certsOnly = encodeCertsOnly([issued]);
      // encrypted to the certificate that signed the request, as RFC 8894 §3.3.2 says
      toSign = encodeCertRep({ ...common, status: 'SUCCESS', envelopedData: envelope(certsOnly, m.signerCertDer, 'aes128').der });
    }
    return toSign.assemble(crypto.sign(toSign.digest, toSign.signedAttrsDer, ra.key));
  }

  beforeAll(async () => {
    server = http.createServer((rq, rs) => {
      const chunks: Buffer[] = [];
      rq.on('data', (c: Buffer) => chunks.push(c));
      rq.on('end', () => {
        const op = new URL(rq.url ?? '/', 'http://x').searchParams.get('operation');
        try {
          if (op === 'GetCACaps') {
            // SHA-384 must be listed or strongSwan 5.9.8 refuses AES (bug #1607, CLIENTS.md)
            const caps = 'POSTPKIOperation\nSHA-256\nSHA-384\nSHA-512\nSHA-1\nAES\nDES3\nSCEPStandard\nRenewal\n';
            rs.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(caps) }).end(caps);
          } else if (op === 'PKIOperation' && rq.method === 'POST') {
            const out = pkiOperation(Buffer.concat(chunks));
            rs.writeHead(200, { 'Content-Type': 'application/x-pki-message', 'Content-Length': out.length }).end(out);
          } else {
            rs.writeHead(400, { 'Content-Length': 0 }).end();
          }
        } catch (err) {
          problems.push(String(err));
          rs.writeHead(500, { 'Content-Length': 0 }).end();
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/scep`;
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('a real pki --scep PKCSReq decodes and verifies, and pki accepts the SUCCESS CertRep (rsaEncryption signature, AES envelope)', async () => {
    const dir = tmp();
    const keyFile = path.join(dir, 'sw-dev.key');
    const gen = spawnSync('pki', ['--gen', '--type', 'rsa', '--size', '2048', '--outform', 'pem']);
    writeTmp(dir, 'sw-dev.key', gen.stdout);
    reply = 'SUCCESS';
    currentKeyFile = keyFile;
    const before = seen.length;
    const r = await runPki([
      '--scep', '--url', url, '--in', keyFile, '--dn', 'CN=device-0009, O=Fleet Test', '--password', 's3cret',
      '--cacert-enc', ra.certFile, '--cacert-sig', ra.certFile, '--cacert', ra.certFile, '--outform', 'pem',
    ]);
    expect(problems).toEqual([]);
    expect(r.stderr).toMatch(/Issued certificate "CN=device-0009, O=Fleet Test"/);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/-----BEGIN CERTIFICATE-----/);
    expect(seen.length).toBe(before + 1);
    const got = seen[seen.length - 1]!;
    const m = decodePkiMessage(got.der);
    // what CLIENTS.md records for strongSwan 5.9.8: AES-128-CBC, sha256WithRSA, signingTime, PKCSReq
    expect(got.cipher).toBe('aes-128-cbc');
    expect(m.messageType).toBe('19');
    expect(m.signatureAlgorithmOid).toBe(OID_SIG.sha256WithRsa);
    expect(m.signingTime).toBeInstanceOf(Date);
    expect(m.senderNonce.length).toBe(16);
    expect(m.transactionId).toMatch(/^[0-9A-F]{40}$/);
    expect(m.transactionId).toBe(strongswanTransactionId(m.signerCertDer));
    expect(opensslOk(['req', '-inform', 'DER', '-noout', '-subject'], got.csr).toString()).toMatch(/CN = device-0009/);
  });

  it('pki reports the FAILURE CertRep (no eContent) as failInfo badRequest and exits 1', async () => {
    const dir = tmp();
    const keyFile = path.join(dir, 'sw-dev2.key');
    writeTmp(dir, 'sw-dev2.key', spawnSync('pki', ['--gen', '--type', 'rsa', '--size', '2048', '--outform', 'pem']).stdout);
    reply = 'FAILURE';
    const r = await runPki([
      '--scep', '--url', url, '--in', keyFile, '--dn', 'CN=device-0010', '--cipher', 'des3', '--digest', 'sha1',
      '--cacert-enc', ra.certFile, '--cacert-sig', ra.certFile, '--cacert', ra.certFile,
    ]);
    expect(problems).toEqual([]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/failInfo:\s+badRequest - transaction not permitted or supported/);
    expect(r.stderr).toMatch(/reply status is not 'SUCCESS'/);
    const got = seen[seen.length - 1]!;
    expect(got.cipher).toBe('des-ede3-cbc');
    expect(decodePkiMessage(got.der).digestName).toBe('sha1');
  });

  it('pki polls a PENDING CertRep with a real CertPoll (messageType 20, same transactionID) and accepts the SUCCESS that follows', async () => {
    const dir = tmp();
    const keyFile = writeTmp(dir, 'sw-dev3.key', spawnSync('pki', ['--gen', '--type', 'rsa', '--size', '2048', '--outform', 'pem']).stdout);
    reply = 'PENDING_THEN_SUCCESS';
    currentKeyFile = keyFile;
    const before = seen.length;
    const r = await runPki([
      '--scep', '--url', url, '--in', keyFile, '--dn', 'CN=device-0011', '--interval', '1', '--maxpolltime', '20',
      '--cacert-enc', ra.certFile, '--cacert-sig', ra.certFile, '--cacert', ra.certFile,
    ]);
    expect(problems).toEqual([]);
    expect(r.stderr).toMatch(/Issued certificate "CN=device-0011"/);
    expect(r.code).toBe(0);
    expect(seen.length).toBe(before + 2);
    const first = decodePkiMessage(seen[before]!.der);
    const poll = decodePkiMessage(seen[before + 1]!.der);
    expect(first.messageType).toBe('19');
    expect(poll.messageType).toBe('20');
    expect(poll.transactionId).toBe(first.transactionId);
    expect(poll.senderNonce).not.toEqual(first.senderNonce);
    // RFC 8894 §3.3.3: the CertPoll content is IssuerAndSubject { issuer Name, subject Name }
    const ias = seen[before + 1]!.csr;
    const kids = readChildren(ias, readWhole(ias));
    expect(kids.map((k) => k.tag)).toEqual([0x30, 0x30]);
  });

  it('a real RenewalReq (messageType 17, signed with the issued certificate) decodes with that certificate as signer', async () => {
    const dir = tmp();
    if (lastIssued === undefined) {
      // run on its own (-t): enroll first to have a certificate to renew
      reply = 'SUCCESS';
      currentKeyFile = writeTmp(dir, 'sw-dev0.key', spawnSync('pki', ['--gen', '--type', 'rsa', '--size', '2048', '--outform', 'pem']).stdout);
      await runPki(['--scep', '--url', url, '--in', currentKeyFile, '--dn', 'CN=device-0011', '--cacert-enc', ra.certFile, '--cacert-sig', ra.certFile]);
    }
    const old = lastIssued!; // this request issues a new certificate and moves lastIssued on
    expect(old).toBeDefined();
    const keyFile = writeTmp(dir, 'sw-dev4.key', spawnSync('pki', ['--gen', '--type', 'rsa', '--size', '2048', '--outform', 'pem']).stdout);
    reply = 'SUCCESS';
    currentKeyFile = keyFile;
    const before = seen.length;
    const r = await runPki([
      '--scep', '--url', url, '--in', keyFile, '--dn', 'CN=device-0011',
      '--cacert-enc', ra.certFile, '--cacert-sig', ra.certFile, '--cacert', ra.certFile,
      '--cert', old.certFile, '--key', old.keyFile,
    ]);
    expect(problems).toEqual([]);
    expect(r.code).toBe(0);
    expect(seen.length).toBe(before + 1);
    const m = decodePkiMessage(seen[before]!.der);
    expect(m.messageType).toBe('17');
    expect(m.signerCertDer).toEqual(readFileSync(old.certFile));
    expect(crypto.verify(m.digestName!, m.signedAttrsDer, new crypto.X509Certificate(m.signerCertDer).publicKey, m.signature)).toBe(true);
  });
});
