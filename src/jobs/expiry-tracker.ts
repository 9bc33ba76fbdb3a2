/**
 * The expiry tracker (issue 9): every `expiry.interval`, each server refreshes its expiry gauges
 * (one aggregate per profile in the store, never rows), and one server at a time — the one that
 * gets the `expiry` advisory lock — announces what became due since the last pass:
 *
 *   certificate.expiring  once per certificate per threshold of its profile (default 30d, 7d, 1d)
 *   certificate.expired   once per certificate
 *   device.stale          once per device and current certificate, when it is inside its renewal
 *                         window (profile `renewal.window`) and the device has not re-enrolled
 *
 * Events are audit records (the webhook trigger turns them into deliveries); the store records
 * each notice with its audit record in one statement, so a notice is never announced twice —
 * not after a restart, not by two servers at once (even one that lost its lock mid-pass). Which
 * events a profile raises is its `notifications.events`. The certificates considered are the
 * devices' current ones (enrollment/inventory.ts): a replaced certificate is not chased.
 */
import type { Clock } from '../core/clock.js';
import { formatDuration } from '../core/duration.js';
import type { FleetcaConfig } from '../config/schema.js';
import type { AnnounceResult, ExpiryCounts, ExpiryStore, JobLockStore } from '../enrollment/ports.js';

const DAY = 86_400_000;

/** The `within` label values of fleetca_certificates_expiring, and their windows. */
export const GAUGE_WINDOWS: ReadonlyArray<{ within: string; ms: number }> = [
  { within: '1d', ms: DAY },
  { within: '7d', ms: 7 * DAY },
  { within: '30d', ms: 30 * DAY },
];

/** The audit actor of the tracker's events. */
export const EXPIRY_ACTOR = 'system:expiry';

/** Per profile, what the gauges show. */
export interface ExpiryGauges {
  profile: string;
  /** By GAUGE_WINDOWS `within` label. */
  expiring: Record<string, number>;
  expired: number;
}

/** What the announcing statements are given, from the profiles' configuration. */
export interface ExpiryRules {
  thresholds: Array<{ profile: string; ms: number; label: string }>;
  expired: string[];
  stale: Array<{ profile: string; share: number | null; ms: number | null }>;
}

/** The rules of every device profile, by its `notifications` and `renewal.window`. */
export function expiryRules(config: FleetcaConfig): ExpiryRules {
  const rules: ExpiryRules = { thresholds: [], expired: [], stale: [] };
  for (const p of config.profiles.values()) {
    if (p.kind !== 'device') continue;
    const events = p.notifications.events;
    if (events.includes('certificate.expiring')) {
      for (const ms of new Set(p.notifications.expiringThresholds)) rules.thresholds.push({ profile: p.name, ms, label: formatDuration(ms) });
    }
    if (events.includes('certificate.expired')) rules.expired.push(p.name);
    if (events.includes('device.stale')) {
      const w = p.renewal.window;
      // the same window as renewalWindowStart (enrollment/enroll.ts): a share of the lifetime, or a duration
      rules.stale.push(typeof w === 'string' ? { profile: p.name, share: Number(w.slice(0, -1)) / 100, ms: null } : { profile: p.name, share: null, ms: w });
    }
  }
  return rules;
}

export interface ExpiryTrackerDeps {
  store: ExpiryStore & JobLockStore;
  config: FleetcaConfig;
  clock: Clock;
  /** Receives the gauge values of every pass (every server, lock or not). */
  gauges?: (g: ExpiryGauges[]) => void;
  log: (level: 'info' | 'warn', obj: Record<string, unknown>, msg: string) => void;
  /** Certificates per announcing statement (default 1000). */
  batch?: number;
}

export interface ExpiryPass {
  gauges: ExpiryGauges[];
  /** Events written by this server; null when another server held the lock (it announces). */
  announced: { expiring: number; expired: number; stale: number } | null;
}

/** Gauge values: one row per device profile of the configuration (zeros included), plus any other profile the store counted. */
export function gaugesOf(config: FleetcaConfig, counts: readonly ExpiryCounts[]): ExpiryGauges[] {
  const by = new Map(counts.map((c) => [c.profile, c]));
  const names = new Set([...[...config.profiles.values()].filter((p) => p.kind === 'device').map((p) => p.name), ...by.keys()]);
  return [...names].sort().map((profile) => {
    const c = by.get(profile);
    return { profile, expired: c?.expired ?? 0, expiring: Object.fromEntries(GAUGE_WINDOWS.map((w, i) => [w.within, c?.expiring[i] ?? 0])) };
  });
}

/** Runs `announce` batch after batch (each one statement) until a batch finds fewer than `batch` due. */
async function drain(batch: number, announce: (after: string, limit: number) => Promise<AnnounceResult>): Promise<number> {
  let total = 0;
  let after = '';
  for (;;) {
    const r = await announce(after, batch);
    total += r.announced;
    // keyset: the next batch starts after the last serial found, so a pass reads each certificate once
    if (r.due < batch || r.last === null) return total;
    after = r.last;
  }
}

/** One pass: the gauges, then (under the lock) the announcements. */
export async function runExpiryPass(deps: ExpiryTrackerDeps): Promise<ExpiryPass> {
  const now = deps.clock.now();
  const gauges = gaugesOf(deps.config, await deps.store.expiryCounts(now, GAUGE_WINDOWS.map((w) => w.ms)));
  deps.gauges?.(gauges);
  const batch = deps.batch ?? 1000;
  const rules = expiryRules(deps.config);
  const since = new Date(now.getTime() - deps.config.settings.expiry.catchUp);
  const announced = await deps.store.exclusive('expiry', async () => {
    const actor = EXPIRY_ACTOR;
    // tightest news first: a certificate crossing its window and its expiry in one pass gets both
    const expiring = await drain(batch, (after, limit) => deps.store.announceExpiring({ now, actor, thresholds: rules.thresholds, after, limit }));
    const stale = await drain(batch, (after, limit) => deps.store.announceStale({ now, since, actor, windows: rules.stale, after, limit }));
    const expired = await drain(batch, (after, limit) => deps.store.announceExpired({ now, since, actor, profiles: rules.expired, after, limit }));
    return { expiring, expired, stale };
  });
  if (announced && announced.expiring + announced.expired + announced.stale > 0) deps.log('info', announced, 'expiry events announced');
  return { gauges, announced };
}

export interface ExpiryTracker {
  /** A pass now (a pass already running is joined, not doubled). */
  runNow(): Promise<ExpiryPass>;
  stop(): Promise<void>;
}

/** Runs a pass at once and then every `intervalMs` (default: `expiry.interval`). */
export function startExpiryTracker(deps: ExpiryTrackerDeps, intervalMs = deps.config.settings.expiry.interval): ExpiryTracker {
  let running: Promise<ExpiryPass> | null = null;
  let stopped = false;
  const runNow = () => {
    running ??= runExpiryPass(deps).finally(() => (running = null));
    return running;
  };
  const tick = () => {
    if (stopped) return;
    runNow().catch((e: unknown) => deps.log('warn', { err: (e as Error).message }, 'expiry tracker pass failed'));
  };
  const timer = setInterval(tick, intervalMs);
  timer.unref();
  tick();
  return {
    runNow,
    stop: async () => {
      stopped = true;
      clearInterval(timer);
      await running?.catch(() => undefined);
    },
  };
}
