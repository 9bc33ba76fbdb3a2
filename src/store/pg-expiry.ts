/**
 * SQL of the expiry tracker (ExpiryStore, JobLockStore in enrollment/ports.ts). PgStore delegates
 * to these functions.
 *
 * Every announcing function is ONE statement: it selects what is due, records the notices
 * (expiry_notices, migration 0015) with ON CONFLICT DO NOTHING, and writes an audit record only
 * for the notices it inserted itself. Two servers announcing at the same moment therefore write
 * each event once: the second blocks on the first's primary key, then inserts nothing (rows are
 * inserted in serial order, so two such statements never deadlock on each other). The audit
 * insert fires the webhook trigger of migration 0008, in the same transaction.
 */
import type pg from 'pg';
import { CaError } from '../core/errors.js';
import type { AnnounceResult, ExclusiveJob, ExpiryCounts } from '../enrollment/ports.js';
import { isConnectionError, mapPgError } from './pg-errors.js';

type Query = <R extends pg.QueryResultRow>(text: string, values?: unknown[], name?: string) => Promise<pg.QueryResult<R>>;

/** Advisory-lock namespace of exclusive background jobs: "fjob", then the job. */
const JOB_LOCK_NS = 0x66_6a_6f_62;
const JOB_LOCK_IDS: Record<ExclusiveJob, number> = { expiry: 1, 'service-certs': 2 };

/** A device certificate neither revoked nor replaced: the predicate of certificates_live_expiry_idx. */
const LIVE = `c.device_id IS NOT NULL AND c.status <> 'revoked' AND c.superseded_by IS NULL`;
/**
 * A device's current certificate (the inventory's definition, store CURRENT_JOIN): live, and no
 * newer unrevoked certificate of the same device; and the device is not retired (retiring revokes
 * only unexpired certificates, so an expired one of a retired device is still "valid").
 */
const CURRENT = `${LIVE}
  AND (SELECT n.serial FROM certificates n WHERE n.device_id = c.device_id AND n.status <> 'revoked'
        ORDER BY n.created_at DESC, n.serial DESC LIMIT 1) = c.serial
  AND (SELECT r.state FROM devices r WHERE r.id = c.device_id) <> 'retired'`;
// Scalar subqueries here and for the notices below, not NOT EXISTS: the planner keeps them as
// per-row index probes evaluated after the cheap filters, where it planned anti-joins as hash joins
// over every certificate, or as nested loops over a notices table it had no statistics for yet.

/** An instant as JavaScript's toISOString writes it, for audit details. */
const iso = (col: string) => `to_char(${col} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

const MS = `* interval '1 millisecond'`;

/**
 * Keyset cursors. Expiring and expired certificates are read in (notAfter, serial) order over the
 * live-expiry index, so a pass reads each certificate of the range once however many batches it
 * takes: the cursor is `<notAfter, microseconds>|<serial>` ('' = from the start). Stale ones are
 * read in serial order.
 */
const AFTER_NOT_AFTER = (param: string) =>
  `(c.not_after, c.serial) > (coalesce(nullif(split_part(${param}, '|', 1), '')::timestamptz, '-infinity'::timestamptz), split_part(${param}, '|', 2))`;
const CURSOR = (alias: string) => `to_char(${alias}.not_after AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') || '|' || ${alias}.serial`;

/** See ExpiryStore.expiryCounts: one aggregate over the live-expiry index. */
export async function expiryCounts(q: Query, now: Date, windowsMs: readonly number[]): Promise<ExpiryCounts[]> {
  const ends = windowsMs.map((ms) => new Date(now.getTime() + ms));
  const horizon = new Date(Math.max(now.getTime(), ...ends.map((d) => d.getTime())));
  const cols = ends.map((_, i) => `count(*) FILTER (WHERE c.not_after > $1 AND c.not_after <= $${i + 3})::int AS w${i}`);
  const { rows } = await q<Record<string, number> & { profile: string; expired: number }>(
    `SELECT c.profile, count(*) FILTER (WHERE c.not_after <= $1)::int AS expired${cols.map((c) => `, ${c}`).join('')}
       FROM certificates c
      WHERE ${CURRENT} AND c.not_after <= $2
      GROUP BY c.profile ORDER BY c.profile`,
    [now, horizon, ...ends],
  );
  return rows.map((r) => ({ profile: r.profile, expired: r.expired, expiring: ends.map((_, i) => r[`w${i}`] ?? 0) }));
}

/*
 * The announcing statements join their small CTEs only to real tables (index probes): the planner
 * estimates one row for a CTE, and a CTE-to-CTE join of a 1000-row batch became a nested loop of a
 * million comparisons.
 */

/** See ExpiryStore.announceExpiring. */
export async function announceExpiring(
  q: Query,
  p: { now: Date; actor: string; thresholds: ReadonlyArray<{ profile: string; ms: number; label: string }>; after: string; limit: number },
): Promise<AnnounceResult> {
  if (p.thresholds.length === 0) return { due: 0, announced: 0, last: null };
  const horizon = new Date(p.now.getTime() + Math.max(...p.thresholds.map((t) => t.ms)));
  const { rows } = await q<AnnounceResult>(
    `WITH th AS (
       SELECT t.profile, t.ms, t.label FROM unnest($2::text[], $3::bigint[], $4::text[]) AS t(profile, ms, label)
     ), batch AS MATERIALIZED (
       -- the next certificates of the range (keyset, cheap predicates only: index order, no probes)
       SELECT c.serial, c.device_id, c.profile, c.not_before, c.not_after, c.status, c.superseded_by FROM certificates c
        WHERE ${LIVE} AND c.profile = ANY($9::text[]) AND c.not_after > $1 AND c.not_after <= $5 AND ${AFTER_NOT_AFTER('$8')}
        ORDER BY c.not_after, c.serial LIMIT $6
     ), crossed AS (
       -- per current certificate, every threshold it crossed and whether that was noted before; the
       -- tightest one not noted is announced, the wider ones are recorded as passed
       SELECT x.serial, x.ms, x.noted, min(x.ms) FILTER (WHERE NOT x.noted) OVER (PARTITION BY x.serial) AS tightest
         FROM (SELECT c.serial, th.ms,
                      (SELECT 1 FROM expiry_notices n WHERE n.serial = c.serial AND n.kind = 'expiring' AND n.threshold_ms = th.ms) IS NOT NULL AS noted
                 FROM batch c JOIN th ON th.profile = c.profile
                WHERE c.not_after <= $1 + th.ms::float8 ${MS} AND c.not_after - c.not_before > th.ms::float8 ${MS} AND ${CURRENT}) x
     ), noted AS (
       INSERT INTO expiry_notices (serial, kind, threshold_ms, at, announced)
       SELECT serial, 'expiring', ms, $1, ms = tightest FROM crossed WHERE NOT noted
        ORDER BY serial, ms
       ON CONFLICT DO NOTHING
       RETURNING serial, threshold_ms, announced
     ), audit AS (
       INSERT INTO audit_log (at, actor, action, target, details)
       SELECT $1, $7, 'certificate.expiring', c.serial,
              jsonb_build_object('device', c.device_id, 'profile', c.profile, 'notAfter', ${iso('c.not_after')}, 'threshold', th.label, 'thresholdMs', th.ms)
         FROM noted n JOIN certificates c ON c.serial = n.serial JOIN th ON th.profile = c.profile AND th.ms = n.threshold_ms
        WHERE n.announced
        ORDER BY c.serial
       RETURNING 1
     )
     SELECT (SELECT count(*) FROM batch)::int AS due, (SELECT count(*) FROM audit)::int AS announced,
            (SELECT ${CURSOR('b')} FROM batch b ORDER BY b.not_after DESC, b.serial DESC LIMIT 1) AS last`,
    [p.now, p.thresholds.map((t) => t.profile), p.thresholds.map((t) => t.ms), p.thresholds.map((t) => t.label), horizon, p.limit, p.actor, p.after, [...new Set(p.thresholds.map((t) => t.profile))]],
  );
  return rows[0]!;
}

/** See ExpiryStore.announceExpired. */
export async function announceExpired(q: Query, p: { now: Date; since: Date; actor: string; profiles: readonly string[]; after: string; limit: number }): Promise<AnnounceResult> {
  if (p.profiles.length === 0) return { due: 0, announced: 0, last: null };
  const { rows } = await q<AnnounceResult>(
    `WITH batch AS MATERIALIZED (
       SELECT c.serial, c.device_id, c.status, c.superseded_by, c.not_after FROM certificates c
        WHERE ${LIVE} AND c.not_after <= $1 AND c.not_after > $2 AND c.profile = ANY($3::text[]) AND ${AFTER_NOT_AFTER('$6')}
        ORDER BY c.not_after, c.serial LIMIT $4
     ), noted AS (
       INSERT INTO expiry_notices (serial, kind, threshold_ms, at, announced)
       SELECT c.serial, 'expired', 0, $1, true FROM batch c
        WHERE (SELECT 1 FROM expiry_notices n WHERE n.serial = c.serial AND n.kind = 'expired' AND n.threshold_ms = 0) IS NULL AND ${CURRENT}
        ORDER BY c.serial
       ON CONFLICT DO NOTHING
       RETURNING serial
     ), audit AS (
       INSERT INTO audit_log (at, actor, action, target, details)
       SELECT $1, $5, 'certificate.expired', c.serial, jsonb_build_object('device', c.device_id, 'profile', c.profile, 'notAfter', ${iso('c.not_after')})
         FROM noted n JOIN certificates c ON c.serial = n.serial
        ORDER BY c.serial
       RETURNING 1
     )
     SELECT (SELECT count(*) FROM batch)::int AS due, (SELECT count(*) FROM audit)::int AS announced,
            (SELECT ${CURSOR('b')} FROM batch b ORDER BY b.not_after DESC, b.serial DESC LIMIT 1) AS last`,
    [p.now, p.since, p.profiles, p.limit, p.actor, p.after],
  );
  return rows[0]!;
}

/** The start of a certificate's renewal window for the profile's rule `w` (as enrollment's renewalWindowStart). */
const WINDOW_START = (c: string, w: string) =>
  `CASE WHEN ${w}.share IS NOT NULL THEN ${c}.not_after - (${c}.not_after - ${c}.not_before) * ${w}.share ELSE ${c}.not_after - ${w}.ms::float8 ${MS} END`;

/** See ExpiryStore.announceStale. */
export async function announceStale(
  q: Query,
  p: { now: Date; since: Date; actor: string; windows: ReadonlyArray<{ profile: string; share: number | null; ms: number | null }>; after: string; limit: number },
): Promise<AnnounceResult> {
  if (p.windows.length === 0) return { due: 0, announced: 0, last: null };
  const { rows } = await q<AnnounceResult>(
    `WITH w AS (
       SELECT t.profile, t.share, t.ms FROM unnest($3::text[], $4::float8[], $5::bigint[]) AS t(profile, share, ms)
     ), due AS MATERIALIZED (
       -- in serial order over every live certificate (a renewal window is a share of each one's
       -- lifetime: no index range); the probes run only for those inside their window
       SELECT c.serial FROM certificates c JOIN w ON w.profile = c.profile
        WHERE ${CURRENT}
          AND c.not_after > $2 AND ${WINDOW_START('c', 'w')} <= $1 AND c.serial > $8
          AND (SELECT 1 FROM expiry_notices n WHERE n.serial = c.serial AND n.kind = 'stale' AND n.threshold_ms = 0) IS NULL
        ORDER BY c.serial LIMIT $6
     ), noted AS (
       INSERT INTO expiry_notices (serial, kind, threshold_ms, at, announced)
       SELECT serial, 'stale', 0, $1, true FROM due ORDER BY serial
       ON CONFLICT DO NOTHING
       RETURNING serial
     ), audit AS (
       INSERT INTO audit_log (at, actor, action, target, details)
       SELECT $1, $7, 'device.stale', c.device_id,
              jsonb_build_object('serial', c.serial, 'profile', c.profile, 'notAfter', ${iso('c.not_after')}, 'renewalFrom', ${iso(WINDOW_START('c', 'w'))},
                                 'health', CASE WHEN c.not_after <= $1 THEN 'expired' ELSE 'renewal-due' END)
         FROM noted n JOIN certificates c ON c.serial = n.serial JOIN w ON w.profile = c.profile
        ORDER BY c.serial
       RETURNING 1
     )
     SELECT (SELECT count(*) FROM due)::int AS due, (SELECT count(*) FROM audit)::int AS announced, (SELECT max(serial) FROM due) AS last`,
    [p.now, p.since, p.windows.map((w) => w.profile), p.windows.map((w) => w.share), p.windows.map((w) => w.ms), p.limit, p.actor, p.after],
  );
  return rows[0]!;
}

/** See JobLockStore.exclusive: a session advisory lock on a connection held for the duration of `fn`. */
export async function exclusive<T>(pool: pg.Pool, job: ExclusiveJob, fn: () => Promise<T>): Promise<T | null> {
  let c: pg.PoolClient;
  try {
    c = await pool.connect();
  } catch (err) {
    throw mapPgError(err);
  }
  let broken = false;
  try {
    let got: pg.QueryResult<{ ok: boolean }>;
    try {
      got = await c.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS ok', [JOB_LOCK_NS, JOB_LOCK_IDS[job]]);
    } catch (e) {
      broken = isConnectionError(e);
      throw e instanceof CaError ? e : mapPgError(e);
    }
    if (!got.rows[0]!.ok) return null;
    try {
      return await fn();
    } finally {
      // a lost connection released the lock with it; the client is then dropped, not reused
      await c.query('SELECT pg_advisory_unlock($1, $2)', [JOB_LOCK_NS, JOB_LOCK_IDS[job]]).catch(() => (broken = true));
    }
  } finally {
    c.release(broken);
  }
}
