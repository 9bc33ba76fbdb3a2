/**
 * `npm run bench [-- --json] [-- --quick] [-- --only=core,durable,est] [-- --est-profile=<dir>]`: fleetca's performance figures,
 * each the median of ≥ 3 runs and shown beside its floor measured in the same run on this machine.
 *
 *   raw P-256 sign                 node crypto.sign with a cached KeyObject (1 thread; all cores)
 *   issuance floor                 CSR public-key import + verify + one sign (1 thread; all cores)
 *   core issuance                  CSR DER in → certificate DER out through the CA core, no database
 *   durable issuance               the same with the PostgreSQL commit (embedded, machine's), 1/16/64 callers
 *   est                            EST simpleenroll (Basic) / simplereenroll (mTLS) over HTTPS, new TLS per
 *                                  request, 32/256 clients, beside a bare https server (bench/est.ts)
 *   scep                           SCEP PKCSReq over keep-alive HTTP, 32 clients, beside its RSA/ECDSA crypto floor (bench/scep.ts)
 *   ocsp                           OCSP over keep-alive HTTP, 64 connections, 1M certificates in the database, beside a bare
 *                                  node:http server and `openssl ocsp -index` (bench/ocsp.ts; --ocsp-profile=<dir>)
 *   batch                          factory batches (`fleetca batch run`): device CSRs, server keys to encrypted PEM and to
 *                                  PKCS#12, devices/s beside their crypto floors and peak RSS (bench/batch.ts;
 *                                  --batch-size=N, default 2000, 500 with --quick; --batch-runs=N; --batch-modes=csr,pem,p12)
 *   crl                            CRL build + sign of 10k/100k/1M revoked entries from PostgreSQL: seconds and peak RSS,
 *                                  beside `openssl ca -gencrl` (bench/crl.ts; --no-crl-1m skips 1M)
 */
import crypto from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import pg from 'pg';
import { loadConfig } from '../src/config/load.js';
import { FakeClock, systemClock } from '../src/core/clock.js';
import { CertificateAuthority } from '../src/ca/issuance.js';
import { initHierarchy } from '../src/ca/bootstrap.js';
import { buildIssuerRuntime, type IssuerRuntime } from '../src/ca/issuers.js';
import type { CaStore, CrlStore } from '../src/ca/ports.js';
import { InlineCryptoEngine, WorkerCryptoEngine } from '../src/signing/crypto-pool.js';
import { FileKeyStore } from '../src/signing/key-store.js';
import { decodeCsr } from '../src/pki/csr.js';
import { openEmbeddedCluster } from '../src/store/embedded.js';
import { PgStore } from '../src/store/pg-store.js';
import { defaultMigrationsDir, runMigrations } from '../src/store/migrate.js';
import { makeCsrs } from './fixtures.js';
import { MemoryStore } from './memory-store.js';
import { floorIssue, onWorkers, rawSignLoop, type RawCsr } from './floors.js';
import { estSection, type CpuShares, type LoadRow } from './est.js';
import { median } from './load-util.js';
import { scepSection } from './scep.js';
import { ocspSection } from './ocsp.js';
import { crlSection, type CrlRow } from './crl.js';
import { batchSection } from './batch.js';

const args = process.argv.slice(2);
const JSON_OUT = args.includes('--json');
const QUICK = args.includes('--quick');
const onlyArg = args.find((a) => a.startsWith('--only='));
const ONLY = onlyArg ? new Set(onlyArg.slice(7).split(',')) : null;
const RUNS = 3;
const inFlightArg = args.find((a) => a.startsWith('--max-in-flight='));
const MAX_IN_FLIGHT = inFlightArg ? Number(inFlightArg.slice(16)) : undefined;
const gatherArg = args.find((a) => a.startsWith('--gather-ms='));
const GATHER_MS = gatherArg ? Number(gatherArg.slice(12)) : undefined;
const profArg = args.find((a) => a.startsWith('--est-profile='));
const EST_PROFILE = profArg ? path.resolve(profArg.slice(14)) : undefined;
const ocspProfArg = args.find((a) => a.startsWith('--ocsp-profile='));
const OCSP_PROFILE = ocspProfArg ? path.resolve(ocspProfArg.slice(15)) : undefined;
const batchSizeArg = args.find((a) => a.startsWith('--batch-size='));
const BATCH_SIZE = batchSizeArg ? Number(batchSizeArg.slice(13)) : undefined;
const batchRunsArg = args.find((a) => a.startsWith('--batch-runs='));
const batchModesArg = args.find((a) => a.startsWith('--batch-modes='));
const THREADS = os.availableParallelism();
const config = loadConfig(path.resolve('ca-config'));

/** A table row: every figure has a name, runs and median; load rows (est, scep) add latency and CPU shares. */
type Row = Pick<LoadRow, 'name' | 'unit' | 'median' | 'runs' | 'floor' | 'ratio'> & Partial<Pick<LoadRow, 'p50Ms' | 'p99Ms' | 'errors' | 'cpu'>> & Partial<Pick<CrlRow, 'peakRssMb'>>;
const rows: Row[] = [];
/** Notes of the sections (ocsp, crl), printed under the table. */
const sectionNotes: string[] = [];
const floors = new Map<string, number>();
const log = (s: string) => process.stderr.write(s + '\n');


async function measure(name: string, fn: () => Promise<number> | number, floorName?: string): Promise<number> {
  const runs: number[] = [];
  for (let i = 0; i < RUNS; i++) runs.push(await fn());
  const m = median(runs);
  const row: Row = { name, unit: 'ops/s', median: Math.round(m), runs: runs.map(Math.round) };
  if (floorName) {
    const f = floors.get(floorName)!;
    row.floor = floorName;
    row.ratio = Math.round((m / f) * 1000) / 1000;
  }
  rows.push(row);
  log(`  ${name}: ${Math.round(m)}/s  runs=${runs.map(Math.round).join(',')}${row.ratio !== undefined ? `  ratio=${row.ratio}` : ''}`);
  return m;
}

function rawCsrs(list: Array<{ csr: Buffer }>): RawCsr[] {
  return list.map(({ csr }) => {
    const d = decodeCsr(csr);
    const jwk = crypto.createPublicKey({ key: d.spkiDer, format: 'der', type: 'spki' }).export({ format: 'jwk' });
    return { info: d.certificationRequestInfoDer, sig: d.signature, jwk: { kty: 'EC' as const, crv: String(jwk.crv), x: String(jwk.x), y: String(jwk.y) } };
  });
}

/** A CA hierarchy created by the real bootstrap on `store`; keys in a temp dir. */
async function bootstrap(store: CaStore & CrlStore, keysDir: string) {
  const keys = new FileKeyStore(keysDir, 'bench-passphrase');
  const engine = new InlineCryptoEngine();
  const r = await initHierarchy({ config, store, crypto: engine, keys, clock: systemClock, publicUrl: 'http://localhost:8080' });
  await engine.close();
  return { keys, issuers: r.issuers };
}

/** Issuers re-registered on a worker pool, as `fleetca serve` does. */
async function workerIssuers(issuers: Map<string, IssuerRuntime>, keys: FileKeyStore, engine: WorkerCryptoEngine) {
  const out = new Map<string, IssuerRuntime>();
  for (const [name, i] of issuers) out.set(name, buildIssuerRuntime(i.record, await engine.addKey(name, keys.load(name)!), 'http://localhost:8080'));
  return out;
}

/** Issues every CSR with `concurrency` callers in flight; returns certificates/s. */
async function issueAll(ca: CertificateAuthority, csrs: Array<{ deviceId: string; csr: Buffer }>, concurrency: number): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < csrs.length) {
        const c = csrs[next++]!;
        await ca.issueFromCsr({ profile: 'camera', deviceId: c.deviceId, csrDer: c.csr, actor: 'bench', via: 'bench', approved: true });
      }
    }),
  );
  return csrs.length / ((performance.now() - t0) / 1000);
}

async function main() {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'fleetca-bench-'));
  chmodSync(tmp, 0o711); // as root, the embedded cluster runs as the postgres user
  const n = QUICK ? 600 : 3000;
  log(`fleetca bench: ${THREADS} cores, node ${process.version}, ${RUNS} runs each${QUICK ? ' (quick)' : ''}`);
  // the crypto floors and the CSR pool serve the core and durable sections only
  if (!ONLY || ONLY.has('core') || ONLY.has('durable')) await issuanceSections(tmp, n);
  if (!ONLY || ONLY.has('scep')) await scepSection({ tmp, quick: QUICK, runs: RUNS, cores: THREADS, log, record: (r) => rows.push(r) });
  if (!ONLY || ONLY.has('est')) await estSection({ tmp, quick: QUICK, runs: RUNS, cores: THREADS, log, record: (r) => rows.push(r), ...(EST_PROFILE ? { profileDir: EST_PROFILE } : {}) });
  const note = (s: string) => sectionNotes.push(s);
  if (!ONLY || ONLY.has('ocsp')) await ocspSection({ tmp, quick: QUICK, runs: RUNS, cores: THREADS, log, note, record: (r) => rows.push(r), ...(OCSP_PROFILE ? { profileDir: OCSP_PROFILE } : {}) });
  if (!ONLY || ONLY.has('batch')) {
    await batchSection({
      tmp,
      quick: QUICK,
      runs: batchRunsArg ? Number(batchRunsArg.slice(13)) : RUNS,
      cores: THREADS,
      size: BATCH_SIZE ?? (QUICK ? 500 : 2000),
      ...(batchModesArg ? { modes: batchModesArg.slice(14).split(',') } : {}),
      log,
      note,
      record: (r) => rows.push(r),
    });
  }
  if (!ONLY || ONLY.has('crl')) await crlSection({ tmp, quick: QUICK, runs: RUNS, log, note, record: (r) => rows.push(r), with1m: !args.includes('--no-crl-1m') });

  rmSync(tmp, { recursive: true, force: true });
  printResults();
}

async function issuanceSections(tmp: string, n: number) {
  log('generating CSRs…');
  const pool = makeCsrs('bench', n * 2);
  const raw = rawCsrs(pool);
  const caKey = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const caKeyPem = caKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const tbs = crypto.randomBytes(420);

  // ---------------------------------------------------------------- floors
  log('floors');
  const signN = QUICK ? 5000 : 20000;
  floors.set('raw P-256 sign, 1 thread', await measure('raw P-256 sign, 1 thread', () => {
    const t0 = performance.now();
    rawSignLoop(caKey, tbs, signN);
    return signN / ((performance.now() - t0) / 1000);
  }));
  floors.set(`raw P-256 sign, ${THREADS} threads`, await measure(`raw P-256 sign, ${THREADS} threads`, () => onWorkers('sign', THREADS, signN, raw, caKeyPem)));
  floors.set('issuance floor, 1 thread', await measure('issuance floor, 1 thread', () => {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) floorIssue(raw[i]!, caKey, tbs);
    return n / ((performance.now() - t0) / 1000);
  }));
  floors.set(`issuance floor, ${THREADS} threads`, await measure(`issuance floor, ${THREADS} threads`, () => onWorkers('floor', THREADS, Math.floor(n / THREADS), raw, caKeyPem)));

  // ---------------------------------------------------------------- core issuance, no database
  if (!ONLY || ONLY.has('core')) {
    log('core issuance (no database)');
    const mem = new MemoryStore();
    const { keys, issuers } = await bootstrap(mem, path.join(tmp, 'keys-mem'));
    const inline = new InlineCryptoEngine();
    const inlineIssuers = new Map<string, IssuerRuntime>();
    for (const [name, i] of issuers) inlineIssuers.set(name, buildIssuerRuntime(i.record, await inline.addKey(name, keys.load(name)!), 'http://localhost:8080'));
    let round = 0;
    const freshDevices = async (store: MemoryStore, list: typeof pool) => {
      for (const c of list) await store.addDevice({ id: c.deviceId, profile: 'camera' }, new Date());
    };
    await measure('core issuance, 1 thread (inline crypto)', async () => {
      const store = new MemoryStore();
      for (const i of await mem.listIssuers()) await store.upsertIssuer(i);
      const list = pool.slice(0, n).map((c) => ({ ...c, deviceId: `${c.deviceId}` }));
      await freshDevices(store, list);
      const ca = new CertificateAuthority({ config, store, crypto: inline, issuers: inlineIssuers, clock: systemClock });
      round++;
      return issueAll(ca, list, 1);
    }, 'issuance floor, 1 thread');
    const engine = new WorkerCryptoEngine(THREADS);
    const wIssuers = await workerIssuers(issuers, keys, engine);
    await measure(`core issuance, ${THREADS} worker threads, 64 callers`, async () => {
      const store = new MemoryStore();
      const list = pool.slice(0, n);
      await freshDevices(store, list);
      const ca = new CertificateAuthority({ config, store, crypto: engine, issuers: wIssuers, clock: systemClock });
      return issueAll(ca, list, 64);
    }, `issuance floor, ${THREADS} threads`);
    await engine.close();
    await inline.close();
    void round;
  }

  // ---------------------------------------------------------------- durable issuance
  if (!ONLY || ONLY.has('durable')) {
    const targets: Array<{ label: string; open: () => Promise<{ conn: pg.PoolConfig; done: () => Promise<void> }> }> = [
      {
        label: 'embedded PostgreSQL',
        open: async () => {
          const dir = path.join(tmp, 'embedded');
          const cluster = await openEmbeddedCluster(dir, () => undefined);
          return { conn: cluster.connectionConfig, done: () => cluster.release() };
        },
      },
    ];
    if (!args.includes('--no-system-pg')) {
      targets.push({
        label: "machine's PostgreSQL",
        open: async () => {
          const admin = new pg.Client({ connectionString: 'postgresql://postgres@127.0.0.1:5432/postgres' });
          await admin.connect();
          const db = `fleetca_bench_${process.pid}`;
          await admin.query(`DROP DATABASE IF EXISTS ${db}`);
          await admin.query(`CREATE DATABASE ${db}`);
          return {
            conn: { connectionString: `postgresql://postgres@127.0.0.1:5432/${db}` },
            done: async () => {
              await admin.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
              await admin.end();
            },
          };
        },
      });
    }
    for (const t of targets) {
      log(`durable issuance on the ${t.label}`);
      let target: Awaited<ReturnType<typeof t.open>>;
      try {
        target = await t.open();
      } catch (e) {
        log(`  skipped: ${(e as Error).message}`);
        continue;
      }
      const store = await PgStore.open({ poolConfig: { ...target.conn, max: 16 }, ...(MAX_IN_FLIGHT ? { maxInFlight: MAX_IN_FLIGHT } : {}), ...(GATHER_MS !== undefined ? { gatherMs: GATHER_MS } : {}) });
      await runMigrations(store.pool, defaultMigrationsDir());
      const { keys, issuers } = await bootstrap(store, path.join(tmp, `keys-${t.label.length}`));
      const engine = new WorkerCryptoEngine(THREADS);
      const wIssuers = await workerIssuers(issuers, keys, engine);
      const ca = new CertificateAuthority({ config, store, crypto: engine, issuers: wIssuers, clock: new FakeClock(Date.now()) });
      let batch = 0;
      for (const concurrency of [1, 16, 64]) {
        const count = concurrency === 1 ? Math.min(n, QUICK ? 150 : 500) : n;
        await measure(`durable issuance, ${t.label}, ${concurrency} callers`, async () => {
          // fresh devices and keys each run (a key is certified for one device only)
          const list = makeCsrs(`d${concurrency}-${batch++}`, count);
          await store.pool.query(
            `INSERT INTO devices (id, macs, profile, state, created_at, updated_at) SELECT unnest($1::text[]), '{}', 'camera', 'active', now(), now()`,
            [list.map((c) => c.deviceId)],
          );
          return issueAll(ca, list, concurrency);
        }, `issuance floor, ${THREADS} threads`);
      }
      const check = await store.pool.query<{ n: string }>("SELECT count(*) AS n FROM certificates WHERE profile = 'camera'");
      log(`  ${check.rows[0]!.n} certificates committed`);
      await engine.close();
      await store.close();
      await target.done();
    }
  }
}

/** Client / server (event loop + crypto workers) / PostgreSQL shares of all cores, in %. */
function cpuCell(c: CpuShares): string {
  const p = (x: number) => (Number.isNaN(x) ? '?' : (x * 100).toFixed(0));
  return `${p(c.client)}/${p(c.serverMain + c.serverWorkers)}/${p(c.postgres)} %`;
}

function printResults() {
  const load = rows.some((r) => r.p50Ms !== undefined);
  const notes = rows.some((r) => r.name.startsWith('EST') || r.name.startsWith('bare https'))
    ? [
        `est: server (event loop + ${THREADS} crypto workers), PostgreSQL and the load client (a separate process) share the same ${THREADS} cores; ` +
          'the floor is a bare node https server with fleetca\'s TLS options answering a fixed body, driven by the same client; ' +
          'every request answered 200 (a failed one aborts the bench); ' +
          "'cpu client/server/pg' is the share of all cores used by the load client, the fleetca (or floor) server process and PostgreSQL during the run",
      ]
    : [];
  notes.push(...sectionNotes);
  const rss = rows.some((r) => r.peakRssMb !== undefined);
  if (JSON_OUT) {
    process.stdout.write(JSON.stringify({ machine: { cores: THREADS, node: process.version }, runs: RUNS, results: rows, ...(notes.length ? { notes } : {}) }, null, 2) + '\n');
  } else {
    const header = ['benchmark', 'median', 'runs', 'floor', 'ratio', ...(load ? ['p50 / p99', 'cpu client/server/pg'] : []), ...(rss ? ['peak RSS'] : [])];
    const body = rows.map((r) => [
      r.name,
      r.unit === 's' ? `${r.median} s` : `${r.median}/s`,
      r.runs.join(' '),
      r.floor ?? '-',
      r.ratio !== undefined ? `${(r.ratio * 100).toFixed(1)} %` : '-',
      ...(load ? [r.p50Ms !== undefined ? `${r.p50Ms} / ${r.p99Ms} ms` : '-', r.cpu ? cpuCell(r.cpu) : '-'] : []),
      ...(rss ? [r.peakRssMb !== undefined ? `${r.peakRssMb} MB` : '-'] : []),
    ]);
    const widths = header.map((_, i) => Math.max(header[i]!.length, ...body.map((b) => b[i]!.length)));
    const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
    process.stdout.write(line(header) + '\n' + widths.map((w) => '-'.repeat(w)).join('  ') + '\n' + body.map(line).join('\n') + '\n');
    for (const note of notes) process.stdout.write(`\nnote: ${note}\n`);
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
