/** SQL of admin API tokens (migration 0009); PgStore delegates to these functions. */
import type pg from 'pg';
import type { ApiToken, NewApiToken } from '../ca/ports.js';

type Query = <R extends pg.QueryResultRow>(text: string, values?: unknown[], name?: string) => Promise<pg.QueryResult<R>>;

interface TokenRow {
  id: string;
  name: string;
  role: ApiToken['role'];
  mac: Buffer;
  created_at: Date;
  created_by: string;
  expires_at: Date;
  revoked_at: Date | null;
  last_used_at: Date | null;
}

const toToken = (r: TokenRow): ApiToken => ({
  id: r.id,
  name: r.name,
  role: r.role,
  mac: r.mac,
  createdAt: r.created_at,
  createdBy: r.created_by,
  expiresAt: r.expires_at,
  revokedAt: r.revoked_at,
  lastUsedAt: r.last_used_at,
});

export async function createApiToken(q: Query, t: NewApiToken): Promise<ApiToken> {
  const r = await q<TokenRow>(
    `WITH t AS (
       INSERT INTO api_tokens (id, name, role, mac, created_at, created_by, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *
     ), a AS (
       INSERT INTO audit_log (at, actor, action, target, details) SELECT $5, $6, 'token.created', $2, jsonb_build_object('role', $3::text, 'expires_at', $7::timestamptz) FROM t
     )
     SELECT * FROM t`,
    [t.id, t.name, t.role, t.mac, t.createdAt, t.createdBy, t.expiresAt],
  );
  return toToken(r.rows[0]!);
}

export async function getApiToken(q: Query, id: string): Promise<ApiToken | null> {
  const r = await q<TokenRow>('SELECT * FROM api_tokens WHERE id = $1', [id], 'fleetca_api_token');
  return r.rows[0] ? toToken(r.rows[0]) : null;
}

export async function listApiTokens(q: Query): Promise<ApiToken[]> {
  const r = await q<TokenRow>('SELECT * FROM api_tokens ORDER BY name');
  return r.rows.map(toToken);
}

/** Revokes by name; false when there is no such unrevoked token. */
export async function revokeApiToken(q: Query, name: string, at: Date, actor: string): Promise<boolean> {
  const r = await q(
    `WITH t AS (UPDATE api_tokens SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL RETURNING name)
     INSERT INTO audit_log (at, actor, action, target, details) SELECT $2, $3, 'token.revoked', name, '{}'::jsonb FROM t`,
    [name, at, actor],
  );
  return (r.rowCount ?? 0) > 0;
}

export async function touchApiToken(q: Query, id: string, at: Date): Promise<void> {
  // at most one write a minute per token
  await q(`UPDATE api_tokens SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2::timestamptz - interval '1 minute')`, [id, at], 'fleetca_api_token_touch');
}
