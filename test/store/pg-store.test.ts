import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import type { CertificateRecord, IssuerRecord } from '../../src/ca/ports.js';
import { PgStore } from '../../src/store/pg-store.js';
import { DAY, T0, at, auditFor, certFor, intentFor, issuerInput, randomSerial, useTestStore } from './fixtures.js';
import { crlEntryOf } from '../../src/ca/revocation.js';

const suite = useTestStore();
let store: PgStore;
let issuer: IssuerRecord;
beforeAll(() => {
  ({ store, issuer } = suite);
});

/** Records and commits one certificate; returns it as stored. */
async function issue(deviceId: string | null, opts: { spki?: Buffer; notAfter?: Date; profile?: string } = {}): Promise<CertificateRecord> {
  const intent = { ...intentFor(randomSerial(), issuer.id, deviceId), ...(opts.profile ? { profile: opts.profile } : {}) };
  expect(await store.recordIntent(intent, auditFor('certificate.sign.begin', intent.serial))).toBe('recorded');
  await store.commitCertificate(certFor(intent, opts), auditFor('certificate.issued', intent.serial));
  return (await store.getCertificate(intent.serial))!;
}

describe('PgStore.open', () => {
  it('unreachable database → unavailable', async () => {
    await expect(PgStore.open({ connectionString: 'postgresql://postgres@127.0.0.1:1/none', poolConfig: { connectionTimeoutMillis: 2000 } })).rejects.toMatchObject({
      kind: 'unavailable',
    });
  });

  it('its connections plan prepared statements once (generic plans), keeping options of their own', async () => {
    const own = await PgStore.open({ connectionString: suite.db.connectionString, poolConfig: { options: '-c statement_timeout=4321' }, max: 1 });
    try {
      const { rows } = await own.pool.query<{ mode: string; timeout: string }>(
        "SELECT current_setting('plan_cache_mode') AS mode, current_setting('statement_timeout') AS timeout",
      );
      expect(rows[0]).toEqual({ mode: 'force_generic_plan', timeout: '4321ms' });
      // a named statement run twice: the second run is not planned again
      const client = await own.pool.connect();
      try {
        for (let i = 0; i < 2; i++) await client.query({ name: 'plan_once', text: 'SELECT count(*) FROM devices WHERE id = ANY($1::text[])', values: [['a', 'b']] });
        const { rows: plans } = await client.query<{ generic_plans: string; custom_plans: string }>(
          "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE name = 'plan_once'",
        );
        expect(plans[0]).toEqual({ generic_plans: '2', custom_plans: '0' });
      } finally {
        client.release();
      }
    } finally {
      await own.close();
    }
  });
});

describe('devices', () => {
  it('add then get → same record, active, timestamps from the caller', async () => {
    const added = await store.addDevice({ id: 'dev-crud-1', macs: ['00:11:22:33:44:55'], model: 'X1', profile: 'sensor' }, T0);
    expect(added).toEqual({
      id: 'dev-crud-1',
      macs: ['00:11:22:33:44:55'],
      serialNumber: null,
      model: 'X1',
      firmware: null,
      profile: 'sensor',
      state: 'active',
      createdAt: T0,
      updatedAt: T0,
      lastEnrolledAt: null,
      restrictedProfile: null,
      maxValidityMs: null,
      segment: null,
      nacRole: null,
      firstSeenAt: null,
    });
    expect(await store.getDevice('dev-crud-1')).toEqual(added);
  });

  it('add of an existing id → conflict', async () => {
    await store.addDevice({ id: 'dev-dup' }, T0);
    await expect(store.addDevice({ id: 'dev-dup' }, T0)).rejects.toMatchObject({ kind: 'conflict', message: 'device dev-dup already exists' });
  });

  it('get of an unknown id → null', async () => {
    expect(await store.getDevice('nope')).toBeNull();
  });

  it('update → only the patched fields change, null clears, updated_at moves', async () => {
    await store.addDevice({ id: 'dev-upd', model: 'X1', firmware: '1.0', serialNumber: 'SN1' }, T0);
    const updated = await store.updateDevice('dev-upd', { firmware: '2.0', serialNumber: null, state: 'quarantined' }, at(DAY));
    expect(updated).toMatchObject({ model: 'X1', firmware: '2.0', serialNumber: null, state: 'quarantined', createdAt: T0, updatedAt: at(DAY) });
  });

  it('update of an unknown id → notFound', async () => {
    await expect(store.updateDevice('ghost', { model: 'Y' }, T0)).rejects.toMatchObject({ kind: 'notFound' });
  });

  it('list → filtered by profile/model/state, ordered by id, limited', async () => {
    await store.addDevice({ id: 'list-b', profile: 'cam', model: 'M' }, T0);
    await store.addDevice({ id: 'list-a', profile: 'cam', model: 'M' }, T0);
    await store.addDevice({ id: 'list-c', profile: 'cam', model: 'N' }, T0);
    await store.updateDevice('list-c', { state: 'retired' }, T0);
    expect((await store.listDevices({ profile: 'cam' })).map((d) => d.id)).toEqual(['list-a', 'list-b', 'list-c']);
    expect((await store.listDevices({ profile: 'cam', model: 'M' })).map((d) => d.id)).toEqual(['list-a', 'list-b']);
    expect((await store.listDevices({ profile: 'cam', state: 'retired' })).map((d) => d.id)).toEqual(['list-c']);
    expect((await store.listDevices({ profile: 'cam', limit: 1 })).map((d) => d.id)).toEqual(['list-a']);
  });
});

describe('issuers', () => {
  it('upsert by name → same id, fields replaced; list ordered by id', async () => {
    const first = await store.upsertIssuer(issuerInput('upsert-ca'));
    const again = await store.upsertIssuer({ ...issuerInput('upsert-ca'), active: false });
    expect(again.id).toBe(first.id);
    expect(again.active).toBe(false);
    const names = (await store.listIssuers()).map((i) => i.name);
    expect(names.indexOf('device-ca')).toBeLessThan(names.indexOf('upsert-ca'));
    expect((await store.listIssuers()).find((i) => i.name === 'upsert-ca')).toEqual(again);
  });
});

describe('certificates', () => {
  it('getCertificate → the committed certificate with its issuer name and status valid', async () => {
    await store.addDevice({ id: 'cert-dev-1' }, T0);
    const intent = intentFor(randomSerial(), issuer.id, 'cert-dev-1');
    await store.recordIntent(intent, auditFor('certificate.sign.begin', intent.serial));
    const cert = certFor(intent);
    await store.commitCertificate(cert, auditFor('certificate.issued', intent.serial, at(5)));
    expect(await store.getCertificate(intent.serial)).toEqual({
      ...cert,
      issuerName: 'device-ca',
      status: 'valid',
      createdAt: at(5),
      revokedAt: null,
      revocationReason: null,
      invalidityDate: null,
      supersededBy: null,
      supersedeRevokeAt: null,
    });
    expect((await store.getDevice('cert-dev-1'))!.lastEnrolledAt).toEqual(at(5));
  });

  it('getCertificate of an unknown serial → null', async () => {
    expect(await store.getCertificate('7f00')).toBeNull();
  });

  it('listCertificates → filters AND-ed, ordered by created_at then serial', async () => {
    await store.addDevice({ id: 'list-dev' }, T0);
    const soon = await issue('list-dev', { notAfter: at(10 * DAY), profile: 'lp' });
    const later = await issue('list-dev', { notAfter: at(100 * DAY), profile: 'lp' });
    const expired = await issue('list-dev', { notAfter: at(-DAY), profile: 'lp' });
    const serials = (rs: CertificateRecord[]) => rs.map((r) => r.serial).sort();

    expect(serials(await store.listCertificates({ deviceId: 'list-dev' }))).toEqual([soon.serial, later.serial, expired.serial].sort());
    expect(serials(await store.listCertificates({ profile: 'lp', expiringBefore: at(30 * DAY), notExpiredAt: T0 }))).toEqual([soon.serial]);
    expect(serials(await store.listCertificates({ profile: 'lp', notExpiredAt: T0 }))).toEqual([soon.serial, later.serial].sort());
    // validity is inclusive of notAfter (RFC 5280 §4.1.2.5)
    expect(serials(await store.listCertificates({ profile: 'lp', notExpiredAt: at(10 * DAY) }))).toEqual([soon.serial, later.serial].sort());
    expect(await store.listCertificates({ profile: 'lp', issuerId: issuer.id + 1000 })).toEqual([]);
    await store.revoke({ crlEntry: crlEntryOf, serial: later.serial, reason: 'superseded', at: T0, actor: 'test' });
    expect(serials(await store.listCertificates({ profile: 'lp', status: 'revoked' }))).toEqual([later.serial]);
    expect(serials(await store.listCertificates({ profile: 'lp', status: 'valid', issuerId: issuer.id }))).toEqual([soon.serial, expired.serial].sort());

    const all = await store.listCertificates({ profile: 'lp' });
    const order = [...all].sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime() || (a.serial < b.serial ? -1 : 1));
    expect(all.map((r) => r.serial)).toEqual(order.map((r) => r.serial));
    expect(await store.listCertificates({ profile: 'lp', limit: 2 })).toHaveLength(2);
  });

  it('findBySpki → every status, not the expired ones', async () => {
    await store.addDevice({ id: 'spki-dev' }, T0);
    const spki = randomBytes(32);
    const a = await issue('spki-dev', { spki });
    const b = await issue(null, { spki });
    await issue('spki-dev', { spki, notAfter: at(-1) });
    await store.revoke({ crlEntry: crlEntryOf, serial: b.serial, reason: 'keyCompromise', at: T0, actor: 'test' });
    const found = await store.findBySpki(spki, T0);
    expect(found.sort((x, y) => (x.serial < y.serial ? -1 : 1))).toEqual(
      [
        { serial: a.serial, deviceId: 'spki-dev', status: 'valid' },
        { serial: b.serial, deviceId: null, status: 'revoked' },
      ].sort((x, y) => (x.serial < y.serial ? -1 : 1)),
    );
    expect(await store.findBySpki(randomBytes(32), T0)).toEqual([]);
  });
});

describe('revoke', () => {
  it('revoke/valid → revoked record returned, history and audit rows written', async () => {
    const c = await issue(null);
    const rec = await store.revoke({ crlEntry: crlEntryOf, serial: c.serial, reason: 'keyCompromise', at: at(DAY), invalidityDate: at(-DAY), actor: 'alice' });
    expect(rec).toMatchObject({ serial: c.serial, status: 'revoked', revocationReason: 'keyCompromise', revokedAt: at(DAY), invalidityDate: at(-DAY) });
    const { rows } = await store.pool.query('SELECT reason, revoked_at, actor FROM revocations WHERE serial = $1', [c.serial]);
    expect(rows).toEqual([{ reason: 'keyCompromise', revoked_at: at(DAY), actor: 'alice' }]);
    const audit = await store.listAudit({ target: c.serial, action: 'certificate.revoked' });
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ actor: 'alice', at: at(DAY), details: { reason: 'keyCompromise', previousStatus: 'valid' } });
  });

  it('revoke/twice → conflict', async () => {
    const c = await issue(null);
    await store.revoke({ crlEntry: crlEntryOf, serial: c.serial, reason: 'superseded', at: T0, actor: 'test' });
    await expect(store.revoke({ crlEntry: crlEntryOf, serial: c.serial, reason: 'keyCompromise', at: T0, actor: 'test' })).rejects.toMatchObject({
      kind: 'conflict',
      message: `certificate ${c.serial} is already revoked`,
    });
    expect((await store.getCertificate(c.serial))!.revocationReason).toBe('superseded');
  });

  it('revoke/unknown serial → notFound', async () => {
    await expect(store.revoke({ crlEntry: crlEntryOf, serial: '7f7f7f', reason: 'unspecified', at: T0, actor: 'test' })).rejects.toMatchObject({
      kind: 'notFound',
      message: 'no certificate with serial 7f7f7f',
    });
  });

  it('hold/valid → status hold', async () => {
    const c = await issue(null);
    const rec = await store.revoke({ crlEntry: crlEntryOf, serial: c.serial, reason: 'certificateHold', at: T0, actor: 'test' });
    expect(rec).toMatchObject({ status: 'hold', revocationReason: 'certificateHold', revokedAt: T0 });
    expect(await store.listAudit({ target: c.serial, action: 'certificate.held' })).toHaveLength(1);
  });

  it('hold/held → conflict', async () => {
    const c = await issue(null);
    await store.revoke({ crlEntry: crlEntryOf, serial: c.serial, reason: 'certificateHold', at: T0, actor: 'test' });
    await expect(store.revoke({ crlEntry: crlEntryOf, serial: c.serial, reason: 'certificateHold', at: T0, actor: 'test' })).rejects.toMatchObject({ kind: 'conflict' });
  });

  it('revoke/held → revoked, reason replaced, date of the hold kept, both changes in the history', async () => {
    const c = await issue(null);
    await store.revoke({ crlEntry: crlEntryOf, serial: c.serial, reason: 'certificateHold', at: T0, actor: 'test' });
    const rec = await store.revoke({ crlEntry: crlEntryOf, serial: c.serial, reason: 'keyCompromise', at: at(DAY), actor: 'test' });
    expect(rec).toMatchObject({ status: 'revoked', revocationReason: 'keyCompromise', revokedAt: T0 });
    const { rows } = await store.pool.query('SELECT reason FROM revocations WHERE serial = $1 ORDER BY id', [c.serial]);
    expect(rows.map((r) => r.reason)).toEqual(['certificateHold', 'keyCompromise']);
  });

  it('hold/revoked → conflict', async () => {
    const c = await issue(null);
    await store.revoke({ crlEntry: crlEntryOf, serial: c.serial, reason: 'unspecified', at: T0, actor: 'test' });
    await expect(store.revoke({ crlEntry: crlEntryOf, serial: c.serial, reason: 'certificateHold', at: T0, actor: 'test' })).rejects.toMatchObject({ kind: 'conflict' });
  });

  it('revoke/concurrent twice → exactly one succeeds, one history row', async () => {
    const c = await issue(null);
    const results = await Promise.allSettled([
      store.revoke({ crlEntry: crlEntryOf, serial: c.serial, reason: 'superseded', at: T0, actor: 'a' }),
      store.revoke({ crlEntry: crlEntryOf, serial: c.serial, reason: 'keyCompromise', at: T0, actor: 'b' }),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(results.find((r) => r.status === 'rejected')).toMatchObject({ reason: { kind: 'conflict' } });
    const { rows } = await store.pool.query('SELECT count(*)::int AS n FROM revocations WHERE serial = $1', [c.serial]);
    expect(rows[0].n).toBe(1);
  });
});

describe('audit', () => {
  it('appendAudit then listAudit → entries in order with ids; limit keeps the latest', async () => {
    const entries = [1, 2, 3].map((i) => ({ at: at(i), actor: 'ops', action: 'test.audit', target: 'audit-target', details: { i } }));
    await store.appendAudit(entries);
    await store.appendAudit([]);
    const listed = await store.listAudit({ target: 'audit-target' });
    expect(listed.map(({ id: _id, ...e }) => e)).toEqual(entries);
    expect(listed[0]!.id).toBeLessThan(listed[1]!.id);
    expect((await store.listAudit({ action: 'test.audit', limit: 2 })).map((e) => e.details.i)).toEqual([2, 3]);
  });
});

describe('CRLs', () => {
  it('nextCrlNumber/concurrent callers → distinct, gap-free numbers per issuer', async () => {
    const other = await store.upsertIssuer(issuerInput('crl-ca'));
    const numbers = await Promise.all(Array.from({ length: 20 }, () => store.nextCrlNumber(other.id)));
    expect([...numbers].sort((a, b) => Number(a - b))).toEqual(Array.from({ length: 20 }, (_, i) => BigInt(i + 1)));
  });

  it('saveCrl then latestCrl → the highest number of that issuer, kind and shard', async () => {
    const ca = await store.upsertIssuer(issuerInput('crl-latest-ca'));
    const crl = (number: bigint, kind: 'full' | 'delta') => ({ issuerId: ca.id, number, kind, shard: 0, thisUpdate: T0, nextUpdate: at(DAY), der: randomBytes(64) });
    await store.saveCrl(crl(1n, 'full'));
    const second = crl(2n, 'full');
    await store.saveCrl(second);
    await store.saveCrl(crl(3n, 'delta'));
    expect(await store.latestCrl('crl-latest-ca', 'full')).toEqual(second);
    expect((await store.latestCrl('crl-latest-ca', 'delta'))!.number).toBe(3n);
    expect(await store.latestCrl('crl-latest-ca', 'full', 1)).toBeNull();
    await expect(store.saveCrl(crl(2n, 'delta'))).rejects.toMatchObject({ kind: 'conflict' });
  });

  it('listRevoked → revoked and held certificates of the issuer not expired at the instant', async () => {
    const ca = await store.upsertIssuer(issuerInput('crl-list-ca'));
    const mk = async (notAfter: Date) => {
      const intent = intentFor(randomSerial(), ca.id);
      await store.recordIntent(intent, auditFor('certificate.sign.begin', intent.serial));
      await store.commitCertificate(certFor(intent, { notAfter }), auditFor('certificate.issued', intent.serial));
      return intent.serial;
    };
    const [revoked, held, valid, expired] = [await mk(at(DAY)), await mk(at(DAY)), await mk(at(DAY)), await mk(at(-DAY))];
    await store.revoke({ crlEntry: crlEntryOf, serial: revoked!, reason: 'keyCompromise', at: T0, actor: 'test' });
    await store.revoke({ crlEntry: crlEntryOf, serial: held!, reason: 'certificateHold', at: T0, actor: 'test' });
    await store.revoke({ crlEntry: crlEntryOf, serial: expired!, reason: 'superseded', at: T0, actor: 'test' });
    const listed = await store.listRevoked(ca.id, T0);
    expect(listed.map((e) => e.serial).sort()).toEqual([revoked!, held!].sort());
    expect(listed.find((e) => e.serial === held)).toMatchObject({ reason: 'certificateHold', revokedAt: T0 });
    expect(listed.map((e) => e.serial)).not.toContain(valid);
  });
});
