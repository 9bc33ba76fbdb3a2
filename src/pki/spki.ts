/**
 * SubjectPublicKeyInfo parsing (RFC 5280 §4.1.2.7) into a small KeyInfo summary used by policy
 * (key type/size) and the weak-key checks.
 */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import {
  DerError,
  TAG,
  decodeBitString,
  decodeInteger,
  decodeOid,
  expectTag,
  readChildren,
  readTlv,
  readWhole,
  type Tlv,
} from './der.js';
import { OID_CURVE, OID_KEY } from './oids.js';

/** What kind of public key a SubjectPublicKeyInfo carries. */
export type KeyInfo =
  | {
      type: 'ec';
      /** 'P-256' | 'P-384' | 'P-521' | 'P-192' | 'secp256k1', or the dotted curve OID. */
      curve: 'P-256' | 'P-384' | 'P-521' | string;
      bits: number;
    }
  | { type: 'rsa'; bits: number; exponent: bigint; /** unsigned big-endian, no leading zero */ modulus: Buffer }
  | { type: 'ed25519'; bits: 256 }
  | { type: 'ed448'; bits: 456 }
  | { type: 'unknown'; oid: string; bits: 0 };

/** The parts of a SubjectPublicKeyInfo. */
export interface ParsedSpki {
  algorithmOid: string;
  /** Full encoding of the AlgorithmIdentifier parameters, if present. */
  algorithmParams?: Buffer;
  /** subjectPublicKey BIT STRING content after the unused-bits octet (a view). */
  publicKey: Buffer;
  key: KeyInfo;
}

const CURVES: ReadonlyMap<string, { name: string; bytes: number; bits: number }> = new Map([
  [OID_CURVE['P-256'], { name: 'P-256', bytes: 32, bits: 256 }],
  [OID_CURVE['P-384'], { name: 'P-384', bytes: 48, bits: 384 }],
  [OID_CURVE['P-521'], { name: 'P-521', bytes: 66, bits: 521 }],
  [OID_CURVE['P-192'], { name: 'P-192', bytes: 24, bits: 192 }],
  [OID_CURVE.secp256k1, { name: 'secp256k1', bytes: 32, bits: 256 }],
]);

function bitLength(b: Buffer): number {
  if (b.length === 0) return 0;
  return (b.length - 1) * 8 + (32 - Math.clz32(b[0]!));
}

/**
 * Parses the SubjectPublicKeyInfo element `t` of `buf`. Throws DerError for a structural
 * problem; key material itself (point on curve, …) is left to node's crypto at verification.
 */
export function parseSpkiAt(buf: Buffer, t: Tlv): ParsedSpki {
  expectTag(t, TAG.SEQUENCE, 'SubjectPublicKeyInfo SEQUENCE');
  const [alg, bits, extra] = readChildren(buf, t);
  if (extra !== undefined) throw new DerError('malformed', 'SubjectPublicKeyInfo has extra fields');
  expectTag(alg, TAG.SEQUENCE, 'SubjectPublicKeyInfo algorithm SEQUENCE');
  expectTag(bits, TAG.BIT_STRING, 'subjectPublicKey BIT STRING');
  const [oidT, params, extra2] = readChildren(buf, alg!);
  if (extra2 !== undefined) throw new DerError('malformed', 'AlgorithmIdentifier has extra fields');
  const algorithmOid = decodeOid(buf, expectTag(oidT, TAG.OID, 'algorithm OBJECT IDENTIFIER'));
  const bs = decodeBitString(buf, bits!);
  if (bs.unusedBits !== 0) throw new DerError('malformed', 'subjectPublicKey has unused bits');
  const publicKey = bs.bytes;
  const algorithmParams = params ? buf.subarray(params.start, params.end) : undefined;
  let key: KeyInfo;
  switch (algorithmOid) {
    case OID_KEY.ecPublicKey: {
      // RFC 5480 §2.1.1: parameters MUST be present; namedCurve is the only form we accept
      if (params === undefined) throw new DerError('malformed', 'EC key without curve parameters');
      if (params.tag !== TAG.OID) {
        key = { type: 'unknown', oid: algorithmOid, bits: 0 }; // explicit curve parameters (RFC 5480 §2.1.1 forbids in PKIX)
        break;
      }
      const curveOid = decodeOid(buf, params);
      const c = CURVES.get(curveOid);
      const first = publicKey[0];
      // RFC 5480 §2.2: uncompressed (04 || X || Y) or compressed (02/03 || X) point
      const n = first === 0x04 ? (publicKey.length - 1) / 2 : publicKey.length - 1;
      if ((first !== 0x04 && first !== 0x02 && first !== 0x03) || !Number.isInteger(n) || n < 1) {
        throw new DerError('malformed', 'EC public key is not an uncompressed or compressed point');
      }
      if (c !== undefined) {
        if (n !== c.bytes) throw new DerError('malformed', `EC public key has the wrong length for ${c.name}`);
        key = { type: 'ec', curve: c.name, bits: c.bits };
      } else {
        key = { type: 'ec', curve: curveOid, bits: n * 8 };
      }
      break;
    }
    case OID_KEY.rsaEncryption: {
      // RFC 3279 §2.3.1: parameters NULL (absent is tolerated, some encoders omit it)
      if (params !== undefined && !(params.tag === TAG.NULL && params.end === params.valueStart)) {
        throw new DerError('malformed', 'rsaEncryption parameters must be NULL');
      }
      // RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
      const rsa = readWhole(publicKey, 'RSAPublicKey');
      expectTag(rsa, TAG.SEQUENCE, 'RSAPublicKey SEQUENCE');
      const [modT, expT, extra3] = readChildren(publicKey, rsa);
      if (extra3 !== undefined) throw new DerError('malformed', 'RSAPublicKey has extra fields');
      expectTag(modT, TAG.INTEGER, 'RSA modulus INTEGER');
      const exponent = decodeInteger(publicKey, expectTag(expT, TAG.INTEGER, 'RSA exponent INTEGER'));
      let modulus = publicKey.subarray(modT!.valueStart, modT!.end);
      if (modulus.length === 0 || (modulus[0]! & 0x80) !== 0) throw new DerError('malformed', 'RSA modulus is not positive');
      if (modulus.length > 1 && modulus[0] === 0 && (modulus[1]! & 0x80) === 0) {
        throw new DerError('malformed', 'non-minimal RSA modulus');
      }
      if (modulus[0] === 0) modulus = modulus.subarray(1);
      if (exponent <= 0n) throw new DerError('malformed', 'RSA exponent is not positive');
      key = { type: 'rsa', bits: bitLength(modulus), exponent, modulus: Buffer.from(modulus) };
      break;
    }
    case OID_KEY.ed25519:
    case OID_KEY.ed448: {
      // RFC 8410 §3: parameters MUST be absent
      if (params !== undefined) throw new DerError('malformed', 'EdDSA key parameters must be absent');
      const ed25519 = algorithmOid === OID_KEY.ed25519;
      if (publicKey.length !== (ed25519 ? 32 : 57)) throw new DerError('malformed', 'EdDSA public key has the wrong length');
      key = ed25519 ? { type: 'ed25519', bits: 256 } : { type: 'ed448', bits: 456 };
      break;
    }
    default:
      key = { type: 'unknown', oid: algorithmOid, bits: 0 };
  }
  return algorithmParams ? { algorithmOid, algorithmParams, publicKey, key } : { algorithmOid, publicKey, key };
}

/** Parses a DER SubjectPublicKeyInfo that must span the whole buffer. Throws DerError. */
export function parseSpki(spkiDer: Buffer): ParsedSpki {
  const t = readTlv(spkiDer, 0, spkiDer.length);
  if (t.end !== spkiDer.length) throw new DerError('malformed', 'trailing data after SubjectPublicKeyInfo');
  return parseSpkiAt(spkiDer, t);
}

/** SHA-256 over the whole DER SubjectPublicKeyInfo (a stable key fingerprint). */
export function spkiSha256(spkiDer: Buffer): Buffer {
  return createHash('sha256').update(spkiDer).digest();
}

/**
 * The public key of a SubjectPublicKeyInfo as a KeyObject. RSA keys (rsaEncryption) and EC keys on
 * P-256/384/521 with an uncompressed point go in as JWK built from the strictly parsed SPKI; any
 * other key as DER.
 *
 * Why: OpenSSL 3 imports DER keys through its decoder framework, measured here at ~85 µs per key
 * (RSA-2048 or P-256) against ~3 µs for an RSA JWK and ~43 µs for a P-256 one (the point is
 * checked to be on the curve either way: OpenSSL refuses it with `Invalid JWK EC key`); an
 * RSA-2048 signature verification itself takes ~17 µs. The decoder also takes global locks, so
 * DER imports on two threads scale poorly. Throws what createPublicKey throws for a bad key.
 */
export function importSpki(spkiDer: Buffer, parsed: ParsedSpki = parseSpki(spkiDer)): KeyObject {
  const { key } = parsed;
  if (key.type === 'rsa' && parsed.algorithmOid === OID_KEY.rsaEncryption) {
    const hex = key.exponent.toString(16);
    const e = Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex');
    return createPublicKey({ key: { kty: 'RSA', n: key.modulus.toString('base64url'), e: e.toString('base64url') }, format: 'jwk' });
  }
  if (key.type === 'ec' && (key.curve === 'P-256' || key.curve === 'P-384' || key.curve === 'P-521')) {
    const point = parsed.publicKey;
    const n = (point.length - 1) / 2;
    if (point[0] === 0x04 && Number.isInteger(n) && n === CURVES.get(OID_CURVE[key.curve])!.bytes) {
      return createPublicKey({ key: { kty: 'EC', crv: key.curve, x: point.subarray(1, 1 + n).toString('base64url'), y: point.subarray(1 + n).toString('base64url') }, format: 'jwk' });
    }
  }
  return createPublicKey({ key: spkiDer, format: 'der', type: 'spki' });
}
