/**
 * The JSON shapes of records that the CLI (`--json`) and the admin API both print: one definition,
 * so a script moving from one to the other reads the same fields.
 */
import { formatSerial } from '../core/ids.js';
import type { EnrollmentRequest } from './ports.js';
import type { CertificateRecord, DeviceRecord } from '../ca/ports.js';

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
