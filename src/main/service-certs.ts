/**
 * The running server's TLS server and SCEP RA certificates, renewed before they expire without a
 * restart (jobs/service-certs.ts): the HTTPS listener takes a new secure context
 * (`server.setSecureContext`), and the SCEP router's next request finds the new RA (GetCACert
 * publishes it), which keeps the one it replaced for envelopes addressed to it until it expires.
 */
import type https from 'node:https';
import type { KeyObject } from 'node:crypto';
import crypto from 'node:crypto';
import { notFound } from '../core/errors.js';
import { SERVICE_KEYS } from '../ca/bootstrap.js';
import { ScepRa } from '../ca/scep-ra.js';
import { pemDecodeAll, pemEncode } from '../pki/pem.js';
import type { GeneratedKeyType } from '../signing/keys.js';
import { renewDueServiceCerts, tlsServerSans, type ServiceCertOutcome, type ServiceCertSlot } from '../jobs/service-certs.js';
import type { Runtime } from './runtime.js';

/** How often a server checks its service certificates (and once at start, before listening). */
const CHECK_EVERY_MS = 6 * 3600_000;

export interface ServiceCerts {
  /** The current SCEP RA (loaded on first use: a data dir without an RA key still serves the rest). */
  ra(): ScepRa;
  /** The HTTPS listener whose secure context follows the TLS certificate. */
  attachTls(server: https.Server, options: () => https.ServerOptions): void;
  /** One check now; null when another server was checking. */
  renew(): Promise<ServiceCertOutcome[] | null>;
  close(): void;
}

/** The RSA size of the current RA key, so a renewal keeps it (SCEP is RSA-only). */
function rsaKeyType(key: KeyObject | null): GeneratedKeyType {
  const bits = key?.asymmetricKeyDetails?.modulusLength ?? 2048;
  return bits >= 4096 ? 'rsa4096' : bits >= 3072 ? 'rsa3072' : 'rsa2048';
}

export async function startServiceCerts(rt: Runtime): Promise<ServiceCerts> {
  const ca = rt.ca!;
  const sys = rt.config.settings.systemProfiles;
  const files = {
    loadKey: (name: string) => rt.keyStore(false).keys.load(name),
    saveKey: (name: string, key: KeyObject) => void rt.keyStore(false).keys.save(name, key),
    removeKey: (name: string) => rt.keyStore(false).keys.remove(name),
    readCert: (name: string) => {
      try {
        const ders = pemDecodeAll(rt.dataDir.readCert(name)).map((b) => b.der);
        return ders.length > 0 ? ders : null;
      } catch {
        return null;
      }
    },
    writeCert: (name: string, ders: Buffer[]) => void rt.dataDir.writeCert(name, ders.map((d) => pemEncode('CERTIFICATE', d)).join('')),
  };

  let ra: ScepRa | null = null;
  const stillValid = (certDer: Buffer) => new Date(new crypto.X509Certificate(certDer).validTo) > rt.clock.now();
  /**
   * The RA a renewal replaced, as the data dir keeps it (written at the renewal): a restart between
   * a renewal and the old certificate's expiry still opens the envelopes of clients that fetched
   * GetCACert before the renewal.
   */
  const loadPreviousRa = (current: Buffer): ScepRa | null => {
    const key = files.loadKey(SERVICE_KEYS.scepRaPrevious);
    const cert = files.readCert(SERVICE_KEYS.scepRaPrevious)?.[0];
    if (!key || !cert || cert.equals(current) || !stillValid(cert)) return null;
    return new ScepRa(cert, key, null, rt.crypto);
  };
  /**
   * The replaced RA goes once its certificate has expired (checked with every renewal check): from
   * the running server, and its key from the data dir.
   */
  const prunePreviousRa = () => {
    if (ra?.previous && !stillValid(ra.previous.certDer)) ra = ra.withoutPrevious();
    const cert = files.readCert(SERVICE_KEYS.scepRaPrevious)?.[0];
    if (cert && !stillValid(cert)) files.removeKey(SERVICE_KEYS.scepRaPrevious);
  };
  const loadRa = (): ScepRa => {
    if (ra) return ra;
    const key = files.loadKey(SERVICE_KEYS.scepRa);
    const cert = files.readCert(SERVICE_KEYS.scepRa)?.[0];
    if (!key || !cert) throw notFound(`no SCEP RA key in ${rt.dataDir.keysDir}`);
    ra = new ScepRa(cert, key, loadPreviousRa(cert), rt.crypto);
    return ra;
  };
  let tls: { server: https.Server; options: () => https.ServerOptions } | null = null;
  let tlsRunning: Buffer | null = files.readCert(SERVICE_KEYS.tlsServer)?.[0] ?? null;

  const slots: ServiceCertSlot[] = [
    {
      name: SERVICE_KEYS.tlsServer,
      profile: sys.tlsServer,
      keyType: 'P-256',
      sans: tlsServerSans(rt.config.settings.server.tlsNames, rt.publicUrl!),
      withChain: true,
      running: () => tlsRunning,
      apply: (_key, certDer) => {
        tlsRunning = certDer;
        // the options are re-read from the data dir, where the new pair was just written
        tls?.server.setSecureContext(tls.options());
      },
    },
    {
      name: SERVICE_KEYS.scepRa,
      profile: sys.scepRa,
      // SCEP clients encrypt to the RA with RSA key transport: keep its key type and size
      keyType: rsaKeyType(files.loadKey(SERVICE_KEYS.scepRa)),
      sans: [],
      withChain: false,
      running: () => ra?.certDer ?? files.readCert(SERVICE_KEYS.scepRa)?.[0] ?? null,
      apply: (key, certDer) => {
        // the RA in use keeps serving envelopes addressed to it while its certificate is valid,
        // also after a restart: the data dir keeps it (encrypted, as every key) until then
        const old = ra;
        const keep = old !== null && stillValid(old.certDer);
        if (keep) {
          files.saveKey(SERVICE_KEYS.scepRaPrevious, old.key);
          files.writeCert(SERVICE_KEYS.scepRaPrevious, [old.certDer]);
        }
        ra = new ScepRa(certDer, key, keep ? old.withoutPrevious() : null, rt.crypto);
      },
    },
  ];

  const renew = async () => {
    prunePreviousRa();
    return renewDueServiceCerts(
      {
        ca,
        clock: rt.clock,
        renewBeforeMs: rt.config.settings.server.serviceCertRenewBefore,
        files,
        lock: rt.store,
        log: (obj, msg) => rt.log.info(obj, msg),
      },
      slots,
    );
  };
  // the RA in use now, so that one renewed at start still opens envelopes addressed to it
  try {
    loadRa();
  } catch {
    // no RA key in this data dir: SCEP requests fail as they did before (loadRa throws per request)
  }
  // before the listeners exist: a due or half-written pair is replaced before TLS loads it
  await renew().catch((e: unknown) => rt.log.warn({ err: (e as Error).message }, 'service certificate check failed'));
  const timer = setInterval(() => {
    renew().catch((e: unknown) => rt.log.warn({ err: (e as Error).message }, 'service certificate check failed'));
  }, CHECK_EVERY_MS);
  timer.unref();

  return {
    ra: loadRa,
    attachTls: (server, options) => {
      tls = { server, options };
    },
    renew,
    close: () => clearInterval(timer),
  };
}
