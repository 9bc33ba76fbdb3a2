/**
 * The tamper-evident audit log: a hash chain over the audit rows, sealed after the fact, with
 * signed anchors (issue 6, README "Audit log").
 *
 * - Writers insert plain rows (the issuance group commit included): nothing serializes them on a
 *   chain head. The sealer, one at a time across processes (the store's advisory lock), takes the
 *   committed unsealed rows in id order and gives each the next position:
 *       seq  = head.seq + 1                      (1 for the first row)
 *       hash = SHA-256(prev_hash ‖ rowBytes)     (prev_hash of seq 1: 32 zero bytes)
 *   where rowBytes is the RFC 8785 (JCS) canonical JSON, UTF-8, of
 *       {"action","actor","at","details","id","seq","target"}
 *   and `at` is UTC with microseconds (`2030-01-01T00:00:00.000000Z`). A row that commits late with
 *   a lower id simply gets a later seq: the chain order is seq, not id.
 * - Anchors: after sealing, when the head moved and the last anchor is older than
 *   `audit.anchorEvery`, the dedicated audit key (P-256, created on first use, encrypted in the key
 *   store) signs `"fleetca-audit-anchor-v1\0" ‖ u64be(seq) ‖ hash ‖ u64be(signedAt ms)` through the
 *   crypto engine.
 * - Verification walks the chain by seq in pages, recomputes every hash, checks the prev links and
 *   that seq has no gap, and checks every anchor (signature by the trusted key, hash equal to the
 *   chain's at its seq). It stops at the first broken link.
 *
 * Whoever can write the database can recompute unkeyed hashes: rows after the last anchor are
 * protected against edits only as far as the attacker does not rewrite the rest of the tail, and a
 * truncated tail after the last anchor cannot be detected at all. Anchors bound that window.
 */
import crypto from 'node:crypto';
import { conflict, internal } from '../core/errors.js';
import type { Clock } from '../core/clock.js';
import { nodeDigestFor, signatureAlgorithmFor } from '../pki/algorithms.js';
import type { CryptoEngine } from '../signing/crypto-pool.js';
import type { KeyStore } from '../signing/key-store.js';
import { generateKeyPairAsync, spkiOf } from '../signing/keys.js';
import type { Signer } from '../signing/signer.js';
import type { AuditAnchor, AuditChainLink, AuditChainRow, AuditChainStore, AuditSealSession } from './ports.js';

/** prev_hash of seq 1. */
export const AUDIT_GENESIS: Buffer = Buffer.alloc(32);

/** The key store name of the dedicated audit key (next to the issuer and service keys). */
export const AUDIT_KEY_NAME = 'audit-anchor';

const ANCHOR_CONTEXT = Buffer.from('fleetca-audit-anchor-v1\0', 'latin1');
const DEFAULT_BATCH = 2000;
const DEFAULT_PAGE = 5000;
/** Unsealed rows older than this are reported by verify (the sealer is not running?). */
export const DEFAULT_STALE_UNSEALED_MS = 5 * 60_000;

// ---------------------------------------------------------------- encoding

/**
 * Canonical JSON (RFC 8785, JCS) of a JSON value: object keys sorted by UTF-16 code units at every
 * level, no whitespace, strings and numbers as ECMAScript's JSON.stringify writes them (which is
 * what JCS specifies). Object members whose value is undefined are left out, as JSON.stringify does.
 */
export function canonicalJson(value: unknown): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw internal('canonical JSON: a non-finite number');
      return JSON.stringify(value);
    case 'string':
      return JSON.stringify(value);
    case 'object': {
      if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
      const obj = value as Record<string, unknown>;
      const keys = Object.keys(obj)
        .filter((k) => obj[k] !== undefined)
        .sort();
      return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
    }
    default:
      throw internal(`canonical JSON: cannot encode a ${typeof value}`);
  }
}

/** The bytes of a row that its link hash covers (see the file comment). */
export function auditRowBytes(row: AuditChainRow, seq: number): Buffer {
  return Buffer.from(
    canonicalJson({ action: row.action, actor: row.actor, at: row.at, details: row.details, id: row.id, seq, target: row.target }),
    'utf8',
  );
}

/** hash = SHA-256(prev_hash ‖ rowBytes). */
export function auditLinkHash(prevHash: Buffer, row: AuditChainRow, seq: number): Buffer {
  return crypto.createHash('sha256').update(prevHash).update(auditRowBytes(row, seq)).digest();
}

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

/** What an anchor's signature covers: context ‖ u64be(seq) ‖ hash ‖ u64be(signedAt in ms). */
export function anchorMessage(seq: number, hash: Buffer, signedAt: Date): Buffer {
  return Buffer.concat([ANCHOR_CONTEXT, u64(seq), hash, u64(signedAt.getTime())]);
}

// ---------------------------------------------------------------- the audit key

/** The dedicated audit key: signs anchors; its public key is what verification trusts. */
export interface AuditKeyProvider {
  /** The key's signer; when absent, created (and stored) if `create`, else null. */
  signer(create: boolean): Promise<Signer | null>;
  /** SubjectPublicKeyInfo of the stored key, or null when there is none. */
  trustedSpki(): Buffer | null;
}

/**
 * The audit key in the key store (encrypted at rest like every other key), registered with the
 * crypto engine, which does the signing. Created as P-256 on first use: the sealer creates it only
 * while it holds the sealer lock and no anchor exists yet, so concurrent processes never make two.
 */
export function auditKeyFromStore(keys: KeyStore, engine: CryptoEngine): AuditKeyProvider {
  let signer: Promise<Signer> | null = null;
  return {
    async signer(create) {
      if (signer) return signer;
      let key = keys.load(AUDIT_KEY_NAME);
      if (!key) {
        if (!create) return null;
        key = (await generateKeyPairAsync('P-256')).privateKey;
        keys.save(AUDIT_KEY_NAME, key);
      }
      signer = engine.addKey(AUDIT_KEY_NAME, key);
      signer.catch(() => (signer = null));
      return signer;
    },
    trustedSpki() {
      const key = keys.load(AUDIT_KEY_NAME);
      return key ? spkiOf(key) : null;
    },
  };
}

// ---------------------------------------------------------------- sealing, verification, export

export interface AuditChainDeps {
  store: AuditChainStore;
  clock: Clock;
  key: AuditKeyProvider;
  /** An anchor is signed when the head moved and the last anchor is at least this old (ms). */
  anchorEveryMs: number;
  /** Rows sealed per transaction. */
  batchSize?: number;
  log?: (level: 'info' | 'warn', obj: Record<string, unknown>, msg: string) => void;
}

export interface SealResult {
  /** Rows this call sealed. */
  sealed: number;
  head: { seq: number; hash: Buffer } | null;
  /** The anchor this call signed, if any. */
  anchored: AuditAnchor | null;
}

/** The first broken link of the chain. */
export interface AuditBreak {
  /** The chain position at fault (for a gap: the first missing seq). */
  seq: number;
  /** The row at fault, or the row after a gap; null when the fault is an anchor beyond the chain. */
  id: number | null;
  kind: 'gap' | 'duplicate' | 'prevHash' | 'hash' | 'anchor';
  problem: string;
}

export interface AuditVerifyReport {
  ok: boolean;
  /** Sealed rows checked (up to the break, when there is one). */
  rows: number;
  /** Anchors checked and found good. */
  anchors: number;
  head: { seq: number; hash: string } | null;
  lastAnchor: { seq: number; hash: string; signedAt: string } | null;
  /** SHA-256 of the trusted audit key's SubjectPublicKeyInfo (hex), to compare with a copy kept elsewhere. */
  keySha256: string | null;
  /** Rows not yet sealed whose time is older than the stale threshold. */
  staleUnsealed: { count: number; oldest: string | null };
  broken: AuditBreak | null;
}

/** One line of `fleetca audit export`. */
export interface AuditExportLine {
  id: number;
  seq: number;
  at: string;
  actor: string;
  action: string;
  target: string | null;
  details: unknown;
  prev_hash: string;
  hash: string;
}

const hex = (b: Buffer | null) => (b ? b.toString('hex') : null);

export class AuditChain {
  private readonly batch: number;
  private keyWarned = false;

  constructor(private readonly deps: AuditChainDeps) {
    if (!(deps.anchorEveryMs > 0)) throw internal('audit.anchorEvery must be positive');
    this.batch = deps.batchSize ?? DEFAULT_BATCH;
    if (!Number.isInteger(this.batch) || this.batch < 1) throw internal('audit sealer batch size must be a positive integer');
  }

  /**
   * Seals every committed unsealed row, then anchors the head when due. `wait` false: returns
   * null at once if another process is sealing (it will seal these rows too).
   */
  seal(opts: { wait: boolean } = { wait: false }): Promise<SealResult | null> {
    return this.deps.store.auditSealSession(opts.wait, async (s) => {
      let head = await s.head();
      if (head && !(Buffer.isBuffer(head.hash) && head.hash.length === 32)) throw conflict(`the audit chain head (seq ${head.seq}) has no valid hash; run \`fleetca audit verify\``);
      let sealed = 0;
      // rows committed during this pass beyond maxId, or below the id range already passed, are
      // left to the next pass
      const span = await s.unsealedSpan();
      for (let from = span?.minId ?? 1; span && from <= span.maxId; from += this.batch) {
        const rows = await s.unsealed(from, from + this.batch);
        if (rows.length === 0) continue;
        let prev = head?.hash ?? AUDIT_GENESIS;
        let seq = head?.seq ?? 0;
        const links: AuditChainLink[] = [];
        for (const row of rows) {
          seq++;
          const hash = auditLinkHash(prev, row, seq);
          links.push({ id: row.id, seq, prevHash: prev, hash });
          prev = hash;
        }
        await s.seal(links, this.deps.clock.now());
        head = { seq, hash: prev };
        sealed += rows.length;
      }
      const anchored = head ? await this.anchorIfDue(s, head) : null;
      return { sealed, head, anchored };
    });
  }

  /** Signs the head when it moved since the last anchor and that anchor is `anchorEveryMs` old. */
  private async anchorIfDue(s: AuditSealSession, head: { seq: number; hash: Buffer }): Promise<AuditAnchor | null> {
    const last = await s.latestAnchor();
    if (last && last.seq >= head.seq) return null;
    const now = this.deps.clock.now();
    if (last && now.getTime() - last.signedAt.getTime() < this.deps.anchorEveryMs) return null;
    // a new key only for a chain that has no anchor yet: anchors by a key this process does not
    // hold must not be followed by anchors of a fresh one (verification trusts one key)
    const signer = await this.deps.key.signer(last === null);
    if (!signer || (last && !signer.spkiDer.equals(last.keySpki))) {
      if (!this.keyWarned) {
        this.keyWarned = true;
        this.deps.log?.(
          'warn',
          { key: AUDIT_KEY_NAME, anchorKeySha256: last ? crypto.createHash('sha256').update(last.keySpki).digest('hex') : null },
          signer ? 'the audit key in the data dir is not the one that signed the existing anchors: not anchoring' : 'no audit key in the data dir while anchors exist: not anchoring',
        );
      }
      return null;
    }
    const anchor: AuditAnchor = {
      seq: head.seq,
      hash: head.hash,
      signedAt: now,
      signature: await signer.sign(anchorMessage(head.seq, head.hash, now)),
      keySpki: signer.spkiDer,
    };
    await s.saveAnchor(anchor);
    this.deps.log?.('info', { seq: anchor.seq }, 'audit chain anchored');
    return anchor;
  }

  /** Walks the whole chain (see the file comment); stops at the first broken link. */
  verify(opts: { staleAfterMs?: number; pageSize?: number } = {}): Promise<AuditVerifyReport> {
    const trusted = this.deps.key.trustedSpki();
    const publicKey = trusted ? crypto.createPublicKey({ key: trusted, format: 'der', type: 'spki' }) : null;
    const digest = trusted ? nodeDigestFor(signatureAlgorithmFor(trusted)) : null;
    const anchorProblem = (a: AuditAnchor, chainHash: Buffer): string | null => {
      if (!trusted || !publicKey) return 'there is no audit key in the data dir to check its signature';
      if (!a.keySpki.equals(trusted)) return 'it is signed by a key that is not this CA\'s audit key';
      if (!crypto.verify(digest, anchorMessage(a.seq, a.hash, a.signedAt), publicKey, a.signature)) return 'its signature does not verify (forged or altered anchor)';
      if (!a.hash.equals(chainHash)) return 'the signed hash differs from the chain\'s hash at this seq: the chain up to here was rewritten';
      return null;
    };
    const staleBefore = new Date(this.deps.clock.now().getTime() - (opts.staleAfterMs ?? DEFAULT_STALE_UNSEALED_MS));

    return this.deps.store.auditChainSnapshot(async (snap) => {
      const anchors = await snap.anchors();
      let ai = 0;
      let expected = 1;
      let prev: Buffer = AUDIT_GENESIS;
      let rows = 0;
      let goodAnchors = 0;
      let broken: AuditBreak | null = null;
      walk: for await (const page of snap.rows(opts.pageSize ?? DEFAULT_PAGE)) {
        for (const r of page) {
          const seq = r.seq!;
          if (seq !== expected) {
            broken =
              seq > expected
                ? { seq: expected, id: r.id, kind: 'gap', problem: `seq ${expected}${seq - 1 > expected ? `..${seq - 1}` : ''} missing (rows deleted): the next row is seq ${seq}, id ${r.id}` }
                : { seq, id: r.id, kind: 'duplicate', problem: `seq ${seq} appears twice (id ${r.id})` };
            break walk;
          }
          if (ai < anchors.length && anchors[ai]!.seq < seq) {
            broken = { seq: anchors[ai]!.seq, id: null, kind: 'anchor', problem: `an anchor names seq ${anchors[ai]!.seq}, which is not in the chain` };
            break walk;
          }
          if (!r.prevHash?.equals(prev)) {
            broken = {
              seq,
              id: r.id,
              kind: 'prevHash',
              problem: seq === 1 ? 'prev_hash of the first row is not the genesis value (32 zero bytes)' : `prev_hash does not match the hash of seq ${seq - 1} (that row or this link was changed)`,
            };
            break walk;
          }
          const hash = auditLinkHash(prev, r, seq);
          if (!r.hash?.equals(hash)) {
            broken = { seq, id: r.id, kind: 'hash', problem: 'hash does not match the row\'s contents (the row was edited)' };
            break walk;
          }
          for (; ai < anchors.length && anchors[ai]!.seq === seq; ai++) {
            const p = anchorProblem(anchors[ai]!, hash);
            if (p) {
              broken = { seq, id: r.id, kind: 'anchor', problem: `the anchor at seq ${seq} is broken: ${p}` };
              break walk;
            }
            goodAnchors++;
          }
          prev = hash;
          expected++;
          rows++;
        }
      }
      if (!broken && ai < anchors.length) {
        const a = anchors[ai]!;
        broken = { seq: a.seq, id: null, kind: 'anchor', problem: `an anchor names seq ${a.seq} but the chain ends at seq ${expected - 1}: rows were removed from its end` };
      }
      const stale = await snap.staleUnsealed(staleBefore);
      const last = anchors.length > 0 ? anchors[anchors.length - 1]! : null;
      return {
        ok: broken === null,
        rows,
        anchors: goodAnchors,
        head: rows > 0 ? { seq: expected - 1, hash: prev.toString('hex') } : null,
        lastAnchor: last ? { seq: last.seq, hash: last.hash.toString('hex'), signedAt: last.signedAt.toISOString() } : null,
        keySha256: trusted ? crypto.createHash('sha256').update(trusted).digest('hex') : null,
        staleUnsealed: { count: stale.count, oldest: stale.oldest?.toISOString() ?? null },
        broken,
      };
    });
  }

  /** Sealed rows with since <= at < until, in chain order, as export lines. */
  async *export(range: { since: Date; until?: Date }, pageSize = DEFAULT_PAGE): AsyncGenerator<AuditExportLine> {
    for await (const page of this.deps.store.auditExport(range, pageSize)) {
      for (const r of page) {
        yield {
          id: r.id,
          seq: r.seq!,
          at: r.at,
          actor: r.actor,
          action: r.action,
          target: r.target,
          details: r.details,
          prev_hash: hex(r.prevHash) ?? '',
          hash: hex(r.hash) ?? '',
        };
      }
    }
  }
}
