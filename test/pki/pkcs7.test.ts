/**
 * Certs-only CMS SignedData (src/pki/pkcs7.ts), checked against openssl and pkijs with real
 * certificates made by openssl.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import * as pkijs from 'pkijs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  encodeExplicit,
  encodeInteger,
  encodeOctetString,
  encodeOid,
  encodeSequence,
  encodeTlv,
} from '../../src/pki/der.js';
import { OID_CMS } from '../../src/pki/oids.js';
import { decodeCertsOnly, encodeCertsOnly } from '../../src/pki/pkcs7.js';
import { caError, useTmpDir, writeTmp } from './helpers.js';

const tmp = useTmpDir('fleetca-pkcs7-');

function run(cmd: string, args: string[], input?: Buffer): Buffer {
  return execFileSync(cmd, args, { input, stdio: ['pipe', 'pipe', 'pipe'], maxBuffer: 16 * 1024 * 1024 });
}

interface TestCert {
  subject: string;
  pemFile: string;
  keyFile: string;
  der: Buffer;
}

/** A self-signed EC P-256 certificate made by openssl. */
function makeCert(name: string, cn: string): TestCert {
  const dir = tmp();
  const pemFile = path.join(dir, `${name}.pem`);
  const keyFile = path.join(dir, `${name}.key`);
  run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', keyFile, '-out', pemFile, '-subj', `/O=Fleet Test/CN=${cn}`, '-days', '30',
  ]);
  const der = run('openssl', ['x509', '-in', pemFile, '-outform', 'DER']);
  return { subject: cn, pemFile, keyFile, der };
}

const EMPTY_SET = Buffer.from([0x31, 0]);

/** A hand-built SignedData ContentInfo from its fields (for the rejection cases). */
function signedDataWith(fields: Buffer[]): Buffer {
  return encodeSequence(encodeOid(OID_CMS.signedData), encodeExplicit(0, encodeSequence(...fields)));
}

let leaf: TestCert;
let root: TestCert;
/** The two certificates in an order that DER SET OF sorting would reverse. */
let unsorted: Buffer[];

beforeAll(() => {
  leaf = makeCert('leaf', 'Fleet Leaf Device');
  root = makeCert('root', 'Fleet Root CA');
  unsorted = Buffer.compare(leaf.der, root.der) > 0 ? [leaf.der, root.der] : [root.der, leaf.der];
});

describe('encodeCertsOnly', () => {
  it('certs-only with two certificates prints both subjects in order with openssl pkcs7 -print_certs', () => {
    for (const [first, second] of [[leaf, root], [root, leaf]] as const) {
      const out = run('openssl', ['pkcs7', '-inform', 'DER', '-print_certs', '-noout'], encodeCertsOnly([first.der, second.der])).toString();
      const a = out.indexOf(`subject=O = Fleet Test, CN = ${first.subject}`);
      const b = out.indexOf(`subject=O = Fleet Test, CN = ${second.subject}`);
      expect(a).toBeGreaterThanOrEqual(0);
      expect(b).toBeGreaterThan(a);
    }
  });

  it('certs-only with two certificates re-parses with pkijs to the same certificates in order', () => {
    const der = encodeCertsOnly([leaf.der, root.der]);
    const ci = pkijs.ContentInfo.fromBER(der);
    expect(ci.contentType).toBe(OID_CMS.signedData);
    const sd = new pkijs.SignedData({ schema: ci.content });
    expect(sd.version).toBe(1);
    expect(sd.digestAlgorithms).toHaveLength(0);
    expect(sd.signerInfos).toHaveLength(0);
    expect(sd.crls ?? []).toHaveLength(0);
    expect(sd.encapContentInfo.eContentType).toBe(OID_CMS.data);
    expect(sd.encapContentInfo.eContent).toBeUndefined();
    const certs = (sd.certificates ?? []).map((c) => {
      expect(c).toBeInstanceOf(pkijs.Certificate);
      return Buffer.from((c as pkijs.Certificate).toSchema().toBER());
    });
    expect(certs).toEqual([leaf.der, root.der]);
  });

  it('keeps the given certificate order where DER SET OF sorting would swap it', () => {
    const back = decodeCertsOnly(encodeCertsOnly(unsorted));
    expect(back).toEqual(unsorted);
    expect(Buffer.compare(back[0]!, back[1]!)).toBeGreaterThan(0);
  });

  it('writes the same bytes as openssl crl2pkcs7 -nocrl for the same certificates', () => {
    const ours = encodeCertsOnly([leaf.der, root.der]);
    const theirs = run('openssl', ['crl2pkcs7', '-nocrl', '-certfile', leaf.pemFile, '-certfile', root.pemFile, '-outform', 'DER']);
    expect(ours.toString('hex')).toBe(theirs.toString('hex'));
  });

  it('refuses an empty list and an entry that is not one DER certificate, with badRequest', () => {
    expect(caError(() => encodeCertsOnly([])).kind).toBe('badRequest');
    expect(caError(() => encodeCertsOnly([leaf.der, leaf.der.subarray(0, 50)])).message).toMatch(/certificate 1 DER is truncated/);
    expect(caError(() => encodeCertsOnly([Buffer.concat([leaf.der, Buffer.from([0])])])).message).toMatch(/trailing data/);
    expect(caError(() => encodeCertsOnly([encodeInteger(5)])).kind).toBe('badRequest');
  });
});

describe('decodeCertsOnly', () => {
  it('round-trips one and two certificates', () => {
    expect(decodeCertsOnly(encodeCertsOnly([leaf.der]))).toEqual([leaf.der]);
    expect(decodeCertsOnly(encodeCertsOnly([leaf.der, root.der]))).toEqual([leaf.der, root.der]);
  });

  it('returns copies that do not alias the input buffer', () => {
    const der = encodeCertsOnly([leaf.der]);
    const [cert] = decodeCertsOnly(der);
    der.fill(0);
    expect(cert).toEqual(leaf.der);
  });

  it('reads an openssl crl2pkcs7 -nocrl message in its certificate order', () => {
    const p7 = run('openssl', ['crl2pkcs7', '-nocrl', '-certfile', root.pemFile, '-certfile', leaf.pemFile, '-outform', 'DER']);
    expect(decodeCertsOnly(p7)).toEqual([root.der, leaf.der]);
  });

  it('rejects truncated DER with badRequest', () => {
    const der = encodeCertsOnly([leaf.der, root.der]);
    for (const cut of [1, 10, der.length - 1]) {
      const err = caError(() => decodeCertsOnly(der.subarray(0, cut)));
      expect(err.kind).toBe('badRequest');
      expect(err.message).toMatch(/truncated/);
    }
    expect(caError(() => decodeCertsOnly(Buffer.alloc(0))).kind).toBe('badRequest');
  });

  it('rejects a ContentInfo that is not SignedData', () => {
    const data = encodeSequence(encodeOid(OID_CMS.data), encodeExplicit(0, encodeOctetString(Buffer.from('hello'))));
    const err = caError(() => decodeCertsOnly(data));
    expect(err.kind).toBe('badRequest');
    expect(err.message).toMatch(/not id-signedData/);
    const enveloped = encodeSequence(encodeOid(OID_CMS.envelopedData), encodeExplicit(0, encodeSequence(encodeInteger(0))));
    expect(caError(() => decodeCertsOnly(enveloped)).message).toMatch(/not id-signedData/);
  });

  it('rejects trailing bytes after the ContentInfo', () => {
    const der = Buffer.concat([encodeCertsOnly([leaf.der]), Buffer.from([0x00])]);
    const err = caError(() => decodeCertsOnly(der));
    expect(err.kind).toBe('badRequest');
    expect(err.message).toMatch(/trailing data/);
  });

  it('rejects a SignedData with a signer (openssl cms -sign output)', () => {
    const dir = tmp();
    const content = writeTmp(dir, 'content.txt', 'signed content\n');
    const out = path.join(dir, 'signed.p7');
    run('openssl', ['cms', '-sign', '-in', content, '-signer', leaf.pemFile, '-inkey', leaf.keyFile, '-outform', 'DER', '-out', out, '-nodetach']);
    const err = caError(() => decodeCertsOnly(readFileSync(out)));
    expect(err.kind).toBe('badRequest');
    expect(err.message).toMatch(/must be empty|must have no content/);
  });

  it('rejects certs-only variants with CRLs, signers, content, no certificates or a wrong version', () => {
    const encap = encodeSequence(encodeOid(OID_CMS.data));
    const certs = encodeTlv(0xa0, leaf.der);
    const ok = [encodeInteger(1), EMPTY_SET, encap, certs, EMPTY_SET];
    expect(decodeCertsOnly(signedDataWith(ok))).toEqual([leaf.der]);

    const cases: Array<[string, Buffer[], RegExp]> = [
      ['version 3', [encodeInteger(3), EMPTY_SET, encap, certs, EMPTY_SET], /version/],
      ['a CRL', [encodeInteger(1), EMPTY_SET, encap, certs, encodeTlv(0xa1, encodeSequence()), EMPTY_SET], /CRLs/],
      ['a signer', [encodeInteger(1), EMPTY_SET, encap, certs, encodeTlv(0x31, encodeSequence(encodeInteger(1)))], /signerInfos/],
      ['a digest algorithm', [encodeInteger(1), encodeTlv(0x31, encodeSequence(encodeOid('2.16.840.1.101.3.4.2.1'))), encap, certs, EMPTY_SET], /digestAlgorithms/],
      ['content', [encodeInteger(1), EMPTY_SET, encodeSequence(encodeOid(OID_CMS.data), encodeExplicit(0, encodeOctetString(Buffer.from('x')))), certs, EMPTY_SET], /no content/],
      ['no certificates', [encodeInteger(1), EMPTY_SET, encap, EMPTY_SET], /no certificates/],
      ['an empty certificate set', [encodeInteger(1), EMPTY_SET, encap, encodeTlv(0xa0), EMPTY_SET], /no certificates/],
      ['an attribute certificate', [encodeInteger(1), EMPTY_SET, encap, encodeTlv(0xa0, encodeTlv(0xa1, encodeSequence())), EMPTY_SET], /certificate 0 SEQUENCE/],
      ['an extra field', [...ok, EMPTY_SET], /extra fields/],
    ];
    for (const [name, fields, msg] of cases) {
      const err = caError(() => decodeCertsOnly(signedDataWith(fields)));
      expect(err.kind, name).toBe('badRequest');
      expect(err.message, name).toMatch(msg);
    }
  });
});
