/**
 * SQL of status changes (revoke, hold, release; one certificate or a whole device), CRL build
 * sessions and pre-signed OCSP responses. PgStore delegates to these functions. The trigger of
 * migration 0005 drops a certificate's stored OCSP response and NOTIFYs `fleetca_status` on every
 * status change made here, in the same transaction.
 */
import type pg from 'pg';
import { finished } from 'node:stream/promises';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { conflict, internal, notFound } from '../core/errors.js';
import type {
  CertificateStatus,
  CrlBuildSession,
  CrlRecord,
  DeviceQuarantine,
  DeviceStatusInput,
  OcspCertState,
  OcspResponseRow,
  RevocationInput,
  RevocationReason,
  RevokedEntry,
  StatusChange,
} from '../ca/ports.js';

type Client = pg.PoolClient;

/** Advisory-lock namespace of CRL builds (with the issuer id as second key). */
const CRL_LOCK_NS = 0x66_63_72_6c; // "fcrl"

interface ChangedRow {
  serial: string;
  issuer_id: number;
  status: CertificateStatus;
  revoked_at: Date | null;
  revocation_reason: RevocationReason | null;
  invalidity_date: Date | null;
  previous: CertificateStatus;
}

/** Applies a revocation or hold to locked rows; the rules are in the callers. */
async function applyRevocation(c: Client, rows: ChangedRow[], input: Omit<RevocationInput, 'serial'>): Promise<string[]> {
  if (rows.length === 0) return [];
  const hold = input.reason === 'certificateHold';
  const serials: string[] = [];
  const dates: Date[] = [];
  const entries: Buffer[] = [];
  for (const r of rows) {
    // a hold turned into a revocation keeps the date the certificate stopped being usable
    const revokedAt = r.previous === 'hold' && r.revoked_at ? r.revoked_at : input.at;
    serials.push(r.serial);
    dates.push(revokedAt);
    entries.push(input.crlEntry({ serial: r.serial, revokedAt, reason: input.reason, invalidityDate: input.invalidityDate ?? null }));
  }
  await c.query(
    `UPDATE certificates c SET status = $2, revoked_at = x.revoked_at, revocation_reason = $3, invalidity_date = $4, crl_entry = x.entry
       FROM unnest($1::text[], $5::timestamptz[], $6::bytea[]) AS x(serial, revoked_at, entry)
      WHERE c.serial = x.serial`,
    [serials, hold ? 'hold' : 'revoked', input.reason, input.invalidityDate ?? null, dates, entries],
  );
  await c.query(
    `INSERT INTO revocations (serial, issuer_id, reason, revoked_at, invalidity_date, actor)
     SELECT x.serial, x.issuer_id, $3, $4, $5, $6 FROM unnest($1::text[], $2::smallint[]) AS x(serial, issuer_id)`,
    [serials, rows.map((r) => r.issuer_id), input.reason, input.at, input.invalidityDate ?? null, input.actor],
  );
  await c.query(
    `INSERT INTO audit_log (at, actor, action, target, details)
     SELECT $2, $3, $4, x.serial, jsonb_build_object('reason', $5::text, 'previousStatus', x.previous, 'invalidityDate', $6::timestamptz)
       FROM unnest($1::text[], $7::text[]) AS x(serial, previous)`,
    [serials, input.at, input.actor, hold ? 'certificate.held' : 'certificate.revoked', input.reason, input.invalidityDate ?? null, rows.map((r) => r.previous)],
  );
  return serials;
}

async function applyRelease(c: Client, rows: ChangedRow[], at: Date, actor: string): Promise<string[]> {
  if (rows.length === 0) return [];
  const serials = rows.map((r) => r.serial);
  await c.query(
    `UPDATE certificates SET status = 'valid', revoked_at = NULL, revocation_reason = NULL, invalidity_date = NULL, crl_entry = NULL
      WHERE serial = ANY($1::text[])`,
    [serials],
  );
  await c.query(
    `INSERT INTO revocations (serial, issuer_id, reason, revoked_at, actor)
     SELECT x.serial, x.issuer_id, 'removeFromCRL', $3, $4 FROM unnest($1::text[], $2::smallint[]) AS x(serial, issuer_id)`,
    [serials, rows.map((r) => r.issuer_id), at, actor],
  );
  await c.query(
    `INSERT INTO audit_log (at, actor, action, target, details)
     SELECT $2, $3, 'certificate.released', x.serial, '{}'::jsonb FROM unnest($1::text[]) AS x(serial)`,
    [serials, at, actor],
  );
  return serials;
}

const LOCK_COLUMNS = `serial, issuer_id, status, revoked_at, revocation_reason, invalidity_date, status AS previous`;

/** Revokes or holds one certificate (rules in RevocationStore.revoke); returns its serial. */
export async function revokeOne(c: Client, input: RevocationInput): Promise<string> {
  if (input.reason === 'removeFromCRL') throw internal('removeFromCRL is not a revocation reason (it releases a hold)');
  const { rows } = await c.query<ChangedRow>(`SELECT ${LOCK_COLUMNS} FROM certificates WHERE serial = $1 FOR UPDATE`, [input.serial]);
  const current = rows[0];
  if (!current) throw notFound(`no certificate with serial ${input.serial}`);
  if (current.status === 'revoked') throw conflict(`certificate ${input.serial} is already revoked`);
  if (input.reason === 'certificateHold' && current.status === 'hold') throw conflict(`certificate ${input.serial} is already on hold`);
  await applyRevocation(c, [current], input);
  return input.serial;
}

/** Releases one held certificate. */
export async function releaseOne(c: Client, input: { serial: string; at: Date; actor: string }): Promise<string> {
  const { rows } = await c.query<ChangedRow>(`SELECT ${LOCK_COLUMNS} FROM certificates WHERE serial = $1 FOR UPDATE`, [input.serial]);
  const current = rows[0];
  if (!current) throw notFound(`no certificate with serial ${input.serial}`);
  if (current.status === 'revoked') throw conflict(`certificate ${input.serial} is revoked; only a hold can be released`);
  if (current.status !== 'hold') throw conflict(`certificate ${input.serial} is not on hold`);
  await applyRelease(c, [current], input.at, input.actor);
  return input.serial;
}

async function lockDeviceCertificates(c: Client, deviceId: string, at: Date, statuses: CertificateStatus[]): Promise<ChangedRow[]> {
  const d = await c.query('SELECT 1 FROM devices WHERE id = $1 FOR UPDATE', [deviceId]);
  if (d.rowCount === 0) throw notFound(`no device ${deviceId}`);
  const { rows } = await c.query<ChangedRow>(
    `SELECT ${LOCK_COLUMNS} FROM certificates
      WHERE device_id = $1 AND not_after > $2 AND status = ANY($3::text[])
      ORDER BY serial FOR UPDATE`,
    [deviceId, at, statuses],
  );
  return rows;
}

/** Revokes (valid and held) or holds (valid) every unexpired certificate of a device. */
export async function revokeDevice(c: Client, input: DeviceStatusInput & Omit<RevocationInput, 'serial' | 'at' | 'actor'>): Promise<string[]> {
  if (input.reason === 'removeFromCRL') throw internal('removeFromCRL is not a revocation reason (it releases a hold)');
  const rows = await lockDeviceCertificates(c, input.deviceId, input.at, input.reason === 'certificateHold' ? ['valid'] : ['valid', 'hold']);
  return applyRevocation(c, rows, input);
}

export async function releaseDevice(c: Client, input: DeviceStatusInput): Promise<string[]> {
  const rows = await lockDeviceCertificates(c, input.deviceId, input.at, ['hold']);
  return applyRelease(c, rows, input.at, input.actor);
}

// ---------------------------------------------------------------- device containment

interface QuarantineRow {
  device_id: string;
  reason: string;
  actor: string;
  at: Date;
  held_serials: string[];
  released_at: Date | null;
  released_by: string | null;
}

const toQuarantine = (r: QuarantineRow): DeviceQuarantine => ({
  deviceId: r.device_id,
  reason: r.reason,
  actor: r.actor,
  at: r.at,
  heldSerials: r.held_serials,
  releasedAt: r.released_at,
  releasedBy: r.released_by,
});

/** Locks the device row and returns its state; unknown → notFound. */
async function lockDevice(c: Client, deviceId: string): Promise<string> {
  const d = await c.query<{ state: string }>('SELECT state FROM devices WHERE id = $1 FOR UPDATE', [deviceId]);
  if (d.rowCount === 0) throw notFound(`no device ${deviceId}`);
  return d.rows[0]!.state;
}

async function setDeviceState(c: Client, deviceId: string, state: string, at: Date, actor: string, action: string, details: Record<string, unknown>): Promise<void> {
  await c.query('UPDATE devices SET state = $2, updated_at = $3 WHERE id = $1', [deviceId, state, at]);
  await c.query(`INSERT INTO audit_log (at, actor, action, target, details) VALUES ($1, $2, $3, $4, $5)`, [at, actor, action, deviceId, JSON.stringify(details)]);
}

/** active → quarantined, holding every valid live certificate; see ContainmentStore. */
export async function quarantineDevice(c: Client, input: DeviceStatusInput & { reason: string; crlEntry: RevocationInput['crlEntry'] }): Promise<{ quarantine: DeviceQuarantine; held: string[] }> {
  const state = await lockDevice(c, input.deviceId);
  if (state !== 'active') throw conflict(`device ${input.deviceId} is ${state}${state === 'quarantined' ? ' already' : ''}`);
  const rows = await lockDeviceCertificates(c, input.deviceId, input.at, ['valid']);
  const held = await applyRevocation(c, rows, { reason: 'certificateHold', at: input.at, actor: input.actor, invalidityDate: null, crlEntry: input.crlEntry });
  const q = await c.query<QuarantineRow>(
    `INSERT INTO device_quarantines (device_id, reason, actor, at, held_serials) VALUES ($1, $2, $3, $4, $5) RETURNING *`,
    [input.deviceId, input.reason, input.actor, input.at, held],
  );
  await setDeviceState(c, input.deviceId, 'quarantined', input.at, input.actor, 'device.quarantined', { reason: input.reason, held });
  return { quarantine: toQuarantine(q.rows[0]!), held };
}

/** quarantined → active, releasing what the quarantine held (if still held). */
export async function liftQuarantine(c: Client, input: DeviceStatusInput): Promise<{ quarantine: DeviceQuarantine; released: string[] }> {
  const state = await lockDevice(c, input.deviceId);
  if (state !== 'quarantined') throw conflict(`device ${input.deviceId} is ${state}, not quarantined`);
  const q = await c.query<QuarantineRow>(
    `UPDATE device_quarantines SET released_at = $2, released_by = $3 WHERE device_id = $1 AND released_at IS NULL RETURNING *`,
    [input.deviceId, input.at, input.actor],
  );
  const quarantine = q.rows[0] ? toQuarantine(q.rows[0]) : null;
  const held = quarantine?.heldSerials ?? [];
  const { rows } = await c.query<ChangedRow>(
    `SELECT ${LOCK_COLUMNS} FROM certificates WHERE serial = ANY($1::text[]) AND status = 'hold' AND not_after > $2 ORDER BY serial FOR UPDATE`,
    [held, input.at],
  );
  const released = await applyRelease(c, rows, input.at, input.actor);
  await setDeviceState(c, input.deviceId, 'active', input.at, input.actor, 'device.released', { released });
  return { quarantine: quarantine ?? { deviceId: input.deviceId, reason: '', actor: '', at: input.at, heldSerials: [], releasedAt: input.at, releasedBy: input.actor }, released };
}

/** active or quarantined → retired, revoking (cessationOfOperation) every valid or held live certificate. */
export async function retireDevice(c: Client, input: DeviceStatusInput & { crlEntry: RevocationInput['crlEntry'] }): Promise<string[]> {
  const state = await lockDevice(c, input.deviceId);
  if (state === 'retired') throw conflict(`device ${input.deviceId} is retired already`);
  await c.query(`UPDATE device_quarantines SET released_at = $2, released_by = $3 WHERE device_id = $1 AND released_at IS NULL`, [input.deviceId, input.at, input.actor]);
  const rows = await lockDeviceCertificates(c, input.deviceId, input.at, ['valid', 'hold']);
  const revoked = await applyRevocation(c, rows, { reason: 'cessationOfOperation', at: input.at, actor: input.actor, invalidityDate: null, crlEntry: input.crlEntry });
  await setDeviceState(c, input.deviceId, 'retired', input.at, input.actor, 'device.retired', { revoked, previousState: state });
  return revoked;
}

export async function openQuarantine(c: pg.Pool, deviceId: string): Promise<DeviceQuarantine | null> {
  const { rows } = await c.query<QuarantineRow>('SELECT * FROM device_quarantines WHERE device_id = $1 AND released_at IS NULL', [deviceId]);
  return rows[0] ? toQuarantine(rows[0]) : null;
}

// ---------------------------------------------------------------- CRL entries of old rows

export async function missingCrlEntries(c: pg.Pool, limit: number): Promise<Array<RevokedEntry & { issuerId: number }>> {
  const { rows } = await c.query<{ serial: string; issuer_id: number; revoked_at: Date; revocation_reason: RevocationReason; invalidity_date: Date | null }>(
    `SELECT serial, issuer_id, revoked_at, revocation_reason, invalidity_date FROM certificates
      WHERE status <> 'valid' AND crl_entry IS NULL ORDER BY serial LIMIT $1`,
    [limit],
  );
  return rows.map((r) => ({ serial: r.serial, issuerId: r.issuer_id, revokedAt: r.revoked_at, reason: r.revocation_reason, invalidityDate: r.invalidity_date }));
}

export async function setCrlEntries(c: pg.Pool, entries: Array<{ serial: string; der: Buffer }>): Promise<void> {
  if (entries.length === 0) return;
  await c.query(
    `UPDATE certificates c SET crl_entry = x.der FROM unnest($1::text[], $2::bytea[]) AS x(serial, der)
      WHERE c.serial = x.serial AND c.status <> 'valid' AND c.crl_entry IS NULL`,
    [entries.map((e) => e.serial), entries.map((e) => e.der)],
  );
}

// ---------------------------------------------------------------- CRL build sessions

/**
 * A CRL build for one issuer: a session advisory lock (taken before the snapshot, so the snapshot
 * sees every CRL number the previous holder committed), then one REPEATABLE READ READ ONLY
 * snapshot for reading, and autocommit writes for the number and the stored CRL.
 */
export async function crlBuild<T>(pool: pg.Pool, issuerId: number, fn: (s: CrlBuildSession) => Promise<T>): Promise<T | null> {
  const c = await pool.connect();
  let broken = false;
  try {
    const got = await c.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS ok', [CRL_LOCK_NS, issuerId]);
    if (!got.rows[0]!.ok) return null;
    // a second connection writes the number and the CRL while `c` holds the snapshot
    try {
      await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const session: CrlBuildSession = {
        nextNumber: async () => {
          const r = await pool.query<{ n: string }>(
            `INSERT INTO crl_numbers (issuer_id, last_number) VALUES ($1, 1)
             ON CONFLICT (issuer_id) DO UPDATE SET last_number = crl_numbers.last_number + 1
             RETURNING last_number::text AS n`,
            [issuerId],
          );
          return BigInt(r.rows[0]!.n);
        },
        entryPages: (opts) => entryPages(c, issuerId, opts),
        latestBase: async () => {
          const r = await c.query<{ number: string; this_update: Date }>(
            `SELECT number::text AS number, this_update FROM crls WHERE issuer_id = $1 AND base ORDER BY number DESC LIMIT 1`,
            [issuerId],
          );
          const row = r.rows[0];
          return row ? { number: BigInt(row.number), thisUpdate: row.this_update } : null;
        },
        changesSince: async (since, listedAfter) => {
          const r = await c.query<{ serial: string; status: CertificateStatus; crl_entry: Buffer | null; changed_at: Date }>(
            `SELECT c.serial, c.status, c.crl_entry, x.changed_at
               FROM (SELECT serial, max(revoked_at) AS changed_at FROM revocations
                      WHERE issuer_id = $1 AND revoked_at >= $2 GROUP BY serial) x
               JOIN certificates c ON c.serial = x.serial
              WHERE c.not_after >= $3
              ORDER BY c.serial`,
            [issuerId, since, listedAfter],
          );
          return r.rows.map((x): StatusChange => ({ serial: x.serial, status: x.status, crlEntry: x.crl_entry, changedAt: x.changed_at }));
        },
        save: async (crl) => {
          await saveCrlRow(pool, crl);
        },
      };
      const out = await fn(session);
      await c.query('COMMIT');
      return out;
    } finally {
      await c.query('ROLLBACK').catch(() => undefined);
      await c.query('SELECT pg_advisory_unlock($1, $2)', [CRL_LOCK_NS, issuerId]).catch(() => (broken = true));
    }
  } catch (e) {
    broken = true;
    throw e;
  } finally {
    c.release(broken);
  }
}

/**
 * The stored entries of one scope, in serial order, streamed with `COPY … TO STDOUT (FORMAT
 * binary)`: the bytes arrive as they are stored (no row objects, no hex text to decode), one
 * buffer per network chunk. COPY takes no bind parameters, so the values are formatted here from
 * typed inputs only (integers and an ISO timestamp).
 */
async function* entryPages(c: Client, issuerId: number, opts: { listedAfter: Date; shard?: number }): AsyncIterable<{ der: Buffer; count: number }> {
  if (!Number.isInteger(issuerId) || (opts.shard !== undefined && !Number.isInteger(opts.shard))) throw internal('bad CRL scope');
  const sql = `COPY (SELECT crl_entry FROM certificates
      WHERE issuer_id = ${issuerId} AND status <> 'valid' AND not_after >= '${opts.listedAfter.toISOString()}'::timestamptz
        ${opts.shard !== undefined ? `AND crl_shard = ${opts.shard}` : ''}
      ORDER BY serial) TO STDOUT (FORMAT binary)`;
  const stream = c.query(copyTo(sql));
  const parser = new CopyBinaryEntries();
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    const page = parser.push(chunk);
    if (page) yield page;
  }
  parser.end();
}

/** Reads PostgreSQL's binary COPY format (one bytea column) into concatenated values. */
class CopyBinaryEntries {
  private rest: Buffer = Buffer.alloc(0);
  private headerDone = false;
  private done = false;

  push(chunk: Buffer): { der: Buffer; count: number } | null {
    const buf = this.rest.length > 0 ? Buffer.concat([this.rest, chunk]) : chunk;
    let off = 0;
    if (!this.headerDone) {
      // "PGCOPY\n\xff\r\n\0", flags int32, header extension length int32, extension
      if (buf.length < 19) {
        this.rest = buf;
        return null;
      }
      if (buf.toString('latin1', 0, 11) !== 'PGCOPY\n\xff\r\n\0') throw internal('unexpected COPY header');
      off = 19 + buf.readInt32BE(15);
      this.headerDone = true;
    }
    const parts: Buffer[] = [];
    let count = 0;
    while (!this.done && off + 2 <= buf.length) {
      const fields = buf.readInt16BE(off);
      if (fields === -1) {
        this.done = true;
        off += 2;
        break;
      }
      if (fields !== 1 || off + 6 > buf.length) break;
      const len = buf.readInt32BE(off + 2);
      if (len < 0) throw internal('a revoked certificate has no CRL entry');
      if (off + 6 + len > buf.length) break;
      parts.push(buf.subarray(off + 6, off + 6 + len));
      count++;
      off += 6 + len;
    }
    this.rest = Buffer.from(buf.subarray(off));
    return count > 0 ? { der: Buffer.concat(parts), count } : null;
  }

  end(): void {
    if (!this.done || this.rest.length > 0) throw internal('COPY ended early');
  }
}

// ---------------------------------------------------------------- binary COPY of one crls row

/** PostgreSQL timestamps count microseconds from 2000-01-01 UTC. */
const PG_EPOCH_MS = Date.UTC(2000, 0, 1);

function field(value: Buffer | null): Buffer[] {
  const len = Buffer.alloc(4);
  len.writeInt32BE(value === null ? -1 : value.length);
  return value === null ? [len] : [len, value];
}
const int16 = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeInt16BE(n);
  return b;
};
const int32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};
const int64 = (n: bigint) => {
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(n);
  return b;
};
const timestamp = (d: Date) => int64(BigInt(d.getTime() - PG_EPOCH_MS) * 1000n);

/** COPY header, the tuple's field count and every field before `der`, and der's length. */
function copyTupleHead(crl: CrlRecord): Buffer {
  return Buffer.concat([
    Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'),
    int32(0), // flags
    int32(0), // header extension length
    int16(10),
    ...field(int16(crl.issuerId)),
    ...field(int64(crl.number)),
    ...field(Buffer.from(crl.kind, 'utf8')),
    ...field(int32(crl.shard)),
    ...field(timestamp(crl.thisUpdate)),
    ...field(timestamp(crl.nextUpdate)),
    int32(crl.der.length),
  ]);
}

/** The fields after `der`, and the COPY trailer. */
function copyTupleTail(crl: CrlRecord & { base: boolean; baseNumber: bigint | null; entries: number }): Buffer {
  return Buffer.concat([
    ...field(Buffer.from([crl.base ? 1 : 0])),
    ...field(crl.baseNumber === null ? null : int64(crl.baseNumber)),
    ...field(int32(crl.entries)),
    int16(-1),
  ]);
}

/** Stores a CRL, tells every instance, and prunes older CRLs of its scope (bases are kept). */
async function saveCrlRow(pool: pg.Pool, crl: CrlRecord & { base: boolean; baseNumber: bigint | null; entries: number }): Promise<void> {
  const c = await pool.connect();
  let broken = false;
  try {
    await c.query('BEGIN');
    // binary COPY, not INSERT: the DER (49 MB for 1M entries) goes to the socket as it is, where a
    // bind parameter would be copied into node-pg's message buffer first
    const copy = c.query(copyFrom('COPY crls (issuer_id, number, kind, shard, this_update, next_update, der, base, base_number, entries) FROM STDIN (FORMAT binary)'));
    const done = finished(copy);
    copy.write(copyTupleHead(crl));
    copy.write(crl.der);
    copy.end(copyTupleTail(crl));
    await done;
    // keep the two newest of the scope (a server may still be reading the previous one) and the
    // two newest bases (delta CRLs refer to them)
    await c.query(
      `DELETE FROM crls WHERE issuer_id = $1 AND kind = $2 AND shard = $3 AND number < $4
          AND id NOT IN (SELECT id FROM crls WHERE issuer_id = $1 AND kind = $2 AND shard = $3 ORDER BY number DESC LIMIT 2)
          AND id NOT IN (SELECT id FROM crls WHERE issuer_id = $1 AND base ORDER BY number DESC LIMIT 2)`,
      [crl.issuerId, crl.kind, crl.shard, crl.number.toString()],
    );
    await c.query(`SELECT pg_notify('fleetca_crl', $1)`, [`${crl.issuerId}:${crl.kind}:${crl.shard}:${crl.number}`]);
    await c.query('COMMIT');
  } catch (e) {
    await c.query('ROLLBACK').catch(() => (broken = true));
    throw e;
  } finally {
    c.release(broken);
  }
}

// ---------------------------------------------------------------- OCSP

interface OcspRow {
  serial: string;
  issuer_id: number;
  status: CertificateStatus;
  revoked_at: Date | null;
  revocation_reason: RevocationReason | null;
  not_after: Date;
  der: Buffer | null;
  this_update: Date | null;
  next_update: Date | null;
}

const toOcspState = (r: OcspRow): OcspCertState => ({
  serial: r.serial,
  issuerId: r.issuer_id,
  status: r.status,
  revokedAt: r.revoked_at,
  reason: r.revocation_reason,
  notAfter: r.not_after,
  stored: r.der && r.this_update && r.next_update ? { der: r.der, thisUpdate: r.this_update, nextUpdate: r.next_update } : null,
});

type Query = <R extends pg.QueryResultRow>(text: string, values?: unknown[], name?: string) => Promise<pg.QueryResult<R>>;

export async function ocspStates(q: Query, serials: string[]): Promise<OcspCertState[]> {
  const r = await q<OcspRow>(
    `SELECT c.serial, c.issuer_id, c.status, c.revoked_at, c.revocation_reason, c.not_after, o.der, o.this_update, o.next_update
       FROM certificates c LEFT JOIN ocsp_responses o ON o.serial = c.serial
      WHERE c.serial = ANY($1::text[])`,
    [serials],
    'fleetca_ocsp_states',
  );
  return r.rows.map(toOcspState);
}

export async function saveOcspResponses(q: Query, rows: OcspResponseRow[]): Promise<number> {
  if (rows.length === 0) return 0;
  // FOR SHARE waits for a status change in flight and then re-checks the row: a response signed
  // for the old status is not stored over the trigger's delete.
  const r = await q(
    `WITH input AS (
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::bytea[])
         AS t(serial, status, reason, this_update, next_update, der)
     ), still AS (
       SELECT c.serial FROM certificates c JOIN input i ON i.serial = c.serial
        WHERE c.status = i.status AND c.revocation_reason IS NOT DISTINCT FROM i.reason
        FOR SHARE OF c
     )
     INSERT INTO ocsp_responses (serial, this_update, next_update, der)
     SELECT i.serial, i.this_update, i.next_update, i.der FROM input i JOIN still USING (serial)
     ON CONFLICT (serial) DO UPDATE SET this_update = excluded.this_update, next_update = excluded.next_update, der = excluded.der
       WHERE ocsp_responses.this_update <= excluded.this_update`,
    [rows.map((x) => x.serial), rows.map((x) => x.status), rows.map((x) => x.reason), rows.map((x) => x.thisUpdate), rows.map((x) => x.nextUpdate), rows.map((x) => x.der)],
    'fleetca_ocsp_save',
  );
  return r.rowCount ?? 0;
}

export async function ocspDue(q: Query, issuerId: number, now: Date, refreshBefore: Date, after: string, limit: number): Promise<OcspCertState[]> {
  const r = await q<OcspRow>(
    `SELECT c.serial, c.issuer_id, c.status, c.revoked_at, c.revocation_reason, c.not_after, NULL::bytea AS der,
            NULL::timestamptz AS this_update, NULL::timestamptz AS next_update
       FROM certificates c LEFT JOIN ocsp_responses o ON o.serial = c.serial
      WHERE c.issuer_id = $1 AND c.serial > $4 AND c.not_after > $2 AND (o.serial IS NULL OR o.next_update < $3)
      ORDER BY c.serial LIMIT $5`,
    [issuerId, now, refreshBefore, after, limit],
  );
  return r.rows.map(toOcspState);
}
