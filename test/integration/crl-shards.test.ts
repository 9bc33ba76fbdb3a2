/**
 * Partitioned CRLs end to end: a CA initialised with `crl.shards: 3` writes each certificate's
 * shard into its CDP; `openssl verify -crl_check -crl_download` fetches that shard, checks its
 * critical Issuing Distribution Point against the CDP, and finds the revocation there.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { configCopy, fleetca, openssl, opensslOk, startServe, type RunningServe } from '../helpers/cli.js';
import { curl, fleetcaBatch, freePort, pemBlocks } from '../helpers/est.js';
import { crlEntryOf, crlText, pollUntil } from '../helpers/revocation.js';

const SHARDS = 3;
const DEVICES = 9;
let db: TestDatabase;
let dir: string;
let cfgDir: string;
let env: Record<string, string | undefined>;
let server: RunningServe | undefined;
let base: string;
const f = (n: string) => path.join(dir, n);
const certs: Array<{ file: string; serial: string; shard: number }> = [];

beforeAll(async () => {
  db = await createTestDatabase();
  dir = mkdtempSync(path.join(os.tmpdir(), 'fleetca-shards-'));
  chmodSync(dir, 0o711);
  cfgDir = configCopy((d) => {
    const file = path.join(d, 'ca.yaml');
    const doc = YAML.parseDocument(readFileSync(file, 'utf8'));
    doc.setIn(['crl', 'shards'], SHARDS);
    writeFileSync(file, doc.toString());
  });
  const httpPort = await freePort();
  env = { DATABASE_URL: db.connectionString, FLEETCA_DATA_DIR: f('data'), FLEETCA_CONFIG_DIR: cfgDir, FLEETCA_KEY_PASSPHRASE: 'shard tests passphrase' };
  const init = fleetca(['init', '--public-url', `http://127.0.0.1:${httpPort}`], env);
  expect(init.code, init.stderr).toBe(0);
  for (let i = 0; i < DEVICES; i++) {
    opensslOk(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f(`d${i}.key`), '-subj', `/CN=shard-dev-${i}`, '-out', f(`d${i}.csr`)]);
  }
  const serving = startServe(env, ['--http-port', String(httpPort)]).then((s) => (server = s));
  serving.catch(() => undefined);
  const [chain, ...issued] = await fleetcaBatch(
    [['ca', 'chain'], ...Array.from({ length: DEVICES }, (_, i) => ['issue', '--profile', 'camera', '--device', `shard-dev-${i}`, '--csr', f(`d${i}.csr`)])],
    env,
  );
  await serving;
  base = server!.httpUrl;
  writeFileSync(f('chain.pem'), chain!.stdout);
  writeFileSync(f('int.pem'), pemBlocks(chain!.stdout)[0]!);
  issued.forEach((r, i) => {
    expect(r.code, r.stderr).toBe(0);
    writeFileSync(f(`d${i}.pem`), r.stdout);
    const serial = opensslOk(['x509', '-in', f(`d${i}.pem`), '-noout', '-serial']).trim().replace(/^serial=/, '');
    const cdp = opensslOk(['x509', '-in', f(`d${i}.pem`), '-noout', '-ext', 'crlDistributionPoints']);
    const m = new RegExp(`URI:${base}/crl/device-ca-(\\d+)\\.crl`).exec(cdp);
    expect(m, cdp).not.toBeNull();
    certs.push({ file: f(`d${i}.pem`), serial, shard: Number(m![1]) });
  });
}, 180_000);

afterAll(async () => {
  if (server && server.proc.exitCode === null) await server.stop();
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
  if (cfgDir) rmSync(cfgDir, { recursive: true, force: true });
});

describe('partitioned CRLs', () => {
  it('every CDP names a shard 1..N; every shard CRL carries a critical IDP naming its own URL and is 404 beyond N', () => {
    expect(certs.every((c) => c.shard >= 1 && c.shard <= SHARDS)).toBe(true);
    for (let n = 1; n <= SHARDS; n++) {
      const r = curl([`${base}/crl/device-ca-${n}.crl`]);
      expect(r.status).toBe(200);
      const text = crlText(r.body);
      expect(text).toMatch(/X509v3 Issuing Distribution Point: critical/);
      expect(text).toContain(`URI:${base}/crl/device-ca-${n}.crl`);
      expect(text).toMatch(/Only User Certificates/);
    }
    expect(curl([`${base}/crl/device-ca-${SHARDS + 1}.crl`]).status).toBe(404);
  });

  it('revoke: openssl verify -crl_check -crl_download fetches the shard named by the CDP and says revoked; the others still verify', async () => {
    const victim = certs[0]!;
    const r = fleetca(['revoke', victim.serial, '--reason', 'keyCompromise'], env);
    expect(r.code, r.stderr).toBe(0);
    await pollUntil(
      'the shard CRL lists the revoked certificate',
      () => {
        const c = curl([`${base}/crl/device-ca-${victim.shard}.crl`]);
        return c.status === 200 && crlEntryOf(crlText(c.body), victim.serial) !== null;
      },
      { timeoutMs: 5_000, intervalMs: 100 },
    );
    const v = openssl(['verify', '-crl_check', '-crl_download', '-CAfile', f('chain.pem'), victim.file]);
    expect(v.stdout + v.stderr).toMatch(/error 23 at 0 depth lookup: certificate revoked/);
    for (const other of certs.slice(1)) {
      const ok = openssl(['verify', '-crl_check', '-crl_download', '-CAfile', f('chain.pem'), other.file]);
      expect(ok.code, ok.stdout + ok.stderr).toBe(0);
      // and the revoked serial is only in its own shard
      if (other.shard !== victim.shard) expect(crlEntryOf(crlText(curl([`${base}/crl/device-ca-${other.shard}.crl`]).body), victim.serial)).toBeNull();
    }
    // the full CRL (no IDP) lists it too
    expect(crlEntryOf(crlText(curl([`${base}/crl/device-ca.crl`]).body), victim.serial)).not.toBeNull();
  });
});
