/**
 * `fleetca serve`: a plain HTTP listener (health, metrics, CA certificates, CRLs; later SCEP and
 * OCSP) and an HTTPS listener that requests, but does not require, a client certificate (later
 * EST and the admin API). App factories return express apps without listening, for tests.
 */
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import express, { type Express } from 'express';
import type { Logger } from 'pino';
import { createMetrics, errorHandler, notFoundHandler, requestContext, type HttpMetrics } from '../http/common.js';
import { createPkiFilesRouter } from '../protocols/pki-files/router.js';
import { createEstRouter } from '../protocols/est/router.js';
import { createScepRouter } from '../protocols/scep/router.js';
import { ScepRa } from '../ca/scep-ra.js';
import { pemDecodeAll } from '../pki/pem.js';
import { notFound } from '../core/errors.js';
import type { CrlRecord, IssuerRecord } from '../ca/ports.js';
import { createOcspHandler } from '../protocols/ocsp/handler.js';
import { createAdminApiRouter, type AdminApiDeps } from '../protocols/admin/api.js';
import { authenticateToken, createApiToken } from '../enrollment/api-tokens.js';
import { applyAdvisory, withdrawAdvisory } from '../ca/advisories.js';
import { liftQuarantine, quarantineDevice, retireDevice } from '../ca/containment.js';
import { createEnrollmentSecrets } from '../enrollment/secret-issuer.js';
import { listInventory } from '../enrollment/inventory.js';
import { nacIdentityOf } from '../enrollment/nac.js';
import { revokeBatch } from '../bulk/recall.js';
import { trustBundle } from '../ca/trust-bundle.js';
import { lineageOf } from '../ca/issuers.js';
import { nextCaCertResponse, overlapChain } from '../ca/rollover.js';
import { startStatusServices, type StatusServices } from './status-services.js';
import { startServiceCerts, type ServiceCerts } from './service-certs.js';
import { SERVICE_KEYS } from '../ca/bootstrap.js';
import { pemEncode } from '../pki/pem.js';
import { openRuntime, type Runtime } from './runtime.js';
import { AdminCertAuthenticator } from '../enrollment/admin-certs.js';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';

/** SHA-256 over ca.yaml and profiles/*.yaml (each as name, NUL, bytes, NUL; by name): what `config.loaded` records. */
function configSha256(dir: string): string {
  const h = createHash('sha256');
  const profiles = readdirSync(path.join(dir, 'profiles')).filter((f) => /\.ya?ml$/.test(f)).sort();
  for (const rel of ['ca.yaml', ...profiles.map((f) => `profiles/${f}`)]) h.update(`${rel}\0`).update(readFileSync(path.join(dir, rel))).update('\0');
  return h.digest('hex');
}

export interface AppDeps {
  runtime: Runtime;
  metrics: HttpMetrics;
  log: Logger;
  /** CRLs from the status services' cache; straight from the database when absent (tests of the app alone). */
  latestCrl?: (issuerName: string, kind: 'full' | 'delta', shard: number) => Promise<CrlRecord | null>;
  /** The current SCEP RA, renewed while running (main/service-certs.ts); loaded from the data dir when absent. */
  scepRa?: () => ScepRa;
}

function issuerMap(rt: Runtime): ReadonlyMap<string, IssuerRecord> {
  const m = new Map<string, IssuerRecord>();
  for (const [name, i] of rt.ca?.issuers ?? []) m.set(name, i.record);
  return m;
}

function baseApp(deps: AppDeps, listener: string): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(requestContext(deps.log, deps.metrics, listener));
  // one body limit for every route; protocol bodies (PKCS#10, PKCS#7, OCSP) are read raw
  app.use(express.raw({ type: () => true, limit: deps.runtime.config.settings.server.bodyLimitBytes }));
  return app;
}

/** The plain HTTP app: /healthz, /readyz, /metrics, /ca/<issuer>.crt, /crl/<issuer>.crl. */
export function createHttpApp(deps: AppDeps): Express {
  const { runtime } = deps;
  const app = baseApp(deps, 'http');
  app.get('/healthz', (_req, res) => {
    res.type('text/plain').send('ok\n');
  });
  app.get('/readyz', async (req, res) => {
    try {
      await runtime.store.pool.query('select 1');
      if (!runtime.ca) throw new Error('CA not initialised');
      res.type('text/plain').send('ready\n');
    } catch (e) {
      req.log.warn({ err: (e as Error).message }, 'not ready');
      res.status(503).setHeader('Retry-After', '5').type('text/plain').send('not ready\n');
    }
  });
  app.get('/metrics', async (_req, res) => {
    res.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });
  const issuers = issuerMap(runtime);
  app.use(
    createPkiFilesRouter({
      issuers: () => issuers,
      latestCrl: deps.latestCrl ?? ((name, kind, shard) => runtime.store.latestCrl(name, kind, shard)),
      shards: runtime.config.settings.crl.shards,
      httpMaxAgeMs: runtime.config.settings.crl.httpMaxAge,
      now: () => runtime.clock.now(),
    }),
  );
  if (runtime.enrollment) {
    let ra: ScepRa | null = null;
    // the RA key is loaded on first use: a server whose data dir lacks it still serves the rest
    const loadRa = () => {
      if (ra) return ra;
      const key = runtime.keyStore(false).keys.load(SERVICE_KEYS.scepRa);
      if (!key) throw notFound(`no SCEP RA key in ${runtime.dataDir.keysDir}`);
      const certDer = pemDecodeAll(runtime.dataDir.readCert(SERVICE_KEYS.scepRa))[0]!.der;
      ra = new ScepRa(certDer, key, null, runtime.crypto);
      return ra;
    };
    app.use(
      createScepRouter({
        ra: deps.scepRa ?? loadRa,
        enrollment: runtime.enrollment,
        caChain: (label) => estChain(runtime, label),
        nextCaCert: (label) => nextCaCertResponse(runtime.ca!, lineageForLabel(runtime, label), runtime.clock.now()),
        latestCrl: async (name) => (await runtime.store.latestCrl(name, 'full'))?.der ?? null,
        legacyAlgorithms: (label) => (label !== undefined ? (runtime.config.profiles.get(label)?.enrollment.legacyAlgorithms ?? false) : false),
        now: () => runtime.clock.now(),
      }),
    );
  }
  app.use(notFoundHandler);
  app.use(errorHandler);
  return app;
}

/** The issuing CA lineage of an EST/SCEP label (a device profile), or of the device CA. */
function lineageForLabel(rt: Runtime, label: string | undefined): string {
  if (label !== undefined) {
    const p = rt.config.profiles.get(label);
    if (!p || p.kind !== 'device' || p.issuer === 'per-issuer') throw notFound(`no device profile "${label}"`);
    return p.issuer;
  }
  const first = [...rt.ca!.issuers.values()].find((i) => i.record.role === 'device');
  if (!first) throw notFound('no device issuing CA');
  return lineageOf(first.record);
}

/**
 * The CA certificates EST cacerts and SCEP GetCACert return: the label's issuing CA (or the device
 * CA), with every other still-valid CA of its lineage during a rollover overlap (RFC 7030 §4.1.3),
 * then the root.
 */
function estChain(rt: Runtime, label: string | undefined): Buffer[] {
  const lineage = lineageForLabel(rt, label);
  const chain = overlapChain(rt.ca!, lineage, rt.clock.now());
  if (chain.length === 0) throw notFound(`no valid CA for ${lineage}`);
  return chain;
}

/** The HTTPS app: EST under /.well-known/est; the admin API mounts here in a later issue. */
export function createHttpsApp(deps: AppDeps): Express {
  const app = baseApp(deps, 'https');
  const rt = deps.runtime;
  app.get('/healthz', (_req, res) => {
    res.type('text/plain').send('ok\n');
  });
  if (rt.enrollment) app.use(createEstRouter({ enrollment: rt.enrollment, caChain: (label) => estChain(rt, label) }));
  if (rt.ca) app.use(createAdminApiRouter(adminApiDeps(rt)));
  app.use(notFoundHandler);
  app.use(errorHandler);
  return app;
}

/** The admin API on the runtime: the same core calls as the CLI, with the API's actor. */
function adminApiDeps(rt: Runtime): AdminApiDeps {
  const ca = rt.ca!;
  const containment = { store: rt.store, clock: rt.clock };
  const key = rt.tokenKey();
  const certAuth = new AdminCertAuthenticator({ store: rt.store, clock: rt.clock });
  return {
    authenticate: (token) => authenticateToken(rt.store, key, token, rt.clock.now()),
    authenticateCertificate: (der) => certAuth.authenticate(der),
    inventory: (f) => listInventory({ store: rt.store, config: rt.config }, f, rt.clock.now()),
    nacChanges: async (after, limit) => {
      const { devices, horizon } = await rt.store.nacChanges(after, limit);
      const now = rt.clock.now();
      return { horizon, items: devices.map((x) => ({ identity: nacIdentityOf(rt.config, x.device, now), xid: x.xid })) };
    },
    listBatches: (limit) => rt.store.listBatches({ limit }),
    getBatch: async (id) => {
      const batch = await rt.store.getBatch(id);
      return batch ? { batch, rejects: await rt.store.listBatchRejects(id) } : null;
    },
    revokeBatch: (id, reason, actor) => revokeBatch({ ca, store: rt.store, clock: rt.clock }, id, reason, actor),
    trustBundlePem: () => trustBundle([...ca.issuers.values()].map((i) => i.record), rt.clock.now()).map((i) => pemEncode('CERTIFICATE', i.certDer)).join(''),
    updateDevice: async (id, patch, actor) => {
      const at = rt.clock.now();
      const d = await rt.store.updateDevice(id, patch, at);
      await rt.store.appendAudit([{ at, actor, action: 'device.updated', target: id, details: { ...patch } }]);
      return d;
    },
    quarantine: (id, reason, actor) => quarantineDevice(containment, id, reason, actor),
    liftQuarantine: (id, actor) => liftQuarantine(containment, id, actor),
    retire: (id, actor) => retireDevice(containment, id, actor),
    listCertificates: (f) => rt.store.listCertificates(f),
    getCertificate: (serial) => rt.store.getCertificate(serial),
    revoke: (serial, reason, actor, inv) => ca.revoke(serial, reason, actor, inv),
    release: (serial, actor) => ca.release(serial, actor),
    createSecret: async (deviceId, profile, ttlMs, actor) =>
      (await createEnrollmentSecrets({ store: rt.store, config: rt.config, clock: rt.clock, secretKey: rt.secretKey() }, [{ deviceId, profile, ...(ttlMs !== undefined ? { ttlMs } : {}) }], actor))[0]!,
    listRequests: (f) => rt.store.listRequests(f),
    decideRequest: (id, decision, actor, reason) => {
      const now = rt.clock.now();
      return rt.store.decideRequest(id, decision, actor, reason, now, { at: now, actor, action: `request.${decision}`, target: id, details: { reason } });
    },
    listAudit: (f) => rt.store.listAudit(f),
    listAdvisories: () => rt.store.listAdvisories(),
    applyAdvisory: (req) => applyAdvisory({ store: rt.store, clock: rt.clock, config: rt.config }, req),
    withdrawAdvisory: (id, actor) => withdrawAdvisory(containment, id, actor),
    listTokens: () => rt.store.listApiTokens(),
    createToken: (t) => createApiToken(rt.store, key, { ...t, now: rt.clock.now() }),
    revokeToken: (name, actor) => rt.store.revokeApiToken(name, rt.clock.now(), actor),
    authFailureLimit: 20,
    authFailureWindowMs: 5 * 60_000,
    now: () => rt.clock.now(),
  };
}

/**
 * TLS options: the server certificate + its issuing CA; client certificates requested, not required.
 *
 * The admin CA is deliberately NOT in `ca`. OpenSSL checks a client chain against these certificates
 * during the handshake; with rejectUnauthorized false node ignores the verdict, but a failed
 * signature check (a forged certificate naming a CA of this list as issuer) leaves an error on
 * OpenSSL's queue that node 20 then takes for a connection error: the client gets a reset instead
 * of the admin API's 401, and the failure escapes its rate limiter. Without the admin CA here,
 * OpenSSL finds no issuer for an admin certificate and checks nothing; the admin API verifies it
 * (enrollment/admin-certs.ts). Clients that pick a certificate by the CA names of the request
 * (browsers) must be pointed at the admin certificate; curl and openssl send the one they are given.
 */
export function tlsOptions(rt: Runtime): https.ServerOptions {
  const { keys } = rt.keyStore(false);
  const key = keys.load(SERVICE_KEYS.tlsServer);
  if (!key) throw new Error(`no TLS server key in ${rt.dataDir.keysDir}`);
  // every fleetca CA plus external IDevID anchors: the names a client picks its certificate by
  const caCerts = [...(rt.ca?.issuers.values() ?? [])].map((i) => i.record.certDer);
  for (const a of rt.enrollment?.idevidAnchors() ?? []) if (!caCerts.some((c) => c.equals(a.raw))) caCerts.push(a.raw);
  return {
    key: key.export({ type: 'pkcs8', format: 'pem' }),
    cert: rt.dataDir.readCert(SERVICE_KEYS.tlsServer),
    // the CA names sent in CertificateRequest; verification itself is the enrollment layer's job
    ca: caCerts.map((d) => pemEncode('CERTIFICATE', d)),
    requestCert: true,
    rejectUnauthorized: false,
    minVersion: 'TLSv1.2',
  };
}

export interface RunningServer {
  http: http.Server;
  https: https.Server;
  status: StatusServices;
  /** The TLS server and SCEP RA certificates, renewed before they expire. */
  serviceCerts: ServiceCerts;
  httpUrl: string;
  httpsUrl: string;
  close(): Promise<void>;
}

function listen(server: http.Server | https.Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function urlHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/** Starts both listeners on an opened runtime. */
export async function startServer(rt: Runtime, opts: { host: string; httpPort: number; httpsPort: number }): Promise<RunningServer> {
  if (!rt.ca) throw new Error(`${rt.dataDir.root} is not initialised: run \`fleetca init\` first`);
  const metrics = createMetrics();
  const status = await startStatusServices(rt, { metrics });
  const serviceCerts = await startServiceCerts(rt);
  const deps: AppDeps = { runtime: rt, metrics, log: rt.log, latestCrl: status.latestCrl, scepRa: serviceCerts.ra };
  const app = createHttpApp(deps);
  // OCSP is answered by a bare node:http handler ahead of express (the hot path)
  const ocspHandler = createOcspHandler({
    respond: (der) => status.ocsp.respond(der),
    maxBody: 16 * 1024,
    httpMaxAgeMs: rt.config.settings.crl.httpMaxAge,
    now: () => rt.clock.now(),
    count: (() => {
      // one labelled child per (status, source), looked up once: this runs for every OCSP answer
      const children = new Map<string, { inc(): void }>();
      return (s: string, source: string) => {
        const k = `${s}|${source}`;
        let c = children.get(k);
        if (!c) children.set(k, (c = metrics.ocsp.labels(s, source)));
        c.inc();
      };
    })(),
    log: (obj, msg) => rt.log.warn(obj, msg),
  });
  // SCEP GET PKIOperation carries the whole message in the URL: allow 64 KiB of headers (default 16)
  const httpServer = http.createServer({ maxHeaderSize: 64 * 1024 }, (req, res) => {
    if (!ocspHandler(req, res)) app(req, res);
  });
  const httpsServer = https.createServer(tlsOptions(rt), createHttpsApp(deps));
  // a renewed TLS certificate takes effect for new connections, without a restart
  serviceCerts.attachTls(httpsServer, () => tlsOptions(rt));
  for (const s of [httpServer, httpsServer]) {
    s.requestTimeout = 30_000;
    s.headersTimeout = 15_000;
    s.keepAliveTimeout = 5_000;
  }
  const httpPort = await listen(httpServer, opts.httpPort, opts.host);
  const httpsPort = await listen(httpsServer, opts.httpsPort, opts.host);
  const close = async () => {
    const stop = (s: http.Server) =>
      new Promise<void>((resolve) => {
        s.close(() => resolve());
        s.closeIdleConnections();
      });
    await Promise.all([stop(httpServer), stop(httpsServer)]);
    serviceCerts.close();
    await status.close();
  };
  return { http: httpServer, https: httpsServer, status, serviceCerts, httpUrl: `http://${urlHost(opts.host)}:${httpPort}`, httpsUrl: `https://${urlHost(opts.host)}:${httpsPort}`, close };
}

/** `fleetca serve`: open, listen, print the ready line, drain and exit 0 on SIGTERM/SIGINT. */
export async function serve(opts: { dataDir: string; host: string; httpPort: number; httpsPort: number }, out: (s: string) => void): Promise<void> {
  const rt = await openRuntime({ dataDir: opts.dataDir, workers: 'server', poolSize: 16 });
  let server: RunningServer;
  try {
    const sha256 = configSha256(rt.config.dir);
    await rt.store.appendAudit([{ at: rt.clock.now(), actor: 'server', action: 'config.loaded', target: rt.config.dir, details: { sha256 } }]);
    server = await startServer(rt, opts);
  } catch (e) {
    await rt.close();
    throw e;
  }
  out(`fleetca listening http=${server.httpUrl} https=${server.httpsUrl}\n`);
  rt.log.info({ http: server.httpUrl, https: server.httpsUrl }, 'listening');
  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      rt.log.info({ signal: sig }, 'draining');
      resolve();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  const force = setTimeout(() => {
    rt.log.warn('drain timed out; closing connections');
    server.http.closeAllConnections();
    server.https.closeAllConnections();
  }, 10_000);
  force.unref();
  await server.close();
  await rt.close();
  rt.log.info('stopped');
}
