/**
 * SQL of the tamper-evident audit chain (AuditChainStore in ca/ports.ts; the hashing and signing
 * are in ca/audit-chain.ts). PgStore delegates to these functions.
 *
 * Writers never touch the chain: they insert unsealed rows. A sealer holds a session-level
 * advisory lock (one sealer at a time across processes), reads the head and the unsealed rows,
 * and writes each batch of links in one statement; the partial unique index on seq is the last
 * line of defence against two sealers handing out one position.
 */
import type pg from 'pg';
import { conflict } from '../core/errors.js';
import type { AuditAnchor, AuditChainLink, AuditChainRow, AuditChainSnapshot, AuditSealSession } from '../ca/ports.js';
import { isConnectionError, mapPgError } from './pg-errors.js';

/** Advisory-lock namespace of the audit sealer: "faud", then 1. */
const AUDIT_LOCK_NS = 0x66_61_75_64;
const AUDIT_LOCK_SEALER = 1;

/**
 * The columns the chain covers. `at` is rendered here, in UTC with microseconds, so the hash
 * covers every digit the database keeps (a JS Date would drop the microseconds). Qualified with
 * the alias `a`: ORDER BY a bare `id` or `seq` would sort by the text output column.
 */
const ROW_COLUMNS = `a.id::text AS id, a.seq::text AS seq,
  to_char(a.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS at,
  a.actor, a.action, a.target, a.details, a.prev_hash, a.hash`;

/** Qualified: a bare ORDER BY name would pick the text output column, not the number. */
const ANCHOR_COLUMNS = 'x.seq::text AS seq, x.hash, x.signed_at, x.signature, x.key_spki';

interface RowData {
  id: string;
  seq: string | null;
  at: string;
  actor: string;
  action: string;
  target: string | null;
  details: unknown;
  prev_hash: Buffer | null;
  hash: Buffer | null;
}

interface AnchorRow {
  seq: string;
  hash: Buffer;
  signed_at: Date;
  signature: Buffer;
  key_spki: Buffer;
}

const toRow = (r: RowData): AuditChainRow => ({
  id: Number(r.id),
  seq: r.seq === null ? null : Number(r.seq),
  at: r.at,
  actor: r.actor,
  action: r.action,
  target: r.target,
  details: r.details,
  prevHash: r.prev_hash,
  hash: r.hash,
});

const toAnchor = (r: AnchorRow): AuditAnchor => ({ seq: Number(r.seq), hash: r.hash, signedAt: r.signed_at, signature: r.signature, keySpki: r.key_spki });

async function connect(pool: pg.Pool): Promise<pg.PoolClient> {
  try {
    return await pool.connect();
  } catch (err) {
    throw mapPgError(err);
  }
}

/** See AuditChainStore.auditSealSession. */
export async function auditSealSession<T>(pool: pg.Pool, wait: boolean, fn: (s: AuditSealSession) => Promise<T>): Promise<T | null> {
  const c = await connect(pool);
  let broken = false;
  try {
    if (wait) {
      await c.query('SELECT pg_advisory_lock($1, $2)', [AUDIT_LOCK_NS, AUDIT_LOCK_SEALER]);
    } else {
      const got = await c.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS ok', [AUDIT_LOCK_NS, AUDIT_LOCK_SEALER]);
      if (!got.rows[0]!.ok) return null;
    }
    try {
      const session: AuditSealSession = {
        head: async () => {
          const r = await c.query<{ seq: string; hash: Buffer }>(
            'SELECT a.seq::text AS seq, a.hash FROM audit_log a WHERE a.seq IS NOT NULL ORDER BY a.seq DESC LIMIT 1',
          );
          const h = r.rows[0];
          return h ? { seq: Number(h.seq), hash: h.hash } : null;
        },
        unsealedSpan: async () => {
          // min over the partial index, max over the primary key: two index probes
          const r = await c.query<{ min_id: string | null; max_id: string | null }>(
            'SELECT (SELECT min(a.id) FROM audit_log a WHERE a.seq IS NULL)::text AS min_id, (SELECT max(b.id) FROM audit_log b)::text AS max_id',
          );
          const { min_id, max_id } = r.rows[0]!;
          return min_id === null || max_id === null ? null : { minId: Number(min_id), maxId: Number(max_id) };
        },
        unsealed: async (fromId, toId) => {
          const r = await c.query<RowData>(`SELECT ${ROW_COLUMNS} FROM audit_log a WHERE a.seq IS NULL AND a.id >= $1 AND a.id < $2 ORDER BY a.id`, [fromId, toId]);
          return r.rows.map(toRow);
        },
        seal: async (links: AuditChainLink[], sealedAt: Date) => {
          if (links.length === 0) return;
          // one statement = one transaction; `seq IS NULL` refuses a row someone else sealed
          await c.query('BEGIN');
          try {
            const r = await c.query(
              `UPDATE audit_log a SET seq = x.seq, prev_hash = x.prev_hash, hash = x.hash, sealed_at = $5
                 FROM unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::bytea[]) AS x(id, seq, prev_hash, hash)
                WHERE a.id = x.id AND a.seq IS NULL`,
              [links.map((l) => l.id), links.map((l) => l.seq), links.map((l) => l.prevHash), links.map((l) => l.hash), sealedAt],
            );
            if (r.rowCount !== links.length) {
              throw conflict(`audit sealing: ${links.length - (r.rowCount ?? 0)} of ${links.length} rows were sealed or removed meanwhile`);
            }
            await c.query('COMMIT');
          } catch (e) {
            await c.query('ROLLBACK').catch(() => (broken = true));
            throw e;
          }
        },
        latestAnchor: async () => {
          const r = await c.query<AnchorRow>(`SELECT ${ANCHOR_COLUMNS} FROM audit_anchors x ORDER BY x.seq DESC LIMIT 1`);
          return r.rows[0] ? toAnchor(r.rows[0]) : null;
        },
        saveAnchor: async (a) => {
          await c.query(
            `INSERT INTO audit_anchors (seq, hash, signed_at, signature, key_spki) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (seq) DO NOTHING`,
            [a.seq, a.hash, a.signedAt, a.signature, a.keySpki],
          );
        },
      };
      return await fn(session);
    } finally {
      await c.query('SELECT pg_advisory_unlock($1, $2)', [AUDIT_LOCK_NS, AUDIT_LOCK_SEALER]).catch(() => (broken = true));
    }
  } catch (e) {
    if (isConnectionError(e)) broken = true;
    throw mapPgError(e);
  } finally {
    c.release(broken);
  }
}

/** See AuditChainStore.auditChainSnapshot: one REPEATABLE READ, READ ONLY transaction. */
export async function auditChainSnapshot<T>(pool: pg.Pool, fn: (s: AuditChainSnapshot) => Promise<T>): Promise<T> {
  const c = await connect(pool);
  let broken = false;
  try {
    await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    try {
      const snapshot: AuditChainSnapshot = {
        anchors: async () => {
          const r = await c.query<AnchorRow>(`SELECT ${ANCHOR_COLUMNS} FROM audit_anchors x ORDER BY x.seq`);
          return r.rows.map(toAnchor);
        },
        rows: (pageSize) => seqPages(c, pageSize),
        staleUnsealed: async (before) => {
          const r = await c.query<{ n: string; oldest: Date | null }>('SELECT count(*)::text AS n, min(a.at) AS oldest FROM audit_log a WHERE a.seq IS NULL AND a.at < $1', [before]);
          return { count: Number(r.rows[0]!.n), oldest: r.rows[0]!.oldest };
        },
      };
      return await fn(snapshot);
    } finally {
      await c.query('ROLLBACK').catch(() => (broken = true));
    }
  } catch (e) {
    if (isConnectionError(e)) broken = true;
    throw mapPgError(e);
  } finally {
    c.release(broken);
  }
}

/** Sealed rows by seq, keyset-paged (each page an index range scan on the seq index). */
async function* seqPages(c: pg.PoolClient, pageSize: number): AsyncGenerator<AuditChainRow[]> {
  let after = 0;
  for (;;) {
    const r = await c.query<RowData>(
      { name: 'fleetca_audit_seq_page', text: `SELECT ${ROW_COLUMNS} FROM audit_log a WHERE a.seq IS NOT NULL AND a.seq > $1 ORDER BY a.seq LIMIT $2`, values: [after, pageSize] },
    );
    if (r.rows.length === 0) return;
    const rows = r.rows.map(toRow);
    after = rows[rows.length - 1]!.seq!;
    yield rows;
    if (rows.length < pageSize) return;
  }
}

/**
 * See AuditChainStore.auditExport. A cursor in a read-only snapshot: the planner picks between
 * the seq index (wide ranges) and the BRIN index on `at` plus a sort (narrow ones), and rows reach
 * the caller page by page. Breaking out of the iteration ends the transaction.
 */
export async function* auditExport(pool: pg.Pool, range: { since: Date; until?: Date }, pageSize: number): AsyncGenerator<AuditChainRow[]> {
  const c = await connect(pool);
  let broken = false;
  try {
    await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await c.query(
      `DECLARE fleetca_audit_export NO SCROLL CURSOR FOR
         SELECT ${ROW_COLUMNS} FROM audit_log a
          WHERE a.seq IS NOT NULL AND a.at >= $1 AND ($2::timestamptz IS NULL OR a.at < $2)
          ORDER BY a.seq`,
      [range.since, range.until ?? null],
    );
    for (;;) {
      const r = await c.query<RowData>(`FETCH ${Math.max(1, Math.floor(pageSize))} FROM fleetca_audit_export`);
      if (r.rows.length === 0) break;
      yield r.rows.map(toRow);
    }
  } catch (e) {
    if (isConnectionError(e)) broken = true;
    throw mapPgError(e);
  } finally {
    await c.query('ROLLBACK').catch(() => (broken = true));
    c.release(broken);
  }
}
