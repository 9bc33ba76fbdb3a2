/**
 * Revocation rules of the core (the store enforces them atomically):
 * - revoke: a valid or held certificate becomes revoked with the reason; a revoked one cannot
 *   change (conflict). Revoking a held certificate replaces certificateHold by the new reason and
 *   keeps the hold's date: the certificate has been unusable since then.
 * - hold (reason certificateHold, the quarantine state): valid → hold; reversible.
 * - release: hold → valid, recorded as removeFromCRL (RFC 5280 §5.3.1); a revoked certificate
 *   cannot be released.
 * - invalidityDate (RFC 5280 §5.3.2) is kept when given, for any reason except hold and release.
 */
import { REVOCATION_REASON_CODES, encodeCrlEntry } from '../pki/crl.js';
import { policyRejected } from '../core/errors.js';
import { hexToSerialBytes } from './serials.js';
import type { RevocationReason } from './ports.js';

/**
 * The reasons a revocation may name: every RFC 5280 CRLReason but removeFromCRL, which only marks a
 * released hold in a delta CRL. Adapters narrow it (the admin API and recalls leave certificateHold
 * to the hold commands).
 */
export const REVOCATION_REASONS: readonly RevocationReason[] = (Object.keys(REVOCATION_REASON_CODES) as RevocationReason[]).filter((r) => r !== 'removeFromCRL');

/** The CRL entry of a certificate in its revoked or held state (stored with the row). */
export function crlEntryOf(e: { serial: string; revokedAt: Date; reason: RevocationReason; invalidityDate: Date | null }): Buffer {
  return encodeCrlEntry(
    { serial: hexToSerialBytes(e.serial), revocationDate: e.revokedAt, reason: e.reason, ...(e.invalidityDate ? { invalidityDate: e.invalidityDate } : {}) },
    false,
  );
}

/** The delta CRL entry of a released hold: removeFromCRL, dated at the release. */
export function removeFromCrlEntryOf(serial: string, releasedAt: Date): Buffer {
  return encodeCrlEntry({ serial: hexToSerialBytes(serial), revocationDate: releasedAt, reason: 'removeFromCRL' }, true);
}

/** Checks a reason and invalidityDate given to revoke/hold; throws policyRejected. */
export function assertRevocationInput(reason: RevocationReason, invalidityDate: Date | undefined, now: Date): void {
  if (reason === 'removeFromCRL') throw policyRejected('removeFromCRL is not a revocation reason; use release');
  if (invalidityDate !== undefined) {
    if (reason === 'certificateHold') throw policyRejected('a hold carries no invalidity date');
    if (Number.isNaN(invalidityDate.getTime())) throw policyRejected('invalidity date is not a date');
    if (invalidityDate.getTime() > now.getTime()) throw policyRejected('invalidity date is in the future');
  }
}
