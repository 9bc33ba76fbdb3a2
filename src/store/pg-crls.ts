/**
 * SQL of the CrlStore port (ca/ports.ts): CRL numbers, signed CRLs, the revoked entries a CRL lists.
 * PgStore delegates to these functions.
 */
import type pg from 'pg';
import type { CrlRecord, RevocationReason, RevokedEntry } from '../ca/ports.js';

type Query = <R extends pg.QueryResultRow>(text: string, values?: unknown[]) => Promise<pg.QueryResult<R>>;

/** Atomic upsert: concurrent callers, in any process, never get the same number. */
export async function nextCrlNumber(q: Query, issuerId: number): Promise<bigint> {
  const r = await q<{ n: string }>(
    `INSERT INTO crl_numbers (issuer_id, last_number) VALUES ($1, 1)
     ON CONFLICT (issuer_id) DO UPDATE SET last_number = crl_numbers.last_number + 1
     RETURNING last_number::text AS n`,
    [issuerId],
  );
  return BigInt(r.rows[0]!.n);
}

export async function saveCrl(q: Query, c: CrlRecord): Promise<void> {
  await q(
    `INSERT INTO crls (issuer_id, number, kind, shard, this_update, next_update, der) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
    [c.issuerId, c.number.toString(), c.kind, c.shard, c.thisUpdate, c.nextUpdate, c.der],
  );
}

export async function latestCrl(q: Query, issuerName: string, kind: 'full' | 'delta', shard = 0): Promise<CrlRecord | null> {
  const r = await q<{ issuer_id: number; number: string; kind: 'full' | 'delta'; shard: number; this_update: Date; next_update: Date; der: Buffer }>(
    `SELECT c.issuer_id, c.number::text AS number, c.kind, c.shard, c.this_update, c.next_update, c.der
       FROM crls c JOIN issuers i ON i.id = c.issuer_id
      WHERE i.name = $1 AND c.kind = $2 AND c.shard = $3
      ORDER BY c.number DESC LIMIT 1`,
    [issuerName, kind, shard],
  );
  const row = r.rows[0];
  if (!row) return null;
  return { issuerId: row.issuer_id, number: BigInt(row.number), kind: row.kind, shard: row.shard, thisUpdate: row.this_update, nextUpdate: row.next_update, der: row.der };
}

export async function listRevoked(q: Query, issuerId: number, at: Date): Promise<RevokedEntry[]> {
  const r = await q<{ serial: string; revoked_at: Date; revocation_reason: RevocationReason; invalidity_date: Date | null }>(
    `SELECT serial, revoked_at, revocation_reason, invalidity_date FROM certificates
      WHERE issuer_id = $1 AND status <> 'valid' AND not_after >= $2
      ORDER BY revoked_at, serial`,
    [issuerId, at],
  );
  return r.rows.map((x) => ({ serial: x.serial, revokedAt: x.revoked_at, reason: x.revocation_reason, invalidityDate: x.invalidity_date }));
}

/** The newest entry of the status history (revocations, holds, releases) of an issuer. */
export async function lastStatusChange(q: Query, issuerId: number): Promise<Date | null> {
  const r = await q<{ at: Date | null }>(`SELECT max(revoked_at) AS at FROM revocations WHERE issuer_id = $1`, [issuerId]);
  return r.rows[0]?.at ?? null;
}

/** thisUpdate of the issuer's newest base CRL. */
export async function latestBaseAt(q: Query, issuerId: number): Promise<Date | null> {
  const r = await q<{ this_update: Date }>(`SELECT this_update FROM crls WHERE issuer_id = $1 AND base ORDER BY number DESC LIMIT 1`, [issuerId]);
  return r.rows[0]?.this_update ?? null;
}
