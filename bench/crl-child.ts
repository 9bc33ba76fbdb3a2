/**
 * One CRL publication of the device CA in its own process (bench/crl.ts forks it through tsx), so
 * that the peak RSS it reports (VmHWM) is the build's process alone: opens a runtime on the bench's data
 * dir as the CLI does (inline crypto; the embedded PostgreSQL the parent already runs), then times
 * publishCrls (entries read from PostgreSQL, the full CRL and the delta signed and stored) and
 * writes the full CRL's DER to a file.
 *
 * argv: <data dir> <out file>. Sends a CrlChildResult to the parent, then exits.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { pino } from 'pino';
import { readEnv } from '../src/config/env.js';
import { crlSettingsOf, publishCrls } from '../src/ca/crl.js';
import { openRuntime } from '../src/main/runtime.js';

export interface CrlChildResult {
  /** publishCrls, ms. */
  buildMs: number;
  /** openRuntime (cluster attach, migrations check, keys), ms. */
  openMs: number;
  entries: number;
  number: string;
  deltaEntries: number;
  bytes: number;
  /**
   * Peak RSS of this process (VmHWM of /proc/self/status) after the build, and before it, KiB.
   * Not process.resourceUsage().maxRSS: Linux carries the parent's high-water mark across
   * fork + execve into ru_maxrss, so a child of a large bench process would report the parent's.
   */
  maxRssKb: number;
  maxRssBeforeKb: number;
}

function vmHwmKb(): number {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'latin1'));
  if (!m) throw new Error('no VmHWM in /proc/self/status');
  return Number(m[1]);
}

const [dataDir, out] = process.argv.slice(2) as [string, string];
const o0 = performance.now();
const env = { ...readEnv(), dataDir, databaseUrl: undefined, keyPassphrase: 'bench-passphrase', logLevel: 'warn', fault: undefined };
const rt = await openRuntime({ env, dataDir, log: pino({ level: 'warn' }, pino.destination({ dest: '/dev/null', sync: true })) });
try {
  const openMs = performance.now() - o0;
  const issuer = [...rt.ca!.issuers.values()].find((i) => i.record.role === 'device' && i.record.active)!;
  const maxRssBeforeKb = vmHwmKb();
  const t0 = performance.now();
  const pub = await publishCrls({ store: rt.store, clock: rt.clock, settings: crlSettingsOf(rt.config) }, issuer, { base: true, actor: 'bench' });
  const buildMs = performance.now() - t0;
  const maxRssKb = vmHwmKb();
  if (!pub) throw new Error('another process holds the CRL build lock of the device CA');
  writeFileSync(out, pub.full.der);
  const r: CrlChildResult = {
    buildMs,
    openMs,
    entries: pub.full.entries,
    number: pub.full.number.toString(),
    deltaEntries: pub.delta?.entries ?? 0,
    bytes: pub.full.der.length,
    maxRssKb,
    maxRssBeforeKb,
  };
  await new Promise<void>((resolve) => process.send!(r, () => resolve()));
} finally {
  await rt.close();
}
process.exit(0);
