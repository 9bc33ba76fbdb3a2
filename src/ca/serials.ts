/** Serial helpers of the core: the database keeps canonical lowercase hex, DER needs bytes. */
export function hexToSerialBytes(hex: string): Buffer {
  return Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex');
}
