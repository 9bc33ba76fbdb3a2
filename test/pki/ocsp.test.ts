import './reflect-polyfill.js';
import { AsnConvert } from '@peculiar/asn1-schema';
import { OCSPRequest } from '@peculiar/asn1-ocsp';
import * as crypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { CaError } from '../../src/core/errors.js';
import { nodeDigestFor, type SignatureAlgorithm } from '../../src/pki/algorithms.js';
import { certificateParts } from '../../src/pki/cert-parts.js';
import { encodeOctetString, encodeSequence, encodeTlv } from '../../src/pki/der.js';
import {
  MAX_OCSP_CERT_IDS,
  OcspRequestError,
  assembleOcspResponse,
  decodeOcspRequest,
  decodeOcspResponse,
  encodeOcspError,
  encodeResponseData,
  issuerHashes,
  keyHashOfSpki,
  type OcspCertStatus,
  type OcspErrorStatus,
  type OcspRequestInfo,
  type OcspSingle,
} from '../../src/pki/ocsp.js';
import { OID_HASH, OID_OCSP, OID_SIG } from '../../src/pki/oids.js';
import { pemDecodeAll } from '../../src/pki/pem.js';
import { caError, openssl, opensslOk, useTmpDir, writeTmp } from './helpers.js';

const tmp = useTmpDir('fleetca-ocsp-');
const HOUR = 3_600_000;

interface Pki {
  dir: string;
  ca: { pem: string; key: crypto.KeyObject; subjectDer: Buffer; spkiDer: Buffer; der: Buffer };
  ecResponder: { der: Buffer; key: crypto.KeyObject; spkiDer: Buffer };
  rsaResponder: { der: Buffer; key: crypto.KeyObject; spkiDer: Buffer };
  leaf1: { pem: string; serialHex: string };
  leaf2: { pem: string; serialHex: string };
}

let pki: Pki;

function file(name: string): string {
  return path.join(pki.dir, name);
}

function pemToDer(p: string): Buffer {
  return pemDecodeAll(readFileSync(p, 'utf8'))[0]!.der;
}

/** Throwaway CA built with the openssl CLI: P-256 root, EC and RSA delegated responders, two leaves. */
function makePki(dir: string): Pki {
  const f = (n: string) => path.join(dir, n);
  opensslOk(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.pem'),
    '-subj', '/O=Fleet Test/CN=OCSP Test Root', '-days', '30',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  writeTmp(dir, 'rsp.ext', 'extendedKeyUsage=OCSPSigning\nkeyUsage=critical,digitalSignature\n');
  writeTmp(dir, 'leaf.ext', 'extendedKeyUsage=clientAuth\n');
  const issue = (name: string, newkey: string[], serial: string, ext: string) => {
    opensslOk(['req', '-new', '-newkey', ...newkey, '-nodes', '-keyout', f(`${name}.key`), '-subj', `/CN=${name}`, '-out', f(`${name}.csr`)]);
    opensslOk(['x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-set_serial', serial, '-days', '10',
      '-extfile', f(ext), '-out', f(`${name}.pem`)]);
  };
  issue('rsp-ec', ['ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], '0x77', 'rsp.ext');
  issue('rsp-rsa', ['rsa:2048'], '0x78', 'rsp.ext');
  issue('leaf1', ['ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], '0x1234567890abcdef', 'leaf.ext');
  issue('leaf2', ['ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], '0x7f0102030405060708090a0b0c0d0e0f10', 'leaf.ext');
  const key = (n: string) => crypto.createPrivateKey(readFileSync(f(n)));
  const caDer = pemToDer(f('ca.pem'));
  const caParts = certificateParts(caDer);
  const responder = (n: string) => {
    const der = pemToDer(f(`${n}.pem`));
    return { der, key: key(`${n}.key`), spkiDer: certificateParts(der).spkiDer };
  };
  return {
    dir,
    ca: { pem: f('ca.pem'), key: key('ca.key'), subjectDer: caParts.subjectDer, spkiDer: caParts.spkiDer, der: caDer },
    ecResponder: responder('rsp-ec'),
    rsaResponder: responder('rsp-rsa'),
    leaf1: { pem: f('leaf1.pem'), serialHex: '1234567890abcdef' },
    leaf2: { pem: f('leaf2.pem'), serialHex: '7f0102030405060708090a0b0c0d0e0f10' },
  };
}

/** `openssl ocsp -reqout` with `args`; returns the DER request. */
function opensslRequest(name: string, args: string[]): Buffer {
  const out = file(`${name}.req.der`);
  opensslOk(['ocsp', '-issuer', pki.ca.pem, ...args, '-reqout', out]);
  return readFileSync(out);
}

/** `openssl ocsp -reqin … -req_text` */
function reqText(req: Buffer): string {
  return opensslOk(['ocsp', '-reqin', writeTmp(pki.dir, 'text.req.der', req), '-req_text']).toString('utf8');
}

interface Responder {
  der: Buffer;
  key: crypto.KeyObject;
  spkiDer: Buffer;
}

/** Answers `info` with `statuses` (one per CertID), signed by `responder`. */
function respond(
  info: OcspRequestInfo,
  statuses: OcspCertStatus[],
  opts: { responder?: Responder; alg?: SignatureAlgorithm; certs?: Buffer[]; nonce?: Buffer | null; producedAt?: Date } = {},
): { der: Buffer; tbs: Buffer; singles: OcspSingle[] } {
  const responder = opts.responder ?? pki.ecResponder;
  const alg = opts.alg ?? 'ecdsa-sha256';
  const now = opts.producedAt ?? new Date();
  const singles = info.certIds.map((id, i) => ({
    certIdDer: id.der,
    status: statuses[i]!,
    thisUpdate: new Date(now.getTime() - HOUR),
    nextUpdate: new Date(now.getTime() + 24 * HOUR),
  }));
  const tbs = encodeResponseData({
    responderKeyHash: keyHashOfSpki(responder.spkiDer),
    producedAt: now,
    responses: singles,
    nonce: opts.nonce === undefined ? info.nonce : opts.nonce,
  });
  const sig = crypto.sign(nodeDigestFor(alg), tbs, responder.key);
  return { der: assembleOcspResponse(tbs, alg, sig, opts.certs ?? [responder.der]), tbs, singles };
}

/** `openssl ocsp -respin` with `args`; stdout + stderr and the exit status. */
function checkResponse(resp: Buffer, args: string[]): { out: string; status: number | null } {
  const r = openssl(['ocsp', '-respin', writeTmp(pki.dir, 'resp.der', resp), ...args]);
  return { out: r.stdout.toString('utf8') + r.stderr, status: r.status };
}

/** Asserts that `fn` throws an OcspRequestError (a badRequest CaError) and nothing else. */
function requestError(fn: () => unknown): OcspRequestError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(OcspRequestError);
    expect((e as CaError).kind).toBe('badRequest');
    return e as OcspRequestError;
  }
  throw new Error('expected an OcspRequestError');
}

beforeAll(() => {
  pki = makePki(tmp());
});

describe('keyHashOfSpki / issuerHashes', () => {
  it('sha1 key hash equals the SKI openssl computed (method 1 of RFC 5280 §4.2.1.2)', () => {
    const ext = opensslOk(['x509', '-in', pki.ca.pem, '-noout', '-ext', 'subjectKeyIdentifier']).toString('utf8');
    const ski = /\n\s*([0-9A-F:]+)\s*$/.exec(ext)![1]!.replace(/:/g, '').toLowerCase();
    expect(keyHashOfSpki(pki.ca.spkiDer).toString('hex')).toBe(ski);
    expect(issuerHashes(pki.ca.subjectDer, pki.ca.spkiDer).sha1.keyHash.toString('hex')).toBe(ski);
  });

  it('name hashes are digests of the subject DER in each hash, with the right lengths', () => {
    const h = issuerHashes(pki.ca.subjectDer, pki.ca.spkiDer);
    for (const [alg, len] of [['sha1', 20], ['sha256', 32], ['sha384', 48], ['sha512', 64]] as const) {
      expect(h[alg].nameHash).toEqual(crypto.createHash(alg).update(pki.ca.subjectDer).digest());
      expect(h[alg].keyHash.length).toBe(len);
      expect(keyHashOfSpki(pki.ca.spkiDer, alg)).toEqual(h[alg].keyHash);
    }
  });

  it('400/malformed SPKI and unknown hash', () => {
    expect(caError(() => keyHashOfSpki(Buffer.from([0x30, 0x00]))).kind).toBe('badRequest');
    expect(caError(() => keyHashOfSpki(Buffer.from('nope')))).toBeInstanceOf(CaError);
    expect(caError(() => keyHashOfSpki(pki.ca.spkiDer, 'md5' as never)).kind).toBe('badRequest');
  });
});

describe('decodeOcspRequest: requests made by openssl ocsp', () => {
  it('two certs, SHA-1 CertIDs, nonce: hashes, serials, nonce and CertID bytes', () => {
    const req = opensslRequest('two', ['-cert', pki.leaf1.pem, '-cert', pki.leaf2.pem]);
    const info = decodeOcspRequest(req);
    const h = issuerHashes(pki.ca.subjectDer, pki.ca.spkiDer);
    expect(info.signed).toBe(false);
    expect(info.certIds.map((c) => c.serialHex)).toEqual([pki.leaf1.serialHex, pki.leaf2.serialHex]);
    let from = 0;
    for (const c of info.certIds) {
      expect(c.hash).toBe('sha1');
      expect(c.hashOid).toBe(OID_HASH.sha1);
      expect(c.issuerNameHash).toEqual(h.sha1.nameHash);
      expect(c.issuerKeyHash).toEqual(h.sha1.keyHash);
      expect(c.serial.toString('hex')).toBe(c.serialHex);
      // the exact CertID bytes, in order, inside the request
      const at = req.indexOf(c.der, from);
      expect(at).toBeGreaterThan(0);
      expect(req.subarray(at, at + c.der.length)).toEqual(c.der);
      expect(c.der[0]).toBe(0x30);
      from = at + c.der.length;
    }
    // what openssl itself reads from the request
    const text = reqText(req);
    expect(text).toContain(`Issuer Name Hash: ${h.sha1.nameHash.toString('hex').toUpperCase()}`);
    expect(text).toContain(`Issuer Key Hash: ${h.sha1.keyHash.toString('hex').toUpperCase()}`);
    const nonceHex = /OCSP Nonce:\s*\n\s*([0-9A-F]+)/.exec(text)![1]!;
    expect(info.nonce).not.toBeNull();
    expect(info.nonce!.toString('hex').toUpperCase()).toBe(nonceHex);
    // openssl's nonce is an OCTET STRING of 16 random octets inside extnValue (RFC 6960 §4.4.1)
    expect(info.nonce!.subarray(0, 2)).toEqual(Buffer.from([0x04, 0x10]));
  });

  it('agrees with @peculiar/asn1-ocsp on the same request', () => {
    const req = opensslRequest('oracle', ['-cert', pki.leaf1.pem, '-cert', pki.leaf2.pem]);
    const info = decodeOcspRequest(req);
    const parsed = AsnConvert.parse(req, OCSPRequest);
    const list = parsed.tbsRequest.requestList;
    expect(list.length).toBe(info.certIds.length);
    list.forEach((r, i) => {
      const c = info.certIds[i]!;
      expect(r.reqCert.hashAlgorithm.algorithm).toBe(c.hashOid);
      expect(Buffer.from(r.reqCert.issuerNameHash.buffer)).toEqual(c.issuerNameHash);
      expect(Buffer.from(r.reqCert.issuerKeyHash.buffer)).toEqual(c.issuerKeyHash);
      expect(Buffer.from(r.reqCert.serialNumber)).toEqual(c.serial);
      expect(Buffer.from(AsnConvert.serialize(r.reqCert))).toEqual(c.der);
    });
    const ext = parsed.tbsRequest.requestExtensions!.find((e) => e.extnID === OID_OCSP.nonce)!;
    expect(Buffer.from(ext.extnValue.buffer)).toEqual(info.nonce);
  });

  it('-no_nonce gives nonce null', () => {
    const info = decodeOcspRequest(opensslRequest('nononce', ['-cert', pki.leaf1.pem, '-no_nonce']));
    expect(info.nonce).toBeNull();
    expect(info.certIds).toHaveLength(1);
  });

  for (const alg of ['sha256', 'sha384', 'sha512'] as const) {
    it(`-${alg} CertIDs match issuerHashes().${alg}`, () => {
      const info = decodeOcspRequest(opensslRequest(alg, [`-${alg}`, '-cert', pki.leaf1.pem, '-cert', pki.leaf2.pem]));
      const h = issuerHashes(pki.ca.subjectDer, pki.ca.spkiDer)[alg];
      expect(info.certIds).toHaveLength(2);
      for (const c of info.certIds) {
        expect(c.hash).toBe(alg);
        expect(c.hashOid).toBe(OID_HASH[alg]);
        expect(c.issuerNameHash).toEqual(h.nameHash);
        expect(c.issuerKeyHash).toEqual(h.keyHash);
      }
      expect(info.certIds.map((c) => c.serialHex)).toEqual([pki.leaf1.serialHex, pki.leaf2.serialHex]);
    });
  }

  it('-serial: raw INTEGER octets kept, serialHex without the sign octet', () => {
    const info = decodeOcspRequest(opensslRequest('serials', ['-serial', '0x80', '-serial', '0x0102', '-serial', '0xff00000000000000000000000000000001']));
    expect(info.certIds.map((c) => c.serial.toString('hex'))).toEqual(['0080', '0102', '00ff00000000000000000000000000000001']);
    expect(info.certIds.map((c) => c.serialHex)).toEqual(['80', '0102', 'ff00000000000000000000000000000001']);
  });

  it('an unsupported CertID hash (openssl -md5) decodes with hash null and its OID', () => {
    const info = decodeOcspRequest(opensslRequest('md5', ['-md5', '-cert', pki.leaf1.pem, '-no_nonce']));
    expect(info.certIds[0]!.hash).toBeNull();
    expect(info.certIds[0]!.hashOid).toBe('1.2.840.113549.2.5');
    expect(info.certIds[0]!.issuerNameHash).toHaveLength(16);
    expect(info.certIds[0]!.serialHex).toBe(pki.leaf1.serialHex);
  });

  it('a signed request (openssl -signer) decodes with signed = true', () => {
    const req = opensslRequest('signed', ['-cert', pki.leaf2.pem, '-signer', pki.leaf1.pem, '-signkey', file('leaf1.key')]);
    const info = decodeOcspRequest(req);
    expect(info.signed).toBe(true);
    expect(info.certIds[0]!.serialHex).toBe(pki.leaf2.serialHex);
    expect(info.nonce).not.toBeNull();
  });

  it(`${MAX_OCSP_CERT_IDS} CertIDs decode; ${MAX_OCSP_CERT_IDS + 1} are refused`, () => {
    const serials = (n: number) => Array.from({ length: n }, (_, i) => ['-serial', `0x${(i + 1).toString(16)}`]).flat();
    const ok = decodeOcspRequest(opensslRequest('max', serials(MAX_OCSP_CERT_IDS)));
    expect(ok.certIds).toHaveLength(MAX_OCSP_CERT_IDS);
    expect(ok.certIds[MAX_OCSP_CERT_IDS - 1]!.serialHex).toBe((MAX_OCSP_CERT_IDS).toString(16));
    const err = requestError(() => decodeOcspRequest(opensslRequest('toomany', serials(MAX_OCSP_CERT_IDS + 1))));
    expect(err.message).toMatch(/more than 64 CertIDs/);
  });

  it('accepts a plain Uint8Array, and returns views on it', () => {
    const req = opensslRequest('u8', ['-cert', pki.leaf1.pem]);
    const u8 = new Uint8Array(req.length + 3).subarray(3);
    u8.set(req);
    const info = decodeOcspRequest(u8);
    expect(info.certIds[0]!.der).toEqual(decodeOcspRequest(req).certIds[0]!.der);
    expect(info.certIds[0]!.der.buffer).toBe(u8.buffer);
  });
});

describe('decodeOcspRequest: bad input throws OcspRequestError', () => {
  let real: Buffer;
  let signed: Buffer;
  beforeAll(() => {
    real = opensslRequest('bad-base', ['-cert', pki.leaf1.pem, '-cert', pki.leaf2.pem]);
    signed = opensslRequest('bad-signed', ['-cert', pki.leaf2.pem, '-signer', pki.leaf1.pem, '-signkey', file('leaf1.key')]);
  });

  it('empty, garbage and a 1 MB body of zeros', () => {
    requestError(() => decodeOcspRequest(Buffer.alloc(0)));
    requestError(() => decodeOcspRequest(Buffer.from('GET / HTTP/1.1\r\n\r\n')));
    requestError(() => decodeOcspRequest(Buffer.from([0xff, 0xff, 0xff, 0xff])));
    requestError(() => decodeOcspRequest(Buffer.alloc(1 << 20)));
    requestError(() => decodeOcspRequest(Buffer.alloc(1 << 20, 0x30)));
  });

  it('every truncation of a real request (unsigned and signed)', () => {
    for (const req of [real, signed]) {
      for (let n = 0; n < req.length; n++) requestError(() => decodeOcspRequest(req.subarray(0, n)));
    }
  });

  it('every single-octet corruption either throws OcspRequestError or still decodes', () => {
    for (let i = 0; i < real.length; i++) {
      for (const v of [0x00, 0x80, 0xff, real[i]! ^ 0x01]) {
        const b = Buffer.from(real);
        b[i] = v;
        try {
          expect(decodeOcspRequest(b).certIds.length).toBeGreaterThan(0);
        } catch (e) {
          expect(e).toBeInstanceOf(OcspRequestError);
        }
      }
    }
  });

  it('trailing bytes, wrong outer tag, non-minimal length', () => {
    expect(requestError(() => decodeOcspRequest(Buffer.concat([real, Buffer.from([0x00])]))).message).toMatch(/trailing/);
    requestError(() => decodeOcspRequest(Buffer.concat([real, real])));
    const set = Buffer.from(real);
    set[0] = 0x31;
    requestError(() => decodeOcspRequest(set));
    // the same request with a long-form length where the short form fits (not DER)
    const small = opensslRequest('small', ['-serial', '0x01', '-no_nonce']);
    expect(small[1]! < 0x80).toBe(true);
    requestError(() => decodeOcspRequest(Buffer.concat([Buffer.from([0x30, 0x81, small[1]!]), small.subarray(2)])));
  });

  it('structural errors: no requests, CertID fields, extensions', () => {
    const certId = decodeOcspRequest(opensslRequest('one', ['-serial', '0x01', '-no_nonce'])).certIds[0]!.der;
    const wrap = (list: Buffer[], tail: Buffer[] = []) => encodeSequence(encodeSequence(encodeSequence(...list), ...tail));
    expect(decodeOcspRequest(wrap([encodeSequence(certId)])).certIds).toHaveLength(1);
    expect(requestError(() => decodeOcspRequest(wrap([]))).message).toMatch(/empty/);
    // a CertID with a fifth field; and one with a SHA-1 OID but 16-octet hashes
    requestError(() => decodeOcspRequest(wrap([encodeSequence(encodeSequence(certId.subarray(2), Buffer.from([0x05, 0x00])))])));
    const alg = encodeSequence(Buffer.from('06052b0e03021a0500', 'hex'));
    const short = encodeSequence(alg, encodeOctetString(Buffer.alloc(16)), encodeOctetString(Buffer.alloc(16)), Buffer.from([0x02, 0x01, 0x01]));
    expect(requestError(() => decodeOcspRequest(wrap([encodeSequence(short)]))).message).toMatch(/lengths/);
    // hashAlgorithm parameters other than NULL
    const badParams = encodeSequence(encodeSequence(Buffer.from('06052b0e03021a', 'hex'), Buffer.from([0x02, 0x01, 0x00])), encodeOctetString(Buffer.alloc(20)), encodeOctetString(Buffer.alloc(20)), Buffer.from([0x02, 0x01, 0x01]));
    requestError(() => decodeOcspRequest(wrap([encodeSequence(badParams)])));
    // the nonce extension twice
    const nonceExt = encodeSequence(Buffer.from('06092b0601050507300102', 'hex'), encodeOctetString(Buffer.from('0402abcd', 'hex')));
    const exts = (...e: Buffer[]) => encodeTlv(0xa2, encodeSequence(...e));
    expect(decodeOcspRequest(wrap([encodeSequence(certId)], [exts(nonceExt)])).nonce).toEqual(Buffer.from('0402abcd', 'hex'));
    expect(requestError(() => decodeOcspRequest(wrap([encodeSequence(certId)], [exts(nonceExt, nonceExt)]))).message).toMatch(/duplicate/);
    // explicit version v1 tolerated, v2 refused
    const v = (n: number) => encodeTlv(0xa0, Buffer.from([0x02, 0x01, n]));
    expect(decodeOcspRequest(encodeSequence(encodeSequence(v(0), encodeSequence(encodeSequence(certId))))).certIds).toHaveLength(1);
    requestError(() => decodeOcspRequest(encodeSequence(encodeSequence(v(1), encodeSequence(encodeSequence(certId))))));
  });

  it('a zero-length or negative serial decodes with serialHex null', () => {
    const alg = encodeSequence(Buffer.from('06052b0e03021a0500', 'hex'));
    const id = (serial: Buffer) => encodeSequence(alg, encodeOctetString(Buffer.alloc(20)), encodeOctetString(Buffer.alloc(20)), encodeTlv(0x02, serial));
    const info = decodeOcspRequest(encodeSequence(encodeSequence(encodeSequence(...[Buffer.alloc(0), Buffer.from([0xff]), Buffer.from([0x00]), Buffer.from([0x00, 0x00, 0x05])].map((s) => encodeSequence(id(s)))))));
    expect(info.certIds.map((c) => c.serialHex)).toEqual([null, null, null, '05']);
    expect(info.certIds.map((c) => c.serial.toString('hex'))).toEqual(['', 'ff', '00', '000005']);
  });
});

describe('responses checked by openssl ocsp', () => {
  const FOUR: OcspCertStatus[] = [
    { type: 'good' },
    { type: 'revoked', revokedAt: new Date(Date.now() - 2 * HOUR), reason: 'keyCompromise' },
    { type: 'revoked', revokedAt: new Date(Date.now() - 3 * HOUR), reason: 'certificateHold' },
    { type: 'unknown' },
  ];
  const ARGS = () => ['-cert', pki.leaf1.pem, '-cert', pki.leaf2.pem, '-serial', '0x0a0b', '-serial', '0x0c0d'];

  it('EC delegated responder, nonce: good / keyCompromise / certificateHold / unknown, verify OK', () => {
    const req = opensslRequest('four', ARGS());
    const info = decodeOcspRequest(req);
    const { der } = respond(info, FOUR);
    const base = ['-issuer', pki.ca.pem, '-CAfile', pki.ca.pem];
    // -reqin: openssl checks the nonce against the request
    const text = checkResponse(der, [...base, '-reqin', writeTmp(pki.dir, 'four.req.der', req), '-resp_text']);
    expect(text.status).toBe(0);
    expect(text.out).toContain('Response verify OK');
    expect(text.out).not.toContain('WARNING: no nonce');
    expect(text.out).toContain('OCSP Response Status: successful (0x0)');
    expect(text.out).toContain('Response Type: Basic OCSP Response');
    expect(text.out).toContain(`Responder Id: ${keyHashOfSpki(pki.ecResponder.spkiDer).toString('hex').toUpperCase()}`);
    expect(text.out).toContain('OCSP Nonce:');
    expect(text.out).toContain(info.nonce!.toString('hex').toUpperCase());
    expect(text.out.match(/Cert Status: (\w+)/g)).toEqual(['Cert Status: good', 'Cert Status: revoked', 'Cert Status: revoked', 'Cert Status: unknown']);
    expect(text.out).toContain('Revocation Reason: keyCompromise (0x1)');
    expect(text.out).toContain('Revocation Reason: certificateHold (0x6)');
    // the per-certificate summary, the way a relying party asks; -no_nonce, as openssl would
    // otherwise build a new request with a fresh nonce of its own and compare with that
    const sum = checkResponse(der, [...base, '-no_nonce', ...ARGS()]);
    expect(sum.status).toBe(0);
    expect(sum.out).toContain('Response verify OK');
    expect(sum.out).toMatch(new RegExp(`${path.basename(pki.leaf1.pem).replace('.', '\\.')}: good`));
    expect(sum.out).toMatch(/leaf2\.pem: revoked\n[\s\S]*?Reason: keyCompromise/);
    expect(sum.out).toMatch(/0x0a0b: revoked\n[\s\S]*?Reason: certificateHold/i);
    expect(sum.out).toMatch(/0x0c0d: unknown/i);
  });

  it('a response with another nonce fails openssl\'s nonce check', () => {
    const req = opensslRequest('wrongnonce', ['-cert', pki.leaf1.pem]);
    const info = decodeOcspRequest(req);
    const { der } = respond(info, [{ type: 'good' }], { nonce: Buffer.from('0410' + '00'.repeat(16), 'hex') });
    const r = checkResponse(der, ['-issuer', pki.ca.pem, '-CAfile', pki.ca.pem, '-reqin', writeTmp(pki.dir, 'wn.req.der', req)]);
    expect(r.out).toContain('Nonce Verify error');
    expect(r.out).not.toContain('Response verify OK');
  });

  it('-no_nonce request: no responseExtensions, verify OK without a nonce warning', () => {
    const req = opensslRequest('nn', ['-cert', pki.leaf1.pem, '-no_nonce']);
    const { der } = respond(decodeOcspRequest(req), [{ type: 'good' }]);
    expect(decodeOcspResponse(der).basic!.nonce).toBeNull();
    // against the request itself: both without a nonce is fine for openssl (no warning)
    const text = checkResponse(der, ['-issuer', pki.ca.pem, '-CAfile', pki.ca.pem, '-reqin', writeTmp(pki.dir, 'nn.req.der', req), '-resp_text']);
    expect(text.status).toBe(0);
    expect(text.out).toContain('Response verify OK');
    expect(text.out).not.toMatch(/nonce|Response Extensions/i);
    const r = checkResponse(der, ['-issuer', pki.ca.pem, '-CAfile', pki.ca.pem, '-no_nonce', '-cert', pki.leaf1.pem]);
    expect(r.status).toBe(0);
    expect(r.out).toContain('Response verify OK');
    expect(r.out).toContain('leaf1.pem: good');
  });

  it('RSA delegated responder (sha256WithRSAEncryption), SHA-256 CertIDs', () => {
    const req = opensslRequest('rsa', ['-sha256', '-cert', pki.leaf1.pem, '-cert', pki.leaf2.pem]);
    const { der } = respond(decodeOcspRequest(req), [{ type: 'revoked', revokedAt: new Date(Date.now() - HOUR) }, { type: 'good' }], {
      responder: pki.rsaResponder,
      alg: 'rsa-sha256',
    });
    const r = checkResponse(der, ['-issuer', pki.ca.pem, '-CAfile', pki.ca.pem, '-resp_text', '-no_nonce', '-sha256', '-cert', pki.leaf1.pem, '-cert', pki.leaf2.pem]);
    expect(r.status).toBe(0);
    expect(r.out).toContain('Response verify OK');
    expect(r.out).toContain('Signature Algorithm: sha256WithRSAEncryption');
    expect(r.out).toContain('leaf1.pem: revoked');
    expect(r.out).not.toContain('Revocation Reason'); // no reason given → no revocationReason
    expect(r.out).toContain('leaf2.pem: good');
  });

  it('signed by the CA itself with no certs: certs omitted, verify OK', () => {
    const req = opensslRequest('self', ['-cert', pki.leaf1.pem]);
    const ca = { der: pki.ca.der, key: pki.ca.key, spkiDer: pki.ca.spkiDer };
    const { der } = respond(decodeOcspRequest(req), [{ type: 'good' }], { responder: ca, certs: [] });
    expect(decodeOcspResponse(der).basic!.certs).toEqual([]);
    const r = checkResponse(der, ['-issuer', pki.ca.pem, '-CAfile', pki.ca.pem, '-no_nonce', '-cert', pki.leaf1.pem]);
    expect(r.status).toBe(0);
    expect(r.out).toContain('Response verify OK');
    expect(r.out).toContain('leaf1.pem: good');
  });

  it('times are GeneralizedTime in whole seconds: openssl prints them, decode reads them back', () => {
    const req = opensslRequest('times', ['-cert', pki.leaf1.pem]);
    const producedAt = new Date(Date.UTC(2030, 0, 2, 3, 4, 5, 678));
    const { der, tbs, singles } = respond(decodeOcspRequest(req), [{ type: 'revoked', revokedAt: new Date(Date.UTC(2029, 11, 31, 23, 59, 59, 999)), reason: 'superseded' }], { producedAt });
    expect(tbs.includes(Buffer.from('20300102030405Z'))).toBe(true);
    expect(tbs.includes(Buffer.from('20291231235959Z'))).toBe(true);
    expect(tbs.includes(Buffer.from('.678'))).toBe(false);
    const r = checkResponse(der, ['-resp_text', '-noverify']);
    expect(r.out).toContain('Produced At: Jan  2 03:04:05 2030 GMT');
    expect(r.out).toContain('Revocation Time: Dec 31 23:59:59 2029 GMT');
    expect(r.out).toContain('Revocation Reason: superseded (0x4)');
    const basic = decodeOcspResponse(der).basic!;
    expect(basic.producedAt).toEqual(new Date(Date.UTC(2030, 0, 2, 3, 4, 5)));
    expect(basic.responses[0]!.thisUpdate).toEqual(new Date(Math.floor(singles[0]!.thisUpdate.getTime() / 1000) * 1000));
  });
});

describe('decodeOcspResponse', () => {
  it('reads back what was encoded; the signature verifies over tbsDer', () => {
    const req = opensslRequest('rt', ['-cert', pki.leaf1.pem, '-cert', pki.leaf2.pem, '-serial', '0x05']);
    const info = decodeOcspRequest(req);
    const statuses: OcspCertStatus[] = [
      { type: 'good' },
      { type: 'revoked', revokedAt: new Date(Date.UTC(2025, 5, 1)), reason: 'cessationOfOperation' },
      { type: 'unknown' },
    ];
    const { der, tbs, singles } = respond(info, statuses);
    const d = decodeOcspResponse(der);
    expect(d.status).toBe('successful');
    const b = d.basic!;
    expect(b.tbsDer).toEqual(tbs);
    expect(b.responderId).toEqual({ byKey: keyHashOfSpki(pki.ecResponder.spkiDer) });
    expect(b.nonce).toEqual(info.nonce);
    expect(b.signatureAlgorithmOid).toBe(OID_SIG.ecdsaWithSha256);
    expect(b.certs).toEqual([pki.ecResponder.der]);
    expect(crypto.verify('sha256', b.tbsDer, crypto.createPublicKey(pki.ecResponder.key), b.signature)).toBe(true);
    expect(b.responses.map((r) => r.certIdDer)).toEqual(info.certIds.map((c) => c.der));
    expect(b.responses.map((r) => r.status)).toEqual(statuses);
    expect(b.responses.map((r) => r.nextUpdate)).toEqual(singles.map((s) => new Date(Math.floor(s.nextUpdate.getTime() / 1000) * 1000)));
  });

  it('rejects a malformed response with badRequest', () => {
    expect(caError(() => decodeOcspResponse(Buffer.from([0x30, 0x03, 0x0a, 0x01, 0x04]))).kind).toBe('badRequest'); // 4 is unused
    expect(caError(() => decodeOcspResponse(Buffer.from([0x30, 0x03, 0x0a, 0x01, 0x00]))).kind).toBe('badRequest'); // successful without bytes
    expect(caError(() => decodeOcspResponse(Buffer.from('garbage'))).kind).toBe('badRequest');
  });
});

describe('encodeOcspError', () => {
  const CASES: Array<[OcspErrorStatus, number, string]> = [
    ['malformedRequest', 1, 'malformedrequest (1)'],
    ['internalError', 2, 'internalerror (2)'],
    ['tryLater', 3, 'trylater (3)'],
    ['sigRequired', 5, 'sigrequired (5)'],
    ['unauthorized', 6, 'unauthorized (6)'],
  ];
  for (const [status, code, printed] of CASES) {
    it(`${status}: 30 03 0a 01 0${code}, openssl prints "${printed}"`, () => {
      const der = encodeOcspError(status);
      expect(der).toEqual(Buffer.from([0x30, 0x03, 0x0a, 0x01, code]));
      expect(decodeOcspResponse(der)).toEqual({ status, basic: null });
      const r = checkResponse(der, ['-resp_text', '-noverify']);
      expect(r.out).toContain(`Responder Error: ${printed}`);
    });
  }

  it('returns a fresh buffer each time; an unknown status is refused', () => {
    const a = encodeOcspError('tryLater');
    a[4] = 0;
    expect(encodeOcspError('tryLater')[4]).toBe(3);
    expect(caError(() => encodeOcspError('successful' as never)).kind).toBe('badRequest');
  });
});

describe('encoder input checks (badRequest)', () => {
  const certIdDer = Buffer.from('3009300706052b0e03021a', 'hex'); // shape only
  const good = (over: Partial<OcspSingle> = {}): OcspSingle => ({
    certIdDer,
    status: { type: 'good' },
    thisUpdate: new Date(Date.UTC(2030, 0, 1)),
    nextUpdate: new Date(Date.UTC(2030, 0, 2)),
    ...over,
  });
  const base = { responderKeyHash: Buffer.alloc(20, 1), producedAt: new Date(Date.UTC(2030, 0, 1)) };

  it('encodes the RFC 5019 shape: no version, byKey, one SingleResponse, no extensions', () => {
    const tbs = encodeResponseData({ ...base, responses: [good()] });
    expect(tbs.toString('hex')).toBe(
      '305e' + 'a216' + '0414' + '01'.repeat(20) + '180f' + Buffer.from('20300101000000Z').toString('hex') +
        '3033' + '3031' + '3009300706052b0e03021a' + '8000' + '180f' + Buffer.from('20300101000000Z').toString('hex') +
        'a011' + '180f' + Buffer.from('20300102000000Z').toString('hex'),
    );
  });

  it('refuses bad parameters', () => {
    const bad: Array<() => unknown> = [
      () => encodeResponseData({ ...base, responderKeyHash: Buffer.alloc(32), responses: [good()] }),
      () => encodeResponseData({ ...base, responses: [] }),
      () => encodeResponseData({ ...base, producedAt: new Date(NaN), responses: [good()] }),
      () => encodeResponseData({ ...base, responses: [good({ nextUpdate: new Date(Date.UTC(2029, 0, 1)) })] }),
      () => encodeResponseData({ ...base, responses: [good({ certIdDer: Buffer.from([0x04, 0x00]) })] }),
      () => encodeResponseData({ ...base, responses: [good({ certIdDer: Buffer.concat([certIdDer, Buffer.from([0])]) })] }),
      () => encodeResponseData({ ...base, responses: [good({ status: { type: 'revoked', revokedAt: new Date(), reason: 'removeFromCRL' } })] }),
      () => encodeResponseData({ ...base, responses: [good({ status: { type: 'revoked', revokedAt: new Date(), reason: 'bogus' as never } })] }),
      () => encodeResponseData({ ...base, responses: [good({ status: { type: 'expired' } as never })] }),
      () => assembleOcspResponse(Buffer.from([0x04, 0x00]), 'ecdsa-sha256', Buffer.alloc(8), []),
      () => assembleOcspResponse(encodeSequence(), 'ecdsa-sha256', Buffer.alloc(0), []),
      () => assembleOcspResponse(encodeSequence(), 'ecdsa-sha256', Buffer.alloc(8), [Buffer.from('x')]),
      () => assembleOcspResponse(encodeSequence(), 'dsa-sha1' as never, Buffer.alloc(8), []),
    ];
    for (const f of bad) expect(caError(f).kind).toBe('badRequest');
  });

  it("'unspecified' is left out of RevokedInfo, like a CRL entry", () => {
    const withU = encodeResponseData({ ...base, responses: [good({ status: { type: 'revoked', revokedAt: new Date(Date.UTC(2029, 0, 1)), reason: 'unspecified' } })] });
    const without = encodeResponseData({ ...base, responses: [good({ status: { type: 'revoked', revokedAt: new Date(Date.UTC(2029, 0, 1)) } })] });
    expect(withU).toEqual(without);
  });
});
