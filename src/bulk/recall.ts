/**
 * Recalling a production run (`fleetca batch revoke`): every live certificate the batch issued is
 * revoked through the CA core's revoke path (each with its own audit entry and CRL/OCSP status
 * change), after the recall itself is recorded on the batch. Interrupted, it is simply run again:
 * certificates already revoked are skipped.
 */
import { CaError, badRequest, notFound } from '../core/errors.js';
import type { Clock } from '../core/clock.js';
import type { CertificateAuthority } from '../ca/issuance.js';
import type { AuditStore, RevocationReason } from '../ca/ports.js';
import { REVOCATION_REASONS } from '../ca/revocation.js';
import type { BatchRecord, BatchStore } from './ports.js';

/** Reasons a recall may give (a hold is not a recall: use `fleetca hold`). */
export const RECALL_REASONS: readonly RevocationReason[] = REVOCATION_REASONS.filter((r) => r !== 'certificateHold' && r !== 'aACompromise');

export interface RecallDeps {
  ca: CertificateAuthority;
  store: BatchStore & AuditStore;
  clock: Clock;
}

export interface RecallResult {
  batch: BatchRecord;
  /** Serials revoked by this call. */
  revoked: string[];
  /** Certificates of the batch that were revoked already. */
  alreadyRevoked: number;
}

/** Revokes every certificate of the batch; `onProgress(done, total)` after each. */
export async function revokeBatch(
  deps: RecallDeps,
  batchId: string,
  reason: RevocationReason,
  actor: string,
  onProgress?: (done: number, total: number) => void,
  concurrency = 8,
): Promise<RecallResult> {
  if (!RECALL_REASONS.includes(reason)) throw badRequest(`"${reason}" is not a recall reason (${RECALL_REASONS.join(', ')})`);
  const existing = await deps.store.getBatch(batchId);
  if (!existing) throw notFound(`no batch ${batchId}`);
  const at = deps.clock.now();
  await deps.store.markBatchRevoked(batchId, reason, at, actor, { at, actor, action: 'batch.revoked', target: `batch:${batchId}`, details: { reason } });
  const certs = await deps.store.batchCertificates(batchId);
  const live = certs.filter((c) => c.status !== 'revoked');
  const revoked: string[] = [];
  let done = 0;
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, live.length) }, async () => {
      while (next < live.length) {
        const c = live[next++]!;
        try {
          await deps.ca.revoke(c.serial, reason, actor);
          revoked.push(c.serial);
        } catch (e) {
          // revoked meanwhile (another recall, an operator): nothing to do
          if (!(e instanceof CaError && e.kind === 'conflict')) throw e;
        }
        onProgress?.(++done, live.length);
      }
    }),
  );
  const end = deps.clock.now();
  await deps.store.appendAudit([
    { at: end, actor, action: 'batch.revocation.completed', target: `batch:${batchId}`, details: { reason, revoked: revoked.length, certificates: certs.length } },
  ]);
  return { batch: (await deps.store.getBatch(batchId))!, revoked, alreadyRevoked: certs.length - live.length + (live.length - revoked.length) };
}
