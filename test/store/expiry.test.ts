/**
 * The expiry tracker on a real database with the shipped profiles and an injected clock: the
 * clock crosses the renewal window, each threshold and expiry, and every event fires exactly once —
 * also when a pass is repeated, when the tracker was down across several thresholds, and when two
 * trackers (two stores, as two servers) race, with or without the lock. The gauges count the
 * devices' current certificates; re-enrollment (supersession) silences the replaced certificate
 * and records certificate.renewed; a profile's `notifications` choose its events and thresholds.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { FleetcaConfig, Profile } from '../../src/config/schema.js';
import { loadConfig } from '../../src/config/load.js';
import { FakeClock } from '../../src/core/clock.js';
import type { IssuerRecord } from '../../src/ca/ports.js';
import { PgStore } from '../../src/store/pg-store.js';
import { EXPIRY_ACTOR, expiryRules, runExpiryPass, startExpiryTracker, type ExpiryGauges, type ExpiryTrackerDeps } from '../../src/jobs/expiry-tracker.js';
import { supersedeReplaced } from '../../src/enrollment/renew.js';
import { DAY, T0, at, auditFor, certFor, intentFor, randomSerial, useTestStore } from './fixtures.js';

const shipped = loadConfig('ca-config');
const suite = useTestStore();
let store: PgStore;
let issuer: IssuerRecord;
beforeAll(() => {
  ({ store, issuer } = suite);
});

/** The shipped configuration with some profiles changed. */
function withProfiles(edits: Record<string, (p: Profile) => Profile>): FleetcaConfig {
  const profiles = new Map([...shipped.profiles].map(([n, p]) => [n, edits[n] ? edits[n](p) : p]));
  return { ...shipped, profiles };
}

async function issue(deviceId: string, profile: string, notBefore: Date, validityMs: number): Promise<string> {
  if (!(await store.getDevice(deviceId))) await store.addDevice({ id: deviceId, profile }, notBefore);
  const intent = { ...intentFor(randomSerial(), issuer.id, deviceId, notBefore), profile };
  await store.recordIntent(intent, auditFor('certificate.sign.begin', intent.serial, notBefore));
  await store.commitCertificate(certFor(intent, { notAfter: new Date(notBefore.getTime() + validityMs) }), auditFor('certificate.issued', intent.serial, notBefore));
  return intent.serial;
}

interface Ev {
  action: string;
  target: string;
  details: Record<string, unknown>;
}

/** The tracker's events about these certificates or devices, oldest first. */
async function events(targets: string[]): Promise<Ev[]> {
  const { rows } = await store.pool.query<Ev>(
    `SELECT action, target, details FROM audit_log WHERE actor = $1 AND target = ANY($2::text[]) ORDER BY id`,
    [EXPIRY_ACTOR, targets],
  );
  return rows;
}

const brief = (es: Ev[]) => es.map((e) => `${e.action} ${e.target}${e.details.threshold ? ` ${String(e.details.threshold)}` : ''}`);

function trackerDeps(clock: FakeClock, config: FleetcaConfig = shipped, s: PgStore = store): ExpiryTrackerDeps & { seen: ExpiryGauges[][] } {
  const seen: ExpiryGauges[][] = [];
  return { store: s, config, clock, log: () => undefined, gauges: (g) => seen.push(g), seen };
}

const gauge = (g: ExpiryGauges[], profile: string) => g.find((x) => x.profile === profile)!;

describe('expiry tracker', () => {
  it('the clock crosses the renewal window, 7d, 1d and expiry: each event exactly once; gauges follow', async () => {
    // medical-device: 30 days, window 10d (stale from day 20); thresholds 30d (skipped: not shorter than the lifetime), 7d, 1d
    const med = await issue('exp-med', 'medical-device', T0, 30 * DAY);
    const clock = new FakeClock(at(DAY));
    const deps = trackerDeps(clock);
    const pass = async (t: Date) => {
      clock.set(t);
      return runExpiryPass(deps);
    };

    const first = await pass(at(DAY));
    expect(first.announced).not.toBeNull();
    expect(await events([med, 'exp-med'])).toEqual([]);
    expect(gauge(first.gauges, 'medical-device')).toMatchObject({ expiring: { '1d': 0, '7d': 0, '30d': 1 }, expired: 0 });

    await pass(at(20 * DAY - 60_000));
    expect(await events([med, 'exp-med'])).toEqual([]);
    await pass(at(20 * DAY + 60_000));
    expect(brief(await events([med, 'exp-med']))).toEqual(['device.stale exp-med']);
    const [stale] = await events(['exp-med']);
    expect(stale!.details).toMatchObject({ serial: med, profile: 'medical-device', health: 'renewal-due', notAfter: at(30 * DAY).toISOString(), renewalFrom: at(20 * DAY).toISOString() });

    const day23 = await pass(at(23 * DAY + 60_000));
    expect(gauge(day23.gauges, 'medical-device')).toMatchObject({ expiring: { '1d': 0, '7d': 1, '30d': 1 }, expired: 0 });
    await pass(at(23 * DAY + 120_000)); // again: nothing new
    expect(brief(await events([med, 'exp-med']))).toEqual(['device.stale exp-med', `certificate.expiring ${med} 7d`]);

    await pass(at(29 * DAY + 60_000));
    await pass(at(29 * DAY + 120_000));
    const expiring = (await events([med])).filter((e) => e.action === 'certificate.expiring');
    expect(expiring.map((e) => e.details.threshold)).toEqual(['7d', '1d']);
    expect(expiring[1]!.details).toMatchObject({ device: 'exp-med', profile: 'medical-device', thresholdMs: DAY, notAfter: at(30 * DAY).toISOString() });

    const day31 = await pass(at(31 * DAY));
    await pass(at(32 * DAY));
    expect(brief(await events([med, 'exp-med']))).toEqual(['device.stale exp-med', `certificate.expiring ${med} 7d`, `certificate.expiring ${med} 1d`, `certificate.expired ${med}`]);
    expect(gauge(day31.gauges, 'medical-device')).toMatchObject({ expiring: { '1d': 0, '7d': 0, '30d': 0 }, expired: 1 });
  });

  it('a tracker down across several thresholds announces only the tightest; the others are recorded as passed', async () => {
    // camera: 365 days; thresholds 30d, 7d, 1d; window 33 % (stale from day 244.55)
    const cam = await issue('exp-cam', 'camera', T0, 365 * DAY);
    const clock = new FakeClock(at(364 * DAY + 3_600_000));
    await runExpiryPass(trackerDeps(clock));
    expect(brief(await events([cam, 'exp-cam']))).toEqual([`certificate.expiring ${cam} 1d`, 'device.stale exp-cam']);
    const { rows } = await store.pool.query<{ threshold_ms: string; announced: boolean }>(
      `SELECT threshold_ms, announced FROM expiry_notices WHERE serial = $1 AND kind = 'expiring' ORDER BY threshold_ms`,
      [cam],
    );
    expect(rows).toEqual([
      { threshold_ms: String(DAY), announced: true },
      { threshold_ms: String(7 * DAY), announced: false },
      { threshold_ms: String(30 * DAY), announced: false },
    ]);
  });

  it('re-enrollment: the replaced certificate raises nothing more, the device is not stale, certificate.renewed is recorded once', async () => {
    const old = await issue('exp-renew', 'camera', T0, 365 * DAY);
    const clock = new FakeClock(at(250 * DAY));
    await runExpiryPass(trackerDeps(clock));
    expect(brief(await events(['exp-renew']))).toEqual(['device.stale exp-renew']);

    // the device re-enrolls on day 251 (what EnrollmentService does after issuing)
    clock.set(at(251 * DAY));
    const fresh = await issue('exp-renew', 'camera', at(251 * DAY), 365 * DAY);
    const camera = shipped.profiles.get('camera')!;
    expect(await supersedeReplaced({ store, clock }, { deviceId: 'exp-renew', profile: camera, newSerial: fresh, actor: 'cert:x', via: 'est' })).toEqual([old]);
    const renewed = await store.listAudit({ target: fresh, action: 'certificate.renewed' });
    expect(renewed).toHaveLength(1);
    expect(renewed[0]!.details).toEqual({ device: 'exp-renew', profile: 'camera', via: 'est', replaced: [old] });
    const superseded = await store.listAudit({ target: old, action: 'certificate.superseded' });
    expect(superseded[0]!.details).toMatchObject({ supersededBy: fresh });
    // a second supersession by the same serial replaces nothing: no second certificate.renewed
    expect(await supersedeReplaced({ store, clock }, { deviceId: 'exp-renew', profile: camera, newSerial: fresh, actor: 'cert:x', via: 'est' })).toEqual([]);
    expect(await store.listAudit({ target: fresh, action: 'certificate.renewed' })).toHaveLength(1);

    // the old certificate's 30d, 7d, 1d and expiry pass without a word; the new one is current
    for (const day of [336, 359, 364.5, 366]) {
      clock.set(at(day * DAY));
      await runExpiryPass(trackerDeps(clock));
    }
    expect(brief(await events([old, fresh, 'exp-renew']))).toEqual(['device.stale exp-renew']);
  });

  it('two trackers racing (two stores, as two servers) announce each event once; so do two passes without the lock', async () => {
    const other = await PgStore.open({ connectionString: suite.db.connectionString, max: 4 });
    try {
      const serials: string[] = [];
      for (let i = 0; i < 40; i++) serials.push(await issue(`exp-race-${String(i).padStart(2, '0')}`, 'camera', at(1000 * DAY), 365 * DAY));
      const clock = new FakeClock(at(1000 * DAY + 360 * DAY)); // 5 days left: 30d and 7d crossed → 7d announced; stale too
      const a = trackerDeps(clock, shipped, store);
      const b = trackerDeps(clock, shipped, other);
      const [ra, rb] = await Promise.all([runExpiryPass({ ...a, batch: 7 }), runExpiryPass({ ...b, batch: 7 })]);
      expect([ra.announced, rb.announced].filter((x) => x !== null).length).toBeGreaterThanOrEqual(1);
      const got = await events([...serials, ...serials.map((_, i) => `exp-race-${String(i).padStart(2, '0')}`)]);
      expect(got.filter((e) => e.action === 'certificate.expiring')).toHaveLength(40);
      expect(new Set(got.filter((e) => e.action === 'certificate.expiring').map((e) => e.target)).size).toBe(40);
      expect(got.filter((e) => e.action === 'device.stale')).toHaveLength(40);

      // the lock is the first guard, the notices' primary key the last: both stores at once, no lock
      clock.set(at(1000 * DAY + 364.5 * DAY));
      const thresholds = expiryRules(shipped).thresholds;
      const both = await Promise.all(
        [store, other, store, other].map((s) => s.announceExpiring({ now: clock.now(), actor: EXPIRY_ACTOR, thresholds, after: '', limit: 1000 })),
      );
      expect(both.reduce((n, r) => n + r.announced, 0)).toBe(40);
      const oneDay = (await events(serials)).filter((e) => e.details.threshold === '1d');
      expect(oneDay).toHaveLength(40);
    } finally {
      await other.close();
    }
  });

  it('a profile chooses its events and thresholds (notifications); [] silences it', async () => {
    const config = withProfiles({
      sensor: (p) => ({ ...p, notifications: { events: ['certificate.expiring'], expiringThresholds: [3 * DAY] } }),
      'building-controller': (p) => ({ ...p, notifications: { events: [], expiringThresholds: [30 * DAY, 7 * DAY, DAY] } }),
    });
    const sensor = await issue('exp-sensor', 'sensor', at(2000 * DAY), 730 * DAY);
    const bc = await issue('exp-bc', 'building-controller', at(2000 * DAY), 365 * DAY);
    const clock = new FakeClock(at(2000 * DAY + 364 * DAY));
    await runExpiryPass(trackerDeps(clock, config)); // bc: 1 day left; sensor: a year left
    clock.set(at(2000 * DAY + 728 * DAY)); // sensor: 2 days left (stale too, but not announced)
    await runExpiryPass(trackerDeps(clock, config));
    clock.set(at(2000 * DAY + 731 * DAY)); // both expired
    await runExpiryPass(trackerDeps(clock, config));
    expect(brief(await events([sensor, bc, 'exp-sensor', 'exp-bc']))).toEqual([`certificate.expiring ${sensor} 3d`]);
    expect(expiryRules(config).stale.map((s) => s.profile)).not.toContain('sensor');
  });

  it('an expiry older than expiry.catchUp when first seen is counted by the gauges but never announced', async () => {
    const long = await issue('exp-old', 'camera', at(3000 * DAY), 365 * DAY);
    const clock = new FakeClock(at(3000 * DAY + 365 * DAY + 8 * DAY)); // catchUp is 7d
    const r = await runExpiryPass(trackerDeps(clock));
    expect(await events([long, 'exp-old'])).toEqual([]);
    expect(gauge(r.gauges, 'camera').expired).toBeGreaterThanOrEqual(1);
    // a retired device is neither counted nor chased (retiring revokes only unexpired certificates)
    const before = gauge(r.gauges, 'camera').expired;
    await store.retireDevice({ deviceId: 'exp-old', at: clock.now(), actor: 'test', crlEntry: () => Buffer.from([0x30, 0x00]) });
    expect(gauge((await runExpiryPass(trackerDeps(clock))).gauges, 'camera').expired).toBe(before - 1);
  });

  it('the events reach the webhook outbox (an endpoint subscribed to them gets one delivery each)', async () => {
    await store.syncWebhookEndpoints([{ name: 'ops', events: ['certificate.expiring', 'certificate.expired', 'device.stale', 'certificate.renewed'] }]);
    try {
      const serial = await issue('exp-hook', 'medical-device', at(5000 * DAY), 30 * DAY);
      const clock = new FakeClock(at(5000 * DAY + 29.5 * DAY));
      await runExpiryPass(trackerDeps(clock));
      clock.set(at(5000 * DAY + 30.5 * DAY));
      await runExpiryPass(trackerDeps(clock));
      const { rows } = await store.pool.query<{ type: string; subject: string; deliveries: number }>(
        `SELECT e.type, e.subject, (SELECT count(*)::int FROM webhook_deliveries d WHERE d.event = e.id) AS deliveries
           FROM events e WHERE e.subject = ANY($1::text[]) ORDER BY e.id`,
        [[serial, 'exp-hook']],
      );
      expect(rows).toEqual([
        { type: 'certificate.expiring', subject: serial, deliveries: 1 },
        { type: 'device.stale', subject: 'exp-hook', deliveries: 1 },
        { type: 'certificate.expired', subject: serial, deliveries: 1 },
      ]);
    } finally {
      await store.syncWebhookEndpoints([]);
    }
  });

  it('the gauges: one row per device profile, zeros included; the tracker runs on start and stops cleanly', async () => {
    const clock = new FakeClock(at(9000 * DAY));
    const deps = trackerDeps(clock);
    const tracker = startExpiryTracker(deps, 3_600_000);
    const r = await tracker.runNow();
    await tracker.stop();
    const deviceProfiles = [...shipped.profiles.values()].filter((p) => p.kind === 'device').map((p) => p.name).sort();
    expect(r.gauges.map((g) => g.profile)).toEqual(expect.arrayContaining(deviceProfiles));
    expect(gauge(r.gauges, 'sensor').expiring).toEqual({ '1d': 0, '7d': 0, '30d': 0 });
    expect(deps.seen.length).toBeGreaterThanOrEqual(1);
  });
});
