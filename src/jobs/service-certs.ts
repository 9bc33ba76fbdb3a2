/**
 * fleetca renews its own TLS server and SCEP RA certificates before they expire, without a restart
 * (issue 9; the OCSP responders are jobs/ocsp-responders.ts). For each service:
 *
 *  - the key and certificate files of the data dir are the truth. When they hold a matching pair
 *    that is not due, the running service is switched to it if it runs another one (a server
 *    sharing the data dir renewed it);
 *  - when the pair is due (within `renewBeforeMs` of notAfter), missing or mismatched (a crash
 *    between writing the key and the certificate), a new key is made, a certificate issued for it
 *    through the core pipeline (same subject; the TLS names from the configuration), the key saved
 *    encrypted and the certificate written, then the running service switched over.
 *
 * One server at a time (the `service-certs` advisory lock), so servers sharing a data dir never
 * write the same files at once; the next server to check adopts what the first wrote.
 */
import crypto, { type KeyObject } from 'node:crypto';
import type { Clock } from '../core/clock.js';
import type { CertificateAuthority } from '../ca/issuance.js';
import { certificateParts } from '../pki/cert-parts.js';
import { decodeName, type SanEntry } from '../pki/names.js';
import { spkiOf, type GeneratedKeyType } from '../signing/keys.js';
import type { JobLockStore } from '../enrollment/ports.js';

/** One service certificate fleetca renews. */
export interface ServiceCertSlot {
  /** The key and certificate file name in the data dir: `tls-server`, `scep-ra`. */
  name: string;
  /** Its system profile (systemProfiles.tlsServer / scepRa). */
  profile: string;
  keyType: GeneratedKeyType;
  /** The SANs a new certificate carries. */
  sans: SanEntry[];
  /** The certificate file holds the issuing CA after the leaf (the TLS server sends it as its chain). */
  withChain: boolean;
  /** The certificate the running service uses now. */
  running(): Buffer | null;
  /** Switches the running service to this pair (already on disk). */
  apply(key: KeyObject, certDer: Buffer): void;
}

/** The data dir's key and certificate files. */
export interface ServiceCertFiles {
  loadKey(name: string): KeyObject | null;
  /** Encrypted, atomically (key-store). */
  saveKey(name: string, key: KeyObject): void;
  /** The certificates of the file, leaf first; null when there is none. */
  readCert(name: string): Buffer[] | null;
  writeCert(name: string, ders: Buffer[]): void;
}

export interface ServiceCertDeps {
  ca: CertificateAuthority;
  clock: Clock;
  renewBeforeMs: number;
  files: ServiceCertFiles;
  lock: Pick<JobLockStore, 'exclusive'>;
  log: (obj: Record<string, unknown>, msg: string) => void;
}

/** What a check did per service: renewed (new certificate), adopted (another server's), or nothing. */
export type ServiceCertOutcome = { name: string; action: 'renewed' | 'adopted'; serial: string; notAfter: Date };

/** The names of the TLS server certificate, as `fleetca init` makes them (ca/bootstrap.ts). */
export function tlsServerSans(tlsNames: readonly string[], publicUrl: string): SanEntry[] {
  const sans: SanEntry[] = [];
  for (const n of ['localhost', '127.0.0.1', ...tlsNames, new URL(publicUrl).hostname]) {
    const type = /^[\d.]+$/.test(n) || n.includes(':') ? 'ip' : 'dns';
    const value = n.replace(/^\[|\]$/g, '');
    if (!sans.some((x) => x.value === value)) sans.push({ type, value });
  }
  return sans;
}

function keyMatches(key: KeyObject, certDer: Buffer): boolean {
  try {
    return spkiOf(key).equals(Buffer.from(certificateParts(certDer).spkiDer));
  } catch {
    return false;
  }
}

function notAfterOf(certDer: Buffer): Date {
  return new Date(new crypto.X509Certificate(certDer).validTo);
}

/** One check of every slot, under the lock; null when another server holds it (it is checking). */
export async function renewDueServiceCerts(deps: ServiceCertDeps, slots: readonly ServiceCertSlot[]): Promise<ServiceCertOutcome[] | null> {
  return deps.lock.exclusive('service-certs', async () => {
    const out: ServiceCertOutcome[] = [];
    for (const slot of slots) {
      const now = deps.clock.now().getTime();
      const disk = deps.files.readCert(slot.name)?.[0] ?? null;
      const diskKey = disk ? deps.files.loadKey(slot.name) : null;
      const pairOk = disk !== null && diskKey !== null && keyMatches(diskKey, disk);
      if (pairOk && notAfterOf(disk).getTime() - now > deps.renewBeforeMs) {
        const running = slot.running();
        if (running && !running.equals(disk)) {
          slot.apply(diskKey, disk);
          const serial = Buffer.from(certificateParts(disk).serial).toString('hex');
          deps.log({ service: slot.name, serial }, 'service certificate renewed by another server taken over');
          out.push({ name: slot.name, action: 'adopted', serial, notAfter: notAfterOf(disk) });
        }
        continue;
      }
      // due, missing or half-written: a new key and certificate, same subject as before
      const template = disk ?? slot.running();
      if (!template) {
        deps.log({ service: slot.name }, 'no service certificate to renew from (run `fleetca init`)');
        continue;
      }
      const { key, cert } = await deps.ca.issueServiceKey({
        keyType: slot.keyType,
        profile: slot.profile,
        subject: decodeName(Buffer.from(certificateParts(template).subjectDer)),
        sans: slot.sans,
        actor: `system:${slot.name}`,
        via: 'renewal',
      });
      // key first: a crash before the certificate is written leaves a mismatched pair, which the
      // next check (at start, before the listeners) replaces
      deps.files.saveKey(slot.name, key);
      deps.files.writeCert(slot.name, [cert.der, ...(slot.withChain ? cert.chain.slice(0, 1) : [])]);
      slot.apply(key, cert.der);
      deps.log(
        { service: slot.name, serial: cert.serial, notAfter: cert.notAfter.toISOString(), previousNotAfter: disk ? notAfterOf(disk).toISOString() : null, repaired: !pairOk },
        'service certificate renewed',
      );
      out.push({ name: slot.name, action: 'renewed', serial: cert.serial, notAfter: cert.notAfter });
    }
    return out;
  });
}
