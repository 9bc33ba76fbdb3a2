/**
 * Creating one-time enrollment secrets (`fleetca secret create`, factory batches): checks the
 * profile and device, draws the secrets, stores only their HMACs. The secrets are returned once
 * and never stored or logged.
 */
import { badRequest, forbidden, notFound } from '../core/errors.js';
import type { Clock } from '../core/clock.js';
import { formatDuration } from '../core/duration.js';
import { DEVICE_ID_RE } from '../core/ids.js';
import type { FleetcaConfig } from '../config/schema.js';
import type { AuditEntry, DeviceRecord, NewDevice } from '../ca/ports.js';
import type { NewSecret, SecretStore } from './ports.js';
import { generateSecret, secretMac } from './secrets.js';

export interface SecretIssuerDeps {
  store: SecretStore & {
    getDevice(id: string): Promise<DeviceRecord | null>;
    addDevice(d: NewDevice, at: Date): Promise<DeviceRecord>;
  };
  config: FleetcaConfig;
  clock: Clock;
  secretKey: Buffer;
}

export interface SecretRequest {
  deviceId: string;
  profile: string;
  /** Lifetime; the configured default when absent. */
  ttlMs?: number;
}

export interface CreatedSecret {
  id: string;
  deviceId: string;
  profile: string;
  /** The secret itself: shown once, never stored. */
  secret: string;
  expiresAt: Date;
}

/** The checks every secret request passes: device id, profile, lifetime. */
function assertSecretRequest(config: FleetcaConfig, r: SecretRequest): void {
  const settings = config.settings.enrollment;
  if (!DEVICE_ID_RE.test(r.deviceId)) throw badRequest(`"${r.deviceId}" is not a valid device id (letters, digits, . _ : -; at most 128)`);
  // HTTP Basic (RFC 7617) cannot carry a ':' in the user-id
  if (r.deviceId.includes(':')) throw badRequest(`device id "${r.deviceId}" contains ':', which HTTP Basic cannot carry as a username`);
  const p = config.profiles.get(r.profile);
  if (!p || p.kind !== 'device') throw notFound(`no device profile "${r.profile}"`);
  if (!p.enrollment.secrets) throw forbidden(`profile ${p.name} does not accept one-time secrets`);
  const ttl = r.ttlMs ?? settings.secretTtl;
  if (!(ttl > 0) || ttl > settings.maxSecretTtl) throw badRequest(`secret lifetime must be positive and at most ${formatDuration(settings.maxSecretTtl)}`);
}

/** Creates one secret per request (devices created when new, with the profile as their default). */
export async function createEnrollmentSecrets(deps: SecretIssuerDeps, requests: SecretRequest[], actor: string): Promise<CreatedSecret[]> {
  const settings = deps.config.settings.enrollment;
  const now = deps.clock.now();
  for (const r of requests) {
    assertSecretRequest(deps.config, r);
    const device = (await deps.store.getDevice(r.deviceId)) ?? (await deps.store.addDevice({ id: r.deviceId, profile: r.profile }, now).catch(async (e: unknown) => {
      // created concurrently: read the winner's row
      const d = await deps.store.getDevice(r.deviceId);
      if (!d) throw e;
      return d;
    }));
    if (device.state !== 'active') throw forbidden(`device "${r.deviceId}" is ${device.state}; no secret can be issued`);
  }
  const drawn = requests.map((r) => ({ ...r, secret: generateSecret(), expiresAt: new Date(now.getTime() + (r.ttlMs ?? settings.secretTtl)) }));
  const audit: AuditEntry[] = drawn.map((d) => ({
    at: now,
    actor,
    action: 'secret.created',
    target: d.deviceId,
    details: { profile: d.profile, expiresAt: d.expiresAt.toISOString() },
  }));
  const ids = await deps.store.createSecrets(
    drawn.map((d) => ({ deviceId: d.deviceId, profile: d.profile, mac: secretMac(deps.secretKey, d.deviceId, d.secret), createdAt: now, expiresAt: d.expiresAt, createdBy: actor })),
    audit,
  );
  return drawn.map((d, i) => ({ id: ids[i]!, deviceId: d.deviceId, profile: d.profile, secret: d.secret, expiresAt: d.expiresAt }));
}

/** A secret drawn for a factory batch and not stored yet: `record` and `audit` go to the store later. */
export interface PreparedSecret {
  deviceId: string;
  profile: string;
  /** The secret itself: shown once, never stored. */
  secret: string;
  expiresAt: Date;
  record: NewSecret;
  audit: AuditEntry;
}

/**
 * The batch variant of createEnrollmentSecrets (factory batches): checks and draws secrets for many
 * devices without touching the store, so that the caller can write them out first and then store
 * the MACs of a whole chunk in one transaction with its other records. A request that brings its
 * `secret` re-uses it (a resumed batch holding a plaintext whose row was never stored). The devices
 * are the caller's to create and check (a batch registers them, and refuses inactive ones).
 */
export function prepareEnrollmentSecrets(
  deps: Pick<SecretIssuerDeps, 'config' | 'clock' | 'secretKey'>,
  requests: Array<SecretRequest & { secret?: string }>,
  actor: string,
): PreparedSecret[] {
  const now = deps.clock.now();
  return requests.map((r) => {
    assertSecretRequest(deps.config, r);
    const secret = r.secret ?? generateSecret();
    const expiresAt = new Date(now.getTime() + (r.ttlMs ?? deps.config.settings.enrollment.secretTtl));
    return {
      deviceId: r.deviceId,
      profile: r.profile,
      secret,
      expiresAt,
      record: { deviceId: r.deviceId, profile: r.profile, mac: secretMac(deps.secretKey, r.deviceId, secret), createdAt: now, expiresAt, createdBy: actor },
      audit: { at: now, actor, action: 'secret.created', target: r.deviceId, details: { profile: r.profile, expiresAt: expiresAt.toISOString() } },
    };
  });
}
