/**
 * The `fleetca` command line (commander). Output that scripts capture (a PEM, JSON, a secret) is
 * alone on stdout; messages go to stderr. Errors are one line on stderr and an exit code per
 * CaError kind (see `exitCodeFor`).
 */
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { Command, Option } from 'commander';
import type { Logger } from 'pino';
import { CaError, assertNever, badRequest, conflict, notFound, type CaErrorKind } from '../core/errors.js';
import type { Clock } from '../core/clock.js';
import { formatDuration, parseDuration } from '../core/duration.js';
import { formatSerial, normalizeSerial, DEVICE_ID_RE } from '../core/ids.js';
import type { FleetcaConfig } from '../config/schema.js';
import { ConfigError, loadConfig } from '../config/load.js';
import type { DataDir } from '../config/data-dir.js';
import type { Env } from '../config/env.js';
import { pemEncode, decodeCsrInput } from '../pki/pem.js';
import type { CryptoEngine } from '../signing/crypto-pool.js';
import type { KeyStore } from '../signing/key-store.js';
import { initHierarchy } from '../ca/bootstrap.js';
import { crlSettingsOf, publishCrls } from '../ca/crl.js';
import { rolloverIntermediate, rolloverRoot } from '../ca/rollover.js';
import { REVOCATION_REASONS } from '../ca/revocation.js';
import { certificateParts } from '../pki/cert-parts.js';
import { currentIssuer, lineageOf } from '../ca/issuers.js';
import { createHash } from 'node:crypto';
import { liftQuarantine, quarantineDevice, retireDevice } from '../ca/containment.js';
import { applyAdvisory, withdrawAdvisory } from '../ca/advisories.js';
import { DEFAULT_TOKEN_TTL, ROLES, createApiToken, type Role } from '../enrollment/api-tokens.js';
import { apiTokenView, certificateView, deviceView, INVENTORY_CSV_COLUMNS, inventoryCsvRow, inventoryView, requestView } from '../enrollment/views.js';
import { normalizeBaseUrl } from '../ca/urls.js';
import { normalizeMac } from '../ca/policy.js';
import type { CertificateAuthority } from '../ca/issuance.js';
import type { AdvisoryAction, AdvisoryStore, ApiTokenStore, CaStore, CertificateRecord, ContainmentStore, CrlStore, DeviceRecord, RolloverStore, DeviceState, RevocationReason } from '../ca/ports.js';
import type { EnrollmentStore, RequestState } from '../enrollment/ports.js';
import { createEnrollmentSecrets } from '../enrollment/secret-issuer.js';
import { registerAuditCommands } from './audit-commands.js';
import { registerBatchCommands } from './batch-commands.js';
import { registerAdminCertCommands } from './admin-cert-commands.js';
import { registerExpiryCommands } from './expiry-commands.js';
import { stringify as stringifyCsv } from 'csv-stringify/sync';
import { CRITICALITIES, listInventory, type Criticality } from '../enrollment/inventory.js';

/** What a command needs at run time; built by the composition root (main/). */
export interface CliRuntime {
  env: Env;
  config: FleetcaConfig;
  dataDir: DataDir;
  store: CaStore & CrlStore & ContainmentStore & ApiTokenStore & AdvisoryStore & EnrollmentStore & RolloverStore;
  crypto: CryptoEngine;
  /** HMAC key of one-time enrollment secrets. */
  secretKey(): Buffer;
  /** HMAC key of admin API tokens. */
  tokenKey(): Buffer;
  clock: Clock;
  log: Logger;
  ca: CertificateAuthority | null;
  publicUrl: string | null;
  keyStore(create?: boolean): { keys: KeyStore & { loadFile(file: string): import('node:crypto').KeyObject }; generated: boolean };
  close(): Promise<void>;
}

export interface OpenOptions {
  dataDir: string;
  rootKeyFile?: string;
  loadIssuers?: boolean;
  /** Crypto on worker threads, one per core (long-running bulk commands). */
  workers?: boolean;
}

export interface ServeOptions {
  dataDir: string;
  host: string;
  httpPort: number;
  httpsPort: number;
}

export interface CliHost {
  open(opts: OpenOptions): Promise<CliRuntime>;
  serve(opts: ServeOptions): Promise<void>;
  /** Where messages go (stderr) and captured output goes (stdout); tests replace them. */
  out: (s: string) => void;
  err: (s: string) => void;
  env: Env;
  /**
   * Commands other adapters contribute (the NAC exports): the composition root registers them,
   * since the CLI does not import other adapters. Receives the `export` group and what commands use.
   */
  registerExports?(exportGroup: Command, ctx: CommandContext): void;
}

/** What a command registered outside this file uses: the runtime wrapper, --data-dir and the output. */
export interface CommandContext {
  withRuntime: <T>(opts: { dataDir: string; loadIssuers?: boolean }, fn: (rt: CliRuntime) => Promise<T>) => () => Promise<T>;
  dataDirOpt: () => Option;
  host: CliHost;
}

/** Exit code per error kind; documented in the README. */
export function exitCodeFor(kind: CaErrorKind): number {
  switch (kind) {
    case 'badRequest':
    case 'badCsr':
      return 2;
    case 'unauthorized':
    case 'forbidden':
    case 'policyRejected':
      return 3;
    case 'notFound':
      return 4;
    case 'unavailable':
      return 5;
    case 'conflict':
      return 6;
    case 'pending':
      return 0;
    case 'internal':
      return 1;
    default:
      return assertNever(kind);
  }
}

function certPem(der: Buffer): string {
  return pemEncode('CERTIFICATE', der);
}

function requireCa(rt: CliRuntime): CertificateAuthority {
  if (!rt.ca) throw new CaError('unavailable', `${rt.dataDir.root} is not initialised: run \`fleetca init\` first`);
  return rt.ca;
}



function table(rows: string[][]): string {
  if (rows.length === 0) return '';
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n') + '\n';
}

function parseMacs(list: string[] | undefined): string[] | undefined {
  if (!list) return undefined;
  return list.flatMap((m) => m.split(/[;,]/)).filter(Boolean).map((m) => {
    const n = normalizeMac(m);
    if (!n) throw badRequest(`malformed MAC address "${m}"`);
    return n;
  });
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

const DEFAULT_PUBLIC_URL = 'http://localhost:8080';

/** The root issuer record and the key files, for the offline-root commands; the root key must still be here. */
async function rootAndKeys(rt: CliRuntime) {
  const root = (await rt.store.listIssuers()).find((i) => i.role === 'root');
  if (!root) throw notFound('no root: run `fleetca init` first');
  const keys = rt.keyStore(false).keys;
  if (!keys.has(root.name)) throw notFound('the root key is not in the data dir (already removed?)');
  return { root, keys };
}

/** Builds the program; `host` supplies the runtime so tests can run commands in-process. */
export function buildProgram(host: CliHost): Command {
  const program = new Command('fleetca')
    .description('fleetca: device certificate authority for zero-trust IoT networks')
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({ writeOut: host.out, writeErr: host.err });
  const dataDirOpt = () => new Option('--data-dir <dir>', 'data directory (keys, certificates, embedded PostgreSQL)').default(host.env.dataDir, 'FLEETCA_DATA_DIR or ./data');

  /** Runs an action with an opened runtime, closing it afterwards. */
  const withRuntime = <T>(opts: OpenOptions, fn: (rt: CliRuntime) => Promise<T>) => async () => {
    const rt = await host.open(opts);
    try {
      return await fn(rt);
    } finally {
      await rt.close();
    }
  };

  /** `init`: the hierarchy, its key files and certificates, the data dir state. */
  const initAction = async (o: { dataDir: string; publicUrl?: string }) => {
    await withRuntime({ dataDir: o.dataDir, loadIssuers: false }, async (rt) => {
      let publicUrl: string;
      try {
        publicUrl = normalizeBaseUrl(o.publicUrl ?? rt.config.settings.publicUrl ?? DEFAULT_PUBLIC_URL);
      } catch (e) {
        throw badRequest((e as Error).message);
      }
      if (rt.dataDir.isInitialised()) throw conflict(`${rt.dataDir.root} is already initialised`);
      const { keys, generated } = rt.keyStore(true);
      if (generated) host.err(`warning: FLEETCA_KEY_PASSPHRASE is unset; generated one into ${rt.dataDir.passphraseFile} (mode 0600). Keep it safe, or set FLEETCA_KEY_PASSPHRASE.\n`);
      const result = await initHierarchy({ config: rt.config, store: rt.store, crypto: rt.crypto, keys, clock: rt.clock, publicUrl });
      for (const [name, i] of result.issuers) rt.dataDir.writeCert(name, certPem(i.record.certDer));
      for (const s of result.services) rt.dataDir.writeCert(s.name, [s.cert.der, ...(s.name === 'tls-server' ? s.cert.chain.slice(0, 1) : [])].map(certPem).join(''));
      rt.dataDir.writeState({ publicUrl, createdAt: rt.clock.now().toISOString(), version: 1 });
      host.err(`initialised ${rt.dataDir.root}: issuers ${[...result.issuers.keys()].join(', ')}; public URL ${publicUrl}\n`);
    })();
  };

  program
    .command('init')
    .description('create the CA hierarchy (root, device CA, manufacturing CA, OCSP responders, SCEP RA, TLS server) without prompts')
    .addOption(dataDirOpt())
    .option('--public-url <url>', `base URL of the CDP and AIA URLs baked into certificates (default: ca.yaml publicUrl, else ${DEFAULT_PUBLIC_URL})`)
    .action(initAction);

  const config = program.command('config').description('configuration');
  config
    .command('check')
    .description('validate ca-config/ (every problem with its file and path)')
    .option('--config-dir <dir>', 'configuration directory', host.env.configDir)
    .action((o: { configDir: string }) => {
      const c = loadConfig(o.configDir);
      host.err(`configuration OK: ${o.configDir} (${c.profiles.size} profiles: ${[...c.profiles.keys()].join(', ')})\n`);
    });

  program
    .command('serve')
    .description('run the HTTP (SCEP, CRL, OCSP, CA certificates, health, metrics) and HTTPS (EST, admin API) listeners')
    .addOption(dataDirOpt())
    .option('--host <host>', 'address to bind', '127.0.0.1')
    .option('--http-port <port>', 'plain HTTP port (0 = any free port)', '8080')
    .option('--https-port <port>', 'HTTPS port (0 = any free port)', '8443')
    .action(async (o: { dataDir: string; host: string; httpPort: string; httpsPort: string }) => {
      await host.serve({ dataDir: o.dataDir, host: o.host, httpPort: Number(o.httpPort), httpsPort: Number(o.httpsPort) });
    });

  program
    .command('start')
    .description('init the data dir when it is new, then serve (what `npm start` runs)')
    .addOption(dataDirOpt())
    .option('--public-url <url>', 'base URL for CDP and AIA, used only when initialising')
    .option('--host <host>', 'address to bind', '127.0.0.1')
    .option('--http-port <port>', 'plain HTTP port', '8080')
    .option('--https-port <port>', 'HTTPS port', '8443')
    .action(async (o: { dataDir: string; publicUrl?: string; host: string; httpPort: string; httpsPort: string }) => {
      const probe = await host.open({ dataDir: o.dataDir, loadIssuers: false });
      const initialised = probe.dataDir.isInitialised();
      await probe.close();
      if (!initialised) await initAction({ dataDir: o.dataDir, ...(o.publicUrl ? { publicUrl: o.publicUrl } : {}) });
      await host.serve({ dataDir: o.dataDir, host: o.host, httpPort: Number(o.httpPort), httpsPort: Number(o.httpsPort) });
    });

  const db = program.command('db').description('database');
  db.command('migrate')
    .description('apply pending migrations (serve and every command also do this at start)')
    .addOption(dataDirOpt())
    .action(async (o: { dataDir: string }) => {
      await withRuntime({ dataDir: o.dataDir, loadIssuers: false }, async () => {
        host.err('migrations applied\n');
      })();
    });

  // ---------------------------------------------------------------- devices
  const assertProfile = (rt: CliRuntime, profile: string | undefined) => {
    if (profile && !rt.config.profiles.has(profile)) throw notFound(`unknown profile "${profile}"`);
  };
  /** The record as JSON on stdout (--json), or a one-line confirmation on stderr. */
  const printDevice = (d: DeviceRecord, json: boolean | undefined, verb: string) => {
    if (json) host.out(JSON.stringify(deviceView(d)) + '\n');
    else host.err(`device ${d.id} ${verb}\n`);
  };
  const device = program.command('device').description('device records');
  device
    .command('add <id>')
    .description('register a device')
    .addOption(dataDirOpt())
    .option('--mac <mac>', 'MAC address (repeatable, or ;-separated)', collect)
    .option('--serial-number <sn>', 'manufacturer serial number')
    .option('--model <model>', 'device model')
    .option('--firmware <version>', 'firmware version')
    .option('--profile <profile>', 'default certificate profile')
    .option('--segment <segment>', 'network segment (site, building, VLAN)')
    .option('--nac-role <role>', "NAC role / identity group, when it differs from the profile's nacRole")
    .option('--json', 'print the record as JSON')
    .action(async (id: string, o: { dataDir: string; mac?: string[]; serialNumber?: string; model?: string; firmware?: string; profile?: string; segment?: string; nacRole?: string; json?: boolean }) => {
      if (!DEVICE_ID_RE.test(id)) throw badRequest(`"${id}" is not a valid device id (letters, digits, . _ : -; at most 128)`);
      const macs = parseMacs(o.mac) ?? [];
      await withRuntime({ dataDir: o.dataDir, loadIssuers: false }, async (rt) => {
        assertProfile(rt, o.profile);
        const d = await rt.store.addDevice(
          { id, macs, serialNumber: o.serialNumber ?? null, model: o.model ?? null, firmware: o.firmware ?? null, profile: o.profile ?? null, segment: o.segment ?? null, nacRole: o.nacRole ?? null },
          rt.clock.now(),
        );
        printDevice(d, o.json, 'added');
      })();
    });
  device
    .command('show <id>')
    .description('show a device and its certificates')
    .addOption(dataDirOpt())
    .option('--json', 'JSON output')
    .action(async (id: string, o: { dataDir: string; json?: boolean }) => {
      await withRuntime({ dataDir: o.dataDir, loadIssuers: false }, async (rt) => {
        const [e] = (await listInventory({ store: rt.store, config: rt.config }, { ids: [id] }, rt.clock.now())).entries;
        if (!e) throw notFound(`unknown device "${id}"`);
        const certs = await rt.store.listCertificates({ deviceId: id });
        if (o.json) {
          host.out(JSON.stringify({ ...inventoryView(e), certificates: certs.map(certificateView) }) + '\n');
          return;
        }
        const v = inventoryView(e);
        const j = { ...v, current_certificate: v.current_certificate?.serial ?? null };
        // the certificate history, oldest first
        host.out(
          table(Object.entries(j).map(([k, x]) => [k, Array.isArray(x) ? x.join(', ') : String(x ?? '-')])) +
            (certs.length
              ? '\n' +
                table([
                  ['SERIAL', 'PROFILE', 'ISSUED', 'NOT_AFTER', 'STATUS', 'REASON', 'SUPERSEDED_BY'],
                  ...certs.map((c) => [formatSerial(c.serial), c.profile, c.createdAt.toISOString(), c.notAfter.toISOString(), c.status, c.revocationReason ?? '-', c.supersededBy ? formatSerial(c.supersededBy) : '-']),
                ])
              : ''),
        );
      })();
    });
  device
    .command('list')
    .description('the device inventory: criticality, NAC role, current certificate, staleness (high criticality first)')
    .addOption(dataDirOpt())
    .option('--profile <profile>', 'only this profile')
    .option('--model <model>', 'only this model')
    .option('--firmware <range>', "only firmware in this version range, e.g. '<2.4.1' or '>=2.0 <2.4.1'")
    .addOption(new Option('--state <state>', 'only this state').choices(['active', 'quarantined', 'retired']))
    .option('--segment <segment>', 'only this network segment')
    .addOption(new Option('--criticality <level>', "only devices whose profile has this criticality").choices([...CRITICALITIES]))
    .option('--stale', 'only devices whose certificate is in its renewal window or expired and not yet replaced')
    .addOption(new Option('--json', 'JSON array').conflicts('csv'))
    .option('--csv', 'CSV with a header row')
    .action(
      async (o: { dataDir: string; profile?: string; model?: string; firmware?: string; state?: DeviceState; segment?: string; criticality?: Criticality; stale?: boolean; json?: boolean; csv?: boolean }) => {
        await withRuntime({ dataDir: o.dataDir, loadIssuers: false }, async (rt) => {
          const { entries } = await listInventory(
            { store: rt.store, config: rt.config },
            {
              ...(o.profile ? { profile: o.profile } : {}),
              ...(o.model ? { model: o.model } : {}),
              ...(o.firmware ? { firmware: o.firmware } : {}),
              ...(o.state ? { state: o.state } : {}),
              ...(o.segment ? { segment: o.segment } : {}),
              ...(o.criticality ? { criticality: o.criticality } : {}),
              ...(o.stale ? { stale: true } : {}),
            },
            rt.clock.now(),
          );
          // the most critical devices first, then by id
          entries.sort((a, b) => CRITICALITIES.indexOf(a.criticality) - CRITICALITIES.indexOf(b.criticality) || (a.device.id < b.device.id ? -1 : 1));
          if (o.json) host.out(JSON.stringify(entries.map(inventoryView)) + '\n');
          else if (o.csv) host.out(stringifyCsv(entries.map(inventoryCsvRow), { header: true, columns: [...INVENTORY_CSV_COLUMNS] }));
          else
            host.out(
              table([
                ['ID', 'STATE', 'CRITICALITY', 'PROFILE', 'MODEL', 'FIRMWARE', 'SEGMENT', 'NAC_ROLE', 'CERT_NOT_AFTER', 'HEALTH'],
                ...entries.map((e) => [
                  e.device.id,
                  e.device.state,
                  e.criticality,
                  e.device.profile ?? '-',
                  e.device.model ?? '-',
                  e.device.firmware ?? '-',
                  e.device.segment ?? '-',
                  e.nacRole ?? '-',
                  e.current?.notAfter.toISOString() ?? '-',
                  e.stale ? `${e.health} (stale)` : e.health,
                ]),
              ]),
            );
        })();
      },
    );
  device
    .command('update <id>')
    .description('update a device record (--mac replaces the MAC list)')
    .addOption(dataDirOpt())
    .option('--mac <mac>', 'MAC address (repeatable)', collect)
    .option('--serial-number <sn>', 'manufacturer serial number')
    .option('--model <model>', 'device model')
    .option('--firmware <version>', 'firmware version')
    .option('--profile <profile>', 'default certificate profile')
    .option('--segment <segment>', "network segment (site, building, VLAN); '' clears")
    .option('--nac-role <role>', "NAC role / identity group overriding the profile's nacRole; '' clears")
    .option('--json', 'print the record as JSON')
    .action(async (id: string, o: { dataDir: string; mac?: string[]; serialNumber?: string; model?: string; firmware?: string; profile?: string; segment?: string; nacRole?: string; json?: boolean }) => {
      const macs = parseMacs(o.mac);
      const patch = {
        ...(macs ? { macs } : {}),
        ...(o.serialNumber !== undefined ? { serialNumber: o.serialNumber } : {}),
        ...(o.model !== undefined ? { model: o.model } : {}),
        ...(o.firmware !== undefined ? { firmware: o.firmware } : {}),
        ...(o.profile !== undefined ? { profile: o.profile } : {}),
        ...(o.segment !== undefined ? { segment: o.segment === '' ? null : o.segment } : {}),
        ...(o.nacRole !== undefined ? { nacRole: o.nacRole === '' ? null : o.nacRole } : {}),
      };
      if (Object.keys(patch).length === 0) throw badRequest('nothing to update: give --mac, --serial-number, --model, --firmware, --profile, --segment or --nac-role');
      await withRuntime({ dataDir: o.dataDir, loadIssuers: false }, async (rt) => {
        assertProfile(rt, o.profile);
        const d = await rt.store.updateDevice(id, patch, rt.clock.now());
        printDevice(d, o.json, 'updated');
      })();
    });

  // containment (issue 6): the SOC's "quarantine this device now"
  device
    .command('quarantine <id>')
    .description('put every live certificate of the device on hold and refuse its enrollment and renewal until released')
    .addOption(dataDirOpt())
    .requiredOption('--reason <text>', 'why (kept with the quarantine and in the audit log)')
    .option('--json', 'print the quarantine and the held certificates as JSON')
    .action(async (id: string, o: { dataDir: string; reason: string; json?: boolean }) => {
      await withRuntime({ dataDir: o.dataDir, loadIssuers: false }, async (rt) => {
        const r = await quarantineDevice({ store: rt.store, clock: rt.clock }, id, o.reason, 'cli');
        if (o.json) host.out(JSON.stringify({ device: id, reason: r.quarantine.reason, at: r.quarantine.at.toISOString(), held: r.held.map(certificateView) }, null, 2) + '\n');
        host.err(`quarantined ${id}: ${r.held.length} certificate(s) on hold\n`);
      })();
    });
  device
    .command('release <id>')
    .description('lift a quarantine: the certificates it held are valid again and the device may enroll')
    .addOption(dataDirOpt())
    .option('--json', 'print the released certificates as JSON')
    .action(async (id: string, o: { dataDir: string; json?: boolean }) => {
      await withRuntime({ dataDir: o.dataDir, loadIssuers: false }, async (rt) => {
        const r = await liftQuarantine({ store: rt.store, clock: rt.clock }, id, 'cli');
        if (o.json) host.out(JSON.stringify({ device: id, released: r.released.map(certificateView) }, null, 2) + '\n');
        host.err(`released ${id}: ${r.released.length} certificate(s) valid again\n`);
      })();
    });
  device
    .command('retire <id>')
    .description('revoke every live certificate of the device (cessationOfOperation) and mark it retired, for good')
    .addOption(dataDirOpt())
    .option('--json', 'print the revoked certificates as JSON')
    .action(async (id: string, o: { dataDir: string; json?: boolean }) => {
      await withRuntime({ dataDir: o.dataDir, loadIssuers: false }, async (rt) => {
        const revoked = await retireDevice({ store: rt.store, clock: rt.clock }, id, 'cli');
        if (o.json) host.out(JSON.stringify({ device: id, revoked: revoked.map(certificateView) }, null, 2) + '\n');
        host.err(`retired ${id}: ${revoked.length} certificate(s) revoked\n`);
      })();
    });

  // ---------------------------------------------------------------- certificates
  program
    .command('issue')
    .description('issue a certificate from a CSR (PEM or DER) and print it as PEM')
    .addOption(dataDirOpt())
    .requiredOption('--profile <profile>', 'certificate profile')
    .requiredOption('--device <id>', 'device id (created if new)')
    .requiredOption('--csr <file>', 'PKCS#10 request, PEM or DER ("-" for stdin)')
    .option('--chain', 'print the issuing CA after the certificate')
    .action(async (o: { dataDir: string; profile: string; device: string; csr: string; chain?: boolean }) => {
      let input: Buffer;
      try {
        input = readFileSync(o.csr === '-' ? 0 : o.csr);
      } catch (e) {
        throw badRequest(`cannot read ${o.csr}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
      const csrDer = decodeCsrInput(input);
      await withRuntime({ dataDir: o.dataDir }, async (rt) => {
        const cert = await requireCa(rt).issueFromCsr({ profile: o.profile, deviceId: o.device, csrDer, actor: 'cli', via: 'cli', createDevice: true, approved: true });
        host.out(certPem(cert.der) + (o.chain ? cert.chain.slice(0, 1).map(certPem).join('') : ''));
        host.err(`issued serial ${formatSerial(cert.serial)} for ${o.device} (${o.profile}), valid until ${cert.notAfter.toISOString()}\n`);
      })();
    });

  /** SERIAL xor --device ID, for revoke/hold/release. */
  const target = (serialText: string | undefined, device: string | undefined): { serial: string } | { device: string } => {
    if ((serialText === undefined) === (device === undefined)) throw badRequest('give a serial or --device ID (one of them)');
    if (device !== undefined) {
      if (!DEVICE_ID_RE.test(device)) throw badRequest(`"${device}" is not a device id`);
      return { device };
    }
    const serial = normalizeSerial(serialText!);
    if (!serial) throw badRequest(`"${serialText}" is not a serial number in hex`);
    return { serial };
  };
  const report = (verb: string, changed: CertificateRecord[], json: boolean | undefined, what: string) => {
    if (json) host.out(JSON.stringify(changed.map(certificateView), null, 2) + '\n');
    for (const c of changed) host.err(`${verb} ${formatSerial(c.serial)}${what}\n`);
    if (changed.length === 0) host.err(`no live certificate to change\n`);
  };
  const statusCommand = (name: string, description: string) =>
    program
      .command(`${name} [serial]`)
      .description(description)
      .addOption(dataDirOpt())
      .option('--device <id>', 'every live (unexpired) certificate of this device instead of one serial')
      .option('--json', 'print the changed certificates as JSON on stdout');

  statusCommand('revoke', 'revoke a certificate (serial in hex, as `openssl x509 -serial` prints it); a held one too')
    .addOption(new Option('--reason <reason>', 'RFC 5280 reason').choices([...REVOCATION_REASONS]).default('unspecified'))
    .option('--invalidity-date <iso>', 'when the key is known or suspected to have been compromised (RFC 5280 §5.3.2)')
    .action(async (serialText: string | undefined, o: { dataDir: string; device?: string; json?: boolean; reason: RevocationReason; invalidityDate?: string }) => {
      const t = target(serialText, o.device);
      let inv: Date | undefined;
      if (o.invalidityDate) {
        inv = new Date(o.invalidityDate);
        if (Number.isNaN(inv.getTime())) throw badRequest(`--invalidity-date "${o.invalidityDate}" is not a date`);
      }
      await withRuntime({ dataDir: o.dataDir }, async (rt) => {
        const ca = requireCa(rt);
        const changed = 'serial' in t ? [await ca.revoke(t.serial, o.reason, 'cli', inv)] : await ca.revokeDevice(t.device, o.reason, 'cli', inv);
        report(o.reason === 'certificateHold' ? 'held' : 'revoked', changed, o.json, o.reason === 'certificateHold' ? '' : ` (${o.reason})`);
      })();
    });

  statusCommand('hold', 'put a certificate on hold (reason certificateHold): the reversible quarantine state').action(
    async (serialText: string | undefined, o: { dataDir: string; device?: string; json?: boolean }) => {
      const t = target(serialText, o.device);
      await withRuntime({ dataDir: o.dataDir }, async (rt) => {
        const ca = requireCa(rt);
        const changed = 'serial' in t ? [await ca.revoke(t.serial, 'certificateHold', 'cli')] : await ca.revokeDevice(t.device, 'certificateHold', 'cli');
        report('held', changed, o.json, '');
      })();
    },
  );

  statusCommand('release', 'release a hold (the certificate is valid again; delta CRLs list it as removeFromCRL)').action(
    async (serialText: string | undefined, o: { dataDir: string; device?: string; json?: boolean }) => {
      const t = target(serialText, o.device);
      await withRuntime({ dataDir: o.dataDir }, async (rt) => {
        const ca = requireCa(rt);
        const changed = 'serial' in t ? [await ca.release(t.serial, 'cli')] : await ca.releaseDevice(t.device, 'cli');
        report('released', changed, o.json, '');
      })();
    },
  );

  // ---------------------------------------------------------------- enrollment
  const secret = program.command('secret').description('one-time enrollment secrets (EST HTTP Basic, SCEP challengePassword)');
  secret
    .command('create')
    .description('create a one-time secret for a device (created if new) and print it, alone, on stdout')
    .addOption(dataDirOpt())
    .requiredOption('--device <id>', 'device id (the EST HTTP Basic username)')
    .requiredOption('--profile <profile>', 'the device profile the secret enrolls for')
    .option('--ttl <duration>', 'lifetime (default: enrollment.secretTtl in ca.yaml, 72h)')
    .option('--json', 'print {device, profile, secret, expires_at} as JSON instead')
    .action(async (o: { dataDir: string; device: string; profile: string; ttl?: string; json?: boolean }) => {
      let ttlMs: number | undefined;
      if (o.ttl !== undefined) {
        try {
          ttlMs = parseDuration(o.ttl);
        } catch (e) {
          throw badRequest(`--ttl: ${(e as Error).message}`);
        }
      }
      await withRuntime({ dataDir: o.dataDir, loadIssuers: false }, async (rt) => {
        const [s] = await createEnrollmentSecrets(
          { store: rt.store, config: rt.config, clock: rt.clock, secretKey: rt.secretKey() },
          [{ deviceId: o.device, profile: o.profile, ...(ttlMs !== undefined ? { ttlMs } : {}) }],
          'cli',
        );
        if (o.json) host.out(JSON.stringify({ device: s!.deviceId, profile: s!.profile, secret: s!.secret, expires_at: s!.expiresAt.toISOString() }) + '\n');
        else host.out(`${s!.secret}\n`);
        host.err(`one-time secret for ${s!.deviceId} (${s!.profile}), valid until ${s!.expiresAt.toISOString()}\n`);
      })();
    });

  // ---------------------------------------------------------------- firmware advisories
  const advisory = program.command('advisory').description('firmware-vulnerability response: act on every device of a model whose firmware is in a range');
  advisory
    .command('apply')
    .description('select the devices (model + firmware range), print them, then quarantine, restrict or shorten (unless --dry-run)')
    .addOption(dataDirOpt())
    .requiredOption('--model <model>', 'device model')
    .requiredOption('--firmware <range>', "version range over dotted versions, e.g. '<2.4.1', '>=2.0 <2.4.1', '<1.0 || 3.1.0'")
    .addOption(new Option('--action <action>', 'what to do').choices(['quarantine', 'restrict', 'shorten']).makeOptionMandatory())
    .option('--profile <profile>', 'restrict: the device profile their next certificate comes from')
    .option('--validity <duration>', 'shorten: the longest validity of their next certificate (e.g. 7d)')
    .option('--reason <text>', 'why (the CVE, the vendor bulletin)', 'firmware advisory')
    .option('--dry-run', 'only print the devices that would be affected')
    .option('--json', 'print the outcome as JSON')
    .action(async (o: { dataDir: string; model: string; firmware: string; action: AdvisoryAction; profile?: string; validity?: string; reason: string; dryRun?: boolean; json?: boolean }) => {
      let maxValidityMs: number | undefined;
      if (o.validity !== undefined) {
        try {
          maxValidityMs = parseDuration(o.validity);
        } catch (e) {
          throw badRequest(`--validity: ${(e as Error).message}`);
        }
      }
      await withRuntime({ dataDir: o.dataDir, loadIssuers: false }, async (rt) => {
        const r = await applyAdvisory(
          { store: rt.store, clock: rt.clock, config: rt.config },
          { model: o.model, firmware: o.firmware, action: o.action, ...(o.profile !== undefined ? { profile: o.profile } : {}), ...(maxValidityMs !== undefined ? { maxValidityMs } : {}), reason: o.reason, dryRun: o.dryRun ?? false, actor: 'cli' },
        );
        if (o.json) host.out(JSON.stringify({ advisory: r.advisory?.id ?? null, dry_run: o.dryRun ?? false, action: o.action, devices: r.devices, skipped: r.skipped }) + '\n');
        else host.out(r.devices.map((d) => `${d}\n`).join(''));
        host.err(
          `${r.devices.length} device(s) of model ${o.model} with firmware ${o.firmware}` +
            (r.advisory ? `: advisory ${r.advisory.id} applied (${o.action})${r.skipped.length ? `, ${r.skipped.length} already quarantined` : ''}\n` : ' (dry run: nothing changed)\n'),
        );
      })();
    });
  advisory
    .command('list')
    .description('advisories, applied and withdrawn')
    .addOption(dataDirOpt())
    .option('--json', 'JSON array')
    .action(async (o: { dataDir: string; json?: boolean }) => {
      await withRuntime({ dataDir: o.dataDir, loadIssuers: false }, async (rt) => {
        const list = await rt.store.listAdvisories();
        if (o.json) host.out(JSON.stringify(list.map((a) => ({ ...a, createdAt: a.createdAt.toISOString(), withdrawnAt: a.withdrawnAt?.toISOString() ?? null }))) + '\n');
        else host.out(table([['ID', 'MODEL', 'FIRMWARE', 'ACTION', 'DEVICES', 'CREATED', 'WITHDRAWN'], ...list.map((a) => [String(a.id), a.model, a.firmwareRange, a.action, String(a.devices.length), a.createdAt.toISOString(), a.withdrawnAt?.toISOString() ?? '-'])]));
      })();
    });
  advisory
    .command('withdraw <id>')
    .description('withdraw an advisory (patched firmware is out): restrict/shorten no longer apply; quarantines are lifted per device')
    .addOption(dataDirOpt())
    .action(async (id: string, o: { dataDir: string }) => {
      await withRuntime({ dataDir: o.dataDir, loadIssuers: false }, async (rt) => {
        const a = await withdrawAdvisory({ store: rt.store, clock: rt.clock }, Number(id), 'cli');
        host.err(`advisory ${a.id} withdrawn\n`);
      })();
    });

  // ---------------------------------------------------------------- admin API tokens
  const token = program.command('token').description('bearer tokens of the admin API (/api/v1)');
  token
    .command('create')
    .description('create a token and print it, alone, on stdout (it is shown once; only its HMAC is kept)')
    .addOption(dataDirOpt())
    .addOption(new Option('--role <role>', 'what it may call (README "Admin API")').choices([...ROLES]).makeOptionMandatory())
    .requiredOption('--name <name>', 'a unique name (who or what uses it)')
    .option('--ttl <duration>', 'lifetime', DEFAULT_TOKEN_TTL)
    .action(async (o: { dataDir: string; role: Role; name: string; ttl: string }) => {
      let ttlMs: number;
      try {
        ttlMs = parseDuration(o.ttl);
      } catch (e) {
        throw badRequest(`--ttl: ${(e as Error).message}`);
      }
      await withRuntime({ dataDir: o.dataDir, loadIssuers: false }, async (rt) => {
        const t = await createApiToken(rt.store, rt.tokenKey(), { name: o.name, role: o.role, ttlMs, actor: 'cli', now: rt.clock.now() });
        host.out(`${t.token}\n`);
        host.err(`token ${t.record.name} (${t.record.role}), valid until ${t.record.expiresAt.toISOString()}\n`);
      })();
    });
  token
    .command('list')
    .description('list tokens (never their values)')
    .addOption(dataDirOpt())
    .option('--json', 'JSON array')
    .action(async (o: { dataDir: string; json?: boolean }) => {
      await withRuntime({ dataDir: o.dataDir, loadIssuers: false }, async (rt) => {
        const list = (await rt.store.listApiTokens()).map(apiTokenView);
        if (o.json) host.out(JSON.stringify(list) + '\n');
        else host.out(table([['NAME', 'ROLE', 'EXPIRES', 'REVOKED', 'LAST USED'], ...list.map((t) => [t.name, t.role, t.expires_at, t.revoked_at ?? '-', t.last_used_at ?? '-'])]));
      })();
    });
  token
    .command('revoke <name>')
    .description('revoke a token: it is refused (401) from now on')
    .addOption(dataDirOpt())
    .action(async (name: string, o: { dataDir: string }) => {
      await withRuntime({ dataDir: o.dataDir, loadIssuers: false }, async (rt) => {
        if (!(await rt.store.revokeApiToken(name, rt.clock.now(), 'cli'))) throw notFound(`no unrevoked token named ${name}`);
        host.err(`token ${name} revoked\n`);
      })();
    });

  const request = program.command('request').description('enrollment requests waiting for approval');
  request
    .command('list')
    .description('list enrollment requests (default: pending)')
    .addOption(dataDirOpt())
    .addOption(new Option('--state <state>', 'requests in this state').choices(['pending', 'approved', 'rejected', 'issued', 'all']).default('pending'))
    .option('--json', 'JSON array')
    .action(async (o: { dataDir: string; state: RequestState | 'all'; json?: boolean }) => {
      await withRuntime({ dataDir: o.dataDir, loadIssuers: false }, async (rt) => {
        const list = await rt.store.listRequests(o.state === 'all' ? {} : { state: o.state });
        if (o.json) host.out(JSON.stringify(list.map(requestView)) + '\n');
        else host.out(table([['ID', 'STATE', 'DEVICE', 'PROFILE', 'SUBJECT', 'VIA', 'CREATED'], ...list.map((r) => [r.id, r.state, r.deviceId, r.profile, r.subject, r.via, r.createdAt.toISOString()])]));
      })();
    });
  for (const [verb, state] of [['approve', 'approved'], ['reject', 'rejected']] as const) {
    request
      .command(`${verb} <id>`)
      .description(verb === 'approve' ? "approve a pending request: the device's next request for the same key gets its certificate" : 'reject a pending request: the device gets 403 for that key')
      .addOption(dataDirOpt())
      .option('--reason <text>', 'why (recorded, and shown to the device on reject)')
      .action(async (id: string, o: { dataDir: string; reason?: string }) => {
        await withRuntime({ dataDir: o.dataDir, loadIssuers: false }, async (rt) => {
          const now = rt.clock.now();
          const r = await rt.store.decideRequest(id, state, 'cli', o.reason ?? null, now, {
            at: now,
            actor: 'cli',
            action: `request.${state}`,
            target: id,
            details: { reason: o.reason ?? null },
          });
          host.err(`request ${r.id} for ${r.deviceId} (${r.profile}) ${state}\n`);
        })();
      });
  }

  const cert = program.command('cert').description('issued certificates');
  cert
    .command('list')
    .description('list certificates')
    .addOption(dataDirOpt())
    .option('--device <id>', 'only this device')
    .option('--profile <profile>', 'only this profile')
    .option('--expiring-within <duration>', 'only valid certificates expiring within this duration (e.g. 30d)')
    .addOption(new Option('--status <status>', 'only this status').choices(['valid', 'revoked', 'hold']))
    .option('--json', 'one JSON array of every match')
    .action(async (o: { dataDir: string; device?: string; profile?: string; expiringWithin?: string; status?: 'valid' | 'revoked' | 'hold'; json?: boolean }) => {
      let within: number | undefined;
      if (o.expiringWithin) {
        try {
          within = parseDuration(o.expiringWithin);
        } catch (e) {
          throw badRequest((e as Error).message);
        }
      }
      await withRuntime({ dataDir: o.dataDir, loadIssuers: false }, async (rt) => {
        const now = rt.clock.now();
        const list = await rt.store.listCertificates({
          ...(o.device ? { deviceId: o.device } : {}),
          ...(o.profile ? { profile: o.profile } : {}),
          ...(o.status ? { status: o.status } : {}),
          ...(within !== undefined ? { expiringBefore: new Date(now.getTime() + within), notExpiredAt: now } : {}),
        });
        if (o.json) host.out(JSON.stringify(list.map(certificateView)) + '\n');
        else host.out(table([['SERIAL', 'DEVICE', 'PROFILE', 'ISSUER', 'NOT_AFTER', 'STATUS'], ...list.map((c) => [formatSerial(c.serial), c.deviceId ?? '-', c.profile, c.issuerName, c.notAfter.toISOString(), c.status])]));
      })();
    });
  cert
    .command('show <serial>')
    .description('show one certificate')
    .addOption(dataDirOpt())
    .option('--json', 'JSON output')
    .option('--pem', 'print only the certificate PEM')
    .action(async (serialText: string, o: { dataDir: string; json?: boolean; pem?: boolean }) => {
      const serial = normalizeSerial(serialText);
      if (!serial) throw badRequest(`"${serialText}" is not a serial number in hex`);
      await withRuntime({ dataDir: o.dataDir, loadIssuers: false }, async (rt) => {
        const c = await rt.store.getCertificate(serial);
        if (!c) throw notFound(`no certificate with serial ${formatSerial(serial)}`);
        if (o.pem) host.out(certPem(c.der));
        else if (o.json) host.out(JSON.stringify({ ...certificateView(c), pem: certPem(c.der) }) + '\n');
        else {
          const j = certificateView(c);
          host.out(table(Object.entries(j).map(([k, v]) => [k, Array.isArray(v) ? v.map((s) => `${s.type}:${s.value}`).join(', ') : String(v ?? '-')])) + certPem(c.der));
        }
      })();
    });

  const ca = program.command('ca').description('the CA hierarchy');
  ca.command('chain')
    .description('print the device issuing CA chain as PEM: issuing CA first, root last')
    .addOption(dataDirOpt())
    .option('--issuer <name>', 'another issuing CA (e.g. manufacturing-ca)')
    .action(async (o: { dataDir: string; issuer?: string }) => {
      await withRuntime({ dataDir: o.dataDir, loadIssuers: false }, async (rt) => {
        const issuers = await rt.store.listIssuers();
        const root = issuers.find((i) => i.role === 'root');
        // the device CA issuing now (after a rollover, the new one)
        const device = issuers.find((i) => i.role === 'device');
        const current = device ? currentIssuer(issuers.map((record) => ({ record })), lineageOf(device), rt.clock.now())?.record : undefined;
        const leaf = o.issuer ? issuers.find((i) => i.name === o.issuer) : current;
        if (!leaf || !root) throw notFound(o.issuer ? `no issuer "${o.issuer}"` : 'no CA hierarchy: run `fleetca init` first');
        // the root that signed it (after a root rollover there are two)
        const issuerDer = certificateParts(leaf.certDer).issuerDer;
        const signer = issuers.find((i) => i.role === 'root' && Buffer.from(certificateParts(i.certDer).subjectDer).equals(issuerDer)) ?? root;
        host.out([leaf, ...(leaf.role === 'root' ? [] : [signer])].map((i) => certPem(i.certDer)).join(''));
      })();
    });

  ca.command('rollover')
    .description('a new issuing CA under the root for a ca.yaml issuer (default: the device CA); new certificates come from it from --at on (default: now)')
    .addOption(dataDirOpt())
    .option('--intermediate [name]', 'the ca.yaml issuer to roll over (default: the device issuing CA)')
    .option('--root', 'a new root, with the RFC 4210 link certificates (old-with-new, new-with-old)')
    .option('--root-key <file>', 'the offline root key (PEM), when it is not in the data dir')
    .option('--at <time>', 'schedule the switch (ISO 8601); SCEP GetNextCACert announces the new CA until then')
    .option('--json', 'print the new CA as JSON')
    .action(async (o: { dataDir: string; intermediate?: string | boolean; root?: boolean; rootKey?: string; at?: string; json?: boolean }) => {
      const startedAt = new Date();
      if (o.root && o.intermediate !== undefined) throw badRequest('give --root or --intermediate, not both');
      if (o.root) {
        if (o.at !== undefined) throw badRequest('--at is for --intermediate: a new root is announced by its link certificates at once');
        await withRuntime({ dataDir: o.dataDir, ...(o.rootKey ? { rootKeyFile: o.rootKey } : {}) }, async (rt) => {
          const r = await rolloverRoot(
            { config: rt.config, store: rt.store, crypto: rt.crypto, keys: rt.keyStore(false).keys, clock: rt.clock, ca: rt.ca!, publicUrl: rt.publicUrl! },
            { actor: 'cli', startedAt },
          );
          rt.dataDir.writeCert(r.root.record.name, certPem(r.root.record.certDer));
          for (const l of r.links) rt.dataDir.writeCert(`${l.newRoot}-${l.kind}`, certPem(l.certDer));
          // running servers load it now that its files are in place
          await rt.store.announceIssuers();
          const view = {
            root: r.root.record.name,
            previous: r.previous.record.name,
            not_after: r.root.record.notAfter.toISOString(),
            sha256_fingerprint: createHash('sha256').update(r.root.record.certDer).digest('hex'),
            links: r.links.map((l) => ({ kind: l.kind, not_after: l.notAfter.toISOString(), pem: certPem(l.certDer) })),
          };
          if (o.json) host.out(JSON.stringify(view) + '\n');
          else host.err(`new root ${view.root} (previous: ${view.previous}); link certificates written to the data dir; run \`fleetca ca rollover --intermediate\` to certify a new issuing CA under it\n`);
        })();
        return;
      }
      if (o.intermediate === undefined) throw badRequest('give --intermediate [NAME] (an issuing CA) or --root');
      const at = o.at !== undefined ? new Date(o.at) : undefined;
      if (at && (!/^\d{4}-\d{2}-\d{2}/.test(o.at!) || Number.isNaN(at.getTime()))) throw badRequest(`--at "${o.at}" is not an ISO 8601 time`);
      await withRuntime({ dataDir: o.dataDir, ...(o.rootKey ? { rootKeyFile: o.rootKey } : {}) }, async (rt) => {
        const caCore = rt.ca!;
        const lineage =
          typeof o.intermediate === 'string'
            ? o.intermediate
            : Object.entries(rt.config.settings.issuers).find(([, s]) => s.role === 'device')?.[0];
        if (!lineage) throw badRequest('no device issuer in ca.yaml: name the issuer to roll over');
        const r = await rolloverIntermediate(
          { config: rt.config, store: rt.store, crypto: rt.crypto, keys: rt.keyStore(false).keys, clock: rt.clock, ca: caCore, publicUrl: rt.publicUrl! },
          lineage,
          { ...(at ? { at } : {}), actor: 'cli', startedAt },
        );
        rt.dataDir.writeCert(r.issuer.record.name, certPem(r.issuer.record.certDer));
        for (const sv of r.services) rt.dataDir.writeCert(sv.name, certPem(sv.cert.der));
        // running servers load it now that its certificate and responder are in place
        await rt.store.announceIssuers();
        const view = {
          issuer: r.issuer.record.name,
          lineage,
          previous: r.previous?.record.name ?? null,
          activates_at: r.activatesAt.toISOString(),
          not_after: r.issuer.record.notAfter.toISOString(),
          sha256_fingerprint: createHash('sha256').update(r.issuer.record.certDer).digest('hex'),
        };
        if (o.json) host.out(JSON.stringify(view) + '\n');
        else host.err(`new CA ${view.issuer} for ${lineage} (previous: ${view.previous ?? '-'}); issues from ${view.activates_at}\n`);
      })();
    });

  const crl = program.command('crl').description('certificate revocation lists');
  crl
    .command('publish')
    .description('sign and publish fresh CRLs (a new base full CRL, its shards and a delta) for each issuer whose key is online')
    .addOption(dataDirOpt())
    .option('--issuer <name>', 'only this issuer')
    .option('--root-key <file>', 'encrypted root key file, when the root is offline')
    .action(async (o: { dataDir: string; issuer?: string; rootKey?: string }) => {
      await withRuntime({ dataDir: o.dataDir, ...(o.rootKey ? { rootKeyFile: o.rootKey } : {}) }, async (rt) => {
        const caCore = requireCa(rt);
        const targets = [...caCore.issuers.values()].filter((i) => (o.issuer ? i.record.name === o.issuer : i.signer !== null));
        if (o.issuer && targets.length === 0) throw notFound(`no issuer "${o.issuer}"`);
        for (const i of targets) {
          const pub = await publishCrls({ store: rt.store, clock: rt.clock, settings: crlSettingsOf(rt.config) }, i, { base: true, actor: 'cli' });
          if (!pub) {
            host.err(`another process is publishing the CRLs of ${i.record.name} right now; it will include every change\n`);
            continue;
          }
          host.err(`published CRL #${pub.full.number} (${pub.full.entries} entries) for ${i.record.name}, next update ${pub.full.nextUpdate.toISOString()}\n`);
          for (const sh of pub.shards) host.err(`  shard ${sh.shard}: CRL #${sh.number} (${sh.entries} entries)\n`);
          if (pub.delta) host.err(`  delta CRL #${pub.delta.number} against base #${pub.delta.baseNumber} (${pub.delta.entries} entries)\n`);
        }
      })();
    });

  const root = program.command('root').description('the offline root');
  root
    .command('export')
    .description('write the encrypted root key to FILE (same passphrase), to keep offline')
    .addOption(dataDirOpt())
    .requiredOption('--out <file>', 'destination file (must not exist)')
    .action(async (o: { dataDir: string; out: string }) => {
      await withRuntime({ dataDir: o.dataDir, loadIssuers: false }, async (rt) => {
        const { root: r, keys } = await rootAndKeys(rt);
        if (existsSync(o.out)) throw conflict(`${o.out} exists; refusing to overwrite`);
        writeFileSync(o.out, readFileSync(keys.pathOf(r.name)), { mode: 0o600, flag: 'wx' });
        host.err(`root key exported to ${o.out} (encrypted PKCS#8). Verify it, store it offline, then run \`fleetca root remove\`.\n`);
      })();
    });
  root
    .command('remove')
    .description('delete the root key from the data dir; commands that need it then take --root-key FILE')
    .addOption(dataDirOpt())
    .requiredOption('--exported <file>', 'the file written by `root export`, checked to decrypt to the root key before deleting')
    .action(async (o: { dataDir: string; exported: string }) => {
      await withRuntime({ dataDir: o.dataDir, loadIssuers: false }, async (rt) => {
        const { root: r, keys } = await rootAndKeys(rt);
        const exported = keys.loadFile(o.exported);
        const current = keys.load(r.name)!;
        const der = (k: import('node:crypto').KeyObject) => k.export({ type: 'pkcs8', format: 'der' });
        if (!der(exported).equals(der(current))) throw conflict(`${o.exported} does not hold this CA's root key; nothing removed`);
        keys.remove(r.name);
        host.err('root key removed from the data dir; keep the exported file offline\n');
      })();
    });

  registerAuditCommands(program, { withRuntime, dataDirOpt, host });
  registerBatchCommands(program, { withRuntime, dataDirOpt, host });
  registerAdminCertCommands(program, { withRuntime, dataDirOpt, host });
  registerExpiryCommands(program, { withRuntime, dataDirOpt, host });
  // NAC exports (src/exports), wired in by the composition root
  if (host.registerExports) {
    const group = program.commands.find((c) => c.name() === 'export') ?? program.command('export').description('exports for NACs: trust bundle, FreeRADIUS, endpoint lists');
    host.registerExports(group, { withRuntime, dataDirOpt, host });
  }
  return program;
}

/** Runs the CLI; returns the exit code. */
export async function runCli(host: CliHost, argv: string[]): Promise<number> {
  const program = buildProgram(host);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    const err = e as { code?: string; exitCode?: number; message?: string };
    if (typeof err.code === 'string' && err.code.startsWith('commander.')) {
      // help and version exit 0; usage errors were already printed by commander
      return err.exitCode ?? 2;
    }
    if (e instanceof ConfigError) {
      host.err(`error: ${e.message}\n`);
      return 2;
    }
    if (e instanceof CaError) {
      host.err(`error: ${e.kind === 'internal' ? e.message : e.publicMessage}\n`);
      return exitCodeFor(e.kind);
    }
    host.err(`error: ${(e as Error).message ?? String(e)}\n`);
    return 1;
  }
}

export { formatDuration };
