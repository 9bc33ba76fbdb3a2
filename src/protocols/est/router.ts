/**
 * EST (RFC 7030, with the RFC 8951 clarifications) on the HTTPS listener:
 *
 *   GET  /.well-known/est[/<label>]/cacerts         issuing CA chain, base64 DER certs-only PKCS#7
 *   GET  /.well-known/est[/<label>]/csrattrs        what the profile wants in a CSR (204: nothing)
 *   POST /.well-known/est[/<label>]/simpleenroll    base64 PKCS#10 in, base64 certs-only out
 *   POST /.well-known/est[/<label>]/simplereenroll  the same, authenticated by the current certificate
 *   POST /.well-known/est[/<label>]/serverkeygen    key generated here; multipart/mixed key + certificate
 *
 * A label is a device profile name. The adapter only decodes the wire and encodes the answer; who
 * may enroll is the enrollment layer's decision, signing the core's.
 *
 * NOTE(client): strongSwan `pki` 5.9.8 decodes base64 only without line breaks and needs a
 * Content-Length (no chunked replies), so every body is one base64 line sent with Content-Length.
 */
import type { TLSSocket } from 'node:tls';
import { Router, type Request, type Response } from 'express';
import { CaError, assertNever, badCsr, toCaError } from '../../core/errors.js';
import { decodeCsrInput } from '../../pki/pem.js';
import { encodeCertsOnly } from '../../pki/pkcs7.js';
import { csrAttrsForProfile, encodeCsrAttrs } from '../../pki/csrattrs.js';
import type { ChannelBinding, EnrollOperation, EnrollmentService, PresentedCredentials } from '../../enrollment/enroll.js';

export interface EstDeps {
  enrollment: EnrollmentService;
  /** The CA chain (issuing CA first, root last) for a label, or for the device CA without one. */
  caChain: (label: string | undefined) => Buffer[];
}

const PKCS7_CERTS_ONLY = 'application/pkcs7-mime; smime-type=certs-only';
const REALM = 'Basic realm="fleetca EST", charset="UTF-8"';
const LABEL = /^[a-z][a-z0-9-]{0,62}$/;

const OPERATIONS: Record<string, { method: 'GET' | 'POST'; enroll?: EnrollOperation }> = {
  cacerts: { method: 'GET' },
  csrattrs: { method: 'GET' },
  simpleenroll: { method: 'POST', enroll: 'simpleenroll' },
  simplereenroll: { method: 'POST', enroll: 'simplereenroll' },
  serverkeygen: { method: 'POST', enroll: 'serverkeygen' },
};

/**
 * One base64 line: no wrapping (see the NOTE above). Sent as a Buffer: express appends
 * "; charset=utf-8" to the Content-Type of a string body, which is no parameter of these media types.
 */
function sendBase64(res: Response, status: number, type: string, der: Buffer): void {
  res.status(status).setHeader('Content-Transfer-Encoding', 'base64');
  res.type(type).send(Buffer.from(der.toString('base64'), 'latin1'));
}

/** The exhaustive map from the core's error kinds to EST's HTTP answers. */
function sendError(req: Request, res: Response, err: unknown, op: string): void {
  const e: CaError = toCaError(err);
  let status: number;
  let body = e.message;
  switch (e.kind) {
    case 'badRequest':
    case 'badCsr':
      status = 400;
      break;
    case 'unauthorized':
      // never say whether the device exists or which check failed: that goes to the log only
      status = 401;
      body = 'authentication failed';
      res.setHeader('WWW-Authenticate', REALM);
      break;
    case 'forbidden':
    case 'policyRejected':
      status = 403;
      break;
    case 'pending':
      status = 202;
      res.setHeader('Retry-After', '60');
      break;
    case 'notFound':
      status = 404;
      break;
    case 'conflict':
      status = 409;
      break;
    case 'unavailable':
      status = 503;
      res.setHeader('Retry-After', '30');
      break;
    case 'internal':
      status = 500;
      body = 'internal error';
      break;
    default:
      assertNever(e.kind);
  }
  const level = status >= 500 ? 'error' : 'warn';
  req.log[level]({ est: op, kind: e.kind, status, err: e.message, cause: (e.cause as Error | undefined)?.message }, 'est request refused');
  res.status(status).type('text/plain').send(`${body}\n`);
}

function parseBasic(header: string | undefined): PresentedCredentials['basic'] {
  if (!header) return undefined;
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!m) return undefined;
  const text = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  if (colon < 0) return undefined;
  return { user: text.slice(0, colon), password: text.slice(colon + 1) };
}

/** The RFC 7030 §3.5 channel binding of the connection. */
function channelBindingOf(socket: Partial<TLSSocket>): ChannelBinding | undefined {
  const protocol = socket.getProtocol?.();
  if (protocol === 'TLSv1.3') {
    // RFC 9266: 32 bytes of the exporter with label EXPORTER-Channel-Binding and no context
    return { type: 'tls-exporter', value: socket.exportKeyingMaterial!(32, 'EXPORTER-Channel-Binding', Buffer.alloc(0)) };
  }
  if (protocol === 'TLSv1.2') {
    // RFC 5929 §3.1: the first Finished of the latest handshake — the client's on a full
    // handshake, ours on a resumed one
    const v = socket.isSessionReused?.() ? socket.getFinished?.() : socket.getPeerFinished?.();
    if (v) return { type: 'tls-unique', value: v };
  }
  return undefined;
}

/**
 * HTTP Basic, the TLS client certificate (leaf DER) and the channel binding, computed only when
 * the enrollment layer reads it (a profile with channel binding on): most enrollments never do.
 */
function credentials(req: Request): PresentedCredentials {
  const basic = parseBasic(req.get('authorization'));
  const creds: PresentedCredentials = basic ? { basic } : {};
  const socket = req.socket as Partial<TLSSocket>;
  if (!socket.encrypted || typeof socket.getPeerX509Certificate !== 'function') return creds;
  // getPeerX509Certificate: only the leaf, without building getPeerCertificate()'s whole object
  const peer = socket.getPeerX509Certificate();
  if (peer) creds.clientCertDer = peer.raw;
  let binding: { v: ChannelBinding | undefined } | undefined;
  Object.defineProperty(creds, 'channelBinding', { enumerable: true, get: () => (binding ??= { v: channelBindingOf(socket) }).v });
  return creds;
}

/** The PKCS#10 of a request body: base64 (wrapped or not, RFC 8951), or PEM; DER when declared binary. */
function csrFromBody(req: Request): Buffer {
  const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
  if (body.length === 0) throw badCsr('empty body: expected a base64 PKCS#10 request');
  const cte = req.get('content-transfer-encoding')?.trim().toLowerCase();
  if (cte === 'binary') return body;
  const text = body.toString('latin1');
  if (text.includes('-----BEGIN')) return decodeCsrInput(body);
  const b64 = text.replace(/\s+/g, '');
  // RFC 8951: base64 with or without line breaks; padding as base64 requires
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 === 1) throw badCsr('body is not base64');
  const der = Buffer.from(b64, 'base64');
  if (der.length === 0) throw badCsr('empty body: expected a base64 PKCS#10 request');
  return der;
}

function multipartKeyAndCert(keyPkcs8: Buffer, certsOnly: Buffer): { type: string; body: string } {
  const boundary = `fleetca-${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
  const part = (type: string, der: Buffer) =>
    `--${boundary}\r\nContent-Type: ${type}\r\nContent-Transfer-Encoding: base64\r\n\r\n${der.toString('base64')}\r\n`;
  // RFC 7030 §4.4.2: the private key part first (application/pkcs8), then the certificate
  const body = part('application/pkcs8', keyPkcs8) + part(PKCS7_CERTS_ONLY, certsOnly) + `--${boundary}--\r\n`;
  return { type: `multipart/mixed; boundary=${boundary}`, body };
}

export function createEstRouter(deps: EstDeps): Router {
  const r = Router();

  const handle = async (req: Request, res: Response, label: string | undefined, op: string) => {
    const spec = OPERATIONS[op];
    if (!spec || (label !== undefined && !LABEL.test(label))) {
      req.log.warn({ est: op, kind: 'notFound', status: 404 }, 'est request refused: unknown operation');
      res.status(404).type('text/plain').send('not found\n');
      return;
    }
    if (req.method !== spec.method && !(spec.method === 'GET' && req.method === 'HEAD')) {
      res.setHeader('Allow', spec.method === 'GET' ? 'GET, HEAD' : 'POST');
      req.log.warn({ est: op, kind: 'badRequest', status: 405, method: req.method }, 'est request refused: wrong method');
      res.status(405).type('text/plain').send(`${op} takes ${spec.method}\n`);
      return;
    }
    try {
      if (label !== undefined) deps.enrollment.deviceProfile(label);
      if (op === 'cacerts') {
        sendBase64(res, 200, PKCS7_CERTS_ONLY, encodeCertsOnly(deps.caChain(label)));
        return;
      }
      if (op === 'csrattrs') {
        const profile = await deps.enrollment.profileForAttributes(label, credentials(req));
        const attrs = profile
          ? csrAttrsForProfile({
              keyTypes: profile.keys.types,
              rsaMinBits: profile.keys.rsaMinBits,
              challengePassword: profile.enrollment.channelBinding,
              sanAllowed: Boolean(profile.san.dns ?? profile.san.ip ?? profile.san.email ?? profile.san.uri),
            })
          : [];
        if (attrs.length === 0) res.status(204).end();
        else sendBase64(res, 200, 'application/csrattrs', encodeCsrAttrs(attrs));
        return;
      }
      const creds = credentials(req);
      const csrDer = csrFromBody(req);
      const result = await deps.enrollment.enroll({ operation: spec.enroll!, label, csrDer, credentials: creds, via: 'est' });
      if (result.kind === 'pending') {
        req.log.info({ est: op, actor: result.actor, request: result.requestId }, 'est enrollment waits for approval');
        res.status(202).setHeader('Retry-After', String(result.retryAfterSeconds));
        res.type('text/plain').send(`request ${result.requestId} waits for approval\n`);
        return;
      }
      const cert = result.certificate;
      req.log.info({ est: op, actor: result.actor, serial: cert.serial, profile: cert.profile, device: cert.deviceId, superseded: result.superseded }, 'est certificate issued');
      const certsOnly = encodeCertsOnly([cert.der]);
      if (result.privateKeyPkcs8) {
        const { type, body } = multipartKeyAndCert(result.privateKeyPkcs8, certsOnly);
        res.setHeader('Cache-Control', 'no-store');
        res.status(200).type(type).send(Buffer.from(body, 'latin1'));
        return;
      }
      sendBase64(res, 200, PKCS7_CERTS_ONLY, certsOnly);
    } catch (err) {
      sendError(req, res, err, op);
    }
  };

  r.all('/.well-known/est/:op', (req, res) => handle(req, res, undefined, req.params.op as string));
  r.all('/.well-known/est/:label/:op', (req, res) => handle(req, res, req.params.label as string, req.params.op as string));
  return r;
}
