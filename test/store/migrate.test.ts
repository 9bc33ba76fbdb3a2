import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { defaultMigrationsDir, listMigrations, runMigrations } from '../../src/store/migrate.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

const pools: pg.Pool[] = [];
function pool(db: TestDatabase): pg.Pool {
  const p = new pg.Pool({ connectionString: db.connectionString, max: 2 });
  pools.push(p);
  return p;
}

async function versions(p: pg.Pool): Promise<number[]> {
  const { rows } = await p.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
  return rows.map((r) => r.version);
}

function tempMigrations(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fleetca-migrations-'));
  for (const [name, sql] of Object.entries(files)) writeFileSync(path.join(dir, name), sql);
  return dir;
}

describe('migrations', () => {
  let db: TestDatabase;
  beforeEach(async () => {
    db = await createTestDatabase({ migrate: false });
  });
  afterEach(async () => {
    for (const p of pools.splice(0)) await p.end();
    await db.drop();
  });
  afterAll(async () => {
    for (const p of pools.splice(0)) await p.end();
  });

  it('defaultMigrationsDir → the package root migrations/ holding 0001_init.sql', () => {
    const dir = defaultMigrationsDir();
    expect(path.basename(dir)).toBe('migrations');
    expect(listMigrations(dir).map((m) => m.version)).toContain(1);
  });

  it('fresh database → every migration applied, one row per version', async () => {
    const p = pool(db);
    const files = listMigrations(defaultMigrationsDir());
    const result = await runMigrations(p);
    expect(result.applied).toEqual(files.map((f) => f.version));
    expect(await versions(p)).toEqual(files.map((f) => f.version));
    const { rows } = await p.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = 'public' AND table_name IN ('issuers','devices','serials','issuance_intents','certificates','revocations','audit_log')",
    );
    expect(rows[0]!.n).toBe(7);
  });

  it('second run → nothing applied (idempotent)', async () => {
    const p = pool(db);
    await runMigrations(p);
    const again = await runMigrations(p);
    expect(again).toEqual({ applied: [], unknown: [] });
  });

  it('two runners at once on a fresh database → both succeed, each version applied once', async () => {
    const a = pool(db);
    const b = pool(db);
    const [ra, rb] = await Promise.all([runMigrations(a), runMigrations(b)]);
    const all = listMigrations(defaultMigrationsDir()).map((f) => f.version);
    expect([...ra.applied, ...rb.applied].sort((x, y) => x - y)).toEqual(all);
    expect(await versions(a)).toEqual(all);
  });

  it('version row committed by another runner meanwhile → unique violation treated as applied, SQL not run twice', async () => {
    const dir = tempMigrations({ '0001_a.sql': 'CREATE TABLE a (x int);' });
    const other = new pg.Client({ connectionString: db.connectionString });
    await other.connect();
    try {
      await other.query('CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())');
      await other.query('BEGIN');
      await other.query("INSERT INTO schema_migrations (version, name) VALUES (1, 'a')");
      // the runner does not see the uncommitted row, so it tries the version and blocks on its key
      const run = runMigrations(pool(db), dir);
      await new Promise((r) => setTimeout(r, 300));
      await other.query('COMMIT');
      expect(await run).toEqual({ applied: [], unknown: [] });
      const { rows } = await other.query("SELECT to_regclass('public.a') AS t");
      expect(rows[0].t).toBeNull();
    } finally {
      await other.end();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('failing migration → rolled back with its version row, earlier ones kept', async () => {
    const dir = tempMigrations({
      '0001_ok.sql': 'CREATE TABLE ok (x int);',
      '0002_bad.sql': 'CREATE TABLE half (x int); SELECT no_such_function();',
    });
    try {
      const p = pool(db);
      await expect(runMigrations(p, dir)).rejects.toMatchObject({ kind: 'internal' });
      expect(await versions(p)).toEqual([1]);
      const { rows } = await p.query("SELECT to_regclass('public.half') AS t");
      expect(rows[0].t).toBeNull();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('version in the database unknown to this build → reported, not an error', async () => {
    const dir = tempMigrations({ '0001_ok.sql': 'CREATE TABLE ok (x int);' });
    try {
      const p = pool(db);
      await runMigrations(p, dir);
      await p.query("INSERT INTO schema_migrations (version, name) VALUES (7, 'future')");
      expect(await runMigrations(p, dir)).toEqual({ applied: [], unknown: [7] });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('two files with one version → error', () => {
    const dir = tempMigrations({ '0001_a.sql': '', '0001_b.sql': '' });
    try {
      expect(() => listMigrations(dir)).toThrow(/two migrations with version 1/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
