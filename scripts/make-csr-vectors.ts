/**
 * Regenerates the golden CSR vectors in test/vectors/csr/ (malformed and quirky inputs for
 * decodeCsr/decodeCsrInput). Run once and commit the output; the tests only read the files.
 *
 *   npx tsx scripts/make-csr-vectors.ts
 *
 * Needs openssl on PATH. Vectors that need a valid signature over modified content are re-signed
 * here with the throwaway key (which is not kept).
 */
import { spawnSync } from 'node:child_process';
import { createPrivateKey, randomBytes, sign } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  encodeBitString,
  encodeOctetString,
  encodeOid,
  encodeSequence,
  encodeTlv,
  readChildren,
  readTlv,
  type Tlv,
} from '../src/pki/der.js';

const outDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../test/vectors/csr');
const work = mkdtempSync(path.join(os.tmpdir(), 'csr-vectors-'));

function openssl(args: string[]): void {
  const r = spawnSync('openssl', args, { cwd: work });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr.toString()}`);
}

function write(name: string, data: Buffer): void {
  writeFileSync(path.join(outDir, name), data);
  console.log(`${name.padEnd(28)} ${data.length} bytes`);
}

/** Re-signs a modified CertificationRequestInfo with the P-256 key (ecdsa-with-SHA256). */
function resign(criDer: Buffer, algDer: Buffer, keyPem: Buffer): Buffer {
  const sig = sign('sha256', criDer, createPrivateKey(keyPem));
  return encodeSequence(criDer, algDer, encodeBitString(sig));
}

try {
  mkdirSync(outDir, { recursive: true });

  // a valid P-256 request with a DNS SAN
  openssl([
    'req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'p256.key',
    '-subj', '/CN=vector-device/O=Fleet Test', '-addext', 'subjectAltName=DNS:vector-device.example.com',
    '-outform', 'DER', '-out', 'p256.der',
  ]);
  const valid = readFileSync(path.join(work, 'p256.der'));
  const keyPem = readFileSync(path.join(work, 'p256.key'));
  write('p256-valid.der', valid);

  const top = readTlv(valid, 0, valid.length);
  const [cri, alg, sig] = readChildren(valid, top) as [Tlv, Tlv, Tlv];
  const algDer = valid.subarray(alg.start, alg.end);
  const criKids = readChildren(valid, cri);

  write('empty.der', Buffer.alloc(0));
  write('truncated.der', valid.subarray(0, valid.length - 10));
  write('trailing-data.der', Buffer.concat([valid, Buffer.from('00deadbeef', 'hex')]));

  // last signature octet flipped: still decodes, must not verify
  const flipped = Buffer.from(valid);
  flipped[sig.end - 1]! ^= 0x01;
  write('sig-flipped.der', flipped);

  // random bytes that do not start with a SEQUENCE tag, and ones that do but claim 64 KiB
  const rnd = randomBytes(64);
  rnd[0] = 0x5a;
  write('random.bin', rnd);
  const rndSeq = randomBytes(64);
  rndSeq.set([0x30, 0x82, 0xff, 0xff], 0);
  write('random-seq.bin', rndSeq);

  // BER indefinite length on the outer SEQUENCE
  write('indefinite-length.der', Buffer.concat([Buffer.from([0x30, 0x80]), valid.subarray(top.valueStart), Buffer.from([0, 0])]));

  // CRI length written with one more length octet than needed (BER, not DER)
  const criLen = cri.end - cri.valueStart;
  const nonMinCri = Buffer.concat([Buffer.from([0x30, 0x82, criLen >> 8, criLen & 0xff]), valid.subarray(cri.valueStart, cri.end)]);
  write('non-minimal-length.der', encodeSequence(nonMinCri, algDer, valid.subarray(sig.start, sig.end)));

  // CertificationRequestInfo tagged SET instead of SEQUENCE
  const wrongTag = Buffer.from(valid);
  wrongTag[cri.start] = 0x31;
  write('wrong-tag.der', wrongTag);

  // version 1 (only 0 is defined, RFC 2986 §4.1), correctly signed
  const v1 = encodeSequence(
    Buffer.from([0x02, 0x01, 0x01]),
    ...criKids.slice(1).map((k) => valid.subarray(k.start, k.end)),
  );
  write('version-1.der', resign(v1, algDer, keyPem));

  // the same extension (subjectAltName) requested twice, correctly signed
  const sanExt = encodeSequence(
    encodeOid('2.5.29.17'),
    encodeOctetString(encodeSequence(encodeTlv(0x82, Buffer.from('dup.example.com')))),
  );
  const extReq = encodeSequence(encodeOid('1.2.840.113549.1.9.14'), encodeTlv(0x31, encodeSequence(sanExt, sanExt)));
  const dup = encodeSequence(
    ...criKids.slice(0, 3).map((k) => valid.subarray(k.start, k.end)),
    encodeTlv(0xa0, extReq),
  );
  write('duplicate-extension.der', resign(dup, algDer, keyPem));

  // a certificate where a CSR is expected
  openssl([
    'req', '-x509', '-new', '-key', 'p256.key', '-subj', '/CN=not-a-csr', '-days', '30', '-outform', 'DER', '-out', 'cert.der',
  ]);
  write('certificate.der', readFileSync(path.join(work, 'cert.der')));

  // sha1WithRSAEncryption: decodes, refused as weak by verifyCsrSignature
  openssl([
    'req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'rsa.key', '-sha1', '-subj', '/CN=sha1-device',
    '-outform', 'DER', '-out', 'sha1.der',
  ]);
  write('sha1-rsa.der', readFileSync(path.join(work, 'sha1.der')));
} finally {
  rmSync(work, { recursive: true, force: true });
}
