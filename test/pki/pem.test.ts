import { describe, expect, it } from 'vitest';
import { decodeCsrInput, pemDecodeAll, pemEncode } from '../../src/pki/pem.js';
import { vector, caError } from './helpers.js';

const csrDer = vector('csr/p256-valid.der');

function wrap(s: string, cols: number, eol = '\n'): string {
  const lines: string[] = [];
  for (let i = 0; i < s.length; i += cols) lines.push(s.slice(i, i + cols));
  return lines.join(eol) + eol;
}

describe('pemEncode', () => {
  it('writes 64-column base64 lines and a trailing newline', () => {
    const der = Buffer.alloc(100, 0xab);
    const pem = pemEncode('CERTIFICATE', der);
    const lines = pem.split('\n');
    expect(lines[0]).toBe('-----BEGIN CERTIFICATE-----');
    expect(lines[1]).toHaveLength(64);
    expect(lines[2]!.length).toBeLessThanOrEqual(64);
    expect(lines.at(-2)).toBe('-----END CERTIFICATE-----');
    expect(pem.endsWith('-----\n')).toBe(true);
    expect(pemDecodeAll(pem)).toEqual([{ label: 'CERTIFICATE', der }]);
  });

  it('an empty body still gives a well-formed block', () => {
    expect(pemEncode('X509 CRL', Buffer.alloc(0))).toBe('-----BEGIN X509 CRL-----\n-----END X509 CRL-----\n');
  });

  it('badRequest/invalid label', () => {
    expect(caError(() => pemEncode('BAD-----', Buffer.alloc(1))).kind).toBe('badRequest');
  });
});

describe('pemDecodeAll', () => {
  it('reads every block in order, ignoring text around them and CRLF line ends', () => {
    const a = Buffer.from('first');
    const b = Buffer.from('second block');
    const text = `subject=CN=x\r\n${pemEncode('CERTIFICATE', a).replace(/\n/g, '\r\n')}junk\n${pemEncode('PRIVATE KEY', b)}`;
    expect(pemDecodeAll(text)).toEqual([
      { label: 'CERTIFICATE', der: a },
      { label: 'PRIVATE KEY', der: b },
    ]);
  });

  it('returns nothing for text without blocks', () => {
    expect(pemDecodeAll('hello')).toEqual([]);
  });

  it('badRequest/mismatched END label', () => {
    const err = caError(() => pemDecodeAll('-----BEGIN A-----\nAAAA\n-----END B-----\n'));
    expect(err.kind).toBe('badRequest');
    expect(err.message).toMatch(/ends with END B/);
  });

  it('badRequest/invalid base64 in a block', () => {
    expect(caError(() => pemDecodeAll('-----BEGIN A-----\nA*AA\n-----END A-----\n')).message).toMatch(/invalid base64/);
  });
});

describe('decodeCsrInput', () => {
  const b64 = csrDer.toString('base64');

  it('DER passes through unchanged', () => {
    expect(decodeCsrInput(csrDer)).toBe(csrDer);
  });

  it('PEM CERTIFICATE REQUEST', () => {
    expect(decodeCsrInput(Buffer.from(pemEncode('CERTIFICATE REQUEST', csrDer)))).toEqual(csrDer);
  });

  it('PEM NEW CERTIFICATE REQUEST (legacy label)', () => {
    expect(decodeCsrInput(Buffer.from(pemEncode('NEW CERTIFICATE REQUEST', csrDer)))).toEqual(csrDer);
  });

  it('PEM with explanatory text before and after, and a UTF-8 BOM', () => {
    const text = `\ufeffCSR for cam-1\n${pemEncode('CERTIFICATE REQUEST', csrDer)}\n-- end --\n`;
    expect(decodeCsrInput(Buffer.from(text, 'utf8'))).toEqual(csrDer);
  });

  it('single-line base64', () => {
    expect(decodeCsrInput(Buffer.from(b64))).toEqual(csrDer);
  });

  it('76-column base64 with CRLF (RFC 2045 style, EST)', () => {
    expect(decodeCsrInput(Buffer.from(wrap(b64, 76, '\r\n')))).toEqual(csrDer);
  });

  it('64-column base64 with LF and surrounding whitespace', () => {
    expect(decodeCsrInput(Buffer.from(`  \n${wrap(b64, 64)}\n\n`))).toEqual(csrDer);
  });

  it('base64 without its = padding', () => {
    const der = csrDer.length % 3 === 0 ? csrDer.subarray(0, csrDer.length - 1) : csrDer; // force padding
    const padded = der.toString('base64');
    expect(padded.endsWith('=')).toBe(true);
    expect(decodeCsrInput(Buffer.from(padded.replace(/=+$/, '')))).toEqual(der);
  });

  it.each([
    ['empty input', Buffer.alloc(0)],
    ['plain text', Buffer.from('hello world, this is not a CSR')],
    ['base64 that is not DER', Buffer.from(Buffer.from('not der at all').toString('base64'))],
    ['binary garbage', Buffer.from([0x01, 0xff, 0x00, 0x7e, 0x80])],
    ['base64 with a stray character', Buffer.from(b64.slice(0, 40) + '!' + b64.slice(40))],
  ])('badCsr/neither PEM nor DER: %s', (_name, input) => {
    const err = caError(() => decodeCsrInput(input));
    expect(err.kind).toBe('badCsr');
    expect(err.message).toBe('CSR is neither PEM nor DER');
  });

  it('badCsr/PEM of something else', () => {
    const err = caError(() => decodeCsrInput(Buffer.from(pemEncode('CERTIFICATE', csrDer))));
    expect(err.kind).toBe('badCsr');
    expect(err.message).toBe('PEM input contains no CERTIFICATE REQUEST block');
  });

  it('badCsr/two CSR blocks', () => {
    const pem = pemEncode('CERTIFICATE REQUEST', csrDer);
    const err = caError(() => decodeCsrInput(Buffer.from(pem + pem)));
    expect(err.message).toBe('PEM input contains more than one CERTIFICATE REQUEST block');
  });

  it('badCsr/PEM block with broken base64', () => {
    const err = caError(() => decodeCsrInput(Buffer.from('-----BEGIN CERTIFICATE REQUEST-----\n@@@@\n-----END CERTIFICATE REQUEST-----\n')));
    expect(err.kind).toBe('badCsr');
    expect(err.message).toMatch(/invalid base64/);
  });

  it('badCsr/PEM without an END line', () => {
    const err = caError(() => decodeCsrInput(Buffer.from(`-----BEGIN CERTIFICATE REQUEST-----\n${b64}\n`)));
    expect(err.kind).toBe('badCsr');
    expect(err.message).toBe('PEM input has no complete block');
  });
});
