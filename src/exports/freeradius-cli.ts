/**
 * `fleetca export bundle` and `fleetca export freeradius`: what a NAC needs to trust fleetca's
 * device certificates (README "NAC integration: FreeRADIUS"). Registered on the CLI's `export`
 * group by the composition root (main/cli.ts), since the CLI does not import other adapters; the
 * rendering (freeradius.ts), the folder switch (versioned-dir.ts) and the watcher
 * (freeradius-watch.ts) are wired to the runtime here.
 */
import { renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Option, type Command } from 'commander';
import { CaError, badRequest, internal, notFound, unavailable } from '../core/errors.js';
import type { Clock } from '../core/clock.js';
import { parseDuration } from '../core/duration.js';
import type { FleetcaConfig } from '../config/schema.js';
import { crlSettingsOf } from '../ca/crl.js';
import { buildIssuerRuntime, type IssuerRuntime } from '../ca/issuers.js';
import type { AuditStore, CrlStore, IssuerStore } from '../ca/ports.js';
import { trustBundle } from '../ca/trust-bundle.js';
import { normalizeBaseUrl } from '../ca/urls.js';
import { freshCrls, renderFreeradiusExport, trustBundlePem, type CoveredChanges, type RevocationCheck } from './freeradius.js';
import { buildFreeradiusVersion, runReloadCommand, watchFreeradius, type ChangeKind } from './freeradius-watch.js';
import { openVersionedDir, pruneVersions } from './versioned-dir.js';

/** Handlers of the store's change listener (store/pg-listen.ts), as the runtime offers it. */
interface ChangeHandlers {
  status(issuerId: number, serial: string): void;
  crl(issuerId: number, kind: 'full' | 'delta', shard: number, number: bigint): void;
  events(): void;
  /** A CA was added (a rollover). */
  issuers?(): void;
  resync(): void;
  log(msg: string): void;
}

/** The part of the CLI runtime these commands use (program.ts's CliRuntime has it). */
export interface ExportCliRuntime {
  config: FleetcaConfig;
  store: IssuerStore & CrlStore & AuditStore;
  clock: Clock;
  ca: { issuers: ReadonlyMap<string, IssuerRuntime> } | null;
  publicUrl: string | null;
  dataDir: { root: string };
  /** main/runtime.ts offers it; without it `--watch` polls only. */
  listenForChanges?: (h: ChangeHandlers) => { ready: Promise<void>; close(): Promise<void> };
}

/** What the CLI hands over (program.ts CommandContext): its runtime wrapper, the --data-dir option and the output streams. */
export interface ExportCommandDeps {
  withRuntime: <T>(opts: { dataDir: string; loadIssuers?: boolean }, fn: (rt: ExportCliRuntime) => Promise<T>) => () => Promise<T>;
  dataDirOpt: () => Option;
  host: { out: (s: string) => void; err: (s: string) => void };
}

const stamp = () => new Date().toISOString();

/** Writes a file by a temporary name and a rename: a reader never sees half of it. */
function writeFileAtomic(file: string, content: string): void {
  const abs = path.resolve(file);
  let st: ReturnType<typeof statSync> | undefined;
  try {
    st = statSync(abs, { throwIfNoEntry: false });
  } catch (e) {
    throw badRequest(`--out ${file}: ${(e as Error).message}`);
  }
  if (st?.isDirectory()) throw badRequest(`--out ${file} is a folder; give a file path`);
  const tmp = path.join(path.dirname(abs), `.${path.basename(abs)}.tmp-${process.pid}`);
  try {
    writeFileSync(tmp, content, { mode: 0o644 });
    renameSync(tmp, abs);
  } catch (e) {
    rmSync(tmp, { force: true });
    const code = (e as NodeJS.ErrnoException).code ?? '';
    const msg = `--out ${file}: ${(e as Error).message}`;
    throw ['EACCES', 'EPERM', 'EROFS', 'ENOENT', 'ENOTDIR'].includes(code) ? badRequest(msg) : internal(msg, e);
  }
}

function parseInterval(text: string): number {
  let ms: number;
  try {
    ms = parseDuration(text);
  } catch (e) {
    throw badRequest(`--interval: ${(e as Error).message}`);
  }
  if (ms < 100) throw badRequest('--interval must be at least 100ms');
  return ms;
}

/** Registers `export bundle` and `export freeradius` on the CLI's `export` group. */
export function registerFreeradiusExports(group: Command, deps: ExportCommandDeps): void {
  const { withRuntime, dataDirOpt, host } = deps;

  group
    .command('bundle')
    .description('the PEM trust bundle for EAP-TLS: the device issuing CA(s), then the root; never the manufacturing CA')
    .addOption(dataDirOpt())
    .option('--out <file>', 'write it to FILE (replaced atomically) instead of stdout')
    .action(async (o: { dataDir: string; out?: string }) => {
      await withRuntime({ dataDir: o.dataDir, loadIssuers: false }, async (rt) => {
        const bundle = trustBundle(await rt.store.listIssuers(), rt.clock.now());
        if (!bundle.some((i) => i.role === 'device')) throw notFound('no valid device issuing CA: run `fleetca init` first');
        const pem = trustBundlePem(bundle);
        if (o.out) writeFileAtomic(o.out, pem);
        else host.out(pem);
        host.err(`trust bundle: ${bundle.map((i) => i.name).join(', ')}${o.out ? ` → ${o.out}` : ''}\n`);
      })();
    });

  group
    .command('freeradius')
    .description('tls-config.conf for FreeRADIUS with device_cas.pem and ca_path/ (the device CAs and their PEM CRLs, openssl rehash links) it trusts, and ca_file.pem (the trust bundle); switched atomically')
    .addOption(dataDirOpt())
    .requiredOption('--out <dir>', 'the folder FreeRADIUS reads: kept as a link to a versioned folder built beside it')
    .option('--watch', 'keep running: rebuild on status changes and CRL publications, and every --interval')
    .option('--reload-cmd <cmd>', 'run (by /bin/sh) after each switch, e.g. "systemctl restart freeradius"; retried while it fails')
    .option('--interval <duration>', 'with --watch: how often to check even without a notification', '5s')
    .addOption(new Option('--revocation <check>', 'how FreeRADIUS checks certificates: crl (needs a restart per change) or ocsp (asks fleetca each time)').choices(['crl', 'ocsp']).default('crl'))
    .option('--ocsp-url <url>', "fleetca's OCSP responder as FreeRADIUS reaches it (default: the device CA's, from the public URL)")
    .action(async (o: { dataDir: string; out: string; watch?: boolean; reloadCmd?: string; interval: string; revocation: RevocationCheck; ocspUrl?: string }) => {
      const intervalMs = parseInterval(o.interval);
      if (o.reloadCmd !== undefined && o.reloadCmd.trim() === '') throw badRequest('--reload-cmd is empty');
      let ocspOverride: string | undefined;
      if (o.ocspUrl !== undefined) {
        try {
          ocspOverride = normalizeBaseUrl(o.ocspUrl);
        } catch (e) {
          throw badRequest(`--ocsp-url: ${(e as Error).message}`);
        }
      }
      // bad --out fails here, before the database is opened and before anything is written
      const dir = openVersionedDir(o.out);
      await withRuntime({ dataDir: o.dataDir }, async (rt) => {
        if (!rt.ca || !rt.publicUrl) throw new CaError('unavailable', `${rt.dataDir.root} is not initialised: run \`fleetca init\` first`);
        const issuers = rt.ca.issuers;
        const log = (level: 'info' | 'warn' | 'error', msg: string) => host.err(`${stamp()} ${level === 'info' ? '' : `${level}: `}${msg}\n`);
        const covered: CoveredChanges = new Map();
        const crlDeps = { store: rt.store, clock: rt.clock, settings: crlSettingsOf(rt.config), log: (l: 'info' | 'warn', m: string) => log(l, m) };

        const publicUrl = rt.publicUrl;
        // the issuers are read again for every build: a CA rolled over meanwhile joins the export
        // (without its key in this process: the server publishes its CRLs)
        const ids = new Set<number>();
        const cas = async () => {
          const bundle = trustBundle(await rt.store.listIssuers(), rt.clock.now());
          if (!bundle.some((i) => i.role === 'device')) throw unavailable('no valid device issuing CA to export');
          for (const r of bundle) ids.add(r.id);
          return bundle.map((r) => issuers.get(r.name) ?? buildIssuerRuntime(r, null, publicUrl));
        };
        const ocspUrl = (list: readonly IssuerRuntime[]) => {
          if (ocspOverride) return ocspOverride;
          const devices = list.filter((i) => i.record.role === 'device');
          // during a rollover both device CAs answer at the generic /ocsp
          return devices.length === 1 ? devices[0]!.urls.ocsp : `${normalizeBaseUrl(publicUrl)}/ocsp`;
        };
        const build = () =>
          buildFreeradiusVersion({
            dir,
            clock: rt.clock,
            render: async () => {
              const list = await cas();
              // FreeRADIUS loads only the device CAs (and their CRLs); ca_file.pem is the whole bundle
              const deviceCas = await freshCrls(crlDeps, list.filter((i) => i.record.role === 'device'), covered);
              return renderFreeradiusExport({ bundle: list.map((i) => i.record), deviceCas, dir: dir.out, ocspUrl: ocspUrl(list), revocation: o.revocation }, rt.clock.now());
            },
          });

        const first = await build();
        host.err(first.switched ? `exported to ${dir.out} → ${first.version} (revocation check: ${o.revocation})\n` : `${dir.out} is up to date (${first.version})\n`);
        const reload = o.reloadCmd ? () => runReloadCommand(o.reloadCmd!) : null;

        if (!o.watch) {
          if (first.switched) pruneVersions(dir, new Set([first.version, ...(first.previous ? [first.previous] : [])]));
          if (first.switched && reload) {
            const r = await reload();
            if (!r.ok) throw internal(`reload command failed (${r.status})${r.output ? `: ${r.output}` : ''}; the export itself is complete (${first.version})`);
            host.err(`reload command succeeded\n`);
          }
          return;
        }

        const listen = rt.listenForChanges;
        const subscribe = listen
          ? async (onChange: (what: ChangeKind) => void) => {
              const l = listen({
                status: (issuerId) => ids.has(issuerId) && onChange('status'),
                crl: (issuerId, kind, shard) => ids.has(issuerId) && kind === 'full' && shard === 0 && onChange('crl'),
                events: () => undefined,
                issuers: () => onChange('crl'), // a rolled-over CA joins the bundle
                resync: () => onChange('resync'),
                log: (m) => log('warn', m),
              });
              await l.ready;
              return l;
            }
          : null;
        const ac = new AbortController();
        const stop = () => ac.abort();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        try {
          await watchFreeradius({
            build,
            reload,
            prune: (keep) => pruneVersions(dir, keep),
            subscribe,
            intervalMs,
            log,
            signal: ac.signal,
            initial: first,
          });
        } finally {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
        }
        host.err(`${stamp()} stopped watching ${dir.out}\n`);
      })();
    });
}
