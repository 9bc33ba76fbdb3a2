/**
 * The admin API (`/api/v1` on the HTTPS listener): the CLI's operations over JSON, for admins, the
 * SOC, factories and NACs. Every route — its method, path, the roles allowed, its input schemas —
 * is one row of ROUTES; the express router and the OpenAPI document are both built from that
 * table, and a test calls every route with every role.
 *
 * Authentication: `Authorization: Bearer fca_…` (tokens from `fleetca token create`); too many
 * failures from one address → 429. Errors are RFC 9457 problem+json; input is validated with zod;
 * lists are paginated with an opaque cursor.
 */
import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import { CaError, assertNever, type CaErrorKind } from '../../core/errors.js';
import { normalizeSerial } from '../../core/ids.js';
import { FailureLimiter } from '../../enrollment/secrets.js';
import { ROLES, type Role } from '../../enrollment/api-tokens.js';
import { certificateView, deviceView, requestView } from '../../enrollment/views.js';
import { pemEncode } from '../../pki/pem.js';
import type { CertificateRecord, CertificateStatus, DeviceRecord, DeviceState, RevocationReason } from '../../ca/ports.js';
import type { EnrollmentRequest, RequestState } from '../../enrollment/ports.js';

/** What the API calls: the same core functions as the CLI. */
export interface AdminApiDeps {
  authenticate(token: string): Promise<{ name: string; role: Role } | null>;
  listDevices(f: { profile?: string; model?: string; state?: DeviceState; after?: string; limit: number }): Promise<DeviceRecord[]>;
  getDevice(id: string): Promise<DeviceRecord | null>;
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
  /** Authentication failures allowed per client address and window before 429. */
  authFailureLimit: number;
  authFailureWindowMs: number;
  now(): Date;
}

interface Ctx {
  deps: AdminApiDeps;
  params: Record<string, string>;
  query: Record<string, unknown>;
  body: unknown;
  actor: string;
}

export interface ApiRoute {
  method: 'get' | 'post';
  /** OpenAPI form: /devices/{id} (under /api/v1). */
  path: string;
  summary: string;
  /** Who may call it (admin may call everything, and is listed explicitly). */
  roles: readonly Role[];
  query?: z.ZodObject;
  body?: z.ZodType;
  /** 200 unless said otherwise. */
  run(ctx: Ctx): Promise<unknown>;
}

// ---------------------------------------------------------------- schemas

const LIMIT = z.coerce.number().int().min(1).max(1000).default(100);
const text = (max: number) => z.string().max(max);
const REASONS = ['unspecified', 'keyCompromise', 'cACompromise', 'affiliationChanged', 'superseded', 'cessationOfOperation', 'privilegeWithdrawn', 'aACompromise'] as const;

const deviceQuery = z.strictObject({
  profile: text(64).optional(),
  model: text(128).optional(),
  state: z.enum(['active', 'quarantined', 'retired']).optional(),
  limit: LIMIT,
  cursor: text(512).optional(),
});
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
const auditQuery = z.strictObject({ target: text(256).optional(), action: text(128).optional(), limit: LIMIT });

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
      const rows = await deps.listDevices({ ...(q.profile ? { profile: q.profile } : {}), ...(q.model ? { model: q.model } : {}), ...(q.state ? { state: q.state } : {}), ...(after ? { after } : {}), limit: q.limit + 1 });
      const page = rows.slice(0, q.limit);
      return { items: page.map(deviceView), next_cursor: rows.length > q.limit ? encodeCursor(page[page.length - 1]!.id) : null };
    },
  },
  {
    method: 'get',
    path: '/devices/{id}',
    summary: 'one device',
    roles: READERS,
    run: async ({ deps, params }) => deviceView(await found(deps.getDevice(params.id!), `device ${params.id}`)),
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
      const m = /^Bearer ([^\s]+)$/.exec(req.get('authorization') ?? '');
      const who = m ? await deps.authenticate(m[1]!) : null;
      if (!who) {
        limiter.fail(ip, now);
        req.log.warn({ ip, route: route.path }, 'admin API: authentication failed');
        res.setHeader('WWW-Authenticate', 'Bearer realm="fleetca"');
        problem(res, 401, 'a valid bearer token is required');
        return;
      }
      limiter.succeed(ip);
      if (!route.roles.includes(who.role)) {
        req.log.warn({ token: who.name, role: who.role, route: route.path }, 'admin API: role not allowed');
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
        const out = await route.run({ deps, params: req.params as Record<string, string>, query, body, actor: `api:${who.name}` });
        res.status(200).type('application/json').send(JSON.stringify(out));
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
      responses: { '200': { description: 'OK', content: { 'application/json': {} } }, '400': problemRef, '401': problemRef, '403': problemRef, '404': problemRef, '409': problemRef, '429': problemRef },
    };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'fleetca admin API', version: '1' },
    servers: [{ url: '/api/v1' }],
    security: [{ bearer: [] }],
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'a token from `fleetca token create --role R --name N`' } },
      responses: { Problem: { description: 'RFC 9457 problem details', content: { 'application/problem+json': {} } } },
    },
    paths,
  };
}
