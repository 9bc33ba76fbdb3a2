/**
 * Keeps every online issuer's CRLs current:
 * - on a status change (NOTIFY from any process) the issuer's CRLs are republished after
 *   `debounceMs`, gathering the changes that arrive meanwhile;
 * - a new base CRL every `republishMs`, and a fresh delta (with the full CRL) when the newest CRL
 *   has used half its validity;
 * - when another process holds the issuer's build lock, it tries again after `debounceMs`.
 * Every instance runs one; the build lock in the store keeps two from building at once.
 */
import type { Clock } from '../core/clock.js';
import { publishCrls, type CrlDeps } from '../ca/crl.js';
import type { IssuerRuntime } from '../ca/issuers.js';
import type { CrlRecord } from '../ca/ports.js';

export interface CrlPublisherDeps extends CrlDeps {
  issuers: () => Iterable<IssuerRuntime>;
  latestCrl: (issuerName: string, kind: 'full' | 'delta') => Promise<(CrlRecord & { base?: boolean }) | null>;
  latestBaseAt: (issuerId: number) => Promise<Date | null>;
  clock: Clock;
  debounceMs: number;
  republishMs: number;
  /** How often the schedule is checked. */
  tickMs?: number;
  log: (level: 'info' | 'warn', obj: Record<string, unknown>, msg: string) => void;
}

export interface CrlPublisher {
  /** A certificate of this issuer changed status. */
  changed(issuerId: number): void;
  /** Republishes now (after a lost notification channel, or at start when something is due). */
  checkSchedule(): Promise<void>;
  /** Resolves when nothing is scheduled or running (tests). */
  idle(): Promise<void>;
  stop(): Promise<void>;
}

export function startCrlPublisher(deps: CrlPublisherDeps): CrlPublisher {
  const timers = new Map<number, NodeJS.Timeout>();
  const running = new Map<number, Promise<void>>();
  const again = new Set<number>();
  let stopped = false;

  const byId = (id: number) => [...deps.issuers()].find((i) => i.record.id === id && i.signer !== null);

  const publish = async (issuer: IssuerRuntime, base: boolean, why: string): Promise<void> => {
    const id = issuer.record.id;
    const prior = running.get(id);
    if (prior) {
      // a build is running: it may have read its snapshot before this change; go once more after it
      again.add(id);
      return prior;
    }
    const p = (async () => {
      try {
        const pub = await publishCrls(deps, issuer, { base, actor: 'system:crl' });
        if (!pub) {
          schedule(id); // another process is building; make sure one build starts after this change
          return;
        }
        deps.log('info', { issuer: issuer.record.name, number: pub.full.number.toString(), entries: pub.full.entries, delta: pub.delta?.number.toString() ?? null, base, why }, 'CRLs published');
      } catch (e) {
        deps.log('warn', { issuer: issuer.record.name, err: (e as Error).message }, 'CRL publication failed; retrying');
        schedule(id);
      }
    })().finally(() => {
      running.delete(id);
      if (again.delete(id)) schedule(id);
    });
    running.set(id, p);
    return p;
  };

  const schedule = (issuerId: number) => {
    if (stopped || timers.has(issuerId)) return;
    const t = setTimeout(() => {
      timers.delete(issuerId);
      const issuer = byId(issuerId);
      if (issuer) void publish(issuer, false, 'status change');
    }, deps.debounceMs);
    t.unref();
    timers.set(issuerId, t);
  };

  const checkSchedule = async () => {
    for (const issuer of deps.issuers()) {
      if (!issuer.signer || stopped) continue;
      const now = deps.clock.now().getTime();
      const baseAt = await deps.latestBaseAt(issuer.record.id);
      if (!baseAt || now - baseAt.getTime() >= deps.republishMs) {
        await publish(issuer, true, 'schedule: base');
        continue;
      }
      // the newest CRL this issuer serves (delta when deltas are on) must not pass half its life
      const newest = (deps.settings.deltas && issuer.record.role !== 'root' ? await deps.latestCrl(issuer.record.name, 'delta') : null) ?? (await deps.latestCrl(issuer.record.name, 'full'));
      if (!newest || now >= (newest.thisUpdate.getTime() + newest.nextUpdate.getTime()) / 2) await publish(issuer, false, 'schedule: half-life');
    }
  };

  const tick = setInterval(() => {
    checkSchedule().catch((e: unknown) => deps.log('warn', { err: (e as Error).message }, 'CRL schedule check failed'));
  }, deps.tickMs ?? 60_000);
  tick.unref();

  return {
    changed: (issuerId) => {
      if (byId(issuerId)) schedule(issuerId);
    },
    checkSchedule,
    idle: async () => {
      for (;;) {
        if (timers.size === 0 && running.size === 0) return;
        await Promise.all(running.values());
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    stop: async () => {
      stopped = true;
      clearInterval(tick);
      for (const t of timers.values()) clearTimeout(t);
      timers.clear();
      await Promise.all(running.values());
    },
  };
}
