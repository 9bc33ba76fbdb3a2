/**
 * `fleetca init`: creates the CA hierarchy without prompts.
 *
 *   root (self-signed, can go offline)
 *   ├── device CA          operational device certificates (the NAC trusts it)
 *   │   ├── OCSP responder (id-kp-OCSPSigning + id-pkix-ocsp-nocheck)
 *   │   ├── SCEP RA        (RSA-2048)
 *   │   └── TLS server     (localhost, 127.0.0.1, configured names)
 *   └── manufacturing CA   IDevIDs (the NAC must never trust it)
 *       └── OCSP responder
 *
 * and publishes every CA's first CRL, so relying parties never see "no CRL".
 */
import crypto from 'node:crypto';
import { conflict, internal } from '../core/errors.js';
import type { Clock, RandomBytes } from '../core/clock.js';
import type { CaKeyType, FleetcaConfig, IssuerSettings } from '../config/schema.js';
import { assembleCertificate, buildTbsCertificate, compileCertTemplate, subjectKeyIdFromSpki } from '../pki/cert-template.js';
import { parseSpki } from '../pki/spki.js';
import { encodeName, type RdnAttribute, type SanEntry } from '../pki/names.js';
import { generateSerial } from '../pki/serial.js';
import { generateKeyPair, spkiOf, type GeneratedKeyType } from '../signing/keys.js';
import type { CryptoEngine } from '../signing/crypto-pool.js';
import type { Signer } from '../signing/signer.js';
import type { KeyStore } from '../signing/key-store.js';
import { CertificateAuthority, type IssuedCertificate } from './issuance.js';
import { buildIssuerRuntime, type IssuerRuntime } from './issuers.js';
import { crlSettingsOf, publishCrls } from './crl.js';
import type { CaStore, CrlStore, IssuerStore } from './ports.js';

export interface BootstrapDeps {
  config: FleetcaConfig;
  store: CaStore & CrlStore;
  crypto: CryptoEngine;
  keys: KeyStore;
  clock: Clock;
  publicUrl: string;
  random?: RandomBytes;
}

export interface ServiceCertificate {
  name: string;
  keyName: string;
  cert: IssuedCertificate;
}

export interface BootstrapResult {
  issuers: Map<string, IssuerRuntime>;
  services: ServiceCertificate[];
}

const ACTOR = 'init';

export function subjectAttrs(s: IssuerSettings['subject']): RdnAttribute[] {
  const out: RdnAttribute[] = [];
  if (s.C) out.push({ type: 'C', oid: '2.5.4.6', value: s.C });
  if (s.O) out.push({ type: 'O', oid: '2.5.4.10', value: s.O });
  if (s.OU) out.push({ type: 'OU', oid: '2.5.4.11', value: s.OU });
  out.push({ type: 'CN', oid: '2.5.4.3', value: s.CN });
  return out;
}

function caKeyType(t: CaKeyType): GeneratedKeyType {
  return t;
}

/** Service key names on disk, next to the issuer keys. */
export const SERVICE_KEYS = {
  ocsp: (issuer: string) => `ocsp-${issuer}`,
  scepRa: 'scep-ra',
  /** The SCEP RA a renewal replaced, kept while its certificate is valid (envelopes still addressed to it). */
  scepRaPrevious: 'scep-ra-previous',
  tlsServer: 'tls-server',
} as const;

/** A self-signed root certificate (init and root rollover): CA:TRUE, keyCertSign + cRLSign, AKI = SKI. */
export async function selfSignedRoot(
  signer: Signer,
  spkiDer: Buffer,
  subject: RdnAttribute[],
  now: Date,
  validityMs: number,
  random: RandomBytes,
): Promise<{ der: Buffer; ski: Buffer; notAfter: Date }> {
  const subjectDer = encodeName(subject);
  const ski = subjectKeyIdFromSpki(spkiDer);
  const template = compileCertTemplate({
    issuerNameDer: subjectDer,
    authorityKeyId: ski,
    signatureAlgorithm: signer.algorithm,
    basicConstraints: { ca: true },
    keyUsage: ['digitalSignature', 'keyCertSign', 'cRLSign'],
  });
  const notAfter = new Date(now.getTime() + validityMs);
  const tbs = buildTbsCertificate(template, { serial: generateSerial(random), notBefore: now, notAfter, subjectDer, spkiDer, subjectKeyId: ski });
  return { der: assembleCertificate(tbs, signer.algorithm, await signer.sign(tbs)), ski, notAfter };
}

/**
 * A new issuing CA under `parentName` (init, and rollover): a key of the issuer's key type, its
 * certificate through the core pipeline, the key saved (encrypted), the issuer recorded.
 */
export async function createIssuingCa(
  deps: { ca: CertificateAuthority; store: IssuerStore; crypto: CryptoEngine; keys: KeyStore; publicUrl: string },
  req: { name: string; settings: IssuerSettings; parentName: string; subject: RdnAttribute[]; actor: string; lineage?: string; activatesAt?: Date },
): Promise<{ issuer: IssuerRuntime; issued: IssuedCertificate }> {
  const kp = generateKeyPair(caKeyType(req.settings.keyType));
  const spki = spkiOf(kp.publicKey);
  const issued = await deps.ca.issueCaCertificate({
    parentName: req.parentName,
    subject: req.subject,
    spkiDer: spki,
    key: parseSpki(spki).key,
    ...(req.settings.pathLen !== undefined ? { pathLen: req.settings.pathLen } : {}),
    validityMs: req.settings.validity,
    actor: req.actor,
  });
  deps.keys.save(req.name, kp.privateKey);
  const record = await deps.store.upsertIssuer({
    name: req.name,
    role: req.settings.role,
    certDer: issued.der,
    ski: subjectKeyIdFromSpki(spki),
    notBefore: issued.notBefore,
    notAfter: issued.notAfter,
    active: true,
    ...(req.lineage !== undefined ? { lineage: req.lineage } : {}),
    ...(req.activatesAt !== undefined ? { activatesAt: req.activatesAt } : {}),
  });
  return { issuer: buildIssuerRuntime(record, await deps.crypto.addKey(req.name, kp.privateKey), deps.publicUrl), issued };
}

export async function initHierarchy(deps: BootstrapDeps): Promise<BootstrapResult> {
  const { config, store, clock } = deps;
  const random = deps.random ?? crypto.randomBytes;
  if ((await store.listIssuers()).length > 0) throw conflict('this database already holds a CA hierarchy (init runs once)');
  const entries = Object.entries(config.settings.issuers);
  const rootEntry = entries.find(([, i]) => i.role === 'root');
  if (!rootEntry) throw internal('no root issuer in the configuration');
  const [rootName, rootSettings] = rootEntry;
  const issuers = new Map<string, IssuerRuntime>();
  const now = clock.now();
  now.setUTCMilliseconds(0);

  // ---- root: self-signed, built and signed here (there is no issuer above it)
  const rootKey = generateKeyPair(caKeyType(rootSettings.keyType));
  const rootSigner = await deps.crypto.addKey(rootName, rootKey.privateKey);
  await store.appendAudit([{ at: now, actor: ACTOR, action: 'ca.root.sign.begin', target: rootName, details: {} }]);
  const self = await selfSignedRoot(rootSigner, spkiOf(rootKey.publicKey), subjectAttrs(rootSettings.subject), now, rootSettings.validity, random);
  deps.keys.save(rootName, rootKey.privateKey);
  const rootRecord = await store.upsertIssuer({
    name: rootName,
    role: 'root',
    certDer: self.der,
    ski: self.ski,
    notBefore: now,
    notAfter: self.notAfter,
    active: true,
  });
  await store.appendAudit([{ at: now, actor: ACTOR, action: 'ca.root.created', target: rootName, details: {} }]);
  issuers.set(rootName, buildIssuerRuntime(rootRecord, rootSigner, deps.publicUrl));

  // ---- issuing CAs under the root, through the core pipeline
  const rootOnlyCa = new CertificateAuthority({ config, store, crypto: deps.crypto, issuers, clock, random });
  for (const [name, s] of entries) {
    if (s.role === 'root') continue;
    const { issuer } = await createIssuingCa(
      { ca: rootOnlyCa, store, crypto: deps.crypto, keys: deps.keys, publicUrl: deps.publicUrl },
      { name, settings: s, parentName: rootName, subject: subjectAttrs(s.subject), actor: ACTOR },
    );
    issuers.set(name, issuer);
  }

  // ---- service certificates, from the full hierarchy
  const ca = new CertificateAuthority({ config, store, crypto: deps.crypto, issuers, clock, random });
  const sys = config.settings.systemProfiles;
  const services: ServiceCertificate[] = [];
  const serviceCert = async (
    name: string,
    keyType: GeneratedKeyType,
    profile: string,
    subject: RdnAttribute[],
    sans: SanEntry[],
    issuerName?: string,
  ) => {
    const { key, cert } = await ca.issueServiceKey({ keyType, profile, ...(issuerName ? { issuerName } : {}), subject, sans, actor: ACTOR, via: 'init' });
    deps.keys.save(name, key);
    services.push({ name, keyName: name, cert });
  };
  const org = rootSettings.subject.O;
  const withOrg = (cn: string): RdnAttribute[] => [
    ...(org ? [{ type: 'O', oid: '2.5.4.10', value: org }] : []),
    { type: 'CN', oid: '2.5.4.3', value: cn },
  ];
  for (const [name, s] of entries) {
    if (s.role === 'root') continue;
    await serviceCert(SERVICE_KEYS.ocsp(name), 'P-256', sys.ocspResponder, [{ type: 'CN', oid: '2.5.4.3', value: `${s.subject.CN} OCSP Responder` }], [], name);
  }
  await serviceCert(SERVICE_KEYS.scepRa, 'rsa2048', sys.scepRa, withOrg('fleetca SCEP RA'), []);
  const tlsNames = ['localhost', '127.0.0.1', ...config.settings.server.tlsNames, new URL(deps.publicUrl).hostname];
  const sans: SanEntry[] = [];
  for (const n of tlsNames) {
    const type = /^[\d.]+$/.test(n) || n.includes(':') ? 'ip' : 'dns';
    const value = n.replace(/^\[|\]$/g, '');
    if (!sans.some((x) => x.value === value)) sans.push({ type, value });
  }
  await serviceCert(SERVICE_KEYS.tlsServer, 'P-256', sys.tlsServer, withOrg('localhost'), sans);

  // ---- every CA's first CRL
  for (const issuer of issuers.values()) {
    await publishCrls({ store, clock, settings: crlSettingsOf(config) }, issuer, { base: true, actor: ACTOR });
  }
  return { issuers, services };
}
