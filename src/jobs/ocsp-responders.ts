/**
 * Renews the delegated OCSP responder certificates (RFC 6960 §4.2.2.2) before they expire: a new
 * P-256 key, a certificate from the responder profile by the same issuing CA, the key saved
 * encrypted, the certificate written to the data dir, and the running responder switched over —
 * no restart. Each instance renews its own (each holds its own responder key).
 */
import type { Clock } from '../core/clock.js';
import type { CertificateAuthority } from '../ca/issuance.js';
import type { OcspService } from '../ca/ocsp.js';
import type { Signer } from '../signing/signer.js';
import type { KeyObject } from 'node:crypto';

export interface ResponderRenewalDeps {
  ca: CertificateAuthority;
  ocsp: OcspService;
  clock: Clock;
  /** The responder profile (systemProfiles.ocspResponder). */
  profile: string;
  renewBeforeMs: number;
  /** Stores the new key (encrypted) and certificate under the responder's service name. */
  save(issuerName: string, key: KeyObject, certDer: Buffer): void;
  addKey(keyId: string, key: KeyObject): Promise<Signer>;
  log: (obj: Record<string, unknown>, msg: string) => void;
}

/** Renews every responder within `renewBeforeMs` of its notAfter; returns the issuers renewed. */
export async function renewDueResponders(deps: ResponderRenewalDeps): Promise<string[]> {
  const renewed: string[] = [];
  const now = deps.clock.now().getTime();
  for (const [issuerName, r] of deps.ocsp.responderCertificates()) {
    if (r.notAfter.getTime() - now > deps.renewBeforeMs) continue;
    const issuer = deps.ca.issuers.get(issuerName);
    if (!issuer?.signer) continue;
    const { key, cert } = await deps.ca.issueServiceKey({
      keyType: 'P-256',
      profile: deps.profile,
      issuerName,
      subject: [{ type: 'CN', oid: '2.5.4.3', value: `${issuer.record.name} OCSP Responder` }],
      actor: 'system:ocsp',
      via: 'renewal',
    });
    deps.save(issuerName, key, cert.der);
    deps.ocsp.setResponder({ issuer, certDer: cert.der, signer: await deps.addKey(`ocsp-${issuerName}-${cert.serial}`, key) });
    deps.log({ issuer: issuerName, serial: cert.serial, notAfter: cert.notAfter.toISOString(), previousNotAfter: r.notAfter.toISOString() }, 'OCSP responder certificate renewed');
    renewed.push(issuerName);
  }
  return renewed;
}
