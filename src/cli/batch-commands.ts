/**
 * `fleetca batch run | list | show | revoke`: factory batches (README "Bulk provisioning"). The
 * work is src/bulk's; this file reads the files and options, draws progress, and prints.
 */
import { batchRejectView, batchView } from '../bulk/views.js';
import { createReadStream, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import cliProgress from 'cli-progress';
import { Option, type Command } from 'commander';
import { CaError, badRequest, internal, notFound } from '../core/errors.js';
import type { Clock } from '../core/clock.js';
import { parseDuration, formatDuration } from '../core/duration.js';
import { formatSerial } from '../core/ids.js';
import type { FleetcaConfig } from '../config/schema.js';
import type { CertificateAuthority } from '../ca/issuance.js';
import type { CryptoEngine } from '../signing/crypto-pool.js';
import type { AuditStore, CertificateReader, RevocationReason } from '../ca/ports.js';
import { runBatch, type BatchProgress, type RunCounts } from '../bulk/runner.js';
import { RECALL_REASONS, revokeBatch } from '../bulk/recall.js';
import type { BatchFormat, BatchKeygen, BatchStore } from '../bulk/ports.js';

/** The part of the CLI runtime these commands use (program.ts's CliRuntime has it). */
export interface BatchCliRuntime {
  config: FleetcaConfig;
  store: object;
  crypto: CryptoEngine;
  clock: Clock;
  ca: CertificateAuthority | null;
  secretKey(): Buffer;
  dataDir: { root: string };
}

/** What program.ts hands over: its runtime wrapper, the --data-dir option and the output streams. */
export interface BatchCommandDeps {
  withRuntime: <T>(opts: { dataDir: string; loadIssuers?: boolean; workers?: boolean }, fn: (rt: BatchCliRuntime) => Promise<T>) => () => Promise<T>;
  dataDirOpt: () => Option;
  host: { out: (s: string) => void; err: (s: string) => void };
  /** Whether stderr is a terminal (a progress bar) or not (plain lines); default: process.stderr.isTTY. */
  isTty?: () => boolean;
}

type Store = BatchStore & AuditStore & Pick<CertificateReader, 'getCertificate'>;

function batchStoreOf(rt: BatchCliRuntime): Store {
  const s = rt.store as Partial<Store>;
  if (typeof s.openBatch !== 'function' || typeof s.batchCertificates !== 'function') throw internal('this store has no factory batches');
  return rt.store as Store;
}

function requireCa(rt: BatchCliRuntime): CertificateAuthority {
  if (!rt.ca) throw new CaError('unavailable', `${rt.dataDir.root} is not initialised: run \`fleetca init\` first`);
  return rt.ca;
}

/** The password file's content: one line (a trailing newline is not part of it), never empty. */
function readPassword(file: string, warn: (s: string) => void): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw badRequest(`cannot read --key-password-file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const password = text.replace(/\r?\n$/, '');
  if (password.length === 0) throw badRequest(`--key-password-file ${file} is empty`);
  if (password.includes('\n')) throw badRequest(`--key-password-file ${file} has more than one line`);
  if (password.length < 16) warn(`warning: the key password is ${password.length} characters long; the keys are only as safe as it is (use 16 or more random characters)\n`);
  if ((statSync(file).mode & 0o077) !== 0) warn(`warning: ${file} can be read by other users (chmod 600 it)\n`);
  return password;
}

function rate(done: number, since: number): number {
  const s = (Date.now() - since) / 1000;
  return s > 0 ? done / s : 0;
}

/** A cli-progress bar on a terminal: count, rate, ETA. */
function barProgress(): BatchProgress {
  let bar: cliProgress.SingleBar | null = null;
  let t0 = Date.now();
  return {
    start(total, batchId) {
      t0 = Date.now();
      bar = new cliProgress.SingleBar(
        {
          format: `batch ${batchId} [{bar}] {value}/{total} | {rate}/s | ETA {eta_formatted} | issued {issued} rejected {rejected}`,
          stream: process.stderr,
          hideCursor: true,
          etaBuffer: 200,
        },
        cliProgress.Presets.shades_classic,
      );
      bar.start(total, 0, { rate: '0', issued: 0, rejected: 0 });
    },
    update(done, c: RunCounts) {
      // devices complete from an earlier run go by at once: the rate is of this run's work
      bar?.update(done, { rate: rate(done - c.reused, t0).toFixed(0), issued: c.issued, rejected: c.rejected });
    },
    stop() {
      bar?.stop();
    },
  };
}

/** Plain lines (a log, a CI job): one every `everyMs` and one at the end. */
function lineProgress(err: (s: string) => void, everyMs = 5000): BatchProgress {
  let total = 0;
  let t0 = Date.now();
  let last = 0;
  let id = '';
  let state = { done: 0, c: { issued: 0, completed: 0, reused: 0, rejected: 0, replaced: 0, secrets: 0 } as RunCounts };
  const print = () => {
    const { done, c } = state;
    const r = rate(done - c.reused, t0);
    const eta = r > 0 ? formatDuration(Math.round(((total - done) / r) * 1000)) : '?';
    err(`batch ${id}: ${done}/${total} rows (${total ? ((done / total) * 100).toFixed(1) : '100'} %), ${r.toFixed(0)}/s, ETA ${eta}; issued ${c.issued}, completed ${c.completed}, already done ${c.reused}, rejected ${c.rejected}\n`);
  };
  return {
    start(t, batchId) {
      total = t;
      id = batchId;
      t0 = Date.now();
      last = t0;
    },
    update(done, c) {
      state = { done, c };
      if (Date.now() - last >= everyMs) {
        last = Date.now();
        print();
      }
    },
    stop() {
      print();
    },
  };
}

function table(rows: string[][]): string {
  if (rows.length === 0) return '';
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n') + '\n';
}

const positiveInt = (flag: string, v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw badRequest(`${flag} must be a positive integer`);
  return n;
};

/** Registers `batch run`, `batch list`, `batch show` and `batch revoke`. */
export function registerBatchCommands(program: Command, deps: BatchCommandDeps): void {
  const { withRuntime, dataDirOpt, host } = deps;
  const isTty = deps.isTty ?? (() => process.stderr.isTTY === true);
  const batch = program.command('batch').description('factory batches: provision a production run from a manifest (README "Bulk provisioning")');

  batch
    .command('run <manifest>')
    .description('issue a certificate and/or a one-time enrollment secret per manifest row (CSV with a header, or JSON Lines); rerun to resume')
    .addOption(dataDirOpt())
    .requiredOption('--out <dir>', 'output folder (created; must be empty for a new batch)')
    .option('--profile <profile>', 'profile of rows that name none')
    .addOption(new Option('--keygen <who>', 'who makes the keys: the device (csr / public_key in the row) or fleetca').choices(['device', 'server']).default('device'))
    .addOption(new Option('--format <format>', 'server keys: encrypted PKCS#8 PEM (key.pem) or PKCS#12 (bundle.p12)').choices(['pem', 'p12']).default('pem'))
    .option('--key-password-file <file>', 'server keys: the password they are encrypted with (first line; never written out)')
    .option('--kdf-iterations <n>', 'PBKDF2-SHA256 iterations of the key encryption and the PKCS#12 MAC', '2048')
    .option('--secrets', 'also create a one-time EST/SCEP enrollment secret per device (in manifest.csv)')
    .option('--secret-ttl <duration>', 'lifetime of the secrets (default: enrollment.secretTtl in ca.yaml)')
    .option('--batch-id <id>', 'the batch id (default: derived from the manifest SHA-256); the same id resumes')
    .option('--strict', 'refuse the whole batch on the first bad row (default: issue the good rows, list the rest in rejects.csv)')
    .option('--concurrency <n>', 'devices in flight', '64')
    .option('--json', 'print the outcome as JSON on stdout')
    .action(
      async (
        manifest: string,
        o: {
          dataDir: string;
          out: string;
          profile?: string;
          keygen: BatchKeygen;
          format: BatchFormat;
          keyPasswordFile?: string;
          kdfIterations: string;
          secrets?: boolean;
          secretTtl?: string;
          batchId?: string;
          strict?: boolean;
          concurrency: string;
          json?: boolean;
        },
      ) => {
        const kdfIterations = positiveInt('--kdf-iterations', o.kdfIterations);
        if (kdfIterations < 1000) throw badRequest('--kdf-iterations must be at least 1000');
        const concurrency = positiveInt('--concurrency', o.concurrency);
        let secretTtlMs: number | undefined;
        if (o.secretTtl !== undefined) {
          try {
            secretTtlMs = parseDuration(o.secretTtl);
          } catch (e) {
            throw badRequest(`--secret-ttl: ${(e as Error).message}`);
          }
        }
        if (o.keygen === 'device' && o.keyPasswordFile) throw badRequest('--key-password-file is for --keygen server');
        const password = o.keyPasswordFile ? readPassword(o.keyPasswordFile, host.err) : undefined;
        try {
          if (!statSync(manifest).isFile()) throw new Error('not a file');
        } catch (e) {
          throw badRequest(`cannot read the manifest ${manifest}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
        }
        const base = path.dirname(path.resolve(manifest));
        await withRuntime({ dataDir: o.dataDir, workers: true }, async (rt) => {
          const ca = requireCa(rt);
          const r = await runBatch(
            { ca, store: batchStoreOf(rt), config: rt.config, clock: rt.clock, secretKey: () => rt.secretKey(), crypto: rt.crypto },
            {
              manifest: () => createReadStream(manifest),
              manifestName: path.basename(manifest),
              readFile: (f) => readFileSync(path.resolve(base, f)),
              ...(o.batchId !== undefined ? { batchId: o.batchId } : {}),
              outDir: o.out,
              ...(o.profile !== undefined ? { profile: o.profile } : {}),
              keygen: o.keygen,
              format: o.format,
              ...(password !== undefined ? { password } : {}),
              kdfIterations,
              secrets: o.secrets ?? false,
              ...(secretTtlMs !== undefined ? { secretTtlMs } : {}),
              strict: o.strict ?? false,
              concurrency,
              actor: 'cli',
              progress: isTty() ? barProgress() : lineProgress(host.err),
            },
          );
          const c = r.counts;
          if (o.json) host.out(JSON.stringify({ ...batchView(r.batch), this_run: { issued: c.issued, completed: c.completed, already_done: c.reused, rejected: c.rejected, secrets: c.secrets, replaced: r.replaced.map(formatSerial) } }) + '\n');
          host.err(
            `batch ${r.batch.id} complete in ${r.outDir}: ${r.batch.devices.done} devices (${c.issued} certificates issued now, ${c.completed} completed without a new one, ${c.reused} done before), ${r.rejects.length} rejected rows${r.rejects.length ? ' (rejects.csv)' : ''}` +
              (o.secrets ? `, ${c.secrets} secrets created` : '') +
              '\n',
          );
          for (const s of r.replaced) host.err(`warning: certificate ${formatSerial(s)} lost its server-generated key before it was written; revoked (superseded) and replaced\n`);
        })();
      },
    );

  batch
    .command('list')
    .description('batches, newest first')
    .addOption(dataDirOpt())
    .option('--json', 'JSON array')
    .action(async (o: { dataDir: string; json?: boolean }) => {
      await withRuntime({ dataDir: o.dataDir, loadIssuers: false }, async (rt) => {
        const list = await batchStoreOf(rt).listBatches();
        if (o.json) host.out(JSON.stringify(list.map(batchView)) + '\n');
        else
          host.out(
            table([
              ['ID', 'STATE', 'DEVICES', 'REJECTED', 'KEYGEN', 'CREATED', 'REVOKED'],
              ...list.map((b) => [b.id, b.state, `${b.devices.done}/${b.devices.done + b.devices.pending + b.devices.rejected}`, String(b.rejected), `${b.options.keygen}${b.options.keygen === 'server' ? `/${b.options.format}` : ''}`, b.createdAt.toISOString(), b.revokedAt?.toISOString() ?? '-']),
            ]),
          );
      })();
    });

  batch
    .command('show <id>')
    .description('one batch: options, counts, rejected rows (--devices: every device and its certificate)')
    .addOption(dataDirOpt())
    .option('--devices', 'list every device of the batch')
    .option('--json', 'JSON output')
    .action(async (id: string, o: { dataDir: string; devices?: boolean; json?: boolean }) => {
      await withRuntime({ dataDir: o.dataDir, loadIssuers: false }, async (rt) => {
        const store = batchStoreOf(rt);
        const b = await store.getBatch(id);
        if (!b) throw notFound(`no batch ${id}`);
        const rejects = await store.listBatchRejects(id);
        const devices = o.devices ? await store.listBatchDevices(id) : [];
        if (o.json) {
          host.out(
            JSON.stringify({
              ...batchView(b),
              rejects: rejects.map(batchRejectView),
              ...(o.devices ? { device_list: devices.map((d) => ({ device_id: d.deviceId, line: d.line, profile: d.profile, state: d.state, serial: d.serial ? formatSerial(d.serial) : null, replaced: d.replaced.map(formatSerial), secret: d.secretId !== null, reason: d.reason })) } : {}),
            }) + '\n',
          );
          return;
        }
        const v = batchView(b);
        host.out(table(Object.entries(v).map(([k, val]) => [k, String(val ?? '-')])));
        if (rejects.length) host.out('\n' + table([['LINE', 'DEVICE', 'REASON'], ...rejects.map((r) => [String(r.line), r.deviceId ?? '-', r.reason])]));
        if (devices.length) host.out('\n' + table([['LINE', 'DEVICE', 'STATE', 'SERIAL', 'REPLACED'], ...devices.map((d) => [String(d.line), d.deviceId, d.state, d.serial ? formatSerial(d.serial) : '-', d.replaced.map(formatSerial).join(',') || '-'])]));
      })();
    });

  batch
    .command('revoke <id>')
    .description('recall a production run: revoke every certificate of the batch (rerun to finish an interrupted recall)')
    .addOption(dataDirOpt())
    .addOption(new Option('--reason <reason>', 'RFC 5280 reason').choices([...RECALL_REASONS]).makeOptionMandatory())
    .option('--json', 'print the revoked serials as JSON')
    .action(async (id: string, o: { dataDir: string; reason: RevocationReason; json?: boolean }) => {
      await withRuntime({ dataDir: o.dataDir }, async (rt) => {
        const ca = requireCa(rt);
        const store = batchStoreOf(rt);
        const b = await store.getBatch(id);
        if (!b) throw notFound(`no batch ${id}`);
        let bar: cliProgress.SingleBar | null = null;
        let lastLine = Date.now();
        const r = await revokeBatch({ ca, store, clock: rt.clock }, id, o.reason, 'cli', (done, total) => {
          if (isTty()) {
            if (!bar) {
              bar = new cliProgress.SingleBar({ format: `revoking batch ${id} [{bar}] {value}/{total} | ETA {eta_formatted}`, stream: process.stderr }, cliProgress.Presets.shades_classic);
              bar.start(total, 0);
            }
            bar.update(done);
          } else if (Date.now() - lastLine > 5000 || done === total) {
            lastLine = Date.now();
            host.err(`revoking batch ${id}: ${done}/${total}\n`);
          }
        }).finally(() => (bar as cliProgress.SingleBar | null)?.stop());
        if (o.json) host.out(JSON.stringify({ batch: id, reason: o.reason, revoked: r.revoked.map(formatSerial), already_revoked: r.alreadyRevoked }) + '\n');
        host.err(`batch ${id} revoked (${o.reason}): ${r.revoked.length} certificate(s) revoked now, ${r.alreadyRevoked} already revoked\n`);
      })();
    });
}

