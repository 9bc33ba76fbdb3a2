/**
 * Pre-issuance lints: small pure rules, each with a citation, run on the draft of every
 * certificate before its intent is recorded and before anything is signed. A profile opts out of
 * a lint by name (`lints.disable`). No linter (zlint, pkilint) is packaged for this platform, so
 * these rules are fleetca's own; the byte-level builder tests check the DER itself.
 */
import type { KeyInfo } from '../pki/csr.js';
import type { SanEntry } from '../pki/names.js';

/** Everything a lint may look at: the values that go into the TBSCertificate. */
export interface CertificateDraft {
  serial: Buffer;
  notBefore: Date;
  notAfter: Date;
  issuerNotBefore: Date;
  issuerNotAfter: Date;
  isCa: boolean;
  keyUsage: readonly string[];
  extendedKeyUsage: readonly string[];
  subjectCn: string | undefined;
  subjectEmpty: boolean;
  sans: readonly SanEntry[];
  key: KeyInfo;
  ocspNoCheck: boolean;
  urls: readonly string[];
  maxValidityMs: number;
}

export interface Lint {
  name: string;
  citation: string;
  appliesTo: (d: CertificateDraft) => boolean;
  /** Returns the problem, or null when the draft passes. */
  check: (d: CertificateDraft) => string | null;
}

const always = () => true;
const endEntity = (d: CertificateDraft) => !d.isCa;

export const LINTS: readonly Lint[] = [
  {
    name: 'e_serial_positive_max_20_octets',
    citation: 'RFC 5280 §4.1.2.2',
    appliesTo: always,
    check: (d) =>
      d.serial.length === 0 || d.serial.length > 20 || (d.serial[0]! & 0x80) !== 0 || d.serial.every((b) => b === 0)
        ? 'serial must be a positive integer of at most 20 octets'
        : null,
  },
  {
    name: 'e_serial_entropy_64_bits',
    citation: 'CA/Browser Forum Baseline Requirements §7.1',
    appliesTo: always,
    check: (d) => (d.serial.length < 9 ? 'serial must carry at least 64 bits from a CSPRNG' : null),
  },
  {
    name: 'e_validity_positive',
    citation: 'RFC 5280 §4.1.2.5',
    appliesTo: always,
    check: (d) => (d.notAfter.getTime() <= d.notBefore.getTime() ? 'notAfter must be after notBefore' : null),
  },
  {
    name: 'e_validity_within_issuer',
    citation: 'RFC 5280 §6.1.3 (a)(2)',
    appliesTo: always,
    check: (d) =>
      d.notAfter.getTime() > d.issuerNotAfter.getTime() || d.notBefore.getTime() < d.issuerNotBefore.getTime()
        ? 'validity must lie within the issuer certificate validity'
        : null,
  },
  {
    name: 'e_validity_within_profile',
    citation: 'fleetca profile `validity` (plus `backdate`)',
    appliesTo: endEntity,
    check: (d) => (d.notAfter.getTime() - d.notBefore.getTime() > d.maxValidityMs ? 'validity exceeds the profile maximum' : null),
  },
  {
    name: 'e_ee_not_ca',
    citation: 'RFC 5280 §4.2.1.9, §4.2.1.3',
    appliesTo: endEntity,
    check: (d) => (d.keyUsage.includes('keyCertSign') || d.keyUsage.includes('cRLSign') ? 'an end-entity certificate cannot have keyCertSign or cRLSign' : null),
  },
  {
    name: 'e_ca_key_cert_sign',
    citation: 'RFC 5280 §4.2.1.3',
    appliesTo: (d) => d.isCa,
    check: (d) => (d.keyUsage.includes('keyCertSign') ? null : 'a CA certificate needs keyUsage keyCertSign'),
  },
  {
    name: 'e_key_usage_present',
    citation: 'RFC 5280 §4.2.1.3',
    appliesTo: always,
    check: (d) => (d.keyUsage.length === 0 ? 'keyUsage must have at least one bit set' : null),
  },
  {
    name: 'e_ec_no_key_encipherment',
    citation: 'RFC 8813 §3',
    appliesTo: (d) => d.key.type === 'ec',
    check: (d) => (d.keyUsage.includes('keyEncipherment') || d.keyUsage.includes('dataEncipherment') ? 'EC keys cannot have keyEncipherment or dataEncipherment' : null),
  },
  {
    name: 'e_eddsa_key_usage',
    citation: 'RFC 8410 §5',
    appliesTo: (d) => d.key.type === 'ed25519' || d.key.type === 'ed448',
    check: (d) => {
      const bad = d.keyUsage.filter((u) => !['digitalSignature', 'nonRepudiation', 'keyCertSign', 'cRLSign'].includes(u));
      return bad.length ? `EdDSA keys cannot have ${bad.join(', ')}` : null;
    },
  },
  {
    name: 'e_rsa_no_key_agreement',
    citation: 'RFC 4055 §1.2 / RFC 3279 §2.3.1',
    appliesTo: (d) => d.key.type === 'rsa',
    check: (d) => (d.keyUsage.includes('keyAgreement') ? 'RSA keys cannot have keyAgreement' : null),
  },
  {
    name: 'e_rsa_mod_at_least_2048',
    citation: 'NIST SP 800-131A Rev. 2 §3',
    appliesTo: (d) => d.key.type === 'rsa',
    check: (d) => (d.key.bits < 2048 ? 'RSA modulus must be at least 2048 bits' : null),
  },
  {
    name: 'e_san_if_subject_empty',
    citation: 'RFC 5280 §4.2.1.6',
    appliesTo: always,
    check: (d) => (d.subjectEmpty && d.sans.length === 0 ? 'a certificate with an empty subject needs subjectAltName' : null),
  },
  {
    name: 'e_cn_max_length',
    citation: 'RFC 5280 Appendix A (ub-common-name = 64)',
    appliesTo: (d) => d.subjectCn !== undefined,
    check: (d) => ((d.subjectCn ?? '').length > 64 ? 'commonName is longer than 64 characters' : null),
  },
  {
    name: 'e_ocsp_nocheck_needs_ocsp_signing',
    citation: 'RFC 6960 §4.2.2.2.1',
    appliesTo: (d) => d.ocspNoCheck,
    check: (d) => (d.extendedKeyUsage.includes('OCSPSigning') ? null : 'id-pkix-ocsp-nocheck only belongs in OCSP responder certificates'),
  },
  {
    name: 'e_distribution_urls_http',
    citation: 'RFC 5280 §4.2.1.13, §4.2.2.1',
    appliesTo: (d) => d.urls.length > 0,
    check: (d) => {
      const bad = d.urls.filter((u) => !/^https?:\/\/[^\s]+$/.test(u));
      return bad.length ? `CDP/AIA URLs must be http(s) URIs: ${bad.join(', ')}` : null;
    },
  },
];

/** Runs every applicable lint not disabled; returns the failures as `name (citation): problem`. */
export function runLints(d: CertificateDraft, disabled: readonly string[] = []): string[] {
  const out: string[] = [];
  for (const l of LINTS) {
    if (disabled.includes(l.name) || !l.appliesTo(d)) continue;
    const problem = l.check(d);
    if (problem) out.push(`${l.name} (${l.citation}): ${problem}`);
  }
  return out;
}
