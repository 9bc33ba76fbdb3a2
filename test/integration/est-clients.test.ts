/**
 * EST (RFC 7030, RFC 8951) against the real `fleetca serve`, with the real clients a fleet uses:
 * strongSwan `pki --est/--estca`, curl + openssl (CLIENTS.md sections 1 and 3a), and a Node TLS
 * socket that reads its own channel binding (RFC 7030 §3.5) before sending the request by hand.
 *
 * One data dir, one config copy and one server for the whole file. The config copy adds two
 * profiles cloned from camera.yaml: `gated` (approval required) and `bound` (channel binding
 * required), and sets Retry-After to 1 s so a polling pki finishes quickly. The public URL points
 * at the server's own HTTP port, so pki's revocation check of the TLS server certificate fetches
 * fleetca's CRL instead of whatever listens on localhost:8080.
 */
import { spawnSync } from 'node:child_process';
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { configCopy, fleetca, openssl, opensslOk, startServe, type RunningServe } from '../helpers/cli.js';
import { curl, fleetcaBatch, freePort, header, httpOverSocket, pemBlocks, pki, pkiKeyAndCsr as makeKeyAndCsr, runAsync, tlsConnect, withoutTpmNoise } from '../helpers/est.js';

const PKCS7_CERTS_ONLY = 'application/pkcs7-mime; smime-type=certs-only';

/** Devices with a one-time secret, created by `fleetca secret create` before the tests. */
const SECRETS: Array<[device: string, profile: string]> = [
  ['pki-p256', 'camera'],
  ['pki-ed25519', 'sensor'],
  ['pki-renew', 'camera'],
  ['pki-once', 'camera'],
  ['curl-1', 'camera'],
  ['skg-1', 'camera'],
  ['gate-ok', 'gated'],
  ['gate-no', 'gated'],
  ['bound-12', 'bound'],
  ['bound-13', 'bound'],
];

let db: TestDatabase;
let dir: string;
let cfgDir: string;
let env: Record<string, string | undefined>;
let server: RunningServe | undefined;
let est: string;
let httpsPort: number;
const secret = new Map<string, string>();
const f = (n: string) => path.join(dir, n);

function editYaml(file: string, edit: (doc: YAML.Document) => void): void {
  const doc = YAML.parseDocument(readFileSync(file, 'utf8'));
  edit(doc);
  writeFileSync(file, doc.toString());
}

/** A profile file cloned from camera.yaml with edits (no IDevID trust: only camera and sensor take IDevIDs). */
function cameraClone(configDir: string, name: string, edit: (doc: YAML.Document) => void): void {
  const file = path.join(configDir, 'profiles', `${name}.yaml`);
  writeFileSync(file, readFileSync(path.join(configDir, 'profiles', 'camera.yaml')));
  editYaml(file, (doc) => {
    doc.set('description', `camera clone for the EST tests (${name})`);
    doc.deleteIn(['enrollment', 'idevid']);
    edit(doc);
  });
}

beforeAll(async () => {
  db = await createTestDatabase();
  dir = mkdtempSync(path.join(os.tmpdir(), 'fleetca-est-'));
  // as in the other integration tests: a data-dir cluster (as root: run by the postgres user) must
  // reach the data dir; here the database comes from test/helpers/db.ts through DATABASE_URL
  chmodSync(dir, 0o711);
  cfgDir = configCopy((d) => {
    cameraClone(d, 'gated', (doc) => doc.setIn(['approval', 'required'], true));
    cameraClone(d, 'bound', (doc) => doc.setIn(['enrollment', 'channelBinding'], true));
    editYaml(path.join(d, 'ca.yaml'), (doc) => doc.setIn(['enrollment', 'pendingRetryAfter'], 1));
  });
  const httpPort = await freePort();
  env = { DATABASE_URL: db.connectionString, FLEETCA_DATA_DIR: f('data'), FLEETCA_CONFIG_DIR: cfgDir, FLEETCA_KEY_PASSPHRASE: 'est clients passphrase' };
  const init = fleetca(['init', '--public-url', `http://127.0.0.1:${httpPort}`], env);
  expect(init.code, init.stderr).toBe(0);

  // the server starts while the CA chain is read and the secrets are made (one CLI process for all)
  const serving = startServe(env, ['--http-port', String(httpPort)]).then((s) => (server = s));
  serving.catch(() => undefined); // awaited below; an early failure must not count as unhandled
  const [chain, ...created] = await fleetcaBatch(
    [['ca', 'chain'], ...SECRETS.map(([device, profile]) => ['secret', 'create', '--device', device, '--profile', profile])],
    env,
  );
  await serving;
  est = server!.httpsUrl;
  httpsPort = Number(new URL(est).port);

  expect(chain!.code, chain!.stderr).toBe(0);
  const [deviceCa, root] = pemBlocks(chain!.stdout);
  expect(new X509Certificate(deviceCa!).subject).toContain('CN=fleetca Device CA');
  expect(new X509Certificate(root!).subject).toContain('CN=fleetca Root CA');
  writeFileSync(f('device-ca.pem'), deviceCa!);
  writeFileSync(f('root.pem'), root!);
  created.forEach((r, i) => {
    expect(r.code, r.stderr).toBe(0);
    // the secret alone on stdout
    expect(r.stdout).toMatch(/^[A-Za-z0-9_-]{32}\n$/);
    secret.set(SECRETS[i]![0], r.stdout.trim());
  });
}, 180_000);

afterAll(async () => {
  if (server && server.proc.exitCode === null) await server.stop();
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
  if (cfgDir) rmSync(cfgDir, { recursive: true, force: true });
});

// ------------------------------------------------------------------ helpers

const basic = (device: string) => `${device}:${secret.get(device)!}`;
const trustArgs = () => ['--cacert', f('root.pem'), '--cacert', f('device-ca.pem')];

/** A key and a PEM CSR made by pki itself (`--type ecdsa` P-256 or `ed25519`). */
const pkiKeyAndCsr = (name: string, type: 'ecdsa' | 'ed25519', cn: string) => makeKeyAndCsr(dir, name, type, cn);

/** An openssl P-256 key and the base64 (line-wrapped by `openssl base64`) of its DER CSR. */
function opensslKeyAndCsr(name: string, cn: string, key?: string): { key: string; b64: string } {
  const keyFile = key ?? f(`${name}.key`);
  const keyArgs = key ? ['-key', key] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile];
  opensslOk(['req', '-new', ...keyArgs, '-subj', `/CN=${cn}`, '-outform', 'DER', '-out', f(`${name}.csr.der`)]);
  opensslOk(['base64', '-in', f(`${name}.csr.der`), '-out', f(`${name}.csr.b64`)]);
  return { key: keyFile, b64: f(`${name}.csr.b64`) };
}

/** coreutils `base64 -d` (CLIENTS.md 3a: `openssl base64 -d` silently yields nothing on one long line). */
function base64d(text: Buffer | string): Buffer {
  const r = spawnSync('base64', ['-d'], { input: text });
  if (r.status !== 0) throw new Error(`base64 -d failed: ${r.stderr.toString()}`);
  return r.stdout;
}

/** The certificates (PEM) of a base64 certs-only PKCS#7 body. */
function certsOfBody(body: Buffer): string[] {
  return pemBlocks(opensslOk(['pkcs7', '-inform', 'DER', '-print_certs'], base64d(body)));
}

/** `openssl verify -x509_strict` from the root through the device CA. */
function verifyToRoot(certFile: string): void {
  const out = opensslOk(['verify', '-x509_strict', '-CAfile', f('root.pem'), '-untrusted', f('device-ca.pem'), certFile]);
  expect(out.trim()).toBe(`${certFile}: OK`);
}

const spkiOfCert = (pem: string) => new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' });
const spkiOfKey = (file: string) => createPublicKey(createPrivateKey(readFileSync(file))).export({ type: 'spki', format: 'der' });
const serialOf = (file: string) => opensslOk(['x509', '-in', file, '-noout', '-serial']).trim().replace(/^serial=/, '');

/** `pki --est` with one-time secret, the issued certificate written to `<name>.crt`. */
function pkiEnroll(name: string, csr: string, device: string) {
  const r = pki(['--est', '--url', est, ...trustArgs(), '--in', csr, '--userpass', basic(device), '--outform', 'pem'], dir);
  if (r.code === 0) writeFileSync(f(`${name}.crt`), r.stdout);
  return { ...r, cert: f(`${name}.crt`) };
}

async function until(what: string, cond: () => boolean, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface RequestJson {
  id: string;
  device: string;
  profile: string;
  state: string;
  via: string;
  serial: string | null;
}

function requests(state: string): RequestJson[] {
  const r = fleetca(['request', 'list', '--state', state, '--json'], env);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as RequestJson[];
}

// ------------------------------------------------------------------ strongSwan pki

describe('strongSwan pki', () => {
  it('pki --estca writes the root and the device CA, both trusted from the root alone', () => {
    const r = pki(['--estca', '--url', est, '--cacert', f('root.pem'), '--caout', f('estca.pem'), '--outform', 'pem', '--force'], dir);
    expect(r.code, r.stderr).toBe(0);
    // pki checked the revocation status of the TLS server certificate and of the device CA at
    // fleetca's own CDP (the public URL is this server's HTTP listener): both good
    expect(r.stderr.match(/^certificate status is good$/gm)).toHaveLength(2);
    expect(r.stderr).toContain('Root CA equals trusted TLS Root CA');
    expect(r.stderr).toMatch(/Root CA cert is trusted, .* written to '.*estca\.pem'/);
    expect(r.stderr).toMatch(/Sub CA cert is trusted, .* written to '.*estca-1\.pem'/);
    const fp = (file: string) => new X509Certificate(readFileSync(file)).fingerprint256;
    expect(fp(f('estca.pem'))).toBe(fp(f('root.pem')));
    expect(fp(f('estca-1.pem'))).toBe(fp(f('device-ca.pem')));
  });

  it('pki --est with a one-time secret enrolls a P-256 key: CN = device id, issued by the device CA, verifies to the root', () => {
    const { key, csr } = pkiKeyAndCsr('p256', 'ecdsa', 'pki-p256');
    const r = pkiEnroll('p256', csr, 'pki-p256');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('Issued certificate is trusted');
    const cert = new X509Certificate(readFileSync(r.cert));
    expect(cert.subject).toBe('CN=pki-p256');
    expect(cert.issuer).toContain('CN=fleetca Device CA');
    expect(spkiOfCert(readFileSync(r.cert, 'utf8'))).toEqual(spkiOfKey(key));
    verifyToRoot(r.cert);
  });

  it('pki --est with a one-time secret enrolls an Ed25519 key (sensor profile)', () => {
    const { key, csr } = pkiKeyAndCsr('ed', 'ed25519', 'pki-ed25519');
    const r = pkiEnroll('ed', csr, 'pki-ed25519');
    expect(r.code, r.stderr).toBe(0);
    const cert = new X509Certificate(readFileSync(r.cert));
    expect(cert.subject).toBe('CN=pki-ed25519');
    expect(cert.publicKey.asymmetricKeyType).toBe('ed25519');
    expect(spkiOfCert(readFileSync(r.cert, 'utf8'))).toEqual(spkiOfKey(key));
    verifyToRoot(r.cert);
  });

  it('pki --est --cert/--key re-enrolls with a new key; the old certificate is superseded, still valid for the grace period', () => {
    const old = pkiKeyAndCsr('renew-old', 'ecdsa', 'pki-renew');
    const first = pkiEnroll('renew-old', old.csr, 'pki-renew');
    expect(first.code, first.stderr).toBe(0);

    const fresh = pkiKeyAndCsr('renew-new', 'ecdsa', 'pki-renew');
    const r = pki(['--est', '--url', est, ...trustArgs(), '--in', fresh.csr, '--cert', first.cert, '--key', old.key, '--outform', 'pem'], dir);
    expect(r.code, r.stderr).toBe(0);
    // authenticated by the TLS client certificate (simplereenroll), not by a secret
    expect(r.stderr).toContain("sending TLS client certificate 'CN=pki-renew'");
    writeFileSync(f('renew-new.crt'), r.stdout);
    expect(new X509Certificate(r.stdout).subject).toBe('CN=pki-renew');
    expect(spkiOfCert(r.stdout)).toEqual(spkiOfKey(fresh.key));
    verifyToRoot(f('renew-new.crt'));

    const oldSerial = serialOf(first.cert);
    const newSerial = serialOf(f('renew-new.crt'));
    expect(newSerial).not.toBe(oldSerial);
    const shown = fleetca(['cert', 'show', oldSerial, '--json'], env);
    expect(shown.code, shown.stderr).toBe(0);
    const j = JSON.parse(shown.stdout) as { status: string; superseded_by: string | null; supersede_revoke_at: string | null };
    expect(j.status).toBe('valid');
    expect(j.superseded_by).toBe(newSerial);
    // camera: supersededGrace 7d
    const graceEnd = new Date(j.supersede_revoke_at!).getTime();
    expect(Math.abs(graceEnd - (Date.now() + 7 * 86_400_000))).toBeLessThan(10 * 60_000);
  });

  it('pki --est with an already used secret fails with HTTP 401', () => {
    const { csr } = pkiKeyAndCsr('once', 'ecdsa', 'pki-once');
    const first = pkiEnroll('once', csr, 'pki-once');
    expect(first.code, first.stderr).toBe(0);
    const again = pkiEnroll('once-again', csr, 'pki-once');
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain('EST request failed: HTTP 401');
    expect(again.stdout).toBe('');
  });
});

// ------------------------------------------------------------------ curl + openssl

describe('curl + openssl', () => {
  let curlCert: string | undefined;

  it('cacerts is one base64 line decoding to a certs-only PKCS#7 of the device CA and the root', () => {
    const r = curl(['--cacert', f('root.pem'), `${est}/.well-known/est/cacerts`]);
    expect(r.status, r.stderr).toBe(200);
    expect(header(r.headers, 'content-type')).toBe(PKCS7_CERTS_ONLY);
    expect(header(r.headers, 'content-transfer-encoding')).toBe('base64');
    expect(r.body.toString('latin1')).toMatch(/^[A-Za-z0-9+/]+={0,2}$/);
    const certs = certsOfBody(r.body);
    expect(certs).toHaveLength(2);
    expect(certs.map((c) => new X509Certificate(c).fingerprint256)).toEqual([
      new X509Certificate(readFileSync(f('device-ca.pem'))).fingerprint256,
      new X509Certificate(readFileSync(f('root.pem'))).fingerprint256,
    ]);
  });

  it('simpleenroll takes a line-wrapped base64 CSR with HTTP Basic and answers certs-only with a Content-Length, not chunked', () => {
    const { b64 } = opensslKeyAndCsr('curl-1', 'curl-1');
    expect(readFileSync(b64, 'utf8').trimEnd().split('\n').length).toBeGreaterThan(1);
    const r = curl([
      '--cacert', f('root.pem'),
      '--user', basic('curl-1'),
      '-H', 'Content-Type: application/pkcs10',
      '-H', 'Content-Transfer-Encoding: base64',
      '--data-binary', `@${b64}`,
      `${est}/.well-known/est/simpleenroll`,
    ]);
    expect(r.status, r.body.toString()).toBe(200);
    expect(r.headers).toMatch(/^HTTP\/1\.1 200/);
    expect(header(r.headers, 'content-type')).toBe(PKCS7_CERTS_ONLY);
    expect(Number(header(r.headers, 'content-length'))).toBe(r.body.length);
    expect(header(r.headers, 'transfer-encoding')).toBeUndefined();
    expect(r.body.toString('latin1')).toMatch(/^[A-Za-z0-9+/]+={0,2}$/);
    const certs = certsOfBody(r.body);
    expect(certs).toHaveLength(1);
    writeFileSync(f('curl-1.crt'), certs[0]!);
    expect(new X509Certificate(certs[0]!).subject).toBe('CN=curl-1');
    verifyToRoot(f('curl-1.crt'));
    curlCert = f('curl-1.crt');
  });

  it('simplereenroll authenticated by the TLS client certificate (curl --cert/--key) issues a new certificate', () => {
    expect(curlCert, 'needs the certificate of the simpleenroll test').toBeDefined();
    // same key (camera allows key reuse), no Authorization header
    const { b64 } = opensslKeyAndCsr('curl-1-re', 'curl-1', f('curl-1.key'));
    const r = curl([
      '--cacert', f('root.pem'),
      '--cert', curlCert!, '--key', f('curl-1.key'),
      '-H', 'Content-Type: application/pkcs10',
      '--data-binary', `@${b64}`,
      `${est}/.well-known/est/simplereenroll`,
    ]);
    expect(r.status, r.body.toString()).toBe(200);
    expect(header(r.headers, 'content-type')).toBe(PKCS7_CERTS_ONLY);
    const [cert] = certsOfBody(r.body);
    writeFileSync(f('curl-1-re.crt'), cert!);
    expect(new X509Certificate(cert!).subject).toBe('CN=curl-1');
    expect(serialOf(f('curl-1-re.crt'))).not.toBe(serialOf(curlCert!));
    expect(spkiOfCert(cert!)).toEqual(spkiOfKey(f('curl-1.key')));
    verifyToRoot(f('curl-1-re.crt'));
  });

  it("serverkeygen answers multipart/mixed: a PKCS#8 key whose public key is the certificate's, not the CSR's", () => {
    const { key: csrKey, b64 } = opensslKeyAndCsr('skg-csr', 'skg-1');
    const r = curl([
      '--cacert', f('root.pem'),
      '--user', basic('skg-1'),
      '-H', 'Content-Type: application/pkcs10',
      '--data-binary', `@${b64}`,
      `${est}/.well-known/est/serverkeygen`,
    ]);
    expect(r.status, r.body.toString()).toBe(200);
    expect(header(r.headers, 'cache-control')).toBe('no-store');
    const boundary = /^multipart\/mixed; boundary=([A-Za-z0-9'()+_,./:=?-]+)$/.exec(header(r.headers, 'content-type') ?? '')?.[1];
    expect(boundary, header(r.headers, 'content-type')).toBeDefined();
    const body = r.body.toString('latin1');
    expect(body.trimEnd().endsWith(`--${boundary}--`)).toBe(true);
    const parts = body
      .split(`--${boundary}`)
      .slice(1, -1)
      .map((p) => {
        const [head, content] = p.replace(/^\r\n/, '').split('\r\n\r\n');
        return { type: header(head!, 'content-type'), cte: header(head!, 'content-transfer-encoding'), content: content!.trim() };
      });
    // RFC 7030 §4.4.2: the key part, then the certificate part
    expect(parts.map((p) => p.type)).toEqual(['application/pkcs8', PKCS7_CERTS_ONLY]);
    expect(parts.map((p) => p.cte)).toEqual(['base64', 'base64']);

    writeFileSync(f('skg.key.der'), base64d(parts[0]!.content));
    const [cert] = certsOfBody(Buffer.from(parts[1]!.content));
    writeFileSync(f('skg.crt'), cert!);
    expect(new X509Certificate(cert!).subject).toBe('CN=skg-1');
    verifyToRoot(f('skg.crt'));
    const keyPub = opensslOk(['pkey', '-inform', 'DER', '-in', f('skg.key.der'), '-pubout']);
    const certPub = opensslOk(['x509', '-in', f('skg.crt'), '-noout', '-pubkey']);
    expect(keyPub).toMatch(/^-----BEGIN PUBLIC KEY-----/);
    expect(keyPub).toBe(certPub);
    // the CSR's own key is ignored
    expect(opensslOk(['pkey', '-in', csrKey, '-pubout'])).not.toBe(certPub);
  });

  it('csrattrs for the camera label is DER that openssl parses, asking for an EC key; without label or client certificate 204', () => {
    const r = curl(['--cacert', f('root.pem'), `${est}/.well-known/est/camera/csrattrs`]);
    expect(r.status).toBe(200);
    expect(header(r.headers, 'content-type')).toBe('application/csrattrs');
    const parsed = opensslOk(['asn1parse', '-inform', 'DER'], base64d(r.body));
    expect(parsed).toContain(':id-ecPublicKey');
    expect(parsed).toContain(':prime256v1');

    const none = curl(['--cacert', f('root.pem'), `${est}/.well-known/est/csrattrs`]);
    expect(none.status).toBe(204);
    expect(none.body.length).toBe(0);
  });
});

// ------------------------------------------------------------------ approval queue

describe('approval queue (profile gated: approval.required)', () => {
  /** The gated device's CSR, PEM (for pki) and base64 DER (for curl): the same key either way. */
  function gatedCsr(device: string): { pem: string; b64: string } {
    opensslOk(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f(`${device}.key`), '-subj', `/CN=${device}`, '-out', f(`${device}.csr`)]);
    opensslOk(['req', '-in', f(`${device}.csr`), '-outform', 'DER', '-out', f(`${device}.csr.der`)]);
    opensslOk(['base64', '-in', f(`${device}.csr.der`), '-out', f(`${device}.csr.b64`)]);
    return { pem: f(`${device}.csr`), b64: f(`${device}.csr.b64`) };
  }
  const curlEnroll = (device: string, b64: string) =>
    curl(['--cacert', f('root.pem'), '--user', basic(device), '-H', 'Content-Type: application/pkcs10', '--data-binary', `@${b64}`, `${est}/.well-known/est/gated/simpleenroll`]);

  it('enrollment waits with 202 + Retry-After until approved; pki, polling with the same CSR, then receives the certificate', async () => {
    const csr = gatedCsr('gate-ok');
    const first = curlEnroll('gate-ok', csr.b64);
    expect(first.status, first.body.toString()).toBe(202);
    // enrollment.pendingRetryAfter, set to 1 in this config copy
    expect(header(first.headers, 'retry-after')).toBe('1');
    const pending = requests('pending').filter((q) => q.device === 'gate-ok');
    expect(pending).toMatchObject([{ profile: 'gated', state: 'pending', via: 'est', serial: null }]);
    expect(first.body.toString()).toContain(`request ${pending[0]!.id} waits for approval`);

    // pki asks again (no label: the secret names the profile) and polls on 202
    let pkiErr = '';
    let exited = false;
    const polling = runAsync('pki', ['--est', '--url', est, ...trustArgs(), '--in', csr.pem, '--userpass', basic('gate-ok'), '--interval', '1', '--maxpolltime', '30', '--outform', 'pem'], {
      cwd: dir,
      timeoutMs: 40_000,
      onStderr: (s) => (pkiErr += s),
    }).finally(() => (exited = true));
    await until('pki to see 202', () => pkiErr.includes('EST request pending') || exited);
    expect(exited, withoutTpmNoise(pkiErr)).toBe(false);
    const approve = fleetca(['request', 'approve', pending[0]!.id], env);
    expect(approve.code, approve.stderr).toBe(0);
    const r = await polling;
    expect(r.code, withoutTpmNoise(r.stderr)).toBe(0);
    writeFileSync(f('gate-ok.crt'), r.stdout);
    expect(new X509Certificate(r.stdout).subject).toBe('CN=gate-ok');
    verifyToRoot(f('gate-ok.crt'));
    // the request is closed with the certificate it produced
    const closed = requests('issued').find((q) => q.id === pending[0]!.id);
    expect(closed?.serial).toBe(serialOf(f('gate-ok.crt')));
  });

  it('a rejected request is refused with 403 on the next try', () => {
    const csr = gatedCsr('gate-no');
    const first = curlEnroll('gate-no', csr.b64);
    expect(first.status).toBe(202);
    // the 202 body names the request
    const id = /^request (\d+) waits for approval$/m.exec(first.body.toString())?.[1];
    expect(id, first.body.toString()).toBeDefined();
    const reject = fleetca(['request', 'reject', id!, '--reason', 'not on the purchase order'], env);
    expect(reject.code, reject.stderr).toBe(0);
    const again = curlEnroll('gate-no', csr.b64);
    expect(again.status).toBe(403);
    expect(again.body.toString()).toContain('not on the purchase order');
  });
});

// ------------------------------------------------------------------ IDevID

describe('IDevID (manufacturing CA) as TLS client certificate', () => {
  it('a fleetca IDevID enrolls at the camera label without HTTP Basic; once revoked, 403', () => {
    opensslOk(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('idev.key'), '-subj', '/CN=idev-1', '-out', f('idev.csr')]);
    const issued = fleetca(['issue', '--profile', 'manufacturing-idevid', '--device', 'idev-1', '--csr', f('idev.csr')], env);
    expect(issued.code, issued.stderr).toBe(0);
    writeFileSync(f('idev.crt'), issued.stdout);
    expect(new X509Certificate(issued.stdout).issuer).toContain('CN=fleetca Manufacturing CA');

    const { b64 } = opensslKeyAndCsr('idev-op', 'idev-1');
    const enroll = () =>
      curl([
        '--cacert', f('root.pem'),
        '--cert', f('idev.crt'), '--key', f('idev.key'),
        '-H', 'Content-Type: application/pkcs10',
        '--data-binary', `@${b64}`,
        `${est}/.well-known/est/camera/simpleenroll`,
      ]);
    const r = enroll();
    expect(r.status, r.body.toString()).toBe(200);
    const [cert] = certsOfBody(r.body);
    writeFileSync(f('idev-op.crt'), cert!);
    const op = new X509Certificate(cert!);
    expect(op.subject).toBe('CN=idev-1');
    expect(op.issuer).toContain('CN=fleetca Device CA');
    verifyToRoot(f('idev-op.crt'));

    const revoke = fleetca(['revoke', serialOf(f('idev.crt')), '--reason', 'keyCompromise'], env);
    expect(revoke.code, revoke.stderr).toBe(0);
    const refused = enroll();
    expect(refused.status).toBe(403);
    expect(refused.body.toString()).toContain('revoked');
  });

  it('an unknown label is 404', () => {
    const r = curl(['--cacert', f('root.pem'), '--user', basic('curl-1'), '-H', 'Content-Type: application/pkcs10', '--data-binary', 'MIIB', `${est}/.well-known/est/no-such-profile/simpleenroll`]);
    expect(r.status).toBe(404);
    expect(curl(['--cacert', f('root.pem'), `${est}/.well-known/est/no-such-profile/cacerts`]).status).toBe(404);
  });
});

// ------------------------------------------------------------------ channel binding

describe('channel binding (profile bound: enrollment.channelBinding)', () => {
  /** A DER CSR whose challengePassword is `password`, made by openssl from a config file. */
  function csrWithChallenge(name: string, cn: string, password: string): Buffer {
    const key = f(`${name}.key`);
    opensslOk(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key]);
    const cnf = f(`${name}.cnf`);
    writeFileSync(cnf, ['[ req ]', 'prompt = no', 'distinguished_name = dn', 'attributes = req_attributes', '[ dn ]', `CN = ${cn}`, '[ req_attributes ]', `challengePassword = ${password}`, ''].join('\n'));
    opensslOk(['req', '-new', '-key', key, '-config', cnf, '-outform', 'DER', '-out', f(`${name}.csr.der`)]);
    const der = readFileSync(f(`${name}.csr.der`));
    expect(openssl(['req', '-inform', 'DER', '-noout', '-text'], der).stdout).toContain(`challengePassword        :${password}`);
    return der;
  }

  const requestHead = (device: string) => [
    'POST /.well-known/est/bound/simpleenroll HTTP/1.1',
    `Host: 127.0.0.1:${httpsPort}`,
    `Authorization: Basic ${Buffer.from(basic(device)).toString('base64')}`,
    'Content-Type: application/pkcs10',
    'Content-Transfer-Encoding: base64',
  ];

  async function boundEnrollment(device: string, version: 'TLSv1.2' | 'TLSv1.3', binding: (s: import('node:tls').TLSSocket) => Buffer) {
    const ca = readFileSync(f('root.pem'), 'utf8');
    const own = await tlsConnect(httpsPort, ca, { minVersion: version, maxVersion: version });
    const other = await tlsConnect(httpsPort, ca, { minVersion: version, maxVersion: version });
    try {
      expect(own.getProtocol()).toBe(version);
      expect(own.isSessionReused()).toBe(false);
      const cb = binding(own);
      expect(binding(other)).not.toEqual(cb);
      const body = Buffer.from(csrWithChallenge(device, device, cb.toString('base64')).toString('base64'));

      // the same CSR over another connection: its binding is not the one in the CSR
      const elsewhere = await httpOverSocket(other, requestHead(device), body);
      expect(elsewhere.status, elsewhere.body.toString()).toBe(403);
      expect(elsewhere.body.toString()).toContain('channel binding');
      // over its own connection (the secret was not spent by the refusal)
      const r = await httpOverSocket(own, requestHead(device), body);
      expect(r.status, r.body.toString()).toBe(200);
      expect(header(r.headers, 'content-type')).toBe(PKCS7_CERTS_ONLY);
      const [cert] = certsOfBody(r.body);
      writeFileSync(f(`${device}.crt`), cert!);
      expect(new X509Certificate(cert!).subject).toBe(`CN=${device}`);
      verifyToRoot(f(`${device}.crt`));
    } finally {
      own.destroy();
      other.destroy();
    }
  }

  it("TLS 1.2: a CSR carrying its connection's tls-unique is issued over that connection and refused (403) over another", async () => {
    // RFC 5929: the first Finished of the handshake, the client's own on a full handshake
    await boundEnrollment('bound-12', 'TLSv1.2', (s) => s.getFinished()!);
  });

  it("TLS 1.3: a CSR carrying its connection's tls-exporter is issued over that connection and refused (403) over another", async () => {
    // RFC 9266: 32 bytes, label EXPORTER-Channel-Binding, empty context
    await boundEnrollment('bound-13', 'TLSv1.3', (s) => s.exportKeyingMaterial(32, 'EXPORTER-Channel-Binding', Buffer.alloc(0)));
  });
});
