/**
 * PostgreSQL / node-postgres errors → CaError. The store raises only the kinds of
 * `StoreErrorKind`: conflict (unique violation), notFound (a referenced row is missing),
 * unavailable (the database cannot be reached or is shutting down), internal (everything else).
 */
import { CaError, conflict, internal, notFound, unavailable } from '../core/errors.js';

/** Network-level errno codes that mean "the database is not reachable right now". */
const NET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOENT', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);

/** node-postgres raises these as plain Errors without a code. */
const NET_MESSAGES = [
  'Connection terminated',
  'is not queryable',
  'timeout exceeded when trying to connect',
  'Cannot use a pool after calling end',
];

/** Friendly messages for the unique constraints a caller can run into. */
const CONSTRAINT_MESSAGES: Record<string, string> = {
  certificates_fingerprint_sha256_key: 'a certificate with this fingerprint already exists',
  certificates_pkey: 'a certificate with this serial already exists',
  devices_pkey: 'the device already exists',
  issuers_name_key: 'an issuer with this name already exists',
  serials_pkey: 'the serial is already taken',
  issuance_intents_pkey: 'an intent for this serial already exists',
};

/** SQLSTATE (or errno code) of an error, if it has one. */
export function pgErrorCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

/** True when the error means the connection (or the server) is gone or refusing, not the data. */
export function isConnectionError(err: unknown): boolean {
  const code = pgErrorCode(err);
  if (code !== undefined) {
    if (NET_CODES.has(code)) return true;
    // class 08 connection exception; 57P01..57P05 admin/crash shutdown, cannot connect now, idle
    // session timeout; 53300 too many connections
    if (code.startsWith('08') || /^57P0[1-5]$/.test(code) || code === '53300') return true;
  }
  const message = err instanceof Error ? err.message : '';
  return NET_MESSAGES.some((m) => message.includes(m));
}

/** Deadlock or serialization failure: the same transaction may simply be run again. */
export function isRetryable(err: unknown): boolean {
  const code = pgErrorCode(err);
  return code === '40P01' || code === '40001';
}

/** Integrity or data errors tied to the content of some row (classes 22 and 23). */
export function isDataError(err: unknown): boolean {
  const code = pgErrorCode(err);
  return code !== undefined && (code.startsWith('22') || code.startsWith('23'));
}

/** Maps anything a query threw to a CaError of a store kind. CaErrors pass through. */
export function mapPgError(err: unknown): CaError {
  if (err instanceof CaError) return err;
  const code = pgErrorCode(err);
  const message = err instanceof Error ? err.message : String(err);
  if (isConnectionError(err)) return unavailable('the database is unavailable', err);
  if (code === '23505') {
    const constraint = (err as { constraint?: string }).constraint;
    return withCause(conflict((constraint && CONSTRAINT_MESSAGES[constraint]) ?? 'a row with the same key already exists'), err);
  }
  if (code === '23503') {
    const detail = (err as { detail?: string }).detail;
    return withCause(notFound(detail ? `referenced row not found: ${detail}` : 'a referenced row does not exist'), err);
  }
  if (isRetryable(err)) return unavailable('the database is busy, try again', err);
  return internal(`database error${code ? ` ${code}` : ''}: ${message}`, err);
}

function withCause(e: CaError, cause: unknown): CaError {
  Object.defineProperty(e, 'cause', { value: cause, enumerable: false, configurable: true, writable: true });
  return e;
}
