/**
 * The admin API (`/api/v1` on the HTTPS listener): the CLI's operations over JSON, for admins, the
 * SOC, factories and NACs. Every route — its method, path, the roles allowed, its input schemas —
 * is one row of ROUTES; the express router and the OpenAPI document are both built from that
 * table, and a test calls every route with every role.
 *
 * Authentication: `Authorization: Bearer fca_…` (tokens from `fleetca token create`), or, without
 * a bearer token, a TLS client certificate of the admin CA (`fleetca admin-cert issue`); too many
 * failures from one address → 429. Errors are RFC 9457 problem+json; input is validated with zod;
 * lists are paginated with an opaque cursor.
 */
import type { TLSSocket } from 'node:tls';
import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import { CaError, assertNever, type CaErrorKind } from '../../core/errors.js';
import { formatSerial, normalizeSerial } from '../../core/ids.js';
import { normalizeMac } from '../../ca/policy.js';
import { FailureLimiter } from '../../enrollment/secrets.js';
import { DEFAULT_TOKEN_TTL, ROLES, type Role } from '../../enrollment/api-tokens.js';
import { advisoryView, apiTokenView, certificateView, deviceView, inventoryView, requestView } from '../../enrollment/views.js';
import type { InventoryEntry, InventoryFilter } from '../../enrollment/inventory.js';
import { pemEncode } from '../../pki/pem.js';
import type { NacIdentity } from '../../enrollment/nac.js';
import { batchRejectView, batchView } from '../../bulk/views.js';
import { RECALL_REASONS } from '../../bulk/recall.js';
import { REVOCATION_REASONS } from '../../ca/revocation.js';
import type { BatchRecord, BatchReject } from '../../bulk/ports.js';
import { createHash } from 'node:crypto';
import type { CertificateRecord, CertificateStatus, DevicePatch, DeviceRecord, RevocationReason } from '../../ca/ports.js';
import type { EnrollmentRequest, RequestState } from '../../enrollment/ports.js';
import type { Advisory, ApiToken } from '../../ca/ports.js';
import type { AdvisoryOutcome, AdvisoryRequest } from '../../ca/advisories.js';
import { parseDuration } from '../../core/duration.js';

/** What the API calls: the same core functions as the CLI. */
export interface AdminApiDeps {
  authenticate(token: string): Promise<{ name: string; role: Role } | null>;
  /**
   * A TLS client certificate (leaf DER) of the admin CA → its name and role, or why it was refused
   * (enrollment/admin-certs.ts). Absent: no certificate authentication.
   */
  authenticateCertificate?(certDer: Buffer): Promise<{ ok: true; name: string; role: Role } | { ok: false; reason: string }>;
  /** The device inventory (enrollment/inventory.ts): filtered, in id order, at most `limit`. */
  inventory(f: InventoryFilter): Promise<{ entries: InventoryEntry[]; more: boolean }>;
  updateDevice(id: string, patch: DevicePatch, actor: string): Promise<DeviceRecord>;
  quarantine(id: string, reason: string, actor: string): Promise<{ held: CertificateRecord[] }>;
  liftQuarantine(id: string, actor: string): Promise<{ released: CertificateRecord[] }>;
  retire(id: string, actor: string): Promise<CertificateRecord[]>;
  listCertificates(f: { deviceId?: string; profile?: string; status?: CertificateStatus; after?: { createdAt: Date; serial: string }; limit: number }): Promise<CertificateRecord[]>;
  getCertificate(serial: string): Promise<CertificateRecord | null>;
  revoke(serial: string, reason: RevocationReason, actor: string, invalidityDate?: Date): Promise<CertificateRecord>;
  release(serial: string, actor: string): Promise<CertificateRecord>;
  createSecret(deviceId: string, profile: string, ttlMs: number | undefined, actor: string): Promise<{ deviceId: string; profile: string; secret: string; expiresAt: Date }>;
  listRequests(f: { state?: RequestState }): Promise<EnrollmentRequest[]>;
  decideRequest(id: string, decision: 'approved' | 'rejected', actor: string, reason: string | null): Promise<EnrollmentRequest>;
  listAudit(f: { target?: string; action?: string; limit: number }): Promise<Array<{ id: number; at: Date; actor: string; action: string; target: string | null; details: Record<string, unknown> }>>;
  listAdvisories(): Promise<Advisory[]>;
  /** ca/advisories applyAdvisory: dryRun only selects; otherwise records (and audits) and acts. */
  applyAdvisory(req: AdvisoryRequest): Promise<AdvisoryOutcome>;
  withdrawAdvisory(id: number, actor: string): Promise<Advisory>;
  listTokens(): Promise<ApiToken[]>;
  createToken(t: { name: string; role: Role; ttlMs: number; actor: string }): Promise<{ token: string; record: ApiToken }>;
  /** false when there is no unrevoked token of that name. */
  revokeToken(name: string, actor: string): Promise<boolean>;
  /** Authentication failures allowed per client address and window before 429. */
  authFailureLimit: number;
  authFailureWindowMs: number;
  now(): Date;
  /** The NAC feed: identities changed after the cursor, up to the horizon (store NacStore.nacChanges). */
  nacChanges(after: { xid: string; id: string }, limit: number): Promise<{ items: Array<{ identity: NacIdentity; xid: string }>; horizon: string }>;
  /** The EAP-TLS trust bundle (device issuing CAs + roots), PEM. */
  trustBundlePem(): string;
  /** Factory batches (bulk/): newest first; one with its rejected rows; a recall. */
  listBatches(limit: number): Promise<BatchRecord[]>;
  getBatch(id: string): Promise<{ batch: BatchRecord; rejects: BatchReject[] } | null>;
  revokeBatch(id: string, reason: RevocationReason, actor: string): Promise<{ revoked: string[]; alreadyRevoked: number }>;
}

interface Ctx {
  deps: AdminApiDeps;
  params: Record<string, string>;
  query: Record<string, unknown>;
  body: unknown;
  actor: string;
}

export interface ApiRoute {
  method: 'get' | 'post' | 'patch';
  /** OpenAPI form: /devices/{id} (under /api/v1). */
  path: string;
  summary: string;
  /** Who may call it (admin may call everything, and is listed explicitly). */
  roles: readonly Role[];
  query?: z.ZodObject;
  body?: z.ZodType;
  /** 200 unless said otherwise. */
  run(ctx: Ctx): Promise<unknown>;
  /** The media type of a 200 that is not JSON (run returns a RawAnswer). */
  responseType?: string;
  /** Answer with an ETag over this text of the result, and 304 to a matching If-None-Match. */
  etag?: (out: unknown) => string;
}

/** A route answer that is not JSON (a PEM bundle). */
export class RawAnswer {
  constructor(
    readonly type: string,
    readonly body: string,
  ) {}
}

/** Whether an If-None-Match header names this entity tag (weak comparison, RFC 9110 §13.1.2). */
function etagMatches(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  if (header.trim() === '*') return true;
  const bare = (t: string) => t.trim().replace(/^W\//, '');
  return header.split(',').some((t) => bare(t) === bare(etag));
}

// ---------------------------------------------------------------- schemas

const LIMIT = z.coerce.number().int().min(1).max(1000).default(100);
const text = (max: number) => z.string().max(max);
/** Revocation reasons of the revoke routes: a hold has its own route. */
const REASONS = REVOCATION_REASONS.filter((r) => r !== 'certificateHold') as [RevocationReason, ...RevocationReason[]];

const deviceQuery = z.strictObject({
  profile: text(64).optional(),
  model: text(128).optional(),
  firmware: text(200).optional().describe('a firmware version range, e.g. <2.4.1'),
  state: z.enum(['active', 'quarantined', 'retired']).optional(),
  segment: text(256).optional(),
  criticality: z.enum(['high', 'normal', 'low']).optional(),
  stale: z.enum(['true', 'false']).optional().describe('true: only devices whose certificate is in its renewal window or expired and not replaced'),
  limit: LIMIT,
  cursor: text(512).optional(),
});
const devicePatchBody = z
  .strictObject({
    macs: z.array(text(32)).max(16).optional(),
    serial_number: text(128).nullable().optional(),
    model: text(128).nullable().optional(),
    firmware: text(64).nullable().optional(),
    segment: text(256).nullable().optional(),
    nac_role: text(128).nullable().optional(),
  })
  .refine((b) => Object.keys(b).length > 0, { message: 'nothing to update' });
const certQuery = z.strictObject({
  device: text(128).optional(),
  profile: text(64).optional(),
  status: z.enum(['valid', 'revoked', 'hold']).optional(),
  limit: LIMIT,
  cursor: text(512).optional(),
});
const quarantineBody = z.strictObject({ reason: text(1000).min(1) });
const revokeBody = z.strictObject({ reason: z.enum(REASONS).default('unspecified'), invalidity_date: z.iso.datetime({ offset: true }).optional() });
const secretBody = z.strictObject({ device: text(128).min(1), profile: text(64).min(1), ttl_seconds: z.number().int().min(60).max(90 * 86400).optional() });
const decideBody = z.strictObject({ reason: text(1000).optional() });
const requestQuery = z.strictObject({ state: z.enum(['pending', 'approved', 'rejected', 'issued', 'all']).default('pending') });
const batchQuery = z.strictObject({ limit: LIMIT });
// the reasons a recall may give: bulk/recall.ts decides (a hold is not a recall)
const batchRevokeBody = z.strictObject({ reason: z.enum(RECALL_REASONS as [RevocationReason, ...RevocationReason[]]) });
const nacQuery = z.strictObject({ since: text(512).optional(), limit: LIMIT });
const auditQuery = z.strictObject({ target: text(256).optional(), action: text(128).optional(), limit: LIMIT });
const advisoryBody = z.strictObject({
  model: text(128).min(1),
  firmware: text(200).min(1).describe("version range over dotted versions, e.g. '<2.4.1', '>=2.0 <2.4.1', '<1.0 || 3.1.0'"),
  action: z.enum(['quarantine', 'restrict', 'shorten']),
  restricted_profile: text(64).optional().describe('restrict: the device profile their next certificate comes from'),
  max_validity: text(32).optional().describe('shorten: the longest validity of their next certificate, a duration like 7d or 12h'),
  reason: text(1000).min(1),
  dry_run: z.boolean().default(false),
});
const tokenBody = z.strictObject({ name: text(63).min(1), role: z.enum(ROLES), ttl: text(32).default(DEFAULT_TOKEN_TTL).describe('lifetime, a duration like 30d or 12h') });

const ALL: readonly Role[] = ROLES;
const READERS: readonly Role[] = ['admin', 'operator', 'auditor'];
const OPERATORS: readonly Role[] = ['admin', 'operator'];

/** Opaque cursors: base64url JSON of the last row's sort key. */
function encodeCursor(v: unknown): string {
  return Buffer.from(JSON.stringify(v), 'utf8').toString('base64url');
}
function decodeCursor<T>(c: string | undefined, check: (v: unknown) => v is T): T | undefined {
  if (c === undefined) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(c, 'base64url').toString('utf8'));
  } catch {
    throw new CaError('badRequest', 'cursor is not one this API gave out');
  }
  if (!check(v)) throw new CaError('badRequest', 'cursor is not one this API gave out');
  return v;
}

/** A duration field ("7d", "1d12h") in ms, like the CLI's --validity and --ttl. */
function durationField(name: string, v: string): number {
  try {
    return parseDuration(v);
  } catch (e) {
    throw new CaError('badRequest', `${name}: ${(e as Error).message}`);
  }
}

function advisoryIdParam(p: string): number {
  if (!/^[1-9]\d{0,14}$/.test(p)) throw new CaError('badRequest', `"${p}" is not an advisory id`);
  return Number(p);
}

function serialParam(p: string): string {
  const s = normalizeSerial(p);
  if (!s) throw new CaError('badRequest', `"${p}" is not a serial number in hex`);
  return s;
}

async function found<T>(p: Promise<T | null>, what: string): Promise<T> {
  const v = await p;
  if (v === null) throw new CaError('notFound', `no ${what}`);
  return v;
}

// ---------------------------------------------------------------- the table

export const ROUTES: readonly ApiRoute[] = [
  {
    method: 'get',
    path: '/openapi.json',
    summary: 'this API as an OpenAPI 3.1 document',
    roles: ALL,
    run: async () => openApiDocument(),
  },
  {
    method: 'get',
    path: '/devices',
    summary: 'list devices (filters, cursor pagination by id)',
    roles: READERS,
    query: deviceQuery,
    run: async ({ deps, query }) => {
      const q = query as z.infer<typeof deviceQuery>;
      const after = decodeCursor(q.cursor, (v): v is string => typeof v === 'string');
      const { entries, more } = await deps.inventory({
        ...(q.profile ? { profile: q.profile } : {}),
        ...(q.model ? { model: q.model } : {}),
        ...(q.firmware ? { firmware: q.firmware } : {}),
        ...(q.state ? { state: q.state } : {}),
        ...(q.segment ? { segment: q.segment } : {}),
        ...(q.criticality ? { criticality: q.criticality } : {}),
        ...(q.stale ? { stale: q.stale === 'true' } : {}),
        ...(after ? { after } : {}),
        limit: q.limit,
      });
      return { items: entries.map(inventoryView), next_cursor: more ? encodeCursor(entries[entries.length - 1]!.device.id) : null };
    },
  },
  {
    method: 'get',
    path: '/devices/{id}',
    summary: 'one device with its inventory view and certificate history',
    roles: READERS,
    run: async ({ deps, params }) => {
      const [e] = (await deps.inventory({ ids: [params.id!] })).entries;
      if (!e) throw new CaError('notFound', `no device ${params.id}`);
      return { ...inventoryView(e), certificates: (await deps.listCertificates({ deviceId: e.device.id, limit: 1000 })).map(certificateView) };
    },
  },
  {
    method: 'patch',
    path: '/devices/{id}',
    summary: "update a device's inventory fields (null clears)",
    roles: OPERATORS,
    body: devicePatchBody,
    run: async ({ deps, params, body, actor }) => {
      const b = body as z.infer<typeof devicePatchBody>;
      const patch: DevicePatch = {
        ...(b.macs !== undefined
          ? {
              macs: b.macs.map((m) => {
                const n = normalizeMac(m);
                if (!n) throw new CaError('badRequest', `malformed MAC address "${m}"`);
                return n;
              }),
            }
          : {}),
        ...(b.serial_number !== undefined ? { serialNumber: b.serial_number } : {}),
        ...(b.model !== undefined ? { model: b.model } : {}),
        ...(b.firmware !== undefined ? { firmware: b.firmware } : {}),
        ...(b.segment !== undefined ? { segment: b.segment } : {}),
        ...(b.nac_role !== undefined ? { nacRole: b.nac_role } : {}),
      };
      return deviceView(await deps.updateDevice(params.id!, patch, actor));
    },
  },
  {
    method: 'post',
    path: '/devices/{id}/quarantine',
    summary: 'quarantine a device: every live certificate on hold, no enrollment until released',
    roles: OPERATORS,
    body: quarantineBody,
    run: async ({ deps, params, body, actor }) => {
      const r = await deps.quarantine(params.id!, (body as z.infer<typeof quarantineBody>).reason, actor);
      return { device: params.id, held: r.held.map(certificateView) };
    },
  },
  {
    method: 'post',
    path: '/devices/{id}/release',
    summary: 'lift a quarantine: what it held is valid again',
    roles: OPERATORS,
    run: async ({ deps, params, actor }) => ({ device: params.id, released: (await deps.liftQuarantine(params.id!, actor)).released.map(certificateView) }),
  },
  {
    method: 'post',
    path: '/devices/{id}/retire',
    summary: 'retire a device: every live certificate revoked (cessationOfOperation)',
    roles: ['admin'],
    run: async ({ deps, params, actor }) => ({ device: params.id, revoked: (await deps.retire(params.id!, actor)).map(certificateView) }),
  },
  {
    method: 'get',
    path: '/certificates',
    summary: 'search certificates (device, profile, status; cursor pagination)',
    roles: READERS,
    query: certQuery,
    run: async ({ deps, query }) => {
      const q = query as z.infer<typeof certQuery>;
      const c = decodeCursor(q.cursor, (v): v is [string, string] => Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === 'string'));
      const rows = await deps.listCertificates({
        ...(q.device ? { deviceId: q.device } : {}),
        ...(q.profile ? { profile: q.profile } : {}),
        ...(q.status ? { status: q.status } : {}),
        ...(c ? { after: { createdAt: new Date(c[0]), serial: c[1] } } : {}),
        limit: q.limit + 1,
      });
      const page = rows.slice(0, q.limit);
      const last = page[page.length - 1];
      return { items: page.map(certificateView), next_cursor: rows.length > q.limit && last ? encodeCursor([last.createdAt.toISOString(), last.serial]) : null };
    },
  },
  {
    method: 'get',
    path: '/certificates/{serial}',
    summary: 'one certificate (with its PEM)',
    roles: READERS,
    run: async ({ deps, params }) => {
      const c = await found(deps.getCertificate(serialParam(params.serial!)), `certificate ${params.serial}`);
      return { ...certificateView(c), pem: pemEncode('CERTIFICATE', c.der) };
    },
  },
  {
    method: 'post',
    path: '/certificates/{serial}/revoke',
    summary: 'revoke a certificate (a held one too)',
    roles: OPERATORS,
    body: revokeBody,
    run: async ({ deps, params, body, actor }) => {
      const b = body as z.infer<typeof revokeBody>;
      return certificateView(await deps.revoke(serialParam(params.serial!), b.reason, actor, b.invalidity_date ? new Date(b.invalidity_date) : undefined));
    },
  },
  {
    method: 'post',
    path: '/certificates/{serial}/hold',
    summary: 'put a certificate on hold (certificateHold)',
    roles: OPERATORS,
    run: async ({ deps, params, actor }) => certificateView(await deps.revoke(serialParam(params.serial!), 'certificateHold', actor)),
  },
  {
    method: 'post',
    path: '/certificates/{serial}/release',
    summary: 'release a hold',
    roles: OPERATORS,
    run: async ({ deps, params, actor }) => certificateView(await deps.release(serialParam(params.serial!), actor)),
  },
  {
    method: 'post',
    path: '/secrets',
    summary: 'a one-time enrollment secret for a device (created if new), shown once',
    roles: ['admin', 'factory'],
    body: secretBody,
    run: async ({ deps, body, actor }) => {
      const b = body as z.infer<typeof secretBody>;
      const s = await deps.createSecret(b.device, b.profile, b.ttl_seconds !== undefined ? b.ttl_seconds * 1000 : undefined, actor);
      return { device: s.deviceId, profile: s.profile, secret: s.secret, expires_at: s.expiresAt.toISOString() };
    },
  },
  {
    method: 'get',
    path: '/requests',
    summary: 'enrollment requests (default: pending)',
    roles: READERS,
    query: requestQuery,
    run: async ({ deps, query }) => {
      const q = query as z.infer<typeof requestQuery>;
      return { items: (await deps.listRequests(q.state === 'all' ? {} : { state: q.state })).map(requestView) };
    },
  },
  ...(['approve', 'reject'] as const).map(
    (verb): ApiRoute => ({
      method: 'post',
      path: `/requests/{id}/${verb}`,
      summary: `${verb} a pending enrollment request`,
      roles: OPERATORS,
      body: decideBody,
      run: async ({ deps, params, body, actor }) =>
        requestView(await deps.decideRequest(params.id!, verb === 'approve' ? 'approved' : 'rejected', actor, (body as z.infer<typeof decideBody>).reason ?? null)),
    }),
  ),
  {
    method: 'get',
    path: '/batches',
    summary: 'factory batches, newest first (fleetca batch list)',
    roles: ['admin', 'factory'],
    query: batchQuery,
    run: async ({ deps, query }) => ({ items: (await deps.listBatches((query as z.infer<typeof batchQuery>).limit)).map(batchView) }),
  },
  {
    method: 'get',
    path: '/batches/{id}',
    summary: 'one factory batch with its rejected rows (fleetca batch show)',
    roles: ['admin', 'factory'],
    run: async ({ deps, params }) => {
      const b = await found(deps.getBatch(params.id!), `batch ${params.id}`);
      return { ...batchView(b.batch), rejects: b.rejects.map(batchRejectView) };
    },
  },
  {
    method: 'post',
    path: '/batches/{id}/revoke',
    summary: 'recall a production run: revoke every certificate of the batch (again: finishes an interrupted recall)',
    roles: ['admin', 'factory'],
    body: batchRevokeBody,
    run: async ({ deps, params, body, actor }) => {
      const r = await deps.revokeBatch(params.id!, (body as z.infer<typeof batchRevokeBody>).reason, actor);
      return { batch: params.id, revoked: r.revoked.map(formatSerial), already_revoked: r.alreadyRevoked };
    },
  },
  {
    method: 'get',
    path: '/nac/identities',
    summary: 'devices as the NAC sees them, incrementally: pass next_cursor back as since (ETag; 304 when nothing changed)',
    roles: ['admin', 'nac'],
    query: nacQuery,
    etag: (out) => {
      const o = out as { items: unknown[]; next_cursor: string };
      // an empty answer is the same answer whatever the cursor: a poller with nothing new gets 304
      return o.items.length === 0 ? '[]' : JSON.stringify(o);
    },
    run: async ({ deps, query }) => {
      const q = query as z.infer<typeof nacQuery>;
      const after = decodeCursor(q.since, (v): v is [string, string] => Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && /^\d{1,20}$/.test(v[0]) && typeof v[1] === 'string') ?? ['0', ''];
      const { items, horizon } = await deps.nacChanges({ xid: after[0], id: after[1] }, q.limit);
      const last = items[items.length - 1];
      // a full page continues after its last change; a short one has read everything below the horizon
      const next: [string, string] = items.length === q.limit && last ? [last.xid, last.identity.device_id] : [horizon, ''];
      return { items: items.map((i) => i.identity), next_cursor: encodeCursor(next) };
    },
  },
  {
    method: 'get',
    path: '/nac/bundle',
    summary: 'the EAP-TLS trust bundle: device issuing CAs and roots, never the manufacturing CA (PEM; ETag)',
    roles: ['admin', 'nac'],
    responseType: 'application/pem-certificate-chain',
    etag: (out) => (out as RawAnswer).body,
    run: async ({ deps }) => new RawAnswer('application/pem-certificate-chain', deps.trustBundlePem()),
  },
  {
    method: 'get',
    path: '/audit',
    summary: 'the newest audit records (by target, action)',
    roles: ['admin', 'auditor'],
    query: auditQuery,
    run: async ({ deps, query }) => {
      const q = query as z.infer<typeof auditQuery>;
      const rows = await deps.listAudit({ ...(q.target ? { target: q.target } : {}), ...(q.action ? { action: q.action } : {}), limit: q.limit });
      return { items: rows.map((r) => ({ id: r.id, at: r.at.toISOString(), actor: r.actor, action: r.action, target: r.target, details: r.details })) };
    },
  },
  {
    method: 'get',
    path: '/advisories',
    summary: 'firmware advisories, applied and withdrawn (in id order)',
    roles: READERS,
    run: async ({ deps }) => ({ items: (await deps.listAdvisories()).map(advisoryView) }),
  },
  {
    method: 'post',
    path: '/advisories',
    summary: 'select the devices of a model whose firmware is in a range, then quarantine, restrict or shorten them (dry_run: only select)',
    roles: OPERATORS,
    body: advisoryBody,
    run: async ({ deps, body, actor }) => {
      const b = body as z.infer<typeof advisoryBody>;
      const maxValidityMs = b.max_validity !== undefined ? durationField('max_validity', b.max_validity) : undefined;
      const r = await deps.applyAdvisory({
        model: b.model,
        firmware: b.firmware,
        action: b.action,
        ...(b.restricted_profile !== undefined ? { profile: b.restricted_profile } : {}),
        ...(maxValidityMs !== undefined ? { maxValidityMs } : {}),
        reason: b.reason,
        dryRun: b.dry_run,
        actor,
      });
      return { dry_run: b.dry_run, advisory: r.advisory ? advisoryView(r.advisory) : null, devices: r.devices, skipped: r.skipped, counts: { devices: r.devices.length, skipped: r.skipped.length } };
    },
  },
  {
    method: 'post',
    path: '/advisories/{id}/withdraw',
    summary: 'withdraw an advisory (patched firmware is out): restrict/shorten no longer apply; quarantines stay until released per device',
    roles: OPERATORS,
    run: async ({ deps, params, actor }) => advisoryView(await deps.withdrawAdvisory(advisoryIdParam(params.id!), actor)),
  },
  {
    method: 'get',
    path: '/tokens',
    summary: 'admin API tokens (never their values)',
    roles: ['admin'],
    run: async ({ deps }) => ({ items: (await deps.listTokens()).map(apiTokenView) }),
  },
  {
    method: 'post',
    path: '/tokens',
    summary: 'create a token; the answer carries it, once (only its HMAC is kept)',
    roles: ['admin'],
    body: tokenBody,
    run: async ({ deps, body, actor }) => {
      const b = body as z.infer<typeof tokenBody>;
      const t = await deps.createToken({ name: b.name, role: b.role, ttlMs: durationField('ttl', b.ttl), actor });
      return { ...apiTokenView(t.record), token: t.token };
    },
  },
  {
    method: 'post',
    path: '/tokens/{name}/revoke',
    summary: 'revoke a token by name: it is refused (401) from now on',
    roles: ['admin'],
    run: async ({ deps, params, actor }) => {
      if (!(await deps.revokeToken(params.name!, actor))) throw new CaError('notFound', `no unrevoked token named ${params.name}`);
      return { name: params.name, revoked: true };
    },
  },
];

// ---------------------------------------------------------------- errors (RFC 9457)

function statusOf(kind: CaErrorKind): number {
  switch (kind) {
    case 'badRequest':
    case 'badCsr':
      return 400;
    case 'unauthorized':
      return 401;
    case 'forbidden':
    case 'policyRejected':
      return 403;
    case 'notFound':
      return 404;
    case 'conflict':
      return 409;
    case 'pending':
      return 202;
    case 'unavailable':
      return 503;
    case 'internal':
      return 500;
    default:
      return assertNever(kind);
  }
}

const TITLES: Record<number, string> = { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed', 409: 'Conflict', 413: 'Content Too Large', 415: 'Unsupported Media Type', 429: 'Too Many Requests', 500: 'Internal Server Error', 503: 'Service Unavailable' };

function problem(res: Response, status: number, detail: string, extra: Record<string, unknown> = {}): void {
  res.status(status).type('application/problem+json').send(JSON.stringify({ type: 'about:blank', title: TITLES[status] ?? 'Error', status, detail, ...extra }));
}

// ---------------------------------------------------------------- the router

const toExpress = (p: string) => p.replace(/\{(\w+)\}/g, ':$1');

/**
 * Who is calling: a bearer token (actor `api:<name>`) when the request carries one, else the TLS
 * client certificate, when one was presented, checked against the admin CA (actor `cert:<name>`).
 * The listener requests client certificates without verifying them (EST verifies its own), so a
 * device certificate reaches this point and is refused here. Null: not authenticated.
 */
async function authenticate(deps: AdminApiDeps, req: Request): Promise<{ actor: string; role: Role } | null> {
  const auth = req.get('authorization');
  if (auth !== undefined) {
    const m = /^Bearer ([^\s]+)$/.exec(auth);
    const t = m ? await deps.authenticate(m[1]!) : null;
    return t ? { actor: `api:${t.name}`, role: t.role } : null;
  }
  const socket = req.socket as Partial<TLSSocket>;
  if (!deps.authenticateCertificate || !socket.encrypted || typeof socket.getPeerX509Certificate !== 'function') return null;
  const peer = socket.getPeerX509Certificate();
  if (!peer) return null;
  const r = await deps.authenticateCertificate(peer.raw);
  if (!r.ok) {
    req.log.warn({ reason: r.reason, subject: peer.subject.replace(/\n/g, ', '), issuer: peer.issuer.replace(/\n/g, ', ') }, 'admin API: client certificate refused');
    return null;
  }
  return { actor: `cert:${r.name}`, role: r.role };
}

export function createAdminApiRouter(deps: AdminApiDeps): Router {
  const r = Router();
  const limiter = new FailureLimiter(deps.authFailureLimit, deps.authFailureWindowMs);
  for (const route of ROUTES) {
    r[route.method](`/api/v1${toExpress(route.path)}`, async (req: Request, res: Response) => {
      const ip = req.socket.remoteAddress ?? '?';
      const now = deps.now().getTime();
      if (limiter.blocked(ip, now)) {
        req.log.warn({ ip }, 'admin API: too many authentication failures');
        res.setHeader('Retry-After', String(Math.ceil(deps.authFailureWindowMs / 1000)));
        problem(res, 429, 'too many failed authentications from this address; try later');
        return;
      }
      let who: { actor: string; role: Role } | null;
      try {
        who = await authenticate(deps, req);
      } catch (e) {
        const status = e instanceof CaError && e.kind === 'unavailable' ? 503 : 500;
        req.log.error({ err: (e as Error).message }, 'admin API: authentication could not be checked');
        problem(res, status, 'authentication could not be checked');
        return;
      }
      if (!who) {
        limiter.fail(ip, now);
        req.log.warn({ ip, route: route.path }, 'admin API: authentication failed');
        res.setHeader('WWW-Authenticate', 'Bearer realm="fleetca"');
        problem(res, 401, 'a valid bearer token or admin client certificate is required');
        return;
      }
      limiter.succeed(ip);
      if (!route.roles.includes(who.role)) {
        req.log.warn({ actor: who.actor, role: who.role, route: route.path }, 'admin API: role not allowed');
        problem(res, 403, `role ${who.role} may not ${route.method.toUpperCase()} ${route.path}`);
        return;
      }
      try {
        let body: unknown = {};
        if (route.body) {
          const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
          if (raw.length > 0 && !/^application\/json\b/i.test(req.get('content-type') ?? '')) {
            problem(res, 415, 'send JSON (Content-Type: application/json)');
            return;
          }
          let parsed: unknown = {};
          if (raw.length > 0) {
            try {
              parsed = JSON.parse(raw.toString('utf8'));
            } catch {
              problem(res, 400, 'the body is not valid JSON');
              return;
            }
          }
          const v = route.body.safeParse(parsed);
          if (!v.success) {
            problem(res, 400, 'the body does not match the schema', { errors: v.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })) });
            return;
          }
          body = v.data;
        }
        let query: Record<string, unknown> = {};
        if (route.query) {
          const v = route.query.safeParse(req.query);
          if (!v.success) {
            problem(res, 400, 'the query does not match the schema', { errors: v.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })) });
            return;
          }
          query = v.data as Record<string, unknown>;
        }
        const out = await route.run({ deps, params: req.params as Record<string, string>, query, body, actor: who.actor });
        if (route.etag) {
          const etag = `"${createHash('sha256').update(route.etag(out)).digest('base64url').slice(0, 27)}"`;
          res.setHeader('ETag', etag);
          res.setHeader('Cache-Control', 'private, no-cache');
          if (etagMatches(req.get('if-none-match'), etag)) {
            res.status(304).end();
            return;
          }
        }
        if (out instanceof RawAnswer) res.status(200).type(out.type).send(out.body);
        else res.status(200).type('application/json').send(JSON.stringify(out));
      } catch (e) {
        if (e instanceof CaError) {
          const status = statusOf(e.kind);
          if (status >= 500) req.log.error({ err: e.message }, 'admin API failed');
          else req.log.info({ err: e.message, status }, 'admin API refused');
          problem(res, status, status >= 500 ? 'the request could not be completed' : e.message);
          return;
        }
        req.log.error({ err: (e as Error).message }, 'admin API failed');
        problem(res, 500, 'the request could not be completed');
      }
    });
  }
  // a known path with another method
  for (const path of new Set(ROUTES.map((x) => x.path))) {
    const allow = ROUTES.filter((x) => x.path === path).map((x) => x.method.toUpperCase());
    r.all(`/api/v1${toExpress(path)}`, (_req, res) => {
      res.setHeader('Allow', allow.join(', '));
      problem(res, 405, `${path} answers ${allow.join(', ')}`);
    });
  }
  r.all(/^\/api\/v1(\/.*)?$/, (_req, res) => problem(res, 404, 'no such API route'));
  return r;
}

// ---------------------------------------------------------------- OpenAPI

/** The OpenAPI 3.1 document of ROUTES (the test checks the two agree). */
export function openApiDocument(): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  const problemRef = { $ref: '#/components/responses/Problem' };
  for (const route of ROUTES) {
    const params = [...route.path.matchAll(/\{(\w+)\}/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
    const query = route.query
      ? Object.entries((z.toJSONSchema(route.query, { io: 'input' }) as { properties?: Record<string, unknown> }).properties ?? {}).map(([name, schema]) => ({ name, in: 'query', required: false, schema }))
      : [];
    paths[route.path] ??= {};
    paths[route.path]![route.method] = {
      summary: route.summary,
      'x-fleetca-roles': route.roles,
      ...(params.length + query.length > 0 ? { parameters: [...params, ...query] } : {}),
      ...(route.body ? { requestBody: { required: false, content: { 'application/json': { schema: z.toJSONSchema(route.body, { io: 'input' }) } } } } : {}),
      responses: {
        '200': { description: 'OK', content: { [route.responseType ?? 'application/json']: {} } },
        ...(route.etag ? { '304': { description: 'Not Modified (If-None-Match named the current ETag)' } } : {}),
        '400': problemRef, '401': problemRef, '403': problemRef, '404': problemRef, '409': problemRef, '429': problemRef },
    };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'fleetca admin API', version: '1' },
    servers: [{ url: '/api/v1' }],
    security: [{ bearer: [] }, { adminCertificate: [] }],
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'a token from `fleetca token create --role R --name N`' },
        adminCertificate: { type: 'mutualTLS', description: 'a TLS client certificate from `fleetca admin-cert issue --role R --name N` (used when no bearer token is sent)' },
      },
      responses: { Problem: { description: 'RFC 9457 problem details', content: { 'application/problem+json': {} } } },
    },
    paths,
  };
}
