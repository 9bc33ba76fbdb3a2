/**
 * Authentication to the admin API by TLS client certificate (`fleetca admin-cert issue`). The TLS
 * handshake has already proven that the client holds the certificate's key; the listener requests
 * but does not verify client certificates (EST does its own checks), so everything else is checked
 * here: the certificate must be signed by the admin CA's key (never the device CA's), be within its
 * validity at the server's clock, and be a known, unrevoked row of `admin_certificates`.
 */
import crypto, { X509Certificate } from 'node:crypto';
import type { Clock } from '../core/clock.js';
import type { AdminCertStore, ApiRole } from '../ca/ports.js';

/** Why a presented certificate was refused (for the log; the client only gets 401). */
export type AdminCertRefusal = 'malformed' | 'no-admin-ca' | 'wrong-issuer' | 'bad-signature' | 'ca-certificate' | 'not-yet-valid' | 'expired' | 'unknown' | 'revoked';

export type AdminCertVerdict = { ok: true; fingerprint: Buffer; notBefore: Date; notAfter: Date } | { ok: false; reason: AdminCertRefusal };

/** The validity of a certificate as Dates (node prints it as "Mon DD HH:MM:SS YYYY GMT"). */
function validityOf(x: X509Certificate): { notBefore: Date; notAfter: Date } {
  return { notBefore: new Date(x.validFrom), notAfter: new Date(x.validTo) };
}

/** RFC 5280 §4.1.2.5: valid from notBefore through notAfter, both inclusive. */
function timeVerdict(v: { notBefore: Date; notAfter: Date }, now: Date): AdminCertRefusal | null {
  if (Number.isNaN(v.notBefore.getTime()) || Number.isNaN(v.notAfter.getTime())) return 'malformed';
  if (now.getTime() < v.notBefore.getTime()) return 'not-yet-valid';
  if (now.getTime() > v.notAfter.getTime()) return 'expired';
  return null;
}

/**
 * Checks a presented certificate against the admin CA without the database: issued by it (name
 * and key identifier chaining), its signature verifies with the admin CA's public key, it is not a
 * CA, and `now` is within its validity. A certificate of another CA with the same subject as the
 * admin CA fails the signature check.
 */
export function verifyAdminCertificate(leafDer: Buffer, adminCa: X509Certificate, now: Date): AdminCertVerdict {
  const sig = verifyAdminCertificateSignature(leafDer, adminCa);
  if (!sig.ok) return sig;
  const t = timeVerdict(sig, now);
  return t ? { ok: false, reason: t } : sig;
}

/** verifyAdminCertificate without the time check (its result may be cached by fingerprint). */
export function verifyAdminCertificateSignature(leafDer: Buffer, adminCa: X509Certificate): AdminCertVerdict {
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(leafDer);
  } catch {
    return { ok: false, reason: 'malformed' };
  }
  // checkIssued: issuer Name = the CA's subject, AKI = its SKI, the CA may sign certificates
  if (!leaf.checkIssued(adminCa)) return { ok: false, reason: 'wrong-issuer' };
  // the names say nothing about who signed: the signature must verify with the admin CA's key
  if (!leaf.verify(adminCa.publicKey)) return { ok: false, reason: 'bad-signature' };
  if (leaf.ca) return { ok: false, reason: 'ca-certificate' };
  return { ok: true, fingerprint: crypto.createHash('sha256').update(leafDer).digest(), ...validityOf(leaf) };
}

export type AdminCertAuthResult = { ok: true; name: string; role: ApiRole; serial: string } | { ok: false; reason: AdminCertRefusal };

export interface AdminCertAuthenticatorDeps {
  store: Pick<AdminCertStore, 'getAdminCa' | 'findAdminCertificate'>;
  clock: Clock;
  /** While there is no admin CA, how often to look for one again (ms). Default 30 s. */
  caRetryMs?: number;
  /** Certificates whose signature check is remembered (by fingerprint). Default 1024. */
  cacheSize?: number;
}

/**
 * The admin API's certificate authentication. Per request it costs one indexed lookup by
 * fingerprint (so a revocation applies from the next request on, on every instance); the admin CA
 * (which never changes once created) and the signature checks of certificates seen before are
 * kept in memory.
 */
export class AdminCertAuthenticator {
  private ca: X509Certificate | null = null;
  private caLookedAt = -Infinity;
  private readonly checked = new Map<string, { notBefore: Date; notAfter: Date }>();

  constructor(private readonly deps: AdminCertAuthenticatorDeps) {}

  private async adminCa(now: number): Promise<X509Certificate | null> {
    if (this.ca) return this.ca;
    if (now - this.caLookedAt < (this.deps.caRetryMs ?? 30_000)) return null;
    this.caLookedAt = now;
    const r = await this.deps.store.getAdminCa();
    if (r) this.ca = new X509Certificate(r.certDer);
    return this.ca;
  }

  async authenticate(leafDer: Buffer): Promise<AdminCertAuthResult> {
    const now = this.deps.clock.now();
    const ca = await this.adminCa(now.getTime());
    if (!ca) return { ok: false, reason: 'no-admin-ca' };
    const fp = crypto.createHash('sha256').update(leafDer).digest();
    const key = fp.toString('hex');
    let validity = this.checked.get(key);
    if (!validity) {
      const v = verifyAdminCertificateSignature(leafDer, ca);
      if (!v.ok) return v;
      validity = { notBefore: v.notBefore, notAfter: v.notAfter };
      if (this.checked.size >= (this.deps.cacheSize ?? 1024)) this.checked.clear();
      this.checked.set(key, validity);
    }
    const t = timeVerdict(validity, now);
    if (t) return { ok: false, reason: t };
    const row = await this.deps.store.findAdminCertificate(fp);
    if (!row) return { ok: false, reason: 'unknown' };
    if (row.revokedAt !== null) return { ok: false, reason: 'revoked' };
    return { ok: true, name: row.name, role: row.role, serial: row.serial };
  }
}
