/**
 * The endpoint import formats: one row per MAC for ISE, ClearPass and PacketFence (with each
 * product's columns and MAC / date forms), one per device for csv; retired devices never; devices
 * without a MAC named for the MAC-keyed formats.
 */
import { describe, expect, it } from 'vitest';
import { parse } from 'csv-parse/sync';
import { stringify } from 'csv-stringify/sync';
import { CSV_COLUMNS, endpointTable } from '../../src/exports/endpoints.js';
import type { NacIdentity } from '../../src/enrollment/nac.js';

const cert = { serial: '0A1B', sha256_fingerprint: 'ab'.repeat(32), not_after: '2031-01-02T03:04:05.000Z', status: 'valid' };
const base: NacIdentity = {
  device_id: 'cam-1',
  macs: ['aa:bb:cc:00:11:22', 'aa:bb:cc:00:11:23'],
  device_class: 'camera',
  nac_role: 'cameras',
  criticality: 'normal',
  segment: 'bldg-1',
  state: 'active',
  removed: false,
  allowed: true,
  certificate: cert,
};
const held: NacIdentity = { ...base, device_id: 'cam-2', macs: ['aa:bb:cc:00:11:99'], state: 'quarantined', allowed: false, certificate: { ...cert, status: 'hold' } };
const noMac: NacIdentity = { ...base, device_id: 'sensor-1', macs: [], device_class: 'sensor', nac_role: 'sensors' };
const retired: NacIdentity = { ...base, device_id: 'old-1', state: 'retired', removed: true, allowed: false };
const all = [base, held, noMac, retired];

/** Through a CSV writer and back, as the NAC would read the file. */
function roundTrip(format: 'ise' | 'clearpass' | 'packetfence' | 'csv') {
  const t = endpointTable(format, all);
  const text = stringify(t.rows, { header: t.header, columns: t.columns });
  return { t, text, records: parse(text, t.header ? { columns: true } : {}) as Array<Record<string, string>> | string[][] };
}

describe('endpoint lists', () => {
  it('ISE: the MAB columns of its import template, one row per MAC in upper-case colon form, the identity group from the NAC role', () => {
    const { t, records } = roundTrip('ise');
    expect(t.columns).toEqual(['MACAddress', 'EndPointPolicy', 'IdentityGroup', 'Description', 'StaticAssignment', 'StaticGroupAssignment']);
    const rows = records as Array<Record<string, string>>;
    expect(rows.map((r) => r.MACAddress)).toEqual(['AA:BB:CC:00:11:22', 'AA:BB:CC:00:11:23', 'AA:BB:CC:00:11:99']);
    expect(rows[0]).toMatchObject({ IdentityGroup: 'cameras', StaticAssignment: 'FALSE', StaticGroupAssignment: 'TRUE' });
    expect(rows[0]!.Description).toBe(`fleetca device=cam-1 class=camera serial=0A1B sha256=${'ab'.repeat(32)} notAfter=2031-01-02T03:04:05.000Z status=valid`);
    expect(rows[2]!.Description).toMatch(/status=hold state=quarantined$/);
    expect(t.withoutMac).toEqual(['sensor-1']);
  });

  it('ClearPass: Known when allowed, Disabled when held; the certificate as attribute columns', () => {
    const rows = roundTrip('clearpass').records as Array<Record<string, string>>;
    expect(rows.map((r) => [r['MAC Address'], r.Status])).toEqual([
      ['aa:bb:cc:00:11:22', 'Known'],
      ['aa:bb:cc:00:11:23', 'Known'],
      ['aa:bb:cc:00:11:99', 'Disabled'],
    ]);
    expect(rows[0]).toMatchObject({ 'Device Category': 'camera', 'fleetca Device ID': 'cam-1', 'fleetca Role': 'cameras', 'fleetca Serial': '0A1B', 'fleetca SHA256': 'ab'.repeat(32), 'fleetca Certificate Status': 'valid' });
  });

  it('PacketFence: no header, columns mac,category,unregdate,notes, the date as "YYYY-MM-DD HH:MM:SS"', () => {
    const { t, text, records } = roundTrip('packetfence');
    expect(t.header).toBe(false);
    expect(text.split('\n')[0]).toMatch(/^aa:bb:cc:00:11:22,cameras,2031-01-02 03:04:05,fleetca device=cam-1 /);
    expect((records as string[][]).map((r) => r.length)).toEqual([4, 4, 4]);
  });

  it('csv: one row per device (MACs ;-separated), every field; retired devices never appear in any format', () => {
    const { t, records } = roundTrip('csv');
    expect(t.columns).toEqual([...CSV_COLUMNS]);
    const rows = records as Array<Record<string, string>>;
    expect(rows.map((r) => r.device_id)).toEqual(['cam-1', 'cam-2', 'sensor-1']);
    expect(rows[0]).toMatchObject({ macs: 'aa:bb:cc:00:11:22;aa:bb:cc:00:11:23', allowed: 'true', certificate_status: 'valid', not_after: '2031-01-02T03:04:05.000Z' });
    expect(t.withoutMac).toEqual([]);
    for (const f of ['ise', 'clearpass', 'packetfence'] as const) expect(roundTrip(f).text).not.toContain('old-1');
  });
});
