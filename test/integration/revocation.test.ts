/**
 * Revocation end to end with the real clients (CLIENTS.md 3b, 3c): `fleetca revoke|hold|release`
 * changes a status, and `openssl ocsp`, curl, `openssl crl` and `openssl verify -crl_check
 * [-crl_download]` see it at the running `fleetca serve` — how fast, in which form, and what the
 * responder answers to bad input or without its database.
 *
 * One data dir, one database, one server for the file; the public URL is that server's HTTP port,
 * so the CDP and AIA URLs in the certificates point at it. The config copy caps Cache-Control
 * max-age at 2 minutes. All certificates are issued up front by one CLI process. A second server
 * on the same database (freshness across instances) and a third one behind a TCP relay (database
 * unreachable) are started by the tests that need them.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import YAML from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { configCopy, fleetca, openssl, opensslOk, startServe, type RunningServe } from '../helpers/cli.js';
import { curl, fleetcaBatch, freePort, header, pemBlocks } from '../helpers/est.js';
import {
  crlEntryOf,
  crlNumberOf,
  crlText,
  ocspGetPath,
  opensslOcsp,
  opensslOcspAsync,
  pollUntil,
  startDbRelay,
  databaseOf,
  withDatabase,
  type DbRelay,
  type OcspOutcome,
} from '../helpers/revocation.js';

/** crl.httpMaxAge of the config copy, seconds. */
const HTTP_MAX_AGE_S = 120;
/** ocsp.validity (default), ms. */
const OCSP_VALIDITY_MS = 4 * 3600_000;

/** Every reason `fleetca revoke --reason` takes besides certificateHold (tested as `hold`). */
const REASONS = ['unspecified', 'keyCompromise', 'cACompromise', 'affiliationChanged', 'superseded', 'cessationOfOperation', 'privilegeWithdrawn', 'aACompromise'] as const;
/** The reason code as `openssl crl -text` names it; unspecified is left out of the entry (RFC 5280 §5.3.1). */
const CRL_REASON: Record<(typeof REASONS)[number], string | null> = {
  unspecified: null,
  keyCompromise: 'Key Compromise',
  cACompromise: 'CA Compromise',
  affiliationChanged: 'Affiliation Changed',
  superseded: 'Superseded',
  cessationOfOperation: 'Cessation Of Operation',
  privilegeWithdrawn: 'Privilege Withdrawn',
  aACompromise: 'AA Compromise',
};

/** The reasonCode values (RFC 5280 §5.3.1). */
const REASON_CODE: Record<(typeof REASONS)[number], number> = {
  unspecified: 0,
  keyCompromise: 1,
  cACompromise: 2,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
  privilegeWithdrawn: 9,
  aACompromise: 10,
};

/** The certificates of the file: name → [profile, device]. */
const LEAVES: Array<[name: string, profile: string, device: string]> = [
  ['good', 'camera', 'cam-good'],
  ...REASONS.map((r): [string, string, string] => [`reason-${r}`, 'camera', `cam-${r.toLowerCase()}`]),
  ['hold', 'camera', 'cam-hold'],
  ['hold-then-revoke', 'camera', 'cam-hold-revoke'],
  ['fleet-1', 'camera', 'cam-fleet'],
  ['fleet-2', 'camera', 'cam-fleet'],
  ['fresh', 'camera', 'cam-fresh'],
  ['two-servers', 'camera', 'cam-two-servers'],
  ['db-off', 'camera', 'cam-db-off'],
  ['db-cut', 'camera', 'cam-db-cut'],
  ['refused', 'camera', 'cam-refused'],
  ['idevid', 'manufacturing-idevid', 'idevid-0001'],
];

let db: TestDatabase;
let dir: string;
let cfgDir: string;
let env: Record<string, string | undefined>;
let server: RunningServe | undefined;
let base: string;
/** Other servers a test started; stopped in afterAll if the test could not. */
const extraServers = new Set<RunningServe>();
let relay: DbRelay | undefined;
/** The CRL Number of the device CA's full CRL right after init. */
let firstCrlNumber: bigint;
const f = (n: string) => path.join(dir, n);
const leaves = new Map<string, { file: string; serial: string; device: string }>();
const leaf = (name: string) => {
  const l = leaves.get(name);
  if (!l) throw new Error(`no leaf ${name}`);
  return l;
};

beforeAll(async () => {
  db = await createTestDatabase();
  dir = mkdtempSync(path.join(os.tmpdir(), 'fleetca-revocation-'));
  // the embedded cluster (run as the postgres user when we are root) must reach into the temp dir
  chmodSync(dir, 0o711);
  cfgDir = configCopy((d) => {
    const file = path.join(d, 'ca.yaml');
    const doc = YAML.parseDocument(readFileSync(file, 'utf8'));
    doc.setIn(['crl', 'httpMaxAge'], `${HTTP_MAX_AGE_S}s`);
    writeFileSync(file, doc.toString());
  });
  const httpPort = await freePort();
  env = { DATABASE_URL: db.connectionString, FLEETCA_DATA_DIR: f('data'), FLEETCA_CONFIG_DIR: cfgDir, FLEETCA_KEY_PASSPHRASE: 'revocation tests passphrase' };
  const init = fleetca(['init', '--public-url', `http://127.0.0.1:${httpPort}`], env);
  expect(init.code, init.stderr).toBe(0);

  for (const [name, , device] of LEAVES) {
    opensslOk(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f(`${name}.key`), '-subj', `/CN=${device}`, '-out', f(`${name}.csr`)]);
  }
  const serving = startServe(env, ['--http-port', String(httpPort)]).then((s) => (server = s));
  serving.catch(() => undefined); // awaited below; an early failure must not count as unhandled
  const [chain, ...issued] = await fleetcaBatch(
    [['ca', 'chain'], ...LEAVES.map(([name, profile, device]) => ['issue', '--profile', profile, '--device', device, '--csr', f(`${name}.csr`)])],
    env,
  );
  await serving;
  base = server!.httpUrl;
  expect(base).toBe(`http://127.0.0.1:${httpPort}`);

  expect(chain!.code, chain!.stderr).toBe(0);
  writeFileSync(f('chain.pem'), chain!.stdout);
  const [deviceCa, root] = pemBlocks(chain!.stdout);
  writeFileSync(f('int.pem'), deviceCa!);
  writeFileSync(f('root.pem'), root!);
  const mfg = readFileSync(f('data/certs/manufacturing-ca.pem'), 'utf8');
  writeFileSync(f('mfg.pem'), mfg);
  writeFileSync(f('mfg-chain.pem'), mfg + root!);
  issued.forEach((r, i) => {
    const [name, , device] = LEAVES[i]!;
    expect(r.code, `${name}: ${r.stderr}`).toBe(0);
    writeFileSync(f(`${name}.pem`), r.stdout);
    const serial = opensslOk(['x509', '-in', f(`${name}.pem`), '-noout', '-serial']).trim().replace(/^serial=/, '');
    leaves.set(name, { file: f(`${name}.pem`), serial, device });
  });
  firstCrlNumber = crlNumberOf(crlText(fetchCrl('/crl/device-ca.crl').body));
}, 180_000);

afterAll(async () => {
  for (const s of [server, ...extraServers]) if (s && s.proc.exitCode === null) await s.stop();
  await relay?.close();
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
  if (cfgDir) rmSync(cfgDir, { recursive: true, force: true });
});

// ------------------------------------------------------------------ helpers

/** `openssl ocsp` about one of our leaves (POST, nonce unless `-no_nonce` is in `extra`). */
function ask(name: string, extra: string[] = [], url = `${base}/ocsp`): OcspOutcome {
  return opensslOcsp(['-issuer', f('int.pem'), '-cert', leaf(name).file, '-url', url, '-CAfile', f('chain.pem'), '-timeout', '10', ...extra]);
}

function expectStatus(o: OcspOutcome, status: 'good' | 'revoked' | 'unknown', reason: string | null = null): void {
  expect(o.code, o.out).toBe(0);
  expect(o.verified, o.out).toBe(true);
  expect(o.status, o.out).toBe(status);
  expect(o.reason, o.out).toBe(reason);
}

/** The server still answers a plain request properly (after bad input). */
function expectStillAnswers(): void {
  expectStatus(ask('good'), 'good');
}

function fetchCrl(p: string, extra: string[] = []) {
  const r = curl([...extra, `${base}${p}`]);
  if (r.status !== 200 && r.status !== 304) throw new Error(`GET ${p}: HTTP ${r.status} ${r.body.toString()}`);
  return r;
}

/** Polls the full CRL until it lists every serial; resolves with its text. */
async function crlListing(serials: string[], timeoutMs = 5_000, since?: number, url = `${base}/crl/device-ca.crl`): Promise<{ text: string; elapsed: number }> {
  let text = '';
  const elapsed = await pollUntil(
    `CRL at ${url} listing ${serials.join(', ')}`,
    () => {
      const r = curl([url]);
      if (r.status !== 200) return false;
      text = crlText(r.body);
      return serials.every((s) => crlEntryOf(text, s) !== null);
    },
    { timeoutMs, intervalMs: 100, ...(since !== undefined ? { since } : {}) },
  );
  return { text, elapsed };
}

function cli(args: string[]) {
  const r = fleetca(args, env);
  expect(r.code, `fleetca ${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r;
}

/** A DER OCSP request (no nonce) for a leaf, as `openssl ocsp -reqout` writes it. */
function requestDer(name: string): Buffer {
  const out = f(`${name}.req.der`);
  opensslOk(['ocsp', '-issuer', f('int.pem'), '-cert', leaf(name).file, '-no_nonce', '-reqout', out]);
  return readFileSync(out);
}

/** POSTs a body to /ocsp with curl. */
function postOcsp(body: Buffer, extra: string[] = []) {
  const file = f('post-body.bin');
  writeFileSync(file, body);
  return curl(['-X', 'POST', '-H', 'Content-Type: application/ocsp-request', '--data-binary', `@${file}`, ...extra, `${base}/ocsp`]);
}

/** `openssl ocsp -respin` of a response body: the status line and errors it prints (no verification). */
function respin(body: Buffer, extra: string[] = ['-noverify']): OcspOutcome {
  const file = f('respin.der');
  writeFileSync(file, body);
  return opensslOcsp(['-respin', file, ...extra]);
}

// ------------------------------------------------------------------ OCSP transport

describe('OCSP over HTTP (openssl ocsp, curl)', () => {
  it('POST /ocsp/good, Response verify OK, the nonce echoed (no nonce warning)', () => {
    const before = Date.now();
    const o = ask('good', ['-resp_text']);
    expectStatus(o, 'good');
    expect(o.nonceWarning, o.out).toBe(false);
    expect(o.out).toMatch(/OCSP Nonce:/);
    // signed by the device CA's delegated responder, which travels in the response
    expect(o.out).toMatch(/fleetca Device CA OCSP Responder/);
    expect(o.thisUpdate!.getTime()).toBeLessThanOrEqual(Date.now());
    expect(o.thisUpdate!.getTime()).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 - 1000);
    expect(o.nextUpdate!.getTime() - o.thisUpdate!.getTime()).toBe(OCSP_VALIDITY_MS);
  });

  it('POST /ocsp/device-ca (the AIA URL of the certificate) answers the same: good, verified, nonce echoed', () => {
    const aia = opensslOk(['x509', '-in', leaf('good').file, '-noout', '-ocsp_uri']).trim();
    expect(aia).toBe(`${base}/ocsp/device-ca`);
    const o = ask('good', [], aia);
    expectStatus(o, 'good');
    expect(o.nonceWarning, o.out).toBe(false);
  });

  it('CertIDs hashed with SHA-256 and SHA-512 (openssl ocsp -sha256/-sha512): good, verified', () => {
    for (const md of ['-sha256', '-sha512']) {
      // openssl takes the digest for the CertIDs named after it
      const o = opensslOcsp([md, '-issuer', f('int.pem'), '-cert', leaf('good').file, '-url', `${base}/ocsp`, '-CAfile', f('chain.pem'), '-timeout', '10', '-resp_text']);
      expectStatus(o, 'good');
      expect(o.out).toMatch(new RegExp(`Hash Algorithm: ${md.slice(1)}`));
    }
  });

  it('a signed request (openssl ocsp -signer, the device signs with its own key): good, verified', () => {
    const o = ask('good', ['-signer', leaf('good').file, '-signkey', f('good.key')]);
    expectStatus(o, 'good');
    expect(o.nonceWarning, o.out).toBe(false);
  });

  it('GET /ocsp/<URL-encoded base64> (RFC 5019): good, verified by -respin; Content-Type, Cache-Control max-age, ETag, Expires, Last-Modified from the response', () => {
    const der = requestDer('good');
    const r = curl([`${base}${ocspGetPath('/ocsp', der, true)}`]);
    expect(r.status, r.body.toString()).toBe(200);
    expect(header(r.headers, 'content-type')).toBe('application/ocsp-response');
    const cc = header(r.headers, 'cache-control') ?? '';
    const maxAge = Number(/max-age=(\d+)/.exec(cc)?.[1] ?? NaN);
    expect(maxAge, cc).toBeGreaterThan(0);
    expect(maxAge, cc).toBeLessThanOrEqual(HTTP_MAX_AGE_S);
    expect(header(r.headers, 'etag')).toMatch(/^"[^"]+"$/);
    const o = respin(r.body, ['-issuer', f('int.pem'), '-cert', leaf('good').file, '-CAfile', f('chain.pem'), '-no_nonce']);
    expectStatus(o, 'good');
    // RFC 5019 §6.2: the caching headers are the response's own times
    expect(new Date(header(r.headers, 'last-modified')!).getTime()).toBe(o.thisUpdate!.getTime());
    expect(new Date(header(r.headers, 'expires')!).getTime()).toBe(o.nextUpdate!.getTime());

    // the same request again: the same bytes, the same ETag
    const again = curl([`${base}${ocspGetPath('/ocsp', der, true)}`]);
    expect(again.status).toBe(200);
    expect(header(again.headers, 'etag')).toBe(header(r.headers, 'etag'));
  });

  it('GET with the base64 as is (with "/" in it), at /ocsp/ and /ocsp/device-ca/: answered and verified', () => {
    // a live certificate whose request has a "/" in its base64; else a serial never issued (unknown)
    let found: { der: Buffer; args: string[]; status: 'good' | 'unknown' } | null = null;
    for (const name of ['good', 'hold', 'fleet-1', 'fleet-2', 'fresh', 'two-servers', 'hold-then-revoke']) {
      const der = requestDer(name);
      if (der.toString('base64').includes('/')) {
        found = { der, args: ['-cert', leaf(name).file], status: 'good' };
        break;
      }
    }
    for (let i = 1; !found; i++) {
      const serial = `0x7F${i.toString(16).padStart(6, '0')}`;
      const out = f('slash.req.der');
      opensslOk(['ocsp', '-issuer', f('int.pem'), '-serial', serial, '-no_nonce', '-reqout', out]);
      const der = readFileSync(out);
      if (der.toString('base64').includes('/')) found = { der, args: ['-serial', serial], status: 'unknown' };
    }
    expect(found.der.toString('base64')).toContain('/');
    for (const prefix of ['/ocsp', '/ocsp/device-ca']) {
      const r = curl([`${base}${ocspGetPath(prefix, found.der, false)}`]);
      expect(r.status, `${prefix}: ${r.body.toString()}`).toBe(200);
      expect(header(r.headers, 'content-type')).toBe('application/ocsp-response');
      expectStatus(respin(r.body, ['-issuer', f('int.pem'), ...found.args, '-CAfile', f('chain.pem'), '-no_nonce']), found.status);
    }
  });
});

// ------------------------------------------------------------------ statuses

describe('every status through openssl ocsp', () => {
  let revokedFrom = 0;
  let revokedTo = 0;

  beforeAll(async () => {
    revokedFrom = Date.now();
    const results = await fleetcaBatch(
      REASONS.map((r) => ['revoke', leaf(`reason-${r}`).serial, '--reason', r]),
      env,
    );
    revokedTo = Date.now();
    results.forEach((r, i) => {
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toContain(`revoked ${leaf(`reason-${REASONS[i]!}`).serial} (${REASONS[i]!})`);
    });
  }, 60_000);

  for (const reason of REASONS) {
    it(`revoke --reason ${reason}: revoked, ${reason === 'unspecified' ? 'no Reason line' : `Reason: ${reason} (code ${REASON_CODE[reason]})`}, the revocation time of the command`, () => {
      const o = ask(`reason-${reason}`, ['-resp_text']);
      expect(o.status, o.out).toBe('revoked');
      expect(o.verified, o.out).toBe(true);
      if (reason === 'unspecified') {
        expect(o.reason, o.out).toBeNull();
        expect(o.out).not.toMatch(/Revocation Reason:/);
      } else {
        // NOTE(client): OpenSSL 3.0's reason names stop at removeFromCRL (8): it prints
        // privilegeWithdrawn (9) and aACompromise (10) as "(UNKNOWN)", with the code beside it
        expect([reason, '(UNKNOWN)'], o.out).toContain(o.reason);
        if (REASON_CODE[reason] <= 8) expect(o.reason, o.out).toBe(reason);
        expect(o.out).toMatch(new RegExp(`Revocation Reason: \\S+ \\(0x${REASON_CODE[reason].toString(16)}\\)`));
      }
      expect(o.revocationTime!.getTime()).toBeGreaterThanOrEqual(Math.floor(revokedFrom / 1000) * 1000);
      expect(o.revocationTime!.getTime()).toBeLessThanOrEqual(revokedTo);
    });
  }

  it('the full CRL lists every revoked certificate with its reason code (none for unspecified)', async () => {
    const { text } = await crlListing(REASONS.map((r) => leaf(`reason-${r}`).serial));
    for (const reason of REASONS) {
      const entry = crlEntryOf(text, leaf(`reason-${reason}`).serial)!;
      const expected = CRL_REASON[reason];
      if (expected === null) expect(entry, entry).not.toContain('CRL Reason Code');
      else expect(entry, entry).toMatch(new RegExp(`CRL Reason Code: *\\n *${expected}\\n`));
    }
  });

  it('two certificates in one request (CLIENTS.md 3b): each its own status in one verified response, the nonce echoed', () => {
    const r = openssl(['ocsp', '-issuer', f('int.pem'), '-cert', leaf('reason-keyCompromise').file, '-cert', leaf('good').file, '-url', `${base}/ocsp`, '-CAfile', f('chain.pem'), '-timeout', '10']);
    const out = `${r.stdout}\n${r.stderr}`;
    expect(r.code, out).toBe(0);
    expect(out).toMatch(/^Response verify OK$/m);
    expect(out).not.toContain('WARNING: no nonce in response');
    expect(r.stdout).toContain(`${leaf('reason-keyCompromise').file}: revoked\n`);
    expect(r.stdout).toMatch(/\tReason: keyCompromise\n/);
    expect(r.stdout).toContain(`${leaf('good').file}: good\n`);
  });

  it('hold: revoked with Reason: certificateHold', () => {
    const r = cli(['hold', leaf('hold').serial]);
    expect(r.stderr).toContain(`held ${leaf('hold').serial}`);
    const o = ask('hold');
    expectStatus(o, 'revoked', 'certificateHold');
    expect(o.revocationTime).not.toBeNull();
  });

  it('release: good again', () => {
    const r = cli(['release', leaf('hold').serial]);
    expect(r.stderr).toContain(`released ${leaf('hold').serial}`);
    expectStatus(ask('hold'), 'good');
    expectStatus(ask('hold', ['-no_nonce']), 'good');
  });

  it('a serial never issued: unknown, verified', () => {
    const o = opensslOcsp(['-issuer', f('int.pem'), '-serial', '0x0123456789ABCDEF0123', '-url', `${base}/ocsp`, '-CAfile', f('chain.pem'), '-timeout', '10']);
    expectStatus(o, 'unknown');
    expect(o.out).toMatch(/^0x0123456789ABCDEF0123: unknown$/m);
  });

  it('a manufacturing CA certificate asked at /ocsp/device-ca: answered by its issuer hashes, signed by the manufacturing CA responder', () => {
    const o = opensslOcsp(['-issuer', f('mfg.pem'), '-cert', leaf('idevid').file, '-url', `${base}/ocsp/device-ca`, '-CAfile', f('mfg-chain.pem'), '-timeout', '10', '-resp_text']);
    expectStatus(o, 'good');
    // the responder certificate in the response is the manufacturing CA's, not the device CA's
    expect(o.out).toMatch(/Subject: .*fleetca Manufacturing CA OCSP Responder/);
    expect(o.out).not.toMatch(/Subject: .*fleetca Device CA OCSP Responder/);
  });

  it('an issuer fleetca does not have: Responder Error: unauthorized (6)', () => {
    opensslOk(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('stranger.key'), '-subj', '/CN=Stranger CA', '-days', '2', '-out', f('stranger.pem')]);
    const o = opensslOcsp(['-issuer', f('stranger.pem'), '-serial', '0x42', '-url', `${base}/ocsp`, '-CAfile', f('chain.pem'), '-timeout', '10']);
    expect(o.responderError, o.out).toBe('unauthorized (6)');
    expect(o.status).toBeNull();
  });
});

// ------------------------------------------------------------------ devices and rules

describe('a whole device, and the rules of hold and release', () => {
  const fleet = () => [leaf('fleet-1').serial, leaf('fleet-2').serial].sort();
  const changedSerials = (stdout: string) => (JSON.parse(stdout) as Array<{ serial: string; status: string }>).map((c) => c.serial).sort();

  it('hold --device: every live certificate of the device is held (--json lists them), OCSP says certificateHold for each', () => {
    const r = cli(['hold', '--device', 'cam-fleet', '--json']);
    const changed = JSON.parse(r.stdout) as Array<{ serial: string; status: string; revocation_reason: string }>;
    expect(changed.map((c) => c.serial).sort()).toEqual(fleet());
    for (const c of changed) expect([c.status, c.revocation_reason]).toEqual(['hold', 'certificateHold']);
    for (const name of ['fleet-1', 'fleet-2']) expectStatus(ask(name), 'revoked', 'certificateHold');
  });

  it('release --device: both good again', () => {
    const r = cli(['release', '--device', 'cam-fleet', '--json']);
    expect(changedSerials(r.stdout)).toEqual(fleet());
    for (const name of ['fleet-1', 'fleet-2']) expectStatus(ask(name), 'good');
  });

  it('revoke --device --invalidity-date: both revoked keyCompromise; each CRL entry carries the Invalidity Date', async () => {
    const inv = new Date(Math.floor(Date.now() / 1000) * 1000 - 3 * 86_400_000);
    const r = cli(['revoke', '--device', 'cam-fleet', '--reason', 'keyCompromise', '--invalidity-date', inv.toISOString(), '--json']);
    expect(changedSerials(r.stdout)).toEqual(fleet());
    for (const name of ['fleet-1', 'fleet-2']) expectStatus(ask(name), 'revoked', 'keyCompromise');
    // the CRL of the earlier hold lists them too: wait for the one that shows the revocation
    let text = '';
    await pollUntil(
      'the CRL lists both as keyCompromise',
      () => {
        const c = curl([`${base}/crl/device-ca.crl`]);
        text = c.status === 200 ? crlText(c.body) : '';
        return fleet().every((s) => /Key Compromise/.test(crlEntryOf(text, s) ?? ''));
      },
      { timeoutMs: 5_000, intervalMs: 100 },
    );
    for (const serial of fleet()) {
      const entry = crlEntryOf(text, serial)!;
      expect(entry).toMatch(/CRL Reason Code: *\n *Key Compromise\n/);
      const shown = /Invalidity Date: *\n *(.+GMT)/.exec(entry)?.[1];
      expect(shown, entry).toBeDefined();
      expect(new Date(shown!).getTime()).toBe(inv.getTime());
    }
  });

  it('release or hold of a revoked certificate: refused with a non-zero exit and a clear message; still revoked', () => {
    const serial = leaf('reason-keyCompromise').serial;
    const rel = fleetca(['release', serial], env);
    expect(rel.code).not.toBe(0);
    expect(rel.stderr).toMatch(/is revoked; only a hold can be released/);
    const hold = fleetca(['hold', serial], env);
    expect(hold.code).not.toBe(0);
    expect(hold.stderr).toMatch(/already revoked/);
    // --device skips revoked certificates: nothing to release
    const dev = cli(['release', '--device', 'cam-fleet']);
    expect(dev.stderr).toContain('no live certificate to change');
    expectStatus(ask('reason-keyCompromise'), 'revoked', 'keyCompromise');
    expectStatus(ask('fleet-1'), 'revoked', 'keyCompromise');
  });

  it('refused with a clear message and nothing changed: a future invalidity date, an invalidity date on a hold, removeFromCRL as a reason, serial and --device together, an unknown device, a serial not in hex, the release of a good certificate', async () => {
    const serial = leaf('refused').serial;
    const cases: Array<[string[], RegExp]> = [
      [['revoke', serial, '--invalidity-date', new Date(Date.now() + 86_400_000).toISOString()], /invalidity date is in the future/],
      [['revoke', serial, '--reason', 'certificateHold', '--invalidity-date', '2026-01-01T00:00:00Z'], /a hold carries no invalidity date/],
      [['revoke', serial, '--reason', 'removeFromCRL'], /'removeFromCRL' is invalid/],
      [['revoke', serial, '--device', 'cam-refused'], /give a serial or --device ID/],
      [['hold', '--device', 'no-such-device'], /no device no-such-device/],
      [['revoke', 'not-a-serial'], /"not-a-serial" is not a serial number in hex/],
      [['release', serial], /is not on hold/],
    ];
    const results = await fleetcaBatch(
      cases.map(([argv]) => argv),
      env,
    );
    results.forEach((r, i) => {
      const [argv, message] = cases[i]!;
      expect(r.code, `fleetca ${argv.join(' ')}`).not.toBe(0);
      expect(r.stderr, `fleetca ${argv.join(' ')}`).toMatch(message);
    });
    expectStatus(ask('refused'), 'good');
  });

  it('revoke of a held certificate: the reason becomes superseded, the revocation time stays the hold’s', async () => {
    const serial = leaf('hold-then-revoke').serial;
    const [held, revoked] = await fleetcaBatch(
      [
        ['hold', serial, '--json'],
        ['revoke', serial, '--reason', 'superseded', '--json'],
      ],
      env,
    );
    expect(held!.code, held!.stderr).toBe(0);
    expect(revoked!.code, revoked!.stderr).toBe(0);
    const heldAt = new Date((JSON.parse(held!.stdout) as Array<{ revoked_at: string }>)[0]!.revoked_at);
    const after = (JSON.parse(revoked!.stdout) as Array<{ status: string; revocation_reason: string; revoked_at: string }>)[0]!;
    expect([after.status, after.revocation_reason]).toEqual(['revoked', 'superseded']);
    const o = ask('hold-then-revoke');
    expectStatus(o, 'revoked', 'superseded');
    expect(o.revocationTime!.getTime()).toBe(Math.floor(heldAt.getTime() / 1000) * 1000);
    const { text } = await crlListing([serial]);
    expect(crlEntryOf(text, serial)).toMatch(/CRL Reason Code: *\n *Superseded\n/);
  });
});

// ------------------------------------------------------------------ freshness

describe('freshness: from the CLI returning to the clients', () => {
  it('revoke: openssl ocsp (no nonce: the cached answer) says revoked within 1 s; the fetched CRL lists it within 5 s', async () => {
    const serial = leaf('fresh').serial;
    // the good answer is in the responder's cache
    expectStatus(ask('fresh', ['-no_nonce']), 'good');
    expectStatus(ask('fresh', ['-no_nonce']), 'good');
    cli(['revoke', serial, '--reason', 'keyCompromise']);
    const t0 = Date.now();
    const seen: { last?: OcspOutcome } = {};
    const ocspMs = await pollUntil(
      'openssl ocsp saying revoked',
      () => {
        seen.last = ask('fresh', ['-no_nonce']);
        return seen.last.status === 'revoked';
      },
      { timeoutMs: 5_000, since: t0 },
    );
    expectStatus(seen.last!, 'revoked', 'keyCompromise');
    expect(ocspMs).toBeLessThanOrEqual(1000);
    // with a nonce (signed live) too
    expectStatus(ask('fresh'), 'revoked', 'keyCompromise');
    const { elapsed } = await crlListing([serial], 10_000, t0);
    expect(elapsed).toBeLessThanOrEqual(5000);
  });

  it('two servers on one database: a hold made with the CLI reaches server B’s OCSP within 1 s and its CRL within 5 s; the release too', async () => {
    const b = await startServe(env);
    extraServers.add(b);
    try {
      const atB = (extra: string[] = ['-no_nonce']) => ask('two-servers', extra, `${b.httpUrl}/ocsp`);
      expectStatus(atB(), 'good');
      expectStatus(atB(), 'good'); // cached at B

      const serial = leaf('two-servers').serial;
      cli(['hold', serial]);
      const t0 = Date.now();
      const holdMs = await pollUntil('server B saying certificateHold', () => atB().reason === 'certificateHold', { timeoutMs: 5_000, since: t0 });
      expect(holdMs).toBeLessThanOrEqual(1000);
      expectStatus(atB(), 'revoked', 'certificateHold');
      const { elapsed } = await crlListing([serial], 10_000, t0, `${b.httpUrl}/crl/device-ca.crl`);
      expect(elapsed).toBeLessThanOrEqual(5000);

      cli(['release', serial]);
      const t1 = Date.now();
      const releaseMs = await pollUntil('server B saying good', () => atB().status === 'good', { timeoutMs: 5_000, since: t1 });
      expect(releaseMs).toBeLessThanOrEqual(1000);
      expectStatus(atB(), 'good');
      expectStatus(atB([]), 'good');
    } finally {
      await b.stop();
      extraServers.delete(b);
    }
  });
});

// ------------------------------------------------------------------ CRLs

describe('CRLs (openssl crl, openssl verify -crl_check)', () => {
  it('verify -crl_check -CRLfile (the fetched DER CRL): revoked → error 23, good → OK', async () => {
    await crlListing([leaf('reason-keyCompromise').serial]);
    writeFileSync(f('full.crl'), fetchCrl('/crl/device-ca.crl').body);
    const revoked = openssl(['verify', '-crl_check', '-CAfile', f('chain.pem'), '-CRLfile', f('full.crl'), leaf('reason-keyCompromise').file]);
    expect(revoked.code).toBe(2);
    expect(revoked.stdout + revoked.stderr).toMatch(/error 23 at 0 depth lookup: certificate revoked/);
    const good = openssl(['verify', '-crl_check', '-CAfile', f('chain.pem'), '-CRLfile', f('full.crl'), leaf('good').file]);
    expect(good.code, good.stderr).toBe(0);
    expect(good.stdout.trim()).toBe(`${leaf('good').file}: OK`);
  });

  it('verify -crl_check -crl_download (the CDP over HTTP): revoked → error 23, held → error 23, good → OK', () => {
    const cdp = opensslOk(['x509', '-in', leaf('good').file, '-noout', '-ext', 'crlDistributionPoints']);
    expect(cdp).toContain(`URI:${base}/crl/device-ca.crl`);
    const revoked = openssl(['verify', '-crl_check', '-crl_download', '-CAfile', f('chain.pem'), leaf('reason-cACompromise').file]);
    expect(revoked.code).toBe(2);
    expect(revoked.stdout + revoked.stderr).toMatch(/error 23 at 0 depth lookup: certificate revoked/);
    const good = openssl(['verify', '-crl_check', '-crl_download', '-CAfile', f('chain.pem'), leaf('good').file]);
    expect(good.code, good.stderr).toBe(0);
    expect(good.stdout.trim()).toBe(`${leaf('good').file}: OK`);
    // a hold is on the CRL too (reason certificateHold); the revoked-after-hold one stays there
    const held = openssl(['verify', '-crl_check', '-crl_download', '-CAfile', f('chain.pem'), leaf('hold-then-revoke').file]);
    expect(held.stdout + held.stderr).toMatch(/error 23 at 0 depth lookup: certificate revoked/);
  });

  it('verify -crl_check_all: the root CRL (/crl/root.crl) covers the device CA, the leaf CRL comes from its CDP (-crl_download)', () => {
    const root = fetchCrl('/crl/root.crl');
    expect(header(root.headers, 'content-type')).toBe('application/pkix-crl');
    const text = crlText(root.body);
    expect(text).toMatch(/Issuer: O = fleetca, CN = fleetca Root CA/);
    expect(text).not.toMatch(/Freshest CRL|Delta CRL Indicator/);
    writeFileSync(f('root.crl'), root.body);
    // NOTE(client): the root has no CDP, so -crl_download alone fails at depth 2 (CLIENTS.md 3c)
    const args = ['verify', '-crl_check_all', '-crl_download', '-CAfile', f('root.pem'), '-untrusted', f('int.pem'), '-CRLfile', f('root.crl')];
    const good = openssl([...args, leaf('good').file]);
    expect(good.code, good.stdout + good.stderr).toBe(0);
    expect(good.stdout.trim()).toBe(`${leaf('good').file}: OK`);
    const revoked = openssl([...args, leaf('reason-superseded').file]);
    expect(revoked.code).toBe(2);
    expect(revoked.stdout + revoked.stderr).toMatch(/error 23 at 0 depth lookup: certificate revoked/);
  });

  it('full CRL: CRL Number above the first one, AKI = the device CA key id, Freshest CRL names the delta, 7 days of validity', () => {
    const text = crlText(fetchCrl('/crl/device-ca.crl').body);
    expect(text).toMatch(/Issuer: O = fleetca, CN = fleetca Device CA/);
    expect(crlNumberOf(text)).toBeGreaterThan(firstCrlNumber);
    const ski = /Subject Key Identifier: *\n *([0-9A-F:]+)/.exec(opensslOk(['x509', '-in', f('int.pem'), '-noout', '-ext', 'subjectKeyIdentifier']))?.[1];
    expect(ski).toBeDefined();
    expect(text).toMatch(new RegExp(`Authority Key Identifier: *\\n *(keyid:)?${ski}\\n`));
    expect(text).toMatch(new RegExp(`X509v3 Freshest CRL: *\\n *Full Name:\\n *URI:${base.replace(/\./g, '\\.')}/crl/device-ca-delta\\.crl\\n`));
    const last = new Date(/Last Update: (.+GMT)/.exec(text)![1]!);
    const next = new Date(/Next Update: (.+GMT)/.exec(text)![1]!);
    expect(next.getTime() - last.getTime()).toBe(7 * 86_400_000);
    expect(text).not.toContain('Delta CRL Indicator');
  });

  it('delta CRL: Delta CRL Indicator critical naming a base, the released hold as Remove From CRL; the .pem variant parses as the same kind', async () => {
    const serial = leaf('hold').serial;
    let text = '';
    await pollUntil(
      'delta CRL with the released hold',
      () => {
        text = crlText(fetchCrl('/crl/device-ca-delta.crl').body);
        return crlEntryOf(text, serial) !== null;
      },
      { timeoutMs: 5_000, intervalMs: 100 },
    );
    const indicator = /X509v3 Delta CRL Indicator: critical *\n *(\d+)/.exec(text);
    expect(indicator, text).not.toBeNull();
    expect(BigInt(indicator![1]!)).toBeLessThan(crlNumberOf(text));
    expect(crlEntryOf(text, serial)).toMatch(/CRL Reason Code: *\n *Remove From CRL\n/);
    // every revocation of the run is in the delta too (the base is the one made at init)
    expect(crlEntryOf(text, leaf('reason-aACompromise').serial)).toMatch(/AA Compromise/);
    expect(text).not.toContain('Freshest CRL');

    const pem = fetchCrl('/crl/device-ca-delta.crl.pem');
    expect(header(pem.headers, 'content-type')).toMatch(/^application\/x-pem-file/);
    expect(pem.body.toString()).toMatch(/^-----BEGIN X509 CRL-----\n/);
    expect(crlText(pem.body, 'PEM')).toMatch(/X509v3 Delta CRL Indicator: critical/);
    const fullPem = fetchCrl('/crl/device-ca.crl.pem');
    const fullText = crlText(fullPem.body, 'PEM');
    expect(fullText).toMatch(/X509v3 Freshest CRL/);
    expect(crlEntryOf(fullText, leaf('reason-keyCompromise').serial)).not.toBeNull();
  });

  it('HTTP: application/pkix-crl, ETag, Last-Modified = thisUpdate, Expires = nextUpdate, max-age ≤ crl.httpMaxAge; If-None-Match → 304', () => {
    let r = fetchCrl('/crl/device-ca.crl');
    expect(r.status).toBe(200);
    expect(header(r.headers, 'content-type')).toBe('application/pkix-crl');
    const text = crlText(r.body);
    expect(new Date(header(r.headers, 'last-modified')!).getTime()).toBe(new Date(/Last Update: (.+GMT)/.exec(text)![1]!).getTime());
    expect(new Date(header(r.headers, 'expires')!).getTime()).toBe(new Date(/Next Update: (.+GMT)/.exec(text)![1]!).getTime());
    const cc = header(r.headers, 'cache-control') ?? '';
    const maxAge = Number(/max-age=(\d+)/.exec(cc)?.[1] ?? NaN);
    expect(maxAge, cc).toBeGreaterThan(0);
    expect(maxAge, cc).toBeLessThanOrEqual(HTTP_MAX_AGE_S);
    let etag = header(r.headers, 'etag');
    expect(etag).toMatch(/^"[^"]+"$/);

    let cond = fetchCrl('/crl/device-ca.crl', ['-H', `If-None-Match: ${etag}`]);
    if (cond.status === 200) {
      // republished between the two requests: a new CRL has a new ETag, and that one matches
      expect(header(cond.headers, 'etag')).not.toBe(etag);
      r = cond;
      etag = header(r.headers, 'etag');
      cond = fetchCrl('/crl/device-ca.crl', ['-H', `If-None-Match: ${etag}`]);
    }
    expect(cond.status).toBe(304);
    expect(cond.body.length).toBe(0);
    expect(header(cond.headers, 'etag')).toBe(etag);
    // another tag: the CRL itself
    expect(fetchCrl('/crl/device-ca.crl', ['-H', 'If-None-Match: "something-else"']).status).toBe(200);
  });
});

// ------------------------------------------------------------------ bad input

describe('bad input: a protocol answer, never a 500, and the server keeps answering', () => {
  it('garbage POST body: HTTP 200, application/ocsp-response, malformedrequest', () => {
    const r = postOcsp(Buffer.from('this is not an OCSP request\n'));
    expect(r.status).toBe(200);
    expect(header(r.headers, 'content-type')).toBe('application/ocsp-response');
    expect(respin(r.body).responderError).toBe('malformedrequest (1)');
    expectStillAnswers();
  });

  it('an empty POST body and a truncated real request: malformedrequest', () => {
    const der = requestDer('good');
    for (const body of [Buffer.alloc(0), der.subarray(0, der.length - 7), der.subarray(0, 10)]) {
      const r = postOcsp(body);
      expect(r.status, `${body.length} bytes`).toBe(200);
      expect(respin(r.body).responderError, `${body.length} bytes`).toBe('malformedrequest (1)');
    }
    expectStillAnswers();
  });

  it('a CertID hashed with MD5 (openssl ocsp -md5): malformedrequest', () => {
    // openssl takes the digest for the CertIDs named after it
    const o = opensslOcsp(['-md5', '-issuer', f('int.pem'), '-cert', leaf('good').file, '-url', `${base}/ocsp`, '-CAfile', f('chain.pem'), '-timeout', '10']);
    expect(o.out).not.toMatch(/Digest must be before/);
    expect(o.responderError, o.out).toBe('malformedrequest (1)');
    expectStillAnswers();
  });

  it('a 1 MB POST body: HTTP 413 (with and without Expect: 100-continue); then answered again', () => {
    const big = Buffer.alloc(1024 * 1024, 0x30);
    for (const extra of [[], ['-H', 'Expect:']]) {
      const r = postOcsp(big, extra);
      expect(r.status, `${extra.join(' ')} ${r.stderr}`).toBe(413);
    }
    expectStillAnswers();
  });

  it('GET with something that is not base64 (/ocsp/!!!notbase64, a bad %-escape): HTTP 200, malformedrequest', () => {
    for (const p of ['/ocsp/!!!notbase64', '/ocsp/device-ca/!!!notbase64', '/ocsp/MFQw%ZZ']) {
      const r = curl([`${base}${p}`]);
      expect(r.status, p).toBe(200);
      expect(header(r.headers, 'content-type'), p).toBe('application/ocsp-response');
      expect(respin(r.body).responderError, p).toBe('malformedrequest (1)');
    }
    expectStillAnswers();
  });

  it('PUT /ocsp: 405 with Allow: GET, POST', () => {
    const r = curl(['-X', 'PUT', '--data-binary', 'x', `${base}/ocsp`]);
    expect(r.status).toBe(405);
    expect(header(r.headers, 'allow')).toBe('GET, POST');
    expectStillAnswers();
  });

  it('CRL paths: an unknown issuer or shard is 404; the delta as PEM is served', () => {
    for (const p of ['/crl/nope.crl', '/crl/device-ca-7.crl', '/crl/device-ca-1.crl', '/crl/nope-delta.crl', '/crl/device-ca.pem', '/crl/DEVICE-CA.crl']) {
      const r = curl([`${base}${p}`]);
      expect(r.status, p).toBe(404);
    }
    const delta = curl([`${base}/crl/device-ca-delta.crl.pem`]);
    expect(delta.status).toBe(200);
    expect(crlText(delta.body, 'PEM')).toMatch(/Delta CRL Indicator: critical/);
    expectStillAnswers();
  });
});

// ------------------------------------------------------------------ no database

describe('without its database the responder says tryLater', () => {
  it('database closed to connections (ALLOW_CONNECTIONS false, backends terminated): Responder Error: trylater (3); good again once reopened', async () => {
    const name = databaseOf(db.connectionString);
    const c = new pg.Client({ connectionString: withDatabase(db.connectionString, 'postgres') });
    await c.connect();
    try {
      await c.query(`ALTER DATABASE "${name}" ALLOW_CONNECTIONS false`);
      await c.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name]);
      // a certificate never asked about: not in the responder's cache, its status needs the database
      const o = await opensslOcspAsync(['-issuer', f('int.pem'), '-cert', leaf('db-off').file, '-url', `${base}/ocsp`, '-CAfile', f('chain.pem'), '-timeout', '10', '-no_nonce']);
      expect(o.responderError, `${o.out}\n${server!.stderr().split('\n').slice(-5).join('\n')}`).toBe('trylater (3)');
    } finally {
      await c.query(`ALTER DATABASE "${name}" ALLOW_CONNECTIONS true`);
      await c.end();
    }
    await pollUntil('good after the database reopened', async () => (await opensslOcspAsync(['-issuer', f('int.pem'), '-cert', leaf('db-off').file, '-url', `${base}/ocsp`, '-CAfile', f('chain.pem'), '-timeout', '10'])).status === 'good', {
      timeoutMs: 15_000,
      intervalMs: 200,
    });
  });

  it('database unreachable (its TCP relay cut: connection refused): Responder Error: trylater (3); good again once it is back', async () => {
    relay = await startDbRelay(db.connectionString);
    const c = await startServe({ ...env, DATABASE_URL: relay.connectionString });
    extraServers.add(c);
    try {
      const askC = () => opensslOcspAsync(['-issuer', f('int.pem'), '-cert', leaf('db-cut').file, '-url', `${c.httpUrl}/ocsp`, '-CAfile', f('chain.pem'), '-timeout', '10', '-no_nonce']);
      await relay.cut();
      const o = await askC();
      expect(o.responderError, `${o.out}\n${c.stderr().split('\n').slice(-12).join('\n')}`).toBe('trylater (3)');
      // the server survived the outage and answers again once the database is back
      await relay.restore();
      await pollUntil('good after the database came back', async () => (await askC()).status === 'good', { timeoutMs: 15_000, intervalMs: 200 });
      expect(c.proc.exitCode).toBeNull();
    } finally {
      await c.stop();
      extraServers.delete(c);
      await relay.close();
      relay = undefined;
    }
  });
});
