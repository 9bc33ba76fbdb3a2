/** One-time enrollment secrets: generation, the stored MAC, constant-time matching, the failure limiter. */
import { describe, expect, it } from 'vitest';
import { FailureLimiter, deriveSecretKey, generateSecret, matchSecret, secretMac } from '../../src/enrollment/secrets.js';

const key = deriveSecretKey('test passphrase');

describe('generateSecret', () => {
  it('32 base64url characters (192 bits), safe in HTTP Basic', () => {
    for (let i = 0; i < 50; i++) {
      const s = generateSecret();
      expect(s).toMatch(/^[A-Za-z0-9_-]{32}$/);
      expect(Buffer.from(s, 'base64url')).toHaveLength(24);
    }
  });

  it('distinct values across 1000 draws', () => {
    const seen = new Set(Array.from({ length: 1000 }, () => generateSecret()));
    expect(seen.size).toBe(1000);
  });

  it('uses the given random source', () => {
    expect(generateSecret((n) => Buffer.alloc(n, 0xff))).toBe('_'.repeat(32));
  });
});

describe('secretMac', () => {
  it('32 bytes, deterministic for key, device and secret', () => {
    const mac = secretMac(key, 'dev-1', 'abc');
    expect(mac).toHaveLength(32);
    expect(secretMac(key, 'dev-1', 'abc').equals(mac)).toBe(true);
  });

  it('binds the device id: same secret, other device → other MAC', () => {
    expect(secretMac(key, 'dev-1', 'abc').equals(secretMac(key, 'dev-2', 'abc'))).toBe(false);
  });

  it('the separator keeps device and secret apart ("dev-1"+"2abc" ≠ "dev-12"+"abc")', () => {
    expect(secretMac(key, 'dev-1', '2abc').equals(secretMac(key, 'dev-12', 'abc'))).toBe(false);
  });

  it('depends on the key', () => {
    expect(secretMac(key, 'dev-1', 'abc').equals(secretMac(deriveSecretKey('other'), 'dev-1', 'abc'))).toBe(false);
  });
});

describe('matchSecret', () => {
  const secrets = [generateSecret(), generateSecret(), generateSecret()];
  const macs = secrets.map((s) => secretMac(key, 'dev-1', s));

  it('finds the index of the matching candidate', () => {
    secrets.forEach((s, i) => expect(matchSecret(key, 'dev-1', s, macs)).toBe(i));
  });

  it('wrong secret → -1', () => {
    expect(matchSecret(key, 'dev-1', generateSecret(), macs)).toBe(-1);
  });

  it('right secret presented for another device → -1', () => {
    expect(matchSecret(key, 'dev-2', secrets[0]!, macs)).toBe(-1);
  });

  it('no candidates → -1 (even for the all-zero dummy MAC)', () => {
    expect(matchSecret(key, 'dev-1', secrets[0]!, [])).toBe(-1);
  });

  it('candidates of another length are skipped, not thrown on', () => {
    expect(matchSecret(key, 'dev-1', secrets[1]!, [Buffer.alloc(16), macs[1]!])).toBe(1);
  });

  it('duplicate candidates → the first index', () => {
    expect(matchSecret(key, 'dev-1', secrets[2]!, [macs[0]!, macs[2]!, macs[2]!])).toBe(1);
  });
});

describe('FailureLimiter', () => {
  it('blocks after `limit` failures within the window', () => {
    const l = new FailureLimiter(3, 1000);
    expect(l.blocked('d', 0)).toBe(false);
    l.fail('d', 0);
    l.fail('d', 100);
    expect(l.blocked('d', 200)).toBe(false);
    l.fail('d', 200);
    expect(l.blocked('d', 300)).toBe(true);
    expect(l.blocked('other', 300)).toBe(false);
  });

  it('unblocks once the oldest failures leave the window (sliding)', () => {
    const l = new FailureLimiter(3, 1000);
    l.fail('d', 0);
    l.fail('d', 500);
    l.fail('d', 600);
    expect(l.blocked('d', 999)).toBe(true);
    // the failure at 0 is out of the window at 1000: two left
    expect(l.blocked('d', 1000)).toBe(false);
    l.fail('d', 1000);
    expect(l.blocked('d', 1001)).toBe(true);
    expect(l.blocked('d', 2600)).toBe(false);
  });

  it('succeed() clears the device failures', () => {
    const l = new FailureLimiter(2, 1000);
    l.fail('d', 0);
    l.fail('d', 1);
    expect(l.blocked('d', 2)).toBe(true);
    l.succeed('d');
    expect(l.blocked('d', 3)).toBe(false);
    l.fail('d', 4);
    expect(l.blocked('d', 5)).toBe(false);
  });

  it('bounded: beyond maxIds the oldest id is forgotten', () => {
    const l = new FailureLimiter(1, 1000, 2);
    l.fail('a', 0);
    l.fail('b', 0);
    l.fail('c', 0);
    expect(l.blocked('a', 1)).toBe(false);
    expect(l.blocked('b', 1)).toBe(true);
    expect(l.blocked('c', 1)).toBe(true);
  });
});

describe('deriveSecretKey', () => {
  it('32 bytes, deterministic per passphrase', () => {
    expect(deriveSecretKey('pw')).toHaveLength(32);
    expect(deriveSecretKey('pw').equals(deriveSecretKey('pw'))).toBe(true);
  });

  it('differs between passphrases', () => {
    expect(deriveSecretKey('pw').equals(deriveSecretKey('pw2'))).toBe(false);
    expect(deriveSecretKey('').equals(deriveSecretKey(' '))).toBe(false);
  });
});
