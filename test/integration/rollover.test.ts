/**
 * Intermediate CA rollover end to end, against a running `fleetca serve` and real clients:
 * devices enrolled under CA 1 (strongSwan `pki --est`, `pki --scep`); `fleetca ca rollover
 * --intermediate` with the root offline (refused without the root key and with a wrong one; two
 * started at once: one wins); the server picks the new CA up without a restart (EST cacerts
 * carries both); re-enrollment over EST and SCEP and a first enrollment get CA 2 certificates;
 * both chains verify with `openssl verify`; a CA-1 certificate revoked after the rollover is in
 * CA 1's CRL and answered revoked by CA 1's own responder; a scheduled rollover (--at) is
 * announced by SCEP GetNextCACert, signed by the current CA, and does not change issuance yet.
 */
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { fleetca, opensslOk, startServe, type RunningServe } from '../helpers/cli.js';
import { curl, fleetcaBatch, freePort, pemBlocks, pki, pkiKeyAndCsr, runAsync } from '../helpers/est.js';
import { crlEntryOf, crlText, opensslOcsp, pollUntil } from '../helpers/revocation.js';

const PASS = 'rollover tests passphrase';
const DEVICES: Array<[string, string]> = [
  ['est-a', 'camera'],
  ['est-b', 'camera'],
  ['scep-a', 'camera'],
  ['est-new', 'camera'],
];

let db: TestDatabase;
let dir: string;
let env: Record<string, string | undefined>;
let server: RunningServe | undefined;
let httpUrl: string;
const secret = new Map<string, string>();
const f = (n: string) => path.join(dir, n);

beforeAll(async () => {
  db = await createTestDatabase();
  dir = mkdtempSync(path.join(os.tmpdir(), 'fleetca-rollover-'));
  chmodSync(dir, 0o711);
  const httpPort = await freePort();
  httpUrl = `http://127.0.0.1:${httpPort}`;
  env = { DATABASE_URL: db.connectionString, FLEETCA_DATA_DIR: f('data'), FLEETCA_KEY_PASSPHRASE: PASS };
  const init = fleetca(['init', '--public-url', httpUrl], env);
  expect(init.code, init.stderr).toBe(0);
  const r = await fleetcaBatch(
    [
      ['ca', 'chain'],
      ['root', 'export', '--out', f('root.key')],
      ['root', 'remove', '--exported', f('root.key')],
      ...DEVICES.map(([d, p]) => ['secret', 'create', '--device', d, '--profile', p]),
    ],
    env,
  );
  for (const x of r) expect(x.code, x.stderr).toBe(0);
  const [ca1, root] = pemBlocks(r[0]!.stdout);
  writeFileSync(f('ca1.pem'), ca1!);
  writeFileSync(f('root.pem'), root!);
  DEVICES.forEach(([d], i) => secret.set(d, r[3 + i]!.stdout.trim()));
  // the tests call curl and openssl synchronously: keep the server's log small (a full pipe blocks it)
  server = await startServe({ ...env, LOG_LEVEL: 'error' }, ['--http-port', String(httpPort)]);
  const scepca = pki(['--scepca', '--url', `${httpUrl}/scep`, '--caout', f('scep-ca.pem'), '--raout', f('ra.pem'), '--outform', 'pem', '--force'], dir);
  expect(scepca.code, scepca.stderr).toBe(0);
}, 180_000);

afterAll(async () => {
  if (server && server.proc.exitCode === null) await server.stop();
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A key and a CSR made by pki (ECDSA P-256 for EST; RSA-2048 for SCEP, the only kind pki --scep takes). */
const keyAndCsr = (name: string, cn: string, type: 'ecdsa' | 'rsa') => pkiKeyAndCsr(dir, name, type, cn);

const trust = () => ['--cacert', f('root.pem'), '--cacert', f('ca1.pem'), ...(secret.has('ca2') ? ['--cacert', f('ca2.pem')] : [])];

function estEnroll(name: string, device: string, auth: string[]): string {
  const k = keyAndCsr(name, device, 'ecdsa');
  const r = pki(['--est', '--url', server!.httpsUrl, ...trust(), '--in', k.csr, ...auth, '--outform', 'pem'], dir);
  expect(r.code, r.stderr).toBe(0);
  writeFileSync(f(`${name}.pem`), r.stdout);
  return r.stdout;
}

function scepEnroll(name: string, device: string, auth: string[]): string {
  const k = keyAndCsr(name, device, 'rsa');
  const r = pki(
    ['--scep', '--url', `${httpUrl}/scep`, '--in', k.key, '--dn', `CN=${device}`, ...auth, '--cacert-enc', f('ra.pem'), '--cacert-sig', f('ra.pem'), ...trust(), '--outform', 'pem'],
    dir,
  );
  expect(r.code, r.stderr).toBe(0);
  writeFileSync(f(`${name}.pem`), r.stdout);
  return r.stdout;
}

const issuerCn = (pem: string) => /CN=([^\n,]+)/.exec(new X509Certificate(pem).issuer)![1];
const serialOf = (pem: string) => new X509Certificate(pem).serialNumber;
const verify = (cert: string, ca: string) => opensslOk(['verify', '-x509_strict', '-CAfile', f('root.pem'), '-untrusted', f(ca), f(cert)]).trim();

/** The certificates of EST cacerts (base64 certs-only PKCS#7), subjects' CNs in order. */
function cacertsCns(): string[] {
  const r = curl(['--cacert', f('root.pem'), `${server!.httpsUrl}/.well-known/est/cacerts`]);
  expect(r.status).toBe(200);
  const der = Buffer.from(r.body.toString().replace(/\s+/g, ''), 'base64');
  return pemBlocks(opensslOk(['pkcs7', '-inform', 'DER', '-print_certs'], der)).map((p) => /CN=([^\n,]+)/.exec(new X509Certificate(p).subject)![1]!);
}

describe('intermediate CA rollover', () => {
  it('before: devices enroll from CA 1 over EST and SCEP', () => {
    expect(issuerCn(estEnroll('est-a-1', 'est-a', ['--userpass', `est-a:${secret.get('est-a')}`]))).toBe('fleetca Device CA');
    expect(issuerCn(estEnroll('est-b-1', 'est-b', ['--userpass', `est-b:${secret.get('est-b')}`]))).toBe('fleetca Device CA');
    expect(issuerCn(scepEnroll('scep-a-1', 'scep-a', ['--password', secret.get('scep-a')!]))).toBe('fleetca Device CA');
    expect(cacertsCns()).toEqual(['fleetca Device CA', 'fleetca Root CA']);
  });

  it('refused without the root key (exit 5) and with a wrong one (exit 2); two started at once: one wins; the server loads the new CA', async () => {
    const offline = fleetca(['ca', 'rollover', '--intermediate'], env);
    expect(offline.code, offline.stderr).toBe(5);
    expect(offline.stderr).toMatch(/root key is offline/);
    opensslOk(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-aes256', '-pass', `pass:${PASS}`, '-out', f('wrong.key')]);
    const wrong = fleetca(['ca', 'rollover', '--intermediate', '--root-key', f('wrong.key')], env);
    expect(wrong.code, wrong.stderr).toBe(2);
    expect(wrong.stderr).toMatch(/is not the key of the root CA/);

    const cli = path.resolve('bin/fleetca.js');
    const run = () => runAsync(process.execPath, ['--import', 'tsx', cli, 'ca', 'rollover', '--intermediate', '--root-key', f('root.key'), '--json'], { env: { ...process.env, ...env, LOG_LEVEL: 'warn' } });
    const [a, b] = await Promise.all([run(), run()]);
    const codes = [a.code, b.code].sort();
    expect(codes, `${a.stderr}\n${b.stderr}`).toEqual([0, 6]);
    const won = JSON.parse((a.code === 0 ? a : b).stdout) as { issuer: string; previous: string; lineage: string };
    expect(won).toMatchObject({ issuer: 'device-ca-2', previous: 'device-ca', lineage: 'device-ca' });
    expect((a.code === 0 ? b : a).stderr).toMatch(/another rollover of device-ca/);

    const chain = fleetca(['ca', 'chain'], env);
    const [ca2] = pemBlocks(chain.stdout);
    expect(new X509Certificate(ca2!).subject).toContain('CN=fleetca Device CA G2');
    writeFileSync(f('ca2.pem'), ca2!);
    secret.set('ca2', 'yes');
    // the running server learns of it by NOTIFY: EST cacerts carries both during the overlap
    await pollUntil('cacerts lists CA 2', () => cacertsCns().length === 3, { timeoutMs: 10_000, intervalMs: 200 });
    expect(cacertsCns()).toEqual(['fleetca Device CA G2', 'fleetca Device CA', 'fleetca Root CA']);
  });

  it('after: EST re-enrollment with the CA-1 certificate, SCEP renewal and a first enrollment get CA-2 certificates; both chains verify', () => {
    const renewed = estEnroll('est-a-2', 'est-a', ['--cert', f('est-a-1.pem'), '--key', f('est-a-1.key')]);
    expect(issuerCn(renewed)).toBe('fleetca Device CA G2');
    const scep = scepEnroll('scep-a-2', 'scep-a', ['--cert', f('scep-a-1.pem'), '--key', f('scep-a-1.key')]);
    expect(issuerCn(scep)).toBe('fleetca Device CA G2');
    expect(issuerCn(estEnroll('est-new-1', 'est-new', ['--userpass', `est-new:${secret.get('est-new')}`]))).toBe('fleetca Device CA G2');
    expect(verify('est-a-2.pem', 'ca2.pem')).toBe(`${f('est-a-2.pem')}: OK`);
    expect(verify('scep-a-2.pem', 'ca2.pem')).toBe(`${f('scep-a-2.pem')}: OK`);
    expect(verify('est-a-1.pem', 'ca1.pem')).toBe(`${f('est-a-1.pem')}: OK`);
    // CA 2 is signed by the same root
    expect(opensslOk(['verify', '-x509_strict', '-CAfile', f('root.pem'), f('ca2.pem')]).trim()).toBe(`${f('ca2.pem')}: OK`);
  });

  it('a CA-1 certificate revoked after the rollover: in CA 1 CRL, revoked by CA 1 responder; CA 2 certificates answered by CA 2 responder', async () => {
    const pem = readFileSync(f('est-b-1.pem'), 'utf8');
    const rv = fleetca(['revoke', serialOf(pem), '--reason', 'keyCompromise'], env);
    expect(rv.code, rv.stderr).toBe(0);
    await pollUntil(
      'CA 1 CRL lists the serial',
      () => {
        const r = curl([`${httpUrl}/crl/device-ca.crl`]);
        return r.status === 200 && crlEntryOf(crlText(r.body), serialOf(pem)) !== null;
      },
      { timeoutMs: 15_000, intervalMs: 250 },
    );
    writeFileSync(f('chain1.pem'), readFileSync(f('ca1.pem'), 'utf8') + readFileSync(f('root.pem'), 'utf8'));
    const o1 = opensslOcsp(['-issuer', f('ca1.pem'), '-cert', f('est-b-1.pem'), '-url', `${httpUrl}/ocsp`, '-CAfile', f('chain1.pem'), '-resp_text']);
    expect(o1.status).toBe('revoked');
    expect(o1.out).toMatch(/Subject: .*CN ?= ?fleetca Device CA OCSP Responder\n/);
    expect(o1.verified).toBe(true);

    writeFileSync(f('chain2.pem'), readFileSync(f('ca2.pem'), 'utf8') + readFileSync(f('root.pem'), 'utf8'));
    const o2 = opensslOcsp(['-issuer', f('ca2.pem'), '-cert', f('est-a-2.pem'), '-url', `${httpUrl}/ocsp`, '-CAfile', f('chain2.pem'), '-resp_text']);
    expect(o2.status).toBe('good');
    expect(o2.out).toMatch(/Subject: .*CN ?= ?fleetca Device CA G2 OCSP Responder\n/);
    expect(o2.verified).toBe(true);
  });

  it('scheduled (--at): GetNextCACert returns CA 3 signed by CA 2; issuance stays on CA 2; a second schedule is refused', async () => {
    const at = new Date(Date.now() + 3600_000).toISOString();
    const s = fleetca(['ca', 'rollover', '--intermediate', '--root-key', f('root.key'), '--at', at, '--json'], env);
    expect(s.code, s.stderr).toBe(0);
    expect(JSON.parse(s.stdout)).toMatchObject({ issuer: 'device-ca-3', previous: 'device-ca-2', activates_at: at.replace(/\.\d{3}Z$/, '.000Z') });
    const again = fleetca(['ca', 'rollover', '--intermediate', '--root-key', f('root.key')], env);
    expect(again.code).toBe(6);
    expect(again.stderr).toMatch(/already scheduled: device-ca-3/);

    let next = curl([`${httpUrl}/scep?operation=GetNextCACert`]);
    await pollUntil('GetNextCACert answers', () => (next = curl([`${httpUrl}/scep?operation=GetNextCACert`])).status === 200, { timeoutMs: 10_000, intervalMs: 200 });
    expect(next.headers).toMatch(/content-type: application\/x-x509-next-ca-cert/i);
    writeFileSync(f('next.der'), next.body);
    // signed by the CA issuing now (CA 2), which chains to the root
    const verified = spawnSync('openssl', ['cms', '-verify', '-inform', 'DER', '-in', f('next.der'), '-CAfile', f('root.pem'), '-purpose', 'any', '-binary'], { encoding: 'buffer' });
    expect(verified.stderr.toString()).toMatch(/Verification successful/);
    const inner = verified.stdout;
    const cns = pemBlocks(opensslOk(['pkcs7', '-inform', 'DER', '-print_certs'], inner)).map((p) => new X509Certificate(p).subject);
    expect(cns[0]).toContain('CN=fleetca Device CA G3');
    expect(cns[1]).toContain('CN=fleetca Root CA');
    const signer = opensslOk(['cms', '-cmsout', '-print', '-inform', 'DER', '-in', f('next.der')]);
    expect(signer).toMatch(/fleetca Device CA G2/);

    // issuance stays on CA 2 until the switch
    const key = keyAndCsr('est-a-3', 'est-a', 'ecdsa');
    const r = pki(['--est', '--url', server!.httpsUrl, ...trust(), '--in', key.csr, '--cert', f('est-a-2.pem'), '--key', f('est-a-2.key'), '--outform', 'pem'], dir);
    expect(r.code, r.stderr).toBe(0);
    expect(issuerCn(r.stdout)).toBe('fleetca Device CA G2');
  });

  it('root rollover: link certificates both ways (RFC 4210), verified by openssl; EST cacerts carries both roots and both links', async () => {
    const r = fleetca(['ca', 'rollover', '--root', '--root-key', f('root.key'), '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { root: string; previous: string; links: Array<{ kind: string; pem: string }> };
    expect(out).toMatchObject({ root: 'root-2', previous: 'root' });
    const link = (kind: string) => out.links.find((l) => l.kind === kind)!.pem;
    writeFileSync(f('old-with-new.pem'), link('old-with-new'));
    writeFileSync(f('new-with-old.pem'), link('new-with-old'));
    writeFileSync(f('root2.pem'), readFileSync(path.join(f('data'), 'certs', 'root-2.pem')));
    expect(new X509Certificate(readFileSync(f('root2.pem'))).subject).toContain('CN=fleetca Root CA G2');

    // a device holding only the NEW root validates a CA-2 certificate (under the old root) through new-with-old
    writeFileSync(f('via-new.pem'), readFileSync(f('ca2.pem'), 'utf8') + link('new-with-old'));
    expect(opensslOk(['verify', '-CAfile', f('root2.pem'), '-untrusted', f('via-new.pem'), f('est-a-2.pem')]).trim()).toBe(`${f('est-a-2.pem')}: OK`);
    // a device holding only the OLD root validates what the new root signed through old-with-new
    expect(opensslOk(['verify', '-CAfile', f('root.pem'), '-untrusted', f('old-with-new.pem'), f('new-with-old.pem')]).trim()).toBe(`${f('new-with-old.pem')}: OK`);

    await pollUntil('cacerts carries the new root and the links', () => cacertsCns().length === 7, { timeoutMs: 10_000, intervalMs: 200 });
    expect(cacertsCns()).toEqual([
      'fleetca Device CA G2',
      'fleetca Device CA',
      'fleetca Device CA G3',
      'fleetca Root CA G2',
      'fleetca Root CA',
      'fleetca Root CA G2', // old-with-new: the new root's name and key, signed by the old root
      'fleetca Root CA', // new-with-old
    ]);
    const again = fleetca(['ca', 'rollover', '--root', '--intermediate'], env);
    expect(again.code).toBe(2);
  });
});
