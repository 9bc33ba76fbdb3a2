/**
 * PostgreSQL implementation of the CA core's storage ports (`ca/ports.ts`).
 *
 * Issuance writes (recordIntent, commitCertificate, failIntent) go through a group-commit queue:
 * a durable COMMIT costs far more than a row (≈200 µs of server CPU plus an fsync per one-row
 * transaction, against ≈5 µs per row of a multi-row statement), so the writes of concurrent callers
 * are flushed together. While a flush is in flight new writes queue; when it completes, everything
 * queued goes out in ONE transaction of multi-row statements (`unnest` of array parameters), sent
 * pipelined with its BEGIN and COMMIT on a connection of its own (one round trip, not one per
 * statement), and each caller's promise settles only after that COMMIT. A write that fails on its
 * own row (a serial collision, an intent that is no longer pending) settles its caller alone; a
 * statement that fails because of one row is retried row by row, so only the offending caller
 * sees the error.
 *
 * Everything else is a plain parameterized query. Errors are CaErrors (see pg-errors.ts).
 */
import type { Writable } from 'node:stream';
import pg from 'pg';
import type {
  AuditEntry,
  CaStore,
  CertificateFilter,
  CertificateRecord,
  CertificateStatus,
  CrlRecord,
  Advisory,
  AdvisoryStore,
  ApiToken,
  ApiTokenStore,
  ContainmentStore,
  NewApiToken,
  WebhookDelivery,
  WebhookOutboxStore,
  CrlBuildSession,
  DeviceQuarantine,
  NacCursor,
  NacStore,
  RolloverStore,
  LinkCertificate,
  CrlStore,
  DeviceStatusInput,
  OcspCertState,
  OcspResponseRow,
  OcspStore,
  DeviceFilter,
  DevicePatch,
  DeviceRecord,
  DeviceState,
  IssuanceContext,
  IssuanceIntent,
  IssuerRecord,
  IssuerRole,
  NewCertificate,
  NewDevice,
  PendingIntent,
  RevocationInput,
  RevocationReason,
  RevokedEntry,
  SanEntry,
} from '../ca/ports.js';
import { CaError, conflict, internal, notFound, unavailable } from '../core/errors.js';
import * as audit from './pg-audit.js';
import type { AuditChainRow, AuditChainSnapshot, AuditSealSession } from '../ca/ports.js';
import * as crls from './pg-crls.js';
import * as enr from './pg-enrollment.js';
import * as exp from './pg-expiry.js';
import * as rev from './pg-revocation.js';
import * as wh from './pg-webhooks.js';
import * as tok from './pg-tokens.js';
import * as adv from './pg-advisories.js';
import * as bat from './pg-batches.js';
import type { BatchCertificate, BatchDevice, BatchDeviceInput, BatchOutcome, BatchRecord, BatchReject, BatchStore, NewBatch } from '../bulk/ports.js';
import * as acert from './pg-admin-certs.js';
import { ReadBatcher } from './read-batcher.js';
import type { AdminCaRecord, AdminCertificate, AdminCertStore, NewAdminCertificate } from '../ca/ports.js';
import type { EnrollmentRequest, EnrollmentStore, NewEnrollmentRequest, NewSecret, RequestState, ScepTransaction, SecretRecord } from '../enrollment/ports.js';
import type { AnnounceResult, ExclusiveJob, ExpiryCounts, ExpiryStore, JobLockStore } from '../enrollment/ports.js';
import { isConnectionError, isDataError, isRetryable, mapPgError } from './pg-errors.js';

/** Tuning of the group-commit queue. */
export interface PgStoreOptions {
  /**
   * Flushes (transactions) in flight at once, each on its own pipelined connection (the group
   * commit's own, beside the pool). Default 2: in the full issuance pipeline on the 2-core target
   * (crypto workers, the event loop and PostgreSQL sharing the cores) two flushes measured ~2.2k
   * certificates/s at 64 callers against ~1.7k/s with one; the store alone, with nothing else on
   * the CPU, batches best with one (≈4.8k vs ≈4.5k/s).
   */
  maxInFlight?: number;
  /** Most writes in one flush. Default 256. */
  maxBatch?: number;
  /**
   * Under concurrency (the previous flush carried more than one write), a flush with fewer than
   * `gatherTarget` writes waits up to this long for more callers to join it. A flush has a fixed cost
   * (statement planning, WAL flush, wake-ups) that a larger batch shares; a lone caller never waits.
   * Default 2 ms; 0 disables.
   */
  gatherMs?: number;
  /** See gatherMs. Default 24. */
  gatherTarget?: number;
  /** Operational log (not the audit log). */
  log?: (msg: string) => void;
}

/** How `PgStore.open` reaches the database. */
export interface PgStoreOpenOptions extends PgStoreOptions {
  connectionString?: string;
  poolConfig?: pg.PoolConfig;
  /** Pool size; default 8 (or poolConfig.max). */
  max?: number;
}

const DEFAULT_POOL_SIZE = 8;

/**
 * Every named (prepared) statement fleetca sends is a multi-row statement over unnest($n) arrays or
 * `= ANY($n)` lookups by key. PostgreSQL's default plan cache keeps re-planning such statements per
 * execution (a custom plan for the actual array looks cheaper than the generic one), which cost
 * ~0.15–0.2 ms of backend CPU per call, about a quarter of PostgreSQL's CPU per EST enrollment. The
 * generic plans of all of them use the same indexes (checked with EXPLAIN (GENERIC_PLAN) on a
 * populated database), so the store's connections plan each once. Statements without a name
 * (ad hoc, one-shot) are planned with their values as before: this setting does not touch them.
 * Behind a transaction-pooling PgBouncer the SET may not follow the statements to the server: then
 * PostgreSQL just plans as it did before.
 */
const GENERIC_PLANS = 'SET plan_cache_mode = force_generic_plan';
const DEFAULT_MAX_IN_FLIGHT = 2;
const DEFAULT_MAX_BATCH = 256;
const DEFAULT_GATHER_MS = 2;
/**
 * Certificates committed by this process after which it ANALYZEs the issuance tables (then ×4).
 * Prepared statements keep the plan made from the statistics they first saw: planned while the
 * tables were empty (a fresh CA), the batched statements seq-scan them, and issuance slows as the
 * fleet grows, until autovacuum's next ANALYZE (a minute or more) invalidates the plans. Measured
 * at 64 callers: ~1.5k/s before, ~2.1k/s after the refresh. Forcing custom plans instead cost 60%
 * more PostgreSQL CPU per issuance (planning the batched statements every time).
 */
const ANALYZE_AT = [256, 1024, 4096, 16384, 65536];
/** One createSecrets call of at least this many secrets refreshes enrollment_secrets' statistics. */
const ANALYZE_SECRETS_AT = 500;
const DEFAULT_GATHER_TARGET = 24;
/** Deadlocks between concurrent flushes (two batches touching one device row) are retried. */
const MAX_RETRIES = 3;

// ---------------------------------------------------------------- group-commit operations

interface Settle<T> {
  resolve(value: T): void;
  reject(err: CaError): void;
}
type IntentOp = { kind: 'intent'; intent: IssuanceIntent; audit: AuditEntry } & Settle<'recorded' | 'collision'>;
type CommitOp = { kind: 'commit'; cert: NewCertificate; audit: AuditEntry } & Settle<void>;
type FailOp = { kind: 'fail'; serial: string; reason: string; audit: AuditEntry } & Settle<void>;
/**
 * The enrollment layer's writes at every enrollment ride in the group transactions too instead of
 * paying a durable COMMIT each (measured: half the PostgreSQL CPU of an EST Basic enrollment):
 * claim and consume of one-time secrets (every Basic enrollment makes both) and supersession.
 */
type ClaimOp = { kind: 'claim'; id: string; at: Date } & Settle<boolean>;
type ConsumeOp = { kind: 'consume'; id: string; serial: string; at: Date; audit: AuditEntry } & Settle<void>;
/** Supersession of the certificates a new one replaces (enrollment/renew.ts supersedeReplaced). */
type SupersedeOp = { kind: 'supersede'; s: SupersedeInput; audit: AuditEntry; renewed: AuditEntry | null } & Settle<string[]>;
type SupersedeInput = { deviceId: string; profile: string; newSerial: string; at: Date; revokeAt: Date };
/** The record of a SCEP transaction (every PKCSReq/RenewalReq writes one). */
type ScepTxOp = { kind: 'scepTx'; t: ScepTransaction; at: Date } & Settle<void>;
type WriteOp = IntentOp | CommitOp | FailOp | ClaimOp | ConsumeOp | SupersedeOp | ScepTxOp;

/** What one operation of a flush came to; applied to its promise only after COMMIT. */
type Outcome = { ok: true; value: unknown } | { ok: false; error: CaError };

// Each statement below is ONE multi-row statement for the whole group; `ord` is the position of
// the caller in the group (WITH ORDINALITY), used to hand each caller its own result.

/**
 * Step 2+3 of the pipeline for many callers: reserve each serial (ON CONFLICT DO NOTHING reports
 * a collision instead of failing the statement), then write the intent and the "before signing"
 * audit row only for the serials this statement reserved. Of two callers with the same serial in
 * one batch, the first wins.
 */
const SQL_RECORD_INTENTS = `
WITH input AS (
  SELECT * FROM unnest($1::text[], $2::int2[], $3::text[], $4::text[], $5::bytea[], $6::jsonb[], $7::timestamptz[],
                       $8::timestamptz[], $9::text[], $10::text[], $11::text[], $12::jsonb[])
    WITH ORDINALITY AS t(serial, issuer_id, device_id, profile, tbs_der, request, created_at,
                         a_at, a_actor, a_action, a_target, a_details, ord)
), first AS (
  SELECT DISTINCT ON (serial) * FROM input ORDER BY serial, ord
), reserved AS (
  INSERT INTO serials (serial, issuer_id, reserved_at)
  SELECT serial, issuer_id, created_at FROM first ORDER BY ord
  ON CONFLICT (serial) DO NOTHING
  RETURNING serial
), won AS (
  SELECT f.* FROM first f JOIN reserved r USING (serial)
), intents AS (
  INSERT INTO issuance_intents (serial, issuer_id, device_id, profile, tbs_der, request, state, created_at)
  SELECT serial, issuer_id, device_id, profile, tbs_der, request, 'pending', created_at FROM won ORDER BY ord
), audit AS (
  INSERT INTO audit_log (at, actor, action, target, details)
  SELECT a_at, a_actor, a_action, a_target, a_details FROM won ORDER BY ord
)
SELECT ord FROM won`;

/**
 * Step 5 for many callers: mark each intent issued — only if it is still pending — and insert the
 * certificate, device touch and "after signing" audit row only for those. A caller whose intent is
 * no longer pending (reconciled as failed, already issued, unknown) gets no certificate row; the
 * final SELECT reports its intent's state as of the statement's snapshot.
 */
const SQL_COMMIT_CERTIFICATES = `
WITH input AS (
  SELECT * FROM unnest($1::text[], $2::int2[], $3::text[], $4::text[], $5::text[], $6::jsonb[], $7::bytea[], $8::bytea[],
                       $9::timestamptz[], $10::timestamptz[], $11::bytea[], $12::text[],
                       $13::timestamptz[], $14::text[], $15::text[], $16::text[], $17::jsonb[], $18::int2[])
    WITH ORDINALITY AS t(serial, issuer_id, device_id, profile, subject, sans, spki_sha256, fingerprint_sha256,
                         not_before, not_after, der, pop_method,
                         a_at, a_actor, a_action, a_target, a_details, crl_shard, ord)
), issued AS (
  UPDATE issuance_intents ii SET state = 'issued', completed_at = i.a_at
  FROM input i
  WHERE ii.serial = i.serial AND ii.state = 'pending'
  RETURNING ii.serial
), won AS (
  SELECT i.* FROM input i JOIN issued USING (serial)
), certs AS (
  INSERT INTO certificates (serial, issuer_id, device_id, profile, subject, sans, spki_sha256, fingerprint_sha256,
                            not_before, not_after, der, pop_method, status, created_at, crl_shard)
  SELECT serial, issuer_id, device_id, profile, subject, sans, spki_sha256, fingerprint_sha256,
         not_before, not_after, der, pop_method, 'valid', a_at, crl_shard
  FROM won ORDER BY ord
), devices_touched AS (
  UPDATE devices d SET last_enrolled_at = greatest(d.last_enrolled_at, x.at), first_seen_at = coalesce(d.first_seen_at, x.at)
  FROM (SELECT device_id, max(a_at) AS at FROM won WHERE device_id IS NOT NULL GROUP BY device_id) x
  WHERE d.id = x.device_id
), audit AS (
  INSERT INTO audit_log (at, actor, action, target, details)
  SELECT a_at, a_actor, a_action, a_target, a_details FROM won ORDER BY ord
)
SELECT i.ord, (w.ord IS NOT NULL) AS won, ii.state
FROM input i LEFT JOIN won w ON w.ord = i.ord LEFT JOIN issuance_intents ii ON ii.serial = i.serial`;

/** Marks pending intents failed (signing failed, or reconciliation after a crash). */
const SQL_FAIL_INTENTS = `
WITH input AS (
  SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::jsonb[])
    WITH ORDINALITY AS t(serial, failure, a_at, a_actor, a_action, a_target, a_details, ord)
), failed AS (
  UPDATE issuance_intents ii SET state = 'failed', failure = i.failure, completed_at = i.a_at
  FROM input i
  WHERE ii.serial = i.serial AND ii.state = 'pending'
  RETURNING ii.serial
), won AS (
  SELECT i.* FROM input i JOIN failed USING (serial)
), audit AS (
  INSERT INTO audit_log (at, actor, action, target, details)
  SELECT a_at, a_actor, a_action, a_target, a_details FROM won ORDER BY ord
)
SELECT i.ord, (w.ord IS NOT NULL) AS won, ii.state
FROM input i LEFT JOIN won w ON w.ord = i.ord LEFT JOIN issuance_intents ii ON ii.serial = i.serial`;

/**
 * Claims one-time secrets for many callers: of two callers claiming the same secret in one group
 * the first wins, as it would one after the other; the row lock serialises claims in concurrent
 * groups (the loser re-checks the row and finds it claimed). A claim has no expiry: only
 * releaseSecret (issuance failed) frees it, so a process that dies between committing a
 * certificate and consuming the secret can never let it be used twice.
 */
const SQL_CLAIM_SECRETS = `
WITH input AS (
  SELECT * FROM unnest($1::bigint[], $2::timestamptz[]) WITH ORDINALITY AS t(id, at, ord)
), first AS (
  SELECT DISTINCT ON (id) * FROM input ORDER BY id, ord
), claimed AS (
  UPDATE enrollment_secrets s SET claimed_at = f.at
  FROM first f
  WHERE s.id = f.id AND s.consumed_at IS NULL AND s.claimed_at IS NULL AND s.expires_at > f.at
  RETURNING f.ord
)
SELECT ord FROM claimed`;

/** Consumes secrets for many callers, with the audit row of each secret this consumed. */
const SQL_CONSUME_SECRETS = `
WITH input AS (
  SELECT * FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::text[], $6::text[], $7::text[], $8::jsonb[])
    WITH ORDINALITY AS t(id, serial, consumed_at, a_at, a_actor, a_action, a_target, a_details, ord)
), first AS (
  SELECT DISTINCT ON (id) * FROM input ORDER BY id, ord
), used AS (
  UPDATE enrollment_secrets s SET consumed_at = f.consumed_at, serial = f.serial
  FROM first f
  WHERE s.id = f.id AND s.consumed_at IS NULL
  RETURNING f.ord
)
INSERT INTO audit_log (at, actor, action, target, details)
SELECT i.a_at, i.a_actor, i.a_action, i.a_target, i.a_details FROM input i JOIN used u ON u.ord = i.ord ORDER BY i.ord`;

/**
 * Supersession for many callers, each naming a different (device, profile): marks the other live
 * certificates of that device and profile replaced by the caller's new one, with an audit row per
 * certificate replaced and, when the caller passes one and something was replaced, its
 * certificate.renewed row listing them. Returns (caller, replaced serial) pairs.
 */
const SQL_SUPERSEDE = `
WITH input AS (
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[],
                       $6::timestamptz[], $7::text[], $8::text[], $9::text[], $10::jsonb[],
                       $11::timestamptz[], $12::text[], $13::text[], $14::text[], $15::jsonb[])
    WITH ORDINALITY AS t(device_id, profile, new_serial, at, revoke_at,
                         a_at, a_actor, a_action, a_target, a_details,
                         r_at, r_actor, r_action, r_target, r_details, ord)
), upd AS (
  UPDATE certificates c SET superseded_by = i.new_serial, supersede_revoke_at = i.revoke_at
  FROM input i
  WHERE c.device_id = i.device_id AND c.profile = i.profile AND c.serial <> i.new_serial
    AND c.superseded_by IS NULL AND c.status <> 'revoked' AND c.not_after >= i.at
  RETURNING i.ord, c.serial
), audit AS (
  INSERT INTO audit_log (at, actor, action, target, details)
  SELECT x.at, x.actor, x.action, x.target, x.details FROM (
    SELECT i.ord, 0 AS k, u.serial AS s, i.a_at AS at, i.a_actor AS actor, i.a_action AS action,
           coalesce(u.serial, i.a_target) AS target, i.a_details || jsonb_build_object('supersededBy', i.new_serial) AS details
      FROM upd u JOIN input i ON i.ord = u.ord
    UNION ALL
    SELECT i.ord, 1, NULL, i.r_at, i.r_actor, i.r_action, i.r_target,
           i.r_details || jsonb_build_object('replaced', (SELECT jsonb_agg(u.serial ORDER BY u.serial) FROM upd u WHERE u.ord = i.ord))
      FROM input i
     WHERE i.r_action IS NOT NULL AND EXISTS (SELECT 1 FROM upd u WHERE u.ord = i.ord)
  ) x ORDER BY x.ord, x.k, x.s
)
SELECT ord, serial FROM upd ORDER BY ord, serial`;

/** Upserts SCEP transaction records for many callers, each naming a different transaction (see writeScepTxs). */
const SQL_RECORD_SCEP_TXS = `
INSERT INTO scep_transactions (transaction_id, signer_sha256, csr_sha256, request_id, serial, created_at, updated_at)
SELECT t.transaction_id, t.signer_sha256, t.csr_sha256, t.request_id, t.serial, t.at, t.at
  FROM unnest($1::text[], $2::bytea[], $3::bytea[], $4::bigint[], $5::text[], $6::timestamptz[])
    AS t(transaction_id, signer_sha256, csr_sha256, request_id, serial, at)
ON CONFLICT (transaction_id, signer_sha256) DO UPDATE
  SET csr_sha256 = EXCLUDED.csr_sha256, request_id = coalesce(EXCLUDED.request_id, scep_transactions.request_id),
      serial = coalesce(EXCLUDED.serial, scep_transactions.serial), updated_at = EXCLUDED.updated_at`;

/** Devices by id and unexpired certificates by SPKI hash, for a batch of issuance-context reads. */
const SQL_ISSUANCE_CONTEXT = `
SELECT json_build_object(
  'devices', (SELECT coalesce(json_agg(d), '[]'::json) FROM devices d WHERE d.id = ANY($1::text[])),
  'keys', (SELECT coalesce(json_agg(json_build_object('serial', c.serial, 'device_id', c.device_id, 'status', c.status,
                                                      'spki', encode(c.spki_sha256, 'hex'), 'not_after', c.not_after)), '[]'::json)
           FROM certificates c WHERE c.spki_sha256 = ANY($2::bytea[]) AND c.not_after >= $3)
) AS r`;

interface ContextRead {
  deviceId: string;
  spkiSha256: Buffer;
  at: Date;
}

// ---------------------------------------------------------------- rows

interface DeviceRow {
  id: string;
  macs: string[];
  serial_number: string | null;
  model: string | null;
  firmware: string | null;
  profile: string | null;
  state: DeviceState;
  created_at: Date;
  updated_at: Date;
  last_enrolled_at: Date | null;
  restricted_profile?: string | null;
  max_validity_ms?: string | number | null;
  segment?: string | null;
  nac_role?: string | null;
  first_seen_at?: Date | null;
  // listDevices withCurrent
  cur_serial?: string | null;
  cur_profile?: string;
  cur_not_before?: Date;
  cur_not_after?: Date;
  cur_status?: CertificateStatus;
  cur_fingerprint?: Buffer;
}

interface IssuerRow {
  id: number;
  name: string;
  role: IssuerRole;
  cert_der: Buffer;
  ski: Buffer;
  not_before: Date;
  not_after: Date;
  active: boolean;
  lineage: string;
  activates_at: Date;
}

interface CertificateRow {
  serial: string;
  issuer_id: number;
  issuer_name: string;
  device_id: string | null;
  profile: string;
  subject: string;
  sans: SanEntry[];
  spki_sha256: Buffer;
  fingerprint_sha256: Buffer;
  not_before: Date;
  not_after: Date;
  der: Buffer;
  pop_method: NewCertificate['popMethod'];
  status: CertificateStatus;
  revoked_at: Date | null;
  revocation_reason: RevocationReason | null;
  invalidity_date: Date | null;
  created_at: Date;
  superseded_by: string | null;
  supersede_revoke_at: Date | null;
}

interface IntentRow {
  serial: string;
  issuer_id: number;
  device_id: string | null;
  profile: string;
  tbs_der: Buffer;
  request: Record<string, unknown>;
  created_at: Date;
}

interface AuditRow {
  id: string;
  at: Date;
  actor: string;
  action: string;
  target: string | null;
  details: Record<string, unknown>;
}

const CERT_COLUMNS = `c.serial, c.issuer_id, i.name AS issuer_name, c.device_id, c.profile, c.subject, c.sans,
  c.spki_sha256, c.fingerprint_sha256, c.not_before, c.not_after, c.der, c.pop_method, c.status,
  c.revoked_at, c.revocation_reason, c.invalidity_date, c.created_at, c.superseded_by, c.supersede_revoke_at`;

/** The current certificate of each device `d`: the last issued that is not revoked. */
/** Advisory lock namespace of CA rollovers ('roll'); the key is hashtext(lineage). */
const ROLLOVER_LOCK_NS = 0x726f6c6c;

const CURRENT_JOIN = `LEFT JOIN LATERAL (
  SELECT c.serial, c.profile, c.not_before, c.not_after, c.status, c.fingerprint_sha256 FROM certificates c
  WHERE c.device_id = d.id AND c.status <> 'revoked' ORDER BY c.created_at DESC, c.serial DESC LIMIT 1
) cur ON true`;
const CURRENT_COLUMNS = `cur.serial AS cur_serial, cur.profile AS cur_profile, cur.not_before AS cur_not_before,
  cur.not_after AS cur_not_after, cur.status AS cur_status, cur.fingerprint_sha256 AS cur_fingerprint`;

const toDevice = (r: DeviceRow): DeviceRecord => ({
  id: r.id,
  macs: r.macs,
  serialNumber: r.serial_number,
  model: r.model,
  firmware: r.firmware,
  profile: r.profile,
  state: r.state,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
  lastEnrolledAt: r.last_enrolled_at,
  restrictedProfile: r.restricted_profile ?? null,
  maxValidityMs: r.max_validity_ms === null || r.max_validity_ms === undefined ? null : Number(r.max_validity_ms),
  segment: r.segment ?? null,
  nacRole: r.nac_role ?? null,
  firstSeenAt: r.first_seen_at ?? null,
  ...(r.cur_serial !== undefined
    ? {
        current:
          r.cur_serial === null
            ? null
            : { serial: r.cur_serial, profile: r.cur_profile!, notBefore: r.cur_not_before!, notAfter: r.cur_not_after!, status: r.cur_status!, fingerprintSha256: r.cur_fingerprint! },
      }
    : {}),
});

/** A devices row as json_agg renders it (timestamps as text). */
function jsonDeviceRow(d: Record<string, unknown>): DeviceRow {
  const date = (v: unknown) => (v === null || v === undefined ? null : new Date(String(v)));
  return {
    id: String(d.id),
    macs: (d.macs as string[] | null) ?? [],
    serial_number: (d.serial_number as string | null) ?? null,
    model: (d.model as string | null) ?? null,
    firmware: (d.firmware as string | null) ?? null,
    profile: (d.profile as string | null) ?? null,
    state: d.state as DeviceState,
    created_at: date(d.created_at)!,
    updated_at: date(d.updated_at)!,
    last_enrolled_at: date(d.last_enrolled_at),
    restricted_profile: (d.restricted_profile as string | null | undefined) ?? null,
    max_validity_ms: (d.max_validity_ms as number | null | undefined) ?? null,
    segment: (d.segment as string | null | undefined) ?? null,
    nac_role: (d.nac_role as string | null | undefined) ?? null,
    first_seen_at: date(d.first_seen_at),
  };
}

const toIssuer = (r: IssuerRow): IssuerRecord => ({
  id: r.id,
  name: r.name,
  role: r.role,
  certDer: r.cert_der,
  ski: r.ski,
  notBefore: r.not_before,
  notAfter: r.not_after,
  active: r.active,
  lineage: r.lineage,
  activatesAt: r.activates_at,
});

const toCertificate = (r: CertificateRow): CertificateRecord => ({
  serial: r.serial,
  issuerId: r.issuer_id,
  issuerName: r.issuer_name,
  deviceId: r.device_id,
  profile: r.profile,
  subject: r.subject,
  sans: r.sans,
  spkiSha256: r.spki_sha256,
  fingerprintSha256: r.fingerprint_sha256,
  notBefore: r.not_before,
  notAfter: r.not_after,
  der: r.der,
  popMethod: r.pop_method,
  status: r.status,
  createdAt: r.created_at,
  revokedAt: r.revoked_at,
  revocationReason: r.revocation_reason,
  invalidityDate: r.invalidity_date,
  supersededBy: r.superseded_by,
  supersedeRevokeAt: r.supersede_revoke_at,
});

// ---------------------------------------------------------------- the store

/** `CaStore` (and the CRL port, whose SQL lives in pg-crls.ts) over a pg.Pool. */
export class PgStore implements CaStore, CrlStore, OcspStore, ContainmentStore, WebhookOutboxStore, ApiTokenStore, AdvisoryStore, EnrollmentStore, AdminCertStore, BatchStore, NacStore, RolloverStore, ExpiryStore, JobLockStore {
  /** The pool, for the migrations runner and other store-internal code. */
  readonly pool: pg.Pool;
  /**
   * The group commit's connections, in node-pg's pipeline mode: a flush sends BEGIN, its
   * statements and COMMIT in one go and waits once, instead of one round trip per statement
   * (each of which wakes the backend and, on a busy machine, costs the event loop its time slice).
   */
  private readonly writePool: pg.Pool;
  private readonly maxInFlight: number;
  private readonly maxBatch: number;
  private readonly gatherMs: number;
  private readonly gatherTarget: number;
  private readonly log: (msg: string) => void;
  private lastFlushSize = 0;
  private committed = 0;
  private nextAnalyze = 0;
  private analyzing: Promise<void> | null = null;
  private gathering: NodeJS.Timeout | null = null;

  // every enrollment reads these: batched (read-batcher.ts)
  private readonly isClosed = () => (this.closed ? unavailable('the store is closed') : null);
  private readonly contextReads = new ReadBatcher<ContextRead, IssuanceContext>((b) => this.readContexts(b), DEFAULT_MAX_BATCH, this.isClosed);
  private readonly secretReads = new ReadBatcher<{ deviceId: string; at: Date }, SecretRecord[]>(
    (b) => enr.usableSecretsOf(this.boundQuery, b),
    DEFAULT_MAX_BATCH,
    this.isClosed,
  );
  private readonly scepTxReads = new ReadBatcher<{ transactionId: string; signerSha256: Buffer }, ScepTransaction | null>(
    (b) => enr.scepTransactionsOf(this.boundQuery, b),
    DEFAULT_MAX_BATCH,
    this.isClosed,
  );
  private readonly fingerprintReads = new ReadBatcher<Buffer, CertificateRecord | null>((b) => this.certificatesByFingerprint(b), DEFAULT_MAX_BATCH, this.isClosed);
  private queue: WriteOp[] = [];
  private inFlight = 0;
  private pumpScheduled = false;
  private idleWaiters: Array<() => void> = [];
  private closed = false;

  /** Over the pools `open` made, which `close()` ends. */
  private constructor(pool: pg.Pool, writePool: pg.Pool, maxInFlight: number, opts: PgStoreOptions) {
    this.pool = pool;
    this.writePool = writePool;
    this.maxInFlight = maxInFlight;
    this.maxBatch = Math.max(1, opts.maxBatch ?? DEFAULT_MAX_BATCH);
    this.gatherMs = Math.max(0, opts.gatherMs ?? DEFAULT_GATHER_MS);
    this.gatherTarget = Math.max(1, opts.gatherTarget ?? DEFAULT_GATHER_TARGET);
    this.log = opts.log ?? (() => {});
  }

  /**
   * Creates the pool (default size 8) and the group commit's pipelined connections (one per flush
   * in flight, `maxInFlight`, default 2), and checks that the database answers.
   */
  static async open(opts: PgStoreOpenOptions = {}): Promise<PgStore> {
    const config: pg.PoolConfig = { ...opts.poolConfig };
    if (opts.connectionString !== undefined) config.connectionString = opts.connectionString;
    config.max = opts.max ?? opts.poolConfig?.max ?? DEFAULT_POOL_SIZE;
    const log = opts.log ?? (() => {});
    // a SET that each new connection runs before it is handed out, not a startup option:
    // connection poolers such as PgBouncer refuse those
    const userHook = config.onConnect;
    config.onConnect = async (client) => {
      await client.query(GENERIC_PLANS).catch((err: Error) => log(`could not set plan_cache_mode: ${err.message}`));
      await userHook?.(client);
    };
    const pool = new pg.Pool(config);
    const maxInFlight = Math.max(1, opts.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT);
    const writePool = new pg.Pool({ ...config, max: maxInFlight, pipeline: true });
    for (const p of [pool, writePool]) {
      // An idle client losing its connection (database restart) must not crash the process;
      // the pool drops it and the next query reconnects.
      p.on('error', (err) => log(`idle database connection lost: ${err.message}`));
      guardClients(p, log); // before the first client is made
    }
    try {
      await pool.query('SELECT 1');
    } catch (err) {
      await Promise.all([pool.end(), writePool.end()]).catch(() => undefined);
      throw mapPgError(err);
    }
    return new PgStore(pool, writePool, maxInFlight, opts);
  }

  /** Waits for queued writes to settle, then ends the pools. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.pump(); // a gathering flush goes out now
    if (this.analyzing) await this.analyzing;
    if (this.queue.length > 0 || this.inFlight > 0 || this.pumpScheduled) {
      await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    }
    await Promise.all([this.pool.end(), this.writePool.end()]);
  }

  // ------------------------------------------------------------ issuance (group commit)

  recordIntent(intent: IssuanceIntent, audit: AuditEntry): Promise<'recorded' | 'collision'> {
    return new Promise((resolve, reject) => this.enqueue({ kind: 'intent', intent, audit, resolve, reject }));
  }

  commitCertificate(cert: NewCertificate, audit: AuditEntry): Promise<void> {
    return new Promise((resolve, reject) => this.enqueue({ kind: 'commit', cert, audit, resolve, reject }));
  }

  /**
   * Marks a pending intent failed. Already failed → resolves without writing anything (two
   * reconcilers racing are harmless); issued → conflict (an issued certificate exists);
   * unknown serial → notFound.
   */
  failIntent(serial: string, reason: string, audit: AuditEntry): Promise<void> {
    return new Promise((resolve, reject) => this.enqueue({ kind: 'fail', serial, reason, audit, resolve, reject }));
  }

  async listPendingIntents(olderThan: Date): Promise<PendingIntent[]> {
    const { rows } = await this.query<IntentRow>(
      `SELECT serial, issuer_id, device_id, profile, tbs_der, request, created_at
       FROM issuance_intents WHERE state = 'pending' AND created_at < $1 ORDER BY created_at, serial`,
      [olderThan],
    );
    return rows.map((r) => ({
      serial: r.serial,
      issuerId: r.issuer_id,
      deviceId: r.device_id,
      profile: r.profile,
      tbsDer: r.tbs_der,
      request: r.request,
      createdAt: r.created_at,
    }));
  }

  /** Devices by id and certificates by SPKI hash, for a batch of issuance callers (ReadBatcher). */
  issuanceContext(deviceId: string, spkiSha256: Buffer, at: Date): Promise<IssuanceContext> {
    return this.contextReads.get({ deviceId, spkiSha256, at });
  }

  private async readContexts(batch: ContextRead[]): Promise<IssuanceContext[]> {
    // the oldest `at` of the batch: holders expired since then are filtered per caller below
    const minAt = batch.reduce((m, r) => (r.at < m ? r.at : m), batch[0]!.at);
    const { rows } = await this.query<{ r: { devices: Array<Record<string, unknown>>; keys: Array<{ serial: string; device_id: string | null; status: CertificateStatus; spki: string; not_after: string }> } }>({
      name: 'fleetca_issuance_context',
      text: SQL_ISSUANCE_CONTEXT,
      values: [[...new Set(batch.map((r) => r.deviceId))], [...new Set(batch.map((r) => r.spkiSha256.toString('hex')))].map((h) => Buffer.from(h, 'hex')), minAt],
    });
    const devices = new Map<string, DeviceRecord>();
    for (const d of rows[0]!.r.devices) devices.set(String(d.id), toDevice(jsonDeviceRow(d)));
    return batch.map((r) => {
      const hex = r.spkiSha256.toString('hex');
      const keyHolders = rows[0]!.r.keys
        .filter((k) => k.spki === hex && new Date(k.not_after) >= r.at)
        .map((k) => ({ serial: k.serial, deviceId: k.device_id, status: k.status }));
      return { device: devices.get(r.deviceId) ?? null, keyHolders };
    });
  }

  private enqueue(op: WriteOp): void {
    if (this.closed) {
      op.reject(unavailable('the store is closed'));
      return;
    }
    this.queue.push(op);
    // Gather everything submitted in this turn of the event loop before deciding what to flush.
    if (!this.pumpScheduled) {
      this.pumpScheduled = true;
      queueMicrotask(() => {
        this.pumpScheduled = false;
        this.pump();
      });
    }
  }

  /** Starts flushes while there is queued work and a free flush slot. */
  private pump(): void {
    while (this.inFlight < this.maxInFlight && this.queue.length > 0) {
      const small = this.queue.length < this.gatherTarget && this.lastFlushSize > 1 && this.gatherMs > 0 && !this.closed;
      if (small) {
        // gather: more callers are likely on their way (see PgStoreOptions.gatherMs)
        this.gathering ??= setTimeout(() => {
          this.gathering = null;
          this.lastFlushSize = 0;
          this.pump();
        }, this.gatherMs);
        return;
      }
      if (this.gathering) {
        clearTimeout(this.gathering);
        this.gathering = null;
      }
      const batch = this.queue.splice(0, this.maxBatch);
      this.lastFlushSize = batch.length;
      this.inFlight++;
      void this.flush(batch).finally(() => {
        this.inFlight--;
        this.pump();
        if (this.inFlight === 0 && this.queue.length === 0 && !this.pumpScheduled && !this.gathering) {
          for (const w of this.idleWaiters.splice(0)) w();
        }
      });
    }
  }

  /** One flush: one transaction on one connection; never throws (every op gets settled). */
  private async flush(batch: WriteOp[]): Promise<void> {
    let client: pg.PoolClient;
    try {
      client = await this.writePool.connect();
    } catch (err) {
      rejectAll(batch, mapPgError(err));
      return;
    }
    let broken = false;
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          const outcomes = await this.writeTx(client, batch);
          settleAll(batch, outcomes);
          this.countCommits(batch);
          return;
        } catch (err) {
          if (isConnectionError(err)) {
            broken = true;
            rejectAll(batch, mapPgError(err));
            return;
          }
          if (isRetryable(err) && attempt < MAX_RETRIES) continue;
          if (batch.length > 1 && (isDataError(err) || isRetryable(err))) {
            // One row broke the statement for everyone: redo the batch one caller at a time.
            this.log(`group commit of ${batch.length} writes failed (${(err as Error).message}); retrying them one by one`);
            broken = await this.fallback(client, batch);
            return;
          }
          rejectAll(batch, mapPgError(err));
          return;
        }
      }
    } catch (err) {
      // a bug in this file; still settle every caller
      broken = true;
      rejectAll(batch, internal('group commit failed', err));
    } finally {
      client.release(broken);
    }
  }

  /** Refreshes planner statistics as the issuance tables grow (see ANALYZE_AT). */
  private countCommits(batch: WriteOp[]): void {
    for (const op of batch) if (op.kind === 'commit') this.committed++;
    const threshold = ANALYZE_AT[this.nextAnalyze];
    if (threshold === undefined || this.committed < threshold || this.analyzing || this.closed) return;
    this.nextAnalyze++;
    this.analyze('serials, issuance_intents, certificates, devices, audit_log, enrollment_secrets, scep_transactions', `after ${this.committed} certificates`);
  }

  /**
   * ANALYZE in the background (one at a time). Stale statistics are not a detail here: planned on
   * a nearly empty enrollment_secrets, the batched claim scanned every unconsumed secret through
   * the partial device index (a hash join) instead of looking up its few ids by primary key —
   * 2.3 ms per claim with ~2,000 secrets outstanding, and it grows with every factory batch.
   */
  private analyze(tables: string, why: string): void {
    if (this.analyzing || this.closed) return;
    this.analyzing = this.pool
      .query(`ANALYZE ${tables}`)
      .then(
        () => this.log(`refreshed planner statistics (${tables}) ${why}`),
        (err: Error) => this.log(`ANALYZE failed: ${err.message}`),
      )
      .finally(() => {
        this.analyzing = null;
      });
  }

  /** Per-caller transactions after a failed batch. Returns true if the connection broke. */
  private async fallback(client: pg.PoolClient, batch: WriteOp[]): Promise<boolean> {
    for (let i = 0; i < batch.length; i++) {
      const op = batch[i]!;
      for (let attempt = 0; ; attempt++) {
        try {
          settleAll([op], await this.writeTx(client, [op]));
          break;
        } catch (err) {
          if (isConnectionError(err)) {
            rejectAll(batch.slice(i), mapPgError(err));
            return true;
          }
          if (isRetryable(err) && attempt < MAX_RETRIES) continue;
          op.reject(mapPgError(err));
          break;
        }
      }
    }
    return false;
  }

  /**
   * Writes the ops of one flush in one transaction and returns each op's outcome. The statements go
   * out together, pipelined (see writePool), each submitted before the next so PostgreSQL runs them
   * in order; a single statement is its own transaction (no BEGIN/COMMIT). Throws when the
   * transaction failed as a whole: PostgreSQL aborted it at the first failing statement (the
   * statements after it fail too, and the COMMIT answers ROLLBACK), whose error is thrown.
   */
  private async writeTx(client: pg.PoolClient, ops: WriteOp[]): Promise<Map<WriteOp, Outcome>> {
    const intents = ops.filter((o): o is IntentOp => o.kind === 'intent');
    const commits = ops.filter((o): o is CommitOp => o.kind === 'commit');
    const fails = ops.filter((o): o is FailOp => o.kind === 'fail');
    const claims = ops.filter((o): o is ClaimOp => o.kind === 'claim');
    const consumes = ops.filter((o): o is ConsumeOp => o.kind === 'consume');
    const supersedes = ops.filter((o): o is SupersedeOp => o.kind === 'supersede');
    const scepTxs = ops.filter((o): o is ScepTxOp => o.kind === 'scepTx');
    const supersedeRounds = roundsByKey(supersedes, (o) => JSON.stringify([o.s.deviceId, o.s.profile]));
    const scepRounds = roundsByKey(scepTxs, (o) => `${o.t.transactionId}\u0000${o.t.signerSha256.toString('hex')}`);
    const statements = [intents, commits, fails, claims, consumes].filter((g) => g.length > 0).length + supersedeRounds.length + scepRounds.length;
    const multi = statements > 1;
    const out = new Map<WriteOp, Outcome>();
    const sent: Array<Promise<unknown>> = [];
    let commit: Promise<pg.QueryResult> | null = null;
    // node-pg writes each statement to the socket on its own (each write a wake-up of the server);
    // corked, the transaction leaves in one write. Every query() below submits synchronously.
    const socket = (client as unknown as { connection: { stream: Writable } }).connection.stream;
    socket.cork();
    try {
      if (multi) sent.push(client.query('BEGIN'));
      if (intents.length > 0) sent.push(this.writeIntents(client, intents, out));
      if (commits.length > 0) sent.push(this.writeCommits(client, commits, out));
      if (fails.length > 0) sent.push(this.writeFails(client, fails, out));
      if (claims.length > 0) sent.push(this.writeClaims(client, claims, out));
      if (consumes.length > 0) sent.push(this.writeConsumes(client, consumes, out));
      for (const round of supersedeRounds) sent.push(this.writeSupersedes(client, round, out));
      for (const round of scepRounds) sent.push(this.writeScepTxs(client, round, out));
      if (multi) sent.push((commit = client.query('COMMIT')));
    } finally {
      socket.uncork();
    }
    const settled = await Promise.allSettled(sent);
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    if (commit && (await commit).command !== 'COMMIT') throw internal('the group transaction was rolled back without an error');
    return out;
  }

  private async writeClaims(client: pg.PoolClient, ops: ClaimOp[], out: Map<WriteOp, Outcome>): Promise<void> {
    const { rows } = await client.query<{ ord: string }>({
      name: 'fleetca_claim_secrets',
      text: SQL_CLAIM_SECRETS,
      values: [ops.map((o) => o.id), ops.map((o) => o.at)],
    });
    const won = new Set(rows.map((r) => Number(r.ord)));
    ops.forEach((op, i) => out.set(op, { ok: true, value: won.has(i + 1) }));
  }

  private async writeConsumes(client: pg.PoolClient, ops: ConsumeOp[], out: Map<WriteOp, Outcome>): Promise<void> {
    await client.query({
      name: 'fleetca_consume_secrets',
      text: SQL_CONSUME_SECRETS,
      values: [ops.map((o) => o.id), ops.map((o) => o.serial), ops.map((o) => o.at), ...auditColumns(ops.map((o) => o.audit))],
    });
    for (const op of ops) out.set(op, { ok: true, value: undefined });
  }

  /** One round (see roundsByKey): two renewals of one device in a group supersede one after the other, as alone. */
  private async writeSupersedes(client: pg.PoolClient, round: SupersedeOp[], out: Map<WriteOp, Outcome>): Promise<void> {
    const renewed = round.map((o) => o.renewed ?? { at: null, actor: null, action: null, target: null, details: null });
    const { rows } = await client.query<{ ord: string; serial: string }>({
      name: 'fleetca_supersede',
      text: SQL_SUPERSEDE,
      values: [
        round.map((o) => o.s.deviceId),
        round.map((o) => o.s.profile),
        round.map((o) => o.s.newSerial),
        round.map((o) => o.s.at),
        round.map((o) => o.s.revokeAt),
        ...auditColumns(round.map((o) => o.audit)),
        renewed.map((a) => a.at),
        renewed.map((a) => a.actor),
        renewed.map((a) => a.action),
        renewed.map((a) => a.target),
        renewed.map((a) => (a.action === null ? null : JSON.stringify(a.details ?? {}))),
      ],
    });
    const replaced = round.map((): string[] => []);
    for (const r of rows) replaced[Number(r.ord) - 1]!.push(r.serial);
    round.forEach((op, i) => out.set(op, { ok: true, value: replaced[i] }));
  }

  /** One upsert per round (see roundsByKey): ON CONFLICT may touch a row once per statement. */
  private async writeScepTxs(client: pg.PoolClient, round: ScepTxOp[], out: Map<WriteOp, Outcome>): Promise<void> {
    await client.query({
      name: 'fleetca_record_scep_txs',
      text: SQL_RECORD_SCEP_TXS,
      values: [
        round.map((o) => o.t.transactionId),
        round.map((o) => o.t.signerSha256),
        round.map((o) => o.t.csrSha256),
        round.map((o) => o.t.requestId),
        round.map((o) => o.t.serial),
        round.map((o) => o.at),
      ],
    });
    for (const op of round) out.set(op, { ok: true, value: undefined });
  }

  private async writeIntents(client: pg.PoolClient, ops: IntentOp[], out: Map<WriteOp, Outcome>): Promise<void> {
    const { rows } = await client.query<{ ord: string }>({
      name: 'fleetca_record_intents',
      text: SQL_RECORD_INTENTS,
      values: [
        ops.map((o) => o.intent.serial),
        ops.map((o) => o.intent.issuerId),
        ops.map((o) => o.intent.deviceId),
        ops.map((o) => o.intent.profile),
        ops.map((o) => o.intent.tbsDer),
        ops.map((o) => JSON.stringify(o.intent.request)),
        ops.map((o) => o.intent.createdAt),
        ...auditColumns(ops.map((o) => o.audit)),
      ],
    });
    const won = new Set(rows.map((r) => Number(r.ord)));
    ops.forEach((op, i) => out.set(op, { ok: true, value: won.has(i + 1) ? 'recorded' : 'collision' }));
  }

  private async writeCommits(client: pg.PoolClient, ops: CommitOp[], out: Map<WriteOp, Outcome>): Promise<void> {
    const { rows } = await client.query<{ ord: string; won: boolean; state: string | null }>({
      name: 'fleetca_commit_certificates',
      text: SQL_COMMIT_CERTIFICATES,
      values: [
        ops.map((o) => o.cert.serial),
        ops.map((o) => o.cert.issuerId),
        ops.map((o) => o.cert.deviceId),
        ops.map((o) => o.cert.profile),
        ops.map((o) => o.cert.subject),
        ops.map((o) => JSON.stringify(o.cert.sans)),
        ops.map((o) => o.cert.spkiSha256),
        ops.map((o) => o.cert.fingerprintSha256),
        ops.map((o) => o.cert.notBefore),
        ops.map((o) => o.cert.notAfter),
        ops.map((o) => o.cert.der),
        ops.map((o) => o.cert.popMethod),
        ...auditColumns(ops.map((o) => o.audit)),
        ops.map((o) => o.cert.crlShard ?? null),
      ],
    });
    for (const r of rows) {
      const op = ops[Number(r.ord) - 1]!;
      const serial = op.cert.serial;
      if (r.won) out.set(op, { ok: true, value: undefined });
      // The certificate was not stored, so it must never be handed out.
      else if (r.state === null) out.set(op, { ok: false, error: notFound(`no issuance intent for serial ${serial}`) });
      else if (r.state === 'pending') out.set(op, { ok: false, error: conflict(`the intent for serial ${serial} changed concurrently`) });
      else out.set(op, { ok: false, error: conflict(`the intent for serial ${serial} is ${r.state}, not pending`) });
    }
  }

  private async writeFails(client: pg.PoolClient, ops: FailOp[], out: Map<WriteOp, Outcome>): Promise<void> {
    const { rows } = await client.query<{ ord: string; won: boolean; state: string | null }>({
      name: 'fleetca_fail_intents',
      text: SQL_FAIL_INTENTS,
      values: [ops.map((o) => o.serial), ops.map((o) => o.reason), ...auditColumns(ops.map((o) => o.audit))],
    });
    for (const r of rows) {
      const op = ops[Number(r.ord) - 1]!;
      if (r.won || r.state === 'failed') out.set(op, { ok: true, value: undefined });
      else if (r.state === null) out.set(op, { ok: false, error: notFound(`no issuance intent for serial ${op.serial}`) });
      else if (r.state === 'issued') out.set(op, { ok: false, error: conflict(`the intent for serial ${op.serial} is issued; it cannot fail`) });
      else out.set(op, { ok: false, error: conflict(`the intent for serial ${op.serial} changed concurrently`) });
    }
  }

  // ------------------------------------------------------------ certificates

  async getCertificate(serial: string): Promise<CertificateRecord | null> {
    const { rows } = await this.query<CertificateRow>(
      `SELECT ${CERT_COLUMNS} FROM certificates c JOIN issuers i ON i.id = c.issuer_id WHERE c.serial = $1`,
      [serial],
    );
    return rows[0] ? toCertificate(rows[0]) : null;
  }

  /**
   * Filters combine with AND. `expiringBefore`: not_after < that instant; `notExpiredAt`: still
   * valid then (not_after ≥ it — RFC 5280 §4.1.2.5 validity is inclusive). Ordered by creation
   * time, then serial. No limit unless one is given.
   */
  async listCertificates(filter: CertificateFilter): Promise<CertificateRecord[]> {
    const where: string[] = [];
    const values: unknown[] = [];
    const add = (sql: string, value: unknown) => {
      values.push(value);
      where.push(sql.replace('?', `$${values.length}`));
    };
    if (filter.deviceId !== undefined) add('c.device_id = ?', filter.deviceId);
    if (filter.profile !== undefined) add('c.profile = ?', filter.profile);
    if (filter.issuerId !== undefined) add('c.issuer_id = ?', filter.issuerId);
    if (filter.status !== undefined) add('c.status = ?', filter.status);
    if (filter.expiringBefore !== undefined) add('c.not_after < ?', filter.expiringBefore);
    if (filter.notExpiredAt !== undefined) add('c.not_after >= ?', filter.notExpiredAt);
    if (filter.after !== undefined) {
      values.push(filter.after.createdAt, filter.after.serial);
      where.push(`(c.created_at, c.serial) > ($${values.length - 1}, $${values.length})`);
    }
    let sql = `SELECT ${CERT_COLUMNS} FROM certificates c JOIN issuers i ON i.id = c.issuer_id`;
    if (where.length > 0) sql += ` WHERE ${where.join(' AND ')}`;
    sql += ' ORDER BY c.created_at, c.serial';
    if (filter.limit !== undefined) {
      values.push(checkLimit(filter.limit));
      sql += ` LIMIT $${values.length}`;
    }
    const { rows } = await this.query<CertificateRow>(sql, values);
    return rows.map(toCertificate);
  }

  /** Every mTLS enrollment starts here: batched (ReadBatcher). */
  getCertificateByFingerprint(fingerprintSha256: Buffer): Promise<CertificateRecord | null> {
    return this.fingerprintReads.get(fingerprintSha256);
  }

  private async certificatesByFingerprint(fingerprints: Buffer[]): Promise<Array<CertificateRecord | null>> {
    const { rows } = await this.query<CertificateRow>({
      name: 'fleetca_certs_by_fingerprint',
      text: `SELECT ${CERT_COLUMNS} FROM certificates c JOIN issuers i ON i.id = c.issuer_id WHERE c.fingerprint_sha256 = ANY($1::bytea[])`,
      values: [fingerprints],
    });
    const byHex = new Map(rows.map((r) => [r.fingerprint_sha256.toString('hex'), r]));
    return fingerprints.map((f) => {
      const r = byHex.get(f.toString('hex'));
      return r ? toCertificate(r) : null;
    });
  }

  async findBySpki(spkiSha256: Buffer, at: Date): Promise<Array<{ serial: string; deviceId: string | null; status: CertificateStatus }>> {
    const { rows } = await this.query<{ serial: string; device_id: string | null; status: CertificateStatus }>(
      `SELECT serial, device_id, status FROM certificates
       WHERE spki_sha256 = $1 AND not_after >= $2 ORDER BY created_at, serial`,
      [spkiSha256, at],
    );
    return rows.map((r) => ({ serial: r.serial, deviceId: r.device_id, status: r.status }));
  }

  // ------------------------------------------------------------ revocation

  /**
   * One transaction, the certificate row locked FOR UPDATE: unknown → notFound; revoked → conflict;
   * hold on a held certificate → conflict; revoking a held one replaces the hold (reason and time).
   * Writes the new status, a `revocations` history row and an audit row.
   */
  async revoke(input: RevocationInput): Promise<CertificateRecord> {
    return this.tx(async (c) => (await this.certificatesIn(c, [await rev.revokeOne(c, input)]))[0]!);
  }

  async release(input: { serial: string; at: Date; actor: string }): Promise<CertificateRecord> {
    return this.tx(async (c) => (await this.certificatesIn(c, [await rev.releaseOne(c, input)]))[0]!);
  }

  async revokeDevice(input: DeviceStatusInput & Omit<RevocationInput, 'serial' | 'at' | 'actor'>): Promise<CertificateRecord[]> {
    return this.tx(async (c) => this.certificatesIn(c, await rev.revokeDevice(c, input)));
  }

  async releaseDevice(input: DeviceStatusInput): Promise<CertificateRecord[]> {
    return this.tx(async (c) => this.certificatesIn(c, await rev.releaseDevice(c, input)));
  }

  async quarantineDevice(input: DeviceStatusInput & { reason: string; crlEntry: RevocationInput['crlEntry'] }): Promise<{ quarantine: DeviceQuarantine; held: CertificateRecord[] }> {
    return this.tx(async (c) => {
      const r = await rev.quarantineDevice(c, input);
      return { quarantine: r.quarantine, held: await this.certificatesIn(c, r.held) };
    });
  }

  async liftQuarantine(input: DeviceStatusInput): Promise<{ quarantine: DeviceQuarantine; released: CertificateRecord[] }> {
    return this.tx(async (c) => {
      const r = await rev.liftQuarantine(c, input);
      return { quarantine: r.quarantine, released: await this.certificatesIn(c, r.released) };
    });
  }

  async retireDevice(input: DeviceStatusInput & { crlEntry: RevocationInput['crlEntry'] }): Promise<CertificateRecord[]> {
    return this.tx(async (c) => this.certificatesIn(c, await rev.retireDevice(c, input)));
  }

  openQuarantine(deviceId: string): Promise<DeviceQuarantine | null> {
    return rev.openQuarantine(this.pool, deviceId);
  }

  private async certificatesIn(c: pg.PoolClient, serials: string[]): Promise<CertificateRecord[]> {
    if (serials.length === 0) return [];
    const { rows } = await c.query<CertificateRow>(
      `SELECT ${CERT_COLUMNS} FROM certificates c JOIN issuers i ON i.id = c.issuer_id WHERE c.serial = ANY($1::text[]) ORDER BY c.serial`,
      [serials],
    );
    return rows.map(toCertificate);
  }

  // ------------------------------------------------------------ devices

  /** Existing id → conflict. */
  async addDevice(d: NewDevice, at: Date): Promise<DeviceRecord> {
    try {
      const { rows } = await this.pool.query<DeviceRow>(
        `INSERT INTO devices (id, macs, serial_number, model, firmware, profile, state, created_at, updated_at, segment, nac_role)
         VALUES ($1, $2, $3, $4, $5, $6, 'active', $7, $7, $8, $9) RETURNING *`,
        [d.id, d.macs ?? [], d.serialNumber ?? null, d.model ?? null, d.firmware ?? null, d.profile ?? null, at, d.segment ?? null, d.nacRole ?? null],
      );
      return toDevice(rows[0]!);
    } catch (err) {
      const e = mapPgError(err);
      if (e.kind === 'conflict') throw conflict(`device ${d.id} already exists`);
      throw e;
    }
  }

  async getDevice(id: string): Promise<DeviceRecord | null> {
    const { rows } = await this.query<DeviceRow>('SELECT * FROM devices WHERE id = $1', [id]);
    return rows[0] ? toDevice(rows[0]) : null;
  }

  /** Fields absent from the patch stay; null clears. Unknown id → notFound. */
  async updateDevice(id: string, patch: DevicePatch, at: Date): Promise<DeviceRecord> {
    const columns: Array<[keyof DevicePatch, string]> = [
      ['macs', 'macs'],
      ['serialNumber', 'serial_number'],
      ['model', 'model'],
      ['firmware', 'firmware'],
      ['profile', 'profile'],
      ['state', 'state'],
      ['segment', 'segment'],
      ['nacRole', 'nac_role'],
    ];
    const values: unknown[] = [id, at];
    const sets = ['updated_at = $2'];
    for (const [key, column] of columns) {
      if (patch[key] === undefined) continue;
      values.push(patch[key]);
      sets.push(`${column} = $${values.length}`);
    }
    const { rows } = await this.query<DeviceRow>(`UPDATE devices SET ${sets.join(', ')} WHERE id = $1 RETURNING *`, values);
    if (!rows[0]) throw notFound(`no device with id ${id}`);
    return toDevice(rows[0]);
  }

  /** Ordered by id. */
  async listDevices(filter: DeviceFilter): Promise<DeviceRecord[]> {
    const where: string[] = [];
    const values: unknown[] = [];
    for (const [column, value] of [
      ['profile', filter.profile],
      ['model', filter.model],
      ['state', filter.state],
      ['segment', filter.segment],
    ] as const) {
      if (value === undefined) continue;
      values.push(value);
      where.push(`d.${column} = $${values.length}`);
    }
    for (const [column, list] of [
      ['id', filter.ids],
      ['profile', filter.profiles],
    ] as const) {
      if (list === undefined) continue;
      values.push(list);
      where.push(`d.${column} = ANY($${values.length}::text[])`);
    }
    if (filter.after !== undefined) {
      values.push(filter.after);
      where.push(`d.id > $${values.length}`);
    }
    let sql = filter.withCurrent ? `SELECT d.*, ${CURRENT_COLUMNS} FROM devices d ${CURRENT_JOIN}` : 'SELECT d.* FROM devices d';
    if (where.length > 0) sql += ` WHERE ${where.join(' AND ')}`;
    sql += ' ORDER BY d.id';
    if (filter.limit !== undefined) {
      values.push(checkLimit(filter.limit));
      sql += ` LIMIT $${values.length}`;
    }
    const { rows } = await this.query<DeviceRow>(sql, values);
    return rows.map(toDevice);
  }

  /**
   * Devices changed after `after` (migration 0014): by the transaction id of their latest change,
   * up to the xmin of this statement's snapshot (`horizon`: every change below it is visible now
   * and no later one can fall below it), at most `limit`, each with its current certificate.
   */
  async nacChanges(after: NacCursor, limit: number): Promise<{ devices: Array<{ device: DeviceRecord; xid: string }>; horizon: string }> {
    const { rows } = await this.query<DeviceRow & { horizon: string; change_xid: string | null }>(
      `WITH horizon AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS h),
       changed AS (
         SELECT DISTINCT ON (device_id) device_id, xid FROM (
           SELECT d.id AS device_id, d.nac_xid AS xid FROM devices d, horizon WHERE d.nac_xid >= $1::xid8 AND d.nac_xid < horizon.h
           UNION ALL
           SELECT n.device_id, n.xid FROM nac_changes n, horizon WHERE n.xid >= $1::xid8 AND n.xid < horizon.h
         ) x ORDER BY device_id, xid DESC
       ),
       page AS (
         SELECT d.*, ch.xid::text AS change_xid, ${CURRENT_COLUMNS}
         FROM changed ch JOIN devices d ON d.id = ch.device_id ${CURRENT_JOIN}
         WHERE (ch.xid, ch.device_id) > ($1::xid8, $2::text COLLATE "C")
         ORDER BY ch.xid, ch.device_id LIMIT $3
       )
       SELECT horizon.h::text AS horizon, page.* FROM horizon LEFT JOIN page ON true ORDER BY page.change_xid::xid8, page.id`,
      [after.xid, after.id, checkLimit(limit)],
    );
    const horizon = rows[0]!.horizon;
    return { horizon, devices: rows.filter((r) => r.change_xid !== null).map((r) => ({ device: toDevice(r), xid: r.change_xid! })) };
  }

  /**
   * Deletes the NAC change rows that a newer change of the same device makes redundant (the feed
   * returns a device once, at its latest change), once that newer change is below this
   * statement's snapshot horizon: every read that starts later has a horizon at least as high, so
   * it sees the newer change; a read already running still sees the deleted rows (MVCC). What is
   * left is at most one row per device, and none for a device whose own record changed since:
   * the table stops growing with every revocation. Returns the rows deleted.
   */
  async pruneNacChanges(): Promise<number> {
    const { rowCount } = await this.query(
      `WITH horizon AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS h)
       DELETE FROM nac_changes n USING horizon
       WHERE EXISTS (SELECT 1 FROM nac_changes m WHERE m.device_id = n.device_id AND m.xid > n.xid AND m.xid < horizon.h)
          OR EXISTS (SELECT 1 FROM devices d WHERE d.id = n.device_id AND d.nac_xid > n.xid AND d.nac_xid < horizon.h)`,
    );
    return rowCount ?? 0;
  }

  // ------------------------------------------------------------ issuers

  async upsertIssuer(i: Omit<IssuerRecord, 'id'>): Promise<IssuerRecord> {
    const { rows } = await this.query<IssuerRow>(
      `INSERT INTO issuers (name, role, cert_der, ski, not_before, not_after, active, lineage, activates_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
       ON CONFLICT (name) DO UPDATE SET role = EXCLUDED.role, cert_der = EXCLUDED.cert_der, ski = EXCLUDED.ski,
         not_before = EXCLUDED.not_before, not_after = EXCLUDED.not_after, active = EXCLUDED.active,
         lineage = EXCLUDED.lineage, activates_at = EXCLUDED.activates_at
       RETURNING *`,
      [i.name, i.role, i.certDer, i.ski, i.notBefore, i.notAfter, i.active, i.lineage ?? i.name, i.activatesAt ?? i.notBefore],
    );
    return toIssuer(rows[0]!);
  }

  /** Ordered by id. */
  async listIssuers(): Promise<IssuerRecord[]> {
    const { rows } = await this.query<IssuerRow>('SELECT * FROM issuers ORDER BY id');
    return rows.map(toIssuer);
  }

  async tryRolloverLock(lineage: string): Promise<(() => Promise<void>) | null> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw mapPgError(err);
    }
    const key = ['SELECT pg_try_advisory_lock($1, hashtext($2)) AS ok', [ROLLOVER_LOCK_NS, lineage]] as const;
    try {
      const { rows } = await client.query<{ ok: boolean }>(key[0], [...key[1]]);
      if (!rows[0]!.ok) {
        client.release();
        return null;
      }
    } catch (err) {
      client.release(true);
      throw mapPgError(err);
    }
    return async () => {
      try {
        await client.query('SELECT pg_advisory_unlock($1, hashtext($2))', [ROLLOVER_LOCK_NS, lineage]);
        client.release();
      } catch {
        // a dead connection took its session lock with it
        client.release(true);
      }
    };
  }

  async announceIssuers(): Promise<void> {
    await this.query("SELECT pg_notify('fleetca_issuers', '')");
  }

  async addLinkCertificates(links: LinkCertificate[]): Promise<void> {
    await this.query(
      `INSERT INTO ca_link_certificates (old_root, new_root, kind, cert_der, not_after)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::timestamptz[])`,
      [links.map((l) => l.oldRoot), links.map((l) => l.newRoot), links.map((l) => l.kind), links.map((l) => l.certDer), links.map((l) => l.notAfter)],
    );
  }

  async listLinkCertificates(): Promise<LinkCertificate[]> {
    const { rows } = await this.query<{ old_root: string; new_root: string; kind: LinkCertificate['kind']; cert_der: Buffer; not_after: Date }>(
      'SELECT old_root, new_root, kind, cert_der, not_after FROM ca_link_certificates ORDER BY id',
    );
    return rows.map((r) => ({ oldRoot: r.old_root, newRoot: r.new_root, kind: r.kind, certDer: r.cert_der, notAfter: r.not_after }));
  }

  // ------------------------------------------------------------ audit

  /** All entries in one statement, in order (ids increase in the order given). */
  async appendAudit(entries: AuditEntry[]): Promise<void> {
    if (entries.length === 0) return;
    await this.query(
      `INSERT INTO audit_log (at, actor, action, target, details)
       SELECT at, actor, action, target, details
       FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::jsonb[]) WITH ORDINALITY
         AS t(at, actor, action, target, details, ord)
       ORDER BY ord`,
      auditColumns(entries),
    );
  }

  /** The most recent entries (all, or the last `limit`) matching the filter, oldest first. */
  async listAudit(filter: { target?: string; action?: string; limit?: number }): Promise<Array<AuditEntry & { id: number }>> {
    const where: string[] = [];
    const values: unknown[] = [];
    if (filter.target !== undefined) {
      values.push(filter.target);
      where.push(`target = $${values.length}`);
    }
    if (filter.action !== undefined) {
      values.push(filter.action);
      where.push(`action = $${values.length}`);
    }
    let sql = 'SELECT id, at, actor, action, target, details FROM audit_log';
    if (where.length > 0) sql += ` WHERE ${where.join(' AND ')}`;
    if (filter.limit !== undefined) {
      values.push(checkLimit(filter.limit));
      sql = `SELECT * FROM (${sql} ORDER BY id DESC LIMIT $${values.length}) last`;
    }
    sql += ' ORDER BY id';
    const { rows } = await this.query<AuditRow>(sql, values);
    return rows.map((r) => ({ id: Number(r.id), at: r.at, actor: r.actor, action: r.action, target: r.target, details: r.details }));
  }

  // ------------------------------------------------------------ CRLs (pg-crls.ts)

  nextCrlNumber(issuerId: number): Promise<bigint> {
    return crls.nextCrlNumber(this.boundQuery, issuerId);
  }

  saveCrl(crl: CrlRecord): Promise<void> {
    return crls.saveCrl(this.boundQuery, crl);
  }

  latestCrl(issuerName: string, kind: 'full' | 'delta', shard?: number): Promise<CrlRecord | null> {
    return crls.latestCrl(this.boundQuery, issuerName, kind, shard);
  }

  listRevoked(issuerId: number, at: Date): Promise<RevokedEntry[]> {
    return crls.listRevoked(this.boundQuery, issuerId, at);
  }

  latestBaseAt(issuerId: number): Promise<Date | null> {
    return crls.latestBaseAt(this.boundQuery, issuerId);
  }

  lastStatusChange(issuerId: number): Promise<Date | null> {
    return crls.lastStatusChange(this.boundQuery, issuerId);
  }

  missingCrlEntries(limit: number): Promise<Array<RevokedEntry & { issuerId: number }>> {
    return rev.missingCrlEntries(this.pool, limit);
  }

  setCrlEntries(entries: Array<{ serial: string; der: Buffer }>): Promise<void> {
    return rev.setCrlEntries(this.pool, entries);
  }

  async crlBuild<T>(issuerId: number, fn: (s: CrlBuildSession) => Promise<T>): Promise<T | null> {
    try {
      return await rev.crlBuild(this.pool, issuerId, fn);
    } catch (err) {
      throw err instanceof CaError ? err : mapPgError(err);
    }
  }

  // ------------------------------------------------------------ advisories (pg-advisories.ts)

  devicesOfModel(model: string): Promise<Array<{ id: string; firmware: string | null; state: DeviceState }>> {
    return adv.devicesOfModel(this.boundQuery, model);
  }

  recordAdvisory(a: Omit<Advisory, 'id' | 'withdrawnAt' | 'withdrawnBy'>): Promise<Advisory> {
    return this.tx((c) => adv.recordAdvisory(c, a));
  }

  withdrawAdvisory(id: number, at: Date, actor: string): Promise<Advisory> {
    return this.tx((c) => adv.withdrawAdvisory(c, id, at, actor));
  }

  listAdvisories(): Promise<Advisory[]> {
    return adv.listAdvisories(this.boundQuery);
  }

  // ------------------------------------------------------------ factory batches (pg-batches.ts)

  async openBatch(b: NewBatch, audit: AuditEntry): Promise<{ batch: BatchRecord; created: boolean }> {
    const { created } = await this.tx((c) => bat.openBatch(c, b, audit));
    return { batch: (await bat.getBatch(this.boundQuery, b.id))!, created };
  }

  getBatch(id: string): Promise<BatchRecord | null> {
    return bat.getBatch(this.boundQuery, id);
  }

  listBatches(filter: { limit?: number } = {}): Promise<BatchRecord[]> {
    return bat.listBatches(this.boundQuery, filter.limit !== undefined ? checkLimit(filter.limit) : null);
  }

  withBatchLock<T>(id: string, fn: () => Promise<T>): Promise<T | null> {
    return bat.withBatchLock(this.pool, id, fn);
  }

  registerBatchDevices(batchId: string, rows: BatchDeviceInput[], at: Date): Promise<Map<string, DeviceState>> {
    return this.tx((c) => bat.registerBatchDevices(c, batchId, rows, at));
  }

  batchDevices(batchId: string, deviceIds: readonly string[]): Promise<Map<string, BatchDevice>> {
    return bat.batchDevices(this.boundQuery, batchId, deviceIds);
  }

  batchCertificates(batchId: string): Promise<BatchCertificate[]> {
    return bat.batchCertificates(this.boundQuery, batchId);
  }

  batchPendingIntents(batchId: string): Promise<string[]> {
    return bat.batchPendingIntents(this.boundQuery, batchId);
  }

  recordBatchOutcomes(batchId: string, outcomes: BatchOutcome[], audit: AuditEntry[], at: Date): Promise<void> {
    return this.tx((c) => bat.recordBatchOutcomes(c, batchId, outcomes, audit, at));
  }

  recordBatchRejects(batchId: string, rejects: BatchReject[], rowsTotal: number, at: Date): Promise<void> {
    return this.tx((c) => bat.recordBatchRejects(c, batchId, rejects, rowsTotal, at));
  }

  listBatchRejects(batchId: string): Promise<BatchReject[]> {
    return bat.listBatchRejects(this.boundQuery, batchId);
  }

  listBatchDevices(batchId: string, filter: { afterLine?: number; limit?: number } = {}): Promise<BatchDevice[]> {
    return bat.listBatchDevices(this.boundQuery, batchId, filter.afterLine ?? null, filter.limit !== undefined ? checkLimit(filter.limit) : null);
  }

  async completeBatch(batchId: string, at: Date, audit: AuditEntry): Promise<BatchRecord> {
    await this.tx((c) => bat.completeBatch(c, batchId, at, audit));
    return (await bat.getBatch(this.boundQuery, batchId))!;
  }

  async markBatchRevoked(batchId: string, reason: string, at: Date, actor: string, audit: AuditEntry): Promise<BatchRecord> {
    await this.tx((c) => bat.markBatchRevoked(c, batchId, reason, at, actor, audit));
    return (await bat.getBatch(this.boundQuery, batchId))!;
  }

  // ------------------------------------------------------------ admin client certificates (pg-admin-certs.ts)

  getAdminCa(): Promise<AdminCaRecord | null> {
    return acert.getAdminCa(this.boundQuery);
  }

  saveAdminCa(ca: AdminCaRecord, audit: AuditEntry): Promise<AdminCaRecord> {
    return acert.saveAdminCa(this.boundQuery, ca, audit);
  }

  reserveAdminCertificate(c: NewAdminCertificate, audit: AuditEntry): Promise<void> {
    return acert.reserveAdminCertificate(this.boundQuery, c, audit);
  }

  completeAdminCertificate(serial: string, certDer: Buffer, fingerprint: Buffer, audit: AuditEntry): Promise<AdminCertificate> {
    return acert.completeAdminCertificate(this.boundQuery, serial, certDer, fingerprint, audit);
  }

  findAdminCertificate(fingerprint: Buffer): Promise<AdminCertificate | null> {
    return acert.findAdminCertificate(this.boundQuery, fingerprint);
  }

  listAdminCertificates(filter?: { name?: string }): Promise<AdminCertificate[]> {
    return acert.listAdminCertificates(this.boundQuery, filter);
  }

  revokeAdminCertificates(by: { name: string } | { serial: string }, at: Date, actor: string): Promise<AdminCertificate[]> {
    return acert.revokeAdminCertificates(this.boundQuery, by, at, actor);
  }

  // ------------------------------------------------------------ admin API tokens (pg-tokens.ts)

  async createApiToken(t: NewApiToken): Promise<ApiToken> {
    try {
      return await tok.createApiToken(this.boundQuery, t);
    } catch (e) {
      if (e instanceof CaError && e.kind === 'conflict') throw conflict(`a token named ${t.name} exists already`);
      throw e;
    }
  }

  getApiToken(id: string): Promise<ApiToken | null> {
    return tok.getApiToken(this.boundQuery, id);
  }

  listApiTokens(): Promise<ApiToken[]> {
    return tok.listApiTokens(this.boundQuery);
  }

  revokeApiToken(name: string, at: Date, actor: string): Promise<boolean> {
    return tok.revokeApiToken(this.boundQuery, name, at, actor);
  }

  touchApiToken(id: string, at: Date): Promise<void> {
    return tok.touchApiToken(this.boundQuery, id, at);
  }

  // ------------------------------------------------------------ webhooks outbox (pg-webhooks.ts)

  syncWebhookEndpoints(endpoints: Array<{ name: string; events: string[] }>): Promise<void> {
    return this.tx((c) => wh.syncWebhookEndpoints(c, endpoints));
  }

  claimDeliveries(now: Date, leaseMs: number, limit: number): Promise<WebhookDelivery[]> {
    return wh.claimDeliveries(this.boundQuery, now, leaseMs, limit);
  }

  markDelivered(endpoint: string, event: number, at: Date): Promise<void> {
    return wh.markDelivered(this.boundQuery, endpoint, event, at);
  }

  markFailed(endpoint: string, event: number, error: string, retryAt: Date | null): Promise<void> {
    return wh.markFailed(this.boundQuery, endpoint, event, error, retryAt);
  }

  // ------------------------------------------------------------ OCSP (pg-revocation.ts)

  ocspStates(serials: string[]): Promise<OcspCertState[]> {
    return rev.ocspStates(this.boundQuery, serials);
  }

  saveOcspResponses(rows: OcspResponseRow[]): Promise<number> {
    return rev.saveOcspResponses(this.boundQuery, rows);
  }

  ocspDue(issuerId: number, now: Date, refreshBefore: Date, after: string, limit: number): Promise<OcspCertState[]> {
    return rev.ocspDue(this.boundQuery, issuerId, now, refreshBefore, after, limit);
  }

  // ------------------------------------------------------------ enrollment (pg-enrollment.ts)

  async createSecrets(secrets: NewSecret[], audit: AuditEntry[]): Promise<string[]> {
    const ids = await enr.createSecrets(this.boundQuery, secrets, audit);
    // many at once (a factory batch, a bulk `secret create`): the claim plans must see them (analyze)
    if (secrets.length >= ANALYZE_SECRETS_AT) this.analyze('enrollment_secrets', `after ${secrets.length} new secrets`);
    return ids;
  }

  /** Every Basic enrollment starts here: batched (ReadBatcher). */
  usableSecrets(deviceId: string, at: Date): Promise<SecretRecord[]> {
    return this.secretReads.get({ deviceId, at });
  }

  // claim, consume and supersede run at every enrollment: in the group transactions (see ClaimOp)
  claimSecret(id: string, at: Date): Promise<boolean> {
    return new Promise((resolve, reject) => this.enqueue({ kind: 'claim', id, at, resolve, reject }));
  }

  releaseSecret(id: string): Promise<void> {
    return enr.releaseSecret(this.boundQuery, id);
  }

  consumeSecret(id: string, serial: string, at: Date, audit: AuditEntry): Promise<void> {
    return new Promise((resolve, reject) => this.enqueue({ kind: 'consume', id, serial, at, audit, resolve, reject }));
  }

  latestRequest(deviceId: string, profile: string, spkiSha256: Buffer): Promise<EnrollmentRequest | null> {
    return enr.latestRequest(this.boundQuery, deviceId, profile, spkiSha256);
  }

  openRequest(r: NewEnrollmentRequest, audit: AuditEntry): Promise<EnrollmentRequest> {
    return enr.openRequest(this.boundQuery, r, audit);
  }

  listRequests(filter: { state?: RequestState; limit?: number }): Promise<EnrollmentRequest[]> {
    return enr.listRequests(this.boundQuery, { ...filter, ...(filter.limit !== undefined ? { limit: checkLimit(filter.limit) } : {}) });
  }

  getRequest(id: string): Promise<EnrollmentRequest | null> {
    return enr.getRequest(this.boundQuery, id);
  }

  decideRequest(id: string, decision: 'approved' | 'rejected', by: string, reason: string | null, at: Date, audit: AuditEntry): Promise<EnrollmentRequest> {
    return enr.decideRequest(this.boundQuery, id, decision, by, reason, at, audit);
  }

  markRequestIssued(id: string, serial: string): Promise<void> {
    return enr.markRequestIssued(this.boundQuery, id, serial);
  }

  supersede(s: { deviceId: string; profile: string; newSerial: string; at: Date; revokeAt: Date }, audit: AuditEntry, renewed?: AuditEntry | null): Promise<string[]> {
    return new Promise((resolve, reject) => this.enqueue({ kind: 'supersede', s, audit, renewed: renewed ?? null, resolve, reject }));
  }

  dueSuperseded(at: Date, limit: number): Promise<string[]> {
    return enr.dueSuperseded(this.boundQuery, at, checkLimit(limit));
  }

  /** Every SCEP request starts here: batched (ReadBatcher). */
  getScepTransaction(transactionId: string, signerSha256: Buffer): Promise<ScepTransaction | null> {
    return this.scepTxReads.get({ transactionId, signerSha256 });
  }

  recordScepTransaction(t: ScepTransaction, at: Date): Promise<void> {
    return new Promise((resolve, reject) => this.enqueue({ kind: 'scepTx', t, at, resolve, reject }));
  }

  // ------------------------------------------------------------ expiry tracking (pg-expiry.ts)

  expiryCounts(now: Date, windowsMs: readonly number[]): Promise<ExpiryCounts[]> {
    return exp.expiryCounts(this.boundQuery, now, windowsMs);
  }

  announceExpiring(p: { now: Date; actor: string; thresholds: ReadonlyArray<{ profile: string; ms: number; label: string }>; after: string; limit: number }): Promise<AnnounceResult> {
    return exp.announceExpiring(this.boundQuery, { ...p, limit: checkLimit(p.limit) });
  }

  announceExpired(p: { now: Date; since: Date; actor: string; profiles: readonly string[]; after: string; limit: number }): Promise<AnnounceResult> {
    return exp.announceExpired(this.boundQuery, { ...p, limit: checkLimit(p.limit) });
  }

  announceStale(p: { now: Date; since: Date; actor: string; windows: ReadonlyArray<{ profile: string; share: number | null; ms: number | null }>; after: string; limit: number }): Promise<AnnounceResult> {
    return exp.announceStale(this.boundQuery, { ...p, limit: checkLimit(p.limit) });
  }

  exclusive<T>(job: ExclusiveJob, fn: () => Promise<T>): Promise<T | null> {
    return exp.exclusive(this.pool, job, fn);
  }

  // ------------------------------------------------------------ audit chain (pg-audit.ts)

  auditSealSession<T>(wait: boolean, fn: (s: AuditSealSession) => Promise<T>): Promise<T | null> {
    return audit.auditSealSession(this.pool, wait, fn);
  }

  auditChainSnapshot<T>(fn: (s: AuditChainSnapshot) => Promise<T>): Promise<T> {
    return audit.auditChainSnapshot(this.pool, fn);
  }

  auditExport(range: { since: Date; until?: Date }, pageSize: number): AsyncIterable<AuditChainRow[]> {
    return audit.auditExport(this.pool, range, pageSize);
  }

  // ------------------------------------------------------------ helpers

  /** `query` with errors mapped, for the SQL modules this class delegates to. */
  private readonly boundQuery = <R extends pg.QueryResultRow>(text: string, values?: unknown[], name?: string) =>
    this.query<R>(name !== undefined ? { name, text, values: values ?? [] } : text, values);

  private async query<R extends pg.QueryResultRow>(text: string | pg.QueryConfig, values?: unknown[]): Promise<pg.QueryResult<R>> {
    // connecting apart from querying: whatever refuses a new connection (a database closed to
    // connections, renamed, dropped, auth) means "unavailable", whichever SQLSTATE it carries
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      const e = mapPgError(err);
      throw e.kind === 'unavailable' ? e : unavailable(`cannot connect to the database: ${e.message}`);
    }
    let broken = false;
    try {
      return typeof text === 'string' ? await client.query<R>(text, values) : await client.query<R>(text);
    } catch (err) {
      broken = isConnectionError(err);
      throw mapPgError(err);
    } finally {
      client.release(broken);
    }
  }

  private async tx<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw mapPgError(err);
    }
    let broken = false;
    try {
      await client.query('BEGIN');
      const result = await fn(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      if (isConnectionError(err)) broken = true;
      else await client.query('ROLLBACK').catch(() => (broken = true));
      throw mapPgError(err);
    } finally {
      client.release(broken);
    }
  }
}

/**
 * A checked-out client whose connection dies between two queries (a CRL build signing, the audit
 * sealer) emits 'error' with nobody listening, which would end the process. Every client the pool
 * makes gets a listener; the next query on it fails and its holder releases it as broken.
 */
function guardClients(pool: pg.Pool, log: (msg: string) => void): void {
  pool.on('connect', (client) => client.on('error', (err) => log(`database connection lost: ${err.message}`)));
}

function auditColumns(entries: AuditEntry[]): unknown[] {
  return [
    entries.map((a) => a.at),
    entries.map((a) => a.actor),
    entries.map((a) => a.action),
    entries.map((a) => a.target),
    entries.map((a) => JSON.stringify(a.details ?? {})),
  ];
}

function checkLimit(limit: number): number {
  if (!Number.isInteger(limit) || limit < 0) throw internal(`invalid limit ${limit}`);
  return limit;
}

/**
 * Splits ops into rounds holding at most one op per key, in queue order: a multi-row statement
 * per round then behaves as the ops would one after the other.
 */
function roundsByKey<T>(ops: T[], key: (op: T) => string): T[][] {
  const rounds: T[][] = [];
  const next = new Map<string, number>();
  for (const op of ops) {
    const k = key(op);
    const r = next.get(k) ?? 0;
    next.set(k, r + 1);
    (rounds[r] ??= []).push(op);
  }
  return rounds;
}

function settleAll(ops: WriteOp[], outcomes: Map<WriteOp, Outcome>): void {
  for (const op of ops) {
    const o = outcomes.get(op);
    if (!o) op.reject(internal('group commit lost track of a write'));
    else if (o.ok) (op.resolve as (v: unknown) => void)(o.value);
    else op.reject(o.error);
  }
}

function rejectAll(ops: WriteOp[], err: CaError): void {
  for (const op of ops) op.reject(err);
}
