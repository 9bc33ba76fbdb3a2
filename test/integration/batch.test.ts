/**
 * `fleetca batch` end to end through the real CLI on a real database: device CSR / SPKI rows,
 * server-generated keys (encrypted PEM, PKCS#12), one-time secrets, the output folder (files,
 * modes, SHA256SUMS checked by sha256sum), rejects, idempotent reruns, a lost key replaced, and the
 * recall of a batch.
 */
import crypto, { X509Certificate } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseCsv } from 'csv-parse/sync';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { fleetca, openssl, opensslOk } from '../helpers/cli.js';
import { pemEncode } from '../../src/pki/pem.js';
import { deriveSecretKey, secretMac } from '../../src/enrollment/secrets.js';
import { makeCsr } from '../../bench/fixtures.js';

let db: TestDatabase;
let dir: string;
let env: Record<string, string>;
let pool: pg.Pool;
const f = (n: string) => path.join(dir, n);
const PASSWORD = 'correct horse battery staple 42';

beforeAll(async () => {
  db = await createTestDatabase();
  pool = new pg.Pool({ connectionString: db.connectionString, max: 2 });
  dir = mkdtempSync(path.join(os.tmpdir(), 'fleetca-batch-'));
  chmodSync(dir, 0o711);
  env = { DATABASE_URL: db.connectionString, FLEETCA_DATA_DIR: f('data'), FLEETCA_KEY_PASSPHRASE: 'batch tests passphrase' };
  const r = fleetca(['init'], env);
  expect(r.code, r.stderr).toBe(0);
  writeFileSync(f('pw.txt'), PASSWORD + '\n', { mode: 0o600 });
}, 180_000);

afterAll(async () => {
  await pool?.end();
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const q = (s: string) => `"${s.replace(/"/g, '""')}"`;
const csv = (file: string) => parseCsv(readFileSync(file), { columns: true }) as Array<Record<string, string>>;
const mode = (file: string) => statSync(file).mode & 0o777;

/** `sha256sum -c` in the output folder. */
function sha256sumOk(out: string): void {
  const r = spawnSync('sha256sum', ['-c', '--quiet', 'SHA256SUMS'], { cwd: out, encoding: 'utf8' });
  expect(r.status, r.stdout + r.stderr).toBe(0);
}

async function certRows(batch: string) {
  const r = await pool.query<{ device_id: string; serial: string; status: string; pop_method: string; revocation_reason: string | null }>(
    `SELECT c.device_id, c.serial, c.status, c.pop_method, c.revocation_reason FROM issuance_intents ii JOIN certificates c USING (serial)
     WHERE ii.request ->> 'batch' = $1 ORDER BY c.device_id, c.created_at`,
    [batch],
  );
  return r.rows;
}

describe('fleetca batch run: device keys', () => {
  it('CSR and SPKI rows/one certificate each (SPKI recorded as factory PoP), device records created, output complete; bad rows in rejects.csv', async () => {
    const rows = ['device_id,serial_number,mac,model,firmware,csr,public_key'];
    for (let i = 0; i < 6; i++) rows.push(`dk-${i},SN${i},00:11:22:33:44:0${i},X100,1.0.${i},${makeCsr(`dk-${i}`).toString('base64')},`);
    const spki = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
    rows.push(`dk-spki,SNS,,X100,1.0,,${spki}`);
    rows.push(`dk-0,SN0,,X100,1.0,${q(pemEncode('CERTIFICATE REQUEST', makeCsr('dk-0')))},`); // duplicate, its PEM over 8 lines
    rows.push(`dk-badmac,SNB,not-a-mac,X100,1.0,,${spki}`);
    writeFileSync(f('dk.csv'), rows.join('\n') + '\n');
    const out = f('out-dk');
    const r = fleetca(['batch', 'run', f('dk.csv'), '--out', out, '--profile', 'camera', '--batch-id', 'dk-1', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect(summary).toMatchObject({ id: 'dk-1', state: 'complete', done: 7, rejected: 2, this_run: { issued: 7, already_done: 0, rejected: 0 } });
    // plain progress lines when stderr is not a terminal
    expect(r.stderr).toMatch(/batch dk-1: 9\/9 rows \(100\.0 %\)/);

    const manifest = csv(path.join(out, 'manifest.csv'));
    expect(manifest.map((m) => m.device_id)).toEqual(['dk-0', 'dk-1', 'dk-2', 'dk-3', 'dk-4', 'dk-5', 'dk-spki']);
    expect(Object.keys(manifest[0]!)).toEqual(['device_id', 'serial', 'sha256_fingerprint', 'not_after']);
    for (const m of manifest) {
      const pem = readFileSync(path.join(out, 'devices', m.device_id!, 'cert.pem'), 'utf8');
      const cert = new X509Certificate(pem);
      expect(cert.serialNumber).toBe(m.serial);
      expect(crypto.createHash('sha256').update(cert.raw).digest('hex')).toBe(m.sha256_fingerprint);
      expect(new Date(cert.validTo).getTime()).toBe(new Date(m.not_after!).getTime());
      opensslOk(['verify', '-x509_strict', '-CAfile', f('data/certs/root.pem'), '-untrusted', path.join(out, 'devices', m.device_id!, 'chain.pem'), path.join(out, 'devices', m.device_id!, 'cert.pem')]);
      expect(existsSync(path.join(out, 'devices', m.device_id!, 'key.pem'))).toBe(false);
    }
    // the device record from the row; its MAC in the certificate (profile includeMacs)
    const d = JSON.parse(fleetca(['device', 'show', 'dk-3', '--json'], env).stdout);
    expect(d).toMatchObject({ id: 'dk-3', serial_number: 'SN3', macs: ['00:11:22:33:44:03'], model: 'X100', firmware: '1.0.3', profile: 'camera' });
    expect(opensslOk(['x509', '-in', path.join(out, 'devices/dk-3/cert.pem'), '-noout', '-ext', 'subjectAltName'])).toContain('URI:urn:dev:mac:001122334403');

    const rejects = csv(path.join(out, 'rejects.csv'));
    expect(rejects).toEqual([
      { line: '9', device_id: 'dk-0', reason: expect.stringMatching(/duplicate device_id \(first at line 2\)/) },
      { line: '17', device_id: 'dk-badmac', reason: 'malformed MAC address "not-a-mac"' },
    ]);
    sha256sumOk(out);
    expect(readFileSync(path.join(out, 'SHA256SUMS'), 'utf8')).toContain('  devices/dk-spki/cert.pem\n');

    const certs = await certRows('dk-1');
    expect(certs).toHaveLength(7);
    expect(certs.find((c) => c.device_id === 'dk-spki')!.pop_method).toBe('factory');
    expect(certs.filter((c) => c.pop_method === 'csr')).toHaveLength(6);

    // a rerun issues nothing and leaves the same output
    const sums = readFileSync(path.join(out, 'SHA256SUMS'), 'utf8');
    const again = fleetca(['batch', 'run', f('dk.csv'), '--out', out, '--profile', 'camera', '--batch-id', 'dk-1', '--json'], env);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ runs: 2, this_run: { issued: 0, already_done: 7 } });
    expect(await certRows('dk-1')).toHaveLength(7);
    expect(readFileSync(path.join(out, 'SHA256SUMS'), 'utf8')).toBe(sums);

    // a cert.pem deleted is written again from the database, not issued again
    unlinkSync(path.join(out, 'devices/dk-2/cert.pem'));
    expect(fleetca(['batch', 'run', f('dk.csv'), '--out', out, '--profile', 'camera', '--batch-id', 'dk-1'], env).code).toBe(0);
    expect(readFileSync(path.join(out, 'SHA256SUMS'), 'utf8')).toBe(sums);
    expect(await certRows('dk-1')).toHaveLength(7);
  });

  it('same id, other manifest or options/refused (exit 6); --strict/refuses the whole batch at the first bad row, nothing issued', async () => {
    writeFileSync(f('other.csv'), `device_id,csr\nother-1,${q(pemEncode('CERTIFICATE REQUEST', makeCsr('other-1')))}\n`);
    const r = fleetca(['batch', 'run', f('other.csv'), '--out', f('out-dk'), '--profile', 'camera', '--batch-id', 'dk-1'], env);
    expect(r.code).toBe(6);
    expect(r.stderr).toMatch(/batch dk-1 was run with another manifest/);
    const opt = fleetca(['batch', 'run', f('dk.csv'), '--out', f('out-dk'), '--profile', 'sensor', '--batch-id', 'dk-1'], env);
    expect(opt.code).toBe(6);
    expect(opt.stderr).toMatch(/other options \(profile: camera \(batch\) vs sensor \(now\)\)/);

    writeFileSync(f('strict.csv'), `device_id,csr\nst-1,${makeCsr('st-1').toString('base64')}\nst-2,not-a-file.csr\n`);
    const s = fleetca(['batch', 'run', f('strict.csv'), '--out', f('out-strict'), '--profile', 'camera', '--strict'], env);
    expect(s.code).toBe(2);
    expect(s.stderr).toMatch(/manifest line 3 \(st-2\): csr file "not-a-file.csr" cannot be read: ENOENT \(--strict: nothing was issued\)/);
    expect(existsSync(f('out-strict'))).toBe(false);
    const n = await pool.query("SELECT count(*)::int AS n FROM devices WHERE id LIKE 'st-%'");
    expect(n.rows[0].n).toBe(0);
  });
});

describe('fleetca batch run: server-generated keys', () => {
  it('encrypted PEM + secrets/key.pem is PKCS#8 PBES2 AES-256 (0600) and opens with the password only; one stored secret per device, the one in manifest.csv', async () => {
    writeFileSync(f('srv.csv'), 'device_id,serial_number,model\n' + Array.from({ length: 5 }, (_, i) => `srv-${i},SRV${i},S1`).join('\n') + '\n');
    const out = f('out-srv');
    const r = fleetca(['batch', 'run', f('srv.csv'), '--out', out, '--profile', 'camera', '--keygen', 'server', '--key-password-file', f('pw.txt'), '--secrets', '--batch-id', 'srv-1'], env);
    expect(r.code, r.stderr).toBe(0);
    const manifest = csv(path.join(out, 'manifest.csv'));
    expect(manifest).toHaveLength(5);
    expect(mode(path.join(out, 'manifest.csv'))).toBe(0o600);
    expect(mode(out)).toBe(0o700);
    for (const m of manifest) {
      expect(m.secret).toMatch(/^[A-Za-z0-9_-]{32}$/);
      const keyFile = path.join(out, 'devices', m.device_id!, 'key.pem');
      expect(mode(keyFile)).toBe(0o600);
      const pem = readFileSync(keyFile, 'utf8');
      expect(pem).toMatch(/^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
      const asn1 = opensslOk(['asn1parse', '-in', keyFile]);
      expect(asn1).toContain('PBES2');
      expect(asn1).toContain('hmacWithSHA256');
      expect(asn1).toContain('aes-256-cbc');
      expect(openssl(['pkey', '-in', keyFile, '-passin', 'pass:wrong', '-noout']).code).not.toBe(0);
      const key = crypto.createPrivateKey({ key: pem, format: 'pem', passphrase: PASSWORD });
      const cert = new X509Certificate(readFileSync(path.join(out, 'devices', m.device_id!, 'cert.pem')));
      expect(cert.checkPrivateKey(key)).toBe(true);
      expect(cert.subject).toContain(`serialNumber=SRV${m.device_id!.slice(4)}`);
    }
    // the password is in no output file
    for (const file of readdirSync(out, { recursive: true }) as string[]) {
      const p = path.join(out, file);
      if (statSync(p).isFile()) expect(readFileSync(p, 'latin1')).not.toContain(PASSWORD);
    }
    sha256sumOk(out);
    const certs = await certRows('srv-1');
    expect(certs.map((c) => c.pop_method)).toEqual(Array(5).fill('server'));
    // one stored secret per device, the MAC of the one in manifest.csv (what EST/SCEP will check)
    const secrets = await pool.query<{ device_id: string; mac: Buffer }>("SELECT device_id, mac FROM enrollment_secrets WHERE device_id LIKE 'srv-%' ORDER BY device_id");
    const key = deriveSecretKey(env.FLEETCA_KEY_PASSPHRASE!);
    expect(secrets.rows.map((x) => [x.device_id, x.mac.toString('hex')])).toEqual(manifest.map((m) => [m.device_id, secretMac(key, m.device_id!, m.secret!).toString('hex')]));

    // rerun: no new certificate, no new secret, same manifest.csv
    const before = readFileSync(path.join(out, 'manifest.csv'), 'utf8');
    const again = fleetca(['batch', 'run', f('srv.csv'), '--out', out, '--profile', 'camera', '--keygen', 'server', '--key-password-file', f('pw.txt'), '--secrets', '--batch-id', 'srv-1'], env);
    expect(again.code, again.stderr).toBe(0);
    expect(readFileSync(path.join(out, 'manifest.csv'), 'utf8')).toBe(before);
    expect(await certRows('srv-1')).toHaveLength(5);
    const secrets2 = await pool.query("SELECT count(*)::int AS n FROM enrollment_secrets WHERE device_id LIKE 'srv-%'");
    expect(secrets2.rows[0].n).toBe(5);
  });

  it('recovery/a key file whose row is missing is read back and checked (a wrong password stops, revoking nothing); a lost key: its certificate is revoked (superseded), recorded, replaced', async () => {
    const out = f('out-srv');
    const oldSerial = csv(path.join(out, 'manifest.csv')).find((m) => m.device_id === 'srv-3')!.serial!;
    const args = (pw: string) => ['batch', 'run', f('srv.csv'), '--out', out, '--profile', 'camera', '--keygen', 'server', '--key-password-file', pw, '--secrets', '--batch-id', 'srv-1'];
    // as after a crash between the certificate and the device's manifest row: srv-1's row is gone,
    // so its key file is read back and checked against its certificate
    const manifestFile = path.join(out, 'manifest.csv');
    const text = readFileSync(manifestFile, 'utf8');
    const srv1 = text.split('\n').find((l) => l.startsWith('srv-1,'))!;
    writeFileSync(manifestFile, text.replace(srv1 + '\n', ''));
    writeFileSync(f('bad-pw.txt'), 'not the password at all\n', { mode: 0o600 });
    const bad = fleetca(args(f('bad-pw.txt')), env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/cannot decrypt .*srv-1\/key\.pem: wrong --key-password-file\?.*nothing was revoked/);
    expect((await certRows('srv-1')).every((c) => c.status === 'valid')).toBe(true);
    const good = fleetca(args(f('pw.txt')), env);
    expect(good.code, good.stderr).toBe(0);
    expect(await certRows('srv-1')).toHaveLength(5);
    // the same certificate; the secret whose plaintext went with the row is replaced (the old one expires now)
    const after = csv(manifestFile);
    const before = parseCsv(text, { columns: true }) as Array<Record<string, string>>;
    expect(after.map((m) => ({ ...m, secret: m.device_id === 'srv-1' ? '' : m.secret }))).toEqual(before.map((m) => ({ ...m, secret: m.device_id === 'srv-1' ? '' : m.secret })));
    const srv1Secret = after.find((m) => m.device_id === 'srv-1')!.secret!;
    expect(srv1Secret).not.toBe(before.find((m) => m.device_id === 'srv-1')!.secret);
    const usable = await pool.query<{ mac: Buffer }>("SELECT mac FROM enrollment_secrets WHERE device_id = 'srv-1' AND expires_at > now()");
    expect(usable.rows.map((x) => x.mac.toString('hex'))).toEqual([secretMac(deriveSecretKey(env.FLEETCA_KEY_PASSPHRASE!), 'srv-1', srv1Secret).toString('hex')]);

    // the key file itself lost: the certificate can never be used
    unlinkSync(path.join(out, 'devices/srv-3/key.pem'));
    const r = fleetca([...args(f('pw.txt')), '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`certificate ${oldSerial} lost its server-generated key`));
    const out2 = JSON.parse(r.stdout);
    expect(out2.this_run).toMatchObject({ issued: 1, already_done: 4, replaced: [oldSerial] });
    const certs = (await certRows('srv-1')).filter((c) => c.device_id === 'srv-3');
    expect(certs.map((c) => [c.status, c.revocation_reason])).toEqual([
      ['revoked', 'superseded'],
      ['valid', null],
    ]);
    const m = csv(path.join(out, 'manifest.csv')).find((x) => x.device_id === 'srv-3')!;
    expect(m.serial).not.toBe(oldSerial);
    const key = crypto.createPrivateKey({ key: readFileSync(path.join(out, 'devices/srv-3/key.pem')), format: 'pem', passphrase: PASSWORD });
    expect(new X509Certificate(readFileSync(path.join(out, 'devices/srv-3/cert.pem'))).checkPrivateKey(key)).toBe(true);
    sha256sumOk(out);
    const show = JSON.parse(fleetca(['batch', 'show', 'srv-1', '--devices', '--json'], env).stdout);
    expect(show.device_list.find((d: { device_id: string }) => d.device_id === 'srv-3')).toMatchObject({ state: 'done', replaced: [oldSerial] });
    const audit = await pool.query("SELECT count(*)::int AS n FROM audit_log WHERE action = 'batch.key_lost' AND target = lower($1)", [oldSerial]);
    expect(audit.rows[0].n).toBe(1);
  });
});

describe('fleetca batch list / show / revoke', () => {
  it('list and show/the batches with their counts and rejects', () => {
    const list = JSON.parse(fleetca(['batch', 'list', '--json'], env).stdout) as Array<{ id: string; state: string }>;
    expect(list.map((b) => b.id).sort()).toEqual(['dk-1', 'srv-1']);
    const show = fleetca(['batch', 'show', 'dk-1'], env);
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(/duplicate device_id/);
    expect(fleetca(['batch', 'show', 'nope'], env).code).toBe(4);
  });

  it('revoke/every certificate of the batch through the core (audit rows), and a revoked batch cannot run again', async () => {
    const r = fleetca(['batch', 'revoke', 'dk-1', '--reason', 'keyCompromise', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).revoked).toHaveLength(7);
    const certs = await certRows('dk-1');
    expect(certs.every((c) => c.status === 'revoked' && c.revocation_reason === 'keyCompromise')).toBe(true);
    const audit = await pool.query("SELECT action, count(*)::int AS n FROM audit_log WHERE action IN ('certificate.revoked', 'batch.revoked', 'batch.revocation.completed') GROUP BY action ORDER BY action");
    expect(audit.rows).toEqual(expect.arrayContaining([{ action: 'batch.revoked', n: 1 }, { action: 'batch.revocation.completed', n: 1 }]));
    const again = fleetca(['batch', 'revoke', 'dk-1', '--reason', 'keyCompromise', '--json'], env);
    expect(JSON.parse(again.stdout)).toMatchObject({ revoked: [], already_revoked: 7 });
    const run = fleetca(['batch', 'run', f('dk.csv'), '--out', f('out-dk'), '--profile', 'camera', '--batch-id', 'dk-1'], env);
    expect(run.code).toBe(6);
    expect(run.stderr).toMatch(/was revoked/);
  });
});

describe('fleetca batch run: PKCS#12', () => {
  it('bundle.p12/AES-256-CBC + PBKDF2-SHA256 key bag, SHA-256 MAC, the chain; openssl pkcs12 -info reads it with the password only', () => {
    writeFileSync(f('p12.csv'), 'device_id,serial_number\np12-0,P0\np12-1,P1\n');
    const out = f('out-p12');
    const r = fleetca(['batch', 'run', f('p12.csv'), '--out', out, '--profile', 'camera', '--keygen', 'server', '--format', 'p12', '--key-password-file', f('pw.txt'), '--kdf-iterations', '4096', '--batch-id', 'p12-1'], env);
    expect(r.code, r.stderr).toBe(0);
    for (const id of ['p12-0', 'p12-1']) {
      const d = path.join(out, 'devices', id);
      expect(readdirSync(d).sort()).toEqual(['bundle.p12', 'cert.pem', 'chain.pem']);
      expect(mode(path.join(d, 'bundle.p12'))).toBe(0o600);
      const info = openssl(['pkcs12', '-info', '-in', path.join(d, 'bundle.p12'), '-passin', `file:${f('pw.txt')}`, '-noenc']);
      expect(info.code, info.stderr).toBe(0);
      // OpenSSL describes the protection on stderr
      expect(info.stderr).toMatch(/MAC: sha256, Iteration 4096/);
      expect(info.stderr).toMatch(/Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC, Iteration 4096, PRF hmacWithSHA256/);
      // the leaf (with the device id as friendlyName) and the chain: device CA, root
      const subjects = [...info.stdout.matchAll(/^subject=(.*)$/gm)].map((m) => m[1]);
      expect(subjects).toHaveLength(3);
      expect(subjects[0]).toMatch(new RegExp(`CN ?= ?${id}`));
      expect(info.stdout).toContain(`friendlyName: ${id}`);
      // the key in it is the certificate's
      const key = opensslOk(['pkcs12', '-in', path.join(d, 'bundle.p12'), '-passin', `file:${f('pw.txt')}`, '-nocerts', '-noenc']);
      const cert = new X509Certificate(readFileSync(path.join(d, 'cert.pem')));
      expect(cert.checkPrivateKey(crypto.createPrivateKey(key))).toBe(true);
      expect(openssl(['pkcs12', '-info', '-in', path.join(d, 'bundle.p12'), '-passin', 'pass:wrong', '-noout']).code).not.toBe(0);
    }
    sha256sumOk(out);
  });
});

describe('fleetca batch run: IDevIDs', () => {
  it('manufacturing-idevid/from the manufacturing CA, 20 years, serialNumber in the subject, hardwareModuleName SAN (RFC 4108); serial_number required', () => {
    const spki = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
    writeFileSync(f('idevid.csv'), `device_id,serial_number,mac,public_key\nidv-1,ACME-0001,00:aa:bb:cc:dd:01,${spki}\nidv-2,,,${spki}\n`);
    const out = f('out-idevid');
    const r = fleetca(['batch', 'run', f('idevid.csv'), '--out', out, '--profile', 'manufacturing-idevid', '--batch-id', 'idv'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(csv(path.join(out, 'rejects.csv'))).toEqual([{ line: '3', device_id: 'idv-2', reason: expect.stringMatching(/serial_number is required/) }]);
    const certFile = path.join(out, 'devices/idv-1/cert.pem');
    opensslOk(['verify', '-x509_strict', '-CAfile', f('data/certs/root.pem'), '-untrusted', path.join(out, 'devices/idv-1/chain.pem'), certFile]);
    const cert = new X509Certificate(readFileSync(certFile));
    expect(cert.issuer).toContain('Manufacturing');
    expect(cert.subject).toContain('serialNumber=ACME-0001');
    const years = (new Date(cert.validTo).getTime() - new Date(cert.validFrom).getTime()) / (365.25 * 86_400_000);
    expect(years).toBeGreaterThan(19.9);
    // SAN: the MAC URN and otherName hardwareModuleName { hwType, hwSerialNum "ACME-0001" }
    const asn1 = opensslOk(['asn1parse', '-in', certFile, '-i']);
    const der = cert.raw.toString('hex');
    const hmn = Buffer.concat([Buffer.from('06082b06010505070804', 'hex')]).toString('hex'); // OID 1.3.6.1.5.5.7.8.4
    expect(der).toContain(hmn);
    expect(der).toContain(Buffer.from('ACME-0001').toString('hex'));
    expect(asn1).toContain('X509v3 Subject Alternative Name');
    const text = opensslOk(['x509', '-in', certFile, '-noout', '-ext', 'subjectAltName']);
    expect(text).toContain('URI:urn:dev:mac:00aabbccdd01');
    expect(text).toMatch(/othername/i);
    // the record: serial and MAC from the row; an IDevID profile is not made the device's enrollment profile
    const d = JSON.parse(fleetca(['device', 'show', 'idv-1', '--json'], env).stdout);
    expect(d).toMatchObject({ serial_number: 'ACME-0001', macs: ['00:aa:bb:cc:dd:01'], profile: null });
  });
});

describe('fleetca batch run: progress', () => {
  it('on a terminal/a cli-progress bar with count, rate and ETA (run under script(1) for a pty)', () => {
    writeFileSync(f('tty.csv'), 'device_id\n' + Array.from({ length: 20 }, (_, i) => `tty-${i}`).join('\n') + '\n');
    const bin = path.resolve('test/helpers/fleetca-bin.ts');
    const sh = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    const cmd = [process.execPath, '--import', 'tsx', bin, 'batch', 'run', f('tty.csv'), '--out', f('out-tty'), '--profile', 'camera', '--secrets', '--batch-id', 'tty'].map(sh).join(' ');
    const r = spawnSync('script', ['-qefc', cmd, '/dev/null'], { env: { ...process.env, LOG_LEVEL: 'warn', ...env }, encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    // eslint-disable-next-line no-control-regex
    const screen = r.stdout.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
    expect(screen).toMatch(/batch tty \[[█░]+\] 20\/20 \| \d+\/s \| ETA \S+ \| issued 0 rejected 0/);
    expect(screen).not.toMatch(/rows \(100\.0 %\)/); // no plain lines on a terminal
  });
});
