/** The floors every fleetca figure is compared with: what node's crypto alone can do. */
import crypto, { type KeyObject } from 'node:crypto';
import { Worker } from 'node:worker_threads';

export interface RawCsr {
  info: Uint8Array;
  sig: Uint8Array;
  /** The P-256 public key as JWK coordinates (the import path that scales across threads). */
  jwk: { kty: 'EC'; crv: string; x: string; y: string };
}

export function rawSignLoop(key: KeyObject, data: Buffer, n: number): void {
  for (let i = 0; i < n; i++) crypto.sign('sha256', data, key);
}

/**
 * One issuance's unavoidable crypto: import the CSR's public key, verify its signature, sign a TBS.
 * The key is imported from JWK coordinates, the fastest native path (OpenSSL 3's DER decoder
 * serialises threads on global locks), so the floor is the best raw rate.
 */
export function floorIssue(c: RawCsr, caKey: KeyObject, tbs: Buffer): void {
  const pub = crypto.createPublicKey({ key: c.jwk, format: 'jwk' });
  if (!crypto.verify('sha256', c.info, pub, c.sig)) throw new Error('floor: bad CSR signature');
  crypto.sign('sha256', tbs, caKey);
}

/** Runs `op` on `threads` worker threads, `perThread` operations each; returns operations/s. */
export async function onWorkers(op: 'sign' | 'floor', threads: number, perThread: number, csrs: RawCsr[], keyPem: string): Promise<number> {
  const entry = JSON.stringify(new URL('./floor-worker.ts', import.meta.url).href);
  const boot = `(async () => { const { register } = await import('tsx/esm/api'); register(); await import(${entry}); })()
    .catch((e) => { console.error(e); process.exit(1); });`;
  const times = await Promise.all(
    Array.from({ length: threads }, () =>
      new Promise<number>((resolve, reject) => {
        const w = new Worker(boot, { eval: true, workerData: { op, count: perThread, csrs, keyPem } });
        w.once('message', (ms: number) => {
          void w.terminate();
          resolve(ms);
        });
        w.once('error', reject);
      }),
    ),
  );
  // the slowest worker's own loop time: worker start-up is not counted (fleetca's pool is warm too)
  return (threads * perThread) / (Math.max(...times) / 1000);
}
