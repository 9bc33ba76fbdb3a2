import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { evaluatePolicy, keyUsageFor, macToUrn, normalizeMac, type PolicyInput } from '../../src/ca/policy.js';
import type { KeyInfo } from '../../src/pki/csr.js';
import type { RdnAttribute } from '../../src/pki/names.js';
import { CaError } from '../../src/core/errors.js';

const config = loadConfig(path.resolve('ca-config'));
const P256: KeyInfo = { type: 'ec', curve: 'P-256', bits: 256 };
const cn = (v: string): RdnAttribute => ({ type: 'CN', oid: '2.5.4.3', value: v });
const attr = (type: string, oid: string, value: string): RdnAttribute => ({ type, oid, value });

function input(over: Partial<PolicyInput> & { profileName?: string } = {}): PolicyInput {
  const { profileName, ...rest } = over;
  return {
    profile: config.profiles.get(profileName ?? 'camera')!,
    deviceId: 'cam-0001',
    deviceMacs: [],
    key: P256,
    subject: [cn('cam-0001')],
    extensions: { other: [] },
    ...rest,
  };
}

function rejection(i: PolicyInput): string {
  try {
    evaluatePolicy(i);
  } catch (e) {
    expect(e).toBeInstanceOf(CaError);
    expect((e as CaError).kind === 'policyRejected' || (e as CaError).kind === 'badCsr').toBe(true);
    return (e as CaError).message;
  }
  throw new Error('expected a rejection');
}

// RSA modulus bytes only matter for the weak-key check; a value with no small factors and no ROCA structure
const rsa = (bits: number): KeyInfo => ({ type: 'rsa', bits, exponent: 65537n, modulus: Buffer.from('c' + 'b7'.repeat(bits / 8 - 1) + '5', 'hex').subarray(0, bits / 8) });

describe('policy/accepted', () => {
  const cases: Array<[string, Partial<PolicyInput> & { profileName?: string }]> = [
    ['camera P-256 CN=device id', {}],
    ['camera P-384', { key: { type: 'ec', curve: 'P-384', bits: 384 } }],
    ['camera Ed25519', { key: { type: 'ed25519', bits: 256 } }],
    ['camera O and serialNumber within patterns', { subject: [attr('O', '2.5.4.10', 'Acme Cams'), cn('cam-0001'), attr('serialNumber', '2.5.4.5', 'SN-12')] }],
    ['building-controller DNS SAN matching the pattern', { profileName: 'building-controller', extensions: { san: [{ type: 'dns', value: 'ctl1.floor2.bms.internal' }], other: [] } }],
    ['camera keyUsage request within the profile', { extensions: { keyUsage: ['digitalSignature'], extendedKeyUsage: ['clientAuth'], other: [] } }],
  ];
  for (const [name, over] of cases) {
    it(name, () => {
      const d = evaluatePolicy(input(over));
      expect(d.subject.find((a) => a.type === 'CN')?.value).toBe('cam-0001');
    });
  }

  it('subject attributes are put in canonical order, CN last', () => {
    const d = evaluatePolicy(input({ subject: [cn('cam-0001'), attr('serialNumber', '2.5.4.5', 'SN-1'), attr('O', '2.5.4.10', 'Acme')] }));
    expect(d.subject.map((a) => a.type)).toEqual(['O', 'serialNumber', 'CN']);
  });

  it('device MACs become RFC 9039 URI SANs', () => {
    const d = evaluatePolicy(input({ deviceMacs: ['00:1B:44:11:3A:B7'] }));
    expect(d.sans).toEqual([{ type: 'uri', value: 'urn:dev:mac:001b44113ab7' }]);
  });
});

describe('policy/refused', () => {
  const cases: Array<[string, Partial<PolicyInput> & { profileName?: string }, RegExp]> = [
    ['CN other than the device id', { subject: [cn('cam-0002')] }, /CN="cam-0002" must equal the device id "cam-0001"/],
    ['no CN', { subject: [attr('O', '2.5.4.10', 'Acme')] }, /has no CN/],
    ['subject attribute not in the profile', { subject: [cn('cam-0001'), attr('L', '2.5.4.7', 'Paris')] }, /subject attribute L is not allowed/],
    ['subject attribute not matching its pattern', { subject: [cn('cam-0001'), attr('serialNumber', '2.5.4.5', 'bad sn!')] }, /does not match the pattern/],
    ['duplicate CN', { subject: [cn('cam-0001'), cn('cam-0001')] }, /CN more than once/],
    ['DNS SAN where none is allowed', { extensions: { san: [{ type: 'dns', value: 'cam.example' }], other: [] } }, /DNS SAN "cam.example" is not allowed by profile camera/],
    ['email SAN where none is allowed', { extensions: { san: [{ type: 'email', value: 'a@b.c' }], other: [] } }, /EMAIL SAN "a@b.c" is not allowed/],
    ['DNS SAN outside the pattern', { profileName: 'building-controller', extensions: { san: [{ type: 'dns', value: 'evil.example.com' }], other: [] } }, /does not match the pattern/],
    ['too many SANs', { profileName: 'building-controller', extensions: { san: ['a', 'b', 'c', 'd', 'e'].map((x) => ({ type: 'dns' as const, value: `${x}.bms.internal` })), other: [] } }, /more than 4 DNS SANs/],
    ['basicConstraints CA:TRUE requested', { extensions: { basicConstraints: { ca: true }, other: [] } }, /CA:TRUE/],
    ['keyCertSign requested', { extensions: { keyUsage: ['digitalSignature', 'keyCertSign'], other: [] } }, /keyCertSign/],
    ['EKU beyond the profile', { extensions: { extendedKeyUsage: ['serverAuth'], other: [] } }, /extendedKeyUsage serverAuth that profile camera does not allow/],
    ['unknown critical extension', { extensions: { other: [{ oid: '1.2.3.4', critical: true }] } }, /unsupported critical extension 1.2.3.4/],
    ['P-192 key', { key: { type: 'ec', curve: 'P-192', bits: 192 } }, /EC P-192 is not allowed by profile camera/],
    ['secp256k1 key', { key: { type: 'ec', curve: 'secp256k1', bits: 256 } }, /EC secp256k1 is not allowed/],
    ['RSA-1024', { key: rsa(1024) }, /RSA-1024 is not allowed by profile camera \(allowed: P-256, P-384, ed25519, RSA 2048-8192\)/],
    ['RSA-2048 for medical devices (3072 minimum)', { profileName: 'medical-device', key: rsa(2048), deviceId: 'cam-0001' }, /RSA-2048 is not allowed by profile medical-device/],
    ['Ed25519 for medical devices', { profileName: 'medical-device', key: { type: 'ed25519', bits: 256 } }, /Ed25519 is not allowed/],
    ['RSA small exponent', { key: { ...(rsa(2048) as Extract<KeyInfo, { type: 'rsa' }>), exponent: 3n } }, /weak public key refused/],
    ['CN longer than 64', { deviceId: 'x'.repeat(65), subject: [cn('x'.repeat(65))] }, /longer than 64/],
  ];
  for (const [name, over, re] of cases) {
    it(name, () => {
      expect(rejection(input(over))).toMatch(re);
    });
  }
});

describe('policy/helpers', () => {
  it('keyUsageFor drops keyEncipherment for EC and EdDSA keys, keeps it for RSA', () => {
    expect(keyUsageFor(['digitalSignature', 'keyEncipherment'], 'ec')).toEqual(['digitalSignature']);
    expect(keyUsageFor(['digitalSignature', 'keyEncipherment'], 'eddsa')).toEqual(['digitalSignature']);
    expect(keyUsageFor(['digitalSignature', 'keyEncipherment'], 'rsa')).toEqual(['digitalSignature', 'keyEncipherment']);
    expect(keyUsageFor(['digitalSignature', 'keyAgreement'], 'rsa')).toEqual(['digitalSignature']);
  });
  it('MAC normalisation accepts common notations and refuses malformed ones', () => {
    expect(normalizeMac('00-1B-44-11-3A-B7')).toBe('00:1b:44:11:3a:b7');
    expect(normalizeMac('001b.4411.3ab7')).toBe('00:1b:44:11:3a:b7');
    expect(normalizeMac('00:1b:44:11:3a')).toBeNull();
    expect(normalizeMac('zz:1b:44:11:3a:b7')).toBeNull();
    expect(macToUrn('00:1b:44:11:3a:b7')).toBe('urn:dev:mac:001b44113ab7');
  });
});
