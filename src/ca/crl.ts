/**
 * CRL signing (RFC 5280 §5). Only the core signs; the HTTP adapter serves the stored bytes.
 *
 * One publication of an issuer, under the store's per-issuer build lock and one database snapshot:
 * - the full CRL (every revoked or held certificate not expired more than one CRL period ago),
 *   built by concatenating the entries stored at revocation time (no object per entry), with a
 *   Freshest CRL extension naming the delta CRL when deltas are on;
 * - with partitioning on, one CRL per shard, each with a critical Issuing Distribution Point;
 * - the delta CRL against the newest base CRL (RFC 5280 §5.2.4): every certificate whose status
 *   changed since that base, a released hold as removeFromCRL.
 * All of them draw their CRL Number from the one per-issuer sequence.
 */
import { assembleCrl, buildTbsCertList } from '../pki/crl.js';
import { unavailable } from '../core/errors.js';
import type { Clock } from '../core/clock.js';
import type { FleetcaConfig } from '../config/schema.js';
import type { IssuerRuntime } from './issuers.js';
import { crlEntryOf, removeFromCrlEntryOf } from './revocation.js';
import { shardCrlUrl } from './urls.js';
import type { AuditStore, CrlBuildSession, CrlRecord, CrlStore } from './ports.js';

export interface CrlSettings {
  /** Full CRL validity, ms; also how long an expired revoked certificate stays listed. */
  nextUpdate: number;
  /** Delta CRL validity, ms. */
  deltaNextUpdate: number;
  deltas: boolean;
  /** Number of shards; 1 = not partitioned. */
  shards: number;
}

/** The CRL settings of ca.yaml. */
export function crlSettingsOf(config: FleetcaConfig): CrlSettings {
  const c = config.settings.crl;
  return { nextUpdate: c.nextUpdate, deltaNextUpdate: c.deltaNextUpdate, deltas: c.deltas, shards: c.shards };
}

export interface CrlDeps {
  store: CrlStore & AuditStore;
  clock: Clock;
  settings: CrlSettings;
}

export interface Publication {
  full: CrlRecord & { entries: number };
  shards: Array<CrlRecord & { entries: number }>;
  delta: (CrlRecord & { entries: number; baseNumber: bigint }) | null;
}

/**
 * A status change committed just before a base CRL's snapshot may carry a time a little before
 * the base's thisUpdate, or one a little after: deltas look back this far before their base, and
 * listing a change twice (in the base and in the delta) is harmless.
 */
const DELTA_OVERLAP_MS = 10 * 60_000;

/** Encodes the CRL entries of rows revoked before entries were stored (migration 0005). */
export async function fillMissingCrlEntries(store: CrlStore): Promise<number> {
  let n = 0;
  for (;;) {
    const rows = await store.missingCrlEntries(1000);
    if (rows.length === 0) return n;
    await store.setCrlEntries(rows.map((r) => ({ serial: r.serial, der: crlEntryOf({ serial: r.serial, revokedAt: r.revokedAt, reason: r.reason, invalidityDate: r.invalidityDate }) })));
    n += rows.length;
  }
}

/**
 * Signs and stores the CRLs of one issuer. `base`: the full CRL becomes the new base of delta
 * CRLs (the schedule does this; a change does not). Resolves null when another process is
 * publishing for this issuer right now (it will include every change it was told about).
 */
export async function publishCrls(deps: CrlDeps, issuer: IssuerRuntime, opts: { base: boolean; actor: string }): Promise<Publication | null> {
  const signer = issuer.signer;
  if (!signer) throw unavailable(`the key of issuer ${issuer.record.name} is offline; its CRL cannot be signed`);
  await fillMissingCrlEntries(deps.store);
  // the root signs only the issuing CAs' status, rarely and offline: full CRLs only
  const settings = issuer.record.role === 'root' ? { ...deps.settings, deltas: false, shards: 1 } : deps.settings;
  return deps.store.crlBuild(issuer.record.id, async (session) => {
    const thisUpdate = deps.clock.now();
    thisUpdate.setUTCMilliseconds(0);
    // RFC 5280 §3.3: an entry may leave the CRL after the certificate expired; we keep it one more
    // CRL period, so every CRL a relying party can still hold agrees it was revoked
    const listedAfter = new Date(thisUpdate.getTime() - settings.nextUpdate);
    const sign = async (p: {
      kind: 'full' | 'delta';
      shard: number;
      nextUpdateMs: number;
      encoded: Buffer[];
      entries: number;
      base: boolean;
      baseNumber: bigint | null;
      idpUrl?: string;
    }) => {
      const number = await session.nextNumber();
      const nextUpdate = new Date(thisUpdate.getTime() + p.nextUpdateMs);
      const tbs = buildTbsCertList({
        issuerNameDer: issuer.subjectDer,
        authorityKeyId: issuer.record.ski,
        signatureAlgorithm: signer.algorithm,
        thisUpdate,
        nextUpdate,
        crlNumber: number,
        entries: [],
        encodedEntries: p.encoded,
        ...(p.kind === 'delta' ? { deltaCrlIndicator: p.baseNumber! } : settings.deltas && p.shard === 0 ? { freshestCrlUrl: issuer.urls.deltaCrl } : {}),
        ...(p.idpUrl ? { issuingDistributionPoint: { url: p.idpUrl, onlyContainsUserCerts: true } } : {}),
      });
      p.encoded.length = 0; // the pages are in the TBS now: let them go before the signed copy is made
      const details = { number: number.toString(), kind: p.kind, shard: p.shard, entries: p.entries, base: p.base };
      await deps.store.appendAudit([{ at: thisUpdate, actor: opts.actor, action: 'crl.sign.begin', target: issuer.record.name, details }]);
      const der = assembleCrl(tbs, signer.algorithm, await signer.sign(tbs));
      const rec = { issuerId: issuer.record.id, number, kind: p.kind, shard: p.shard, thisUpdate, nextUpdate, der, base: p.base, baseNumber: p.baseNumber, entries: p.entries };
      await session.save(rec);
      await deps.store.appendAudit([{ at: thisUpdate, actor: opts.actor, action: 'crl.published', target: issuer.record.name, details }]);
      return rec;
    };

    const previousBase = await session.latestBase();
    const makeBase = opts.base || previousBase === null;
    const full = await sign({ kind: 'full', shard: 0, nextUpdateMs: settings.nextUpdate, ...(await collect(session, { listedAfter })), base: makeBase, baseNumber: null });
    const shards = [];
    if (settings.shards > 1) {
      for (let shard = 1; shard <= settings.shards; shard++) {
        const idpUrl = shardCrlUrl(issuer.urls, shard);
        shards.push(await sign({ kind: 'full', shard, nextUpdateMs: settings.nextUpdate, ...(await collect(session, { listedAfter, shard })), base: false, baseNumber: null, idpUrl }));
      }
    }
    let delta: Publication['delta'] = null;
    if (settings.deltas) {
      const base = makeBase ? { number: full.number, thisUpdate } : previousBase!;
      const changes = await session.changesSince(new Date(base.thisUpdate.getTime() - DELTA_OVERLAP_MS), listedAfter);
      const encoded = changes.map((c) => c.crlEntry ?? removeFromCrlEntryOf(c.serial, c.changedAt));
      const rec = await sign({ kind: 'delta', shard: 0, nextUpdateMs: settings.deltaNextUpdate, encoded, entries: encoded.length, base: false, baseNumber: base.number });
      delta = { ...rec, baseNumber: base.number };
    }
    return { full, shards, delta };
  });
}

async function collect(session: CrlBuildSession, opts: { listedAfter: Date; shard?: number }): Promise<{ encoded: Buffer[]; entries: number }> {
  const encoded: Buffer[] = [];
  let entries = 0;
  for await (const page of session.entryPages(opts)) {
    encoded.push(page.der);
    entries += page.count;
  }
  return { encoded, entries };
}
