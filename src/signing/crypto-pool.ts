/**
 * CPU-bound crypto off the event loop: CSR decode + proof-of-possession check, and signatures.
 * A worker pool uses both cores (issuance is dominated by CSR verification and signing); the
 * inline implementation serves the CLI and tests. Both implement `CryptoEngine`.
 */
import crypto, { type KeyObject } from 'node:crypto';
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { CaError, internal, type CaErrorKind } from '../core/errors.js';
import { decodeCsr, verifyCsrSignature, type DecodedCsr } from '../pki/csr.js';
import { nodeDigestFor, type SignatureAlgorithm } from '../pki/algorithms.js';
import { algorithmForKey, type Signer } from './signer.js';
import { spkiOf } from './keys.js';

export interface VerifiedCsr {
  csr: DecodedCsr;
  /** Whether the CSR's self-signature verifies with its own public key (proof of possession). */
  signatureValid: boolean;
}

export interface CryptoEngine {
  /** Decodes a PKCS#10 DER strictly and checks its signature. Throws CaError(badCsr) on malformed input. */
  verifyCsr(der: Buffer): Promise<VerifiedCsr>;
  /** Registers a private key under an id (kept in memory only) and returns a Signer for it. */
  addKey(keyId: string, key: KeyObject): Promise<Signer>;
  close(): Promise<void>;
}

/** Everything on the calling thread. */
export class InlineCryptoEngine implements CryptoEngine {
  async verifyCsr(der: Buffer): Promise<VerifiedCsr> {
    const csr = decodeCsr(der);
    return { csr, signatureValid: verifyCsrSignature(csr) };
  }
  async addKey(_keyId: string, key: KeyObject): Promise<Signer> {
    const algorithm = algorithmForKey(key);
    const digest = nodeDigestFor(algorithm);
    return { algorithm, spkiDer: spkiOf(key), sign: async (data) => crypto.sign(digest, data, key) };
  }
  async close(): Promise<void> {}
}

type Request =
  | { id: number; op: 'verifyCsr'; der: Uint8Array }
  | { id: number; op: 'sign'; keyId: string; digest: string | null; data: Uint8Array }
  | { id: number; op: 'addKey'; keyId: string; pkcs8: Uint8Array };
/** Request without its id (distributes over the union). */
type RequestBody = Request extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;
type Reply = { id: number; ok: true; value: unknown } | { id: number; ok: false; kind: CaErrorKind; message: string };

const toBuf = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

/**
 * An exact-size copy whose ArrayBuffer can be transferred. Small Buffers are views on node's
 * shared 8 KiB pool, and structured clone copies a view's whole ArrayBuffer: sending the view
 * would copy 8 KiB per message.
 */
function transferable(b: Uint8Array): Uint8Array {
  const copy = new Uint8Array(b.byteLength);
  copy.set(b);
  return copy;
}

/**
 * The worker's entry: the compiled JS next to this file, or — when running from TypeScript
 * sources (vitest, tsx) — a small bootstrap that registers tsx's loader in the worker thread first
 * (loader hooks are per thread, and `--import` in a worker's execArgv is not honoured on Node 20).
 */
function startWorker(): Worker {
  const self = new URL(import.meta.url);
  if (!self.pathname.endsWith('.ts')) return new Worker(new URL('./crypto-worker.js', self));
  const entry = JSON.stringify(new URL('./crypto-worker.ts', self).href);
  const boot = `(async () => { const { register } = await import('tsx/esm/api'); register(); await import(${entry}); })()
    .catch((e) => { console.error(e); process.exit(1); });`;
  return new Worker(boot, { eval: true });
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/**
 * A pool of worker threads (default: one per core). Each worker holds every registered key,
 * so a signature can go to whichever worker has the fewest requests in flight.
 */
export class WorkerCryptoEngine implements CryptoEngine {
  private readonly workers: Worker[] = [];
  private readonly inflight: number[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;

  constructor(size = Math.max(1, os.availableParallelism())) {
    for (let i = 0; i < size; i++) {
      const w = startWorker();
      w.on('message', (r: Reply) => this.onReply(i, r));
      w.on('error', (e) => this.failAll(e));
      w.unref();
      this.workers.push(w);
      this.inflight.push(0);
    }
  }

  private onReply(worker: number, r: Reply): void {
    // an idle worker must not keep the process alive; a busy one must
    if (--this.inflight[worker]! === 0) this.workers[worker]!.unref();
    const p = this.pending.get(r.id);
    if (!p) return;
    this.pending.delete(r.id);
    if (r.ok) p.resolve(r.value);
    else p.reject(new CaError(r.kind, r.message));
  }

  private failAll(e: unknown): void {
    for (const p of this.pending.values()) p.reject(internal('crypto worker failed', e));
    this.pending.clear();
  }

  private call(req: RequestBody, worker?: number, transfer: ArrayBuffer[] = []): Promise<unknown> {
    if (this.closed) return Promise.reject(internal('crypto engine is closed'));
    let w = worker ?? 0;
    if (worker === undefined) for (let i = 1; i < this.workers.length; i++) if (this.inflight[i]! < this.inflight[w]!) w = i;
    const id = this.nextId++;
    if (this.inflight[w]!++ === 0) this.workers[w]!.ref();
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.workers[w]!.postMessage({ ...req, id }, transfer);
    });
  }

  /**
   * Decodes here (a few µs, and malformed input fails fast without a round trip) and verifies the
   * signature in a worker, which decodes its own copy: only bytes and a boolean cross threads.
   */
  async verifyCsr(der: Buffer): Promise<VerifiedCsr> {
    const csr = decodeCsr(der);
    const copy = transferable(der);
    const signatureValid = (await this.call({ op: 'verifyCsr', der: copy }, undefined, [copy.buffer as ArrayBuffer])) as boolean;
    return { csr, signatureValid };
  }

  async addKey(keyId: string, key: KeyObject): Promise<Signer> {
    const pkcs8 = key.export({ type: 'pkcs8', format: 'der' });
    await Promise.all(this.workers.map((_, i) => this.call({ op: 'addKey', keyId, pkcs8 }, i)));
    pkcs8.fill(0);
    const algorithm: SignatureAlgorithm = algorithmForKey(key);
    const digest = nodeDigestFor(algorithm);
    return {
      algorithm,
      spkiDer: spkiOf(key),
      sign: async (data) => {
        const copy = transferable(data);
        return toBuf((await this.call({ op: 'sign', keyId, digest, data: copy }, undefined, [copy.buffer as ArrayBuffer])) as Uint8Array);
      },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
