/**
 * `fleetca audit verify` and `fleetca audit export`: the tamper-evident audit log (README "Audit
 * log"). Both seal first (rows written since the last sealing pass join the chain), so an
 * installation that never runs the server still gets a chain and anchors.
 */
import type { Command, Option } from 'commander';
import type { Logger } from 'pino';
import { badRequest, conflict, internal } from '../core/errors.js';
import type { Clock } from '../core/clock.js';
import type { FleetcaConfig } from '../config/schema.js';
import type { CryptoEngine } from '../signing/crypto-pool.js';
import type { KeyStore } from '../signing/key-store.js';
import { AuditChain, auditKeyFromStore, type AuditVerifyReport } from '../ca/audit-chain.js';
import type { AuditChainStore } from '../ca/ports.js';

/** The part of the CLI runtime these commands use (program.ts's CliRuntime has it). */
export interface AuditCliRuntime {
  config: FleetcaConfig;
  store: object;
  crypto: CryptoEngine;
  clock: Clock;
  log: Logger;
  keyStore(create?: boolean): { keys: KeyStore };
}

/** What program.ts hands over: its runtime wrapper, the --data-dir option and the output streams. */
export interface AuditCommandDeps {
  withRuntime: <T>(opts: { dataDir: string; loadIssuers?: boolean }, fn: (rt: AuditCliRuntime) => Promise<T>) => () => Promise<T>;
  dataDirOpt: () => Option;
  host: { out: (s: string) => void; err: (s: string) => void };
}

function isAuditChainStore(s: object): s is AuditChainStore {
  const x = s as Partial<AuditChainStore>;
  return typeof x.auditSealSession === 'function' && typeof x.auditChainSnapshot === 'function' && typeof x.auditExport === 'function';
}

function chainOf(rt: AuditCliRuntime): AuditChain {
  if (!isAuditChainStore(rt.store)) throw internal('this store has no audit chain');
  return new AuditChain({
    store: rt.store,
    clock: rt.clock,
    key: auditKeyFromStore(rt.keyStore(false).keys, rt.crypto),
    anchorEveryMs: rt.config.settings.audit.anchorEvery,
    log: (level, obj, msg) => rt.log[level](obj, msg),
  });
}

function parseInstant(flag: string, text: string): Date {
  // ISO 8601 with a date at least; a bare date is midnight UTC
  const d = /^\d{4}-\d{2}-\d{2}/.test(text) ? new Date(text) : new Date(NaN);
  if (Number.isNaN(d.getTime())) throw badRequest(`${flag} "${text}" is not an ISO 8601 date or time`);
  return d;
}

function summary(r: AuditVerifyReport): string {
  const head = r.head ? `seq 1..${r.head.seq}` : 'empty';
  const anchor = r.lastAnchor ? `last anchor seq ${r.lastAnchor.seq} signed ${r.lastAnchor.signedAt}` : 'no anchor yet';
  return `${r.rows} rows (${head}), ${r.anchors} anchors verified, ${anchor}`;
}

/** Registers `audit verify` and `audit export` on the program. */
export function registerAuditCommands(program: Command, deps: AuditCommandDeps): void {
  const { withRuntime, dataDirOpt, host } = deps;
  const audit = program.command('audit').description('the tamper-evident audit log (hash chain + signed anchors)');

  audit
    .command('verify')
    .description('seal new rows, then check the whole chain and every anchor; names the first broken link (exit 6)')
    .addOption(dataDirOpt())
    .option('--json', 'print the report as JSON on stdout')
    .action(async (o: { dataDir: string; json?: boolean }) => {
      await withRuntime({ dataDir: o.dataDir, loadIssuers: false }, async (rt) => {
        const chain = chainOf(rt);
        const sealed = await chain.seal({ wait: true });
        const report = await chain.verify();
        if (o.json) host.out(JSON.stringify({ ...report, sealed: sealed?.sealed ?? 0 }) + '\n');
        if (report.staleUnsealed.count > 0) {
          host.err(`warning: ${report.staleUnsealed.count} audit rows older than 5 minutes are still unsealed (oldest ${report.staleUnsealed.oldest})\n`);
        }
        if (report.broken) {
          const b = report.broken;
          throw conflict(`audit chain broken at seq ${b.seq}${b.id !== null ? ` (id ${b.id})` : ''}: ${b.problem}; ${report.rows} rows before it verified`);
        }
        if (!o.json) host.out(`audit chain OK: ${summary(report)}\n`);
      })();
    });

  audit
    .command('export')
    .description('write sealed audit rows as JSON lines on stdout, in chain order, for a SIEM')
    .addOption(dataDirOpt())
    .requiredOption('--since <iso>', 'rows at or after this time (ISO 8601)')
    .option('--until <iso>', 'rows before this time (ISO 8601)')
    .action(async (o: { dataDir: string; since: string; until?: string }) => {
      const since = parseInstant('--since', o.since);
      const until = o.until !== undefined ? parseInstant('--until', o.until) : undefined;
      if (until && until <= since) throw badRequest('--until must be after --since');
      await withRuntime({ dataDir: o.dataDir, loadIssuers: false }, async (rt) => {
        const chain = chainOf(rt);
        await chain.seal({ wait: true });
        let n = 0;
        let buf = '';
        for await (const line of chain.export({ since, ...(until ? { until } : {}) })) {
          buf += JSON.stringify(line) + '\n';
          n++;
          if (buf.length >= 64 * 1024) {
            host.out(buf);
            buf = '';
          }
        }
        if (buf) host.out(buf);
        host.err(`exported ${n} audit rows\n`);
      })();
    });
}
