import crypto, { X509Certificate } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { IdevidTrust } from '../../src/enrollment/idevid.js';
import { assembleCrl, buildTbsCertList } from '../../src/pki/crl.js';
import { decodeCrl } from '../../src/pki/crl-decode.js';
import { pemDecodeAll, pemEncode } from '../../src/pki/pem.js';
import { CaError } from '../../src/core/errors.js';

// An external manufacturer ("acme") with its own CA, made with openssl; fleetca trusts it for the
// camera profile through ca-config files, and reads its CRL.
let dir: string;
let cfgDir: string;
let acmeKey: crypto.KeyObject;
let acmeCert: X509Certificate;
let good: X509Certificate;
let revoked: X509Certificate;
let stranger: X509Certificate;

const openssl = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });

function leaf(name: string, cn: string, ca: string): X509Certificate {
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-subj', `/CN=${cn}/serialNumber=SN-${cn}`, '-out', `${name}.csr`]);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-days', '30', '-out', `${name}.pem`]);
  return new X509Certificate(readFileSync(path.join(dir, `${name}.pem`)));
}

function writeCrl(serials: string[], nextUpdate: Date): void {
  const issuerNameDer = subjectDer(acmeCert);
  const tbs = buildTbsCertList({
    issuerNameDer,
    authorityKeyId: crypto.createHash('sha1').update(acmeCert.publicKey.export({ type: 'spki', format: 'der' })).digest(),
    signatureAlgorithm: 'ecdsa-sha256',
    thisUpdate: new Date(Date.now() - 60_000),
    nextUpdate,
    crlNumber: 1n,
    entries: serials.map((s) => ({ serial: Buffer.from(s.length % 2 ? `0${s}` : s, 'hex'), revocationDate: new Date(Date.now() - 30_000) })),
  });
  const der = assembleCrl(tbs, 'ecdsa-sha256', crypto.sign('sha256', tbs, acmeKey));
  writeFileSync(path.join(cfgDir, 'acme.crl'), pemEncode('X509 CRL', der));
}

/** The subject Name DER of a certificate (TBSCertificate field 6, after version/serial/sig/issuer/validity). */
function subjectDer(cert: X509Certificate): Buffer {
  // asn1parse lists the TBSCertificate's fields at depth 2; the subject is the sixth
  const parsed = execFileSync('openssl', ['asn1parse', '-inform', 'DER', '-i'], { input: cert.raw }).toString().split('\n');
  const lines = parsed.filter((l) => /^\s*\d+:d=2/.test(l));
  const subjectLine = lines[5]!; // version [0], serial, signature, issuer, validity, subject
  const m = /^\s*(\d+):d=2\s+hl=(\d+)\s+l=\s*(\d+)/.exec(subjectLine)!;
  const start = Number(m[1]);
  return cert.raw.subarray(start, start + Number(m[2]) + Number(m[3]));
}

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'fleetca-idevid-'));
  cfgDir = path.join(dir, 'cfg');
  cpSync(path.resolve('ca-config'), cfgDir, { recursive: true });
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'acme.key', '-subj', '/CN=Acme Devices CA/O=Acme', '-days', '365', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', 'acme.pem']);
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'other.key', '-subj', '/CN=Other CA', '-days', '365', '-out', 'other.pem']);
  acmeKey = crypto.createPrivateKey(readFileSync(path.join(dir, 'acme.key')));
  acmeCert = new X509Certificate(readFileSync(path.join(dir, 'acme.pem')));
  cpSync(path.join(dir, 'acme.pem'), path.join(cfgDir, 'acme-ca.pem'));
  good = leaf('good', 'cam-good', 'acme');
  revoked = leaf('revoked', 'cam-revoked', 'acme');
  stranger = leaf('stranger', 'cam-stranger', 'other');
  writeCrl([revoked.serialNumber.toLowerCase()], new Date(Date.now() + 86_400_000));
  const camera = path.join(cfgDir, 'profiles/camera.yaml');
  writeFileSync(
    camera,
    readFileSync(camera, 'utf8').replace('trust: [manufacturing-ca]\n    deviceId: CN', 'trust: [acme-ca.pem]\n    deviceId: serialNumber\n    crls: [acme.crl]'),
  );
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const trust = () => new IdevidTrust(loadConfig(cfgDir), new Map());

describe('IDevID trust with an external manufacturer CA', () => {
  it('matches an IDevID of the external anchor to the profile that trusts it, with the device id from serialNumber', () => {
    const m = trust().match(good);
    expect(m.map((x) => [x.profile.name, x.deviceId, x.anchor.ref])).toEqual([['camera', 'SN-cam-good', 'acme-ca.pem']]);
  });

  it('matches nothing for a certificate of a CA no profile trusts', () => {
    expect(trust().match(stranger)).toEqual([]);
  });

  it('accepts an unrevoked IDevID and refuses one the manufacturer CRL lists', () => {
    const t = trust();
    const now = new Date();
    expect(() => t.assertUsable(good, t.match(good)[0]!, now)).not.toThrow();
    const err = (() => {
      try {
        t.assertUsable(revoked, t.match(revoked)[0]!, now);
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(err).toBeInstanceOf(CaError);
    expect((err as CaError).kind).toBe('forbidden');
    expect((err as CaError).message).toMatch(/revoked by its manufacturer/);
  });

  it('refuses (fails closed) when the CRL expired or is not signed by the anchor', () => {
    const t = trust();
    writeCrl([], new Date(Date.now() - 1000));
    expect(() => t.assertUsable(good, t.match(good)[0]!, new Date())).toThrow(/expired/);
    // a CRL signed by another key: re-sign the same TBS with the stranger CA's key
    const pem = readFileSync(path.join(cfgDir, 'acme.crl'), 'utf8');
    const der = pemDecodeAll(pem)[0]!.der;
    const d = decodeCrl(der);
    const otherKey = crypto.createPrivateKey(readFileSync(path.join(dir, 'other.key')));
    writeFileSync(path.join(cfgDir, 'acme.crl'), pemEncode('X509 CRL', assembleCrl(d.tbsDer, 'ecdsa-sha256', crypto.sign('sha256', d.tbsDer, otherKey))));
    const t2 = trust();
    expect(() => t2.assertUsable(good, t2.match(good)[0]!, new Date())).toThrow(/not signed by any IDevID anchor/);
    writeCrl([revoked.serialNumber.toLowerCase()], new Date(Date.now() + 86_400_000));
  });

  it('refuses an IDevID outside its validity', () => {
    const t = trust();
    expect(() => t.assertUsable(good, t.match(good)[0]!, new Date(Date.now() + 400 * 86_400_000))).toThrow(/expired or not yet valid/);
  });
});

describe('decodeCrl', () => {
  it('reads the revoked serials, times and signed bytes of a CRL openssl accepts', () => {
    writeCrl(['0a1b', revoked.serialNumber.toLowerCase()], new Date(Date.now() + 86_400_000));
    const der = pemDecodeAll(readFileSync(path.join(cfgDir, 'acme.crl'), 'utf8'))[0]!.der;
    const text = execFileSync('openssl', ['crl', '-inform', 'DER', '-noout', '-text'], { input: der }).toString();
    expect(text).toMatch(/Serial Number: 0A1B/i);
    const d = decodeCrl(der);
    expect([...d.revokedSerials].sort()).toEqual(['a1b', BigInt(`0x${revoked.serialNumber}`).toString(16)].sort());
    expect(crypto.verify('sha256', d.tbsDer, acmeCert.publicKey, d.signature)).toBe(true);
    expect(d.nextUpdate!.getTime()).toBeGreaterThan(d.thisUpdate.getTime());
  });

  it('rejects truncated and trailing-garbage CRLs as bad requests', () => {
    const der = pemDecodeAll(readFileSync(path.join(cfgDir, 'acme.crl'), 'utf8'))[0]!.der;
    expect(() => decodeCrl(der.subarray(0, der.length - 5))).toThrow(CaError);
    expect(() => decodeCrl(Buffer.concat([der, Buffer.from([0])]))).toThrow(CaError);
  });
});
