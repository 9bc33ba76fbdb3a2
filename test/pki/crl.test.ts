import './reflect-polyfill.js';
import * as x509 from '@peculiar/x509';
import * as asn1js from 'asn1js';
import * as crypto from 'node:crypto';
import * as pkijs from 'pkijs';
import { beforeAll, describe, expect, it } from 'vitest';
import { nodeDigestFor, type SignatureAlgorithm } from '../../src/pki/algorithms.js';
import { assembleCertificate, buildTbsCertificate, compileCertTemplate, subjectKeyIdFromSpki } from '../../src/pki/cert-template.js';
import {
  REVOCATION_REASON_CODES,
  assembleCrl,
  buildTbsCertList,
  type CrlEntry,
  type RevocationReasonName,
  type TbsCertListParams,
} from '../../src/pki/crl.js';
import { encodeName } from '../../src/pki/names.js';
import { OID_EXT } from '../../src/pki/oids.js';
import { generateSerial } from '../../src/pki/serial.js';
import { certPem, generateTestKey, openssl, useTmpDir, writeTmp, type TestKey, type TestKeyType, caError } from './helpers.js';

x509.cryptoProvider.set(crypto.webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const tmp = useTmpDir();
const DAY = 86_400_000;
const NOW = new Date(Math.floor(Date.now() / 1000) * 1000);

interface Ca {
  key: TestKey;
  alg: SignatureAlgorithm;
  nameDer: Buffer;
  ski: Buffer;
  der: Buffer;
  pemFile: string;
}

function makeCa(kt: TestKeyType, alg: SignatureAlgorithm): Ca {
  const key = generateTestKey(kt);
  const nameDer = encodeName([{ type: 'O', oid: '', value: 'Fleet Test' }, { type: 'CN', oid: '', value: `CRL CA ${kt}` }]);
  const ski = subjectKeyIdFromSpki(key.spkiDer);
  const t = compileCertTemplate({
    issuerNameDer: nameDer,
    authorityKeyId: ski,
    signatureAlgorithm: alg,
    basicConstraints: { ca: true },
    keyUsage: ['keyCertSign', 'cRLSign'],
  });
  const tbs = buildTbsCertificate(t, {
    serial: generateSerial(crypto.randomBytes),
    notBefore: new Date(NOW.getTime() - DAY),
    notAfter: new Date(NOW.getTime() + 3650 * DAY),
    subjectDer: nameDer,
    spkiDer: key.spkiDer,
  });
  const der = assembleCertificate(tbs, alg, crypto.sign(nodeDigestFor(alg), tbs, key.privateKey));
  return { key, alg, nameDer, ski, der, pemFile: writeTmp(tmp(), `crl-ca-${kt}.pem`, certPem(der)) };
}

function signCrl(ca: Ca, p: Omit<TbsCertListParams, 'issuerNameDer' | 'authorityKeyId' | 'signatureAlgorithm'>): { tbs: Buffer; der: Buffer } {
  const tbs = buildTbsCertList({ issuerNameDer: ca.nameDer, authorityKeyId: ca.ski, signatureAlgorithm: ca.alg, ...p });
  return { tbs, der: assembleCrl(tbs, ca.alg, crypto.sign(nodeDigestFor(ca.alg), tbs, ca.key.privateKey)) };
}

/** openssl parses and verifies the CRL against the CA; returns its text dump. */
function opensslCrl(ca: Ca, der: Buffer): string {
  const file = writeTmp(tmp(), `c-${crypto.randomBytes(6).toString('hex')}.crl`, der);
  const r = openssl(['crl', '-inform', 'DER', '-in', file, '-noout', '-text', '-CAfile', ca.pemFile]);
  expect(r.status).toBe(0);
  expect(r.stderr).toContain('verify OK');
  return r.stdout.toString();
}

const serialOf = (hex: string) => Buffer.from(hex, 'hex');

const cas = new Map<TestKeyType, Ca>();
beforeAll(() => {
  cas.set('P-256', makeCa('P-256', 'ecdsa-sha256'));
  cas.set('RSA-2048', makeCa('RSA-2048', 'rsa-sha256'));
  cas.set('Ed25519', makeCa('Ed25519', 'ed25519'));
});

describe('buildTbsCertList + assembleCrl', () => {
  const reasons = Object.keys(REVOCATION_REASON_CODES).filter((r) => r !== 'removeFromCRL') as RevocationReasonName[];
  const entries: CrlEntry[] = reasons.map((reason, i) => ({
    serial: generateSerial(crypto.randomBytes),
    revocationDate: new Date(NOW.getTime() - (i + 1) * 3_600_000),
    reason,
  }));
  entries.push({ serial: serialOf('80' + 'cd'.repeat(16)), revocationDate: new Date(NOW.getTime() - DAY) }); // high bit, no reason
  entries.push({
    serial: serialOf('0102'),
    revocationDate: new Date(NOW.getTime() - 2 * DAY),
    reason: 'keyCompromise',
    invalidityDate: new Date(NOW.getTime() - 10 * DAY),
  });

  it.each<[TestKeyType]>([['P-256'], ['RSA-2048'], ['Ed25519']])('full CRL signed by a %s CA verifies in openssl, pkijs and @peculiar/x509', async (kt) => {
    const ca = cas.get(kt)!;
    const { tbs, der } = signCrl(ca, {
      thisUpdate: NOW,
      nextUpdate: new Date(NOW.getTime() + 7 * DAY),
      crlNumber: 42n,
      entries,
      freshestCrlUrl: 'http://pki.fleet.example.com/crl/delta.crl',
    });

    const text = opensslCrl(ca, der);
    expect(text).toContain('Version 2 (0x1)');
    expect(text).toMatch(/X509v3 CRL Number: \n\s+42/);
    expect(text).toContain('Freshest CRL');
    expect(text).toContain('Key Compromise');
    expect(text).toContain('Certificate Hold');
    expect(text).toContain('Invalidity Date');

    const p = pkijs.CertificateRevocationList.fromBER(der);
    expect(p.version).toBe(1);
    expect(Buffer.from(p.toSchema(true).toBER())).toEqual(der);
    expect(Buffer.from((p.toSchema(true) as asn1js.Sequence).valueBlock.value[0]!.toBER())).toEqual(tbs);
    const revoked = p.revokedCertificates!;
    expect(revoked).toHaveLength(entries.length);
    for (const [i, e] of entries.entries()) {
      const r = revoked[i]!;
      expect(Buffer.from(r.userCertificate.valueBlock.valueHexView).toString('hex').replace(/^00/, '')).toBe(e.serial.toString('hex'));
      expect(r.revocationDate.value.getTime()).toBe(Math.floor(e.revocationDate.getTime() / 1000) * 1000);
      const reasonExt = r.crlEntryExtensions?.extensions.find((x) => x.extnID === OID_EXT.reasonCode);
      if (e.reason === undefined || e.reason === 'unspecified') {
        expect(reasonExt).toBeUndefined(); // RFC 5280 §5.3.1: omit rather than unspecified
      } else {
        const v = asn1js.fromBER(reasonExt!.extnValue.valueBlock.valueHexView).result as asn1js.Enumerated;
        expect(v.idBlock.tagNumber).toBe(10); // ENUMERATED
        expect(v.valueBlock.valueDec).toBe(REVOCATION_REASON_CODES[e.reason]);
      }
      const inv = r.crlEntryExtensions?.extensions.find((x) => x.extnID === OID_EXT.invalidityDate);
      if (e.invalidityDate) {
        const g = asn1js.fromBER(inv!.extnValue.valueBlock.valueHexView).result as asn1js.GeneralizedTime;
        expect(g.idBlock.tagNumber).toBe(24); // always GeneralizedTime (RFC 5280 §5.3.2)
        expect(g.toDate().getTime()).toBe(Math.floor(e.invalidityDate.getTime() / 1000) * 1000);
      } else {
        expect(inv).toBeUndefined();
      }
    }
    const crlExts = p.crlExtensions!.extensions;
    expect(crlExts.map((e) => e.extnID)).toEqual([OID_EXT.authorityKeyIdentifier, OID_EXT.crlNumber, OID_EXT.freshestCrl]);
    const num = asn1js.fromBER(crlExts[1]!.extnValue.valueBlock.valueHexView).result as asn1js.Integer;
    expect(num.valueBlock.valueDec).toBe(42);

    const xc = new x509.X509Crl(der);
    expect(Buffer.from(xc.issuerName.toArrayBuffer())).toEqual(ca.nameDer);
    expect(xc.entries).toHaveLength(entries.length);
    expect(await xc.verify({ publicKey: new x509.X509Certificate(ca.der) })).toBe(true);
  });

  it('an empty CRL omits revokedCertificates (RFC 5280 §5.1.2.6) and still verifies', () => {
    const ca = cas.get('P-256')!;
    const { der } = signCrl(ca, { thisUpdate: NOW, nextUpdate: new Date(NOW.getTime() + DAY), crlNumber: 1n, entries: [] });
    expect(opensslCrl(ca, der)).toContain('No Revoked Certificates');
    const p = pkijs.CertificateRevocationList.fromBER(der);
    expect(p.revokedCertificates).toBeUndefined();
    expect(Buffer.from(p.toSchema(true).toBER())).toEqual(der);
  });

  it('a delta CRL carries a critical deltaCRLIndicator and may list removeFromCRL', () => {
    const ca = cas.get('P-256')!;
    const { der } = signCrl(ca, {
      thisUpdate: NOW,
      nextUpdate: new Date(NOW.getTime() + DAY),
      crlNumber: 43n,
      deltaCrlIndicator: 42n,
      entries: [{ serial: serialOf('01aa'), revocationDate: NOW, reason: 'removeFromCRL' }],
    });
    const text = opensslCrl(ca, der);
    expect(text).toMatch(/X509v3 Delta CRL Indicator: critical\n\s+42/);
    expect(text).toContain('Remove From CRL');
    const p = pkijs.CertificateRevocationList.fromBER(der);
    const delta = p.crlExtensions!.extensions.find((e) => e.extnID === OID_EXT.deltaCrlIndicator)!;
    expect(delta.critical).toBe(true);
  });

  it('a partitioned CRL carries a critical issuingDistributionPoint', () => {
    const ca = cas.get('RSA-2048')!;
    const url = 'http://pki.fleet.example.com/crl/device-ca-7.crl';
    const { der } = signCrl(ca, {
      thisUpdate: NOW,
      nextUpdate: new Date(NOW.getTime() + DAY),
      crlNumber: 7n,
      entries: [],
      issuingDistributionPoint: { url, onlyContainsUserCerts: true },
    });
    const text = opensslCrl(ca, der);
    expect(text).toMatch(/Issuing Distribution Point: critical/);
    expect(text).toContain(`URI:${url}`);
    expect(text).toContain('Only User Certificates');
  });

  it('dates from 2050 on are GeneralizedTime, through 2049 UTCTime (RFC 5280 §5.1.2.4)', () => {
    const ca = cas.get('P-256')!;
    const { der } = signCrl(ca, {
      thisUpdate: new Date('2049-12-31T00:00:00Z'),
      nextUpdate: new Date('2050-01-02T00:00:00Z'),
      crlNumber: 2n ** 158n,
      entries: [{ serial: serialOf('05'), revocationDate: new Date('2050-01-01T00:00:00Z') }],
    });
    const p = pkijs.CertificateRevocationList.fromBER(der);
    expect(p.thisUpdate.type).toBe(0);
    expect(p.nextUpdate!.type).toBe(1);
    expect(p.revokedCertificates![0]!.revocationDate.type).toBe(1);
    expect(Buffer.from(p.toSchema(true).toBER())).toEqual(der);
  });

  it('badSignature/a tampered CRL does not verify in openssl', () => {
    const ca = cas.get('P-256')!;
    const { der } = signCrl(ca, { thisUpdate: NOW, nextUpdate: new Date(NOW.getTime() + DAY), crlNumber: 5n, entries: [] });
    const bad = Buffer.from(der);
    bad[bad.indexOf(Buffer.from('CRL CA'))]! ^= 0x20;
    const file = writeTmp(tmp(), 'bad.crl', bad);
    const r = openssl(['crl', '-inform', 'DER', '-in', file, '-noout', '-CAfile', ca.pemFile]);
    expect(r.stderr).not.toContain('verify OK');
  });
});

describe('CRL refusals', () => {
  let ca: Ca;
  let base: TbsCertListParams;
  beforeAll(() => {
    ca = cas.get('P-256')!;
    base = {
      issuerNameDer: ca.nameDer,
      authorityKeyId: ca.ski,
      signatureAlgorithm: ca.alg,
      thisUpdate: NOW,
      nextUpdate: new Date(NOW.getTime() + DAY),
      crlNumber: 10n,
      entries: [],
    };
  });

  it.each<[string, Partial<TbsCertListParams>, RegExp]>([
    ['duplicate serial', { entries: [{ serial: serialOf('01'), revocationDate: NOW }, { serial: serialOf('01'), revocationDate: NOW }] }, /listed twice/],
    ['removeFromCRL in a full CRL', { entries: [{ serial: serialOf('01'), revocationDate: NOW, reason: 'removeFromCRL' }] }, /delta CRL/],
    ['unknown reason', { entries: [{ serial: serialOf('01'), revocationDate: NOW, reason: 'stolen' as RevocationReasonName }] }, /unknown revocation reason/],
    ['serial with a leading zero', { entries: [{ serial: serialOf('0001'), revocationDate: NOW }] }, /positive and minimal/],
    ['nextUpdate before thisUpdate', { nextUpdate: new Date(NOW.getTime() - 1000) }, /before thisUpdate/],
    ['negative CRL number', { crlNumber: -1n }, /0 … 2\^159/],
    ['CRL number of 2^159', { crlNumber: 2n ** 159n }, /0 … 2\^159/],
    ['delta base not below the CRL number', { deltaCrlIndicator: 10n }, /below/],
    ['freshestCRL in a delta CRL', { deltaCrlIndicator: 9n, freshestCrlUrl: 'http://x.example/d.crl' }, /must not carry freshestCRL/],
    ['empty issuer', { issuerNameDer: Buffer.from('3000', 'hex') }, /must not be empty/],
    ['invalid revocation date', { entries: [{ serial: serialOf('01'), revocationDate: new Date(NaN) }] }, /not a valid date/],
    ['IDP with both only-flags', { issuingDistributionPoint: { url: 'http://x.example/a.crl', onlyContainsUserCerts: true, onlyContainsCACerts: true } }, /both/],
  ])('badRequest/%s', (_n, patch, msg) => {
    const err = caError(() => buildTbsCertList({ ...base, ...patch }));
    expect(err.kind).toBe('badRequest');
    expect(err.message).toMatch(msg);
  });

  it('badRequest/assembleCrl with another algorithm than the TBS’s', () => {
    const tbs = buildTbsCertList(base);
    expect(caError(() => assembleCrl(tbs, 'rsa-sha256', Buffer.alloc(10))).message).toMatch(/does not match/);
  });
});
