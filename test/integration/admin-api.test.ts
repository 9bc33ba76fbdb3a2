/**
 * The admin API over HTTPS with curl: tokens from `fleetca token create`, every route tried with
 * every role (allowed → past authorisation, denied → 403), the OpenAPI document against the route
 * table, problem+json errors, pagination, and the SOC's quarantine through the API.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { fleetca, opensslOk, startServe, type RunningServe } from '../helpers/cli.js';
import { curl, fleetcaBatch, header, pemBlocks } from '../helpers/est.js';
import { pollUntil } from '../helpers/revocation.js';
import { ROUTES } from '../../src/protocols/admin/api.js';
import { ROLES, type Role } from '../../src/enrollment/api-tokens.js';

let db: TestDatabase;
let dir: string;
let env: Record<string, string | undefined>;
let server: RunningServe | undefined;
let serial: string;
const tokens = new Map<Role, string>();
const f = (n: string) => path.join(dir, n);

beforeAll(async () => {
  db = await createTestDatabase();
  dir = mkdtempSync(path.join(os.tmpdir(), 'fleetca-api-'));
  chmodSync(dir, 0o711);
  env = { DATABASE_URL: db.connectionString, FLEETCA_DATA_DIR: f('data'), FLEETCA_KEY_PASSPHRASE: 'admin api tests passphrase' };
  expect(fleetca(['init'], env).code).toBe(0);
  opensslOk(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('d.key'), '-subj', '/CN=cam-api-1', '-out', f('d.csr')]);
  const results = await fleetcaBatch(
    [
      ['ca', 'chain'],
      ['issue', '--profile', 'camera', '--device', 'cam-api-1', '--csr', f('d.csr')],
      ['device', 'add', 'cam-api-2', '--model', 'X'],
      ['device', 'add', 'cam-api-3', '--model', 'X'],
      ...ROLES.map((r) => ['token', 'create', '--role', r, '--name', `t-${r}`]),
      ['token', 'create', '--role', 'admin', '--name', 'to-revoke'],
      ['token', 'revoke', 'to-revoke'],
      ['token', 'create', '--role', 'admin', '--name', 'short', '--ttl', '2s'],
    ],
    env,
  );
  for (const r of results) expect(r.code, r.stderr).toBe(0);
  writeFileSync(f('root.pem'), pemBlocks(results[0]!.stdout)[1]!);
  writeFileSync(f('d.pem'), results[1]!.stdout);
  serial = opensslOk(['x509', '-in', f('d.pem'), '-noout', '-serial']).trim().replace(/^serial=/, '');
  ROLES.forEach((r, i) => tokens.set(r, results[4 + i]!.stdout.trim()));
  tokens.set('revoked' as Role, results[4 + ROLES.length]!.stdout.trim());
  tokens.set('short' as Role, results[6 + ROLES.length]!.stdout.trim());
  // the tests call curl synchronously, so this process does not drain the server's stderr while
  // they run: keep the server's log to errors, or a full pipe would block its (synchronous) logger
  server = await startServe({ ...env, LOG_LEVEL: 'error' });
}, 180_000);

afterAll(async () => {
  if (server && server.proc.exitCode === null) await server.stop();
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function api(method: string, p: string, opts: { token?: string | null; body?: unknown; raw?: string; type?: string } = {}) {
  const args = ['--cacert', f('root.pem'), '-X', method];
  if (opts.token !== null) args.push('-H', `Authorization: Bearer ${opts.token ?? tokens.get('admin')}`);
  if (opts.body !== undefined || opts.raw !== undefined) {
    writeFileSync(f('body.json'), opts.raw ?? JSON.stringify(opts.body));
    args.push('-H', `Content-Type: ${opts.type ?? 'application/json'}`, '--data-binary', `@${f('body.json')}`);
  }
  const r = curl([...args, `${server!.httpsUrl}/api/v1${p}`]);
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(r.body.toString('utf8')) as Record<string, unknown>;
  } catch {
    /* not JSON */
  }
  return { ...r, json };
}

/** A concrete path for a route, on ids that do not exist for mutations (no side effects). */
function concrete(p: string, method: string): string {
  return p.replace('{id}', method === 'get' && p.startsWith('/devices') ? 'cam-api-1' : 'ghost').replace('{serial}', method === 'get' ? serial : '0badc0de');
}

describe('roles: every route with every role', () => {
  it.each(ROUTES.flatMap((r) => ROLES.map((role) => [r.method.toUpperCase(), r.path, role, r.roles.includes(role)] as const)))('%s %s as %s (allowed: %s)', (method, p, role, allowed) => {
    const body = method === 'POST' ? (p.endsWith('/quarantine') ? { reason: 'matrix' } : p === '/secrets' ? { device: `matrix-${role}`, profile: 'camera' } : {}) : undefined;
    const r = api(method, concrete(p, method.toLowerCase()), { token: tokens.get(role)!, ...(body !== undefined ? { body } : {}) });
    if (allowed) {
      expect([401, 403], `${r.status} ${r.body.toString()}`).not.toContain(r.status);
      expect(r.status).toBeLessThan(500);
    } else {
      expect(r.status, r.body.toString()).toBe(403);
      expect(header(r.headers, 'content-type')).toMatch(/^application\/problem\+json/);
      expect(r.json).toMatchObject({ status: 403, title: 'Forbidden' });
    }
  });
});

describe('the OpenAPI document', () => {
  it('lists exactly the routes of the table, with their methods and roles', () => {
    const r = api('GET', '/openapi.json', { token: tokens.get('nac')! });
    expect(r.status).toBe(200);
    const paths = r.json.paths as Record<string, Record<string, { 'x-fleetca-roles': string[]; summary: string }>>;
    const ops = Object.entries(paths).flatMap(([p, ms]) => Object.entries(ms).map(([m, op]) => `${m} ${p} ${op['x-fleetca-roles'].join(',')}`));
    expect(ops.sort()).toEqual(ROUTES.map((x) => `${x.method} ${x.path} ${x.roles.join(',')}`).sort());
    expect(r.json.openapi).toBe('3.1.0');
  });
});

describe('authentication', () => {
  it('no token, a malformed one, a revoked one, an expired one → 401 with WWW-Authenticate', async () => {
    for (const token of [null, 'nonsense', 'fca_aaaaaaaaaaaaaaaa.' + 'A'.repeat(43), tokens.get('revoked' as Role)!]) {
      const r = api('GET', '/devices', { token });
      expect(r.status).toBe(401);
      expect(header(r.headers, 'www-authenticate')).toBe('Bearer realm="fleetca"');
    }
    await pollUntil('the 2-second token expired', () => api('GET', '/devices', { token: tokens.get('short' as Role)! }).status === 401, { timeoutMs: 5000, intervalMs: 250 });
  });
});

describe('devices, certificates, quarantine through the API', () => {
  it('pagination: limit 2, then the cursor gives the rest, in id order', () => {
    const p1 = api('GET', '/devices?limit=2');
    expect(p1.status).toBe(200);
    const items1 = (p1.json.items as Array<{ id: string }>).map((d) => d.id);
    expect(items1).toHaveLength(2);
    const p2 = api('GET', `/devices?limit=2&cursor=${String(p1.json.next_cursor)}`);
    const items2 = (p2.json.items as Array<{ id: string }>).map((d) => d.id);
    expect([...items1, ...items2]).toEqual([...items1, ...items2].sort());
    expect(items2.some((x) => items1.includes(x))).toBe(false);
    expect(api('GET', '/devices?cursor=!!').status).toBe(400);
  });

  it('the SOC quarantines over the API (a SQL-looking reason is kept verbatim); the certificate is on hold; release', () => {
    const reason = "x'); DROP TABLE devices; --";
    const q = api('POST', '/devices/cam-api-1/quarantine', { token: tokens.get('operator')!, body: { reason } });
    expect(q.status, q.body.toString()).toBe(200);
    expect((q.json.held as Array<{ status: string }>).map((c) => c.status)).toEqual(['hold']);
    expect(api('GET', '/devices/cam-api-1').json.state).toBe('quarantined');
    expect(api('GET', `/certificates/${serial}`).json).toMatchObject({ status: 'hold', revocation_reason: 'certificateHold' });
    const audit = api('GET', '/audit?target=cam-api-1&action=device.quarantined', { token: tokens.get('auditor')! });
    expect((audit.json.items as Array<{ details: { reason: string }; actor: string }>)[0]).toMatchObject({ actor: 'api:t-operator', details: { reason } });
    expect(api('POST', '/devices/cam-api-1/quarantine', { token: tokens.get('operator')!, body: { reason } }).status).toBe(409);
    expect(api('POST', '/devices/cam-api-1/release', { token: tokens.get('operator')! }).status).toBe(200);
    expect(api('GET', `/certificates/${serial}`).json.status).toBe('valid');
  });

  it('certificate search by device; revoke with a reason', () => {
    const s = api('GET', '/certificates?device=cam-api-1&status=valid');
    expect((s.json.items as Array<{ serial: string }>).map((c) => c.serial)).toEqual([serial]);
    const r = api('POST', `/certificates/${serial}/revoke`, { token: tokens.get('operator')!, body: { reason: 'keyCompromise' } });
    expect(r.json).toMatchObject({ status: 'revoked', revocation_reason: 'keyCompromise' });
    expect(api('POST', `/certificates/${serial}/release`, { token: tokens.get('operator')! }).status).toBe(409);
  });
});

describe('bad input: problem+json, never a 500', () => {
  it('malformed JSON → 400, a field outside the schema → 400 naming it, not JSON → 415, too large → 413, unknown route → 404, wrong method → 405', () => {
    const bad = api('POST', '/devices/cam-api-2/quarantine', { raw: '{"reason":' });
    expect(bad.status).toBe(400);
    expect(bad.json).toMatchObject({ status: 400, detail: 'the body is not valid JSON' });
    const extra = api('POST', '/devices/cam-api-2/quarantine', { body: { reason: 'x', admin: true } });
    expect(extra.status).toBe(400);
    expect(JSON.stringify(extra.json.errors)).toMatch(/admin/);
    expect(api('POST', '/devices/cam-api-2/quarantine', { raw: 'reason=x', type: 'application/x-www-form-urlencoded' }).status).toBe(415);
    const big = api('POST', '/devices/cam-api-2/quarantine', { raw: JSON.stringify({ reason: 'x'.repeat(300 * 1024) }) });
    expect(big.status).toBe(413);
    expect(header(big.headers, 'content-type')).toMatch(/^application\/problem\+json/);
    expect(api('GET', '/nothing-here').status).toBe(404);
    const m = api('DELETE', '/devices');
    expect(m.status).toBe(405);
    expect(header(m.headers, 'allow')).toBe('GET');
    expect(api('GET', '/certificates/not-hex').status).toBe(400);
    expect(api('GET', '/devices?limit=100000').status).toBe(400);
  });

  it('too many authentication failures from one address → 429 (last: it blocks this address)', () => {
    let last = 0;
    for (let i = 0; i < 25 && last !== 429; i++) last = api('GET', '/devices', { token: 'wrong' }).status;
    expect(last).toBe(429);
    // even a good token is refused while blocked
    expect(api('GET', '/devices').status).toBe(429);
  });
});
