/**
 * `fleetca audit verify` and `fleetca audit export` as an operator runs them, on a CA made by
 * `fleetca init`; tampering is done directly in SQL. Also: a running server seals on its own and
 * records `config.loaded`.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { fleetca, startServe } from '../helpers/cli.js';

let db: TestDatabase;
let dir: string;
let env: Record<string, string>;
let pool: pg.Pool;

beforeAll(async () => {
  db = await createTestDatabase();
  pool = new pg.Pool({ connectionString: db.connectionString, max: 2 });
  dir = mkdtempSync(path.join(os.tmpdir(), 'fleetca-audit-cli-'));
  env = { DATABASE_URL: db.connectionString, FLEETCA_DATA_DIR: path.join(dir, 'data'), FLEETCA_KEY_PASSPHRASE: 'audit-test-passphrase' };
  const r = fleetca(['init', '--public-url', 'http://pki.example.test:8080'], env);
  expect(r.code, r.stderr).toBe(0);
}, 180_000);

afterAll(async () => {
  await pool?.end();
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const count = async (where: string) => Number((await pool.query<{ n: string }>(`SELECT count(*)::text AS n FROM audit_log WHERE ${where}`)).rows[0]!.n);

describe('fleetca audit verify', () => {
  it('fresh CA/seals what init wrote, anchors it with a new encrypted audit key, exit 0', async () => {
    const total = await count('true');
    expect(total).toBeGreaterThan(5);
    expect(await count('seq IS NOT NULL')).toBe(0);
    const r = fleetca(['audit', 'verify'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^audit chain OK: ${total} rows \\(seq 1\\.\\.${total}\\), 1 anchors verified, last anchor seq ${total} signed \\d{4}-[\\d:.TZ-]+\n$`));
    expect(await count('seq IS NULL')).toBe(0);
    const key = path.join(dir, 'data/keys/audit-anchor.key.pem');
    expect(readFileSync(key, 'utf8')).toMatch(/^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
    expect(statSync(key).mode & 0o777).toBe(0o600);
  });

  it('--json/the report on stdout', () => {
    const r = fleetca(['audit', 'verify', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as { ok: boolean; rows: number; anchors: number; broken: unknown; keySha256: string };
    expect(j).toMatchObject({ ok: true, anchors: 1, broken: null });
    expect(j.rows).toBeGreaterThan(5);
    expect(j.keySha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('row edited in SQL/exit 6 naming the seq; restored/OK again', async () => {
    const orig = await pool.query<{ details: unknown }>('SELECT details FROM audit_log WHERE seq = 3');
    await pool.query(`UPDATE audit_log SET details = '{"tampered": true}' WHERE seq = 3`);
    const id = (await pool.query<{ id: string }>('SELECT id::text AS id FROM audit_log WHERE seq = 3')).rows[0]!.id;
    const r = fleetca(['audit', 'verify'], env);
    expect(r.code).toBe(6);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`error: audit chain broken at seq 3 (id ${id}): hash does not match the row's contents (the row was edited); 2 rows before it verified\n`);
    const j = fleetca(['audit', 'verify', '--json'], env);
    expect(j.code).toBe(6);
    expect(JSON.parse(j.stdout)).toMatchObject({ ok: false, broken: { seq: 3, kind: 'hash' } });

    await pool.query('UPDATE audit_log SET details = $1 WHERE seq = 3', [JSON.stringify(orig.rows[0]!.details)]);
    expect(fleetca(['audit', 'verify'], env).code).toBe(0);
  });

  it('row deleted in SQL/exit 6 naming the gap', async () => {
    await pool.query('DELETE FROM audit_log WHERE seq = 5');
    const r = fleetca(['audit', 'verify'], env);
    expect(r.code).toBe(6);
    expect(r.stderr).toMatch(/^error: audit chain broken at seq 5 \(id \d+\): seq 5 missing \(rows deleted\): the next row is seq 6/);
  });
});

describe('fleetca audit export', () => {
  it('--since/JSON lines in chain order, one per sealed row at or after the time', async () => {
    const r = fleetca(['audit', 'export', '--since', '2000-01-01'], env);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as { id: number; seq: number; at: string; actor: string; action: string; hash: string; prev_hash: string });
    expect(lines.length).toBe(await count('seq IS NOT NULL'));
    expect(r.stderr).toBe(`exported ${lines.length} audit rows\n`);
    for (let i = 1; i < lines.length; i++) expect(lines[i]!.seq).toBeGreaterThan(lines[i - 1]!.seq);
    expect(lines[0]).toMatchObject({ seq: 1, prev_hash: '0'.repeat(64), actor: 'init' });
    expect(lines[0]!.at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    expect(lines[1]!.prev_hash).toBe(lines[0]!.hash);
  });

  it('--since/--until/only the rows inside the window', async () => {
    const mid = (await pool.query<{ at: Date }>('SELECT at FROM audit_log WHERE seq IS NOT NULL ORDER BY audit_log.seq OFFSET 7 LIMIT 1')).rows[0]!.at;
    const expected = await count(`seq IS NOT NULL AND at >= '${mid.toISOString()}'`);
    const r = fleetca(['audit', 'export', '--since', mid.toISOString()], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trimEnd().split('\n')).toHaveLength(expected);
    const none = fleetca(['audit', 'export', '--since', '2000-01-01', '--until', '2000-01-02'], env);
    expect(none).toMatchObject({ code: 0, stdout: '', stderr: 'exported 0 audit rows\n' });
  });

  it('malformed --since/exit 2, nothing on stdout', () => {
    const r = fleetca(['audit', 'export', '--since', 'yesterday'], env);
    expect(r).toMatchObject({ code: 2, stdout: '' });
    expect(r.stderr).toBe('error: --since "yesterday" is not an ISO 8601 date or time\n');
  });
});

describe('fleetca serve', () => {
  it('config.loaded/recorded with the configuration SHA-256, and sealed by the server within seconds', async () => {
    const before = await count('true');
    const srv = await startServe(env);
    try {
      // the sealer runs every audit.sealEvery (2s): poll until the server's rows are chained
      const deadline = Date.now() + 30_000;
      while ((await count('seq IS NULL')) > 0 || (await count("action = 'config.loaded'")) === 0) {
        if (Date.now() > deadline) throw new Error(`server did not seal:\n${srv.stderr()}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      await srv.stop();
    }
    expect(await count('true')).toBeGreaterThan(before);
    const cfg = path.resolve('ca-config');
    const h = createHash('sha256');
    for (const rel of ['ca.yaml', ...readdirSync(path.join(cfg, 'profiles')).filter((f) => f.endsWith('.yaml')).sort().map((f) => `profiles/${f}`)]) {
      h.update(`${rel}\0`).update(readFileSync(path.join(cfg, rel))).update('\0');
    }
    const row = await pool.query<{ actor: string; details: { sha256: string }; seq: string | null }>("SELECT actor, details, seq::text AS seq FROM audit_log WHERE action = 'config.loaded'");
    expect(row.rows).toHaveLength(1);
    expect(row.rows[0]).toMatchObject({ actor: 'server', details: { sha256: h.digest('hex') } });
    expect(row.rows[0]!.seq).not.toBeNull();
  }, 90_000);
});
