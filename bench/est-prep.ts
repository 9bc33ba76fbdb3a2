/**
 * The EST bench's credentials, made in a process of their own (bench/est.ts forks it), as an admin
 * or a factory batch makes them in production: devices with a fresh P-256 key and CSR, then either
 * a one-time secret each (Basic) or a current certificate each, issued through the CA core (mTLS
 * re-enrollment). It opens the runtime on the server's data dir (the embedded PostgreSQL is shared).
 *
 * Why not in the server's process: the set-up between runs went through the same store and CA code
 * as the enrollments with other shapes of data, and V8 threw away optimised code of the server's
 * hot path (pg-store's flush, usableSecretsOf, …: "wrong map" deopts) and compiled it again during
 * the next measured run (perf: 6-9 % of the server's CPU on compiler threads in every Basic run).
 *
 * Messages (one at a time, load-util ForkedChild): { kind: 'basic' | 'mtls', n, tag } →
 * { type: 'devices', value } or { type: 'error', message }.
 */
import crypto from 'node:crypto';
import pino from 'pino';
import { readEnv } from '../src/config/env.js';
import { createEnrollmentSecrets } from '../src/enrollment/secret-issuer.js';
import { openRuntime, type Runtime } from '../src/main/runtime.js';
import { contextTag, encodeBitString, encodeInteger, encodeOid, encodeSequence, encodeTlv } from '../src/pki/der.js';
import { encodeName } from '../src/pki/names.js';
import { pemEncode } from '../src/pki/pem.js';

export interface PrepRequest {
  kind: 'basic' | 'mtls';
  n: number;
  /** Makes the device ids unique: est-<tag>-<i>. */
  tag: string;
}

/** One device's credentials: secret for Basic, certPem for mTLS. */
export interface PreparedDevice {
  deviceId: string;
  csrB64: string;
  keyPem: string;
  secret?: string;
  certPem?: string;
}

const PROFILE = 'camera';
const ECDSA_SHA256 = '1.2.840.10045.4.3.2';

/** A PKCS#10 for CN=<deviceId> with a fresh P-256 key (same DER as fixtures.makeCsr, built directly: ~10× faster). */
function makeDevice(deviceId: string): PreparedDevice {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const info = encodeSequence(
    encodeInteger(0),
    encodeName([{ type: 'CN', oid: '2.5.4.3', value: deviceId }]),
    publicKey.export({ type: 'spki', format: 'der' }),
    encodeTlv(contextTag(0, true)),
  );
  const csr = encodeSequence(info, encodeSequence(encodeOid(ECDSA_SHA256)), encodeBitString(crypto.sign('sha256', info, privateKey)));
  return { deviceId, csrB64: csr.toString('base64'), keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
}

async function main(): Promise<void> {
  const [dataDir, passphrase] = process.argv.slice(2);
  if (!dataDir || !passphrase) throw new Error('usage: est-prep.ts DATA_DIR PASSPHRASE');
  const env = { ...readEnv(), dataDir, databaseUrl: undefined, keyPassphrase: passphrase, logLevel: 'warn', fault: undefined };
  // listening from the start: a request sent while the runtime opens waits for it, it is not lost
  const opened = openRuntime({ env, dataDir, workers: false, poolSize: 8, log: pino({ level: 'warn' }, pino.destination({ dest: '/dev/null', sync: true })) });
  let chain: Promise<unknown> = opened;
  process.on('message', (r: PrepRequest) => {
    chain = chain.then(async () => {
      try {
        process.send!({ type: 'devices', value: await prepare(await opened, r) });
      } catch (e) {
        process.send!({ type: 'error', message: (e as Error).stack ?? String(e) });
      }
    });
  });
  process.on('disconnect', () => {
    void opened.then((rt) => rt.close()).finally(() => process.exit(0));
  });
  await opened;
}

/** N devices with fresh keys, their records (one statement: one by one each would be its own commit), and their credentials. */
async function prepare(rt: Runtime, r: PrepRequest): Promise<PreparedDevice[]> {
  const ca = rt.ca;
  if (!ca) throw new Error(`${rt.dataDir.root} is not initialised`);
  const devices = Array.from({ length: r.n }, (_, i) => makeDevice(`est-${r.tag}-${i}`));
  await rt.store.pool.query(`INSERT INTO devices (id, macs, profile, state, created_at, updated_at) SELECT unnest($1::text[]), '{}', $2, 'active', now(), now()`, [
    devices.map((d) => d.deviceId),
    PROFILE,
  ]);
  if (r.kind === 'basic') {
    const secretDeps = { store: rt.store, config: rt.config, clock: rt.clock, secretKey: rt.secretKey() };
    const secrets = await createEnrollmentSecrets(secretDeps, devices.map((d) => ({ deviceId: d.deviceId, profile: PROFILE })), 'bench');
    devices.forEach((d, i) => (d.secret = secrets[i]!.secret));
    return devices;
  }
  // certificates through the CA core, 64 callers (its group commit)
  let next = 0;
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (next < devices.length) {
        const d = devices[next++]!;
        const c = await ca.issueFromCsr({ profile: PROFILE, deviceId: d.deviceId, csrDer: Buffer.from(d.csrB64, 'base64'), actor: 'bench', via: 'bench', approved: true });
        d.certPem = pemEncode('CERTIFICATE', c.der);
      }
    }),
  );
  return devices;
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
