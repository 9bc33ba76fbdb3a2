/**
 * Rotation (issue 9): what happens after a device got a new certificate — the live certificates it
 * replaces are superseded (valid for the profile's `renewal.supersededGrace`, then revoked with
 * reason superseded) and, when one was, `certificate.renewed` is recorded — and `fleetca renew`:
 * a server-side re-issue for the same public key, for fleets whose devices are pushed their
 * certificate instead of pulling it.
 */
import { conflict, forbidden, notFound } from '../core/errors.js';
import type { Clock } from '../core/clock.js';
import type { FleetcaConfig, Profile } from '../config/schema.js';
import { certificateParts } from '../pki/cert-parts.js';
import { decodeName } from '../pki/names.js';
import { parseSpki } from '../pki/spki.js';
import type { CertificateAuthority, IssuedCertificate } from '../ca/issuance.js';
import type { AuditEntry, CertificateRecord, DeviceRecord } from '../ca/ports.js';
import type { SupersedeStore } from './ports.js';

/**
 * Supersedes the device's other live certificates of the profile by `newSerial`, with the
 * profile's grace period, and records certificate.renewed (when something was replaced and the
 * profile announces it) in the same statement.
 */
export async function supersedeReplaced(
  deps: { store: Pick<SupersedeStore, 'supersede'>; clock: Clock },
  p: { deviceId: string; profile: Profile; newSerial: string; actor: string; via: string },
): Promise<string[]> {
  const at = deps.clock.now();
  const renewed: AuditEntry | null = p.profile.notifications.events.includes('certificate.renewed')
    ? { at, actor: p.actor, action: 'certificate.renewed', target: p.newSerial, details: { device: p.deviceId, profile: p.profile.name, via: p.via } }
    : null;
  return deps.store.supersede(
    { deviceId: p.deviceId, profile: p.profile.name, newSerial: p.newSerial, at, revokeAt: new Date(at.getTime() + p.profile.renewal.supersededGrace) },
    { at, actor: p.actor, action: 'certificate.superseded', target: null, details: { device: p.deviceId, profile: p.profile.name } },
    renewed,
  );
}

export interface RenewDeps {
  ca: CertificateAuthority;
  store: Pick<SupersedeStore, 'supersede'> & {
    getCertificate(serial: string): Promise<CertificateRecord | null>;
    getDevice(id: string): Promise<DeviceRecord | null>;
  };
  config: FleetcaConfig;
  clock: Clock;
}

export interface Renewal {
  certificate: IssuedCertificate;
  /** The serials the new certificate superseded (the renewed one among them). */
  superseded: string[];
}

/** MAC URIs come from the device record at issuance (profile san.includeMacs), never from the old certificate. */
function requestedSans(profile: Profile, cert: CertificateRecord): CertificateRecord['sans'] {
  return profile.san.includeMacs ? cert.sans.filter((s) => !(s.type === 'uri' && s.value.startsWith('urn:dev:mac:'))) : cert.sans;
}

/**
 * `fleetca renew SERIAL`: a new certificate for the same device, profile, subject, SANs and public
 * key, with a new serial and validity, through the core pipeline (the profile's policy and lints
 * apply as at any issuance). The old certificate is superseded exactly as at re-enrollment. An
 * admin action: the profile's `renewal.allowEarly` does not apply; `renewal.reuseKey: false` does
 * (the point of such a profile is a new key at every rotation).
 *
 * Refused (forbidden) for a revoked, held or expired certificate, a quarantined or retired device,
 * a certificate of no device or of a system profile; a certificate already replaced → conflict.
 */
export async function renewCertificate(deps: RenewDeps, serial: string, actor: string, via = 'cli'): Promise<Renewal> {
  const cert = await deps.store.getCertificate(serial);
  if (!cert) throw notFound(`no certificate with serial ${serial}`);
  if (!cert.deviceId) throw forbidden(`certificate ${serial} belongs to no device (fleetca renews its own service certificates by itself)`);
  const profile = deps.config.profiles.get(cert.profile);
  if (!profile || profile.kind !== 'device') throw forbidden(`certificate ${serial} is of profile "${cert.profile}", which is not a device profile in the configuration`);
  if (cert.status === 'revoked') throw forbidden(`certificate ${serial} is revoked (${cert.revocationReason ?? 'unspecified'}): a revoked certificate is never renewed; enroll the device anew`);
  if (cert.status === 'hold') throw forbidden(`certificate ${serial} is on hold: release it (or the device's quarantine) before renewing`);
  const now = deps.clock.now();
  if (now >= cert.notAfter) throw forbidden(`certificate ${serial} expired at ${cert.notAfter.toISOString()}: an expired certificate is never renewed; enroll the device anew (e.g. with a one-time secret)`);
  if (cert.supersededBy) throw conflict(`certificate ${serial} was already replaced by ${cert.supersededBy}; renew that one`);
  const device = await deps.store.getDevice(cert.deviceId);
  if (!device) throw notFound(`unknown device "${cert.deviceId}"`);
  if (device.state === 'quarantined') throw forbidden(`device ${device.id} is quarantined: release it before renewing its certificate`);
  if (device.state === 'retired') throw forbidden(`device ${device.id} is retired and is never issued certificates again`);
  if (device.restrictedProfile && device.restrictedProfile !== profile.name) {
    throw forbidden(`device ${device.id} is restricted to profile ${device.restrictedProfile} by an advisory: it must re-enroll, a renewal would keep profile ${profile.name}`);
  }
  if (!profile.renewal.reuseKey) throw forbidden(`profile ${profile.name} requires a new key at every renewal (renewal.reuseKey: false): the device must re-enroll with a new key`);

  // the same key, subject and SANs, read from the certificate being renewed
  const parts = certificateParts(cert.der);
  const spkiDer = Buffer.from(parts.spkiDer);
  const certificate = await deps.ca.issueForPublicKey({
    profile: profile.name,
    deviceId: device.id,
    subject: decodeName(Buffer.from(parts.subjectDer)),
    sans: requestedSans(profile, cert),
    spkiDer,
    key: parseSpki(spkiDer).key,
    popMethod: 'renewal',
    actor,
    via,
  });
  const superseded = await supersedeReplaced(deps, { deviceId: device.id, profile, newSerial: certificate.serial, actor, via });
  return { certificate, superseded };
}
