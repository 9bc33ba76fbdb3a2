/** Branded identifiers: a serial is not a device id, even though both are strings. */
export type Brand<T, B extends string> = T & { readonly __brand: B };

/** Certificate serial as lowercase hex without separators (canonical form in the database). */
export type SerialHex = Brand<string, 'SerialHex'>;
export type DeviceId = Brand<string, 'DeviceId'>;
export type IssuerName = Brand<string, 'IssuerName'>;

/** Device ids: letters, digits and . _ : - ; 1..128 chars; they become a certificate CN. */
export const DEVICE_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/**
 * Accepts serials as printed by `openssl x509 -serial` (upper hex), with colons, or with 0x;
 * returns the canonical lowercase hex with no leading zero octets beyond DER's sign octet rules.
 */
export function normalizeSerial(input: string): SerialHex | null {
  let s = input.trim().toLowerCase();
  if (s.startsWith('0x')) s = s.slice(2);
  s = s.replace(/:/g, '');
  if (!/^[0-9a-f]+$/.test(s) || s.length > 42) return null;
  if (s.length % 2 === 1) s = '0' + s;
  // strip redundant leading zero octets (keep one if the next octet has its high bit set)
  while (s.length > 2 && s.startsWith('00') && parseInt(s.slice(2, 4), 16) < 0x80) s = s.slice(2);
  return s as SerialHex;
}

/** The way `openssl x509 -serial` prints it: upper-case hex. */
export function formatSerial(serial: string): string {
  return serial.toUpperCase();
}
