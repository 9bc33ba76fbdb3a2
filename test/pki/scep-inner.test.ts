import { describe, expect, it } from 'vitest';
import { encodeSequence, encodeUnsignedInteger } from '../../src/pki/der.js';
import { encodeName } from '../../src/pki/names.js';
import { decodeIssuerAndSerial } from '../../src/pki/scep-inner.js';
import { serialToHex } from '../../src/pki/serial.js';

describe('decodeIssuerAndSerial (GetCert, GetCRL)', () => {
  const issuer = encodeName([{ type: 'CN', oid: '2.5.4.3', value: 'fleetca Device CA' }]);
  it.each([
    ['0a', '0a1b2c3d'],
    ['01', '01ff'],
    ['7f', '7f00ab'],
    ['80 (INTEGER gets a 00 pad)', '80aa'],
  ])('a serial whose first octet is %s reads back in the store form', (_what, hex) => {
    const magnitude = Buffer.from(hex, 'hex');
    const r = decodeIssuerAndSerial(encodeSequence(issuer, encodeUnsignedInteger(magnitude)));
    expect(r.serialHex).toBe(serialToHex(magnitude));
    expect(r.issuerDer).toEqual(issuer);
  });
});
