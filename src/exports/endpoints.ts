/**
 * Device identity lists for NAC endpoint import (`fleetca export endpoints --format F`). Pure:
 * identities in, rows out. Each product's columns follow its documented import (README "NAC
 * integration: endpoint lists" names the documents):
 *
 *   ise          Cisco ISE Context Visibility → Endpoints → Import from CSV: the MAB columns of
 *                ISE's own import template (MACAddress, EndPointPolicy, IdentityGroup, Description,
 *                StaticAssignment, StaticGroupAssignment); one row per MAC, MAC as AA:BB:CC:DD:EE:FF.
 *   clearpass    Aruba ClearPass Policy Manager → Configuration → Identity → Endpoints → Import:
 *                "MAC Address", "Status" (Known / Disabled), "Description", and further columns
 *                imported as endpoint attributes; one row per MAC.
 *   packetfence  `pfcmd import nodes FILE columns=mac,category,unregdate,notes`: no header, the
 *                columns in that order, unregdate as "YYYY-MM-DD HH:MM:SS"; one row per MAC.
 *   csv, json    fleetca's own: one row / object per device, every field.
 */
import type { NacIdentity } from '../enrollment/nac.js';

export const ENDPOINT_FORMATS = ['ise', 'clearpass', 'packetfence', 'csv', 'json'] as const;
export type EndpointFormat = (typeof ENDPOINT_FORMATS)[number];

export interface EndpointTable {
  /** Column names (written as a header row unless `header` is false). */
  columns: string[];
  header: boolean;
  rows: string[][];
  /** Identities left out because the format is keyed by MAC and they have none. */
  withoutMac: string[];
}

function description(i: NacIdentity): string {
  const c = i.certificate;
  return [
    `fleetca device=${i.device_id}`,
    `class=${i.device_class ?? '-'}`,
    c ? `serial=${c.serial} sha256=${c.sha256_fingerprint} notAfter=${c.not_after} status=${c.status}` : 'no certificate',
    i.state !== 'active' ? `state=${i.state}` : '',
  ]
    .filter(Boolean)
    .join(' ');
}

/** "aa:bb:cc:dd:ee:ff" → "AA:BB:CC:DD:EE:FF" (ISE's form). */
const upperMac = (m: string) => m.toUpperCase();

/** "2031-01-02T03:04:05.000Z" → "2031-01-02 03:04:05" (PacketFence's datetime, UTC). */
function pfDate(iso: string): string {
  return iso.slice(0, 19).replace('T', ' ');
}

export const CSV_COLUMNS = [
  'device_id', 'macs', 'device_class', 'nac_role', 'criticality', 'segment', 'state', 'allowed',
  'certificate_serial', 'sha256_fingerprint', 'not_after', 'certificate_status',
] as const;

/** The rows of one format (everything but json). Removed (retired) identities are never exported. */
export function endpointTable(format: Exclude<EndpointFormat, 'json'>, identities: Iterable<NacIdentity>): EndpointTable {
  const rows: string[][] = [];
  const withoutMac: string[] = [];
  const perMac = (i: NacIdentity, row: (mac: string) => string[]) => {
    if (i.macs.length === 0) withoutMac.push(i.device_id);
    for (const m of i.macs) rows.push(row(m));
  };
  for (const i of identities) {
    if (i.removed) continue;
    const c = i.certificate;
    switch (format) {
      case 'ise':
        perMac(i, (m) => [upperMac(m), '', i.nac_role ?? '', description(i), 'FALSE', i.nac_role ? 'TRUE' : 'FALSE']);
        break;
      case 'clearpass':
        perMac(i, (m) => [
          m,
          i.allowed ? 'Known' : 'Disabled',
          description(i),
          i.device_class ?? '',
          i.device_id,
          i.nac_role ?? '',
          c?.serial ?? '',
          c?.sha256_fingerprint ?? '',
          c?.not_after ?? '',
          c?.status ?? '',
        ]);
        break;
      case 'packetfence':
        perMac(i, (m) => [m, i.nac_role ?? '', c ? pfDate(c.not_after) : '', description(i)]);
        break;
      case 'csv':
        rows.push([
          i.device_id,
          i.macs.join(';'),
          i.device_class ?? '',
          i.nac_role ?? '',
          i.criticality,
          i.segment ?? '',
          i.state,
          String(i.allowed),
          c?.serial ?? '',
          c?.sha256_fingerprint ?? '',
          c?.not_after ?? '',
          c?.status ?? '',
        ]);
        break;
    }
  }
  const columns: Record<typeof format, string[]> = {
    ise: ['MACAddress', 'EndPointPolicy', 'IdentityGroup', 'Description', 'StaticAssignment', 'StaticGroupAssignment'],
    clearpass: ['MAC Address', 'Status', 'Description', 'Device Category', 'fleetca Device ID', 'fleetca Role', 'fleetca Serial', 'fleetca SHA256', 'fleetca Not After', 'fleetca Certificate Status'],
    packetfence: ['mac', 'category', 'unregdate', 'notes'],
    csv: [...CSV_COLUMNS],
  };
  return { columns: columns[format], header: format !== 'packetfence', rows, withoutMac };
}
