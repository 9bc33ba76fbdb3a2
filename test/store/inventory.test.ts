/**
 * The device inventory on a real database with the shipped profiles: criticality and NAC role from
 * the profile (or the device's own role), the current certificate, first seen, and staleness as an
 * injected clock crosses the renewal window and expiry; filters (firmware range, segment,
 * criticality, stale) and pagination across judged filters.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { IssuerRecord } from '../../src/ca/ports.js';
import type { PgStore } from '../../src/store/pg-store.js';
import { loadConfig } from '../../src/config/load.js';
import { inventoryOf, listInventory } from '../../src/enrollment/inventory.js';
import { DAY, T0, at, auditFor, certFor, intentFor, randomSerial, useTestStore } from './fixtures.js';

const config = loadConfig('ca-config');
const suite = useTestStore();
let store: PgStore;
let issuer: IssuerRecord;
beforeAll(async () => {
  ({ store, issuer } = suite);
  await store.addDevice({ id: 'inv-cam', model: 'X100', firmware: '2.3.0', profile: 'camera', segment: 'bldg-1/vlan-30' }, T0);
  await store.addDevice({ id: 'inv-cam2', model: 'X100', firmware: '2.5', profile: 'camera', segment: 'bldg-2' }, T0);
  await store.addDevice({ id: 'inv-med', model: 'P7', firmware: '1.0', profile: 'medical-device' }, T0);
  await store.addDevice({ id: 'inv-new', model: 'X100', firmware: '2.0', profile: 'camera' }, T0);
  await store.addDevice({ id: 'inv-sensor', model: 'S1', profile: 'sensor', nacRole: 'sensors-lab' }, T0);
});

async function issue(deviceId: string, profile: string, notBefore: Date, validityMs: number): Promise<string> {
  const intent = { ...intentFor(randomSerial(), issuer.id, deviceId, notBefore), profile };
  await store.recordIntent(intent, auditFor('certificate.sign.begin', intent.serial, notBefore));
  await store.commitCertificate(certFor(intent, { notAfter: new Date(notBefore.getTime() + validityMs) }), auditFor('certificate.issued', intent.serial, notBefore));
  return intent.serial;
}

const list = async (now: Date, f: Parameters<typeof listInventory>[1] = {}) => (await listInventory({ store, config }, f, now)).entries;
const ids = (es: Array<{ device: { id: string } }>) => es.map((e) => e.device.id);

describe('device inventory', () => {
  it('criticality and NAC role come from the profile; the device may override the role; first seen is the first certificate', async () => {
    const camSerial = await issue('inv-cam', 'camera', at(DAY), 365 * DAY);
    await issue('inv-med', 'medical-device', at(DAY), 30 * DAY);
    await issue('inv-cam2', 'camera', at(DAY), 365 * DAY);
    await issue('inv-sensor', 'sensor', at(DAY), 730 * DAY);
    const es = await list(at(2 * DAY));
    const by = new Map(es.map((e) => [e.device.id, e]));
    expect(by.get('inv-med')).toMatchObject({ criticality: 'high', nacRole: 'clinical-devices', health: 'current', stale: false });
    expect(by.get('inv-cam')).toMatchObject({ criticality: 'normal', nacRole: 'cameras', health: 'current' });
    expect(by.get('inv-cam')!.current).toMatchObject({ serial: camSerial, profile: 'camera', notAfter: at(366 * DAY) });
    expect(by.get('inv-cam')!.device.firstSeenAt).toEqual(at(DAY));
    expect(by.get('inv-cam')!.device.segment).toBe('bldg-1/vlan-30');
    expect(by.get('inv-sensor')).toMatchObject({ criticality: 'low', nacRole: 'sensors-lab' });
    expect(by.get('inv-new')).toMatchObject({ current: null, health: 'none', stale: false, renewalFrom: null });
    expect(by.get('inv-new')!.device.firstSeenAt).toBeNull();

    // a second certificate does not move first seen
    await issue('inv-cam2', 'camera', at(3 * DAY), 365 * DAY);
    expect((await store.getDevice('inv-cam2'))!.firstSeenAt).toEqual(at(DAY));
  });

  it('stale: inside the renewal window and not replaced; re-enrolling clears it; expiry makes it stale again; retired never is', async () => {
    // medical-device: 30 days, renewal window the last 10 → from day 21 (issued day 1)
    expect(ids(await list(at(20 * DAY), { stale: true }))).toEqual([]);
    const due = (await list(at(21 * DAY), { ids: ['inv-med'] }))[0]!;
    expect(due).toMatchObject({ health: 'renewal-due', stale: true, renewalFrom: at(21 * DAY) });
    expect(ids(await list(at(21 * DAY), { stale: true }))).toEqual(['inv-med']);

    await issue('inv-med', 'medical-device', at(22 * DAY), 30 * DAY);
    expect(ids(await list(at(23 * DAY), { stale: true }))).toEqual([]);
    expect((await list(at(23 * DAY), { ids: ['inv-med'] }))[0]!.current!.notAfter).toEqual(at(52 * DAY));

    expect((await list(at(60 * DAY), { ids: ['inv-med'] }))[0]).toMatchObject({ health: 'expired', stale: true });
    await store.updateDevice('inv-med', { state: 'retired' }, at(60 * DAY));
    expect((await list(at(60 * DAY), { ids: ['inv-med'] }))[0]).toMatchObject({ health: 'expired', stale: false });
    await store.updateDevice('inv-med', { state: 'active' }, at(60 * DAY));

    // cameras: the last 33 % of 365 days (120.45 d); inv-cam's certificate runs to day 366, inv-cam2's to 368
    expect(ids(await list(at(246 * DAY), { stale: true }))).toEqual(['inv-cam', 'inv-med']);
    expect(ids(await list(at(248 * DAY), { stale: true }))).toEqual(['inv-cam', 'inv-cam2', 'inv-med']);
  });

  it('filters: firmware range, segment, criticality, model; unparsable firmware never matches a range', async () => {
    const now = at(2 * DAY);
    expect(ids(await list(now, { model: 'X100', firmware: '<2.4' }))).toEqual(['inv-cam', 'inv-new']);
    expect(ids(await list(now, { firmware: '>=2.4 || =1' }))).toEqual(['inv-cam2', 'inv-med']);
    expect(ids(await list(now, { segment: 'bldg-1/vlan-30' }))).toEqual(['inv-cam']);
    expect(ids(await list(now, { criticality: 'high' }))).toEqual(['inv-med']);
    expect(ids(await list(now, { criticality: 'low' }))).toEqual(['inv-sensor']);
    await expect(list(now, { firmware: '<<2' })).rejects.toMatchObject({ kind: 'badRequest' });
  });

  it('pagination over a judged filter collects across store pages and says whether more match', async () => {
    for (let i = 0; i < 30; i++) await store.addDevice({ id: `inv-page-${String(i).padStart(2, '0')}`, firmware: i % 3 === 0 ? '1.0' : '9.0', profile: 'camera' }, T0);
    const first = await listInventory({ store, config }, { firmware: '<2', limit: 4 }, at(DAY));
    expect(ids(first.entries)).toEqual(['inv-med', 'inv-page-00', 'inv-page-03', 'inv-page-06']);
    expect(first.more).toBe(true);
    const rest = await listInventory({ store, config }, { firmware: '<2', after: 'inv-page-06' }, at(DAY));
    expect(ids(rest.entries)).toEqual(['inv-page-09', 'inv-page-12', 'inv-page-15', 'inv-page-18', 'inv-page-21', 'inv-page-24', 'inv-page-27']);
    expect(rest.more).toBe(false);
  });

  it('inventoryOf: a certificate whose profile left the configuration is judged by expiry alone', () => {
    const d = { id: 'x', macs: [], serialNumber: null, model: null, firmware: null, profile: null, state: 'active' as const, createdAt: T0, updatedAt: T0, lastEnrolledAt: null };
    const current = { serial: '01', profile: 'gone', notBefore: T0, notAfter: at(10 * DAY), status: 'valid' as const, fingerprintSha256: Buffer.alloc(32) };
    expect(inventoryOf(config, { ...d, current }, at(9 * DAY))).toMatchObject({ health: 'current', renewalFrom: null, criticality: 'normal', nacRole: null });
    expect(inventoryOf(config, { ...d, current }, at(10 * DAY))).toMatchObject({ health: 'expired', stale: true });
  });
});
