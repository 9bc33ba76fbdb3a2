/**
 * One-time enrollment secrets: generation, the keyed hash that is stored, constant-time checks,
 * and a per-device limit on failed attempts.
 *
 * The secrets are random (192 bits), so an HMAC-SHA-256 under a server-side key protects a leaked
 * table as well as a password hash would, at a few microseconds instead of tens of milliseconds
 * (a slow hash would cap HTTP Basic enrollment near 30/s per core).
 */
import crypto from 'node:crypto';

/** Bytes of randomness in a secret (192 bits; printed as 32 base64url characters). */
const SECRET_BYTES = 24;

/** A fresh secret, printable, safe in HTTP Basic (no ':') and in SCEP challengePassword. */
export function generateSecret(random: (n: number) => Buffer = crypto.randomBytes): string {
  return random(SECRET_BYTES).toString('base64url');
}

/**
 * The server-side MAC key, derived from the key passphrase (HKDF-SHA-256), so every instance that
 * can load the CA keys checks secrets the same way and no further key file exists. Changing the
 * passphrase invalidates outstanding secrets.
 */
export function deriveSecretKey(passphrase: string): Buffer {
  return Buffer.from(crypto.hkdfSync('sha256', Buffer.from(passphrase, 'utf8'), 'fleetca', 'enrollment-secret-mac v1', 32));
}

/** HMAC-SHA-256 of a secret, bound to its device id (a secret copied to another device is useless). */
export function secretMac(key: Buffer, deviceId: string, secret: string): Buffer {
  return crypto.createHmac('sha256', key).update(deviceId).update('\0').update(secret).digest();
}

/**
 * Which of `candidates` (stored MACs) matches the presented secret, in constant time: every
 * candidate is compared in full, and a device without candidates is compared against a dummy, so
 * timing tells neither where two MACs differ nor whether the device has secrets.
 */
export function matchSecret(key: Buffer, deviceId: string, secret: string, candidates: readonly Buffer[]): number {
  const mac = secretMac(key, deviceId, secret);
  let found = -1;
  const list = candidates.length > 0 ? candidates : [Buffer.alloc(32)];
  list.forEach((c, i) => {
    const equal = c.length === mac.length && crypto.timingSafeEqual(c, mac);
    if (equal && candidates.length > 0 && found < 0) found = i;
  });
  return found;
}

/**
 * Failed attempts per device id in a sliding window, in process memory (a restart forgets them,
 * which only gives an attacker a fresh window). Bounded: the oldest ids are dropped beyond maxIds.
 */
export class FailureLimiter {
  private readonly failures = new Map<string, number[]>();

  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
    private readonly maxIds = 100_000,
  ) {}

  /** Whether `id` has used up its failures in the window ending at `now`. */
  blocked(id: string, now: number): boolean {
    const list = this.recent(id, now);
    return list !== undefined && list.length >= this.limit;
  }

  fail(id: string, now: number): void {
    const list = this.recent(id, now) ?? [];
    list.push(now);
    this.failures.delete(id);
    this.failures.set(id, list);
    if (this.failures.size > this.maxIds) {
      const oldest = this.failures.keys().next().value;
      if (oldest !== undefined) this.failures.delete(oldest);
    }
  }

  /** A success clears the device's failures. */
  succeed(id: string): void {
    this.failures.delete(id);
  }

  private recent(id: string, now: number): number[] | undefined {
    const list = this.failures.get(id);
    if (!list) return undefined;
    while (list.length > 0 && list[0]! <= now - this.windowMs) list.shift();
    if (list.length === 0) {
      this.failures.delete(id);
      return undefined;
    }
    return list;
  }
}
