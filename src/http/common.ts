/**
 * Shared HTTP pieces: request ids, access logging, metrics, body limits, and the last-resort
 * error handler (internal details go to the log, never to the client).
 */
import crypto from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { NextFunction, Request, Response, RequestHandler, ErrorRequestHandler } from 'express';
import type { Logger } from 'pino';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { CaError, toCaError } from '../core/errors.js';

export interface HttpMetrics {
  registry: Registry;
  requests: Counter<'listener' | 'route' | 'status'>;
  duration: Histogram<'listener' | 'route'>;
  ocsp: Counter<'status' | 'source'>;
  /** Live device certificates expiring within 1d, 7d, 30d, by profile (set by the expiry tracker). */
  certificatesExpiring: Gauge<'profile' | 'within'>;
  /** Current device certificates already expired and not replaced, by profile. */
  certificatesExpired: Gauge<'profile'>;
}

export function createMetrics(): HttpMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'fleetca_process_' });
  return {
    registry,
    requests: new Counter({ name: 'fleetca_http_requests_total', help: 'HTTP requests by listener, route and status', labelNames: ['listener', 'route', 'status'], registers: [registry] }),
    duration: new Histogram({
      name: 'fleetca_http_request_duration_seconds',
      help: 'HTTP request latency by listener and route',
      labelNames: ['listener', 'route'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    ocsp: new Counter({
      name: 'fleetca_ocsp_responses_total',
      help: 'OCSP responses by responseStatus and source (cache, stored, signed, live, error)',
      labelNames: ['status', 'source'],
      registers: [registry],
    }),
    certificatesExpiring: new Gauge({
      name: 'fleetca_certificates_expiring',
      help: "Devices' current certificates (not revoked, not replaced) expiring within `within`, by profile; every server reports the same fleet-wide value",
      labelNames: ['profile', 'within'],
      registers: [registry],
    }),
    certificatesExpired: new Gauge({
      name: 'fleetca_certificates_expired',
      help: "Devices' current certificates past their notAfter and not replaced, by profile; every server reports the same fleet-wide value",
      labelNames: ['profile'],
      registers: [registry],
    }),
  };
}

/** Replaces the expiry gauges' values (profiles no longer reported disappear). */
export function setExpiryGauges(metrics: HttpMetrics, rows: ReadonlyArray<{ profile: string; expiring: Record<string, number>; expired: number }>): void {
  metrics.certificatesExpiring.reset();
  metrics.certificatesExpired.reset();
  for (const r of rows) {
    for (const [within, n] of Object.entries(r.expiring)) metrics.certificatesExpiring.set({ profile: r.profile, within }, n);
    metrics.certificatesExpired.set({ profile: r.profile }, r.expired);
  }
}

declare module 'express-serve-static-core' {
  interface Request {
    id: string;
    log: Logger;
  }
}

/** Request id (from X-Request-Id when sane, else random), a child logger, access log and metrics. */
export function requestContext(log: Logger, metrics: HttpMetrics, listener: string): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    const given = req.get('x-request-id');
    req.id = given && /^[\w.-]{1,64}$/.test(given) ? given : crypto.randomUUID();
    req.log = log.child({ reqId: req.id, listener });
    res.setHeader('X-Request-Id', req.id);
    const start = process.hrtime.bigint();
    res.on('finish', () => {
      const route = (req.route?.path as string | undefined) ?? (res.statusCode === 404 ? 'unmatched' : req.baseUrl || req.path);
      const secs = Number(process.hrtime.bigint() - start) / 1e9;
      metrics.requests.inc({ listener, route, status: String(res.statusCode) });
      metrics.duration.observe({ listener, route }, secs);
      req.log.info({ method: req.method, url: req.originalUrl, status: res.statusCode, ms: Math.round(secs * 1e4) / 10 }, 'request');
    });
    next();
  };
}

/** 404 for anything no router answered. */
export const notFoundHandler: RequestHandler = (_req, res) => {
  res.status(404).type('text/plain').send('not found\n');
};

/** How much of a too-large body is read and dropped so that the client sees its 413. */
const DRAIN_MAX = 8 * 1024 * 1024;

/**
 * Calls `send` (a refusal, typically 413 with Connection: close) once the request body has been
 * read and dropped, so that a client still sending gets the answer instead of a reset (closing
 * with unread data makes the kernel send RST, and curl reports "Send failure" without reading the
 * 413); past DRAIN_MAX the connection is cut.
 */
export function answerAfterDraining(req: IncomingMessage, send: () => void): void {
  if (req.complete) {
    send();
    return;
  }
  let seen = 0;
  req.on('data', (c: Buffer) => {
    seen += c.length;
    if (seen > DRAIN_MAX) req.socket.destroy();
  });
  req.once('end', send);
  req.resume();
}

/**
 * Last-resort error handler: body-parser errors keep their status (413 too large, 400 bad
 * syntax); CaErrors map to a status; anything else is a 500 without detail.
 */
export const errorHandler: ErrorRequestHandler = (err: unknown, req, res, _next) => {
  const e = err as { status?: number; statusCode?: number; type?: string; expose?: boolean; message?: string };
  const status = e.status ?? e.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    req.log?.warn({ err: e.message, type: e.type }, 'bad request');
    const detail = status === 413 ? 'request body too large' : 'bad request';
    const send = () => {
      // the admin API speaks RFC 9457 problem details, also for what the body parser refuses
      if (req.path.startsWith('/api/')) res.status(status).type('application/problem+json').send(JSON.stringify({ type: 'about:blank', title: detail, status, detail }));
      else res.status(status).type('text/plain').send(`${detail}\n`);
    };
    if (status === 413) {
      res.setHeader('Connection', 'close');
      answerAfterDraining(req, send);
      return;
    }
    send();
    return;
  }
  const ce: CaError = toCaError(err);
  req.log?.error({ err: ce.message, kind: ce.kind, cause: (ce.cause as Error | undefined)?.message }, 'request failed');
  if (!res.headersSent) res.status(500).type('text/plain').send('internal error\n');
};
