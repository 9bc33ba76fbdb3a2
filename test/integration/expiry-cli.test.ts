/**
 * `fleetca expiry report` and `fleetca renew` as an operator runs them (the real CLI in child
 * processes, certificates checked with openssl): the report's per-profile counts and device rows
 * read back from JSON and CSV; a server-side renewal for the same key (same subject and SANs, a new
 * serial, the old certificate superseded, certificate.renewed audited); and each refusal with its
 * exit code and message. (The expired-certificate refusal needs a moved clock: rotation.test.ts.)
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { configCopy, fleetca, opensslOk, replaceInFile } from '../helpers/cli.js';
import { fleetcaBatch } from '../helpers/est.js';
import { EXPIRY_CSV_COLUMNS } from '../../src/cli/expiry-commands.js';

let db: TestDatabase;
let dir: string;
let cfgDir: string;
let env: Record<string, string | undefined>;
let pool: pg.Pool;
const f = (n: string) => path.join(dir, n);
const serials: Record<string, string> = {};

const DEVICES: Array<[string, string, string]> = [
  // device, profile, subject
  ['cam-1', 'camera', '/CN=cam-1'],
  ['cam-2', 'camera', '/CN=cam-2/O=Acme Cameras'],
  ['cam-rev', 'camera', '/CN=cam-rev'],
  ['cam-hold', 'camera', '/CN=cam-hold'],
  ['cam-q', 'camera', '/CN=cam-q'],
  ['med-1', 'medical-device', '/CN=med-1'],
  ['sen-1', 'sensor', '/CN=sen-1'],
];

beforeAll(async () => {
  db = await createTestDatabase();
  pool = new pg.Pool({ connectionString: db.connectionString, max: 2 });
  dir = mkdtempSync(path.join(os.tmpdir(), 'fleetca-expiry-'));
  chmodSync(dir, 0o711);
  // sensors: a renewal window longer than their lifetime, so every sensor is stale at once
  cfgDir = configCopy((d) => replaceInFile(path.join(d, 'profiles', 'sensor.yaml'), 'window: 33%', 'window: 800d'));
  env = { DATABASE_URL: db.connectionString, FLEETCA_DATA_DIR: f('data'), FLEETCA_CONFIG_DIR: cfgDir, FLEETCA_KEY_PASSPHRASE: 'expiry cli tests' };
  expect(fleetca(['init'], env).code).toBe(0);
  for (const [d, profile, subj] of DEVICES) {
    const keyArgs = profile === 'medical-device' ? ['-newkey', 'rsa:3072'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
    opensslOk(['req', '-new', ...keyArgs, '-nodes', '-keyout', f(`${d}.key`), '-subj', subj, '-out', f(`${d}.csr`)]);
  }
  const r = await fleetcaBatch(
    [
      ['device', 'add', 'cam-2', '--profile', 'camera', '--mac', 'AA-BB-CC-00-11-22'],
      ...DEVICES.map(([d, profile]) => ['issue', '--profile', profile, '--device', d, '--csr', f(`${d}.csr`)]),
    ],
    env,
  );
  for (const x of r) expect(x.code, x.stderr).toBe(0);
  DEVICES.forEach(([d], i) => {
    writeFileSync(f(`${d}.pem`), r[i + 1]!.stdout);
    serials[d] = /issued serial ([0-9A-F]+)/.exec(r[i + 1]!.stderr)![1]!;
  });
  const setup = await fleetcaBatch(
    [
      ['revoke', serials['cam-rev']!, '--reason', 'keyCompromise'],
      ['hold', serials['cam-hold']!],
      ['device', 'quarantine', 'cam-q', '--reason', 'EDR alert'],
    ],
    env,
  );
  for (const x of setup) expect(x.code, x.stderr).toBe(0);
}, 180_000);

afterAll(async () => {
  await pool?.end();
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
  if (cfgDir) rmSync(cfgDir, { recursive: true, force: true });
});

interface Report {
  generated_at: string;
  within: string;
  profiles: Array<{ profile: string; expiring: number; expired: number; stale_devices: number }>;
  devices: Array<Record<(typeof EXPIRY_CSV_COLUMNS)[number], string | boolean | null>>;
}

describe('fleetca expiry report', () => {
  it('--json: per profile counts and the devices to chase (stale, or expiring within the window), most urgent first', () => {
    const r = fleetca(['expiry', 'report', '--within', '30d', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    const rep = JSON.parse(r.stdout) as Report;
    expect(rep.within).toBe('30d');
    const by = Object.fromEntries(rep.profiles.map((p) => [p.profile, p]));
    // med-1 (30-day validity) expires within 30 days; sen-1 is stale from the start; cameras are fine
    expect(by['medical-device']).toEqual({ profile: 'medical-device', expiring: 1, expired: 0, stale_devices: 0 });
    expect(by.sensor).toEqual({ profile: 'sensor', expiring: 0, expired: 0, stale_devices: 1 });
    // cameras: a year to go; cam-rev is revoked, cam-hold and cam-q are held (held still counts: none expiring)
    expect(by.camera).toEqual({ profile: 'camera', expiring: 0, expired: 0, stale_devices: 0 });
    expect(rep.devices.map((d) => d.device)).toEqual(['med-1', 'sen-1']);
    const med = rep.devices[0]!;
    expect(med).toMatchObject({ profile: 'medical-device', serial: serials['med-1'], health: 'current', stale: false, state: 'active', criticality: 'high' });
    expect(new Date(String(med.last_enrolled_at)).getTime()).toBeGreaterThan(Date.now() - 600_000);
    expect(rep.devices[1]).toMatchObject({ device: 'sen-1', health: 'renewal-due', stale: true });
    expect(r.stderr).toMatch(/^2 device\(s\) to chase; medical-device: 1 expiring within 30d, 0 expired, 0 stale; sensor: 0 expiring within 30d, 0 expired, 1 stale\n$/);
  });

  it('--csv: the device rows with a header, read back with a CSV parser; a wider window takes in the cameras', () => {
    const r = fleetca(['expiry', 'report', '--within', '400d', '--csv'], env);
    expect(r.code, r.stderr).toBe(0);
    const [header] = r.stdout.split('\n');
    expect(header).toBe(EXPIRY_CSV_COLUMNS.join(','));
    const rows = parse(r.stdout, { columns: true }) as Array<Record<string, string>>;
    // revoked cam-rev has no current certificate; held ones (cam-hold, quarantined cam-q) still have one
    // by notAfter: med-1 (30 days), the cameras in issuance order (365 days), sen-1 (730 days)
    expect(rows.map((x) => x.device)).toEqual(['med-1', 'cam-1', 'cam-2', 'cam-hold', 'cam-q', 'sen-1']);
    const q = rows.find((x) => x.device === 'cam-q')!;
    expect(q).toMatchObject({ profile: 'camera', state: 'quarantined', stale: 'false', health: 'current', serial: serials['cam-q'] });
    expect(Date.parse(q.not_after!)).toBeGreaterThan(Date.now() + 360 * 86_400_000);
  });

  it('the table, and a bad --within', () => {
    const r = fleetca(['expiry', 'report'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^PROFILE\s+EXPIRING_WITHIN_30D\s+EXPIRED\s+STALE_DEVICES\n/);
    expect(r.stdout).toMatch(/\nDEVICE\s+PROFILE\s+SERIAL\s+NOT_AFTER\s+HEALTH\s+STALE\s+LAST_ENROLLED_AT\s+STATE\nmed-1\s+medical-device/);
    const bad = fleetca(['expiry', 'report', '--within', 'soon'], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--within: not a duration/);
  });
});

describe('fleetca renew', () => {
  it('re-issues for the same key, subject and SANs with a new serial; the old one is superseded; certificate.renewed is audited', async () => {
    const old = serials['cam-2']!;
    const r = fleetca(['renew', old.toLowerCase(), '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { serial: string; device: string; profile: string; renewed: string; superseded: string[]; pem: string; not_after: string };
    expect(out).toMatchObject({ device: 'cam-2', profile: 'camera', renewed: old, superseded: [old] });
    expect(out.serial).not.toBe(old);
    expect(r.stderr).toMatch(new RegExp(`^renewed ${old}: new serial ${out.serial} for cam-2 \\(camera\\), valid until .*; the old certificate stays valid for 7d`));
    writeFileSync(f('cam-2-new.pem'), out.pem);

    const pub = (file: string) => opensslOk(['x509', '-in', file, '-noout', '-pubkey']);
    const text = (file: string) => opensslOk(['x509', '-in', file, '-noout', '-subject', '-ext', 'subjectAltName', '-nameopt', 'RFC2253']);
    expect(pub(f('cam-2-new.pem'))).toBe(pub(f('cam-2.pem')));
    expect(text(f('cam-2-new.pem'))).toBe(text(f('cam-2.pem')));
    expect(text(f('cam-2-new.pem'))).toMatch(/subject=CN=cam-2,O=Acme Cameras[\s\S]*URI:urn:dev:mac:aabbcc001122/);
    const chain = fleetca(['ca', 'chain'], env).stdout;
    writeFileSync(f('chain.pem'), chain);
    const [deviceCa, root] = chain.split(/(?<=-----END CERTIFICATE-----\n)/);
    writeFileSync(f('root.pem'), root!);
    writeFileSync(f('device-ca.pem'), deviceCa!);
    expect(opensslOk(['verify', '-x509_strict', '-CAfile', f('root.pem'), '-untrusted', f('device-ca.pem'), f('cam-2-new.pem')])).toMatch(/OK/);

    const shown = JSON.parse(fleetca(['cert', 'show', old, '--json'], env).stdout) as { status: string; superseded_by: string; supersede_revoke_at: string };
    expect(shown).toMatchObject({ status: 'valid', superseded_by: out.serial });
    expect(Date.parse(shown.supersede_revoke_at) - Date.now()).toBeGreaterThan(6.9 * 86_400_000);
    const audit = await pool.query<{ actor: string; target: string; details: Record<string, unknown> }>("SELECT actor, target, details FROM audit_log WHERE action = 'certificate.renewed'");
    expect(audit.rows).toEqual([{ actor: 'cli', target: out.serial.toLowerCase(), details: { device: 'cam-2', profile: 'camera', via: 'cli', replaced: [old.toLowerCase()] } }]);
    const pop = await pool.query<{ pop_method: string }>('SELECT pop_method FROM certificates WHERE serial = $1', [out.serial.toLowerCase()]);
    expect(pop.rows).toEqual([{ pop_method: 'renewal' }]);
  });

  it('refuses, each with its exit code and reason: revoked, held, quarantined device, reuseKey: false, already replaced, unknown, not a serial', async () => {
    const cases: Array<[string[], number, RegExp]> = [
      [['renew', serials['cam-rev']!], 3, /certificate [0-9a-f]+ is revoked \(keyCompromise\): a revoked certificate is never renewed/],
      [['renew', serials['cam-hold']!], 3, /is on hold: release it \(or the device's quarantine\) before renewing/],
      [['renew', serials['cam-q']!], 3, /is on hold/],
      [['renew', serials['med-1']!], 3, /profile medical-device requires a new key at every renewal \(renewal\.reuseKey: false\)/],
      [['renew', serials['cam-2']!], 6, /was already replaced by [0-9a-f]+; renew that one/],
      [['renew', '01DEADBEEF'], 4, /no certificate with serial 01deadbeef/],
      [['renew', 'xyz'], 2, /"xyz" is not a serial number in hex/],
      // the quarantine's hold lifted on the certificate alone: the device is still quarantined
      [['release', serials['cam-q']!], 0, /released/],
      [['renew', serials['cam-q']!], 3, /device cam-q is quarantined: release it before renewing/],
    ];
    const results = await fleetcaBatch(cases.map((c) => c[0]), env);
    results.forEach((res, i) => {
      const [args, code, message] = cases[i]!;
      expect(res.code, `${args.join(' ')}: ${res.stderr}`).toBe(code);
      expect(res.stderr).toMatch(message);
      if (args[0] === 'renew') expect(res.stdout).toBe('');
    });
    const renewed = await pool.query("SELECT 1 FROM audit_log WHERE action = 'certificate.renewed'");
    expect(renewed.rowCount).toBe(1);
  });
});
