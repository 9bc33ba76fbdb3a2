/**
 * The device inventory (issue 6): each device record with what an operator judges it by — the
 * criticality and NAC role its profile gives it, its current certificate, and whether it is
 * **stale**: its current certificate entered the renewal window (the profile's `renewal.window`)
 * and the device did not re-enroll, or its newest certificate already expired. `fleetca device
 * list` and `GET /api/v1/devices` both read it from here.
 *
 * Model, profile, state, segment and criticality filter in SQL; the firmware range and staleness
 * are judged here, so a filtered page is collected from as many store pages as it takes.
 */
import { parseVersionRange, versionInRange } from '../core/versions.js';
import type { FleetcaConfig, Profile } from '../config/schema.js';
import type { CurrentCertificate, DeviceRecord, DeviceState, DeviceStore } from '../ca/ports.js';
import { renewalWindowStart } from './enroll.js';

export type Criticality = Profile['criticality'];
export const CRITICALITIES: readonly Criticality[] = ['high', 'normal', 'low'];

/**
 * none: never had a certificate (or every one was revoked); current: valid, before its renewal
 * window; renewal-due: inside the window and not yet replaced; expired: the newest one lapsed.
 */
export type CertificateHealth = 'none' | 'current' | 'renewal-due' | 'expired';

export interface InventoryEntry {
  device: DeviceRecord;
  criticality: Criticality;
  /** The device's own NAC role, else its current certificate's profile's, else its default profile's. */
  nacRole: string | null;
  current: CurrentCertificate | null;
  /** Start of the current certificate's renewal window. */
  renewalFrom: Date | null;
  health: CertificateHealth;
  /** renewal-due or expired, on a device that is not retired. */
  stale: boolean;
}

export interface InventoryFilter {
  profile?: string;
  model?: string;
  state?: DeviceState;
  segment?: string;
  criticality?: Criticality;
  /** A firmware version range (core/versions.ts), e.g. "<2.4.1". */
  firmware?: string;
  stale?: boolean;
  /** Only these device ids. */
  ids?: readonly string[];
  /** Keyset pagination: devices whose id sorts after this one. */
  after?: string;
  /** At most this many entries; all when absent. */
  limit?: number;
}

/** The inventory view of one device (its `current` must have been read: DeviceFilter.withCurrent). */
export function inventoryOf(config: FleetcaConfig, d: DeviceRecord, now: Date): InventoryEntry {
  const current = d.current ?? null;
  const own = d.profile !== null ? config.profiles.get(d.profile) : undefined;
  const certProfile = current ? config.profiles.get(current.profile) : undefined;
  const criticality = (own ?? certProfile)?.criticality ?? 'normal';
  const nacRole = d.nacRole ?? certProfile?.nacRole ?? own?.nacRole ?? null;
  let renewalFrom: Date | null = null;
  let health: CertificateHealth = 'none';
  if (current) {
    // a profile removed from the configuration since: no window known, judge by expiry alone
    renewalFrom = certProfile ? renewalWindowStart(certProfile, current.notBefore, current.notAfter) : null;
    if (now >= current.notAfter) health = 'expired';
    else if (renewalFrom && now >= renewalFrom) health = 'renewal-due';
    else health = 'current';
  }
  const stale = d.state !== 'retired' && (health === 'renewal-due' || health === 'expired');
  return { device: d, criticality, nacRole, current, renewalFrom, health, stale };
}

/** Profiles of a criticality: what a criticality filter selects in SQL. */
function profilesOf(config: FleetcaConfig, c: Criticality): string[] {
  return [...config.profiles.values()].filter((p) => p.kind === 'device' && p.criticality === c).map((p) => p.name);
}

const PAGE = 500;

/**
 * Devices in id order with their inventory view, filtered. Returns at most `limit` entries and
 * whether more match after them.
 */
export async function listInventory(
  deps: { store: Pick<DeviceStore, 'listDevices'>; config: FleetcaConfig },
  f: InventoryFilter,
  now: Date,
): Promise<{ entries: InventoryEntry[]; more: boolean }> {
  const range = f.firmware !== undefined ? parseVersionRange(f.firmware) : undefined;
  const sqlFilter = {
    ...(f.profile !== undefined ? { profile: f.profile } : {}),
    ...(f.model !== undefined ? { model: f.model } : {}),
    ...(f.state !== undefined ? { state: f.state } : {}),
    ...(f.segment !== undefined ? { segment: f.segment } : {}),
    ...(f.ids !== undefined ? { ids: f.ids } : {}),
    ...(f.criticality !== undefined ? { profiles: profilesOf(deps.config, f.criticality) } : {}),
    withCurrent: true,
  };
  const want = f.limit ?? Infinity;
  const entries: InventoryEntry[] = [];
  let after = f.after;
  for (;;) {
    // without judged filters the store's page is the answer's page (one more tells "more")
    const judged = range !== undefined || f.stale !== undefined;
    const pageSize = judged ? PAGE : Math.min(PAGE, want + 1);
    const rows = await deps.store.listDevices({ ...sqlFilter, ...(after !== undefined ? { after } : {}), limit: pageSize });
    for (const d of rows) {
      if (range && !versionInRange(d.firmware, range)) continue;
      const e = inventoryOf(deps.config, d, now);
      if (f.stale !== undefined && e.stale !== f.stale) continue;
      if (entries.length === want) return { entries, more: true };
      entries.push(e);
    }
    if (rows.length < pageSize) return { entries, more: false };
    after = rows[rows.length - 1]!.id;
  }
}
