/**
 * Certificate serial numbers: 1 prefix octet 0x01–0x7f followed by 128 random bits.
 */

/**
 * A fresh 17-octet serial from the injected CSPRNG (`randomBytes`, e.g. node's
 * crypto.randomBytes). The first octet is in 0x01–0x7f, so the value is positive and the DER
 * INTEGER content is exactly these 17 octets (no 0x00 pad, no leading zero): within the 20
 * octets RFC 5280 §4.1.2.2 allows, with 128 bits of entropy (CA/B BR §7.1 asks for ≥ 64).
 */
export function generateSerial(randomBytes: (n: number) => Buffer): Buffer {
  const r = randomBytes(17);
  if (!Buffer.isBuffer(r) || r.length !== 17) throw new Error('randomBytes returned the wrong number of bytes');
  const out = Buffer.from(r); // never alias the caller's buffer
  // map 0..255 onto 1..127; the small bias only affects the prefix, not the 128 random bits
  out[0] = (out[0]! % 127) + 1;
  return out;
}

/** Lowercase hex of the serial octets, no separators (the form stored and shown everywhere). */
export function serialToHex(b: Buffer): string {
  return b.toString('hex');
}
