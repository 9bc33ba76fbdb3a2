/**
 * Manufacturer IDevIDs (IEEE 802.1AR) as enrollment credentials: which profiles trust which
 * anchors (fleetca's own manufacturing CA, or external manufacturers' CA files in ca-config/),
 * signature and validity checks with node's X509Certificate, external CRLs, and the subject
 * attribute that names the device.
 */
import crypto, { X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { forbidden, unavailable } from '../core/errors.js';
import type { FleetcaConfig, Profile } from '../config/schema.js';
import { decodeCrl, digestForSignatureOid, type DecodedCrl } from '../pki/crl-decode.js';
import { pemDecodeAll } from '../pki/pem.js';
import type { IssuerRecord } from '../ca/ports.js';

/** One trust anchor of a profile's `enrollment.idevid.trust`. */
export interface IdevidAnchor {
  /** As written in the profile: an issuer name or a file path. */
  ref: string;
  cert: X509Certificate;
  /** The fleetca issuer name when the anchor is one of fleetca's CAs (status comes from the database). */
  fleetcaIssuer: string | null;
}

/** A presented certificate that chains to an anchor of `profile`. */
export interface IdevidMatch {
  profile: Profile;
  anchor: IdevidAnchor;
  deviceId: string;
}

interface CrlFile {
  file: string;
  mtimeMs: number;
  crl: DecodedCrl;
}

function readCerts(file: string): X509Certificate[] {
  const bytes = readFileSync(file);
  const text = bytes.toString('latin1');
  if (text.includes('-----BEGIN')) return pemDecodeAll(text).filter((b) => b.label === 'CERTIFICATE').map((b) => new X509Certificate(b.der));
  return [new X509Certificate(bytes)];
}

function subjectAttribute(cert: X509Certificate, attr: 'CN' | 'serialNumber'): string | null {
  // node renders the subject one attribute per line: "CN=dev-1\nserialNumber=ABC"
  for (const line of cert.subject.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0 && line.slice(0, eq) === attr) return line.slice(eq + 1);
  }
  return null;
}

/** The IDevID trust of every device profile, loaded once at start (CRL files re-read when they change). */
export class IdevidTrust {
  private readonly anchors = new Map<string, IdevidAnchor[]>();
  private readonly crls = new Map<string, CrlFile>();

  constructor(
    private readonly config: FleetcaConfig,
    issuers: ReadonlyMap<string, IssuerRecord>,
  ) {
    for (const p of config.profiles.values()) {
      const idevid = p.enrollment.idevid;
      if (p.kind !== 'device' || !idevid) continue;
      const list: IdevidAnchor[] = [];
      for (const ref of idevid.trust) {
        const issuer = issuers.get(ref);
        if (issuer) list.push({ ref, cert: new X509Certificate(issuer.certDer), fleetcaIssuer: issuer.name });
        else if (config.settings.issuers[ref]) continue; // a fleetca CA not created yet (before init)
        else for (const cert of readCerts(path.resolve(config.dir, ref))) list.push({ ref, cert, fleetcaIssuer: null });
      }
      this.anchors.set(p.name, list);
    }
  }

  /** Whether any profile accepts IDevIDs (the TLS listener then names the anchors in CertificateRequest). */
  anchorCertificates(): X509Certificate[] {
    const seen = new Map<string, X509Certificate>();
    for (const list of this.anchors.values()) for (const a of list) seen.set(a.cert.fingerprint256, a.cert);
    return [...seen.values()];
  }

  /**
   * The profiles (all, or just `only`) whose anchors issued `leaf`, with the device id each reads
   * from it. Signature and issuer name are checked here; validity and revocation by `assertUsable`.
   */
  match(leaf: X509Certificate, only?: string): IdevidMatch[] {
    const out: IdevidMatch[] = [];
    for (const [name, anchors] of this.anchors) {
      if (only !== undefined && name !== only) continue;
      const profile = this.config.profiles.get(name)!;
      for (const anchor of anchors) {
        if (!leaf.checkIssued(anchor.cert) || !leaf.verify(anchor.cert.publicKey)) continue;
        const deviceId = subjectAttribute(leaf, profile.enrollment.idevid!.deviceId);
        if (deviceId) out.push({ profile, anchor, deviceId });
        break;
      }
    }
    return out;
  }

  /**
   * Validity at `now`, and for external anchors the profile's CRLs (each verified with the anchor
   * that issued it). fleetca's own IDevIDs are checked against the database by the caller.
   */
  assertUsable(leaf: X509Certificate, m: IdevidMatch, now: Date): void {
    if (now < new Date(leaf.validFrom) || now > new Date(leaf.validTo)) throw forbidden('the IDevID is expired or not yet valid');
    if (m.anchor.fleetcaIssuer) return;
    const serial = BigInt(`0x${leaf.serialNumber}`).toString(16);
    for (const ref of m.profile.enrollment.idevid!.crls) {
      const crl = this.crl(path.resolve(this.config.dir, ref));
      if (!this.crlIssuedBy(crl, m.anchor.cert)) {
        // another anchor's CRL; one that no anchor signed is refused, never skipped (fail closed)
        if (!this.anchors.get(m.profile.name)!.some((a) => this.crlIssuedBy(crl, a.cert))) {
          throw unavailable(`the CRL ${ref} is not signed by any IDevID anchor of profile ${m.profile.name}`);
        }
        continue;
      }
      if (crl.nextUpdate && crl.nextUpdate < now) throw unavailable(`the CRL ${ref} of the IDevID's manufacturer expired; refresh it`);
      if (crl.revokedSerials.has(serial)) throw forbidden('the IDevID is revoked by its manufacturer');
    }
  }

  private crlIssuedBy(crl: DecodedCrl, anchor: X509Certificate): boolean {
    const { digest, known } = digestForSignatureOid(crl.signatureAlgorithmOid);
    if (!known) return false;
    try {
      return crypto.verify(digest, crl.tbsDer, anchor.publicKey, crl.signature);
    } catch {
      return false;
    }
  }

  private crl(file: string): DecodedCrl {
    const mtimeMs = statSync(file).mtimeMs;
    const cached = this.crls.get(file);
    if (cached && cached.mtimeMs === mtimeMs) return cached.crl;
    const bytes = readFileSync(file);
    const text = bytes.toString('latin1');
    const der = text.includes('-----BEGIN') ? (pemDecodeAll(text).find((b) => b.label === 'X509 CRL')?.der ?? Buffer.alloc(0)) : bytes;
    const crl = decodeCrl(der);
    this.crls.set(file, { file, mtimeMs, crl });
    return crl;
  }
}
