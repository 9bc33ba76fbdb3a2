/**
 * The admin API over HTTPS with curl: tokens from `fleetca token create`, every route tried with
 * every role (allowed → past authorisation, denied → 403), the OpenAPI document against the route
 * table, problem+json errors, pagination, the SOC's quarantine, firmware advisories and token
 * management through the API.
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
      ['device', 'add', 'fw-old', '--model', 'Z9', '--firmware', '1.2.0'],
      ['device', 'add', 'fw-new', '--model', 'Z9', '--firmware', '2.1'],
      ['device', 'add', 'fw-none', '--model', 'Z9'],
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

function api(method: string, p: string, opts: { token?: string | null; body?: unknown; raw?: string; type?: string; headers?: string[] } = {}) {
  const args = ['--cacert', f('root.pem'), '-X', method];
  for (const h of opts.headers ?? []) args.push('-H', h);
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
  return p
    .replace('{id}', method === 'get' && p.startsWith('/devices') ? 'cam-api-1' : p.startsWith('/advisories') ? '999999' : 'ghost')
    .replace('{serial}', method === 'get' ? serial : '0badc0de')
    .replace('{name}', 'ghost');
}

/** A body for a route in the role matrix that passes its schema without lasting side effects. */
function sampleBody(p: string, role: Role): unknown {
  if (p.endsWith('/quarantine')) return { reason: 'matrix' };
  if (p === '/secrets') return { device: `matrix-${role}`, profile: 'camera' };
  if (p === '/advisories') return { model: 'Z9', firmware: '<2', action: 'quarantine', reason: 'matrix', dry_run: true };
  if (p === '/tokens') return { name: `matrix-${role}`, role: 'nac', ttl: '1h' };
  if (p === '/devices/{id}') return { segment: 'matrix' };
  if (p === '/batches/{id}/revoke') return { reason: 'superseded' };
  return {};
}

describe('roles: every route with every role', () => {
  it.each(ROUTES.flatMap((r) => ROLES.map((role) => [r.method.toUpperCase(), r.path, role, r.roles.includes(role)] as const)))('%s %s as %s (allowed: %s)', (method, p, role, allowed) => {
    const body = method === 'POST' || method === 'PATCH' ? sampleBody(p, role) : undefined;
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

  it('the inventory: filters (firmware range, stale, criticality), the device with its certificate history, PATCH of segment and NAC role', () => {
    const fw = api('GET', '/devices?model=Z9&firmware=%3C2');
    expect(fw.status, fw.body.toString()).toBe(200);
    expect((fw.json.items as Array<{ id: string }>).map((d) => d.id)).toEqual(['fw-old']);
    // a judged filter pages too: one per page, the cursor carries on
    const p1 = api('GET', '/devices?model=Z9&firmware=%3E%3D1&limit=1');
    expect((p1.json.items as Array<{ id: string }>).map((d) => d.id)).toEqual(['fw-new']);
    const p2 = api('GET', `/devices?model=Z9&firmware=%3E%3D1&limit=1&cursor=${String(p1.json.next_cursor)}`);
    expect((p2.json.items as Array<{ id: string }>).map((d) => d.id)).toEqual(['fw-old']);
    expect(p2.json.next_cursor).toBeNull();
    expect(api('GET', '/devices?stale=true').json.items).toEqual([]);
    expect(api('GET', '/devices?criticality=high').json.items).toEqual([]);
    const bad = api('GET', '/devices?firmware=%3C%3C2');
    expect(bad.status).toBe(400);
    expect(bad.json.detail).toMatch(/version range "<<2"/);

    const d = api('GET', '/devices/cam-api-1');
    expect(d.json).toMatchObject({ id: 'cam-api-1', criticality: 'normal', nac_role: 'cameras', certificate_health: 'current', stale: false });
    expect((d.json.certificates as Array<{ serial: string }>).map((c) => c.serial)).toEqual([serial]);
    expect((d.json.current_certificate as { serial: string }).serial).toBe(serial);

    const sqlish = "vlan'); DROP TABLE devices; --";
    const u = api('PATCH', '/devices/cam-api-2', { token: tokens.get('operator')!, body: { segment: sqlish, nac_role: 'lab', macs: ['AA-BB-CC-DD-EE-FF'] } });
    expect(u.status, u.body.toString()).toBe(200);
    expect(u.json).toMatchObject({ segment: sqlish, nac_role_override: 'lab', macs: ['aa:bb:cc:dd:ee:ff'] });
    expect(api('GET', `/devices?segment=${encodeURIComponent(sqlish)}`).json.items).toMatchObject([{ id: 'cam-api-2', nac_role: 'lab' }]);
    const audit = api('GET', '/audit?target=cam-api-2&action=device.updated', { token: tokens.get('auditor')! });
    expect((audit.json.items as Array<{ actor: string }>)[0]).toMatchObject({ actor: 'api:t-operator' });
    expect(api('PATCH', '/devices/cam-api-2', { token: tokens.get('operator')!, body: { segment: null } }).json.segment).toBeNull();
    expect(api('PATCH', '/devices/cam-api-2', { body: {} }).status).toBe(400);
    expect(api('PATCH', '/devices/cam-api-2', { body: { macs: ['nope'] } }).status).toBe(400);
    expect(api('PATCH', '/devices/cam-api-2', { body: { state: 'retired' } }).status).toBe(400);
    expect(api('PATCH', '/devices/ghost', { body: { segment: 'x' } }).status).toBe(404);
  });

  it('certificate search by device; revoke with a reason', () => {
    const s = api('GET', '/certificates?device=cam-api-1&status=valid');
    expect((s.json.items as Array<{ serial: string }>).map((c) => c.serial)).toEqual([serial]);
    const r = api('POST', `/certificates/${serial}/revoke`, { token: tokens.get('operator')!, body: { reason: 'keyCompromise' } });
    expect(r.json).toMatchObject({ status: 'revoked', revocation_reason: 'keyCompromise' });
    expect(api('POST', `/certificates/${serial}/release`, { token: tokens.get('operator')! }).status).toBe(409);
  });
});

type AdvisoryJson = { id: number; model: string; firmware: string; action: string; max_validity: string | null; reason: string; devices: string[]; created_by: string; withdrawn_at: string | null; withdrawn_by: string | null };
type AuditJson = { actor: string; target: string; details: Record<string, unknown> };
const audit = (target: string, action: string) =>
  api('GET', `/audit?target=${encodeURIComponent(target)}&action=${encodeURIComponent(action)}`, { token: tokens.get('auditor')! }).json.items as AuditJson[];

describe('firmware advisories through the API', () => {
  const apply = (body: Record<string, unknown>) => api('POST', '/advisories', { token: tokens.get('operator')!, body });

  it('dry_run selects by model and range (no firmware → never) and changes nothing; malformed range, duration or action → 400 naming it; nothing recorded', () => {
    const dry = apply({ model: 'Z9', firmware: '<2', action: 'quarantine', reason: 'dry', dry_run: true });
    expect(dry.status, dry.body.toString()).toBe(200);
    expect(dry.json).toEqual({ dry_run: true, advisory: null, devices: ['fw-old'], skipped: [], counts: { devices: 1, skipped: 0 } });
    expect(api('GET', '/devices/fw-old').json.state).toBe('active');
    for (const firmware of ['~2.4', "<2'; DROP TABLE devices; --"]) {
      const r = apply({ model: 'Z9', firmware, action: 'quarantine', reason: 'bad range' });
      expect(r.status, r.body.toString()).toBe(400);
      expect(header(r.headers, 'content-type')).toMatch(/^application\/problem\+json/);
      expect(r.json.detail).toContain(`version range "${firmware}"`);
    }
    const dur = apply({ model: 'Z9', firmware: '<2', action: 'shorten', max_validity: 'soon', reason: 'bad duration' });
    expect(dur.status).toBe(400);
    expect(dur.json.detail).toMatch(/^max_validity: /);
    expect(apply({ model: 'Z9', firmware: '<2', action: 'restrict', reason: 'no profile' }).status).toBe(400);
    expect(apply({ model: 'Z9', firmware: '<2', action: 'shorten', reason: 'no validity' }).status).toBe(400);
    const act = apply({ model: 'Z9', firmware: '<2', action: 'delete', reason: 'x' });
    expect(act.status).toBe(400);
    expect(JSON.stringify(act.json.errors)).toMatch(/action/);
    const list = api('GET', '/advisories', { token: tokens.get('auditor')! });
    expect(list.status).toBe(200);
    expect(list.json.items).toEqual([]);
  });

  it('quarantine as operator: the selected devices quarantined, the SQL-looking reason kept verbatim, the audit records of the CLI path with the API actor; a rerun skips them; withdraw once, then 409', () => {
    const reason = "CVE-2026-0003'); DROP TABLE advisories; --";
    const a = apply({ model: 'Z9', firmware: '<2', action: 'quarantine', reason });
    expect(a.status, a.body.toString()).toBe(200);
    expect(a.json).toMatchObject({ dry_run: false, devices: ['fw-old'], skipped: [], counts: { devices: 1, skipped: 0 } });
    const adv = a.json.advisory as AdvisoryJson;
    expect(adv).toMatchObject({ model: 'Z9', firmware: '<2', action: 'quarantine', max_validity: null, reason, devices: ['fw-old'], created_by: 'api:t-operator', withdrawn_at: null });
    expect(api('GET', '/devices/fw-old').json.state).toBe('quarantined');
    expect(api('GET', '/devices/fw-new').json.state).toBe('active');
    expect(audit(`advisory:${adv.id}`, 'advisory.applied')[0]).toMatchObject({ actor: 'api:t-operator', details: { model: 'Z9', firmware: '<2', action: 'quarantine', devices: 1, reason } });
    expect(audit('fw-old', 'device.quarantined')[0]).toMatchObject({ actor: 'api:t-operator', details: { reason: `advisory ${adv.id}: ${reason}` } });

    const again = apply({ model: 'Z9', firmware: '<2', action: 'quarantine', reason: 'again' });
    expect(again.json).toMatchObject({ devices: ['fw-old'], skipped: ['fw-old'], counts: { devices: 1, skipped: 1 } });
    const list = api('GET', '/advisories', { token: tokens.get('auditor')! }).json.items as AdvisoryJson[];
    expect(list.map((x) => x.id)).toEqual([adv.id, (again.json.advisory as AdvisoryJson).id]);
    expect(list[0]!.reason).toBe(reason);

    const w = api('POST', `/advisories/${adv.id}/withdraw`, { token: tokens.get('operator')! });
    expect(w.status, w.body.toString()).toBe(200);
    expect(w.json).toMatchObject({ id: adv.id, withdrawn_by: 'api:t-operator' });
    expect(w.json.withdrawn_at).toEqual(expect.any(String));
    expect(audit(`advisory:${adv.id}`, 'advisory.withdrawn')[0]).toMatchObject({ actor: 'api:t-operator' });
    expect(api('POST', `/advisories/${adv.id}/withdraw`, { token: tokens.get('operator')! }).status).toBe(409);
    expect(api('POST', '/advisories/first/withdraw').status).toBe(400);
    // a quarantine stays until it is released per device
    expect(api('GET', '/devices/fw-old').json.state).toBe('quarantined');
  });

  it('shorten with max_validity "1d12h": recorded and returned in the same duration form', () => {
    const a = apply({ model: 'Z9', firmware: '>=2', action: 'shorten', max_validity: '1d12h', reason: 'CVE-2026-0004' });
    expect(a.status, a.body.toString()).toBe(200);
    expect(a.json.advisory).toMatchObject({ action: 'shorten', max_validity: '1d12h', devices: ['fw-new'] });
    expect(api('POST', `/advisories/${(a.json.advisory as AdvisoryJson).id}/withdraw`).status).toBe(200);
  });
});

describe('API tokens through the API', () => {
  it('list: names, roles, expiry, revocation and last use, never a secret', () => {
    const r = api('GET', '/tokens');
    expect(r.status).toBe(200);
    const items = r.json.items as Array<Record<string, unknown>>;
    expect(items.map((t) => t.name)).toEqual(expect.arrayContaining([...ROLES.map((x) => `t-${x}`), 'to-revoke', 'short']));
    for (const t of items) expect(Object.keys(t).sort()).toEqual(['created_at', 'created_by', 'expires_at', 'last_used_at', 'name', 'revoked_at', 'role']);
    expect(items.find((t) => t.name === 'to-revoke')!.revoked_at).toEqual(expect.any(String));
    expect(r.body.toString()).not.toMatch(/fca_/);
  });

  it('create shows the token once and it works for its role; audited with the API actor; duplicate → 409, bad input → 400; revoke by name → 401 from then on; again → 404', () => {
    const c = api('POST', '/tokens', { body: { name: 'nac-ise', role: 'nac', ttl: '1h' } });
    expect(c.status, c.body.toString()).toBe(200);
    expect(c.json).toMatchObject({ name: 'nac-ise', role: 'nac', created_by: 'api:t-admin', revoked_at: null });
    const lifeMs = Date.parse(String(c.json.expires_at)) - Date.parse(String(c.json.created_at));
    expect(lifeMs).toBe(3_600_000);
    const token = String(c.json.token);
    expect(token).toMatch(/^fca_[a-z2-7]{16}\.[A-Za-z0-9_-]{43}$/);
    expect(api('GET', '/openapi.json', { token }).status).toBe(200);
    expect(api('GET', '/devices', { token }).status).toBe(403);
    expect(audit('nac-ise', 'token.created')[0]).toMatchObject({ actor: 'api:t-admin', details: { role: 'nac' } });
    expect(api('GET', '/tokens').body.toString()).not.toContain(token.slice(4));
    // the default lifetime is the CLI's
    const d = api('POST', '/tokens', { body: { name: 'default-ttl', role: 'auditor' } });
    expect(Date.parse(String(d.json.expires_at)) - Date.parse(String(d.json.created_at))).toBe(30 * 86_400_000);

    expect(api('POST', '/tokens', { body: { name: 'nac-ise', role: 'nac' } }).status).toBe(409);
    const role = api('POST', '/tokens', { body: { name: 'x', role: 'root' } });
    expect(role.status).toBe(400);
    expect(JSON.stringify(role.json.errors)).toMatch(/role/);
    expect(api('POST', '/tokens', { body: { name: 'x', role: 'nac', ttl: 'forever' } }).json.detail).toMatch(/^ttl: /);
    expect(api('POST', '/tokens', { body: { name: "Robert'); DROP TABLE api_tokens; --", role: 'nac' } }).status).toBe(400);

    const rv = api('POST', '/tokens/nac-ise/revoke');
    expect(rv.status, rv.body.toString()).toBe(200);
    expect(rv.json).toEqual({ name: 'nac-ise', revoked: true });
    expect(audit('nac-ise', 'token.revoked')[0]).toMatchObject({ actor: 'api:t-admin' });
    expect(api('GET', '/openapi.json', { token }).status).toBe(401);
    expect(api('POST', '/tokens/nac-ise/revoke').status).toBe(404);
  });
});

describe('the NAC feed and trust bundle (role nac)', () => {
  const nac = () => tokens.get('nac')!;
  type Identity = { device_id: string; allowed: boolean; nac_role: string | null; certificate: { serial: string; status: string; sha256_fingerprint: string } | null };
  /** Every identity from a cursor on, following next_cursor through full pages. */
  function drain(since: string | null, limit = 1000): { items: Identity[]; cursor: string } {
    const items: Identity[] = [];
    for (;;) {
      const r = api('GET', `/nac/identities?limit=${limit}${since ? `&since=${since}` : ''}`, { token: nac() });
      expect(r.status, r.body.toString()).toBe(200);
      const page = r.json.items as Identity[];
      items.push(...page);
      since = r.json.next_cursor as string;
      if (page.length < limit) return { items, cursor: since };
    }
  }

  /**
   * Reads on from `since` until `want` says the identities so far are complete. The feed may lag:
   * it never reads past a transaction still open anywhere on the server (on a shared server,
   * another test's), so a change arrives once those ended — never skipped, maybe a read later.
   */
  async function drainUntil(since: string | null, want: (items: Identity[]) => boolean, limit = 1000): Promise<{ items: Identity[]; cursor: string }> {
    const items: Identity[] = [];
    let cursor = since;
    await pollUntil(
      'the change reaches the NAC feed',
      () => {
        const r = drain(cursor, limit);
        items.push(...r.items);
        cursor = r.cursor;
        return want(items);
      },
      { timeoutMs: 15_000, intervalMs: 100 },
    );
    return { items, cursor: cursor! };
  }
  const has = (id: string) => (items: Identity[]) => items.some((i) => i.device_id === id);

  it('a full read, then only what changed: a hold brings the device back not allowed, a release allowed again', async () => {
    opensslOk(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('nac.key'), '-subj', '/CN=cam-nac-1', '-out', f('nac.csr')]);
    const issued = fleetca(['issue', '--profile', 'camera', '--device', 'cam-nac-1', '--csr', f('nac.csr')], env);
    expect(issued.code, issued.stderr).toBe(0);
    const serial = opensslOk(['x509', '-noout', '-serial'], issued.stdout).trim().replace(/^serial=/, '');
    const full = await drainUntil(null, has('cam-nac-1'));
    const cam = full.items.find((i) => i.device_id === 'cam-nac-1')!;
    expect(cam).toMatchObject({ allowed: true, nac_role: 'cameras', certificate: { serial, status: 'valid' } });
    // the revoked certificate of cam-api-1 is not current: no certificate, not allowed
    expect(full.items.find((i) => i.device_id === 'cam-api-1')).toMatchObject({ allowed: false, certificate: null });
    expect(cam.certificate!.sha256_fingerprint).toMatch(/^[0-9a-f]{64}$/);
    // paging by two gives the same devices
    expect(new Set(drain(null, 2).items.map((i) => i.device_id))).toEqual(new Set(full.items.map((i) => i.device_id)));
    // nothing about it comes again (other devices' lagging changes may)
    const settled = drain(full.cursor);
    expect(settled.items.every((i) => i.device_id !== 'cam-nac-1')).toBe(true);

    expect(api('POST', `/certificates/${serial}/hold`, { token: tokens.get('operator')! }).status).toBe(200);
    const afterHold = await drainUntil(settled.cursor, has('cam-nac-1'));
    expect(afterHold.items).toMatchObject([{ device_id: 'cam-nac-1', allowed: false, certificate: { status: 'hold' } }]);
    expect(api('POST', `/certificates/${serial}/release`, { token: tokens.get('operator')! }).status).toBe(200);
    expect((await drainUntil(afterHold.cursor, has('cam-nac-1'))).items).toMatchObject([{ device_id: 'cam-nac-1', allowed: true }]);
  });

  it('ETag: nothing new → 304 to If-None-Match; a garbage cursor → 400; the nac token elsewhere → 403', async () => {
    // read until nothing more comes (lagging changes included): from then on the answer is empty
    let { cursor } = drain(null);
    await pollUntil('the feed is drained', () => {
      const r = drain(cursor);
      cursor = r.cursor;
      return r.items.length === 0;
    }, { timeoutMs: 15_000, intervalMs: 100 });
    const r = api('GET', `/nac/identities?since=${cursor}`, { token: nac() });
    const etag = header(r.headers, 'etag')!;
    expect(etag).toMatch(/^"[\w-]+"$/);
    const again = api('GET', `/nac/identities?since=${cursor}`, { token: nac(), headers: [`If-None-Match: ${etag}`] });
    expect(again.status).toBe(304);
    expect(again.body.length).toBe(0);
    expect(api('GET', '/nac/identities?since=garbage', { token: nac() }).status).toBe(400);
    expect(api('GET', `/nac/identities?since=${Buffer.from(JSON.stringify(['1; DROP TABLE devices', ''])).toString('base64url')}`, { token: nac() }).status).toBe(400);
    expect(api('GET', '/devices', { token: nac() }).status).toBe(403);
  });

  it('the bundle: the device CA and the root, never the manufacturing CA; ETag and 304', () => {
    const r = api('GET', '/nac/bundle', { token: nac() });
    expect(r.status).toBe(200);
    expect(header(r.headers, 'content-type')).toMatch(/^application\/pem-certificate-chain/);
    const subjects = pemBlocks(r.body.toString()).map((b) => opensslOk(['x509', '-noout', '-subject'], b).trim());
    expect(subjects).toEqual([expect.stringMatching(/CN ?= ?fleetca Device CA/), expect.stringMatching(/CN ?= ?fleetca Root CA/)]);
    const etag = header(r.headers, 'etag')!;
    expect(api('GET', '/nac/bundle', { token: nac(), headers: [`If-None-Match: W/${etag}, "other"`] }).status).toBe(304);
  });
});

describe('factory batches (role factory)', () => {
  it('list and show a batch run by the CLI; recall it over the API (again: nothing more to revoke); bad reason → 400; unknown → 404', () => {
    writeFileSync(f('manifest.csv'), 'device_id,mac,model\nfab-1,aa:bb:cc:00:00:01,F1\nfab-2,aa:bb:cc:00:00:02,F1\n');
    writeFileSync(f('batch.pw'), 'factory batch password\n', { mode: 0o600 });
    const run = fleetca(['batch', 'run', f('manifest.csv'), '--out', f('batch-out'), '--profile', 'camera', '--keygen', 'server', '--key-password-file', f('batch.pw'), '--batch-id', 'line-7'], env);
    expect(run.code, run.stderr).toBe(0);
    const factory = tokens.get('factory')!;
    const list = api('GET', '/batches', { token: factory });
    expect(list.status).toBe(200);
    expect((list.json.items as Array<{ id: string; done: number }>).find((b) => b.id === 'line-7')).toMatchObject({ done: 2 });
    expect(api('GET', '/batches/line-7', { token: factory }).json).toMatchObject({ id: 'line-7', state: 'complete', rejects: [] });
    expect(api('GET', '/batches/nope', { token: factory }).status).toBe(404);
    expect(api('POST', '/batches/line-7/revoke', { token: factory, body: { reason: 'certificateHold' } }).status).toBe(400);
    const recall = api('POST', '/batches/line-7/revoke', { token: factory, body: { reason: 'keyCompromise' } });
    expect(recall.status, recall.body.toString()).toBe(200);
    expect(recall.json).toMatchObject({ batch: 'line-7', already_revoked: 0 });
    expect(recall.json.revoked as string[]).toHaveLength(2);
    expect(api('POST', '/batches/line-7/revoke', { token: factory, body: { reason: 'keyCompromise' } }).json).toMatchObject({ revoked: [], already_revoked: 2 });
    const audit = api('GET', '/audit?target=batch:line-7&action=batch.revoked', { token: tokens.get('auditor')! });
    expect((audit.json.items as Array<{ actor: string }>)[0]).toMatchObject({ actor: 'api:t-factory' });
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
