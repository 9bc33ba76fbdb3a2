/**
 * `npx tsx bench/cpu-breakdown.ts [--rounds 3] [--n 4000] [--max-in-flight 2] [--workers 2]`: where the CPU of a
 * durable issuance goes, at 64 callers on the embedded PostgreSQL. Prints, per round, the rate and
 * CPU time per issuance of every thread of this process (event loop, crypto workers, V8 helpers)
 * and of the PostgreSQL processes (from /proc). On a 2-core machine the sum bounds the rate:
 * rate ≤ 2 cores / (CPU per issuance). The figures in the README's performance notes come from it.
 */
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { execSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../src/config/load.js';
import { systemClock } from '../src/core/clock.js';
import { CertificateAuthority } from '../src/ca/issuance.js';
import { initHierarchy } from '../src/ca/bootstrap.js';
import { buildIssuerRuntime, type IssuerRuntime } from '../src/ca/issuers.js';
import { InlineCryptoEngine, WorkerCryptoEngine } from '../src/signing/crypto-pool.js';
import { FileKeyStore } from '../src/signing/key-store.js';
import { openEmbeddedCluster } from '../src/store/embedded.js';
import { PgStore } from '../src/store/pg-store.js';
import { defaultMigrationsDir, runMigrations } from '../src/store/migrate.js';
import { makeCsrs } from './fixtures.js';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const ROUNDS = arg('rounds', 3);
const N = arg('n', 4000);
const MAX_IN_FLIGHT = arg('max-in-flight', 2);
/** Crypto worker threads; 0 = verify and sign on the event loop. */
const WORKERS = arg('workers', os.availableParallelism());

/** CPU milliseconds of each thread of this process, by thread id. */
function threadCpu(): Map<string, number> {
  const m = new Map<string, number>();
  for (const t of readdirSync('/proc/self/task')) {
    try {
      const l = readFileSync(`/proc/self/task/${t}/stat`, 'utf8');
      const f = l.slice(l.lastIndexOf(')') + 2).split(' ');
      m.set(t, (Number(f[11]) + Number(f[12])) * 10);
    } catch {
      // the thread ended
    }
  }
  return m;
}

/** CPU milliseconds of every process of the postgres user (the embedded cluster runs as it). */
function postgresCpu(): number {
  const out = execSync('for p in $(pgrep -u postgres postgres); do cat /proc/$p/stat 2>/dev/null; done').toString();
  let t = 0;
  for (const l of out.trim().split('\n')) {
    const f = l.slice(l.lastIndexOf(')') + 2).split(' ');
    t += Number(f[11]) + Number(f[12]);
  }
  return t * 10;
}

const config = loadConfig(path.resolve('ca-config'));
const tmp = mkdtempSync(path.join(os.tmpdir(), 'fleetca-cpu-'));
chmodSync(tmp, 0o711); // as root, the cluster runs as the postgres user
const cluster = await openEmbeddedCluster(path.join(tmp, 'pg'), () => undefined);
const store = await PgStore.open({ poolConfig: { ...cluster.connectionConfig, max: 16 }, maxInFlight: MAX_IN_FLIGHT });
await runMigrations(store.pool, defaultMigrationsDir());
const keys = new FileKeyStore(path.join(tmp, 'keys'), 'bench');
const boot = await initHierarchy({ config, store, crypto: new InlineCryptoEngine(), keys, clock: systemClock, publicUrl: 'http://localhost:8080' });
const engine = WORKERS > 0 ? new WorkerCryptoEngine(WORKERS) : new InlineCryptoEngine();
const issuers = new Map<string, IssuerRuntime>();
for (const [n, i] of boot.issuers) issuers.set(n, buildIssuerRuntime(i.record, await engine.addKey(n, keys.load(n)!), 'http://localhost:8080'));
const ca = new CertificateAuthority({ config, store, crypto: engine, issuers, clock: systemClock });

for (let round = 0; round < ROUNDS; round++) {
  const list = makeCsrs(`cpu${round}`, N);
  await store.pool.query(
    `INSERT INTO devices (id, macs, profile, state, created_at, updated_at) SELECT unnest($1::text[]), '{}', 'camera', 'active', now(), now()`,
    [list.map((c) => c.deviceId)],
  );
  const th0 = threadCpu();
  const pg0 = postgresCpu();
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (next < list.length) {
        const c = list[next++]!;
        await ca.issueFromCsr({ profile: 'camera', deviceId: c.deviceId, csrDer: c.csr, actor: 'bench', via: 'bench', approved: true });
      }
    }),
  );
  const wall = performance.now() - t0;
  const th1 = threadCpu();
  const pgMs = postgresCpu() - pg0;
  const threads = [...th1].map(([k, v]) => v - (th0.get(k) ?? 0)).filter((v) => v > 20).sort((a, b) => b - a);
  const nodeMs = threads.reduce((a, b) => a + b, 0);
  const us = (ms: number) => ((ms / list.length) * 1000).toFixed(0);
  console.log(
    `round ${round}: ${(list.length / (wall / 1000)).toFixed(0)} certificates/s; CPU per issuance: ` +
      `node ${us(nodeMs)} µs (threads ${threads.map(us).join(' + ')}), PostgreSQL ${us(pgMs)} µs; ` +
      `cores busy ${((nodeMs + pgMs) / wall).toFixed(2)}`,
  );
}
await engine.close();
await store.close();
await cluster.release();
rmSync(tmp, { recursive: true, force: true });
