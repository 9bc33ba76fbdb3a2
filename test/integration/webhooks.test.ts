/**
 * Webhooks end to end: `fleetca serve` with an endpoint in ca-config; a quarantine made with the
 * CLI (another process) reaches a real HTTP receiver, signed, within seconds — and one queued while
 * the receiver was down is delivered once it is back, after a server restart in between.
 */
import crypto from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { configCopy, fleetca, startServe, type RunningServe } from '../helpers/cli.js';
import { freePort } from '../helpers/est.js';
import { pollUntil } from '../helpers/revocation.js';
import { webhookSignature } from '../../src/jobs/webhook-dispatcher.js';

const SECRET = crypto.randomBytes(24).toString('hex');
let db: TestDatabase;
let dir: string;
let cfgDir: string;
let env: Record<string, string | undefined>;
let server: RunningServe | undefined;
let port: number;
let up = true;
const got: Array<{ headers: http.IncomingHttpHeaders; body: string }> = [];
const rx = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c: Buffer) => (body += c.toString('utf8')));
  req.on('end', () => {
    if (!up) {
      res.writeHead(503).end();
      return;
    }
    got.push({ headers: req.headers, body });
    res.writeHead(204).end();
  });
});
const f = (n: string) => path.join(dir, n);

beforeAll(async () => {
  db = await createTestDatabase();
  dir = mkdtempSync(path.join(os.tmpdir(), 'fleetca-webhooks-'));
  chmodSync(dir, 0o711);
  await new Promise<void>((r) => rx.listen(0, '127.0.0.1', () => r()));
  const url = `http://127.0.0.1:${(rx.address() as AddressInfo).port}/fleetca`;
  cfgDir = configCopy((d) => {
    writeFileSync(path.join(d, 'soc.secret'), `${SECRET}\n`, { mode: 0o600 });
    const file = path.join(d, 'ca.yaml');
    const doc = YAML.parseDocument(readFileSync(file, 'utf8'));
    doc.setIn(['webhooks'], { endpoints: [{ name: 'soc', url, secretFile: 'soc.secret', events: ['device.quarantined', 'device.released'] }], retryBase: '200ms', timeout: '2s' });
    writeFileSync(file, doc.toString());
  });
  port = await freePort();
  env = { DATABASE_URL: db.connectionString, FLEETCA_DATA_DIR: f('data'), FLEETCA_CONFIG_DIR: cfgDir, FLEETCA_KEY_PASSPHRASE: 'webhook tests passphrase' };
  expect(fleetca(['init', '--public-url', `http://127.0.0.1:${port}`], env).code).toBe(0);
  expect(fleetca(['device', 'add', 'cam-wh'], env).code).toBe(0);
  server = await startServe(env, ['--http-port', String(port), '--https-port', '0']);
}, 120_000);

afterAll(async () => {
  if (server && server.proc.exitCode === null) await server.stop();
  await new Promise<void>((r) => rx.close(() => r()));
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
  if (cfgDir) rmSync(cfgDir, { recursive: true, force: true });
});

describe('webhooks', () => {
  it('a quarantine made by the CLI is POSTed to the endpoint within seconds, signed with its secret', async () => {
    const t0 = Date.now();
    expect(fleetca(['device', 'quarantine', 'cam-wh', '--reason', 'EDR alert 4711'], env).code).toBe(0);
    await pollUntil('the receiver got the event', () => got.length >= 1, { timeoutMs: 5000, intervalMs: 50, since: t0 });
    const [e] = got;
    const body = JSON.parse(e!.body) as { id: string; type: string; subject: string; data: { actor: string; details: { reason: string } } };
    expect(body).toMatchObject({ type: 'device.quarantined', subject: 'cam-wh', data: { actor: 'cli', details: { reason: 'EDR alert 4711' } } });
    expect(e!.headers['x-fleetca-delivery']).toBe(body.id);
    expect(e!.headers['x-fleetca-signature']).toBe(webhookSignature(Buffer.from(SECRET), Number(e!.headers['x-fleetca-timestamp']), e!.body));
  });

  it('queued while the receiver answers 503 and across a server restart: delivered once it is back', async () => {
    up = false;
    got.length = 0;
    expect(fleetca(['device', 'release', 'cam-wh'], env).code).toBe(0);
    await server!.stop();
    up = true;
    server = await startServe(env, ['--http-port', String(port), '--https-port', '0']);
    await pollUntil('the release event arrived', () => got.some((g) => JSON.parse(g.body).type === 'device.released'), { timeoutMs: 10_000, intervalMs: 100 });
    expect(got.filter((g) => JSON.parse(g.body).type === 'device.released')).toHaveLength(1);
  });
});
