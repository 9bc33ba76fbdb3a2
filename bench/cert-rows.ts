/**
 * Bulk certificate rows for the ocsp and crl bench sections, generated inside PostgreSQL
 * (INSERT … SELECT generate_series): a serials row and a certificates row per index i of one
 * issuer, satisfying every constraint of migrations 0001 and 0005.
 *
 *   serial       lowercase hex of 16 bytes, first byte 0x01–0x7f: hex(1 + i % 127) ‖ md5(seed:i)[2..]
 *                (the bench computes the same serial in node: `serialOf`)
 *   der          a 1-byte placeholder (neither the OCSP responder nor the CRL build reads it)
 *   fingerprint, spki_sha256   sha256 of the serial bytes (unique)
 *   revoked      every row with i % revokedEvery = 0: status revoked, reason keyCompromise, revoked_at
 *                = `revokedAt`, and crl_entry encoded in SQL byte for byte as crlEntryOf does
 *                (checkCrlEntries compares a sample against crlEntryOf)
 *
 * Chunks of 100k rows, two connections at a time (the machine has two cores).
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';
import { crlEntryOf } from '../src/ca/revocation.js';

export function serialOf(seed: string, i: number): string {
  return (1 + (i % 127)).toString(16).padStart(2, '0') + createHash('md5').update(`${seed}:${i}`).digest('hex').slice(2);
}

const SERIAL_SQL = `lpad(to_hex(1 + i % 127), 2, '0') || substr(md5($1 || ':' || i), 3)`;

/**
 * A CRL entry with reasonCode keyCompromise (RFC 5280 §5.1.2.6), for a 16-byte serial and a
 * revocation date before 2050 (UTCTime): 30 2f | 02 10 serial | 17 0d YYMMDDHHMMSSZ |
 * 30 0c 30 0a 06 03 55 1d 15 04 03 0a 01 01.
 */
const CRL_ENTRY_SQL = (serial: string, at: string) =>
  `'\\x302f0210'::bytea || decode(${serial}, 'hex') || '\\x170d'::bytea || convert_to(to_char(${at} AT TIME ZONE 'UTC', 'YYMMDDHH24MISS') || 'Z', 'UTF8') || '\\x300c300a0603551d1504030a0101'::bytea`;

export interface RowSpec {
  issuerId: number;
  seed: string;
  /** Indices [from, to). */
  from: number;
  to: number;
  /** Every row with i % revokedEvery = 0 is revoked (1: all). */
  revokedEvery: number;
  /** Revocation time of the revoked rows, whole seconds. */
  revokedAt: Date;
}

async function insertChunk(pool: pg.Pool, s: RowSpec, from: number, to: number): Promise<void> {
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    await c.query(`SET LOCAL synchronous_commit = off`);
    await c.query(`INSERT INTO serials (serial, issuer_id, reserved_at) SELECT ${SERIAL_SQL}, $2, now() FROM generate_series($3::int, $4::int - 1) AS i`, [s.seed, s.issuerId, from, to]);
    await c.query(
      `INSERT INTO certificates (serial, issuer_id, device_id, profile, subject, spki_sha256, fingerprint_sha256, not_before, not_after, der, pop_method,
                                 status, revoked_at, revocation_reason, crl_entry, created_at)
       SELECT x.serial, $2, NULL, 'camera', 'CN=bench-' || x.i, sha256(decode(x.serial, 'hex')), sha256(decode(x.serial, 'hex')),
              now() - interval '1 day', now() + interval '365 days', '\\x00'::bytea, 'csr',
              CASE WHEN x.rev THEN 'revoked' ELSE 'valid' END,
              CASE WHEN x.rev THEN $6::timestamptz END,
              CASE WHEN x.rev THEN 'keyCompromise' END,
              CASE WHEN x.rev THEN ${CRL_ENTRY_SQL('x.serial', '$6::timestamptz')} END,
              now()
         FROM (SELECT i, ${SERIAL_SQL} AS serial, i % $5 = 0 AS rev FROM generate_series($3::int, $4::int - 1) AS i) x`,
      [s.seed, s.issuerId, from, to, s.revokedEvery, s.revokedAt],
    );
    await c.query('COMMIT');
  } catch (e) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw e;
  } finally {
    c.release();
  }
}

/**
 * Inserts the rows of `s`; returns the seconds it took. VACUUM ANALYZE included: otherwise
 * autovacuum's insert-triggered pass over the new rows runs during the measured runs.
 */
export async function insertCertificates(pool: pg.Pool, s: RowSpec): Promise<number> {
  const t0 = performance.now();
  const CHUNK = 100_000;
  const chunks: Array<[number, number]> = [];
  for (let a = s.from; a < s.to; a += CHUNK) chunks.push([a, Math.min(s.to, a + CHUNK)]);
  let next = 0;
  await Promise.all(
    Array.from({ length: 2 }, async () => {
      while (next < chunks.length) {
        const [a, b] = chunks[next++]!;
        await insertChunk(pool, s, a, b);
      }
    }),
  );
  await pool.query('VACUUM (ANALYZE) serials, certificates');
  return (performance.now() - t0) / 1000;
}

/** Throws unless the SQL-encoded CRL entries of a few revoked rows equal crlEntryOf's. */
export async function checkCrlEntries(pool: pg.Pool, issuerId: number): Promise<void> {
  const r = await pool.query<{ serial: string; revoked_at: Date; crl_entry: Buffer }>(
    `SELECT serial, revoked_at, crl_entry FROM certificates WHERE issuer_id = $1 AND status = 'revoked' AND der = '\\x00'::bytea LIMIT 5`,
    [issuerId],
  );
  if (r.rows.length === 0) throw new Error('no revoked bench rows to check');
  for (const row of r.rows) {
    const want = crlEntryOf({ serial: row.serial, revokedAt: row.revoked_at, reason: 'keyCompromise', invalidityDate: null });
    if (!want.equals(row.crl_entry)) throw new Error(`SQL CRL entry of ${row.serial} differs from crlEntryOf: ${row.crl_entry.toString('hex')} vs ${want.toString('hex')}`);
  }
}
