/**
 * Benchmark fixtures: distinct P-256 CSRs (one key per device, as in a real fleet) and a CA
 * hierarchy created through the real bootstrap, so the figures measure fleetca's own code.
 */
import crypto from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { CertificationRequest, CertificationRequestInfo } from '@peculiar/asn1-csr';
import { AlgorithmIdentifier, Name, SubjectPublicKeyInfo } from '@peculiar/asn1-x509';
import { encodeName } from '../src/pki/names.js';

const ECDSA_SHA256 = '1.2.840.10045.4.3.2';

/** A PKCS#10 DER for `cn` with a fresh P-256 key, signed with node's crypto. */
export function makeCsr(cn: string, key = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })): Buffer {
  const spki = key.publicKey.export({ type: 'spki', format: 'der' });
  const info = new CertificationRequestInfo({
    version: 0,
    subject: AsnConvert.parse(encodeName([{ type: 'CN', oid: '2.5.4.3', value: cn }]), Name),
    subjectPKInfo: AsnConvert.parse(spki, SubjectPublicKeyInfo),
  });
  const infoDer = Buffer.from(AsnConvert.serialize(info));
  const sig = crypto.sign('sha256', infoDer, key.privateKey);
  const req = new CertificationRequest({
    certificationRequestInfo: info,
    signatureAlgorithm: new AlgorithmIdentifier({ algorithm: ECDSA_SHA256 }),
    signature: sig.buffer.slice(sig.byteOffset, sig.byteOffset + sig.byteLength) as ArrayBuffer,
  });
  return Buffer.from(AsnConvert.serialize(req));
}

export function makeCsrs(prefix: string, n: number): Array<{ deviceId: string; csr: Buffer }> {
  const out: Array<{ deviceId: string; csr: Buffer }> = [];
  for (let i = 0; i < n; i++) {
    const deviceId = `${prefix}-${i}`;
    out.push({ deviceId, csr: makeCsr(deviceId) });
  }
  return out;
}
