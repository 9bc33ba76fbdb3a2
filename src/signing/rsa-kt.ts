/**
 * RSA key transport (RSAES-PKCS1-v1_5) decryption without a padding oracle, for the
 * content-encryption key of a CMS EnvelopedData (RFC 5652 §6.2.1, KeyTransRecipientInfo) that a
 * SCEP client (RFC 8894) encrypts to the RA certificate.
 *
 * Why not `crypto.privateDecrypt` with RSA_PKCS1_PADDING: Node 20 refuses it (CVE-2023-46809, the
 * "Marvin attack" timing variant of Bleichenbacher's attack) because its bundled OpenSSL 3.0 has no
 * implicit rejection. Raw RSA (RSA_NO_PADDING) is still allowed and is constant-time and blinded in
 * OpenSSL, so this module does the RSA operation there and the PKCS#1 v1.5 decoding here.
 *
 * The decoding follows RFC 8017 §7.2.2 step 3 (EM = 0x00 || 0x02 || PS || 0x00 || M, PS at least
 * eight nonzero octets), whose note asks that the different error conditions not be
 * distinguishable, and goes one step further, as draft-irtf-cfrg-rsa-guidance (implicit
 * rejection) and RFC 3218 (the CMS countermeasure to the million message attack) recommend: there
 * is no error at all. A bad encoding yields a pseudo-random key of the same length, derived from
 * the ciphertext and a secret, and the failure only shows later, when the content does not decrypt
 * or the CSR inside does not parse — like any other corrupt message.
 *
 * For callers: that later failure must look like every other bad message (same SCEP failInfo,
 * same log line, no separate "bad key transport" metric), or the oracle comes back one layer up.
 */
import crypto, { type KeyObject } from 'node:crypto';

/** Decrypts RSAES-PKCS1-v1_5 key transport with implicit rejection; see createKeyTransportDecryptor. */
export interface KeyTransportDecryptor {
  /** Size of the RSA modulus in octets (k in RFC 8017): the size of a well-formed ciphertext. */
  readonly modulusBytes: number;
  /**
   * Returns a key of exactly `expectedLength` bytes: the encrypted one when the ciphertext decrypts
   * to a valid RSAES-PKCS1-v1_5 encoding of a message of that length; otherwise a pseudo-random key
   * that depends only on the ciphertext and the rejection secret (so a replay gets the same one).
   * Never throws because of the ciphertext: a wrong size, a value not below the modulus and a bad
   * padding are all rejected implicitly. Throws a RangeError only when `expectedLength` (a public
   * parameter, the content-encryption algorithm's key size) is not an integer in 1..modulusBytes.
   */
  decrypt(ciphertext: Buffer, expectedLength: number): Buffer;
}

/** Options of createKeyTransportDecryptor. */
export interface KeyTransportOptions {
  /**
   * Secret (at least 32 bytes) keying the synthetic keys. Default: derived from the private key
   * itself, so every process, worker thread and restart holding the key rejects a given ciphertext
   * with the same synthetic key.
   */
  rejectionSecret?: Buffer;
}

/** HKDF labels; changing either changes every synthetic key. */
const SECRET_INFO = Buffer.from('fleetca rsa-kt implicit-rejection secret v1');
const SYNTHETIC_INFO = 'fleetca rsa-kt synthetic key v1';

/**
 * Builds a decryptor for an RSA private key.
 *
 * The rejection secret is per key and deterministic by default: HKDF-SHA-256 over the key's
 * PKCS#8 DER (OpenSSL's own implicit rejection similarly keys on the private exponent). A random
 * per-process secret would be simpler but would give a replayed bad ciphertext a different
 * synthetic key in each worker or after a restart, while a good one always yields the same key;
 * that difference (e.g. a CBC padding that happens to verify once in 256 tries, then not) would
 * itself tell a bad padding from a good one.
 *
 * Runs one raw RSA round trip as a self-test, so that a key or an OpenSSL build that cannot do raw
 * RSA fails here, loudly, rather than turning every later decryption into a silent rejection.
 */
export function createKeyTransportDecryptor(key: KeyObject, opts: KeyTransportOptions = {}): KeyTransportDecryptor {
  if (key.type !== 'private' || key.asymmetricKeyType !== 'rsa') {
    throw new TypeError(`RSA key transport needs an RSA private key, not ${key.type} ${key.asymmetricKeyType ?? ''}`.trim());
  }
  const bits = key.asymmetricKeyDetails?.modulusLength;
  if (!bits) throw new TypeError('cannot read the RSA modulus length');
  const k = Math.ceil(bits / 8);

  let secret: Buffer;
  if (opts.rejectionSecret !== undefined) {
    if (opts.rejectionSecret.length < 32) throw new RangeError('the rejection secret must be at least 32 bytes');
    secret = Buffer.from(opts.rejectionSecret);
  } else {
    const der = key.export({ type: 'pkcs8', format: 'der' });
    try {
      secret = Buffer.from(crypto.hkdfSync('sha256', der, Buffer.alloc(0), SECRET_INFO, 32));
    } finally {
      der.fill(0);
    }
  }

  selfTest(key, k);

  return {
    modulusBytes: k,
    decrypt(ciphertext: Buffer, expectedLength: number): Buffer {
      if (!Number.isInteger(expectedLength) || expectedLength < 1 || expectedLength > k) {
        throw new RangeError(`expected key length must be an integer in 1..${k}, got ${expectedLength}`);
      }
      return decryptImplicit(key, k, secret, ciphertext, expectedLength);
    },
  };
}

/** A raw RSA round trip on a fixed, valid-looking encoding; throws when raw RSA is unavailable. */
function selfTest(key: KeyObject, k: number): void {
  const em = Buffer.alloc(k, 0x5a);
  em[0] = 0x00;
  em[1] = 0x02;
  const c = crypto.publicEncrypt({ key, padding: crypto.constants.RSA_NO_PADDING }, em);
  const back = crypto.privateDecrypt({ key, padding: crypto.constants.RSA_NO_PADDING }, c);
  if (back.length !== k || !back.equals(em)) throw new Error('raw RSA self-test failed');
}

/** OpenSSL's errors for a ciphertext that is too long or not below the modulus: public facts. */
const PUBLIC_INPUT_ERRORS = new Set(['ERR_OSSL_RSA_DATA_TOO_LARGE_FOR_MODULUS', 'ERR_OSSL_RSA_DATA_GREATER_THAN_MOD_LEN']);

/*
 * Branch-free helpers on small non-negative integers (octets and indices, all < 2^31). Each returns
 * 1 or 0 computed with arithmetic and bit operations only: no comparison operator, no ternary, no
 * short-circuit operator touches secret data.
 */
/** 1 when the octet x is 0: x - 1 is negative (sign bit set) only for x = 0. */
const isZeroOctet = (x: number): number => (x - 1) >>> 31;
/** 1 when a = b: a ^ b is 0 only then, and v | -v has its sign bit set for every other v. */
const isEqual = (a: number, b: number): number => ~((a ^ b) | -(a ^ b)) >>> 31;
/** 1 when a ≥ b: a - b is negative only when a < b. */
const isAtLeast = (a: number, b: number): number => ((a - b) >>> 31) ^ 1;

/**
 * RFC 8017 §7.2.2 with implicit rejection.
 *
 * 1. Size (public): a ciphertext shorter than k is left-padded with zeros, which keeps its integer
 *    value (some encoders drop leading zero octets); a longer one cannot be an RSA ciphertext for
 *    this key and is rejected implicitly without the RSA operation — its size, like its comparison
 *    with the public modulus, reveals nothing about the private key.
 * 2. m = c^d mod n with RSA_NO_PADDING (OpenSSL: blinded, constant-time), EM = I2OSP(m, k).
 * 3. The synthetic key, always computed: HKDF-SHA-256 with salt = secret and IKM = ciphertext, whose
 *    extract step is exactly PRK = HMAC-SHA-256(secret, ciphertext), expanded to the expected
 *    length (info names the length, so a synthetic key for one length is not a prefix of another's).
 * 4. One pass over every octet of EM, without early exit and with data-independent indices only:
 *    good = EM[0] = 0x00 and EM[1] = 0x02 and the first zero octet after index 1 is at index
 *    s ≥ 10 (PS is at least 8 octets) and s = k - expectedLength - 1 (M has the expected length).
 *    Because the length is fixed by the caller, M is always the last expectedLength octets of EM:
 *    no copy at a secret-dependent offset is needed.
 * 5. Per-octet select with a mask (0xff when good, else 0): out = real & mask | synthetic & ~mask.
 *
 * What JavaScript cannot promise: V8 may compile this into machine code with branches, a
 * deoptimisation or a GC pause may land inside the loop, and nothing here is audited at the
 * instruction level. What the structure still removes is the oracle the Marvin and Bleichenbacher
 * attacks need: valid and invalid paddings run the same native calls on inputs of public size, the
 * same loop over every octet, allocate the same buffers and return the same length, with no
 * exception and no early return — V8's speculation depends on value types (always small integers
 * here), not on the values. The remaining noise is not correlated with the padding, and the first
 * observable difference is the content decryption failing, as for any corrupt message.
 */
function decryptImplicit(key: KeyObject, k: number, secret: Buffer, ciphertext: Buffer, expectedLength: number): Buffer {
  let c: Buffer;
  if (ciphertext.length <= k) {
    c = Buffer.alloc(k);
    ciphertext.copy(c, k - ciphertext.length);
  } else {
    c = ciphertext;
  }

  // step 2; an all-zero EM stands for "no plaintext" and fails the 0x02 check below
  let em: Buffer;
  if (c.length !== k) {
    em = Buffer.alloc(k);
  } else {
    try {
      em = crypto.privateDecrypt({ key, padding: crypto.constants.RSA_NO_PADDING }, c);
    } catch (e) {
      if (!PUBLIC_INPUT_ERRORS.has((e as { code?: string }).code ?? '')) throw e;
      em = Buffer.alloc(k);
    }
  }

  // step 3
  const info = Buffer.from(`${SYNTHETIC_INFO} ${expectedLength}`);
  const synthetic = Buffer.from(crypto.hkdfSync('sha256', c, secret, info, expectedLength));

  // step 4
  let seen = 0; // 1 once a zero octet has been met at index ≥ 2
  let separator = 0; // index of the first such octet (0 when there is none)
  for (let i = 2; i < k; i++) {
    const zero = isZeroOctet(em[i]!);
    const first = zero & (seen ^ 1);
    separator |= -first & i;
    seen |= zero;
  }
  // no separator leaves separator = 0, which fails the first index test
  const good = isZeroOctet(em[0]!) & isEqual(em[1]!, 0x02) & isAtLeast(separator, 10) & isEqual(separator, k - expectedLength - 1);

  // step 5
  const mask = -good & 0xff;
  const out = Buffer.alloc(expectedLength);
  const offset = k - expectedLength;
  for (let i = 0; i < expectedLength; i++) out[i] = (em[offset + i]! & mask) | (synthetic[i]! & ~mask);

  em.fill(0);
  synthetic.fill(0);
  return out;
}
