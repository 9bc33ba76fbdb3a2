/**
 * The narrow storage and key interfaces the CA core needs. `store/` implements the storage ports
 * over PostgreSQL; `signing/` implements Signer. The core never sees SQL or key bytes.
 * (Pattern: Boulder's storage-authority subsets, split by what a caller may do.)
 */
import type { CaErrorKind } from '../core/errors.js';
import type { RevocationReasonName } from '../pki/crl.js';

// ---------------------------------------------------------------- records

export type CertificateStatus = 'valid' | 'revoked' | 'hold';
export type DeviceState = 'active' | 'quarantined' | 'retired';
export type IssuerRole = 'root' | 'device' | 'manufacturing';

/** RFC 5280 §5.3.1 CRLReason names (value 7 is unused); one vocabulary with the CRL builder. */
export type RevocationReason = RevocationReasonName;

export interface IssuerRecord {
  id: number;
  /** Stable short name used in URLs: `root`, `device-ca`, `manufacturing-ca`. */
  name: string;
  role: IssuerRole;
  certDer: Buffer;
  /** Subject key identifier of the CA certificate (goes into AKI of what it issues). */
  ski: Buffer;
  notBefore: Date;
  notAfter: Date;
  active: boolean;
}

export interface DeviceRecord {
  id: string;
  macs: string[];
  serialNumber: string | null;
  model: string | null;
  firmware: string | null;
  profile: string | null;
  state: DeviceState;
  createdAt: Date;
  updatedAt: Date;
  lastEnrolledAt: Date | null;
}

export interface NewDevice {
  id: string;
  macs?: string[];
  serialNumber?: string | null;
  model?: string | null;
  firmware?: string | null;
  profile?: string | null;
}

export interface DevicePatch {
  macs?: string[];
  serialNumber?: string | null;
  model?: string | null;
  firmware?: string | null;
  profile?: string | null;
  state?: DeviceState;
}

export interface DeviceFilter {
  profile?: string;
  model?: string;
  state?: DeviceState;
  limit?: number;
}

/** A subject alternative name as stored and displayed. */
export interface SanEntry {
  type: 'dns' | 'ip' | 'email' | 'uri' | 'otherName';
  value: string;
}

/** What the pipeline records before it signs (step 3 of the issuance pipeline). */
export interface IssuanceIntent {
  /** Canonical lowercase hex serial; UNIQUE in the store, which is what reserves it. */
  serial: string;
  issuerId: number;
  deviceId: string | null;
  profile: string;
  tbsDer: Buffer;
  /** Who asked and how (protocol, actor, CSR SHA-256...), kept for audit and recovery. */
  request: Record<string, unknown>;
  createdAt: Date;
}

/** An intent still pending (its serial identifies it). */
export type PendingIntent = IssuanceIntent;

/** A signed certificate ready to be committed (step 5). */
export interface NewCertificate {
  serial: string;
  issuerId: number;
  deviceId: string | null;
  profile: string;
  subject: string;
  sans: SanEntry[];
  spkiSha256: Buffer;
  fingerprintSha256: Buffer;
  notBefore: Date;
  notAfter: Date;
  der: Buffer;
  /** How the key's possession was established: 'csr' (signature checked), 'factory', 'server'. */
  popMethod: 'csr' | 'factory' | 'server' | 'ca';
}

export interface CertificateRecord extends NewCertificate {
  issuerName: string;
  status: CertificateStatus;
  createdAt: Date;
  revokedAt: Date | null;
  revocationReason: RevocationReason | null;
  invalidityDate: Date | null;
  /** The certificate that replaced this one at re-enrollment, if any. */
  supersededBy?: string | null;
  /** When a superseded certificate is revoked (reason superseded): the end of its grace period. */
  supersedeRevokeAt?: Date | null;
}

export interface CertificateFilter {
  deviceId?: string;
  profile?: string;
  issuerId?: number;
  status?: CertificateStatus;
  /** Only certificates with not_after < this instant (and still not expired before `now` if given). */
  expiringBefore?: Date;
  notExpiredAt?: Date;
  limit?: number;
}

export interface AuditEntry {
  at: Date;
  actor: string;
  action: string;
  /** What the action is about: a serial, a device id, an issuer name. */
  target: string | null;
  details: Record<string, unknown>;
}

export interface RevocationInput {
  serial: string;
  reason: RevocationReason;
  at: Date;
  invalidityDate?: Date | null;
  actor: string;
}

// ---------------------------------------------------------------- ports

/** What the pipeline reads before it issues: the device, and who else holds the public key. */
export interface IssuanceContext {
  device: DeviceRecord | null;
  /** Unexpired certificates (any status) for the same SubjectPublicKeyInfo. */
  keyHolders: Array<{ serial: string; deviceId: string | null; status: CertificateStatus }>;
}

/**
 * Issuance writes. Implementations group the writes of concurrent callers into shared
 * transactions (group commit), but each call resolves only once its own rows are durable.
 */
export interface IssuanceStore {
  /**
   * Reserves the serial and records the intent plus the "before signing" audit entry, durably.
   * Returns 'collision' when the serial is already taken (nothing written for this call).
   */
  recordIntent(intent: IssuanceIntent, audit: AuditEntry): Promise<'recorded' | 'collision'>;
  /**
   * Stores the certificate, marks its intent issued, touches the device's last_enrolled_at and
   * appends the "after signing" audit entry, all in one transaction.
   */
  commitCertificate(cert: NewCertificate, audit: AuditEntry): Promise<void>;
  /** Marks an intent failed (signing failed or a crash left it pending), with an audit entry. */
  failIntent(serial: string, reason: string, audit: AuditEntry): Promise<void>;
  /** Intents still pending that were created before `olderThan` (start-up reconciliation). */
  listPendingIntents(olderThan: Date): Promise<PendingIntent[]>;
  /**
   * The device record and the holders of a public key, in one read. Implementations batch the
   * reads of concurrent callers into one query (a round trip per issuance costs more than the row).
   */
  issuanceContext(deviceId: string, spkiSha256: Buffer, at: Date): Promise<IssuanceContext>;
}

export interface CertificateReader {
  getCertificate(serial: string): Promise<CertificateRecord | null>;
  /** The certificate whose DER hashes to this SHA-256 (how a presented TLS client certificate is found). */
  getCertificateByFingerprint(fingerprintSha256: Buffer): Promise<CertificateRecord | null>;
  listCertificates(filter: CertificateFilter): Promise<CertificateRecord[]>;
  /** Certificates (any status, not expired at `at`) whose SubjectPublicKeyInfo hashes to this. */
  findBySpki(spkiSha256: Buffer, at: Date): Promise<Array<{ serial: string; deviceId: string | null; status: CertificateStatus }>>;
}

export interface RevocationStore {
  /**
   * Revokes (or holds, with reason certificateHold) a certificate. Rules enforced atomically:
   * unknown serial → notFound; already revoked (not on hold) → conflict; hold of a held → conflict.
   * Revoking a held certificate replaces the hold reason.
   */
  revoke(input: RevocationInput): Promise<CertificateRecord>;
}

export interface DeviceStore {
  addDevice(d: NewDevice, at: Date): Promise<DeviceRecord>;
  getDevice(id: string): Promise<DeviceRecord | null>;
  updateDevice(id: string, patch: DevicePatch, at: Date): Promise<DeviceRecord>;
  listDevices(filter: DeviceFilter): Promise<DeviceRecord[]>;
}

export interface IssuerStore {
  /** Inserts or updates (by name) the issuer; returns it with its id. */
  upsertIssuer(i: Omit<IssuerRecord, 'id'>): Promise<IssuerRecord>;
  listIssuers(): Promise<IssuerRecord[]>;
}

export interface AuditStore {
  appendAudit(entries: AuditEntry[]): Promise<void>;
  listAudit(filter: { target?: string; action?: string; limit?: number }): Promise<Array<AuditEntry & { id: number }>>;
}

/** Everything the CA core needs from storage. */
export interface CaStore extends IssuanceStore, CertificateReader, RevocationStore, DeviceStore, IssuerStore, AuditStore {
  close(): Promise<void>;
}

/** Errors the store raises are CaErrors of these kinds (23505 unique violation → conflict). */
export type StoreErrorKind = Extract<CaErrorKind, 'notFound' | 'conflict' | 'unavailable' | 'internal'>;

// ---------------------------------------------------------------- CRLs

export interface CrlRecord {
  issuerId: number;
  /** CRL Number (RFC 5280 §5.2.3): one monotonic sequence per issuer, shared by full and delta CRLs. */
  number: bigint;
  kind: 'full' | 'delta';
  /** 0 when CRLs are not partitioned. */
  shard: number;
  thisUpdate: Date;
  nextUpdate: Date;
  der: Buffer;
}

export interface RevokedEntry {
  serial: string;
  revokedAt: Date;
  reason: RevocationReason;
  invalidityDate: Date | null;
}

export interface CrlStore {
  /** Allocates the next CRL number for an issuer; never returns the same number twice. */
  nextCrlNumber(issuerId: number): Promise<bigint>;
  saveCrl(crl: CrlRecord): Promise<void>;
  latestCrl(issuerName: string, kind: 'full' | 'delta', shard?: number): Promise<CrlRecord | null>;
  /** Revoked or held certificates of an issuer that have not expired before `at`. */
  listRevoked(issuerId: number, at: Date): Promise<RevokedEntry[]>;
}
