/**
 * Intermediate CA rollover (issue 9): a new issuing CA for a configured lineage (`device-ca` →
 * `device-ca-2`, subject CN "<CN> G2"), signed by the root, with its own OCSP responder
 * certificate and first CRL. From `activatesAt` (default: now) the lineage's profiles issue from
 * it; the old CA keeps signing its CRLs and OCSP answers for what it issued. The trust bundle, EST
 * cacerts and SCEP GetCACert carry both while both are valid; SCEP GetNextCACert announces a
 * scheduled one. Running servers learn of it through the store's announcement and load it.
 *
 * The caller writes the new certificates where servers read them, then announces the change
 * (store.announceIssuers): a server told earlier would look for files not yet there.
 *
 * Two rollovers of a lineage started at once: one wins, the other gets a conflict (an advisory
 * lock, and a CA of the lineage made after this rollover began). Never two pending: scheduling a
 * second successor before the first took over is refused.
 */
import crypto from 'node:crypto';
import { badRequest, conflict, internal, unavailable } from '../core/errors.js';
import type { Clock, RandomBytes } from '../core/clock.js';
import type { FleetcaConfig } from '../config/schema.js';
import { parseSpki } from '../pki/spki.js';
import { generateKeyPair, spkiOf } from '../signing/keys.js';
import type { CryptoEngine } from '../signing/crypto-pool.js';
import type { KeyStore } from '../signing/key-store.js';
import { SERVICE_KEYS, createIssuingCa, selfSignedRoot, subjectAttrs, type ServiceCertificate } from './bootstrap.js';
import { crlSettingsOf, publishCrls } from './crl.js';
import type { CertificateAuthority } from './issuance.js';
import { activationOf, buildIssuerRuntime, currentIssuer, hasCome, lineageIssuers, lineageOf, scheduledIssuer, type IssuerRuntime } from './issuers.js';
import { nodeDigestFor } from '../pki/algorithms.js';
import { encodeCertsOnly } from '../pki/pkcs7.js';
import { encodeNextCaCert } from '../pki/scep-cms.js';
import type { CaStore, CrlStore, IssuerRecord, LinkCertificate, RolloverStore } from './ports.js';
import { decodeName, encodeName } from '../pki/names.js';

export interface RolloverDeps {
  config: FleetcaConfig;
  store: CaStore & CrlStore & RolloverStore;
  crypto: CryptoEngine;
  keys: KeyStore;
  clock: Clock;
  ca: CertificateAuthority;
  publicUrl: string;
  random?: RandomBytes;
}

export interface RolloverResult {
  issuer: IssuerRuntime;
  previous: IssuerRuntime | null;
  activatesAt: Date;
  /** The new CA's OCSP responder certificate (its key is saved under keyName). */
  services: ServiceCertificate[];
}

/**
 * `startedAt`: when the operator's command began (default now): a CA of the lineage made since
 * then was made by a rollover running alongside this one.
 */
export async function rolloverIntermediate(deps: RolloverDeps, lineage: string, opts: { at?: Date; actor: string; startedAt?: Date }): Promise<RolloverResult> {
  const settings = deps.config.settings.issuers[lineage];
  if (!settings) throw badRequest(`no issuer "${lineage}" in ca.yaml (issuers: ${Object.keys(deps.config.settings.issuers).join(', ')})`);
  if (settings.role === 'root') throw badRequest(`"${lineage}" is the root: use ca rollover --root`);
  const root = currentRoot(deps.ca, deps.clock.now());
  if (!root?.signer) throw unavailable('the root key is offline: give --root-key FILE');
  const now = deps.clock.now();
  now.setUTCMilliseconds(0);
  const startedAt = beganAt(now, opts.startedAt);
  // whole seconds, like the validity of the certificates it will sign
  const activatesAt = opts.at ? new Date(Math.floor(opts.at.getTime() / 1000) * 1000) : now;
  if (activatesAt.getTime() < now.getTime()) throw badRequest(`--at ${activatesAt.toISOString()} is in the past`);

  // a scheduled successor is reported as such, also when it was made in the second this command
  // started (whole-second times cannot tell that from a race, and both refuse)
  const refuseScheduled = (records: IssuerRecord[]) => {
    if (records.length === 0) throw badRequest(`issuer ${lineage} is not in this database (run init first)`);
    const pending = records.find((r) => !hasCome(r, now));
    if (pending) throw conflict(`a rollover of ${lineage} is already scheduled: ${pending.name} takes over at ${activationOf(pending).toISOString()}`);
  };
  return exclusively(deps, lineage, startedAt, refuseScheduled, async (records) => {
    const latest = records.reduce((a, b) => (activationOf(b) > activationOf(a) ? b : a));
    const generation = records.length + 1;
    const name = `${lineage}-${generation}`;
    if (records.some((r) => r.name === name)) throw conflict(`issuer ${name} exists already`);

    const { issuer, issued } = await createIssuingCa(deps, {
      name,
      settings,
      parentName: root.record.name,
      subject: subjectAttrs({ ...settings.subject, CN: `${settings.subject.CN} G${generation}` }),
      actor: opts.actor,
      lineage,
      activatesAt,
    });
    deps.ca.addIssuer(issuer);

    // its own delegated OCSP responder, as init gives every CA
    const { key: responderKey, cert: responder } = await deps.ca.issueServiceKey({
      keyType: 'P-256',
      profile: deps.config.settings.systemProfiles.ocspResponder,
      issuerName: name,
      subject: [{ type: 'CN', oid: '2.5.4.3', value: `${settings.subject.CN} G${generation} OCSP Responder` }],
      actor: opts.actor,
      via: 'rollover',
    });
    deps.keys.save(SERVICE_KEYS.ocsp(name), responderKey);

    await publishCrls({ store: deps.store, clock: deps.clock, settings: crlSettingsOf(deps.config) }, issuer, { base: true, actor: opts.actor });
    await deps.store.appendAudit([
      {
        at: now,
        actor: opts.actor,
        action: 'ca.rollover',
        target: name,
        details: { lineage, previous: latest.name, activatesAt: activatesAt.toISOString(), notAfter: issued.notAfter.toISOString(), sha256: crypto.createHash('sha256').update(issued.der).digest('hex') },
      },
    ]);
    const previous = deps.ca.issuers.get(latest.name) ?? null;
    return { issuer, previous, activatesAt, services: [{ name: SERVICE_KEYS.ocsp(name), keyName: SERVICE_KEYS.ocsp(name), cert: responder }] };
  });
}

/** When the operator's command began, in whole seconds (CA notBefore precision), never after `now`. */
function beganAt(now: Date, startedAt: Date | undefined): number {
  return Math.min(now.getTime(), Math.floor((startedAt?.getTime() ?? now.getTime()) / 1000) * 1000);
}

/**
 * Runs a rollover of `lineage` under its lock, with the lineage's CAs as the database has them
 * (another process may have rolled over since this one loaded). `refuseFirst` checks them first;
 * then a CA of the lineage made since `startedAt` means another rollover ran alongside this one,
 * and won.
 */
async function exclusively<T>(
  deps: RolloverDeps,
  lineage: string,
  startedAt: number,
  refuseFirst: ((records: IssuerRecord[]) => void) | null,
  fn: (records: IssuerRecord[]) => Promise<T>,
): Promise<T> {
  const unlock = await deps.store.tryRolloverLock(lineage);
  if (!unlock) throw conflict(`another rollover of ${lineage} is in progress`);
  try {
    const records = (await deps.store.listIssuers()).filter((r) => lineageOf(r) === lineage);
    refuseFirst?.(records);
    const raced = records.find((r) => r.notBefore.getTime() >= startedAt && r.name !== lineage);
    if (raced) throw conflict(`another rollover of ${lineage} made ${raced.name} while this one was starting`);
    return await fn(records);
  } finally {
    await unlock();
  }
}

/**
 * The CAs of a lineage a client should hold (EST cacerts, SCEP GetCACert): the one issuing now
 * first, then the others still valid — the previous one during an overlap, and a scheduled one
 * ahead of its switch, so that devices trust it before their first certificate from it — then the root.
 */
export function overlapChain(ca: CertificateAuthority, lineage: string, now: Date): Buffer[] {
  const cas = lineageIssuers(ca.issuers.values(), lineage, now);
  // after a root rollover: both roots (the current one first) and the link certificates
  // (RFC 7030 §4.1.3: OldWithOld, OldWithNew, NewWithOld)
  const roots = rootsOf(ca, now);
  const links = ca.links.filter((l) => now < l.notAfter).map((l) => l.certDer);
  return [...cas.map((i) => i.record.certDer), ...roots.map((i) => i.record.certDer), ...links];
}

/** Every unexpired root, the current one first. */
function rootsOf(ca: CertificateAuthority, now: Date): IssuerRuntime[] {
  const first = [...ca.issuers.values()].find((i) => i.record.role === 'root');
  return first ? lineageIssuers(ca.issuers.values(), lineageOf(first.record), now) : [];
}

/** The root that certifies new CAs now (the newest after a root rollover). */
export function currentRoot(ca: CertificateAuthority, now: Date): IssuerRuntime | null {
  return rootsOf(ca, now)[0] ?? null;
}

/**
 * SCEP GetNextCACert (RFC 8894 §4.7): when a rollover of the lineage is scheduled, its new CA
 * certificate (and the root) as a certs-only SignedData inside a SignedData signed by the CA
 * issuing now; null when none is scheduled.
 */
export async function nextCaCertResponse(ca: CertificateAuthority, lineage: string, now: Date): Promise<Buffer | null> {
  const next = scheduledIssuer(ca.issuers.values(), lineage, now);
  if (!next) return null;
  const current = currentIssuer(ca.issuers.values(), lineage, now);
  if (!current?.signer) throw unavailable(`the key of the current ${lineage} CA is offline`);
  const digest = nodeDigestFor(current.signer.algorithm);
  if (digest !== 'sha256' && digest !== 'sha384' && digest !== 'sha512') throw unavailable(`the ${current.record.name} key (${current.signer.algorithm}) cannot sign a GetNextCACert response`);
  const roots = rootsOf(ca, now).map((i) => i.record.certDer);
  const toSign = encodeNextCaCert({ signerCertDer: current.record.certDer, certsOnlyDer: encodeCertsOnly([next.record.certDer, ...roots]), digest, signingTime: now });
  return toSign.assemble(await current.signer.sign(toSign.signedAttrsDer));
}

export interface RootRolloverResult {
  root: IssuerRuntime;
  previous: IssuerRuntime;
  links: LinkCertificate[];
}

/**
 * Root rollover (RFC 4210 §4.4): a new self-signed root (`root-2`, CN "… G2") and the two link
 * certificates — old-with-new (the new root's key signed by the old root) and new-with-old (the
 * old root's key signed by the new one), valid until the old root expires — so that a device that
 * trusts only one of the roots validates chains under the other. Both keys must be online (the old
 * one usually through --root-key). New issuing CAs (`ca rollover --intermediate`) are certified by
 * the new root from then on; the existing ones keep their old-root certificates.
 */
export async function rolloverRoot(deps: RolloverDeps, opts: { actor: string; startedAt?: Date }): Promise<RootRolloverResult> {
  const now = deps.clock.now();
  now.setUTCMilliseconds(0);
  const startedAt = beganAt(now, opts.startedAt);
  const old = currentRoot(deps.ca, now);
  if (!old) throw badRequest('no root CA in this database (run init first)');
  if (!old.signer) throw unavailable('the root key is offline: give --root-key FILE');
  const lineage = lineageOf(old.record);
  const settings = deps.config.settings.issuers[lineage];
  if (!settings || settings.role !== 'root') throw badRequest(`the root ${lineage} is not a root issuer in ca.yaml`);
  return exclusively(deps, lineage, startedAt, null, async (records) => {
    const generation = records.length + 1;
    const name = `${lineage}-${generation}`;
    const random = deps.random ?? crypto.randomBytes;

    const kp = generateKeyPair(settings.keyType);
    const spki = spkiOf(kp.publicKey);
    const signer = await deps.crypto.addKey(name, kp.privateKey);
    const subject = subjectAttrs({ ...settings.subject, CN: `${settings.subject.CN} G${generation}` });
    await deps.store.appendAudit([{ at: now, actor: opts.actor, action: 'ca.root.sign.begin', target: name, details: { previous: old.record.name } }]);
    const self = await selfSignedRoot(signer, spki, subject, now, settings.validity, random);
    deps.keys.save(name, kp.privateKey);
    const record = await deps.store.upsertIssuer({
      name,
      role: 'root',
      certDer: self.der,
      ski: self.ski,
      notBefore: now,
      notAfter: self.notAfter,
      active: true,
      lineage,
      activatesAt: now,
    });
    const root = buildIssuerRuntime(record, signer, deps.publicUrl);
    deps.ca.addIssuer(root);

    // the link certificates, through the pipeline (recorded, linted, audited), until the old root expires
    const untilOld = old.record.notAfter.getTime() - now.getTime();
    const oldSubject = decodeName(old.subjectDer);
    if (!encodeName(oldSubject).equals(old.subjectDer)) throw internal(`the subject of ${old.record.name} does not re-encode identically; cannot link to it`);
    const oldWithNew = await deps.ca.issueCaCertificate({ parentName: old.record.name, subject: decodeName(root.subjectDer), spkiDer: spki, key: parseSpki(spki).key, validityMs: untilOld, actor: opts.actor });
    const newWithOld = await deps.ca.issueCaCertificate({ parentName: name, subject: oldSubject, spkiDer: old.spkiDer, key: parseSpki(old.spkiDer).key, validityMs: untilOld, actor: opts.actor });
    const links: LinkCertificate[] = [
      { oldRoot: old.record.name, newRoot: name, kind: 'old-with-new', certDer: oldWithNew.der, notAfter: oldWithNew.notAfter },
      { oldRoot: old.record.name, newRoot: name, kind: 'new-with-old', certDer: newWithOld.der, notAfter: newWithOld.notAfter },
    ];
    await deps.store.addLinkCertificates(links);
    deps.ca.setLinks([...deps.ca.links, ...links]);
    await publishCrls({ store: deps.store, clock: deps.clock, settings: crlSettingsOf(deps.config) }, root, { base: true, actor: opts.actor });
    await deps.store.appendAudit([
      {
        at: now,
        actor: opts.actor,
        action: 'ca.root.rollover',
        target: name,
        details: { previous: old.record.name, notAfter: self.notAfter.toISOString(), sha256: crypto.createHash('sha256').update(self.der).digest('hex') },
      },
    ]);
    return { root, previous: old, links };
  });
}
