/**
 * CRL build and signature from PostgreSQL (`npm run bench -- --only=crl`): seconds and peak RSS
 * to publish the device CA's CRL with 10k, 100k and 1M revoked entries (10k and 100k with --quick;
 * 1M skipped with --no-crl-1m), beside `openssl ca -gencrl` on the same entries.
 *
 * The data dir is initialised by `fleetca init` and opened as the server opens it, but not served
 * (a server's CRL publisher would compete for the build lock). The revoked rows are generated in
 * SQL (bench/cert-rows.ts: their CRL entries encoded in SQL byte for byte as crlEntryOf does,
 * checked on a sample), cumulatively: 10k, then 90k more, then 900k more.
 *
 * For each size:
 *   fleetca build    publishCrls of the device CA in a child process (bench/crl-child.ts, forked
 *                    through tsx, a runtime opened as the CLI does: inline crypto): seconds from
 *                    inside (around publishCrls: entries read in pages, the full CRL and its delta
 *                    signed and stored) and the child's peak RSS, VmHWM of /proc/self/status (its
 *                    whole life: node + tsx + runtime + the build; the peak before the build is
 *                    logged too). Not resourceUsage().maxRSS: Linux carries the parent's
 *                    high-water mark into a child's ru_maxrss across fork + execve.
 *   fleetca CLI      `node bin/fleetca.js crl publish --issuer device-ca` (the compiled dist/):
 *                    wall time and peak RSS from /usr/bin/time -v, start-up and shut-down included
 *                    (one run)
 *   openssl          `openssl ca -gencrl` with an index.txt of the same serials, revocation dates
 *                    and reason (keyCompromise), signed by a throwaway P-256 CA (openssl req
 *                    -x509): wall time and peak RSS from /usr/bin/time -v; PEM output
 * Each CRL is checked after its timing: fleetca's with `openssl crl -inform DER -CAfile
 * <device CA> -crlnumber` (signature verified, CRL number) and decoded (src/pki/crl-decode.ts) to
 * count its entries; openssl's decoded and counted too. The ratio is fleetca's time over openssl's
 * (lower is better).
 */
import { fork, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { decodeCrl } from '../src/pki/crl-decode.js';
import { pemDecodeAll, pemEncode } from '../src/pki/pem.js';
import { packageRoot } from '../src/config/env.js';
import { checkCrlEntries, insertCertificates, serialOf } from './cert-rows.js';
import type { CrlChildResult } from './crl-child.js';
import { median, withInitialisedCa, type InitialisedCa } from './load-util.js';

export interface CrlOptions {
  tmp: string;
  quick: boolean;
  runs: number;
  log: (s: string) => void;
  record: (row: CrlRow) => void;
  note: (s: string) => void;
  /** Include the 1M-entry size (default: unless quick). */
  with1m: boolean;
}

export interface CrlRow {
  name: string;
  unit: 's';
  median: number;
  runs: number[];
  floor?: string;
  ratio?: number;
  /** Peak RSS, MB (median over the runs). */
  peakRssMb: number;
}

const label = (n: number) => (n >= 1_000_000 ? `${n / 1_000_000}M` : `${n / 1000}k`);
const round3 = (x: number) => Math.round(x * 1000) / 1000;

/** Runs a command under /usr/bin/time -v: wall seconds and peak RSS (MB) of the command itself. */
function timed(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv }): { seconds: number; rssMb: number; stdout: string; stderr: string } {
  const r = spawnSync('/usr/bin/time', ['-v', cmd, ...args], { ...opts, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr.slice(-1500)}`);
  const wall = /Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)/.exec(r.stderr);
  const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr);
  if (!wall || !rss) throw new Error(`no /usr/bin/time -v figures in: ${r.stderr.slice(-800)}`);
  return { seconds: Number(wall[1] ?? 0) * 3600 + Number(wall[2]) * 60 + Number(wall[3]), rssMb: Number(rss[1]) / 1024, stdout: r.stdout, stderr: r.stderr };
}

function buildInChild(dataDir: string, out: string): Promise<CrlChildResult> {
  return new Promise((resolve, reject) => {
    const p = fork(new URL('./crl-child.ts', import.meta.url), [dataDir, out], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let result: CrlChildResult | null = null;
    p.on('message', (m: CrlChildResult) => (result = m));
    p.on('error', reject);
    p.on('exit', (code) => (result && code === 0 ? resolve(result) : reject(new Error(`CRL child exited ${code}`))));
  });
}

export async function crlSection(o: CrlOptions): Promise<void> {
  await withInitialisedCa(o, 'crl-data', (ca) => measureAll(o, ca));
}

async function measureAll(o: CrlOptions, { rt, s0 }: InitialisedCa): Promise<void> {
  const { log } = o;
  const sizes = o.quick ? [10_000, 100_000] : o.with1m ? [10_000, 100_000, 1_000_000] : [10_000, 100_000];
  log(`CRL build + sign from PostgreSQL (fleetca, embedded PostgreSQL; ${sizes.map(label).join(', ')} revoked entries) beside openssl ca -gencrl`);
  const issuer = [...rt.ca!.issuers.values()].find((i) => i.record.role === 'device' && i.record.active)!;
  const dataDir = rt.dataDir.root;
  const caPem = path.join(o.tmp, 'crl-device-ca.pem');
  writeFileSync(caPem, pemEncode('CERTIFICATE', issuer.record.certDer));
  const seed = 'crl-bench';
  const revokedAt = new Date(Math.floor(Date.now() / 1000) * 1000 - 86_400_000);
  const expiry = new Date(Date.now() + 365 * 86_400_000);
  const indexTime = (d: Date) => d.toISOString().replace(/^\d\d(\d\d)-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d).*$/, '$1$2$3$4$5$6Z');
  const cli = path.join(packageRoot(), 'bin', 'fleetca.js');
  const haveCli = existsSync(path.join(packageRoot(), 'dist', 'main', 'cli.js'));
  if (!haveCli) log('  (no dist/: the CLI row is skipped; `npm run build` makes it)');

  // the throwaway openssl CA (P-256), shared by every size
  const sslDir = path.join(o.tmp, 'crl-openssl');
  mkdirSync(sslDir, { recursive: true });
  const gen = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-subj', '/CN=bench openssl CA', '-days', '30'], { cwd: sslDir, encoding: 'utf8' });
  if (gen.status !== 0) throw new Error(`openssl req: ${gen.stderr}`);
  writeFileSync(
    path.join(sslDir, 'ca.cnf'),
    ['[ca]', 'default_ca = bench', '[bench]', 'database = index.txt', 'crlnumber = crlnumber', 'default_md = sha256', 'default_crl_days = 7', 'unique_subject = no', ''].join('\n'),
  );

  let have = 0;
  const indexLines: string[] = [];
  for (const n of sizes) {
    const z0 = performance.now();
    const popS = await insertCertificates(rt.store.pool, { issuerId: issuer.record.id, seed, from: have, to: n, revokedEvery: 1, revokedAt });
    if (have === 0) await checkCrlEntries(rt.store.pool, issuer.record.id);
    for (let i = have; i < n; i++) indexLines.push(`R\t${indexTime(expiry)}\t${indexTime(revokedAt)},keyCompromise\t${serialOf(seed, i).toUpperCase()}\tunknown\t/CN=d${i}`);
    have = n;
    writeFileSync(path.join(sslDir, 'index.txt'), indexLines.join('\n') + '\n');
    writeFileSync(path.join(sslDir, 'index.txt.attr'), 'unique_subject = no\n');
    log(`  ${label(n)}: rows populated (${popS.toFixed(1)} s in PostgreSQL; openssl index.txt written) in ${((performance.now() - z0) / 1000).toFixed(1)} s`);

    // fleetca, in a child process
    const out = path.join(o.tmp, `crl-${n}.der`);
    const builds: CrlChildResult[] = [];
    for (let i = 0; i < o.runs; i++) builds.push(await buildInChild(dataDir, out));
    const der = readFileSync(out);
    const v = spawnSync('openssl', ['crl', '-inform', 'DER', '-in', out, '-CAfile', caPem, '-noout', '-crlnumber'], { encoding: 'utf8' });
    if (v.status !== 0 || !/verify OK/.test(v.stdout + v.stderr)) throw new Error(`openssl crl does not verify fleetca's CRL: ${v.stdout}${v.stderr}`);
    const counted = decodeCrl(der).revokedSerials.size;
    if (counted !== n || builds.some((b) => b.entries !== n)) throw new Error(`fleetca's CRL lists ${counted} entries (publishCrls said ${builds.map((b) => b.entries).join(',')}), expected ${n}`);
    const fleetS = builds.map((b) => b.buildMs / 1000);
    log(
      `    fleetca publishCrls: ${fleetS.map((s) => s.toFixed(2)).join(', ')} s; peak RSS ${builds.map((b) => (b.maxRssKb / 1024).toFixed(0)).join(', ')} MB ` +
        `(before the build ${builds.map((b) => (b.maxRssBeforeKb / 1024).toFixed(0)).join(', ')} MB; runtime open ${builds.map((b) => (b.openMs / 1000).toFixed(2)).join(', ')} s); ` +
        `${(der.length / 1e6).toFixed(1)} MB DER, ${counted} entries counted, openssl crl: ${(v.stdout + v.stderr).replace(/\s+/g, ' ').trim()}; delta ${builds[0]!.deltaEntries} entries`,
    );

    // the CLI, once
    let cliRow: CrlRow | null = null;
    if (haveCli) {
      const c = timed(process.execPath, [cli, 'crl', 'publish', '--issuer', issuer.record.name, '--data-dir', dataDir], {
        env: { ...process.env, FLEETCA_KEY_PASSPHRASE: 'bench-passphrase', LOG_LEVEL: 'warn', FLEETCA_CONFIG_DIR: rt.env.configDir },
      });
      if (!new RegExp(`\\(${n} entries\\)`).test(c.stderr)) throw new Error(`fleetca crl publish: ${c.stderr.slice(0, 500)}`);
      log(`    fleetca crl publish (CLI): ${c.seconds.toFixed(2)} s wall, peak RSS ${c.rssMb.toFixed(0)} MB: ${c.stderr.split('\n').find((l) => l.startsWith('published')) ?? ''}`);
      cliRow = { name: `CRL ${label(n)} entries: fleetca crl publish CLI, wall (1 run)`, unit: 's', median: round3(c.seconds), runs: [round3(c.seconds)], peakRssMb: Math.round(c.rssMb) };
    }

    // openssl ca -gencrl
    const ssl: Array<{ seconds: number; rssMb: number }> = [];
    const sslRuns = n >= 1_000_000 ? 1 : o.runs;
    for (let i = 0; i < sslRuns; i++) {
      writeFileSync(path.join(sslDir, 'crlnumber'), '01\n');
      rmSync(path.join(sslDir, 'crl.pem'), { force: true });
      ssl.push(timed('openssl', ['ca', '-gencrl', '-config', 'ca.cnf', '-keyfile', 'ca.key', '-cert', 'ca.pem', '-out', 'crl.pem', '-batch'], { cwd: sslDir }));
    }
    const sslDer = pemDecodeAll(readFileSync(path.join(sslDir, 'crl.pem'), 'latin1'))[0]!.der;
    const sslCount = decodeCrl(sslDer).revokedSerials.size;
    if (sslCount !== n) throw new Error(`openssl's CRL lists ${sslCount} entries, expected ${n}`);
    log(`    openssl ca -gencrl: ${ssl.map((s) => s.seconds.toFixed(2)).join(', ')} s; peak RSS ${ssl.map((s) => s.rssMb.toFixed(0)).join(', ')} MB; ${(sslDer.length / 1e6).toFixed(1)} MB DER, ${sslCount} entries`);

    const sslName = `CRL ${label(n)} entries: openssl ca -gencrl${sslRuns === 1 ? ' (1 run)' : ''}`;
    const sslMedian = median(ssl.map((s) => s.seconds));
    const fleetMedian = median(fleetS);
    o.record({
      name: `CRL ${label(n)} entries: fleetca publishCrls (child process)`,
      unit: 's',
      median: round3(fleetMedian),
      runs: fleetS.map(round3),
      floor: sslName,
      ratio: round3(fleetMedian / sslMedian),
      peakRssMb: Math.round(median(builds.map((b) => b.maxRssKb / 1024))),
    });
    if (cliRow) o.record({ ...cliRow, floor: sslName, ratio: round3(cliRow.median / sslMedian) });
    o.record({ name: sslName, unit: 's', median: round3(sslMedian), runs: ssl.map((s) => round3(s.seconds)), peakRssMb: Math.round(median(ssl.map((s) => s.rssMb))) });
  }
  o.note(
    'crl: seconds (lower is better) and peak RSS; ratio = fleetca time / openssl ca -gencrl time on the same entries (throwaway P-256 CA); ' +
      'publishCrls timed inside a child process whose peak RSS (VmHWM: its whole life, node + tsx + runtime) is reported; CLI and openssl peak RSS from /usr/bin/time -v; target 1M ≤ 3 s and ≤ 300 MB',
  );
  log(`  crl section: ${((performance.now() - s0) / 1000).toFixed(0)} s`);
}
