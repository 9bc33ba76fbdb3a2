/**
 * What FreeRADIUS needs for EAP-TLS with fleetca's device certificates (`fleetca export
 * freeradius --out DIR`), proven with FreeRADIUS 3.2 and eapol_test (shared/interop CLIENTS.md §5):
 *
 *   DIR/ca_file.pem            the trust bundle (`fleetca export bundle`): device issuing CA(s), then
 *                              the root(s); never the manufacturing CA. Not what FreeRADIUS loads.
 *   DIR/device_cas.pem         the device issuing CA(s) of the bundle alone: FreeRADIUS's ca_file
 *   DIR/ca_path/<ca>.pem       each device issuing CA (no root: see renderTlsConfig)
 *   DIR/ca_path/<ca>.crl.pem   its newest full CRL, in PEM: OpenSSL's hash-dir lookup (and
 *                              `openssl rehash`) skips DER CRLs
 *   DIR/ca_path/<hash>.<n>     `openssl rehash` links to the certificates, `<hash>.r<n>` to the CRLs
 *   DIR/tls-config.conf        the items of the eap module's tls-config that point at the above
 *   DIR/fleetca-export.json    what was exported (CRL numbers, digest), for operators and watchers
 *
 * The subject-name hashes are computed here (pki/name-hash.ts, OpenSSL's X509_NAME_hash) rather than
 * by running `openssl rehash`: no dependency on an openssl binary where fleetca runs (the container
 * image has none), and the whole folder is built in memory, so it is written and switched to in one
 * step. A test checks the hashes against `openssl x509 -hash` / `openssl crl -hash`.
 *
 * Rendering is pure; `freshCrls` (the CRLs an export must contain) reaches storage through ports.
 */
import { createHash } from 'node:crypto';
import { badRequest, internal, unavailable } from '../core/errors.js';
import type { Clock } from '../core/clock.js';
import { pemEncode } from '../pki/pem.js';
import { certificateParts } from '../pki/cert-parts.js';
import { decodeCrl } from '../pki/crl-decode.js';
import { TAG, readChildren, readWhole } from '../pki/der.js';
import { opensslNameHash } from '../pki/name-hash.js';
import { decodeName } from '../pki/names.js';
import { publishCrls, type CrlSettings } from '../ca/crl.js';
import type { IssuerRuntime } from '../ca/issuers.js';
import type { AuditStore, CrlRecord, CrlStore, IssuerRecord } from '../ca/ports.js';

/** How FreeRADIUS learns that a certificate was revoked or put on hold. */
export type RevocationCheck = 'crl' | 'ocsp';

/** One entry of the exported folder: a file, or a relative symbolic link. Paths are relative, `/`-separated. */
export type ExportEntry = { path: string; content: Buffer } | { path: string; link: string };

/** A CA certificate with the CRL the export carries for it (null: none usable). */
export interface ExportedCa {
  record: IssuerRecord;
  crl: CrlRecord | null;
}

export interface FreeradiusExportInput {
  /** trustBundle(): device issuing CAs newest first, then roots (DIR/ca_file.pem). */
  bundle: readonly IssuerRecord[];
  /** The device issuing CAs of the bundle, in its order, with their fresh CRLs: all that FreeRADIUS trusts. */
  deviceCas: ExportedCa[];
  /** Absolute path of DIR as FreeRADIUS reads it (the symlink, not a versioned folder). */
  dir: string;
  /** fleetca's OCSP responder for the device CA(s). */
  ocspUrl: string;
  revocation: RevocationCheck;
}

export interface FreeradiusExport {
  entries: ExportEntry[];
  /**
   * Identifies what FreeRADIUS would act on: the files, with each CRL counted by its issuer and its
   * list of entries (not its number or dates), so that republishing an unchanged CRL is no change.
   */
  digest: string;
  /** When the exported CRLs reach half their validity (null: no CRL): a new export is due then. */
  refreshAt: Date | null;
}

/** The trust bundle as PEM, in the order trustBundle() gives (`fleetca export bundle`, ca_file.pem). */
export function trustBundlePem(bundle: readonly IssuerRecord[]): string {
  return bundle.map((i) => pemEncode('CERTIFICATE', i.certDer)).join('');
}

/** A file name for an issuer's files; issuer names are config keys, but a name is never trusted as a path. */
function fileStem(name: string): string {
  return /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(name) ? name : `ca-${createHash('sha256').update(name).digest('hex').slice(0, 16)}`;
}

/** The encoding of revokedCertificates in a CRL (empty when it lists none). */
function revokedCertificatesDer(der: Buffer): Buffer {
  const { tbsDer } = decodeCrl(der);
  const fields = readChildren(tbsDer, readWhole(tbsDer, 'tbsCertList'));
  let i = fields[0]?.tag === TAG.INTEGER ? 1 : 0;
  i += 2; // signature, issuer
  const isTime = (t: (typeof fields)[number] | undefined) => t !== undefined && (t.tag === TAG.UTC_TIME || t.tag === TAG.GENERALIZED_TIME);
  while (isTime(fields[i])) i++; // thisUpdate, nextUpdate
  const list = fields[i];
  return list?.tag === TAG.SEQUENCE ? tbsDer.subarray(list.start, list.end) : Buffer.alloc(0);
}

/** A FreeRADIUS double-quoted value; refuses what would need escaping or expand (`$`). */
function quoted(what: string, s: string): string {
  if (/["\\$\r\n]/.test(s)) throw badRequest(`${what} "${s}" contains a character FreeRADIUS would interpret (" \\ $ or a line break)`);
  return `"${s}"`;
}

/**
 * A Name as OpenSSL's X509_NAME_oneline prints it (`/O=fleetca/CN=fleetca Device CA`), the form
 * FreeRADIUS compares check_cert_issuer with; null when a value is outside printable ASCII or an
 * attribute has no short name (OpenSSL would print those differently, so no exact match is sure).
 */
export function opensslOneline(nameDer: Buffer): string | null {
  let s = '';
  for (const a of decodeName(nameDer)) {
    if (a.type === a.oid || !/^[\x20-\x7e]*$/.test(a.value) || a.value.startsWith('#')) return null;
    s += `/${a.type}=${a.value}`;
  }
  return s;
}

/**
 * The issuer every accepted device certificate must name: the device issuing CA's subject, when
 * all device CAs of the bundle share one (the usual case; a rollover under a new name has two).
 * A second lock only: what FreeRADIUS trusts is what keeps other certificates out (renderTlsConfig).
 */
export function deviceIssuerCheck(bundle: readonly IssuerRecord[]): string | null {
  const names = new Set(bundle.filter((i) => i.role === 'device').map((i) => opensslOneline(certificateParts(i.certDer).subjectDer)));
  const [only] = names;
  return names.size === 1 && only && !/["\\$]/.test(only) ? only : null;
}

/**
 * The tls-config snippet (FreeRADIUS 3.2, `$INCLUDE`d inside `tls-config tls-common { ... }`).
 *
 * Keeping IDevIDs out: FreeRADIUS is given the device issuing CAs and nothing above them (ca_file =
 * device_cas.pem, ca_path without the root). It verifies with X509_V_FLAG_PARTIAL_CHAIN (set on its
 * store in src/main/tls.c), so a trusted issuing CA is a trust anchor: a device certificate verifies
 * up to its issuing CA, whatever chain the device sends, while an IDevID (or anything else the root
 * signed) only reaches the root, which FreeRADIUS does not trust: error 20, or 19 when the root is
 * sent too. This holds for any number of device CAs, needs no CA names, and fails closed: without
 * PARTIAL_CHAIN every device would be rejected, not let in. DIR/ca_file.pem stays the trust bundle
 * (what `fleetca export bundle` prints, for other NACs and tools); device_cas.pem is that same list
 * without the roots, taken from it in the same build, so the two cannot disagree.
 *
 * Rejected, with the evidence (README "NAC integration: FreeRADIUS"):
 *  - check_cert_issuer alone: one value, so it cannot name two device CAs during a rollover (it is
 *    still written, as a second lock, when they share a subject).
 *  - reject_unknown_intermediate_ca = yes (FreeRADIUS rejects a chain that uses more than one
 *    certificate the client sent): with the root trusted, FreeRADIUS 3.2.1 on OpenSSL 3.0 built the
 *    chain through the device CA the client sent, so it rejected genuine devices too.
 *  - a check-eap-tls virtual server matching TLS-Client-Cert-Issuer: `virtual_server` belongs to the
 *    eap module's `tls { }` section and the site has to be loaded as well, neither of which this
 *    snippet can do; FreeRADIUS 3.2.1 silently ignores a `virtual_server` put in tls-config, so a
 *    half-done setup would let IDevIDs in without a warning.
 */
export function renderTlsConfig(input: { dir: string; ocspUrl: string; revocation: RevocationCheck; checkCertIssuer: string | null }): string {
  const dir = input.dir.replace(/\/+$/, '');
  const crl = input.revocation === 'crl';
  const issuer = input.checkCertIssuer
    ? '# A second lock while every device CA has the same subject: the issuer must be that subject.\n' +
      `check_cert_issuer = ${quoted('the device CA subject', input.checkCertIssuer)}`
    : '# check_cert_issuer is not set: the device CAs have more than one subject name (a rollover), or one\n' +
      '# OpenSSL would print differently. The trust above keeps other issuers out all the same.';
  return `# Written by \`fleetca export freeradius\`; replaced on every export, do not edit.
# Include it at the top of the eap module's tls-config section, beside your RADIUS server's own
# certificate and key, and remove your own copies of the items and sections below (FreeRADIUS takes
# the first one it finds):
#
#   tls-config tls-common {
#       $INCLUDE ${dir}/tls-config.conf
#       private_key_file = \${certdir}/server.key
#       certificate_file = \${certdir}/server.pem
#       ...
#   }
#
# Revocation check: ${crl ? 'CRLs from ca_path (FreeRADIUS reads a new CRL only when restarted: run the export with --watch --reload-cmd "systemctl restart freeradius")' : "fleetca's OCSP responder, asked on every authentication (no restart needed)"}.

# What FreeRADIUS trusts: the device issuing CA(s) alone, not the root. FreeRADIUS verifies with
# X509_V_FLAG_PARTIAL_CHAIN, so a device certificate verifies up to its issuing CA, and an IDevID,
# which the device may send with the manufacturing CA, only reaches the untrusted root: rejected
# (error 20, or 19 when the root is sent too), however many device CAs there are. ca_file.pem beside
# it is the whole trust bundle, root included: never give that one to FreeRADIUS.
ca_file = ${quoted('--out', `${dir}/device_cas.pem`)}
# The same CAs and their CRLs (PEM) under OpenSSL's subject-hash names; no root here either.
ca_path = ${quoted('--out', `${dir}/ca_path`)}

${issuer}

check_crl = ${crl ? 'yes' : 'no'}
# The check_all_crl trap: keep it "no". The verified chain ends at the trusted issuing CA, and
# check_all_crl = yes would also check that CA against the root's CRL, which FreeRADIUS cannot do
# here: "error 3 : unable to get certificate CRL" for every device (with the root trusted and its
# CRL present, "error 8 : CRL signature failure"). "no" checks the device certificate against its
# issuing CA's CRL, which is the one that lists revoked and held devices.
check_all_crl = no
# A CRL past its nextUpdate rejects everyone (error 12); the export keeps them fresh.
allow_expired_crl = no

# A resumed TLS session skips certificate verification: with a cache, a revoked or held device could
# come back without being checked.
cache {
	enable = no
}

ocsp {
	enable = ${crl ? 'no' : 'yes'}
	# fleetca's responder for the device CA(s), whatever the certificates' AIA says
	override_cert_url = yes
	url = ${quoted('--ocsp-url', input.ocspUrl)}
	use_nonce = yes
	timeout = 5
	# no answer = reject: a device is never let in unchecked
	softfail = no
}
`;
}

/** Renders the whole folder (pure). `generatedAt` goes only into fleetca-export.json. */
export function renderFreeradiusExport(input: FreeradiusExportInput, generatedAt: Date): FreeradiusExport {
  // device_cas.pem and ca_path are what FreeRADIUS trusts: exactly the bundle's device CAs, never more
  const bundleDevices = input.bundle.filter((r) => r.role === 'device');
  if (bundleDevices.length === 0) throw unavailable('no valid device issuing CA to export');
  if (bundleDevices.length !== input.deviceCas.length || bundleDevices.some((r, i) => !r.certDer.equals(input.deviceCas[i]!.record.certDer))) {
    throw internal('the device CAs to export are not those of the trust bundle');
  }
  const files: ExportEntry[] = [];
  const links: ExportEntry[] = [];
  const digest = createHash('sha256');
  const hashCount = new Map<string, number>();
  const nextSuffix = (key: string) => {
    const n = hashCount.get(key) ?? 0;
    hashCount.set(key, n + 1);
    return n;
  };
  const seen = new Set<string>();
  let refreshAt: Date | null = null;
  const manifestCas: Array<Record<string, unknown>> = [];

  for (const ca of input.deviceCas) {
    const fp = createHash('sha256').update(ca.record.certDer).digest('hex');
    if (seen.has(fp)) continue; // the same certificate twice: one file and one link, as openssl rehash does
    seen.add(fp);
    const stem = fileStem(ca.record.name);
    const certFile = `${stem}.pem`;
    const certPem = Buffer.from(pemEncode('CERTIFICATE', ca.record.certDer));
    files.push({ path: `ca_path/${certFile}`, content: certPem });
    const h = opensslNameHash(certificateParts(ca.record.certDer).subjectDer);
    links.push({ path: `ca_path/${h}.${nextSuffix(h)}`, link: certFile });
    digest.update(`cert ${stem} ${fp}\n`);

    let crlInfo: Record<string, unknown> | null = null;
    if (ca.crl) {
      const crlFile = `${stem}.crl.pem`;
      files.push({ path: `ca_path/${crlFile}`, content: Buffer.from(pemEncode('X509 CRL', ca.crl.der)) });
      const crlHash = opensslNameHash(decodeCrl(ca.crl.der).issuerDer);
      links.push({ path: `ca_path/${crlHash}.r${nextSuffix(`r${crlHash}`)}`, link: crlFile });
      digest.update(`crl ${stem} ${createHash('sha256').update(revokedCertificatesDer(ca.crl.der)).digest('hex')}\n`);
      const half = new Date((ca.crl.thisUpdate.getTime() + ca.crl.nextUpdate.getTime()) / 2);
      if (!refreshAt || half < refreshAt) refreshAt = half;
      crlInfo = { number: ca.crl.number.toString(), this_update: ca.crl.thisUpdate.toISOString(), next_update: ca.crl.nextUpdate.toISOString(), file: `ca_path/${crlFile}` };
    }
    manifestCas.push({ name: ca.record.name, role: ca.record.role, sha256: fp, file: `ca_path/${certFile}`, subject_hash: h, crl: crlInfo });
  }

  const caFile = Buffer.from(trustBundlePem(input.bundle));
  const deviceCaFile = Buffer.from(trustBundlePem(bundleDevices));
  const tlsConfig = Buffer.from(renderTlsConfig({ ...input, checkCertIssuer: deviceIssuerCheck(input.bundle) }));
  digest.update(caFile).update(deviceCaFile).update(tlsConfig);
  for (const l of links) if ('link' in l) digest.update(`link ${l.path} ${l.link}\n`);
  const hex = digest.digest('hex');

  const manifest = {
    generated_at: generatedAt.toISOString(),
    digest: hex,
    revocation: input.revocation,
    ocsp_url: input.ocspUrl,
    refresh_at: refreshAt?.toISOString() ?? null,
    // what FreeRADIUS trusts (device_cas.pem, ca_path), then the whole bundle (ca_file.pem)
    cas: manifestCas,
    bundle: input.bundle.map((r) => ({ name: r.name, role: r.role, sha256: createHash('sha256').update(r.certDer).digest('hex') })),
  };
  return {
    entries: [
      { path: 'ca_file.pem', content: caFile },
      { path: 'device_cas.pem', content: deviceCaFile },
      ...files,
      ...links,
      { path: 'tls-config.conf', content: tlsConfig },
      { path: 'fleetca-export.json', content: Buffer.from(JSON.stringify(manifest, null, 2) + '\n') },
    ],
    digest: hex,
    refreshAt,
  };
}

// ---------------------------------------------------------------- fresh CRLs

export interface FreshCrlDeps {
  store: CrlStore & AuditStore;
  clock: Clock;
  settings: CrlSettings;
  log: (level: 'info' | 'warn', msg: string) => void;
  /** Pause between tries while another process holds an issuer's CRL build lock (tests shorten it). */
  sleep?: (ms: number) => Promise<void>;
}

/**
 * For each issuer, the status change the caller's own publication already covers: a CRL published
 * after the history said "last change at T" lists every change up to T, even when its thisUpdate
 * (whole seconds) is not later than T. Keeps a watcher from republishing in a loop.
 */
export type CoveredChanges = Map<number, number>;

const LOCK_RETRY_MS = 200;
const LOCK_TRIES = 50;

/**
 * The newest full CRL of each CA, fresh: when it is missing, older than the issuer's last status
 * change, or past half its validity, a new one is published through the core (as `fleetca crl
 * publish` does), so the export lists every revocation, hold and release recorded before it
 * started. A device CA whose key is offline and whose CRL is stale is an error (unavailable); a root
 * whose key is offline keeps its stored CRL while it is valid. (`export freeradius` passes only the
 * device CAs: FreeRADIUS checks a device certificate against its issuing CA's CRL, and the root is
 * not in what it loads.)
 */
export async function freshCrls(deps: FreshCrlDeps, cas: readonly IssuerRuntime[], covered: CoveredChanges = new Map()): Promise<ExportedCa[]> {
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const out: ExportedCa[] = [];
  for (const issuer of cas) {
    const { record } = issuer;
    let crl: CrlRecord | null;
    for (let attempt = 0; ; attempt++) {
      const last = await deps.store.lastStatusChange(record.id);
      crl = await deps.store.latestCrl(record.name, 'full', 0);
      const now = deps.clock.now().getTime();
      const missed = last !== null && crl !== null && last.getTime() >= crl.thisUpdate.getTime() && (covered.get(record.id) ?? -Infinity) < last.getTime();
      const aging = crl !== null && now >= (crl.thisUpdate.getTime() + crl.nextUpdate.getTime()) / 2;
      if (crl && !missed && !aging) break;
      if (!issuer.signer) {
        if (record.role === 'root') {
          if (crl && now < crl.nextUpdate.getTime()) deps.log('warn', `the root key is offline: exporting its stored CRL #${crl.number} (next update ${crl.nextUpdate.toISOString()})`);
          else {
            deps.log('warn', `the root key is offline and it has no valid CRL: ${record.name} exported without one (check_all_crl = no does not need it)`);
            crl = null;
          }
          break;
        }
        throw unavailable(`the CRL of ${record.name} is ${crl ? 'out of date' : 'missing'} and its key is offline: it cannot be signed here`);
      }
      const pub = await publishCrls({ store: deps.store, clock: deps.clock, settings: deps.settings }, issuer, { base: false, actor: 'system:export' });
      if (pub) {
        if (last) covered.set(record.id, last.getTime());
        crl = pub.full;
        deps.log('info', `published CRL #${pub.full.number} of ${record.name} (${pub.full.entries} entries) for the export`);
        break;
      }
      // another process is building this issuer's CRLs right now: look again once it has
      if (attempt + 1 >= LOCK_TRIES) throw unavailable(`the CRLs of ${record.name} are being published by another process for too long; try again`);
      await sleep(LOCK_RETRY_MS);
    }
    out.push({ record, crl });
  }
  return out;
}
