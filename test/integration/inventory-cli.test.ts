/**
 * `fleetca device list|show|add|update` as the inventory: segment and NAC role fields, filters
 * (model, firmware range, profile, state, segment, criticality, stale), the table, JSON and CSV
 * outputs (CSV read back with a CSV parser), and the certificate history of `device show`.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { fleetca, opensslOk } from '../helpers/cli.js';
import { fleetcaBatch } from '../helpers/est.js';
import { INVENTORY_CSV_COLUMNS } from '../../src/enrollment/views.js';

let db: TestDatabase;
let dir: string;
let env: Record<string, string | undefined>;
const f = (n: string) => path.join(dir, n);

beforeAll(async () => {
  db = await createTestDatabase();
  dir = mkdtempSync(path.join(os.tmpdir(), 'fleetca-inventory-'));
  chmodSync(dir, 0o711);
  env = { DATABASE_URL: db.connectionString, FLEETCA_DATA_DIR: f('data'), FLEETCA_KEY_PASSPHRASE: 'inventory tests passphrase' };
  expect(fleetca(['init'], env).code).toBe(0);
  for (const d of ['cam-a', 'med-a']) {
    opensslOk(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f(`${d}.key`), '-subj', `/CN=${d}`, '-out', f(`${d}.csr`)]);
  }
  const r = await fleetcaBatch(
    [
      ['device', 'add', 'cam-a', '--model', 'X100', '--firmware', '2.3.0', '--profile', 'camera', '--segment', 'bldg-1/vlan-30', '--mac', 'AA-BB-CC-00-11-22'],
      ['device', 'add', 'cam-b', '--model', 'X100', '--firmware', '2.5', '--profile', 'camera', '--segment', 'bldg-2'],
      ['device', 'add', 'med-a', '--model', 'P7', '--firmware', '1.0', '--profile', 'medical-device', '--nac-role', 'icu-pumps'],
      ['device', 'add', 'sen-a', '--model', 'S1', '--firmware', "'); DROP TABLE devices; --", '--profile', 'sensor'],
      ['issue', '--profile', 'camera', '--device', 'cam-a', '--csr', f('cam-a.csr')],
      ['issue', '--profile', 'camera', '--device', 'cam-a', '--csr', f('cam-a.csr')],
      ['issue', '--profile', 'medical-device', '--device', 'med-a', '--csr', f('med-a.csr')],
    ],
    env,
  );
  for (const x of r) expect(x.code, x.stderr).toBe(0);
}, 120_000);

afterAll(async () => {
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

type Row = { id: string; criticality: string; nac_role: string | null; segment: string | null; stale: boolean; certificate_health: string; current_certificate: { serial: string } | null; first_seen_at: string | null };
const listJson = (...args: string[]) => {
  const r = fleetca(['device', 'list', '--json', ...args], env);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Row[];
};

describe('fleetca device list as the inventory', () => {
  it('JSON: criticality and NAC role from the profile or the device, segment, current certificate; high criticality first', () => {
    const rows = listJson();
    expect(rows.map((r) => r.id)).toEqual(['med-a', 'cam-a', 'cam-b', 'sen-a']);
    expect(rows[0]).toMatchObject({ id: 'med-a', criticality: 'high', nac_role: 'icu-pumps', certificate_health: 'current', stale: false });
    expect(rows[1]).toMatchObject({ id: 'cam-a', criticality: 'normal', nac_role: 'cameras', segment: 'bldg-1/vlan-30', stale: false });
    expect(rows[1]!.first_seen_at).not.toBeNull();
    expect(rows[1]!.current_certificate!.serial).toMatch(/^[0-9A-F]+$/);
    expect(rows[2]).toMatchObject({ id: 'cam-b', current_certificate: null, certificate_health: 'none', first_seen_at: null });
    expect(rows[3]).toMatchObject({ id: 'sen-a', criticality: 'low', nac_role: 'sensors' });
  });

  it('filters: firmware range with model, segment, criticality, profile, stale', () => {
    expect(listJson('--model', 'X100', '--firmware', '<2.4.1').map((r) => r.id)).toEqual(['cam-a']);
    expect(listJson('--firmware', '>=2.4 || <1.1').map((r) => r.id)).toEqual(['med-a', 'cam-b']);
    expect(listJson('--segment', 'bldg-2').map((r) => r.id)).toEqual(['cam-b']);
    expect(listJson('--criticality', 'high').map((r) => r.id)).toEqual(['med-a']);
    expect(listJson('--profile', 'sensor').map((r) => r.id)).toEqual(['sen-a']);
    // every certificate was issued a moment ago: nothing is in its renewal window
    expect(listJson('--stale')).toEqual([]);
  });

  it('CSV: a header and one row per device, read back by a CSV parser (the SQL-looking firmware is kept verbatim)', () => {
    const r = fleetca(['device', 'list', '--csv'], env);
    expect(r.code, r.stderr).toBe(0);
    const rows = parse(r.stdout, { columns: true }) as Array<Record<string, string>>;
    expect(Object.keys(rows[0]!)).toEqual([...INVENTORY_CSV_COLUMNS]);
    expect(rows.map((x) => x.id)).toEqual(['med-a', 'cam-a', 'cam-b', 'sen-a']);
    expect(rows[1]).toMatchObject({ id: 'cam-a', macs: 'aa:bb:cc:00:11:22', segment: 'bldg-1/vlan-30', nac_role: 'cameras', certificate_health: 'current', stale: 'false' });
    expect(rows[3]!.firmware).toBe("'); DROP TABLE devices; --");
  });

  it('table output names the columns; bad input is refused with a message', () => {
    const t = fleetca(['device', 'list'], env);
    expect(t.code, t.stderr).toBe(0);
    expect(t.stdout.split('\n')[0]).toMatch(/^ID\s+STATE\s+CRITICALITY\s+PROFILE\s+MODEL\s+FIRMWARE\s+SEGMENT\s+NAC_ROLE/);
    const bad = fleetca(['device', 'list', '--firmware', '<<2'], env);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/version range "<<2"/);
    const both = fleetca(['device', 'list', '--json', '--csv'], env);
    expect(both.code).not.toBe(0);
    expect(both.stderr).toMatch(/cannot be used with/);
    const crit = fleetca(['device', 'list', '--criticality', 'extreme'], env);
    expect(crit.code).not.toBe(0);
  });

  it('update sets and clears segment and NAC role; show prints the inventory view and the certificate history', () => {
    const u = fleetca(['device', 'update', 'cam-b', '--segment', '', '--nac-role', 'quarantine-vlan', '--json'], env);
    expect(u.code, u.stderr).toBe(0);
    expect(JSON.parse(u.stdout)).toMatchObject({ segment: null, nac_role_override: 'quarantine-vlan' });
    const s = fleetca(['device', 'show', 'cam-a', '--json'], env);
    expect(s.code, s.stderr).toBe(0);
    const j = JSON.parse(s.stdout) as Row & { certificates: Array<{ serial: string; superseded_by: string | null }> };
    expect(j.certificates).toHaveLength(2);
    expect(j.current_certificate!.serial).toBe(j.certificates[1]!.serial);
    const table = fleetca(['device', 'show', 'cam-a'], env).stdout;
    expect(table).toMatch(/criticality\s+normal/);
    expect(table).toMatch(/SERIAL\s+PROFILE\s+ISSUED\s+NOT_AFTER\s+STATUS/);
  });

  it('export endpoints: ISE rows per MAC with the NAC role as identity group; csv per device; --out writes a file; a folder as --out is refused', () => {
    const ise = fleetca(['export', 'endpoints', '--format', 'ise'], env);
    expect(ise.code, ise.stderr).toBe(0);
    const rows = parse(ise.stdout, { columns: true }) as Array<Record<string, string>>;
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ MACAddress: 'AA:BB:CC:00:11:22', IdentityGroup: 'cameras', StaticGroupAssignment: 'TRUE' });
    expect(rows[0]!.Description).toMatch(/^fleetca device=cam-a class=camera serial=[0-9A-F]+ sha256=[0-9a-f]{64} notAfter=\S+ status=valid$/);
    expect(ise.stderr).toMatch(/3 device\(s\) without a MAC left out of the ise list: med-a, cam-b, sen-a|without a MAC/);

    const out = f('endpoints.csv');
    const csv = fleetca(['export', 'endpoints', '--format', 'csv', '--out', out], env);
    expect(csv.code, csv.stderr).toBe(0);
    const all = parse(readFileSync(out, 'utf8'), { columns: true }) as Array<Record<string, string>>;
    expect(all.map((r) => r.device_id).sort()).toEqual(['cam-a', 'cam-b', 'med-a', 'sen-a']);
    expect(all.find((r) => r.device_id === 'med-a')).toMatchObject({ nac_role: 'icu-pumps', allowed: 'true', certificate_status: 'valid' });

    mkdirSync(f('a-folder'));
    const bad = fleetca(['export', 'endpoints', '--out', f('a-folder')], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/cannot write/);
    expect(fleetca(['export', 'endpoints', '--format', 'cisco'], env).code).not.toBe(0);
  });
});
