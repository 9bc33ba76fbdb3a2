/**
 * The NAC change feed on a real database (migration 0014): a first read from the zero cursor
 * returns every device; afterwards only devices whose record or certificate status changed come
 * back; pages continue after their last change; and a change made by a transaction still open when
 * the feed is read is not skipped — it is returned by the read after it commits.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import type { IssuerRecord, NacCursor } from '../../src/ca/ports.js';
import type { PgStore } from '../../src/store/pg-store.js';
import { crlEntryOf } from '../../src/ca/revocation.js';
import { DAY, T0, at, auditFor, certFor, intentFor, randomSerial, useTestStore } from './fixtures.js';

const suite = useTestStore();
let store: PgStore;
let issuer: IssuerRecord;
beforeAll(() => {
  ({ store, issuer } = suite);
});

async function issue(deviceId: string): Promise<string> {
  const intent = intentFor(randomSerial(), issuer.id, deviceId);
  await store.recordIntent(intent, auditFor('certificate.sign.begin', intent.serial));
  await store.commitCertificate(certFor(intent, { notAfter: at(365 * DAY) }), auditFor('certificate.issued', intent.serial));
  return intent.serial;
}

/** Reads the feed to its end from `from`, page by page; the ids in order and the final cursor. */
async function drain(from: NacCursor, limit = 1000): Promise<{ ids: string[]; cursor: NacCursor }> {
  const ids: string[] = [];
  let cursor = from;
  for (;;) {
    const { devices, horizon } = await store.nacChanges(cursor, limit);
    ids.push(...devices.map((d) => d.device.id));
    if (devices.length < limit) return { ids, cursor: { xid: horizon, id: '' } };
    const last = devices[devices.length - 1]!;
    cursor = { xid: last.xid, id: last.device.id };
  }
}

const ZERO: NacCursor = { xid: '0', id: '' };

/**
 * Waits until every change made so far is below the server's snapshot horizon. The feed never
 * reads past a transaction still open anywhere on the server (on a shared server, another test's),
 * so a change arrives once those ended — never skipped, but maybe a read later. Tests that expect
 * an exact answer wait for that first.
 */
async function settle(): Promise<void> {
  const { rows } = await store.pool.query<{ x: string | null }>(
    'SELECT greatest((SELECT max(nac_xid) FROM devices), (SELECT max(xid) FROM nac_changes))::text AS x',
  );
  const last = rows[0]!.x;
  if (last === null) return;
  const deadline = Date.now() + 15_000;
  for (;;) {
    const r = await store.pool.query<{ past: boolean }>('SELECT pg_snapshot_xmin(pg_current_snapshot()) > $1::xid8 AS past', [last]);
    if (r.rows[0]!.past) return;
    if (Date.now() > deadline) throw new Error('the snapshot horizon did not pass the last change in 15 s');
    await new Promise((res) => setTimeout(res, 50));
  }
}

describe('NAC change feed', () => {
  let cursor: NacCursor;
  let serial: string;

  it('from zero: every device, with its current certificate', async () => {
    for (const id of ['nac-a', 'nac-b', 'nac-c']) await store.addDevice({ id, macs: ['aa:bb:cc:00:00:01'] }, T0);
    serial = await issue('nac-a');
    await settle();
    const first = await store.nacChanges(ZERO, 100);
    expect(first.devices.map((d) => d.device.id).sort()).toEqual(['nac-a', 'nac-b', 'nac-c']);
    expect(first.devices.find((d) => d.device.id === 'nac-a')!.device.current).toMatchObject({ serial, status: 'valid' });
    cursor = (await drain(ZERO)).cursor;
    expect((await drain(cursor)).ids).toEqual([]);
  });

  it('a record update, an issuance and a status change each bring the device back; nothing else comes back', async () => {
    await store.updateDevice('nac-b', { segment: 'bldg-9' }, at(DAY));
    await settle();
    let r = await drain(cursor);
    expect(r.ids).toEqual(['nac-b']);
    cursor = r.cursor;

    await store.revoke({ serial, reason: 'certificateHold', at: at(DAY), actor: 'soc', crlEntry: crlEntryOf });
    await settle();
    r = await drain(cursor);
    expect(r.ids).toEqual(['nac-a']);
    cursor = r.cursor;

    await issue('nac-c');
    await settle();
    r = await drain(cursor);
    expect(r.ids).toEqual(['nac-c']);
    cursor = r.cursor;
  });

  it('pages of one continue after their last change and end with the same devices as one read', async () => {
    for (const id of ['nac-a', 'nac-b', 'nac-c']) await store.updateDevice(id, { firmware: '2.0' }, at(2 * DAY));
    await settle();
    const paged = await drain(cursor, 1);
    const whole = await drain(cursor, 1000);
    expect(paged.ids).toEqual(whole.ids);
    expect([...paged.ids].sort()).toEqual(['nac-a', 'nac-b', 'nac-c']);
    cursor = whole.cursor;
  });

  it('a change of a transaction open during a read is returned after it commits, not skipped (nor are later ones)', async () => {
    const client = new pg.Client({ connectionString: suite.db.connectionString });
    await client.connect();
    try {
      await client.query('BEGIN');
      await client.query("UPDATE devices SET model = 'late' WHERE id = 'nac-b'");
      // a later transaction commits first
      await store.updateDevice('nac-c', { model: 'early' }, at(3 * DAY));
      // the feed never reads past a transaction that is still open: the committed change waits too
      const during = await drain(cursor);
      expect(during.ids).toEqual([]);
      await client.query('COMMIT');
      await settle();
      const after = await drain(during.cursor);
      expect(after.ids).toEqual(['nac-b', 'nac-c']);
      expect((await store.nacChanges({ xid: '0', id: '' }, 100)).devices.find((d) => d.device.id === 'nac-b')!.device.model).toBe('late');
    } finally {
      await client.end();
    }
  });
});

describe('NAC change feed: pruning redundant change rows', () => {
  const rowsOf = async (id: string) => Number((await store.pool.query<{ n: string }>('SELECT count(*) AS n FROM nac_changes WHERE device_id = $1', [id])).rows[0]!.n);
  /** The whole feed from a cursor: each device with the xid of its latest change and its certificate status. */
  const feed = async (from: NacCursor) => {
    const out: string[] = [];
    let c = from;
    for (;;) {
      const { devices, horizon } = await store.nacChanges(c, 1000);
      out.push(...devices.map((d) => `${d.device.id}@${d.xid}:${d.device.current?.status ?? '-'}`));
      if (devices.length < 1000) return { out, horizon };
      c = { xid: devices[devices.length - 1]!.xid, id: devices[devices.length - 1]!.device.id };
    }
  };

  it('hold/release cycles leave one row per device, the feed reads the same from any cursor, and a record change makes it none', async () => {
    await store.addDevice({ id: 'nac-p' }, T0);
    const serial = await issue('nac-p');
    await settle();
    const mid = { xid: (await store.nacChanges(ZERO, 1)).horizon, id: '' };
    for (let i = 0; i < 3; i++) {
      await store.revoke({ serial, reason: 'certificateHold', at: at(DAY), actor: 'soc', crlEntry: crlEntryOf });
      await store.release({ serial, at: at(DAY), actor: 'soc' });
    }
    expect(await rowsOf('nac-p')).toBe(6);
    await settle();
    const before = [await feed(ZERO), await feed(mid)];
    expect(before[1]!.out.some((x) => x.startsWith('nac-p@'))).toBe(true);

    expect(await store.pruneNacChanges()).toBeGreaterThanOrEqual(5);
    expect(await rowsOf('nac-p')).toBe(1);
    const after = [await feed(ZERO), await feed(mid)];
    expect(after.map((f) => f.out)).toEqual(before.map((f) => f.out));

    // the device's own record changed since: its last change row is redundant too
    await store.updateDevice('nac-p', { model: 'cam-2' }, at(2 * DAY));
    await settle();
    await store.pruneNacChanges();
    expect(await rowsOf('nac-p')).toBe(0);
    expect((await feed(mid)).out.filter((x) => x.startsWith('nac-p@'))).toHaveLength(1);
  });

  it('a newer change above the snapshot horizon (a transaction still open elsewhere) does not prune the older one until it is below', async () => {
    await store.addDevice({ id: 'nac-q' }, T0);
    const serial = await issue('nac-q');
    await store.revoke({ serial, reason: 'certificateHold', at: at(DAY), actor: 'soc', crlEntry: crlEntryOf });
    await settle();
    const open = new pg.Client({ connectionString: suite.db.connectionString });
    await open.connect();
    try {
      await open.query('BEGIN');
      await open.query('SELECT pg_current_xact_id()'); // holds the horizon below every later transaction
      await store.release({ serial, at: at(DAY), actor: 'soc' });
      expect(await rowsOf('nac-q')).toBe(2);
      await store.pruneNacChanges();
      expect(await rowsOf('nac-q')).toBe(2); // the release is not yet below the horizon: the hold's row stays
      await open.query('COMMIT');
    } finally {
      await open.end();
    }
    await settle();
    await store.pruneNacChanges();
    expect(await rowsOf('nac-q')).toBe(1);
  });
});
