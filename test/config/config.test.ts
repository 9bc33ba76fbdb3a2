import { cpSync, mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { serverCryptoWorkers } from '../../src/main/runtime.js';

const SHIPPED = path.resolve('ca-config');
const dirs: string[] = [];

function copyConfig(edit?: (dir: string) => void): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fleetca-cfg-'));
  dirs.push(dir);
  cpSync(SHIPPED, dir, { recursive: true });
  edit?.(dir);
  return dir;
}

function problemsOf(dir: string): string[] {
  try {
    loadConfig(dir);
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

function replaceIn(file: string, from: string | RegExp, to: string): void {
  const before = readFileSync(file, 'utf8');
  const after = before.replace(from, to);
  if (after === before) throw new Error(`fixture edit did not apply to ${file}`);
  writeFileSync(file, after);
}

afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('config', () => {
  it('shipped config/valid with every required profile', () => {
    const c = loadConfig(SHIPPED);
    for (const p of ['camera', 'sensor', 'building-controller', 'medical-device', 'manufacturing-idevid', 'ocsp-responder', 'tls-server', 'scep-ra']) {
      expect(c.profiles.has(p), p).toBe(true);
    }
    const camera = c.profiles.get('camera')!;
    expect(camera.validity).toBe(365 * 86_400_000);
    expect(camera.backdate).toBe(5 * 60_000);
    expect(camera.extendedKeyUsage).toEqual(['clientAuth']);
    expect(camera.keys.types).toEqual(['P-256', 'P-384', 'ed25519', 'rsa']);
    // medical devices: high criticality and the shortest validity of the device profiles
    const device = [...c.profiles.values()].filter((p) => p.kind === 'device');
    const medical = c.profiles.get('medical-device')!;
    expect(medical.criticality).toBe('high');
    expect(Math.min(...device.map((p) => p.validity))).toBe(medical.validity);
    expect(c.profiles.get('manufacturing-idevid')!.issuer).toBe('manufacturing-ca');
    expect(Object.isFrozen(camera)).toBe(true);
  });

  it('typo key/reported with file and path', () => {
    const dir = copyConfig((d) => replaceIn(path.join(d, 'profiles/camera.yaml'), 'validity: 365d', 'valdity: 365d'));
    const problems = problemsOf(dir);
    expect(problems).toContain('profiles/camera.yaml: (top level): unknown key "valdity"');
    expect(problems.some((p) => p.startsWith('profiles/camera.yaml: validity:'))).toBe(true);
  });

  it('wrong type/reported with file and path', () => {
    const dir = copyConfig((d) => replaceIn(path.join(d, 'profiles/camera.yaml'), 'rsaMinBits: 2048', 'rsaMinBits: "2048"'));
    expect(problemsOf(dir).some((p) => p.startsWith('profiles/camera.yaml: keys.rsaMinBits:'))).toBe(true);
  });

  it('nested typo in ca.yaml/reported with its path', () => {
    const dir = copyConfig((d) => replaceIn(path.join(d, 'ca.yaml'), 'keyType: P-256\n    validity: 10y', 'keyTyp: P-256\n    validity: 10y'));
    expect(problemsOf(dir)).toContain('ca.yaml: issuers.device-ca: unknown key "keyTyp"');
  });

  it('bad duration/reported', () => {
    const dir = copyConfig((d) => replaceIn(path.join(d, 'profiles/camera.yaml'), 'validity: 365d', 'validity: 365 days'));
    expect(problemsOf(dir).some((p) => p.startsWith('profiles/camera.yaml: validity: not a duration'))).toBe(true);
  });

  it('unknown key type/reported with the index', () => {
    const dir = copyConfig((d) => replaceIn(path.join(d, 'profiles/camera.yaml'), 'types: [P-256, P-384, ed25519, rsa]', 'types: [P-256, P-192]'));
    expect(problemsOf(dir).some((p) => p.startsWith('profiles/camera.yaml: keys.types[1]:'))).toBe(true);
  });

  it('unknown issuer/reported', () => {
    const dir = copyConfig((d) => replaceIn(path.join(d, 'profiles/camera.yaml'), 'issuer: device-ca', 'issuer: nope-ca'));
    expect(problemsOf(dir)).toContain('profiles/camera.yaml: issuer: unknown issuer "nope-ca" (ca.yaml has root, device-ca, manufacturing-ca)');
  });

  it('end-entity keyCertSign/refused', () => {
    const dir = copyConfig((d) => replaceIn(path.join(d, 'profiles/camera.yaml'), 'keyUsage: [digitalSignature, keyEncipherment]', 'keyUsage: [digitalSignature, keyCertSign]'));
    expect(problemsOf(dir)).toContain('profiles/camera.yaml: keyUsage: end-entity profiles cannot have keyCertSign or cRLSign');
  });

  it('yaml syntax error/reported with the file', () => {
    const dir = copyConfig((d) => writeFileSync(path.join(d, 'profiles/camera.yaml'), 'description: [unclosed\n'));
    expect(problemsOf(dir).some((p) => p.startsWith('profiles/camera.yaml: '))).toBe(true);
  });

  it('several problems/all reported at once', () => {
    const dir = copyConfig((d) => {
      replaceIn(path.join(d, 'profiles/camera.yaml'), 'validity: 365d', 'validity: forever');
      replaceIn(path.join(d, 'profiles/sensor.yaml'), 'criticality: low', 'criticality: meh');
    });
    const problems = problemsOf(dir);
    expect(problems.some((p) => p.startsWith('profiles/camera.yaml: validity:'))).toBe(true);
    expect(problems.some((p) => p.startsWith('profiles/sensor.yaml: criticality:'))).toBe(true);
  });

  it('rejected/idevid trust naming neither an issuer nor a file', () => {
    const dir = copyConfig((d) => replaceIn(path.join(d, 'profiles/camera.yaml'), 'trust: [manufacturing-ca]', 'trust: [acme-ca.pem]'));
    expect(problemsOf(dir)).toEqual([expect.stringMatching(/^profiles\/camera\.yaml: enrollment\.idevid\.trust\[0\]: "acme-ca\.pem" is neither an issuer/)]);
  });

  it('rejected/idevid trust naming the device CA, which issues operational certificates', () => {
    const dir = copyConfig((d) => replaceIn(path.join(d, 'profiles/sensor.yaml'), 'trust: [manufacturing-ca]', 'trust: [device-ca]'));
    expect(problemsOf(dir)).toEqual([expect.stringMatching(/^profiles\/sensor\.yaml: enrollment\.idevid\.trust\[0\]: "device-ca" issues operational/)]);
  });

  it('valid/idevid trust naming an external anchor file and its CRL', () => {
    const dir = copyConfig((d) => {
      writeFileSync(path.join(d, 'acme-ca.pem'), 'placeholder: only existence is checked at load\n');
      writeFileSync(path.join(d, 'acme.crl'), '');
      replaceIn(path.join(d, 'profiles/camera.yaml'), 'trust: [manufacturing-ca]', 'trust: [manufacturing-ca, acme-ca.pem]\n    crls: [acme.crl]');
    });
    const cfg = loadConfig(dir);
    expect(cfg.profiles.get('camera')!.enrollment.idevid).toEqual({ trust: ['manufacturing-ca', 'acme-ca.pem'], deviceId: 'CN', crls: ['acme.crl'] });
  });

  it('server.cryptoWorkers: null by default (one per core), a count when set, 0 refused', () => {
    expect(loadConfig(SHIPPED).settings.server.cryptoWorkers).toBeNull();
    expect([1, 2, 8].map((cores) => serverCryptoWorkers(null, cores))).toEqual([1, 2, 8]);
    const one = copyConfig((d) => replaceIn(path.join(d, 'ca.yaml'), 'cryptoWorkers: null', 'cryptoWorkers: 1'));
    expect(serverCryptoWorkers(loadConfig(one).settings.server.cryptoWorkers, 2)).toBe(1);
    const zero = copyConfig((d) => replaceIn(path.join(d, 'ca.yaml'), 'cryptoWorkers: null', 'cryptoWorkers: 0'));
    expect(problemsOf(zero)).toEqual([expect.stringContaining('server.cryptoWorkers')]);
  });

  it('rejected/secret lifetime above the maximum', () => {
    const dir = copyConfig((d) => {
      replaceIn(path.join(d, 'ca.yaml'), /secretTtl: 72h/, 'secretTtl: 30d');
      replaceIn(path.join(d, 'ca.yaml'), /maxSecretTtl: 90d/, 'maxSecretTtl: 7d');
    });
    expect(problemsOf(dir)).toEqual(['ca.yaml: enrollment.secretTtl: exceeds maxSecretTtl']);
  });
});
