/**
 * Factory batches (`npm run bench -- --only=batch [--batch-size=N]`): devices/s of `fleetca batch
 * run` on the embedded PostgreSQL, each mode beside its crypto floor measured in the same run on
 * every core, and the batch process's peak RSS.
 *
 *   device CSRs        a manifest of N CSRs (base64 DER, one P-256 key per device); floor: CSR
 *                      public-key import + verify + one signature (bench/floors.ts), all cores
 *   server keys, PEM   N device ids, --keygen server --format pem; floor: P-256 keygen + node's
 *                      encrypted PKCS#8 export (2048 PBKDF2 iterations) + one signature, all cores
 *   server keys, P12   the same with --format p12 at the default 2048 iterations; floor: keygen +
 *                      PBKDF2 (key bag) + the RFC 7292 App. B KDF (MAC key) + one signature
 *
 * The data dir is initialised by `fleetca init` (bench/load-util.ts); each batch runs in a child
 * process (bench/batch-child.ts) that opens the runtime as `fleetca batch run` does (crypto on
 * worker threads) and times runBatch from inside: both manifest passes, every device's files and
 * database rows, manifest.csv, rejects.csv and SHA256SUMS. Peak RSS is the child's VmHWM (node +
 * tsx + runtime + the batch). Each run is a fresh batch of fresh devices and keys.
 * Default N: 2000 (500 with --quick), so the section takes about a minute; the issue's 100,000
 * with --batch-size=100000.
 */
import crypto from 'node:crypto';
import { fork } from 'node:child_process';
import { createWriteStream, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { decodeCsr } from '../src/pki/csr.js';
import { makeCsr } from './fixtures.js';
import { onWorkers, type RawCsr } from './floors.js';
import { median, withInitialisedCa } from './load-util.js';
import type { BatchChildResult } from './batch-child.js';

export interface BatchBenchOptions {
  tmp: string;
  quick: boolean;
  runs: number;
  cores: number;
  /** Devices per batch. */
  size: number;
  /** Which of csr, pem, p12 (default: all). */
  modes?: string[];
  log: (s: string) => void;
  note: (s: string) => void;
  record: (row: BatchRow) => void;
}

export interface BatchRow {
  name: string;
  unit: 'ops/s';
  median: number;
  runs: number[];
  floor?: string;
  ratio?: number;
  /** Peak RSS of the batch process, MB (the highest over the runs); absent for the floors. */
  peakRssMb?: number;
}

const KDF_ITERATIONS = 2048;

/** Runs a batch-floor op on `threads` workers, `perThread` each; operations/s of the slowest worker's loop. */
async function onBatchWorkers(op: 'keygen-pem' | 'keygen-p12', threads: number, perThread: number, keyPem: string): Promise<number> {
  const entry = JSON.stringify(new URL('./batch-floor-worker.ts', import.meta.url).href);
  const boot = `(async () => { const { register } = await import('tsx/esm/api'); register(); await import(${entry}); })()
    .catch((e) => { console.error(e); process.exit(1); });`;
  const times = await Promise.all(
    Array.from({ length: threads }, () =>
      new Promise<number>((resolve, reject) => {
        const w = new Worker(boot, { eval: true, workerData: { op, count: perThread, keyPem, iterations: KDF_ITERATIONS } });
        w.once('message', (ms: number) => {
          void w.terminate();
          resolve(ms);
        });
        w.once('error', reject);
      }),
    ),
  );
  return (threads * perThread) / (Math.max(...times) / 1000);
}

function rawOf(csr: Buffer): RawCsr {
  const d = decodeCsr(csr);
  const jwk = crypto.createPublicKey({ key: d.spkiDer, format: 'der', type: 'spki' }).export({ format: 'jwk' });
  return { info: d.certificationRequestInfoDer, sig: d.signature, jwk: { kty: 'EC', crv: String(jwk.crv), x: String(jwk.x), y: String(jwk.y) } };
}

/** Writes a manifest of `n` rows as a stream; `row(i)` gives each line. */
async function writeManifest(file: string, header: string, n: number, row: (i: number) => string): Promise<void> {
  const ws = createWriteStream(file);
  const write = (s: string) => (ws.write(s) ? Promise.resolve() : new Promise<void>((r) => ws.once('drain', () => r())));
  await write(header + '\n');
  for (let i = 0; i < n; i++) await write(row(i) + '\n');
  await new Promise<void>((resolve, reject) => ws.end((e?: Error | null) => (e ? reject(e) : resolve())));
}

function runChild(args: string[]): Promise<BatchChildResult> {
  return new Promise((resolve, reject) => {
    const p = fork(new URL('./batch-child.ts', import.meta.url), args, { execArgv: ['--import', 'tsx', ...(process.env.FLEETCA_BENCH_PROF ? ['--cpu-prof', '--cpu-prof-dir=' + process.env.FLEETCA_BENCH_PROF] : [])], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let result: BatchChildResult | null = null;
    p.on('message', (m: BatchChildResult) => (result = m));
    p.on('error', reject);
    p.on('exit', (code) => (result && code === 0 ? resolve(result) : reject(new Error(`batch child exited ${code}`))));
  });
}

export async function batchSection(o: BatchBenchOptions): Promise<void> {
  await withInitialisedCa(o, 'batch-data', async ({ rt }) => {
    const { log, cores, runs } = o;
    const n = o.size;
    log(`factory batches: ${n} devices per batch, ${runs} runs per mode, embedded PostgreSQL, ${cores} cores`);
    const dataDir = rt.dataDir.root;
    const work = path.join(o.tmp, 'batch-work');
    mkdirSync(work, { recursive: true });

    // ---------------------------------------------------------------- floors and batches
    // Each run measures its mode's floor right before its batch, so that both see the same machine
    // (this 2-core machine is shared: its speed moves by 2-3x over minutes).
    const caKey = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const caKeyPem = caKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    const floorCsrs = Array.from({ length: 1000 }, (_, i) => rawOf(makeCsr(`floor-${i}`)));
    const perThread = o.quick ? 1000 : 3000;
    const modes = [
      { key: 'csr', label: 'device CSRs', keygen: 'device', format: 'pem', floor: `CSR import + verify + sign, ${cores} threads`, measureFloor: () => onWorkers('floor', cores, perThread, floorCsrs, caKeyPem) },
      { key: 'pem', label: 'server keys, encrypted PEM', keygen: 'server', format: 'pem', floor: `keygen + encrypted PKCS#8 + sign, ${cores} threads`, measureFloor: () => onBatchWorkers('keygen-pem', cores, Math.round(perThread / 3), caKeyPem) },
      {
        key: 'p12',
        label: `server keys, PKCS#12 (${KDF_ITERATIONS} it.)`,
        keygen: 'server',
        format: 'p12',
        floor: `keygen + 2 KDFs (${KDF_ITERATIONS} it.) + sign, ${cores} threads`,
        measureFloor: () => onBatchWorkers('keygen-p12', cores, Math.round(perThread / 10), caKeyPem),
      },
    ] as const;
    for (const [mi, mode] of modes.entries()) {
      if (o.modes && !o.modes.includes(mode.key)) continue;
      const rates: number[] = [];
      const floors: number[] = [];
      let rss = 0;
      for (let run = 0; run < runs; run++) {
        const prefix = `b${mi}r${run}`;
        const manifest = path.join(work, `${prefix}.csv`);
        const g0 = performance.now();
        if (mode.keygen === 'device') await writeManifest(manifest, 'device_id,csr', n, (i) => `${prefix}-${i},${makeCsr(`${prefix}-${i}`).toString('base64')}`);
        else await writeManifest(manifest, 'device_id,serial_number', n, (i) => `${prefix}-${i},SN${i}`);
        if (run === 0) log(`  ${mode.label}: manifest of ${n} rows written in ${((performance.now() - g0) / 1000).toFixed(1)} s`);
        const floor = await mode.measureFloor();
        floors.push(floor);
        const out = path.join(work, `${prefix}-out`);
        const r = await runChild([dataDir, manifest, out, prefix, mode.keygen, mode.format, String(KDF_ITERATIONS)]);
        if (r.issued !== n || r.rejected !== 0) throw new Error(`batch ${prefix}: ${r.issued} issued, ${r.rejected} rejected of ${n}`);
        const rate = n / (r.ms / 1000);
        rates.push(rate);
        rss = Math.max(rss, r.maxRssKb / 1024);
        log(`  ${mode.label}: floor ${Math.round(floor)}/s, batch ${Math.round(rate)}/s (${(r.ms / 1000).toFixed(1)} s), peak RSS ${Math.round(r.maxRssKb / 1024)} MB`);
        rmSync(out, { recursive: true, force: true });
        rmSync(manifest, { force: true });
      }
      const f = median(floors);
      o.record({ name: `floor: ${mode.floor}`, unit: 'ops/s', median: Math.round(f), runs: floors.map(Math.round) });
      const m = median(rates);
      o.record({
        name: `batch, ${mode.label}, ${n} devices`,
        unit: 'ops/s',
        median: Math.round(m),
        runs: rates.map(Math.round),
        floor: `floor: ${mode.floor}`,
        ratio: Math.round((m / f) * 1000) / 1000,
        peakRssMb: Math.round(rss),
      });
    }
    o.note(
      `batch: devices/s of a whole \`fleetca batch run\` (both manifest passes, issuance through the CA core with its durable intent + commit, ` +
        `the output files, manifest.csv and SHA256SUMS) on the embedded PostgreSQL, in a child process with crypto on ${cores} worker threads; ` +
        `peak RSS is that process's VmHWM. Floors: the same crypto in bare node worker threads on all ${cores} cores, each run's measured just before its batch.`,
    );
  });
}
