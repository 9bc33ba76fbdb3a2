/**
 * CRL signing (RFC 5280 §5). Only the core signs; the HTTP adapter serves the stored bytes.
 * This issue publishes the full CRL per issuer (at init, and on demand); the revocation issue
 * adds the debounced republisher, deltas and shards.
 */
import { hexToSerialBytes } from './serials.js';
import { assembleCrl, buildTbsCertList } from '../pki/crl.js';
import { unavailable } from '../core/errors.js';
import type { Clock } from '../core/clock.js';
import type { IssuerRuntime } from './issuers.js';
import type { AuditStore, CrlRecord, CrlStore } from './ports.js';

export interface CrlDeps {
  store: CrlStore & AuditStore;
  clock: Clock;
  nextUpdateMs: number;
}

/** Builds, signs and stores the full CRL of one issuer; returns the stored record. */
export async function publishFullCrl(deps: CrlDeps, issuer: IssuerRuntime, actor: string): Promise<CrlRecord> {
  if (!issuer.signer) throw unavailable(`the key of issuer ${issuer.record.name} is offline; its CRL cannot be signed`);
  const thisUpdate = deps.clock.now();
  thisUpdate.setUTCMilliseconds(0);
  const nextUpdate = new Date(thisUpdate.getTime() + deps.nextUpdateMs);
  const revoked = await deps.store.listRevoked(issuer.record.id, thisUpdate);
  const number = await deps.store.nextCrlNumber(issuer.record.id);
  const tbs = buildTbsCertList({
    issuerNameDer: issuer.subjectDer,
    authorityKeyId: issuer.record.ski,
    signatureAlgorithm: issuer.signer.algorithm,
    thisUpdate,
    nextUpdate,
    crlNumber: number,
    entries: revoked.map((r) => ({
      serial: hexToSerialBytes(r.serial),
      revocationDate: r.revokedAt,
      reason: r.reason,
      ...(r.invalidityDate ? { invalidityDate: r.invalidityDate } : {}),
    })),
  });
  await deps.store.appendAudit([{ at: thisUpdate, actor, action: 'crl.sign.begin', target: issuer.record.name, details: { number: number.toString() } }]);
  const signature = await issuer.signer.sign(tbs);
  const der = assembleCrl(tbs, issuer.signer.algorithm, signature);
  const rec: CrlRecord = { issuerId: issuer.record.id, number, kind: 'full', shard: 0, thisUpdate, nextUpdate, der };
  await deps.store.saveCrl(rec);
  await deps.store.appendAudit([{ at: thisUpdate, actor, action: 'crl.published', target: issuer.record.name, details: { number: number.toString(), entries: revoked.length } }]);
  return rec;
}
