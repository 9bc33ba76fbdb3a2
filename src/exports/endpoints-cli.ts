/**
 * `fleetca export endpoints --format ise|clearpass|packetfence|csv|json [--out FILE]`: the device
 * identity list a NAC imports (README "NAC integration: endpoint lists"). Retired devices are left
 * out; MAC-keyed formats skip devices without a MAC and say which on stderr.
 */
import { renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Option, type Command } from 'commander';
import { stringify } from 'csv-stringify/sync';
import { badRequest } from '../core/errors.js';
import type { Clock } from '../core/clock.js';
import type { FleetcaConfig } from '../config/schema.js';
import type { DeviceStore } from '../ca/ports.js';
import { listInventory } from '../enrollment/inventory.js';
import { nacIdentity } from '../enrollment/nac.js';
import { ENDPOINT_FORMATS, endpointTable, type EndpointFormat } from './endpoints.js';

export interface EndpointExportDeps {
  withRuntime: <T>(opts: { dataDir: string; loadIssuers?: boolean }, fn: (rt: { config: FleetcaConfig; store: Pick<DeviceStore, 'listDevices'>; clock: Clock }) => Promise<T>) => () => Promise<T>;
  dataDirOpt: () => Option;
  host: { out: (s: string) => void; err: (s: string) => void };
}

/** Writes `text` to `file` whole or not at all (a temporary file beside it, renamed). */
function writeAtomically(file: string, text: string): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    writeFileSync(tmp, text, { mode: 0o644 });
    renameSync(tmp, file);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw badRequest(`cannot write ${file}: ${err.code ?? err.message}`);
  }
}

export function registerEndpointExport(exportCmd: Command, deps: EndpointExportDeps): void {
  const { host } = deps;
  exportCmd
    .command('endpoints')
    .description('device identities for NAC endpoint import: MACs, device class, NAC role, certificate serial, SHA-256, notAfter, status')
    .addOption(deps.dataDirOpt())
    .addOption(new Option('--format <format>', 'import format').choices([...ENDPOINT_FORMATS]).default('csv'))
    .option('--out <file>', 'write to this file (atomically) instead of stdout')
    .action(async (o: { dataDir: string; format: EndpointFormat; out?: string }) => {
      await deps.withRuntime({ dataDir: o.dataDir, loadIssuers: false }, async (rt) => {
        const now = rt.clock.now();
        const { entries } = await listInventory({ store: rt.store, config: rt.config }, {}, now);
        const identities = entries.map((e) => nacIdentity(e, now));
        let text: string;
        let count: number;
        if (o.format === 'json') {
          const kept = identities.filter((i) => !i.removed);
          text = JSON.stringify(kept, null, 2) + '\n';
          count = kept.length;
        } else {
          const t = endpointTable(o.format, identities);
          text = stringify(t.rows, { header: t.header, columns: t.columns });
          count = t.rows.length;
          if (t.withoutMac.length > 0) host.err(`${t.withoutMac.length} device(s) without a MAC left out of the ${o.format} list: ${t.withoutMac.slice(0, 20).join(', ')}${t.withoutMac.length > 20 ? ', …' : ''}\n`);
        }
        if (o.out) {
          writeAtomically(o.out, text);
          host.err(`${count} ${o.format} rows written to ${o.out}\n`);
        } else host.out(text);
      })();
    });
}
