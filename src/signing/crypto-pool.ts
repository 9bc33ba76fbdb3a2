/**
 * CPU-bound crypto off the event loop: CSR decode + proof-of-possession check, and signatures.
 * A worker pool uses both cores (issuance is dominated by CSR verification and signing); the
 * inline implementation serves the CLI and tests. Both implement `CryptoEngine`.
 */
import crypto, { type KeyObject } from 'node:crypto';
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { CaError, internal, unavailable, type CaErrorKind } from '../core/errors.js';
import { decodeCsr, verifyCsrSignature, type DecodedCsr } from '../pki/csr.js';
import { nodeDigestFor, type SignatureAlgorithm } from '../pki/algorithms.js';
import { pkcs12Kdf } from '../pki/pkcs12.js';
import { algorithmForKey, type Signer } from './signer.js';
import { createKeyTransportDecryptor } from './rsa-kt.js';
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
  /**
   * The 32-byte HMAC key of a PKCS#12 MacData (RFC 7292 App. B.2 over SHA-256): thousands of hash
   * calls, so on a worker thread when there are some (factory batches make one per bundle).
   */
  pkcs12MacKey(password: string, salt: Buffer, iterations: number): Promise<Buffer>;
  /**
   * Registers an RSA key (the SCEP RA's) for signatures with a digest chosen per call (a CertRep
   * uses the request's) and for RSA key-transport decryption with implicit rejection
   * (signing/rsa-kt.ts: its rejection secret derives from the key, so every thread rejects a given
   * ciphertext alike).
   */
  addRaKey(keyId: string, key: KeyObject): Promise<RaKeyOps>;
  close(): Promise<void>;
}

/** What addRaKey returns. */
export interface RaKeyOps {
  sign(digest: string, data: Buffer): Promise<Buffer>;
  /** KeyTransportDecryptor.decrypt, on the engine's threads. */
  decryptKeyTransport(ciphertext: Buffer, expectedLength: number): Promise<Buffer>;
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
  async pkcs12MacKey(password: string, salt: Buffer, iterations: number): Promise<Buffer> {
    return pkcs12Kdf(password, salt, 3, iterations, 32);
  }
  async addRaKey(_keyId: string, key: KeyObject): Promise<RaKeyOps> {
    const decryptor = createKeyTransportDecryptor(key);
    return {
      sign: async (digest, data) => crypto.sign(digest, data, key),
      decryptKeyTransport: async (c, n) => decryptor.decrypt(c, n),
    };
  }
  async close(): Promise<void> {}
}

type Request =
  | { id: number; op: 'verifyCsr'; der: Uint8Array }
  | { id: number; op: 'sign'; keyId: string; digest: string | null; data: Uint8Array }
  | { id: number; op: 'addKey'; keyId: string; pkcs8: Uint8Array }
  | { id: number; op: 'pkcs12MacKey'; password: string; salt: Uint8Array; iterations: number }
  | { id: number; op: 'ktDecrypt'; keyId: string; data: Uint8Array; expectedLength: number };
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

interface Slot {
  worker: Worker;
  pending: Map<number, Pending>;
  /** Requests of this turn of the event loop, sent as one message (see call). */
  outbox: Array<RequestBody & { id: number }>;
  transfer: ArrayBuffer[];
}

/**
 * A pool of worker threads (default: one per core). Each worker holds every registered key,
 * so a signature can go to whichever worker has the fewest requests in flight.
 */
export class WorkerCryptoEngine implements CryptoEngine {
  private readonly slots: Slot[] = [];
  /** Registered keys, kept to load them into a replacement worker. */
  private readonly keys = new Map<string, KeyObject>();
  private nextId = 1;
  private closed = false;

  constructor(size = Math.max(1, os.availableParallelism())) {
    for (let i = 0; i < size; i++) this.slots.push(this.spawn());
  }

  /**
   * A worker that died (a crash in native code, an out-of-memory) fails only its own requests and
   * is replaced at once, with every registered key loaded again before any new request reaches it.
   */
  private spawn(): Slot {
    const slot: Slot = { worker: startWorker(), pending: new Map(), outbox: [], transfer: [] };
    slot.worker.on('message', (m: Reply | { batch: Reply[] }) => {
      if ('batch' in m) for (const r of m.batch) this.onReply(slot, r);
      else this.onReply(slot, m);
    });
    slot.worker.on('error', () => undefined); // 'exit' follows and handles it
    slot.worker.on('exit', (code) => {
      const i = this.slots.indexOf(slot);
      for (const p of slot.pending.values()) p.reject(unavailable(`crypto worker exited (code ${code}); retry`));
      slot.pending.clear();
      if (this.closed || i < 0) return;
      const replacement = this.spawn();
      this.slots[i] = replacement;
      for (const [keyId, key] of this.keys) void this.loadKey(replacement, keyId, key).catch(() => undefined);
    });
    slot.worker.unref();
    return slot;
  }

  private onReply(slot: Slot, r: Reply): void {
    const p = slot.pending.get(r.id);
    if (!p) return;
    slot.pending.delete(r.id);
    // an idle worker must not keep the process alive; a busy one must
    if (slot.pending.size === 0) slot.worker.unref();
    if (r.ok) p.resolve(r.value);
    else p.reject(new CaError(r.kind, r.message));
  }

  /**
   * Sends to `slot`, or to the least busy worker. Requests made in one turn of the event loop (a
   * group commit resolving many callers at once) travel as one message per worker, answered by one
   * message: each postMessage costs the event loop ~40 µs here and the worker a wake-up.
   */
  private call(req: RequestBody, slot?: Slot, transfer: ArrayBuffer[] = []): Promise<unknown> {
    if (this.closed) return Promise.reject(internal('crypto engine is closed'));
    let s = slot ?? this.slots[0]!;
    if (slot === undefined) for (const c of this.slots) if (c.pending.size < s.pending.size) s = c;
    const id = this.nextId++;
    if (s.pending.size === 0) s.worker.ref();
    return new Promise((resolve, reject) => {
      s.pending.set(id, { resolve, reject });
      s.outbox.push({ ...req, id });
      s.transfer.push(...transfer);
      if (s.outbox.length === 1) queueMicrotask(() => this.send(s));
    });
  }

  private send(s: Slot): void {
    const batch = s.outbox;
    const transfer = s.transfer;
    s.outbox = [];
    s.transfer = [];
    s.worker.postMessage(batch.length === 1 ? batch[0] : { batch }, transfer);
  }

  private async loadKey(slot: Slot, keyId: string, key: KeyObject): Promise<void> {
    const pkcs8 = key.export({ type: 'pkcs8', format: 'der' });
    try {
      await this.call({ op: 'addKey', keyId, pkcs8 }, slot);
    } finally {
      pkcs8.fill(0);
    }
  }

  /** For tests: ends one worker as a crash would. */
  async crashWorkerForTest(index: number): Promise<void> {
    await this.slots[index]!.worker.terminate();
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
    this.keys.set(keyId, key);
    await Promise.all(this.slots.map((slot) => this.loadKey(slot, keyId, key)));
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

  async pkcs12MacKey(password: string, salt: Buffer, iterations: number): Promise<Buffer> {
    return toBuf((await this.call({ op: 'pkcs12MacKey', password, salt: transferable(salt), iterations })) as Uint8Array);
  }

  async addRaKey(keyId: string, key: KeyObject): Promise<RaKeyOps> {
    this.keys.set(keyId, key);
    await Promise.all(this.slots.map((slot) => this.loadKey(slot, keyId, key)));
    return {
      sign: async (digest, data) => {
        const copy = transferable(data);
        return toBuf((await this.call({ op: 'sign', keyId, digest, data: copy }, undefined, [copy.buffer as ArrayBuffer])) as Uint8Array);
      },
      decryptKeyTransport: async (ciphertext, expectedLength) => {
        const copy = transferable(ciphertext);
        return toBuf((await this.call({ op: 'ktDecrypt', keyId, data: copy, expectedLength }, undefined, [copy.buffer as ArrayBuffer])) as Uint8Array);
      },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}
