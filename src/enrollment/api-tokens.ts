/**
 * Bearer tokens of the admin API: `fca_<id>.<secret>` — a public id to find the row, and 256
 * random bits. Only HMAC-SHA-256(key, id ‖ 0 ‖ secret) is stored, under a key derived from the key
 * passphrase; the comparison is constant-time and an unknown id is compared against a dummy, so
 * timing tells nothing. Roles are fixed here; what each may call is the admin API's route table.
 */
import crypto from 'node:crypto';
import type { ApiRole, ApiToken, ApiTokenStore } from '../ca/ports.js';
import { badRequest } from '../core/errors.js';

/** The roles; what each may call is the admin API's route table. */
export const ROLES: readonly ApiRole[] = ['admin', 'operator', 'factory', 'auditor', 'nac'];
export type Role = ApiRole;

/** A token's lifetime when its creator does not give one (CLI `--ttl`, API `ttl`). */
export const DEFAULT_TOKEN_TTL = '30d';

const TOKEN_RE = /^fca_([a-z2-7]{16})\.([A-Za-z0-9_-]{43})$/;

/** The MAC key of API tokens (HKDF of the key passphrase, apart from the enrollment-secret key). */
export function deriveTokenKey(passphrase: string): Buffer {
  return Buffer.from(crypto.hkdfSync('sha256', Buffer.from(passphrase, 'utf8'), 'fleetca', 'api-token-mac v1', 32));
}

/** A fresh token and what is stored of it. */
export function generateToken(key: Buffer, random: (n: number) => Buffer = crypto.randomBytes): { token: string; id: string; mac: Buffer } {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  const id = [...random(16)].map((b) => alphabet[b & 31]).join('');
  const secret = random(32).toString('base64url');
  return { token: `fca_${id}.${secret}`, id, mac: tokenMac(key, id, secret) };
}

export function tokenMac(key: Buffer, id: string, secret: string): Buffer {
  return crypto.createHmac('sha256', key).update(id).update('\0').update(secret).digest();
}

/** The id and secret of a well-formed token; null for anything else. */
export function parseToken(token: string): { id: string; secret: string } | null {
  const m = TOKEN_RE.exec(token);
  return m ? { id: m[1]!, secret: m[2]! } : null;
}

const DUMMY = Buffer.alloc(32);

/** Whether `secret` matches the stored MAC (constant time; `stored` null = unknown id). */
export function tokenMatches(key: Buffer, id: string, secret: string, stored: Buffer | null): boolean {
  const mac = tokenMac(key, id, secret);
  const against = stored && stored.length === mac.length ? stored : DUMMY;
  return crypto.timingSafeEqual(mac, against) && stored !== null;
}

/**
 * The token's name and role when it is well-formed, known, matches, is not revoked and has not
 * expired; null otherwise (the caller answers 401 without saying which).
 */
export async function authenticateToken(store: Pick<ApiTokenStore, 'getApiToken' | 'touchApiToken'>, key: Buffer, token: string, now: Date): Promise<{ name: string; role: Role } | null> {
  const p = parseToken(token);
  if (!p) return null;
  const row = await store.getApiToken(p.id);
  if (!tokenMatches(key, p.id, p.secret, row?.mac ?? null) || !row) return null;
  if (row.revokedAt !== null || row.expiresAt.getTime() <= now.getTime()) return null;
  await store.touchApiToken(row.id, now);
  return { name: row.name, role: row.role };
}

/** Creates a token; the caller prints `token` once (it is not kept). */
export async function createApiToken(
  store: Pick<ApiTokenStore, 'createApiToken'>,
  key: Buffer,
  t: { name: string; role: Role; ttlMs: number; actor: string; now: Date },
): Promise<{ token: string; record: ApiToken }> {
  if (!/^[a-z0-9][a-z0-9._-]{0,62}$/.test(t.name)) throw badRequest('a token name is 1–63 lower-case letters, digits, dots, dashes or underscores');
  if (!ROLES.includes(t.role)) throw badRequest(`unknown role ${String(t.role)} (roles: ${ROLES.join(', ')})`);
  const g = generateToken(key);
  const record = await store.createApiToken({ id: g.id, name: t.name, role: t.role, mac: g.mac, createdAt: t.now, createdBy: t.actor, expiresAt: new Date(t.now.getTime() + t.ttlMs) });
  return { token: g.token, record };
}
