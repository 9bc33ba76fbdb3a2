/**
 * The trust bundle a NAC needs for EAP-TLS: every device issuing CA that is not expired (both of
 * them during a rollover) and the root(s) above them — never the manufacturing CA: an IDevID
 * proves what a device is, not that it may join the network.
 */
import type { IssuerRecord } from './ports.js';

/** Issuing CAs first (newest first), then roots; expired CAs left out. */
export function trustBundle(issuers: Iterable<IssuerRecord>, now: Date): IssuerRecord[] {
  const live = [...issuers].filter((i) => i.notBefore <= now && now < i.notAfter);
  const byNewest = (a: IssuerRecord, b: IssuerRecord) => b.notBefore.getTime() - a.notBefore.getTime() || a.name.localeCompare(b.name);
  const devices = live.filter((i) => i.role === 'device').sort(byNewest);
  const roots = live.filter((i) => i.role === 'root').sort(byNewest);
  return [...devices, ...roots];
}
