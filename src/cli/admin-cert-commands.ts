/**
 * `fleetca admin-cert issue|list|revoke|ca`: client certificates of the admin API from the admin CA
 * (README "Admin client certificates"). The admin CA is created by the first `issue` or `ca`; it
 * is apart from the device hierarchy, so nothing that trusts the device root accepts its
 * certificates, and a device certificate never authenticates to the admin API.
 */
import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { CaError, badRequest, conflict, internal } from '../core/errors.js';
import type { Clock } from '../core/clock.js';
import { parseDuration } from '../core/duration.js';
import { formatSerial } from '../core/ids.js';
import type { FleetcaConfig } from '../config/schema.js';
import { decodeCsrInput, pemEncode } from '../pki/pem.js';
import type { CryptoEngine } from '../signing/crypto-pool.js';
import type { KeyStore } from '../signing/key-store.js';
import { exportEncryptedKey, generateKeyPair, spkiOf } from '../signing/keys.js';
import { ensureAdminCa, issueAdminCertificate, revokeAdminCertificate, type AdminCaDeps } from '../ca/admin-ca.js';
import type { AdminCertificate, AdminCertStore, ApiRole, AuditStore } from '../ca/ports.js';
import { ROLES } from '../enrollment/api-tokens.js';

/** The part of the CLI runtime these commands use (program.ts's CliRuntime has it). */
export interface AdminCertCliRuntime {
  config: FleetcaConfig;
  dataDir: { root: string; isInitialised(): boolean };
  store: object;
  crypto: CryptoEngine;
  clock: Clock;
  keyStore(create?: boolean): { keys: KeyStore };
}

/** What program.ts hands over: its runtime wrapper, the --data-dir option and the output streams. */
export interface AdminCertCommandDeps {
  withRuntime: <T>(opts: { dataDir: string; loadIssuers?: boolean }, fn: (rt: AdminCertCliRuntime) => Promise<T>) => () => Promise<T>;
  dataDirOpt: () => Option;
  host: { out: (s: string) => void; err: (s: string) => void };
}

const ACTOR = 'cli';
/** Shortest password of a key file written by `issue`. */
const MIN_PASSWORD_LENGTH = 8;

function isAdminCertStore(s: object): s is AdminCertStore & AuditStore {
  const x = s as Partial<AdminCertStore & AuditStore>;
  return typeof x.getAdminCa === 'function' && typeof x.reserveAdminCertificate === 'function' && typeof x.appendAudit === 'function';
}

function storeOf(rt: AdminCertCliRuntime): AdminCertStore & AuditStore {
  if (!isAdminCertStore(rt.store)) throw internal('this store has no admin certificates');
  return rt.store;
}

function caDeps(rt: AdminCertCliRuntime): AdminCaDeps {
  if (!rt.dataDir.isInitialised()) throw new CaError('unavailable', `${rt.dataDir.root} is not initialised: run \`fleetca init\` first`);
  const issuers = rt.config.settings.issuers;
  const org = Object.values(issuers).find((i) => i.role === 'root')?.subject.O;
  return {
    store: storeOf(rt),
    keys: rt.keyStore(false).keys,
    crypto: rt.crypto,
    clock: rt.clock,
    issuerNames: Object.keys(issuers),
    ...(org ? { organization: org } : {}),
  };
}

/** The first line of the password file, without its line end (as `openssl … -passout file:` reads it). */
function readPassword(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw badRequest(`--key-password-file: cannot read ${file}: ${(e as Error).message}`);
  }
  const password = text.split(/\r?\n/, 1)[0] ?? '';
  if (password.length < MIN_PASSWORD_LENGTH) throw badRequest(`--key-password-file: the password (first line of ${file}) must have at least ${MIN_PASSWORD_LENGTH} characters`);
  return password;
}

function statusOf(c: AdminCertificate, now: Date): string {
  if (c.revokedAt !== null) return 'revoked';
  if (c.certDer === null) return 'unissued';
  return c.notAfter.getTime() < now.getTime() ? 'expired' : 'valid';
}

function view(c: AdminCertificate, now: Date) {
  return {
    name: c.name,
    role: c.role,
    serial: formatSerial(c.serial),
    status: statusOf(c, now),
    not_before: c.notBefore.toISOString(),
    not_after: c.notAfter.toISOString(),
    sha256: c.fingerprint?.toString('hex') ?? null,
    created_at: c.createdAt.toISOString(),
    created_by: c.createdBy,
    revoked_at: c.revokedAt?.toISOString() ?? null,
    revoked_by: c.revokedBy,
  };
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n') + '\n';
}

/** Registers `admin-cert issue|list|revoke|ca` on the program. */
export function registerAdminCertCommands(program: Command, deps: AdminCertCommandDeps): void {
  const { withRuntime, dataDirOpt, host } = deps;
  const cmd = program.command('admin-cert').description('client certificates of the admin API (/api/v1), from the admin CA (not the device CA)');

  cmd
    .command('issue')
    .description('issue an admin client certificate: from --csr (the admin keeps the key), or with a new P-256 key written encrypted to --key-out')
    .addOption(dataDirOpt())
    .requiredOption('--name <name>', 'who holds it: the CN, and the actor `cert:<name>` in the audit log')
    .addOption(new Option('--role <role>', 'what it may call (README "Admin API")').choices([...ROLES]).makeOptionMandatory())
    .option('--validity <duration>', 'lifetime (at most 365d)', '90d')
    .option('--csr <file>', "the admin's PKCS#10 request (PEM or DER); its subject is ignored")
    .option('--key-out <file>', 'without --csr: write a new P-256 key here, as encrypted PKCS#8 PEM (mode 0600, never overwritten)')
    .option('--key-password-file <file>', `with --key-out: the key's password, the first line of this file (at least ${MIN_PASSWORD_LENGTH} characters)`)
    .requiredOption('--out <file>', 'write the certificate here (PEM)')
    .action(async (o: { dataDir: string; name: string; role: ApiRole; validity: string; csr?: string; keyOut?: string; keyPasswordFile?: string; out: string }) => {
      let validityMs: number;
      try {
        validityMs = parseDuration(o.validity);
      } catch (e) {
        throw badRequest(`--validity: ${(e as Error).message}`);
      }
      if ((o.csr === undefined) === (o.keyOut === undefined)) throw badRequest('give either --csr FILE or --key-out FILE --key-password-file FILE');
      if (o.keyOut !== undefined && o.keyPasswordFile === undefined) throw badRequest('--key-out needs --key-password-file (the key is never written unencrypted)');
      if (o.csr !== undefined && o.keyPasswordFile !== undefined) throw badRequest('--key-password-file goes with --key-out, not --csr');
      let csrDer: Buffer | undefined;
      if (o.csr !== undefined) {
        try {
          csrDer = decodeCsrInput(readFileSync(o.csr));
        } catch (e) {
          if (e instanceof CaError) throw e;
          throw badRequest(`--csr: cannot read ${o.csr}: ${(e as Error).message}`);
        }
      }
      const password = o.keyPasswordFile !== undefined ? readPassword(o.keyPasswordFile) : undefined;
      await withRuntime({ dataDir: o.dataDir, loadIssuers: false }, async (rt) => {
        const d = caDeps(rt);
        let keyWritten: string | null = null;
        let spkiDer: Buffer | undefined;
        if (o.keyOut !== undefined) {
          const kp = generateKeyPair('P-256');
          spkiDer = spkiOf(kp.publicKey);
          try {
            // 'wx': never overwrite a key someone may still use
            writeFileSync(o.keyOut, exportEncryptedKey(kp.privateKey, password!), { mode: 0o600, flag: 'wx' });
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw conflict(`${o.keyOut} exists; refusing to overwrite a key`);
            throw badRequest(`--key-out: cannot write ${o.keyOut}: ${(e as Error).message}`);
          }
          keyWritten = o.keyOut;
        }
        try {
          const caExisted = (await d.store.getAdminCa()) !== null;
          const r = await issueAdminCertificate(d, {
            name: o.name,
            role: o.role,
            validityMs,
            publicKey: csrDer ? { csrDer } : { spkiDer: spkiDer! },
            actor: ACTOR,
          });
          writeFileSync(o.out, pemEncode('CERTIFICATE', r.der));
          if (!caExisted) host.err(`created the admin CA (print it with \`fleetca admin-cert ca\`)\n`);
          host.err(
            `admin certificate for ${r.record.name} (${r.record.role}), serial ${formatSerial(r.record.serial)}, valid until ${r.record.notAfter.toISOString()}: ${o.out}` +
              (keyWritten ? `; encrypted key: ${keyWritten}` : '') +
              '\n',
          );
        } catch (e) {
          if (keyWritten) unlinkSync(keyWritten); // no certificate: the new key is of no use
          throw e;
        }
      })();
    });

  cmd
    .command('list')
    .description('list admin certificates (valid, expired, revoked)')
    .addOption(dataDirOpt())
    .option('--json', 'JSON array')
    .action(async (o: { dataDir: string; json?: boolean }) => {
      await withRuntime({ dataDir: o.dataDir, loadIssuers: false }, async (rt) => {
        const now = rt.clock.now();
        const list = (await storeOf(rt).listAdminCertificates()).map((c) => view(c, now));
        if (o.json) host.out(JSON.stringify(list) + '\n');
        else if (list.length > 0) host.out(table([['NAME', 'ROLE', 'SERIAL', 'STATUS', 'NOT_AFTER', 'REVOKED'], ...list.map((c) => [c.name, c.role, c.serial, c.status, c.not_after, c.revoked_at ?? '-'])]));
      })();
    });

  cmd
    .command('revoke <name-or-serial>')
    .description('revoke every unrevoked admin certificate of a name, or one by serial: refused (401) from the next request on')
    .addOption(dataDirOpt())
    .action(async (ref: string, o: { dataDir: string }) => {
      await withRuntime({ dataDir: o.dataDir, loadIssuers: false }, async (rt) => {
        const revoked = await revokeAdminCertificate({ store: storeOf(rt), clock: rt.clock }, ref, ACTOR);
        for (const c of revoked) host.err(`admin certificate ${formatSerial(c.serial)} of ${c.name} (${c.role}) revoked\n`);
      })();
    });

  cmd
    .command('ca')
    .description('print the admin CA certificate (PEM; created when there is none): what admin clients and proxies may pin')
    .addOption(dataDirOpt())
    .action(async (o: { dataDir: string }) => {
      await withRuntime({ dataDir: o.dataDir, loadIssuers: false }, async (rt) => {
        const ca = await ensureAdminCa(caDeps(rt), ACTOR);
        if (ca.created) host.err('created the admin CA\n');
        host.out(pemEncode('CERTIFICATE', ca.record.certDer));
      })();
    });
}
