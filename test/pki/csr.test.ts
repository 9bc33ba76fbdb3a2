import { CertificationRequest } from '@peculiar/asn1-csr';
import { AsnConvert } from '@peculiar/asn1-schema';
import * as crypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { CaError } from '../../src/core/errors.js';
import { decodeCsr, spkiSha256, verifyCsrSignature, type DecodedCsr } from '../../src/pki/csr.js';
import { encodeBitString, encodeNull, encodeOid, encodeSequence } from '../../src/pki/der.js';
import { OID_SIG } from '../../src/pki/oids.js';
import { decodeCsrInput } from '../../src/pki/pem.js';
import { opensslOk, useTmpDir, vector, writeTmp, caError } from './helpers.js';

const tmp = useTmpDir();

interface CsrOpts {
  newkey?: string[]; // e.g. ['ec', '-pkeyopt', 'ec_paramgen_curve:P-256']
  key?: string; // existing key file instead of newkey
  subj?: string;
  addext?: string[];
  digest?: string;
  sigopt?: string[];
  config?: string; // openssl config text (replaces -subj/-addext)
  utf8?: boolean;
}

let counter = 0;
/** Makes a CSR with `openssl req` and returns its DER plus the key file path. */
function opensslCsr(o: CsrOpts): { der: Buffer; keyFile: string } {
  const dir = tmp();
  const n = ++counter;
  const keyFile = o.key ?? `${dir}/k${n}.pem`;
  const args = ['req', '-new', '-outform', 'DER', '-out', `${dir}/r${n}.der`];
  if (o.key) args.push('-key', o.key);
  else args.push('-newkey', ...(o.newkey ?? ['ec', '-pkeyopt', 'ec_paramgen_curve:P-256']), '-nodes', '-keyout', keyFile);
  if (o.config) args.push('-config', writeTmp(dir, `c${n}.cnf`, o.config));
  else args.push('-subj', o.subj ?? '/CN=device-1');
  for (const e of o.addext ?? []) args.push('-addext', e);
  if (o.digest) args.push(`-${o.digest}`);
  for (const s of o.sigopt ?? []) args.push('-sigopt', s);
  if (o.utf8) args.push('-utf8');
  opensslOk(args);
  return { der: readFileSync(`${dir}/r${n}.der`), keyFile };
}

/** Independent oracle: @peculiar/asn1-csr must see the same request. */
function crossCheck(c: DecodedCsr): void {
  const ref = AsnConvert.parse(c.der, CertificationRequest);
  expect(Buffer.from(AsnConvert.serialize(ref.certificationRequestInfo.subjectPKInfo))).toEqual(c.spkiDer);
  expect(Buffer.from(AsnConvert.serialize(ref.certificationRequestInfo.subject))).toEqual(c.subjectDer);
  expect(ref.signatureAlgorithm.algorithm).toBe(c.signatureAlgorithmOid);
  expect(Buffer.from(ref.signature)).toEqual(c.signature);
  expect(ref.certificationRequestInfo.subject.length).toBe(c.subject.length);
}

function nodeJwk(spkiDer: Buffer): crypto.JsonWebKey {
  return crypto.createPublicKey({ key: spkiDer, format: 'der', type: 'spki' }).export({ format: 'jwk' });
}

describe('decodeCsr + verifyCsrSignature on openssl requests', () => {
  it.each([
    ['RSA-2048', ['rsa:2048'], 2048],
    ['RSA-1024', ['rsa:1024'], 1024],
  ])('%s decodes to the right modulus/exponent and verifies', (_n, newkey, bits) => {
    const { der } = opensslCsr({ newkey, subj: '/CN=rsa-device' });
    const c = decodeCsr(der);
    expect(c.key.type).toBe('rsa');
    if (c.key.type !== 'rsa') return;
    expect(c.key.bits).toBe(bits);
    expect(c.key.exponent).toBe(65537n);
    expect(c.key.modulus).toEqual(Buffer.from(nodeJwk(c.spkiDer).n!, 'base64url'));
    expect(c.key.modulus[0]).not.toBe(0);
    expect(c.signatureAlgorithmOid).toBe(OID_SIG.sha256WithRsa);
    expect(verifyCsrSignature(c)).toBe(true);
    crossCheck(c);
  });

  it.each([
    ['P-256', 'P-256', 256],
    ['P-384', 'P-384', 384],
    ['P-521', 'P-521', 521],
    ['prime192v1', 'P-192', 192],
    ['secp256k1', 'secp256k1', 256],
  ])('EC %s decodes as curve %s and verifies', (opensslCurve, curve, bits) => {
    const { der } = opensslCsr({ newkey: ['ec', '-pkeyopt', `ec_paramgen_curve:${opensslCurve}`] });
    const c = decodeCsr(der);
    expect(c.key).toEqual({ type: 'ec', curve, bits });
    expect(verifyCsrSignature(c)).toBe(true);
    crossCheck(c);
  });

  it.each([
    ['ed25519', { type: 'ed25519', bits: 256 }, OID_SIG.ed25519],
    ['ed448', { type: 'ed448', bits: 456 }, OID_SIG.ed448],
  ])('%s decodes and verifies', (alg, key, sigOid) => {
    const { der } = opensslCsr({ newkey: [alg] });
    const c = decodeCsr(der);
    expect(c.key).toEqual(key);
    expect(c.signatureAlgorithmOid).toBe(sigOid);
    expect(verifyCsrSignature(c)).toBe(true);
    crossCheck(c);
  });

  it('subject attributes decode in order with their short names, UTF-8 intact', () => {
    const { der } = opensslCsr({
      subj: '/C=DE/ST=Bayern/L=München/O=Müller GmbH/OU=Fleet/CN=cam-ü-1/serialNumber=SN 0042/emailAddress=ops@example.com/DC=example/UID=u1/2.5.4.65=pseudo',
      utf8: true,
    });
    const c = decodeCsr(der);
    expect(c.subject.map((a) => [a.type, a.value])).toEqual([
      ['C', 'DE'],
      ['ST', 'Bayern'],
      ['L', 'München'],
      ['O', 'Müller GmbH'],
      ['OU', 'Fleet'],
      ['CN', 'cam-ü-1'],
      ['serialNumber', 'SN 0042'],
      ['emailAddress', 'ops@example.com'],
      ['DC', 'example'],
      ['UID', 'u1'],
      ['2.5.4.65', 'pseudo'],
    ]);
    expect(c.subject[0]!.oid).toBe('2.5.4.6');
    expect(verifyCsrSignature(c)).toBe(true);
    crossCheck(c);
  });

  it('SAN of every type (DNS, email, IPv4, IPv6, URI) is decoded, IPv6 in RFC 5952 form', () => {
    const { der } = opensslCsr({
      addext: [
        'subjectAltName=DNS:cam-1.fleet.example.com,DNS:*.fleet.example.com,email:ops@example.com,IP:192.0.2.7,IP:2001:0DB8:0:0:0:0:0:1,URI:urn:dev:mac:0024befffe804ff1',
      ],
    });
    const c = decodeCsr(der);
    expect(c.extensions.san).toEqual([
      { type: 'dns', value: 'cam-1.fleet.example.com' },
      { type: 'dns', value: '*.fleet.example.com' },
      { type: 'email', value: 'ops@example.com' },
      { type: 'ip', value: '192.0.2.7' },
      { type: 'ip', value: '2001:db8::1' },
      { type: 'uri', value: 'urn:dev:mac:0024befffe804ff1' },
    ]);
    expect(c.extensions.other).toEqual([]);
    expect(verifyCsrSignature(c)).toBe(true);
  });

  it('otherName SAN is decoded as <oid>;<hex DER>', () => {
    const { der } = opensslCsr({ addext: ['subjectAltName=otherName:1.3.6.1.4.1.311.20.2.3;UTF8:dev@fleet.example'] });
    const c = decodeCsr(der);
    const inner = Buffer.concat([Buffer.from([0x0c, 17]), Buffer.from('dev@fleet.example')]).toString('hex');
    expect(c.extensions.san).toEqual([{ type: 'otherName', value: `1.3.6.1.4.1.311.20.2.3;${inner}` }]);
  });

  it('requested basicConstraints CA:TRUE, keyUsage keyCertSign, EKU and other extensions are reported', () => {
    const { der } = opensslCsr({
      addext: [
        'basicConstraints=critical,CA:TRUE,pathlen:1',
        'keyUsage=critical,keyCertSign,cRLSign,digitalSignature',
        'extendedKeyUsage=clientAuth,serverAuth,1.3.6.1.5.5.7.3.17',
        'subjectKeyIdentifier=hash',
        'nsComment=hello',
      ],
    });
    const c = decodeCsr(der);
    expect(c.extensions.basicConstraints).toEqual({ ca: true, pathLen: 1 });
    expect(c.extensions.keyUsage).toEqual(['digitalSignature', 'keyCertSign', 'cRLSign']);
    expect(c.extensions.extendedKeyUsage).toEqual(['clientAuth', 'serverAuth', '1.3.6.1.5.5.7.3.17']);
    expect(c.extensions.other).toEqual([
      { oid: '2.5.29.14', critical: false },
      { oid: '2.16.840.1.113730.1.13', critical: false },
    ]);
    expect(verifyCsrSignature(c)).toBe(true);
  });

  it('basicConstraints CA:FALSE decodes as ca false without pathLen', () => {
    const c = decodeCsr(opensslCsr({ addext: ['basicConstraints=CA:FALSE', 'keyUsage=digitalSignature,decipherOnly,keyAgreement'] }).der);
    expect(c.extensions.basicConstraints).toEqual({ ca: false });
    expect(c.extensions.keyUsage).toEqual(['digitalSignature', 'keyAgreement', 'decipherOnly']);
  });

  it('challengePassword attribute is returned (SCEP)', () => {
    const { der } = opensslCsr({
      config: [
        '[req]',
        'prompt = no',
        'distinguished_name = dn',
        'attributes = attrs',
        'req_extensions = ext',
        '[dn]',
        'CN = scep-device',
        '[attrs]',
        'challengePassword = s3cret-Otp_42',
        '[ext]',
        'subjectAltName = DNS:scep-device.example.com',
      ].join('\n'),
    });
    const c = decodeCsr(der);
    expect(c.challengePassword).toBe('s3cret-Otp_42');
    expect(c.subject).toEqual([{ type: 'CN', oid: '2.5.4.3', value: 'scep-device' }]);
    expect(c.extensions.san).toEqual([{ type: 'dns', value: 'scep-device.example.com' }]);
    expect(verifyCsrSignature(c)).toBe(true);
  });

  it('badCsr/a directoryName SAN is refused rather than silently dropped', () => {
    const { der } = opensslCsr({
      config: [
        '[req]',
        'prompt = no',
        'distinguished_name = dn',
        'req_extensions = ext',
        '[dn]',
        'CN = dirname-device',
        '[ext]',
        'subjectAltName = DNS:ok.example.com, dirName:dir_sect',
        '[dir_sect]',
        'CN = other',
      ].join('\n'),
    });
    const err = caError(() => decodeCsr(der));
    expect(err.kind).toBe('badCsr');
    expect(err.message).toBe('CSR requested subjectAltName extension is invalid: unsupported GeneralName type [4] directoryName');
  });

  it('a request without challengePassword has no such property', () => {
    expect('challengePassword' in decodeCsr(vector('csr/p256-valid.der'))).toBe(false);
  });

  it.each([['sha384'], ['sha512']])('ECDSA with %s verifies', (digest) => {
    const c = decodeCsr(opensslCsr({ digest }).der);
    expect(c.signatureAlgorithmOid).toBe(digest === 'sha384' ? OID_SIG.ecdsaWithSha384 : OID_SIG.ecdsaWithSha512);
    expect(verifyCsrSignature(c)).toBe(true);
  });

  it.each([
    ['saltlen 32', ['rsa_padding_mode:pss', 'rsa_pss_saltlen:32'], 'sha256'],
    ['saltlen = digest, sha384', ['rsa_padding_mode:pss', 'rsa_pss_saltlen:digest'], 'sha384'],
  ])('RSASSA-PSS (%s) verifies with its parameters', (_n, sigopt, digest) => {
    const c = decodeCsr(opensslCsr({ newkey: ['rsa:2048'], sigopt, digest }).der);
    expect(c.signatureAlgorithmOid).toBe(OID_SIG.rsassaPss);
    expect(verifyCsrSignature(c)).toBe(true);
  });

  it('weak/ecdsa-with-SHA1 is refused even though the signature is valid', () => {
    const c = decodeCsr(opensslCsr({ digest: 'sha1' }).der);
    expect(c.signatureAlgorithmOid).toBe(OID_SIG.ecdsaWithSha1);
    expect(verifyCsrSignature(c)).toBe(false);
  });

  it('badSignature/flipped signature byte on RSA verifies false', () => {
    const { der } = opensslCsr({ newkey: ['rsa:2048'] });
    const bad = Buffer.from(der);
    bad[bad.length - 5]! ^= 0x40;
    expect(verifyCsrSignature(decodeCsr(bad))).toBe(false);
  });

  it('badKey/P-256 point moved off the curve verifies false without throwing', () => {
    const good = vector('csr/p256-valid.der');
    const c = decodeCsr(good);
    // the last byte of Y inside the SPKI's BIT STRING: the point is then not on the curve
    const yEnd = good.indexOf(c.spkiDer) + c.spkiDer.length - 1;
    const bad = Buffer.from(good);
    bad[yEnd]! ^= 0x01;
    const c2 = decodeCsr(bad);
    expect(c2.key).toEqual({ type: 'ec', curve: 'P-256', bits: 256 });
    expect(() => crypto.createPublicKey({ key: c2.spkiDer, format: 'der', type: 'spki' })).toThrow();
    expect(verifyCsrSignature(c2)).toBe(false);
  });

  it('goodKey/P-384 and P-521 CSRs verify through the JWK import path', () => {
    for (const curve of ['P-384', 'P-521']) {
      const c = decodeCsr(opensslCsr({ newkey: ['ec', '-pkeyopt', `ec_paramgen_curve:${curve}`] }).der);
      expect(c.key).toMatchObject({ type: 'ec', curve });
      expect(verifyCsrSignature(c)).toBe(true);
    }
  });

  it('badSignature/flipped byte inside the signed info verifies false', () => {
    const good = vector('csr/p256-valid.der');
    const c = decodeCsr(good);
    const at = good.indexOf(Buffer.from('vector-device'));
    const bad = Buffer.from(good);
    bad[at] = 'V'.charCodeAt(0);
    const c2 = decodeCsr(bad);
    expect(c2.subject.find((a) => a.type === 'CN')!.value).toBe('Vector-device');
    expect(verifyCsrSignature(c)).toBe(true);
    expect(verifyCsrSignature(c2)).toBe(false);
  });

  it('mismatch/ECDSA request relabelled as sha256WithRSAEncryption verifies false', () => {
    const good = vector('csr/p256-valid.der');
    const c = decodeCsr(good);
    const rsaAlg = encodeSequence(encodeOid(OID_SIG.sha256WithRsa), encodeNull());
    const relabelled = encodeSequence(c.certificationRequestInfoDer, rsaAlg, encodeBitString(c.signature));
    const c2 = decodeCsr(relabelled);
    expect(c2.signatureAlgorithmOid).toBe(OID_SIG.sha256WithRsa);
    expect(verifyCsrSignature(c)).toBe(true);
    expect(verifyCsrSignature(c2)).toBe(false);
  });

  it('unsupported/unknown signature algorithm verifies false', () => {
    const c = decodeCsr(vector('csr/p256-valid.der'));
    const alg = encodeSequence(encodeOid('1.2.3.4'));
    expect(verifyCsrSignature(decodeCsr(encodeSequence(c.certificationRequestInfoDer, alg, encodeBitString(c.signature))))).toBe(false);
  });

  it('mismatch/ECDSA AlgorithmIdentifier with NULL parameters verifies false (RFC 5758 §3.2: absent)', () => {
    const c = decodeCsr(vector('csr/p256-valid.der'));
    const alg = encodeSequence(encodeOid(OID_SIG.ecdsaWithSha256), encodeNull());
    expect(verifyCsrSignature(decodeCsr(encodeSequence(c.certificationRequestInfoDer, alg, encodeBitString(c.signature))))).toBe(false);
  });

  it('spkiSha256 hashes the whole SubjectPublicKeyInfo', () => {
    const c = decodeCsr(vector('csr/p256-valid.der'));
    expect(spkiSha256(c.spkiDer)).toEqual(crypto.createHash('sha256').update(c.spkiDer).digest());
    expect(c.certificationRequestInfoDer[0]).toBe(0x30);
    expect(c.der.indexOf(c.certificationRequestInfoDer)).toBeLessThanOrEqual(4);
  });
});

describe('decodeCsr on golden vectors (test/vectors/csr)', () => {
  it.each([
    ['empty.der', 'CSR is empty'],
    ['truncated.der', 'CSR DER is truncated or malformed'],
    ['trailing-data.der', 'CSR has trailing data'],
    ['certificate.der', 'input is an X.509 certificate, not a CSR'],
    ['random.bin', 'CSR DER is malformed: expected CertificationRequest SEQUENCE'],
    ['random-seq.bin', 'CSR DER is truncated or malformed'],
    ['indefinite-length.der', 'CSR DER is malformed: indefinite length is not DER'],
    ['non-minimal-length.der', 'CSR DER is malformed: non-minimal length'],
    ['wrong-tag.der', 'CSR DER is malformed: expected CertificationRequestInfo SEQUENCE'],
    ['version-1.der', 'CSR version must be 0'],
    ['duplicate-extension.der', 'CSR requests extension subjectAltName more than once'],
  ])('badCsr/%s → %s', (file, message) => {
    const err = caError(() => decodeCsr(vector(`csr/${file}`)));
    expect(err.kind).toBe('badCsr');
    expect(err.message).toBe(message);
  });

  it('valid/p256-valid.der decodes and verifies', () => {
    const c = decodeCsr(vector('csr/p256-valid.der'));
    expect(c.subject.map((a) => `${a.type}=${a.value}`)).toEqual(['CN=vector-device', 'O=Fleet Test']);
    expect(c.key).toEqual({ type: 'ec', curve: 'P-256', bits: 256 });
    expect(c.extensions).toEqual({ other: [], san: [{ type: 'dns', value: 'vector-device.example.com' }] });
    expect(verifyCsrSignature(c)).toBe(true);
    crossCheck(c);
  });

  it('badSignature/sig-flipped.der decodes but does not verify', () => {
    expect(verifyCsrSignature(decodeCsr(vector('csr/sig-flipped.der')))).toBe(false);
  });

  it('weak/sha1-rsa.der decodes but sha1WithRSAEncryption is refused', () => {
    const c = decodeCsr(vector('csr/sha1-rsa.der'));
    expect(c.signatureAlgorithmOid).toBe(OID_SIG.sha1WithRsa);
    expect(verifyCsrSignature(c)).toBe(false);
  });

  it('badCsr/random bytes are neither PEM nor DER for decodeCsrInput', () => {
    expect(caError(() => decodeCsrInput(vector('csr/random.bin'))).message).toBe('CSR is neither PEM nor DER');
    expect(caError(() => decodeCsrInput(vector('csr/empty.der'))).message).toBe('CSR is neither PEM nor DER');
  });
});

describe('decodeCsr robustness', () => {
  let valid: Buffer;
  beforeAll(() => {
    valid = vector('csr/p256-valid.der');
  });

  it('every truncation fails with badCsr, never another error', () => {
    for (let n = 0; n < valid.length; n++) {
      const err = caError(() => decodeCsr(valid.subarray(0, n)));
      expect(err.kind).toBe('badCsr');
    }
  });

  it('every single-octet mutation either decodes or fails with badCsr, and never verifies', () => {
    let decoded = 0;
    for (let i = 0; i < valid.length; i++) {
      for (const x of [0x01, 0x80, 0xff]) {
        const m = Buffer.from(valid);
        m[i]! ^= x;
        let c: DecodedCsr | undefined;
        try {
          c = decodeCsr(m);
        } catch (err) {
          expect(err).toBeInstanceOf(CaError);
          expect((err as CaError).kind).toBe('badCsr');
        }
        if (c) {
          decoded++;
          expect(verifyCsrSignature(c)).toBe(false);
        }
      }
    }
    expect(decoded).toBeGreaterThan(0);
  });
});
