import { describe, expect, it } from 'vitest';
import { LINTS, runLints, type CertificateDraft } from '../../src/ca/lints.js';

const DAY = 86_400_000;
const base: CertificateDraft = {
  serial: Buffer.from('01' + 'ab'.repeat(16), 'hex'),
  notBefore: new Date('2026-01-01T00:00:00Z'),
  notAfter: new Date('2026-12-01T00:00:00Z'),
  issuerNotBefore: new Date('2025-01-01T00:00:00Z'),
  issuerNotAfter: new Date('2035-01-01T00:00:00Z'),
  isCa: false,
  keyUsage: ['digitalSignature'],
  extendedKeyUsage: ['clientAuth'],
  subjectCn: 'cam-1',
  subjectEmpty: false,
  sans: [],
  key: { type: 'ec', curve: 'P-256', bits: 256 },
  ocspNoCheck: false,
  urls: ['http://localhost:8080/crl/device-ca.crl'],
  maxValidityMs: 365 * DAY,
};

describe('lints', () => {
  it('every lint has a name and a citation', () => {
    for (const l of LINTS) {
      expect(l.name).toMatch(/^e_[a-z0-9_]+$/);
      expect(l.citation.length).toBeGreaterThan(3);
    }
    expect(new Set(LINTS.map((l) => l.name)).size).toBe(LINTS.length);
  });

  it('a good end-entity draft/passes', () => {
    expect(runLints(base)).toEqual([]);
  });

  const failing: Array<[string, Partial<CertificateDraft>]> = [
    ['e_serial_positive_max_20_octets', { serial: Buffer.from('80' + '00'.repeat(16), 'hex') }],
    ['e_serial_positive_max_20_octets', { serial: Buffer.alloc(21, 1) }],
    ['e_serial_entropy_64_bits', { serial: Buffer.from('0102', 'hex') }],
    ['e_validity_positive', { notAfter: new Date('2025-12-01T00:00:00Z') }],
    ['e_validity_within_issuer', { notAfter: new Date('2036-01-01T00:00:00Z'), maxValidityMs: 100 * 365 * DAY }],
    ['e_validity_within_profile', { maxValidityMs: 30 * DAY }],
    ['e_ee_not_ca', { keyUsage: ['digitalSignature', 'keyCertSign'] }],
    ['e_ca_key_cert_sign', { isCa: true, keyUsage: ['digitalSignature'] }],
    ['e_key_usage_present', { keyUsage: [] }],
    ['e_ec_no_key_encipherment', { keyUsage: ['digitalSignature', 'keyEncipherment'] }],
    ['e_eddsa_key_usage', { key: { type: 'ed25519', bits: 256 }, keyUsage: ['digitalSignature', 'keyAgreement'] }],
    ['e_rsa_no_key_agreement', { key: { type: 'rsa', bits: 2048, exponent: 65537n, modulus: Buffer.alloc(256, 0xcb) }, keyUsage: ['keyAgreement'] }],
    ['e_rsa_mod_at_least_2048', { key: { type: 'rsa', bits: 1024, exponent: 65537n, modulus: Buffer.alloc(128, 0xcb) } }],
    ['e_san_if_subject_empty', { subjectEmpty: true, subjectCn: undefined }],
    ['e_cn_max_length', { subjectCn: 'x'.repeat(65) }],
    ['e_ocsp_nocheck_needs_ocsp_signing', { ocspNoCheck: true }],
    ['e_distribution_urls_http', { urls: ['ldap://dir/crl'] }],
  ];
  for (const [name, over] of failing) {
    it(`${name}/fails`, () => {
      const problems = runLints({ ...base, ...over });
      expect(problems.some((p) => p.startsWith(`${name} (`))).toBe(true);
    });
    it(`${name}/can be disabled by the profile`, () => {
      expect(runLints({ ...base, ...over }, [name]).some((p) => p.startsWith(`${name} (`))).toBe(false);
    });
  }
});
