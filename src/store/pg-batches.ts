/** SQL of factory batches (migration 0013); PgStore delegates to these functions. */
import type pg from 'pg';
import { notFound, unavailable } from '../core/errors.js';
import type { AuditEntry, CertificateStatus, DeviceState } from '../ca/ports.js';
import type {
  BatchCertificate,
  BatchDevice,
  BatchDeviceInput,
  BatchOptions,
  BatchOutcome,
  BatchRecord,
  BatchReject,
  NewBatch,
} from '../bulk/ports.js';
import { mapPgError } from './pg-errors.js';

type Query = <R extends pg.QueryResultRow>(text: string, values?: unknown[], name?: string) => Promise<pg.QueryResult<R>>;

/** Advisory lock class of batch runs ('flca' + 0x10; the migration runner uses 1 and 2 under 'flca'). */
const LOCK_CLASS = 0x666c6361 + 0x10;

interface BatchRow {
  id: string;
  manifest_sha256: Buffer;
  manifest_name: string;
  options: BatchOptions;
  state: BatchRecord['state'];
  rows_total: number;
  rejected: number;
  runs: number;
  created_at: Date;
  created_by: string;
  updated_at: Date;
  completed_at: Date | null;
  revoked_at: Date | null;
  revoked_by: string | null;
  revocation_reason: string | null;
  pending: string;
  done: string;
  rejected_devices: string;
  secrets: string;
  replaced: string;
}

interface BatchDeviceRow {
  batch_id: string;
  device_id: string;
  line: number;
  profile: string;
  state: BatchDevice['state'];
  serial: string | null;
  replaced: string[];
  secret_id: string | null;
  reason: string | null;
  updated_at: Date;
}

/** A batch with the counts of its devices per state. */
const BATCH_SELECT = `
SELECT b.*,
       coalesce(s.pending, 0) AS pending, coalesce(s.done, 0) AS done, coalesce(s.rejected, 0) AS rejected_devices,
       coalesce(s.secrets, 0) AS secrets, coalesce(s.replaced, 0) AS replaced
FROM batches b
LEFT JOIN LATERAL (
  SELECT count(*) FILTER (WHERE state = 'pending') AS pending,
         count(*) FILTER (WHERE state = 'done') AS done,
         count(*) FILTER (WHERE state = 'rejected') AS rejected,
         count(secret_id) AS secrets,
         sum(cardinality(replaced)) AS replaced
  FROM batch_devices WHERE batch_id = b.id
) s ON true`;

const toBatch = (r: BatchRow): BatchRecord => ({
  id: r.id,
  manifestSha256: r.manifest_sha256.toString('hex'),
  manifestName: r.manifest_name,
  options: r.options,
  state: r.state,
  rowsTotal: r.rows_total,
  rejected: r.rejected,
  runs: r.runs,
  createdAt: r.created_at,
  createdBy: r.created_by,
  updatedAt: r.updated_at,
  completedAt: r.completed_at,
  revokedAt: r.revoked_at,
  revokedBy: r.revoked_by,
  revocationReason: r.revocation_reason,
  devices: { pending: Number(r.pending), done: Number(r.done), rejected: Number(r.rejected_devices), secrets: Number(r.secrets), replaced: Number(r.replaced) },
});

const toBatchDevice = (r: BatchDeviceRow): BatchDevice => ({
  batchId: r.batch_id,
  deviceId: r.device_id,
  line: r.line,
  profile: r.profile,
  state: r.state,
  serial: r.serial,
  replaced: r.replaced,
  secretId: r.secret_id,
  reason: r.reason,
  updatedAt: r.updated_at,
});

async function insertAudit(c: pg.PoolClient, entries: AuditEntry[]): Promise<void> {
  if (entries.length === 0) return;
  await c.query(
    `INSERT INTO audit_log (at, actor, action, target, details)
     SELECT at, actor, action, target, details
     FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::jsonb[]) WITH ORDINALITY AS t(at, actor, action, target, details, ord)
     ORDER BY ord`,
    [entries.map((a) => a.at), entries.map((a) => a.actor), entries.map((a) => a.action), entries.map((a) => a.target), entries.map((a) => JSON.stringify(a.details ?? {}))],
  );
}

export async function getBatch(q: Query, id: string): Promise<BatchRecord | null> {
  const r = await q<BatchRow>(`${BATCH_SELECT} WHERE b.id = $1`, [id]);
  return r.rows[0] ? toBatch(r.rows[0]) : null;
}

export async function listBatches(q: Query, limit: number | null): Promise<BatchRecord[]> {
  const r = await q<BatchRow>(`${BATCH_SELECT} ORDER BY b.created_at DESC, b.id${limit !== null ? ' LIMIT $1' : ''}`, limit !== null ? [limit] : []);
  return r.rows.map(toBatch);
}

/** Runs in the caller's transaction (PgStore.tx). */
export async function openBatch(c: pg.PoolClient, b: NewBatch, audit: AuditEntry): Promise<{ created: boolean }> {
  const ins = await c.query(
    `INSERT INTO batches (id, manifest_sha256, manifest_name, options, created_at, created_by, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $5) ON CONFLICT (id) DO NOTHING RETURNING id`,
    [b.id, Buffer.from(b.manifestSha256, 'hex'), b.manifestName, JSON.stringify(b.options), b.createdAt, b.createdBy],
  );
  const created = ins.rowCount === 1;
  if (!created) await c.query('UPDATE batches SET runs = runs + 1, updated_at = $2 WHERE id = $1', [b.id, b.createdAt]);
  await insertAudit(c, [{ ...audit, action: created ? audit.action : 'batch.resumed' }]);
  return { created };
}

/**
 * A session-level advisory lock on a connection of its own, held while `fn` runs. A process that
 * dies loses its connection and with it the lock, so a killed run never blocks the next one.
 */
export async function withBatchLock<T>(pool: pg.Pool, id: string, fn: () => Promise<T>): Promise<T | null> {
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (err) {
    const e = mapPgError(err);
    throw e.kind === 'unavailable' ? e : unavailable(`cannot connect to the database: ${e.message}`);
  }
  let broken = false;
  try {
    const r = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, hashtext($2)) AS ok', [LOCK_CLASS, id]);
    if (!r.rows[0]!.ok) return null;
    try {
      return await fn();
    } finally {
      await client.query('SELECT pg_advisory_unlock($1, hashtext($2))', [LOCK_CLASS, id]).catch(() => (broken = true));
    }
  } catch (err) {
    broken = true;
    throw err;
  } finally {
    client.release(broken);
  }
}

/** Runs in the caller's transaction (PgStore.tx). */
export async function registerBatchDevices(c: pg.PoolClient, batchId: string, rows: BatchDeviceInput[], at: Date): Promise<Map<string, DeviceState>> {
  if (rows.length === 0) return new Map();
  const values = [
    rows.map((r) => r.deviceId),
    rows.map((r) => (r.macs === null ? null : JSON.stringify(r.macs))),
    rows.map((r) => r.serialNumber),
    rows.map((r) => r.model),
    rows.map((r) => r.firmware),
    rows.map((r) => r.deviceProfile),
    rows.map((r) => r.line),
    rows.map((r) => r.profile),
  ];
  const input = `SELECT * FROM unnest($1::text[], $2::jsonb[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int4[], $8::text[])
                   AS t(id, macs, serial_number, model, firmware, profile, line, cert_profile)`;
  const macsOf = (col: string) => `ARRAY(SELECT jsonb_array_elements_text(${col}))`;
  // new devices; in id order, so two concurrent batches sharing devices cannot deadlock
  await c.query(
    `INSERT INTO devices (id, macs, serial_number, model, firmware, profile, state, created_at, updated_at)
     SELECT id, coalesce(${macsOf('macs')}, '{}'), serial_number, model, firmware, profile, 'active', $9, $9
     FROM (${input}) i ORDER BY id
     ON CONFLICT (id) DO NOTHING`,
    [...values, at],
  );
  // existing ones: the fields the row gives (a no-op for those just inserted)
  await c.query(
    `UPDATE devices d SET macs = coalesce(${macsOf('i.macs')}, d.macs) , serial_number = coalesce(i.serial_number, d.serial_number),
            model = coalesce(i.model, d.model), firmware = coalesce(i.firmware, d.firmware), profile = coalesce(i.profile, d.profile), updated_at = $9
     FROM (${input}) i
     WHERE d.id = i.id AND (
       (i.macs IS NOT NULL AND d.macs IS DISTINCT FROM ${macsOf('i.macs')})
       OR (i.serial_number IS NOT NULL AND d.serial_number IS DISTINCT FROM i.serial_number)
       OR (i.model IS NOT NULL AND d.model IS DISTINCT FROM i.model)
       OR (i.firmware IS NOT NULL AND d.firmware IS DISTINCT FROM i.firmware)
       OR (i.profile IS NOT NULL AND d.profile IS DISTINCT FROM i.profile))`,
    [...values, at],
  );
  await c.query(
    `INSERT INTO batch_devices (batch_id, device_id, line, profile, updated_at)
     SELECT $9, id, line, cert_profile, $10 FROM (${input}) i ORDER BY id
     ON CONFLICT (batch_id, device_id) DO UPDATE SET line = EXCLUDED.line`,
    [...values, batchId, at],
  );
  const states = await c.query<{ id: string; state: DeviceState }>('SELECT id, state FROM devices WHERE id = ANY($1::text[])', [values[0]]);
  return new Map(states.rows.map((r) => [r.id, r.state]));
}

export async function batchDevices(q: Query, batchId: string, deviceIds: readonly string[]): Promise<Map<string, BatchDevice>> {
  if (deviceIds.length === 0) return new Map();
  const r = await q<BatchDeviceRow>('SELECT * FROM batch_devices WHERE batch_id = $1 AND device_id = ANY($2::text[])', [batchId, [...deviceIds]]);
  return new Map(r.rows.map((row) => [row.device_id, toBatchDevice(row)]));
}

export async function batchCertificates(q: Query, batchId: string): Promise<BatchCertificate[]> {
  const r = await q<{ device_id: string; serial: string; status: CertificateStatus; created_at: Date }>(
    `SELECT c.device_id, c.serial, c.status, c.created_at
     FROM issuance_intents ii JOIN certificates c ON c.serial = ii.serial
     WHERE ii.request ? 'batch' AND ii.request ->> 'batch' = $1 AND ii.state = 'issued'
     ORDER BY c.created_at, c.serial`,
    [batchId],
  );
  return r.rows.map((x) => ({ deviceId: x.device_id, serial: x.serial, status: x.status, createdAt: x.created_at }));
}

export async function batchPendingIntents(q: Query, batchId: string): Promise<string[]> {
  const r = await q<{ serial: string }>(
    `SELECT serial FROM issuance_intents WHERE request ? 'batch' AND request ->> 'batch' = $1 AND state = 'pending' ORDER BY created_at, serial`,
    [batchId],
  );
  return r.rows.map((x) => x.serial);
}

/** Runs in the caller's transaction (PgStore.tx). */
export async function recordBatchOutcomes(c: pg.PoolClient, batchId: string, outcomes: BatchOutcome[], audit: AuditEntry[], at: Date): Promise<void> {
  if (outcomes.length === 0) return;
  // secrets first. A device whose earlier secret was stored but whose plaintext was lost (the
  // runner only sends a secret then, or when none is stored) gets the new one; the old one expires.
  const withSecret = outcomes.filter((o) => o.secret);
  const secretIds = new Map<string, string>();
  if (withSecret.length > 0) {
    const ids = withSecret.map((o) => o.deviceId);
    await c.query(
      `UPDATE enrollment_secrets s SET expires_at = greatest(s.created_at + interval '1 millisecond', $3)
       FROM batch_devices b
       WHERE b.batch_id = $1 AND b.device_id = ANY($2::text[]) AND s.id = b.secret_id AND s.consumed_at IS NULL AND s.expires_at > $3`,
      [batchId, ids, at],
    );
    const ins = await c.query<{ id: string; device_id: string }>(
      `INSERT INTO enrollment_secrets (device_id, profile, mac, created_at, expires_at, created_by)
       SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::timestamptz[], $5::timestamptz[], $6::text[])
       RETURNING id::text, device_id`,
      [
        ids,
        withSecret.map((o) => o.secret!.profile),
        withSecret.map((o) => o.secret!.mac),
        withSecret.map((o) => o.secret!.createdAt),
        withSecret.map((o) => o.secret!.expiresAt),
        withSecret.map((o) => o.secret!.createdBy),
      ],
    );
    for (const r of ins.rows) secretIds.set(r.device_id, r.id);
  }
  await c.query(
    `UPDATE batch_devices b SET state = i.state, serial = coalesce(i.serial, b.serial),
            replaced = b.replaced || ARRAY(SELECT jsonb_array_elements_text(i.replaced)),
            reason = i.reason, secret_id = coalesce(i.secret_id, b.secret_id), updated_at = $8
     FROM unnest($2::text[], $3::text[], $4::text[], $5::jsonb[], $6::text[], $7::bigint[]) AS i(device_id, state, serial, replaced, reason, secret_id)
     WHERE b.batch_id = $1 AND b.device_id = i.device_id`,
    [
      batchId,
      outcomes.map((o) => o.deviceId),
      outcomes.map((o) => o.state),
      outcomes.map((o) => o.serial ?? null),
      outcomes.map((o) => JSON.stringify(o.replaced ?? [])),
      outcomes.map((o) => o.reason ?? null),
      outcomes.map((o) => secretIds.get(o.deviceId) ?? null),
      at,
    ],
  );
  await insertAudit(c, audit);
}

/** Runs in the caller's transaction (PgStore.tx). */
export async function recordBatchRejects(c: pg.PoolClient, batchId: string, rejects: BatchReject[], rowsTotal: number, at: Date): Promise<void> {
  await c.query('DELETE FROM batch_rejects WHERE batch_id = $1', [batchId]);
  if (rejects.length > 0) {
    await c.query(
      `INSERT INTO batch_rejects (batch_id, line, device_id, reason)
       SELECT $1, * FROM unnest($2::int4[], $3::text[], $4::text[]) ON CONFLICT (batch_id, line) DO UPDATE SET reason = EXCLUDED.reason`,
      [batchId, rejects.map((r) => r.line), rejects.map((r) => r.deviceId), rejects.map((r) => r.reason)],
    );
  }
  await c.query('UPDATE batches SET rows_total = $2, rejected = $3, updated_at = $4 WHERE id = $1', [batchId, rowsTotal, rejects.length, at]);
}

export async function listBatchRejects(q: Query, batchId: string): Promise<BatchReject[]> {
  const r = await q<{ line: number; device_id: string | null; reason: string }>('SELECT line, device_id, reason FROM batch_rejects WHERE batch_id = $1 ORDER BY line', [batchId]);
  return r.rows.map((x) => ({ line: x.line, deviceId: x.device_id, reason: x.reason }));
}

export async function listBatchDevices(q: Query, batchId: string, afterLine: number | null, limit: number | null): Promise<BatchDevice[]> {
  const values: unknown[] = [batchId];
  let sql = 'SELECT * FROM batch_devices WHERE batch_id = $1';
  if (afterLine !== null) {
    values.push(afterLine);
    sql += ` AND line > $${values.length}`;
  }
  sql += ' ORDER BY line';
  if (limit !== null) {
    values.push(limit);
    sql += ` LIMIT $${values.length}`;
  }
  const r = await q<BatchDeviceRow>(sql, values);
  return r.rows.map(toBatchDevice);
}

/** Runs in the caller's transaction (PgStore.tx). */
export async function completeBatch(c: pg.PoolClient, batchId: string, at: Date, audit: AuditEntry): Promise<void> {
  const r = await c.query("UPDATE batches SET state = 'complete', completed_at = coalesce(completed_at, $2), updated_at = $2 WHERE id = $1", [batchId, at]);
  if (r.rowCount === 0) throw notFound(`no batch ${batchId}`);
  await insertAudit(c, [audit]);
}

/** Runs in the caller's transaction (PgStore.tx). */
export async function markBatchRevoked(c: pg.PoolClient, batchId: string, reason: string, at: Date, actor: string, audit: AuditEntry): Promise<void> {
  const cur = await c.query<{ revoked_at: Date | null }>('SELECT revoked_at FROM batches WHERE id = $1 FOR UPDATE', [batchId]);
  if (!cur.rows[0]) throw notFound(`no batch ${batchId}`);
  // a recall interrupted half-way is run again: the first one's time, actor and reason stay
  if (cur.rows[0].revoked_at !== null) return;
  await c.query('UPDATE batches SET revoked_at = $2, revoked_by = $3, revocation_reason = $4, updated_at = $2 WHERE id = $1', [batchId, at, actor, reason]);
  await insertAudit(c, [audit]);
}
