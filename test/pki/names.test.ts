import { GeneralNames, Name } from '@peculiar/asn1-x509';
import { AsnConvert } from '@peculiar/asn1-schema';
import { describe, expect, it } from 'vitest';
import { encodeOid, encodeSequence, encodeTlv, readChildren, readWhole } from '../../src/pki/der.js';
import {
  decodeGeneralNames,
  decodeName,
  encodeGeneralNames,
  encodeName,
  formatIpAddress,
  formatName,
  isValidDnsName,
  parseIpAddress,
  type RdnAttribute,
  type SanEntry,
} from '../../src/pki/names.js';
import { opensslOk, caError } from './helpers.js';

const attr = (type: string, oid: string, value: string): RdnAttribute => ({ type, oid, value });

describe('encodeName / decodeName', () => {
  const attrs: RdnAttribute[] = [
    attr('C', '2.5.4.6', 'DE'),
    attr('ST', '2.5.4.8', 'Bayern'),
    attr('L', '2.5.4.7', 'München'),
    attr('O', '2.5.4.10', 'Fleet GmbH'),
    attr('OU', '2.5.4.11', 'Cameras'),
    attr('CN', '2.5.4.3', 'cam-1 ✓'),
    attr('serialNumber', '2.5.4.5', 'SN-0042'),
    attr('emailAddress', '1.2.840.113549.1.9.1', 'ops@example.com'),
    attr('DC', '0.9.2342.19200300.100.1.25', 'example'),
    attr('UID', '0.9.2342.19200300.100.1.1', 'u-1'),
    attr('2.5.4.65', '2.5.4.65', 'pseudonym'),
  ];

  it('round-trips attributes in order, one per RDN', () => {
    const der = encodeName(attrs);
    expect(decodeName(der)).toEqual(attrs);
    const ref = AsnConvert.parse(der, Name);
    expect(ref.length).toBe(attrs.length);
    expect(ref.every((rdn) => rdn.length === 1)).toBe(true);
  });

  it('uses the RFC 5280 Appendix A string types: PrintableString for C/serialNumber, IA5String for emailAddress/DC, UTF8String otherwise', () => {
    const ref = AsnConvert.parse(encodeName(attrs), Name);
    const tags = ref.map((rdn) => {
      const v = rdn[0]!.value;
      return v.printableString !== undefined ? 'printable' : v.utf8String !== undefined ? 'utf8' : v.ia5String !== undefined ? 'ia5' : '?';
    });
    expect(tags).toEqual(['printable', 'utf8', 'utf8', 'utf8', 'utf8', 'utf8', 'printable', 'ia5', 'ia5', 'utf8', 'utf8']);
  });

  it('openssl prints the encoded Name with the UTF-8 intact', () => {
    const der = encodeName([attr('C', '', 'DE'), attr('O', '', 'Müller'), attr('CN', '', 'cam-1')]);
    const out = opensslOk(['asn1parse', '-inform', 'DER'], der).toString();
    expect(out).toMatch(/PRINTABLESTRING\s+:DE/);
    expect(out).toMatch(/UTF8STRING\s+:Müller/);
    expect(decodeName(der).map((a) => a.value)).toEqual(['DE', 'Müller', 'cam-1']);
  });

  it('resolves the OID from the short name when oid is empty', () => {
    expect(decodeName(encodeName([attr('CN', '', 'x')]))).toEqual([attr('CN', '2.5.4.3', 'x')]);
  });

  it('an empty attribute list is the empty Name (30 00)', () => {
    expect(encodeName([]).toString('hex')).toBe('3000');
    expect(decodeName(Buffer.from('3000', 'hex'))).toEqual([]);
  });

  it.each([
    ['C with a non-Printable character', [attr('C', '', 'D_')], /PrintableString/],
    ['C of 3 letters', [attr('C', '', 'DEU')], /exactly 2/],
    ['serialNumber with @', [attr('serialNumber', '', 'a@b')], /PrintableString/],
    ['serialNumber with UTF-8', [attr('serialNumber', '', 'ü1')], /PrintableString/],
    ['emailAddress with UTF-8', [attr('emailAddress', '', 'ü@example.com')], /IA5String/],
    ['empty value', [attr('CN', '', '')], /empty/],
    ['CN over 64 characters', [attr('CN', '', 'x'.repeat(65))], /1–64/],
    ['unknown short name', [attr('FOO', '', 'x')], /unknown Name attribute/],
    ['lone surrogate', [attr('CN', '', 'a\ud800b')], /not valid Unicode/],
  ])('badRequest/%s', (_n, a, msg) => {
    const err = caError(() => encodeName(a));
    expect(err.kind).toBe('badRequest');
    expect(err.message).toMatch(msg);
  });

  it('PrintableString accepts its full charset', () => {
    const v = "Az09 '()+,-./:=?";
    expect(decodeName(encodeName([attr('serialNumber', '', v)]))[0]!.value).toBe(v);
  });

  it('decodes BMPString, TeletexString, UniversalString and non-string values', () => {
    const atv = (oid: string, value: Buffer) => encodeTlv(0x31, encodeSequence(encodeOid(oid), value));
    const bmp = encodeTlv(0x1e, Buffer.from('\u00fcber', 'utf16le').swap16());
    const t61 = encodeTlv(0x14, Buffer.from('caf\xe9', 'latin1'));
    const univ = encodeTlv(0x1c, Buffer.from([0, 1, 0xf6, 0x00, 0, 0, 0, 0x41]));
    const octets = encodeTlv(0x04, Buffer.from([1, 2]));
    const der = encodeSequence(atv('2.5.4.3', bmp), atv('2.5.4.10', t61), atv('2.5.4.11', univ), atv('1.2.3.4', octets));
    expect(decodeName(der)).toEqual([
      attr('CN', '2.5.4.3', 'über'),
      attr('O', '2.5.4.10', 'café'),
      attr('OU', '2.5.4.11', '\u{1f600}A'),
      attr('1.2.3.4', '1.2.3.4', '#04020102'),
    ]);
  });

  it('flattens multi-valued RDNs', () => {
    const a = encodeSequence(encodeOid('2.5.4.3'), encodeTlv(0x0c, Buffer.from('a')));
    const b = encodeSequence(encodeOid('2.5.4.11'), encodeTlv(0x0c, Buffer.from('b')));
    expect(decodeName(encodeSequence(encodeTlv(0x31, a, b))).map((x) => x.type)).toEqual(['CN', 'OU']);
  });

  it.each([
    ['trailing data', '30003000'],
    ['not a SEQUENCE', '3100'],
    ['empty RDN', '30023100'],
    ['ATV without value', encodeSequence(encodeTlv(0x31, encodeSequence(encodeOid('2.5.4.3')))).toString('hex')],
    ['invalid UTF-8', encodeSequence(encodeTlv(0x31, encodeSequence(encodeOid('2.5.4.3'), encodeTlv(0x0c, Buffer.from([0xc3, 0x28]))))).toString('hex')],
    ['truncated', '300531033001'],
  ])('badRequest/decodeName %s', (_n, h) => {
    expect(caError(() => decodeName(Buffer.from(h, 'hex'))).kind).toBe('badRequest');
  });
});

describe('formatName', () => {
  it('prints CN=x, O=y in stored order', () => {
    expect(formatName([attr('CN', '2.5.4.3', 'cam-1'), attr('O', '2.5.4.10', 'Fleet')])).toBe('CN=cam-1, O=Fleet');
  });

  it('escapes RFC 4514 special characters', () => {
    expect(formatName([attr('CN', '', 'a,b+c"d\\e<f>g;h')])).toBe('CN=a\\,b\\+c\\"d\\\\e\\<f\\>g\\;h');
    expect(formatName([attr('CN', '', ' #lead and trail ')])).toBe('CN=\\ #lead and trail\\ ');
    expect(formatName([attr('CN', '', '#x')])).toBe('CN=\\#x');
  });

  it('prints unknown types by OID and hex values unescaped', () => {
    expect(formatName([attr('1.2.3.4', '1.2.3.4', '#04020102')])).toBe('1.2.3.4=#04020102');
  });

  it('the empty Name prints as an empty string', () => {
    expect(formatName([])).toBe('');
  });
});

describe('IP addresses', () => {
  it.each([
    ['192.0.2.1', 'c0000201', '192.0.2.1'],
    ['0.0.0.0', '00000000', '0.0.0.0'],
    ['2001:db8::1', '20010db8000000000000000000000001', '2001:db8::1'],
    ['2001:DB8:0:0:1:0:0:1', '20010db8000000000001000000000001', '2001:db8::1:0:0:1'],
    ['2001:db8:0:1:1:1:1:1', '20010db8000000010001000100010001', '2001:db8:0:1:1:1:1:1'],
    ['::', '00000000000000000000000000000000', '::'],
    ['::1', '00000000000000000000000000000001', '::1'],
    ['fe80::', 'fe800000000000000000000000000000', 'fe80::'],
    ['::ffff:192.0.2.1', '00000000000000000000ffffc0000201', '::ffff:192.0.2.1'],
    ['64:ff9b::192.0.2.33', '0064ff9b0000000000000000c0000221', '64:ff9b::c000:221'],
    ['2001:0db8:0000:0000:0000:ff00:0042:8329', '20010db8000000000000ff0000428329', '2001:db8::ff00:42:8329'],
  ])('%s → %s → %s (RFC 5952)', (text, octets, canonical) => {
    const b = parseIpAddress(text);
    expect(b?.toString('hex')).toBe(octets);
    expect(formatIpAddress(b!)).toBe(canonical);
  });

  it.each(['256.1.1.1', '1.2.3', '01.2.3.4', '1.2.3.4.5', '1:2:3:4:5:6:7:8:9', '1::2::3', 'fe80::1%eth0', '::g', '2001:db8::/32', '', '1:2:3:4:5:6:7::8:9', '12345::'])(
    'invalid/%s',
    (text) => {
      expect(parseIpAddress(text)).toBeNull();
    },
  );

  it('only 4 or 16 octets format', () => {
    expect(formatIpAddress(Buffer.alloc(8))).toBeNull();
  });
});

describe('encodeGeneralNames / decodeGeneralNames', () => {
  const sans: SanEntry[] = [
    { type: 'dns', value: 'cam-1.fleet.example.com' },
    { type: 'dns', value: '*.fleet.example.com' },
    { type: 'ip', value: '192.0.2.7' },
    { type: 'ip', value: '2001:db8::7' },
    { type: 'email', value: 'ops@fleet.example.com' },
    { type: 'uri', value: 'urn:dev:mac:0024befffe804ff1' },
    { type: 'otherName', value: `1.3.6.1.4.1.311.20.2.3;${encodeTlv(0x0c, Buffer.from('dev@example')).toString('hex')}` },
  ];

  it('round-trips every SAN type in order', () => {
    const der = encodeGeneralNames(sans);
    expect(decodeGeneralNames(der)).toEqual(sans);
    const ref = AsnConvert.parse(der, GeneralNames);
    expect(ref.map((g) => g.dNSName ?? g.iPAddress ?? g.rfc822Name ?? g.uniformResourceIdentifier ?? g.otherName?.typeId)).toEqual([
      'cam-1.fleet.example.com',
      '*.fleet.example.com',
      '192.0.2.7',
      '2001:db8::7',
      'ops@fleet.example.com',
      'urn:dev:mac:0024befffe804ff1',
      '1.3.6.1.4.1.311.20.2.3',
    ]);
  });

  it('uses the RFC 5280 context tags [2] dns, [7] ip, [1] email, [6] uri, [0] otherName', () => {
    const der = encodeGeneralNames(sans);
    const tags = readChildren(der, readWhole(der)).map((t) => t.tag);
    expect(tags).toEqual([0x82, 0x82, 0x87, 0x87, 0x81, 0x86, 0xa0]);
  });

  it('IPv6 text is normalised to RFC 5952 on the way back', () => {
    expect(decodeGeneralNames(encodeGeneralNames([{ type: 'ip', value: '2001:DB8:0:0:0:0:0:0001' }]))).toEqual([
      { type: 'ip', value: '2001:db8::1' },
    ]);
  });

  it.each<[string, SanEntry, RegExp]>([
    ['dns with a space', { type: 'dns', value: 'a b.example' }, /not a valid hostname/],
    ['dns with UTF-8 (must be A-label)', { type: 'dns', value: 'bücher.example' }, /not a valid hostname/],
    ['dns label of 64 octets', { type: 'dns', value: 'a'.repeat(64) + '.example' }, /not a valid hostname/],
    ['dns with a trailing dot', { type: 'dns', value: 'a.example.' }, /not a valid hostname/],
    ['dns with a leading hyphen', { type: 'dns', value: '-a.example' }, /not a valid hostname/],
    ['dns wildcard not leftmost', { type: 'dns', value: 'a.*.example' }, /not a valid hostname/],
    ['dns with an underscore', { type: 'dns', value: '_a.example' }, /not a valid hostname/],
    ['ip that is not an address', { type: 'ip', value: '10.0.0.256' }, /iPAddress/],
    ['email without @', { type: 'email', value: 'ops.example.com' }, /mailbox/],
    ['email with UTF-8', { type: 'email', value: 'öps@example.com' }, /mailbox/],
    ['uri without a scheme', { type: 'uri', value: '//example.com/x' }, /absolute URI/],
    ['uri with a space', { type: 'uri', value: 'http://example.com/a b' }, /absolute URI/],
    ['otherName without hex', { type: 'otherName', value: '1.2.3' }, /<oid>;<hex DER>/],
    ['otherName with two elements', { type: 'otherName', value: '1.2.3;05000500' }, /one DER element/],
    ['empty value', { type: 'dns', value: '' }, /empty/],
  ])('badRequest/%s', (_n, e, msg) => {
    const err = caError(() => encodeGeneralNames([e]));
    expect(err.kind).toBe('badRequest');
    expect(err.message).toMatch(msg);
  });

  it('badRequest/empty GeneralNames (SIZE 1..MAX)', () => {
    expect(caError(() => encodeGeneralNames([])).kind).toBe('badRequest');
  });

  it.each([
    ['directoryName', encodeSequence(encodeTlv(0xa4, encodeSequence())), /directoryName/],
    ['registeredID', encodeSequence(encodeTlv(0x88, Buffer.from([0x2a, 0x03]))), /registeredID/],
    ['iPAddress of 5 octets', encodeSequence(encodeTlv(0x87, Buffer.alloc(5))), /4 or 16 octets/],
    ['dNSName with a high-bit octet', encodeSequence(encodeTlv(0x82, Buffer.from([0x61, 0xe9]))), /IA5String/],
    ['empty sequence', encodeSequence(), /empty/],
  ])('badRequest/decode %s', (_n, der, msg) => {
    const err = caError(() => decodeGeneralNames(der));
    expect(err.kind).toBe('badRequest');
    expect(err.message).toMatch(msg);
  });

  it('isValidDnsName accepts LDH names and a leading wildcard label only', () => {
    expect(isValidDnsName('a')).toBe(true);
    expect(isValidDnsName('xn--bcher-kva.example')).toBe(true);
    expect(isValidDnsName('*.a.example')).toBe(true);
    expect(isValidDnsName('*')).toBe(false);
    expect(isValidDnsName(`${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`)).toBe(true);
    expect(isValidDnsName(`${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(62)}`)).toBe(false);
  });
});
