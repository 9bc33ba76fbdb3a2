/**
 * The CLI end to end, as an operator runs it: `fleetca init`, CSRs made by openssl, `fleetca
 * issue`, and every certificate checked by `openssl verify -x509_strict` and `openssl x509 -text`.
 * Bad inputs: one clear line, the documented exit code, and nothing written to the database.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { configCopy, fleetca, openssl, opensslOk, replaceInFile } from '../helpers/cli.js';

let db: TestDatabase;
let dir: string;
let env: Record<string, string>;
let pool: pg.Pool;
const f = (name: string) => path.join(dir, name);

/** An openssl CSR; `keyArgs` picks the key, `extra` adds -addext lines etc. */
function csr(name: string, subj: string, keyArgs: string[], extra: string[] = []): string {
  const key = f(`${name}.key`);
  const out = f(`${name}.csr`);
  opensslOk(['req', '-new', ...keyArgs, '-nodes', '-keyout', key, '-subj', subj, '-out', out, ...extra]);
  return out;
}
const P256 = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];

async function counts(): Promise<{ certs: number; intents: number; serials: number }> {
  const r = await pool.query<{ c: string; i: string; s: string }>(
    'SELECT (SELECT count(*) FROM certificates) AS c, (SELECT count(*) FROM issuance_intents) AS i, (SELECT count(*) FROM serials) AS s',
  );
  return { certs: Number(r.rows[0]!.c), intents: Number(r.rows[0]!.i), serials: Number(r.rows[0]!.s) };
}

beforeAll(async () => {
  db = await createTestDatabase();
  pool = new pg.Pool({ connectionString: db.connectionString, max: 2 });
  dir = mkdtempSync(path.join(os.tmpdir(), 'fleetca-cli-'));
  env = { DATABASE_URL: db.connectionString, FLEETCA_DATA_DIR: f('data'), FLEETCA_KEY_PASSPHRASE: '' };
  const r = fleetca(['init', '--public-url', 'http://pki.example.test:8080'], env);
  expect(r.stderr).toContain('initialised');
  expect(r.code).toBe(0);
  writeFileSync(f('root.pem'), readFileSync(f('data/certs/root.pem')));
  writeFileSync(f('device-ca.pem'), readFileSync(f('data/certs/device-ca.pem')));
}, 180_000);

afterAll(async () => {
  await pool?.end();
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('fleetca init', () => {
  it('keys/encrypted PKCS#8, mode 0600, generated passphrase 0600 with a warning', () => {
    for (const k of ['root', 'device-ca', 'manufacturing-ca', 'ocsp-device-ca', 'ocsp-manufacturing-ca', 'scep-ra', 'tls-server']) {
      const file = f(`data/keys/${k}.key.pem`);
      expect(readFileSync(file, 'utf8')).toMatch(/^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
      expect(statSync(file).mode & 0o777).toBe(0o600);
    }
    expect(statSync(f('data/key-passphrase')).mode & 0o777).toBe(0o600);
  });

  it('hierarchy/issuing CAs chain to the root; OCSP responders carry OCSPSigning + nocheck', () => {
    opensslOk(['verify', '-x509_strict', '-CAfile', f('root.pem'), f('data/certs/device-ca.pem')]);
    opensslOk(['verify', '-x509_strict', '-CAfile', f('root.pem'), f('data/certs/manufacturing-ca.pem')]);
    const ocsp = opensslOk(['x509', '-in', f('data/certs/ocsp-device-ca.pem'), '-noout', '-text']);
    expect(ocsp).toContain('OCSP Signing');
    expect(ocsp).toContain('OCSP No Check');
    opensslOk(['verify', '-x509_strict', '-CAfile', f('root.pem'), '-untrusted', f('device-ca.pem'), f('data/certs/ocsp-device-ca.pem')]);
    const ra = opensslOk(['x509', '-in', f('data/certs/scep-ra.pem'), '-noout', '-text']);
    expect(ra).toContain('Public-Key: (2048 bit)');
    expect(ra).toContain('rsaEncryption');
    const tls = opensslOk(['x509', '-in', f('data/certs/tls-server.pem'), '-noout', '-text']);
    expect(tls).toMatch(/DNS:localhost/);
    expect(tls).toMatch(/IP Address:127\.0\.0\.1/);
    expect(tls).toMatch(/DNS:pki\.example\.test/);
    expect(tls).toContain('TLS Web Server Authentication');
  });

  it('first CRLs/published for every CA', async () => {
    const r = await pool.query<{ n: string }>("SELECT count(DISTINCT issuer_id) AS n FROM crls WHERE kind = 'full'");
    expect(Number(r.rows[0]!.n)).toBe(3);
  });

  it('init twice/refused, exit 6', () => {
    const r = fleetca(['init'], env);
    expect(r.code).toBe(6);
    expect(r.stderr).toMatch(/already initialised/);
  });

  it('ca chain/device issuing CA first, root last', () => {
    const r = fleetca(['ca', 'chain'], env);
    expect(r.code).toBe(0);
    writeFileSync(f('chain.pem'), r.stdout);
    const subjects = opensslOk(['crl2pkcs7', '-nocrl', '-certfile', f('chain.pem')]);
    const printed = opensslOk(['pkcs7', '-print_certs', '-noout'], subjects);
    const lines = printed.split('\n').filter((l) => l.startsWith('subject='));
    expect(lines).toHaveLength(2);
    expect(lines[0]).toContain('fleetca Device CA');
    expect(lines[1]).toContain('fleetca Root CA');
  });
});

describe('fleetca issue', () => {
  const keyCases: Array<[string, string[]]> = [
    ['P-256', P256],
    ['P-384', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384']],
    ['RSA-2048', ['-newkey', 'rsa:2048']],
    ['Ed25519', ['-newkey', 'ed25519']],
  ];
  for (const [label, keyArgs] of keyCases) {
    it(`camera ${label}/verifies with -x509_strict and carries the profile's extensions`, () => {
      const id = `cam-${label.toLowerCase()}`;
      const req = csr(id, `/CN=${id}/O=Acme Cams`, keyArgs);
      const r = fleetca(['issue', '--profile', 'camera', '--device', id, '--csr', req], env);
      expect(r.stderr).toContain('issued serial');
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^-----BEGIN CERTIFICATE-----\n[\s\S]+-----END CERTIFICATE-----\n$/);
      writeFileSync(f(`${id}.pem`), r.stdout);
      const v = openssl(['verify', '-x509_strict', '-CAfile', f('root.pem'), '-untrusted', f('device-ca.pem'), f(`${id}.pem`)]);
      expect(v.stdout.trim()).toBe(`${f(`${id}.pem`)}: OK`);
      const text = opensslOk(['x509', '-in', f(`${id}.pem`), '-noout', '-text']);
      expect(text).toContain('X509v3 Key Usage: critical');
      expect(text).toContain(label === 'RSA-2048' ? 'Digital Signature, Key Encipherment' : 'Digital Signature');
      if (label !== 'RSA-2048') expect(text).not.toContain('Key Encipherment');
      expect(text).toContain('TLS Web Client Authentication');
      expect(text).toContain('X509v3 Subject Key Identifier');
      expect(text).toContain('X509v3 Authority Key Identifier');
      expect(text).toContain('URI:http://pki.example.test:8080/crl/device-ca.crl');
      expect(text).toContain('OCSP - URI:http://pki.example.test:8080/ocsp/device-ca');
      expect(text).toContain('CA Issuers - URI:http://pki.example.test:8080/ca/device-ca.crt');
      expect(text).toMatch(/Subject: O ?= ?Acme Cams, CN ?= ?cam-/);
      expect(text).toContain('CA:FALSE');
      // the serial printed on stderr is the one openssl sees
      const serial = opensslOk(['x509', '-in', f(`${id}.pem`), '-noout', '-serial']).trim().replace('serial=', '');
      expect(r.stderr).toContain(serial);
    });
  }

  it('device MACs/appear as urn:dev:mac URI SANs', () => {
    expect(fleetca(['device', 'add', 'cam-mac', '--mac', '00:1B:44:11:3A:B7', '--model', 'X1', '--firmware', '2.4.0', '--profile', 'camera'], env).code).toBe(0);
    const req = csr('cam-mac', '/CN=cam-mac', P256);
    const r = fleetca(['issue', '--profile', 'camera', '--device', 'cam-mac', '--csr', req], env);
    expect(r.code).toBe(0);
    const text = opensslOk(['x509', '-noout', '-ext', 'subjectAltName'], r.stdout);
    expect(text).toContain('URI:urn:dev:mac:001b44113ab7');
  });

  it('IDevID/issued by the manufacturing CA, which the device chain does not contain', () => {
    const req = csr('idev-1', '/CN=idev-1/serialNumber=SN0001', P256);
    const r = fleetca(['issue', '--profile', 'manufacturing-idevid', '--device', 'idev-1', '--csr', req, '--chain'], env);
    expect(r.code).toBe(0);
    writeFileSync(f('idev.pem'), r.stdout);
    const issuer = opensslOk(['x509', '-in', f('idev.pem'), '-noout', '-issuer']);
    expect(issuer).toContain('fleetca Manufacturing CA');
    writeFileSync(f('mfg.pem'), readFileSync(f('data/certs/manufacturing-ca.pem')));
    opensslOk(['verify', '-x509_strict', '-CAfile', f('root.pem'), '-untrusted', f('mfg.pem'), f('idev.pem')]);
    expect(openssl(['verify', '-x509_strict', '-CAfile', f('root.pem'), '-untrusted', f('device-ca.pem'), f('idev.pem')]).code).not.toBe(0);
  });

  it('DER CSR and stdin/accepted', () => {
    const req = csr('cam-der', '/CN=cam-der', P256);
    opensslOk(['req', '-in', req, '-outform', 'DER', '-out', f('cam-der.der')]);
    const r = fleetca(['issue', '--profile', 'sensor', '--device', 'cam-der', '--csr', '-'], env, readFileSync(f('cam-der.der')));
    expect(r.code).toBe(0);
  });
});

describe('bad inputs/one line, exit code, nothing written', () => {
  const bad: Array<[string, () => string[], number, RegExp]> = [
    ['CSR neither PEM nor DER', () => { writeFileSync(f('junk.txt'), 'hello, I am not a CSR\n'); return ['--profile', 'camera', '--device', 'b1', '--csr', f('junk.txt')]; }, 2, /CSR is neither PEM nor DER/],
    ['truncated DER', () => {
      opensslOk(['req', '-in', csr('b2', '/CN=b2', P256), '-outform', 'DER', '-out', f('b2.der')]);
      writeFileSync(f('b2-trunc.der'), readFileSync(f('b2.der')).subarray(0, 100));
      return ['--profile', 'camera', '--device', 'b2', '--csr', f('b2-trunc.der')];
    }, 2, /truncated|malformed/],
    ['bad CSR signature', () => {
      opensslOk(['req', '-in', csr('b3', '/CN=b3', P256), '-outform', 'DER', '-out', f('b3.der')]);
      const d = readFileSync(f('b3.der'));
      d[d.length - 5]! ^= 0x01;
      writeFileSync(f('b3-bad.der'), d);
      return ['--profile', 'camera', '--device', 'b3', '--csr', f('b3-bad.der')];
    }, 2, /signature does not verify/],
    ['RSA-1024', () => ['--profile', 'camera', '--device', 'b4', '--csr', csr('b4', '/CN=b4', ['-newkey', 'rsa:1024'])], 3, /RSA-1024 is not allowed by profile camera/],
    ['P-192', () => ['--profile', 'camera', '--device', 'b5', '--csr', csr('b5', '/CN=b5', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime192v1'])], 3, /P-192 is not allowed/],
    ['CN other than the device id', () => ['--profile', 'camera', '--device', 'b6', '--csr', csr('b6', '/CN=someone-else', P256)], 3, /must equal the device id "b6"/],
    ['DNS SAN where none is allowed', () => ['--profile', 'camera', '--device', 'b7', '--csr', csr('b7', '/CN=b7', P256, ['-addext', 'subjectAltName=DNS:cam.example.com'])], 3, /DNS SAN "cam.example.com" is not allowed/],
    ['email SAN where none is allowed', () => ['--profile', 'camera', '--device', 'b8', '--csr', csr('b8', '/CN=b8', P256, ['-addext', 'subjectAltName=email:a@example.com'])], 3, /EMAIL SAN "a@example.com" is not allowed/],
    ['basicConstraints CA:TRUE', () => ['--profile', 'camera', '--device', 'b9', '--csr', csr('b9', '/CN=b9', P256, ['-addext', 'basicConstraints=critical,CA:TRUE'])], 3, /CA:TRUE/],
    ['keyCertSign', () => ['--profile', 'camera', '--device', 'b10', '--csr', csr('b10', '/CN=b10', P256, ['-addext', 'keyUsage=critical,digitalSignature,keyCertSign'])], 3, /keyCertSign/],
    ['key already certified for another device', () => {
      opensslOk(['req', '-new', '-key', f('cam-p-256.key'), '-subj', '/CN=b11', '-out', f('b11.csr')]);
      return ['--profile', 'camera', '--device', 'b11', '--csr', f('b11.csr')];
    }, 3, /already certified for another device/],
    ['unknown profile', () => ['--profile', 'toaster', '--device', 'b12', '--csr', csr('b12', '/CN=b12', P256)], 4, /unknown profile "toaster"/],
    ['system profile', () => ['--profile', 'tls-server', '--device', 'b13', '--csr', csr('b13', '/CN=b13', P256)], 3, /service certificates/],
    ['missing CSR file', () => ['--profile', 'camera', '--device', 'b14', '--csr', f('nope.csr')], 2, /cannot read .*ENOENT/],
  ];
  for (const [name, args, code, re] of bad) {
    it(name, async () => {
      const a = args();
      const before = await counts();
      const r = fleetca(['issue', ...a], env);
      expect(r.stdout).toBe('');
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(re);
      expect(r.code).toBe(code);
      expect(await counts()).toEqual(before);
    });
  }

  it('revoke of an unknown serial/exit 4, revoking twice/exit 6', async () => {
    const r = fleetca(['revoke', '0102030405', '--reason', 'keyCompromise'], env);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/no certificate with serial/);
    const list = JSON.parse(fleetca(['cert', 'list', '--device', 'cam-p-384', '--json'], env).stdout) as Array<{ serial: string }>;
    const serial = list[0]!.serial;
    const first = fleetca(['revoke', serial, '--reason', 'keyCompromise'], env);
    expect(first.code).toBe(0);
    const before = await pool.query('SELECT count(*) FROM revocations');
    const second = fleetca(['revoke', serial.toLowerCase().match(/../g)!.join(':'), '--reason', 'superseded'], env);
    expect(second.code).toBe(6);
    expect(second.stderr).toMatch(/already revoked/);
    expect((await pool.query('SELECT count(*) FROM revocations')).rows).toEqual(before.rows);
    const shown = JSON.parse(fleetca(['cert', 'show', serial, '--json'], env).stdout) as { status: string; revocation_reason: string };
    expect(shown.status).toBe('revoked');
    expect(shown.revocation_reason).toBe('keyCompromise');
  });

  it('config with a typo/`config check` lists it with its path, exit 2', () => {
    const cfg = configCopy((d) => replaceInFile(path.join(d, 'profiles/sensor.yaml'), 'validity: 730d', 'validty: 730d'));
    const r = fleetca(['config', 'check', '--config-dir', cfg], {});
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('profiles/sensor.yaml: (top level): unknown key "validty"');
    const ok = fleetca(['config', 'check'], {});
    expect(ok.code).toBe(0);
    rmSync(cfg, { recursive: true, force: true });
  });
});

describe('listing', () => {
  it('cert list --json/every match with serial, device, profile, issuer, not_after, status', () => {
    const r = fleetca(['cert', 'list', '--json'], env);
    expect(r.code).toBe(0);
    const list = JSON.parse(r.stdout) as Array<Record<string, string>>;
    const devices = list.filter((c) => c.profile === 'camera').map((c) => c.device);
    expect(devices).toEqual(expect.arrayContaining(['cam-p-256', 'cam-p-384', 'cam-rsa-2048', 'cam-ed25519', 'cam-mac']));
    for (const c of list) {
      expect(c.serial).toMatch(/^[0-9A-F]+$/);
      expect(Object.keys(c)).toEqual(expect.arrayContaining(['serial', 'device', 'profile', 'issuer', 'not_after', 'status']));
    }
    const byProfile = JSON.parse(fleetca(['cert', 'list', '--profile', 'sensor', '--json'], env).stdout) as unknown[];
    expect(byProfile).toHaveLength(1);
  });

  it('cert list --expiring-within/only certificates ending inside the window', () => {
    // medical devices live 30 days; cameras 365
    const req = csr('med-1', '/CN=med-1', P256);
    expect(fleetca(['issue', '--profile', 'medical-device', '--device', 'med-1', '--csr', req], env).code).toBe(0);
    const soon = JSON.parse(fleetca(['cert', 'list', '--expiring-within', '31d', '--json'], env).stdout) as Array<{ device: string }>;
    expect(soon.map((c) => c.device)).toContain('med-1');
    expect(soon.map((c) => c.device)).not.toContain('cam-p-256');
    expect(fleetca(['cert', 'list', '--expiring-within', 'soon'], env).code).toBe(2);
  });

  it('device show/update/list', () => {
    const u = fleetca(['device', 'update', 'cam-mac', '--firmware', '2.4.1', '--mac', '00:1b:44:11:3a:b8', '--json'], env);
    expect(u.code).toBe(0);
    expect(JSON.parse(u.stdout)).toMatchObject({ id: 'cam-mac', firmware: '2.4.1', macs: ['00:1b:44:11:3a:b8'] });
    const s = JSON.parse(fleetca(['device', 'show', 'cam-mac', '--json'], env).stdout) as { certificates: unknown[]; last_enrolled_at: string | null };
    expect(s.certificates).toHaveLength(1);
    expect(s.last_enrolled_at).not.toBeNull();
    const l = JSON.parse(fleetca(['device', 'list', '--model', 'X1', '--json'], env).stdout) as Array<{ id: string }>;
    expect(l.map((d) => d.id)).toEqual(['cam-mac']);
    expect(fleetca(['device', 'update', 'nobody', '--model', 'X'], env).code).toBe(4);
    expect(fleetca(['device', 'add', 'cam-mac'], env).code).toBe(6);
    expect(fleetca(['device', 'add', 'bad id!'], env).code).toBe(2);
    expect(fleetca(['device', 'update', 'cam-mac', '--mac', 'zz:zz'], env).code).toBe(2);
  });
});

describe('offline root', () => {
  it('root export + remove/issuing goes on; root CRL needs --root-key', () => {
    const out = f('root-offline.key.pem');
    expect(fleetca(['root', 'export', '--out', out], env).code).toBe(0);
    expect(readFileSync(out, 'utf8')).toMatch(/ENCRYPTED PRIVATE KEY/);
    expect(fleetca(['root', 'export', '--out', out], env).code).toBe(6);
    expect(fleetca(['root', 'remove', '--exported', f('data/keys/device-ca.key.pem')], env).code).toBe(6);
    expect(fleetca(['root', 'remove', '--exported', out], env).code).toBe(0);
    expect(existsSync(f('data/keys/root.key.pem'))).toBe(false);
    const req = csr('after-root', '/CN=after-root', P256);
    expect(fleetca(['issue', '--profile', 'camera', '--device', 'after-root', '--csr', req], env).code).toBe(0);
    const noKey = fleetca(['crl', 'publish', '--issuer', 'root'], env);
    expect(noKey.code).toBe(5);
    expect(noKey.stderr).toMatch(/offline/);
    const withKey = fleetca(['crl', 'publish', '--issuer', 'root', '--root-key', out], env);
    expect(withKey.code).toBe(0);
    expect(withKey.stderr).toMatch(/published CRL #2 \(0 entries\) for root/);
  });
});
