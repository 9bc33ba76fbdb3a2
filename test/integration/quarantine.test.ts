/**
 * Quarantine end to end (issue 6): `fleetca device quarantine` puts every live certificate of a
 * camera on hold — openssl ocsp and the CRL say so at the running server — and the camera's own
 * EST re-enrollment (curl with its certificate) is refused until `fleetca device release`;
 * `fleetca device retire` revokes for good.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { fleetca, opensslOk, startServe, type RunningServe } from '../helpers/cli.js';
import { curl, fleetcaBatch, freePort, pemBlocks } from '../helpers/est.js';
import { crlEntryOf, crlText, opensslOcsp, pollUntil } from '../helpers/revocation.js';

let db: TestDatabase;
let dir: string;
let env: Record<string, string | undefined>;
let server: RunningServe | undefined;
const f = (n: string) => path.join(dir, n);
const DEVICE = 'cam-quarantine';

beforeAll(async () => {
  db = await createTestDatabase();
  dir = mkdtempSync(path.join(os.tmpdir(), 'fleetca-quarantine-'));
  chmodSync(dir, 0o711);
  const httpPort = await freePort();
  env = { DATABASE_URL: db.connectionString, FLEETCA_DATA_DIR: f('data'), FLEETCA_KEY_PASSPHRASE: 'quarantine tests passphrase' };
  const init = fleetca(['init', '--public-url', `http://127.0.0.1:${httpPort}`], env);
  expect(init.code, init.stderr).toBe(0);
  for (const n of ['a', 'b']) {
    opensslOk(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f(`${n}.key`), '-subj', `/CN=${DEVICE}`, '-out', f(`${n}.csr`)]);
  }
  const serving = startServe(env, ['--http-port', String(httpPort), '--https-port', '0']).then((s) => (server = s));
  serving.catch(() => undefined);
  const [chain, a, b] = await fleetcaBatch(
    [
      ['ca', 'chain'],
      ['issue', '--profile', 'camera', '--device', DEVICE, '--csr', f('a.csr')],
      ['issue', '--profile', 'camera', '--device', DEVICE, '--csr', f('b.csr')],
    ],
    env,
  );
  await serving;
  writeFileSync(f('chain.pem'), chain!.stdout);
  writeFileSync(f('int.pem'), pemBlocks(chain!.stdout)[0]!);
  writeFileSync(f('root.pem'), pemBlocks(chain!.stdout)[1]!);
  writeFileSync(f('a.pem'), a!.stdout);
  writeFileSync(f('b.pem'), b!.stdout);
}, 180_000);

afterAll(async () => {
  if (server && server.proc.exitCode === null) await server.stop();
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const serialOf = (file: string) => opensslOk(['x509', '-in', file, '-noout', '-serial']).trim().replace(/^serial=/, '');
const ocsp = (file: string) => opensslOcsp(['-issuer', f('int.pem'), '-cert', file, '-url', `${server!.httpUrl}/ocsp`, '-CAfile', f('chain.pem'), '-no_nonce']);

/** EST simplereenroll by the camera, authenticated by its certificate `a` (same key). */
function reenroll() {
  opensslOk(['req', '-in', f('a.csr'), '-outform', 'DER', '-out', f('re.der')]);
  writeFileSync(f('re.b64'), readFileSync(f('re.der')).toString('base64'));
  return curl(['--cacert', f('root.pem'), '--cert', f('a.pem'), '--key', f('a.key'), '-H', 'Content-Type: application/pkcs10', '--data-binary', `@${f('re.b64')}`, `${server!.httpsUrl}/.well-known/est/simplereenroll`]);
}

describe('fleetca device quarantine / release / retire', () => {
  it('quarantine: both certificates on hold at the OCSP responder and in the CRL; the camera cannot re-enroll (403)', async () => {
    const r = fleetca(['device', 'quarantine', DEVICE, '--reason', 'IDS: lateral movement', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { reason: string; held: Array<{ serial: string; status: string }> };
    expect(out.reason).toBe('IDS: lateral movement');
    expect(out.held.map((c) => c.status)).toEqual(['hold', 'hold']);
    for (const file of [f('a.pem'), f('b.pem')]) {
      const o = ocsp(file);
      expect(o.verified, o.out).toBe(true);
      expect(o.status).toBe('revoked');
      expect(o.reason).toBe('certificateHold');
    }
    await pollUntil(
      'the CRL lists both',
      () => {
        const c = curl([`${server!.httpUrl}/crl/device-ca.crl`]);
        const text = c.status === 200 ? crlText(c.body) : '';
        return [f('a.pem'), f('b.pem')].every((x) => crlEntryOf(text, serialOf(x)) !== null);
      },
      { timeoutMs: 5000, intervalMs: 100 },
    );
    const e = reenroll();
    expect(e.status).toBe(403);
    expect(e.body.toString()).toMatch(/quarantined/);
    expect(fleetca(['device', 'quarantine', DEVICE, '--reason', 'again'], env)).toMatchObject({ code: 6 });
    expect(fleetca(['device', 'show', DEVICE, '--json'], env).stdout).toMatch(/"state":\s*"quarantined"/);
  });

  it('release: good again at the OCSP responder, and the camera re-enrolls', () => {
    const r = fleetca(['device', 'release', DEVICE], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/2 certificate\(s\) valid again/);
    for (const file of [f('a.pem'), f('b.pem')]) expect(ocsp(file).status).toBe('good');
    const e = reenroll();
    expect(e.status, e.body.toString()).toBe(200);
    expect(fleetca(['device', 'release', DEVICE], env)).toMatchObject({ code: 6 });
  });

  it('retire: every live certificate revoked (cessationOfOperation); the device stays out', () => {
    const r = fleetca(['device', 'retire', DEVICE, '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { revoked: Array<{ revocation_reason: string }> };
    expect(out.revoked.length).toBeGreaterThanOrEqual(2);
    expect(out.revoked.every((c) => c.revocation_reason === 'cessationOfOperation')).toBe(true);
    const o = ocsp(f('b.pem'));
    expect(o.status).toBe('revoked');
    expect(o.reason).toBe('cessationOfOperation');
    expect(fleetca(['device', 'quarantine', DEVICE, '--reason', 'x'], env)).toMatchObject({ code: 6 });
    expect(fleetca(['device', 'quarantine', 'nobody', '--reason', 'x'], env)).toMatchObject({ code: 4 });
  });
});
