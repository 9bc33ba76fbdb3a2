/**
 * EST CSR Attributes (src/pki/csrattrs.ts): encoding against hand-checked bytes and openssl,
 * strict decoding, and what csrAttrsForProfile says for a profile.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { csrAttrsForProfile, decodeCsrAttrs, encodeCsrAttrs, type CsrAttr, type CsrAttrsProfile } from '../../src/pki/csrattrs.js';
import { encodeInteger, encodeOid, encodeSequence, encodeTlv, encodeUtf8String } from '../../src/pki/der.js';
import { OID_ATTR, OID_CURVE, OID_EXT, OID_KEY, OID_SIG } from '../../src/pki/oids.js';
import { caError } from './helpers.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function asn1parse(der: Buffer): string {
  return execFileSync('openssl', ['asn1parse', '-inform', 'DER'], { input: der, stdio: ['pipe', 'pipe', 'pipe'] }).toString();
}

const PROFILE: CsrAttrsProfile = { keyTypes: [], rsaMinBits: 2048, challengePassword: false, sanAllowed: false };

describe('encodeCsrAttrs / decodeCsrAttrs', () => {
  it('empty input encodes as 30 00 and decodes back to an empty list', () => {
    expect(encodeCsrAttrs([]).toString('hex')).toBe('3000');
    expect(decodeCsrAttrs(hex('3000'))).toEqual([]);
  });

  it('the RFC 7030 §4.5.2 example list encodes to the hand-checked 67 bytes', () => {
    const items: CsrAttr[] = [
      { oid: OID_ATTR.challengePassword },
      { attribute: OID_KEY.ecPublicKey, values: [encodeOid(OID_CURVE['P-384'])] },
      { attribute: OID_ATTR.extensionRequest, values: [encodeOid('1.3.6.1.1.1.1.22')] }, // macAddress
      { oid: OID_SIG.ecdsaWithSha384 },
    ];
    const expected = hex(`
      30 41
         06 09 2a 86 48 86 f7 0d 01 09 07
         30 12 06 07 2a 86 48 ce 3d 02 01
               31 07 06 05 2b 81 04 00 22
         30 16 06 09 2a 86 48 86 f7 0d 01 09 0e
               31 09 06 07 2b 06 01 01 01 01 16
         06 08 2a 86 48 ce 3d 04 03 03`);
    expect(encodeCsrAttrs(items).toString('hex')).toBe(expected.toString('hex'));
    expect(decodeCsrAttrs(expected)).toEqual(items);
  });

  it('decode(encode(x)) gives x back for OIDs and multi-valued attributes of any value type', () => {
    const items: CsrAttr[] = [
      { oid: OID_SIG.sha256WithRsa },
      { attribute: OID_KEY.rsaEncryption, values: [encodeInteger(3072)] },
      // already in DER SET OF order (by encoding), so the round trip keeps it
      { attribute: '1.3.6.1.4.1.99999.1', values: [encodeInteger(1), encodeOid('1.2.3'), encodeUtf8String('x'), encodeSequence()] },
      { oid: '2.999.12345678901234567890' },
    ];
    expect(decodeCsrAttrs(encodeCsrAttrs(items))).toEqual(items);
  });

  it('writes attribute values in DER SET OF order whatever order they are given in', () => {
    const a = encodeOid(OID_CURVE['P-256']); // 06 08 …
    const b = encodeOid(OID_CURVE['P-384']); // 06 05 …, sorts first
    const [back] = decodeCsrAttrs(encodeCsrAttrs([{ attribute: OID_KEY.ecPublicKey, values: [a, b] }]));
    expect(back).toEqual({ attribute: OID_KEY.ecPublicKey, values: [b, a] });
  });

  it('openssl asn1parse accepts the encoding of a full profile and names its parts', () => {
    const der = encodeCsrAttrs(
      csrAttrsForProfile({ keyTypes: ['P-256', 'P-384', 'P-521', 'ed25519', 'rsa'], rsaMinBits: 3072, challengePassword: true, sanAllowed: true }),
    );
    const out = asn1parse(der);
    for (const name of ['challengePassword', 'id-ecPublicKey', 'prime256v1', 'secp384r1', 'secp521r1', 'ecdsa-with-SHA256', 'ecdsa-with-SHA384', 'ED25519', 'rsaEncryption', 'sha256WithRSAEncryption', 'Extension Request', 'X509v3 Subject Alternative Name']) {
      expect(out, name).toContain(name);
    }
    expect(out).toMatch(/INTEGER\s+:0C00/); // 3072
  });

  it('encode refuses bad OIDs, attributes without values and values that are not one DER element', () => {
    expect(caError(() => encodeCsrAttrs([{ oid: '1.2.x' }])).kind).toBe('badRequest');
    expect(caError(() => encodeCsrAttrs([{ attribute: '3.1', values: [encodeInteger(1)] }])).kind).toBe('badRequest');
    expect(caError(() => encodeCsrAttrs([{ attribute: '1.2.3', values: [] }])).message).toMatch(/no values/);
    expect(caError(() => encodeCsrAttrs([{ attribute: '1.2.3', values: [hex('0205')] }])).message).toMatch(/not one DER element/);
    expect(caError(() => encodeCsrAttrs([{ attribute: '1.2.3', values: [hex('02010102 0101')] }])).message).toMatch(/not one DER element/);
  });

  it('decode rejects truncated DER, trailing bytes, wrong element types and empty value sets', () => {
    const good = encodeCsrAttrs([{ oid: OID_ATTR.challengePassword }, { attribute: OID_KEY.rsaEncryption, values: [encodeInteger(2048)] }]);
    const cases: Array<[string, Buffer, RegExp]> = [
      ['truncated', good.subarray(0, good.length - 1), /truncated/],
      ['empty input', Buffer.alloc(0), /truncated/],
      ['trailing bytes', Buffer.concat([good, hex('00')]), /trailing data/],
      ['not a SEQUENCE', hex('3100'), /CsrAttrs SEQUENCE/],
      ['an INTEGER item', encodeSequence(encodeInteger(1)), /AttrOrOID/],
      ['an empty value set', encodeSequence(encodeSequence(encodeOid('1.2.3'), hex('3100'))), /no values/],
      ['values not a SET', encodeSequence(encodeSequence(encodeOid('1.2.3'), encodeSequence(encodeInteger(1)))), /values SET/],
      ['an attribute without values', encodeSequence(encodeSequence(encodeOid('1.2.3'))), /values SET/],
      ['an attribute with an extra field', encodeSequence(encodeSequence(encodeOid('1.2.3'), encodeTlv(0x31, encodeInteger(1)), encodeInteger(1))), /extra fields/],
      ['a non-minimal length', hex('30 81 00'), /malformed/],
    ];
    for (const [name, der, msg] of cases) {
      const err = caError(() => decodeCsrAttrs(der));
      expect(err.kind, name).toBe('badRequest');
      expect(err.message, name).toMatch(msg);
    }
  });
});

describe('csrAttrsForProfile', () => {
  it('P-256 only gives the ecPublicKey attribute with secp256r1 and ecdsa-with-SHA256', () => {
    expect(csrAttrsForProfile({ ...PROFILE, keyTypes: ['P-256'] })).toEqual([
      { attribute: OID_KEY.ecPublicKey, values: [encodeOid(OID_CURVE['P-256'])] },
      { oid: OID_SIG.ecdsaWithSha256 },
    ]);
  });

  it('with challengePassword the challengePassword OID appears', () => {
    const items = csrAttrsForProfile({ ...PROFILE, keyTypes: ['P-256'], challengePassword: true });
    expect(items).toContainEqual({ oid: OID_ATTR.challengePassword });
    expect(csrAttrsForProfile({ ...PROFILE, keyTypes: ['P-256'] })).not.toContainEqual({ oid: OID_ATTR.challengePassword });
  });

  it('P-384 or P-521 adds their curves and ecdsa-with-SHA384', () => {
    for (const kt of ['P-384', 'P-521'] as const) {
      const items = csrAttrsForProfile({ ...PROFILE, keyTypes: ['P-256', kt] });
      const ec = items.find((i) => 'attribute' in i && i.attribute === OID_KEY.ecPublicKey);
      expect(ec && 'values' in ec ? ec.values.map((v) => v.toString('hex')).sort() : []).toEqual(
        [encodeOid(OID_CURVE['P-256']), encodeOid(OID_CURVE[kt])].map((v) => v.toString('hex')).sort(),
      );
      expect(items).toContainEqual({ oid: OID_SIG.ecdsaWithSha256 });
      expect(items).toContainEqual({ oid: OID_SIG.ecdsaWithSha384 });
    }
  });

  it('ed25519 gives its OID and no EC attribute', () => {
    expect(csrAttrsForProfile({ ...PROFILE, keyTypes: ['ed25519'] })).toEqual([{ oid: OID_KEY.ed25519 }]);
  });

  it('rsa gives rsaEncryption with the minimum size as INTEGER and sha256WithRSAEncryption', () => {
    expect(csrAttrsForProfile({ ...PROFILE, keyTypes: ['rsa'], rsaMinBits: 2048 })).toEqual([
      { attribute: OID_KEY.rsaEncryption, values: [hex('02 02 08 00')] },
      { oid: OID_SIG.sha256WithRsa },
    ]);
    expect(caError(() => csrAttrsForProfile({ ...PROFILE, keyTypes: ['rsa'], rsaMinBits: 0 })).kind).toBe('badRequest');
    // rsaMinBits is ignored when RSA is not allowed
    expect(csrAttrsForProfile({ ...PROFILE, keyTypes: ['ed25519'], rsaMinBits: 0 })).toEqual([{ oid: OID_KEY.ed25519 }]);
  });

  it('sanAllowed adds an extensionRequest attribute naming subjectAltName', () => {
    expect(csrAttrsForProfile({ ...PROFILE, sanAllowed: true })).toEqual([
      { attribute: OID_ATTR.extensionRequest, values: [encodeOid(OID_EXT.subjectAltName)] },
    ]);
  });

  it('the result of every profile round-trips through encode and decode unchanged', () => {
    const p: CsrAttrsProfile = { keyTypes: ['rsa', 'P-521', 'ed25519', 'P-256', 'P-384', 'P-256'], rsaMinBits: 4096, challengePassword: true, sanAllowed: true };
    const items = csrAttrsForProfile(p);
    expect(decodeCsrAttrs(encodeCsrAttrs(items))).toEqual(items);
    expect(items.filter((i) => 'oid' in i && i.oid === OID_SIG.ecdsaWithSha256)).toHaveLength(1);
  });
});
