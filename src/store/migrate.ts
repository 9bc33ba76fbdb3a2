/**
 * Forward-only numbered SQL migrations (`migrations/NNNN_name.sql`).
 *
 * Safe when several processes start at once (pattern: graphile-worker `src/migrate.ts`):
 *  - the whole run holds a session-level advisory lock, so runners queue behind each other;
 *  - each migration runs in its own transaction that FIRST inserts its `schema_migrations` row.
 *    Should two runners ever get past the lock together (a runner without it, a lock lost with its
 *    connection), the second blocks on that primary key until the first commits, then gets a
 *    unique violation, rolls back and treats the migration as applied. Nothing is applied twice.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { internal } from '../core/errors.js';
import { mapPgError, pgErrorCode } from './pg-errors.js';

/** Advisory lock keys (two-int form): 0x666c6361 = 'flca', then the purpose. */
const LOCK_CLASS = 0x666c6361;
const LOCK_RUN = 1;
const LOCK_CREATE_TABLE = 2;

const FILE_RE = /^(\d{4})_([A-Za-z0-9_-]+)\.sql$/;

/** One migration file. */
export interface MigrationFile {
  version: number;
  name: string;
  file: string;
}

/** What a run did. */
export interface MigrationResult {
  /** Versions this call applied. */
  applied: number[];
  /** Versions found in the database that no file here knows (a newer fleetca migrated it). */
  unknown: number[];
}

/**
 * `<package root>/migrations`, found by walking up from this file until a folder holds both
 * `migrations/` and `package.json`: works from `src/store/` (vitest, tsx) and `dist/store/`.
 */
export function defaultMigrationsDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = path.join(dir, 'migrations');
    if (existsSync(path.join(dir, 'package.json')) && existsSync(candidate) && statSync(candidate).isDirectory()) {
      return candidate;
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw internal(`no migrations/ folder next to a package.json above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

/** The `NNNN_name.sql` files of `dir`, by version; duplicate versions are an error. */
export function listMigrations(dir: string): MigrationFile[] {
  const out: MigrationFile[] = [];
  for (const entry of readdirSync(dir)) {
    const m = FILE_RE.exec(entry);
    if (!m) continue;
    out.push({ version: Number(m[1]), name: m[2]!, file: path.join(dir, entry) });
  }
  out.sort((a, b) => a.version - b.version);
  for (let i = 1; i < out.length; i++) {
    if (out[i]!.version === out[i - 1]!.version) {
      throw internal(`two migrations with version ${out[i]!.version} in ${dir}`);
    }
  }
  return out;
}

/**
 * Applies every migration of `dir` not yet recorded in `schema_migrations`, in order.
 * Each migration's SQL must be transactional (no CREATE INDEX CONCURRENTLY and the like).
 */
export async function runMigrations(
  pool: pg.Pool,
  dir: string = defaultMigrationsDir(),
  log: (msg: string) => void = () => {},
): Promise<MigrationResult> {
  const files = listMigrations(dir);
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (err) {
    throw mapPgError(err);
  }
  let failed = false;
  try {
    await client.query('SELECT pg_advisory_lock($1, $2)', [LOCK_CLASS, LOCK_RUN]);
    try {
      await ensureMigrationsTable(client);
      const applied: number[] = [];
      const done = await appliedVersions(client);
      for (const m of files) {
        if (done.has(m.version)) continue;
        if (await applyOne(client, m)) {
          applied.push(m.version);
          log(`applied migration ${String(m.version).padStart(4, '0')}_${m.name}`);
        }
        done.add(m.version);
      }
      const known = new Set(files.map((f) => f.version));
      const unknown = [...done].filter((v) => !known.has(v)).sort((a, b) => a - b);
      if (unknown.length > 0) log(`database has migrations this build does not know: ${unknown.join(', ')}`);
      return { applied, unknown };
    } finally {
      await client.query('SELECT pg_advisory_unlock($1, $2)', [LOCK_CLASS, LOCK_RUN]).catch(() => undefined);
    }
  } catch (err) {
    failed = true;
    throw mapPgError(err);
  } finally {
    // after any failure the connection is destroyed rather than returned to the pool: it might
    // still hold the session lock or be mid-transaction
    client.release(failed);
  }
}

async function ensureMigrationsTable(client: pg.PoolClient): Promise<void> {
  await client.query('BEGIN');
  try {
    // CREATE TABLE IF NOT EXISTS is not safe against a concurrent creator (it can fail on the
    // pg_type unique index); the transaction-level lock serializes creators.
    await client.query('SELECT pg_advisory_xact_lock($1, $2)', [LOCK_CLASS, LOCK_CREATE_TABLE]);
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version    integer     PRIMARY KEY,
      name       text        NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

async function appliedVersions(client: pg.PoolClient): Promise<Set<number>> {
  const { rows } = await client.query<{ version: number }>('SELECT version FROM schema_migrations');
  return new Set(rows.map((r) => r.version));
}

/** Returns false when another runner recorded the version first (so it counts as applied). */
async function applyOne(client: pg.PoolClient, m: MigrationFile): Promise<boolean> {
  const sql = readFileSync(m.file, 'utf8');
  await client.query('BEGIN');
  try {
    // The version row goes in FIRST: a concurrent runner blocks on this key until we commit.
    await client.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    if (pgErrorCode(err) === '23505') return false;
    throw err;
  }
  try {
    await client.query(sql); // simple query protocol: the file may hold many statements
    await client.query('COMMIT');
    return true;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw internal(`migration ${m.version}_${m.name} failed: ${err instanceof Error ? err.message : String(err)}`, err);
  }
}
