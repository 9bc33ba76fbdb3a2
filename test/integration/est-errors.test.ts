/**
 * EST refusals against the real `fleetca serve`: every bad input gets its status, one log line
 * naming the refusal, and issues nothing; the server keeps serving. Secrets come from the real
 * `fleetca secret create` (most of them, for speed, from the code behind it, in this process);
 * CSRs and certificates from openssl.
 *
 * One server for the file, with `enrollment.failureLimit: 3` so the limiter test is short (each
 * other test uses its own device id, so none of them reaches the limit).
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { parseDocument } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { loadConfig } from '../../src/config/load.js';
import { systemClock } from '../../src/core/clock.js';
import { createEnrollmentSecrets } from '../../src/enrollment/secret-issuer.js';
import { deriveSecretKey } from '../../src/enrollment/secrets.js';
import { PgStore } from '../../src/store/pg-store.js';
import { configCopy, fleetca, opensslOk, startServe, type CliResult, type RunningServe } from '../helpers/cli.js';

const BIN = path.resolve('test/helpers/fleetca-bin.ts');
const FAILURE_LIMIT = 3;
const PASSPHRASE = 'est-errors-test';

let db: TestDatabase;
let pool: pg.Pool;
let dir: string;
let cfgDir: string;
let env: Record<string, string | undefined>;
let server: RunningServe;
let rootPem: string;
let port: number;
const f = (n: string) => path.join(dir, n);

/** `fleetca` without blocking, so beforeAll can create its secrets in parallel. */
function fleetcaAsync(args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['--import', 'tsx', BIN, ...args], { env: { ...process.env, LOG_LEVEL: 'warn', ...env } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** `fleetca secret create`: the secret alone on stdout. */
async function createSecretCli(device: string): Promise<string> {
  const r = await fleetcaAsync(['secret', 'create', '--device', device, '--profile', 'camera']);
  if (r.code !== 0) throw new Error(`secret create ${device}: ${r.stderr}`);
  expect(r.stdout).toMatch(/^[A-Za-z0-9_-]{32}\n$/);
  return r.stdout.trim();
}

/**
 * The same secrets, made in this process by the code behind `secret create` (each CLI run costs
 * ~2 s of CPU on the 2-core machine; the CLI path itself is exercised by createSecretCli).
 */
async function createSecretsInProcess(devices: string[]): Promise<Record<string, string>> {
  const store = await PgStore.open({ connectionString: db.connectionString, max: 2 });
  try {
    const created = await createEnrollmentSecrets(
      { store, config: loadConfig(cfgDir), clock: systemClock, secretKey: deriveSecretKey(PASSPHRASE) },
      devices.map((deviceId) => ({ deviceId, profile: 'camera' })),
      'test',
    );
    return Object.fromEntries(created.map((c) => [c.deviceId, c.secret]));
  } finally {
    await store.close();
  }
}

// ------------------------------------------------------------------ CSRs and certificates

interface KeyedCsr {
  der: Buffer;
  keyFile: string;
}
let csrCounter = 0;

/** A fresh P-256 key and its DER CSR for `/CN=<cn>`. */
function makeCsr(cn: string): KeyedCsr {
  const n = ++csrCounter;
  const keyFile = f(`k${n}.pem`);
  const out = f(`c${n}.der`);
  opensslOk(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-subj', `/CN=${cn}`, '-outform', 'DER', '-out', out]);
  return { der: readFileSync(out), keyFile };
}

/** A CSR for `/CN=<cn>` signed by an existing key (PEM file). */
function csrWithKey(cn: string, keyFile: string): Buffer {
  const out = f(`c${++csrCounter}.der`);
  opensslOk(['req', '-new', '-key', keyFile, '-subj', `/CN=${cn}`, '-outform', 'DER', '-out', out]);
  return readFileSync(out);
}

/** The single certificate (PEM) of a base64 certs-only PKCS#7 answer. */
function certFromPkcs7(b64: string): string {
  const p7 = f(`p${++csrCounter}.p7`);
  writeFileSync(p7, Buffer.from(b64, 'base64'));
  const pem = opensslOk(['pkcs7', '-inform', 'DER', '-in', p7, '-print_certs']);
  const m = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/.exec(pem);
  if (!m) throw new Error(`no certificate in ${pem}`);
  return m[0];
}

function serialOf(certPem: string): string {
  return opensslOk(['x509', '-noout', '-serial'], certPem).trim().replace(/^serial=/, '');
}

// ------------------------------------------------------------------ HTTP

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

interface EstRequest {
  method?: string;
  label?: string;
  body?: Buffer | string;
  basic?: { user: string; password: string };
  /** A TLS client certificate and its key, PEM. */
  cert?: string;
  key?: string;
  reqId?: string;
  headers?: Record<string, string>;
}

/** One request on a fresh TLS connection (no reuse between client certificates). */
function est(op: string, o: EstRequest = {}): Promise<Reply> {
  const body = o.body === undefined ? undefined : Buffer.isBuffer(o.body) ? o.body : Buffer.from(o.body);
  const headers: Record<string, string> = { ...(o.headers ?? {}) };
  if (body !== undefined) {
    headers['Content-Type'] ??= 'application/pkcs10';
    headers['Content-Length'] = String(body.length);
  }
  if (o.basic) headers.Authorization = `Basic ${Buffer.from(`${o.basic.user}:${o.basic.password}`).toString('base64')}`;
  if (o.reqId) headers['X-Request-Id'] = o.reqId;
  const urlPath = `/.well-known/est/${o.label ? `${o.label}/` : ''}${op}`;
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = https.request(
      { host: '127.0.0.1', port, path: urlPath, method: o.method ?? (body !== undefined ? 'POST' : 'GET'), headers, ca: rootPem, agent: false, ...(o.cert ? { cert: o.cert, key: o.key } : {}) },
      (res) => {
        answered = true;
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
        res.on('error', reject);
      },
    );
    // the server may answer (413) and close before a large body is sent: that error is expected
    req.on('error', (e) => {
      if (!answered) reject(e);
    });
    req.end(body);
  });
}

const b64 = (der: Buffer) => der.toString('base64');

/** simpleenroll with a one-time secret. */
function enrollWithSecret(device: string, password: string, csr: Buffer, reqId?: string): Promise<Reply> {
  return est('simpleenroll', { body: b64(csr), basic: { user: device, password }, ...(reqId ? { reqId } : {}) });
}

// ------------------------------------------------------------------ checks

async function counts(): Promise<{ certs: number; intents: number; consumed: number }> {
  const r = await pool.query<{ c: string; i: string; s: string }>(
    `SELECT (SELECT count(*) FROM certificates) AS c, (SELECT count(*) FROM issuance_intents) AS i,
            (SELECT count(*) FROM enrollment_secrets WHERE consumed_at IS NOT NULL) AS s`,
  );
  return { certs: Number(r.rows[0]!.c), intents: Number(r.rows[0]!.i), consumed: Number(r.rows[0]!.s) };
}

type LogLine = Record<string, unknown> & { msg: string; reqId?: string };

/** The server's JSON log line with this request id and message (waits for the pipe to catch up). */
async function logLine(reqId: string, msg: string): Promise<LogLine> {
  const deadline = Date.now() + 5000;
  for (;;) {
    for (const line of server.stderr().split('\n')) {
      if (!line.includes(reqId)) continue;
      try {
        const j = JSON.parse(line) as LogLine;
        if (j.reqId === reqId && j.msg === msg) return j;
      } catch {
        // not a JSON line
      }
    }
    if (Date.now() > deadline) throw new Error(`no log line "${msg}" for ${reqId} in:\n${server.stderr().slice(-4000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Sends a request that must be refused: the status, the log line ("est request refused" with the
 * kind, unless `log` says otherwise), nothing issued or consumed, and the server still answers.
 */
async function refused(send: (reqId: string) => Promise<Reply>, status: number, log: { kind: string } | { msg: string }): Promise<Reply & { reqId: string }> {
  const before = await counts();
  const reqId = `est-err-${randomUUID()}`;
  const r = await send(reqId);
  expect(r.status, r.body).toBe(status);
  if ('kind' in log) {
    const line = await logLine(reqId, 'est request refused');
    expect(line).toMatchObject({ kind: log.kind, status, level: 40 });
  } else {
    await logLine(reqId, log.msg);
  }
  expect(await counts()).toEqual(before);
  expect((await est('cacerts')).status).toBe(200);
  return { ...r, reqId };
}

function expect401(r: Reply): void {
  expect(r.headers['www-authenticate']).toMatch(/^Basic realm="fleetca EST"/);
  expect(r.body).toBe('authentication failed\n');
}

// ------------------------------------------------------------------ setup

const secrets: Record<string, string> = {};
/** Devices enrolled in beforeAll: their current certificate, its key and serial. */
const enrolled: Record<string, { cert: string; keyFile: string; serial: string }> = {};
let expiringAt: Date;

beforeAll(async () => {
  db = await createTestDatabase();
  pool = new pg.Pool({ connectionString: db.connectionString, max: 2 });
  dir = mkdtempSync(path.join(os.tmpdir(), 'fleetca-est-err-'));
  // as root, an embedded cluster runs as the unprivileged postgres user, which must reach the data dir
  chmodSync(dir, 0o711);
  cfgDir = configCopy((d) => {
    const file = path.join(d, 'ca.yaml');
    const doc = parseDocument(readFileSync(file, 'utf8'));
    doc.setIn(['enrollment', 'failureLimit'], FAILURE_LIMIT);
    writeFileSync(file, doc.toString());
  });
  env = { DATABASE_URL: db.connectionString, FLEETCA_DATA_DIR: f('data'), FLEETCA_KEY_PASSPHRASE: PASSPHRASE, FLEETCA_CONFIG_DIR: cfgDir };
  const init = fleetca(['init'], env);
  expect(init.code, init.stderr).toBe(0);
  rootPem = readFileSync(f('data/certs/root.pem'), 'utf8');

  await Promise.all([
    // assigned at once, so afterAll stops it even if a secret below fails
    startServe(env).then((s) => (server = s)),
    (async () => {
      secrets['reuse-1'] = await createSecretCli('reuse-1');
    })(),
    (async () => {
      Object.assign(secrets, await createSecretsInProcess(['bad-1', 'other-1', 'wrong-1', 'lim-1', 'conc-1', 'cur-1', 'held-1', 'revoked-1', 'quar-1']));
    })(),
    (async () => {
      const r = await fleetcaAsync(['secret', 'create', '--device', 'exp-1', '--profile', 'camera', '--ttl', '1s', '--json']);
      if (r.code !== 0) throw new Error(r.stderr);
      const j = JSON.parse(r.stdout) as { secret: string; expires_at: string };
      secrets['exp-1'] = j.secret;
      expiringAt = new Date(j.expires_at);
    })(),
  ]);
  port = Number(new URL(server.httpsUrl).port);

  // current certificates for the re-enrollment tests
  for (const d of ['cur-1', 'held-1', 'revoked-1', 'quar-1']) {
    const csr = makeCsr(d);
    const r = await enrollWithSecret(d, secrets[d]!, csr.der);
    expect(r.status, r.body).toBe(200);
    const cert = certFromPkcs7(r.body);
    enrolled[d] = { cert, keyFile: csr.keyFile, serial: serialOf(cert) };
  }
  const [held, revoked] = await Promise.all([
    fleetcaAsync(['revoke', enrolled['held-1']!.serial, '--reason', 'certificateHold']),
    fleetcaAsync(['revoke', enrolled['revoked-1']!.serial, '--reason', 'keyCompromise']),
  ]);
  expect(held.code, held.stderr).toBe(0);
  expect(revoked.code, revoked.stderr).toBe(0);
  // `fleetca device update` has no state option: quarantine the device in the database
  await pool.query(`UPDATE devices SET state = 'quarantined' WHERE id = 'quar-1'`);
}, 180_000);

afterAll(async () => {
  if (server && server.proc.exitCode === null) await server.stop();
  await pool?.end();
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
  if (cfgDir) rmSync(cfgDir, { recursive: true, force: true });
});

// ------------------------------------------------------------------ tests

describe('EST simpleenroll: bad bodies', () => {
  const withSecret = (body: Buffer | string, reqId: string) => est('simpleenroll', { body, basic: { user: 'bad-1', password: secrets['bad-1']! }, reqId });

  it('400/empty body', async () => {
    const r = await refused((id) => withSecret(Buffer.alloc(0), id), 400, { kind: 'badCsr' });
    expect(r.body).toMatch(/empty body/);
  });

  it('400/body not base64', async () => {
    await refused((id) => withSecret('this is *not* base64!\n', id), 400, { kind: 'badCsr' });
  });

  it('400/base64 of garbage', async () => {
    await refused((id) => withSecret(b64(Buffer.from('0123456789abcdef'.repeat(8))), id), 400, { kind: 'badCsr' });
  });

  it('400/truncated CSR', async () => {
    const { der } = makeCsr('bad-1');
    await refused((id) => withSecret(b64(der.subarray(0, der.length - 20)), id), 400, { kind: 'badCsr' });
  });

  it('400/CSR with a bad signature (one byte of the signature flipped)', async () => {
    const der = Buffer.from(makeCsr('bad-1').der);
    // the signature BIT STRING ends the DER: its last byte is the low byte of ECDSA s
    der[der.length - 1]! ^= 0x01;
    const r = await refused((id) => withSecret(b64(der), id), 400, { kind: 'badCsr' });
    expect(r.body).toMatch(/signature/);
  });

  it('200/the secret survives the refused bodies and enrolls once', async () => {
    const r = await enrollWithSecret('bad-1', secrets['bad-1']!, makeCsr('bad-1').der);
    expect(r.status, r.body).toBe(200);
  });
});

describe('EST simpleenroll: credentials', () => {
  it('403/CSR for another device than the secret\'s; the secret stays usable', async () => {
    const r = await refused((id) => enrollWithSecret('other-1', secrets['other-1']!, makeCsr('someone-else').der, id), 403, { kind: 'policyRejected' });
    expect(r.headers['www-authenticate']).toBeUndefined();
    // the claim was released: the right CSR still enrolls
    expect((await enrollWithSecret('other-1', secrets['other-1']!, makeCsr('other-1').der)).status).toBe(200);
  });

  it('403/secret used under another profile\'s label (camera secret at /sensor/)', async () => {
    const r = await refused(
      (id) => est('simpleenroll', { label: 'sensor', body: b64(makeCsr('wrong-1').der), basic: { user: 'wrong-1', password: secrets['wrong-1']! }, reqId: id }),
      403,
      { kind: 'forbidden' },
    );
    expect(r.body).toMatch(/profile camera/);
  });

  it('401/reused secret', async () => {
    const first = await enrollWithSecret('reuse-1', secrets['reuse-1']!, makeCsr('reuse-1').der);
    expect(first.status, first.body).toBe(200);
    const r = await refused((id) => enrollWithSecret('reuse-1', secrets['reuse-1']!, makeCsr('reuse-1').der, id), 401, { kind: 'unauthorized' });
    expect401(r);
  });

  it('401/expired secret (--ttl 1s)', async () => {
    const wait = expiringAt.getTime() + 500 - Date.now();
    if (wait > 0) await new Promise((res) => setTimeout(res, wait));
    const r = await refused((id) => enrollWithSecret('exp-1', secrets['exp-1']!, makeCsr('exp-1').der, id), 401, { kind: 'unauthorized' });
    expect401(r);
  });

  it('401/wrong secret, the same answer whether or not the device exists', async () => {
    const csr = makeCsr('wrong-1').der;
    const known = await refused((id) => enrollWithSecret('wrong-1', 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', csr, id), 401, { kind: 'unauthorized' });
    const ghost = await refused((id) => enrollWithSecret('ghost-1', 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', makeCsr('ghost-1').der, id), 401, { kind: 'unauthorized' });
    // another device's valid secret is wrong too
    const foreign = await refused((id) => enrollWithSecret('wrong-1', secrets['conc-1']!, csr, id), 401, { kind: 'unauthorized' });
    for (const r of [known, ghost, foreign]) expect401(r);
    const visible = (r: Reply) => ({ status: r.status, body: r.body, auth: r.headers['www-authenticate'], type: r.headers['content-type'], length: r.headers['content-length'] });
    expect(visible(ghost)).toEqual(visible(known));
    expect(visible(foreign)).toEqual(visible(known));
  });

  it('401/no credentials at all on simpleenroll', async () => {
    const r = await refused((id) => est('simpleenroll', { body: b64(makeCsr('anon-1').der), reqId: id }), 401, { kind: 'unauthorized' });
    expect401(r);
  });

  it('401/malformed Authorization header (not Basic)', async () => {
    const r = await refused(
      (id) => est('simpleenroll', { body: b64(makeCsr('anon-2').der), headers: { Authorization: 'Bearer abc' }, reqId: id }),
      401,
      { kind: 'unauthorized' },
    );
    expect401(r);
  });

  it(`401/right secret after ${FAILURE_LIMIT} wrong ones (failureLimit), the secret not consumed`, async () => {
    for (let i = 0; i < FAILURE_LIMIT; i++) {
      expect401(await refused((id) => enrollWithSecret('lim-1', `wrong-${i}-xxxxxxxxxxxxxxxxxxxxxxxx`, makeCsr('lim-1').der, id), 401, { kind: 'unauthorized' }));
    }
    const r = await refused((id) => enrollWithSecret('lim-1', secrets['lim-1']!, makeCsr('lim-1').der, id), 401, { kind: 'unauthorized' });
    expect401(r);
    expect((await logLine(r.reqId, 'est request refused')).err).toMatch(/too many failed/);
    const { rows } = await pool.query(`SELECT consumed_at, claimed_at FROM enrollment_secrets WHERE device_id = 'lim-1'`);
    expect(rows).toEqual([{ consumed_at: null, claimed_at: null }]);
  });
});

describe('EST simplereenroll', () => {
  const reenroll = (who: { cert: string; keyFile: string } | null, csr: Buffer, reqId: string) =>
    est('simplereenroll', { body: b64(csr), reqId, ...(who ? { cert: who.cert, key: readFileSync(who.keyFile, 'utf8') } : {}) });

  it('401/no client certificate', async () => {
    const r = await refused((id) => reenroll(null, makeCsr('cur-1').der, id), 401, { kind: 'unauthorized' });
    expect401(r);
  });

  it('403/revoked certificate', async () => {
    const e = enrolled['revoked-1']!;
    const r = await refused((id) => reenroll(e, makeCsr('revoked-1').der, id), 403, { kind: 'forbidden' });
    expect(r.body).toMatch(/revoked/);
  });

  it('403/held certificate (certificateHold)', async () => {
    const e = enrolled['held-1']!;
    const r = await refused((id) => reenroll(e, makeCsr('held-1').der, id), 403, { kind: 'forbidden' });
    expect(r.body).toMatch(/hold/);
  });

  it('403/certificate from a foreign CA (self-signed by openssl)', async () => {
    const key = f('foreign.key');
    const cert = opensslOk(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-subj', '/CN=cur-1', '-days', '1']);
    await refused((id) => reenroll({ cert, keyFile: key }, csrWithKey('cur-1', key), id), 403, { kind: 'forbidden' });
  });

  it('403/device quarantined (state set in the database: the CLI has no way to)', async () => {
    const e = enrolled['quar-1']!;
    const r = await refused((id) => reenroll(e, makeCsr('quar-1').der, id), 403, { kind: 'forbidden' });
    expect(r.body).toMatch(/quarantined/);
  });

  it('403/re-enrollment that changes the subject (CN other)', async () => {
    const e = enrolled['cur-1']!;
    const r = await refused((id) => reenroll(e, makeCsr('other').der, id), 403, { kind: 'forbidden' });
    expect(r.body).toMatch(/subject/);
  });

  it('200/re-enrollment with the current certificate and the same subject (control)', async () => {
    const e = enrolled['cur-1']!;
    const r = await reenroll(e, makeCsr('cur-1').der, `est-ok-${randomUUID()}`);
    expect(r.status, r.body).toBe(200);
  });
});

describe('EST transport', () => {
  it('413/10 MB body; the server keeps serving', async () => {
    const reqId = `est-err-${randomUUID()}`;
    const before = await counts();
    const r = await est('simpleenroll', { body: Buffer.alloc(10 * 1024 * 1024, 0x41), basic: { user: 'bad-1', password: 'x' }, reqId });
    expect(r.status).toBe(413);
    // refused by the body parser, before the EST router: the shared error handler logs it
    expect(await logLine(reqId, 'bad request')).toMatchObject({ type: 'entity.too.large' });
    expect(await counts()).toEqual(before);
    expect((await est('cacerts')).status).toBe(200);
  });

  it('405/GET simpleenroll, with Allow: POST', async () => {
    const r = await refused((id) => est('simpleenroll', { method: 'GET', reqId: id }), 405, { msg: 'est request refused: wrong method' });
    expect(r.headers.allow).toBe('POST');
  });

  it('405/POST cacerts, with Allow: GET, HEAD', async () => {
    const r = await refused((id) => est('cacerts', { body: 'x', reqId: id }), 405, { msg: 'est request refused: wrong method' });
    expect(r.headers.allow).toBe('GET, HEAD');
  });

  it('404/unknown label', async () => {
    await refused((id) => est('simpleenroll', { label: 'no-such-profile', body: b64(makeCsr('x').der), basic: { user: 'bad-1', password: 'x' }, reqId: id }), 404, { kind: 'notFound' });
  });

  it('404/label naming a system profile (tls-server)', async () => {
    await refused((id) => est('cacerts', { label: 'tls-server', reqId: id }), 404, { kind: 'notFound' });
  });

  it('404/unknown operation (only the access log line)', async () => {
    const r = await refused((id) => est('fullcmc', { body: 'x', reqId: id }), 404, { msg: 'request' });
    expect(r.body).toBe('not found\n');
  });
});

describe('EST concurrency', () => {
  it('one 200, seven 401, one certificate/8 concurrent simpleenroll with the same secret and different keys', async () => {
    const csrs = Array.from({ length: 8 }, () => makeCsr('conc-1').der);
    const replies = await Promise.all(csrs.map((c) => enrollWithSecret('conc-1', secrets['conc-1']!, c)));
    const statuses = replies.map((r) => r.status).sort();
    expect(statuses).toEqual([200, 401, 401, 401, 401, 401, 401, 401]);
    for (const r of replies.filter((x) => x.status === 401)) expect401(r);
    const list = JSON.parse(fleetca(['cert', 'list', '--device', 'conc-1', '--json'], env).stdout) as Array<{ serial: string }>;
    expect(list).toHaveLength(1);
    expect(list[0]!.serial).toBe(serialOf(certFromPkcs7(replies.find((r) => r.status === 200)!.body)));
  });
});

describe('afterwards', () => {
  it('cert list/exactly the certificates of the accepted enrollments, none for refused devices', () => {
    const r = fleetca(['cert', 'list', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    const perDevice: Record<string, number> = {};
    for (const c of JSON.parse(r.stdout) as Array<{ device: string | null; profile: string }>) {
      if (c.profile !== 'camera') continue;
      perDevice[c.device!] = (perDevice[c.device!] ?? 0) + 1;
    }
    expect(perDevice).toEqual({ 'bad-1': 1, 'other-1': 1, 'reuse-1': 1, 'conc-1': 1, 'cur-1': 2, 'held-1': 1, 'revoked-1': 1, 'quar-1': 1 });
  });

  it('cert list --device/[] for a device whose enrollments were all refused', () => {
    const r = fleetca(['cert', 'list', '--device', 'lim-1', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual([]);
  });

  it('server log/no 5xx answer and no error-level line during the file', () => {
    const lines = server
      .stderr()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { level: number; status?: number; msg: string });
    expect(lines.filter((l) => l.level >= 50)).toEqual([]);
    expect(lines.filter((l) => l.msg === 'request' && (l.status ?? 0) >= 500)).toEqual([]);
  });
});
