/**
 * Delivers the webhook outbox: every due delivery is POSTed as JSON to its endpoint, signed
 * `X-Fleetca-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>` with the timestamp in
 * `X-Fleetca-Timestamp` (so a receiver can refuse replays), the event id in `X-Fleetca-Delivery`.
 * A 2xx marks it delivered; anything else is retried after retryBase × 2^(attempts−1) (capped),
 * until maxAttempts (then dead). At least once: a receiver de-duplicates by the event id.
 * Every instance may run it: claims are leased with SKIP LOCKED.
 */
import crypto from 'node:crypto';
import type { Clock } from '../core/clock.js';
import type { WebhookDelivery, WebhookOutboxStore } from '../ca/ports.js';

export interface WebhookEndpoint {
  name: string;
  url: string;
  secret: Buffer;
}

export interface WebhookDispatcherDeps {
  store: WebhookOutboxStore;
  endpoints: ReadonlyMap<string, WebhookEndpoint>;
  clock: Clock;
  maxAttempts: number;
  retryBaseMs: number;
  retryMaxMs: number;
  timeoutMs: number;
  log: (level: 'info' | 'warn', obj: Record<string, unknown>, msg: string) => void;
  fetch?: typeof fetch;
}

/** The signature header value for a body sent at `timestamp` (unix seconds). */
export function webhookSignature(secret: Buffer, timestamp: number, body: string): string {
  return `v1=${crypto.createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/** The JSON body of one event. */
export function webhookBody(d: WebhookDelivery): string {
  return JSON.stringify({ id: d.eventId, type: d.type, at: d.at.toISOString(), subject: d.subject, data: d.data });
}

/** Delivers what is due, once; returns how many were delivered. */
export async function deliverDue(deps: WebhookDispatcherDeps, limit = 50): Promise<number> {
  const now = deps.clock.now();
  const claimed = await deps.store.claimDeliveries(now, deps.timeoutMs * 2 + 5000, limit);
  let delivered = 0;
  await Promise.all(
    claimed.map(async (d) => {
      const ep = deps.endpoints.get(d.endpoint);
      if (!ep) return; // claimed only for configured endpoints; a config change mid-flight waits for the lease
      const body = webhookBody(d);
      const ts = Math.floor(deps.clock.now().getTime() / 1000);
      let error: string | null = null;
      try {
        const res = await (deps.fetch ?? fetch)(ep.url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'user-agent': 'fleetca-webhooks',
            'x-fleetca-event': d.type,
            'x-fleetca-delivery': d.eventId,
            'x-fleetca-timestamp': String(ts),
            'x-fleetca-signature': webhookSignature(ep.secret, ts, body),
          },
          body,
          redirect: 'error',
          signal: AbortSignal.timeout(deps.timeoutMs),
        });
        await res.arrayBuffer().catch(() => undefined);
        if (res.status < 200 || res.status > 299) error = `HTTP ${res.status}`;
      } catch (e) {
        error = (e as Error).message;
      }
      const at = deps.clock.now();
      if (error === null) {
        await deps.store.markDelivered(d.endpoint, d.event, at);
        delivered++;
        return;
      }
      const attempts = d.attempts + 1;
      const retryAt = attempts >= deps.maxAttempts ? null : new Date(at.getTime() + Math.min(deps.retryMaxMs, deps.retryBaseMs * 2 ** (attempts - 1)));
      await deps.store.markFailed(d.endpoint, d.event, error, retryAt);
      deps.log('warn', { endpoint: d.endpoint, event: d.eventId, type: d.type, attempts, error, retryAt: retryAt?.toISOString() ?? null }, retryAt ? 'webhook delivery failed; will retry' : 'webhook delivery failed for good');
    }),
  );
  return delivered;
}

/** Runs deliverDue when woken (a NOTIFY) and every `pollMs`; stop() waits for the pass in flight. */
export function startWebhookDispatcher(deps: WebhookDispatcherDeps, pollMs = 2000): { wake(): void; stop(): Promise<void> } {
  let running: Promise<void> | null = null;
  let again = false;
  let stopped = false;
  const pass = (): void => {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = (async () => {
      try {
        // keep going while full batches come back
        while (!stopped && (await deliverDue(deps)) >= 50);
      } catch (e) {
        deps.log('warn', { err: (e as Error).message }, 'webhook pass failed');
      }
    })().finally(() => {
      running = null;
      if (again && !stopped) {
        again = false;
        pass();
      }
    });
  };
  // without endpoints there is nothing to deliver: no polling at all
  const timer = deps.endpoints.size > 0 ? setInterval(pass, pollMs) : null;
  timer?.unref();
  if (timer) pass();
  return {
    wake: () => {
      if (timer) pass();
    },
    stop: async () => {
      stopped = true;
      if (timer) clearInterval(timer);
      await running;
    },
  };
}
