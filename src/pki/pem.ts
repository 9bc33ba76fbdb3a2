/**
 * PEM (RFC 7468) encoding/decoding, and the CSR input sniffing the enrollment protocols need.
 */
import { badCsr, badRequest } from '../core/errors.js';

/** PEM with 64-column base64 lines and a trailing newline (RFC 7468 §2, strict form §3). */
export function pemEncode(label: string, der: Buffer): string {
  // RFC 7468 §3: labelchars (printable ASCII except '-') separated by single '-' or spaces
  if (!/^[\x21-\x2c\x2e-\x7e]+([- ][\x21-\x2c\x2e-\x7e]+)*$/.test(label)) {
    throw badRequest(`invalid PEM label: ${label}`);
  }
  const b64 = der.toString('base64');
  let body = '';
  for (let i = 0; i < b64.length; i += 64) body += b64.slice(i, i + 64) + '\n';
  return `-----BEGIN ${label}-----\n${body}-----END ${label}-----\n`;
}

const PEM_BLOCK_RE = /-----BEGIN ([^\r\n]*?)-----([\s\S]*?)-----END ([^\r\n]*?)-----/g;
const B64_CHARS_RE = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Every PEM block in `text`, in order. Text outside blocks is ignored (RFC 7468 §2 explanatory
 * text). Whitespace inside the base64 is tolerated (RFC 7468 §3 lax parsing); RFC 1421 headers
 * are not. Throws badRequest for a block whose END label differs or whose base64 is invalid.
 */
export function pemDecodeAll(text: string): Array<{ label: string; der: Buffer }> {
  const out: Array<{ label: string; der: Buffer }> = [];
  for (const m of text.matchAll(PEM_BLOCK_RE)) {
    const label = m[1] ?? '';
    if (m[3] !== label) throw badRequest(`PEM block BEGIN ${label} ends with END ${m[3] ?? ''}`);
    const der = strictBase64(m[2] ?? '');
    if (der === null) throw badRequest(`PEM block ${label} has invalid base64`);
    out.push({ label, der });
  }
  return out;
}

/** Decodes base64 after removing whitespace; null unless it is valid, canonical base64. */
function strictBase64(s: string): Buffer | null {
  const compact = s.replace(/[\s]+/g, '');
  if (compact.length === 0 || compact.length % 4 === 1 || !B64_CHARS_RE.test(compact)) return null;
  const unpadded = compact.replace(/=+$/, '');
  if (compact.length !== unpadded.length && compact.length % 4 !== 0) return null;
  const der = Buffer.from(unpadded, 'base64');
  // reject non-canonical trailing bits, so one byte sequence has one text form
  if (der.toString('base64').replace(/=+$/, '') !== unpadded) return null;
  return der;
}

const CSR_LABELS = new Set(['CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST']);

/**
 * Normalises a CSR as received on the wire to DER:
 *  - PEM with label `CERTIFICATE REQUEST` (RFC 7468 §7) or `NEW CERTIFICATE REQUEST` (the
 *    label older tools such as Netscape/MS certreq write);
 *  - raw DER (first octet 0x30, a SEQUENCE);
 *  - bare base64 of the DER, with or without line breaks or other whitespace.
 *    NOTE(client): EST `/simpleenroll` bodies are base64 with Content-Transfer-Encoding: base64
 *    (RFC 7030 §4.2.1); clients wrap at 64 or 76 columns, use CRLF, or send one long line.
 * Only the envelope is checked here; `decodeCsr` validates the DER itself.
 */
export function decodeCsrInput(input: Buffer): Buffer {
  if (input.length > 0 && input[0] === 0x30) return input;
  let text = input.toString('latin1');
  if (text.startsWith('\xef\xbb\xbf')) text = text.slice(3); // UTF-8 BOM from Windows editors
  if (text.includes('-----BEGIN')) {
    let all: Array<{ label: string; der: Buffer }>;
    try {
      all = pemDecodeAll(text);
    } catch (err) {
      throw badCsr(err instanceof Error ? err.message : 'PEM input is malformed', err);
    }
    const blocks = all.filter((b) => CSR_LABELS.has(b.label));
    if (blocks.length === 0) {
      throw badCsr(
        all.length === 0 ? 'PEM input has no complete block' : 'PEM input contains no CERTIFICATE REQUEST block',
      );
    }
    if (blocks.length > 1) throw badCsr('PEM input contains more than one CERTIFICATE REQUEST block');
    return blocks[0]!.der;
  }
  const der = strictBase64(text);
  if (der !== null && der.length > 0 && der[0] === 0x30) return der;
  throw badCsr('CSR is neither PEM nor DER');
}
