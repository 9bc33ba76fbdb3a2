import http from 'node:http';
import type { AddressInfo } from 'node:net';
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IssuerRecord } from '../../src/ca/ports.js';
import type { PgStore } from '../../src/store/pg-store.js';
import { FakeClock } from '../../src/core/clock.js';
import { crlEntryOf } from '../../src/ca/revocation.js';
import { deliverDue, webhookSignature, type WebhookDispatcherDeps } from '../../src/jobs/webhook-dispatcher.js';
import { T0, at, auditFor, certFor, intentFor, randomSerial, useTestStore } from './fixtures.js';

const suite = useTestStore();
let store: PgStore;
let issuer: IssuerRecord;
beforeAll(() => {
  ({ store, issuer } = suite);
});

async function issue(deviceId: string | null): Promise<string> {
  const intent = intentFor(randomSerial(), issuer.id, deviceId);
  await store.recordIntent(intent, auditFor('certificate.sign.begin', intent.serial));
  await store.commitCertificate(certFor(intent), auditFor('certificate.issued', intent.serial));
  return intent.serial;
}

const deliveries = async () =>
  (
    await store.pool.query<{ endpoint: string; type: string; subject: string; state: string; attempts: number }>(
      `SELECT d.endpoint, e.type, e.subject, d.state, d.attempts FROM webhook_deliveries d JOIN events e ON e.id = d.event ORDER BY e.id, d.endpoint`,
    )
  ).rows;

/** A real HTTP receiver on 127.0.0.1: answers with the next status of `answers` (then 200). */
function receiver(answers: number[]) {
  const got: Array<{ headers: http.IncomingHttpHeaders; body: string }> = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => {
      got.push({ headers: req.headers, body });
      res.writeHead(answers.shift() ?? 200).end();
    });
  });
  return {
    got,
    listen: () => new Promise<string>((r) => server.listen(0, '127.0.0.1', () => r(`http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`))),
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

describe('the outbox is filled in the transaction of the action', () => {
  it('no endpoints configured: no events are recorded', async () => {
    await store.syncWebhookEndpoints([]);
    await issue(null);
    expect(await deliveries()).toEqual([]);
  });

  it('an issuance (group commit) and a revocation each queue one delivery per endpoint that wants the type', async () => {
    await store.syncWebhookEndpoints([
      { name: 'soc', events: ['certificate.revoked', 'certificate.held'] },
      { name: 'cmdb', events: ['certificate.issued', 'certificate.revoked'] },
    ]);
    const serial = await issue(null);
    await store.revoke({ serial, reason: 'keyCompromise', at: T0, actor: 'admin', crlEntry: crlEntryOf });
    expect(await deliveries()).toEqual([
      { endpoint: 'cmdb', type: 'certificate.issued', subject: serial, state: 'pending', attempts: 0 },
      { endpoint: 'cmdb', type: 'certificate.revoked', subject: serial, state: 'pending', attempts: 0 },
      { endpoint: 'soc', type: 'certificate.revoked', subject: serial, state: 'pending', attempts: 0 },
    ]);
  });

  it('two dispatchers claiming at once never take the same delivery', async () => {
    const now = at(1000);
    const [a, b] = await Promise.all([store.claimDeliveries(now, 60_000, 2), store.claimDeliveries(now, 60_000, 2)]);
    const keys = [...a, ...b].map((d) => `${d.endpoint}/${d.event}`);
    expect(new Set(keys).size).toBe(keys.length);
    expect(keys.length).toBe(3);
    // leased: nothing is due again until the lease ends
    expect(await store.claimDeliveries(now, 60_000, 10)).toEqual([]);
  });
});

describe('delivery', () => {
  let rx: ReturnType<typeof receiver>;
  afterAll(async () => rx?.close());

  it('POSTs signed JSON; a failure is retried with backoff, then delivered; too many failures → dead', async () => {
    await store.pool.query('DELETE FROM webhook_deliveries');
    await store.syncWebhookEndpoints([{ name: 'soc', events: ['certificate.held'] }]);
    rx = receiver([503, 200]);
    const url = await rx.listen();
    const secret = crypto.randomBytes(32);
    const clock = new FakeClock(at(10_000));
    const deps: WebhookDispatcherDeps = {
      store,
      endpoints: new Map([['soc', { name: 'soc', url, secret }]]),
      clock,
      maxAttempts: 3,
      retryBaseMs: 10_000,
      retryMaxMs: 60_000,
      timeoutMs: 5000,
      log: () => undefined,
    };
    const serial = await issue(null);
    await store.revoke({ serial, reason: 'certificateHold', at: T0, actor: 'soc-analyst', crlEntry: crlEntryOf });

    expect(await deliverDue(deps)).toBe(0); // 503
    expect((await deliveries())[0]).toMatchObject({ state: 'pending', attempts: 1 });
    clock.advance(9_999);
    expect(await deliverDue(deps)).toBe(0); // not due yet: nothing sent
    expect(rx.got).toHaveLength(1);
    clock.advance(1);
    expect(await deliverDue(deps)).toBe(1);
    expect((await deliveries())[0]).toMatchObject({ state: 'delivered', attempts: 2 });

    // both attempts carried the same event id; the signature verifies over timestamp.body
    const [first, second] = rx.got;
    expect(first!.headers['x-fleetca-delivery']).toBe(second!.headers['x-fleetca-delivery']);
    const ts = Number(second!.headers['x-fleetca-timestamp']);
    expect(second!.headers['x-fleetca-signature']).toBe(webhookSignature(secret, ts, second!.body));
    expect(second!.headers['x-fleetca-event']).toBe('certificate.held');
    expect(JSON.parse(second!.body)).toMatchObject({ type: 'certificate.held', subject: serial, data: { actor: 'soc-analyst', details: { reason: 'certificateHold' } } });

    // a receiver that keeps failing: dead after maxAttempts
    rx.got.length = 0;
    const failing = receiver([500, 500, 500]);
    const failUrl = await failing.listen();
    try {
      const dead = { ...deps, endpoints: new Map([['soc', { name: 'soc', url: failUrl, secret }]]) };
      await store.release({ serial, at: T0, actor: 'soc', });
      await store.syncWebhookEndpoints([{ name: 'soc', events: ['certificate.released'] }]);
      await store.revoke({ serial, reason: 'certificateHold', at: T0, actor: 'soc', crlEntry: crlEntryOf });
      await store.release({ serial, at: T0, actor: 'soc' });
      for (let i = 0; i < 3; i++) {
        await deliverDue(dead);
        clock.advance(60_000);
      }
      const last = (await deliveries()).at(-1)!;
      expect(last).toMatchObject({ type: 'certificate.released', state: 'dead', attempts: 3 });
    } finally {
      await failing.close();
    }
  });
});

describe('an endpoint down for an hour (shipped retry settings)', () => {
  it('every attempt while it is down fails and is rescheduled; the first one after it is back delivers', async () => {
    const { loadConfig } = await import('../../src/config/load.js');
    const wh = loadConfig('ca-config').settings.webhooks;
    await store.pool.query('DELETE FROM webhook_deliveries');
    await store.syncWebhookEndpoints([{ name: 'noc', events: ['certificate.held'] }]);
    // a port nothing listens on: connection refused while "down"
    const down = receiver([]);
    const url = await down.listen();
    await down.close();
    const clock = new FakeClock(at(20_000));
    const secret = crypto.randomBytes(32);
    const deps: WebhookDispatcherDeps = {
      store,
      endpoints: new Map([['noc', { name: 'noc', url, secret }]]),
      clock,
      maxAttempts: wh.maxAttempts,
      retryBaseMs: wh.retryBase,
      retryMaxMs: wh.retryMax,
      timeoutMs: 2000,
      log: () => undefined,
    };
    const serial = await issue(null);
    await store.revoke({ serial, reason: 'certificateHold', at: clock.now(), actor: 'soc', crlEntry: crlEntryOf });
    const start = clock.now().getTime();
    // one hour of outage, the dispatcher waking every minute
    while (clock.now().getTime() - start < 3600_000) {
      expect(await deliverDue(deps)).toBe(0);
      clock.advance(60_000);
    }
    const during = (await deliveries())[0]!;
    expect(during.state).toBe('pending');
    expect(during.attempts).toBeGreaterThan(3);
    expect(during.attempts).toBeLessThan(wh.maxAttempts);

    // back up on the same port: delivered at its next due attempt, within the retry cap
    const port = Number(new URL(url).port);
    const server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(204).end());
    });
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
    try {
      let delivered = 0;
      for (let waited = 0; waited <= wh.retryMax && delivered === 0; waited += 60_000) {
        delivered = await deliverDue(deps);
        if (delivered === 0) clock.advance(60_000);
      }
      expect(delivered).toBe(1);
      expect((await deliveries())[0]).toMatchObject({ state: 'delivered' });
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
