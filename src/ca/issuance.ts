/**
 * THE CORE: the only code that signs certificates. Every certificate, from a device CSR to the
 * CA's own service certificates, goes through one pipeline (ARCHITECTURE.md "never sign twice,
 * never lose a certificate"):
 *
 *   1. authorize + validate the CSR against the profile (pure policy)      → evaluatePolicy
 *   2. reserve a serial under a UNIQUE key                                    ┐ one durable write
 *   3. build the TBSCertificate DER, run the lints, record the intent        ┘ (recordIntent)
 *   4. sign exactly once; the signed TBS must equal the linted one
 *   5. store the certificate and mark the intent issued in one transaction, THEN return it
 *   6. audit before (with the intent) and after (with the certificate) the signature
 *
 * A crash between 4 and 5 leaves a pending intent; `reconcilePendingIntents` (run at start-up)
 * marks it failed. Nothing is returned that the database does not hold.
 */
import crypto from 'node:crypto';
import {
  CaError,
  badCsr,
  forbidden,
  internal,
  notFound,
  policyRejected,
  toCaError,
  unavailable,
  type CaErrorKind,
} from '../core/errors.js';
import type { Clock, RandomBytes } from '../core/clock.js';
import { DEVICE_ID_RE } from '../core/ids.js';
import type { FleetcaConfig, Profile } from '../config/schema.js';
import {
  assembleCertificate,
  buildTbsCertificate,
  compileCertTemplate,
  type CertTemplate,
  type KeyUsageName,
} from '../pki/cert-template.js';
import { spkiSha256, type DecodedCsr, type KeyInfo } from '../pki/csr.js';
import { encodeName, type RdnAttribute, type SanEntry, formatName } from '../pki/names.js';
import { generateSerial, serialToHex } from '../pki/serial.js';
import { certificateParts, extractTbs } from '../pki/cert-parts.js';
import type { CryptoEngine } from '../signing/crypto-pool.js';
import { generateKeyPairAsync, spkiOf, type GeneratedKeyType } from '../signing/keys.js';
import { parseSpki } from '../pki/spki.js';
import type { KeyObject } from 'node:crypto';
import { currentIssuer, type IssuerRuntime } from './issuers.js';
import { runLints, type CertificateDraft } from './lints.js';
import { shardCrlUrl } from './urls.js';
import { assertRevocationInput, crlEntryOf } from './revocation.js';
import { evaluatePolicy, keyUsageFor, type KeyFamily, type PolicyDecision } from './policy.js';
import type {
  AuditEntry,
  CaStore,
  CertificateRecord,
  DeviceRecord,
  IssuanceContext,
  LinkCertificate,
  RevocationReason,
} from './ports.js';

/** How a caller proves possession of the key being certified. */
export type PopMethod = 'csr' | 'factory' | 'server' | 'ca' | 'renewal';

export interface IssueFromCsrRequest {
  profile: string;
  deviceId: string;
  csrDer: Buffer;
  /** Who asks, for the audit log: `cli`, `est:basic:<device>`, `admin:<token>`. */
  actor: string;
  /** Which adapter: cli, est, scep, admin, batch. */
  via: string;
  /** Create the device record when it does not exist yet (CLI and factory batches). */
  createDevice?: boolean;
  /** The caller already holds an approval (an admin issuing by hand). */
  approved?: boolean;
  /** A pre-decoded and verified CSR (the protocol adapter may already have done it). */
  verified?: { csr: DecodedCsr; signatureValid: boolean };
  /** The factory batch asking (kept with the intent, so a resumed batch finds what it issued). */
  batch?: string;
}

export interface IssueForKeyRequest {
  profile: string;
  /** For `per-issuer` system profiles: which issuing CA signs. */
  issuerName?: string;
  deviceId: string | null;
  subject: RdnAttribute[];
  sans: SanEntry[];
  spkiDer: Buffer;
  key: KeyInfo;
  popMethod: Exclude<PopMethod, 'csr'>;
  actor: string;
  via: string;
  /** The factory batch asking (kept with the intent, so a resumed batch finds what it issued). */
  batch?: string;
}

export interface IssuedCertificate {
  serial: string;
  der: Buffer;
  issuerName: string;
  /** Issuer chain, issuing CA first, root last (DER). */
  chain: Buffer[];
  profile: string;
  deviceId: string | null;
  notBefore: Date;
  notAfter: Date;
}

/** Fault injection for the crash tests: called between signing and commit. */
export interface PipelineFaults {
  afterSign?: () => void;
}

export interface CaDeps {
  config: FleetcaConfig;
  store: CaStore;
  crypto: CryptoEngine;
  /** Grows when a rollover adds a CA (addIssuer); never shrinks. */
  issuers: Map<string, IssuerRuntime>;
  clock: Clock;
  random?: RandomBytes;
  faults?: PipelineFaults;
}

/** The parts of a profile the pipeline itself needs (CA certificates have no profile file). */
interface PipelineRules {
  name: string;
  validity: number;
  backdate: number;
  extendedKeyUsage: readonly string[];
  ocspNoCheck: boolean;
  lintDisable: readonly string[];
}

function rulesOf(profile: Profile): PipelineRules {
  return {
    name: profile.name,
    validity: profile.validity,
    backdate: profile.backdate,
    extendedKeyUsage: profile.extendedKeyUsage,
    ocspNoCheck: profile.ocspNoCheck,
    lintDisable: profile.lints.disable,
  };
}

interface PipelineInput {
  issuer: IssuerRuntime;
  profile: PipelineRules;
  /** The template for the CRL shard the certificate's CDP names (null: the full CRL). */
  template: (crlShard: number | null) => CertTemplate;
  subject: RdnAttribute[];
  sans: SanEntry[];
  spkiDer: Buffer;
  key: KeyInfo;
  keyUsage: readonly string[];
  deviceId: string | null;
  popMethod: PopMethod;
  actor: string;
  via: string;
  request: Record<string, unknown>;
  /** An advisory's cap on the device's next certificate (action shorten), ms. */
  maxValidityMs?: number | null;
}

export class CertificateAuthority {
  private readonly templates = new Map<string, CertTemplate>();
  private readonly random: RandomBytes;

  constructor(private readonly deps: CaDeps) {
    this.random = deps.random ?? crypto.randomBytes;
  }

  get issuers(): ReadonlyMap<string, IssuerRuntime> {
    return this.deps.issuers;
  }

  /** Root rollover link certificates (RFC 4210 §4.4) still valid, for EST cacerts. */
  private linkCerts: LinkCertificate[] = [];

  get links(): readonly LinkCertificate[] {
    return this.linkCerts;
  }

  setLinks(links: LinkCertificate[]): void {
    this.linkCerts = [...links];
  }

  /** Adds a CA made by a rollover (this process's or another's, announced by the store). */
  addIssuer(issuer: IssuerRuntime): void {
    if (this.deps.issuers.has(issuer.record.name)) return;
    this.deps.issuers.set(issuer.record.name, issuer);
  }

  /** The chain of an issuer: itself first, then up to the root. */
  chainOf(issuerName: string): Buffer[] {
    const issuer = this.deps.issuers.get(issuerName);
    if (!issuer) throw notFound(`no issuer ${issuerName}`);
    const chain = [issuer.record.certDer];
    if (issuer.record.role !== 'root') {
      // the root that signed it (after a root rollover there are two)
      const issuerDer = certificateParts(issuer.record.certDer).issuerDer;
      const root = [...this.deps.issuers.values()].find((i) => i.record.role === 'root' && i.subjectDer.equals(issuerDer));
      if (root) chain.push(root.record.certDer);
    }
    return chain;
  }

  profile(name: string): Profile {
    const p = this.deps.config.profiles.get(name);
    if (!p) throw notFound(`unknown profile "${name}" (known: ${[...this.deps.config.profiles.keys()].join(', ')})`);
    return p;
  }

  /**
   * The CA a profile issues from: `per-issuer` system profiles name the exact CA; device profiles
   * name a lineage (a ca.yaml issuer), served by its current CA — after a rollover the new one.
   */
  private issuerFor(profile: Profile, issuerName?: string): IssuerRuntime {
    const name = profile.issuer === 'per-issuer' ? issuerName : profile.issuer;
    if (!name) throw internal(`profile ${profile.name} needs an explicit issuer`);
    const issuer = profile.issuer === 'per-issuer' ? this.deps.issuers.get(name) : (currentIssuer(this.deps.issuers.values(), name, this.deps.clock.now()) ?? this.deps.issuers.get(name));
    if (!issuer) throw unavailable(`issuer ${name} is not loaded`);
    if (!issuer.signer) throw unavailable(`the key of issuer ${name} is offline`);
    return issuer;
  }

  private templateFor(issuer: IssuerRuntime, profile: Profile, family: KeyFamily, crlShard: number | null): CertTemplate {
    const key = `${issuer.record.name}|${profile.name}|${family}|${crlShard ?? ''}`;
    let t = this.templates.get(key);
    if (!t) {
      t = compileCertTemplate({
        issuerNameDer: issuer.subjectDer,
        authorityKeyId: issuer.record.ski,
        signatureAlgorithm: issuer.signer!.algorithm,
        basicConstraints: { ca: false },
        keyUsage: keyUsageFor(profile.keyUsage, family) as KeyUsageName[],
        extendedKeyUsage: profile.extendedKeyUsage.length ? [...profile.extendedKeyUsage] : undefined,
        crlDistributionPoint: crlShard === null ? issuer.urls.crl : shardCrlUrl(issuer.urls, crlShard),
        // an ocsp-nocheck responder certificate is never checked by OCSP: no OCSP URL in it
        ocspUrl: profile.ocspNoCheck ? undefined : issuer.urls.ocsp,
        caIssuersUrl: issuer.urls.caIssuers,
        ocspNoCheck: profile.ocspNoCheck,
      });
      this.templates.set(key, t);
    }
    return t;
  }

  /** Decodes a PKCS#10 DER strictly and checks its self-signature (on a crypto worker when there are some). */
  verifyCsr(der: Buffer): Promise<{ csr: DecodedCsr; signatureValid: boolean }> {
    return this.deps.crypto.verifyCsr(der);
  }

  /** Issues a certificate for a device from a PKCS#10 CSR, by profile. */
  async issueFromCsr(req: IssueFromCsrRequest): Promise<IssuedCertificate> {
    const requested = this.profile(req.profile);
    if (requested.kind !== 'device') throw forbidden(`profile ${requested.name} is for fleetca's own service certificates`);
    if (!DEVICE_ID_RE.test(req.deviceId)) throw badCsr(`"${req.deviceId}" is not a valid device id (letters, digits, . _ : -; at most 128)`);
    if (requested.approval.required && !req.approved) throw new CaError('pending', `profile ${requested.name} requires approval`);
    const requestedIssuer = this.issuerFor(requested);

    const { csr, signatureValid } = req.verified ?? (await this.deps.crypto.verifyCsr(req.csrDer));
    if (!signatureValid) throw badCsr('CSR signature does not verify (proof of possession failed)');

    // one batched read: the device and the current holders of this public key
    const context = await this.deps.store.issuanceContext(req.deviceId, spkiSha256(csr.spkiDer), this.deps.clock.now());
    const device = await this.deviceFor(req.deviceId, requested.name, req.createDevice ?? false, context.device);
    this.assertKeyNotElsewhere(context.keyHolders, req.deviceId);
    // an advisory (action restrict) moves the device's next certificate to another profile
    const profile = this.restrictedFor(device, requested);
    if (profile !== requested && profile.approval.required && !req.approved) throw new CaError('pending', `profile ${profile.name} requires approval`);
    const issuer = profile === requested ? requestedIssuer : this.issuerFor(profile);
    const decision = evaluatePolicy({
      profile,
      deviceId: req.deviceId,
      deviceMacs: device.macs,
      deviceSerialNumber: device.serialNumber,
      key: csr.key,
      subject: csr.subject,
      extensions: csr.extensions,
    });

    return this.issueDecided(issuer, profile, decision, {
      maxValidityMs: device.maxValidityMs ?? null,
      spkiDer: csr.spkiDer,
      key: csr.key,
      deviceId: req.deviceId,
      popMethod: 'csr',
      actor: req.actor,
      via: req.via,
      request: { via: req.via, csrSha256: crypto.createHash('sha256').update(csr.der).digest('hex'), ...(req.batch !== undefined ? { batch: req.batch } : {}) },
    });
  }

  /** A policy decision through the pipeline with the profile's template and key usage. */
  private issueDecided(
    issuer: IssuerRuntime,
    profile: Profile,
    decision: PolicyDecision,
    p: Pick<PipelineInput, 'spkiDer' | 'key' | 'deviceId' | 'popMethod' | 'actor' | 'via' | 'request' | 'maxValidityMs'>,
  ): Promise<IssuedCertificate> {
    return this.pipeline({
      ...p,
      issuer,
      profile: rulesOf(profile),
      template: (shard) => this.templateFor(issuer, profile, decision.keyFamily, shard),
      subject: decision.subject,
      sans: decision.sans,
      keyUsage: keyUsageFor(profile.keyUsage, decision.keyFamily),
    });
  }

  /**
   * Issues for a public key whose possession is established otherwise: fleetca's own service
   * keys ('ca'), server-side key generation ('server'), factory-attested keys ('factory').
   * The subject and SANs are given by trusted code, but still checked against the profile.
   */
  /**
   * A key fleetca generates for one of its own services (OCSP responder, SCEP RA, TLS server) and
   * its certificate (no device, proof of possession 'ca'). The caller saves the key.
   */
  async issueServiceKey(req: {
    keyType: GeneratedKeyType;
    profile: string;
    issuerName?: string;
    subject: RdnAttribute[];
    sans?: SanEntry[];
    actor: string;
    via: string;
  }): Promise<{ key: KeyObject; cert: IssuedCertificate }> {
    const kp = await generateKeyPairAsync(req.keyType);
    const spkiDer = spkiOf(kp.publicKey);
    const cert = await this.issueForPublicKey({
      profile: req.profile,
      ...(req.issuerName ? { issuerName: req.issuerName } : {}),
      deviceId: null,
      subject: req.subject,
      sans: req.sans ?? [],
      spkiDer,
      key: parseSpki(spkiDer).key,
      popMethod: 'ca',
      actor: req.actor,
      via: req.via,
    });
    return { key: kp.privateKey, cert };
  }

  async issueForPublicKey(req: IssueForKeyRequest): Promise<IssuedCertificate> {
    const profile = this.profile(req.profile);
    const issuer = this.issuerFor(profile, req.issuerName);
    let deviceMacs: readonly string[] = [];
    let deviceSerialNumber: string | null = null;
    let maxValidityMs: number | null = null;
    if (req.deviceId !== null) {
      const context = await this.deps.store.issuanceContext(req.deviceId, spkiSha256(req.spkiDer), this.deps.clock.now());
      const device = await this.deviceFor(req.deviceId, profile.name, true, context.device);
      deviceMacs = device.macs;
      deviceSerialNumber = device.serialNumber;
      maxValidityMs = device.maxValidityMs ?? null;
      this.assertKeyNotElsewhere(context.keyHolders, req.deviceId);
    }
    const decision = evaluatePolicy({
      profile,
      deviceId: req.deviceId ?? '',
      deviceMacs,
      deviceSerialNumber,
      key: req.key,
      subject: req.subject,
      extensions: { san: req.sans, other: [] },
    });
    return this.issueDecided(issuer, profile, decision, {
      maxValidityMs,
      spkiDer: req.spkiDer,
      key: req.key,
      deviceId: req.deviceId,
      popMethod: req.popMethod,
      actor: req.actor,
      via: req.via,
      request: { via: req.via, popMethod: req.popMethod, ...(req.batch !== undefined ? { batch: req.batch } : {}) },
    });
  }

  /**
   * Issues an intermediate CA certificate under `parentName` (init and rollover). The template
   * differs (CA:TRUE, keyCertSign + cRLSign, the parent's CRL in the CDP) but the pipeline is the same.
   */
  async issueCaCertificate(req: {
    parentName: string;
    subject: RdnAttribute[];
    spkiDer: Buffer;
    key: KeyInfo;
    pathLen?: number;
    validityMs: number;
    actor: string;
  }): Promise<IssuedCertificate> {
    const parent = this.deps.issuers.get(req.parentName);
    if (!parent?.signer) throw unavailable(`the key of issuer ${req.parentName} is offline (give --root-key FILE)`);
    const template = compileCertTemplate({
      issuerNameDer: parent.subjectDer,
      authorityKeyId: parent.record.ski,
      signatureAlgorithm: parent.signer.algorithm,
      basicConstraints: { ca: true, ...(req.pathLen !== undefined ? { pathLen: req.pathLen } : {}) },
      keyUsage: ['digitalSignature', 'keyCertSign', 'cRLSign'],
      crlDistributionPoint: parent.urls.crl,
      caIssuersUrl: parent.urls.caIssuers,
    });
    return this.pipeline(
      {
        issuer: parent,
        profile: { name: `ca:${req.parentName}`, validity: req.validityMs, backdate: 0, extendedKeyUsage: [], ocspNoCheck: false, lintDisable: [] },
        template: () => template,
        subject: req.subject,
        sans: [],
        spkiDer: req.spkiDer,
        key: req.key,
        keyUsage: ['digitalSignature', 'keyCertSign', 'cRLSign'],
        deviceId: null,
        popMethod: 'ca',
        actor: req.actor,
        via: 'init',
        request: { via: 'init', kind: 'ca' },
      },
      true,
    );
  }

  private async deviceFor(deviceId: string, profile: string, create: boolean, known: DeviceRecord | null): Promise<DeviceRecord> {
    const now = this.deps.clock.now();
    let device = known;
    if (!device) {
      if (!create) throw notFound(`unknown device "${deviceId}"`);
      try {
        device = await this.deps.store.addDevice({ id: deviceId, profile }, now);
      } catch (e) {
        // two concurrent first enrollments of one device: the loser reads the winner's row
        if (!(e instanceof CaError && e.kind === 'conflict')) throw e;
        device = await this.deps.store.getDevice(deviceId);
        if (!device) throw e;
      }
    }
    if (device.state !== 'active') throw forbidden(`device "${deviceId}" is ${device.state} and cannot be issued certificates`);
    return device;
  }

  /** The profile a restricted device (advisory action restrict) is issued from instead of `requested`. */
  private restrictedFor(device: DeviceRecord, requested: Profile): Profile {
    const name = device.restrictedProfile;
    if (!name || name === requested.name) return requested;
    const p = this.deps.config.profiles.get(name);
    if (!p || p.kind !== 'device') throw internal(`device ${device.id} is restricted to profile "${name}", which is not a device profile`);
    return p;
  }

  /** Refuses a public key already certified for another device (key sharing breaks identity). */
  private assertKeyNotElsewhere(holders: IssuanceContext['keyHolders'], deviceId: string): void {
    const other = holders.find((o) => o.deviceId !== deviceId);
    if (other) throw policyRejected('this public key is already certified for another device');
  }

  private audit(action: string, target: string, actor: string, details: Record<string, unknown>): AuditEntry {
    return { at: this.deps.clock.now(), actor, action, target, details };
  }

  /** Steps 2–6 of the pipeline. */
  private async pipeline(p: PipelineInput, isCa = false): Promise<IssuedCertificate> {
    const { issuer, profile, store } = { ...p, store: this.deps.store };
    const signer = issuer.signer!;
    const now = this.deps.clock.now();
    const notBefore = new Date(Math.max(now.getTime() - profile.backdate, issuer.record.notBefore.getTime()));
    notBefore.setUTCMilliseconds(0);
    const validity = Math.min(profile.validity, p.maxValidityMs ?? Infinity);
    const notAfter = new Date(Math.min(now.getTime() + validity, issuer.record.notAfter.getTime()));
    notAfter.setUTCMilliseconds(0);
    const subjectDer = encodeName(p.subject);
    const subjectText = formatName(p.subject);

    // Steps 2 + 3: a fresh CSPRNG serial, the TBS, the lints, then the intent. The intent row's
    // UNIQUE serial is what reserves it; on a collision, draw once more.
    let serial: Buffer;
    let serialHex: string;
    let tbs: Buffer;
    let crlShard: number | null;
    const shards = isCa ? 1 : this.deps.config.settings.crl.shards;
    for (let attempt = 0; ; attempt++) {
      serial = generateSerial(this.random);
      serialHex = serialToHex(serial);
      const draft: CertificateDraft = {
        serial,
        notBefore,
        notAfter,
        issuerNotBefore: issuer.record.notBefore,
        issuerNotAfter: issuer.record.notAfter,
        isCa,
        keyUsage: p.keyUsage,
        extendedKeyUsage: isCa ? [] : profile.extendedKeyUsage,
        subjectCn: p.subject.find((a) => a.type === 'CN')?.value,
        subjectEmpty: p.subject.length === 0,
        sans: p.sans,
        key: p.key,
        ocspNoCheck: !isCa && profile.ocspNoCheck,
        urls: [issuer.urls.crl, issuer.urls.caIssuers, ...(profile.ocspNoCheck || isCa ? [] : [issuer.urls.ocsp])],
        maxValidityMs: profile.validity + profile.backdate,
      };
      const problems = runLints(draft, profile.lintDisable);
      if (problems.length) throw policyRejected(`pre-issuance lint failed: ${problems.join('; ')}`);
      // RFC 5280 §5.2.5 partitioned CRLs: the shard follows from the serial and is fixed from here on
      crlShard = shards > 1 ? (serial.readUInt16BE(serial.length - 2) % shards) + 1 : null;
      tbs = buildTbsCertificate(p.template(crlShard), { serial, notBefore, notAfter, subjectDer, spkiDer: p.spkiDer, san: p.sans });
      const recorded = await store.recordIntent(
        {
          serial: serialHex,
          issuerId: issuer.record.id,
          deviceId: p.deviceId,
          profile: profile.name,
          tbsDer: tbs,
          request: { ...p.request, actor: p.actor },
          createdAt: now,
        },
        this.audit('certificate.sign.begin', serialHex, p.actor, { issuer: issuer.record.name, profile: profile.name, device: p.deviceId, ...batchOf(p.request) }),
      );
      if (recorded === 'recorded') break;
      if (attempt >= 1) throw internal('serial collided twice in a row; the random source is broken');
    }

    // Step 4: sign exactly once.
    let der: Buffer;
    try {
      const signature = await signer.sign(tbs);
      der = assembleCertificate(tbs, signer.algorithm, signature);
      if (!extractTbs(der).equals(tbs)) throw new Error('signed TBSCertificate differs from the linted one');
    } catch (e) {
      await store
        .failIntent(serialHex, `signing failed: ${(e as Error).message}`, this.audit('certificate.sign.failed', serialHex, p.actor, {}))
        .catch(() => undefined);
      throw toCaError(e);
    }
    this.deps.faults?.afterSign?.();

    // Step 5: durable, then returned.
    await store.commitCertificate(
      {
        serial: serialHex,
        issuerId: issuer.record.id,
        deviceId: p.deviceId,
        profile: profile.name,
        subject: subjectText,
        sans: p.sans,
        spkiSha256: spkiSha256(p.spkiDer),
        fingerprintSha256: crypto.createHash('sha256').update(der).digest(),
        notBefore,
        notAfter,
        der,
        popMethod: p.popMethod,
        crlShard,
      },
      this.audit('certificate.issued', serialHex, p.actor, { issuer: issuer.record.name, profile: profile.name, device: p.deviceId, via: p.via, ...batchOf(p.request) }),
    );
    return {
      serial: serialHex,
      der,
      issuerName: issuer.record.name,
      chain: this.chainOf(issuer.record.name),
      profile: profile.name,
      deviceId: p.deviceId,
      notBefore,
      notAfter,
    };
  }

  /**
   * Start-up reconciliation: an intent still pending after `graceMs` belongs to a process that
   * died between signing and commit. Its certificate was never returned, so it is marked failed
   * and its serial stays burned.
   */
  async reconcilePendingIntents(graceMs: number, actor = 'system'): Promise<number> {
    const olderThan = new Date(this.deps.clock.now().getTime() - graceMs);
    const pending = await this.deps.store.listPendingIntents(olderThan);
    for (const i of pending) {
      await this.deps.store.failIntent(
        i.serial,
        'abandoned: the process ended between signing and commit; the certificate was never returned',
        this.audit('certificate.intent.abandoned', i.serial, actor, { issuerId: i.issuerId, profile: i.profile, device: i.deviceId }),
      );
    }
    return pending.length;
  }

  /**
   * Marks these pending intents failed now, whatever their age: the caller knows their process is
   * gone (a factory batch resuming under its run lock; the batch's intents are only ever written by
   * the process holding it). An intent that got issued meanwhile is reported, never failed.
   */
  async abandonIntents(serials: readonly string[], actor: string, why: string): Promise<{ abandoned: string[]; issued: string[] }> {
    const out = { abandoned: [] as string[], issued: [] as string[] };
    for (const serial of serials) {
      try {
        await this.deps.store.failIntent(serial, `abandoned: ${why}`, this.audit('certificate.intent.abandoned', serial, actor, { why }));
        out.abandoned.push(serial);
      } catch (e) {
        if (!(e instanceof CaError && e.kind === 'conflict')) throw e;
        out.issued.push(serial);
      }
    }
    return out;
  }

  /** Revokes (or, with certificateHold, quarantines) one certificate. Rules: ca/revocation.ts. */
  async revoke(serial: string, reason: RevocationReason, actor: string, invalidityDate?: Date): Promise<CertificateRecord> {
    const at = this.deps.clock.now();
    assertRevocationInput(reason, invalidityDate, at);
    return this.deps.store.revoke({ serial, reason, at, invalidityDate: invalidityDate ?? null, actor, crlEntry: crlEntryOf });
  }

  /** Releases a hold. */
  async release(serial: string, actor: string): Promise<CertificateRecord> {
    return this.deps.store.release({ serial, at: this.deps.clock.now(), actor });
  }

  /** Revokes or holds every live certificate of a device; returns those it changed. */
  async revokeDevice(deviceId: string, reason: RevocationReason, actor: string, invalidityDate?: Date): Promise<CertificateRecord[]> {
    const at = this.deps.clock.now();
    assertRevocationInput(reason, invalidityDate, at);
    return this.deps.store.revokeDevice({ deviceId, reason, at, invalidityDate: invalidityDate ?? null, actor, crlEntry: crlEntryOf });
  }

  /** Releases every held live certificate of a device. */
  async releaseDevice(deviceId: string, actor: string): Promise<CertificateRecord[]> {
    return this.deps.store.releaseDevice({ deviceId, at: this.deps.clock.now(), actor });
  }
}

/** The batch id of an intent's request, for the audit details. */
function batchOf(request: Record<string, unknown>): { batch?: unknown } {
  return request.batch !== undefined ? { batch: request.batch } : {};
}

/** Error kinds the core raises, for the adapters' exhaustive maps. */
export type CoreErrorKind = CaErrorKind;
