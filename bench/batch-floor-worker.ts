/**
 * Worker body of the factory-batch floors (bench/batch.ts), with no fleetca code in the loop:
 *   keygen-pem   P-256 key generation + node's encrypted PKCS#8 export (PBES2, AES-256-CBC, OpenSSL's
 *                default 2048 PBKDF2 iterations) + one P-256 signature (the certificate)
 *   keygen-p12   P-256 key generation + PBKDF2-HMAC-SHA256 (key bag) + the RFC 7292 App. B KDF
 *                (MAC key), both at `iterations`, + one P-256 signature: a PKCS#12 bundle's crypto
 */
import crypto from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';

const { op, count, keyPem, iterations } = workerData as { op: 'keygen-pem' | 'keygen-p12'; count: number; keyPem: string; iterations: number };
const caKey = crypto.createPrivateKey(keyPem);
const tbs = crypto.randomBytes(420);

/** RFC 7292 App. B.2 with SHA-256, one output block (what a 32-byte MAC key needs). */
function appB(password: string, salt: Buffer, n: number): Buffer {
  const v = 64;
  const rep = (b: Buffer) => Buffer.alloc(v * Math.ceil(b.length / v)).map((_, i) => b[i % b.length]!);
  const pw = Buffer.alloc(password.length * 2 + 2);
  for (let i = 0; i < password.length; i++) pw.writeUInt16BE(password.charCodeAt(i), i * 2);
  let a = crypto.createHash('sha256').update(Buffer.alloc(v, 3)).update(rep(salt)).update(rep(pw)).digest();
  for (let r = 1; r < n; r++) a = crypto.hash('sha256', a, 'buffer');
  return a;
}

const t0 = performance.now();
for (let i = 0; i < count; i++) {
  const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  if (op === 'keygen-pem') {
    privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'bench password' });
  } else {
    crypto.pbkdf2Sync('bench password', crypto.randomBytes(16), iterations, 32, 'sha256');
    appB('bench password', crypto.randomBytes(16), iterations);
  }
  crypto.sign('sha256', tbs, caKey);
}
parentPort!.postMessage(performance.now() - t0);
