/**
 * Admin client certificates without a database: the admin CA and its certificates made by the CA
 * core (ca/admin-ca.ts) on an in-memory store, and the verification the admin API runs on a
 * presented certificate (enrollment/admin-certs.ts) — a certificate of another CA with the same
 * subject and key identifier, a CA certificate, expiry, revocation.
 */
import crypto, { X509Certificate, type KeyObject } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/core/clock.js';
import { CaError } from '../../src/core/errors.js';
import type { AdminCaRecord, AdminCertificate, AdminCertStore, AuditEntry, AuditStore, NewAdminCertificate } from '../../src/ca/ports.js';
import { ADMIN_CA_CN, ADMIN_CA_KEY, ensureAdminCa, issueAdminCertificate, revokeAdminCertificate, type AdminCaDeps } from '../../src/ca/admin-ca.js';
import { AdminCertAuthenticator, verifyAdminCertificate } from '../../src/enrollment/admin-certs.js';
import { InlineCryptoEngine } from '../../src/signing/crypto-pool.js';
import type { KeyStore } from '../../src/signing/key-store.js';
import { generateKeyPair, spkiOf } from '../../src/signing/keys.js';
import { assembleCertificate, buildTbsCertificate, compileCertTemplate, subjectKeyIdFromSpki } from '../../src/pki/cert-template.js';
import { certificateParts } from '../../src/pki/cert-parts.js';
import { encodeName } from '../../src/pki/names.js';
import { generateSerial } from '../../src/pki/serial.js';

const DAY = 86_400_000;
const T0 = new Date('2030-01-01T00:00:00Z');

/** The store port in memory: what PgStore does, without SQL. */
class MemoryStore implements AdminCertStore, Pick<AuditStore, 'appendAudit'> {
  ca: AdminCaRecord | null = null;
  certs = new Map<string, AdminCertificate>();
  audit: AuditEntry[] = [];
  async appendAudit(entries: AuditEntry[]) {
    this.audit.push(...entries);
  }
  async getAdminCa() {
    return this.ca;
  }
  async saveAdminCa(ca: AdminCaRecord, audit: AuditEntry) {
    if (!this.ca) {
      this.ca = ca;
      this.audit.push(audit);
    }
    return this.ca;
  }
  async reserveAdminCertificate(c: NewAdminCertificate, audit: AuditEntry) {
    if (this.certs.has(c.serial)) throw new CaError('conflict', 'serial in use');
    this.certs.set(c.serial, { ...c, fingerprint: null, certDer: null, revokedAt: null, revokedBy: null });
    this.audit.push(audit);
  }
  async completeAdminCertificate(serial: string, certDer: Buffer, fingerprint: Buffer, audit: AuditEntry) {
    const c = this.certs.get(serial)!;
    Object.assign(c, { certDer, fingerprint });
    this.audit.push(audit);
    return c;
  }
  async findAdminCertificate(fp: Buffer) {
    return [...this.certs.values()].find((c) => c.fingerprint?.equals(fp)) ?? null;
  }
  async listAdminCertificates(f: { name?: string } = {}) {
    return [...this.certs.values()].filter((c) => f.name === undefined || c.name === f.name);
  }
  async revokeAdminCertificates(by: { name: string } | { serial: string }, at: Date, actor: string) {
    const hit = [...this.certs.values()].filter((c) => c.revokedAt === null && ('name' in by ? c.name === by.name : c.serial === by.serial));
    for (const c of hit) Object.assign(c, { revokedAt: at, revokedBy: actor });
    return hit;
  }
}

class MemoryKeys implements KeyStore {
  keys = new Map<string, KeyObject>();
  save(name: string, key: KeyObject) {
    this.keys.set(name, key);
    return name;
  }
  load(name: string) {
    return this.keys.get(name) ?? null;
  }
  has(name: string) {
    return this.keys.has(name);
  }
  remove(name: string) {
    this.keys.delete(name);
  }
  pathOf(name: string) {
    return name;
  }
}

let store: MemoryStore;
let keys: MemoryKeys;
let clock: FakeClock;
let deps: AdminCaDeps;
let adminCa: X509Certificate;

function p256Spki(): Buffer {
  return spkiOf(generateKeyPair('P-256').publicKey);
}

/** A CA of our own with the admin CA's exact subject and key identifier, but another key. */
function impostorLeaf(opts: { sameSki: boolean }): Buffer {
  const real = certificateParts(adminCa.raw);
  const kp = generateKeyPair('P-256');
  const ski = opts.sameSki ? subjectKeyIdFromSpki(real.spkiDer) : subjectKeyIdFromSpki(spkiOf(kp.publicKey));
  const t = compileCertTemplate({ issuerNameDer: real.subjectDer, authorityKeyId: ski, signatureAlgorithm: 'ecdsa-sha256', basicConstraints: { ca: false }, keyUsage: ['digitalSignature'], extendedKeyUsage: ['clientAuth'] });
  const tbs = buildTbsCertificate(t, { serial: generateSerial(crypto.randomBytes), notBefore: T0, notAfter: new Date(T0.getTime() + 30 * DAY), subjectDer: encodeName([{ type: 'CN', oid: '2.5.4.3', value: 'ops' }]), spkiDer: p256Spki() });
  return assembleCertificate(tbs, 'ecdsa-sha256', crypto.sign('sha256', tbs, kp.privateKey));
}

beforeAll(async () => {
  store = new MemoryStore();
  keys = new MemoryKeys();
  // the admin CA a day old, so that a certificate's notBefore can be backdated
  clock = new FakeClock(T0.getTime() - DAY);
  deps = { store, keys, crypto: new InlineCryptoEngine(), clock, issuerNames: ['root', 'device-ca'], organization: 'fleetca' };
  const ca = await ensureAdminCa(deps, 'test');
  expect(ca.created).toBe(true);
  clock.set(T0);
  adminCa = new X509Certificate(ca.record.certDer);
});

describe('the admin CA', () => {
  it('is a self-signed P-256 CA (pathLen 0) with its own subject, its key in the key store; a second call returns it', async () => {
    expect(adminCa.subject).toBe(`O=fleetca\nCN=${ADMIN_CA_CN}`);
    expect(adminCa.issuer).toBe(adminCa.subject);
    expect(adminCa.ca).toBe(true);
    expect(adminCa.verify(adminCa.publicKey)).toBe(true);
    expect(adminCa.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(spkiOf(keys.load(ADMIN_CA_KEY)!).equals(spkiOf(adminCa.publicKey))).toBe(true);
    const again = await ensureAdminCa(deps, 'test');
    expect(again.created).toBe(false);
    expect(again.record.certDer.equals(adminCa.raw)).toBe(true);
    expect(store.audit.map((a) => a.action)).toEqual(['admin-ca.sign.begin', 'admin-ca.created']);
  });

  it('refuses to start when an issuer already uses its key file name', async () => {
    await expect(ensureAdminCa({ ...deps, store: new MemoryStore(), issuerNames: [ADMIN_CA_KEY] }, 'test')).rejects.toMatchObject({ kind: 'internal' });
  });
});

describe('issuing', () => {
  it('an operator certificate: CN = name, EKU clientAuth, not a CA, backdated a minute; audit before and after the signature', async () => {
    const before = store.audit.length;
    const r = await issueAdminCertificate(deps, { name: 'ops', role: 'operator', validityMs: 90 * DAY, publicKey: { spkiDer: p256Spki() }, actor: 'test' });
    const x = new X509Certificate(r.der);
    expect(x.subject).toBe('O=fleetca\nCN=ops');
    expect(x.checkIssued(adminCa)).toBe(true);
    expect(x.ca).toBe(false);
    expect(x.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']);
    expect(new Date(x.validFrom).getTime()).toBe(T0.getTime() - 60_000);
    expect(new Date(x.validTo).getTime()).toBe(T0.getTime() + 90 * DAY);
    expect(r.record.fingerprint!.equals(crypto.createHash('sha256').update(r.der).digest())).toBe(true);
    expect(store.audit.slice(before).map((a) => a.action)).toEqual(['admin-cert.sign.begin', 'admin-cert.issued']);
  });

  it('refuses a bad name, a validity over a year, a CSR whose signature does not verify, a small RSA key, and a second live role for one name', async () => {
    const base = { role: 'operator' as const, validityMs: DAY, publicKey: { spkiDer: p256Spki() }, actor: 'test' };
    await expect(issueAdminCertificate(deps, { ...base, name: 'Bad Name' })).rejects.toMatchObject({ kind: 'badRequest' });
    await expect(issueAdminCertificate(deps, { ...base, name: 'x', validityMs: 400 * DAY })).rejects.toMatchObject({ kind: 'badRequest' });
    const kp = crypto.generateKeyPairSync('rsa', { modulusLength: 1024 });
    await expect(issueAdminCertificate(deps, { ...base, name: 'x', publicKey: { spkiDer: spkiOf(kp.publicKey) } })).rejects.toMatchObject({ kind: 'badCsr' });
    await expect(issueAdminCertificate(deps, { ...base, name: 'x', publicKey: { csrDer: Buffer.from('3000', 'hex') } })).rejects.toMatchObject({ kind: 'badCsr' });
    await expect(issueAdminCertificate(deps, { ...base, name: 'ops', role: 'admin' })).rejects.toMatchObject({ kind: 'conflict' });
  });
});

describe('verifyAdminCertificate', () => {
  let good: Buffer;
  beforeAll(async () => {
    good = (await issueAdminCertificate(deps, { name: 'verify-me', role: 'auditor', validityMs: 30 * DAY, publicKey: { spkiDer: p256Spki() }, actor: 'test' })).der;
  });

  it.each([
    ['ok: within validity', () => good, T0, null],
    ['not-yet-valid: two minutes before issuance', () => good, new Date(T0.getTime() - 120_000), 'not-yet-valid'],
    ['ok: the last second of notAfter', () => good, new Date(T0.getTime() + 30 * DAY), null],
    ['expired: one second after notAfter', () => good, new Date(T0.getTime() + 30 * DAY + 1000), 'expired'],
    ['bad-signature: another CA with the same subject and key identifier', () => impostorLeaf({ sameSki: true }), T0, 'bad-signature'],
    ['wrong-issuer: another CA with the same subject, its own key identifier', () => impostorLeaf({ sameSki: false }), T0, 'wrong-issuer'],
    ['ca-certificate: the admin CA itself', () => adminCa.raw, T0, 'ca-certificate'],
    ['malformed: not a certificate', () => Buffer.from('30030201ff', 'hex'), T0, 'malformed'],
  ] as const)('%s', (_name, der, now, reason) => {
    const v = verifyAdminCertificate(der(), adminCa, now);
    if (reason === null) expect(v.ok).toBe(true);
    else expect(v).toEqual({ ok: false, reason });
  });
});

describe('AdminCertAuthenticator', () => {
  it('known → name and role; unknown, revoked, expired → refused with the reason; no admin CA yet → refused', async () => {
    const auth = new AdminCertAuthenticator({ store, clock });
    const r = await issueAdminCertificate(deps, { name: 'auth-me', role: 'nac', validityMs: 10 * DAY, publicKey: { spkiDer: p256Spki() }, actor: 'test' });
    expect(await auth.authenticate(r.der)).toEqual({ ok: true, name: 'auth-me', role: 'nac', serial: r.record.serial });
    // signed by the admin CA but not in the table (e.g. a row deleted by hand)
    const unknown = (await issueAdminCertificate(deps, { name: 'gone-row', role: 'nac', validityMs: DAY, publicKey: { spkiDer: p256Spki() }, actor: 'test' })).der;
    store.certs.delete([...store.certs.values()].find((c) => c.name === 'gone-row')!.serial);
    expect(await auth.authenticate(unknown)).toEqual({ ok: false, reason: 'unknown' });
    expect(await auth.authenticate(impostorLeaf({ sameSki: true }))).toEqual({ ok: false, reason: 'bad-signature' });
    clock.advance(11 * DAY);
    expect(await auth.authenticate(r.der)).toEqual({ ok: false, reason: 'expired' });
    clock.set(T0);
    await revokeAdminCertificate({ store, clock }, r.record.serial, 'test');
    expect(await auth.authenticate(r.der)).toEqual({ ok: false, reason: 'revoked' });
    expect(await new AdminCertAuthenticator({ store: new MemoryStore(), clock }).authenticate(r.der)).toEqual({ ok: false, reason: 'no-admin-ca' });
  });

  it('revoke by name takes every live certificate of the name; an unknown reference → notFound', async () => {
    await issueAdminCertificate(deps, { name: 'twice', role: 'auditor', validityMs: DAY, publicKey: { spkiDer: p256Spki() }, actor: 'test' });
    await issueAdminCertificate(deps, { name: 'twice', role: 'auditor', validityMs: DAY, publicKey: { spkiDer: p256Spki() }, actor: 'test' });
    expect((await revokeAdminCertificate({ store, clock }, 'twice', 'test')).length).toBe(2);
    await expect(revokeAdminCertificate({ store, clock }, 'twice', 'test')).rejects.toMatchObject({ kind: 'notFound' });
  });
});
