/** SQL of the webhook outbox (migration 0008); PgStore delegates to these functions. */
import type pg from 'pg';
import type { WebhookDelivery } from '../ca/ports.js';

type Query = <R extends pg.QueryResultRow>(text: string, values?: unknown[], name?: string) => Promise<pg.QueryResult<R>>;

/** Runs in the caller's transaction (PgStore.tx). */
export async function syncWebhookEndpoints(c: pg.PoolClient, endpoints: Array<{ name: string; events: string[] }>): Promise<void> {
  await c.query('DELETE FROM webhook_endpoints WHERE NOT (name = ANY($1::text[]))', [endpoints.map((e) => e.name)]);
  for (const e of endpoints) {
    await c.query('INSERT INTO webhook_endpoints (name, events) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET events = excluded.events', [e.name, e.events]);
  }
}

export async function claimDeliveries(q: Query, now: Date, leaseMs: number, limit: number): Promise<WebhookDelivery[]> {
  // SKIP LOCKED + a lease: two dispatchers never take the same delivery at once
  const r = await q<{ endpoint: string; event: string; event_id: string; type: string; at: Date; subject: string | null; data: Record<string, unknown>; attempts: number }>(
    `WITH due AS (
       SELECT endpoint, event FROM webhook_deliveries
        WHERE state = 'pending' AND next_attempt_at <= $1
          AND endpoint IN (SELECT name FROM webhook_endpoints)
        ORDER BY next_attempt_at, event LIMIT $3
        FOR UPDATE SKIP LOCKED
     ), claimed AS (
       UPDATE webhook_deliveries d SET next_attempt_at = $1::timestamptz + make_interval(secs => $2::double precision / 1000)
         FROM due WHERE d.endpoint = due.endpoint AND d.event = due.event
       RETURNING d.endpoint, d.event, d.attempts
     )
     SELECT c.endpoint, c.event::text AS event, e.event_id, e.type, e.at, e.subject, e.data, c.attempts
       FROM claimed c JOIN events e ON e.id = c.event ORDER BY c.event`,
    [now, leaseMs, limit],
  );
  return r.rows.map((x) => ({ endpoint: x.endpoint, event: Number(x.event), eventId: x.event_id, type: x.type, at: x.at, subject: x.subject, data: x.data, attempts: x.attempts }));
}

export async function markDelivered(q: Query, endpoint: string, event: number, at: Date): Promise<void> {
  await q(`UPDATE webhook_deliveries SET state = 'delivered', delivered_at = $3, attempts = attempts + 1, last_error = NULL WHERE endpoint = $1 AND event = $2`, [endpoint, event, at]);
}

export async function markFailed(q: Query, endpoint: string, event: number, error: string, retryAt: Date | null): Promise<void> {
  await q(
    `UPDATE webhook_deliveries SET attempts = attempts + 1, last_error = $3,
            state = CASE WHEN $4::timestamptz IS NULL THEN 'dead' ELSE 'pending' END,
            next_attempt_at = coalesce($4::timestamptz, next_attempt_at)
      WHERE endpoint = $1 AND event = $2`,
    [endpoint, event, error.slice(0, 500), retryAt],
  );
}
