/**
 * Storage ports of the enrollment layer: one-time enrollment secrets, the approval queue, and the
 * supersession of renewed certificates. `store/` implements them over PostgreSQL.
 */
import type { AuditEntry } from '../ca/ports.js';

/** A stored one-time enrollment secret: only its HMAC is kept. */
export interface SecretRecord {
  id: string;
  deviceId: string;
  profile: string;
  /** HMAC-SHA-256 of the secret under the server-side secret key. */
  mac: Buffer;
  createdAt: Date;
  expiresAt: Date;
  createdBy: string;
  claimedAt: Date | null;
  consumedAt: Date | null;
  serial: string | null;
}

export interface NewSecret {
  deviceId: string;
  profile: string;
  mac: Buffer;
  createdAt: Date;
  expiresAt: Date;
  createdBy: string;
}

export interface SecretStore {
  /** Stores the secrets (one statement) with one audit entry each; returns their ids in order. */
  createSecrets(secrets: NewSecret[], audit: AuditEntry[]): Promise<string[]>;
  /** The device's secrets that are neither consumed nor expired at `at` (claimed ones included). */
  usableSecrets(deviceId: string, at: Date): Promise<SecretRecord[]>;
  /**
   * Atomically claims a secret for one enrollment: succeeds only if it is unconsumed, unclaimed
   * and unexpired at `at`. Of concurrent claimers exactly one gets true. A claim never expires
   * (only releaseSecret undoes it): an enrollment interrupted by a crash spends the secret.
   */
  claimSecret(id: string, at: Date): Promise<boolean>;
  /** Gives a claimed secret back (the enrollment did not issue): usable again at once. */
  releaseSecret(id: string): Promise<void>;
  /** Marks a claimed secret used by the certificate `serial`, with its audit entry. */
  consumeSecret(id: string, serial: string, at: Date, audit: AuditEntry): Promise<void>;
}

export type RequestState = 'pending' | 'approved' | 'rejected' | 'issued';

/** An enrollment waiting for (or decided by) an administrator. */
export interface EnrollmentRequest {
  id: string;
  deviceId: string;
  profile: string;
  spkiSha256: Buffer;
  subject: string;
  csrDer: Buffer;
  via: string;
  actor: string;
  state: RequestState;
  createdAt: Date;
  decidedAt: Date | null;
  decidedBy: string | null;
  reason: string | null;
  serial: string | null;
  /** The one-time secret the request was made with, if any (consumed when it is issued). */
  secretId?: string | null;
}

export type NewEnrollmentRequest = Pick<EnrollmentRequest, 'deviceId' | 'profile' | 'spkiSha256' | 'subject' | 'csrDer' | 'via' | 'actor' | 'createdAt'> & {
  secretId?: string | null;
};

export interface ApprovalStore {
  /**
   * The latest request for this device, profile and key: an open one (pending or approved) if any,
   * else the latest closed one; null if there was never one.
   */
  latestRequest(deviceId: string, profile: string, spkiSha256: Buffer): Promise<EnrollmentRequest | null>;
  /** Queues a request; if one is already open for the same device, profile and key, returns that. */
  openRequest(r: NewEnrollmentRequest, audit: AuditEntry): Promise<EnrollmentRequest>;
  listRequests(filter: { state?: RequestState; limit?: number }): Promise<EnrollmentRequest[]>;
  getRequest(id: string): Promise<EnrollmentRequest | null>;
  /** Approves or rejects a pending request (notFound / conflict when it is not pending). */
  decideRequest(id: string, decision: 'approved' | 'rejected', by: string, reason: string | null, at: Date, audit: AuditEntry): Promise<EnrollmentRequest>;
  /** Closes an approved request with the certificate it produced. */
  markRequestIssued(id: string, serial: string): Promise<void>;
}

export interface SupersedeStore {
  /**
   * Records that `newSerial` supersedes every other live certificate of the device in that profile
   * (not revoked, not expired at `at`, not already superseded); each is to be revoked at `revokeAt`.
   * `audit` is written once per superseded certificate (its target the old serial); `renewed`, when
   * given, once in all if at least one was superseded, with `replaced` (the old serials) added to
   * its details — in the same statement, so the renewal and its event commit together.
   * Returns the superseded serials.
   */
  supersede(s: { deviceId: string; profile: string; newSerial: string; at: Date; revokeAt: Date }, audit: AuditEntry, renewed?: AuditEntry | null): Promise<string[]>;
  /** Superseded certificates whose grace ended by `at` and that are not revoked yet. */
  dueSuperseded(at: Date, limit: number): Promise<string[]>;
}

/** A SCEP transaction (RFC 8894 §3.2.1.1) and what it led to. */
export interface ScepTransaction {
  transactionId: string;
  /** SHA-256 of the signer certificate's issuer Name DER followed by its SubjectPublicKeyInfo DER. */
  signerSha256: Buffer;
  csrSha256: Buffer;
  requestId: string | null;
  serial: string | null;
}

export interface ScepTransactionStore {
  getScepTransaction(transactionId: string, signerSha256: Buffer): Promise<ScepTransaction | null>;
  /** Records (or updates) what a transaction led to: a queued request or an issued certificate. */
  recordScepTransaction(t: ScepTransaction, at: Date): Promise<void>;
}

/** Everything the enrollment layer stores. */
export interface EnrollmentStore extends SecretStore, ApprovalStore, SupersedeStore, ScepTransactionStore {}

// ---------------------------------------------------------------- expiry tracking (issue 9)

/** Per profile: live device certificates expiring within each requested window, and expired ones. */
export interface ExpiryCounts {
  profile: string;
  /** One count per requested window, in the order asked (not expired yet, notAfter within it). */
  expiring: number[];
  expired: number;
}

/** What an announcing statement reports. */
export interface AnnounceResult {
  /** Certificates it found due (at most the limit: fewer means none is left after them). */
  due: number;
  /** Audit records (events) it wrote; lower than `due` when another process announced some first. */
  announced: number;
  /** Where the next call continues (an opaque keyset cursor, passed back as `after`); null: none found. */
  last: string | null;
}

/**
 * The expiry tracker's reads and writes. The certificates considered are the *current* ones of
 * devices: issued to a device, neither revoked nor superseded, and no newer unrevoked certificate
 * of the same device (inventory's "current certificate"). Each announcing call is ONE statement
 * that records the notices and writes their audit records together; a notice already recorded (by
 * an earlier pass, or by another server at the same moment) is never announced again. Each call
 * continues after the cursor `after` ('' at first) that the previous one returned as `last`
 * (keyset pagination: a pass reads each certificate once, in batches of `limit`).
 */
export interface ExpiryStore {
  /** One aggregate per profile: expiring within each of `windowsMs`, and expired at `now`. */
  expiryCounts(now: Date, windowsMs: readonly number[]): Promise<ExpiryCounts[]>;
  /**
   * certificate.expiring: certificates of the listed profiles whose notAfter is after `now` and
   * within a threshold of it (thresholds at least as long as the certificate's lifetime are
   * skipped). When several thresholds were crossed unannounced (a server was down), only the
   * tightest is announced; the others are recorded as passed.
   */
  announceExpiring(p: { now: Date; actor: string; thresholds: ReadonlyArray<{ profile: string; ms: number; label: string }>; after: string; limit: number }): Promise<AnnounceResult>;
  /** certificate.expired: current certificates of the listed profiles with since < notAfter <= now. */
  announceExpired(p: { now: Date; since: Date; actor: string; profiles: readonly string[]; after: string; limit: number }): Promise<AnnounceResult>;
  /**
   * device.stale: current certificates of devices that are not retired, inside their renewal
   * window at `now` (window start = notAfter − share × lifetime, or notAfter − ms), notAfter after
   * `since`. The event's target is the device id.
   */
  announceStale(p: { now: Date; since: Date; actor: string; windows: ReadonlyArray<{ profile: string; share: number | null; ms: number | null }>; after: string; limit: number }): Promise<AnnounceResult>;
}

/** Background jobs that must run on one server at a time. */
export type ExclusiveJob = 'expiry' | 'service-certs';

export interface JobLockStore {
  /**
   * Runs `fn` while holding the job's PostgreSQL advisory lock (a session lock on a connection of
   * its own); resolves null at once, without running it, when another process holds it.
   */
  exclusive<T>(job: ExclusiveJob, fn: () => Promise<T>): Promise<T | null>;
}
