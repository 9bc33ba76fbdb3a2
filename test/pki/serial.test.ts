import * as crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { encodeUnsignedInteger, readWhole } from '../../src/pki/der.js';
import { generateSerial, serialToHex } from '../../src/pki/serial.js';

describe('generateSerial', () => {
  it('gives 17 octets with a first octet in 0x01–0x7f, whatever the random prefix byte', () => {
    for (let b = 0; b < 256; b++) {
      const s = generateSerial((n) => Buffer.concat([Buffer.from([b]), Buffer.alloc(n - 1, 0xee)]));
      expect(s).toHaveLength(17);
      expect(s[0]).toBeGreaterThanOrEqual(0x01);
      expect(s[0]).toBeLessThanOrEqual(0x7f);
      expect(s.subarray(1)).toEqual(Buffer.alloc(16, 0xee));
    }
  });

  it('the DER INTEGER content is exactly the 17 serial octets (positive, no padding; RFC 5280 §4.1.2.2)', () => {
    for (let i = 0; i < 200; i++) {
      const s = generateSerial(crypto.randomBytes);
      const enc = encodeUnsignedInteger(s);
      const t = readWhole(enc);
      expect(enc.subarray(t.valueStart)).toEqual(s);
      expect(t.end - t.valueStart).toBeLessThanOrEqual(20);
    }
  });

  it('uses the injected randomness for the 128 random bits and does not alias its buffer', () => {
    const fixed = Buffer.from('ff' + '0123456789abcdef0123456789abcdef', 'hex');
    const s = generateSerial(() => fixed);
    expect(serialToHex(s)).toBe('02' + '0123456789abcdef0123456789abcdef');
    expect(s).not.toBe(fixed);
    expect(fixed[0]).toBe(0xff);
  });

  it('consecutive serials from a CSPRNG differ', () => {
    const seen = new Set(Array.from({ length: 1000 }, () => serialToHex(generateSerial(crypto.randomBytes))));
    expect(seen.size).toBe(1000);
  });

  it('refuses a randomness source that returns the wrong length', () => {
    expect(() => generateSerial(() => Buffer.alloc(16))).toThrow(/wrong number of bytes/);
  });
});

describe('serialToHex', () => {
  it('is lowercase hex without separators', () => {
    expect(serialToHex(Buffer.from([0x01, 0xab, 0xcd]))).toBe('01abcd');
  });
});
