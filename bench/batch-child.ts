/**
 * One factory batch in its own process (bench/batch.ts forks it through tsx), as `fleetca batch
 * run` runs it: a runtime opened on the bench's data dir with crypto on worker threads, then
 * runBatch over a manifest file into an output folder. Reports the batch's own time and the
 * process's peak RSS (VmHWM of /proc/self/status: not resourceUsage().maxRSS, which Linux carries
 * over from the parent across fork + execve).
 *
 * argv: <data dir> <manifest> <out dir> <batch id> <keygen device|server> <format pem|p12> <kdf iterations>
 * env (for investigations): FLEETCA_BENCH_CONCURRENCY (devices in flight, default 64),
 * FLEETCA_BENCH_MEMORY=1 (memory figures on stderr at the end) or =snapshot (and a heap snapshot);
 * FLEETCA_BENCH_PROF=<dir> (read by bench/batch.ts: a .cpuprofile of each thread of the process in <dir>).
 */
import { createReadStream, readFileSync } from 'node:fs';
import { pino } from 'pino';
import { readEnv } from '../src/config/env.js';
import { openRuntime } from '../src/main/runtime.js';
import { runBatch } from '../src/bulk/runner.js';
import type { BatchFormat, BatchKeygen } from '../src/bulk/ports.js';

export interface BatchChildResult {
  /** runBatch, ms (both manifest passes, every device, the final files). */
  ms: number;
  devices: number;
  issued: number;
  rejected: number;
  maxRssKb: number;
}

function vmHwmKb(): number {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'latin1'));
  if (!m) throw new Error('no VmHWM in /proc/self/status');
  return Number(m[1]);
}

const [dataDir, manifest, outDir, batchId, keygen, format, iterations] = process.argv.slice(2) as [string, string, string, string, BatchKeygen, BatchFormat, string];
const env = { ...readEnv(), dataDir, databaseUrl: undefined, keyPassphrase: 'bench-passphrase', logLevel: 'warn', fault: undefined };
const rt = await openRuntime({ env, dataDir, workers: true, log: pino({ level: 'warn' }, pino.destination({ dest: '/dev/null', sync: true })) });
try {
  const t0 = performance.now();
  const r = await runBatch(
    { ca: rt.ca!, store: rt.store, config: rt.config, clock: rt.clock, secretKey: () => rt.secretKey(), crypto: rt.crypto },
    {
      manifest: () => createReadStream(manifest),
      manifestName: 'bench.csv',
      batchId,
      outDir,
      profile: 'camera',
      keygen,
      format,
      ...(keygen === 'server' ? { password: 'bench key password, long enough' } : {}),
      kdfIterations: Number(iterations),
      secrets: false,
      strict: false,
      concurrency: Number(process.env.FLEETCA_BENCH_CONCURRENCY ?? 64),
      actor: 'bench',
    },
  );
  const ms = performance.now() - t0;
  if (process.env.FLEETCA_BENCH_MEMORY) {
    const m = process.memoryUsage();
    if (process.env.FLEETCA_BENCH_MEMORY === 'snapshot') (await import('node:v8')).writeHeapSnapshot(`${outDir}.heapsnapshot`);
    process.stderr.write(`memory at the end: rss ${m.rss >> 20} MB, heap ${m.heapUsed >> 20}/${m.heapTotal >> 20} MB, external ${m.external >> 20} MB, VmHWM ${vmHwmKb() >> 10} MB\n`);
  }
  const result: BatchChildResult = { ms, devices: r.batch.devices.done, issued: r.counts.issued, rejected: r.rejects.length, maxRssKb: vmHwmKb() };
  await new Promise<void>((resolve) => process.send!(result, () => resolve()));
} finally {
  await rt.close();
}
process.exit(0);
