/**
 * A device as the NAC sees it (issue 8): its MACs, device class (profile), the identity group /
 * VLAN / role it maps to, and the certificate it authenticates with. The endpoint exports
 * (`fleetca export endpoints`) and the NAC feed (`GET /api/v1/nac/identities`) both print this.
 *
 * A retired device is dropped from exports; in the incremental feed it appears once more with
 * `removed: true`, so that a NAC that imported it deletes it.
 */
import { formatSerial } from '../core/ids.js';
import type { FleetcaConfig } from '../config/schema.js';
import type { DeviceRecord } from '../ca/ports.js';
import { inventoryOf, type InventoryEntry } from './inventory.js';

export interface NacIdentity {
  device_id: string;
  macs: string[];
  device_class: string | null;
  nac_role: string | null;
  criticality: InventoryEntry['criticality'];
  segment: string | null;
  state: DeviceRecord['state'];
  /** The device left the fleet: delete it from the NAC. */
  removed: boolean;
  /** Active, with a current certificate that is valid (not on hold) and not expired. */
  allowed: boolean;
  certificate: { serial: string; sha256_fingerprint: string; not_after: string; status: string } | null;
}

export function nacIdentity(e: InventoryEntry, now: Date): NacIdentity {
  const d = e.device;
  const c = e.current;
  return {
    device_id: d.id,
    macs: d.macs,
    device_class: d.profile ?? c?.profile ?? null,
    nac_role: e.nacRole,
    criticality: e.criticality,
    segment: d.segment ?? null,
    state: d.state,
    removed: d.state === 'retired',
    allowed: d.state === 'active' && c !== null && c.status === 'valid' && now < c.notAfter,
    certificate: c ? { serial: formatSerial(c.serial), sha256_fingerprint: c.fingerprintSha256.toString('hex'), not_after: c.notAfter.toISOString(), status: c.status } : null,
  };
}

/** The identity of a device read with its current certificate (DeviceFilter.withCurrent or the NAC feed). */
export function nacIdentityOf(config: FleetcaConfig, d: DeviceRecord, now: Date): NacIdentity {
  return nacIdentity(inventoryOf(config, d, now), now);
}
