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
   * Returns the superseded serials.
   */
  supersede(s: { deviceId: string; profile: string; newSerial: string; at: Date; revokeAt: Date }, audit: AuditEntry): Promise<string[]>;
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
