/**
 * Keeps the NAC change feed's table (nac_changes, one row per certificate status change) from
 * growing without end: a pass deletes the rows that a later change of the same device made
 * redundant (store NacStore.pruneNacChanges says why the feed reads the same). Every instance may
 * run it: two passes at once delete the same rows once.
 */
import type { NacStore } from '../ca/ports.js';

export interface NacPrunerDeps {
  store: Pick<NacStore, 'pruneNacChanges'>;
  log: (obj: Record<string, unknown>, msg: string) => void;
}

/** Runs a pass every `intervalMs` (the first one after `intervalMs`) until the returned stop function is called. */
export function startNacPruner(deps: NacPrunerDeps, intervalMs = 3600_000): () => Promise<void> {
  let running: Promise<unknown> = Promise.resolve();
  const timer = setInterval(() => {
    running = deps.store
      .pruneNacChanges()
      .then((n) => {
        if (n > 0) deps.log({ deleted: n }, 'NAC change feed: redundant change rows deleted');
      })
      .catch((e: unknown) => deps.log({ err: (e as Error).message }, 'NAC change feed: pruning pass failed'));
  }, intervalMs);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await running;
  };
}
