/**
 * Profile policy: what a CSR may ask for, decided purely from the profile, the decoded CSR and the
 * device record. A CSR never gets more than its profile allows: anything outside it is refused
 * with a one-line reason (never silently dropped), except keyUsage/EKU requests within the
 * profile, which are answered with the profile's own set.
 */
import { policyRejected, badCsr } from '../core/errors.js';
import type { KeyTypeName, Profile } from '../config/schema.js';
import type { DecodedCsr, KeyInfo } from '../pki/csr.js';
import type { RdnAttribute, SanEntry } from '../pki/names.js';
import { checkWeakKey } from '../pki/weak-keys.js';
import { encodeOctetString, encodeOid, encodeSequence } from '../pki/der.js';

/** id-on-hardwareModuleName (RFC 4108 §5). */
export const OID_HARDWARE_MODULE_NAME = '1.3.6.1.5.5.7.8.4';

/** Subject attribute order in issued certificates (most significant first). */
const SUBJECT_ORDER = ['C', 'ST', 'L', 'O', 'OU', 'serialNumber', 'emailAddress', 'CN'];

export type KeyFamily = 'ec' | 'rsa' | 'eddsa';

export interface PolicyDecision {
  subject: RdnAttribute[];
  sans: SanEntry[];
  keyType: KeyTypeName;
  keyFamily: KeyFamily;
}

export interface PolicyInput {
  profile: Profile;
  deviceId: string;
  deviceMacs: readonly string[];
  /** The device record's serial number (the hardwareModuleName SAN of IDevID profiles). */
  deviceSerialNumber?: string | null;
  key: KeyInfo;
  subject: readonly RdnAttribute[];
  extensions: DecodedCsr['extensions'];
}

/** Maps a decoded key to the profile vocabulary, or null when fleetca does not issue for it. */
export function keyTypeOf(key: KeyInfo): { type: KeyTypeName; family: KeyFamily } | null {
  switch (key.type) {
    case 'ec':
      return key.curve === 'P-256' || key.curve === 'P-384' || key.curve === 'P-521' ? { type: key.curve, family: 'ec' } : null;
    case 'rsa':
      return { type: 'rsa', family: 'rsa' };
    case 'ed25519':
      return { type: 'ed25519', family: 'eddsa' };
    default:
      return null;
  }
}

function describeKey(key: KeyInfo): string {
  switch (key.type) {
    case 'ec':
      return `EC ${key.curve}`;
    case 'rsa':
      return `RSA-${key.bits}`;
    case 'ed25519':
      return 'Ed25519';
    case 'ed448':
      return 'Ed448';
    default:
      return `key algorithm ${key.oid}`;
  }
}

/** Checks the public key against the profile: type, RSA size, known-weak keys. */
export function assertKeyAllowed(profile: Profile, key: KeyInfo): { type: KeyTypeName; family: KeyFamily } {
  const allowed = profile.keys.types.map((t) => (t === 'rsa' ? `RSA ${profile.keys.rsaMinBits}-${profile.keys.rsaMaxBits}` : t)).join(', ');
  const kt = keyTypeOf(key);
  if (!kt || !profile.keys.types.includes(kt.type)) {
    throw policyRejected(`${describeKey(key)} is not allowed by profile ${profile.name} (allowed: ${allowed})`);
  }
  if (key.type === 'rsa' && (key.bits < profile.keys.rsaMinBits || key.bits > profile.keys.rsaMaxBits)) {
    throw policyRejected(`${describeKey(key)} is not allowed by profile ${profile.name} (allowed: ${allowed})`);
  }
  const weak = checkWeakKey(key);
  if (weak) throw policyRejected(`weak public key refused: ${weak}`);
  return kt;
}

const compiled = new Map<string, RegExp>();
/** Profile patterns match the whole value; compiled once per pattern. */
function fullMatch(pattern: string, value: string): boolean {
  let re = compiled.get(pattern);
  if (!re) {
    re = new RegExp(`^(?:${pattern})$`, 'u');
    compiled.set(pattern, re);
  }
  return re.test(value);
}

/** RFC 9039 device URN for a MAC address: `urn:dev:mac:` + lowercase hex, no separators. */
export function macToUrn(mac: string): string {
  return `urn:dev:mac:${mac.replace(/[^0-9a-fA-F]/g, '').toLowerCase()}`;
}

/** Normalizes a MAC (EUI-48 or EUI-64) to lowercase colon form, or null when malformed. */
export function normalizeMac(mac: string): string | null {
  const hex = mac.trim().replace(/[:\-.]/g, '').toLowerCase();
  if (!/^([0-9a-f]{12}|[0-9a-f]{16})$/.test(hex)) return null;
  return hex.match(/../g)!.join(':');
}

/** The whole policy decision for one CSR. Pure; throws CaError(policyRejected | badCsr). */
export function evaluatePolicy(input: PolicyInput): PolicyDecision {
  const { profile, deviceId, extensions } = input;
  const kt = assertKeyAllowed(profile, input.key);

  // requested extensions: never more than the profile (RFC 5280 §4.2.1.9 / §4.2.1.3 for CA bits)
  if (extensions.basicConstraints?.ca) throw policyRejected('CSR requests basicConstraints CA:TRUE; fleetca issues only end-entity certificates here');
  const askedKu = extensions.keyUsage ?? [];
  if (askedKu.includes('keyCertSign') || askedKu.includes('cRLSign')) throw policyRejected('CSR requests keyUsage keyCertSign/cRLSign, which only CA certificates may have');
  const extraKu = askedKu.filter((u) => !(profile.keyUsage as readonly string[]).includes(u));
  if (extraKu.length) throw policyRejected(`CSR requests keyUsage ${extraKu.join(', ')} that profile ${profile.name} does not allow`);
  const extraEku = (extensions.extendedKeyUsage ?? []).filter((u) => !profile.extendedKeyUsage.includes(u));
  if (extraEku.length) throw policyRejected(`CSR requests extendedKeyUsage ${extraEku.join(', ')} that profile ${profile.name} does not allow`);
  const unknownCritical = extensions.other.filter((e) => e.critical);
  if (unknownCritical.length) throw policyRejected(`CSR requests unsupported critical extension ${unknownCritical.map((e) => e.oid).join(', ')}`);

  // subject
  const seen = new Set<string>();
  let cn: string | undefined;
  for (const a of input.subject) {
    if (seen.has(a.type)) throw policyRejected(`CSR subject has ${a.type} more than once`);
    seen.add(a.type);
    if (a.type === 'CN') {
      cn = a.value;
      continue;
    }
    const pattern = (profile.subject.attributes as Record<string, string | undefined>)[a.type];
    if (pattern === undefined) throw policyRejected(`subject attribute ${a.type} is not allowed by profile ${profile.name}`);
    if (!fullMatch(pattern, a.value)) throw policyRejected(`subject ${a.type}="${a.value}" does not match the pattern of profile ${profile.name}`);
  }
  if (profile.subject.commonName === 'deviceId') {
    if (cn === undefined) throw policyRejected(`CSR subject has no CN; profile ${profile.name} needs CN=${deviceId}`);
    if (cn !== deviceId) throw policyRejected(`CSR subject CN="${cn}" must equal the device id "${deviceId}"`);
  } else {
    if (cn === undefined) throw policyRejected('CSR subject has no CN');
    if (!fullMatch(profile.subject.commonName, cn)) throw policyRejected(`subject CN="${cn}" does not match the pattern of profile ${profile.name}`);
  }
  if (cn.length > 64) throw badCsr('subject CN is longer than 64 characters (RFC 5280 ub-common-name)');
  const subject = [...input.subject].sort((a, b) => SUBJECT_ORDER.indexOf(a.type) - SUBJECT_ORDER.indexOf(b.type));

  // subjectAltName
  const sans: SanEntry[] = [];
  const counts = new Map<string, number>();
  for (const s of extensions.san ?? []) {
    if (s.type === 'otherName') throw policyRejected(`otherName SANs are not allowed by profile ${profile.name}`);
    const rule = profile.san[s.type];
    if (!rule) throw policyRejected(`${s.type.toUpperCase()} SAN "${s.value}" is not allowed by profile ${profile.name}`);
    if (!fullMatch(rule.pattern, s.value)) throw policyRejected(`${s.type.toUpperCase()} SAN "${s.value}" does not match the pattern of profile ${profile.name}`);
    const n = (counts.get(s.type) ?? 0) + 1;
    if (n > rule.max) throw policyRejected(`more than ${rule.max} ${s.type.toUpperCase()} SANs`);
    counts.set(s.type, n);
    if (!sans.some((x) => x.type === s.type && x.value === s.value)) sans.push(s);
  }
  if (profile.san.includeMacs) {
    for (const mac of input.deviceMacs) {
      const urn = macToUrn(mac);
      if (!sans.some((x) => x.type === 'uri' && x.value === urn)) sans.push({ type: 'uri', value: urn });
    }
  }
  const hmn = profile.san.hardwareModuleName;
  if (hmn && input.deviceSerialNumber) sans.push(hardwareModuleNameSan(hmn.hwType, input.deviceSerialNumber));
  return { subject, sans, keyType: kt.type, keyFamily: kt.family };
}

/**
 * The hardwareModuleName otherName of an IEEE 802.1AR IDevID (RFC 4108 §5), as a SanEntry:
 *   HardwareModuleName ::= SEQUENCE { hwType OBJECT IDENTIFIER, hwSerialNum OCTET STRING }
 * hwSerialNum is the serial number's UTF-8 octets. Like the MAC URNs, it comes from the device
 * record, never from a CSR.
 */
export function hardwareModuleNameSan(hwType: string, serialNumber: string): SanEntry {
  const value = encodeSequence(encodeOid(hwType), encodeOctetString(Buffer.from(serialNumber, 'utf8')));
  return { type: 'otherName', value: `${OID_HARDWARE_MODULE_NAME};${value.toString('hex')}` };
}

/**
 * The keyUsage bits for a key family: keyEncipherment only for RSA (RFC 8813 §3 forbids it for
 * ECDSA; RFC 8410 §5 for Ed25519), keyAgreement only for EC keys.
 */
export function keyUsageFor(profileKu: readonly string[], family: KeyFamily): string[] {
  return profileKu.filter((u) => {
    if (u === 'keyEncipherment' || u === 'dataEncipherment') return family === 'rsa';
    if (u === 'keyAgreement') return family === 'ec';
    return true;
  });
}
