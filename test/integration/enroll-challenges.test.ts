/**
 * Profile challenges besides one-time secrets, through EST HTTP Basic (the same enrollment layer
 * serves SCEP's challengePassword): the static lab challenge and the challenge webhook of MDM
 * systems, against the real server and a real webhook receiver on 127.0.0.1.
 */
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { configCopy, fleetca, startServe, type RunningServe } from '../helpers/cli.js';

const LAB_CHALLENGE = 'lab-bench-challenge';
let db: TestDatabase;
let dir: string;
let cfgDir: string;
let server: RunningServe;
let hook: http.Server;
let rootPem: string;
const hookCalls: Array<{ device: string; profile: string; challenge: string; csr: string; via: string }> = [];

function csr(cn: string): Buffer {
  return execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', '/dev/null', '-subj', `/CN=${cn}`, '-outform', 'DER'], { stdio: ['ignore', 'pipe', 'ignore'] });
}

function enroll(label: string, user: string, password: string, body: Buffer): Promise<{ status: number; body: string }> {
  const u = new URL(`${server.httpsUrl}/.well-known/est/${label}/simpleenroll`);
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: u.hostname, port: u.port, path: u.pathname, method: 'POST', ca: rootPem, auth: `${user}:${password}`, headers: { 'content-type': 'application/pkcs10' } },
      (res) => {
        let b = '';
        res.on('data', (d: Buffer) => (b += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b }));
      },
    );
    req.on('error', reject);
    req.end(body.toString('base64'));
  });
}

beforeAll(async () => {
  hook = http.createServer((req, res) => {
    let b = '';
    req.on('data', (d: Buffer) => (b += d.toString()));
    req.on('end', () => {
      const j = JSON.parse(b) as (typeof hookCalls)[number];
      hookCalls.push(j);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ allow: j.challenge === `otp-for-${j.device}` }));
    });
  });
  await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
  const hookUrl = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/validate`;

  db = await createTestDatabase();
  dir = mkdtempSync(path.join(os.tmpdir(), 'fleetca-chal-'));
  chmodSync(dir, 0o711);
  cfgDir = configCopy((d) => {
    const camera = readFileSync(path.join(d, 'profiles/camera.yaml'), 'utf8');
    const sha = crypto.createHash('sha256').update(LAB_CHALLENGE).digest('hex');
    writeFileSync(path.join(d, 'profiles/lab.yaml'), camera.replace('enrollment:\n', `enrollment:\n  staticChallengeSha256: "${sha}"\n`));
    writeFileSync(path.join(d, 'profiles/mdm.yaml'), camera.replace('enrollment:\n', `enrollment:\n  challengeWebhook: { url: "${hookUrl}", timeoutMs: 2000 }\n`));
  });
  const env = { DATABASE_URL: db.connectionString, FLEETCA_DATA_DIR: path.join(dir, 'data'), FLEETCA_KEY_PASSPHRASE: 'chal-test', FLEETCA_CONFIG_DIR: cfgDir };
  const init = fleetca(['init'], env);
  expect(init.code, init.stderr).toBe(0);
  rootPem = readFileSync(path.join(dir, 'data/certs/root.pem'), 'utf8');
  server = await startServe(env);
}, 120_000);

afterAll(async () => {
  if (server && server.proc.exitCode === null) await server.stop();
  await new Promise((r) => hook?.close(r));
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
  if (cfgDir) rmSync(cfgDir, { recursive: true, force: true });
});

describe('profile challenges', () => {
  it('200/static lab challenge enrolls a device new to fleetca, at the profile label', async () => {
    const r = await enroll('lab', 'lab-dev-1', LAB_CHALLENGE, csr('lab-dev-1'));
    expect(r.status, r.body).toBe(200);
    // and again for another device: a static challenge is not one-time
    expect((await enroll('lab', 'lab-dev-2', LAB_CHALLENGE, csr('lab-dev-2'))).status).toBe(200);
  });

  it('401/static challenge wrong, or used at a profile without one', async () => {
    expect((await enroll('lab', 'lab-dev-3', 'not-the-challenge', csr('lab-dev-3'))).status).toBe(401);
    expect((await enroll('camera', 'cam-lab-4', LAB_CHALLENGE, csr('cam-lab-4'))).status).toBe(401);
  });

  it('200/webhook allows; 401/webhook denies; the webhook saw device, profile, challenge and CSR', async () => {
    const der = csr('mdm-dev-1');
    const ok = await enroll('mdm', 'mdm-dev-1', 'otp-for-mdm-dev-1', der);
    expect(ok.status, ok.body).toBe(200);
    const denied = await enroll('mdm', 'mdm-dev-2', 'otp-for-someone-else', csr('mdm-dev-2'));
    expect(denied.status).toBe(401);
    expect(hookCalls[0]).toEqual({ device: 'mdm-dev-1', profile: 'mdm', challenge: 'otp-for-mdm-dev-1', csr: der.toString('base64'), via: 'est' });
    expect(hookCalls.map((c) => c.device)).toEqual(['mdm-dev-1', 'mdm-dev-2']);
  });

  it('403/a profile challenge still cannot get a certificate for another device than its username', async () => {
    const r = await enroll('lab', 'lab-dev-5', LAB_CHALLENGE, csr('lab-dev-6'));
    expect(r.status).toBe(403);
  });
});
