/**
 * The issuance pipeline under concurrency and crashes, on a real PostgreSQL:
 * 500 concurrent issuances over several connections give 500 distinct serials and 500 rows; a
 * crash between signing and commit returns nothing and is reconciled at the next start.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { configCopy, fleetca, opensslOk, replaceInFile } from '../helpers/cli.js';
import { openRuntime, type Runtime } from '../../src/main/runtime.js';
import { readEnv } from '../../src/config/env.js';
import { makeCsrs } from '../../bench/fixtures.js';
import { extractTbs } from '../../src/pki/cert-parts.js';

let db: TestDatabase;
let dir: string;
let env: Record<string, string>;
let pool: pg.Pool;

beforeAll(async () => {
  db = await createTestDatabase();
  pool = new pg.Pool({ connectionString: db.connectionString, max: 2 });
  dir = mkdtempSync(path.join(os.tmpdir(), 'fleetca-pipe-'));
  env = { DATABASE_URL: db.connectionString, FLEETCA_DATA_DIR: path.join(dir, 'data'), FLEETCA_KEY_PASSPHRASE: 'pipeline-test' };
  const r = fleetca(['init'], env);
  expect(r.code, r.stderr).toBe(0);
}, 180_000);

afterAll(async () => {
  await pool?.end();
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('pipeline', () => {
  it('500 concurrent issuances/500 distinct serials and 500 rows', async () => {
    const rt: Runtime = await openRuntime({ env: { ...readEnv(env), dataDir: env.FLEETCA_DATA_DIR! }, workers: true, poolSize: 8 });
    try {
      const csrs = makeCsrs('conc', 500);
      const certs = await Promise.all(
        csrs.map((c) => rt.ca!.issueFromCsr({ profile: 'camera', deviceId: c.deviceId, csrDer: c.csr, actor: 'test', via: 'test', createDevice: true, approved: true })),
      );
      expect(new Set(certs.map((c) => c.serial)).size).toBe(500);
      const rows = await pool.query<{ n: string; d: string }>("SELECT count(*) AS n, count(DISTINCT serial) AS d FROM certificates WHERE device_id LIKE 'conc-%'");
      expect(rows.rows[0]).toEqual({ n: '500', d: '500' });
      const intents = await pool.query<{ state: string; n: string }>("SELECT state, count(*) AS n FROM issuance_intents WHERE device_id LIKE 'conc-%' GROUP BY state");
      expect(intents.rows).toEqual([{ state: 'issued', n: '500' }]);
      // audit before and after every signature
      const audit = await pool.query<{ action: string; n: string }>(
        "SELECT action, count(*) AS n FROM audit_log WHERE details->>'device' LIKE 'conc-%' GROUP BY action ORDER BY action",
      );
      expect(audit.rows).toEqual([
        { action: 'certificate.issued', n: '500' },
        { action: 'certificate.sign.begin', n: '500' },
      ]);
      // what was returned is byte-for-byte what was recorded, and its TBS is the recorded intent
      const one = certs[123]!;
      const stored = await pool.query<{ der: Buffer; tbs_der: Buffer }>('SELECT c.der, i.tbs_der FROM certificates c JOIN issuance_intents i USING (serial) WHERE serial = $1', [one.serial]);
      expect(stored.rows[0]!.der.equals(one.der)).toBe(true);
      expect(extractTbs(one.der).equals(stored.rows[0]!.tbs_der)).toBe(true);
      // serials: positive, 17 octets, distinct prefix rule
      for (const c of certs) expect(c.serial).toMatch(/^[0-7][0-9a-f]{33}$/);
    } finally {
      await rt.close();
    }
  }, 120_000);

  it('crash between sign and commit/nothing returned, reconciled at the next start', async () => {
    const key = path.join(dir, 'crash.key');
    const csr = path.join(dir, 'crash.csr');
    opensslOk(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-subj', '/CN=crash-1', '-out', csr]);
    const before = await pool.query<{ n: string }>('SELECT count(*) AS n FROM certificates');
    const crashed = fleetca(['issue', '--profile', 'camera', '--device', 'crash-1', '--csr', csr], { ...env, FLEETCA_FAULT: 'crash-after-sign' });
    expect(crashed.code).toBe(86);
    expect(crashed.stdout).toBe('');
    const after = await pool.query<{ n: string }>('SELECT count(*) AS n FROM certificates');
    expect(after.rows).toEqual(before.rows);
    const pending = await pool.query<{ serial: string; state: string }>("SELECT serial, state FROM issuance_intents WHERE device_id = 'crash-1'");
    expect(pending.rows).toHaveLength(1);
    expect(pending.rows[0]!.state).toBe('pending');

    // a fresh start within the grace period leaves it alone (it could be another instance's)
    expect(fleetca(['cert', 'list', '--device', 'crash-1', '--json'], env).stdout.trim()).toBe('[]');
    expect((await pool.query("SELECT state FROM issuance_intents WHERE device_id = 'crash-1'")).rows[0]).toEqual({ state: 'pending' });

    // the next start past the grace period reconciles it
    const cfg = configCopy((d) => replaceInFile(path.join(d, 'ca.yaml'), 'pendingIntentGrace: 60s', 'pendingIntentGrace: 0s'));
    const next = fleetca(['issue', '--profile', 'camera', '--device', 'crash-1', '--csr', csr], { ...env, FLEETCA_CONFIG_DIR: cfg, LOG_LEVEL: 'warn' });
    expect(next.code, next.stderr).toBe(0);
    expect(next.stderr).toContain('marked pending issuance intents failed');
    const reconciled = await pool.query<{ state: string; failure: string }>('SELECT state, failure FROM issuance_intents WHERE serial = $1', [pending.rows[0]!.serial]);
    expect(reconciled.rows[0]!.state).toBe('failed');
    expect(reconciled.rows[0]!.failure).toMatch(/abandoned/);
    const audit = await pool.query("SELECT 1 FROM audit_log WHERE action = 'certificate.intent.abandoned' AND target = $1", [pending.rows[0]!.serial]);
    expect(audit.rowCount).toBe(1);
    // the crashed serial was never handed out and is never reused
    const certs = await pool.query<{ serial: string }>("SELECT serial FROM certificates WHERE device_id = 'crash-1'");
    expect(certs.rows).toHaveLength(1);
    expect(certs.rows[0]!.serial).not.toBe(pending.rows[0]!.serial);
    rmSync(cfg, { recursive: true, force: true });
  }, 120_000);

  it('same CSR twice for one device/both issued (re-enrollment with the same key is allowed)', async () => {
    const key = path.join(dir, 'twice.key');
    const csr = path.join(dir, 'twice.csr');
    opensslOk(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-subj', '/CN=twice-1', '-out', csr]);
    const a = fleetca(['issue', '--profile', 'camera', '--device', 'twice-1', '--csr', csr], env);
    const b = fleetca(['issue', '--profile', 'camera', '--device', 'twice-1', '--csr', csr], env);
    expect([a.code, b.code]).toEqual([0, 0]);
    expect(a.stdout).not.toBe(b.stdout);
  }, 60_000);
});

describe('public URL', () => {
  it('ca.yaml publicUrl/used by init when --public-url is not given', async () => {
    const db2 = await createTestDatabase();
    const cfg = configCopy((d) => replaceInFile(path.join(d, 'ca.yaml'), '# publicUrl: http://pki.example.internal:8080', 'publicUrl: http://pki.factory.test:8081'));
    try {
      const env2 = { DATABASE_URL: db2.connectionString, FLEETCA_DATA_DIR: path.join(dir, 'data-url'), FLEETCA_KEY_PASSPHRASE: 'url-test', FLEETCA_CONFIG_DIR: cfg };
      const r = fleetca(['init'], env2);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toContain('public URL http://pki.factory.test:8081');
      const text = opensslOk(['x509', '-in', path.join(dir, 'data-url/certs/device-ca.pem'), '-noout', '-ext', 'crlDistributionPoints,authorityInfoAccess']);
      expect(text).toContain('URI:http://pki.factory.test:8081/crl/root.crl');
      expect(text).toContain('CA Issuers - URI:http://pki.factory.test:8081/ca/root.crt');
      // a bad URL in the configuration is a configuration error with its path
      const bad = configCopy((d) => replaceInFile(path.join(d, 'ca.yaml'), '# publicUrl: http://pki.example.internal:8080', 'publicUrl: ldap://dir.example'));
      const c = fleetca(['config', 'check', '--config-dir', bad], {});
      expect(c.code).toBe(2);
      expect(c.stderr).toMatch(/ca\.yaml: publicUrl: /);
      rmSync(bad, { recursive: true, force: true });
    } finally {
      rmSync(cfg, { recursive: true, force: true });
      await db2.drop();
    }
  }, 120_000);
});
