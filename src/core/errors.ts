/**
 * The one error type of fleetca. Core code throws a CaError with a `kind` from a closed union;
 * each protocol adapter maps the kind to its own failure channel in an exhaustive switch
 * (see `assertNever`), so adding a kind fails the build until every edge handles it.
 * No HTTP status or exit code lives here.
 */
export type CaErrorKind =
  | 'badRequest'
  | 'badCsr'
  | 'unauthorized'
  | 'forbidden'
  | 'policyRejected'
  | 'pending'
  | 'notFound'
  | 'conflict'
  | 'unavailable'
  | 'internal';

/** Every kind, for tables and tests. */
export const CA_ERROR_KINDS: readonly CaErrorKind[] = [
  'badRequest',
  'badCsr',
  'unauthorized',
  'forbidden',
  'policyRejected',
  'pending',
  'notFound',
  'conflict',
  'unavailable',
  'internal',
];

export class CaError extends Error {
  readonly kind: CaErrorKind;
  /** Safe to show to the requester. Internal detail goes to `cause` and the log only. */
  readonly publicMessage: string;

  constructor(kind: CaErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CaError';
    this.kind = kind;
    this.publicMessage = kind === 'internal' ? 'internal error' : message;
  }
}

/** Shorthand constructors keep call sites readable. */
export const badRequest = (msg: string, cause?: unknown) => new CaError('badRequest', msg, { cause });
export const badCsr = (msg: string, cause?: unknown) => new CaError('badCsr', msg, { cause });
export const policyRejected = (msg: string) => new CaError('policyRejected', msg);
export const notFound = (msg: string) => new CaError('notFound', msg);
export const conflict = (msg: string) => new CaError('conflict', msg);
export const forbidden = (msg: string) => new CaError('forbidden', msg);
export const unauthorized = (msg: string) => new CaError('unauthorized', msg);
export const unavailable = (msg: string, cause?: unknown) => new CaError('unavailable', msg, { cause });
export const internal = (msg: string, cause?: unknown) => new CaError('internal', msg, { cause });

/** Wraps anything thrown into a CaError; unknown errors become `internal`. */
export function toCaError(err: unknown): CaError {
  if (err instanceof CaError) return err;
  return internal(err instanceof Error ? err.message : String(err), err);
}

/** Compile-time exhaustiveness check for switches over closed unions. */
export function assertNever(x: never): never {
  throw new Error(`unhandled case: ${String(x)}`);
}
