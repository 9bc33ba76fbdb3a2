/**
 * Rotation against the real server in this process, on an injected clock (nothing sleeps):
 *  - a profile with `renewal.allowEarly: false` refuses re-enrollment before the renewal window
 *    with a message that says so (EST 403, SCEP CertRep FAILURE badRequest) and accepts it inside
 *    the window, where certificate.renewed is recorded with the certificate it replaced;
 *  - the expiry gauges on /metrics;
 *  - the TLS server and SCEP RA certificates are renewed before they expire, without a restart:
 *    a new TLS connection (node tls and `openssl s_client`) gets the new certificate, GetCACert
 *    publishes the new RA, an envelope to the RA it replaced is still opened, and the new keys are
 *    on disk encrypted;
 *  - `fleetca renew` (the code behind it) refuses an expired certificate.
 * curl-free: requests are made with node's https/tls (a synchronous child process would block the
 * server running in this process).
 */
import crypto, { X509Certificate, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/core/clock.js';
import { readEnv } from '../../src/config/env.js';
import { openRuntime, type Runtime } from '../../src/main/runtime.js';
import { startServer, type RunningServer } from '../../src/main/server.js';
import { startServiceCerts } from '../../src/main/service-certs.js';
import { createEnrollmentSecrets } from '../../src/enrollment/secret-issuer.js';
import { renewCertificate } from '../../src/enrollment/renew.js';
import { decodeCertsOnly } from '../../src/pki/pkcs7.js';
import { pemDecodeAll, pemEncode } from '../../src/pki/pem.js';
import { SCEP_FAIL_INFO, SCEP_MESSAGE_TYPE, SCEP_PKI_STATUS } from '../../src/pki/scep-cms.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { configCopy, fleetca, opensslOk, replaceInFile } from '../helpers/cli.js';
import { runAsync } from '../helpers/est.js';
import { generateRsa, opensslCsr, readCertRep, scepHttp, scepRequest, selfSignedParty } from '../helpers/scep.js';
import { envelope } from '../helpers/scep-vectors.js';

const DAY = 86_400_000;
let db: TestDatabase;
let dir: string;
let cfgDir: string;
let env: Record<string, string>;
let rt: Runtime;
let server: RunningServer;
let clock: FakeClock;
let t0: number;
const secrets: Record<string, string> = {};
const f = (n: string) => path.join(dir, n);

beforeAll(async () => {
  db = await createTestDatabase();
  dir = mkdtempSync(path.join(os.tmpdir(), 'fleetca-rotation-'));
  chmodSync(dir, 0o711);
  cfgDir = configCopy((d) => replaceInFile(path.join(d, 'profiles', 'camera.yaml'), 'allowEarly: true', 'allowEarly: false'));
  env = { DATABASE_URL: db.connectionString, FLEETCA_DATA_DIR: f('data'), FLEETCA_CONFIG_DIR: cfgDir, FLEETCA_KEY_PASSPHRASE: 'rotation tests' };
  const init = fleetca(['init'], env);
  expect(init.code, init.stderr).toBe(0);
  t0 = Date.now();
  clock = new FakeClock(t0);
  rt = await openRuntime({ env: { ...readEnv(env), dataDir: env.FLEETCA_DATA_DIR! }, clock, log: pino({ level: 'silent' }) });
  const created = await createEnrollmentSecrets(
    { store: rt.store, config: rt.config, clock, secretKey: rt.secretKey() },
    ['est-cam', 'est-cam-b', 'scep-cam'].map((deviceId) => ({ deviceId, profile: 'camera' })),
    'test',
  );
  for (const s of created) secrets[s.deviceId] = s.secret;
  server = await startServer(rt, { host: '127.0.0.1', httpPort: 0, httpsPort: 0 });
}, 180_000);

afterAll(async () => {
  await server?.close();
  await rt?.close();
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
  if (cfgDir) rmSync(cfgDir, { recursive: true, force: true });
});

// ------------------------------------------------------------------ EST and SCEP clients

interface Reply {
  status: number;
  body: string;
}

/** An EST POST over node https (the server's certificate is not checked: the clock is moved). */
function est(op: string, csrDer: Buffer, auth: { basic?: [string, string]; cert?: Buffer; key?: KeyObject }): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      `${server.httpsUrl}/.well-known/est/${op}`,
      {
        method: 'POST',
        agent: false,
        rejectUnauthorized: false,
        headers: {
          'Content-Type': 'application/pkcs10',
          ...(auth.basic ? { Authorization: `Basic ${Buffer.from(auth.basic.join(':')).toString('base64')}` } : {}),
        },
        ...(auth.cert ? { cert: pemEncode('CERTIFICATE', auth.cert), key: auth.key!.export({ type: 'pkcs8', format: 'pem' }) } : {}),
      },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.once('error', reject);
    req.end(csrDer.toString('base64'));
  });
}

const estCert = (r: Reply) => decodeCertsOnly(Buffer.from(r.body, 'base64'))[0]!;
const serialOf = (der: Buffer) => new X509Certificate(der).serialNumber.toLowerCase();

/** The certificate a new TLS connection to the HTTPS listener is given. */
function tlsPeer(): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: Number(new URL(server.httpsUrl).port), rejectUnauthorized: false }, () => {
      const raw = s.getPeerX509Certificate();
      s.end();
      if (raw) resolve(raw);
      else reject(new Error('no peer certificate'));
    });
    s.once('error', reject);
  });
}

const diskCert = (name: string) => pemDecodeAll(readFileSync(f(`data/certs/${name}.pem`), 'utf8'))[0]!.der;
const scepUrl = () => `${server.httpUrl}/scep?operation=PKIOperation`;

/** An EC key and a CSR for CN=<cn> made by openssl. */
function ecCsr(name: string, cn: string): { key: KeyObject; csr: Buffer } {
  const keyFile = f(`${name}.key`);
  opensslOk(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', keyFile]);
  return { key: crypto.createPrivateKey(readFileSync(keyFile)), csr: opensslCsr(dir, name, keyFile, cn) };
}

const renewedAudit = async (serial: string) => (await rt.store.listAudit({ target: serial, action: 'certificate.renewed' })).map((a) => a.details);

// ------------------------------------------------------------------ state shared by the tests

let estCert1: Buffer;
let estKey: KeyObject;
let estCsrDer: Buffer;
let scepCert1: Buffer;
let scepKey: KeyObject;
let scepKeyFile: string;
let oldRa: Buffer;

describe('renewal.allowEarly: false', () => {
  it('EST: simplereenroll before the renewal window → 403 saying when renewal opens; nothing issued', async () => {
    ({ key: estKey, csr: estCsrDer } = ecCsr('est-cam', 'est-cam'));
    const enrolled = await est('simpleenroll', estCsrDer, { basic: ['est-cam', secrets['est-cam']!] });
    expect(enrolled.status, enrolled.body).toBe(200);
    estCert1 = estCert(enrolled);
    const b = ecCsr('est-cam-b', 'est-cam-b');
    expect((await est('simpleenroll', b.csr, { basic: ['est-cam-b', secrets['est-cam-b']!] })).status).toBe(200);

    const early = await est('simplereenroll', estCsrDer, { cert: estCert1, key: estKey });
    expect(early.status).toBe(403);
    const from = new Date(new X509Certificate(estCert1).validTo).getTime() - 0.33 * (365 * DAY);
    expect(early.body).toMatch(
      new RegExp(`^early renewal refused: profile camera does not allow renewal before the renewal window \\(renewal.allowEarly: false\\); certificate ${serialOf(estCert1)} may be renewed from \\d{4}-\\d\\d-\\d\\dT`),
    );
    const opens = Date.parse(/renewed from (\S+)\n$/.exec(early.body)![1]!);
    expect(Math.abs(opens - from)).toBeLessThan(10 * 60_000);
    expect((await rt.store.listCertificates({ deviceId: 'est-cam' })).length).toBe(1);
  });

  it('SCEP: a RenewalReq before the window → CertRep FAILURE, failInfo badRequest', async () => {
    scepKey = await generateRsa();
    const self = selfSignedParty(dir, 'scep-cam', scepKey, 'scep-cam');
    scepKeyFile = self.keyFile;
    oldRa = diskCert('scep-ra');
    const csr = opensslCsr(dir, 'scep-cam-1', scepKeyFile, 'scep-cam', secrets['scep-cam']);
    const req = scepRequest({ envelopeDer: envelope(csr, oldRa, 'aes128').der, signer: self });
    const rep = readCertRep((await scepHttp(scepUrl(), req.der)).body, oldRa, scepKey);
    expect(rep.msg.pkiStatus).toBe(SCEP_PKI_STATUS.SUCCESS);
    scepCert1 = rep.certificates[0]!;

    const renewCsr = opensslCsr(dir, 'scep-cam-2', scepKeyFile, 'scep-cam');
    const renewal = scepRequest({ envelopeDer: envelope(renewCsr, oldRa, 'aes128').der, signer: { certDer: scepCert1, key: scepKey }, messageType: SCEP_MESSAGE_TYPE.RenewalReq });
    const refused = readCertRep((await scepHttp(scepUrl(), renewal.der)).body, oldRa);
    expect(refused.signedByRa).toBe(true);
    expect(refused.msg.pkiStatus).toBe(SCEP_PKI_STATUS.FAILURE);
    expect(refused.msg.failInfo).toBe(SCEP_FAIL_INFO.badRequest);
    expect((await rt.store.listCertificates({ deviceId: 'scep-cam' })).length).toBe(1);
  });

  it('inside the window both renew; the old certificate is superseded and certificate.renewed names it', async () => {
    clock.set(t0 + 250 * DAY); // a 365-day certificate's last 33 % start near day 244.5
    const again = await est('simplereenroll', estCsrDer, { cert: estCert1, key: estKey });
    expect(again.status, again.body).toBe(200);
    const estCert2 = estCert(again);
    expect(await renewedAudit(serialOf(estCert2))).toEqual([{ device: 'est-cam', profile: 'camera', via: 'est', replaced: [serialOf(estCert1)] }]);
    expect((await rt.store.getCertificate(serialOf(estCert1)))!.supersededBy).toBe(serialOf(estCert2));

    const renewCsr = opensslCsr(dir, 'scep-cam-3', scepKeyFile, 'scep-cam');
    const renewal = scepRequest({ envelopeDer: envelope(renewCsr, oldRa, 'aes128').der, signer: { certDer: scepCert1, key: scepKey }, messageType: SCEP_MESSAGE_TYPE.RenewalReq });
    const rep = readCertRep((await scepHttp(scepUrl(), renewal.der)).body, oldRa, scepKey);
    expect(rep.msg.pkiStatus).toBe(SCEP_PKI_STATUS.SUCCESS);
    expect(await renewedAudit(serialOf(rep.certificates[0]!))).toEqual([{ device: 'scep-cam', profile: 'camera', via: 'scep', replaced: [serialOf(scepCert1)] }]);
  });
});

describe('expiry gauges on /metrics', () => {
  it('count the current certificates by profile and window', async () => {
    clock.set(t0 + 340 * DAY); // est-cam-b (not renewed) has 25 days left; the renewed ones a year
    const pass = await server.status.expiry.runNow();
    const res = await fetch(`${server.httpUrl}/metrics`);
    const text = await res.text();
    const value = (series: string) => Number(new RegExp(`^${series.replace(/[{}]/g, '\\$&')} (\\d+)$`, 'm').exec(text)?.[1]);
    expect(value('fleetca_certificates_expiring{profile="camera",within="30d"}')).toBe(1);
    expect(value('fleetca_certificates_expiring{profile="camera",within="7d"}')).toBe(0);
    expect(value('fleetca_certificates_expired{profile="camera"}')).toBe(0);
    expect(value('fleetca_certificates_expiring{profile="sensor",within="1d"}')).toBe(0);
    expect(pass.gauges.find((g) => g.profile === 'camera')!.expiring['30d']).toBe(1);
    // and the tracker announced: est-cam-b is stale, and its 30d threshold passed
    const ev = await rt.store.listAudit({ target: 'est-cam-b', action: 'device.stale' });
    expect(ev).toHaveLength(1);
  });
});

describe("fleetca's own service certificates", () => {
  it('TLS server and SCEP RA: renewed before they expire, without a restart; new TLS connections get the new certificate', async () => {
    clock.set(t0 + 300 * DAY); // 65 days left: not due (server.serviceCertRenewBefore 30d)
    expect(await server.serviceCerts.renew()).toEqual([]);
    const tlsBefore = await tlsPeer();
    expect(tlsBefore.raw.equals(diskCert('tls-server'))).toBe(true);

    clock.set(t0 + 336 * DAY); // 29 days left: due
    const outcomes = await server.serviceCerts.renew();
    expect(outcomes?.map((o) => [o.name, o.action])).toEqual([
      ['tls-server', 'renewed'],
      ['scep-ra', 'renewed'],
    ]);
    const tlsAfter = await tlsPeer();
    expect(tlsAfter.serialNumber).not.toBe(tlsBefore.serialNumber);
    expect(tlsAfter.raw.equals(diskCert('tls-server'))).toBe(true);
    expect(Math.abs(Date.parse(tlsAfter.validFrom) - (clock.now().getTime() - 5 * 60_000))).toBeLessThan(2000);
    expect(tlsAfter.subject).toBe(tlsBefore.subject);
    expect(tlsAfter.subjectAltName).toBe(tlsBefore.subjectAltName);
    // the file carries the chain the listener sends: leaf, then the issuing CA
    expect(pemDecodeAll(readFileSync(f('data/certs/tls-server.pem'), 'utf8'))).toHaveLength(2);

    // a real TLS client sees it too
    const { port } = new URL(server.httpsUrl);
    const sc = await runAsync('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost'], { timeoutMs: 20_000 });
    const presented = pemDecodeAll(sc.stdout)[0]!.der;
    expect(presented.equals(tlsAfter.raw)).toBe(true);

    // the new keys are on disk encrypted, and match their certificates
    for (const name of ['tls-server', 'scep-ra']) {
      const pem = readFileSync(f(`data/keys/${name}.key.pem`), 'utf8');
      expect(pem).toMatch(/^-----BEGIN ENCRYPTED PRIVATE KEY-----\n/);
      const key = crypto.createPrivateKey({ key: pem, passphrase: env.FLEETCA_KEY_PASSPHRASE! });
      const pub = (k: KeyObject) => k.export({ type: 'spki', format: 'der' });
      expect(pub(crypto.createPublicKey(key)).equals(pub(new X509Certificate(diskCert(name)).publicKey))).toBe(true);
    }
    // nothing more to do until the next certificates come due
    expect(await server.serviceCerts.renew()).toEqual([]);
  });

  it('GetCACert publishes the new RA; envelopes to the RA it replaced are still opened; replies are signed by the new one', async () => {
    const newRa = diskCert('scep-ra');
    expect(newRa.equals(oldRa)).toBe(false);
    const caCert = await scepHttp(`${server.httpUrl}/scep?operation=GetCACert`);
    expect(caCert.contentType).toBe('application/x-x509-ca-ra-cert');
    expect(decodeCertsOnly(caCert.body)[0]!.equals(newRa)).toBe(true);
    expect(new X509Certificate(newRa).subject).toBe(new X509Certificate(oldRa).subject);

    // secrets made now (on the moved clock): those of beforeAll expired long ago
    const fresh = await createEnrollmentSecrets(
      { store: rt.store, config: rt.config, clock, secretKey: rt.secretKey() },
      ['scep-cam-2', 'scep-cam-3'].map((deviceId) => ({ deviceId, profile: 'camera' })),
      'test',
    );
    for (const x of fresh) secrets[x.deviceId] = x.secret;
    for (const [device, ra] of [
      ['scep-cam-2', oldRa],
      ['scep-cam-3', newRa],
    ] as const) {
      const key = await generateRsa();
      const self = selfSignedParty(dir, device, key, device);
      const csr = opensslCsr(dir, `${device}-csr`, self.keyFile, device, secrets[device]);
      const req = scepRequest({ envelopeDer: envelope(csr, ra, 'aes128').der, signer: self });
      const rep = readCertRep((await scepHttp(scepUrl(), req.der)).body, newRa, key);
      expect(rep.signedByRa, device).toBe(true);
      expect(rep.msg.pkiStatus, device).toBe(SCEP_PKI_STATUS.SUCCESS);
      expect(new X509Certificate(rep.certificates[0]!).subject).toBe(`CN=${device}`);
    }
  });

  it('after a restart (a new service-certificate manager on the data dir), envelopes to the replaced RA are still opened', async () => {
    const restarted = await startServiceCerts(rt);
    try {
      const ra = restarted.ra();
      expect(ra.certDer.equals(diskCert('scep-ra'))).toBe(true);
      expect(ra.previous?.certDer.equals(oldRa)).toBe(true);
      // the replaced RA's key is kept encrypted, like every key of the data dir
      expect(readFileSync(path.join(rt.dataDir.keysDir, 'scep-ra-previous.key.pem'), 'utf8')).toContain('BEGIN ENCRYPTED PRIVATE KEY');
      const content = Buffer.from('a CSR for the replaced RA');
      expect((await ra.openEnvelope(envelope(content, oldRa, 'aes128').der, () => true)).content.equals(content)).toBe(true);
      expect((await ra.openEnvelope(envelope(content, diskCert('scep-ra'), 'aes128').der, () => true)).content.equals(content)).toBe(true);
    } finally {
      restarted.close();
    }
  });

  it('once the replaced RA has expired, the next renewal check drops it and deletes its key; a restart then keeps no predecessor', async () => {
    const previousKey = path.join(rt.dataDir.keysDir, 'scep-ra-previous.key.pem');
    clock.set(new Date(new X509Certificate(oldRa).validTo).getTime() + DAY); // the renewed RA is far from due
    expect(existsSync(previousKey)).toBe(true);
    expect(server.serviceCerts.ra().previous?.certDer.equals(oldRa)).toBe(true);
    expect(await server.serviceCerts.renew()).toEqual([]);
    expect(existsSync(previousKey)).toBe(false);
    // the running server lets it go too: an envelope to it no longer opens
    expect(server.serviceCerts.ra().previous).toBeNull();
    await expect(server.serviceCerts.ra().openEnvelope(envelope(Buffer.from('late'), oldRa, 'aes128').der, () => true)).rejects.toThrow();
    const restarted = await startServiceCerts(rt);
    try {
      expect(restarted.ra().previous).toBeNull();
    } finally {
      restarted.close();
    }
  });
});

describe('servers sharing a data dir', () => {
  it("one server's renewal is taken over by the others; a half-written pair (crash between key and certificate) is replaced", async () => {
    clock.set(t0 + 680 * DAY); // the day-336 certificates have 21 days left
    // a second server on the same data dir and database renews first (its check at start)
    const other = await startServiceCerts(rt);
    other.close();
    const renewedByOther = diskCert('tls-server');
    expect(renewedByOther.equals((await tlsPeer()).raw)).toBe(false);
    const outcomes = await server.serviceCerts.renew();
    expect(outcomes?.map((o) => [o.name, o.action])).toEqual([
      ['tls-server', 'adopted'],
      ['scep-ra', 'adopted'],
    ]);
    expect((await tlsPeer()).raw.equals(renewedByOther)).toBe(true);
    const caCert = await scepHttp(`${server.httpUrl}/scep?operation=GetCACert`);
    expect(decodeCertsOnly(caCert.body)[0]!.equals(diskCert('scep-ra'))).toBe(true);

    // a key written without its certificate: the next check issues a matching pair
    rt.keyStore(false).keys.save('tls-server', crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
    const repaired = await server.serviceCerts.renew();
    expect(repaired?.map((o) => [o.name, o.action])).toEqual([['tls-server', 'renewed']]);
    const peer = await tlsPeer();
    expect(peer.raw.equals(diskCert('tls-server'))).toBe(true);
    expect(peer.raw.equals(renewedByOther)).toBe(false);
  });
});

describe('fleetca renew (the code behind it), on the moved clock', () => {
  it('refuses an expired certificate', async () => {
    const [current] = (await rt.store.listCertificates({ deviceId: 'est-cam' })).filter((c) => !c.supersededBy);
    clock.set(current!.notAfter.getTime() + 1000);
    await expect(renewCertificate({ ca: rt.ca!, store: rt.store, config: rt.config, clock }, current!.serial, 'test')).rejects.toMatchObject({
      kind: 'forbidden',
      message: expect.stringMatching(/^certificate [0-9a-f]+ expired at .*: an expired certificate is never renewed; enroll the device anew/),
    });
  });
});
