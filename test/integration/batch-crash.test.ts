/**
 * `fleetca batch run` killed with SIGKILL half-way, then run again: every device of the manifest
 * has exactly one live certificate from the batch (none twice, none missing), nothing of the batch
 * is left pending, and the output folder is complete and consistent (SHA256SUMS, every key opens
 * and matches its certificate, every secret is the one stored).
 */
import crypto, { X509Certificate } from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseCsv } from 'csv-parse/sync';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { fleetca } from '../helpers/cli.js';
import { deriveSecretKey, secretMac } from '../../src/enrollment/secrets.js';
import { makeCsr } from '../../bench/fixtures.js';

const BIN = path.resolve('test/helpers/fleetca-bin.ts');
const PASSWORD = 'crash test password, long enough';

let db: TestDatabase;
let dir: string;
let env: Record<string, string>;
let pool: pg.Pool;
const f = (n: string) => path.join(dir, n);

beforeAll(async () => {
  db = await createTestDatabase();
  pool = new pg.Pool({ connectionString: db.connectionString, max: 2 });
  dir = mkdtempSync(path.join(os.tmpdir(), 'fleetca-batch-crash-'));
  chmodSync(dir, 0o711);
  env = { DATABASE_URL: db.connectionString, FLEETCA_DATA_DIR: f('data'), FLEETCA_KEY_PASSPHRASE: 'crash tests passphrase' };
  const r = fleetca(['init'], env);
  expect(r.code, r.stderr).toBe(0);
  writeFileSync(f('pw.txt'), PASSWORD, { mode: 0o600 });
}, 180_000);

afterAll(async () => {
  await pool?.end();
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const lines = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').length - 1 : 0);

/**
 * Starts `fleetca batch run` and SIGKILLs it in the middle of its work: once its journal has
 * `after` rows and the database holds certificates of the batch that the journal does not have yet
 * (issued, files not complete), so the rerun must complete those without issuing them again.
 */
function runAndKill(args: string[], batch: string, journal: string, after: number): Promise<{ killedAt: number; signal: NodeJS.Signals | null; stderr: string }> {
  const proc = spawn(process.execPath, ['--import', 'tsx', BIN, ...args], { env: { ...process.env, LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    let killedAt = -1;
    let exited = false;
    const poll = async () => {
      while (!exited && killedAt < 0) {
        const n = lines(journal) - 1; // the header
        if (n >= after) {
          const r = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM issuance_intents WHERE request ->> 'batch' = $1 AND state = 'issued'`, [batch]);
          if (r.rows[0]!.n >= n + 20) {
            killedAt = n;
            proc.kill('SIGKILL');
            return;
          }
        }
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    void poll();
    proc.once('exit', (code, signal) => {
      exited = true;
      if (killedAt < 0) reject(new Error(`the batch ended (code ${code}) before it could be killed:\n${stderr}`));
      else resolve({ killedAt, signal, stderr });
    });
  });
}

/** The batch's certificates per device (through their intents), and its pending intents. */
async function batchState(batch: string) {
  const certs = await pool.query<{ device_id: string; serial: string; status: string; revocation_reason: string | null; der: Buffer }>(
    `SELECT c.device_id, c.serial, c.status, c.revocation_reason, c.der FROM issuance_intents ii JOIN certificates c USING (serial)
     WHERE ii.request ->> 'batch' = $1`,
    [batch],
  );
  const pending = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM issuance_intents WHERE request ->> 'batch' = $1 AND state = 'pending'`, [batch]);
  const replaced = await pool.query<{ serial: string }>(`SELECT unnest(replaced) AS serial FROM batch_devices WHERE batch_id = $1`, [batch]);
  return { certs: certs.rows, pending: pending.rows[0]!.n, replaced: replaced.rows.map((r) => r.serial) };
}

/** Every device: exactly one live certificate, the one in manifest.csv and cert.pem; extra ones revoked and recorded as replaced. */
async function checkExactlyOnce(batch: string, ids: string[], out: string) {
  const st = await batchState(batch);
  expect(st.pending).toBe(0);
  const live = new Map<string, string[]>();
  for (const c of st.certs) if (c.status !== 'revoked') live.set(c.device_id, [...(live.get(c.device_id) ?? []), c.serial]);
  expect([...live.keys()].sort()).toEqual([...ids].sort());
  for (const id of ids) expect(live.get(id), id).toHaveLength(1);
  // a revoked one exists only as a recorded replacement (a lost server key), superseded
  const revoked = st.certs.filter((c) => c.status === 'revoked');
  for (const c of revoked) expect(c.revocation_reason).toBe('superseded');
  expect(revoked.map((c) => c.serial).sort()).toEqual([...st.replaced].sort());

  const manifest = parseCsv(readFileSync(path.join(out, 'manifest.csv')), { columns: true }) as Array<Record<string, string>>;
  expect(manifest.map((m) => m.device_id)).toEqual(ids);
  for (const m of manifest) {
    const serial = live.get(m.device_id!)![0]!;
    expect(m.serial).toBe(serial.toUpperCase());
    expect(new X509Certificate(readFileSync(path.join(out, 'devices', m.device_id!, 'cert.pem'))).serialNumber).toBe(serial.toUpperCase());
  }
  const sums = spawnSync('sha256sum', ['-c', '--quiet', 'SHA256SUMS'], { cwd: out, encoding: 'utf8' });
  expect(sums.status, sums.stdout + sums.stderr).toBe(0);
  expect(existsSync(path.join(out, 'manifest.csv.partial'))).toBe(false);
  return { manifest, replaced: st.replaced.length };
}

describe('kill -9 half-way, then rerun', () => {
  it('device CSRs/every device exactly one certificate, none twice, none missing; output complete', async () => {
    const N = 1200;
    const ids = Array.from({ length: N }, (_, i) => `kc-${String(i).padStart(5, '0')}`);
    writeFileSync(f('kc.csv'), 'device_id,csr\n' + ids.map((id) => `${id},${makeCsr(id).toString('base64')}`).join('\n') + '\n');
    const out = f('out-kc');
    const args = ['batch', 'run', f('kc.csv'), '--out', out, '--profile', 'camera', '--batch-id', 'kc'];
    const k = await runAndKill(args, 'kc', path.join(out, 'manifest.csv.partial'), 200);
    expect(k.signal).toBe('SIGKILL');
    const mid = await batchState('kc');
    // killed half-way: some issued, not all
    expect(mid.certs.length).toBeGreaterThanOrEqual(k.killedAt);
    expect(mid.certs.length).toBeLessThan(N);
    // issued but not in the journal: the rerun must complete these, not issue them again
    expect(mid.certs.length).toBeGreaterThan(k.killedAt);
    process.stderr.write(`[kc] killed with ${k.killedAt} rows journaled, ${mid.certs.length} certificates, ${mid.pending} intents pending\n`);
    const r = fleetca(args, env);
    expect(r.code, r.stderr).toBe(0);
    const { replaced } = await checkExactlyOnce('kc', ids, out);
    expect(replaced).toBe(0);
    expect((await batchState('kc')).certs).toHaveLength(N);
  });

  it('server keys + secrets/every device exactly one certificate whose key is in its key.pem, and one secret, the one stored', async () => {
    const N = 800;
    const ids = Array.from({ length: N }, (_, i) => `ks-${String(i).padStart(5, '0')}`);
    writeFileSync(f('ks.csv'), 'device_id,serial_number\n' + ids.map((id, i) => `${id},SN${i}`).join('\n') + '\n');
    const out = f('out-ks');
    const args = ['batch', 'run', f('ks.csv'), '--out', out, '--profile', 'camera', '--keygen', 'server', '--key-password-file', f('pw.txt'), '--secrets', '--batch-id', 'ks'];
    const k = await runAndKill(args, 'ks', path.join(out, 'manifest.csv.partial'), 150);
    expect(k.signal).toBe('SIGKILL');
    const mid = await batchState('ks');
    expect(mid.certs.length).toBeLessThan(N);
    expect(mid.certs.length).toBeGreaterThan(k.killedAt);
    process.stderr.write(`[ks] killed with ${k.killedAt} rows journaled, ${mid.certs.length} certificates, ${mid.pending} intents pending\n`);
    const r = fleetca(args, env);
    expect(r.code, r.stderr).toBe(0);
    const { manifest } = await checkExactlyOnce('ks', ids, out);
    // keys: each opens with the password and is its certificate's
    for (const m of manifest) {
      const d = path.join(out, 'devices', m.device_id!);
      const key = crypto.createPrivateKey({ key: readFileSync(path.join(d, 'key.pem')), format: 'pem', passphrase: PASSWORD });
      expect(new X509Certificate(readFileSync(path.join(d, 'cert.pem'))).checkPrivateKey(key), m.device_id).toBe(true);
    }
    // secrets: exactly one usable per device, the one in manifest.csv
    const macKey = deriveSecretKey(env.FLEETCA_KEY_PASSPHRASE!);
    const usable = await pool.query<{ device_id: string; mac: Buffer }>("SELECT device_id, mac FROM enrollment_secrets WHERE device_id LIKE 'ks-%' AND expires_at > now() ORDER BY device_id");
    expect(usable.rows.map((x) => [x.device_id, x.mac.toString('hex')])).toEqual(manifest.map((m) => [m.device_id, secretMac(macKey, m.device_id!, m.secret!).toString('hex')]));
  });
});
