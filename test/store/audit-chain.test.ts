/**
 * The tamper-evident audit chain on a real database: sealing, anchors, concurrent sealers, late
 * commits, and verify catching rows edited and deleted directly in SQL.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/core/clock.js';
import { AUDIT_GENESIS, AuditChain, anchorMessage, auditKeyFromStore, auditLinkHash, canonicalJson } from '../../src/ca/audit-chain.js';
import type { AuditChainRow } from '../../src/ca/ports.js';
import { InlineCryptoEngine } from '../../src/signing/crypto-pool.js';
import { FileKeyStore } from '../../src/signing/key-store.js';
import { generateKeyPair, spkiOf } from '../../src/signing/keys.js';
import { PgStore } from '../../src/store/pg-store.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { T0, at } from './fixtures.js';

const HOUR = 3600_000;
let keyDir: string;
const keys = () => new FileKeyStore(keyDir, 'test-passphrase');

beforeAll(() => {
  keyDir = mkdtempSync(path.join(os.tmpdir(), 'fleetca-audit-keys-'));
});
afterAll(() => rmSync(keyDir, { recursive: true, force: true }));

/** A fresh database with a PgStore, a raw pool (the "attacker"), a fake clock and a chain. */
interface Ctx {
  db: TestDatabase;
  store: PgStore;
  pool: pg.Pool;
  clock: FakeClock;
  chain: AuditChain;
}
const open: Ctx[] = [];
async function fresh(): Promise<Ctx> {
  const db = await createTestDatabase();
  const store = await PgStore.open({ connectionString: db.connectionString });
  const pool = new pg.Pool({ connectionString: db.connectionString, max: 4 });
  const clock = new FakeClock(T0);
  const chain = new AuditChain({ store, clock, key: auditKeyFromStore(keys(), new InlineCryptoEngine()), anchorEveryMs: HOUR, batchSize: 64 });
  const ctx = { db, store, pool, clock, chain };
  open.push(ctx);
  return ctx;
}
afterEach(async () => {
  for (const c of open.splice(0)) {
    await c.pool.end();
    await c.store.close();
    await c.db.drop();
  }
});

let n = 0;
/** `count` rows with nested details whose keys are deliberately out of order. */
async function append(store: PgStore, count: number, when = T0): Promise<void> {
  await store.appendAudit(
    Array.from({ length: count }, () => ({
      at: new Date(when.getTime() + n),
      actor: `actor-${n % 3}`,
      action: 'certificate.issued',
      target: `serial-${++n}`,
      details: { z: n, a: { y: [1, 'two', { d: null, c: true }], b: 'ü\u2028"' } },
    })),
  );
}

async function seqOf(pool: pg.Pool, where: string, values: unknown[] = []): Promise<{ id: number; seq: number }> {
  const r = await pool.query<{ id: string; seq: string }>(`SELECT id::text AS id, seq::text AS seq FROM audit_log WHERE ${where}`, values);
  return { id: Number(r.rows[0]!.id), seq: Number(r.rows[0]!.seq) };
}

describe('canonical JSON', () => {
  it('keys sorted at every level, whatever the input order; JCS escapes and numbers', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { y: 1, x: 2 }], c: null } })).toBe('{"a":{"c":null,"d":[3,{"x":2,"y":1}]},"b":1}');
    expect(canonicalJson({ a: { c: null, d: [3, { x: 2, y: 1 }] }, b: 1 })).toBe(canonicalJson({ b: 1, a: { d: [3, { y: 1, x: 2 }], c: null } }));
    // RFC 8785 §3.2.3: UTF-16 code-unit order ("\u20ac" < "\ud83d…"), and its number forms
    expect(canonicalJson({ '\u{1F600}': 1, '\u20ac': 2, '\r': 3, '1': 4 })).toBe('{"\\r":3,"1":4,"€":2,"😀":1}');
    expect(canonicalJson([1e21, 0.000001, -0, 1.5e-7, 'a\u2028b'])).toBe('[1e+21,0.000001,0,1.5e-7,"a\u2028b"]');
    expect(() => canonicalJson({ x: Number.NaN })).toThrow(/non-finite/);
  });
});

describe('sealing and verifying', () => {
  it('seal/every row gets the next seq, chained from the genesis; the first anchor is signed at once', async () => {
    const { store, pool, chain } = await fresh();
    await append(store, 150);
    const r = await chain.seal();
    expect(r).toMatchObject({ sealed: 150, head: { seq: 150 } });
    expect(r!.anchored).toMatchObject({ seq: 150 });

    const rows = await pool.query<{ seq: string; prev_hash: Buffer; hash: Buffer }>('SELECT seq::text AS seq, prev_hash, hash FROM audit_log ORDER BY audit_log.seq');
    expect(rows.rows.map((x) => Number(x.seq))).toEqual(Array.from({ length: 150 }, (_, i) => i + 1));
    expect(rows.rows[0]!.prev_hash.equals(AUDIT_GENESIS)).toBe(true);
    for (let i = 1; i < rows.rows.length; i++) expect(rows.rows[i]!.prev_hash.equals(rows.rows[i - 1]!.hash)).toBe(true);

    const report = await chain.verify();
    expect(report).toMatchObject({ ok: true, rows: 150, anchors: 1, broken: null, head: { seq: 150, hash: rows.rows[149]!.hash.toString('hex') } });
    expect(report.keySha256).toMatch(/^[0-9a-f]{64}$/);
    // nothing new: nothing sealed, no new anchor
    expect(await chain.seal()).toMatchObject({ sealed: 0, anchored: null });
  });

  it('anchors/a moved head is signed again only once anchorEvery has passed', async () => {
    const { store, pool, clock, chain } = await fresh();
    await append(store, 3);
    expect((await chain.seal())!.anchored).toMatchObject({ seq: 3 });
    await append(store, 2);
    clock.advance(HOUR - 1);
    expect(await chain.seal()).toMatchObject({ sealed: 2, anchored: null });
    clock.advance(1);
    expect(await chain.seal()).toMatchObject({ sealed: 0, anchored: { seq: 5 } });
    const a = await pool.query<{ seq: string }>('SELECT seq::text FROM audit_anchors ORDER BY audit_anchors.seq');
    expect(a.rows.map((x) => x.seq)).toEqual(['3', '5']);
    expect(await chain.verify()).toMatchObject({ ok: true, rows: 5, anchors: 2, lastAnchor: { seq: 5 } });
  });

  it('concurrent sealers/two processes sealing while writers insert never give one seq twice, and the chain verifies', async () => {
    const { db, store, pool, clock, chain } = await fresh();
    // a second "process": its own pool and chain object
    const other = await PgStore.open({ connectionString: db.connectionString });
    try {
      const chain2 = new AuditChain({ store: other, clock, key: auditKeyFromStore(keys(), new InlineCryptoEngine()), anchorEveryMs: HOUR, batchSize: 16 });
      let writing = true;
      const writers = (async () => {
        for (let i = 0; i < 40; i++) await Promise.all([append(store, 7), append(other, 5)]);
        writing = false;
      })();
      const sealer = async (c: AuditChain, wait: boolean) => {
        let sealed = 0;
        while (writing) sealed += (await c.seal({ wait }))?.sealed ?? 0;
        return sealed;
      };
      const [, s1, s2, s3] = await Promise.all([writers, sealer(chain, true), sealer(chain2, true), sealer(chain2, false)]);
      // both "processes" took turns at sealing
      expect(s1).toBeGreaterThan(0);
      expect(s2 + s3).toBeGreaterThan(0);
      await chain.seal({ wait: true });
      const s = await pool.query<{ n: string; distinct_seq: string; max_seq: string; unsealed: string }>(
        'SELECT count(*)::text AS n, count(DISTINCT seq)::text AS distinct_seq, max(seq)::text AS max_seq, count(*) FILTER (WHERE seq IS NULL)::text AS unsealed FROM audit_log',
      );
      expect(s.rows[0]).toEqual({ n: '480', distinct_seq: '480', max_seq: '480', unsealed: '0' });
      expect(await chain2.verify()).toMatchObject({ ok: true, rows: 480 });
    } finally {
      await other.close();
    }
  });

  it('late commit/a row with a lower id that commits after higher ids were sealed gets a later seq and verifies', async () => {
    const { store, pool, chain } = await fresh();
    await append(store, 2);
    const late = await pool.connect();
    try {
      await late.query('BEGIN');
      const r = await late.query<{ id: string }>(
        `INSERT INTO audit_log (at, actor, action, target, details) VALUES ($1, 'slow', 'certificate.issued', 'late', '{"late":true}') RETURNING id::text`,
        [T0],
      );
      const lateId = Number(r.rows[0]!.id);
      await append(store, 3);
      expect(await chain.seal()).toMatchObject({ sealed: 5, head: { seq: 5 } });
      await late.query('COMMIT');
      expect(await chain.seal()).toMatchObject({ sealed: 1, head: { seq: 6 } });
      const row = await seqOf(pool, 'id = $1', [lateId]);
      expect(row.seq).toBe(6);
      const higher = await pool.query<{ n: string }>('SELECT count(*)::text AS n FROM audit_log WHERE id > $1 AND seq < 6', [lateId]);
      expect(higher.rows[0]!.n).toBe('3');
    } finally {
      late.release();
    }
    expect(await chain.verify()).toMatchObject({ ok: true, rows: 6 });
  });

  it('stale rows/verify without sealing reports unsealed rows older than 5 minutes', async () => {
    const { store, clock, chain } = await fresh();
    await append(store, 2);
    await chain.seal();
    await append(store, 1, T0);
    clock.set(at(10 * 60_000));
    expect(await chain.verify()).toMatchObject({ ok: true, rows: 2, staleUnsealed: { count: 1, oldest: expect.stringMatching(/^2030-01-01T00:00:00/) } });
  });
});

describe('tampering directly in the database', () => {
  /** A sealed and anchored chain of 20 rows. */
  async function sealed20(): Promise<Ctx> {
    const c = await fresh();
    await append(c.store, 20);
    expect((await c.chain.seal())!.anchored).toMatchObject({ seq: 20 });
    expect((await c.chain.verify()).ok).toBe(true);
    return c;
  }

  it('UPDATE details/verify names that seq as edited', async () => {
    const { pool, chain } = await sealed20();
    const row = await seqOf(pool, 'seq = 7');
    await pool.query(`UPDATE audit_log SET details = jsonb_set(details, '{z}', '999') WHERE seq = 7`);
    expect(await chain.verify()).toMatchObject({ ok: false, rows: 6, broken: { seq: 7, id: row.id, kind: 'hash', problem: expect.stringMatching(/edited/) } });
  });

  it('UPDATE actor/verify names that seq; restoring the value makes it verify again', async () => {
    const { pool, chain } = await sealed20();
    const orig = await pool.query<{ actor: string }>('SELECT actor FROM audit_log WHERE seq = 3');
    await pool.query(`UPDATE audit_log SET actor = 'someone-else' WHERE seq = 3`);
    expect((await chain.verify()).broken).toMatchObject({ seq: 3, kind: 'hash' });
    await pool.query('UPDATE audit_log SET actor = $1 WHERE seq = 3', [orig.rows[0]!.actor]);
    expect(await chain.verify()).toMatchObject({ ok: true, rows: 20 });
  });

  it('UPDATE at by one microsecond/caught: the hash covers every digit the database keeps', async () => {
    const { pool, chain } = await sealed20();
    await pool.query(`UPDATE audit_log SET at = at + interval '1 microsecond' WHERE seq = 12`);
    expect((await chain.verify()).broken).toMatchObject({ seq: 12, kind: 'hash' });
  });

  it('DELETE in the middle/verify names the gap and the row after it', async () => {
    const { pool, chain } = await sealed20();
    const after = await seqOf(pool, 'seq = 10');
    await pool.query('DELETE FROM audit_log WHERE seq = 9');
    const r = await chain.verify();
    expect(r).toMatchObject({ ok: false, rows: 8, broken: { seq: 9, id: after.id, kind: 'gap' } });
    expect(r.broken!.problem).toMatch(/seq 9 missing \(rows deleted\): the next row is seq 10/);
  });

  it('DELETE and rewrite the rest of the chain with recomputed hashes/caught by the signed anchor', async () => {
    const { pool, chain } = await sealed20();
    await pool.query('DELETE FROM audit_log WHERE seq = 5');
    // the attacker renumbers and re-hashes everything after the hole, as the sealer would
    const rows = await pool.query<{ id: string; seq: string; at: string; actor: string; action: string; target: string | null; details: unknown; hash: Buffer }>(
      `SELECT id::text, seq::text, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS at, actor, action, target, details, hash
         FROM audit_log WHERE seq >= 4 ORDER BY audit_log.seq`,
    );
    let prev = rows.rows[0]!.hash;
    for (const r of rows.rows.slice(1)) {
      const seq = Number(r.seq) - 1;
      const row: AuditChainRow = { id: Number(r.id), seq, at: r.at, actor: r.actor, action: r.action, target: r.target, details: r.details, prevHash: prev, hash: null };
      const hash = auditLinkHash(prev, row, seq);
      await pool.query('UPDATE audit_log SET seq = $2, prev_hash = $3, hash = $4 WHERE id = $1', [row.id, seq, prev, hash]);
      prev = hash;
    }
    const r = await chain.verify();
    expect(r).toMatchObject({ ok: false, rows: 19, broken: { seq: 20, id: null, kind: 'anchor' } });
    expect(r.broken!.problem).toMatch(/chain ends at seq 19/);
  });

  it('DELETE of the anchored head/verify reports the truncation up to the anchor', async () => {
    const { pool, chain } = await sealed20();
    await pool.query('DELETE FROM audit_log WHERE seq >= 18');
    expect((await chain.verify()).broken).toMatchObject({ seq: 20, kind: 'anchor', problem: expect.stringMatching(/removed from its end/) });
  });

  it('forged anchor signature/verify fails at the anchor', async () => {
    const { pool, chain } = await sealed20();
    await pool.query(`UPDATE audit_anchors SET signature = set_byte(signature, 10, get_byte(signature, 10) # 1) WHERE seq = 20`);
    expect((await chain.verify()).broken).toMatchObject({ seq: 20, kind: 'anchor', problem: expect.stringMatching(/signature does not verify/) });
  });

  it('anchor signed by another key/verify refuses it even though the signature is valid', async () => {
    const { pool, chain } = await sealed20();
    const a = await pool.query<{ hash: Buffer; signed_at: Date }>('SELECT hash, signed_at FROM audit_anchors WHERE seq = 20');
    const kp = generateKeyPair('P-256');
    const { sign } = await import('node:crypto');
    const signature = sign('sha256', anchorMessage(20, a.rows[0]!.hash, a.rows[0]!.signed_at), kp.privateKey);
    await pool.query('UPDATE audit_anchors SET signature = $1, key_spki = $2 WHERE seq = 20', [signature, spkiOf(kp.publicKey)]);
    expect((await chain.verify()).broken).toMatchObject({ seq: 20, kind: 'anchor', problem: expect.stringMatching(/not this CA's audit key/) });
  });
});
