/**
 * OCSP responses over HTTP (`npm run bench -- --only=ocsp`): the real fleetca plain-HTTP listener
 * (startServer on the embedded PostgreSQL of a fresh data dir initialised by `fleetca init`, its
 * bare node:http OCSP handler), with 1M certificates of the device CA in the database (100k with
 * --quick), 1 % of them revoked. Driven by a load generator in its own process
 * (bench/ocsp-client.ts): 64 connections, each kept alive, POSTing /ocsp one OCSPRequest at a time
 * (one SHA-1 CertID, no nonce, application/ocsp-request).
 *
 * Access patterns:
 *   hot set       10k distinct serials (2k quick) drawn from all rows, uniformly at random; the
 *                 warm-up requested each of them, so they answer from the in-memory LRU
 *   uniform, pre-signed  uniformly over the first 100k rows (10k quick), whose responses the
 *                 server's own pre-signer (StatusServices.presign) signed and stored before the
 *                 other rows were inserted; the LRU is emptied (evictAll) before each run, so most
 *                 requests read the stored response from PostgreSQL
 *   uniform, all rows    uniformly over all rows: ~90 % are not pre-signed, so they are signed live
 *                 (bounded by ocsp.liveSignatures) and stored back; LRU emptied before each run
 * The answer sources of each row (cache / stored / signed) come from the server's own counter
 * (fleetca_ocsp_responses_total on /metrics) and are logged.
 *
 * Pre-signing all 1M rows takes ~1M P-256 signatures (measured on the 100k subset and logged with
 * its rate): too long for this bench, and the server's 60 s pre-signing timer would otherwise work
 * through the other 900k during the measured runs; it is turned off for the section (the instance's
 * `presign` replaced by a no-op after the explicit pass).
 *
 * Beside:
 *   (a) the floor: a bare node:http server in its own process (bench/ocsp-floor-server.ts)
 *       answering a fixed 500-byte body, driven by the same client, same 64 kept-alive
 *       connections and request bodies (the hot set's); runs interleaved with fleetca's hot-set runs
 *   (b) `openssl ocsp -index` (OpenSSL's reference responder, single process) with an index.txt of
 *       the hot-set certificates, signing with fleetca's own delegated responder key and
 *       certificate (P-256, exported unencrypted into the bench's temp dir). It speaks HTTP/1.0 and
 *       closes every connection after one answer, so the client opens a new connection per
 *       request; measured at 64 clients (one process: the other connections wait in the kernel's
 *       accept queue) and at 4 clients (as in CLIENTS.md §3d).
 * Every answer is HTTP 200 (anything else aborts the bench); after each run the client decodes a
 * sample (successful OCSPResponse, the request's CertID, good/revoked as in the database).
 *
 * Server (event loop + crypto workers), PostgreSQL, the client and the floor or openssl share the
 * machine's cores. The row populating time is logged, outside every measured window.
 */
import { spawn, fork, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { SERVICE_KEYS } from '../src/ca/bootstrap.js';
import { issuerHashes } from '../src/pki/ocsp.js';
import { pemEncode } from '../src/pki/pem.js';
import type { CpuShares, LoadRow } from './est.js';
import { insertCertificates, serialOf } from './cert-rows.js';
import type { OcspClientJob, OcspClientResult } from './ocsp-client.js';
import { ForkedLoadClient, median, postgresDelta, procTicks, startProfile, ticks, withServedCa, type ServedCa, type Ticks } from './load-util.js';

export interface OcspOptions {
  tmp: string;
  quick: boolean;
  runs: number;
  cores: number;
  log: (s: string) => void;
  record: (row: LoadRow) => void;
  /** Lines for the notes under the table. */
  note: (s: string) => void;
  /** Diagnostics: a .cpuprofile of the server's event loop per measured fleetca run. */
  profileDir?: string;
}

const CONCURRENCY = 64;

class LoadClient extends ForkedLoadClient<OcspClientJob, OcspClientResult> {
  constructor() {
    super(new URL('./ocsp-client.ts', import.meta.url));
  }
}

/** YYMMDDHHMMSSZ, as openssl's index.txt wants it. */
function indexTime(d: Date): string {
  return d.toISOString().replace(/^\d\d(\d\d)-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d).*$/, '$1$2$3$4$5$6Z');
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** Waits for `text` in a log file (never probes a port: a bare connect hangs `openssl ocsp`, CLIENTS.md §3d). */
async function waitForLine(file: string, text: string, proc: ChildProcess, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (readFileSync(file, 'utf8').includes(text)) return;
    if (proc.exitCode !== null) throw new Error(`openssl ocsp exited ${proc.exitCode}: ${readFileSync(file, 'utf8').slice(0, 500)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`openssl ocsp did not log "${text}" within ${ms} ms: ${readFileSync(file, 'utf8').slice(0, 500)}`);
}

function stopChild(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => p.kill('SIGKILL'), 3000);
    p.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    p.kill('SIGTERM');
  });
}

/** Counts of fleetca_ocsp_responses_total by source, from the server's /metrics. */
async function ocspSources(httpUrl: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${httpUrl}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith('fleetca_ocsp_responses_total{')) continue;
    const source = /source="([^"]+)"/.exec(line)?.[1] ?? '?';
    const status = /status="([^"]+)"/.exec(line)?.[1] ?? '?';
    const key = status === 'successful' ? source : `${status}`;
    out.set(key, (out.get(key) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)));
  }
  return out;
}

export async function ocspSection(o: OcspOptions): Promise<void> {
  await withServedCa(o, 'ocsp-data', (ca) => measureAll(o, ca));
}

async function measureAll(o: OcspOptions, { rt, server, pgPid, cleanup, s0 }: ServedCa): Promise<void> {
  const { log } = o;
  const port = Number(new URL(server.httpUrl).port);
  const issuer = [...rt.ca!.issuers.values()].find((i) => i.record.role === 'device' && i.record.active)!;
  const sha1 = issuerHashes(issuer.subjectDer, issuer.spkiDer).sha1;
  const ocsp = server.status.ocsp;
  // the explicit pre-signing pass below is the only one (see the header)
  const presignPass = ocsp.presign.bind(ocsp);
  ocsp.presign = () => Promise.resolve(0);

  const total = o.quick ? 100_000 : 1_000_000;
  const presignN = o.quick ? 10_000 : 100_000;
  const hotN = o.quick ? 2_000 : 10_000;
  const label = (n: number) => (n >= 1_000_000 ? `${n / 1_000_000}M` : `${n / 1000}k`);
  const seed = 'ocsp-bench';
  const revokedEvery = 100;
  log(`OCSP over HTTP (fleetca on embedded PostgreSQL, ${label(total)} certificates, 1 % revoked; ${CONCURRENCY} kept-alive connections from a separate client process; ${o.cores} cores shared)`);

  // ---- the database: the pre-signed subset first, then the rest (outside every measured window)
  const revokedAt = new Date(Math.floor(Date.now() / 1000) * 1000 - 86_400_000);
  const spec = { issuerId: issuer.record.id, seed, revokedEvery, revokedAt };
  const p1 = await insertCertificates(rt.store.pool, { ...spec, from: 0, to: presignN });
  const ps0 = performance.now();
  const presigned = await presignPass();
  const presignS = (performance.now() - ps0) / 1000;
  const p2 = await insertCertificates(rt.store.pool, { ...spec, from: presignN, to: total });
  const size = await rt.store.pool.query<{ c: string; o: string }>(
    `SELECT pg_size_pretty(pg_total_relation_size('certificates')) AS c, pg_size_pretty(pg_total_relation_size('ocsp_responses')) AS o`,
  );
  log(
    `  populate: ${label(total)} certificate rows in ${(p1 + p2).toFixed(1)} s (INSERT … SELECT generate_series; certificates ${size.rows[0]!.c}); ` +
      `pre-signing ${presigned} responses of the first ${label(presignN)} rows: ${presignS.toFixed(1)} s = ${Math.round(presigned / presignS)}/s ` +
      `(all ${label(total)} would take ~${Math.round(total / (presigned / presignS))} s; ocsp_responses ${size.rows[0]!.o})`,
  );
  o.note(
    `ocsp: ${label(total)} certificate rows populated in ${(p1 + p2).toFixed(0)} s; the server's pre-signer signed and stored ${presigned} responses in ${presignS.toFixed(1)} s ` +
      `(${Math.round(presigned / presignS)}/s, so ~${Math.round(total / (presigned / presignS))} s for all ${label(total)}): only the first ${label(presignN)} rows are pre-signed`,
  );

  // ---- the request items, in node (same serials as the SQL)
  const t0 = performance.now();
  const serialBytes = (idx: ArrayLike<number>): { serials: Uint8Array; revoked: Uint8Array } => {
    const serials = new Uint8Array(idx.length * 16);
    const revoked = new Uint8Array(idx.length);
    for (let k = 0; k < idx.length; k++) {
      const i = idx[k]!;
      serials.set(Buffer.from(serialOf(seed, i), 'hex'), k * 16);
      revoked[k] = i % revokedEvery === 0 ? 1 : 0;
    }
    return { serials, revoked };
  };
  const hotIdx = new Set<number>();
  while (hotIdx.size < hotN) hotIdx.add(Math.floor(Math.random() * total));
  const hot = serialBytes([...hotIdx]);
  const range = (n: number) => Uint32Array.from({ length: n }, (_, i) => i);
  const subset = serialBytes(range(presignN));
  const all = serialBytes(range(total));
  log(`  request items (serials of ${label(total)} rows, computed in node): ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  // ---- the client, the floor, openssl ocsp
  const client = new LoadClient();
  cleanup.push(() => client.close());
  const floor = fork(new URL('./ocsp-floor-server.ts', import.meta.url), [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  cleanup.push(() => stopChild(floor));
  const floorPort = await new Promise<number>((resolve, reject) => {
    floor.once('message', (m: { port: number }) => resolve(m.port));
    floor.once('exit', (c) => reject(new Error(`floor server exited ${c}`)));
  });

  const dir = path.join(o.tmp, 'ocsp-openssl');
  mkdirSync(dir, { recursive: true });
  const { keys } = rt.keyStore(false);
  const responderName = SERVICE_KEYS.ocsp(issuer.record.name);
  writeFileSync(path.join(dir, 'ca.pem'), pemEncode('CERTIFICATE', issuer.record.certDer));
  writeFileSync(path.join(dir, 'responder.pem'), rt.dataDir.readCert(responderName));
  writeFileSync(path.join(dir, 'responder.key'), keys.load(responderName)!.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600 });
  const expiry = indexTime(new Date(Date.now() + 365 * 86_400_000));
  const lines: string[] = [];
  [...hotIdx].forEach((i) => {
    const serial = serialOf(seed, i).toUpperCase();
    lines.push(i % revokedEvery === 0 ? `R\t${expiry}\t${indexTime(revokedAt)},keyCompromise\t${serial}\tunknown\t/CN=d${i}` : `V\t${expiry}\t\t${serial}\tunknown\t/CN=d${i}`);
  });
  writeFileSync(path.join(dir, 'index.txt'), lines.join('\n') + '\n');
  writeFileSync(path.join(dir, 'index.txt.attr'), 'unique_subject = no\n');
  const sslPort = await freePort();
  const sslLog = path.join(dir, 'ocsp.log');
  const logFd = openSync(sslLog, 'w');
  const openssl = spawn(
    'openssl',
    ['ocsp', '-index', 'index.txt', '-port', String(sslPort), '-rsigner', 'responder.pem', '-rkey', 'responder.key', '-CA', 'ca.pem', '-ndays', '1'],
    { cwd: dir, stdio: ['ignore', logFd, logFd] },
  );
  closeSync(logFd);
  cleanup.push(() => stopChild(openssl));
  await waitForLine(sslLog, 'waiting for OCSP client connections', openssl, 20_000);

  const seconds = o.quick ? 1.5 : 4;
  const job = (p: number, items: { serials: Uint8Array; revoked: Uint8Array }, extra: Partial<OcspClientJob> = {}): OcspClientJob => ({
    host: '127.0.0.1',
    port: p,
    path: '/ocsp',
    nameHash: sha1.nameHash,
    keyHash: sha1.keyHash,
    serials: items.serials,
    revoked: items.revoked,
    draws: 200_000,
    seed: Math.floor(Math.random() * 2 ** 31),
    concurrency: CONCURRENCY,
    maxMs: seconds * 1000,
    connectionPerRequest: false,
    check: true,
    ...extra,
  });
  const check = (name: string, r: OcspClientResult) => {
    if (r.errors > 0) throw new Error(`${name}: ${r.errors} failed requests (${r.completed} answered), e.g.:\n  ${r.errorSamples.join('\n  ')}`);
  };

  // ---- warm-up: every hot serial once (from PostgreSQL, then cached), the floor and openssl briefly
  const w0 = performance.now();
  const wr = await client.run(job(port, hot, { draws: hotN * 6, stopAtEnd: true, maxMs: 300_000 }));
  check('warm-up', wr);
  check('warm-up floor', await client.run(job(floorPort, hot, { maxMs: 1000, check: false })));
  check('warm-up openssl', await client.run(job(sslPort, hot, { port: sslPort, path: '/', maxMs: 1000, connectionPerRequest: true, concurrency: 4 })));
  log(
    `  warm-up: ${wr.completed} requests over ${wr.distinct} hot serials at ${Math.round(wr.completed / (wr.elapsedMs / 1000))}/s (${((performance.now() - w0) / 1000).toFixed(1)} s); ` +
      `answers of ${wr.answerBytes} bytes, ${wr.checked} decoded and checked (${JSON.stringify(wr.statuses)}); LRU holds ${ocsp.cacheSize}`,
  );

  // ---- runs
  interface Run {
    r: OcspClientResult;
    share: CpuShares;
    sources: Map<string, number>;
  }
  let profiled = 0;
  const shares = (t0: Ticks | null, t1: Ticks | null, child: { pid: number; t0: number; t1: number } | null, r: OcspClientResult, elu: number): CpuShares => {
    if (!t0 || !t1) return { client: r.cpuMs / (r.elapsedMs * o.cores), serverMain: NaN, serverWorkers: NaN, postgres: NaN, other: NaN, eventLoopBusy: elu };
    const all = t1.machineTotal - t0.machineTotal;
    const client = r.cpuMs / 10 / all;
    // a child server (floor, openssl): its own ticks; fleetca: this process's main thread and the rest
    const serverMain = child ? (child.t1 - child.t0) / all : (t1.main - t0.main) / all;
    const serverWorkers = child ? 0 : (t1.proc - t0.proc - (t1.main - t0.main)) / all;
    const postgres = postgresDelta(t0, t1) / all;
    const busy = (t1.machineBusy - t0.machineBusy) / all;
    return { client, serverMain, serverWorkers, postgres, other: Math.max(0, busy - client - serverMain - serverWorkers - postgres), eventLoopBusy: child ? NaN : elu };
  };
  const runOnce = async (name: string, i: number, j: OcspClientJob, childPid: number | null, before?: () => void): Promise<Run> => {
    await client.prepare(j);
    before?.();
    const src0 = childPid === null ? await ocspSources(server.httpUrl) : new Map<string, number>();
    const profiler = o.profileDir && childPid === null ? await startProfile() : null;
    const elu0 = performance.eventLoopUtilization();
    const c0 = childPid !== null ? procTicks(`/proc/${childPid}/stat`) : 0;
    const t0 = ticks(pgPid);
    const r = await client.go();
    const t1 = ticks(pgPid);
    const c1 = childPid !== null ? procTicks(`/proc/${childPid}/stat`) : 0;
    const elu = performance.eventLoopUtilization(elu0).utilization;
    if (profiler) await profiler.stop(path.join(o.profileDir!, `ocsp-${String(++profiled).padStart(2, '0')}-${name.replace(/[^\w]+/g, '-')}-${i}.cpuprofile`));
    check(name, r);
    const sources = new Map<string, number>();
    if (childPid === null) {
      const src1 = await ocspSources(server.httpUrl);
      for (const [k, v] of src1) if (v - (src0.get(k) ?? 0) > 0) sources.set(k, v - (src0.get(k) ?? 0));
    }
    if (r.wrapped) log(`    (${name} run ${i}: the client got through its ${j.draws} drawn requests and reused them)`);
    return { r, share: shares(t0, t1, childPid !== null ? { pid: childPid, t0: c0, t1: c1 } : null, r, elu), sources };
  };
  const summarise = (name: string, runs: Run[], floor?: { name: string; median: number }): number => {
    const rates = runs.map((x) => x.r.completed / (x.r.elapsedMs / 1000));
    const m = median(rates);
    const share = (k: keyof CpuShares) => Math.round(median(runs.map((x) => x.share[k])) * 1000) / 1000;
    const row: LoadRow = {
      name,
      unit: 'req/s',
      median: Math.round(m),
      runs: rates.map(Math.round),
      p50Ms: Math.round(median(runs.map((x) => x.r.p50Ms)) * 100) / 100,
      p99Ms: Math.round(median(runs.map((x) => x.r.p99Ms)) * 100) / 100,
      errors: runs.reduce((a, x) => a + x.r.errors, 0),
      cpu: { client: share('client'), serverMain: share('serverMain'), serverWorkers: share('serverWorkers'), postgres: share('postgres'), other: share('other'), eventLoopBusy: share('eventLoopBusy') },
    };
    if (floor) {
      row.floor = floor.name;
      row.ratio = Math.round((m / floor.median) * 1000) / 1000;
    }
    o.record(row);
    const pct = (x: number) => (Number.isNaN(x) ? '?' : `${(x * 100).toFixed(0)} %`);
    const c = row.cpu;
    const src = new Map<string, number>();
    for (const x of runs) for (const [k, v] of x.sources) src.set(k, (src.get(k) ?? 0) + v);
    const n = [...src.values()].reduce((a, b) => a + b, 0);
    log(
      `  ${name}: ${row.median}/s  runs=${row.runs.join(',')}  p50=${row.p50Ms} ms p99=${row.p99Ms} ms${row.ratio !== undefined ? `  ratio=${row.ratio}` : ''}\n` +
        `    ${runs.map((x) => x.r.completed).join(',')} requests, ${runs.map((x) => x.r.distinct).join(',')} distinct serials drawn, ${runs.reduce((a, x) => a + x.r.checked, 0)} answers decoded and checked` +
        `${n > 0 ? `; answered from ${[...src].map(([k, v]) => `${k} ${((v / n) * 100).toFixed(1)} %`).join(', ')}` : ''}\n` +
        `    cpu of all ${o.cores} cores: client ${pct(c.client)}, server ${pct(c.serverMain)}${Number.isNaN(c.eventLoopBusy) ? '' : ` (event loop, busy ${pct(c.eventLoopBusy)} of the time) + other server threads ${pct(c.serverWorkers)}`}, postgres ${pct(c.postgres)}, other processes ${pct(c.other)}`,
    );
    const ms = (x: number) => ((x * o.cores * 1000) / m).toFixed(3);
    if (!Number.isNaN(c.serverMain)) log(`    cpu per request: client ${ms(c.client)} ms + server ${ms(c.serverMain + c.serverWorkers)} ms + postgres ${ms(c.postgres)} ms`);
    if (c.other > 0.1) log(`    (other processes used ${pct(c.other)} of the machine during these runs: the figures are disturbed)`);
    return m;
  };

  const floorName = `bare node:http floor, fixed 500 B, ${CONCURRENCY} keep-alive`;
  const hotName = `OCSP hot set (${label(hotN)} serials, LRU), ${CONCURRENCY} keep-alive`;
  const floorRuns: Run[] = [];
  const hotRuns: Run[] = [];
  for (let i = 1; i <= o.runs; i++) {
    floorRuns.push(await runOnce(floorName, i, job(floorPort, hot, { check: false }), floor.pid!));
    hotRuns.push(await runOnce(hotName, i, job(port, hot), null));
  }
  const floorMedian = summarise(floorName, floorRuns);
  const floorRef = { name: floorName, median: floorMedian };
  const hotMedian = summarise(hotName, hotRuns, floorRef);

  const sslRates: number[] = [];
  for (const c of [CONCURRENCY, 4]) {
    const name = `openssl ocsp -index (${label(hotN)} serials), new connection per request, ${c} clients`;
    const runs: Run[] = [];
    for (let i = 1; i <= o.runs; i++) runs.push(await runOnce(name, i, job(sslPort, hot, { path: '/', connectionPerRequest: true, concurrency: c, draws: 50_000 }), openssl.pid!));
    sslRates.push(summarise(name, runs, floorRef));
  }
  const sslBest = Math.max(...sslRates);

  const uniform = async (name: string, items: { serials: Uint8Array; revoked: Uint8Array }) => {
    const runs: Run[] = [];
    // the LRU emptied before each run: the requests go to PostgreSQL (stored response) or are signed
    for (let i = 1; i <= o.runs; i++) runs.push(await runOnce(name, i, job(port, items, { draws: 400_000 }), null, () => ocsp.evictAll()));
    return summarise(name, runs, floorRef);
  };
  const storedMedian = await uniform(`OCSP uniform over the ${label(presignN)} pre-signed, LRU emptied, ${CONCURRENCY} keep-alive`, subset);
  const allMedian = await uniform(`OCSP uniform over all ${label(total)} (${Math.round((1 - presignN / total) * 100)} % not pre-signed), LRU emptied, ${CONCURRENCY} keep-alive`, all);

  const x = (v: number) => `${(v / sslBest).toFixed(1)}×`;
  o.note(
    `ocsp: fleetca vs the best openssl ocsp -index figure (${Math.round(sslBest)}/s, connection per request: it answers HTTP/1.0 and closes): ` +
      `hot set ${x(hotMedian)}, uniform pre-signed ${x(storedMedian)}, uniform all ${x(allMedian)} (targets: ≥ 60 % of the bare floor and ≥ 5× openssl)`,
  );
  log(`  fleetca / openssl ocsp (best): hot ${x(hotMedian)}, uniform pre-signed ${x(storedMedian)}, uniform all ${x(allMedian)}`);
  log(`  ocsp section: ${((performance.now() - s0) / 1000).toFixed(0)} s`);
}
