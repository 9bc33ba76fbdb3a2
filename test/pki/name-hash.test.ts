/**
 * opensslNameHash against `openssl x509 -subject_hash` and opensslOneline against `-nameopt compat`
 * (X509_NAME_oneline, the form FreeRADIUS check_cert_issuer compares), over names that exercise the
 * canonical encoding: case, runs of white space, leading and trailing spaces, multi-valued RDNs, and
 * the string types openssl writes with each string_mask (UTF8String, PrintableString, BMPString,
 * T61String).
 */
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { certificateParts } from '../../src/pki/cert-parts.js';
import { opensslNameHash } from '../../src/pki/name-hash.js';
import { opensslOneline } from '../../src/exports/freeradius.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'fleetca-namehash-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function openssl(args: string[]): string {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** A self-signed certificate whose subject openssl encodes from `subj` with `mask`. */
function certWith(name: string, subj: string, mask: 'utf8only' | 'pkix' | 'nombstr' | 'default', multi = false): string {
  const cfg = path.join(dir, `${name}.cnf`);
  writeFileSync(cfg, `[req]\ndistinguished_name = dn\nstring_mask = ${mask}\nprompt = no\n[dn]\nCN = x\n`);
  const file = path.join(dir, `${name}.pem`);
  openssl(['req', '-x509', '-config', cfg, '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', path.join(dir, `${name}.key`), '-subj', subj, '-utf8', ...(multi ? ['-multivalue-rdn'] : []), '-days', '1', '-out', file]);
  return file;
}

const CASES: Array<[name: string, subj: string, mask: 'utf8only' | 'pkix' | 'nombstr' | 'default', multi?: boolean]> = [
  ['plain', '/O=fleetca/CN=fleetca Device CA', 'utf8only'],
  ['case-and-spaces', '/C=DE/O=  ACME   Devices  GmbH /CN=Camera\tCA   2', 'utf8only'],
  ['printable', '/C=US/O=Example Corp/OU=Fleet/CN=Device CA', 'pkix'],
  ['bmp', '/O=Grüße AG/CN=Gerät CA', 'pkix'],
  ['t61', '/O=Café Ltd/CN=Caméra CA', 'nombstr'],
  ['utf8-non-ascii', '/O=Société/CN=ÉCOLE ÀÉ CA', 'utf8only'],
  ['multi-valued', '/O=fleetca/CN=Zeta CA+OU=Alpha', 'utf8only', true],
  ['serial-and-email', '/serialNumber=SN-0001/emailAddress=PKI@Example.org/CN=Device CA', 'default'],
];

describe('opensslNameHash', () => {
  it.each(CASES)('%s: the same hash as openssl x509 -subject_hash', (name, subj, mask, multi) => {
    const file = certWith(name, subj, mask, multi);
    const expected = openssl(['x509', '-in', file, '-noout', '-subject_hash']).trim();
    const der = new X509Certificate(openssl(['x509', '-in', file])).raw;
    expect(opensslNameHash(certificateParts(der).subjectDer)).toBe(expected);
  });

  it('an empty Name hashes the empty string', () => {
    // SHA-1("") = da39a3ee…; its first four bytes read little-endian
    expect(opensslNameHash(Buffer.from([0x30, 0x00]))).toBe('eea339da');
  });
});

describe('opensslOneline', () => {
  it.each(CASES.filter(([n]) => ['plain', 'printable', 'serial-and-email'].includes(n)))('%s: what -nameopt compat prints', (name) => {
    const file = path.join(dir, `${name}.pem`);
    const expected = openssl(['x509', '-in', file, '-noout', '-subject', '-nameopt', 'compat']).trim().replace(/^subject=/, '');
    const der = new X509Certificate(openssl(['x509', '-in', file])).raw;
    expect(opensslOneline(certificateParts(der).subjectDer)).toBe(expected);
  });

  it('a value outside printable ASCII gives null (OpenSSL escapes it its own way)', () => {
    const der = new X509Certificate(openssl(['x509', '-in', path.join(dir, 'bmp.pem')])).raw;
    expect(opensslOneline(certificateParts(der).subjectDer)).toBeNull();
  });
});
