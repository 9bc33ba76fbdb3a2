/**
 * The enrollment ports of PgStore (store/pg-enrollment.ts): one-time secrets, the approval queue
 * and supersession, on a fresh migrated database (embedded, or the machine's with FLEETCA_TEST_PG=system).
 */
import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import type { CertificateRecord, IssuerRecord } from '../../src/ca/ports.js';
import type { NewEnrollmentRequest, NewSecret } from '../../src/enrollment/ports.js';
import { PgStore } from '../../src/store/pg-store.js';
import { DAY, T0, at, auditFor, certFor, intentFor, randomSerial, useTestStore } from './fixtures.js';
import { crlEntryOf } from '../../src/ca/revocation.js';

const suite = useTestStore();
let store: PgStore;
let issuer: IssuerRecord;
beforeAll(() => {
  ({ store, issuer } = suite);
});


function newSecret(deviceId: string, opts: Partial<NewSecret> = {}): NewSecret {
  return { deviceId, profile: 'camera', mac: randomBytes(32), createdAt: T0, expiresAt: at(DAY), createdBy: 'test', ...opts };
}

async function oneSecret(deviceId: string, opts: Partial<NewSecret> = {}): Promise<string> {
  const [id] = await store.createSecrets([newSecret(deviceId, opts)], [auditFor('secret.created', deviceId)]);
  return id!;
}

function newRequest(deviceId: string, spki = randomBytes(32), profile = 'camera'): NewEnrollmentRequest {
  return { deviceId, profile, spkiSha256: spki, subject: `CN=${deviceId}`, csrDer: randomBytes(200), via: 'est', actor: `secret:${deviceId}`, createdAt: T0 };
}

/** Records and commits one certificate of `profile` for the device. */
async function issue(deviceId: string, opts: { profile?: string; notAfter?: Date } = {}): Promise<CertificateRecord> {
  const intent = { ...intentFor(randomSerial(), issuer.id, deviceId), profile: opts.profile ?? 'camera' };
  expect(await store.recordIntent(intent, auditFor('certificate.sign.begin', intent.serial))).toBe('recorded');
  await store.commitCertificate(certFor(intent, opts.notAfter ? { notAfter: opts.notAfter } : {}), auditFor('certificate.issued', intent.serial));
  return (await store.getCertificate(intent.serial))!;
}

const sorted = (a: string[]) => [...a].sort();

describe('secrets', () => {
  it('createSecrets/ids in input order, one audit row each', async () => {
    const devices = ['sec-order-c', 'sec-order-a', 'sec-order-b'];
    const ids = await store.createSecrets(
      devices.map((d) => newSecret(d)),
      devices.map((d) => ({ at: T0, actor: 'alice', action: 'secret.created', target: d, details: { profile: 'camera' } })),
    );
    expect(ids).toHaveLength(3);
    expect(new Set(ids).size).toBe(3);
    for (const [i, d] of devices.entries()) {
      const [s] = await store.usableSecrets(d, T0);
      expect(s!.id).toBe(ids[i]);
      const audit = await store.listAudit({ target: d, action: 'secret.created' });
      expect(audit).toHaveLength(1);
      expect(audit[0]).toMatchObject({ actor: 'alice', at: T0, details: { profile: 'camera' } });
    }
  });

  it('createSecrets/ids in input order across a digit boundary (120 in one call)', async () => {
    const devices = Array.from({ length: 120 }, (_, i) => `sec-many-${i}`);
    const ids = await store.createSecrets(
      devices.map((d) => newSecret(d)),
      devices.map((d) => auditFor('secret.created', d)),
    );
    expect(ids.map(Number)).toEqual([...ids.map(Number)].sort((x, y) => x - y));
    for (const i of [0, 57, 119]) expect((await store.usableSecrets(devices[i]!, T0))[0]!.id).toBe(ids[i]);
    // numeric order, also for one device
    const mine = await store.createSecrets(
      Array.from({ length: 12 }, () => newSecret('sec-many-one')),
      Array.from({ length: 12 }, () => auditFor('secret.created', 'sec-many-one')),
    );
    expect((await store.usableSecrets('sec-many-one', T0)).map((s) => s.id)).toEqual(mine);
  });

  it('createSecrets/empty list → [] and nothing written', async () => {
    expect(await store.createSecrets([], [])).toEqual([]);
  });

  it('usableSecrets/the record as stored, unclaimed and unconsumed', async () => {
    const mac = randomBytes(32);
    const id = await oneSecret('sec-rec', { mac, expiresAt: at(3 * DAY), createdBy: 'bob' });
    expect(await store.usableSecrets('sec-rec', T0)).toEqual([
      { id, deviceId: 'sec-rec', profile: 'camera', mac, createdAt: T0, expiresAt: at(3 * DAY), createdBy: 'bob', claimedAt: null, consumedAt: null, serial: null },
    ]);
    expect(await store.usableSecrets('sec-nobody', T0)).toEqual([]);
  });

  it('usableSecrets/excludes consumed and expired ones, keeps claimed ones, other devices apart', async () => {
    const consumed = await oneSecret('sec-use');
    const expiring = await oneSecret('sec-use', { expiresAt: at(1000) });
    const claimed = await oneSecret('sec-use');
    const fresh = await oneSecret('sec-use');
    await oneSecret('sec-use-other');
    expect(await store.claimSecret(consumed, T0)).toBe(true);
    await store.consumeSecret(consumed, '0a0b', at(1), auditFor('secret.consumed', 'sec-use'));
    expect(await store.claimSecret(claimed, T0)).toBe(true);
    expect((await store.usableSecrets('sec-use', at(999))).map((s) => s.id)).toEqual([expiring, claimed, fresh]);
    // expires_at is exclusive: at the instant of expiry the secret is gone
    expect((await store.usableSecrets('sec-use', at(1000))).map((s) => s.id)).toEqual([claimed, fresh]);
    expect((await store.usableSecrets('sec-use', at(2 * DAY))).map((s) => s.id)).toEqual([]);
  });

  it('usableSecrets/concurrent callers (one batched query) each get their own device\'s secrets, expired at their own instant', async () => {
    const a1 = await oneSecret('sec-batch-a', { expiresAt: at(100) });
    const a2 = await oneSecret('sec-batch-a');
    const b1 = await oneSecret('sec-batch-b');
    const [early, late, other, none] = await Promise.all([
      store.usableSecrets('sec-batch-a', at(50)),
      store.usableSecrets('sec-batch-a', at(100)),
      store.usableSecrets('sec-batch-b', at(100)),
      store.usableSecrets('sec-batch-none', at(1)),
    ]);
    expect(early.map((s) => s.id)).toEqual([a1, a2]);
    expect(late.map((s) => s.id)).toEqual([a2]);
    expect(other.map((s) => s.id)).toEqual([b1]);
    expect(none).toEqual([]);
  });

  it('getCertificateByFingerprint/concurrent callers (one batched query): each its own certificate, null when unknown', async () => {
    await store.addDevice({ id: 'fp-batch' }, T0);
    const [c1, c2] = [await issue('fp-batch'), await issue('fp-batch')];
    const got = await Promise.all([c2, c1].map((c) => store.getCertificateByFingerprint(c.fingerprintSha256)).concat(store.getCertificateByFingerprint(randomBytes(32))));
    expect(got.map((c) => c?.serial ?? null)).toEqual([c2.serial, c1.serial, null]);
  });

  it('createSecrets/many at once refresh the table\'s planner statistics (stale ones made every claim scan all outstanding secrets)', async () => {
    const lastAnalyze = async () =>
      (await store.pool.query<{ t: Date | null }>(`SELECT last_analyze AS t FROM pg_stat_user_tables WHERE relname = 'enrollment_secrets'`)).rows[0]?.t ?? null;
    const before = await lastAnalyze();
    const devices = Array.from({ length: 600 }, (_, i) => `sec-many-${i}`);
    await store.createSecrets(devices.map((d) => newSecret(d)), devices.map((d) => auditFor('secret.created', d)));
    let after = await lastAnalyze();
    for (let i = 0; i < 100 && (after === null || (before !== null && after <= before)); i++) {
      await new Promise((r) => setTimeout(r, 100));
      after = await lastAnalyze();
    }
    expect(after).not.toBeNull();
    if (before !== null) expect(after!.getTime()).toBeGreaterThan(before.getTime());
    const { rows } = await store.pool.query<{ n: number }>(`SELECT reltuples::int AS n FROM pg_class WHERE relname = 'enrollment_secrets'`);
    expect(rows[0]!.n).toBeGreaterThanOrEqual(600);
  });

  it('claimSecret/of 10 concurrent claims exactly one → true', async () => {
    const id = await oneSecret('sec-race');
    const results = await Promise.all(Array.from({ length: 10 }, () => store.claimSecret(id, T0)));
    expect(results.filter(Boolean)).toHaveLength(1);
    const [s] = await store.usableSecrets('sec-race', T0);
    expect(s!.claimedAt).toEqual(T0);
  });

  it('claimSecret/concurrent claims spread over overlapping group transactions: exactly one → true', async () => {
    const id = await oneSecret('sec-race-spread');
    const claims: Array<Promise<boolean>> = [];
    for (let i = 0; i < 12; i++) {
      claims.push(store.claimSecret(id, T0));
      // a new turn of the event loop: the next claims queue behind a flush already in flight
      if (i % 3 === 2) await new Promise((r) => setImmediate(r));
    }
    expect((await Promise.all(claims)).filter(Boolean)).toHaveLength(1);
  });

  it('group transaction/a claim, a consume and a supersede commit together with other callers\' issuance writes, each with its own result', async () => {
    for (const d of ['sec-group-b', 'sec-group-c']) await store.addDevice({ id: d }, T0);
    const claimId = await oneSecret('sec-group-a');
    const consumeId = await oneSecret('sec-group-b');
    expect(await store.claimSecret(consumeId, T0)).toBe(true);
    const old = await issue('sec-group-b');
    const intent = { ...intentFor(randomSerial(), issuer.id, 'sec-group-c'), profile: 'camera' };
    expect(await store.recordIntent(intent, auditFor('certificate.sign.begin', intent.serial))).toBe('recorded');
    const fresh = { ...intentFor(randomSerial(), issuer.id, 'sec-group-b'), profile: 'camera' };
    expect(await store.recordIntent(fresh, auditFor('certificate.sign.begin', fresh.serial))).toBe('recorded');
    await store.commitCertificate(certFor(fresh), auditFor('certificate.issued', fresh.serial));
    // all queued in one turn of the event loop: one flush, one transaction
    const [claimed, , superseded] = await Promise.all([
      store.claimSecret(claimId, T0),
      store.consumeSecret(consumeId, fresh.serial, at(1), auditFor('secret.consumed', 'sec-group-b')),
      store.supersede(
        { deviceId: 'sec-group-b', profile: 'camera', newSerial: fresh.serial, at: at(1), revokeAt: at(DAY) },
        { at: at(1), actor: 'test', action: 'certificate.superseded', target: null, details: {} },
      ),
      store.commitCertificate(certFor(intent), auditFor('certificate.issued', intent.serial)),
    ]);
    expect(claimed).toBe(true);
    expect(superseded).toEqual([old.serial]);
    const xids = await store.pool.query<{ x: string }>(
      `SELECT xmin::text AS x FROM enrollment_secrets WHERE id = ANY($1::bigint[])
       UNION ALL SELECT xmin::text FROM certificates WHERE serial = ANY($2)`,
      [[claimId, consumeId], [intent.serial, old.serial]],
    );
    expect(xids.rows).toHaveLength(4);
    expect(new Set(xids.rows.map((r) => r.x)).size).toBe(1);
    expect((await store.usableSecrets('sec-group-b', at(2))).map((s) => s.id)).not.toContain(consumeId);
  });

  it('group transaction/a statement that fails (malformed id) fails alone; the writes queued with it commit', async () => {
    const good = await oneSecret('sec-group-bad');
    const intent = { ...intentFor(randomSerial(), issuer.id, null), profile: 'camera' };
    const [bad, claimed, recorded] = await Promise.allSettled([
      store.claimSecret('not-a-number', T0),
      store.claimSecret(good, T0),
      store.recordIntent(intent, auditFor('certificate.sign.begin', intent.serial)),
    ]);
    expect(bad.status).toBe('rejected');
    expect(claimed).toEqual({ status: 'fulfilled', value: true });
    expect(recorded).toEqual({ status: 'fulfilled', value: 'recorded' });
  });

  it('claimSecret/a claimed secret stays claimed however long until released (an interrupted enrollment spends it)', async () => {
    const id = await oneSecret('sec-lease');
    expect(await store.claimSecret(id, T0)).toBe(true);
    expect(await store.claimSecret(id, at(1))).toBe(false);
    expect(await store.claimSecret(id, at(DAY - 1))).toBe(false);
    await store.releaseSecret(id);
    expect(await store.claimSecret(id, at(DAY - 1))).toBe(true);
    expect((await store.usableSecrets('sec-lease', at(DAY - 1)))[0]!.claimedAt).toEqual(at(DAY - 1));
  });

  it('claimSecret/expired, consumed or unknown → false', async () => {
    const expired = await oneSecret('sec-noclaim', { expiresAt: at(10) });
    expect(await store.claimSecret(expired, at(10))).toBe(false);
    const consumed = await oneSecret('sec-noclaim');
    await store.consumeSecret(consumed, '0c0d', T0, auditFor('secret.consumed', 'sec-noclaim'));
    expect(await store.claimSecret(consumed, at(DAY - 1))).toBe(false);
    expect(await store.claimSecret('999999999', T0)).toBe(false);
  });

  it('releaseSecret/frees a claimed secret at once', async () => {
    const id = await oneSecret('sec-release');
    expect(await store.claimSecret(id, T0)).toBe(true);
    expect(await store.claimSecret(id, at(1))).toBe(false);
    await store.releaseSecret(id);
    expect((await store.usableSecrets('sec-release', at(1)))[0]!.claimedAt).toBeNull();
    expect(await store.claimSecret(id, at(1))).toBe(true);
  });

  it('releaseSecret/of a consumed secret → still consumed', async () => {
    const id = await oneSecret('sec-release-used');
    await store.claimSecret(id, T0);
    await store.consumeSecret(id, '0e0f', at(1), auditFor('secret.consumed', 'sec-release-used'));
    await store.releaseSecret(id);
    expect(await store.usableSecrets('sec-release-used', at(2))).toEqual([]);
    expect(await store.claimSecret(id, at(2))).toBe(false);
  });

  it('consumeSecret/records the serial and time, with its audit row; a second consume changes nothing', async () => {
    const id = await oneSecret('sec-consume');
    expect(await store.claimSecret(id, T0)).toBe(true);
    await store.consumeSecret(id, '7a7b7c', at(5), { at: at(5), actor: 'secret:sec-consume', action: 'secret.consumed', target: 'sec-consume', details: { secret: id } });
    await store.consumeSecret(id, '1111', at(6), { at: at(6), actor: 'x', action: 'secret.consumed', target: 'sec-consume', details: {} });
    const { rows } = await store.pool.query<{ consumed_at: Date; serial: string; claimed_at: Date }>(
      'SELECT consumed_at, serial, claimed_at FROM enrollment_secrets WHERE id = $1',
      [id],
    );
    expect(rows).toEqual([{ consumed_at: at(5), serial: '7a7b7c', claimed_at: T0 }]);
    const audit = await store.listAudit({ target: 'sec-consume', action: 'secret.consumed' });
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ actor: 'secret:sec-consume', at: at(5), details: { secret: id } });
  });
});

describe('approval queue', () => {
  it('openRequest/twice for the same device, profile and key → the same row, one audit row', async () => {
    const spki = randomBytes(32);
    const first = await store.openRequest(newRequest('req-dup', spki), auditFor('request.queued', 'req-dup'));
    expect(first).toMatchObject({ deviceId: 'req-dup', profile: 'camera', state: 'pending', decidedAt: null, serial: null, createdAt: T0 });
    expect(first.spkiSha256.equals(spki)).toBe(true);
    const again = await store.openRequest({ ...newRequest('req-dup', spki), createdAt: at(DAY) }, auditFor('request.queued', 'req-dup'));
    expect(again).toEqual(first);
    expect(await store.listAudit({ target: 'req-dup', action: 'request.queued' })).toHaveLength(1);
    // another key or another profile is another request
    const otherKey = await store.openRequest(newRequest('req-dup'), auditFor('request.queued', 'req-dup'));
    const otherProfile = await store.openRequest(newRequest('req-dup', spki, 'sensor'), auditFor('request.queued', 'req-dup'));
    expect(new Set([first.id, otherKey.id, otherProfile.id]).size).toBe(3);
  });

  it('openRequest/8 concurrent for one key → one row', async () => {
    const spki = randomBytes(32);
    const rs = await Promise.all(Array.from({ length: 8 }, () => store.openRequest(newRequest('req-race', spki), auditFor('request.queued', 'req-race'))));
    expect(new Set(rs.map((r) => r.id)).size).toBe(1);
    expect(await store.listAudit({ target: 'req-race', action: 'request.queued' })).toHaveLength(1);
  });

  it('openRequest/after the open one was rejected → a new pending row', async () => {
    const spki = randomBytes(32);
    const first = await store.openRequest(newRequest('req-reopen', spki), auditFor('request.queued', 'req-reopen'));
    await store.decideRequest(first.id, 'rejected', 'alice', 'no', at(1), auditFor('request.rejected', first.id));
    const second = await store.openRequest(newRequest('req-reopen', spki), auditFor('request.queued', 'req-reopen'));
    expect(second.id).not.toBe(first.id);
    expect(second.state).toBe('pending');
  });

  it('decideRequest/pending → decided with who, why and when, audit row written', async () => {
    const r = await store.openRequest(newRequest('req-decide'), auditFor('request.queued', 'req-decide'));
    const d = await store.decideRequest(r.id, 'approved', 'alice', 'ok', at(DAY), auditFor('request.approved', r.id, at(DAY)));
    expect(d).toMatchObject({ id: r.id, state: 'approved', decidedBy: 'alice', reason: 'ok', decidedAt: at(DAY) });
    expect(await store.getRequest(r.id)).toEqual(d);
    expect(await store.listAudit({ target: r.id, action: 'request.approved' })).toHaveLength(1);
  });

  it('decideRequest/on a non-pending request → conflict, nothing changed', async () => {
    const r = await store.openRequest(newRequest('req-conflict'), auditFor('request.queued', 'req-conflict'));
    const d = await store.decideRequest(r.id, 'rejected', 'alice', null, at(1), auditFor('request.rejected', r.id));
    await expect(store.decideRequest(r.id, 'approved', 'mallory', null, at(2), auditFor('request.approved', r.id))).rejects.toMatchObject({
      kind: 'conflict',
      message: `enrollment request ${r.id} is rejected, not pending`,
    });
    expect(await store.getRequest(r.id)).toEqual(d);
    expect(await store.listAudit({ target: r.id, action: 'request.approved' })).toEqual([]);
  });

  it('decideRequest/unknown or malformed id → notFound', async () => {
    await expect(store.decideRequest('987654321', 'approved', 'a', null, T0, auditFor('request.approved', 'x'))).rejects.toMatchObject({ kind: 'notFound' });
    await expect(store.decideRequest('abc', 'approved', 'a', null, T0, auditFor('request.approved', 'x'))).rejects.toMatchObject({ kind: 'notFound' });
    expect(await store.getRequest('abc')).toBeNull();
  });

  it('latestRequest/the open request when there is one, else the latest closed one; null when none', async () => {
    const spki = randomBytes(32);
    expect(await store.latestRequest('req-latest', 'camera', spki)).toBeNull();
    const a = await store.openRequest(newRequest('req-latest', spki), auditFor('request.queued', 'req-latest'));
    await store.decideRequest(a.id, 'approved', 'alice', null, at(1), auditFor('request.approved', a.id));
    // approved is still open: the same row
    expect((await store.latestRequest('req-latest', 'camera', spki))!).toMatchObject({ id: a.id, state: 'approved' });
    await store.markRequestIssued(a.id, '0102');
    expect((await store.latestRequest('req-latest', 'camera', spki))!).toMatchObject({ id: a.id, state: 'issued', serial: '0102' });
    const b = await store.openRequest(newRequest('req-latest', spki), auditFor('request.queued', 'req-latest'));
    expect((await store.latestRequest('req-latest', 'camera', spki))!).toMatchObject({ id: b.id, state: 'pending' });
    await store.decideRequest(b.id, 'rejected', 'alice', 'no', at(3), auditFor('request.rejected', b.id));
    expect((await store.latestRequest('req-latest', 'camera', spki))!).toMatchObject({ id: b.id, state: 'rejected', reason: 'no' });
    expect(await store.latestRequest('req-latest', 'sensor', spki)).toBeNull();
  });

  it('latestRequest/latest closed one by numeric id (100000000 after 99999999, not text order)', async () => {
    const spki = randomBytes(32);
    const insert = (id: string, state: string) =>
      store.pool.query(
        `INSERT INTO enrollment_requests (id, device_id, profile, spki_sha256, subject, csr_der, via, actor, state, created_at, decided_at)
         VALUES ($1, 'req-digits', 'camera', $2, 'CN=req-digits', '\\x00', 'est', 'x', $3, $4, $4)`,
        [id, spki, state, T0],
      );
    await insert('99999999', 'issued');
    await insert('100000000', 'rejected');
    expect((await store.latestRequest('req-digits', 'camera', spki))!).toMatchObject({ id: '100000000', state: 'rejected' });
  });

  it('latestRequest/an older open request beats a newer closed one', async () => {
    const spki = randomBytes(32);
    const old = await store.openRequest(newRequest('req-prefer', spki), auditFor('request.queued', 'req-prefer'));
    // a closed row with a higher id for the same key (rejected history inserted after)
    await store.pool.query(
      `INSERT INTO enrollment_requests (device_id, profile, spki_sha256, subject, csr_der, via, actor, state, created_at, decided_at)
       VALUES ('req-prefer', 'camera', $1, 'CN=req-prefer', '\\x00', 'est', 'x', 'rejected', $2, $2)`,
      [spki, at(DAY)],
    );
    expect((await store.latestRequest('req-prefer', 'camera', spki))!.id).toBe(old.id);
  });

  it('markRequestIssued/closes an approved request with its serial, not a pending one', async () => {
    const r = await store.openRequest(newRequest('req-issued'), auditFor('request.queued', 'req-issued'));
    await store.markRequestIssued(r.id, 'aaaa');
    expect(await store.getRequest(r.id)).toMatchObject({ state: 'pending', serial: null });
    await store.decideRequest(r.id, 'approved', 'alice', null, at(1), auditFor('request.approved', r.id));
    await store.markRequestIssued(r.id, 'bbbb');
    expect(await store.getRequest(r.id)).toMatchObject({ state: 'issued', serial: 'bbbb' });
  });

  it('listRequests/filtered by state, ordered by id, limited', async () => {
    const pending = await store.listRequests({ state: 'pending' });
    expect(pending.length).toBeGreaterThan(1);
    expect(pending.every((r) => r.state === 'pending')).toBe(true);
    expect(pending.map((r) => Number(r.id))).toEqual([...pending.map((r) => Number(r.id))].sort((a, b) => a - b));
    expect(await store.listRequests({ state: 'pending', limit: 1 })).toEqual(pending.slice(0, 1));
  });
});

describe('supersession', () => {
  it('supersede/marks the other live certificates of the device and profile, returns their serials, audit row each', async () => {
    await store.addDevice({ id: 'sup-1' }, T0);
    await store.addDevice({ id: 'sup-2' }, T0);
    const live = await issue('sup-1');
    const held = await issue('sup-1');
    await store.revoke({ crlEntry: crlEntryOf, serial: held.serial, reason: 'certificateHold', at: T0, actor: 'test' });
    const revoked = await issue('sup-1');
    await store.revoke({ crlEntry: crlEntryOf, serial: revoked.serial, reason: 'keyCompromise', at: T0, actor: 'test' });
    const expired = await issue('sup-1', { notAfter: at(-1) });
    const otherProfile = await issue('sup-1', { profile: 'sensor' });
    const otherDevice = await issue('sup-2');
    const renewed = await issue('sup-1');

    const audit = { at: T0, actor: 'cert:x', action: 'certificate.superseded', target: null, details: { device: 'sup-1', profile: 'camera' } };
    const got = await store.supersede({ deviceId: 'sup-1', profile: 'camera', newSerial: renewed.serial, at: T0, revokeAt: at(7 * DAY) }, audit);
    expect(got).toEqual(sorted([live.serial, held.serial]));

    const marks = await store.pool.query<{ serial: string; superseded_by: string | null; supersede_revoke_at: Date | null }>(
      'SELECT serial, superseded_by, supersede_revoke_at FROM certificates WHERE serial = ANY($1)',
      [[live.serial, held.serial, revoked.serial, expired.serial, otherProfile.serial, otherDevice.serial, renewed.serial]],
    );
    const bySerial = new Map(marks.rows.map((r) => [r.serial, r]));
    for (const s of [live.serial, held.serial]) expect(bySerial.get(s)).toMatchObject({ superseded_by: renewed.serial, supersede_revoke_at: at(7 * DAY) });
    for (const s of [revoked.serial, expired.serial, otherProfile.serial, otherDevice.serial, renewed.serial]) {
      expect(bySerial.get(s)).toMatchObject({ superseded_by: null, supersede_revoke_at: null });
    }
    for (const s of [live.serial, held.serial]) {
      const rows = await store.listAudit({ target: s, action: 'certificate.superseded' });
      expect(rows).toHaveLength(1);
      expect(rows[0]!.details).toMatchObject({ device: 'sup-1', profile: 'camera', supersededBy: renewed.serial });
    }

    // already superseded ones are not taken again; the renewed one is, by a later renewal
    const next = await issue('sup-1');
    expect(await store.supersede({ deviceId: 'sup-1', profile: 'camera', newSerial: next.serial, at: at(1), revokeAt: at(8 * DAY) }, audit)).toEqual([renewed.serial]);
    expect((await store.getCertificate(live.serial))!.status).toBe('valid');
  });

  it('supersede/callers in one group transaction: each device its own; two renewals of one device one after the other', async () => {
    for (const d of ['sup-g1', 'sup-g2']) await store.addDevice({ id: d }, T0);
    const g1old = await issue('sup-g1');
    const g2old = await issue('sup-g2');
    const g1a = await issue('sup-g1');
    const g1b = await issue('sup-g1');
    const g2new = await issue('sup-g2');
    const audit = (d: string) => ({ at: T0, actor: 'x', action: 'certificate.superseded', target: null, details: { device: d } });
    const renewed = (serial: string) => ({ at: T0, actor: 'x', action: 'certificate.renewed', target: serial, details: { via: 'test' } });
    // one turn of the event loop: one flush
    const [a, b, c] = await Promise.all([
      store.supersede({ deviceId: 'sup-g1', profile: 'camera', newSerial: g1a.serial, at: T0, revokeAt: at(DAY) }, audit('sup-g1'), renewed(g1a.serial)),
      store.supersede({ deviceId: 'sup-g2', profile: 'camera', newSerial: g2new.serial, at: T0, revokeAt: at(DAY) }, audit('sup-g2'), renewed(g2new.serial)),
      store.supersede({ deviceId: 'sup-g1', profile: 'camera', newSerial: g1b.serial, at: T0, revokeAt: at(2 * DAY) }, audit('sup-g1'), null),
    ]);
    // g1a replaces the others of sup-g1 (g1b is live too at that point), then g1b replaces g1a
    expect(a).toEqual(sorted([g1old.serial, g1b.serial]));
    expect(b).toEqual([g2old.serial]);
    expect(c).toEqual([g1a.serial]);
    expect((await store.getCertificate(g1a.serial))!.supersededBy).toBe(g1b.serial);
    expect((await store.getCertificate(g2old.serial))!.supersededBy).toBe(g2new.serial);
    const r1 = await store.listAudit({ target: g1a.serial, action: 'certificate.renewed' });
    expect(r1.map((r) => r.details)).toEqual([{ via: 'test', replaced: sorted([g1old.serial, g1b.serial]) }]);
    const r2 = await store.listAudit({ target: g2new.serial, action: 'certificate.renewed' });
    expect(r2.map((r) => r.details)).toEqual([{ via: 'test', replaced: [g2old.serial] }]);
    expect(await store.listAudit({ target: g1b.serial, action: 'certificate.renewed' })).toEqual([]);
    expect((await store.listAudit({ target: g2old.serial, action: 'certificate.superseded' }))[0]!.details).toEqual({ device: 'sup-g2', supersededBy: g2new.serial });
  });

  it('supersede/nothing else live → [] and no audit row', async () => {
    await store.addDevice({ id: 'sup-alone' }, T0);
    const only = await issue('sup-alone');
    const audit = { at: T0, actor: 'x', action: 'certificate.superseded', target: null, details: { device: 'sup-alone' } };
    expect(await store.supersede({ deviceId: 'sup-alone', profile: 'camera', newSerial: only.serial, at: T0, revokeAt: at(DAY) }, audit)).toEqual([]);
    expect(await store.listAudit({ target: only.serial, action: 'certificate.superseded' })).toEqual([]);
  });

  it('dueSuperseded/lists superseded certificates once their revoke time passed, until revoked or expired', async () => {
    await store.addDevice({ id: 'due-1' }, T0);
    const old = await issue('due-1', { notAfter: at(30 * DAY) });
    const shortLived = await issue('due-1', { notAfter: at(2 * DAY) });
    const renewed = await issue('due-1');
    const audit = { at: T0, actor: 'x', action: 'certificate.superseded', target: null, details: {} };
    expect(await store.supersede({ deviceId: 'due-1', profile: 'camera', newSerial: renewed.serial, at: T0, revokeAt: at(DAY) }, audit)).toEqual(sorted([old.serial, shortLived.serial]));

    const due = async (when: Date) => (await store.dueSuperseded(when, 1000)).filter((s) => s === old.serial || s === shortLived.serial || s === renewed.serial);
    expect(await due(at(DAY - 1))).toEqual([]);
    expect(sorted(await due(at(DAY)))).toEqual(sorted([old.serial, shortLived.serial]));
    // expired ones need no revocation
    expect(await due(at(3 * DAY))).toEqual([old.serial]);
    await store.revoke({ crlEntry: crlEntryOf, serial: old.serial, reason: 'superseded', at: at(DAY), actor: 'system:supersede' });
    expect(await due(at(DAY))).toEqual([shortLived.serial]);
    expect(await store.dueSuperseded(at(DAY), 1)).toHaveLength(1);
  });
});

describe('SCEP transactions', () => {
  const tx = (id: string, signer: Buffer, extra: { requestId?: string | null; serial?: string | null } = {}) => ({
    transactionId: id,
    signerSha256: signer,
    csrSha256: randomBytes(32),
    requestId: extra.requestId ?? null,
    serial: extra.serial ?? null,
  });

  it('recordScepTransaction/callers in one group: each recorded; the same transaction twice merges in order (a later serial, the earlier request kept)', async () => {
    const signer = randomBytes(32);
    const other = randomBytes(32);
    const first = tx('tx-group-1', signer, { requestId: '7' });
    const second = { ...tx('tx-group-1', signer, { serial: '0a0b0c' }), csrSha256: first.csrSha256 };
    await Promise.all([store.recordScepTransaction(first, T0), store.recordScepTransaction(tx('tx-group-2', other), T0), store.recordScepTransaction(second, at(1))]);
    const [a, b, none, wrongSigner] = await Promise.all([
      store.getScepTransaction('tx-group-1', signer),
      store.getScepTransaction('tx-group-2', other),
      store.getScepTransaction('tx-group-3', signer),
      store.getScepTransaction('tx-group-1', other),
    ]);
    expect(a).toEqual({ transactionId: 'tx-group-1', signerSha256: signer, csrSha256: first.csrSha256, requestId: '7', serial: '0a0b0c' });
    expect(b).toMatchObject({ transactionId: 'tx-group-2', requestId: null, serial: null });
    expect(none).toBeNull();
    expect(wrongSigner).toBeNull();
  });
});
