/**
 * `npx tsx bench/store-commit.ts [--quick]`: durable issuance writes per second through PgStore —
 * recordIntent then commitCertificate per issuance, as the pipeline does, with nothing signed — at
 * 1, 16 and 64 concurrent callers, on the embedded cluster and on the machine's PostgreSQL
 * (postgresql://postgres@127.0.0.1:5432, skipped if down), median of 3 runs. Beside it the floor:
 * one-row INSERT transactions per second on one connection (one durable commit each).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { embeddedConnectionString, openEmbeddedCluster } from '../src/store/embedded.js';
import { runMigrations } from '../src/store/migrate.js';
import { PgStore, type PgStoreOptions } from '../src/store/pg-store.js';

const SYSTEM_ADMIN_URL = 'postgresql://postgres@127.0.0.1:5432/postgres';
const RUNS = 3;

/**
 * Issuances per second: `n` recordIntent + commitCertificate flows spread over `concurrency`
 * callers on a migrated database. Uses an issuer named `bench-ca` (created if missing).
 */
export async function benchStoreCommit(connectionString: string, concurrency: number, n: number, opts: PgStoreOptions = {}): Promise<number> {
  const store = await PgStore.open({ connectionString, ...opts });
  try {
    const issuer = await store.upsertIssuer({
      name: 'bench-ca',
      role: 'device',
      certDer: randomBytes(500),
      ski: randomBytes(20),
      notBefore: new Date(Date.now() - 86_400_000),
      notAfter: new Date(Date.now() + 10 * 365 * 86_400_000),
      active: true,
    });
    const tbs = randomBytes(350);
    let next = 0;
    const caller = async () => {
      while (next < n) {
        next++;
        const serial = '4' + randomBytes(17).toString('hex').slice(1);
        const now = new Date();
        const result = await store.recordIntent(
          { serial, issuerId: issuer.id, deviceId: null, profile: 'camera', tbsDer: tbs, request: { via: 'bench', actor: 'bench' }, createdAt: now },
          { at: now, actor: 'bench', action: 'certificate.sign.begin', target: serial, details: { issuer: 'bench-ca', profile: 'camera' } },
        );
        if (result !== 'recorded') throw new Error('serial collision in the benchmark');
        const der = randomBytes(620);
        await store.commitCertificate(
          {
            serial,
            issuerId: issuer.id,
            deviceId: null,
            profile: 'camera',
            subject: `CN=bench-${serial.slice(0, 8)}`,
            sans: [{ type: 'dns', value: `bench-${serial.slice(0, 8)}.example` }],
            spkiSha256: randomBytes(32),
            fingerprintSha256: createHash('sha256').update(der).digest(),
            notBefore: now,
            notAfter: new Date(now.getTime() + 365 * 86_400_000),
            der,
            popMethod: 'csr',
          },
          { at: new Date(), actor: 'bench', action: 'certificate.issued', target: serial, details: { issuer: 'bench-ca', profile: 'camera' } },
        );
      }
    };
    const t0 = performance.now();
    await Promise.all(Array.from({ length: concurrency }, caller));
    return (n / (performance.now() - t0)) * 1000;
  } finally {
    await store.close();
  }
}

/** The floor: one-row INSERT transactions (each a durable commit) per second on one connection. */
export async function benchBareCommit(connectionString: string, n: number): Promise<number> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    await client.query('CREATE TABLE IF NOT EXISTS bench_floor (id bigserial PRIMARY KEY, payload bytea NOT NULL)');
    const payload = randomBytes(64);
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      await client.query({ name: 'bench_floor_insert', text: 'INSERT INTO bench_floor (payload) VALUES ($1)', values: [payload] });
    }
    return (n / (performance.now() - t0)) * 1000;
  } finally {
    await client.end();
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

interface Target {
  name: string;
  connectionString: string;
  cleanup(): Promise<void>;
}

async function embeddedTarget(): Promise<Target> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fleetca-bench-pg-'));
  const cluster = await openEmbeddedCluster(dir, (m) => process.stderr.write(`[embedded] ${m.trim()}\n`));
  const url = embeddedConnectionString(cluster.connectionConfig);
  return {
    name: 'embedded PG 18',
    connectionString: url,
    async cleanup() {
      await cluster.release();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function systemTarget(): Promise<Target | null> {
  const db = `fleetca_bench_${process.pid}`;
  try {
    await withClient(SYSTEM_ADMIN_URL, (c) => c.query(`CREATE DATABASE ${db}`));
  } catch (err) {
    process.stderr.write(`machine PostgreSQL not reachable (${(err as Error).message}); skipped\n`);
    return null;
  }
  const version = await withClient(SYSTEM_ADMIN_URL, async (c) => (await c.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]!.v);
  return {
    name: `machine PG ${version.split(' ')[0]}`,
    connectionString: `postgresql://postgres@127.0.0.1:5432/${db}`,
    async cleanup() {
      await withClient(SYSTEM_ADMIN_URL, (c) => c.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`));
    },
  };
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const sizes: Array<[number, number]> = quick
    ? [
        [1, 300],
        [16, 2000],
        [64, 4000],
      ]
    : [
        [1, 1000],
        [16, 6000],
        [64, 12000],
      ];
  const floorN = quick ? 500 : 2000;
  const targets: Target[] = [];
  const table: string[][] = [];
  try {
    targets.push(await embeddedTarget());
    const system = await systemTarget();
    if (system) targets.push(system);
    for (const t of targets) {
      const pool = new pg.Pool({ connectionString: t.connectionString, max: 1 });
      await runMigrations(pool);
      await pool.end();
      await benchStoreCommit(t.connectionString, 16, 500); // warm-up: plans, caches, WAL segments
      const floorRuns: number[] = [];
      for (let i = 0; i < RUNS; i++) floorRuns.push(await benchBareCommit(t.connectionString, floorN));
      const floor = median(floorRuns);
      table.push([t.name, 'floor: 1-row INSERT commits, 1 conn', fmt(floor), floorRuns.map(fmt).join(' ')]);
      for (const [c, n] of sizes) {
        const runs: number[] = [];
        for (let i = 0; i < RUNS; i++) runs.push(await benchStoreCommit(t.connectionString, c, n));
        table.push([t.name, `issuances/s, ${c} caller${c > 1 ? 's' : ''}`, fmt(median(runs)), runs.map(fmt).join(' ')]);
        process.stderr.write(`${t.name} c=${c}: ${runs.map(fmt).join(' ')}\n`);
      }
    }
  } finally {
    for (const t of targets) await t.cleanup().catch((e: unknown) => process.stderr.write(`cleanup: ${String(e)}\n`));
  }
  const head = ['database', 'measure', 'median/s', 'runs'];
  const widths = head.map((h, i) => Math.max(h.length, ...table.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i === 2 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ');
  console.log(`durable issuance writes (recordIntent + commitCertificate), ${os.availableParallelism()} CPUs, median of ${RUNS}`);
  console.log(line(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of table) console.log(line(r));
}

function fmt(x: number): string {
  return Math.round(x).toLocaleString('en-US');
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
