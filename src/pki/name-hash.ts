/**
 * OpenSSL's subject-name hash (`X509_NAME_hash_ex`, what `openssl x509 -hash`, `openssl crl -hash`,
 * `openssl rehash` and `c_rehash` print): the first four bytes, read little-endian, of the SHA-1 of
 * the Name's *canonical* encoding. A `-CApath` directory (FreeRADIUS `ca_path`) is looked up by it:
 * `<hash>.<n>` for CA certificates, `<hash>.r<n>` for CRLs.
 *
 * The canonical encoding (OpenSSL crypto/x509/x_name.c, `x509_name_canon`, `asn1_string_canon`):
 * - the RDNs' SET OF encodings concatenated, without the outer SEQUENCE header; an empty Name
 *   hashes the empty string;
 * - each attribute value of a string type (UTF8String, BMPString, UniversalString,
 *   PrintableString, TeletexString, IA5String, VisibleString) becomes a UTF8String with leading and
 *   trailing white space removed, inner runs of white space collapsed to one space and ASCII
 *   letters lower-cased; any other value is copied as it is;
 * - the SET OF of a multi-valued RDN is re-sorted (DER) after the values changed.
 * Pure: no I/O.
 */
import { createHash } from 'node:crypto';
import { DerError, TAG, encodeSequence, encodeSetOf, encodeTlv, encodingOf, expectTag, readChildren, readWhole, valueOf } from './der.js';

/** The string types OpenSSL canonicalises (`ASN1_MASK_CANON`). */
const CANON_TYPES: ReadonlySet<number> = new Set([
  TAG.UTF8_STRING,
  TAG.BMP_STRING,
  TAG.UNIVERSAL_STRING,
  TAG.PRINTABLE_STRING,
  TAG.TELETEX_STRING,
  TAG.IA5_STRING,
  TAG.VISIBLE_STRING,
]);

/** `ossl_isspace`: space, \t, \n, \v, \f, \r. */
const isSpace = (b: number) => b === 0x20 || (b >= 0x09 && b <= 0x0d);

/** The value as UTF-8 bytes, as `ASN1_STRING_to_UTF8` converts it (T61 is read as Latin-1). */
function toUtf8(tag: number, v: Buffer): Buffer {
  switch (tag) {
    case TAG.BMP_STRING: {
      if (v.length % 2 !== 0) throw new DerError('malformed', 'BMPString of odd length');
      let s = '';
      for (let i = 0; i < v.length; i += 2) s += String.fromCharCode(v.readUInt16BE(i));
      return Buffer.from(s, 'utf8');
    }
    case TAG.UNIVERSAL_STRING: {
      if (v.length % 4 !== 0) throw new DerError('malformed', 'UniversalString length not a multiple of 4');
      let s = '';
      for (let i = 0; i < v.length; i += 4) s += String.fromCodePoint(v.readUInt32BE(i));
      return Buffer.from(s, 'utf8');
    }
    case TAG.TELETEX_STRING:
      return Buffer.from(v.toString('latin1'), 'utf8');
    default:
      // UTF8String is already UTF-8; Printable, IA5 and Visible are ASCII
      return Buffer.from(v);
  }
}

/** `asn1_string_canon` on UTF-8 bytes: trim, collapse white space, lower-case ASCII. */
function canonBytes(u: Buffer): Buffer {
  let from = 0;
  let to = u.length;
  while (from < to && isSpace(u[from]!)) from++;
  while (to > from && isSpace(u[to - 1]!)) to--;
  const out: number[] = [];
  let i = from;
  while (i < to) {
    const b = u[i]!;
    if (b > 0x7f) {
      out.push(b); // not ASCII: copied as is
      i++;
    } else if (isSpace(b)) {
      out.push(0x20);
      while (i < to && isSpace(u[i]!)) i++;
    } else {
      out.push(b >= 0x41 && b <= 0x5a ? b + 0x20 : b);
      i++;
    }
  }
  return Buffer.from(out);
}

/** The canonical encoding of a DER Name (see the file comment). */
export function canonicalNameEncoding(nameDer: Buffer): Buffer {
  const name = expectTag(readWhole(nameDer, 'Name'), TAG.SEQUENCE, 'Name SEQUENCE');
  const rdns: Buffer[] = [];
  for (const rdn of readChildren(nameDer, name)) {
    expectTag(rdn, TAG.SET, 'RelativeDistinguishedName SET');
    const atvs: Buffer[] = [];
    for (const atv of readChildren(nameDer, rdn)) {
      const [type, value, ...rest] = readChildren(nameDer, expectTag(atv, TAG.SEQUENCE, 'AttributeTypeAndValue'));
      if (rest.length > 0 || value === undefined) throw new DerError('malformed', 'AttributeTypeAndValue must have a type and one value');
      const typeDer = encodingOf(nameDer, expectTag(type, TAG.OID, 'attribute type'));
      const valueDer = CANON_TYPES.has(value.tag) ? encodeTlv(TAG.UTF8_STRING, canonBytes(toUtf8(value.tag, valueOf(nameDer, value)))) : encodingOf(nameDer, value);
      atvs.push(encodeSequence(typeDer, valueDer));
    }
    rdns.push(encodeSetOf(atvs));
  }
  return Buffer.concat(rdns);
}

/** OpenSSL's subject-name hash of a DER Name as 8 lowercase hex digits (`openssl x509 -hash`). */
export function opensslNameHash(nameDer: Buffer): string {
  const md = createHash('sha1').update(canonicalNameEncoding(nameDer)).digest();
  return md.readUInt32LE(0).toString(16).padStart(8, '0');
}
