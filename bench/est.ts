/**
 * EST simpleenroll end to end (`npm run bench -- --only=est`): the real fleetca HTTPS app
 * (startServer on the embedded PostgreSQL of a fresh data dir initialised by `fleetca init`),
 * driven by a load generator in its own process (bench/est-client.ts), a new TLS connection per
 * request, at 32 and 256 concurrent clients:
 *
 *   Basic     POST /.well-known/est/simpleenroll, a one-time secret per request (HTTP Basic)
 *   mTLS      POST /.well-known/est/simplereenroll, the device's current certificate as TLS
 *             client certificate, a CSR for the same subject and key (profile camera allows reuse)
 *
 * Each figure sits beside its floor measured in the same run by the same client with the same
 * concurrency, body size, headers and client certificates: a bare `https.createServer` with
 * fleetca's own TLS options (tlsOptions: same key, certificate, CA names, client certificate
 * requested) answering a fixed body. Plus one keep-alive pair (Basic, 32 clients).
 *
 * Server, its crypto workers, PostgreSQL and the client all share this machine's cores.
 */
import { writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { tlsOptions } from '../src/main/server.js';
import { pemEncode } from '../src/pki/pem.js';
import type { ClientItem, ClientJob, ClientResult } from './est-client.js';
import type { PrepRequest, PreparedDevice } from './est-prep.js';
import { ForkedChild, ForkedLoadClient, countStatements, startProfile, ticks, postgresDelta, median , withServedCa, type ServedCa } from './load-util.js';

export interface LoadRow {
  name: string;
  unit: string;
  median: number;
  runs: number[];
  floor?: string;
  ratio?: number;
  /** Medians over the runs of each run's p50 and p99 request latency. */
  p50Ms: number;
  p99Ms: number;
  /** Failed requests over all runs: always 0 (any failure aborts the bench with examples). */
  errors: number;
  /**
   * Where the machine's CPU went during the run, as shares of all cores (medians over the runs):
   * the load client, the server's event loop (main thread), its crypto workers, PostgreSQL, and
   * anything else on the machine; plus how busy the event loop was (wall time in callbacks).
   */
  cpu: CpuShares;
}

export interface CpuShares {
  client: number;
  serverMain: number;
  serverWorkers: number;
  postgres: number;
  other: number;
  eventLoopBusy: number;
}

export interface EstOptions {
  tmp: string;
  quick: boolean;
  runs: number;
  cores: number;
  log: (s: string) => void;
  /** Called with each row as soon as it is measured. */
  record: (row: LoadRow) => void;
  /**
   * Diagnostics: a .cpuprofile of this process's main thread (the server's event loop) per measured
   * run, one of the load client (client/), the PostgreSQL statements sent per request, and the
   * CLOCK_MONOTONIC window of each run (runs.json) to cut a system-wide `perf record -k CLOCK_MONOTONIC`.
   */
  profileDir?: string;
}

/** The forked process that makes the runs' credentials (bench/est-prep.ts). */
class PrepProcess extends ForkedChild {
  constructor(dataDir: string, passphrase: string) {
    super(new URL('./est-prep.ts', import.meta.url), 'est-prep', { args: [dataDir, passphrase] });
  }

  devices(kind: PrepRequest['kind'], n: number, tag: string): Promise<PreparedDevice[]> {
    return this.call({ kind, n, tag } satisfies PrepRequest, 'devices');
  }
}

/** The EST load client (bench/est-client.ts). */
class LoadClient extends ForkedLoadClient<ClientJob, ClientResult> {
  constructor(profileDir?: string) {
    super(new URL('./est-client.ts', import.meta.url), profileDir ? ['--cpu-prof', `--cpu-prof-dir=${path.join(profileDir, 'client')}`] : []);
  }
}

export async function estSection(o: EstOptions): Promise<void> {
  await withServedCa(o, 'est-data', (ca) => measureAll(o, ca));
}

async function measureAll(o: EstOptions, { rt, server, pgPid, cleanup, s0 }: ServedCa): Promise<void> {
  const { log } = o;
  const fleetcaPort = Number(new URL(server.httpsUrl).port);
  // the floor: fleetca's TLS options, the request body read, a fixed answer of the size of fleetca's
  // (a base64 certs-only PKCS#7; set from the warm-up's answers)
  let floorBody = Buffer.alloc(700, 'A');
  const floor = https.createServer(tlsOptions(rt), (req, res) => {
    req.on('data', () => undefined);
    req.on('end', () => {
      res.writeHead(200, { 'Content-Type': 'application/pkcs7-mime; smime-type=certs-only', 'Content-Transfer-Encoding': 'base64', 'Content-Length': floorBody.length });
      res.end(floorBody);
    });
  });
  await new Promise<void>((resolve) => floor.listen(0, '127.0.0.1', resolve));
  cleanup.push(() => {
    const closed = new Promise<void>((resolve) => floor.close(() => resolve()));
    floor.closeAllConnections();
    return closed;
  });
  const floorPort = (floor.address() as AddressInfo).port;
  const root = [...rt.ca!.issuers.values()].find((i) => i.record.role === 'root')!;
  const caPem = pemEncode('CERTIFICATE', root.record.certDer);
  const client = new LoadClient(o.profileDir);
  cleanup.push(() => client.close());
  // the credentials are made in a process of their own (bench/est-prep.ts says why); closed
  // before the runtime (cleanup runs in reverse), so the embedded PostgreSQL stops with it
  const prep = new PrepProcess(rt.dataDir.root, rt.env.keyPassphrase!);
  cleanup.push(() => prep.close());

  /** Every run stops starting requests after this long (the ones in flight complete). */
  const seconds = o.quick ? 1.5 : 4;
  let batch = 0;
  /** N devices with a one-time secret each: Basic requests. */
  const basicItems = async (n: number): Promise<ClientItem[]> => {
    const devices = await prep.devices('basic', n, `b${batch++}`);
    return devices.map((d) => ({ body: d.csrB64, authorization: `Basic ${Buffer.from(`${d.deviceId}:${d.secret!}`).toString('base64')}` }));
  };
  /** N devices with a current certificate (issued through the CA core, 64 callers): re-enroll requests. */
  const mtlsItems = async (n: number): Promise<{ items: ClientItem[]; identities: NonNullable<ClientJob['identities']> }> => {
    const devices = await prep.devices('mtls', n, `m${batch++}`);
    return { items: devices.map((d, i) => ({ body: d.csrB64, identity: i })), identities: devices.map((d) => ({ certPem: d.certPem!, keyPem: d.keyPem })) };
  };

  const job = (port: number, p: string, concurrency: number, items: ClientItem[], extra: Partial<ClientJob>): ClientJob => ({
    host: '127.0.0.1',
    port,
    path: p,
    caPem,
    servername: 'localhost',
    verifyServer: false,
    items,
    cycle: false,
    concurrency,
    keepAlive: false,
    maxMs: seconds * 1000,
    expectStatus: 200,
    ...extra,
  });

  const check = (name: string, r: ClientResult) => {
    if (r.errors > 0) throw new Error(`${name}: ${r.errors} failed requests (${r.completed} ok), e.g.:\n  ${r.errorSamples.join('\n  ')}`);
  };

  const floors = new Map<string, number>();
  let profiled = 0;
  const statements = o.profileDir ? countStatements() : null;
  const windows: Array<{ name: string; run: number; start: number; end: number; pid: number }> | null = o.profileDir ? [] : null;
  interface Run {
    result: ClientResult;
    share: CpuShares;
    prepMs: number;
    statements: Map<string, number>;
  }

  /**
   * Waits (at most 20 s) until the audit sealer has chained every audit row written so far: the
   * set-up's rows (a `secret.created` per secret, the issuance rows of the certificates mTLS runs
   * renew) are set-up work, and sealing them inside the measured window charged them to the
   * enrollments (a 2 s seal pass over ~2,000 set-up rows at the start of every run).
   */
  const settleAudit = async () => {
    const until = performance.now() + 20_000;
    while (performance.now() < until) {
      const { rows } = await rt.store.pool.query<{ n: string }>('SELECT count(*) AS n FROM audit_log WHERE seq IS NULL');
      if (Number(rows[0]!.n) === 0) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    log('  (the audit sealer did not catch up with the set-up within 20 s)');
  };

  /** One run: `prepare` (fresh secrets, certificates; the client's TLS contexts) before the clock starts. */
  const runOnce = async (name: string, i: number, prepare: () => Promise<ClientJob>): Promise<Run> => {
    const p0 = performance.now();
    await client.prepare(await prepare());
    await settleAudit();
    const prepMs = performance.now() - p0;
    const profiler = o.profileDir ? await startProfile() : null;
    statements?.take();
    const elu0 = performance.eventLoopUtilization();
    const t0 = ticks(pgPid);
    const mono0 = process.hrtime.bigint();
    const r = await client.go();
    const mono1 = process.hrtime.bigint();
    const t1 = ticks(pgPid);
    const elu = performance.eventLoopUtilization(elu0).utilization;
    const sent = statements?.take() ?? new Map<string, number>();
    // CLOCK_MONOTONIC windows of the runs, to cut a system-wide profile (perf record -k CLOCK_MONOTONIC)
    windows?.push({ name, run: i, start: Number(mono0) / 1e9, end: Number(mono1) / 1e9, pid: process.pid });
    if (profiler) await profiler.stop(path.join(o.profileDir!, `${String(++profiled).padStart(2, '0')}-${name.replace(/[^\w]+/g, '-')}-${i}.cpuprofile`));
    check(name, r);
    let share: CpuShares;
    if (t0 && t1) {
      const all = t1.machineTotal - t0.machineTotal; // ticks of all cores together
      const clientShare = r.cpuMs / 10 / all;
      const serverMain = (t1.main - t0.main) / all;
      const serverWorkers = (t1.proc - t0.proc - (t1.main - t0.main)) / all;
      const postgres = postgresDelta(t0, t1) / all;
      const busy = (t1.machineBusy - t0.machineBusy) / all;
      share = { client: clientShare, serverMain, serverWorkers, postgres, other: Math.max(0, busy - clientShare - serverMain - serverWorkers - postgres), eventLoopBusy: elu };
    } else {
      share = { client: r.cpuMs / (r.elapsedMs * o.cores), serverMain: NaN, serverWorkers: NaN, postgres: NaN, other: NaN, eventLoopBusy: elu };
    }
    return { result: r, share, prepMs, statements: sent };
  };

  /** The row of o.runs runs: medians, the ratio to the floor's median, and the diagnostics in the log. */
  const summarise = (name: string, runs: Run[], floorName?: string): number => {
    const results = runs.map((r) => r.result);
    if (results.some((r) => r.exhausted)) log(`  (${name}: a run used all its requests before ${seconds} s)`);
    const rates = results.map((r) => r.completed / (r.elapsedMs / 1000));
    const m = median(rates);
    const share = (k: keyof CpuShares) => Math.round(median(runs.map((x) => x.share[k])) * 1000) / 1000;
    const row: LoadRow = {
      name,
      unit: 'req/s',
      median: Math.round(m),
      runs: rates.map(Math.round),
      p50Ms: Math.round(median(results.map((r) => r.p50Ms)) * 10) / 10,
      p99Ms: Math.round(median(results.map((r) => r.p99Ms)) * 10) / 10,
      errors: results.reduce((a, r) => a + r.errors, 0),
      cpu: { client: share('client'), serverMain: share('serverMain'), serverWorkers: share('serverWorkers'), postgres: share('postgres'), other: share('other'), eventLoopBusy: share('eventLoopBusy') },
    };
    if (floorName) {
      row.floor = floorName;
      row.ratio = Math.round((m / floors.get(floorName)!) * 1000) / 1000;
    }
    o.record(row);
    const pct = (x: number) => `${(x * 100).toFixed(0)} %`;
    const c = row.cpu;
    const prepS = runs.reduce((a, r) => a + r.prepMs, 0) / 1000;
    log(
      `  ${name}: ${row.median}/s  runs=${row.runs.join(',')}  p50=${row.p50Ms} ms p99=${row.p99Ms} ms${row.ratio !== undefined ? `  ratio=${row.ratio}` : ''}\n` +
        `    ${results.map((r) => r.completed).join(',')} requests (set-up ${prepS.toFixed(1)} s); cpu of all ${o.cores} cores: client ${pct(c.client)}, ` +
        `server event loop ${pct(c.serverMain)} (busy ${pct(c.eventLoopBusy)} of the time), other server threads (crypto workers, GC) ${pct(c.serverWorkers)}, postgres ${pct(c.postgres)}, other processes ${pct(c.other)}`,
    );
    // CPU time per request: share of all cores × cores / requests per second
    const ms = (x: number) => ((x * o.cores * 1000) / m).toFixed(1);
    if (!Number.isNaN(c.serverMain)) {
      log(
        `    cpu per request: ${ms(c.client + c.serverMain + c.serverWorkers + c.postgres)} ms = client ${ms(c.client)} + server event loop ${ms(c.serverMain)} + ` +
          `other server threads ${ms(c.serverWorkers)} + postgres ${ms(c.postgres)}`,
      );
    }
    if (c.other > 0.1) log(`    (other processes used ${pct(c.other)} of the machine during these runs: the figures are disturbed)`);
    const sent = new Map<string, number>();
    for (const r of runs) for (const [k, v] of r.statements) sent.set(k, (sent.get(k) ?? 0) + v);
    if (sent.size > 0) {
      const n = results.reduce((a, r) => a + r.completed, 0);
      const total = [...sent.values()].reduce((a, b) => a + b, 0);
      log(`    PostgreSQL statements per request: ${(total / n).toFixed(2)}`);
      for (const [k, v] of [...sent].sort((a, b) => b[1] - a[1])) log(`      ${(v / n).toFixed(2)}  ${k}`);
    }
    return m;
  };

  /**
   * A floor and the fleetca figure measured against it, their runs interleaved (floor, fleetca,
   * floor, …) so that both see the same conditions; each row is the median of o.runs runs, and any
   * failed request fails the bench. Returns fleetca's median.
   */
  const measurePair = async (floorName: string, floorJob: () => Promise<ClientJob>, name: string, prepare: () => Promise<ClientJob>): Promise<number> => {
    const floorRuns: Run[] = [];
    const runs: Run[] = [];
    for (let i = 1; i <= o.runs; i++) {
      floorRuns.push(await runOnce(floorName, i, floorJob));
      runs.push(await runOnce(name, i, prepare));
    }
    floors.set(floorName, summarise(floorName, floorRuns));
    return summarise(name, runs, floorName);
  };

  const ENROLL = '/.well-known/est/simpleenroll';
  const REENROLL = '/.well-known/est/simplereenroll';
  // ---- warm-up (JIT, pools, caches) and the rate that sizes each run to ~`seconds`
  // Rounds of Basic then mTLS until the server's code is optimised: with 150-400 warm-up requests
  // V8 still compiled ~420 functions with TurboFan during the first measured configuration (Basic,
  // 32 clients), 13-15 % of the server's CPU on its compiler threads (perf) against 0.5-1 % in the
  // floor's runs; the later configurations were already warm, which is why Basic at 32 clients
  // alone looked worse. A server in production runs warm: the figures are of the steady state.
  // (With 4 rounds the full run still compiled during Basic-32: 6.6 / 4.1 / 2.0 % of the server's
  // CPU in its three runs; with 6 the first of them starts warmer.)
  log(`EST over HTTPS (fleetca on embedded PostgreSQL; the load client is a separate process; ${o.cores} cores shared by server, crypto workers, PostgreSQL and client)`);
  const warm = o.quick ? 300 : 500;
  const warmRounds = o.quick ? 3 : 6;
  const w0 = performance.now();
  let wb: ClientResult | undefined;
  let wmr: ClientResult | undefined;
  let wm: Awaited<ReturnType<typeof mtlsItems>> | undefined;
  for (let round = 1; round <= warmRounds; round++) {
    wb = await client.run(job(fleetcaPort, ENROLL, 32, await basicItems(warm), { maxMs: 120_000, verifyServer: round === 1 }));
    check('warm-up Basic', wb);
    wm = await mtlsItems(warm);
    wmr = await client.run(job(fleetcaPort, REENROLL, 32, wm.items, { identities: wm.identities, maxMs: 120_000, verifyServer: round === 1 }));
    check('warm-up mTLS', wmr);
  }
  floorBody = Buffer.alloc(wb!.answerBytes, 'A');
  check('warm-up floor', await client.run(job(floorPort, ENROLL, 32, wm!.items, { identities: wm!.identities, cycle: true, maxMs: 1000, verifyServer: true })));
  const rate = { basic: wb!.completed / (wb!.elapsedMs / 1000), mtls: wmr!.completed / (wmr!.elapsedMs / 1000) };
  log(`  warm-up: ${warmRounds} rounds of ${warm} Basic + ${warm} mTLS; last round Basic ${Math.round(rate.basic)}/s, mTLS ${Math.round(rate.mtls)}/s (${((performance.now() - w0) / 1000).toFixed(1)} s); answers of ${wb!.answerBytes} bytes`);
  // every run, fleetca's and the floor's, stops starting requests after `seconds`; fleetca's runs
  // get fresh credentials for 1.5× the best rate seen so far (the warm-up's last round counted double);
  // a run that uses them all ends early, which the log says
  const size = (r: number, c: number) => Math.min(8000, Math.round(r * seconds * 1.5) + c);
  rate.basic *= 2;
  rate.mtls *= 2;
  // the floor's requests: the same bodies and credentials as fleetca's (the floor consumes nothing)
  const floorBasic = await basicItems(256);
  const floorMtls = await mtlsItems(256);

  for (const concurrency of [32, 256]) {
    rate.basic = Math.max(
      rate.basic,
      await measurePair(
        `bare https floor, new TLS, Basic, ${concurrency} clients`,
        async () => job(floorPort, ENROLL, concurrency, floorBasic, { cycle: true }),
        `EST simpleenroll Basic, new TLS, ${concurrency} clients`,
        async () => job(fleetcaPort, ENROLL, concurrency, await basicItems(size(rate.basic, concurrency)), {}),
      ),
    );
    rate.mtls = Math.max(
      rate.mtls,
      await measurePair(
        `bare https floor, new TLS, client cert, ${concurrency} clients`,
        async () => job(floorPort, REENROLL, concurrency, floorMtls.items, { identities: floorMtls.identities, cycle: true }),
        `EST simplereenroll mTLS, new TLS, ${concurrency} clients`,
        async () => {
          const m = await mtlsItems(size(rate.mtls, concurrency));
          return job(fleetcaPort, REENROLL, concurrency, m.items, { identities: m.identities });
        },
      ),
    );
  }
  await measurePair(
    'bare https floor, keep-alive, Basic, 32 clients',
    async () => job(floorPort, ENROLL, 32, floorBasic, { cycle: true, keepAlive: true }),
    'EST simpleenroll Basic, keep-alive, 32 clients',
    async () => job(fleetcaPort, ENROLL, 32, await basicItems(size(rate.basic * 2, 32)), { keepAlive: true }),
  );
  if (windows) writeFileSync(path.join(o.profileDir!, 'runs.json'), JSON.stringify({ serverPid: process.pid, clientPid: client.pid, windows }, null, 1));
  log(`  est section: ${((performance.now() - s0) / 1000).toFixed(0)} s`);
}
