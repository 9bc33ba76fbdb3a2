import { beforeAll, describe, expect, it } from 'vitest';
import type { CertificateRecord, IssuerRecord } from '../../src/ca/ports.js';
import type { PgStore } from '../../src/store/pg-store.js';
import { FakeClock } from '../../src/core/clock.js';
import { liftQuarantine, quarantineDevice, retireDevice } from '../../src/ca/containment.js';
import { crlEntryOf } from '../../src/ca/revocation.js';
import { DAY, T0, at, auditFor, certFor, intentFor, randomSerial, useTestStore } from './fixtures.js';

const suite = useTestStore();
let store: PgStore;
let issuer: IssuerRecord;
const clock = new FakeClock(T0);
beforeAll(() => {
  ({ store, issuer } = suite);
});

async function issue(deviceId: string, notAfter = at(365 * DAY)): Promise<CertificateRecord> {
  const intent = intentFor(randomSerial(), issuer.id, deviceId);
  await store.recordIntent(intent, auditFor('certificate.sign.begin', intent.serial));
  await store.commitCertificate(certFor(intent, { notAfter }), auditFor('certificate.issued', intent.serial));
  return (await store.getCertificate(intent.serial))!;
}
const deps = () => ({ store, clock });
const status = async (serial: string) => (await store.getCertificate(serial))!.status;

describe('device quarantine', () => {
  it('holds every valid live certificate, records who and why; lifting releases exactly those', async () => {
    await store.addDevice({ id: 'q-1' }, T0);
    const a = await issue('q-1');
    const b = await issue('q-1');
    const heldBefore = await issue('q-1');
    await store.revoke({ serial: heldBefore.serial, reason: 'certificateHold', at: T0, actor: 'admin', crlEntry: crlEntryOf });
    const expired = await issue('q-1', at(DAY / 2));
    clock.set(at(DAY));

    const q = await quarantineDevice(deps(), 'q-1', '  beaconing to a C2 host  ', 'soc');
    expect(q.held.map((c) => c.serial).sort()).toEqual([a.serial, b.serial].sort());
    expect(q.quarantine).toMatchObject({ deviceId: 'q-1', reason: 'beaconing to a C2 host', actor: 'soc', at: at(DAY), releasedAt: null });
    expect((await store.getDevice('q-1'))!.state).toBe('quarantined');
    expect(await store.openQuarantine('q-1')).toMatchObject({ reason: 'beaconing to a C2 host' });
    expect(await status(expired.serial)).toBe('valid');
    const audit = await store.listAudit({ target: 'q-1', action: 'device.quarantined' });
    expect(audit).toHaveLength(1);
    expect(audit[0]!.actor).toBe('soc');

    await expect(quarantineDevice(deps(), 'q-1', 'again', 'soc')).rejects.toMatchObject({ kind: 'conflict', message: 'device q-1 is quarantined already' });

    clock.set(at(2 * DAY));
    const lifted = await liftQuarantine(deps(), 'q-1', 'soc');
    expect(lifted.released.map((c) => c.serial).sort()).toEqual([a.serial, b.serial].sort());
    expect(lifted.quarantine).toMatchObject({ releasedAt: at(2 * DAY), releasedBy: 'soc' });
    // the hold an admin placed before the quarantine is not the quarantine's to lift
    expect(await status(heldBefore.serial)).toBe('hold');
    expect((await store.getDevice('q-1'))!.state).toBe('active');
    expect(await store.openQuarantine('q-1')).toBeNull();
    await expect(liftQuarantine(deps(), 'q-1', 'soc')).rejects.toMatchObject({ kind: 'conflict', message: 'device q-1 is active, not quarantined' });
  });

  it('a certificate revoked during the quarantine stays revoked when it is lifted', async () => {
    await store.addDevice({ id: 'q-2' }, T0);
    const a = await issue('q-2');
    clock.set(at(DAY));
    await quarantineDevice(deps(), 'q-2', 'suspicious', 'soc');
    await store.revoke({ serial: a.serial, reason: 'keyCompromise', at: at(DAY), actor: 'admin', crlEntry: crlEntryOf });
    expect((await liftQuarantine(deps(), 'q-2', 'soc')).released).toEqual([]);
    expect(await status(a.serial)).toBe('revoked');
  });

  it('bad input: unknown device → notFound, empty or huge reason → badRequest, nothing changed', async () => {
    await expect(quarantineDevice(deps(), 'ghost', 'x', 'soc')).rejects.toMatchObject({ kind: 'notFound' });
    await store.addDevice({ id: 'q-3' }, T0);
    await expect(quarantineDevice(deps(), 'q-3', '   ', 'soc')).rejects.toMatchObject({ kind: 'badRequest' });
    await expect(quarantineDevice(deps(), 'q-3', 'x'.repeat(1001), 'soc')).rejects.toMatchObject({ kind: 'badRequest' });
    // stored and returned verbatim, never executed
    const sqlish = "'); DROP TABLE certificates; --";
    expect((await quarantineDevice(deps(), 'q-3', sqlish, 'soc')).quarantine.reason).toBe(sqlish);
    expect((await store.openQuarantine('q-3'))!.reason).toBe(sqlish);
  });
});

describe('device retirement', () => {
  it('revokes valid and held live certificates (cessationOfOperation), closes a quarantine, and is final', async () => {
    await store.addDevice({ id: 'r-1' }, T0);
    const a = await issue('r-1');
    const b = await issue('r-1');
    clock.set(at(DAY));
    await quarantineDevice(deps(), 'r-1', 'lost', 'soc');
    await store.revoke({ serial: b.serial, reason: 'keyCompromise', at: at(DAY), actor: 'admin', crlEntry: crlEntryOf });
    const revoked = await retireDevice(deps(), 'r-1', 'admin');
    expect(revoked.map((c) => [c.serial, c.status, c.revocationReason])).toEqual([[a.serial, 'revoked', 'cessationOfOperation']]);
    expect((await store.getDevice('r-1'))!.state).toBe('retired');
    expect(await store.openQuarantine('r-1')).toBeNull();
    await expect(retireDevice(deps(), 'r-1', 'admin')).rejects.toMatchObject({ kind: 'conflict' });
    await expect(quarantineDevice(deps(), 'r-1', 'x', 'soc')).rejects.toMatchObject({ kind: 'conflict', message: 'device r-1 is retired' });
  });
});
