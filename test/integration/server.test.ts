/**
 * `fleetca serve` on the embedded PostgreSQL of its data dir, with the CLI beside it sharing the
 * same cluster; the HTTP listener serves what the certificates point at (caIssuers, CRL), and the
 * HTTPS listener presents the TLS server certificate with its issuing CA.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fleetca, opensslOk, startServe, type RunningServe } from '../helpers/cli.js';

let dir: string;
let env: Record<string, string | undefined>;
let server: RunningServe;
const f = (n: string) => path.join(dir, n);

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'fleetca-serve-'));
  // as root, the embedded cluster runs as the unprivileged postgres user, which must reach the data dir
  chmodSync(dir, 0o711);
  // DATABASE_URL unset: the data dir's own embedded cluster
  env = { DATABASE_URL: undefined, FLEETCA_DATA_DIR: f('data'), FLEETCA_KEY_PASSPHRASE: 'correct horse battery staple' };
  const init = fleetca(['init'], env);
  expect(init.code, init.stderr).toBe(0);
  // the CLI started the cluster for the duration of the command and stopped it afterwards
  expect(existsSync(f('data/pg/postmaster.pid'))).toBe(false);
  server = await startServe(env);
}, 180_000);

afterAll(async () => {
  if (server && server.proc.exitCode === null) await server.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('fleetca serve', () => {
  it('ready line/names the real ports', () => {
    expect(server.httpUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(server.httpsUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(server.httpUrl).not.toMatch(/:0$/);
  });

  it('health, readiness and metrics/answer', async () => {
    expect((await fetch(`${server.httpUrl}/healthz`)).status).toBe(200);
    expect((await fetch(`${server.httpUrl}/readyz`)).status).toBe(200);
    const m = await fetch(`${server.httpUrl}/metrics`);
    const body = await m.text();
    expect(body).toContain('fleetca_http_requests_total');
    expect(body).toContain('fleetca_process_');
    const r = await fetch(`${server.httpUrl}/healthz`);
    expect(r.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('caIssuers URL/serves the issuing CA as DER application/pkix-cert', async () => {
    const r = await fetch(`${server.httpUrl}/ca/device-ca.crt`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('application/pkix-cert');
    const der = Buffer.from(await r.arrayBuffer());
    const subject = opensslOk(['x509', '-inform', 'DER', '-noout', '-subject'], der);
    expect(subject).toContain('fleetca Device CA');
    expect((await fetch(`${server.httpUrl}/ca/nope.crt`)).status).toBe(404);
  });

  it('CDP URL/serves a DER CRL signed by the issuing CA, with caching headers', async () => {
    const r = await fetch(`${server.httpUrl}/crl/device-ca.crl`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('application/pkix-crl');
    expect(r.headers.get('etag')).toBeTruthy();
    expect(r.headers.get('last-modified')).toBeTruthy();
    expect(r.headers.get('cache-control')).toMatch(/max-age=\d+/);
    writeFileSync(f('device-ca.crl'), Buffer.from(await r.arrayBuffer()));
    const out = spawnSync('openssl', ['crl', '-inform', 'DER', '-in', f('device-ca.crl'), '-noout', '-CAfile', f('data/certs/device-ca.pem')], { encoding: 'utf8' });
    expect(out.stderr + out.stdout).toContain('verify OK');
    const again = await fetch(`${server.httpUrl}/crl/device-ca.crl`, { headers: { 'If-None-Match': r.headers.get('etag')! } });
    expect(again.status).toBe(304);
    const pem = await (await fetch(`${server.httpUrl}/crl/device-ca.crl.pem`)).text();
    expect(pem).toMatch(/^-----BEGIN X509 CRL-----/);
  });

  it('HTTPS/presents the TLS server certificate and its issuing CA, verifiable from the root', () => {
    const port = new URL(server.httpsUrl).port;
    const r = spawnSync('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-CAfile', f('data/certs/root.pem'), '-verify_return_error', '-verify_hostname', 'localhost', '-showcerts'], {
      input: 'Q\n',
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(r.stdout).toContain('Verify return code: 0 (ok)');
    expect(r.stdout).toMatch(/1 s:.*fleetca Device CA/);
  });

  it('CLI beside the server/shares the embedded cluster', () => {
    opensslOk(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('d.key'), '-subj', '/CN=beside-1', '-out', f('d.csr')]);
    const r = fleetca(['issue', '--profile', 'camera', '--device', 'beside-1', '--csr', f('d.csr')], env);
    expect(r.code, r.stderr).toBe(0);
    const list = JSON.parse(fleetca(['cert', 'list', '--device', 'beside-1', '--json'], env).stdout) as unknown[];
    expect(list).toHaveLength(1);
    // the CLI did not stop the server's cluster
    expect(existsSync(f('data/pg/postmaster.pid'))).toBe(true);
  });

  it('oversized body/413, server keeps serving', async () => {
    const r = await fetch(`${server.httpUrl}/healthz`, { method: 'POST', body: Buffer.alloc(300 * 1024, 0x41) });
    expect(r.status).toBe(413);
    expect((await fetch(`${server.httpUrl}/healthz`)).status).toBe(200);
  });

  it('SIGTERM/drains and exits 0, stopping the cluster it started', async () => {
    const code = await server.stop();
    expect(code).toBe(0);
    expect(existsSync(f('data/pg/postmaster.pid'))).toBe(false);
    expect(readFileSync(f('data/fleetca.json'), 'utf8')).toContain('http://localhost:8080');
  });
});
