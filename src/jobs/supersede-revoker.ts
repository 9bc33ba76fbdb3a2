/**
 * Revokes superseded certificates whose grace period ended (reason superseded, RFC 5280 §5.3.1).
 * Idempotent, so every instance may run it: a certificate another instance (or an admin) revoked
 * meanwhile is a conflict that is simply skipped.
 */
import { CaError } from '../core/errors.js';
import type { Clock } from '../core/clock.js';
import type { CertificateAuthority } from '../ca/issuance.js';
import type { SupersedeStore } from '../enrollment/ports.js';

export interface SupersedeRevokerDeps {
  ca: CertificateAuthority;
  store: Pick<SupersedeStore, 'dueSuperseded'>;
  clock: Clock;
  log: (obj: Record<string, unknown>, msg: string) => void;
}

/** One pass: revokes up to `batch` due certificates; returns the serials it revoked. */
export async function revokeDueSuperseded(deps: SupersedeRevokerDeps, batch = 500): Promise<string[]> {
  const due = await deps.store.dueSuperseded(deps.clock.now(), batch);
  const done: string[] = [];
  for (const serial of due) {
    try {
      await deps.ca.revoke(serial, 'superseded', 'system:supersede');
      done.push(serial);
    } catch (e) {
      if (e instanceof CaError && e.kind === 'conflict') continue;
      throw e;
    }
  }
  if (done.length > 0) deps.log({ revoked: done.length }, 'revoked superseded certificates whose grace period ended');
  return done;
}

/** Runs a pass every `intervalMs` until the returned stop function is called. */
export function startSupersedeRevoker(deps: SupersedeRevokerDeps, intervalMs = 60_000): () => Promise<void> {
  let running: Promise<unknown> = Promise.resolve();
  const timer = setInterval(() => {
    running = revokeDueSuperseded(deps).catch((e: unknown) => deps.log({ err: (e as Error).message }, 'superseded revocation pass failed'));
  }, intervalMs);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await running;
  };
}
