/**
 * Worker body of the SCEP floor (bench/scep.ts), with no fleetca code in the loop: per operation
 * one raw RSA-2048 private decryption (RSA_NO_PADDING, the RA key), one RSA-2048 PKCS#1 v1.5
 * signature (the RA key: the CertRep), one ECDSA P-256 signature (the device CA key: the
 * certificate) and one RSA-2048 CSR verification (public key imported from JWK, as the issuance
 * floor of bench/floors.ts does). Posts back its loop time and each operation's latency.
 */
import crypto from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';

export interface ScepFloorCsr {
  info: Uint8Array;
  sig: Uint8Array;
  jwk: { kty: 'RSA'; n: string; e: string };
}

export interface ScepFloorJob {
  count: number;
  raKeyPem: string;
  caKeyPem: string;
  /** Ciphertexts to the RA key (PKCS#1 v1.5 of a 16-byte key), cycled. */
  ciphertexts: Uint8Array[];
  csrs: ScepFloorCsr[];
}

const job = workerData as ScepFloorJob;
const raKey = crypto.createPrivateKey(job.raKeyPem);
const caKey = crypto.createPrivateKey(job.caKeyPem);
// about the sizes fleetca signs: a CertRep's signed attributes, a device certificate's TBS
const signedAttrs = crypto.randomBytes(260);
const tbs = crypto.randomBytes(560);

function op(i: number): void {
  crypto.privateDecrypt({ key: raKey, padding: crypto.constants.RSA_NO_PADDING }, job.ciphertexts[i % job.ciphertexts.length]!);
  crypto.sign('sha256', signedAttrs, raKey);
  crypto.sign('sha256', tbs, caKey);
  const c = job.csrs[i % job.csrs.length]!;
  const pub = crypto.createPublicKey({ key: c.jwk, format: 'jwk' });
  if (!crypto.verify('sha256', c.info, pub, c.sig)) throw new Error('scep floor: bad CSR signature');
}

for (let i = 0; i < 20; i++) op(i); // warm-up: JIT, OpenSSL's blinding and Montgomery caches
const latencies = new Float64Array(job.count);
const t0 = performance.now();
for (let i = 0; i < job.count; i++) {
  const s = performance.now();
  op(i);
  latencies[i] = performance.now() - s;
}
parentPort!.postMessage({ ms: performance.now() - t0, latencies });
