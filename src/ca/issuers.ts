/**
 * An issuer at run time: its stored record, the raw subject Name of its certificate (copied
 * byte-for-byte into the issuer field of what it signs, RFC 5280 §4.1.2.4), its URLs, and a
 * Signer when its key is online (the root's usually is not).
 */
import { certificateParts } from '../pki/cert-parts.js';
import type { Signer } from '../signing/signer.js';
import type { IssuerRecord } from './ports.js';
import { issuerUrls, type IssuerUrls } from './urls.js';
import { internal } from '../core/errors.js';

export interface IssuerRuntime {
  readonly record: IssuerRecord;
  readonly subjectDer: Buffer;
  readonly spkiDer: Buffer;
  readonly urls: IssuerUrls;
  readonly signer: Signer | null;
}

export function buildIssuerRuntime(record: IssuerRecord, signer: Signer | null, publicUrl: string): IssuerRuntime {
  const parts = certificateParts(record.certDer);
  if (signer && !signer.spkiDer.equals(parts.spkiDer)) {
    throw internal(`the key loaded for issuer ${record.name} does not match its certificate`);
  }
  return { record, subjectDer: parts.subjectDer, spkiDer: parts.spkiDer, urls: issuerUrls(publicUrl, record.name), signer };
}

/** The ca.yaml issuer name a CA serves (profiles name it). */
export const lineageOf = (r: IssuerRecord): string => r.lineage ?? r.name;
/** From when a CA issues for its lineage. */
export const activationOf = (r: IssuerRecord): Date => r.activatesAt ?? r.notBefore;

/**
 * Whether a CA has taken over its lineage at `now`. An immediate rollover (activation = the CA's
 * own notBefore) counts from its creation whatever the clock says, so a clock jumping backwards
 * never hands issuance back to the previous CA; a scheduled one waits for its time.
 */
export function hasCome(r: IssuerRecord, now: Date): boolean {
  const t = activationOf(r).getTime();
  return t <= now.getTime() || t <= r.notBefore.getTime();
}

/**
 * Every unexpired CA of a lineage: the one issuing now first (the latest activation that has
 * come), then the others, newest first; a scheduled successor (activation still ahead) last.
 */
export function lineageIssuers<T extends { record: IssuerRecord }>(issuers: Iterable<T>, lineage: string, now: Date): T[] {
  const live = [...issuers].filter((i) => lineageOf(i.record) === lineage && now < i.record.notAfter);
  const t = (i: T) => activationOf(i.record).getTime();
  const came = live.filter((i) => hasCome(i.record, now)).sort((a, b) => t(b) - t(a));
  const ahead = live.filter((i) => !hasCome(i.record, now)).sort((a, b) => t(a) - t(b));
  return [...came, ...ahead];
}

/** The CA that issues for a lineage at `now` (null: none has come yet, or all expired). */
export function currentIssuer<T extends { record: IssuerRecord }>(issuers: Iterable<T>, lineage: string, now: Date): T | null {
  const first = lineageIssuers(issuers, lineage, now)[0];
  return first && hasCome(first.record, now) ? first : null;
}

/** A CA of the lineage scheduled to take over later (rollover --at), if any. */
export function scheduledIssuer<T extends { record: IssuerRecord }>(issuers: Iterable<T>, lineage: string, now: Date): T | null {
  return lineageIssuers(issuers, lineage, now).find((i) => !hasCome(i.record, now)) ?? null;
}
