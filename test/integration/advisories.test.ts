/**
 * Firmware advisories through the CLI on a real database: selection by model and version range,
 * dry run, quarantine, restrict (the next certificate comes from another profile), shorten (the
 * next certificate's validity is capped), withdrawal, and bad ranges.
 */
import { X509Certificate } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { fleetca, opensslOk } from '../helpers/cli.js';
import { fleetcaBatch } from '../helpers/est.js';

let db: TestDatabase;
let dir: string;
let env: Record<string, string | undefined>;
const f = (n: string) => path.join(dir, n);
const DAY = 86_400_000;

beforeAll(async () => {
  db = await createTestDatabase();
  dir = mkdtempSync(path.join(os.tmpdir(), 'fleetca-advisory-'));
  chmodSync(dir, 0o711);
  env = { DATABASE_URL: db.connectionString, FLEETCA_DATA_DIR: f('data'), FLEETCA_KEY_PASSPHRASE: 'advisory tests passphrase' };
  expect(fleetca(['init'], env).code).toBe(0);
  const r = await fleetcaBatch(
    [
      ['device', 'add', 'cam-old', '--model', 'X100', '--firmware', '2.3.0', '--profile', 'camera'],
      ['device', 'add', 'cam-edge', '--model', 'X100', '--firmware', '2.4.1', '--profile', 'camera'],
      ['device', 'add', 'cam-new', '--model', 'X100', '--firmware', '2.10', '--profile', 'camera'],
      ['device', 'add', 'cam-other', '--model', 'Y200', '--firmware', '1.0', '--profile', 'camera'],
      ['device', 'add', 'cam-unknown', '--model', 'X100', '--profile', 'camera'],
    ],
    env,
  );
  for (const x of r) expect(x.code, x.stderr).toBe(0);
}, 120_000);

afterAll(async () => {
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function issue(device: string, profile = 'camera') {
  const key = f(`${device}-${Date.now()}.key`);
  const csr = f(`${device}-${Date.now()}.csr`);
  opensslOk(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-subj', `/CN=${device}`, '-out', csr]);
  return fleetca(['issue', '--profile', profile, '--device', device, '--csr', csr], env);
}

const deviceState = (id: string) => (JSON.parse(fleetca(['device', 'show', id, '--json'], env).stdout) as { state: string }).state;

describe('fleetca advisory', () => {
  it('--dry-run lists the affected devices (model and range; no firmware → never) and changes nothing', () => {
    const r = fleetca(['advisory', 'apply', '--model', 'X100', '--firmware', '<2.4.1', '--action', 'quarantine', '--dry-run', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ advisory: null, dry_run: true, devices: ['cam-old'] });
    expect(deviceState('cam-old')).toBe('active');
    const wide = fleetca(['advisory', 'apply', '--model', 'X100', '--firmware', '>=2.4.1 || <2.0', '--action', 'quarantine', '--dry-run'], env);
    expect(wide.stdout.trim().split('\n')).toEqual(['cam-edge', 'cam-new']);
  });

  it('shorten: the next certificate of an affected device lives at most the given validity; others keep the profile validity', () => {
    const a = fleetca(['advisory', 'apply', '--model', 'X100', '--firmware', '<2.4.1', '--action', 'shorten', '--validity', '7d', '--reason', 'CVE-2026-0001'], env);
    expect(a.code, a.stderr).toBe(0);
    const short = issue('cam-old');
    expect(short.code, short.stderr).toBe(0);
    const life = (pem: string) => {
      const c = new X509Certificate(pem);
      return new Date(c.validTo).getTime() - Date.now();
    };
    expect(life(short.stdout)).toBeLessThanOrEqual(7 * DAY);
    const normal = issue('cam-new');
    expect(life(normal.stdout)).toBeGreaterThan(300 * DAY);
  });

  it('restrict: the next certificate comes from the restricted profile; withdrawn, from the requested one again', () => {
    const a = fleetca(['advisory', 'apply', '--model', 'X100', '--firmware', '>=2.4.1', '--action', 'restrict', '--profile', 'sensor', '--json'], env);
    expect(a.code, a.stderr).toBe(0);
    const id = (JSON.parse(a.stdout) as { advisory: number }).advisory;
    const profileOf = (pem: string) => {
      const serial = new X509Certificate(pem).serialNumber;
      return (JSON.parse(fleetca(['cert', 'show', serial, '--json'], env).stdout) as { profile: string }).profile;
    };
    const restricted = issue('cam-edge', 'camera');
    expect(restricted.code, restricted.stderr).toBe(0);
    expect(profileOf(restricted.stdout)).toBe('sensor');
    expect(fleetca(['advisory', 'withdraw', String(id)], env).code).toBe(0);
    expect(profileOf(issue('cam-edge', 'camera').stdout)).toBe('camera');
    expect(fleetca(['advisory', 'withdraw', String(id)], env)).toMatchObject({ code: 6 });
  });

  it('quarantine: affected devices quarantined (their certificates on hold), the run again skips them; listed', () => {
    const a = fleetca(['advisory', 'apply', '--model', 'X100', '--firmware', '<2.4.1', '--action', 'quarantine', '--reason', 'CVE-2026-0002', '--json'], env);
    expect(a.code, a.stderr).toBe(0);
    expect(JSON.parse(a.stdout)).toMatchObject({ devices: ['cam-old'], skipped: [] });
    expect(deviceState('cam-old')).toBe('quarantined');
    expect(deviceState('cam-new')).toBe('active');
    const again = fleetca(['advisory', 'apply', '--model', 'X100', '--firmware', '<2.4.1', '--action', 'quarantine', '--json'], env);
    expect(JSON.parse(again.stdout)).toMatchObject({ skipped: ['cam-old'] });
    const list = JSON.parse(fleetca(['advisory', 'list', '--json'], env).stdout) as Array<{ action: string; devices: string[] }>;
    expect(list.map((x) => x.action)).toEqual(['shorten', 'restrict', 'quarantine', 'quarantine']);
  });

  it('bad input: a malformed range, restrict without a device profile, shorten without --validity → exit 2, nothing recorded', () => {
    const before = (JSON.parse(fleetca(['advisory', 'list', '--json'], env).stdout) as unknown[]).length;
    for (const args of [
      ['--firmware', '~2.4', '--action', 'quarantine'],
      ['--firmware', "<2'; DROP TABLE devices; --", '--action', 'quarantine'],
      ['--firmware', '<2.4.1', '--action', 'restrict', '--profile', 'ocsp-responder'],
      ['--firmware', '<2.4.1', '--action', 'shorten'],
    ]) {
      const r = fleetca(['advisory', 'apply', '--model', 'X100', ...args], env);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
    }
    expect((JSON.parse(fleetca(['advisory', 'list', '--json'], env).stdout) as unknown[]).length).toBe(before);
  });
});
