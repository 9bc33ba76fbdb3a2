/**
 * Seals new audit rows into the hash chain (and anchors it when due) on a timer. Every instance may
 * run it: the store lets one sealer at a time work, and an instance that finds another sealing
 * skips that pass (the other one seals its rows too).
 */
import type { AuditChain } from '../ca/audit-chain.js';

export interface AuditSealerDeps {
  chain: Pick<AuditChain, 'seal'>;
  intervalMs: number;
  log: (obj: Record<string, unknown>, msg: string) => void;
}

/** Runs a sealing pass every `intervalMs` until the returned stop function is called. */
export function startAuditSealer(deps: AuditSealerDeps): () => Promise<void> {
  let running: Promise<unknown> | null = null;
  let stopped = false;
  const pass = () => {
    // a pass still running (a large backlog) is not doubled
    if (running || stopped) return;
    running = deps.chain
      .seal({ wait: false })
      .catch((e: unknown) => deps.log({ err: (e as Error).message }, 'audit sealing pass failed'))
      .finally(() => (running = null));
  };
  const timer = setInterval(pass, deps.intervalMs);
  timer.unref();
  pass();
  return async () => {
    stopped = true;
    clearInterval(timer);
    await running;
  };
}
