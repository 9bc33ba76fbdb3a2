/**
 * The OCSP responder of the core (RFC 6960, RFC 5019 profile). Each issuing CA answers through its
 * own delegated responder certificate (RFC 6960 §4.2.2.2), which travels in every response.
 *
 * Where an answer comes from, fastest first:
 * 1. the in-memory cache (bounded LRU; a status change evicts its serial in every instance);
 * 2. the pre-signed response stored in the database (single SHA-1 CertID, no nonce: RFC 5019);
 * 3. a live signature, bounded in concurrency; stored back (when it is the canonical SHA-1 answer)
 *    and cached. Requests with a nonce or several CertIDs are always signed live, and their nonce
 *    echoed (RFC 8954) — never refused for carrying one.
 * Status reads of concurrent requests are gathered into one query.
 */
import { X509Certificate } from 'node:crypto';
import { CaError } from '../core/errors.js';
import type { Clock } from '../core/clock.js';
import {
  assembleOcspResponse,
  decodeOcspRequest,
  encodeCertId,
  encodeOcspError,
  encodeResponseData,
  issuerHashes,
  keyHashOfSpki,
  type OcspCertId,
  type OcspCertStatus,
  type OcspErrorStatus,
  type OcspHash,
} from '../pki/ocsp.js';
import { certificateParts } from '../pki/cert-parts.js';
import type { Signer } from '../signing/signer.js';
import { hexToSerialBytes } from './serials.js';
import type { IssuerRuntime } from './issuers.js';
import type { OcspCertState, OcspResponseRow, OcspStore } from './ports.js';

export interface OcspSettings {
  /** Response validity (nextUpdate − thisUpdate), ms. */
  validity: number;
  cacheEntries: number;
  liveSignatures: number;
  liveQueue: number;
  presignBatch: number;
}

/** A delegated responder: its certificate and key, for one issuing CA. */
export interface OcspResponderKey {
  issuer: IssuerRuntime;
  certDer: Buffer;
  signer: Signer;
}

export interface OcspDeps {
  store: OcspStore;
  clock: Clock;
  settings: OcspSettings;
  log: (level: 'warn' | 'error', obj: Record<string, unknown>, msg: string) => void;
}

/** What the adapter sends: the DER, and the times for the HTTP caching headers of a successful answer. */
export interface OcspAnswer {
  der: Buffer;
  status: 'successful' | OcspErrorStatus;
  thisUpdate?: Date;
  nextUpdate?: Date;
  /** Signed for this request only (nonce): not to be cached by HTTP caches. */
  live: boolean;
  /** Where it came from, for metrics. */
  source: 'cache' | 'stored' | 'signed' | 'live' | 'error';
}

interface Responder {
  issuer: IssuerRuntime;
  certDer: Buffer;
  signer: Signer;
  keyHash: Buffer;
  hashes: Record<OcspHash, { nameHash: Buffer; keyHash: Buffer }>;
  notAfter: Date;
}

interface CacheEntry {
  /** Its key in the cache (hash|serial). */
  key: string;
  certIdDer: Buffer;
  der: Buffer;
  thisUpdate: Date;
  nextUpdate: Date;
  /** What a hit returns: one object per entry, so adapters may key derived data (headers) on it. */
  answer: OcspAnswer;
  /** nextUpdate less the freshness margin, ms: not served from memory from then on. */
  staleAtMs: number;
  /** The cache's insertion count when the entry last moved to the recent end of the LRU order. */
  gen: number;
  /** Left the cache (evicted, replaced, LRU): the request-bytes index must not serve it any more. */
  dropped: boolean;
  /** The latest request bytes indexed to it, removed from the index with it (memory stays bounded). */
  requestKey: string | null;
}

/** Responses are not served from the cache or the database in their last minute. */
const FRESH_MARGIN_MS = 60_000;
/** Requests longer than this are not indexed by their bytes (a single CertID without a nonce is ~100 bytes). */
const MAX_INDEXED_REQUEST = 512;
/** "unknown" answers (serials we never issued) are cached this long at most. */
const UNKNOWN_TTL_MS = 5 * 60_000;

export class OcspService {
  private responders: Responder[] = [];
  private readonly cache = new Map<string, CacheEntry>();
  /**
   * The exact bytes of requests that were answered from the cache (latin1 string of the DER) →
   * that entry: a repeated request (the common case: a client or NAC asking about the same
   * certificate again) is answered without decoding it. The bytes determine the CertID and the
   * absence of a nonce, so they determine the answer. Bounded like the cache; an entry that left
   * the cache is `dropped` and no longer served through here.
   */
  private readonly byRequest = new Map<string, CacheEntry>();
  /** Insertions and LRU moves so far (CacheEntry.gen). */
  private gen = 0;
  /** Bumped by every eviction: a read that started before one does not fill the cache. */
  private epoch = 0;
  private pending = new Map<string, Array<{ resolve: (s: OcspCertState | null) => void; reject: (e: unknown) => void }>>();
  private flushScheduled = false;
  private liveInFlight = 0;
  private liveWaiters: Array<() => void> = [];
  private writeBehind: OcspResponseRow[] = [];
  private readonly refreshing = new Set<string>();
  private refreshScheduled = false;
  private running: Promise<void> = Promise.resolve();
  private writing = false;

  constructor(private readonly deps: OcspDeps, responders: OcspResponderKey[]) {
    for (const r of responders) this.setResponder(r);
  }

  /** Adds or replaces (after a renewal) the responder of an issuer. */
  setResponder(r: OcspResponderKey): void {
    const parts = certificateParts(r.certDer);
    if (!r.signer.spkiDer.equals(parts.spkiDer)) throw new Error(`the OCSP key of ${r.issuer.record.name} does not match its responder certificate`);
    const resp: Responder = {
      issuer: r.issuer,
      certDer: r.certDer,
      signer: r.signer,
      keyHash: keyHashOfSpki(parts.spkiDer),
      hashes: issuerHashes(r.issuer.subjectDer, r.issuer.spkiDer),
      notAfter: new Date(new X509Certificate(r.certDer).validTo),
    };
    this.responders = [...this.responders.filter((x) => x.issuer.record.id !== r.issuer.record.id), resp];
    this.evictAll();
  }

  /** The responder certificates in use, by issuer name. */
  responderCertificates(): Map<string, { certDer: Buffer; notAfter: Date }> {
    return new Map(this.responders.map((r) => [r.issuer.record.name, { certDer: r.certDer, notAfter: r.notAfter }]));
  }

  /** A status changed (NOTIFY from any process): forget what we had for the serial. */
  evict(serial: string): void {
    this.epoch++;
    for (const h of ['sha1', 'sha256', 'sha384', 'sha512'] as const) this.drop(`${h}|${serial}`);
  }

  /** After a lost database notification channel: nothing cached can be trusted any more. */
  evictAll(): void {
    this.epoch++;
    // no entry is reachable any more (the index goes too): none needs marking `dropped`
    this.cache.clear();
    this.byRequest.clear();
  }

  get cacheSize(): number {
    return this.cache.size;
  }

  /**
   * Answers one DER OCSPRequest. Never throws: every failure is an OCSP error status. A cached
   * answer (the hot path) and every error before a lookup are returned synchronously.
   */
  respond(body: Buffer): OcspAnswer | Promise<OcspAnswer> {
    const bytes = body.length <= MAX_INDEXED_REQUEST ? body.toString('latin1') : null;
    if (bytes !== null) {
      const e = this.byRequest.get(bytes);
      if (e !== undefined && !e.dropped && e.staleAtMs > this.deps.clock.now().getTime()) {
        this.touch(e);
        return e.answer;
      }
    }
    let req;
    try {
      req = decodeOcspRequest(body);
    } catch (e) {
      return this.error('malformedRequest', { err: (e as Error).message }, 'malformed OCSP request');
    }
    const first = req.certIds[0]!;
    for (const id of req.certIds) {
      if (id.hash === null) return this.error('malformedRequest', { hashOid: id.hashOid }, 'OCSP request with an unsupported CertID hash');
    }
    const responder = this.responderFor(first);
    if (!responder || (req.certIds.length > 1 && req.certIds.some((id) => this.responderFor(id) !== responder))) {
      return this.error('unauthorized', { issuerNameHash: first.issuerNameHash.toString('hex') }, 'OCSP request for an issuer this responder does not serve');
    }
    const single = req.certIds.length === 1 && req.nonce === null;
    if (single) {
      const hit = this.cached(first);
      if (hit) {
        if (bytes !== null && this.byRequest.get(bytes) !== hit) {
          this.byRequest.delete(bytes);
          this.byRequest.set(bytes, hit);
          hit.requestKey = bytes;
          if (this.byRequest.size > this.deps.settings.cacheEntries) this.byRequest.delete(this.byRequest.keys().next().value!);
        }
        return hit.answer;
      }
    }
    const work = single ? this.single(responder, first) : this.live(responder, req.certIds, req.nonce);
    return work.catch((e: unknown) => {
      if (e instanceof CaError && e.kind === 'unavailable') return this.error('tryLater', { err: e.message }, 'OCSP: database unavailable');
      if (e instanceof Busy) return this.error('tryLater', {}, 'OCSP: too many live signatures waiting');
      this.deps.log('error', { err: (e as Error).message }, 'OCSP: internal error');
      return { der: encodeOcspError('internalError'), status: 'internalError' as const, live: false, source: 'error' as const };
    });
  }

  /** The cached entry for exactly this CertID, if fresh. */
  private cached(id: OcspCertId): CacheEntry | null {
    if (id.serialHex === null) return null;
    const hit = this.cache.get(`${id.hash}|${id.serialHex}`);
    if (!hit || hit.staleAtMs <= this.deps.clock.now().getTime() || !hit.certIdDer.equals(id.der)) return null;
    this.touch(hit);
    return hit;
  }

  /**
   * LRU, approximately: a hit moves its entry to the recent end only when it is in the older
   * half of the cache (more than half the capacity inserted or moved since it was), so a hot entry
   * costs one lookup per hit, not a delete and an insert; eviction order stays least recently used
   * to within half the capacity.
   */
  private touch(e: CacheEntry): void {
    if (this.gen - e.gen <= this.deps.settings.cacheEntries >> 1 || this.cache.get(e.key) !== e) return;
    this.cache.delete(e.key);
    this.cache.set(e.key, e);
    e.gen = ++this.gen;
  }

  /** Removes an entry from the cache, and so from the request-bytes index. */
  private drop(key: string): void {
    const e = this.cache.get(key);
    if (e === undefined) return;
    e.dropped = true;
    this.cache.delete(key);
    if (e.requestKey !== null && this.byRequest.get(e.requestKey) === e) this.byRequest.delete(e.requestKey);
  }

  /**
   * A status changed: sign and store the serial's new response now (the change deleted the old
   * one), gathering the serials of the same turn of the event loop. Failures are only logged: the
   * next request signs live, and the pre-signer's pass stores it.
   */
  refreshSoon(serial: string): void {
    this.refreshing.add(serial);
    if (this.refreshScheduled) return;
    this.refreshScheduled = true;
    setImmediate(() => {
      this.refreshScheduled = false;
      const serials = [...this.refreshing];
      this.refreshing.clear();
      this.running = this.running
        .then(() => this.refresh(serials))
        .catch((e: unknown) => this.deps.log('warn', { err: (e as Error).message, serials: serials.length }, 'OCSP: re-signing after a status change failed'));
    });
  }

  private async refresh(serials: string[]): Promise<void> {
    const now = this.now();
    const states = await this.deps.store.ocspStates(serials);
    const rows = await Promise.all(
      states.flatMap((s) => {
        const r = this.responders.find((x) => x.issuer.record.id === s.issuerId);
        return r && s.notAfter.getTime() > now.getTime() ? [this.signStored(r, s, now)] : [];
      }),
    );
    await this.deps.store.saveOcspResponses(rows);
  }

  /**
   * Signs (or refreshes) the stored responses of every live certificate whose response is missing
   * or past half its validity. Returns how many it stored.
   */
  async presign(): Promise<number> {
    let stored = 0;
    for (const r of this.responders) {
      let after = '';
      for (;;) {
        const now = this.now();
        const refreshBefore = new Date(now.getTime() + this.deps.settings.validity / 2);
        const due = await this.deps.store.ocspDue(r.issuer.record.id, now, refreshBefore, after, this.deps.settings.presignBatch);
        if (due.length === 0) break;
        const rows = await Promise.all(due.map((s) => this.signStored(r, s, now)));
        stored += await this.deps.store.saveOcspResponses(rows);
        after = due[due.length - 1]!.serial;
      }
    }
    return stored;
  }

  // ---------------------------------------------------------------- internals

  private now(): Date {
    const d = this.deps.clock.now();
    d.setUTCMilliseconds(0);
    return d;
  }

  private error(status: OcspErrorStatus, obj: Record<string, unknown>, msg: string): OcspAnswer {
    this.deps.log('warn', { ocspStatus: status, ...obj }, msg);
    return { der: encodeOcspError(status), status, live: false, source: 'error' };
  }

  private responderFor(id: OcspCertId): Responder | undefined {
    const h = id.hash!;
    return this.responders.find((r) => r.hashes[h].nameHash.equals(id.issuerNameHash) && r.hashes[h].keyHash.equals(id.issuerKeyHash));
  }

  /** One CertID, no nonce: cache, then the stored response, then a live signature. */
  private async single(r: Responder, id: OcspCertId): Promise<OcspAnswer> {
    const serial = id.serialHex;
    const nowMs = this.deps.clock.now().getTime();
    const key = serial !== null ? `${id.hash}|${serial}` : null;
    const epoch = this.epoch;
    const state = serial !== null ? await this.load(serial) : null;
    const mine = state !== null && state.issuerId === r.issuer.record.id ? state : null;
    if (mine?.stored && id.hash === 'sha1' && mine.stored.nextUpdate.getTime() - FRESH_MARGIN_MS > nowMs) {
      const canonical = encodeCertId('sha1', r.hashes.sha1.nameHash, r.hashes.sha1.keyHash, hexToSerialBytes(mine.serial));
      if (canonical.equals(id.der)) {
        const e = { certIdDer: id.der, der: mine.stored.der, thisUpdate: mine.stored.thisUpdate, nextUpdate: mine.stored.nextUpdate };
        this.remember(key!, e, epoch);
        return { der: e.der, status: 'successful', thisUpdate: e.thisUpdate, nextUpdate: e.nextUpdate, live: false, source: 'stored' };
      }
    }
    const now = this.now();
    const status = statusOf(mine);
    const nextUpdate = new Date(now.getTime() + (mine ? this.deps.settings.validity : Math.min(this.deps.settings.validity, UNKNOWN_TTL_MS)));
    const der = await this.bounded(() => this.sign(r, [{ certIdDer: id.der, status, thisUpdate: now, nextUpdate }], null, now));
    if (key !== null) this.remember(key, { certIdDer: id.der, der, thisUpdate: now, nextUpdate }, epoch);
    if (mine && id.hash === 'sha1') {
      const canonical = encodeCertId('sha1', r.hashes.sha1.nameHash, r.hashes.sha1.keyHash, hexToSerialBytes(mine.serial));
      if (canonical.equals(id.der)) this.storeLater({ serial: mine.serial, status: mine.status, reason: mine.reason, thisUpdate: now, nextUpdate, der });
    }
    return { der, status: 'successful', thisUpdate: now, nextUpdate, live: false, source: 'signed' };
  }

  /** Several CertIDs or a nonce: one response signed for this request. */
  private async live(r: Responder, ids: OcspCertId[], nonce: Buffer | null): Promise<OcspAnswer> {
    const states = await Promise.all(ids.map((id) => (id.serialHex !== null ? this.load(id.serialHex) : Promise.resolve(null))));
    const now = this.now();
    const nextUpdate = new Date(now.getTime() + this.deps.settings.validity);
    const unknownUntil = new Date(now.getTime() + Math.min(this.deps.settings.validity, UNKNOWN_TTL_MS));
    const singles = ids.map((id, i) => {
      const s = states[i] ?? null;
      const mine = s !== null && s.issuerId === r.issuer.record.id ? s : null;
      return { certIdDer: id.der, status: statusOf(mine), thisUpdate: now, nextUpdate: mine ? nextUpdate : unknownUntil };
    });
    const der = await this.bounded(() => this.sign(r, singles, nonce, now));
    return { der, status: 'successful', thisUpdate: now, nextUpdate, live: nonce !== null, source: 'live' };
  }

  private async sign(r: Responder, responses: Array<{ certIdDer: Buffer; status: OcspCertStatus; thisUpdate: Date; nextUpdate: Date }>, nonce: Buffer | null, producedAt: Date): Promise<Buffer> {
    const tbs = encodeResponseData({ responderKeyHash: r.keyHash, producedAt, responses, nonce });
    return assembleOcspResponse(tbs, r.signer.algorithm, await r.signer.sign(tbs), [r.certDer]);
  }

  private async signStored(r: Responder, s: OcspCertState, now: Date): Promise<OcspResponseRow> {
    const nextUpdate = new Date(now.getTime() + this.deps.settings.validity);
    const certIdDer = encodeCertId('sha1', r.hashes.sha1.nameHash, r.hashes.sha1.keyHash, hexToSerialBytes(s.serial));
    const der = await this.sign(r, [{ certIdDer, status: statusOf(s), thisUpdate: now, nextUpdate }], null, now);
    return { serial: s.serial, status: s.status, reason: s.reason, thisUpdate: now, nextUpdate, der };
  }

  private remember(key: string, e: Pick<CacheEntry, 'certIdDer' | 'der' | 'thisUpdate' | 'nextUpdate'>, epoch: number): void {
    // an eviction since the read began means the status may have changed under us
    if (epoch !== this.epoch || this.deps.settings.cacheEntries === 0) return;
    this.drop(key);
    const answer: OcspAnswer = { der: e.der, status: 'successful', thisUpdate: e.thisUpdate, nextUpdate: e.nextUpdate, live: false, source: 'cache' };
    this.cache.set(key, {
      key,
      // the CertID is a view into the request's socket buffer (64 KiB): keep a copy, not the buffer
      certIdDer: Buffer.from(e.certIdDer),
      der: e.der,
      thisUpdate: e.thisUpdate,
      nextUpdate: e.nextUpdate,
      answer,
      staleAtMs: e.nextUpdate.getTime() - FRESH_MARGIN_MS,
      gen: ++this.gen,
      dropped: false,
      requestKey: null,
    });
    while (this.cache.size > this.deps.settings.cacheEntries) this.drop(this.cache.keys().next().value!);
  }

  /** Status reads of the requests that arrive in the same turn of the event loop: one query. */
  private load(serial: string): Promise<OcspCertState | null> {
    return new Promise((resolve, reject) => {
      const waiting = this.pending.get(serial);
      if (waiting) waiting.push({ resolve, reject });
      else this.pending.set(serial, [{ resolve, reject }]);
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flushLoads());
      }
    });
  }

  private flushLoads(): void {
    this.flushScheduled = false;
    const batch = this.pending;
    this.pending = new Map();
    this.deps.store.ocspStates([...batch.keys()]).then(
      (states) => {
        const by = new Map(states.map((s) => [s.serial, s]));
        for (const [serial, ws] of batch) for (const w of ws) w.resolve(by.get(serial) ?? null);
      },
      (err: unknown) => {
        for (const ws of batch.values()) for (const w of ws) w.reject(err);
      },
    );
  }

  /** Runs a live signature within the concurrency bound; Busy when the queue is full. */
  private async bounded<T>(fn: () => Promise<T>): Promise<T> {
    if (this.liveInFlight >= this.deps.settings.liveSignatures) {
      if (this.liveWaiters.length >= this.deps.settings.liveQueue) throw new Busy();
      await new Promise<void>((resolve) => this.liveWaiters.push(resolve));
    } else {
      this.liveInFlight++;
    }
    try {
      return await fn();
    } finally {
      const next = this.liveWaiters.shift();
      if (next) next();
      else this.liveInFlight--;
    }
  }

  /** Stores live-signed canonical responses in the background, in batches. */
  private storeLater(row: OcspResponseRow): void {
    this.writeBehind.push(row);
    if (this.writing) return;
    this.writing = true;
    setImmediate(() => void this.drainWrites());
  }

  private async drainWrites(): Promise<void> {
    try {
      while (this.writeBehind.length > 0) {
        const rows = this.writeBehind.splice(0, this.deps.settings.presignBatch);
        await this.deps.store.saveOcspResponses(rows).catch((e: unknown) => this.deps.log('warn', { err: (e as Error).message }, 'OCSP: storing signed responses failed'));
      }
    } finally {
      this.writing = false;
    }
  }

  /** Waits for background writes (tests, shutdown). */
  async flush(): Promise<void> {
    while (this.writing || this.writeBehind.length > 0 || this.refreshScheduled) await new Promise((r) => setTimeout(r, 5));
    await this.running;
  }
}

class Busy extends Error {}

/** The CertStatus of a certificate as this responder's issuer knows it; null: never issued here. */
function statusOf(s: Pick<OcspCertState, 'status' | 'revokedAt' | 'reason'> | null): OcspCertStatus {
  if (s === null) return { type: 'unknown' };
  if (s.status === 'valid') return { type: 'good' };
  // RFC 6960 §2.2: a certificate on hold is "revoked" with reason certificateHold
  return { type: 'revoked', revokedAt: s.revokedAt!, ...(s.reason ? { reason: s.reason } : {}) };
}

/** The OCSP settings of ca.yaml. */
export function ocspSettingsOf(c: { validity: number; cacheEntries: number; liveSignatures: number; liveQueue: number; presignBatch: number }): OcspSettings {
  return { validity: c.validity, cacheEntries: c.cacheEntries, liveSignatures: c.liveSignatures, liveQueue: c.liveQueue, presignBatch: c.presignBatch };
}
