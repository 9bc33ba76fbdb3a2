/**
 * The JSON shape of a batch that `fleetca batch list|show --json` and the admin API both print.
 */
import type { BatchRecord, BatchReject } from './ports.js';

/** A batch as JSON (snake_case, like the other --json outputs). */
export function batchView(b: BatchRecord) {
  return {
    id: b.id,
    state: b.state,
    manifest: b.manifestName,
    manifest_sha256: b.manifestSha256,
    profile: b.options.profile,
    keygen: b.options.keygen,
    format: b.options.format,
    secrets: b.options.secrets,
    kdf_iterations: b.options.kdfIterations,
    out_dir: b.options.outDir,
    rows: b.rowsTotal,
    devices: b.devices.pending + b.devices.done + b.devices.rejected,
    done: b.devices.done,
    pending: b.devices.pending,
    rejected: b.rejected,
    secrets_created: b.devices.secrets,
    replaced: b.devices.replaced,
    runs: b.runs,
    created_at: b.createdAt.toISOString(),
    created_by: b.createdBy,
    completed_at: b.completedAt?.toISOString() ?? null,
    revoked_at: b.revokedAt?.toISOString() ?? null,
    revoked_by: b.revokedBy,
    revocation_reason: b.revocationReason,
  };
}


export function batchRejectView(r: BatchReject) {
  return { line: r.line, device_id: r.deviceId, reason: r.reason };
}
