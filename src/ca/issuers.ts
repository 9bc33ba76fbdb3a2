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
