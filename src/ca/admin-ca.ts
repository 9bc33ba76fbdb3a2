/**
 * The admin CA: a self-signed P-256 root of its own that signs only client certificates of the
 * admin API (`fleetca admin-cert …`). It is apart from the device hierarchy on purpose: a NAC, or
 * anything else that trusts the device root, can never be made to accept an admin certificate, and
 * a device certificate can never authenticate to the admin API.
 *
 * It is created on first use. Its key is an encrypted file in the key store (like the issuer keys,
 * under ADMIN_CA_KEY); its certificate is in the database (`admin_ca`), so every server instance
 * verifies admin certificates, while only the data dir holding the key can issue them. It is not an
 * issuer: no CRL, no OCSP, no EST cacerts, no NAC export. An admin certificate is revoked by its
 * database row, which the server reads on every request.
 *
 * Issuance follows the pipeline of issuance.ts in small: serial reserved under a unique key before
 * anything is signed, lints, audit before and after the signature, the signed TBS compared with the
 * linted one, the certificate stored before it is returned.
 */
import crypto, { type KeyObject } from 'node:crypto';
import { badCsr, badRequest, conflict, CaError, internal, notFound, unavailable } from '../core/errors.js';
import type { Clock, RandomBytes } from '../core/clock.js';
import { normalizeSerial } from '../core/ids.js';
import { assembleCertificate, buildTbsCertificate, compileCertTemplate, subjectKeyIdFromSpki, type CertTemplate } from '../pki/cert-template.js';
import { certificateParts, extractTbs } from '../pki/cert-parts.js';
import { encodeName, type RdnAttribute } from '../pki/names.js';
import { generateSerial, serialToHex } from '../pki/serial.js';
import { parseSpki, type KeyInfo } from '../pki/spki.js';
import { checkWeakKey } from '../pki/weak-keys.js';
import { generateKeyPairAsync, spkiOf } from '../signing/keys.js';
import type { CryptoEngine } from '../signing/crypto-pool.js';
import type { KeyStore } from '../signing/key-store.js';
import type { Signer } from '../signing/signer.js';
import { runLints, type CertificateDraft } from './lints.js';
import type { AdminCaRecord, AdminCertificate, AdminCertStore, ApiRole, AuditStore } from './ports.js';

/** The key store name of the admin CA key (next to the issuer and service keys). */
export const ADMIN_CA_KEY = 'admin-client-ca';
/** The admin CA's common name. */
export const ADMIN_CA_CN = 'fleetca Admin Client CA';

const DAY = 86_400_000;
/** Validity of the admin CA itself. */
const ADMIN_CA_VALIDITY_MS = 10 * 365 * DAY;
/** Longest validity of an admin certificate: admin credentials are meant to be renewed. */
export const ADMIN_CERT_MAX_VALIDITY_MS = 365 * DAY;
/** notBefore this far in the past, for clocks of CLI host and server instances a little apart. */
const BACKDATE_MS = 60_000;

/** Admin certificate names: like token names, they become the CN and the actor `cert:<name>`. */
export const ADMIN_CERT_NAME_RE = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const ROLES: readonly ApiRole[] = ['admin', 'operator', 'factory', 'auditor', 'nac'];

export interface AdminCaDeps {
  store: AdminCertStore & Pick<AuditStore, 'appendAudit'>;
  keys: KeyStore;
  crypto: CryptoEngine;
  clock: Clock;
  /** The O of the admin CA's and its certificates' subject (the root's, when it has one). */
  organization?: string;
  /** Issuer names of the configuration: the admin CA key must not share a key file name with one. */
  issuerNames: readonly string[];
  random?: RandomBytes;
}

/** The admin CA as the issuance code needs it. */
export interface AdminCa {
  record: AdminCaRecord;
  /** Its subject Name, copied byte-for-byte into the issuer of what it signs (RFC 5280 §4.1.2.4). */
  subjectDer: Buffer;
  spkiDer: Buffer;
  ski: Buffer;
  /** Whether this call created it. */
  created: boolean;
}

function wholeSeconds(ms: number): Date {
  return new Date(Math.floor(ms / 1000) * 1000);
}

function adminCaOf(record: AdminCaRecord, created: boolean): AdminCa {
  const parts = certificateParts(record.certDer);
  return { record, subjectDer: parts.subjectDer, spkiDer: parts.spkiDer, ski: subjectKeyIdFromSpki(parts.spkiDer), created };
}

function orgAttr(org: string | undefined): RdnAttribute[] {
  return org ? [{ type: 'O', oid: '2.5.4.10', value: org }] : [];
}

/** Signs a TBS once, assembles it, and checks that what was signed is what was linted. */
async function signOnce(signer: Signer, tbs: Buffer, issuerSpki: Buffer): Promise<Buffer> {
  const der = assembleCertificate(tbs, signer.algorithm, await signer.sign(tbs));
  // re-parse: the signed TBS must be the linted one, and the signature must verify
  if (!extractTbs(der).equals(tbs)) throw internal('the signed TBSCertificate differs from the linted one');
  const x = new crypto.X509Certificate(der);
  if (!x.verify(crypto.createPublicKey({ key: issuerSpki, format: 'der', type: 'spki' }))) throw internal('the new certificate does not verify with its issuer key');
  return der;
}

function lintOrThrow(d: CertificateDraft): void {
  const problems = runLints(d);
  if (problems.length > 0) throw internal(`pre-issuance lints failed: ${problems.join('; ')}`);
}

/** The stored admin CA, or null when none was created yet. */
export async function getAdminCa(store: Pick<AdminCertStore, 'getAdminCa'>): Promise<AdminCa | null> {
  const r = await store.getAdminCa();
  return r ? adminCaOf(r, false) : null;
}

/**
 * The admin CA, created when there is none: a P-256 key saved (encrypted) in the key store, a
 * self-signed certificate stored in the database. A key left by an interrupted creation is reused.
 */
export async function ensureAdminCa(deps: AdminCaDeps, actor: string): Promise<AdminCa> {
  const existing = await deps.store.getAdminCa();
  if (existing) return adminCaOf(existing, false);
  if (deps.issuerNames.includes(ADMIN_CA_KEY)) throw internal(`an issuer is named ${ADMIN_CA_KEY}, the key file name of the admin CA; rename the issuer`);
  let key = deps.keys.load(ADMIN_CA_KEY);
  if (!key) {
    key = (await generateKeyPairAsync('P-256')).privateKey;
    deps.keys.save(ADMIN_CA_KEY, key);
  }
  const signer = await deps.crypto.addKey(ADMIN_CA_KEY, key);
  const spki = spkiOf(key);
  const ski = subjectKeyIdFromSpki(spki);
  const subject = encodeName([...orgAttr(deps.organization), { type: 'CN', oid: '2.5.4.3', value: ADMIN_CA_CN }]);
  const template = compileCertTemplate({
    issuerNameDer: subject,
    authorityKeyId: ski,
    signatureAlgorithm: signer.algorithm,
    // signs end-entity certificates only, and no CRLs (revocation is the database row)
    basicConstraints: { ca: true, pathLen: 0 },
    keyUsage: ['keyCertSign'],
  });
  const now = deps.clock.now();
  const notBefore = wholeSeconds(now.getTime());
  const notAfter = wholeSeconds(now.getTime() + ADMIN_CA_VALIDITY_MS);
  const serial = generateSerial(deps.random ?? crypto.randomBytes);
  lintOrThrow({
    serial,
    notBefore,
    notAfter,
    issuerNotBefore: notBefore,
    issuerNotAfter: notAfter,
    isCa: true,
    keyUsage: ['keyCertSign'],
    extendedKeyUsage: [],
    subjectCn: ADMIN_CA_CN,
    subjectEmpty: false,
    sans: [],
    key: parseSpki(spki).key,
    ocspNoCheck: false,
    urls: [],
    maxValidityMs: ADMIN_CA_VALIDITY_MS,
  });
  const tbs = buildTbsCertificate(template, { serial, notBefore, notAfter, subjectDer: subject, spkiDer: spki, subjectKeyId: ski });
  await deps.store.appendAudit([{ at: now, actor, action: 'admin-ca.sign.begin', target: ADMIN_CA_KEY, details: { serial: serialToHex(serial) } }]);
  const der = await signOnce(signer, tbs, spki);
  const stored = await deps.store.saveAdminCa(
    { certDer: der, notBefore, notAfter, createdAt: now, createdBy: actor },
    { at: now, actor, action: 'admin-ca.created', target: ADMIN_CA_KEY, details: { serial: serialToHex(serial), sha256: crypto.createHash('sha256').update(der).digest('hex') } },
  );
  const ca = adminCaOf(stored, stored.certDer.equals(der));
  // another process created it at the same moment: fine if with the same key (it found ours)
  if (!ca.spkiDer.equals(spki)) throw internal('the admin CA was created concurrently with another key; run the command again');
  return ca;
}

/** The admin CA's signer; the key lives only in the data dir that created the admin CA. */
async function adminCaSigner(deps: AdminCaDeps, ca: AdminCa): Promise<Signer> {
  const key: KeyObject | null = deps.keys.load(ADMIN_CA_KEY);
  if (!key) throw unavailable('the admin CA key is not in this data dir: issue admin certificates on the host that created the admin CA');
  if (!spkiOf(key).equals(ca.spkiDer)) throw internal('the admin CA key in this data dir does not match the admin CA certificate in the database');
  return deps.crypto.addKey(ADMIN_CA_KEY, key);
}

function assertAcceptableKey(key: KeyInfo): void {
  const ok =
    (key.type === 'ec' && (key.curve === 'P-256' || key.curve === 'P-384')) ||
    (key.type === 'rsa' && key.bits >= 2048 && key.bits <= 8192) ||
    key.type === 'ed25519';
  if (!ok) throw badCsr(`an admin certificate key must be EC P-256/P-384, RSA 2048–8192 or Ed25519 (got ${key.type}${'curve' in key ? ` ${key.curve}` : ` ${key.bits} bits`})`);
  const weak = checkWeakKey(key);
  if (weak) throw badCsr(`the key is weak: ${weak}`);
}

/** What `issueAdminCertificate` is asked for. */
export interface AdminCertRequest {
  name: string;
  role: ApiRole;
  validityMs: number;
  /** The admin's own CSR (its signature is checked: proof of possession), or a public key generated here. */
  publicKey: { csrDer: Buffer } | { spkiDer: Buffer };
  actor: string;
}

/**
 * Issues an admin client certificate (CN = name, EKU clientAuth) and records it. One name may hold
 * several live certificates (to overlap a renewal), all with the same role.
 */
export async function issueAdminCertificate(deps: AdminCaDeps, req: AdminCertRequest): Promise<{ record: AdminCertificate; der: Buffer; ca: AdminCa }> {
  if (!ADMIN_CERT_NAME_RE.test(req.name)) throw badRequest('an admin certificate name is 1–63 lower-case letters, digits, dots, dashes or underscores');
  if (!ROLES.includes(req.role)) throw badRequest(`unknown role ${String(req.role)} (roles: ${ROLES.join(', ')})`);
  if (!Number.isFinite(req.validityMs) || req.validityMs < 1000 || req.validityMs > ADMIN_CERT_MAX_VALIDITY_MS) {
    throw badRequest(`the validity of an admin certificate is 1 s to ${ADMIN_CERT_MAX_VALIDITY_MS / DAY} days`);
  }
  let spkiDer: Buffer;
  if ('csrDer' in req.publicKey) {
    const v = await deps.crypto.verifyCsr(req.publicKey.csrDer);
    if (!v.signatureValid) throw badCsr('the CSR signature does not verify (no proof of possession of the key)');
    spkiDer = v.csr.spkiDer;
  } else {
    spkiDer = req.publicKey.spkiDer;
  }
  let key: KeyInfo;
  try {
    key = parseSpki(spkiDer).key;
  } catch (e) {
    throw badCsr('the public key is malformed', e);
  }
  assertAcceptableKey(key);

  const ca = await ensureAdminCa(deps, req.actor);
  const signer = await adminCaSigner(deps, ca);
  const now = deps.clock.now();
  const live = (await deps.store.listAdminCertificates({ name: req.name })).filter((c) => c.revokedAt === null && c.certDer !== null && c.notAfter.getTime() > now.getTime());
  const other = live.find((c) => c.role !== req.role);
  if (other) throw conflict(`${req.name} already holds a live ${other.role} certificate (serial ${other.serial}); revoke it before issuing one with role ${req.role}`);

  const notBefore = wholeSeconds(Math.max(now.getTime() - BACKDATE_MS, ca.record.notBefore.getTime()));
  const notAfter = wholeSeconds(now.getTime() + req.validityMs);
  if (notAfter.getTime() > ca.record.notAfter.getTime()) throw badRequest(`the admin CA expires ${ca.record.notAfter.toISOString()}: choose a shorter validity`);
  const subjectCn = req.name;
  const subject = encodeName([...orgAttr(deps.organization), { type: 'CN', oid: '2.5.4.3', value: subjectCn }]);
  const template: CertTemplate = compileCertTemplate({
    issuerNameDer: ca.subjectDer,
    authorityKeyId: ca.ski,
    signatureAlgorithm: signer.algorithm,
    basicConstraints: { ca: false },
    keyUsage: ['digitalSignature'],
    // RFC 5280 §4.2.1.12: TLS WWW client authentication only
    extendedKeyUsage: ['clientAuth'],
  });

  // step 2 of the pipeline: the serial is reserved under its primary key before anything is signed
  let serial = generateSerial(deps.random ?? crypto.randomBytes);
  const reserve = (s: Buffer) =>
    deps.store.reserveAdminCertificate(
      { serial: serialToHex(s), name: req.name, role: req.role, notBefore, notAfter, createdAt: now, createdBy: req.actor },
      { at: now, actor: req.actor, action: 'admin-cert.sign.begin', target: req.name, details: { serial: serialToHex(s), role: req.role } },
    );
  try {
    await reserve(serial);
  } catch (e) {
    if (!(e instanceof CaError && e.kind === 'conflict')) throw e;
    serial = generateSerial(deps.random ?? crypto.randomBytes); // a collision: one new serial, once
    await reserve(serial);
  }

  lintOrThrow({
    serial,
    notBefore,
    notAfter,
    issuerNotBefore: ca.record.notBefore,
    issuerNotAfter: ca.record.notAfter,
    isCa: false,
    keyUsage: ['digitalSignature'],
    extendedKeyUsage: ['clientAuth'],
    subjectCn,
    subjectEmpty: false,
    sans: [],
    key,
    ocspNoCheck: false,
    urls: [],
    maxValidityMs: ADMIN_CERT_MAX_VALIDITY_MS + BACKDATE_MS,
  });
  const tbs = buildTbsCertificate(template, { serial, notBefore, notAfter, subjectDer: subject, spkiDer });
  const der = await signOnce(signer, tbs, ca.spkiDer);
  const fingerprint = crypto.createHash('sha256').update(der).digest();
  const record = await deps.store.completeAdminCertificate(serialToHex(serial), der, fingerprint, {
    at: deps.clock.now(),
    actor: req.actor,
    action: 'admin-cert.issued',
    target: req.name,
    details: { serial: serialToHex(serial), role: req.role, not_after: notAfter.toISOString(), sha256: fingerprint.toString('hex') },
  });
  return { record, der, ca };
}

/**
 * Revokes by name (every unrevoked certificate of it) or, when no certificate has that name, by
 * serial. From the next request on, the server refuses them (401).
 */
export async function revokeAdminCertificate(deps: { store: AdminCertStore; clock: Clock }, ref: string, actor: string): Promise<AdminCertificate[]> {
  const at = deps.clock.now();
  if (ADMIN_CERT_NAME_RE.test(ref)) {
    const byName = await deps.store.revokeAdminCertificates({ name: ref }, at, actor);
    if (byName.length > 0) return byName;
  }
  const serial = normalizeSerial(ref);
  if (serial) {
    const bySerial = await deps.store.revokeAdminCertificates({ serial }, at, actor);
    if (bySerial.length > 0) return bySerial;
  }
  throw notFound(`no unrevoked admin certificate named ${ref} or with that serial`);
}
