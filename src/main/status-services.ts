/**
 * Composition of the background work of a running server: the change listener (LISTEN/NOTIFY),
 * the OCSP responder with its delegated responder keys, the CRL publisher, the OCSP pre-signer, the
 * superseded-certificate revoker, the renewal of responder certificates, the webhook dispatcher,
 * the audit-chain sealer and the expiry tracker.
 */
import type pg from 'pg';
import { OcspService, ocspSettingsOf, type OcspResponderKey } from '../ca/ocsp.js';
import { crlSettingsOf } from '../ca/crl.js';
import { SERVICE_KEYS } from '../ca/bootstrap.js';
import { buildIssuerRuntime } from '../ca/issuers.js';
import type { CrlRecord } from '../ca/ports.js';
import { renewDueResponders } from '../jobs/ocsp-responders.js';
import { pemDecodeAll, pemEncode } from '../pki/pem.js';
import { startCrlPublisher, type CrlPublisher } from '../jobs/crl-publisher.js';
import { startSupersedeRevoker } from '../jobs/supersede-revoker.js';
import { startNacPruner } from '../jobs/nac-pruner.js';
import { startAuditSealer } from '../jobs/audit-sealer.js';
import { AuditChain, auditKeyFromStore } from '../ca/audit-chain.js';
import { listenForChanges, type ChangeListener } from '../store/pg-listen.js';
import { startWebhookDispatcher, type WebhookEndpoint } from '../jobs/webhook-dispatcher.js';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Runtime } from './runtime.js';
import { setExpiryGauges, type HttpMetrics } from '../http/common.js';
import { startExpiryTracker, type ExpiryTracker } from '../jobs/expiry-tracker.js';

export interface StatusServices {
  ocsp: OcspService;
  crls: CrlPublisher;
  /** The newest CRL of a scope, from memory (refreshed by NOTIFY, at most `CRL_CACHE_MS` old). */
  latestCrl(issuerName: string, kind: 'full' | 'delta', shard: number): Promise<CrlRecord | null>;
  listener: ChangeListener;
  /** One pre-signing pass (also run on a timer). */
  presign(): Promise<number>;
  /** Replaces responder certificates that are within renewBefore of expiry; returns the issuers renewed. */
  renewResponders(): Promise<string[]>;
  /** The expiry gauges and events (jobs/expiry-tracker.ts). */
  expiry: ExpiryTracker;
  close(): Promise<void>;
}

/** A served CRL is re-read at least this often, even without a notification. */
const CRL_CACHE_MS = 30_000;

/** Loads the delegated responder of each online issuing CA from the data dir. */
async function loadResponders(rt: Runtime): Promise<OcspResponderKey[]> {
  const { keys } = rt.keyStore(false);
  const out: OcspResponderKey[] = [];
  for (const issuer of rt.ca!.issuers.values()) {
    if (issuer.record.role === 'root') continue;
    const name = SERVICE_KEYS.ocsp(issuer.record.name);
    const key = keys.load(name);
    if (!key) {
      rt.log.warn({ issuer: issuer.record.name }, 'no OCSP responder key: OCSP answers unauthorized for this issuer');
      continue;
    }
    const certDer = pemDecodeAll(rt.dataDir.readCert(name))[0]!.der;
    out.push({ issuer, certDer, signer: await rt.crypto.addKey(name, key) });
  }
  return out;
}

export async function startStatusServices(rt: Runtime, opts: { presignIntervalMs?: number; presign?: boolean; metrics?: HttpMetrics } = {}): Promise<StatusServices> {
  const ca = rt.ca!;
  const settings = rt.config.settings;
  const log = rt.log;
  const ocsp = new OcspService(
    { store: rt.store, clock: rt.clock, settings: ocspSettingsOf(settings.ocsp), log: (level, obj, msg) => log[level](obj, msg) },
    await loadResponders(rt),
  );

  const crlCache = new Map<string, { rec: Promise<CrlRecord | null>; at: number }>();
  const latestCrl = (issuerName: string, kind: 'full' | 'delta', shard: number) => {
    const key = `${issuerName}|${kind}|${shard}`;
    const hit = crlCache.get(key);
    if (hit && Date.now() - hit.at < CRL_CACHE_MS) return hit.rec;
    const rec = rt.store.latestCrl(issuerName, kind, shard);
    crlCache.set(key, { rec, at: Date.now() });
    rec.catch(() => crlCache.delete(key));
    return rec;
  };

  const crls = startCrlPublisher({
    store: rt.store,
    clock: rt.clock,
    settings: crlSettingsOf(rt.config),
    issuers: () => ca.issuers.values(),
    latestCrl: (name, kind) => rt.store.latestCrl(name, kind, 0),
    latestBaseAt: (id) => rt.store.latestBaseAt(id),
    debounceMs: settings.crl.debounce,
    republishMs: settings.crl.republish,
    log: (level, obj, msg) => log[level](obj, msg),
  });

  // webhooks: the configured endpoints (secrets from files beside ca.yaml), then the dispatcher
  const wh = settings.webhooks;
  const endpoints = new Map<string, WebhookEndpoint>();
  for (const e of wh.endpoints) {
    const file = path.resolve(rt.env.configDir, e.secretFile);
    const secret = Buffer.from(readFileSync(file, 'utf8').trim(), 'utf8');
    if (secret.length < 16) throw new Error(`webhook ${e.name}: the secret in ${file} is shorter than 16 bytes`);
    endpoints.set(e.name, { name: e.name, url: e.url, secret });
  }
  await rt.store.syncWebhookEndpoints(wh.endpoints.map((e) => ({ name: e.name, events: [...e.events] })));
  const webhooks = startWebhookDispatcher({
    store: rt.store,
    endpoints,
    clock: rt.clock,
    maxAttempts: wh.maxAttempts,
    retryBaseMs: wh.retryBase,
    retryMaxMs: wh.retryMax,
    timeoutMs: wh.timeout,
    log: (level, obj, msg) => log[level](obj, msg),
  });

  // a rollover (CLI or another instance) adds a CA: load it, its key and its responder
  const reloadIssuers = async () => {
    const { keys } = rt.keyStore(false);
    ca.setLinks(await rt.store.listLinkCertificates());
    for (const r of await rt.store.listIssuers()) {
      if (ca.issuers.has(r.name)) continue;
      const key = keys.load(r.name);
      const issuer = buildIssuerRuntime(r, key ? await rt.crypto.addKey(r.name, key) : null, rt.publicUrl!);
      // its responder first, so that the CA never issues here before its OCSP answers can be signed
      const rname = SERVICE_KEYS.ocsp(r.name);
      const rkey = keys.load(rname);
      if (rkey) ocsp.setResponder({ issuer, certDer: pemDecodeAll(rt.dataDir.readCert(rname))[0]!.der, signer: await rt.crypto.addKey(rname, rkey) });
      else log.warn({ issuer: r.name }, 'no OCSP responder key for the new CA: OCSP answers unauthorized for it');
      ca.addIssuer(issuer);
      crls.changed(r.id);
      log.info({ issuer: r.name, lineage: r.lineage, activatesAt: r.activatesAt?.toISOString(), signer: key !== null }, 'loaded a CA added by a rollover');
    }
  };
  let reloading: Promise<void> = Promise.resolve();
  const reload = () => {
    reloading = reloading.then(reloadIssuers).catch((e: unknown) => log.warn({ err: (e as Error).message }, 'loading new CAs failed'));
  };

  const listener = listenForChanges(rt.store.pool.options as pg.ClientConfig, {
    issuers: reload,
    status: (issuerId, serial) => {
      ocsp.evict(serial);
      ocsp.refreshSoon(serial);
      crls.changed(issuerId);
    },
    crl: () => crlCache.clear(),
    events: () => webhooks.wake(),
    resync: () => {
      reload();
      ocsp.evictAll();
      crlCache.clear();
      for (const i of ca.issuers.values()) crls.changed(i.record.id);
    },
    log: (m) => log.warn(m),
  });
  await listener.ready;

  let presigning: Promise<number> | null = null;
  const presign = () => {
    presigning ??= ocsp.presign().finally(() => (presigning = null));
    return presigning;
  };
  const presignTimer =
    opts.presign === false
      ? null
      : setInterval(() => {
          presign().catch((e: unknown) => log.warn({ err: (e as Error).message }, 'OCSP pre-signing pass failed'));
        }, opts.presignIntervalMs ?? 60_000);
  presignTimer?.unref();

  const renewResponders = () =>
    renewDueResponders({
      ca,
      ocsp,
      clock: rt.clock,
      profile: settings.systemProfiles.ocspResponder,
      renewBeforeMs: settings.ocsp.responderRenewBefore,
      save: (issuerName, key, certDer) => {
        const name = SERVICE_KEYS.ocsp(issuerName);
        rt.keyStore(false).keys.save(name, key);
        rt.dataDir.writeCert(name, pemEncode('CERTIFICATE', certDer));
      },
      addKey: (id, key) => rt.crypto.addKey(id, key),
      log: (obj, msg) => log.info(obj, msg),
    });
  const renewTimer = setInterval(() => {
    renewResponders().catch((e: unknown) => log.warn({ err: (e as Error).message }, 'OCSP responder renewal failed'));
  }, 6 * 3600_000);
  renewTimer.unref();
  await renewResponders().catch((e: unknown) => log.warn({ err: (e as Error).message }, 'OCSP responder renewal failed'));

  const stopRevoker = startSupersedeRevoker({ ca, store: rt.store, clock: rt.clock, log: (o, m) => log.info(o, m) });
  const stopNacPruner = startNacPruner({ store: rt.store, log: (o, m) => log.info(o, m) });
  const stopSealer = startAuditSealer({
    chain: new AuditChain({
      store: rt.store,
      clock: rt.clock,
      key: auditKeyFromStore(rt.keyStore(false).keys, rt.crypto),
      anchorEveryMs: settings.audit.anchorEvery,
      log: (level, obj, msg) => log[level](obj, msg),
    }),
    intervalMs: settings.audit.sealEvery,
    log: (o, m) => log.warn(o, m),
  });
  await crls.checkSchedule().catch((e: unknown) => log.warn({ err: (e as Error).message }, 'CRL schedule check failed'));
  const expiry = startExpiryTracker({
    store: rt.store,
    config: rt.config,
    clock: rt.clock,
    ...(opts.metrics ? { gauges: (g) => setExpiryGauges(opts.metrics!, g) } : {}),
    log: (level, obj, msg) => log[level](obj, msg),
  });

  return {
    ocsp,
    crls,
    latestCrl,
    listener,
    presign,
    renewResponders,
    expiry,
    close: async () => {
      if (presignTimer) clearInterval(presignTimer);
      clearInterval(renewTimer);
      await Promise.all([crls.stop(), stopRevoker(), stopNacPruner(), stopSealer(), expiry.stop(), listener.close(), presigning?.catch(() => 0), ocsp.flush(), webhooks.stop()]);
    },
  };
}
