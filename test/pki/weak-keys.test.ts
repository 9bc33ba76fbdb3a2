import * as crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { KeyInfo } from '../../src/pki/spki.js';
import { ROCA_MASKS, checkWeakKey, hasRocaFingerprint } from '../../src/pki/weak-keys.js';

const ROCA_PRIMES = [
  3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97, 101, 103, 107, 109, 113,
  127, 131, 137, 139, 149, 151, 157, 163, 167,
];

// The `prints` table of the ROCA authors' detector (crocs-muni/roca, roca/detect.py).
const PUBLISHED_PRINTS = [
  6n, 30n, 126n, 1026n, 5658n, 107286n, 199410n, 8388606n, 536870910n, 2147483646n, 67109890n, 2199023255550n,
  8796093022206n, 140737488355326n, 5310023542746834n, 576460752303423486n, 1455791217086302986n,
  147573952589676412926n, 20052041432995567486n, 6041388139249378920330n, 207530445072488465666n,
  9671406556917033397649406n, 618970019642690137449562110n, 79228162521181866724264247298n,
  2535301200456458802993406410750n, 1760368345969468176824550810518n, 50079290986288516948354744811034n,
  473022961816146413042658758988474n, 10384593717069655257060992658440190n, 144390480366845522447407333004847678774n,
  2722258935367507707706996859454145691646n, 174224571863520493293247799005065324265470n,
  696898287454081973172991196020261297061886n, 713623846352979940529142984724747568191373310n,
  1800793591454480341970779146165214289059119882n, 126304807362733370595828809000324029340048915994n,
  11692013098647223345629478661730264157247460343806n, 187072209578355573530071658587684226515959365500926n,
];

function modPow(b: bigint, e: bigint, m: bigint): bigint {
  let r = 1n;
  b %= m;
  while (e > 0n) {
    if (e & 1n) r = (r * b) % m;
    b = (b * b) % m;
    e >>= 1n;
  }
  return r;
}

function modInv(a: bigint, m: bigint): bigint {
  let [oldR, r] = [a % m, m];
  let [oldS, s] = [1n, 0n];
  while (r !== 0n) {
    const q = oldR / r;
    [oldR, r] = [r, oldR - q * r];
    [oldS, s] = [s, oldS - q * s];
  }
  return ((oldS % m) + m) % m;
}

/** x with x ≡ residues[i] (mod moduli[i]) for pairwise coprime moduli. */
function crt(residues: bigint[], moduli: bigint[]): { x: bigint; m: bigint } {
  const m = moduli.reduce((a, b) => a * b, 1n);
  let x = 0n;
  moduli.forEach((mi, i) => {
    const ni = m / mi;
    x += residues[i]! * ni * modInv(ni, mi);
  });
  return { x: x % m, m };
}

const PRIMES_BELOW_752 = (() => {
  const out: number[] = [];
  for (let n = 2; n < 752; n++) if (out.every((p) => n % p !== 0)) out.push(n);
  return out;
})();

const toBuf = (n: bigint): Buffer => {
  let h = n.toString(16);
  if (h.length % 2) h = '0' + h;
  return Buffer.from(h, 'hex');
};

const rsaKey = (modulus: bigint, exponent = 65537n): KeyInfo => {
  const m = toBuf(modulus);
  return { type: 'rsa', bits: m.length * 8, exponent, modulus: m };
};

/**
 * A 2048-bit number with the ROCA fingerprint: N ≡ 65537^k (mod r) for every ROCA prime r (one
 * k for all), N ≡ 1 modulo 2 and every other prime below 752 (so the earlier checks pass), lifted
 * to 2048 bits by adding a multiple of the product. Not a real RSA modulus; it has the property.
 */
function rocaLikeModulus(k: bigint, residueFor?: (r: number) => bigint): bigint {
  const moduli = PRIMES_BELOW_752.map(BigInt);
  const residues = PRIMES_BELOW_752.map((p) => {
    if (!ROCA_PRIMES.includes(p)) return 1n;
    return residueFor ? residueFor(p) : modPow(65537n, k, BigInt(p));
  });
  const { x, m } = crt(residues, moduli);
  const lift = BigInt('0x' + crypto.randomBytes(256).toString('hex')) / m;
  const n = x + m * lift;
  return n;
}

describe('ROCA fingerprint (CVE-2017-15361)', () => {
  it('the masks computed from generator 65537 equal the detector’s published prints', () => {
    expect(ROCA_MASKS).toEqual(PUBLISHED_PRINTS);
  });

  it('roca/a CRT-constructed modulus with the fingerprint is refused', () => {
    const n = rocaLikeModulus(123456789n);
    expect(n.toString(2).length).toBeGreaterThan(2000);
    expect(hasRocaFingerprint(n)).toBe(true);
    expect(checkWeakKey(rsaKey(n))).toMatch(/ROCA/);
  });

  it('roca/an Infineon-style modulus p·q with p,q = k·M + 65537^a mod M is refused', () => {
    // RSALib's construction for 512-bit keys: M = product of the first 39 primes (2 … 167)
    const M = [2, ...ROCA_PRIMES].reduce((a, r) => a * BigInt(r), 1n);
    const prime = (): bigint => {
      for (;;) {
        const k = BigInt('0x' + crypto.randomBytes(5).toString('hex')) | (1n << 36n);
        const a = BigInt('0x' + crypto.randomBytes(8).toString('hex'));
        const p = k * M + modPow(65537n, a, M);
        if (crypto.checkPrimeSync(p)) return p;
      }
    };
    const n = prime() * prime();
    expect(hasRocaFingerprint(n)).toBe(true);
    expect(checkWeakKey(rsaKey(n))).toMatch(/ROCA/);
  });

  it('not-roca/residues in each subgroup but with incompatible exponents (stage-1 false positive) pass', () => {
    // 65537 has order 2 mod 3 and order 4 mod 5: an odd exponent mod 3 and an even one mod 5 cannot
    // come from one k, so only the per-prime masks match
    const n = rocaLikeModulus(0n, (r) => (r === 3 ? 2n : r === 5 ? 4n : 1n));
    const perPrime = ROCA_PRIMES.every((r, i) => ((ROCA_MASKS[i]! >> (n % BigInt(r))) & 1n) === 1n);
    expect(perPrime).toBe(true);
    expect(hasRocaFingerprint(n)).toBe(false);
    expect(checkWeakKey(rsaKey(n))).toBeNull();
  });

  it.each([2048, 3072])('not-roca/a node-generated RSA-%i modulus passes', (modulusLength) => {
    const { publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength });
    const n = Buffer.from(publicKey.export({ format: 'jwk' }).n!, 'base64url');
    const key: KeyInfo = { type: 'rsa', bits: modulusLength, exponent: 65537n, modulus: n };
    expect(hasRocaFingerprint(BigInt('0x' + n.toString('hex')))).toBe(false);
    expect(checkWeakKey(key)).toBeNull();
  });
});

describe('checkWeakKey', () => {
  const { publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const n = BigInt('0x' + Buffer.from(publicKey.export({ format: 'jwk' }).n!, 'base64url').toString('hex'));

  it.each<[string, bigint, RegExp]>([
    ['e = 3', 3n, /small exponent/],
    ['e = 17', 17n, /small exponent/],
    ['e = 65535', 65535n, /small exponent/],
    ['e = 65536 (even)', 65536n, /even/],
    ['e = 2^256 + 1', (1n << 256n) + 1n, /too large/],
  ])('weak/RSA exponent %s', (_n, e, msg) => {
    expect(checkWeakKey(rsaKey(n, e))).toMatch(msg);
  });

  it.each([65537n, 65539n, (1n << 256n) - 1n])('ok/RSA exponent %s', (e) => {
    expect(checkWeakKey(rsaKey(n, e))).toBeNull();
  });

  it('weak/even modulus', () => {
    expect(checkWeakKey(rsaKey(n * 2n))).toBe('RSA modulus is even');
  });

  it.each([3n, 5n, 751n])('weak/modulus divisible by the small prime %s', (p) => {
    const m = n * p;
    expect(checkWeakKey(rsaKey(m))).toBe(`RSA modulus is divisible by the small prime ${p}`);
  });

  it('ok/modulus with a factor 757 (first prime above the BR bound) is not flagged by this check', () => {
    expect(checkWeakKey(rsaKey(n * 757n))).toBeNull();
  });

  it('ok/EC and EdDSA keys are not judged here', () => {
    expect(checkWeakKey({ type: 'ec', curve: 'P-256', bits: 256 })).toBeNull();
    expect(checkWeakKey({ type: 'ed25519', bits: 256 })).toBeNull();
    expect(checkWeakKey({ type: 'unknown', oid: '1.2.3', bits: 0 })).toBeNull();
  });
});
