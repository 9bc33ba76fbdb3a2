/**
 * The JSON shapes of records that the CLI (`--json`) and the admin API both print: one definition,
 * so a script moving from one to the other reads the same fields.
 */
import { formatSerial } from '../core/ids.js';
import type { EnrollmentRequest } from './ports.js';
import type { CertificateRecord, DeviceRecord } from '../ca/ports.js';
import type { InventoryEntry } from './inventory.js';
import type { Advisory, ApiToken } from '../ca/ports.js';
import { formatDuration } from '../core/duration.js';

export function certificateView(c: CertificateRecord) {
  return {
    serial: formatSerial(c.serial),
    device: c.deviceId,
    profile: c.profile,
    issuer: c.issuerName,
    subject: c.subject,
    sans: c.sans,
    not_before: c.notBefore.toISOString(),
    not_after: c.notAfter.toISOString(),
    status: c.status,
    revoked_at: c.revokedAt?.toISOString() ?? null,
    revocation_reason: c.revocationReason,
    superseded_by: c.supersededBy ? formatSerial(c.supersededBy) : null,
    supersede_revoke_at: c.supersedeRevokeAt?.toISOString() ?? null,
    sha256_fingerprint: c.fingerprintSha256.toString('hex'),
  };
}

export function deviceView(d: DeviceRecord) {
  return {
    id: d.id,
    macs: d.macs,
    serial_number: d.serialNumber,
    model: d.model,
    firmware: d.firmware,
    profile: d.profile,
    state: d.state,
    created_at: d.createdAt.toISOString(),
    updated_at: d.updatedAt.toISOString(),
    last_enrolled_at: d.lastEnrolledAt?.toISOString() ?? null,
    first_seen_at: d.firstSeenAt?.toISOString() ?? null,
    segment: d.segment ?? null,
    nac_role_override: d.nacRole ?? null,
  };
}

/** A device as the inventory shows it: the record plus criticality, NAC role, current certificate, staleness. */
export function inventoryView(e: InventoryEntry) {
  const c = e.current;
  return {
    ...deviceView(e.device),
    criticality: e.criticality,
    nac_role: e.nacRole,
    current_certificate: c ? { serial: formatSerial(c.serial), profile: c.profile, not_after: c.notAfter.toISOString(), status: c.status } : null,
    renewal_from: e.renewalFrom?.toISOString() ?? null,
    certificate_health: e.health,
    stale: e.stale,
  };
}

/** The columns of `fleetca device list --csv`, in order (one flat row per device). */
export const INVENTORY_CSV_COLUMNS = [
  'id', 'state', 'criticality', 'profile', 'model', 'firmware', 'serial_number', 'macs', 'segment', 'nac_role',
  'first_seen_at', 'last_enrolled_at', 'certificate_serial', 'certificate_not_after', 'certificate_status',
  'renewal_from', 'certificate_health', 'stale',
] as const;

export function inventoryCsvRow(e: InventoryEntry): Record<(typeof INVENTORY_CSV_COLUMNS)[number], string> {
  const v = inventoryView(e);
  return {
    id: v.id,
    state: v.state,
    criticality: v.criticality,
    profile: v.profile ?? '',
    model: v.model ?? '',
    firmware: v.firmware ?? '',
    serial_number: v.serial_number ?? '',
    macs: v.macs.join(';'),
    segment: v.segment ?? '',
    nac_role: v.nac_role ?? '',
    first_seen_at: v.first_seen_at ?? '',
    last_enrolled_at: v.last_enrolled_at ?? '',
    certificate_serial: v.current_certificate?.serial ?? '',
    certificate_not_after: v.current_certificate?.not_after ?? '',
    certificate_status: v.current_certificate?.status ?? '',
    renewal_from: v.renewal_from ?? '',
    certificate_health: v.certificate_health,
    stale: String(v.stale),
  };
}

export function requestView(r: EnrollmentRequest) {
  return {
    id: r.id,
    device: r.deviceId,
    profile: r.profile,
    subject: r.subject,
    state: r.state,
    via: r.via,
    actor: r.actor,
    created_at: r.createdAt.toISOString(),
    decided_at: r.decidedAt?.toISOString() ?? null,
    decided_by: r.decidedBy,
    reason: r.reason,
    serial: r.serial ? formatSerial(r.serial) : null,
  };
}

/** An admin API token without its secret or MAC (the token itself is shown once, at creation). */
export function apiTokenView(t: ApiToken) {
  return {
    name: t.name,
    role: t.role,
    created_at: t.createdAt.toISOString(),
    created_by: t.createdBy,
    expires_at: t.expiresAt.toISOString(),
    revoked_at: t.revokedAt?.toISOString() ?? null,
    last_used_at: t.lastUsedAt?.toISOString() ?? null,
  };
}

/** A firmware advisory; `max_validity` in the duration form it is given in ("7d"). */
export function advisoryView(a: Advisory) {
  return {
    id: a.id,
    model: a.model,
    firmware: a.firmwareRange,
    action: a.action,
    restricted_profile: a.restrictedProfile,
    max_validity: a.maxValidityMs === null ? null : formatDuration(a.maxValidityMs),
    reason: a.reason,
    devices: a.devices,
    created_at: a.createdAt.toISOString(),
    created_by: a.createdBy,
    withdrawn_at: a.withdrawnAt?.toISOString() ?? null,
    withdrawn_by: a.withdrawnBy,
  };
}
