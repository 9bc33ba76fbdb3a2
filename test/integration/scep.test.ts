/**
 * SCEP (RFC 8894) against the real `fleetca serve`: GetCACaps/GetCACert/GetNextCACert on every
 * path, strongSwan `pki --scepca/--scep` (CLIENTS.md section 1: RSA keys only, the issued
 * certificate on stdout), the uniform-failure rule for everything from the outer signature to the
 * inner CSR (no decryption oracle), the refusals that may differ (HTTP 400/413, unknown
 * messageType, a non-RSA signer), GET PKIOperation, and two golden vectors generated here with
 * openssl (`openssl cms -encrypt` envelopes, openssl CSRs and certificates; the SignedData by
 * test/helpers/scep-vectors.ts, since `openssl cms -sign` cannot add the SCEP attributes): a
 * legacy DES3 + SHA-1 request and a Cisco IOS / macOS style renewal (a PKCSReq without challenge,
 * signed with the current fleetca certificate).
 *
 * One data dir, one config copy and one server for the file. The config copy adds `legacy`, a
 * camera clone with enrollment.legacyAlgorithms. As in the EST tests, the public URL is the
 * server's own HTTP port, so pki's revocation checks fetch fleetca's CRL.
 */
import { X509Certificate, createDecipheriv, createHash, createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import YAML from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeCertsOnly } from '../../src/pki/pkcs7.js';
import { SCEP_FAIL_INFO, SCEP_MESSAGE_TYPE, SCEP_PKI_STATUS, decodeEnvelopedData } from '../../src/pki/scep-cms.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { configCopy, fleetca, opensslOk, startServe, type RunningServe } from '../helpers/cli.js';
import { fleetcaBatch, freePort, pemBlocks, pki } from '../helpers/est.js';
import {
  badPaddingEnvelope,
  ecSelfSignedParty,
  flipByteOf,
  generateRsa,
  opensslCsr,
  opensslEnvelope,
  readCertRep,
  scepHttp,
  scepRequest,
  selfSignedParty,
  type RsaParty,
  type ScepReply,
} from '../helpers/scep.js';
import { envelope, rsaPkcs1Decrypt } from '../helpers/scep-vectors.js';
import { certificateParts } from '../../src/pki/cert-parts.js';
import { encodeSequence, encodeUnsignedInteger } from '../../src/pki/der.js';

/** Devices with a one-time secret, created by `fleetca secret create` before the tests. */
const DEVICES: Array<[device: string, profile: string]> = [
  ['scep-pki', 'camera'],
  ['scep-renew', 'camera'],
  ['scep-once', 'camera'],
  ['scep-wrong', 'camera'],
  ['scep-other', 'camera'],
  ['scep-uniform', 'camera'],
  ['scep-get-1', 'camera'],
  ['scep-get-2', 'camera'],
  ['scep-legacy', 'legacy'],
  ['scep-cisco', 'camera'],
  ['scep-ec', 'camera'],
  ['scep-getcert', 'camera'],
];
const KEY_POOL = 20;

let db: TestDatabase;
let pool: pg.Pool;
let dir: string;
let cfgDir: string;
let env: Record<string, string | undefined>;
let server: RunningServe | undefined;
let base: string;
let scepUrl: string;
let raCertDer: Buffer;
let deviceCaPem: string;
let rootPem: string;
const secret = new Map<string, string>();
const keys: KeyObject[] = [];
const f = (n: string) => path.join(dir, n);

beforeAll(async () => {
  db = await createTestDatabase();
  dir = mkdtempSync(path.join(os.tmpdir(), 'fleetca-scep-'));
  chmodSync(dir, 0o711);
  // `legacy`: camera with DES3 and SHA-1 enabled (enrollment.legacyAlgorithms), for the old-client vector
  cfgDir = configCopy((d) => {
    const doc = YAML.parseDocument(readFileSync(path.join(d, 'profiles', 'camera.yaml'), 'utf8'));
    doc.set('description', 'camera clone for the SCEP tests: legacy algorithms');
    doc.deleteIn(['enrollment', 'idevid']);
    doc.setIn(['enrollment', 'legacyAlgorithms'], true);
    writeFileSync(path.join(d, 'profiles', 'legacy.yaml'), doc.toString());
  });
  const httpPort = await freePort();
  env = { DATABASE_URL: db.connectionString, FLEETCA_DATA_DIR: f('data'), FLEETCA_CONFIG_DIR: cfgDir, FLEETCA_KEY_PASSPHRASE: 'scep test passphrase' };
  // RSA keys for every requester, made while the CA is created
  const keyGen = Promise.all(Array.from({ length: KEY_POOL }, generateRsa));
  const init = fleetca(['init', '--public-url', `http://127.0.0.1:${httpPort}`], env);
  expect(init.code, init.stderr).toBe(0);

  const serving = startServe(env, ['--http-port', String(httpPort)]).then((s) => (server = s));
  serving.catch(() => undefined); // awaited below
  const [chain, ...created] = await fleetcaBatch([['ca', 'chain'], ...DEVICES.map(([d, p]) => ['secret', 'create', '--device', d, '--profile', p])], env);
  await serving;
  keys.push(...(await keyGen));
  base = server!.httpUrl;
  scepUrl = `${base}/scep`;

  expect(chain!.code, chain!.stderr).toBe(0);
  [deviceCaPem, rootPem] = pemBlocks(chain!.stdout) as [string, string];
  writeFileSync(f('device-ca.pem'), deviceCaPem);
  writeFileSync(f('root.pem'), rootPem);
  created.forEach((r, i) => {
    expect(r.code, r.stderr).toBe(0);
    secret.set(DEVICES[i]![0], r.stdout.trim());
  });
  const caCert = await scepHttp(`${scepUrl}?operation=GetCACert`);
  expect(caCert.status).toBe(200);
  raCertDer = decodeCertsOnly(caCert.body)[0]!;
  writeFileSync(f('fleetca-ra.pem'), new X509Certificate(raCertDer).toString());
  pool = new pg.Pool({ connectionString: db.connectionString, max: 1 });
}, 180_000);

afterAll(async () => {
  await pool?.end();
  if (server && server.proc.exitCode === null) await server.stop();
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
  if (cfgDir) rmSync(cfgDir, { recursive: true, force: true });
});

// ------------------------------------------------------------------ helpers

let partyCounter = 0;

/** A requester: a pooled RSA-2048 key (PKCS#1 PEM file) and its self-signed certificate for `CN=<cn>`. */
function requester(cn: string): RsaParty {
  const key = keys.pop();
  if (!key) throw new Error('the RSA key pool is empty: raise KEY_POOL');
  return selfSignedParty(dir, `${cn}-${++partyCounter}`, key, cn);
}

/** A PKCSReq for `CN=<cn>` with a challengePassword, AES-128 to the RA, signed by the requester's self-signed certificate. */
function pkcsReq(who: RsaParty, cn: string, challenge: string) {
  const csr = opensslCsr(dir, `csr-${++partyCounter}`, who.keyFile, cn, challenge);
  return { csr, ...scepRequest({ envelopeDer: envelope(csr, raCertDer, 'aes128').der, signer: who }) };
}

const post = (der: Buffer, url = scepUrl) => scepHttp(`${url}?operation=PKIOperation`, der);

async function issuedTo(device: string): Promise<number> {
  const r = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM certificates WHERE device_id = $1', [device]);
  return r.rows[0]!.n;
}

/** Asserts a signed CertRep answering `req`; returns it. */
function certRepFor(reply: ScepReply, req: { transactionId: string; senderNonce: Buffer }, key?: KeyObject) {
  expect(reply.status, reply.body.toString()).toBe(200);
  expect(reply.contentType).toBe('application/x-pki-message');
  const rep = readCertRep(reply.body, raCertDer, key);
  expect(rep.signedByRa).toBe(true);
  expect(rep.msg.messageType).toBe(SCEP_MESSAGE_TYPE.CertRep);
  expect(rep.msg.transactionId).toBe(req.transactionId);
  expect(rep.msg.recipientNonce).toEqual(req.senderNonce);
  expect(rep.msg.senderNonce.length).toBe(16);
  return rep;
}

function expectFailure(reply: ScepReply, req: { transactionId: string; senderNonce: Buffer }, failInfo: keyof typeof SCEP_FAIL_INFO) {
  const rep = certRepFor(reply, req);
  expect(rep.msg.pkiStatus).toBe(SCEP_PKI_STATUS.FAILURE);
  expect(rep.msg.failInfo).toBe(SCEP_FAIL_INFO[failInfo]);
  expect(rep.msg.content).toBeUndefined();
  return rep;
}

/** Asserts SUCCESS and returns the one issued certificate, checked against the device, the key and the chain. */
function expectIssued(reply: ScepReply, req: { transactionId: string; senderNonce: Buffer }, openWith: KeyObject, device: string, certKey: KeyObject): X509Certificate {
  const rep = certRepFor(reply, req, openWith);
  expect(rep.msg.pkiStatus).toBe(SCEP_PKI_STATUS.SUCCESS);
  expect(rep.certificates).toHaveLength(1);
  const cert = new X509Certificate(rep.certificates[0]!);
  expect(cert.subject).toBe(`CN=${device}`);
  expect(cert.checkIssued(new X509Certificate(deviceCaPem))).toBe(true);
  expect(cert.publicKey.export({ type: 'spki', format: 'der' })).toEqual(spki(certKey));
  verifyToRoot(cert.toString());
  return cert;
}

const spki = (k: KeyObject) => createPublicKey(k).export({ type: 'spki', format: 'der' });

/** `openssl verify` from the root through the device CA. */
function verifyToRoot(certPem: string): void {
  const file = f(`verify-${++partyCounter}.pem`);
  writeFileSync(file, certPem);
  const out = opensslOk(['verify', '-CAfile', f('root.pem'), '-untrusted', f('device-ca.pem'), file]);
  expect(out.trim()).toBe(`${file}: OK`);
}

interface CertJson {
  serial: string;
  status: string;
  superseded_by: string | null;
}

function certList(device: string): CertJson[] {
  const r = fleetca(['cert', 'list', '--device', device, '--json'], env);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as CertJson[];
}

/** The serial as `fleetca cert list` prints it (openssl's uppercase hex). */
const serialOf = (certPem: string) => opensslOk(['x509', '-noout', '-serial'], certPem).trim().replace(/^serial=/, '');

/** superseded_by of a certificate and the serial of another, both found by their DER in the database. */
async function supersession(oldDer: Buffer, newDer: Buffer): Promise<{ supersededBy: string | null; newSerial: string }> {
  const fp = (d: Buffer) => createHash('sha256').update(d).digest();
  const q = 'SELECT serial, superseded_by FROM certificates WHERE fingerprint_sha256 = $1';
  const [o, n] = await Promise.all([pool.query<{ serial: string; superseded_by: string | null }>(q, [fp(oldDer)]), pool.query<{ serial: string }>(q, [fp(newDer)])]);
  return { supersededBy: o.rows[0]!.superseded_by, newSerial: n.rows[0]!.serial };
}

// ------------------------------------------------------------------ GetCACaps, GetCACert, GetNextCACert

describe('GetCACaps, GetCACert, GetNextCACert', () => {
  it('GetCACaps lists POSTPKIOperation, SHA-256, SHA-384, SHA-512, AES, SCEPStandard, Renewal and GetNextCACert, and neither DES3 nor SHA-1', async () => {
    const r = await scepHttp(`${scepUrl}?operation=GetCACaps`);
    expect(r.status).toBe(200);
    expect(r.contentType).toMatch(/^text\/plain/);
    const caps = r.body.toString().trim().split('\n');
    for (const c of ['POSTPKIOperation', 'SHA-256', 'SHA-384', 'SHA-512', 'AES', 'SCEPStandard', 'Renewal', 'GetNextCACert']) expect(caps).toContain(c);
    expect(caps).not.toContain('DES3');
    expect(caps).not.toContain('SHA-1');
  });

  it('GetCACert is application/x-x509-ca-ra-cert: the RA, the device CA and the root (openssl pkcs7 -print_certs)', async () => {
    const r = await scepHttp(`${scepUrl}?operation=GetCACert`);
    expect(r.status).toBe(200);
    expect(r.contentType).toBe('application/x-x509-ca-ra-cert');
    const certs = pemBlocks(opensslOk(['pkcs7', '-inform', 'DER', '-print_certs'], r.body));
    expect(certs).toHaveLength(3);
    const [ra, ca, root] = certs.map((c) => new X509Certificate(c));
    expect(ra!.subject).toContain('CN=fleetca SCEP RA');
    expect(ra!.publicKey.asymmetricKeyType).toBe('rsa');
    expect(ra!.checkIssued(ca!) || ra!.checkIssued(root!)).toBe(true);
    expect(ca!.fingerprint256).toBe(new X509Certificate(deviceCaPem).fingerprint256);
    expect(root!.fingerprint256).toBe(new X509Certificate(rootPem).fingerprint256);
  });

  it('GetNextCACert answers 404: no CA rollover is pending', async () => {
    const r = await scepHttp(`${scepUrl}?operation=GetNextCACert`);
    expect(r.status).toBe(404);
  });

  it('the legacy /cgi-bin/pkiclient.exe and the profile path /scep/camera answer GetCACaps, GetCACert and GetNextCACert the same', async () => {
    for (const op of ['GetCACaps', 'GetCACert', 'GetNextCACert']) {
      const ref = await scepHttp(`${scepUrl}?operation=${op}`);
      for (const p of ['/cgi-bin/pkiclient.exe', '/scep/camera']) {
        const r = await scepHttp(`${base}${p}?operation=${op}`);
        expect([p, op, r.status]).toEqual([p, op, ref.status]);
        expect(r.contentType).toBe(ref.contentType);
        expect(r.body.equals(ref.body), `${p} ${op}`).toBe(true);
      }
    }
  });

  it('an unknown profile label is 404; an unknown or missing operation is 400', async () => {
    expect((await scepHttp(`${base}/scep/no-such-profile?operation=GetCACaps`)).status).toBe(404);
    expect((await scepHttp(`${base}/scep/no-such-profile?operation=GetCACert`)).status).toBe(404);
    // a system profile is not an enrollment label
    expect((await scepHttp(`${base}/scep/scep-ra?operation=GetCACaps`)).status).toBe(404);
    expect((await scepHttp(`${scepUrl}?operation=GetCRL`)).status).toBe(400);
    expect((await scepHttp(scepUrl)).status).toBe(400);
    expect((await scepHttp(`${base}/cgi-bin/pkiclient.exe?operation=GetCACerts`)).status).toBe(400);
  });
});

// ------------------------------------------------------------------ strongSwan pki

describe('strongSwan pki', () => {
  /** `pki --scep` with the RA for encryption and signature and the CA chain; the certificate on stdout. */
  function pkiScep(keyFile: string, dn: string, auth: string[]) {
    return pki(
      [
        '--scep', '--url', scepUrl, '--in', keyFile, '--dn', dn, ...auth,
        '--cacert-enc', f('fleetca-ra.pem'), '--cacert-sig', f('fleetca-ra.pem'),
        '--cacert', f('device-ca.pem'), '--cacert', f('root.pem'), '--outform', 'pem',
      ],
      dir,
    );
  }

  it('pki --scepca writes the root to ca.pem, the device CA to ca-1.pem and the RA to ra.pem', () => {
    const r = pki(['--scepca', '--url', scepUrl, '--caout', f('ca.pem'), '--raout', f('ra.pem'), '--outform', 'pem', '--force'], dir);
    expect(r.code, r.stderr).toBe(0);
    const fp = (file: string) => new X509Certificate(readFileSync(file)).fingerprint256;
    expect(fp(f('ca.pem'))).toBe(new X509Certificate(rootPem).fingerprint256);
    expect(fp(f('ca-1.pem'))).toBe(new X509Certificate(deviceCaPem).fingerprint256);
    expect(fp(f('ra.pem'))).toBe(new X509Certificate(raCertDer).fingerprint256);
  });

  it('pki --scep --password enrolls an RSA-2048 key: CN = device id, issued by the device CA, verifies to the root', () => {
    const who = requester('scep-pki');
    const r = pkiScep(who.keyFile, 'CN=scep-pki', ['--password', secret.get('scep-pki')!]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('Issued certificate "CN=scep-pki"');
    const cert = new X509Certificate(r.stdout);
    expect(cert.subject).toBe('CN=scep-pki');
    expect(cert.issuer).toContain('CN=fleetca Device CA');
    expect(cert.publicKey.export({ type: 'spki', format: 'der' })).toEqual(spki(who.key));
    verifyToRoot(r.stdout);
  });

  it('pki --scep --cert/--key renews with a RenewalReq; the old certificate shows superseded in cert list --json', () => {
    const old = requester('scep-renew');
    const first = pkiScep(old.keyFile, 'CN=scep-renew', ['--password', secret.get('scep-renew')!]);
    expect(first.code, first.stderr).toBe(0);
    writeFileSync(f('scep-renew-old.crt'), first.stdout);

    const fresh = requester('scep-renew');
    const r = pkiScep(fresh.keyFile, 'CN=scep-renew', ['--cert', f('scep-renew-old.crt'), '--key', old.keyFile]);
    expect(r.code, r.stderr).toBe(0);
    const cert = new X509Certificate(r.stdout);
    expect(cert.subject).toBe('CN=scep-renew');
    expect(cert.publicKey.export({ type: 'spki', format: 'der' })).toEqual(spki(fresh.key));
    verifyToRoot(r.stdout);

    const oldSerial = serialOf(first.stdout);
    const newSerial = serialOf(r.stdout);
    expect(newSerial).not.toBe(oldSerial);
    const list = certList('scep-renew');
    expect(list).toHaveLength(2);
    const o = list.find((c) => c.serial === oldSerial)!;
    expect(o.status).toBe('valid'); // within the grace period
    expect(o.superseded_by).toBe(newSerial);
    expect(list.find((c) => c.serial === newSerial)!.superseded_by).toBeNull();
  });

  it('pki --scep with a wrong challenge exits 1 with failInfo badRequest and gets nothing', async () => {
    const who = requester('scep-wrong');
    const r = pkiScep(who.keyFile, 'CN=scep-wrong', ['--password', 'not-the-secret-of-this-device-00']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/failInfo:\s+badRequest/);
    expect(r.stdout).toBe('');
    expect(await issuedTo('scep-wrong')).toBe(0);
  });

  it('pki --scep with a secret already used by another key exits 1 with failInfo badRequest; the same request again is a retransmission and gets the same certificate', async () => {
    const first = requester('scep-once');
    const enrolled = pkiScep(first.keyFile, 'CN=scep-once', ['--password', secret.get('scep-once')!]);
    expect(enrolled.code, enrolled.stderr).toBe(0);
    // same key, DN and challenge: the same CSR and transactionID (RFC 8894 §3.2.1.1), answered again.
    // pki signs with a fresh self-signed certificate on every run (its validity starts at the current
    // second): wait for the next second so the resend's signer certificate really differs
    await new Promise((r) => setTimeout(r, 1100));
    const resent = pkiScep(first.keyFile, 'CN=scep-once', ['--password', secret.get('scep-once')!]);
    expect(resent.code, resent.stderr).toBe(0);
    expect(serialOf(resent.stdout)).toBe(serialOf(enrolled.stdout));

    const again = pkiScep(requester('scep-once').keyFile, 'CN=scep-once', ['--password', secret.get('scep-once')!]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/failInfo:\s+badRequest/);
    expect(again.stdout).toBe('');
    expect(await issuedTo('scep-once')).toBe(1);
  });

  it("pki --scep with another device's secret (CSR CN differs from the secret's device) fails and issues to neither device", async () => {
    const r = pkiScep(requester('scep-victim').keyFile, 'CN=scep-victim', ['--password', secret.get('scep-other')!]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/failInfo:\s+badRequest/);
    expect(r.stdout).toBe('');
    expect(await issuedTo('scep-victim')).toBe(0);
    expect(await issuedTo('scep-other')).toBe(0);
  });
});

// ------------------------------------------------------------------ uniform failure

describe('uniform failure (no oracle between signature, envelope and inner request)', () => {
  it('a flipped signature, an envelope to another certificate, a bad key-transport padding, garbage content and a messageDigest mismatch all get the same signed FAILURE badMessageCheck, and nothing is issued', async () => {
    const device = 'scep-uniform';
    const who = requester(device);
    const valid = pkcsReq(who, device, secret.get(device)!);
    const stranger = requester('stranger');
    const signer = { certDer: who.certDer, key: who.key };
    const cases: Array<[string, { der: Buffer; transactionId: string; senderNonce: Buffer }]> = [
      ['signature flipped', { ...valid, der: flipByteOf(valid.der, valid.signature) }],
      ['envelope to another certificate', scepRequest({ envelopeDer: envelope(valid.csr, stranger.certDer, 'aes128').der, signer })],
      ['corrupted PKCS#1 padding of the encryptedKey', scepRequest({ envelopeDer: badPaddingEnvelope(valid.csr, raCertDer), signer })],
      ['content that is not a CSR', scepRequest({ envelopeDer: envelope(randomBytes(valid.csr.length), raCertDer, 'aes128').der, signer })],
      [
        'messageDigest mismatch',
        scepRequest({ envelopeDer: envelope(valid.csr, raCertDer, 'aes128').der, signer, messageDigest: createHash('sha256').update('another envelope').digest() }),
      ],
    ];
    const lengths: number[] = [];
    for (const [what, req] of cases) {
      expect(req.transactionId).toHaveLength(valid.transactionId.length);
      const reply = await post(req.der);
      const rep = expectFailure(reply, req, 'badMessageCheck');
      expect(rep.msg.failInfoText, what).toBeUndefined();
      lengths.push(reply.body.length);
    }
    // one answer for all: no size difference tells which check failed
    expect(new Set(lengths).size, `reply lengths ${lengths.join(', ')}`).toBe(1);
    expect(await issuedTo(device)).toBe(0);

    // the untouched request still enrolls: the secret was neither consumed nor locked out
    expectIssued(await post(valid.der), valid, who.key, device, who.key);
    expect(await issuedTo(device)).toBe(1);
  });

  it('a body that is not a SCEP pkiMessage (truncated, garbage, a bare CSR, empty) is HTTP 400', async () => {
    const who = requester('scep-400');
    const valid = pkcsReq(who, 'scep-400', 'x');
    for (const body of [valid.der.subarray(0, valid.der.length - 10), randomBytes(300), valid.csr, Buffer.alloc(0)]) {
      const r = await post(body);
      expect(r.status).toBe(400);
      expect(r.contentType).toMatch(/^text\/plain/);
    }
  });

  it('a 10 MB body is HTTP 413', async () => {
    const r = await post(Buffer.alloc(10 * 1024 * 1024, 0x30));
    expect(r.status).toBe(413);
  });

  it('an authentic, readable request of an unknown messageType (99) gets FAILURE badRequest and issues nothing', async () => {
    const device = 'scep-uniform-99';
    const who = requester(device);
    const csr = opensslCsr(dir, 'type99', who.keyFile, device);
    const req = scepRequest({ envelopeDer: envelope(csr, raCertDer, 'aes128').der, signer: who, messageType: '99' });
    expectFailure(await post(req.der), req, 'badRequest');
    expect(await issuedTo(device)).toBe(0);
  });

  it('a request signed with a P-256 certificate gets FAILURE badAlg before anything is issued (no reply could be encrypted to it); the secret stays usable', async () => {
    const device = 'scep-ec';
    const who = requester(device);
    const csr = opensslCsr(dir, 'ec-signed', who.keyFile, device, secret.get(device)!);
    const req = scepRequest({ envelopeDer: envelope(csr, raCertDer, 'aes128').der, signer: ecSelfSignedParty(dir, 'ec-signer', device) });
    expectFailure(await post(req.der), req, 'badAlg');
    expect(await issuedTo(device)).toBe(0);
    // the same CSR from the RSA requester enrolls: the one-time secret was not spent
    const rsa = scepRequest({ envelopeDer: envelope(csr, raCertDer, 'aes128').der, signer: who });
    expectIssued(await post(rsa.der), rsa, who.key, device, who.key);
  });
});

// ------------------------------------------------------------------ GET PKIOperation

describe('GET PKIOperation', () => {
  it('a URL-encoded base64 PKCSReq of several KB gets SUCCESS and the certificate', async () => {
    const device = 'scep-get-1';
    const who = requester(device);
    const req = pkcsReq(who, device, secret.get(device)!);
    const url = `${scepUrl}?operation=PKIOperation&message=${encodeURIComponent(req.der.toString('base64'))}`;
    expect(url.length).toBeGreaterThan(3000);
    expectIssued(await scepHttp(url), req, who.key, device, who.key);
  });

  it("the same with '+' left unescaped (it arrives as a space) gets SUCCESS", async () => {
    const device = 'scep-get-2';
    const who = requester(device);
    let req = pkcsReq(who, device, secret.get(device)!);
    // a fresh senderNonce until the base64 has a '+' (almost always at once)
    while (!req.der.toString('base64').includes('+')) req = { ...req, ...scepRequest({ envelopeDer: envelope(req.csr, raCertDer, 'aes128').der, signer: who }) };
    const b64 = req.der.toString('base64');
    const message = b64.replace(/\//g, '%2F').replace(/=/g, '%3D');
    expect(message).toContain('+');
    expectIssued(await scepHttp(`${scepUrl}?operation=PKIOperation&message=${message}`), req, who.key, device, who.key);
  });
});

// ------------------------------------------------------------------ golden vectors

describe('golden vectors (envelopes, CSRs and certificates by openssl, generated here)', () => {
  it('a legacy DES3 + SHA-1 PKCSReq is refused with FAILURE badMessageCheck where DES3 and SHA-1 are not offered, and enrolls at a profile with legacyAlgorithms', async () => {
    const device = 'scep-legacy';
    const who = requester(device);
    const csr = opensslCsr(dir, 'legacy', who.keyFile, device, secret.get(device)!);
    const legacy = scepRequest({ envelopeDer: opensslEnvelope(csr, f('fleetca-ra.pem'), '-des3'), signer: who, digest: 'sha1' });
    // not offered at /scep nor at the legacy path: the envelope and the digest are refused like any unreadable message
    for (const url of [scepUrl, `${base}/cgi-bin/pkiclient.exe`]) {
      const rep = expectFailure(await post(legacy.der, url), legacy, 'badMessageCheck');
      expect(rep.msg.digestName).toBe('sha256'); // the reply does not fall back to SHA-1
    }
    // each legacy algorithm alone is refused too
    const des3Sha256 = scepRequest({ envelopeDer: opensslEnvelope(csr, f('fleetca-ra.pem'), '-des3'), signer: who });
    expectFailure(await post(des3Sha256.der), des3Sha256, 'badMessageCheck');
    const aesSha1 = scepRequest({ envelopeDer: opensslEnvelope(csr, f('fleetca-ra.pem'), '-aes128'), signer: who, digest: 'sha1' });
    expectFailure(await post(aesSha1.der), aesSha1, 'badMessageCheck');
    expect(await issuedTo(device)).toBe(0);

    // the profile that enables them lists them and takes the very same message; the secret was not spent above
    const caps = (await scepHttp(`${base}/scep/legacy?operation=GetCACaps`)).body.toString().trim().split('\n');
    expect(caps).toEqual(expect.arrayContaining(['DES3', 'SHA-1', 'AES', 'SHA-256']));
    const reply = await post(legacy.der, `${base}/scep/legacy`);
    expectIssued(reply, legacy, who.key, device, who.key);
    const rep = readCertRep(reply.body, raCertDer);
    expect(rep.msg.digestName).toBe('sha1');
    expect(decodeEnvelopedData(rep.msg.content!).cipher.name).toBe('des-ede3-cbc');
  });

  it('a PKCSReq without challenge signed with the current fleetca certificate renews it (Cisco IOS / macOS style)', async () => {
    const device = 'scep-cisco';
    const old = requester(device);
    const first = pkcsReq(old, device, secret.get(device)!);
    const oldCert = expectIssued(await post(first.der), first, old.key, device, old.key);

    const fresh = requester(device);
    const csr = opensslCsr(dir, 'cisco-renew', fresh.keyFile, device);
    const renewal = scepRequest({ envelopeDer: opensslEnvelope(csr, f('fleetca-ra.pem'), '-aes256'), signer: { certDer: oldCert.raw, key: old.key } });
    // sealed to the signer: the current certificate's key opens the reply
    const reply = await post(renewal.der);
    const newCert = expectIssued(reply, renewal, old.key, device, fresh.key);
    expect(readCertRep(reply.body, raCertDer).msg.digestName).toBe('sha256');
    const s = await supersession(oldCert.raw, newCert.raw);
    expect(s.supersededBy).toBe(s.newSerial);
    expect(await issuedTo(device)).toBe(2);
  });
});

// ------------------------------------------------------------------ GetCert, GetCRL, CertPoll

describe('GetCert, GetCRL and CertPoll', () => {
  /** Opens a SUCCESS reply's envelope with the requester's key: the raw degenerate PKCS#7. */
  function openReply(reply: ScepReply, req: { transactionId: string; senderNonce: Buffer }, key: KeyObject): Buffer {
    const rep = certRepFor(reply, req);
    expect(rep.msg.pkiStatus).toBe(SCEP_PKI_STATUS.SUCCESS);
    const env = decodeEnvelopedData(rep.msg.content!);
    const d = createDecipheriv(env.cipher.name, rsaPkcs1Decrypt(key, env.encryptedKey), env.iv);
    return Buffer.concat([d.update(env.encryptedContent), d.final()]);
  }

  it('GetCert returns a certificate by issuer and serial, GetCRL the newest CRL of its issuer; an unknown serial and an unknown CertPoll transaction get FAILURE badCertId', async () => {
    const device = 'scep-getcert';
    const who = requester(device);
    const enrolledReq = pkcsReq(who, device, secret.get(device)!);
    const cert = expectIssued(await post(enrolledReq.der), enrolledReq, who.key, device, who.key);
    const parts = certificateParts(cert.raw);
    const issuerAndSerial = encodeSequence(Buffer.from(parts.issuerDer), encodeUnsignedInteger(Buffer.from(parts.serial)));

    const getCert = scepRequest({ envelopeDer: envelope(issuerAndSerial, raCertDer, 'aes128').der, signer: who, messageType: '21' });
    const certsOnly = openReply(await post(getCert.der), getCert, who.key);
    expect(decodeCertsOnly(certsOnly)).toEqual([cert.raw]);

    const getCrl = scepRequest({ envelopeDer: envelope(issuerAndSerial, raCertDer, 'aes128').der, signer: who, messageType: '22' });
    const crlsOnly = openReply(await post(getCrl.der), getCrl, who.key);
    const printed = opensslOk(['pkcs7', '-inform', 'DER', '-print_certs'], crlsOnly);
    expect(printed).toMatch(/Certificate Revocation List[\s\S]*Issuer: O = fleetca, CN = fleetca Device CA/);
    // a CRLs-only message: no certificate in it
    expect(printed).not.toMatch(/BEGIN CERTIFICATE/);

    const unknown = encodeSequence(Buffer.from(parts.issuerDer), encodeUnsignedInteger(randomBytes(16)));
    const getUnknown = scepRequest({ envelopeDer: envelope(unknown, raCertDer, 'aes128').der, signer: who, messageType: '21' });
    expectFailure(await post(getUnknown.der), getUnknown, 'badCertId');

    const issuerAndSubject = encodeSequence(Buffer.from(parts.issuerDer), Buffer.from(parts.subjectDer));
    const poll = scepRequest({ envelopeDer: envelope(issuerAndSubject, raCertDer, 'aes128').der, signer: who, messageType: '20' });
    expectFailure(await post(poll.der), poll, 'badCertId');
  });
});
