/** SQL of firmware advisories (migration 0010); PgStore delegates to these functions. */
import type pg from 'pg';
import { conflict, notFound } from '../core/errors.js';
import type { Advisory, DeviceState } from '../ca/ports.js';

interface AdvisoryRow {
  id: string;
  model: string;
  firmware_range: string;
  action: Advisory['action'];
  restricted_profile: string | null;
  max_validity_ms: string | null;
  reason: string;
  devices: string[];
  created_at: Date;
  created_by: string;
  withdrawn_at: Date | null;
  withdrawn_by: string | null;
}

const toAdvisory = (r: AdvisoryRow): Advisory => ({
  id: Number(r.id),
  model: r.model,
  firmwareRange: r.firmware_range,
  action: r.action,
  restrictedProfile: r.restricted_profile,
  maxValidityMs: r.max_validity_ms === null ? null : Number(r.max_validity_ms),
  reason: r.reason,
  devices: r.devices,
  createdAt: r.created_at,
  createdBy: r.created_by,
  withdrawnAt: r.withdrawn_at,
  withdrawnBy: r.withdrawn_by,
});

type Query = <R extends pg.QueryResultRow>(text: string, values?: unknown[], name?: string) => Promise<pg.QueryResult<R>>;

export async function devicesOfModel(q: Query, model: string): Promise<Array<{ id: string; firmware: string | null; state: DeviceState }>> {
  const r = await q<{ id: string; firmware: string | null; state: DeviceState }>(`SELECT id, firmware, state FROM devices WHERE model = $1 ORDER BY id`, [model]);
  return r.rows;
}

/** Runs in the caller's transaction (PgStore.tx). */
export async function recordAdvisory(c: pg.PoolClient, a: Omit<Advisory, 'id' | 'withdrawnAt' | 'withdrawnBy'>): Promise<Advisory> {
  const r = await c.query<AdvisoryRow>(
    `INSERT INTO advisories (model, firmware_range, action, restricted_profile, max_validity_ms, reason, devices, created_at, created_by)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *`,
    [a.model, a.firmwareRange, a.action, a.restrictedProfile, a.maxValidityMs, a.reason, a.devices, a.createdAt, a.createdBy],
  );
  const adv = toAdvisory(r.rows[0]!);
  if (a.action === 'restrict') {
    await c.query(`UPDATE devices SET restricted_profile = $2, restricted_by = $3, updated_at = $4 WHERE id = ANY($1::text[])`, [a.devices, a.restrictedProfile, adv.id, a.createdAt]);
  } else if (a.action === 'shorten') {
    // a device keeps the shortest cap any active advisory gives it
    await c.query(
      `UPDATE devices SET max_validity_ms = $2, shortened_by = $3, updated_at = $4
        WHERE id = ANY($1::text[]) AND (max_validity_ms IS NULL OR max_validity_ms > $2)`,
      [a.devices, a.maxValidityMs, adv.id, a.createdAt],
    );
  }
  await c.query(`INSERT INTO audit_log (at, actor, action, target, details) VALUES ($1, $2, 'advisory.applied', $3, $4)`, [
    a.createdAt,
    a.createdBy,
    `advisory:${adv.id}`,
    JSON.stringify({ model: a.model, firmware: a.firmwareRange, action: a.action, devices: a.devices.length, reason: a.reason }),
  ]);
  return adv;
}

/** Runs in the caller's transaction (PgStore.tx). */
export async function withdrawAdvisory(c: pg.PoolClient, id: number, at: Date, actor: string): Promise<Advisory> {
  const cur = await c.query<AdvisoryRow>('SELECT * FROM advisories WHERE id = $1 FOR UPDATE', [id]);
  if (!cur.rows[0]) throw notFound(`no advisory ${id}`);
  if (cur.rows[0].withdrawn_at !== null) throw conflict(`advisory ${id} is withdrawn already`);
  const r = await c.query<AdvisoryRow>(`UPDATE advisories SET withdrawn_at = $2, withdrawn_by = $3 WHERE id = $1 RETURNING *`, [id, at, actor]);
  await c.query(`UPDATE devices SET restricted_profile = NULL, restricted_by = NULL, updated_at = $2 WHERE restricted_by = $1`, [id, at]);
  await c.query(`UPDATE devices SET max_validity_ms = NULL, shortened_by = NULL, updated_at = $2 WHERE shortened_by = $1`, [id, at]);
  await c.query(`INSERT INTO audit_log (at, actor, action, target, details) VALUES ($1, $2, 'advisory.withdrawn', $3, '{}'::jsonb)`, [at, actor, `advisory:${id}`]);
  return toAdvisory(r.rows[0]!);
}

export async function listAdvisories(q: Query): Promise<Advisory[]> {
  const r = await q<AdvisoryRow>('SELECT * FROM advisories ORDER BY id');
  return r.rows.map(toAdvisory);
}
