/**
 * Byte-level tests of the TBSCertificate builder: every certificate is built, signed with node's
 * crypto, assembled, then re-parsed by two independent libraries (@peculiar/x509, pkijs) and by
 * openssl (text dump and `verify -x509_strict` against a CA made with the same builder).
 */
import './reflect-polyfill.js';
import * as x509 from '@peculiar/x509';
import * as asn1js from 'asn1js';
import * as crypto from 'node:crypto';
import * as pkijs from 'pkijs';
import { beforeAll, describe, expect, it } from 'vitest';
import { nodeDigestFor, type SignatureAlgorithm } from '../../src/pki/algorithms.js';
import { extractTbs } from '../../src/pki/cert-parts.js';
import {
  assembleCertificate,
  buildTbsCertificate,
  compileCertTemplate,
  subjectKeyIdFromSpki,
  type CertTemplate,
  type CertTemplateSpec,
  type TbsFields,
} from '../../src/pki/cert-template.js';
import { encodeOctetString, encodeOid, encodeSequence, readChildren, readWhole } from '../../src/pki/der.js';
import { encodeKeyUsageValue } from '../../src/pki/extensions.js';
import { decodeName, encodeName, type RdnAttribute, type SanEntry } from '../../src/pki/names.js';
import { OID_EXT } from '../../src/pki/oids.js';
import { generateSerial } from '../../src/pki/serial.js';
import { certPem, generateTestKey, openssl, opensslOk, useTmpDir, writeTmp, type TestKey, type TestKeyType, caError } from './helpers.js';

x509.cryptoProvider.set(crypto.webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const tmp = useTmpDir();
const DAY = 86_400_000;
const NOW = new Date(Math.floor(Date.now() / 1000) * 1000); // tests only: the builder takes dates as parameters

const cn = (value: string): RdnAttribute => ({ type: 'CN', oid: '2.5.4.3', value });
const o = (value: string): RdnAttribute => ({ type: 'O', oid: '2.5.4.10', value });

function sign(alg: SignatureAlgorithm, tbs: Buffer, key: crypto.KeyObject): Buffer {
  return crypto.sign(nodeDigestFor(alg), tbs, key);
}

interface Ca {
  key: TestKey;
  alg: SignatureAlgorithm;
  nameDer: Buffer;
  ski: Buffer;
  der: Buffer;
  pemFile: string;
  x509: x509.X509Certificate;
}

const ISSUERS: Array<[TestKeyType, SignatureAlgorithm]> = [
  ['P-256', 'ecdsa-sha256'],
  ['P-384', 'ecdsa-sha384'],
  ['RSA-2048', 'rsa-sha256'],
  ['Ed25519', 'ed25519'],
];
const SUBJECT_KEYS: TestKeyType[] = ['P-256', 'P-384', 'RSA-2048', 'Ed25519'];

// RFC 4108 hardwareModuleName: the otherName an IoT device certificate typically carries
const HW_MODULE_NAME = `1.3.6.1.5.5.7.8.4;${encodeSequence(encodeOid('1.3.6.1.4.1.99999.1'), encodeOctetString(Buffer.from('SN-000123'))).toString('hex')}`;

const SAN_VARIANTS: Array<[string, SanEntry[] | undefined]> = [
  ['no SAN', undefined],
  ['dns', [{ type: 'dns', value: 'cam-1.fleet.example.com' }]],
  ['ipv4', [{ type: 'ip', value: '192.0.2.10' }]],
  ['ipv6', [{ type: 'ip', value: '2001:db8::10' }]],
  ['email', [{ type: 'email', value: 'cam-1@fleet.example.com' }]],
  ['uri', [{ type: 'uri', value: 'urn:dev:mac:0024befffe804ff1' }]],
  ['otherName', [{ type: 'otherName', value: HW_MODULE_NAME }]],
  [
    'all types',
    [
      { type: 'dns', value: 'cam-1.fleet.example.com' },
      { type: 'dns', value: '*.cam-1.fleet.example.com' },
      { type: 'ip', value: '10.1.2.3' },
      { type: 'ip', value: 'fe80::1' },
      { type: 'email', value: 'ops@fleet.example.com' },
      { type: 'uri', value: 'https://fleet.example.com/devices/cam-1' },
      { type: 'otherName', value: HW_MODULE_NAME },
    ],
  ],
];

const DATE_VARIANTS: Array<[string, Date, Date]> = [
  ['UTCTime', new Date(NOW.getTime() - 3_600_000), new Date(NOW.getTime() + 365 * DAY)],
  ['GeneralizedTime after 2050', new Date('2051-03-04T05:06:07Z'), new Date('2060-01-01T00:00:00Z')],
  ['UTCTime→GeneralizedTime across 2050', new Date('2049-12-31T12:00:00Z'), new Date('2050-01-01T12:00:00Z')],
];

const cas = new Map<TestKeyType, Ca>();
const subjectKeys = new Map<TestKeyType, TestKey>();

/** A self-signed CA made with the same builder (ca:true, keyCertSign+cRLSign). */
function makeCa(keyType: TestKeyType, alg: SignatureAlgorithm): Ca {
  const key = generateTestKey(keyType);
  const nameDer = encodeName([{ type: 'C', oid: '', value: 'DE' }, o('Fleet Test'), cn(`Test CA ${keyType}`)]);
  const ski = subjectKeyIdFromSpki(key.spkiDer);
  const t = compileCertTemplate({
    issuerNameDer: nameDer,
    authorityKeyId: ski,
    signatureAlgorithm: alg,
    basicConstraints: { ca: true, pathLen: 0 },
    keyUsage: ['keyCertSign', 'cRLSign', 'digitalSignature'],
  });
  const tbs = buildTbsCertificate(t, {
    serial: generateSerial(crypto.randomBytes),
    notBefore: new Date(NOW.getTime() - DAY),
    notAfter: new Date(NOW.getTime() + 365 * 45 * DAY),
    subjectDer: nameDer,
    spkiDer: key.spkiDer,
  });
  const der = assembleCertificate(tbs, alg, sign(alg, tbs, key.privateKey));
  return { key, alg, nameDer, ski, der, pemFile: writeTmp(tmp(), `ca-${keyType}.pem`, certPem(der)), x509: new x509.X509Certificate(der) };
}

function leafSpec(ca: Ca, extra: Partial<CertTemplateSpec> = {}): CertTemplateSpec {
  return {
    issuerNameDer: ca.nameDer,
    authorityKeyId: ca.ski,
    signatureAlgorithm: ca.alg,
    basicConstraints: { ca: false },
    keyUsage: ['digitalSignature', 'keyAgreement'],
    extendedKeyUsage: ['clientAuth', 'serverAuth'],
    crlDistributionPoint: 'http://pki.fleet.example.com/crl/device-ca.crl',
    ocspUrl: 'http://pki.fleet.example.com/ocsp',
    caIssuersUrl: 'http://pki.fleet.example.com/certs/device-ca.cer',
    certificatePolicies: ['1.3.6.1.4.1.99999.2.1', '2.23.140.1.2.1'],
    ...extra,
  };
}

/** Every check of one issued certificate. */
async function checkCertificate(ca: Ca, t: CertTemplate, f: TbsFields, der: Buffer, tbs: Buffer): Promise<void> {
  const spec = t.spec;
  const serialHex = f.serial.toString('hex');
  const sanExpected = f.san && f.san.length > 0 ? f.san : undefined;
  const emptySubject = f.subjectDer.equals(Buffer.from('3000', 'hex'));

  // the TBS inside is byte-identical to what was built (what the lints saw is what was signed)
  expect(extractTbs(der)).toEqual(tbs);

  // ---- @peculiar/x509
  const c = new x509.X509Certificate(der);
  expect(c.serialNumber.replace(/^00/, '')).toBe(serialHex);
  expect(Buffer.from(c.subjectName.toArrayBuffer())).toEqual(f.subjectDer);
  expect(Buffer.from(c.issuerName.toArrayBuffer())).toEqual(ca.nameDer);
  expect(c.notBefore.getTime()).toBe(Math.floor(f.notBefore.getTime() / 1000) * 1000);
  expect(c.notAfter.getTime()).toBe(Math.floor(f.notAfter.getTime() / 1000) * 1000);
  expect(Buffer.from(c.publicKey.rawData)).toEqual(f.spkiDer);
  const bc = c.getExtension(x509.BasicConstraintsExtension)!;
  expect(bc.critical).toBe(true);
  expect(bc.ca).toBe(spec.basicConstraints.ca);
  const ku = c.getExtension(x509.KeyUsagesExtension)!;
  expect(ku.critical).toBe(true);
  const kuFlags = spec.keyUsage.reduce((a, n) => a | x509.KeyUsageFlags[n], 0);
  expect(ku.usages).toBe(kuFlags);
  if (spec.extendedKeyUsage?.length) {
    expect(c.getExtension(x509.ExtendedKeyUsageExtension)!.usages).toEqual(
      spec.extendedKeyUsage.map((u) => (u === 'clientAuth' ? '1.3.6.1.5.5.7.3.2' : u === 'serverAuth' ? '1.3.6.1.5.5.7.3.1' : u === 'OCSPSigning' ? '1.3.6.1.5.5.7.3.9' : u)),
    );
  }
  const skiExpected = f.subjectKeyId ?? crypto.createHash('sha1').update(f.spkiDer.subarray(spkiBitStringOffset(f.spkiDer))).digest();
  expect(c.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId).toBe(skiExpected.toString('hex'));
  expect(c.getExtension(x509.AuthorityKeyIdentifierExtension)!.keyId).toBe(ca.ski.toString('hex'));
  const san = c.getExtension(x509.SubjectAlternativeNameExtension);
  if (sanExpected) {
    expect(san!.critical).toBe(emptySubject);
    const X509_TYPE = { dns: 'dns', ip: 'ip', email: 'email', uri: 'url' } as const;
    // @peculiar/x509 drops otherNames it has no name for (hardwareModuleName); pkijs checks those below
    const plain = sanExpected.filter((s) => s.type !== 'otherName');
    expect(san!.names.items.map((g) => [g.type, g.value])).toEqual(
      plain.map((s) => [X509_TYPE[s.type as keyof typeof X509_TYPE], s.value]),
    );
  } else {
    expect(san).toBeNull();
  }
  if (spec.crlDistributionPoint) {
    const cdp = c.getExtension(x509.CRLDistributionPointsExtension)!;
    expect(cdp.distributionPoints[0]!.distributionPoint!.fullName![0]!.uniformResourceIdentifier).toBe(spec.crlDistributionPoint);
  }
  if (spec.ocspUrl || spec.caIssuersUrl) {
    const aia = c.getExtension(x509.AuthorityInfoAccessExtension)!;
    expect(aia.ocsp.map((g) => g.value)).toEqual(spec.ocspUrl ? [spec.ocspUrl] : []);
    expect(aia.caIssuers.map((g) => g.value)).toEqual(spec.caIssuersUrl ? [spec.caIssuersUrl] : []);
  }
  if (spec.certificatePolicies?.length) {
    expect(c.getExtension(x509.CertificatePolicyExtension)!.policies).toEqual(spec.certificatePolicies);
  }
  expect(await c.verify({ publicKey: ca.x509, signatureOnly: true })).toBe(true);

  // ---- pkijs: same fields, and re-encoding the TBS from its parsed fields gives identical bytes
  const p = pkijs.Certificate.fromBER(der);
  expect(p.version).toBe(2);
  expect(Buffer.from(p.serialNumber.valueBlock.valueHexView).toString('hex').replace(/^00/, '')).toBe(serialHex);
  expect(p.subject.typesAndValues.map((tv) => [tv.type, tv.value.valueBlock.value])).toEqual(
    decodeName(f.subjectDer).map((a) => [a.oid, a.value]),
  );
  if (sanExpected) {
    const sanExt = p.extensions!.find((e) => e.extnID === OID_EXT.subjectAltName)!;
    const names = (sanExt.parsedValue as pkijs.AltName).altNames;
    expect(names.map((n) => n.type)).toEqual(sanExpected.map((s) => ({ otherName: 0, email: 1, dns: 2, uri: 6, ip: 7 })[s.type]));
    for (const [i, s] of sanExpected.entries()) {
      if (s.type !== 'otherName') continue;
      const on = names[i]!.value as asn1js.Sequence;
      const [typeId, value] = on.valueBlock.value as [asn1js.ObjectIdentifier, asn1js.Constructed];
      const inner = Buffer.from((value.valueBlock.value[0] as asn1js.BaseBlock).toBER());
      expect(`${typeId.valueBlock.toString()};${inner.toString('hex')}`).toBe(s.value);
    }
  }
  expect(p.issuer.typesAndValues.map((tv) => tv.type)).toEqual(['2.5.4.6', '2.5.4.10', '2.5.4.3']);
  expect(p.notBefore.value.getTime()).toBe(c.notBefore.getTime());
  expect(p.notAfter.value.getTime()).toBe(c.notAfter.getTime());
  // RFC 5280 §4.1.2.5: UTCTime (type 0) through 2049, GeneralizedTime (type 1) from 2050
  expect(p.notBefore.type).toBe(f.notBefore.getUTCFullYear() >= 2050 ? 1 : 0);
  expect(p.notAfter.type).toBe(f.notAfter.getUTCFullYear() >= 2050 ? 1 : 0);
  // documented extension order
  const order = [
    OID_EXT.basicConstraints,
    OID_EXT.keyUsage,
    ...(spec.extendedKeyUsage?.length ? [OID_EXT.extKeyUsage] : []),
    OID_EXT.subjectKeyIdentifier,
    OID_EXT.authorityKeyIdentifier,
    ...(sanExpected ? [OID_EXT.subjectAltName] : []),
    ...(spec.crlDistributionPoint ? [OID_EXT.crlDistributionPoints] : []),
    ...(spec.ocspUrl || spec.caIssuersUrl ? [OID_EXT.authorityInfoAccess] : []),
    ...(spec.certificatePolicies?.length ? [OID_EXT.certificatePolicies] : []),
    ...(spec.ocspNoCheck ? [OID_EXT.ocspNoCheck] : []),
  ];
  expect(p.extensions!.map((e) => e.extnID)).toEqual(order);
  expect(Buffer.from(p.toSchema(true).toBER())).toEqual(der);
  expect(Buffer.from(p.encodeTBS().toBER())).toEqual(tbs);

  // ---- openssl
  const dir = tmp();
  const file = writeTmp(dir, `leaf-${crypto.randomBytes(6).toString('hex')}.pem`, certPem(der));
  const text = opensslOk(['x509', '-in', file, '-noout', '-text']).toString();
  expect(text).toContain('Version: 3 (0x2)');
  expect(text).toMatch(/X509v3 Basic Constraints: critical/);
  expect(text).toMatch(/X509v3 Key Usage: critical/);
  if (sanExpected) expect(text).toMatch(emptySubject ? /Subject Alternative Name: critical/ : /Subject Alternative Name: \n/);
  // verify at a moment inside the validity (the post-2050 variants are not valid yet)
  const at = f.notBefore.getTime() > NOW.getTime() ? (f.notBefore.getTime() + f.notAfter.getTime()) / 2 : NOW.getTime() + 1000;
  const attime = Math.floor(at / 1000);
  const verify = openssl(['verify', '-x509_strict', '-attime', String(attime), '-CAfile', ca.pemFile, file]);
  expect(verify.stderr + verify.stdout.toString()).toContain(`${file}: OK`);
}

/** Offset of the subjectPublicKey BIT STRING content (after the unused-bits octet) in an SPKI. */
function spkiBitStringOffset(spki: Buffer): number {
  const kids = readChildren(spki, readWhole(spki));
  return kids[1]!.valueStart + 1;
}

beforeAll(() => {
  for (const [kt, alg] of ISSUERS) cas.set(kt, makeCa(kt, alg));
  for (const kt of SUBJECT_KEYS) subjectKeys.set(kt, generateTestKey(kt));
});

describe('CA certificate built by the same builder', () => {
  it.each(ISSUERS)('%s CA (%s) is self-signed, strict-valid and parses everywhere', async (kt) => {
    const ca = cas.get(kt)!;
    const verify = openssl(['verify', '-x509_strict', '-CAfile', ca.pemFile, ca.pemFile]);
    expect(verify.stdout.toString()).toContain(': OK');
    const c = new x509.X509Certificate(ca.der);
    expect(c.getExtension(x509.BasicConstraintsExtension)!.ca).toBe(true);
    expect(c.getExtension(x509.BasicConstraintsExtension)!.pathLength).toBe(0);
    expect(c.getExtension(x509.KeyUsagesExtension)!.usages).toBe(
      x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
    );
    expect(c.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId).toBe(ca.ski.toString('hex'));
    expect(c.getExtension(x509.AuthorityKeyIdentifierExtension)!.keyId).toBe(ca.ski.toString('hex'));
    expect(Buffer.from(pkijs.Certificate.fromBER(ca.der).toSchema(true).toBER())).toEqual(ca.der);
    // 45 years out: notAfter is GeneralizedTime
    expect(pkijs.Certificate.fromBER(ca.der).notAfter.type).toBe(1);
  });
});

describe('leaf certificates: issuer × subject key × SAN × dates × serial', () => {
  const cases: Array<[string, TestKeyType, TestKeyType, number, number, boolean]> = [];
  let i = 0;
  for (const [issuer] of ISSUERS) {
    for (const subject of SUBJECT_KEYS) {
      cases.push([`${issuer} issuer, ${subject} subject`, issuer, subject, i % SAN_VARIANTS.length, i % DATE_VARIANTS.length, i % 2 === 1]);
      i++;
    }
  }
  for (const [si] of SAN_VARIANTS.entries()) {
    cases.push([`P-256/P-256 with SAN variant ${si}`, 'P-256', 'P-256', si, si % DATE_VARIANTS.length, si % 2 === 0]);
  }

  it.each(cases)('%s', async (_n, issuerType, subjectType, sanIdx, dateIdx, highBitSerial) => {
    const ca = cas.get(issuerType)!;
    const subject = subjectKeys.get(subjectType)!;
    const [, san] = SAN_VARIANTS[sanIdx]!;
    const [, notBefore, notAfter] = DATE_VARIANTS[dateIdx]!;
    const serial = generateSerial(crypto.randomBytes);
    if (highBitSerial) serial[0] = 0x80 | serial[0]!; // DER needs a 0x00 pad: 18 content octets
    const t = compileCertTemplate(leafSpec(ca));
    const f: TbsFields = {
      serial,
      notBefore,
      notAfter,
      subjectDer: encodeName([o('Fleet Test'), cn(`device-${subjectType}`)]),
      spkiDer: subject.spkiDer,
      ...(san ? { san } : {}),
    };
    const tbs = buildTbsCertificate(t, f);
    const der = assembleCertificate(tbs, ca.alg, sign(ca.alg, tbs, ca.key.privateKey));
    await checkCertificate(ca, t, f, der, tbs);
  });

  it('empty subject: SAN is present and critical (RFC 5280 §4.2.1.6)', async () => {
    const ca = cas.get('P-256')!;
    const t = compileCertTemplate(leafSpec(ca));
    const f: TbsFields = {
      serial: generateSerial(crypto.randomBytes),
      notBefore: DATE_VARIANTS[0]![1],
      notAfter: DATE_VARIANTS[0]![2],
      subjectDer: encodeName([]),
      spkiDer: subjectKeys.get('P-256')!.spkiDer,
      san: [{ type: 'uri', value: 'urn:dev:mac:0024befffe804ff1' }],
    };
    const tbs = buildTbsCertificate(t, f);
    await checkCertificate(ca, t, f, assembleCertificate(tbs, ca.alg, sign(ca.alg, tbs, ca.key.privateKey)), tbs);
  });

  it('OCSP responder: OCSPSigning EKU and id-pkix-ocsp-nocheck with a NULL value, minimal extensions', async () => {
    const ca = cas.get('P-384')!;
    const t = compileCertTemplate({
      issuerNameDer: ca.nameDer,
      authorityKeyId: ca.ski,
      signatureAlgorithm: ca.alg,
      basicConstraints: { ca: false },
      keyUsage: ['digitalSignature'],
      extendedKeyUsage: ['OCSPSigning'],
      ocspNoCheck: true,
    });
    const f: TbsFields = {
      serial: generateSerial(crypto.randomBytes),
      notBefore: DATE_VARIANTS[0]![1],
      notAfter: new Date(NOW.getTime() + 7 * DAY),
      subjectDer: encodeName([o('Fleet Test'), cn('OCSP responder')]),
      spkiDer: subjectKeys.get('P-256')!.spkiDer,
      subjectKeyId: Buffer.from('0102030405060708', 'hex'),
    };
    const tbs = buildTbsCertificate(t, f);
    const der = assembleCertificate(tbs, ca.alg, sign(ca.alg, tbs, ca.key.privateKey));
    await checkCertificate(ca, t, f, der, tbs);
    const nocheck = pkijs.Certificate.fromBER(der).extensions!.find((e) => e.extnID === OID_EXT.ocspNoCheck)!;
    expect(nocheck.critical).toBe(false);
    expect(Buffer.from(nocheck.extnValue.valueBlock.valueHexView).toString('hex')).toBe('0500');
    expect(opensslOk(['x509', '-inform', 'DER', '-noout', '-text'], der).toString()).toContain('OCSP No Check');
  });

  it('intermediate CA template with pathLen 0 chains under the root', async () => {
    const root = cas.get('RSA-2048')!;
    const sub = subjectKeys.get('P-256')!;
    const t = compileCertTemplate({
      issuerNameDer: root.nameDer,
      authorityKeyId: root.ski,
      signatureAlgorithm: root.alg,
      basicConstraints: { ca: true, pathLen: 0 },
      keyUsage: ['keyCertSign', 'cRLSign'],
      crlDistributionPoint: 'http://pki.fleet.example.com/crl/root.crl',
    });
    const f: TbsFields = {
      serial: generateSerial(crypto.randomBytes),
      notBefore: DATE_VARIANTS[0]![1],
      notAfter: new Date(NOW.getTime() + 3650 * DAY),
      subjectDer: encodeName([o('Fleet Test'), cn('Device CA')]),
      spkiDer: sub.spkiDer,
    };
    const tbs = buildTbsCertificate(t, f);
    await checkCertificate(root, t, f, assembleCertificate(tbs, root.alg, sign(root.alg, tbs, root.key.privateKey)), tbs);
  });
});

describe('negative control', () => {
  it('badSignature/a certificate with one altered TBS octet fails in @peculiar/x509 and openssl', async () => {
    const ca = cas.get('P-256')!;
    const t = compileCertTemplate(leafSpec(ca));
    const tbs = buildTbsCertificate(t, {
      serial: generateSerial(crypto.randomBytes),
      notBefore: DATE_VARIANTS[0]![1],
      notAfter: DATE_VARIANTS[0]![2],
      subjectDer: encodeName([cn('tamper-me')]),
      spkiDer: subjectKeys.get('P-256')!.spkiDer,
    });
    const der = assembleCertificate(tbs, ca.alg, sign(ca.alg, tbs, ca.key.privateKey));
    const bad = Buffer.from(der);
    bad[bad.indexOf(Buffer.from('tamper-me'))] = 'T'.charCodeAt(0);
    expect(await new x509.X509Certificate(bad).verify({ publicKey: ca.x509, signatureOnly: true })).toBe(false);
    const file = writeTmp(tmp(), 'tampered.pem', certPem(bad));
    const r = openssl(['verify', '-x509_strict', '-CAfile', ca.pemFile, file]);
    expect(r.status).not.toBe(0);
    expect(r.stdout.toString() + r.stderr).toMatch(/signature failure/);
  });
});

describe('builder details', () => {
  it.each<[string, CertTemplateSpec['keyUsage'], string]>([
    ['digitalSignature', ['digitalSignature'], '03020780'],
    ['keyEncipherment', ['keyEncipherment'], '03020520'],
    ['keyCertSign + cRLSign', ['keyCertSign', 'cRLSign'], '03020106'],
    ['digitalSignature + keyAgreement', ['keyAgreement', 'digitalSignature'], '03020388'],
    ['decipherOnly needs a second octet', ['digitalSignature', 'decipherOnly'], '0303078080'],
    ['encipherOnly is the last bit of the first octet', ['encipherOnly'], '03020001'],
  ])('keyUsage %s → %s (X.690 §11.2.2 trailing zero bits removed)', (_n, ku, hex) => {
    expect(encodeKeyUsageValue(ku).toString('hex')).toBe(hex);
  });

  it('serial with the high bit set is padded with one 0x00 (positive INTEGER)', () => {
    const ca = cas.get('P-256')!;
    const t = compileCertTemplate(leafSpec(ca));
    const serial = Buffer.from('80' + 'ab'.repeat(16), 'hex');
    const tbs = buildTbsCertificate(t, { serial, notBefore: NOW, notAfter: NOW, subjectDer: encodeName([cn('x')]), spkiDer: ca.key.spkiDer });
    // TBS = 30 82 LL LL | a0 03 02 01 02 | 02 12 00 80 ab …
    expect(tbs.subarray(9, 9 + 20).toString('hex')).toBe('021200' + serial.toString('hex'));
  });

  it('the default SKI is SHA-1 of the subjectPublicKey bits (RFC 5280 §4.2.1.2 method 1), same as openssl’s hash', () => {
    const k = subjectKeys.get('RSA-2048')!;
    const pk = k.spkiDer.subarray(spkiBitStringOffset(k.spkiDer));
    expect(subjectKeyIdFromSpki(k.spkiDer)).toEqual(crypto.createHash('sha1').update(pk).digest());
  });

  it('the compiled spec is a frozen copy', () => {
    const ca = cas.get('P-256')!;
    const spec = leafSpec(ca);
    const t = compileCertTemplate(spec);
    spec.keyUsage.push('keyEncipherment');
    expect(t.spec.keyUsage).toEqual(['digitalSignature', 'keyAgreement']);
    expect(Object.isFrozen(t.spec)).toBe(true);
  });

  it('identical inputs give identical TBS bytes (deterministic)', () => {
    const ca = cas.get('P-256')!;
    const t = compileCertTemplate(leafSpec(ca));
    const f: TbsFields = { serial: Buffer.from('01'.repeat(17), 'hex'), notBefore: NOW, notAfter: NOW, subjectDer: encodeName([cn('x')]), spkiDer: ca.key.spkiDer, san: [{ type: 'dns', value: 'x.example' }] };
    expect(buildTbsCertificate(t, f)).toEqual(buildTbsCertificate(compileCertTemplate(leafSpec(ca)), f));
  });
});

describe('builder refusals', () => {
  let ca: Ca;
  let t: CertTemplate;
  let base: TbsFields;
  beforeAll(() => {
    ca = cas.get('P-256')!;
    t = compileCertTemplate(leafSpec(ca));
    base = { serial: generateSerial(crypto.randomBytes), notBefore: NOW, notAfter: new Date(NOW.getTime() + DAY), subjectDer: encodeName([cn('x')]), spkiDer: ca.key.spkiDer };
  });

  it.each<[string, Partial<TbsFields>, RegExp]>([
    ['zero serial', { serial: Buffer.from([0]) }, /positive/],
    ['serial with a leading zero octet', { serial: Buffer.from([0, 1]) }, /leading zero/],
    ['serial of 21 octets', { serial: Buffer.alloc(21, 1) }, /20 octets/],
    ['20-octet serial with the high bit (21 once padded)', { serial: Buffer.alloc(20, 0x80) }, /20 octets/],
    ['empty serial', { serial: Buffer.alloc(0) }, /empty/],
    ['notAfter before notBefore', { notAfter: new Date(NOW.getTime() - 1000) }, /before/],
    ['invalid date', { notBefore: new Date(NaN) }, /not a valid date/],
    ['empty subject without SAN', { subjectDer: encodeName([]) }, /empty subject/],
    ['subject that is not one Name', { subjectDer: Buffer.from('30003000', 'hex') }, /subject Name/],
    ['malformed SPKI', { spkiDer: Buffer.from('3003020100', 'hex') }, /SubjectPublicKeyInfo/],
    ['invalid SAN', { san: [{ type: 'dns', value: 'not a host' }] }, /hostname/],
  ])('badRequest/%s', (_n, patch, msg) => {
    const err = caError(() => buildTbsCertificate(t, { ...base, ...patch }));
    expect(err.kind).toBe('badRequest');
    expect(err.message).toMatch(msg);
  });

  it('a 20-octet serial without the high bit is accepted', () => {
    expect(buildTbsCertificate(t, { ...base, serial: Buffer.alloc(20, 0x7f) })[0]).toBe(0x30);
  });

  it.each<[string, Partial<CertTemplateSpec>, RegExp]>([
    ['keyCertSign without ca', { keyUsage: ['keyCertSign'] }, /requires basicConstraints ca/],
    ['pathLen without keyCertSign', { basicConstraints: { ca: true, pathLen: 1 }, keyUsage: ['cRLSign'] }, /requires keyUsage keyCertSign/],
    ['empty keyUsage', { keyUsage: [] }, /at least one bit/],
    ['unknown EKU', { extendedKeyUsage: ['clientAuthX'] }, /unknown extendedKeyUsage/],
    ['bad CDP URI', { crlDistributionPoint: 'not a uri' }, /CRL distribution point/],
    ['bad OCSP URL', { ocspUrl: 'ftp//x' }, /OCSP URL/],
    ['duplicate policy', { certificatePolicies: ['1.2.3', '1.2.3'] }, /duplicate/],
    ['policy that is not an OID', { certificatePolicies: ['anyPolicy'] }, /not a dotted OID/],
    ['empty AKI', { authorityKeyId: Buffer.alloc(0) }, /authorityKeyId/],
    ['empty issuer', { issuerNameDer: Buffer.from('3000', 'hex') }, /issuer Name must not be empty/],
    ['malformed issuer', { issuerNameDer: Buffer.from('3005', 'hex') }, /Name DER/],
  ])('badRequest/compile %s', (_n, patch, msg) => {
    const err = caError(() => compileCertTemplate({ ...leafSpec(ca), ...patch }));
    expect(err.kind).toBe('badRequest');
    expect(err.message).toMatch(msg);
  });

  it('badRequest/assembleCertificate with an algorithm other than the TBS’s', () => {
    const tbs = buildTbsCertificate(t, base);
    expect(caError(() => assembleCertificate(tbs, 'ecdsa-sha384', Buffer.alloc(64))).message).toMatch(/does not match/);
    expect(caError(() => assembleCertificate(Buffer.from('3000', 'hex'), 'ecdsa-sha256', Buffer.alloc(64))).message).toMatch(/malformed/);
  });

  it('a TypeError for an object that was not compiled', () => {
    expect(() => buildTbsCertificate({ spec: t.spec, signatureAlgorithm: 'ecdsa-sha256' }, base)).toThrow(TypeError);
  });
});
