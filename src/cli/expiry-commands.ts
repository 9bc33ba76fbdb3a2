/**
 * `fleetca expiry report` and `fleetca renew` (issue 9, README "Expiry, rotation and renewal"):
 * the list an admin works through to chase devices that do not re-enroll on their own, and the
 * server-side re-issue for devices that are pushed their certificate.
 */
import { Option, type Command } from 'commander';
import { stringify as stringifyCsv } from 'csv-stringify/sync';
import { CaError, badRequest, internal } from '../core/errors.js';
import type { Clock } from '../core/clock.js';
import { formatDuration, parseDuration } from '../core/duration.js';
import { formatSerial, normalizeSerial } from '../core/ids.js';
import type { FleetcaConfig } from '../config/schema.js';
import { pemEncode } from '../pki/pem.js';
import type { CertificateAuthority } from '../ca/issuance.js';
import type { CertificateRecord, DeviceRecord, DeviceStore } from '../ca/ports.js';
import { listInventory, type InventoryEntry } from '../enrollment/inventory.js';
import type { ExpiryStore, SupersedeStore } from '../enrollment/ports.js';
import { renewCertificate } from '../enrollment/renew.js';

/** The part of the CLI runtime these commands use (program.ts's CliRuntime has it). */
export interface ExpiryCliRuntime {
  config: FleetcaConfig;
  dataDir: { root: string };
  store: object;
  clock: Clock;
  ca: CertificateAuthority | null;
}

/** What program.ts hands over: its runtime wrapper, the --data-dir option and the output streams. */
export interface ExpiryCommandDeps {
  withRuntime: <T>(opts: { dataDir: string; loadIssuers?: boolean }, fn: (rt: ExpiryCliRuntime) => Promise<T>) => () => Promise<T>;
  dataDirOpt: () => Option;
  host: { out: (s: string) => void; err: (s: string) => void };
}

type ReportStore = ExpiryStore & Pick<DeviceStore, 'listDevices'>;
type RenewStore = Pick<SupersedeStore, 'supersede'> & {
  getCertificate(serial: string): Promise<CertificateRecord | null>;
  getDevice(id: string): Promise<DeviceRecord | null>;
};

function reportStoreOf(rt: ExpiryCliRuntime): ReportStore {
  const s = rt.store as Partial<ReportStore>;
  if (typeof s.expiryCounts !== 'function' || typeof s.listDevices !== 'function') throw internal('this store has no expiry tracking');
  return s as ReportStore;
}

function renewStoreOf(rt: ExpiryCliRuntime): RenewStore {
  const s = rt.store as Partial<RenewStore>;
  if (typeof s.supersede !== 'function' || typeof s.getCertificate !== 'function' || typeof s.getDevice !== 'function') throw internal('this store cannot renew');
  return s as RenewStore;
}

/** The columns of `expiry report --csv`, one row per device. */
export const EXPIRY_CSV_COLUMNS = ['device', 'profile', 'serial', 'not_after', 'health', 'stale', 'last_enrolled_at', 'renewal_from', 'state', 'criticality'] as const;

type DeviceRow = Record<(typeof EXPIRY_CSV_COLUMNS)[number], string | boolean | null>;

function deviceRow(e: InventoryEntry): DeviceRow {
  const c = e.current!;
  return {
    device: e.device.id,
    profile: c.profile,
    serial: formatSerial(c.serial),
    not_after: c.notAfter.toISOString(),
    health: e.health,
    stale: e.stale,
    last_enrolled_at: e.device.lastEnrolledAt?.toISOString() ?? null,
    renewal_from: e.renewalFrom?.toISOString() ?? null,
    state: e.device.state,
    criticality: e.criticality,
  };
}

function table(rows: string[][]): string {
  if (rows.length === 0) return '';
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n') + '\n';
}

// listInventory reads one row beyond its limit to tell "more": 499 fills one 500-row store page
const PAGE = 499;

/**
 * The devices to chase: not retired, with a current certificate that is stale (inside its renewal
 * window or expired, inventory's judgement) or expires within `withinMs`; most urgent first.
 */
async function devicesToChase(store: ReportStore, config: FleetcaConfig, now: Date, withinMs: number): Promise<InventoryEntry[]> {
  const horizon = now.getTime() + withinMs;
  const out: InventoryEntry[] = [];
  let after: string | undefined;
  for (;;) {
    // one store page at a time: a fleet is never held in memory, only the devices to chase
    const page = await listInventory({ store, config }, { limit: PAGE, ...(after !== undefined ? { after } : {}) }, now);
    for (const e of page.entries) {
      if (!e.current || e.device.state === 'retired') continue;
      if (e.stale || e.current.notAfter.getTime() <= horizon) out.push(e);
    }
    if (!page.more || page.entries.length === 0) break;
    after = page.entries[page.entries.length - 1]!.device.id;
  }
  return out.sort((a, b) => a.current!.notAfter.getTime() - b.current!.notAfter.getTime() || (a.device.id < b.device.id ? -1 : 1));
}

export function registerExpiryCommands(program: Command, deps: ExpiryCommandDeps): void {
  const { withRuntime, dataDirOpt, host } = deps;

  const expiry = program.command('expiry').description('certificate expiry: what lapses soon, and which devices must be chased');
  expiry
    .command('report')
    .description('per profile: certificates expiring within the window and expired; per device: every device whose current certificate is stale or expires within the window (most urgent first)')
    .addOption(dataDirOpt())
    .option('--within <duration>', 'the window (e.g. 7d, 30d, 90d)', '30d')
    .addOption(new Option('--json', 'one JSON object {generated_at, within, profiles, devices}').conflicts('csv'))
    .option('--csv', 'the device rows as CSV with a header row (the per-profile counts go to stderr)')
    .action(async (o: { dataDir: string; within: string; json?: boolean; csv?: boolean }) => {
      let withinMs: number;
      try {
        withinMs = parseDuration(o.within);
      } catch (e) {
        throw badRequest(`--within: ${(e as Error).message}`);
      }
      await withRuntime({ dataDir: o.dataDir, loadIssuers: false }, async (rt) => {
        const store = reportStoreOf(rt);
        const now = rt.clock.now();
        const counts = new Map((await store.expiryCounts(now, [withinMs])).map((c) => [c.profile, c]));
        const devices = await devicesToChase(store, rt.config, now, withinMs);
        const names = new Set([...[...rt.config.profiles.values()].filter((p) => p.kind === 'device').map((p) => p.name), ...counts.keys()]);
        const profiles = [...names].sort().map((profile) => ({
          profile,
          expiring: counts.get(profile)?.expiring[0] ?? 0,
          expired: counts.get(profile)?.expired ?? 0,
          stale_devices: devices.filter((e) => e.current!.profile === profile && e.stale).length,
        }));
        const rows = devices.map(deviceRow);
        const within = formatDuration(withinMs);
        if (o.json) {
          host.out(JSON.stringify({ generated_at: now.toISOString(), within, profiles, devices: rows }) + '\n');
        } else if (o.csv) {
          host.out(stringifyCsv(rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v === null ? '' : String(v)]))), { header: true, columns: [...EXPIRY_CSV_COLUMNS] }));
        } else {
          host.out(
            table([['PROFILE', `EXPIRING_WITHIN_${within.toUpperCase()}`, 'EXPIRED', 'STALE_DEVICES'], ...profiles.map((p) => [p.profile, String(p.expiring), String(p.expired), String(p.stale_devices)])]) +
              '\n' +
              table([
                ['DEVICE', 'PROFILE', 'SERIAL', 'NOT_AFTER', 'HEALTH', 'STALE', 'LAST_ENROLLED_AT', 'STATE'],
                ...rows.map((r) => [String(r.device), String(r.profile), String(r.serial), String(r.not_after), String(r.health), r.stale ? 'yes' : 'no', r.last_enrolled_at === null ? '-' : String(r.last_enrolled_at), String(r.state)]),
              ]),
          );
        }
        const summary = profiles.filter((p) => p.expiring + p.expired + p.stale_devices > 0).map((p) => `${p.profile}: ${p.expiring} expiring within ${within}, ${p.expired} expired, ${p.stale_devices} stale`);
        host.err(`${rows.length} device(s) to chase${summary.length ? `; ${summary.join('; ')}` : ''}\n`);
      })();
    });

  program
    .command('renew <serial>')
    .description('re-issue a device certificate server-side for the same public key (same subject, SANs and profile; new serial and validity), for devices that are pushed their certificate; the old one is superseded')
    .addOption(dataDirOpt())
    .option('--json', 'print {serial, device, profile, not_before, not_after, renewed, superseded, pem} instead of the PEM')
    .action(async (serialText: string, o: { dataDir: string; json?: boolean }) => {
      const serial = normalizeSerial(serialText);
      if (!serial) throw badRequest(`"${serialText}" is not a serial number in hex`);
      await withRuntime({ dataDir: o.dataDir }, async (rt) => {
        if (!rt.ca) throw new CaError('unavailable', `${rt.dataDir.root} is not initialised: run \`fleetca init\` first`);
        const { certificate: c, superseded } = await renewCertificate({ ca: rt.ca, store: renewStoreOf(rt), config: rt.config, clock: rt.clock }, serial, 'cli', 'cli');
        const pem = pemEncode('CERTIFICATE', c.der);
        if (o.json) {
          host.out(
            JSON.stringify({
              serial: formatSerial(c.serial),
              device: c.deviceId,
              profile: c.profile,
              not_before: c.notBefore.toISOString(),
              not_after: c.notAfter.toISOString(),
              renewed: formatSerial(serial),
              superseded: superseded.map(formatSerial),
              pem,
            }) + '\n',
          );
        } else host.out(pem);
        const grace = rt.config.profiles.get(c.profile)!.renewal.supersededGrace;
        host.err(
          `renewed ${formatSerial(serial)}: new serial ${formatSerial(c.serial)} for ${c.deviceId} (${c.profile}), valid until ${c.notAfter.toISOString()}; ` +
            `the old certificate stays valid for ${formatDuration(grace)} (renewal.supersededGrace), then it is revoked (superseded)\n`,
        );
      })();
    });
}
