import { CaError } from '../../src/core/errors.js';
/**
 * Shared helpers for the pki tests: running openssl, temp dirs, key generation.
 */
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll } from 'vitest';
import { pemEncode } from '../../src/pki/pem.js';

export const VECTORS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../vectors');

export interface RunResult {
  status: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs openssl with `args`; never throws (tests assert on status/output). */
export function openssl(args: string[], input?: Buffer | string): RunResult {
  const r = spawnSync('openssl', args, { input, maxBuffer: 16 * 1024 * 1024 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString('utf8') };
}

/** Runs openssl and returns stdout, throwing with stderr if it failed. */
export function opensslOk(args: string[], input?: Buffer | string): Buffer {
  const r = openssl(args, input);
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

/** A temp dir removed after the test file finishes. */
export function useTmpDir(prefix = 'fleetca-pki-'): () => string {
  let dir: string | undefined;
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  return () => {
    dir ??= mkdtempSync(path.join(os.tmpdir(), prefix));
    return dir;
  };
}

/** Writes `content` to `dir/name` and returns the path. */
export function writeTmp(dir: string, name: string, content: Buffer | string): string {
  const p = path.join(dir, name);
  writeFileSync(p, content);
  return p;
}

/** Reads a golden vector from test/vectors. */
export function vector(rel: string): Buffer {
  return readFileSync(path.join(VECTORS_DIR, rel));
}

export type TestKeyType = 'P-256' | 'P-384' | 'P-521' | 'RSA-2048' | 'Ed25519';

/** A node key pair plus its SPKI DER. */
export interface TestKey {
  type: TestKeyType;
  privateKey: crypto.KeyObject;
  publicKey: crypto.KeyObject;
  spkiDer: Buffer;
}

/** Generates a key pair with node's crypto. */
export function generateTestKey(type: TestKeyType): TestKey {
  let kp: crypto.KeyPairKeyObjectResult;
  switch (type) {
    case 'P-256':
    case 'P-384':
    case 'P-521':
      kp = crypto.generateKeyPairSync('ec', { namedCurve: type });
      break;
    case 'RSA-2048':
      kp = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
      break;
    case 'Ed25519':
      kp = crypto.generateKeyPairSync('ed25519');
      break;
  }
  return { type, ...kp, spkiDer: kp.publicKey.export({ format: 'der', type: 'spki' }) };
}

/** PEM of a DER certificate, for openssl. */
export function certPem(der: Buffer): string {
  return pemEncode('CERTIFICATE', der);
}

/** Runs `fn` and returns the CaError it throws; fails when it throws nothing or something else. */
export function caError(fn: () => unknown): CaError {
  try {
    fn();
  } catch (err) {
    if (err instanceof CaError) return err;
    throw err;
  }
  throw new Error('expected a CaError');
}
