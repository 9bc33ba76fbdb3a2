/**
 * SQL of the enrollment ports (enrollment/ports.ts): one-time secrets, the approval queue and
 * supersession. Each write that carries an audit entry is ONE statement (data-modifying CTEs), so
 * the change and its audit row commit together. PgStore delegates to these functions.
 */
import type pg from 'pg';
import { conflict, notFound } from '../core/errors.js';
import type { AuditEntry } from '../ca/ports.js';
import type { EnrollmentRequest, NewEnrollmentRequest, NewSecret, RequestState, ScepTransaction, SecretRecord } from '../enrollment/ports.js';

/** `name`: a prepared statement, parsed and planned once per connection (the per-enrollment statements). */
type Query = <R extends pg.QueryResultRow>(text: string, values?: unknown[], name?: string) => Promise<pg.QueryResult<R>>;

const auditValues = (a: AuditEntry) => [a.at, a.actor, a.action, a.target, JSON.stringify(a.details ?? {})];

// ---------------------------------------------------------------- secrets

interface SecretRow {
  id: string;
  device_id: string;
  profile: string;
  mac: Buffer;
  created_at: Date;
  expires_at: Date;
  created_by: string;
  claimed_at: Date | null;
  consumed_at: Date | null;
  serial: string | null;
}

const toSecret = (r: SecretRow): SecretRecord => ({
  id: r.id,
  deviceId: r.device_id,
  profile: r.profile,
  mac: r.mac,
  createdAt: r.created_at,
  expiresAt: r.expires_at,
  createdBy: r.created_by,
  claimedAt: r.claimed_at,
  consumedAt: r.consumed_at,
  serial: r.serial,
});

export async function createSecrets(q: Query, secrets: NewSecret[], audit: AuditEntry[]): Promise<string[]> {
  if (secrets.length === 0) return [];
  const { rows } = await q<{ id: string }>(
    `WITH input AS (
       SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::timestamptz[], $5::timestamptz[], $6::text[])
         WITH ORDINALITY AS t(device_id, profile, mac, created_at, expires_at, created_by, ord)
     ), ins AS (
       INSERT INTO enrollment_secrets (device_id, profile, mac, created_at, expires_at, created_by)
       SELECT device_id, profile, mac, created_at, expires_at, created_by FROM input ORDER BY ord
       RETURNING id
     ), audit AS (
       INSERT INTO audit_log (at, actor, action, target, details)
       SELECT * FROM unnest($7::timestamptz[], $8::text[], $9::text[], $10::text[], $11::jsonb[])
     )
     SELECT id::text FROM ins ORDER BY ins.id`,
    [
      secrets.map((s) => s.deviceId),
      secrets.map((s) => s.profile),
      secrets.map((s) => s.mac),
      secrets.map((s) => s.createdAt),
      secrets.map((s) => s.expiresAt),
      secrets.map((s) => s.createdBy),
      audit.map((a) => a.at),
      audit.map((a) => a.actor),
      audit.map((a) => a.action),
      audit.map((a) => a.target),
      audit.map((a) => JSON.stringify(a.details ?? {})),
    ],
  );
  return rows.map((r) => r.id);
}

/**
 * The unconsumed, unexpired secrets of each device, oldest first, for a batch of callers (one
 * query; each caller's own `at` decides expiry).
 */
export async function usableSecretsOf(q: Query, reqs: Array<{ deviceId: string; at: Date }>): Promise<SecretRecord[][]> {
  const minAt = reqs.reduce((m, r) => (r.at < m ? r.at : m), reqs[0]!.at);
  const { rows } = await q<SecretRow>(
    `SELECT id::text, device_id, profile, mac, created_at, expires_at, created_by, claimed_at, consumed_at, serial
       FROM enrollment_secrets
      WHERE device_id = ANY($1::text[]) AND consumed_at IS NULL AND expires_at > $2
      ORDER BY enrollment_secrets.id`,
    [[...new Set(reqs.map((r) => r.deviceId))], minAt],
    'fleetca_usable_secrets_of',
  );
  return reqs.map((r) => rows.filter((s) => s.device_id === r.deviceId && s.expires_at > r.at).map(toSecret));
}

// claimSecret and consumeSecret are PgStore group-commit operations (SQL_CLAIM_SECRETS,
// SQL_CONSUME_SECRETS in pg-store.ts): every Basic enrollment makes both.

export async function releaseSecret(q: Query, id: string): Promise<void> {
  await q(`UPDATE enrollment_secrets SET claimed_at = NULL WHERE id = $1 AND consumed_at IS NULL`, [id]);
}

// ---------------------------------------------------------------- approval queue

interface RequestRow {
  id: string;
  device_id: string;
  profile: string;
  spki_sha256: Buffer;
  subject: string;
  csr_der: Buffer;
  via: string;
  actor: string;
  state: RequestState;
  created_at: Date;
  decided_at: Date | null;
  decided_by: string | null;
  reason: string | null;
  serial: string | null;
  secret_id: string | null;
}

// ids are selected as text: ORDER BY names the table's column (a bare `id` would sort the text output)
const REQUEST_COLUMNS = `id::text, device_id, profile, spki_sha256, subject, csr_der, via, actor, state, created_at,
  decided_at, decided_by, reason, serial, secret_id::text`;

const toRequest = (r: RequestRow): EnrollmentRequest => ({
  id: r.id,
  deviceId: r.device_id,
  profile: r.profile,
  spkiSha256: r.spki_sha256,
  subject: r.subject,
  csrDer: r.csr_der,
  via: r.via,
  actor: r.actor,
  state: r.state,
  createdAt: r.created_at,
  decidedAt: r.decided_at,
  decidedBy: r.decided_by,
  reason: r.reason,
  serial: r.serial,
  secretId: r.secret_id,
});

export async function latestRequest(q: Query, deviceId: string, profile: string, spkiSha256: Buffer): Promise<EnrollmentRequest | null> {
  const { rows } = await q<RequestRow>(
    `SELECT ${REQUEST_COLUMNS} FROM enrollment_requests
      WHERE device_id = $1 AND profile = $2 AND spki_sha256 = $3
      ORDER BY (state IN ('pending', 'approved')) DESC, enrollment_requests.id DESC LIMIT 1`,
    [deviceId, profile, spkiSha256],
    'fleetca_latest_request',
  );
  return rows[0] ? toRequest(rows[0]) : null;
}

export async function openRequest(q: Query, r: NewEnrollmentRequest, audit: AuditEntry): Promise<EnrollmentRequest> {
  // ON CONFLICT on the partial unique index: a device polling concurrently gets the one open row
  const { rows } = await q<RequestRow>(
    `WITH ins AS (
       INSERT INTO enrollment_requests (device_id, profile, spki_sha256, subject, csr_der, via, actor, created_at, secret_id)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $14)
       ON CONFLICT (device_id, profile, spki_sha256) WHERE state IN ('pending', 'approved') DO NOTHING
       RETURNING *
     ), audit AS (
       INSERT INTO audit_log (at, actor, action, target, details)
       SELECT $9, $10, $11, $12, $13::jsonb || jsonb_build_object('request', ins.id) FROM ins
     )
     SELECT ${REQUEST_COLUMNS} FROM ins`,
    [r.deviceId, r.profile, r.spkiSha256, r.subject, r.csrDer, r.via, r.actor, r.createdAt, ...auditValues(audit), r.secretId ?? null],
  );
  if (rows[0]) return toRequest(rows[0]);
  const open = await latestRequest(q, r.deviceId, r.profile, r.spkiSha256);
  if (!open) throw conflict('the enrollment request changed concurrently; try again');
  return open;
}

export async function listRequests(q: Query, filter: { state?: RequestState; limit?: number }): Promise<EnrollmentRequest[]> {
  const values: unknown[] = [];
  let sql = `SELECT ${REQUEST_COLUMNS} FROM enrollment_requests`;
  if (filter.state !== undefined) {
    values.push(filter.state);
    sql += ` WHERE state = $1`;
  }
  sql += ' ORDER BY enrollment_requests.id';
  if (filter.limit !== undefined) {
    values.push(filter.limit);
    sql += ` LIMIT $${values.length}`;
  }
  const { rows } = await q<RequestRow>(sql, values);
  return rows.map(toRequest);
}

export async function getRequest(q: Query, id: string): Promise<EnrollmentRequest | null> {
  if (!/^\d{1,18}$/.test(id)) return null;
  const { rows } = await q<RequestRow>(`SELECT ${REQUEST_COLUMNS} FROM enrollment_requests WHERE id = $1`, [id]);
  return rows[0] ? toRequest(rows[0]) : null;
}

export async function decideRequest(
  q: Query,
  id: string,
  decision: 'approved' | 'rejected',
  by: string,
  reason: string | null,
  at: Date,
  audit: AuditEntry,
): Promise<EnrollmentRequest> {
  if (!/^\d{1,18}$/.test(id)) throw notFound(`no enrollment request ${id}`);
  const { rows } = await q<RequestRow>(
    `WITH upd AS (
       UPDATE enrollment_requests SET state = $2, decided_by = $3, reason = $4, decided_at = $5
        WHERE id = $1 AND state = 'pending'
       RETURNING *
     ), audit AS (
       INSERT INTO audit_log (at, actor, action, target, details) SELECT $6, $7, $8, $9, $10 FROM upd
     )
     SELECT ${REQUEST_COLUMNS} FROM upd`,
    [id, decision, by, reason, at, ...auditValues(audit)],
  );
  if (rows[0]) return toRequest(rows[0]);
  const current = await getRequest(q, id);
  if (!current) throw notFound(`no enrollment request ${id}`);
  throw conflict(`enrollment request ${id} is ${current.state}, not pending`);
}

export async function markRequestIssued(q: Query, id: string, serial: string): Promise<void> {
  await q(`UPDATE enrollment_requests SET state = 'issued', serial = $2 WHERE id = $1 AND state = 'approved'`, [id, serial]);
}

// ---------------------------------------------------------------- supersession

// supersede is a PgStore group-commit operation (SQL_SUPERSEDE in pg-store.ts).

export async function dueSuperseded(q: Query, at: Date, limit: number): Promise<string[]> {
  const { rows } = await q<{ serial: string }>(
    `SELECT serial FROM certificates
      WHERE supersede_revoke_at IS NOT NULL AND supersede_revoke_at <= $1 AND status <> 'revoked' AND not_after >= $1
      ORDER BY supersede_revoke_at LIMIT $2`,
    [at, limit],
  );
  return rows.map((r) => r.serial);
}

// ---------------------------------------------------------------- SCEP transactions

interface ScepTxRow {
  transaction_id: string;
  csr_sha256: Buffer;
  signer_sha256: Buffer;
  request_id: string | null;
  serial: string | null;
}

const toScepTx = (r: ScepTxRow): ScepTransaction => ({
  transactionId: r.transaction_id,
  csrSha256: r.csr_sha256,
  signerSha256: r.signer_sha256,
  requestId: r.request_id,
  serial: r.serial,
});

/** SCEP transaction records by (transactionID, signer), for a batch of callers (one query). */
export async function scepTransactionsOf(q: Query, keys: Array<{ transactionId: string; signerSha256: Buffer }>): Promise<Array<ScepTransaction | null>> {
  const { rows } = await q<ScepTxRow>(
    `SELECT s.transaction_id, s.csr_sha256, s.signer_sha256, s.request_id::text, s.serial
       FROM scep_transactions s JOIN unnest($1::text[], $2::bytea[]) AS k(transaction_id, signer_sha256)
         ON s.transaction_id = k.transaction_id AND s.signer_sha256 = k.signer_sha256`,
    [keys.map((k) => k.transactionId), keys.map((k) => k.signerSha256)],
    'fleetca_scep_txs_of',
  );
  const found = new Map(rows.map((r) => [`${r.transaction_id}\u0000${r.signer_sha256.toString('hex')}`, r]));
  return keys.map((k) => {
    const r = found.get(`${k.transactionId}\u0000${k.signerSha256.toString('hex')}`);
    return r ? toScepTx(r) : null;
  });
}

// recordScepTransaction is a PgStore group-commit operation (SQL_RECORD_SCEP_TXS in pg-store.ts).
