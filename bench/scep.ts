/**
 * SCEP PKCSReq end to end (`npx tsx bench/scep.ts [--quick] [--json] [--profile=<dir>]`, or the
 * `scep` section of bench/run.ts): the real fleetca HTTP app (startServer on the embedded
 * PostgreSQL of a fresh data dir initialised by `fleetca init`), driven by a load generator in its
 * own process (bench/scep-client.ts) with 32 concurrent clients, each on one kept-alive plain-HTTP
 * connection, POSTing `/scep?operation=PKIOperation`.
 *
 * Every request is a strongSwan-shaped PKCSReq (test/helpers/scep-vectors.ts: AES-128-CBC envelope
 * to the RA certificate, SHA-256 SignedData) built before the clock starts, from a fresh device: its
 * own RSA-2048 key (fleetca refuses a key certified for another device), a self-signed requester
 * certificate for that key (as strongSwan pki makes), a PKCS#10 whose challengePassword is the
 * device's one-time secret, and a fresh transactionID. Every answer must be HTTP 200 with a CertRep
 * SUCCESS for the request's transactionID (any failure aborts the bench).
 *
 * The floor, measured in the same run between fleetca's runs, on as many worker threads of this
 * process as the machine has cores (as bench/floors.ts measures the issuance floor): per operation
 * one raw RSA-2048 private decryption (the envelope's key transport), one RSA-2048 signature (the
 * CertRep), one ECDSA P-256 signature (the certificate, by the device CA) and one RSA-2048 CSR
 * verification. The ratio is fleetca's requests/s over the floor's operations/s.
 *
 * Requester keys: RSA-2048 key generation costs 100–400 ms of CPU per key here, far too slow for
 * thousands of devices. The keys are built instead from a pool of 1024-bit primes (node's
 * generatePrime), every pair of which is a distinct RSA-2048 modulus: ~80 primes give 3000 keys.
 * The moduli share factors (a batch GCD over them would factor them all), which is fine for load:
 * fleetca sees distinct, valid RSA-2048 public keys, and none of its checks look across keys.
 *
 * Server, its crypto workers, PostgreSQL and the client all share this machine's cores.
 */
import crypto, { type KeyObject } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { SERVICE_KEYS } from '../src/ca/bootstrap.js';
import { createEnrollmentSecrets } from '../src/enrollment/secret-issuer.js';
import { contextTag, encodeBitString, encodeExplicit, encodeInteger, encodeNull, encodeOid, encodeSequence, encodeSetOf, encodeTlv, encodeUtcTime, encodeUtf8String } from '../src/pki/der.js';
import { decodeCsr } from '../src/pki/csr.js';
import { encodeName } from '../src/pki/names.js';
import { OID_ATTR, OID_SIG } from '../src/pki/oids.js';
import { pemDecodeAll } from '../src/pki/pem.js';
import { decodeCertsOnly } from '../src/pki/pkcs7.js';
import { checkMessageDigest, decodeEnvelopedData, decodePkiMessage } from '../src/pki/scep-cms.js';
import { makePkcsReq, rsaPkcs1Decrypt } from '../test/helpers/scep-vectors.js';
import type { CpuShares, LoadRow } from './est.js';
import type { ScepClientItem, ScepClientJob, ScepClientResult } from './scep-client.js';
import type { ScepFloorCsr, ScepFloorJob } from './scep-floor-worker.js';
import { ForkedLoadClient, countStatements, startProfile, ticks, postgresDelta, median, type Ticks , withServedCa, type ServedCa } from './load-util.js';

/** The same options as estSection's (bench/est.ts), so run.ts calls both alike. */
export interface ScepOptions {
  tmp: string;
  quick: boolean;
  runs: number;
  cores: number;
  log: (s: string) => void;
  /** Called with each row as soon as it is measured. */
  record: (row: LoadRow) => void;
  /**
   * Diagnostics: a .cpuprofile of this process's main thread (the server's event loop) per measured
   * fleetca run, and the PostgreSQL statements sent per request (in the log).
   */
  profileDir?: string;
}

const PROFILE = 'camera';
const CONCURRENCY = 32;
const PKI_OPERATION = '/scep?operation=PKIOperation';


function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!;
}

// ------------------------------------------------------------------------------ requester keys

const E = 65537n;

function modInverse(a: bigint, m: bigint): bigint {
  let [r0, r1] = [a % m, m];
  let [s0, s1] = [1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  if (r0 !== 1n) throw new Error('not invertible');
  return ((s0 % m) + m) % m;
}

function b64u(x: bigint): string {
  const hex = x.toString(16);
  return Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex').toString('base64url');
}

/** The RSA private key of modulus p·q, e = 65537, with its CRT parameters. */
function rsaKeyFromPrimes(p: bigint, q: bigint): KeyObject {
  const n = p * q;
  if (n >> 2047n !== 1n) throw new Error('modulus is not 2048 bits');
  const d = modInverse(E, (p - 1n) * (q - 1n));
  return crypto.createPrivateKey({
    key: { kty: 'RSA', n: b64u(n), e: b64u(E), d: b64u(d), p: b64u(p), q: b64u(q), dp: b64u(d % (p - 1n)), dq: b64u(d % (q - 1n)), qi: b64u(modInverse(q, p)) },
    format: 'jwk',
  });
}

/** Distinct RSA-2048 keys from every pair of a growing pool of 1024-bit primes (see the header). */
class RsaKeyFactory {
  private readonly primes: bigint[] = [];
  /** The next pair is (primes[i], primes[j]), j < i. */
  private i = 1;
  private j = 0;

  private async grow(count: number): Promise<void> {
    const fresh = await Promise.all(
      Array.from({ length: count }, () => new Promise<bigint>((resolve, reject) => crypto.generatePrime(1024, { bigint: true }, (e, p) => (e ? reject(e) : resolve(p))))),
    );
    // gcd(e, p − 1) = 1; OpenSSL sets the top two bits, so every product has exactly 2048 bits
    this.primes.push(...fresh.filter((p) => p % E !== 1n));
  }

  private available(): number {
    const n = this.primes.length;
    // pairs (i', j') not yet taken: all pairs among n primes minus those before (i, j)
    return (n * (n - 1)) / 2 - ((this.i * (this.i - 1)) / 2 + this.j);
  }

  async take(count: number): Promise<KeyObject[]> {
    while (this.available() < count) {
      const n = this.primes.length;
      let add = 1;
      while (((n + add) * (n + add - 1)) / 2 - (n * (n - 1)) / 2 < count - this.available()) add++;
      await this.grow(add + 2);
    }
    const out: KeyObject[] = [];
    while (out.length < count) {
      out.push(rsaKeyFromPrimes(this.primes[this.i]!, this.primes[this.j]!));
      if (++this.j === this.i) {
        this.i++;
        this.j = 0;
      }
    }
    return out;
  }

  get primeCount(): number {
    return this.primes.length;
  }
}

// ------------------------------------------------------------------------------ requests

interface Device {
  deviceId: string;
  key: KeyObject;
  csrDer: Buffer;
  item: ScepClientItem;
}

const sha256WithRsa = () => encodeSequence(encodeOid(OID_SIG.sha256WithRsa), encodeNull());

/** A PKCS#10 for CN=<cn> signed with `key` (sha256WithRSAEncryption), carrying `challenge` as challengePassword. */
function rsaCsr(cn: string, key: KeyObject, spki: Buffer, challenge: string): Buffer {
  const attr = encodeSequence(encodeOid(OID_ATTR.challengePassword), encodeSetOf([encodeUtf8String(challenge)]));
  const info = encodeSequence(encodeInteger(0), encodeName([{ type: 'CN', oid: '2.5.4.3', value: cn }]), spki, encodeTlv(contextTag(0, true), attr));
  return encodeSequence(info, sha256WithRsa(), encodeBitString(crypto.sign('sha256', info, key)));
}

/** A self-signed X.509 v3 certificate for CN=<cn> (the SCEP requester's, as strongSwan pki makes one). */
function selfSigned(cn: string, key: KeyObject, spki: Buffer, now: Date): Buffer {
  const name = encodeName([{ type: 'CN', oid: '2.5.4.3', value: cn }]);
  const validity = encodeSequence(encodeUtcTime(new Date(now.getTime() - 3_600_000)), encodeUtcTime(new Date(now.getTime() + 2 * 86_400_000)));
  const serial = encodeInteger(BigInt(`0x${crypto.randomBytes(12).toString('hex')}`) + 1n);
  const tbs = encodeSequence(encodeExplicit(0, encodeInteger(2)), serial, sha256WithRsa(), name, validity, name, spki);
  return encodeSequence(tbs, sha256WithRsa(), encodeBitString(crypto.sign('sha256', tbs, key)));
}

/** A strongSwan-shaped transactionID (40 uppercase hex characters), random. */
const transactionId = () => crypto.randomBytes(20).toString('hex').toUpperCase();

// ------------------------------------------------------------------------------ CPU accounting

// ------------------------------------------------------------------------------ load client, floor

/** The SCEP load client (bench/scep-client.ts). */
class LoadClient extends ForkedLoadClient<ScepClientJob, ScepClientResult> {
  constructor() {
    super(new URL('./scep-client.ts', import.meta.url));
  }
}

/**
 * The floor on `threads` worker threads of this process, `perThread` operations each (worker
 * start-up not counted: fleetca's pool is warm too). Returns operations/s, the slowest worker's
 * loop time, and the latency of single operations.
 */
async function floorOnWorkers(threads: number, perThread: number, base: Omit<ScepFloorJob, 'count'>): Promise<{ rate: number; ms: number; p50Ms: number; p99Ms: number }> {
  const entry = JSON.stringify(new URL('./scep-floor-worker.ts', import.meta.url).href);
  const boot = `(async () => { const { register } = await import('tsx/esm/api'); register(); await import(${entry}); })()
    .catch((e) => { console.error(e); process.exit(1); });`;
  const results = await Promise.all(
    Array.from({ length: threads }, () =>
      new Promise<{ ms: number; latencies: Float64Array }>((resolve, reject) => {
        const w = new Worker(boot, { eval: true, workerData: { ...base, count: perThread } satisfies ScepFloorJob });
        w.once('message', (r: { ms: number; latencies: Float64Array }) => {
          void w.terminate();
          resolve(r);
        });
        w.once('error', reject);
      }),
    ),
  );
  const ms = Math.max(...results.map((r) => r.ms));
  const all = new Float64Array(threads * perThread);
  results.forEach((r, i) => all.set(r.latencies, i * perThread));
  all.sort();
  return { rate: (threads * perThread) / (ms / 1000), ms, p50Ms: percentile(all, 0.5), p99Ms: percentile(all, 0.99) };
}

// ------------------------------------------------------------------------------ the section

export async function scepSection(o: ScepOptions): Promise<void> {
  await withServedCa(o, 'scep-data', (ca) => measureAll(o, ca));
}

async function measureAll(o: ScepOptions, { rt, server, pgPid, cleanup, s0 }: ServedCa): Promise<void> {
  const { log } = o;
  const port = Number(new URL(server.httpUrl).port);
  const raCertDer = pemDecodeAll(rt.dataDir.readCert(SERVICE_KEYS.scepRa))[0]!.der;
  const raPub = new crypto.X509Certificate(raCertDer).publicKey;
  const client = new LoadClient();
  cleanup.push(() => client.close());
  const secretDeps = { store: rt.store, config: rt.config, clock: rt.clock, secretKey: rt.secretKey() };
  const keys = new RsaKeyFactory();

  /** Every run stops starting requests after this long (the ones in flight complete). */
  const seconds = o.quick ? 1.5 : 4;
  let batch = 0;
  /** N fresh devices with a one-time secret each, and their PKCSReq. */
  const makeDevices = async (n: number): Promise<Device[]> => {
    const deviceKeys = await keys.take(n);
    const ids = Array.from({ length: n }, (_, i) => `scep-b${batch}-${i}`);
    batch++;
    // device records in one statement (one by one each would be its own commit)
    await rt.store.pool.query(`INSERT INTO devices (id, macs, profile, state, created_at, updated_at) SELECT unnest($1::text[]), '{}', $2, 'active', now(), now()`, [ids, PROFILE]);
    const secrets = await createEnrollmentSecrets(secretDeps, ids.map((deviceId) => ({ deviceId, profile: PROFILE })), 'bench');
    const now = new Date();
    return ids.map((deviceId, i) => {
      const key = deviceKeys[i]!;
      const spki = crypto.createPublicKey(key).export({ type: 'spki', format: 'der' });
      const csrDer = rsaCsr(deviceId, key, spki, secrets[i]!.secret);
      const requesterCertDer = selfSigned(deviceId, key, spki, now);
      const req = makePkcsReq({ csrDer, requesterCertDer, requesterKey: key, raCertDer, cipher: 'aes128', digest: 'sha256', transactionId: transactionId() });
      return { deviceId, key, csrDer, item: { body: req.der, transactionId: req.transactionId } };
    });
  };
  const job = (devices: Device[], extra: Partial<ScepClientJob> = {}): ScepClientJob => ({
    host: '127.0.0.1',
    port,
    path: PKI_OPERATION,
    items: devices.map((d) => d.item),
    concurrency: CONCURRENCY,
    maxMs: seconds * 1000,
    ...extra,
  });
  const check = (name: string, r: ScepClientResult) => {
    if (r.errors > 0) throw new Error(`${name}: ${r.errors} failed requests (${r.completed} ok), e.g.:\n  ${r.errorSamples.join('\n  ')}`);
  };

  // ---- warm-up (JIT, pools, the RA key load) and the rate that sizes each run to ~`seconds`
  log(`SCEP PKCSReq over HTTP (fleetca on embedded PostgreSQL; the load client is a separate process; ${o.cores} cores shared by server, crypto workers, PostgreSQL and client)`);
  const warmN = o.quick ? 150 : 400;
  const w0 = performance.now();
  const warmDevices = await makeDevices(warmN);
  log(`  warm-up set-up: ${warmN} devices (RSA-2048 keys from ${keys.primeCount} primes, secrets, PKCSReqs) in ${((performance.now() - w0) / 1000).toFixed(1)} s`);
  const w1 = performance.now();
  const wr = await client.run(job(warmDevices, { maxMs: 120_000, samples: 3 }));
  check('warm-up', wr);
  // open a few answers as a device would: the RA's signature, the envelope sealed to the requester, the certificate
  for (const s of wr.samples) {
    const d = warmDevices[s.index]!;
    const msg = decodePkiMessage(Buffer.from(s.body));
    if (!msg.signerCertDer.equals(raCertDer) || !crypto.verify(msg.digestName!, msg.signedAttrsDer, raPub, msg.signature) || !checkMessageDigest(msg, msg.digestName!)) {
      throw new Error(`warm-up: CertRep for ${d.deviceId} is not signed by the RA`);
    }
    const env = decodeEnvelopedData(msg.content!);
    const cek = rsaPkcs1Decrypt(d.key, env.encryptedKey);
    const dec = crypto.createDecipheriv(env.cipher.name, cek, env.iv);
    const [cert] = decodeCertsOnly(Buffer.concat([dec.update(env.encryptedContent), dec.final()]));
    const x = new crypto.X509Certificate(cert!);
    if (!x.subject.split('\n').includes(`CN=${d.deviceId}`) || !x.publicKey.equals(crypto.createPublicKey(d.key))) {
      throw new Error(`warm-up: the certificate for ${d.deviceId} is not for its CN and key (${x.subject})`);
    }
  }
  let rate = wr.completed / (wr.elapsedMs / 1000);
  log(`  warm-up: ${Math.round(rate)}/s (${((performance.now() - w1) / 1000).toFixed(1)} s); CertReps of ${wr.answerBytes} bytes, ${wr.samples.length} opened and checked`);

  // ---- the floor's inputs: the RA and device CA keys of this data dir, 64 of the warm-up's CSRs
  const { keys: keyStore } = rt.keyStore(false);
  const deviceCa = [...rt.ca!.issuers.values()].find((i) => i.record.role === 'device' && i.record.active)!.record.name;
  const pemOf = (name: string) => keyStore.load(name)!.export({ type: 'pkcs8', format: 'pem' }) as string;
  const floorBase: Omit<ScepFloorJob, 'count'> = {
    raKeyPem: pemOf(SERVICE_KEYS.scepRa),
    caKeyPem: pemOf(deviceCa),
    ciphertexts: Array.from({ length: 64 }, () => crypto.publicEncrypt({ key: raPub, padding: crypto.constants.RSA_PKCS1_PADDING }, crypto.randomBytes(16))),
    csrs: warmDevices.slice(0, 64).map((d): ScepFloorCsr => {
      const c = decodeCsr(d.csrDer);
      const jwk = crypto.createPublicKey({ key: c.spkiDer, format: 'der', type: 'spki' }).export({ format: 'jwk' });
      return { info: c.certificationRequestInfoDer, sig: c.signature, jwk: { kty: 'RSA', n: String(jwk.n), e: String(jwk.e) } };
    }),
  };
  const threads = o.cores;
  const probe = await floorOnWorkers(threads, 100, floorBase);
  // each floor run lasts about as long as a fleetca run
  const perThread = Math.max(100, Math.round((probe.rate / threads) * seconds));

  // ---- the measured runs: floor, fleetca, floor, fleetca, … (both see the same conditions)
  const floorName = `SCEP floor (RSA-2048 decrypt + RSA-2048 sign + P-256 sign + RSA CSR verify), ${threads} threads`;
  const name = `SCEP PKCSReq, ${CONCURRENCY} clients`;
  interface Run {
    completed: number;
    elapsedMs: number;
    p50Ms: number;
    p99Ms: number;
    exhausted: boolean;
    share: CpuShares;
    prepMs: number;
    statements: Map<string, number>;
    clientCpuMs: number;
  }
  const statements = o.profileDir ? countStatements() : null;
  if (statements) cleanup.push(() => statements.restore());
  let profiled = 0;
  /** CPU shares of all cores between two snapshots; `clientMs` is the load client's own CPU. */
  const shares = (t0: Ticks | null, t1: Ticks | null, clientMs: number, elapsedMs: number, elu: number): CpuShares => {
    if (!t0 || !t1) return { client: clientMs / (elapsedMs * o.cores), serverMain: NaN, serverWorkers: NaN, postgres: NaN, other: NaN, eventLoopBusy: elu };
    const all = t1.machineTotal - t0.machineTotal;
    const client = clientMs / 10 / all;
    const serverMain = (t1.main - t0.main) / all;
    const serverWorkers = (t1.proc - t0.proc - (t1.main - t0.main)) / all;
    const postgres = postgresDelta(t0, t1) / all;
    const busy = (t1.machineBusy - t0.machineBusy) / all;
    return { client, serverMain, serverWorkers, postgres, other: Math.max(0, busy - client - serverMain - serverWorkers - postgres), eventLoopBusy: elu };
  };
  const floorRun = async (): Promise<Run> => {
    const elu0 = performance.eventLoopUtilization();
    const t0 = ticks(pgPid);
    // worker start-up falls inside the CPU window but outside the timed loop; it is a few % of the run
    const f = await floorOnWorkers(threads, perThread, floorBase);
    const t1 = ticks(pgPid);
    const elu = performance.eventLoopUtilization(elu0).utilization;
    return { completed: threads * perThread, elapsedMs: f.ms, p50Ms: f.p50Ms, p99Ms: f.p99Ms, exhausted: false, share: shares(t0, t1, 0, f.ms, elu), prepMs: 0, statements: new Map(), clientCpuMs: 0 };
  };
  const fleetcaRun = async (i: number, n: number): Promise<Run> => {
    const p0 = performance.now();
    await client.prepare(job(await makeDevices(n)));
    const prepMs = performance.now() - p0;
    const profiler = o.profileDir ? await startProfile() : null;
    statements?.take();
    const elu0 = performance.eventLoopUtilization();
    const t0 = ticks(pgPid);
    const r = await client.go();
    const t1 = ticks(pgPid);
    const elu = performance.eventLoopUtilization(elu0).utilization;
    const sent = statements?.take() ?? new Map<string, number>();
    if (profiler) await profiler.stop(path.join(o.profileDir!, `scep-${String(++profiled).padStart(2, '0')}-run${i}.cpuprofile`));
    check(name, r);
    return { completed: r.completed, elapsedMs: r.elapsedMs, p50Ms: r.p50Ms, p99Ms: r.p99Ms, exhausted: r.exhausted, share: shares(t0, t1, r.cpuMs, r.elapsedMs, elu), prepMs, statements: sent, clientCpuMs: r.cpuMs };
  };

  /** The row of o.runs runs: medians, the ratio to the floor's median, and the diagnostics in the log. */
  const summarise = (rowName: string, unit: string, runs: Run[], floor?: { name: string; median: number }): number => {
    if (runs.some((r) => r.exhausted)) log(`  (${rowName}: a run used all its requests before ${seconds} s)`);
    const rates = runs.map((r) => r.completed / (r.elapsedMs / 1000));
    const m = median(rates);
    const share = (k: keyof CpuShares) => Math.round(median(runs.map((x) => x.share[k])) * 1000) / 1000;
    const row: LoadRow = {
      name: rowName,
      unit,
      median: Math.round(m),
      runs: rates.map(Math.round),
      p50Ms: Math.round(median(runs.map((r) => r.p50Ms)) * 10) / 10,
      p99Ms: Math.round(median(runs.map((r) => r.p99Ms)) * 10) / 10,
      errors: 0,
      cpu: { client: share('client'), serverMain: share('serverMain'), serverWorkers: share('serverWorkers'), postgres: share('postgres'), other: share('other'), eventLoopBusy: share('eventLoopBusy') },
    };
    if (floor) {
      row.floor = floor.name;
      row.ratio = Math.round((m / floor.median) * 1000) / 1000;
    }
    o.record(row);
    const pct = (x: number) => `${(x * 100).toFixed(0)} %`;
    const c = row.cpu;
    const prepS = runs.reduce((a, r) => a + r.prepMs, 0) / 1000;
    log(
      `  ${rowName}: ${row.median}/s  runs=${row.runs.join(',')}  p50=${row.p50Ms} ms p99=${row.p99Ms} ms${row.ratio !== undefined ? `  ratio=${row.ratio}` : ''}\n` +
        `    ${runs.map((r) => r.completed).join(',')} ${unit === 'req/s' ? 'requests' : 'operations'} (set-up ${prepS.toFixed(1)} s); cpu of all ${o.cores} cores: client ${pct(c.client)}, ` +
        `server event loop ${pct(c.serverMain)} (busy ${pct(c.eventLoopBusy)} of the time), other server threads (crypto workers, GC) ${pct(c.serverWorkers)}, postgres ${pct(c.postgres)}, other processes ${pct(c.other)}`,
    );
    // CPU time per request: share of all cores × cores / requests per second
    const ms = (x: number) => ((x * o.cores * 1000) / m).toFixed(2);
    if (!Number.isNaN(c.serverMain)) {
      log(
        `    cpu per ${unit === 'req/s' ? 'request' : 'operation'}: ${ms(c.client + c.serverMain + c.serverWorkers + c.postgres)} ms = client ${ms(c.client)} + server event loop ${ms(c.serverMain)} + ` +
          `other server threads ${ms(c.serverWorkers)} + postgres ${ms(c.postgres)}`,
      );
    }
    if (c.other > 0.1) log(`    (other processes used ${pct(c.other)} of the machine during these runs: the figures are disturbed)`);
    const sent = new Map<string, number>();
    for (const r of runs) for (const [k, v] of r.statements) sent.set(k, (sent.get(k) ?? 0) + v);
    if (sent.size > 0) {
      const n = runs.reduce((a, r) => a + r.completed, 0);
      const total = [...sent.values()].reduce((a, b) => a + b, 0);
      log(`    PostgreSQL statements per request: ${(total / n).toFixed(2)}`);
      for (const [k, v] of [...sent].sort((a, b) => b[1] - a[1])) log(`      ${(v / n).toFixed(2)}  ${k}`);
    }
    return m;
  };

  // fleetca's runs get fresh devices for 1.5× the best rate seen so far (the warm-up's, cold,
  // counted double); a run that uses them all ends early, which the log says, and the next gets more
  rate *= 2;
  const size = (r: number) => Math.min(8000, Math.round(r * seconds * 1.5) + CONCURRENCY);
  const floorRuns: Run[] = [];
  const runs: Run[] = [];
  for (let i = 1; i <= o.runs; i++) {
    floorRuns.push(await floorRun());
    const r = await fleetcaRun(i, size(rate));
    runs.push(r);
    const measured = r.completed / (r.elapsedMs / 1000);
    rate = r.exhausted ? Math.max(rate, measured) * 1.5 : Math.max(...runs.map((x) => x.completed / (x.elapsedMs / 1000)));
  }
  const floorMedian = summarise(floorName, 'ops/s', floorRuns);
  summarise(name, 'req/s', runs, { name: floorName, median: floorMedian });
  log(`  scep section: ${((performance.now() - s0) / 1000).toFixed(0)} s (${keys.primeCount} primes)`);
}

// ------------------------------------------------------------------------------ standalone

/** Client / server (event loop + crypto workers) / PostgreSQL shares of all cores, in % (as run.ts). */
function cpuCell(c: CpuShares): string {
  const p = (x: number) => (Number.isNaN(x) ? '?' : (x * 100).toFixed(0));
  return `${p(c.client)}/${p(c.serverMain + c.serverWorkers)}/${p(c.postgres)} %`;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  const json = args.includes('--json');
  const profArg = args.find((a) => a.startsWith('--profile='));
  const cores = os.availableParallelism();
  const runs = 3;
  const rows: LoadRow[] = [];
  const log = (s: string) => process.stderr.write(s + '\n');
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'fleetca-bench-scep-'));
  chmodSync(tmp, 0o711); // as root, the embedded cluster runs as the postgres user
  log(`fleetca bench scep: ${cores} cores, node ${process.version}, ${runs} runs${quick ? ' (quick)' : ''}`);
  try {
    await scepSection({ tmp, quick, runs, cores, log, record: (r) => rows.push(r), ...(profArg ? { profileDir: path.resolve(profArg.slice(10)) } : {}) });
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  if (json) {
    process.stdout.write(JSON.stringify({ machine: { cores, node: process.version }, runs, results: rows }, null, 2) + '\n');
    return;
  }
  const header = ['benchmark', 'median', 'runs', 'floor', 'ratio', 'p50 / p99', 'errors', 'cpu client/server/pg'];
  const body = rows.map((r) => [
    r.name,
    `${r.median}/s`,
    r.runs.join(' '),
    r.floor ?? '-',
    r.ratio !== undefined ? `${(r.ratio * 100).toFixed(1)} %` : '-',
    `${r.p50Ms} / ${r.p99Ms} ms`,
    String(r.errors),
    cpuCell(r.cpu),
  ]);
  const widths = header.map((_, i) => Math.max(header[i]!.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  process.stdout.write(line(header) + '\n' + widths.map((w) => '-'.repeat(w)).join('  ') + '\n' + body.map(line).join('\n') + '\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main().then(
    () => process.exit(0),
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}
