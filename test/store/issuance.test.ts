import net from 'node:net';
import { beforeAll, describe, expect, it } from 'vitest';
import type { IssuerRecord } from '../../src/ca/ports.js';
import { PgStore } from '../../src/store/pg-store.js';
import { T0, at, auditFor, certFor, intentFor, randomSerial, useTestStore } from './fixtures.js';

const suite = useTestStore();
let store: PgStore;
let issuer: IssuerRecord;
beforeAll(() => {
  ({ store, issuer } = suite);
});

async function count(sql: string, values: unknown[] = []): Promise<number> {
  const { rows } = await store.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM (${sql}) q`, values);
  return rows[0]!.n;
}

describe('issuance writes', () => {
  it('recordIntent → serial reserved, intent pending, "before" audit row; commitCertificate → issued, certificate and "after" audit row', async () => {
    await store.addDevice({ id: 'rt-dev' }, T0);
    const intent = intentFor(randomSerial(), issuer.id, 'rt-dev');
    expect(await store.recordIntent(intent, auditFor('certificate.sign.begin', intent.serial))).toBe('recorded');

    const pending = await store.listPendingIntents(at(1));
    expect(pending.find((p) => p.serial === intent.serial)).toEqual(intent);
    expect(await store.getCertificate(intent.serial)).toBeNull();
    expect((await store.listAudit({ target: intent.serial })).map((e) => e.action)).toEqual(['certificate.sign.begin']);

    await store.commitCertificate(certFor(intent), auditFor('certificate.issued', intent.serial, at(2)));
    expect((await store.listPendingIntents(at(1))).find((p) => p.serial === intent.serial)).toBeUndefined();
    expect(await store.getCertificate(intent.serial)).toMatchObject({ serial: intent.serial, status: 'valid', deviceId: 'rt-dev' });
    expect((await store.listAudit({ target: intent.serial })).map((e) => e.action)).toEqual(['certificate.sign.begin', 'certificate.issued']);
    const { rows } = await store.pool.query('SELECT state, completed_at FROM issuance_intents WHERE serial = $1', [intent.serial]);
    expect(rows).toEqual([{ state: 'issued', completed_at: at(2) }]);
  });

  it('listPendingIntents → only pending ones created before the cutoff', async () => {
    const old = intentFor(randomSerial(), issuer.id, null, at(-1000));
    const fresh = intentFor(randomSerial(), issuer.id, null, at(1000));
    await Promise.all([old, fresh].map((i) => store.recordIntent(i, auditFor('certificate.sign.begin', i.serial))));
    const serials = (await store.listPendingIntents(T0)).map((p) => p.serial);
    expect(serials).toContain(old.serial);
    expect(serials).not.toContain(fresh.serial);
    await store.failIntent(old.serial, 'test', auditFor('certificate.sign.failed', old.serial));
    expect((await store.listPendingIntents(T0)).map((p) => p.serial)).not.toContain(old.serial);
  });

  it('recordIntent of a taken serial → collision, nothing written for that call', async () => {
    const serial = randomSerial();
    expect(await store.recordIntent(intentFor(serial, issuer.id), auditFor('certificate.sign.begin', serial))).toBe('recorded');
    expect(await store.recordIntent(intentFor(serial, issuer.id), auditFor('certificate.sign.begin', serial))).toBe('collision');
    expect(await count('SELECT 1 FROM issuance_intents WHERE serial = $1', [serial])).toBe(1);
    expect(await count('SELECT 1 FROM audit_log WHERE target = $1', [serial])).toBe(1);
  });

  it('collisions in one concurrent batch → only the colliding callers get collision, the others are recorded', async () => {
    const taken = randomSerial();
    await store.recordIntent(intentFor(taken, issuer.id), auditFor('certificate.sign.begin', taken));
    const dup = randomSerial();
    const serials = [taken, dup, dup, ...Array.from({ length: 20 }, randomSerial)];
    const results = await Promise.all(serials.map((s) => store.recordIntent(intentFor(s, issuer.id), auditFor('certificate.sign.begin', s))));
    expect(results[0]).toBe('collision');
    expect([results[1], results[2]].sort()).toEqual(['collision', 'recorded']);
    expect(results.slice(3).every((r) => r === 'recorded')).toBe(true);
    // one intent and one audit row per distinct serial (the taken one keeps its earlier rows)
    const distinct = new Set(serials).size;
    expect(await count('SELECT 1 FROM issuance_intents WHERE serial = ANY($1)', [serials])).toBe(distinct);
    expect(await count('SELECT 1 FROM audit_log WHERE target = ANY($1)', [serials])).toBe(distinct);
  });

  it('commitCertificate for a failed intent → conflict and no certificate row', async () => {
    const intent = intentFor(randomSerial(), issuer.id);
    await store.recordIntent(intent, auditFor('certificate.sign.begin', intent.serial));
    await store.failIntent(intent.serial, 'abandoned', auditFor('certificate.intent.abandoned', intent.serial));
    await expect(store.commitCertificate(certFor(intent), auditFor('certificate.issued', intent.serial))).rejects.toMatchObject({
      kind: 'conflict',
      message: `the intent for serial ${intent.serial} is failed, not pending`,
    });
    expect(await store.getCertificate(intent.serial)).toBeNull();
    expect((await store.listAudit({ target: intent.serial })).map((e) => e.action)).toEqual(['certificate.sign.begin', 'certificate.intent.abandoned']);
  });

  it('commitCertificate twice → second one conflict (already issued)', async () => {
    const intent = intentFor(randomSerial(), issuer.id);
    await store.recordIntent(intent, auditFor('certificate.sign.begin', intent.serial));
    await store.commitCertificate(certFor(intent), auditFor('certificate.issued', intent.serial));
    await expect(store.commitCertificate(certFor(intent), auditFor('certificate.issued', intent.serial))).rejects.toMatchObject({ kind: 'conflict' });
  });

  it('commitCertificate without an intent → notFound', async () => {
    const intent = intentFor(randomSerial(), issuer.id);
    await expect(store.commitCertificate(certFor(intent), auditFor('certificate.issued', intent.serial))).rejects.toMatchObject({ kind: 'notFound' });
  });

  it('commit batch with one failed intent and one duplicate fingerprint → only those two callers fail', async () => {
    const intents = Array.from({ length: 12 }, () => intentFor(randomSerial(), issuer.id));
    await Promise.all(intents.map((i) => store.recordIntent(i, auditFor('certificate.sign.begin', i.serial))));
    await store.failIntent(intents[3]!.serial, 'abandoned', auditFor('certificate.intent.abandoned', intents[3]!.serial));
    const certs = intents.map((i) => certFor(i));
    certs[7] = { ...certs[7]!, fingerprintSha256: certs[6]!.fingerprintSha256 };
    const results = await Promise.allSettled(certs.map((c) => store.commitCertificate(c, auditFor('certificate.issued', c.serial))));
    const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [i] : []));
    expect(failed.includes(3)).toBe(true);
    // exactly one of the two callers sharing a fingerprint loses
    expect(failed.filter((i) => i === 6 || i === 7)).toHaveLength(1);
    expect(failed).toHaveLength(2);
    expect(results[3]).toMatchObject({ reason: { kind: 'conflict' } });
    const loser = failed.find((i) => i !== 3)!;
    expect(results[loser]).toMatchObject({ reason: { kind: 'conflict', message: 'a certificate with this fingerprint already exists' } });
    expect(await count('SELECT 1 FROM certificates WHERE serial = ANY($1)', [intents.map((i) => i.serial)])).toBe(10);
    // the loser's intent stays pending: its certificate was never stored, so reconciliation fails it
    const { rows } = await store.pool.query('SELECT state FROM issuance_intents WHERE serial = $1', [intents[loser]!.serial]);
    expect(rows[0].state).toBe('pending');
  });

  it('commitCertificate for an unknown device → notFound, others in the batch committed', async () => {
    const intents = [intentFor(randomSerial(), issuer.id, 'no-such-device'), intentFor(randomSerial(), issuer.id)];
    await Promise.all(intents.map((i) => store.recordIntent(i, auditFor('certificate.sign.begin', i.serial))));
    const results = await Promise.allSettled(intents.map((i) => store.commitCertificate(certFor(i), auditFor('certificate.issued', i.serial))));
    expect(results[0]).toMatchObject({ status: 'rejected', reason: { kind: 'notFound' } });
    expect(results[1]).toMatchObject({ status: 'fulfilled' });
  });

  it('failIntent → failed with reason; again → no-op; of an issued intent → conflict; unknown → notFound', async () => {
    const a = intentFor(randomSerial(), issuer.id);
    await store.recordIntent(a, auditFor('certificate.sign.begin', a.serial));
    await store.failIntent(a.serial, 'signing failed: boom', auditFor('certificate.sign.failed', a.serial, at(3)));
    const { rows } = await store.pool.query('SELECT state, failure, completed_at FROM issuance_intents WHERE serial = $1', [a.serial]);
    expect(rows).toEqual([{ state: 'failed', failure: 'signing failed: boom', completed_at: at(3) }]);
    await store.failIntent(a.serial, 'again', auditFor('certificate.sign.failed', a.serial));
    expect(await count('SELECT 1 FROM audit_log WHERE target = $1', [a.serial])).toBe(2);

    const b = intentFor(randomSerial(), issuer.id);
    await store.recordIntent(b, auditFor('certificate.sign.begin', b.serial));
    await store.commitCertificate(certFor(b), auditFor('certificate.issued', b.serial));
    await expect(store.failIntent(b.serial, 'late', auditFor('x', b.serial))).rejects.toMatchObject({ kind: 'conflict' });
    await expect(store.failIntent('7e7e7e', 'late', auditFor('x', '7e7e7e'))).rejects.toMatchObject({ kind: 'notFound' });
  });

  it('mixed batch of intents, commits and failures at once → each caller gets its own result', async () => {
    const toCommit = Array.from({ length: 8 }, () => intentFor(randomSerial(), issuer.id));
    const toFail = Array.from({ length: 8 }, () => intentFor(randomSerial(), issuer.id));
    await Promise.all([...toCommit, ...toFail].map((i) => store.recordIntent(i, auditFor('certificate.sign.begin', i.serial))));
    const fresh = Array.from({ length: 8 }, () => intentFor(randomSerial(), issuer.id));
    const results = await Promise.all([
      ...toCommit.map((i) => store.commitCertificate(certFor(i), auditFor('certificate.issued', i.serial)).then(() => 'committed')),
      ...toFail.map((i) => store.failIntent(i.serial, 'x', auditFor('certificate.sign.failed', i.serial)).then(() => 'failed')),
      ...fresh.map((i) => store.recordIntent(i, auditFor('certificate.sign.begin', i.serial))),
    ]);
    expect(results).toEqual([...Array(8).fill('committed'), ...Array(8).fill('failed'), ...Array(8).fill('recorded')]);
  });

  it('a mixed batch is one group transaction sent in one socket write (BEGIN, its statements and COMMIT corked together)', async () => {
    const toCommit = Array.from({ length: 4 }, () => intentFor(randomSerial(), issuer.id));
    const toFail = Array.from({ length: 4 }, () => intentFor(randomSerial(), issuer.id));
    await Promise.all([...toCommit, ...toFail].map((i) => store.recordIntent(i, auditFor('certificate.sign.begin', i.serial))));
    const fresh = Array.from({ length: 4 }, () => intentFor(randomSerial(), issuer.id));
    const proto = net.Socket.prototype as unknown as Record<'_write' | '_writev', (...a: unknown[]) => unknown>;
    const original = { _write: proto._write, _writev: proto._writev };
    let writes = 0;
    for (const k of ['_write', '_writev'] as const) {
      proto[k] = function (this: unknown, ...a: unknown[]) {
        writes++;
        return original[k].apply(this, a);
      };
    }
    try {
      // issued in one turn of the event loop: one flush of intents, commits and failures (5 statements)
      await Promise.all([
        ...toCommit.map((i) => store.commitCertificate(certFor(i), auditFor('certificate.issued', i.serial))),
        ...toFail.map((i) => store.failIntent(i.serial, 'x', auditFor('certificate.sign.failed', i.serial))),
        ...fresh.map((i) => store.recordIntent(i, auditFor('certificate.sign.begin', i.serial))),
      ]);
    } finally {
      Object.assign(proto, original);
    }
    expect(writes).toBe(1);
    expect(await count("SELECT 1 FROM certificates WHERE serial = ANY($1)", [toCommit.map((i) => i.serial)])).toBe(4);
  });

  it('500 concurrent recordIntent + commitCertificate flows over the pool → 500 distinct serials and 500 rows', async () => {
    const N = 500;
    const devices = Array.from({ length: 50 }, (_, i) => `bulk-${i}`);
    for (const id of devices) await store.addDevice({ id }, T0);
    const flows = Array.from({ length: N }, async (_, i) => {
      const intent = intentFor(randomSerial(), issuer.id, devices[i % devices.length]!, at(i));
      const r = await store.recordIntent(intent, auditFor('certificate.sign.begin', intent.serial, at(i)));
      expect(r).toBe('recorded');
      await store.commitCertificate(certFor(intent), auditFor('certificate.issued', intent.serial, at(i)));
      return intent.serial;
    });
    const serials = await Promise.all(flows);
    expect(new Set(serials).size).toBe(N);
    expect(await count('SELECT 1 FROM certificates WHERE serial = ANY($1)', [serials])).toBe(N);
    expect(await count("SELECT 1 FROM issuance_intents WHERE serial = ANY($1) AND state = 'issued'", [serials])).toBe(N);
    expect(await count('SELECT 1 FROM audit_log WHERE target = ANY($1)', [serials])).toBe(2 * N);
    const { rows } = await store.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM devices WHERE id = ANY($1) AND last_enrolled_at IS NOT NULL', [
      devices,
    ]);
    expect(rows[0]!.n).toBe(devices.length);
  });

  it('close → waits for queued writes, then refuses new ones with unavailable', async () => {
    const local = await PgStore.open({ connectionString: suite.db.connectionString, max: 2 });
    const intents = Array.from({ length: 20 }, () => intentFor(randomSerial(), issuer.id));
    const writes = intents.map((i) => local.recordIntent(i, auditFor('certificate.sign.begin', i.serial)));
    await local.close();
    expect(await Promise.all(writes)).toEqual(Array(20).fill('recorded'));
    await expect(local.recordIntent(intentFor(randomSerial(), issuer.id), auditFor('x', 'y'))).rejects.toMatchObject({ kind: 'unavailable' });
  });
});
