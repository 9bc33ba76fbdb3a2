/**
 * Password-protected private keys for factory batches: encrypted PKCS#8 (RFC 5958 §3
 * EncryptedPrivateKeyInfo with PBES2, RFC 8018 §6.2) and PKCS#12 (RFC 7292) bundles of that key
 * with its certificate chain.
 *
 * Only node's native crypto (OpenSSL) is used: PBKDF2-HMAC-SHA256 (asynchronous, on libuv's thread
 * pool, so bundles for a batch use every core), AES-256-CBC, HMAC-SHA-256. Salts and IVs are
 * parameters: no randomness here. The DER is built by hand (der.ts), like the rest of pki/.
 *
 * Choices, all read by OpenSSL 3 (`openssl pkcs12 -info`, `openssl pkey`) and node:
 *  - key encryption: PBES2 { PBKDF2 { salt 16 B, iterations, PRF hmacWithSHA256 }, aes256-CBC { iv } },
 *    the password as UTF-8 octets (RFC 8018 §6.2 leaves the encoding to the application; OpenSSL 3
 *    uses the bytes as given);
 *  - PKCS#12: the key in a pkcs8ShroudedKeyBag (that same EncryptedPrivateKeyInfo); the certificates
 *    in a plain `data` SafeContents (they are public; encrypting them would cost a second KDF per
 *    bundle for nothing), leaf first; friendlyName and localKeyId on the key and the leaf;
 *  - integrity: MacData with HMAC-SHA-256, its key from the PKCS#12 KDF of RFC 7292 Appendix B.2
 *    over SHA-256 with the password as BMPString (OpenSSL 3.0 does not read PBMAC1, RFC 9579).
 */
import crypto from 'node:crypto';
import {
  encodeExplicit,
  encodeInteger,
  encodeNull,
  encodeOctetString,
  encodeOid,
  encodeSequence,
  encodeSetOf,
  encodeTlv,
} from './der.js';

/** Object identifiers of RFC 8018 (PBES2), RFC 7292 (PKCS#12) and RFC 2985 (PKCS#9 attributes). */
export const OID_PKCS12 = {
  pbes2: '1.2.840.113549.1.5.13',
  pbkdf2: '1.2.840.113549.1.5.12',
  hmacWithSHA256: '1.2.840.113549.2.9',
  aes256Cbc: '2.16.840.1.101.3.4.1.42',
  sha256: '2.16.840.1.101.3.4.2.1',
  data: '1.2.840.113549.1.7.1',
  pkcs8ShroudedKeyBag: '1.2.840.113549.1.12.10.1.2',
  certBag: '1.2.840.113549.1.12.10.1.3',
  x509Certificate: '1.2.840.113549.1.9.22.1',
  friendlyName: '1.2.840.113549.1.9.20',
  localKeyId: '1.2.840.113549.1.9.21',
} as const;

/** What the key encryption is parameterised by (fresh salt and IV per key). */
export interface Pbes2Params {
  /** PBKDF2 salt (RFC 8018 §4.1: at least 64 bits; fleetca draws 128). */
  salt: Buffer;
  iterations: number;
  /** AES-CBC IV, 16 octets. */
  iv: Buffer;
}

function assertParams(p: { salt: Buffer; iterations: number }): void {
  if (p.salt.length < 8) throw new Error('PBKDF2 salt must be at least 8 octets (RFC 8018 §4.1)');
  if (!Number.isInteger(p.iterations) || p.iterations < 1000 || p.iterations > 10_000_000) {
    throw new Error('PBKDF2 iteration count must be an integer between 1,000 and 10,000,000');
  }
}

/**
 * The PBES2 AlgorithmIdentifier (RFC 8018 Appendix A.4 / A.2):
 *   PBES2-params ::= SEQUENCE { keyDerivationFunc AlgorithmIdentifier {{PBES2-KDFs}},
 *                               encryptionScheme AlgorithmIdentifier {{PBES2-Encs}} }
 *   PBKDF2-params ::= SEQUENCE { salt OCTET STRING, iterationCount INTEGER, keyLength INTEGER OPTIONAL,
 *                                prf AlgorithmIdentifier DEFAULT algid-hmacWithSHA1 }
 */
export function encodePbes2AlgorithmIdentifier(p: Pbes2Params): Buffer {
  assertParams(p);
  if (p.iv.length !== 16) throw new Error('AES-CBC IV must be 16 octets');
  const prf = encodeSequence(encodeOid(OID_PKCS12.hmacWithSHA256), encodeNull());
  const kdf = encodeSequence(encodeOid(OID_PKCS12.pbkdf2), encodeSequence(encodeOctetString(p.salt), encodeInteger(p.iterations), prf));
  const enc = encodeSequence(encodeOid(OID_PKCS12.aes256Cbc), encodeOctetString(p.iv));
  return encodeSequence(encodeOid(OID_PKCS12.pbes2), encodeSequence(kdf, enc));
}

/** PBKDF2-HMAC-SHA256 on libuv's thread pool. */
export function pbkdf2Sha256(password: Buffer, salt: Buffer, iterations: number, length: number): Promise<Buffer> {
  return new Promise((resolve, reject) => crypto.pbkdf2(password, salt, iterations, length, 'sha256', (err, key) => (err ? reject(err) : resolve(key))));
}

/**
 * Encrypts a PKCS#8 PrivateKeyInfo DER into an EncryptedPrivateKeyInfo DER (RFC 5958 §3):
 *   EncryptedPrivateKeyInfo ::= SEQUENCE { encryptionAlgorithm AlgorithmIdentifier, encryptedData OCTET STRING }
 */
export async function encryptPrivateKeyInfo(pkcs8: Buffer, password: string, p: Pbes2Params): Promise<Buffer> {
  if (password.length === 0) throw new Error('refusing to encrypt a private key with an empty password');
  const algorithm = encodePbes2AlgorithmIdentifier(p);
  const key = await pbkdf2Sha256(Buffer.from(password, 'utf8'), p.salt, p.iterations, 32);
  try {
    const cipher = crypto.createCipheriv('aes-256-cbc', key, p.iv);
    const encrypted = Buffer.concat([cipher.update(pkcs8), cipher.final()]);
    return encodeSequence(algorithm, encodeOctetString(encrypted));
  } finally {
    key.fill(0);
  }
}

/** The password as a PKCS#12 KDF input: BMPString (UTF-16BE) with a two-octet NUL terminator (RFC 7292 App. B.1). */
export function bmpPassword(password: string): Buffer {
  const out = Buffer.alloc(password.length * 2 + 2);
  for (let i = 0; i < password.length; i++) out.writeUInt16BE(password.charCodeAt(i), i * 2);
  return out;
}

/**
 * The PKCS#12 key derivation of RFC 7292 Appendix B.2 with SHA-256 (u = 32, v = 64 octets).
 * `id` 3 derives MAC keys. Only the first output block is computed when n ≤ 32, so no I_j update.
 */
export function pkcs12Kdf(password: string, salt: Buffer, id: 1 | 2 | 3, iterations: number, n: number): Buffer {
  assertParams({ salt, iterations });
  const u = 32;
  const v = 64;
  const repeat = (src: Buffer): Buffer => {
    if (src.length === 0) return Buffer.alloc(0);
    const len = v * Math.ceil(src.length / v);
    const out = Buffer.alloc(len);
    for (let i = 0; i < len; i++) out[i] = src[i % src.length]!;
    return out;
  };
  const D = Buffer.alloc(v, id);
  const I = Buffer.concat([repeat(salt), repeat(bmpPassword(password))]);
  const blocks: Buffer[] = [];
  for (let produced = 0; produced < n; produced += u) {
    let A = crypto.createHash('sha256').update(D).update(I).digest();
    // crypto.hash: one native call per iteration (a Hash object per iteration costs twice as much)
    for (let r = 1; r < iterations; r++) A = crypto.hash('sha256', A, 'buffer');
    blocks.push(A);
    if (produced + u < n) {
      // B.2 step 6c: I_j = (I_j + B + 1) mod 2^(v*8) for each v-octet block of I
      const B = repeat(A);
      for (let j = 0; j < I.length; j += v) {
        let carry = 1;
        for (let k = v - 1; k >= 0; k--) {
          const sum = I[j + k]! + B[k]! + carry;
          I[j + k] = sum & 0xff;
          carry = sum >> 8;
        }
      }
    }
  }
  return Buffer.concat(blocks).subarray(0, n);
}

/** BMPString (tag 30) of a string, for friendlyName (RFC 2985 §5.5.1). */
function encodeBmpString(s: string): Buffer {
  const b = Buffer.alloc(s.length * 2);
  for (let i = 0; i < s.length; i++) b.writeUInt16BE(s.charCodeAt(i), i * 2);
  return encodeTlv(0x1e, b);
}

/** PKCS12Attribute ::= SEQUENCE { attrId OID, attrValues SET OF ANY } */
function bagAttributes(friendlyName: string | undefined, localKeyId: Buffer | undefined): Buffer[] {
  const attrs: Buffer[] = [];
  if (friendlyName !== undefined) attrs.push(encodeSequence(encodeOid(OID_PKCS12.friendlyName), encodeSetOf([encodeBmpString(friendlyName)])));
  if (localKeyId !== undefined) attrs.push(encodeSequence(encodeOid(OID_PKCS12.localKeyId), encodeSetOf([encodeOctetString(localKeyId)])));
  return attrs;
}

/** SafeBag ::= SEQUENCE { bagId OID, bagValue [0] EXPLICIT ANY, bagAttributes SET OF PKCS12Attribute OPTIONAL } */
function safeBag(bagId: string, value: Buffer, attrs: Buffer[]): Buffer {
  return encodeSequence(encodeOid(bagId), encodeExplicit(0, value), ...(attrs.length ? [encodeSetOf(attrs)] : []));
}

/** ContentInfo { contentType data, content [0] EXPLICIT OCTET STRING } (RFC 7292 §4.1, RFC 5652 §3). */
function dataContentInfo(content: Buffer): Buffer {
  return encodeSequence(encodeOid(OID_PKCS12.data), encodeExplicit(0, encodeOctetString(content)));
}

export interface PfxInput {
  /** The key as an EncryptedPrivateKeyInfo DER (encryptPrivateKeyInfo). */
  encryptedKey: Buffer;
  /** Certificates DER: the key's certificate first, then its issuers. */
  certs: Buffer[];
  /** friendlyName of the key and its certificate (the device id). */
  friendlyName?: string;
  password: string;
  /** MacData salt (16 octets drawn by the caller) and iteration count. */
  macSalt: Buffer;
  macIterations: number;
  /** pkcs12Kdf(password, macSalt, 3, macIterations, 32) if the caller derived it already (on a worker thread). */
  macKey?: Buffer;
}

/**
 * A PFX (RFC 7292 §4):
 *   PFX ::= SEQUENCE { version INTEGER {v3(3)}, authSafe ContentInfo, macData MacData OPTIONAL }
 *   AuthenticatedSafe ::= SEQUENCE OF ContentInfo   -- here: [certificates (data), key (data)]
 *   MacData ::= SEQUENCE { mac DigestInfo, macSalt OCTET STRING, iterations INTEGER DEFAULT 1 }
 * The MAC is HMAC-SHA-256 over the AuthenticatedSafe DER (the authSafe OCTET STRING's content).
 */
export function buildPfx(input: PfxInput): Buffer {
  if (input.certs.length === 0) throw new Error('a PKCS#12 bundle needs at least the key\'s certificate');
  if (input.password.length === 0) throw new Error('refusing to build a PKCS#12 bundle with an empty password');
  const localKeyId = crypto.createHash('sha256').update(input.certs[0]!).digest();
  const certBags = input.certs.map((der, i) =>
    safeBag(
      OID_PKCS12.certBag,
      // CertBag ::= SEQUENCE { certId OID, certValue [0] EXPLICIT OCTET STRING }
      encodeSequence(encodeOid(OID_PKCS12.x509Certificate), encodeExplicit(0, encodeOctetString(der))),
      i === 0 ? bagAttributes(input.friendlyName, localKeyId) : [],
    ),
  );
  const keyBag = safeBag(OID_PKCS12.pkcs8ShroudedKeyBag, input.encryptedKey, bagAttributes(input.friendlyName, localKeyId));
  const authSafe = encodeSequence(dataContentInfo(encodeSequence(...certBags)), dataContentInfo(encodeSequence(keyBag)));
  const macKey = input.macKey ? Buffer.from(input.macKey) : pkcs12Kdf(input.password, input.macSalt, 3, input.macIterations, 32);
  let mac: Buffer;
  try {
    mac = crypto.createHmac('sha256', macKey).update(authSafe).digest();
  } finally {
    macKey.fill(0);
  }
  const digestInfo = encodeSequence(encodeSequence(encodeOid(OID_PKCS12.sha256), encodeNull()), encodeOctetString(mac));
  const macData = encodeSequence(digestInfo, encodeOctetString(input.macSalt), encodeInteger(input.macIterations));
  return encodeSequence(encodeInteger(3), dataContentInfo(authSafe), macData);
}
