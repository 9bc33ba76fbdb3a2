import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import type { CertificateRecord, IssuerRecord, OcspResponseRow } from '../../src/ca/ports.js';
import type { PgStore } from '../../src/store/pg-store.js';
import { crlEntryOf } from '../../src/ca/revocation.js';
import { revokeOne } from '../../src/store/pg-revocation.js';
import { DAY, T0, at, auditFor, certFor, intentFor, randomSerial, seedIssuer, useTestStore } from './fixtures.js';

const suite = useTestStore();
let store: PgStore;
let issuer: IssuerRecord;
beforeAll(() => {
  ({ store, issuer } = suite);
});

async function issue(deviceId: string | null, opts: { notAfter?: Date; issuerId?: number; crlShard?: number } = {}): Promise<CertificateRecord> {
  const intent = intentFor(randomSerial(), opts.issuerId ?? issuer.id, deviceId);
  await store.recordIntent(intent, auditFor('certificate.sign.begin', intent.serial));
  await store.commitCertificate({ ...certFor(intent, opts), crlShard: opts.crlShard ?? null }, auditFor('certificate.issued', intent.serial));
  return (await store.getCertificate(intent.serial))!;
}

const revoke = (serial: string, reason: 'keyCompromise' | 'certificateHold' | 'superseded', when = T0, invalidityDate: Date | null = null) =>
  store.revoke({ serial, reason, at: when, actor: 'test', invalidityDate, crlEntry: crlEntryOf });

const response = (serial: string, status: OcspResponseRow['status'], reason: OcspResponseRow['reason'] = null, thisUpdate = T0): OcspResponseRow => ({
  serial,
  status,
  reason,
  thisUpdate,
  nextUpdate: at(DAY),
  der: Buffer.from(`response for ${serial} ${status}`),
});

async function storedResponse(serial: string): Promise<Buffer | null> {
  const { rows } = await store.pool.query<{ der: Buffer }>('SELECT der FROM ocsp_responses WHERE serial = $1', [serial]);
  return rows[0]?.der ?? null;
}

describe('status changes keep the CRL entry with the row', () => {
  it('revoke → entry = crlEntryOf(serial, date, reason, invalidityDate); release → entry gone, removeFromCRL in the history', async () => {
    const c = await issue(null);
    await revoke(c.serial, 'keyCompromise', at(DAY), at(-DAY));
    const row = async () => (await store.pool.query('SELECT crl_entry FROM certificates WHERE serial = $1', [c.serial])).rows[0].crl_entry as Buffer | null;
    expect(await row()).toEqual(crlEntryOf({ serial: c.serial, revokedAt: at(DAY), reason: 'keyCompromise', invalidityDate: at(-DAY) }));

    const h = await issue(null);
    await revoke(h.serial, 'certificateHold', at(DAY));
    expect(await store.release({ serial: h.serial, at: at(2 * DAY), actor: 'test' })).toMatchObject({ status: 'valid', revokedAt: null, revocationReason: null });
    const { rows } = await store.pool.query('SELECT reason, revoked_at, issuer_id FROM revocations WHERE serial = $1 ORDER BY id', [h.serial]);
    expect(rows).toEqual([
      { reason: 'certificateHold', revoked_at: at(DAY), issuer_id: issuer.id },
      { reason: 'removeFromCRL', revoked_at: at(2 * DAY), issuer_id: issuer.id },
    ]);
    expect((await store.pool.query('SELECT crl_entry FROM certificates WHERE serial = $1', [h.serial])).rows[0].crl_entry).toBeNull();
  });

  it('release/not held → conflict; release/revoked → conflict naming the rule; release/unknown → notFound', async () => {
    const v = await issue(null);
    await expect(store.release({ serial: v.serial, at: T0, actor: 'test' })).rejects.toMatchObject({ kind: 'conflict', message: expect.stringContaining('not on hold') });
    await revoke(v.serial, 'superseded');
    await expect(store.release({ serial: v.serial, at: T0, actor: 'test' })).rejects.toMatchObject({ kind: 'conflict', message: expect.stringContaining('only a hold can be released') });
    await expect(store.release({ serial: 'ffff', at: T0, actor: 'test' })).rejects.toMatchObject({ kind: 'notFound' });
  });
});

describe('a whole device', () => {
  it('hold takes the valid live ones, revoke the valid and held, release the held; expired and other devices untouched', async () => {
    await store.addDevice({ id: 'rev-dev-1' }, T0);
    await store.addDevice({ id: 'rev-dev-2' }, T0);
    const a = await issue('rev-dev-1');
    const b = await issue('rev-dev-1');
    const expired = await issue('rev-dev-1', { notAfter: at(DAY / 2) });
    const other = await issue('rev-dev-2');
    const when = at(DAY);

    const held = await store.revokeDevice({ deviceId: 'rev-dev-1', reason: 'certificateHold', at: when, actor: 'test', invalidityDate: null, crlEntry: crlEntryOf });
    expect(held.map((c) => c.serial).sort()).toEqual([a.serial, b.serial].sort());
    expect(held.every((c) => c.status === 'hold')).toBe(true);
    // a second hold finds nothing to hold
    expect(await store.revokeDevice({ deviceId: 'rev-dev-1', reason: 'certificateHold', at: when, actor: 'test', invalidityDate: null, crlEntry: crlEntryOf })).toEqual([]);

    const released = await store.releaseDevice({ deviceId: 'rev-dev-1', at: at(2 * DAY), actor: 'test' });
    expect(released.map((c) => c.status)).toEqual(['valid', 'valid']);

    await revoke(a.serial, 'certificateHold', at(2 * DAY));
    const revoked = await store.revokeDevice({ deviceId: 'rev-dev-1', reason: 'keyCompromise', at: at(3 * DAY), actor: 'test', invalidityDate: null, crlEntry: crlEntryOf });
    expect(revoked.map((c) => [c.serial, c.status, c.revocationReason, c.revokedAt]).sort()).toEqual(
      [
        // the held one keeps the date of its hold
        [a.serial, 'revoked', 'keyCompromise', at(2 * DAY)],
        [b.serial, 'revoked', 'keyCompromise', at(3 * DAY)],
      ].sort(),
    );
    expect((await store.getCertificate(expired.serial))!.status).toBe('valid');
    expect((await store.getCertificate(other.serial))!.status).toBe('valid');
    await expect(store.releaseDevice({ deviceId: 'nobody', at: T0, actor: 'test' })).rejects.toMatchObject({ kind: 'notFound' });
  });
});

describe('pre-signed OCSP responses', () => {
  it('stored only while the certificate still has the status the response states', async () => {
    const c = await issue(null);
    expect(await store.saveOcspResponses([response(c.serial, 'hold', 'certificateHold')])).toBe(0);
    expect(await store.saveOcspResponses([response(c.serial, 'valid')])).toBe(1);
    expect(await storedResponse(c.serial)).toEqual(Buffer.from(`response for ${c.serial} valid`));
    // an older response never overwrites a newer one
    expect(await store.saveOcspResponses([{ ...response(c.serial, 'valid', null, at(-DAY)), der: Buffer.from('older') }])).toBe(0);
  });

  it('a status change deletes the stored response in its own transaction', async () => {
    const c = await issue(null);
    await store.saveOcspResponses([response(c.serial, 'valid')]);
    await revoke(c.serial, 'certificateHold');
    expect(await storedResponse(c.serial)).toBeNull();
    await store.saveOcspResponses([response(c.serial, 'hold', 'certificateHold')]);
    await store.release({ serial: c.serial, at: at(DAY), actor: 'test' });
    expect(await storedResponse(c.serial)).toBeNull();
  });

  it('a response signed before a revocation that is still in flight is not stored after it commits', async () => {
    const c = await issue(null);
    const client = await store.pool.connect();
    try {
      await client.query('BEGIN');
      await revokeOne(client, { serial: c.serial, reason: 'keyCompromise', at: T0, actor: 'test', invalidityDate: null, crlEntry: crlEntryOf });
      // the presigner read "valid" before the revocation: its write waits for the row lock
      const saving = store.saveOcspResponses([response(c.serial, 'valid')]);
      await new Promise((r) => setTimeout(r, 100));
      await client.query('COMMIT');
      expect(await saving).toBe(0);
    } finally {
      client.release();
    }
    expect(await storedResponse(c.serial)).toBeNull();
    expect((await store.ocspStates([c.serial]))[0]).toMatchObject({ status: 'revoked', reason: 'keyCompromise', stored: null });
  });

  it('ocspDue: live certificates without a response or with one past the refresh point, in serial order, after `after`', async () => {
    const other = await seedIssuer(store, 'due-ca');
    const fresh = await issue(null, { issuerId: other.id });
    const stale = await issue(null, { issuerId: other.id });
    const missing = await issue(null, { issuerId: other.id });
    await issue(null, { issuerId: other.id, notAfter: at(DAY / 2) }); // expired at the time asked
    await store.saveOcspResponses([{ ...response(fresh.serial, 'valid'), nextUpdate: at(3 * DAY) }, { ...response(stale.serial, 'valid'), nextUpdate: at(DAY) }]);
    const due = await store.ocspDue(other.id, at(DAY), at(2 * DAY), '', 10);
    expect(due.map((d) => d.serial)).toEqual([stale.serial, missing.serial].sort());
    expect(await store.ocspDue(other.id, at(DAY), at(2 * DAY), due[0]!.serial, 10)).toEqual(due.slice(1));
  });

  it('ocspStates: status, revocation and the stored response; unknown serials absent', async () => {
    const c = await issue(null);
    await store.saveOcspResponses([response(c.serial, 'valid')]);
    const states = await store.ocspStates([c.serial, '0badc0de']);
    expect(states).toEqual([
      {
        serial: c.serial,
        issuerId: issuer.id,
        status: 'valid',
        revokedAt: null,
        reason: null,
        notAfter: c.notAfter,
        stored: { der: Buffer.from(`response for ${c.serial} valid`), thisUpdate: T0, nextUpdate: at(DAY) },
      },
    ]);
  });
});

describe('every status change is announced after commit', () => {
  it('NOTIFY fleetca_status "<issuer>:<serial>" for revoke, hold, release — not for a rolled-back change', async () => {
    const listener = new pg.Client({ connectionString: suite.db.connectionString });
    await listener.connect();
    const got: string[] = [];
    listener.on('notification', (m) => got.push(`${m.channel} ${m.payload}`));
    await listener.query('LISTEN fleetca_status');
    try {
      const c = await issue(null);
      await revoke(c.serial, 'certificateHold');
      await store.release({ serial: c.serial, at: at(DAY), actor: 'test' });
      const client = await store.pool.connect();
      try {
        await client.query('BEGIN');
        await revokeOne(client, { serial: c.serial, reason: 'keyCompromise', at: T0, actor: 'test', invalidityDate: null, crlEntry: crlEntryOf });
        await client.query('ROLLBACK');
      } finally {
        client.release();
      }
      await revoke(c.serial, 'keyCompromise');
      for (let i = 0; i < 100 && got.length < 3; i++) await new Promise((r) => setTimeout(r, 10));
      expect(got).toEqual([0, 1, 2].map(() => `fleetca_status ${issuer.id}:${c.serial}`));
    } finally {
      await listener.end();
    }
  });
});

describe('CRL build sessions', () => {
  it('pages the stored entries in serial order, by shard, leaving out those expired before listedAfter', async () => {
    const ca = await seedIssuer(store, 'pages-ca');
    const certs = [];
    for (let i = 0; i < 6; i++) certs.push(await issue(null, { issuerId: ca.id, crlShard: 1 + (i % 2) }));
    const gone = await issue(null, { issuerId: ca.id, notAfter: at(DAY) });
    await issue(null, { issuerId: ca.id }); // valid: never listed
    for (const c of [...certs, gone]) await revoke(c.serial, 'superseded');
    const listed = certs.map((c) => c.serial).sort();
    const entry = (s: string) => crlEntryOf({ serial: s, revokedAt: T0, reason: 'superseded', invalidityDate: null });

    const out = await store.crlBuild(ca.id, async (s) => {
      const pages = [];
      for await (const p of s.entryPages({ listedAfter: at(2 * DAY) })) pages.push(p);
      const shard2 = [];
      for await (const p of s.entryPages({ listedAfter: at(2 * DAY), shard: 2 })) shard2.push(p);
      return { pages, shard2 };
    });
    expect(out!.pages).toEqual([{ der: Buffer.concat(listed.map(entry)), count: 6 }]);
    const inShard2 = certs.filter((_, i) => i % 2 === 1).map((c) => c.serial).sort();
    expect(out!.shard2).toEqual([{ der: Buffer.concat(inShard2.map(entry)), count: 3 }]);
  });

  it('one build per issuer at a time: a second session meanwhile resolves null; numbers never repeat', async () => {
    const ca = await seedIssuer(store, 'lock-ca');
    let inside!: () => void;
    const entered = new Promise<void>((r) => (inside = r));
    let leave!: () => void;
    const left = new Promise<void>((r) => (leave = r));
    const first = store.crlBuild(ca.id, async (s) => {
      const n = await s.nextNumber();
      inside();
      await left;
      return n;
    });
    await entered;
    expect(await store.crlBuild(ca.id, async () => 'ran')).toBeNull();
    leave();
    const n1 = await first;
    const more = await Promise.all([1, 2, 3].map(() => store.nextCrlNumber(ca.id)));
    const n2 = await store.crlBuild(ca.id, (s) => s.nextNumber());
    expect(new Set([n1, ...more, n2]).size).toBe(5);
    expect(n2! > n1!).toBe(true);
  });

  it('changesSince: revoked and held with their entry, released with none, since the given time', async () => {
    const ca = await seedIssuer(store, 'delta-ca');
    const before = await issue(null, { issuerId: ca.id });
    const r = await issue(null, { issuerId: ca.id });
    const h = await issue(null, { issuerId: ca.id });
    await revoke(before.serial, 'keyCompromise', at(-DAY));
    await revoke(r.serial, 'keyCompromise', at(DAY));
    await revoke(h.serial, 'certificateHold', at(DAY));
    await store.release({ serial: h.serial, at: at(2 * DAY), actor: 'test' });
    const changes = await store.crlBuild(ca.id, (s) => s.changesSince(T0, T0));
    expect(changes!.map((c) => [c.serial, c.status, c.crlEntry === null, c.changedAt]).sort()).toEqual(
      [
        [r.serial, 'revoked', false, at(DAY)],
        [h.serial, 'valid', true, at(2 * DAY)],
      ].sort(),
    );
  });
});
