/**
 * Firmware-vulnerability response (issue 6): an advisory selects the devices of a model whose
 * firmware is in a version range (core/versions.ts) and
 * - quarantine: quarantines each (every live certificate on hold, no enrollment until released);
 * - restrict: their next certificate comes from another device profile (a restricted NAC role);
 * - shorten: their next certificate lives at most `maxValidityMs`, so they must re-enroll soon.
 * Retired devices are never selected. `dryRun` only selects. Withdrawing an advisory (patched
 * firmware is out) clears what restrict/shorten set; a quarantine is lifted per device.
 */
import { badRequest, CaError } from '../core/errors.js';
import type { Clock } from '../core/clock.js';
import { parseVersionRange, versionInRange } from '../core/versions.js';
import type { FleetcaConfig } from '../config/schema.js';
import { quarantineDevice } from './containment.js';
import type { Advisory, AdvisoryAction, AdvisoryStore, ContainmentStore } from './ports.js';

export interface AdvisoryDeps {
  store: AdvisoryStore & ContainmentStore;
  clock: Clock;
  config: FleetcaConfig;
}

export interface AdvisoryRequest {
  model: string;
  firmware: string;
  action: AdvisoryAction;
  /** restrict: the device profile their next certificate comes from. */
  profile?: string;
  /** shorten: the longest validity of their next certificate, ms. */
  maxValidityMs?: number;
  reason: string;
  dryRun: boolean;
  actor: string;
}

export interface AdvisoryOutcome {
  /** The affected devices (model matches, firmware in range, not retired), by id. */
  devices: string[];
  /** Of those: already quarantined (quarantine action), so left as they were. */
  skipped: string[];
  advisory: Advisory | null;
}

export async function applyAdvisory(deps: AdvisoryDeps, req: AdvisoryRequest): Promise<AdvisoryOutcome> {
  const range = parseVersionRange(req.firmware);
  const reason = req.reason.trim();
  if (!req.model.trim()) throw badRequest('an advisory needs a model');
  if (!reason) throw badRequest('an advisory needs a reason');
  if (req.action === 'restrict') {
    const p = req.profile ? deps.config.profiles.get(req.profile) : undefined;
    if (!p || p.kind !== 'device') throw badRequest(`restrict needs a restricted profile naming a device profile (CLI --profile, API restricted_profile; got ${req.profile ?? 'none'})`);
  } else if (req.profile !== undefined) throw badRequest('a restricted profile (CLI --profile, API restricted_profile) is only for the restrict action');
  if (req.action === 'shorten') {
    if (!req.maxValidityMs || req.maxValidityMs <= 0) throw badRequest('shorten needs a maximum validity (CLI --validity, API max_validity; e.g. 7d)');
  } else if (req.maxValidityMs !== undefined) throw badRequest('a maximum validity (CLI --validity, API max_validity) is only for the shorten action');

  const candidates = (await deps.store.devicesOfModel(req.model)).filter((d) => d.state !== 'retired' && versionInRange(d.firmware, range));
  const devices = candidates.map((d) => d.id);
  if (req.dryRun) return { devices, skipped: [], advisory: null };

  const advisory = await deps.store.recordAdvisory({
    model: req.model,
    firmwareRange: req.firmware,
    action: req.action,
    restrictedProfile: req.action === 'restrict' ? req.profile! : null,
    maxValidityMs: req.action === 'shorten' ? req.maxValidityMs! : null,
    reason,
    devices,
    createdAt: deps.clock.now(),
    createdBy: req.actor,
  });
  const skipped: string[] = [];
  if (req.action === 'quarantine') {
    for (const id of devices) {
      try {
        await quarantineDevice(deps, id, `advisory ${advisory.id}: ${reason}`, req.actor);
      } catch (e) {
        // quarantined already (or retired meanwhile): nothing to add
        if (e instanceof CaError && e.kind === 'conflict') skipped.push(id);
        else throw e;
      }
    }
  }
  return { devices, skipped, advisory };
}

export function withdrawAdvisory(deps: Pick<AdvisoryDeps, 'store' | 'clock'>, id: number, actor: string): Promise<Advisory> {
  if (!Number.isSafeInteger(id) || id <= 0) throw badRequest(`"${id}" is not an advisory id`);
  return deps.store.withdrawAdvisory(id, deps.clock.now(), actor);
}
