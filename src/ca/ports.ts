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
  /**
   * The ca.yaml issuer this CA serves (profiles name it): after rollovers, device-ca, device-ca-2
   * … all have lineage device-ca. Absent = its own name.
   */
  lineage?: string;
  /** From when it issues for its lineage (the latest that has come wins). Absent = notBefore. */
  activatesAt?: Date;
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
  /** Set by an advisory (action restrict): the device's next certificate comes from this profile. */
  restrictedProfile?: string | null;
  /** Set by an advisory (action shorten): the longest validity of the device's next certificate, ms. */
  maxValidityMs?: number | null;
  /** Where the device sits on the network (site, building, VLAN): free text set by admins. */
  segment?: string | null;
  /** The NAC role / identity group of this device when it differs from its profile's nacRole. */
  nacRole?: string | null;
  /** When the device first received a certificate. */
  firstSeenAt?: Date | null;
  /** With DeviceFilter.withCurrent: the last certificate issued to it that is not revoked (null: none). */
  current?: CurrentCertificate | null;
}

/** The last certificate issued to a device that is not revoked: what its renewal and staleness are judged by. */
export interface CurrentCertificate {
  serial: string;
  profile: string;
  notBefore: Date;
  notAfter: Date;
  status: CertificateStatus;
  fingerprintSha256: Buffer;
}

/** A position in the NAC change feed: the transaction id (xid8, decimal) and device id of the last change read. */
export interface NacCursor {
  xid: string;
  id: string;
}

/** The change feed behind GET /api/v1/nac/identities (migration 0014). */
export interface NacStore {
  nacChanges(after: NacCursor, limit: number): Promise<{ devices: Array<{ device: DeviceRecord; xid: string }>; horizon: string }>;
  /** Deletes change rows a newer change of the same device made redundant; the feed reads the same. */
  pruneNacChanges(): Promise<number>;
}

export interface NewDevice {
  id: string;
  macs?: string[];
  serialNumber?: string | null;
  model?: string | null;
  firmware?: string | null;
  profile?: string | null;
  segment?: string | null;
  nacRole?: string | null;
}

export interface DevicePatch {
  macs?: string[];
  serialNumber?: string | null;
  model?: string | null;
  firmware?: string | null;
  profile?: string | null;
  state?: DeviceState;
  segment?: string | null;
  nacRole?: string | null;
}

export interface DeviceFilter {
  profile?: string;
  /** Only these device ids. */
  ids?: readonly string[];
  /** Any of these profiles (criticality filters select profiles). */
  profiles?: readonly string[];
  model?: string;
  state?: DeviceState;
  segment?: string;
  /** Also read each device's current certificate (DeviceRecord.current). */
  withCurrent?: boolean;
  /** Keyset pagination: only devices whose id sorts after this one. */
  after?: string;
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
  /** How the key's possession was established: 'csr' (signature checked), 'factory', 'server', 'ca', 'renewal' (the key of the certificate it replaces). */
  popMethod: 'csr' | 'factory' | 'server' | 'ca' | 'renewal';
  /** The CRL shard (1..N) its CDP names when CRLs are partitioned; absent/null: the full CRL. */
  crlShard?: number | null;
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
  /** Keyset pagination: only certificates after this one in (created_at, serial) order. */
  after?: { createdAt: Date; serial: string };
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
  /**
   * The CRL entry (RFC 5280 §5.1.2.6) of the certificate in its new state, encoded by the core
   * from the values the store settles (the revocation date is kept when a hold becomes a
   * revocation). Stored with the row so that CRLs are built by concatenation.
   */
  crlEntry: (e: { serial: string; revokedAt: Date; reason: RevocationReason; invalidityDate: Date | null }) => Buffer;
}

/** Revoke, hold or release every live (unexpired) certificate of a device. */
export interface DeviceStatusInput {
  deviceId: string;
  at: Date;
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
  /** Releases a hold (recorded as removeFromCRL). Not on hold → conflict; unknown → notFound. */
  release(input: { serial: string; at: Date; actor: string }): Promise<CertificateRecord>;
  /**
   * The same for every unexpired certificate of a device, in one transaction: revoke takes valid
   * and held ones, hold takes valid ones, release takes held ones. Returns the changed
   * certificates (none is not an error); unknown device → notFound.
   */
  revokeDevice(input: DeviceStatusInput & Omit<RevocationInput, 'serial' | 'at' | 'actor'>): Promise<CertificateRecord[]>;
  releaseDevice(input: DeviceStatusInput): Promise<CertificateRecord[]>;
}

/** An open or lifted quarantine of a device. */
export interface DeviceQuarantine {
  deviceId: string;
  reason: string;
  actor: string;
  at: Date;
  /** The certificates this quarantine put on hold (lifting it releases those still held). */
  heldSerials: string[];
  releasedAt: Date | null;
  releasedBy: string | null;
}

/**
 * Containment of a whole device, each in one transaction with its audit entry:
 * - quarantine: active → quarantined; every valid live certificate on hold; the quarantine recorded.
 *   A quarantined or retired device → conflict; unknown → notFound.
 * - lift: quarantined → active; the certificates the quarantine held, if still on hold, released.
 *   Not quarantined → conflict.
 * - retire: active or quarantined → retired; every valid or held live certificate revoked
 *   (cessationOfOperation). Retired already → conflict.
 */
export interface ContainmentStore {
  quarantineDevice(input: DeviceStatusInput & { reason: string; crlEntry: RevocationInput['crlEntry'] }): Promise<{ quarantine: DeviceQuarantine; held: CertificateRecord[] }>;
  liftQuarantine(input: DeviceStatusInput): Promise<{ quarantine: DeviceQuarantine; released: CertificateRecord[] }>;
  retireDevice(input: DeviceStatusInput & { crlEntry: RevocationInput['crlEntry'] }): Promise<CertificateRecord[]>;
  openQuarantine(deviceId: string): Promise<DeviceQuarantine | null>;
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

/** What a CA rollover needs besides IssuerStore: one rollover per lineage at a time, and telling running servers. */
export interface RolloverStore {
  /** Takes the lineage's rollover lock if free (null: another rollover holds it); call the result to let go. */
  tryRolloverLock(lineage: string): Promise<(() => Promise<void>) | null>;
  /** NOTIFY fleetca_issuers: every listening server reloads its issuers. */
  announceIssuers(): Promise<void>;
  addLinkCertificates(links: LinkCertificate[]): Promise<void>;
  listLinkCertificates(): Promise<LinkCertificate[]>;
}

/** A root rollover's link certificate (RFC 4210 §4.4). */
export interface LinkCertificate {
  oldRoot: string;
  newRoot: string;
  kind: 'old-with-new' | 'new-with-old';
  certDer: Buffer;
  notAfter: Date;
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

/** A status change since a base CRL, for a delta CRL (RFC 5280 §5.2.4). */
export interface StatusChange {
  serial: string;
  status: CertificateStatus;
  /** The stored entry when revoked or held; null when released (the delta lists removeFromCRL). */
  crlEntry: Buffer | null;
  /** When the last change happened (the removeFromCRL entry's revocationDate). */
  changedAt: Date;
}

/**
 * One CRL build for one issuer: a consistent snapshot of its revoked and held certificates, under a
 * lock that keeps every other process from building for that issuer at the same time.
 */
export interface CrlBuildSession {
  /** The next CRL number of the issuer (never reused; shared by full and delta CRLs). */
  nextNumber(): Promise<bigint>;
  /**
   * The stored entries of certificates revoked or held and not expired before `listedAfter`, in
   * serial order, as pages of concatenated DER; `shard` narrows to the certificates whose CDP
   * names that shard.
   */
  entryPages(opts: { listedAfter: Date; shard?: number }): AsyncIterable<{ der: Buffer; count: number }>;
  /** The newest base CRL of the issuer. */
  latestBase(): Promise<{ number: bigint; thisUpdate: Date } | null>;
  /** Certificates whose status changed at or after `since` and that expire at or after `listedAfter`. */
  changesSince(since: Date, listedAfter: Date): Promise<StatusChange[]>;
  save(crl: CrlRecord & { base: boolean; baseNumber: bigint | null; entries: number }): Promise<void>;
}

export interface CrlStore {
  /** Allocates the next CRL number for an issuer; never returns the same number twice. */
  nextCrlNumber(issuerId: number): Promise<bigint>;
  saveCrl(crl: CrlRecord): Promise<void>;
  latestCrl(issuerName: string, kind: 'full' | 'delta', shard?: number): Promise<CrlRecord | null>;
  /** Revoked or held certificates of an issuer that have not expired before `at`. */
  listRevoked(issuerId: number, at: Date): Promise<RevokedEntry[]>;
  /**
   * When the newest status change (revoke, hold or release) of one of the issuer's certificates
   * took effect; null when there was none. A CRL with an earlier thisUpdate may miss it.
   */
  lastStatusChange(issuerId: number): Promise<Date | null>;
  /** Revoked or held rows that have no stored CRL entry yet (revoked before migration 0005). */
  missingCrlEntries(limit: number): Promise<Array<RevokedEntry & { issuerId: number }>>;
  setCrlEntries(entries: Array<{ serial: string; der: Buffer }>): Promise<void>;
  /**
   * Runs `fn` in a CRL build session for the issuer; resolves null without running it when another
   * process holds the issuer's build lock (it will publish; the caller may retry later).
   */
  crlBuild<T>(issuerId: number, fn: (s: CrlBuildSession) => Promise<T>): Promise<T | null>;
}

// ---------------------------------------------------------------- OCSP

/** What the OCSP responder needs to know about one certificate. */
export interface OcspCertState {
  serial: string;
  issuerId: number;
  status: CertificateStatus;
  revokedAt: Date | null;
  reason: RevocationReason | null;
  notAfter: Date;
  /** The stored pre-signed response (SHA-1 CertID), when there is one. */
  stored: { der: Buffer; thisUpdate: Date; nextUpdate: Date } | null;
}

/** A pre-signed response to store, valid only if the certificate still has the status it states. */
export interface OcspResponseRow {
  serial: string;
  status: CertificateStatus;
  reason: RevocationReason | null;
  thisUpdate: Date;
  nextUpdate: Date;
  der: Buffer;
}

export interface OcspStore {
  /** Certificates by serial (unknown serials are simply absent). */
  ocspStates(serials: string[]): Promise<OcspCertState[]>;
  /**
   * Stores responses; a row whose certificate changed status meanwhile is skipped (a status change
   * in flight is waited for), so a stored response never contradicts the certificate. Returns how
   * many were stored.
   */
  saveOcspResponses(rows: OcspResponseRow[]): Promise<number>;
  /**
   * Unexpired certificates of an issuer, serial > `after`, whose stored response is missing or
   * has nextUpdate before `refreshBefore`; at most `limit`, in serial order.
   */
  ocspDue(issuerId: number, now: Date, refreshBefore: Date, after: string, limit: number): Promise<OcspCertState[]>;
}

// ---------------------------------------------------------------- tamper-evident audit chain

/** An audit row as the hash chain covers it (ids and positions fit in a JS number). */
export interface AuditChainRow {
  id: number;
  /** Chain position (1, 2, 3 …); null until sealed. */
  seq: number | null;
  /** `at` in UTC with the microseconds the database keeps: `2030-01-01T00:00:00.000000Z`. */
  at: string;
  actor: string;
  action: string;
  target: string | null;
  /** The stored JSON value, as parsed. */
  details: unknown;
  prevHash: Buffer | null;
  hash: Buffer | null;
}

/** What sealing writes on one row. */
export interface AuditChainLink {
  id: number;
  seq: number;
  prevHash: Buffer;
  hash: Buffer;
}

/** A signed checkpoint of the chain: the row at `seq` has `hash`. */
export interface AuditAnchor {
  seq: number;
  hash: Buffer;
  signedAt: Date;
  signature: Buffer;
  /** SubjectPublicKeyInfo of the key that signed (checked against the trusted audit key). */
  keySpki: Buffer;
}

/** One sealer's view, while it alone holds the sealer lock (across processes). */
export interface AuditSealSession {
  /** The sealed row with the highest seq. */
  head(): Promise<{ seq: number; hash: Buffer } | null>;
  /** The lowest id of a committed unsealed row and the highest id of any row; null when all are sealed. */
  unsealedSpan(): Promise<{ minId: number; maxId: number } | null>;
  /**
   * Committed unsealed rows with fromId <= id < toId, lowest id first. An id range rather than a
   * LIMIT: whatever plan the statistics of the moment give, a page reads at most that range.
   */
  unsealed(fromId: number, toId: number): Promise<AuditChainRow[]>;
  /** Writes the links in one transaction; a row already sealed or gone fails the whole write. */
  seal(links: AuditChainLink[], sealedAt: Date): Promise<void>;
  latestAnchor(): Promise<AuditAnchor | null>;
  saveAnchor(anchor: AuditAnchor): Promise<void>;
}

/** A consistent snapshot of the chain, for verification. */
export interface AuditChainSnapshot {
  /** Every anchor, by seq. */
  anchors(): Promise<AuditAnchor[]>;
  /** Sealed rows by seq, in pages (never the whole chain in memory). */
  rows(pageSize: number): AsyncIterable<AuditChainRow[]>;
  /** Rows still unsealed whose `at` is before `before`. */
  staleUnsealed(before: Date): Promise<{ count: number; oldest: Date | null }>;
}

export interface AuditChainStore {
  /**
   * Runs `fn` holding the sealer lock. `wait` false: resolves null at once when another process
   * holds it (it is sealing); true: waits for it.
   */
  auditSealSession<T>(wait: boolean, fn: (s: AuditSealSession) => Promise<T>): Promise<T | null>;
  /** Runs `fn` on one read-only snapshot of the chain and its anchors. */
  auditChainSnapshot<T>(fn: (s: AuditChainSnapshot) => Promise<T>): Promise<T>;
  /** Sealed rows with since <= at < until (until optional), by seq, in pages, from one snapshot. */
  auditExport(range: { since: Date; until?: Date }, pageSize: number): AsyncIterable<AuditChainRow[]>;
}

// ---------------------------------------------------------------- webhooks outbox

/** One delivery claimed from the outbox, with its event. */
export interface WebhookDelivery {
  endpoint: string;
  /** Row id of the event (the delivery key with `endpoint`). */
  event: number;
  /** The event's public id, for receivers to drop duplicates. */
  eventId: string;
  type: string;
  at: Date;
  subject: string | null;
  data: Record<string, unknown>;
  /** Failed attempts so far. */
  attempts: number;
}

export interface WebhookOutboxStore {
  /** Makes the stored endpoint list (name → event types) the configured one. */
  syncWebhookEndpoints(endpoints: Array<{ name: string; events: string[] }>): Promise<void>;
  /**
   * Claims up to `limit` due deliveries for `leaseMs` (another process skips them meanwhile; a
   * process that dies leaves them to be retried when the lease ends).
   */
  claimDeliveries(now: Date, leaseMs: number, limit: number): Promise<WebhookDelivery[]>;
  markDelivered(endpoint: string, event: number, at: Date): Promise<void>;
  /** A failed attempt: retried at `retryAt`, or given up (dead) when null. */
  markFailed(endpoint: string, event: number, error: string, retryAt: Date | null): Promise<void>;
}

// ---------------------------------------------------------------- admin API tokens

export type ApiRole = 'admin' | 'operator' | 'factory' | 'auditor' | 'nac';

export interface NewApiToken {
  id: string;
  name: string;
  role: ApiRole;
  mac: Buffer;
  createdAt: Date;
  createdBy: string;
  expiresAt: Date;
}

export interface ApiToken extends NewApiToken {
  revokedAt: Date | null;
  lastUsedAt: Date | null;
}

export interface ApiTokenStore {
  /** A token with the same name → conflict. */
  createApiToken(t: NewApiToken): Promise<ApiToken>;
  getApiToken(id: string): Promise<ApiToken | null>;
  listApiTokens(): Promise<ApiToken[]>;
  revokeApiToken(name: string, at: Date, actor: string): Promise<boolean>;
  touchApiToken(id: string, at: Date): Promise<void>;
}

// ---------------------------------------------------------------- advisories

export type AdvisoryAction = 'quarantine' | 'restrict' | 'shorten';

export interface Advisory {
  id: number;
  model: string;
  firmwareRange: string;
  action: AdvisoryAction;
  restrictedProfile: string | null;
  maxValidityMs: number | null;
  reason: string;
  devices: string[];
  createdAt: Date;
  createdBy: string;
  withdrawnAt: Date | null;
  withdrawnBy: string | null;
}

export interface AdvisoryStore {
  /** Active and retired excluded: the devices of a model that may be affected (id, firmware, state). */
  devicesOfModel(model: string): Promise<Array<{ id: string; firmware: string | null; state: DeviceState }>>;
  /**
   * Records the advisory and, for restrict/shorten, marks the devices (one transaction). Quarantine
   * is applied by the caller per device after this returns (each in its own transaction).
   */
  recordAdvisory(a: Omit<Advisory, 'id' | 'withdrawnAt' | 'withdrawnBy'>): Promise<Advisory>;
  /** Withdraws it and clears what it set on devices (not what a newer advisory set). Unknown → notFound; withdrawn → conflict. */
  withdrawAdvisory(id: number, at: Date, actor: string): Promise<Advisory>;
  listAdvisories(): Promise<Advisory[]>;
}

// ---------------------------------------------------------------- admin client certificates

/** The admin CA (migration 0012): a self-signed root apart from the device hierarchy, not an issuer. */
export interface AdminCaRecord {
  certDer: Buffer;
  notBefore: Date;
  notAfter: Date;
  createdAt: Date;
  createdBy: string;
}

/** A client certificate of the admin API; `certDer` and `fingerprint` are null until it is signed. */
export interface AdminCertificate {
  /** Lower-case hex, like certificates.serial. */
  serial: string;
  /** SHA-256 of the certificate DER: what a TLS client presents is looked up by it. */
  fingerprint: Buffer | null;
  certDer: Buffer | null;
  name: string;
  role: ApiRole;
  notBefore: Date;
  notAfter: Date;
  createdAt: Date;
  createdBy: string;
  revokedAt: Date | null;
  revokedBy: string | null;
}

export type NewAdminCertificate = Pick<AdminCertificate, 'serial' | 'name' | 'role' | 'notBefore' | 'notAfter' | 'createdAt' | 'createdBy'>;

export interface AdminCertStore {
  getAdminCa(): Promise<AdminCaRecord | null>;
  /** Stores the admin CA unless one is stored already (with `audit`); returns the stored one. */
  saveAdminCa(ca: AdminCaRecord, audit: AuditEntry): Promise<AdminCaRecord>;
  /** Reserves the serial before anything is signed (with `audit`); a serial in use → conflict. */
  reserveAdminCertificate(c: NewAdminCertificate, audit: AuditEntry): Promise<void>;
  /** Stores the signed certificate of a reserved serial (with `audit`). */
  completeAdminCertificate(serial: string, certDer: Buffer, fingerprint: Buffer, audit: AuditEntry): Promise<AdminCertificate>;
  /** The signed certificate with this SHA-256 fingerprint, revoked or not. */
  findAdminCertificate(fingerprint: Buffer): Promise<AdminCertificate | null>;
  /** By name, then creation time. */
  listAdminCertificates(filter?: { name?: string }): Promise<AdminCertificate[]>;
  /** Revokes every unrevoked certificate with this name or serial, an audit row for each; returns them. */
  revokeAdminCertificates(by: { name: string } | { serial: string }, at: Date, actor: string): Promise<AdminCertificate[]>;
}
