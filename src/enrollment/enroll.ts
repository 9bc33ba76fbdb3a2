/**
 * Who may enroll for what (ARCHITECTURE.md "enrollment"): turns the credentials a protocol adapter
 * saw (HTTP Basic, the TLS client certificate, the TLS channel binding) and a CSR into one call of
 * the CA core, or into a queued approval. EST uses it now; SCEP and factory batches reuse it.
 *
 * Credentials, in order of precedence:
 *  - simplereenroll: the device's current fleetca certificate as TLS client certificate (RFC 7030 §4.2.2);
 *  - simpleenroll / serverkeygen: a one-time secret over HTTP Basic (username = device id), else a
 *    TLS client certificate that is a current fleetca certificate (treated as a renewal) or a
 *    manufacturer IDevID trusted by a profile.
 * Every enrollment supersedes the device's other live certificates in the same profile; they stay
 * valid for the profile's grace period and are then revoked with reason superseded.
 */
import crypto, { X509Certificate } from 'node:crypto';
import { badCsr, badRequest, forbidden, notFound, unauthorized } from '../core/errors.js';
import type { Clock } from '../core/clock.js';
import { DEVICE_ID_RE } from '../core/ids.js';
import type { FleetcaConfig, Profile } from '../config/schema.js';
import type { DecodedCsr } from '../pki/csr.js';
import { formatName, type SanEntry } from '../pki/names.js';
import { parseSpki, spkiSha256 } from '../pki/spki.js';
import { generateKeyPairAsync, spkiOf, type GeneratedKeyType } from '../signing/keys.js';
import type { CertificateAuthority, IssuedCertificate } from '../ca/issuance.js';
import type { AuditEntry, CertificateRecord, DeviceRecord } from '../ca/ports.js';
import type { IdevidMatch, IdevidTrust } from './idevid.js';
import type { EnrollmentStore, SecretRecord } from './ports.js';
import { FailureLimiter, matchSecret } from './secrets.js';
import { supersedeReplaced } from './renew.js';

export type EnrollOperation = 'simpleenroll' | 'simplereenroll' | 'serverkeygen';

/** RFC 7030 §3.5 channel binding of the TLS connection the request came on. */
export interface ChannelBinding {
  /** tls-unique (TLS 1.2, RFC 5929) or tls-exporter (TLS 1.3, RFC 9266). */
  type: 'tls-unique' | 'tls-exporter';
  value: Buffer;
}

/** What the adapter saw on the connection. */
export interface PresentedCredentials {
  basic?: { user: string; password: string } | undefined;
  /** DER of the TLS client certificate (the leaf), if one was sent. */
  clientCertDer?: Buffer | undefined;
  channelBinding?: ChannelBinding | undefined;
}

export interface EnrollInput {
  operation: EnrollOperation;
  /** The EST label (a profile name), when the URL had one. */
  label?: string | undefined;
  csrDer: Buffer;
  credentials: PresentedCredentials;
  /** Which adapter: 'est', 'scep'. */
  via: string;
}

export type EnrollResult =
  | {
      kind: 'issued';
      certificate: IssuedCertificate;
      /** serverkeygen only: the generated private key, PKCS#8 DER. Never stored or logged. */
      privateKeyPkcs8?: Buffer;
      superseded: string[];
      /** Who enrolled, for the adapter's log line. */
      actor: string;
    }
  | { kind: 'pending'; requestId: string; retryAfterSeconds: number; actor: string };

/** What the store must offer the enrollment layer (its own ports plus reads of the CA's). */
export type EnrollmentDepsStore = EnrollmentStore & {
  getCertificateByFingerprint(fp: Buffer): Promise<CertificateRecord | null>;
  getCertificate(serial: string): Promise<CertificateRecord | null>;
  getDevice(id: string): Promise<DeviceRecord | null>;
};

export interface EnrollmentDeps {
  ca: CertificateAuthority;
  store: EnrollmentDepsStore;
  config: FleetcaConfig;
  clock: Clock;
  /** HMAC key of the one-time secrets (deriveSecretKey). */
  secretKey: Buffer;
  idevid: IdevidTrust;
  /** Asks a profile's challenge webhook (I/O lives in the composition root); absent = webhooks refuse. */
  validateChallenge?: (r: ChallengeCheck) => Promise<boolean>;
}

/** What a challenge webhook is asked. */
export interface ChallengeCheck {
  url: string;
  timeoutMs: number;
  deviceId: string;
  profile: string;
  challenge: string;
  csrDer: Buffer;
  via: string;
}

type Credential =
  | { kind: 'secret'; deviceId: string; secret: SecretRecord; actor: string }
  | { kind: 'challenge'; deviceId: string; profile: string; actor: string }
  | { kind: 'certificate'; deviceId: string; cert: CertificateRecord; actor: string }
  | { kind: 'idevid'; deviceId: string; match: IdevidMatch; actor: string };

const sha256 = (b: Buffer) => crypto.createHash('sha256').update(b).digest();

/** SANs as a comparable set: type + value, DNS names case-insensitive. */
function sanKey(sans: readonly SanEntry[]): string {
  return sans
    .map((s) => `${s.type}:${s.type === 'dns' ? s.value.toLowerCase() : s.value}`)
    .sort()
    .join('\n');
}

/** The renewal window start of a certificate: notAfter minus the window (a share of the validity or a duration). */
export function renewalWindowStart(profile: Profile, notBefore: Date, notAfter: Date): Date {
  const w = profile.renewal.window;
  const span = notAfter.getTime() - notBefore.getTime();
  const ms = typeof w === 'string' ? (span * Number(w.slice(0, -1))) / 100 : w;
  return new Date(notAfter.getTime() - ms);
}

/** The key type serverkeygen generates for a profile: its first allowed type. */
export function serverKeyType(profile: Profile): GeneratedKeyType {
  const t = profile.keys.types[0]!;
  if (t !== 'rsa') return t;
  const bits = profile.keys.rsaMinBits;
  return bits <= 2048 ? 'rsa2048' : bits <= 3072 ? 'rsa3072' : 'rsa4096';
}

export class EnrollmentService {
  private readonly failures: FailureLimiter;

  constructor(private readonly deps: EnrollmentDeps) {
    const e = deps.config.settings.enrollment;
    this.failures = new FailureLimiter(e.failureLimit, e.failureWindow);
  }

  /** The external and fleetca anchors IDevIDs are accepted from. */
  idevidAnchors(): X509Certificate[] {
    return this.deps.idevid.anchorCertificates();
  }

  /** Whether a device profile of that name exists. */
  deviceProfileExists(name: string): boolean {
    return this.deps.config.profiles.get(name)?.kind === 'device';
  }

  /** A device profile by name, or notFound (EST: unknown label → 404). */
  deviceProfile(name: string): Profile {
    const p = this.deps.config.profiles.get(name);
    if (!p || p.kind !== 'device') throw notFound(`no device profile "${name}"`);
    return p;
  }

  /**
   * The profile whose CSR attributes `csrattrs` describes: the label's, else the profile of the
   * caller's current fleetca certificate; null when neither says (the profile is then chosen by
   * the credential at enrollment). No secret is checked or consumed here.
   */
  async profileForAttributes(label: string | undefined, creds: PresentedCredentials): Promise<Profile | null> {
    if (label !== undefined) return this.deviceProfile(label);
    if (!creds.clientCertDer) return null;
    const cert = await this.deps.store.getCertificateByFingerprint(sha256(creds.clientCertDer));
    if (!cert || cert.status !== 'valid' || this.issuerRole(cert) !== 'device') return null;
    const p = this.deps.config.profiles.get(cert.profile);
    return p?.kind === 'device' ? p : null;
  }

  async enroll(input: EnrollInput): Promise<EnrollResult> {
    if (input.label !== undefined) this.deviceProfile(input.label);
    const cred = await this.authenticate(input.operation, input.credentials, input);
    const profile = await this.profileFor(cred, input.label);
    const now = this.deps.clock.now();

    // CSR: decoded and verified once (on a crypto worker); serverkeygen ignores its key and
    // signature (RFC 7030 §4.4.1), every other operation needs proof of possession
    const verified = await this.deps.ca.verifyCsr(input.csrDer);
    const { csr } = verified;
    if (input.operation !== 'serverkeygen' && !verified.signatureValid) throw badCsr('CSR signature does not verify (proof of possession failed)');
    if (profile.enrollment.channelBinding) this.assertChannelBinding(csr, input.credentials.channelBinding);
    if (cred.kind === 'certificate') this.assertRenewal(profile, cred.cert, csr, input.operation, now);

    const spkiHash = spkiSha256(csr.spkiDer);
    let approvedRequest: string | null = null;
    if (profile.approval.required) {
      const decision = await this.approval(profile, cred, csr, spkiHash, input.via, now);
      if (decision.kind === 'pending') return decision;
      approvedRequest = decision.requestId;
    }

    // a one-time secret is claimed before issuing: of two concurrent uses exactly one gets here
    if (cred.kind === 'secret' && !(await this.deps.store.claimSecret(cred.secret.id, now))) {
      throw unauthorized(`secret ${cred.secret.id} of device ${cred.deviceId} is being used by another enrollment`);
    }

    let certificate: IssuedCertificate;
    let privateKeyPkcs8: Buffer | undefined;
    try {
      if (input.operation === 'serverkeygen') {
        const pair = await generateKeyPairAsync(serverKeyType(profile));
        const spkiDer = spkiOf(pair.publicKey);
        certificate = await this.deps.ca.issueForPublicKey({
          profile: profile.name,
          deviceId: cred.deviceId,
          subject: csr.subject,
          sans: csr.extensions.san ?? [],
          spkiDer,
          key: parseSpki(spkiDer).key,
          popMethod: 'server',
          actor: cred.actor,
          via: input.via,
        });
        privateKeyPkcs8 = pair.privateKey.export({ type: 'pkcs8', format: 'der' });
      } else {
        certificate = await this.deps.ca.issueFromCsr({
          profile: profile.name,
          deviceId: cred.deviceId,
          csrDer: input.csrDer,
          actor: cred.actor,
          via: input.via,
          // an external manufacturer's device, or one vouched for by a profile challenge, may be new to
          // fleetca; one-time secrets and renewals name known devices
          createDevice: cred.kind === 'idevid' || cred.kind === 'challenge',
          approved: true,
          verified,
        });
      }
    } catch (e) {
      if (cred.kind === 'secret') await this.deps.store.releaseSecret(cred.secret.id).catch(() => undefined);
      throw e;
    }

    // the certificate is durable; what follows records how it was obtained
    // (issued side by side: the store runs both in its next group transaction)
    const at = this.deps.clock.now();
    const consumed =
      cred.kind === 'secret'
        ? this.deps.store.consumeSecret(cred.secret.id, certificate.serial, at, this.audit('secret.consumed', cred.deviceId, cred.actor, { secret: cred.secret.id, serial: certificate.serial }))
        : Promise.resolve();
    // the replaced certificates, and certificate.renewed when there were some (enrollment/renew.ts)
    const replaced = supersedeReplaced(this.deps, { deviceId: cred.deviceId, profile, newSerial: certificate.serial, actor: cred.actor, via: input.via });
    const [, superseded] = await Promise.all([consumed, replaced]);
    if (cred.kind === 'secret') this.failures.succeed(cred.deviceId);
    if (approvedRequest) await this.deps.store.markRequestIssued(approvedRequest, certificate.serial);
    return { kind: 'issued', certificate, ...(privateKeyPkcs8 ? { privateKeyPkcs8 } : {}), superseded, actor: cred.actor };
  }

  /**
   * Issues an enrollment request an administrator approved, from its stored CSR, for a client
   * that polls for it without repeating its credential (SCEP CertPoll). The request itself is the
   * credential: it was authenticated when queued; a secret it was queued with is consumed now.
   * Pending → pending, rejected → forbidden, already issued → that certificate.
   */
  async issueApproved(requestId: string, via: string): Promise<EnrollResult> {
    const r = await this.deps.store.getRequest(requestId);
    if (!r) throw notFound(`no enrollment request ${requestId}`);
    const actor = `request:${r.id}`;
    if (r.state === 'pending') return { kind: 'pending', requestId: r.id, retryAfterSeconds: this.deps.config.settings.enrollment.pendingRetryAfter, actor };
    if (r.state === 'rejected') throw forbidden(`enrollment request ${r.id} was rejected${r.reason ? `: ${r.reason}` : ''}`);
    if (r.state === 'issued') return { kind: 'issued', certificate: await this.issuedCertificate(r.serial!), superseded: [], actor };
    const now = this.deps.clock.now();
    if (r.secretId && !(await this.deps.store.claimSecret(r.secretId, now))) {
      throw forbidden(`the secret request ${r.id} was made with has been used by another enrollment`);
    }
    let certificate: IssuedCertificate;
    try {
      certificate = await this.deps.ca.issueFromCsr({ profile: r.profile, deviceId: r.deviceId, csrDer: r.csrDer, actor, via, approved: true });
    } catch (e) {
      if (r.secretId) await this.deps.store.releaseSecret(r.secretId).catch(() => undefined);
      throw e;
    }
    const at = this.deps.clock.now();
    if (r.secretId) {
      await this.deps.store.consumeSecret(r.secretId, certificate.serial, at, this.audit('secret.consumed', r.deviceId, actor, { secret: r.secretId, serial: certificate.serial }));
    }
    await this.deps.store.markRequestIssued(r.id, certificate.serial);
    const profile = this.deviceProfile(r.profile);
    const superseded = await supersedeReplaced(this.deps, { deviceId: r.deviceId, profile, newSerial: certificate.serial, actor, via });
    return { kind: 'issued', certificate, superseded, actor };
  }

  /** A certificate fleetca issued, in the shape an enrollment returns (SCEP retransmissions, GetCert). */
  async issuedCertificate(serial: string): Promise<IssuedCertificate> {
    const c = await this.deps.store.getCertificate(serial);
    if (!c) throw notFound(`no certificate ${serial}`);
    return { serial: c.serial, der: c.der, issuerName: c.issuerName, chain: this.deps.ca.chainOf(c.issuerName), profile: c.profile, deviceId: c.deviceId, notBefore: c.notBefore, notAfter: c.notAfter };
  }

  /** SCEP transactions (RFC 8894 §3.2.1.1): see ScepTransactionStore. */
  get scepTransactions(): Pick<EnrollmentDepsStore, 'getScepTransaction' | 'recordScepTransaction'> {
    return this.deps.store;
  }

  // ------------------------------------------------------------ credentials

  private async authenticate(op: EnrollOperation, creds: PresentedCredentials, input: EnrollInput): Promise<Credential> {
    if (op === 'simplereenroll') {
      // RFC 7030 §4.2.2: re-enrollment is authenticated by the certificate being renewed
      if (!creds.clientCertDer) throw unauthorized('simplereenroll needs the current certificate as TLS client certificate');
      const cert = await this.deps.store.getCertificateByFingerprint(sha256(creds.clientCertDer));
      if (!cert) throw forbidden('the TLS client certificate was not issued by fleetca');
      if (this.issuerRole(cert) !== 'device') throw forbidden('only an operational certificate of the device CA can re-enroll (an IDevID uses simpleenroll)');
      return this.certificateCredential(cert);
    }
    if (creds.basic) return this.secretCredential(creds.basic.user, creds.basic.password, input);
    if (creds.clientCertDer) {
      const cert = await this.deps.store.getCertificateByFingerprint(sha256(creds.clientCertDer));
      if (cert && this.issuerRole(cert) === 'device') return this.certificateCredential(cert);
      return this.idevidCredential(creds.clientCertDer, cert);
    }
    throw unauthorized('no credentials: send a one-time secret with HTTP Basic or a TLS client certificate');
  }

  private issuerRole(cert: CertificateRecord): string | undefined {
    return this.deps.ca.issuers.get(cert.issuerName)?.record.role;
  }

  private async secretCredential(user: string, password: string, input: EnrollInput): Promise<Credential> {
    const now = this.deps.clock.now();
    if (this.failures.blocked(user, now.getTime())) throw unauthorized(`too many failed secrets for "${user}"; refused until the window passes`);
    const secrets = DEVICE_ID_RE.test(user) ? await this.deps.store.usableSecrets(user, now) : [];
    const i = matchSecret(this.deps.secretKey, user, password, secrets.map((s) => s.mac));
    if (i >= 0) return { kind: 'secret', deviceId: user, secret: secrets[i]!, actor: `secret:${user}` };
    const other = DEVICE_ID_RE.test(user) ? await this.profileChallenge(user, password, input) : null;
    if (other) return other;
    this.failures.fail(user, now.getTime());
    throw unauthorized(`wrong, used or expired secret for "${user}"`);
  }

  /**
   * A profile's own challenge, when no one-time secret matched: the static lab challenge
   * (compared as SHA-256, in constant time) or the challenge webhook. The profile is the label's,
   * else the device record's.
   */
  private async profileChallenge(deviceId: string, challenge: string, input: EnrollInput): Promise<Credential | null> {
    const name = input.label ?? (await this.deps.store.getDevice(deviceId))?.profile ?? undefined;
    const p = name !== undefined ? this.deps.config.profiles.get(name) : undefined;
    if (!p || p.kind !== 'device') return null;
    const staticHash = p.enrollment.staticChallengeSha256;
    if (staticHash) {
      const given = crypto.createHash('sha256').update(challenge, 'utf8').digest();
      if (crypto.timingSafeEqual(given, Buffer.from(staticHash, 'hex'))) return { kind: 'challenge', deviceId, profile: p.name, actor: `static-challenge:${deviceId}` };
    }
    const hook = p.enrollment.challengeWebhook;
    if (hook && this.deps.validateChallenge) {
      const allowed = await this.deps
        .validateChallenge({ url: hook.url, timeoutMs: hook.timeoutMs, deviceId, profile: p.name, challenge, csrDer: input.csrDer, via: input.via })
        .catch(() => false);
      if (allowed) return { kind: 'challenge', deviceId, profile: p.name, actor: `webhook-challenge:${deviceId}` };
    }
    return null;
  }

  private certificateCredential(cert: CertificateRecord): Credential {
    const now = this.deps.clock.now();
    if (cert.status === 'revoked') throw forbidden(`certificate ${cert.serial} is revoked`);
    if (cert.status === 'hold') throw forbidden(`certificate ${cert.serial} is on hold (quarantined)`);
    if (now > cert.notAfter) throw forbidden(`certificate ${cert.serial} expired at ${cert.notAfter.toISOString()}`);
    if (now < cert.notBefore) throw forbidden(`certificate ${cert.serial} is not valid yet`);
    if (!cert.deviceId) throw forbidden(`certificate ${cert.serial} belongs to no device`);
    return { kind: 'certificate', deviceId: cert.deviceId, cert, actor: `cert:${cert.serial}` };
  }

  private async idevidCredential(der: Buffer, known: CertificateRecord | null): Promise<Credential> {
    let leaf: X509Certificate;
    try {
      leaf = new X509Certificate(der);
    } catch {
      throw forbidden('the TLS client certificate does not parse');
    }
    const matches = this.deps.idevid.match(leaf);
    if (matches.length === 0) throw forbidden('the TLS client certificate is neither a current fleetca certificate nor an IDevID a profile trusts');
    const now = this.deps.clock.now();
    // one IDevID, checked once; the profile is chosen later among `matches`
    const m = matches[0]!;
    this.deps.idevid.assertUsable(leaf, m, now);
    if (m.anchor.fleetcaIssuer) {
      if (!known) throw forbidden(`the IDevID is not in fleetca's records of ${m.anchor.fleetcaIssuer}`);
      if (known.status !== 'valid') throw forbidden(`the IDevID ${known.serial} is ${known.status === 'hold' ? 'on hold' : 'revoked'}`);
    }
    return { kind: 'idevid', deviceId: m.deviceId, match: m, actor: `idevid:${m.deviceId}` };
  }

  /** The profile an enrollment is for: the label when given (and allowed), else the credential's. */
  private async profileFor(cred: Credential, label: string | undefined): Promise<Profile> {
    switch (cred.kind) {
      case 'secret': {
        if (label !== undefined && label !== cred.secret.profile) throw forbidden(`the secret is for profile ${cred.secret.profile}, not ${label}`);
        const p = this.deviceProfile(cred.secret.profile);
        if (!p.enrollment.secrets) throw forbidden(`profile ${p.name} does not accept one-time secrets`);
        return p;
      }
      case 'challenge':
        return this.deviceProfile(cred.profile);
      case 'certificate': {
        if (label !== undefined && label !== cred.cert.profile) throw forbidden(`certificate ${cred.cert.serial} is of profile ${cred.cert.profile}, not ${label}`);
        return this.deviceProfile(cred.cert.profile);
      }
      case 'idevid':
        return this.idevidProfile(cred, label);
    }
  }

  private async idevidProfile(cred: Extract<Credential, { kind: 'idevid' }>, label: string | undefined): Promise<Profile> {
    const candidates = [...this.deps.config.profiles.values()].filter(
      (p) => p.kind === 'device' && p.enrollment.idevid?.trust.includes(cred.match.anchor.ref),
    );
    if (label !== undefined) {
      const p = candidates.find((c) => c.name === label);
      if (!p) throw forbidden(`profile ${label} does not accept this IDevID`);
      return p;
    }
    const device = await this.deps.store.getDevice(cred.deviceId);
    const own = candidates.find((c) => c.name === device?.profile);
    if (own) return own;
    if (candidates.length === 1) return candidates[0]!;
    throw badRequest(`several profiles accept this IDevID (${candidates.map((c) => c.name).join(', ')}): enroll at /.well-known/est/<profile>/`);
  }

  // ------------------------------------------------------------ checks

  /** RFC 7030 §3.5: the CSR's challengePassword carries the base64 of the connection's binding. */
  private assertChannelBinding(csr: DecodedCsr, binding: ChannelBinding | undefined): void {
    if (!binding) throw forbidden('this profile requires TLS channel binding, which this connection cannot provide');
    const expected = Buffer.from(binding.value.toString('base64'));
    const given = Buffer.from(csr.challengePassword ?? '');
    if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) {
      throw forbidden(`the CSR's challengePassword is not the ${binding.type} channel binding of this TLS connection`);
    }
  }

  /** RFC 7030 §4.2.2 plus the profile's rotation policy. */
  private assertRenewal(profile: Profile, cert: CertificateRecord, csr: DecodedCsr, op: EnrollOperation, now: Date): void {
    if (formatName(csr.subject) !== cert.subject) throw forbidden(`re-enrollment must keep the subject "${cert.subject}" (the CSR asks for "${formatName(csr.subject)}")`);
    // MAC URIs come from the device record, never from a CSR, so they are left out of the comparison
    const certSans = profile.san.includeMacs ? cert.sans.filter((s) => !(s.type === 'uri' && s.value.startsWith('urn:dev:mac:'))) : cert.sans;
    if (sanKey(csr.extensions.san ?? []) !== sanKey(certSans)) throw forbidden('re-enrollment must keep the subjectAltName of the current certificate');
    if (!profile.renewal.allowEarly) {
      const start = renewalWindowStart(profile, cert.notBefore, cert.notAfter);
      if (now < start) {
        throw forbidden(
          `early renewal refused: profile ${profile.name} does not allow renewal before the renewal window (renewal.allowEarly: false); certificate ${cert.serial} may be renewed from ${start.toISOString()}`,
        );
      }
    }
    if (!profile.renewal.reuseKey && op !== 'serverkeygen' && spkiSha256(csr.spkiDer).equals(cert.spkiSha256)) {
      throw forbidden(`profile ${profile.name} requires a new key at re-enrollment`);
    }
  }

  /** Approval queue: the approved request of this device for this key, or the pending answer. */
  private async approval(
    profile: Profile,
    cred: Credential,
    csr: DecodedCsr,
    spkiHash: Buffer,
    via: string,
    now: Date,
  ): Promise<Extract<EnrollResult, { kind: 'pending' }> | { kind: 'approved'; requestId: string }> {
    const retryAfterSeconds = this.deps.config.settings.enrollment.pendingRetryAfter;
    const latest = await this.deps.store.latestRequest(cred.deviceId, profile.name, spkiHash);
    if (latest?.state === 'approved') return { kind: 'approved', requestId: latest.id };
    if (latest?.state === 'rejected') throw forbidden(`enrollment request ${latest.id} was rejected${latest.reason ? `: ${latest.reason}` : ''}`);
    if (latest?.state === 'pending') return { kind: 'pending', requestId: latest.id, retryAfterSeconds, actor: cred.actor };
    const r = await this.deps.store.openRequest(
      {
        deviceId: cred.deviceId,
        profile: profile.name,
        spkiSha256: spkiHash,
        subject: formatName(csr.subject),
        csrDer: csr.der,
        via,
        actor: cred.actor,
        createdAt: now,
        secretId: cred.kind === 'secret' ? cred.secret.id : null,
      },
      this.audit('request.queued', cred.deviceId, cred.actor, { profile: profile.name, via }),
    );
    if (r.state === 'approved') return { kind: 'approved', requestId: r.id };
    return { kind: 'pending', requestId: r.id, retryAfterSeconds, actor: cred.actor };
  }

  private audit(action: string, target: string | null, actor: string, details: Record<string, unknown>): AuditEntry {
    return { at: this.deps.clock.now(), actor, action, target, details };
  }
}
