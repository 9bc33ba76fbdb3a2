/**
 * Composition root shared by the server and the CLI: the only place that builds concrete
 * classes (PgStore, the embedded cluster, key files, crypto workers) and wires them into the core.
 */
import os from 'node:os';
import { pino, type Logger } from 'pino';
import pg from 'pg';
import { readEnv, type Env } from '../config/env.js';
import { loadConfig } from '../config/load.js';
import type { FleetcaConfig } from '../config/schema.js';
import { systemClock, type Clock } from '../core/clock.js';
import { CertificateAuthority, type PipelineFaults } from '../ca/issuance.js';
import { buildIssuerRuntime, type IssuerRuntime } from '../ca/issuers.js';
import { normalizeBaseUrl } from '../ca/urls.js';
import { InlineCryptoEngine, WorkerCryptoEngine, type CryptoEngine } from '../signing/crypto-pool.js';
import { FileKeyStore } from '../signing/key-store.js';
import { openEmbeddedCluster, type EmbeddedCluster } from '../store/embedded.js';
import { PgStore } from '../store/pg-store.js';
import { listenForChanges, type ChangeHandlers, type ChangeListener } from '../store/pg-listen.js';
import { defaultMigrationsDir, runMigrations } from '../store/migrate.js';
import { DataDir } from '../config/data-dir.js';
import { EnrollmentService } from '../enrollment/enroll.js';
import { IdevidTrust } from '../enrollment/idevid.js';
import { deriveSecretKey } from '../enrollment/secrets.js';
import { deriveTokenKey } from '../enrollment/api-tokens.js';
import { createPublicKey } from 'node:crypto';
import { spkiOf } from '../signing/keys.js';
import { certificateParts } from '../pki/cert-parts.js';
import { badRequest } from '../core/errors.js';

export interface RuntimeOptions {
  env?: Env;
  dataDir?: string;
  /**
   * Crypto on worker threads or inline (most CLI commands). 'server': as many workers as
   * `server.cryptoWorkers` says (serverCryptoWorkers); true: one per core (factory batches).
   */
  workers?: boolean | 'server';
  /** An offline root key file (`--root-key`). */
  rootKeyFile?: string;
  /** Load issuers and keys (false for commands that only need the database, and for init). */
  loadIssuers?: boolean;
  clock?: Clock;
  faults?: PipelineFaults;
  log?: Logger;
  poolSize?: number;
}

export interface Runtime {
  env: Env;
  config: FleetcaConfig;
  dataDir: DataDir;
  store: PgStore;
  crypto: CryptoEngine;
  clock: Clock;
  log: Logger;
  /** The CA core; null until the data dir is initialised (or with loadIssuers: false). */
  ca: CertificateAuthority | null;
  /** Who may enroll for what (EST, SCEP); null exactly when `ca` is. */
  enrollment: EnrollmentService | null;
  /** The HMAC key of one-time enrollment secrets (derived from the key passphrase). */
  secretKey(): Buffer;
  /** The HMAC key of admin API tokens (derived from the key passphrase). */
  tokenKey(): Buffer;
  publicUrl: string | null;
  embedded: boolean;
  keyStore(create?: boolean): { keys: FileKeyStore; generated: boolean };
  /** A dedicated connection LISTENing for status changes and published CRLs (long-running commands). */
  listenForChanges(h: ChangeHandlers): ChangeListener;
  close(): Promise<void>;
}

/**
 * The serving process's crypto workers: the configured count, else one per core. On the 2-core
 * target one worker instead of two measured +2 to +5 points of the floor in every EST
 * configuration (the loop, busy with TLS, keeps its core) but durable issuance without HTTP 19 %
 * slower, so the default stays one per core and `server.cryptoWorkers` is the operator's choice
 * (README, Benchmarks).
 */
export function serverCryptoWorkers(configured: number | null, cores: number): number {
  return configured ?? Math.max(1, cores);
}

/** Logs go to stderr, so that stdout carries only what scripts capture (PEM, JSON, secrets). */
export function makeLogger(level: string): Logger {
  return pino({ level, base: { svc: 'fleetca' } }, pino.destination({ fd: 2, sync: true }));
}

export async function openRuntime(opts: RuntimeOptions = {}): Promise<Runtime> {
  const env = opts.env ?? readEnv();
  const log = opts.log ?? makeLogger(env.logLevel);
  const config = loadConfig(env.configDir);
  const dataDir = new DataDir(opts.dataDir ?? env.dataDir);
  const clock = opts.clock ?? systemClock;
  const faults: PipelineFaults | undefined =
    opts.faults ??
    (env.fault === 'crash-after-sign'
      ? {
          afterSign: () => {
            log.fatal('FLEETCA_FAULT=crash-after-sign: ending the process between signing and commit');
            process.exit(86);
          },
        }
      : undefined);

  let cluster: EmbeddedCluster | null = null;
  let poolConfig: pg.PoolConfig;
  if (env.databaseUrl) {
    poolConfig = { connectionString: env.databaseUrl };
  } else {
    dataDir.ensure();
    cluster = await openEmbeddedCluster(dataDir.root, (m) => log.debug({ pg: m.trim() }, 'embedded postgres'));
    poolConfig = cluster.connectionConfig;
  }
  const store = await PgStore.open({ poolConfig: { ...poolConfig, max: opts.poolSize ?? 8 } });
  const cryptoEngine: CryptoEngine =
    opts.workers === 'server'
      ? new WorkerCryptoEngine(serverCryptoWorkers(config.settings.server.cryptoWorkers, os.availableParallelism()))
      : opts.workers
        ? new WorkerCryptoEngine()
        : new InlineCryptoEngine();
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await cryptoEngine.close().catch(() => undefined);
    await store.close().catch(() => undefined);
    if (cluster) await cluster.release();
  };

  try {
    await runMigrations(store.pool, defaultMigrationsDir());
    const keyStore = (create = false) => {
      const { passphrase, generated } = dataDir.passphrase(env.keyPassphrase, create);
      return { keys: new FileKeyStore(dataDir.keysDir, passphrase), generated };
    };

    let ca: CertificateAuthority | null = null;
    let enrollment: EnrollmentService | null = null;
    const secretKey = () => deriveSecretKey(dataDir.passphrase(env.keyPassphrase, false).passphrase);
    const tokenKey = () => deriveTokenKey(dataDir.passphrase(env.keyPassphrase, false).passphrase);
    let publicUrl: string | null = null;
    if (dataDir.isInitialised()) {
      publicUrl = dataDir.readState().publicUrl;
      if (config.settings.publicUrl && normalizeBaseUrl(config.settings.publicUrl) !== publicUrl) {
        log.warn(
          { configured: config.settings.publicUrl, inUse: publicUrl },
          'ca.yaml publicUrl differs from the one this CA was initialised with; certificates keep using the data dir value',
        );
      }
      if (opts.loadIssuers !== false) {
        const records = await store.listIssuers();
        if (records.length === 0) throw new Error(`the database has no CA hierarchy but ${dataDir.root} is initialised: wrong DATABASE_URL?`);
        const { keys } = keyStore(false);
        const issuers = new Map<string, IssuerRuntime>();
        for (const r of records) {
          let key = keys.load(r.name);
          const fromFile = !key && r.role === 'root' && opts.rootKeyFile !== undefined;
          if (fromFile) key = keys.loadFile(opts.rootKeyFile!);
          if (fromFile && key && !spkiOf(createPublicKey(key)).equals(certificateParts(r.certDer).spkiDer)) {
            throw badRequest(`${opts.rootKeyFile} is not the key of the root CA ${r.name}`);
          }
          const signer = key ? await cryptoEngine.addKey(r.name, key) : null;
          issuers.set(r.name, buildIssuerRuntime(r, signer, publicUrl));
        }
        ca = new CertificateAuthority({
          config,
          store,
          crypto: cryptoEngine,
          issuers,
          clock,
          ...(faults ? { faults } : {}),
        });
        ca.setLinks(await store.listLinkCertificates());
        const issuerRecords = new Map(records.map((r) => [r.name, r]));
        enrollment = new EnrollmentService({
          ca,
          store,
          config,
          clock,
          secretKey: secretKey(),
          idevid: new IdevidTrust(config, issuerRecords),
          validateChallenge: async (r) => {
            // a profile's challenge webhook: 2xx with {"allow": true} allows; anything else refuses
            const res = await fetch(r.url, {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify({ device: r.deviceId, profile: r.profile, challenge: r.challenge, csr: r.csrDer.toString('base64'), via: r.via }),
              signal: AbortSignal.timeout(r.timeoutMs),
            });
            if (!res.ok) return false;
            const body = (await res.json().catch(() => null)) as { allow?: unknown } | null;
            log.info({ webhook: r.url, device: r.deviceId, allow: body?.allow === true }, 'challenge webhook answered');
            return body?.allow === true;
          },
        });
        const abandoned = await ca.reconcilePendingIntents(config.settings.recovery.pendingIntentGrace);
        if (abandoned > 0) log.warn({ abandoned }, 'marked pending issuance intents failed (a process died between signing and commit)');
      }
    }
    const listen = (h: ChangeHandlers) => listenForChanges(store.pool.options as pg.ClientConfig, h);
    return { env, config, dataDir, store, crypto: cryptoEngine, clock, log, ca, enrollment, secretKey, tokenKey, publicUrl, embedded: cluster !== null, keyStore, listenForChanges: listen, close };
  } catch (e) {
    await close();
    throw e;
  }
}
