/**
 * Reads and validates `ca-config/` once: `ca.yaml` plus `profiles/*.yaml`. Every problem is
 * reported with its file and path (`profiles/camera.yaml: keys.types[2]: ...`), all at once, so
 * `fleetca config check` shows the whole list. The result is deeply frozen.
 */
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { z } from 'zod';
import { CaSettingsSchema, ProfileSchema, type FleetcaConfig, type Profile } from './schema.js';

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

function formatIssuePath(p: readonly PropertyKey[]): string {
  let out = '';
  for (const k of p) out += typeof k === 'number' ? `[${k}]` : out ? `.${String(k)}` : String(k);
  return out || '(top level)';
}

function zodProblems(file: string, err: z.ZodError): string[] {
  return err.issues.map((i) => {
    let msg = i.message;
    if (i.code === 'unrecognized_keys') msg = `unknown key${i.keys.length > 1 ? 's' : ''} ${i.keys.map((k) => `"${k}"`).join(', ')}`;
    return `${file}: ${formatIssuePath(i.path)}: ${msg}`;
  });
}

function readYaml(file: string, rel: string, problems: string[]): unknown {
  try {
    return parseYaml(readFileSync(file, 'utf8'), { uniqueKeys: true });
  } catch (e) {
    if (e instanceof YAMLParseError) problems.push(`${rel}: ${e.message.split('\n')[0]}`);
    else problems.push(`${rel}: ${(e as Error).message}`);
    return undefined;
  }
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o as object)) deepFreeze(v);
  }
  return o;
}

/** Loads and validates a config directory; throws ConfigError listing every problem. */
export function loadConfig(dir: string): FleetcaConfig {
  const problems: string[] = [];
  const caFile = path.join(dir, 'ca.yaml');
  if (!existsSync(caFile)) throw new ConfigError([`${caFile}: missing`]);
  const rawSettings = readYaml(caFile, 'ca.yaml', problems);
  const settingsResult = CaSettingsSchema.safeParse(rawSettings ?? {});
  if (!settingsResult.success && rawSettings !== undefined) problems.push(...zodProblems('ca.yaml', settingsResult.error));

  const profiles = new Map<string, Profile>();
  const profDir = path.join(dir, 'profiles');
  const files = existsSync(profDir) ? readdirSync(profDir).filter((f) => /\.ya?ml$/.test(f)).sort() : [];
  for (const f of files) {
    const name = f.replace(/\.ya?ml$/, '');
    const rel = `profiles/${f}`;
    if (!/^[a-z][a-z0-9-]{1,40}$/.test(name)) {
      problems.push(`${rel}: profile file names must be lower-case letters, digits and dashes`);
      continue;
    }
    const raw = readYaml(path.join(profDir, f), rel, problems);
    if (raw === undefined) continue;
    const r = ProfileSchema.safeParse(raw);
    if (!r.success) {
      problems.push(...zodProblems(rel, r.error));
      continue;
    }
    profiles.set(name, deepFreeze({ ...r.data, name }));
  }

  if (settingsResult.success) {
    const settings = settingsResult.data;
    const issuers = settings.issuers;
    const roots = Object.entries(issuers).filter(([, i]) => i.role === 'root');
    if (roots.length !== 1) problems.push(`ca.yaml: issuers: exactly one issuer must have role root (found ${roots.length})`);
    if (!Object.values(issuers).some((i) => i.role === 'device')) problems.push('ca.yaml: issuers: an issuer with role device is required');
    settings.webhooks.endpoints.forEach((e, i) => {
      if (!existsSync(path.resolve(dir, e.secretFile))) problems.push(`ca.yaml: webhooks.endpoints[${i}].secretFile: no file ${e.secretFile} in ${dir}`);
    });
    for (const [pname, p] of profiles) {
      const rel = `profiles/${pname}.yaml`;
      if (p.issuer !== 'per-issuer' && !issuers[p.issuer]) problems.push(`${rel}: issuer: unknown issuer "${p.issuer}" (ca.yaml has ${Object.keys(issuers).join(', ')})`);
      if (p.issuer !== 'per-issuer' && issuers[p.issuer]?.role === 'root' && p.kind === 'device') problems.push(`${rel}: issuer: device profiles cannot be issued by the root`);
      if (p.keyUsage.includes('keyCertSign') || p.keyUsage.includes('cRLSign')) problems.push(`${rel}: keyUsage: end-entity profiles cannot have keyCertSign or cRLSign`);
      if (p.validity <= 0) problems.push(`${rel}: validity: must be positive`);
      if (p.keys.rsaMinBits > p.keys.rsaMaxBits) problems.push(`${rel}: keys: rsaMinBits exceeds rsaMaxBits`);
      if (p.ocspNoCheck && !p.extendedKeyUsage.includes('OCSPSigning')) problems.push(`${rel}: ocspNoCheck: only for profiles with the OCSPSigning EKU`);
      const idevid = p.enrollment.idevid;
      if (idevid) {
        if (p.kind !== 'device') problems.push(`${rel}: enrollment.idevid: only device profiles are enrolled by devices`);
        idevid.trust.forEach((t, i) => {
          const issuer = issuers[t];
          if (issuer) {
            if (issuer.role === 'device') problems.push(`${rel}: enrollment.idevid.trust[${i}]: "${t}" issues operational certificates, not IDevIDs`);
          } else if (!existsSync(path.resolve(dir, t))) {
            problems.push(`${rel}: enrollment.idevid.trust[${i}]: "${t}" is neither an issuer in ca.yaml nor a file in ${dir}`);
          }
        });
        idevid.crls.forEach((c, i) => {
          if (!existsSync(path.resolve(dir, c))) problems.push(`${rel}: enrollment.idevid.crls[${i}]: no file ${c} in ${dir}`);
        });
      }
    }
    if (settings.enrollment.secretTtl > settings.enrollment.maxSecretTtl) problems.push('ca.yaml: enrollment.secretTtl: exceeds maxSecretTtl');
    for (const [role, pname] of Object.entries(settings.systemProfiles)) {
      if (!profiles.has(pname)) problems.push(`ca.yaml: systemProfiles.${role}: no profile named "${pname}" in profiles/`);
    }
    // a renew-before at least as long as the lifetime would replace the certificate on every check
    for (const role of ['tlsServer', 'scepRa'] as const) {
      const p = profiles.get(settings.systemProfiles[role]);
      if (p && settings.server.serviceCertRenewBefore >= p.validity) {
        problems.push(`ca.yaml: server.serviceCertRenewBefore: must be shorter than the validity of profile ${p.name} (systemProfiles.${role})`);
      }
    }
  }
  if (profiles.size === 0 && files.length === 0) problems.push(`${profDir}: no profiles`);
  if (problems.length > 0 || !settingsResult.success) throw new ConfigError(problems);
  return deepFreeze({ dir, settings: settingsResult.data, profiles });
}
