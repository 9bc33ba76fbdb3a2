/**
 * Containing a whole device (issue 6): quarantine (every live certificate on hold, the device may
 * not enroll or renew: issuance refuses a device that is not active), lifting it, and retirement
 * (every live certificate revoked, cessationOfOperation). The store applies each atomically with
 * its audit entry; the rules are on ContainmentStore.
 */
import { badRequest } from '../core/errors.js';
import type { Clock } from '../core/clock.js';
import { crlEntryOf } from './revocation.js';
import type { CertificateRecord, ContainmentStore, DeviceQuarantine } from './ports.js';

export interface ContainmentDeps {
  store: ContainmentStore;
  clock: Clock;
}

/** The longest quarantine reason kept (it is free text from an operator or a SOC tool). */
export const MAX_REASON_LENGTH = 1000;

export async function quarantineDevice(deps: ContainmentDeps, deviceId: string, reason: string, actor: string): Promise<{ quarantine: DeviceQuarantine; held: CertificateRecord[] }> {
  const why = reason.trim();
  if (why.length === 0) throw badRequest('a quarantine needs a reason');
  if (why.length > MAX_REASON_LENGTH) throw badRequest(`the reason is longer than ${MAX_REASON_LENGTH} characters`);
  return deps.store.quarantineDevice({ deviceId, reason: why, at: deps.clock.now(), actor, crlEntry: crlEntryOf });
}

export async function liftQuarantine(deps: ContainmentDeps, deviceId: string, actor: string): Promise<{ quarantine: DeviceQuarantine; released: CertificateRecord[] }> {
  return deps.store.liftQuarantine({ deviceId, at: deps.clock.now(), actor });
}

export async function retireDevice(deps: ContainmentDeps, deviceId: string, actor: string): Promise<CertificateRecord[]> {
  return deps.store.retireDevice({ deviceId, at: deps.clock.now(), actor, crlEntry: crlEntryOf });
}
